"""Atheris fuzz harness for the semantic stream parser (codec_assist.semantic.read_stream).

    python fuzz/bitstream_parser.py -atheris_runs=10000

Any exception other than SchemaError (the parser's one-line refusal) is a finding. The corpus is seeded with
a real stream (tests build more); coverage-guided mutation starts from it, so it reaches past the checksums.
"""
import sys
import zlib
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    import codec_assist.semantic.bitstream as bitstream
    from codec_assist.errors import SchemaError
    from codec_assist.semantic.stream import read_stream


def fix_checksums(data: bytes) -> bytes:
    """Recompute every CRC the stream declares, so mutations reach the layer parsers behind the checksums."""
    b = bytearray(data)
    if len(b) < bitstream.HEADER.size or b[:4] != bitstream.MAGIC:
        return data
    count = b[6]
    table_end = bitstream.HEADER.size + bitstream.ENTRY.size * count
    if len(b) < table_end + 4:
        return data
    offset = table_end + 4
    for i in range(count):
        at = bitstream.HEADER.size + bitstream.ENTRY.size * i
        kind, flags, codec, pad, raw, stored, _ = bitstream.ENTRY.unpack_from(b, at)
        body = bytes(b[offset:offset + stored])
        bitstream.ENTRY.pack_into(b, at, kind, flags, codec, pad, raw, stored, zlib.crc32(body))
        offset += stored
    b[table_end:table_end + 4] = zlib.crc32(bytes(b[:table_end])).to_bytes(4, "little")
    return bytes(b)


def test_one_input(data: bytes) -> None:
    if data[:1] == b"\xff":  # mode byte: checksums repaired, the layer parsers get fuzzed too
        data = fix_checksums(data[1:])
    try:
        read_stream(data)
    except SchemaError as e:
        if "\n" in str(e):
            raise AssertionError(f"multi-line error: {e!r}") from None


def seed_stream() -> bytes:
    """A small valid stream: the parser's happy path, for the fuzzer to mutate."""
    scene = (b'{"fps_den":1,"fps_num":25,"frames":50,"height":18,"shots":[{"caption":"A scene.","end":30,'
             b'"start":0},{"caption":"A dark scene.","end":50,"light":"dark","start":30}],"width":32}')
    palette = bytes([2, 2, 0]) + bytes(range(16))
    return bitstream.pack({"scene": scene, "palette": palette})[0]


if __name__ == "__main__":
    corpus = Path(__file__).resolve().parent / "corpus" / "bitstream"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "seed.cas").write_bytes(seed_stream())
    (corpus / "seed-fixed.cas").write_bytes(b"\xff" + seed_stream())
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], test_one_input)
    atheris.Fuzz()
