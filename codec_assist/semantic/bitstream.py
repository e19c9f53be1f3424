"""The semantic bitstream container (spec: docs/BITSTREAM.md): magic, version, a layer table, the payloads.

```
offset        size    field
0             4       magic b"CAsm"
4             1       major version (readers reject a major they do not know)
5             1       minor version (a newer minor only adds layer kinds flagged skippable)
6             1       layer count N (1..MAX_LAYERS)
7             1       reserved, 0
8             16*N    layer table, one entry a layer: kind u8, flags u8, codec u8, pad u8 (0),
                      raw length u32, stored length u32, CRC-32 of the stored bytes u32
8+16N         4       CRC-32 of bytes [0, 8+16N)
12+16N        ...     payloads, in table order, back to back; the stream ends exactly after the last one
```
Every integer is little-endian. Each payload carries its own CRC-32 (over the stored bytes) and its stored and
decompressed lengths; both are capped, and decompression never produces more than the declared length, so a
hostile stream cannot make a reader allocate more than MAX_RAW_TOTAL bytes.

`parse()` is the single entry point for reading: it validates everything and raises SchemaError (one line)
on anything malformed; it does not interpret the payloads (codec_assist.semantic does).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import zstandard

from codec_assist.errors import SchemaError

MAGIC = b"CAsm"
MAJOR = 1
MINOR = 0
MAX_LAYERS = 32
MAX_STREAM = 64 << 20  # bytes of a whole stream
MAX_RAW_LAYER = 16 << 20  # decompressed bytes of one layer
MAX_RAW_TOTAL = 32 << 20  # decompressed bytes of all layers together

HEADER = struct.Struct("<4sBBBB")
ENTRY = struct.Struct("<BBBBIII")  # kind, flags, codec, pad, raw length, stored length, CRC-32 of stored bytes
CRC = struct.Struct("<I")

# Layer kinds. Kinds 1-127 are defined by this spec; a reader meeting an unknown kind skips it when the
# SKIPPABLE flag is set and rejects the stream otherwise.
KINDS = {1: "scene", 2: "palette", 3: "thumbnail", 4: "sketch"}
KIND_IDS = {v: k for k, v in KINDS.items()}
REQUIRED = ("scene",)

FLAG_SKIPPABLE = 0x01  # a reader that does not know this kind may ignore the layer
KNOWN_FLAGS = FLAG_SKIPPABLE

# Payload codecs: how the stored bytes turn into the layer's raw bytes.
CODEC_RAW, CODEC_ZSTD = 0, 1
CODECS = {CODEC_RAW: "raw", CODEC_ZSTD: "zstd"}
ZSTD_LEVEL = 19


@dataclass(frozen=True)
class Layer:
    kind: str  # a KINDS name, or "unknown-<id>" for a skipped unknown kind (never returned by parse)
    data: bytes  # raw (decompressed) bytes
    codec: str = "raw"  # how it was stored
    stored_bytes: int = 0  # payload bytes in the stream
    skippable: bool = True


def overhead_bytes(n_layers: int) -> int:
    """Container bytes that belong to no payload: header, table and the table's CRC."""
    return HEADER.size + ENTRY.size * n_layers + CRC.size


def pack(layers: dict[str, bytes], *, compress: bool = True) -> tuple[bytes, dict[str, int]]:
    """Build a stream; each payload is zstd-compressed only where that is smaller.
    Returns the stream and the stored payload bytes per layer."""
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"a stream holds 1..{MAX_LAYERS} layers, not {len(layers)}")
    entries, payloads, stored = [], [], {}
    for name, raw in layers.items():
        kind = KIND_IDS[name]
        codec, body = CODEC_RAW, raw
        if compress:
            z = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False, write_checksum=False).compress(raw)
            if len(z) < len(raw):
                codec, body = CODEC_ZSTD, z
        if len(raw) > MAX_RAW_LAYER:
            raise ValueError(f"layer {name} is {len(raw)} bytes (limit {MAX_RAW_LAYER})")
        flags = 0 if name in REQUIRED else FLAG_SKIPPABLE
        entries.append(ENTRY.pack(kind, flags, codec, 0, len(raw), len(body), zlib.crc32(body)))
        payloads.append(body)
        stored[name] = len(body)
    head = HEADER.pack(MAGIC, MAJOR, MINOR, len(layers), 0) + b"".join(entries)
    return head + CRC.pack(zlib.crc32(head)) + b"".join(payloads), stored


def parse(blob: bytes, where: str = "stream") -> dict[str, Layer]:
    """Validate a whole stream and return its known layers by kind name. SchemaError on anything wrong."""
    def bad(msg: str) -> SchemaError:
        return SchemaError(f"{where}: {msg}")

    n = len(blob)
    if n > MAX_STREAM:
        raise bad(f"stream is {n} bytes, over the {MAX_STREAM >> 20} MiB limit")
    if n < HEADER.size or blob[:4] != MAGIC:
        raise bad("not a codec-assist semantic stream (bad magic)")
    _, major, minor, count, reserved = HEADER.unpack_from(blob)
    if major != MAJOR:
        raise bad(f"stream version {major}.{minor} is not supported (this reader reads {MAJOR}.x)")
    if reserved != 0:
        raise bad("reserved header byte is not 0")
    if not 1 <= count <= MAX_LAYERS:
        raise bad(f"layer count {count} is out of range (1..{MAX_LAYERS})")
    table_end = HEADER.size + ENTRY.size * count
    if n < table_end + CRC.size:
        raise bad(f"truncated layer table ({n} bytes, the table needs {table_end + CRC.size})")
    (crc,) = CRC.unpack_from(blob, table_end)
    if zlib.crc32(blob[:table_end]) != crc:
        raise bad("header checksum mismatch (corrupt stream)")

    offset, raw_total, layers = table_end + CRC.size, 0, {}
    for i in range(count):
        kind_id, flags, codec, pad, raw_len, stored_len, body_crc = ENTRY.unpack_from(blob, HEADER.size + ENTRY.size * i)
        name = KINDS.get(kind_id)
        if pad != 0:
            raise bad(f"layer {i}: reserved table byte is not 0")
        if flags & ~KNOWN_FLAGS and minor <= MINOR:
            raise bad(f"layer {i}: unknown flags 0x{flags:02x}")
        if codec not in CODECS:
            raise bad(f"layer {i} ({name or kind_id}): unknown payload codec {codec}")
        if raw_len > MAX_RAW_LAYER or stored_len > MAX_RAW_LAYER:
            raise bad(f"layer {i} ({name or kind_id}): declared size over the {MAX_RAW_LAYER >> 20} MiB limit")
        if codec == CODEC_RAW and raw_len != stored_len:
            raise bad(f"layer {i} ({name or kind_id}): raw payload length {stored_len} differs from declared {raw_len}")
        end = offset + stored_len
        if end > n:
            raise bad(f"truncated: layer {i} ({name or kind_id}) needs {end} bytes, the stream has {n}")
        body = blob[offset:end]
        offset = end
        if zlib.crc32(body) != body_crc:
            raise bad(f"layer {i} ({name or kind_id}): checksum mismatch (corrupt payload)")
        if name is None:
            if flags & FLAG_SKIPPABLE:
                continue  # a newer writer's optional layer
            raise bad(f"layer {i}: unknown required layer kind {kind_id} (needs a newer reader)")
        if name in layers:
            raise bad(f"layer {i}: duplicate {name} layer")
        raw_total += raw_len
        if raw_total > MAX_RAW_TOTAL:
            raise bad(f"declared layer sizes exceed the {MAX_RAW_TOTAL >> 20} MiB limit")
        data = _decompress(body, codec, raw_len, bad, f"layer {i} ({name})")
        layers[name] = Layer(kind=name, data=data, codec=CODECS[codec], stored_bytes=stored_len,
                             skippable=bool(flags & FLAG_SKIPPABLE))
    if offset != n:
        raise bad(f"{n - offset} trailing bytes after the last layer")
    for req in REQUIRED:
        if req not in layers:
            raise bad(f"missing the required {req} layer")
    return layers


def _decompress(body: bytes, codec: int, raw_len: int, bad, what: str) -> bytes:
    if codec == CODEC_RAW:
        return body
    try:
        # max_output_size bounds the allocation whatever the frame claims (decompression bombs)
        data = zstandard.ZstdDecompressor().decompress(body, max_output_size=raw_len + 1)
    except zstandard.ZstdError as e:
        raise bad(f"{what}: zstd payload does not decompress ({str(e).splitlines()[0][:80]})") from None
    if len(data) != raw_len:
        raise bad(f"{what}: decompressed to {len(data)} bytes, declared {raw_len}")
    return data
