"""The bad-input corpus: hostile, broken and odd inputs, generated here (no third-party media), and the commands
that read them. tests/test_bad_inputs.py runs every case against every command that takes its kind of input;
docs/ROBUSTNESS.md is generated from these tables (`python tests/badinputs.py --markdown`).

Adding a command that reads a file = one COMMANDS entry. Adding a kind of structured input = a `kind`, its cases,
and the commands that read it. Outcomes:
  error - exit 2, one stderr line "codec-assist: error: ..." containing `expect`, no output, input untouched;
  warn  - exit 0, outputs complete, a "codec-assist: warning: ..." line containing `expect` (usable in part);
  ok    - exit 0, outputs complete, no traceback (odd but valid input).
"""
from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------ media makers
def write_video(path: Path, *, width: int = 64, height: int = 48, frames: int = 12, pix_fmt: str = "yuv420p",
                codec: str = "libx264", pts_ms: list[int] | None = None, audio: bool = False, fmt: str = "mp4",
                faststart: bool = False, fps: int = 25) -> Path:
    """A small real clip: a moving gradient with a bright box, encoded by PyAV (1 ms time base)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt, options={"movflags": "faststart"} if faststart else {}) as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"preset": "ultrafast", **({"x265-params": "log-level=error"} if codec == "libx265" else {})}
        a = None
        if audio:
            a = out.add_stream("aac", rate=16000)
            a.layout = "mono"
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(frames):
            rgb = np.stack([(xx * 4 + i * 9) % 256, (yy * 4) % 256, np.full_like(xx, 128)], -1).astype(np.uint8)
            rgb[height // 4: height // 2, (i * 3) % max(1, width // 2):][: , : max(1, width // 4)] = 255
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            f.pts = pts_ms[i] if pts_ms else i * 1000 // fps
            f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
        if a is not None:
            n = int(16000 * frames / fps)
            t = np.arange(n) / 16000
            pcm = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            af = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, 0
            for p in a.encode(af):
                out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    return path


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """Top-level-ish MP4 box walk: yields (type, offset, size)."""
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size == 1:
            size = struct.unpack(">Q", data[i + 8:i + 16])[0]
        if size < 8:
            break
        yield kind.decode("latin-1"), i, size
        i += size


def find_box(data: bytes, path: list[str]) -> tuple[int, int]:
    """Offset and size of a nested box, e.g. ['moov', 'trak', 'tkhd'] (first match at each level)."""
    start, end = 0, len(data)
    off = size = -1
    for name in path:
        for kind, off, size in _boxes(data, start, end):
            if kind == name:
                break
        else:
            raise KeyError(name)
        start, end = off + 8, off + size
    return off, size


def set_rotation(path: Path, degrees: int = 90) -> Path:
    """Write a rotation into the video track's tkhd display matrix (PyAV 18 / FFmpeg 8 cannot write one:
    the old `rotate` stream metadata is ignored by the muxer), the way phones store portrait video."""
    data = bytearray(path.read_bytes())
    off, _ = find_box(bytes(data), ["moov", "trak", "tkhd"])
    version = data[off + 8]
    matrix_at = off + 8 + 4 + (32 if version == 1 else 20) + 8 + 8
    a, b = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    fx = lambda v: v * 0x10000  # noqa: E731 - 16.16 fixed point
    data[matrix_at:matrix_at + 36] = struct.pack(">9i", fx(a), fx(b), 0, fx(-b), fx(a), 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def mdat_range(data: bytes) -> tuple[int, int]:
    off, size = find_box(data, ["mdat"])
    return off + 8, off + size


# ------------------------------------------------------------------------------------------------ cases
@dataclass
class Case:
    name: str
    kind: str  # which input it is: video | analysis | plan | subtitles | semantic | taxonomy
    what: str  # one line for the docs
    make: Callable[[Path, "Fixtures"], Path]  # builds the input in a folder, returns its path
    outcome: str  # error | warn | ok
    expect: str = ""  # a word the error / warning line must contain (case-insensitive)
    args: tuple[str, ...] = ()  # extra CLI options the case needs (e.g. a tight guard)
    only: tuple[str, ...] = ()  # restrict to these commands (empty: every command for the kind)
    # command -> (outcome, expect) where a command reacts differently (e.g. analysis needs no 10-bit warning)
    per_command: dict = field(default_factory=dict)

    def outcome_for(self, command: str) -> tuple[str, str]:
        return self.per_command.get(command, (self.outcome, self.expect))


@dataclass
class Fixtures:
    """Good artifacts the hostile variants are derived from (made once per test session)."""

    clip: Path  # a small valid video
    analysis: Path  # its analysis.json (npz beside)
    plan: Path  # its plan.json (npz beside)
    batch_videos: Path  # a folder holding a copy of the clip
    batch_out: Path  # a finished `batch --command analyze` of it (manifest + outputs)


def _copy_artifact(src: Path, d: Path, name: str, edit_json=None, edit_arrays=None, npz_bytes=None,
                   json_text=None) -> Path:
    """Copy an artifact (JSON + npz) into `d` as `name`, editing the JSON dict and/or the arrays."""
    d.mkdir(parents=True, exist_ok=True)
    dst = d / name
    raw = json.loads(src.read_text())
    if edit_json:
        raw = edit_json(raw) or raw
    dst.write_text(json_text if json_text is not None else json.dumps(raw))
    npz_src = src.with_suffix(".npz")
    if npz_bytes is not None:
        dst.with_suffix(".npz").write_bytes(npz_bytes(npz_src) if callable(npz_bytes) else npz_bytes)
    elif npz_src.exists():
        with np.load(npz_src) as z:
            arrays = {k: z[k] for k in z.files}
        if edit_arrays:
            arrays = edit_arrays(arrays) or arrays
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        dst.with_suffix(".npz").write_bytes(buf.getvalue())
    return dst


def _npz_huge_header(arrays_from: Path, key: str) -> bytes:
    """An npz whose `key` array declares 10^12 float64 elements (8 TB) but holds a few bytes."""
    buf = io.BytesIO()
    with np.load(arrays_from) as z, zipfile.ZipFile(buf, "w") as out:
        for k in z.files:
            if k == key:
                header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
                header = header.ljust(118) + "\n"
                out.writestr(k + ".npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
                             + b"\0" * 64)
            else:
                b = io.BytesIO()
                np.save(b, z[k])
                out.writestr(k + ".npy", b.getvalue())
    return buf.getvalue()


def _npz_pickled(arrays_from: Path, key: str) -> bytes:
    buf = io.BytesIO()
    with np.load(arrays_from) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = np.array([{"__reduce__": "os.system"}], dtype=object)
    np.savez(buf, **arrays)
    return buf.getvalue()


def _write(d: Path, name: str, data: bytes | str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def _take(p: Path) -> bytes:
    data = p.read_bytes()
    p.unlink()
    return data


def _cut(frac: float, faststart: bool):
    def make(d: Path, fx: Fixtures) -> Path:
        src = write_video(d / "whole.mp4", frames=50, faststart=faststart)
        data = src.read_bytes()
        src.unlink()
        if faststart:  # index first: cut the media data partway
            a, b = mdat_range(data)
            data = data[: a + int((b - a) * frac)]
        else:  # index (moov) last: cut before it
            data = data[: mdat_range(data)[1] - 100]
        return _write(d, "truncated.mp4", data)
    return make


def _corrupt_middle(d: Path, fx: Fixtures) -> Path:
    src = write_video(d / "whole.mp4", frames=50, width=160, height=120)
    data = bytearray(src.read_bytes())
    src.unlink()
    a, b = mdat_range(bytes(data))
    mid = (a + b) // 2
    data[mid: mid + 600] = np.random.default_rng(1).integers(0, 256, 600, np.uint8).tobytes()
    return _write(d, "corrupt.mp4", bytes(data))


def _still_png(d: Path, fx: Fixtures) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "photo.png"
    with av.open(str(p), "w", format="image2") as out:
        s = out.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 64, 48, "rgb24"
        f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 200, np.uint8), format="rgb24")
        for pkt in [*s.encode(f), *s.encode()]:
            out.mux(pkt)
    return p


def _audio_only(d: Path, fx: Fixtures) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "voice.mp4"
    with av.open(str(p), "w", format="mp4") as out:
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        pcm = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)[None, :]
        f = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
        f.sample_rate, f.pts = 16000, 0
        for pkt in [*a.encode(f), *a.encode(None)]:
            out.mux(pkt)
    return p


def _no_frames(d: Path, fx: Fixtures) -> Path:
    # PyAV's MP4 muxer drops a track with no samples, so: a real Matroska clip cut just before its first
    # Cluster (EBML ID 1F 43 B6 75). The header declares an H.264 track with codec parameters; no frame follows.
    data = _take(write_video(d / "whole.mkv", fmt="matroska"))
    return _write(d, "empty_track.mkv", data[: data.index(b"\x1f\x43\xb6\x75")])


def _huge_y4m(d: Path, side: int) -> Path:
    # A YUV4MPEG2 header is plain text, so the declared size is exactly what a hostile file would claim.
    return _write(d, "huge.y4m", f"YUV4MPEG2 W{side} H{side} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode()
                  + b"\x80" * 4096)


def _video_case(name, what, make, outcome, expect="", args=(), only=(), per_command=None):
    return Case(name, "video", what, make, outcome, expect, tuple(args), tuple(only), dict(per_command or {}))


OK_ANALYZE = {"analyze": ("ok", "")}  # the analysis proxy is 8-bit RGB anyway: nothing to warn about


def _simple(**kw):
    return lambda d, fx: write_video(d / kw.pop("name", "clip.mp4"), **kw)


VIDEO_CASES = [
    _video_case("missing", "path that does not exist", lambda d, fx: d / "nope.mp4", "error", "no such file"),
    _video_case("directory", "a folder given as the input", lambda d, fx: (d / "dir.mp4").mkdir(parents=True)
                or d / "dir.mp4", "error", "directory"),
    _video_case("zero_bytes", "empty file named .mp4", lambda d, fx: _write(d, "empty.mp4", b""), "error", "empty"),
    _video_case("text_as_mp4", "a text file named .mp4", lambda d, fx: _write(d, "notes.mp4", "hello\n" * 200),
                "error", "not a readable media file"),
    _video_case("random_bytes", "64 KiB of random bytes named .mp4",
                lambda d, fx: _write(d, "noise.mp4", np.random.default_rng(2).bytes(65536)), "error", "not a"),
    _video_case("header_only", "the first 200 bytes of a real MP4",
                lambda d, fx: _write(d, "head.mp4", _take(write_video(d / "w.mp4"))[:200]), "error", ""),
    _video_case("truncated_no_moov", "MP4 with its index (moov) at the end, cut before the index",
                _cut(0, faststart=False), "error", "not a readable media file"),
    _video_case("truncated_mid_mdat", "index-first MP4 cut in the middle of the media data",
                _cut(0.5, faststart=True), "warn", "frames"),
    _video_case("corrupt_middle", "600 random bytes written over the middle of the media data",
                _corrupt_middle, "warn", "corrupt"),
    _video_case("still_image", "a PNG photo", _still_png, "error", "still image"),
    _video_case("audio_only", "AAC audio in an MP4, no video", _audio_only, "error", "no video stream"),
    _video_case("no_frames", "MP4 with a video track that holds no frames", _no_frames, "error", "no frames"),
    _video_case("one_frame", "a one-frame H.264 clip", _simple(frames=1), "ok"),
    _video_case("odd_321x241", "odd frame size 321x241, 4:4:4 (4:2:0 output needs even: last row/column cropped)",
                _simple(width=321, height=241, pix_fmt="yuv444p"), "warn", "cropped", per_command=OK_ANALYZE),
    _video_case("tiny_2x2", "a 2x2-pixel 4:4:4 clip", _simple(width=2, height=2, pix_fmt="yuv444p"), "warn",
                "8-bit 4:2:0", per_command={**OK_ANALYZE, "compare": ("error", "too small to measure")}),
    _video_case("tall_16x720", "a 16x720 sliver", _simple(width=16, height=720, frames=6), "ok",
                per_command={"compare": ("warn", "VMAF skipped")}),
    _video_case("h265_10bit_420", "HEVC Main 10 (yuv420p10le)", _simple(codec="libx265", pix_fmt="yuv420p10le"),
                "warn", "8-bit 4:2:0", per_command={**OK_ANALYZE, "semantic encode": ("ok", ""), "tag": ("ok", "")}),
    _video_case("h264_10bit_422", "H.264 High 4:2:2 10-bit (yuv422p10le)", _simple(pix_fmt="yuv422p10le"),
                "warn", "8-bit 4:2:0", per_command=OK_ANALYZE),
    _video_case("h264_10bit_444", "H.264 High 4:4:4 10-bit (yuv444p10le)", _simple(pix_fmt="yuv444p10le"),
                "warn", "8-bit 4:2:0", per_command=OK_ANALYZE),
    _video_case("vfr", "variable frame rate: irregular timestamps (gaps of 40-420 ms)",
                _simple(pts_ms=[0, 40, 80, 200, 210, 220, 500, 540, 580, 1000, 1040, 1080]), "ok"),
    _video_case("rotated_90", "portrait phone video: 90° display matrix in tkhd",
                lambda d, fx: set_rotation(write_video(d / "portrait.mp4")), "ok"),
    _video_case("with_audio", "video + AAC audio (audio carried over)", _simple(audio=True), "ok"),
    _video_case("mkv_named_mp4", "a Matroska file named .mp4 (mislabelled)", _simple(fmt="matroska"), "ok"),
    _video_case("huge_declared_size", "Y4M header claiming 16000x16000 (256 Mpx) with 4 KB of data: our guard",
                lambda d, fx: _huge_y4m(d, 16000), "error", "too large"),
    _video_case("absurd_declared_size", "Y4M header claiming 60000x60000: FFmpeg's own size check refuses it",
                lambda d, fx: _huge_y4m(d, 60000), "error", "not a readable media file"),
    _video_case("max_pixels_guard", "a normal clip above --max-pixels 1000", _simple(), "error", "max-pixels",
                args=("--max-pixels", "1000")),
    _video_case("max_duration_guard", "a 0.48 s clip above --max-duration 0.2", _simple(), "error",
                "max-duration", args=("--max-duration", "0.2")),
    _video_case("non_utf8_path", "a valid clip whose file name is not UTF-8",
                lambda d, fx: write_video(Path(d.as_posix() + "/" + "caf\udce9.mp4")), "ok"),
    _video_case("long_path", "a valid clip 40 folders deep (path > 1000 characters)",
                lambda d, fx: _deep(d), "ok"),
    _video_case("smaller_than_rung", "a 32x24 clip under a ladder whose top rung is 48p", _simple(width=32, height=24),
                "ok", only=("encode --ladder",), per_command={"encode --ladder": ("warn", "upscaled")}),
]


def _deep(d: Path) -> Path:
    p = d.joinpath(*[f"folder_{i:02d}_" + "x" * 20 for i in range(40)])
    p.mkdir(parents=True)
    return write_video(p / ("clip_" + "y" * 200 + ".mp4"))


def _analysis_case(name, what, outcome, expect, per_command=None, **edit):
    return Case(name, "analysis", what, lambda d, fx: _copy_artifact(fx.analysis, d / name, "analysis.json", **edit),
                outcome, expect, per_command=dict(per_command or {}))


def _plan_case(name, what, outcome, expect, **edit):
    return Case(name, "plan", what, lambda d, fx: _copy_artifact(fx.plan, d / name, "plan.json", **edit),
                outcome, expect)


def _set(path: str, value):
    def edit(raw):
        keys = path.split(".")
        obj = raw
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        obj[keys[-1]] = value
        return raw
    return edit


DEEP_JSON = "[" * 100_000 + "]" * 100_000


def _arrays_set(key, value):
    def edit(arrays):
        arrays[key] = value(arrays[key]) if callable(value) else value
        return arrays
    return edit


def _arrays_drop(key):
    return lambda arrays: {k: v for k, v in arrays.items() if k != key}


STRUCTURED_CASES = [
    # analysis.json + analysis.npz, read by `plan`
    _analysis_case("analysis_not_json", "analysis.json that is not JSON", "error", "not a codec-assist",
                   json_text="{not json"),
    _analysis_case("analysis_binary", "analysis.json holding non-UTF-8 bytes", "error", "not a codec-assist",
                   json_text="\udcff\udcfe".encode("utf-8", "surrogateescape").decode("latin-1")),
    _analysis_case("analysis_list", "a JSON list instead of an object", "error", "not an object", json_text="[1, 2]",
                   per_command={"report": ("error", "not an analysis")}),
    _analysis_case("analysis_deep_nesting", "100 000 nested JSON arrays (stack exhaustion)", "error", "nested",
                   json_text=DEEP_JSON, per_command={"report": ("error", "not a codec-assist")}),
    _analysis_case("analysis_wrong_schema", "a plan file given where an analysis is expected", "error", "expected",
                   edit_json=_set("schema", "codec-assist/plan"),
                   # report reads plans too: it tries one, and a plan of the analysis's version 2 does not exist
                   per_command={"report": ("error", "plan version 2 is not supported")}),
    _analysis_case("analysis_wrong_version", "analysis version 99", "error", "version",
                   edit_json=_set("version", 99)),
    _analysis_case("analysis_bad_field", "negative frame width", "error", "video.width",
                   edit_json=_set("video.width", -5)),
    _analysis_case("analysis_nan", "NaN fps (JSON extension)", "error", "fps",
                   json_text=None, edit_json=_set("video.fps", float("nan"))),
    Case("analysis_npz_missing", "analysis", "analysis.json without its npz",
         lambda d, fx: _without_npz(_copy_artifact(fx.analysis, d / "analysis_npz_missing", "analysis.json")),
         "error", "missing"),
    _analysis_case("analysis_npz_not_zip", "the npz is a text file", "error", "unreadable",
                   npz_bytes=b"not a zip file\n" * 10),
    _analysis_case("analysis_npz_no_grid", "the npz lacks importance/grid", "error", "importance/grid",
                   edit_arrays=_arrays_drop("importance/grid")),
    _analysis_case("analysis_npz_pickle", "the npz holds a pickled object array (code execution vector)",
                   "error", "unreadable", npz_bytes=lambda src: _npz_pickled(src, "importance/grid")),
    _analysis_case("analysis_npz_huge_header", "an npz array header declaring 10^12 elements", "error",
                   "unreadable", npz_bytes=lambda src: _npz_huge_header(src, "importance/grid")),
    _analysis_case("analysis_grid_wrong_shape", "importance/grid with the wrong number of dimensions", "error",
                   "importance", edit_arrays=_arrays_set("importance/grid", lambda g: g.reshape(len(g), -1))),
    _analysis_case("analysis_grid_nan", "importance/grid full of NaN", "error", "finite",
                   edit_arrays=_arrays_set("importance/grid", lambda g: np.full_like(g, np.nan))),
    _analysis_case("analysis_frames_mismatch", "fewer importance/frames than grid rows", "error", "importance",
                   edit_arrays=_arrays_set("importance/frames", lambda f: f[:1])),
    # plan.json + plan.npz, read by `encode --plan`
    _plan_case("plan_not_json", "plan.json that is not JSON", "error", "not a codec-assist", json_text="]"),
    _plan_case("plan_deep_nesting", "100 000 nested JSON arrays", "error", "nested", json_text=DEEP_JSON),
    _plan_case("plan_wrong_version", "plan version 0", "error", "version", edit_json=_set("version", 0)),
    _plan_case("plan_unknown_field", "an unknown field (typo or newer writer)", "error", "extra",
               edit_json=_set("qp_bias", 3)),
    _plan_case("plan_field_newline", "an unknown field whose name holds a newline (found by fuzzing: the error "
               "was two lines)", "error", "extra", edit_json=_set("a\nb", 1)),
    Case("plan_wrong_size", "plan", "a plan for a different frame size (export has no video to compare with)",
         lambda d, fx: _copy_artifact(fx.plan, d / "plan_wrong_size", "plan.json",
                                      edit_json=lambda r: {**r, "width": r["width"] * 2}),
         "error", "plan is for", per_command={"export": ("ok", "")}),
    _plan_case("plan_huge_blocks", "blocks_x = 10^9 (allocation bomb)", "error", "blocks",
               edit_json=_set("blocks_x", 10**9)),
    _plan_case("plan_keyframe_beyond_end", "a keyframe after the last frame", "error", "keyframe",
               edit_json=lambda r: {**r, "keyframes": [*r["keyframes"], 10**6]}),
    _plan_case("plan_offsets_out_of_range", "QP offsets of ±100", "error", "max_dqp",
               edit_arrays=_arrays_set("qp/offsets", lambda o: np.full_like(o, 100.0))),
    _plan_case("plan_offsets_inf", "an infinite QP offset", "error", "finite",
               edit_arrays=_arrays_set("qp/offsets", lambda o: np.where(np.arange(o.size).reshape(o.shape) == 0,
                                                                         np.inf, o).astype(o.dtype))),
    _plan_case("plan_frames_float", "qp/frames stored as floats", "error", "integers",
               edit_arrays=_arrays_set("qp/frames", lambda f: f.astype(np.float64) + 0.5)),
    _plan_case("plan_npz_huge_header", "a qp/offsets header declaring 10^12 elements", "error", "unreadable",
               npz_bytes=lambda src: _npz_huge_header(src, "qp/offsets")),
    _plan_case("plan_path_in_source", "source = '../../etc/passwd' (a name from inside a file is never used as "
               "a path to write)", "ok", "", edit_json=_set("source", "../../../../etc/passwd")),
]


def _without_npz(p: Path) -> Path:
    p.with_suffix(".npz").unlink()
    return p


# ------------------------------------------------------------------------------------ later structured inputs
# Semantic streams (`semantic decode|inspect`): the container is CAsm + a CRC'd layer table + payloads
# (codec_assist/bitstream.py). `_stream` repacks a scene with valid checksums, so hostile *content* reaches the
# parser behind the CRCs; byte edits without repair test the container checks themselves.
def _good_scene() -> dict:
    return {"fps_den": 1, "fps_num": 25, "frames": 12, "height": 48, "width": 64,
            "shots": [{"caption": "A bright box moves.", "end": 12, "start": 0}]}


def _stream(d: Path, name: str, scene: bytes | dict | None = None, edit=None, fix_crc: bool = False) -> Path:
    import codec_assist.semantic.bitstream as bitstream

    raw = scene if isinstance(scene, bytes) else json.dumps(scene or _good_scene()).encode()
    data = bytearray(bitstream.pack({"scene": raw, "palette": bytes([2, 2, 0]) + bytes(range(16))})[0])
    if edit:
        data = bytearray(edit(data) or data)
    if fix_crc:
        from fuzz.bitstream_parser import fix_checksums
        data = bytearray(fix_checksums(bytes(data)))
    return _write(d, name, bytes(data))


def _flip(at: int):
    def edit(b: bytearray):
        b[at if at >= 0 else len(b) + at] ^= 0x10
        return b
    return edit


def _set_u32(at: int, value: int):
    def edit(b: bytearray):
        struct.pack_into("<I", b, at, value)
        return b
    return edit


def _sem_case(name, what, outcome, expect, **kw):
    return Case(name, "semantic", what, lambda d, fx: _stream(d, name + ".cas", **kw), outcome, expect)


def _sem_raw(name, what, data: bytes, expect):
    return Case(name, "semantic", what, lambda d, fx: _write(d, name + ".cas", data), "error", expect)


# Taxonomy and preset-table files (`tag --taxonomy`, `encode --auto-preset --preset-table`): YAML or JSON.
def _shipped(which: str) -> str:
    import codec_assist.tags.tagging as tagging
    return (tagging.DEFAULT_TAXONOMY if which == "taxonomy" else tagging.DEFAULT_PRESETS).read_text()


def _yaml_case(kind, name, what, outcome, expect, text=None, edit=None, suffix=".yaml"):
    """A taxonomy/preset file: `text` as is, or the shipped one parsed, edited and written back."""
    def make(d: Path, fx: Fixtures) -> Path:
        import yaml
        if text is not None:
            data = text() if callable(text) else text
        else:
            raw = yaml.safe_load(_shipped(kind))
            data = json.dumps(edit(raw) or raw) if suffix == ".json" else yaml.safe_dump(edit(raw) or raw)
        return _write(d, name + suffix, data)
    return Case(name, kind, what, make, outcome, expect)


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))
NON_UTF8 = b"schema: codec-assist/taxonomy\nname: caf\xe9\n"
JUNK = np.random.default_rng(3).bytes(4096)


def _tax_topics(n: int):
    return lambda raw: {**raw, "topics": [{"id": f"t{i}", "name": f"topic {i}", "description": "a thing seen"}
                                          for i in range(n)]}


# Subtitle sidecars (`analyze --subtitles`).
GOOD_SRT = "1\n00:00:00,000 --> 00:00:00,300\nHello there.\n\n2\n00:00:00,300 --> 00:00:00,480\nBye.\n"


def _sub_case(name, what, outcome, expect, data, suffix=".srt"):
    return Case(name, "subtitles", what, lambda d, fx: _write(d, name + suffix, data() if callable(data) else data),
                outcome, expect)


# Batch manifests: a hostile OUT_DIR/manifest.json left by someone else. The run must refuse it in one line or
# ignore its claims, and never read-trust, write or delete a path outside OUT_DIR because the manifest names it.
def _manifest(name: str, text=None, edit=None):
    def make(d: Path, fx: Fixtures) -> Path:
        out = d / "victims"
        for v in ("victim.txt", "clip.analysis.json"):  # files a hostile manifest points at
            _write(out, v, "precious\n")
        folder = d / "batch_out"
        folder.mkdir(parents=True)
        if text is not None:
            return _write(folder, "manifest.json", text)
        good = json.loads((fx.batch_out / "manifest.json").read_text())
        for f in fx.batch_out.iterdir():  # the outputs the good run made, so only the manifest's claims differ
            if f.name != "manifest.json":
                (folder / f.name).write_bytes(f.read_bytes())
        return _write(folder, "manifest.json", json.dumps(edit(good, folder) or good))
    return make


def _escape_outputs(paths):
    def edit(raw, folder):
        import hashlib
        victim = (folder.parent / "victims" / "victim.txt").read_bytes()
        for item in raw["items"]:
            item["outputs"] = [{"path": p(folder) if callable(p) else p, "sha256": hashlib.sha256(victim).hexdigest(),
                                "bytes": len(victim)} for p in paths]
        return raw
    return edit


def _man_case(name, what, outcome, expect, **kw):
    return Case(name, "manifest", what, _manifest(name, **kw), outcome, expect)


LATER_CASES = [
    # semantic streams
    _sem_raw("sem_empty", "an empty stream file", b"", "magic"),
    _sem_raw("sem_junk", "4 KiB of random bytes", JUNK, "magic"),
    _sem_raw("sem_text", "a text file given as a stream", b"WEBVTT\n\nnot a stream\n" * 20, "magic"),
    _sem_case("sem_truncated", "a valid stream cut in the middle of its payloads", "error", "truncated",
              edit=lambda b: b[: len(b) // 2]),
    _sem_case("sem_trailing", "a valid stream with 100 bytes appended", "error", "",
              edit=lambda b: b + b"\0" * 100),
    _sem_case("sem_bitflip_payload", "one bit flipped in the last payload (CRC mismatch)", "error", "checksum",
              edit=_flip(-3)),
    _sem_case("sem_bitflip_table", "one bit flipped in the layer table (table CRC mismatch)", "error", "checksum",
              edit=_flip(12)),
    _sem_case("sem_wrong_major", "major version 9", "error", "version", edit=lambda b: b[:4] + b"\x09" + b[5:]),
    _sem_case("sem_zero_layers", "a layer count of 0", "error", "layer", edit=lambda b: b[:6] + b"\0" + b[7:],
              fix_crc=True),
    _sem_case("sem_huge_raw_length", "a layer declaring 4 GiB decompressed (CRCs repaired)", "error", "",
              edit=_set_u32(8 + 4, 0xFFFFFFFF), fix_crc=True),
    _sem_case("sem_huge_stored_length", "a layer declaring 4 GiB stored (past the end; CRCs repaired)", "error", "",
              edit=_set_u32(8 + 8, 0xFFFFFFFF), fix_crc=True),
    _sem_case("sem_scene_not_utf8", "a scene layer of Latin-1 bytes (CRCs valid)", "error", "scene",
              scene=b'{"caption": "caf\xe9"}'),
    _sem_case("sem_scene_deep", "a scene layer of 100 000 nested JSON arrays", "error", "scene",
              scene=DEEP_JSON.encode()),
    _sem_case("sem_scene_wrong_schema", "a scene layer that is a JSON list", "error", "scene", scene=b"[1, 2, 3]"),
    _sem_case("sem_scene_huge_size", "a scene declaring 100000x100000 pixels x 10^9 frames", "error", "",
              scene={**_good_scene(), "width": 100_000, "height": 100_000, "frames": 10**9,
                     "shots": [{"caption": "x", "start": 0, "end": 10**9}]}),
    _sem_case("sem_scene_shots_beyond", "a shot ending after the last frame", "error", "",
              scene={**_good_scene(), "shots": [{"caption": "x", "start": 0, "end": 500}]}),
    # taxonomy files
    _yaml_case("taxonomy", "tax_not_yaml", "YAML syntax error (an unclosed bracket)", "error", "not a valid",
               text="schema: [codec-assist\n"),
    _yaml_case("taxonomy", "tax_non_utf8", "Latin-1 bytes", "error", "UTF-8", text=NON_UTF8),
    _yaml_case("taxonomy", "tax_junk", "4 KiB of random bytes", "error", "", text=JUNK),
    _yaml_case("taxonomy", "tax_list", "a YAML list at the top", "error", "not a taxonomy", text="- a\n- b\n"),
    _yaml_case("taxonomy", "tax_alias_bomb", "a YAML alias bomb (9^10 elements from 1 KB)", "error", "aliases",
               text=ALIAS_BOMB),
    _yaml_case("taxonomy", "tax_deep_json", "100 000 nested JSON arrays", "error", "nested", text=DEEP_JSON,
               suffix=".json"),
    _yaml_case("taxonomy", "tax_deep_yaml", "100 000 nested YAML flow lists (PyYAML took 8 min on it: now refused "
               "before parsing)", "error", "nested", text=DEEP_JSON),
    _yaml_case("taxonomy", "tax_huge_file", "a 2 MiB file (limit 1 MiB)", "error", "refused",
               text=lambda: "# " + "x" * (2 << 20) + "\n"),
    _yaml_case("taxonomy", "tax_wrong_schema", "a preset table given as a taxonomy", "error", "schema",
               text=lambda: _shipped("presets")),
    _yaml_case("taxonomy", "tax_wrong_version", "taxonomy version 99", "error", "version",
               edit=lambda r: {**r, "version": 99}),
    _yaml_case("taxonomy", "tax_no_topics", "an empty topic list", "error", "topics",
               edit=lambda r: {**r, "topics": []}),
    _yaml_case("taxonomy", "tax_huge_topic_list", "5 000 topics (limit 1 000)", "error", "topics",
               edit=_tax_topics(5000), suffix=".json"),
    _yaml_case("taxonomy", "tax_bad_id", "a topic id with a path in it", "error", "id",
               edit=lambda r: {**r, "topics": [{**r["topics"][0], "id": "../../etc"}]}),
    # preset tables
    _yaml_case("presets", "presets_not_yaml", "YAML syntax error", "error", "not a valid", text="presets: {a: [\n"),
    _yaml_case("presets", "presets_non_utf8", "Latin-1 bytes", "error", "UTF-8", text=NON_UTF8),
    _yaml_case("presets", "presets_alias_bomb", "a YAML alias bomb", "error", "aliases", text=ALIAS_BOMB),
    _yaml_case("presets", "presets_wrong_schema", "a taxonomy given as a preset table", "error", "schema",
               text=lambda: _shipped("taxonomy")),
    _yaml_case("presets", "presets_wrong_version", "preset table version 0", "error", "version",
               edit=lambda r: {**r, "version": 0}),
    _yaml_case("presets", "presets_bad_value", "a negative min_gop", "error", "min_gop",
               edit=lambda r: {**r, "presets": {**r["presets"], "action": {"min_gop": -1}}}),
    # subtitle sidecars
    _sub_case("srt_empty", "an empty .srt", "error", "empty", b""),
    _sub_case("srt_junk", "4 KiB of random bytes named .srt", "error", "not", JUNK),
    _sub_case("srt_latin1", "Latin-1 text (not UTF-8)", "error", "UTF-8", GOOD_SRT.replace("Bye", "Adi\xf3s")
              .encode("latin-1")),
    _sub_case("srt_utf16", "UTF-16 with a byte-order mark", "ok", "", GOOD_SRT.encode("utf-16")),
    _sub_case("srt_garbage", "prose, not SRT", "error", "SRT", "Dear diary,\ntoday I encoded a video.\n" * 5),
    _sub_case("srt_bad_time", "a cue time of 99:99:99,999", "error", "",
              GOOD_SRT.replace("00:00:00,000", "99:99:99,999", 1)),
    _sub_case("srt_end_before_start", "a cue that ends before it starts", "error", "ends before",
              "1\n00:00:05,000 --> 00:00:01,000\nBackwards.\n"),
    _sub_case("srt_huge_times", "a cue at 9 999 hours (past the video: dropped, said once)", "warn", "no subtitle cue",
              "1\n9999:00:00,000 --> 9999:00:01,000\nLater.\n"),
    _sub_case("srt_huge_file", "a 25 MiB .srt (limit 20 MiB)", "error", "too large",
              lambda: GOOD_SRT + "x" * (25 << 20)),
    _sub_case("vtt_no_header", "a .vtt whose header line is wrong", "error", "", "WEBVTX\n\n00:00.000 --> "
              "00:01.000\nHi\n", suffix=".vtt"),
    _sub_case("vtt_malformed_cue", "a WebVTT cue with a broken timing line", "error", "no subtitle cues",
              "WEBVTT\n\n00:00.000 -> 00:01.000\nHi\n", suffix=".vtt"),
    _sub_case("vtt_tags", "WebVTT with markup, an arrow and HTML entities in the text", "ok", "",
              "WEBVTT\n\n00:00.000 --> 00:00.400\n<v Bob><b>Hi</b> --&gt; {\\i1}there &amp; back\n", suffix=".vtt"),
    # command-line misuse (issue 17): each a one-line error or warning
    Case("analysis_is_a_video", "analysis", "a video given where an analysis is expected (analyze not run yet)",
         lambda d, fx: _write(d, "clip.mp4", fx.clip.read_bytes()), "error", "run `codec-assist analyze`",
         only=("plan", "explain")),
    Case("explain_time_past_end", "analysis", "`explain --time` past the end of the video", lambda d, fx:
         _copy_artifact(fx.analysis, d / "late", "analysis.json"), "error", "s is outside the video",
         args=("--time", "99"), only=("explain",)),
    # batch manifests in OUT_DIR
    _man_case("manifest_other_options", "outputs of an earlier batch run with other options (fingerprints differ)",
              "error", "--overwrite", edit=lambda r, f: {**r, "items": [{**i, "fingerprint": "0" * 64}
                                                                       for i in r["items"]]}),
    _man_case("manifest_not_json", "manifest.json that is not JSON", "error", "not a codec-assist", text="{"),
    _man_case("manifest_deep", "100 000 nested JSON arrays", "error", "nested", text=DEEP_JSON),
    _man_case("manifest_wrong_schema", "a plan where the manifest should be", "error", "expected",
              text=json.dumps({"schema": "codec-assist/plan", "version": 1})),
    _man_case("manifest_wrong_version", "manifest version 99", "error", "version",
              edit=lambda r, f: {**r, "version": 99}),
    _man_case("manifest_outputs_parent", "a done item whose outputs are '../victims/…' with the victims' sha256",
              "ok", "", edit=_escape_outputs(["../victims/victim.txt", "../victims/clip.analysis.json"])),
    _man_case("manifest_outputs_absolute", "a done item whose outputs are absolute paths outside OUT_DIR", "ok", "",
              edit=_escape_outputs([lambda f: str(f.parent / "victims" / "victim.txt"),
                                    lambda f: str(f.parent / "victims" / "clip.analysis.json")])),
    _man_case("manifest_input_escape", "an item whose input is '../../etc/passwd'", "ok", "",
              edit=lambda r, f: {**r, "items": [*r["items"], {**r["items"][0], "input": "../../etc/passwd"}]}),
]

CASES: list[Case] = VIDEO_CASES + STRUCTURED_CASES + LATER_CASES


# ------------------------------------------------------------------------------------------------ commands
@dataclass
class Command:
    """How one CLI command reads an input of `kind`: argv built from the input path and an output folder."""

    name: str
    kind: str
    argv: Callable[[Path, Path, Fixtures], list[str]]
    outputs: Callable[[Path], list[Path]]  # what a successful run must have written (given `written_to`)
    # heavy commands run only these cases (the kind's representative subset; empty: every case of the kind)
    cases: tuple[str, ...] = ()
    # the folder the command writes into, from (input, out): normally `out`; a batch re-run writes where its
    # manifest (the input) lies
    written_to: Callable[[Path, Path], Path] = lambda inp, out: out  # noqa: E731
    failed_outputs: Callable[[Path], list[Path]] = lambda out: []  # noqa: E731 - what a failed run keeps (a log)
    failed_says: str | None = None  # the error line's word when the command words failures its own way


FAST = ("--analyzers", "shots")
# The video cases the heavy commands (a whole analysis + model, or several encodes, per run) are held to: one
# of each failure family (empty, not media, unindexed, no video, huge claim) and the odd-but-valid ones.
HEAVY = ("zero_bytes", "random_bytes", "truncated_no_moov", "audio_only", "huge_declared_size", "one_frame",
         "h265_10bit_420")
BATCH_DIR = lambda inp, out: inp.parent  # noqa: E731


def _batch_outputs(d: Path) -> list[Path]:
    return [d / "clip.analysis.json", d / "clip.analysis.npz", d / "manifest.json"]


COMMANDS = [
    Command("analyze", "video", lambda inp, out, fx: ["analyze", inp, "-o", out / "an",
                                                      "--analyzers", "shots,saliency"],
            lambda out: [out / "an" / "analysis.json", out / "an" / "analysis.npz"]),
    Command("encode", "video", lambda inp, out, fx: ["encode", inp, "-o", out / "o.mp4", "--preset", "ultrafast",
                                                     "--analyzers", "shots,saliency"],
            lambda out: [out / "o.mp4"]),
    Command("encode-plain", "video", lambda inp, out, fx: ["encode", inp, "-o", out / "o.mkv", "--no-assist",
                                                           "--preset", "ultrafast"],
            lambda out: [out / "o.mkv"]),
    Command("compare", "video", lambda inp, out, fx: ["compare", inp, "--bitrate", "100k", "-o", out / "r.json",
                                                      "--preset", "ultrafast", "--analyzers", "shots,saliency"],
            lambda out: [out / "r.json"]),
    Command("semantic encode", "video", lambda inp, out, fx: ["semantic", "encode", inp, "-o", out / "s.cas"],
            lambda out: [out / "s.cas"], cases=HEAVY),
    Command("tag", "video", lambda inp, out, fx: ["tag", inp, "-o", out / "t.json", *FAST],
            lambda out: [out / "t.json"], cases=tuple(c for c in HEAVY if c != "one_frame")),  # ok path: 25 s of MiniLM
    Command("encode --chunked", "video", lambda inp, out, fx: ["encode", inp, "-o", out / "o.mp4", "--chunked",
                                                               "--workers", "1", "--preset", "ultrafast", *FAST],
            lambda out: [out / "o.mp4"], cases=HEAVY),
    Command("encode --allocate", "video", lambda inp, out, fx: ["encode", inp, "-o", out / "o.mp4", "--allocate",
                                                                "--bitrate", "100k", "--preset", "ultrafast", *FAST],
            lambda out: [out / "o.mp4"], cases=HEAVY),
    Command("encode --ladder", "video", lambda inp, out, fx: ["encode", inp, "-o", out / "lad", "--ladder",
                                                              "48p:100k,24p:50k", "--no-plain", "--preset",
                                                              "ultrafast", *FAST],
            lambda out: [out / "lad" / "clip.48p.mp4", out / "lad" / "clip.24p.mp4"],
            cases=(*HEAVY, "smaller_than_rung")),
    Command("batch", "video", lambda inp, out, fx: ["batch", inp.parent, "-o", out / "b", "--command", "analyze",
                                                    "--workers", "1", *FAST],
            lambda out: [out / "b" / n for n in ("manifest.json", "clip.analysis.json", "clip.analysis.npz")],
            cases=("random_bytes", "audio_only", "one_frame"),  # a bad video fails alone: its error is in the manifest
            failed_outputs=lambda out: [out / "b" / "manifest.json"], failed_says="1 of 1 items failed"),
    Command("plan", "analysis", lambda inp, out, fx: ["plan", inp, "-o", out / "p.json"],
            lambda out: [out / "p.json", out / "p.npz"]),
    Command("explain", "analysis", lambda inp, out, fx: ["explain", inp, "--json"], lambda out: []),
    Command("report", "analysis", lambda inp, out, fx: ["report", inp, "-o", out / "r.html"],
            lambda out: [out / "r.html"]),
    Command("encode --plan", "plan", lambda inp, out, fx: ["encode", fx.clip, "--plan", inp, "-o", out / "o.mp4",
                                                           "--preset", "ultrafast"],
            lambda out: [out / "o.mp4"]),
    Command("export", "plan", lambda inp, out, fx: ["export", inp, "-f", "qp-csv", "-o", out / "q.csv"],
            lambda out: [out / "q.csv"]),
    Command("semantic decode", "semantic", lambda inp, out, fx: ["semantic", "decode", inp, "-o", out / "d.mp4"],
            lambda out: [out / "d.mp4", out / "d.vtt"]),
    Command("semantic inspect", "semantic", lambda inp, out, fx: ["semantic", "inspect", inp], lambda out: []),
    Command("tag --taxonomy", "taxonomy", lambda inp, out, fx: ["tag", fx.clip, "--taxonomy", inp,
                                                                "-o", out / "t.json", *FAST],
            lambda out: [out / "t.json"]),
    Command("encode --preset-table", "presets",
            lambda inp, out, fx: ["encode", fx.clip, "-o", out / "o.mp4", "--auto-preset", "--preset-table", inp,
                                  "--preset", "ultrafast", *FAST],
            lambda out: [out / "o.mp4"]),
    Command("analyze --subtitles", "subtitles", lambda inp, out, fx: ["analyze", fx.clip, "--subtitles", inp,
                                                                      "-o", out / "an", *FAST],
            lambda out: [out / "an" / "analysis.json", out / "an" / "analysis.npz", out / "an" / "transcript.vtt"]),
    Command("batch (manifest)", "manifest",
            lambda inp, out, fx: ["batch", fx.batch_videos, "-o", inp.parent, "--command", "analyze",
                                  "--workers", "1", *FAST],
            _batch_outputs, written_to=BATCH_DIR),
]


def pairs() -> list[tuple[Case, Command]]:
    return [(c, cmd) for c in CASES for cmd in COMMANDS if cmd.kind == c.kind and (not c.only or cmd.name in c.only)
            and (not cmd.cases or c.name in cmd.cases)]


def markdown() -> str:
    lines = ["| # | case | input | commands | expected outcome |", "|---|---|---|---|---|"]
    for i, c in enumerate(CASES, 1):
        cmds = ", ".join(f"`{cmd.name}`" for c2, cmd in pairs() if c2 is c)
        extra = f" (with `{' '.join(c.args)}`)" if c.args else ""
        words = {"error": "exit 2, one-line error", "warn": "exit 0 + warning", "ok": "exit 0"}
        say = lambda o, e: words[o] + (f" mentioning “{e}”" if e else "")  # noqa: E731
        out = say(c.outcome, c.expect)
        for name, (o, e) in c.per_command.items():
            out += f"; `{name}`: {say(o, e)}"
        lines.append(f"| {i} | `{c.name}` | {c.what}{extra} | {cmds} | {out} |")
    return "\n".join(lines)


def make_fixtures(d: Path) -> Fixtures:
    """The good clip, its analysis and plan, made with the real pipeline."""
    from codec_assist import schemas
    from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
    from codec_assist.planning.plan import make_plan

    clip = write_video(d / "clip.mp4", frames=12)
    analysis, arrays = analyze(clip, AnalyzeOptions(analyzers=["shots", "saliency"]))
    (d / "an").mkdir()
    schemas.save(analysis, d / "an" / "analysis.json", arrays)
    plan, plan_arrays = make_plan(analysis, arrays)
    schemas.save(plan, d / "plan.json", plan_arrays)
    videos = d / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(clip.read_bytes())
    import contextlib

    from codec_assist import cli
    with contextlib.redirect_stdout(io.StringIO()):  # the same options as the "batch (manifest)" command
        code = cli.main(["batch", str(videos), "-o", str(d / "batch_out"), "--command", "analyze", "--workers", "1",
                         *FAST])
    assert code == 0, "the good batch run failed"
    return Fixtures(clip=clip, analysis=d / "an" / "analysis.json", plan=d / "plan.json", batch_videos=videos,
                    batch_out=d / "batch_out")


def observe(only: list[str] | None = None) -> str:
    """Run every pair in-process and tabulate what happened (exit code, the stderr lines, temp paths cut)."""
    import contextlib
    import tempfile

    from codec_assist import cli

    rows = ["| case | command | exit | stderr (paths shortened) |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fx = make_fixtures(root / "good")
        for i, (case, cmd) in enumerate(pairs()):
            if only and cmd.name not in only and case.kind not in only:
                continue
            d = root / f"p{i}"
            inp = case.make(d / "in", fx)
            (d / "out").mkdir(parents=True)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main([str(a) for a in [*cmd.argv(inp, d / "out", fx), *case.args]])
            text = " / ".join(ln for ln in err.getvalue().splitlines() if ln.strip())
            text = text.replace(str(d / "in") + "/", "…/").replace(str(root) + "/", "…/").replace("|", "\\|")
            rows.append(f"| `{case.name}` | `{cmd.name}` | {code} | {text[:220]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if "--markdown" in sys.argv:
        print(markdown())
    if "--observe" in sys.argv:
        print(observe(sys.argv[sys.argv.index("--observe") + 1:]))


def foreground_signals() -> None:
    """preexec_fn for a CLI child that a test interrupts: SIGINT as in a terminal's foreground job. A background
    job of a shell without job control (a CI runner, `nohup ... &`) starts with SIGINT ignored, the child would
    inherit that, and Python (rightly) keeps ignoring it then, so Ctrl-C tests would see the run finish."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
