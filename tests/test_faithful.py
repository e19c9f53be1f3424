"""Faithful outputs: every encode path keeps how the picture is meant to look and what else is in the file.

A corpus of tiny sources (128x96, 15 frames) is made by the ffmpeg CLI, one per property; each path's output is
checked with ffprobe (an independent reader) against its source: colour range / matrix / primaries / transfer
(container and bitstream VUI), HDR10 mastering display and light level, pixel format (or its announced
change), rotation, display aspect, frame timestamps (VFR, start offset), audio tracks and languages, subtitle
tracks (timing, language), chapters, title. Plus a player-level check (RGB as ffmpeg shows it) and the files'
permissions under umask 022 and 077.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from codec_assist import cli

FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
SRC = "testsrc2=s=128x96:r=25:d=0.6"
X265 = "log-level=error"
MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
HDR10 = f"colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:range=limited:master-display={MASTER}:max-cll=1000,400"
HLG = "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:range=limited"
X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
GRADIENT = ("color=black:s=128x96:r=25:d=0.6,format=gbrp,geq=r='clip(X*2\\,0\\,255)':g='clip(Y*2.68\\,0\\,255)':"
            "b='clip(128+100*sin((X+N*4)/20)\\,0\\,255)'")


def _ff(*args):
    r = subprocess.run([*FF, *map(str, args)], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"ffmpeg {' '.join(map(str, args))}: {r.stderr}"


def _make(d: Path) -> dict[str, Path]:
    """The corpus: name -> source file."""
    d.mkdir(parents=True, exist_ok=True)
    tone = ["-f", "lavfi", "-i", "sine=f=440:d=0.6"]
    out = {
        # gradients over the whole level range, so reading full range as limited shows (testsrc2 is mostly
        # saturated colours, clipped either way; ffmpeg 5.1's `gradients` source is random even with a seed)
        "full601": (["-f", "lavfi", "-i", GRADIENT, "-vf",
                     "scale=out_range=full:out_color_matrix=bt601,format=yuv420p",
                     "-color_range", "pc", "-colorspace", "smpte170m", "-color_primaries", "smpte170m",
                     "-color_trc", "smpte170m", *X264], "mp4"),
        "bt709": (["-f", "lavfi", "-i", SRC, "-vf", "scale=out_color_matrix=bt709,format=yuv420p", "-color_range",
                   "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", *X264], "mp4"),
        "pq": (["-f", "lavfi", "-i", SRC, "-vf", "scale=out_color_matrix=bt2020,format=yuv420p10le", "-c:v",
                "libx265", "-preset", "ultrafast", "-x265-params", f"{X265}:{HDR10}"], "mkv"),
        "hlg": (["-f", "lavfi", "-i", SRC, "-vf", "scale=out_color_matrix=bt2020,format=yuv420p10le", "-c:v",
                 "libx265", "-preset", "ultrafast", "-x265-params", f"{X265}:{HLG}"], "mp4"),
        "p420": (["-f", "lavfi", "-i", SRC, "-vf", "format=yuv420p10le", "-c:v", "libx265", "-preset",
                  "ultrafast", "-x265-params", X265], "mkv"),
        "p422": (["-f", "lavfi", "-i", SRC, "-vf", "format=yuv422p10le", "-c:v", "libx265", "-preset",
                  "ultrafast", "-x265-params", X265], "mkv"),
        "sar": (["-f", "lavfi", "-i", SRC, "-vf", "setsar=64/45", "-pix_fmt", "yuv420p", *X264], "mp4"),
        "vfr": (["-f", "lavfi", "-i", "testsrc2=s=128x96:r=25:d=0.8", "-vf",
                 "setpts='if(lt(N\\,8)\\,N*2\\,8+N)/25/TB'", "-fps_mode", "vfr", "-pix_fmt", "yuv420p", *X264],
                "mp4"),
        "offset": (["-f", "lavfi", "-i", SRC, *tone, "-pix_fmt", "yuv420p", *X264, "-c:a", "aac",
                    "-output_ts_offset", "1.5"], "mp4"),
    }
    files = {}
    for name, (args, ext) in out.items():
        files[name] = d / f"{name}.{ext}"
        _ff(*args, files[name])
    # rotated 90 degrees, with an audio track (the ffmpeg 5.1 CLI sets the display matrix on a stream copy)
    _ff("-f", "lavfi", "-i", SRC, *tone, "-pix_fmt", "yuv420p", *X264, "-c:a", "aac", d / "rot0.mp4")
    files["rotated"] = d / "rotated.mp4"
    _ff("-i", d / "rot0.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=90", files["rotated"])
    (d / "rot0.mp4").unlink()
    # two audio tracks with languages, a subtitle track, chapters and a title
    (d / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:00,400\nHello there\n\n"
                                "2\n00:00:00,400 --> 00:00:00,600\nSecond line\n")
    (d / "meta.txt").write_text(";FFMETADATA1\ntitle=Faithful test\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=300\n"
                                "title=Opening\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=300\nEND=600\ntitle=Ending\n")
    files["tracks"] = d / "tracks.mkv"
    _ff("-f", "lavfi", "-i", SRC, *tone, "-f", "lavfi", "-i", "sine=f=660:d=0.6", "-i", d / "subs.srt",
        "-i", d / "meta.txt", "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s", "-map_metadata", "4",
        "-map_chapters", "4", "-pix_fmt", "yuv420p", *X264, "-c:a:0", "libopus", "-c:a:1", "aac", "-c:s",
        "subrip", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", "-metadata:s:s:0",
        "language=eng", files["tracks"])
    for f in ("subs.srt", "meta.txt"):
        (d / f).unlink()
    return files


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "the ffmpeg CLI is needed (make setup installs it)"
    return _make(tmp_path_factory.mktemp("faithful") / "src")


# ------------------------------------------------------------------------------------------- ffprobe side
def _probe_json(path, *args) -> dict:
    r = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)], capture_output=True,
                       text=True, check=True, timeout=60)
    return json.loads(r.stdout)


def _ratio(text: str | None) -> Fraction:
    if not text or text in ("N/A", "0:1"):
        return Fraction(1)
    a, b = text.split(":")
    return Fraction(int(a), int(b))


def props(path: Path) -> dict:
    """What a player reads from the file (ffprobe 5.1, Debian's; not the PyAV that wrote it)."""
    info = _probe_json(path, "-show_streams", "-show_format", "-show_chapters")
    streams = info["streams"]
    v = next(s for s in streams if s["codec_type"] == "video" and not s.get("disposition", {}).get("attached_pic"))
    rotation = 0
    for sd in v.get("side_data_list", []):
        if "rotation" in sd:
            rotation = int(sd["rotation"]) % 360
    frame = _probe_json(path, "-select_streams", "v:0", "-show_frames", "-read_intervals", "%+#1",
                        "-show_entries", "frame=color_range,color_space,color_primaries,color_transfer:frame_side_data")
    side = {}
    for sd in frame["frames"][0].get("side_data_list", []):
        if sd["side_data_type"] == "Mastering display metadata":
            side["mastering"] = tuple(sd[k] for k in ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y",
                                                      "white_point_x", "white_point_y", "min_luminance",
                                                      "max_luminance"))
        elif sd["side_data_type"] == "Content light level metadata":
            side["cll"] = (sd["max_content"], sd["max_average"])
    pts = _probe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time")["packets"]
    w, h = int(v["width"]), int(v["height"])
    sar = _ratio(v.get("sample_aspect_ratio"))

    def lang(s):  # Matroska does not store "und" (undetermined), its default
        return s.get("tags", {}).get("language") or "und"

    def track(s):
        return {"codec": s["codec_name"], "language": lang(s),
                "channels": s.get("channels"), "sample_rate": s.get("sample_rate")}

    subs = []
    for s in streams:
        if s["codec_type"] == "subtitle":
            cues = _probe_json(path, "-select_streams", str(s["index"]), "-show_entries",
                               "packet=pts_time,duration_time,size")["packets"]
            subs.append({"codec": s["codec_name"], "language": lang(s),
                         "cues": [(round(float(c["pts_time"]), 3), round(float(c["duration_time"]), 3))
                                  for c in cues if c.get("duration_time") not in (None, "N/A")
                                  and float(c["duration_time"]) > 0
                                  and int(c["size"]) > 2]})  # mov_text fills gaps with empty (2-byte) samples
    return {
        "codec": v["codec_name"],
        "pix_fmt": v["pix_fmt"].replace("yuvj", "yuv"),
        "color_range": v.get("color_range", "unknown"), "color_space": v.get("color_space", "unknown"),
        "color_primaries": v.get("color_primaries", "unknown"),
        "color_transfer": v.get("color_transfer", "unknown"),
        "frame_colour": tuple(frame["frames"][0].get(k, "unknown") for k in
                              ("color_range", "color_space", "color_primaries", "color_transfer")),
        "mastering": side.get("mastering"), "cll": side.get("cll"),
        "rotation": rotation,
        "dar": Fraction(w) * sar / h,
        "size": (w, h),
        "start": round(float(v.get("start_time", 0)), 3),
        "times": sorted(round(float(p["pts_time"]), 3) for p in pts if p.get("pts_time") not in (None, "N/A")),
        "audio": [track(s) for s in streams if s["codec_type"] == "audio"],
        "subtitles": subs,
        "chapters": [(round(float(c["start_time"]), 3), round(float(c["end_time"]), 3), c.get("tags", {}).get("title"))
                     for c in info.get("chapters", [])],
        "title": info["format"].get("tags", {}).get("title"),
    }


def bitstream_colour(path: Path) -> tuple:
    """The colour the elementary stream's VUI says, with the container out of the way."""
    codec = _probe_json(path, "-select_streams", "v:0", "-show_entries", "stream=codec_name")["streams"][0]["codec_name"]
    raw = path.with_suffix(f".{codec}")
    _ff("-i", path, "-map", "0:v:0", "-c", "copy", "-f", codec, raw)
    s = _probe_json(raw, "-show_entries", "stream=color_range,color_space,color_primaries,color_transfer")["streams"][0]
    raw.unlink()
    return tuple(s.get(k, "unknown") for k in ("color_range", "color_space", "color_primaries", "color_transfer"))


HEVC_DEFAULT_RANGE = {"unknown", "tv"}  # ffprobe 5.1's HEVC decoder reports "tv" for a stream that does not say


def expected(src: dict, codec: str, container: str, size_changed: bool = False) -> dict:
    """The source's properties as the output must show them: the same, or the documented, announced change."""
    exp = dict(src)
    bits10 = "10" in src["pix_fmt"]
    if codec == "x264":
        exp["pix_fmt"] = "yuv420p"  # H.264 output stays 8-bit: announced ("10-bit reduced to 8-bit")
        # x264 writes the HDR10 SEIs, but ffprobe 5.1 does not parse them in H.264: checked with PyAV's
        # FFmpeg 8 in test_x264_keeps_hdr10_metadata_at_8_bit
        exp["mastering"] = exp["cll"] = None
    else:
        exp["pix_fmt"] = "yuv420p10le" if bits10 else "yuv420p"  # 4:2:2 -> 4:2:0 announced
    if container == "mp4":
        exp["subtitles"] = [{**s, "codec": "mov_text"} for s in src["subtitles"]]  # converted, announced
        exp["audio"] = src["audio"]  # opus and aac both go into mp4
    return exp


SHIFT = 0.05  # mp4 <-> mkv: Matroska cannot store the negative start of AAC's priming, so both the ffmpeg CLI
# and codec-assist shift the whole file by it (23 ms at 44.1 kHz); the frame intervals stay the same.


def check_same(src: dict, out: dict, codec: str, container: str, *, ladder: bool = False, what: str = "",
               cross: bool = False) -> None:
    """`cross`: the output's container differs from the source's (mp4 <-> mkv): times may shift by SHIFT."""
    exp = expected(src, codec, container)
    bad = []
    for key in ("pix_fmt", "color_space", "color_primaries", "color_transfer", "mastering", "cll", "rotation",
                "audio", "chapters", "title"):
        if key == "pix_fmt" and ladder:
            continue
        if out[key] != exp[key]:
            bad.append(f"{key}: source {exp[key]!r}, output {out[key]!r}")
    if exp["color_range"] in HEVC_DEFAULT_RANGE and "hevc" in (src["codec"], out["codec"]):
        if out["color_range"] not in HEVC_DEFAULT_RANGE:
            bad.append(f"color_range: source {exp['color_range']}, output {out['color_range']}")
    elif out["color_range"] != exp["color_range"]:
        bad.append(f"color_range: source {exp['color_range']}, output {out['color_range']}")
    if abs(out["dar"] - exp["dar"]) > 0.02 * exp["dar"]:
        bad.append(f"display aspect: source {float(exp['dar']):.4f}, output {float(out['dar']):.4f}")
    times_out, times_src = out["times"], exp["times"]
    if cross and times_out and times_src and abs(times_out[0] - times_src[0]) <= SHIFT:
        times_out = [round(t - out["times"][0] + exp["times"][0], 3) for t in times_out]
    if times_out != times_src:
        bad.append(f"frame times: source {exp['times']}, output {out['times']}")
    if len(out["subtitles"]) != len(exp["subtitles"]):
        bad.append(f"subtitle tracks: source {exp['subtitles']}, output {out['subtitles']}")
    for a, b in zip(exp["subtitles"], out["subtitles"]):
        cues = b["cues"]
        if cross and cues and a["cues"]:
            cues = [(round(t - cues[0][0] + a["cues"][0][0], 3), d) for t, d in cues]
        if (a["codec"], a["language"], a["cues"]) != (b["codec"], b["language"], cues):
            bad.append(f"subtitles: source {a}, output {b}")
    assert not bad, f"{what}: " + "; ".join(bad)


CODEC_FOR = {"pq": "x265", "hlg": "x265", "p420": "x265", "p422": "x265"}  # HDR / 10-bit: the encoder that keeps it
ALL = ["full601", "bt709", "pq", "hlg", "p420", "p422", "rotated", "sar", "vfr", "offset", "tracks"]


@pytest.fixture(scope="session")
def source_props(corpus):
    return {name: props(path) for name, path in corpus.items()}


def test_corpus_has_the_properties(source_props):
    """The sources really say what they are meant to test (else every comparison below is empty)."""
    p = source_props
    assert (p["full601"]["color_range"], p["full601"]["color_space"]) == ("pc", "smpte170m")
    assert (p["bt709"]["color_space"], p["bt709"]["color_transfer"]) == ("bt709", "bt709")
    assert p["pq"]["color_transfer"] == "smpte2084" and p["pq"]["mastering"] and p["pq"]["cll"] == (1000, 400)
    assert p["hlg"]["color_transfer"] == "arib-std-b67"
    assert p["p420"]["pix_fmt"] == "yuv420p10le" and p["p422"]["pix_fmt"] == "yuv422p10le"
    assert p["rotated"]["rotation"] in (90, 270) and p["rotated"]["audio"]
    assert p["sar"]["dar"] == Fraction(128 * 64, 96 * 45)
    steps = np.diff(p["vfr"]["times"])
    assert steps.max() > 1.5 * steps.min()
    assert p["offset"]["start"] == 1.5
    assert [a["language"] for a in p["tracks"]["audio"]] == ["eng", "fra"]
    assert p["tracks"]["subtitles"][0]["cues"] and len(p["tracks"]["chapters"]) == 2
    assert p["tracks"]["title"] == "Faithful test"


# ------------------------------------------------------------------------------------------------ the paths
def run_cli(*args, capsys=None) -> str:
    """The command line in-process (no interpreter start per call); returns its stderr (warnings)."""
    code = cli.main(["-q", *map(str, args)])
    err = capsys.readouterr().err if capsys is not None else ""
    assert code == 0, err
    return err


ENC = ["--preset", "ultrafast"]
FAST_ANALYSIS = ["--analyzers", "shots,saliency", "--analysis-fps", "5"]


def _out(tmp_path, name, src: Path, ext=None) -> Path:
    return tmp_path / f"{name}.out{ext or src.suffix}"


@pytest.mark.parametrize("codec", ["x264", "x265"])
@pytest.mark.parametrize("name", ALL)
def test_plain_encode_keeps_everything(corpus, source_props, tmp_path, capsys, name, codec):
    src = corpus[name]
    out = _out(tmp_path, name, src)
    err = run_cli("encode", src, "-o", out, "--no-assist", "--codec", codec, "--crf", "30", *ENC, capsys=capsys)
    check_same(source_props[name], props(out), codec, out.suffix[1:], what=f"plain {codec} {name}")
    src_bits = source_props[name]["pix_fmt"]
    if codec == "x264" and "10" in src_bits:
        assert "10-bit reduced to 8-bit" in err, err
    if codec == "x265" and "422" in src_bits:
        assert "chroma subsampled to 4:2:0" in err, err


@pytest.mark.parametrize("name,ext", [("tracks", ".mp4"), ("offset", ".mkv"), ("rotated", ".mkv"), ("pq", ".mp4")])
def test_other_container_keeps_everything_or_says_so(corpus, source_props, tmp_path, capsys, name, ext):
    """mkv -> mp4: the subrip track becomes mov_text, with a warning; chapters, languages, title stay."""
    src = corpus[name]
    out = _out(tmp_path, name, src, ext)
    codec = CODEC_FOR.get(name, "x264")
    err = run_cli("encode", src, "-o", out, "--no-assist", "--codec", codec, "--crf", "30", *ENC, capsys=capsys)
    check_same(source_props[name], props(out), codec, ext[1:], what=f"{name} -> {ext}", cross=True)
    if name == "tracks":
        assert "converted to mov_text" in err, err


@pytest.mark.parametrize("name", ALL)
def test_bitstream_vui_says_the_colour(corpus, source_props, tmp_path, capsys, name):
    """The elementary stream itself (not only the container) says range, matrix, primaries, transfer."""
    src = corpus[name]
    codec = CODEC_FOR.get(name, "x264")
    out = _out(tmp_path, name, src)
    run_cli("encode", src, "-o", out, "--no-assist", "--codec", codec, "--crf", "30", *ENC, capsys=capsys)
    s = source_props[name]
    want = (s["color_range"], s["color_space"], s["color_primaries"], s["color_transfer"])
    got = bitstream_colour(out)
    if want[0] in HEVC_DEFAULT_RANGE and (codec == "x265" or s["codec"] == "hevc"):
        assert got[0] in HEVC_DEFAULT_RANGE
        want, got = want[1:], got[1:]
    assert got == want


def test_x264_keeps_hdr10_metadata_at_8_bit(corpus, tmp_path, capsys):
    """x264 output stays 8-bit (said in one line) but keeps PQ, BT.2020 and the HDR10 SEIs. Debian's ffprobe 5.1
    does not parse H.264 mastering-display SEI, so the SEIs are read with PyAV's FFmpeg 8 decoder."""
    import av

    out = tmp_path / "pq264.mp4"
    err = run_cli("encode", corpus["pq"], "-o", out, "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    assert err.count("codec-assist: warning:") == 1 and "10-bit reduced to 8-bit" in err, err
    p = props(out)
    assert (p["color_space"], p["color_primaries"], p["color_transfer"]) == ("bt2020nc", "bt2020", "smpte2084")
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        kinds = {sd.type.name: bytes(sd) for sd in frame.side_data}
    assert "MASTERING_DISPLAY_METADATA" in kinds and "CONTENT_LIGHT_LEVEL" in kinds
    assert np.frombuffer(kinds["CONTENT_LIGHT_LEVEL"][:8], np.uint32).tolist() == [1000, 400]


def _plan_files(src: Path, d: Path, codec: str, capsys) -> Path:
    run_cli("analyze", src, "-o", d / "an", *FAST_ANALYSIS, capsys=capsys)
    run_cli("plan", d / "an", "-o", d / "plan.json", "--codec", codec, capsys=capsys)
    return d / "plan.json"


PATHS = ["assisted", "plan", "allocate", "target-quality"]
FAST_SET = ["full601", "pq", "rotated", "tracks"]  # the rest of the corpus: marked slow


def _assisted_paths(name, path, corpus, source_props, tmp_path, capsys):
    src = corpus[name]
    codec = CODEC_FOR.get(name, "x264")
    out = _out(tmp_path, name, src)
    common = ["--codec", codec, *ENC]
    if path == "assisted":
        run_cli("encode", src, "-o", out, "--crf", "30", *common, *FAST_ANALYSIS, capsys=capsys)
    elif path == "plan":
        plan = _plan_files(src, tmp_path, codec, capsys)
        run_cli("encode", src, "-o", out, "--plan", plan, "--crf", "30", *common, capsys=capsys)
    elif path == "allocate":
        run_cli("encode", src, "-o", out, "--allocate", "--bitrate", "150k", *common, *FAST_ANALYSIS, capsys=capsys)
    elif path == "target-quality":
        run_cli("encode", src, "-o", out, "--target-quality", "psnr=34", "--max-probes", "2", *common,
                *FAST_ANALYSIS, capsys=capsys)
    check_same(source_props[name], props(out), codec, out.suffix[1:], what=f"{path} {name}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", FAST_SET)
def test_assisted_paths_keep_everything(corpus, source_props, tmp_path, capsys, name, path):
    _assisted_paths(name, path, corpus, source_props, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(set(ALL) - set(FAST_SET)))
def test_assisted_paths_keep_everything_rest(corpus, source_props, tmp_path, capsys, name, path):
    _assisted_paths(name, path, corpus, source_props, tmp_path, capsys)


@pytest.mark.parametrize("name", ["full601", "pq", "rotated", "sar", "tracks",
                                  *[pytest.param(n, marks=pytest.mark.slow) for n in ("vfr", "offset", "hlg")]])
def test_every_ladder_rung_keeps_everything(corpus, source_props, tmp_path, capsys, name):
    """Each rung (a smaller storage size) keeps colour, HDR, rotation, tracks, timing and the display aspect
    (the sample aspect ratio is rescaled to the rung's size)."""
    src = corpus[name]
    codec = CODEC_FOR.get(name, "x264")
    run_cli("encode", src, "-o", tmp_path / "lad", "--ladder", "64p:120k,48p:60k", "--no-plain", "--codec", codec,
            *ENC, *FAST_ANALYSIS, capsys=capsys)
    rungs = sorted((tmp_path / "lad").glob("*.mp4"))
    assert len(rungs) == 2
    for r in rungs:
        p = props(r)
        assert p["size"][1] in (64, 48)
        check_same(source_props[name], p, codec, "mp4", ladder=True, what=f"ladder {r.name}")


@pytest.mark.parametrize("name", ["pq", "rotated", "vfr", "tracks",
                                  *[pytest.param(n, marks=pytest.mark.slow) for n in ("full601", "sar", "offset")]])
def test_chunked_join_keeps_everything(corpus, source_props, tmp_path, name):
    """Two chunks (shots split at 0.3 s) encoded in worker processes and joined: the join carries the rest."""
    from codec_assist.encoding.chunked import encode_chunked
    from codec_assist.scale.engine import EngineOptions
    from codec_assist.schemas import RateControl

    src = corpus[name]
    codec = CODEC_FOR.get(name, "x264")
    out = _out(tmp_path, name, src)
    encode_chunked(src, out, codec=codec, rate=RateControl(mode="abr", bitrate=150_000), preset="ultrafast",
                   shot_starts=[0], engine=EngineOptions(workers=2), min_seconds=0.1, max_seconds=0.3)
    check_same(source_props[name], props(out), codec, out.suffix[1:], what=f"chunked {name}")


def test_batch_keeps_everything_with_umask_permissions(corpus, source_props, tmp_path, capsys):
    """One batch over the whole corpus (plain x264, process pool): every output faithful, mode 0644 (umask 022)."""
    old = os.umask(0o022)
    try:
        run_cli("batch", corpus["full601"].parent, "-o", tmp_path / "out", "--no-assist", "--crf", "30", *ENC,
                "--workers", "2", capsys=capsys)
    finally:
        os.umask(old)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    outputs = {item["input"]: tmp_path / "out" / item["outputs"][0]["path"] for item in manifest["items"]}
    for name, src in corpus.items():
        out = outputs[src.name]
        check_same(source_props[name], props(out), "x264", out.suffix[1:], what=f"batch {name}",
                   cross=src.suffix != out.suffix)
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


# --------------------------------------------------------------------------------------------- the player
def _raw(path: Path, pix_fmt: str | None = None) -> np.ndarray:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo"] + (["-pix_fmt", pix_fmt] if pix_fmt else [])
    r = subprocess.run([*args, "-"], capture_output=True, check=True, timeout=60)
    return np.frombuffer(r.stdout, np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_full_range_output_looks_like_the_source_in_a_player(corpus, tmp_path, capsys, codec):
    """What a player shows: ffmpeg's RGB of the output against ffmpeg's RGB of the source.

    - the luma of that RGB (0.299 R + 0.587 G + 0.114 B, which is Y for full-range BT.601) is within 1 dB of the
      Y-plane PSNR: the picture differs by the encoder's distortion, not by a level change;
    - PSNR on RGB is within 0.5 dB of the plain ffmpeg CLI encode's at the same encoder, CRF and preset (RGB also
      carries the chroma planes' distortion, so it sits below the Y-plane PSNR for any encoder, the ffmpeg CLI's
      own encode included: x264 35.3 vs 42.5 dB here);
    - the same bitstream with its full-range flag cleared (the old behaviour) fails the first check by far."""
    src = corpus["full601"]
    out = tmp_path / f"full.{codec}.mp4"
    run_cli("encode", src, "-o", out, "--no-assist", "--codec", codec, "--crf", "38", *ENC, capsys=capsys)
    ref = tmp_path / f"ref.{codec}.mp4"
    _ff("-i", src, "-c:v", f"lib{codec}", "-preset", "ultrafast", "-crf", "38",
        *(["-x265-params", X265] if codec == "x265" else []), ref)
    w, h = 128, 96
    ys, yo = _raw(src).reshape(-1, w * h * 3 // 2)[:, : w * h], _raw(out).reshape(-1, w * h * 3 // 2)[:, : w * h]
    psnr_y = _psnr(ys, yo)
    rgb_src = _raw(src, "rgb24")
    luma = np.array([0.299, 0.587, 0.114])

    def player(path):
        rgb = _raw(path, "rgb24")
        return _psnr(rgb_src, rgb), _psnr(rgb_src.reshape(-1, 3) @ luma, rgb.reshape(-1, 3) @ luma)

    psnr_rgb, psnr_luma = player(out)
    ref_rgb, _ = player(ref)
    print(f"{codec}: PSNR-Y {psnr_y:.2f} dB, player luma {psnr_luma:.2f} dB, PSNR-RGB {psnr_rgb:.2f} dB "
          f"(ffmpeg CLI encode: {ref_rgb:.2f} dB)")
    assert psnr_luma >= psnr_y - 1.0, (psnr_y, psnr_luma)
    assert psnr_rgb >= ref_rgb - 0.5, (psnr_rgb, ref_rgb)
    # teeth: the same bitstream said to be limited range, as before the fix
    wrong = tmp_path / f"wrong.{codec}.mp4"
    bsf = "h264_metadata=video_full_range_flag=0" if codec == "x264" else "hevc_metadata=video_full_range_flag=0"
    _ff("-i", out, "-c", "copy", "-bsf:v", bsf, wrong)
    _, wrong_luma = player(wrong)
    assert wrong_luma < psnr_y - 5, (psnr_y, wrong_luma)


# ---------------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_get_umask_permissions(corpus, tmp_path, capsys, mask):
    """Video, JSON, npz, HTML and figures are created as open() would create them: 0666 less the umask (not
    mkstemp's 0600); a replaced file (--overwrite) keeps its own mode."""
    src = corpus["tracks"]
    old = os.umask(mask)
    try:
        run_cli("encode", src, "-o", tmp_path / "v.mkv", "--no-assist", "--crf", "30", *ENC, "--report",
                tmp_path / "r.json", "--html", tmp_path / "r.html", capsys=capsys)
        run_cli("analyze", src, "-o", tmp_path / "an", *FAST_ANALYSIS, capsys=capsys)
        run_cli("report", tmp_path / "an", tmp_path / "r.json", "-o", tmp_path / "all.html", "--figures",
                tmp_path / "figs", capsys=capsys)
        made = sorted(f for f in tmp_path.rglob("*") if f.is_file())
        kinds = {f.suffix for f in made}
        assert {".mkv", ".json", ".npz", ".html", ".png", ".svg"} <= kinds, kinds
        for f in made:
            assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, (f, oct(f.stat().st_mode))
        os.chmod(tmp_path / "v.mkv", 0o640)
        run_cli("--overwrite", "encode", src, "-o", tmp_path / "v.mkv", "--no-assist", "--crf", "32", *ENC,
                capsys=capsys)
        assert stat.S_IMODE((tmp_path / "v.mkv").stat().st_mode) == 0o640
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------------------ semantic decode
def test_semantic_decode_says_how_its_pictures_are_encoded(corpus, tmp_path):
    """`semantic decode` makes new pictures (RGB) and encodes them with swscale's BT.601 limited-range matrix: the
    output says so (it said nothing before), and a player's RGB of it is the generator's picture."""
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.semantic.generators import LayersGenerator, output_size, write_video
    from codec_assist.semantic.stream import LAYERS, SemanticOptions, encode_video, read_stream

    blob, _, _ = encode_video(corpus["bt709"], SemanticOptions(layers=LAYERS),
                              AnalyzeOptions(analyzers=["shots", "saliency"], proxy_width=128, analysis_fps=5))
    stream = read_stream(blob)
    out = tmp_path / "rebuilt.mp4"
    gen = LayersGenerator()
    write_video(stream, gen, out, crf=10)
    p = props(out)
    assert (p["color_range"], p["color_space"]) == ("tv", "smpte170m")
    assert bitstream_colour(out)[:2] == ("tv", "smpte170m")
    w, h = output_size(stream)
    want = gen.picture(0, stream.scene.shots[0], stream, (w, h))
    shown = _raw(out, "rgb24").reshape(-1, h, w, 3)[0]
    # 4:2:0 chroma of a saturated picture costs a few dB in RGB whatever the encoder; a wrong range costs more
    wrong = tmp_path / "wrong.mp4"
    _ff("-i", out, "-map", "0:v", "-c", "copy", "-bsf:v", "h264_metadata=video_full_range_flag=1", wrong)
    shown_wrong = _raw(wrong, "rgb24").reshape(-1, h, w, 3)[0]
    print(f"semantic decode: player RGB vs generator {_psnr(want, shown):.2f} dB (as full range: "
          f"{_psnr(want, shown_wrong):.2f} dB)")
    assert _psnr(want, shown) > 30 and _psnr(want, shown_wrong) < _psnr(want, shown) - 5


def test_flash_video_input_is_read_whole(sample, tmp_path, capsys):
    """An FLV (Sorenson H.263 + MP3, as old web video is): its container counts no frames and refuses a seek, which
    the probe used to try after counting (an internal error). Now the assisted encode reads every frame and keeps
    the audio."""
    src = tmp_path / "web.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-t", "2", "-c:v", "flv1",
                    "-c:a", "libmp3lame", str(src)], check=True, timeout=120)
    out = tmp_path / "web.mp4"
    run_cli("encode", src, "-o", out, "--bitrate", "200k", *ENC, *FAST_ANALYSIS, capsys=capsys)
    count = lambda p: int(_probe_json(p, "-count_frames", "-select_streams", "v",
                                      "-show_entries", "stream=nb_read_frames")["streams"][0]["nb_read_frames"])
    assert count(out) == count(src)
    assert props(out)["audio"]


def test_an_empty_packet_inside_a_stream_is_not_the_end_of_it():
    """Ogg gives a Theora stream an empty packet after its headers: decoded, it would be the end-of-stream signal
    (EINVAL, then every later packet refused). media.decode_packet decodes it to nothing instead."""
    import av

    from codec_assist.media.decode import decode_packet

    empty = av.Packet(b"")
    empty.pts = 1
    assert decode_packet(empty) == []


def test_wma_audio_without_channel_positions_is_reencoded(sample, tmp_path, capsys):
    """WMV/ASF says its WMA track has "2 channels" with no positions; the AAC encoder refused that layout (the
    encode failed: "x264 failed: Invalid argument"). It is now encoded as stereo, with the re-encode warning."""
    src = tmp_path / "old.wmv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-t", "2", "-c:v", "wmv2",
                    "-c:a", "wmav2", "-ac", "2", str(src)], check=True, timeout=120)
    out = tmp_path / "old.mp4"
    err = run_cli("encode", src, "-o", out, "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    assert "wmav2, which mp4 does not carry; re-encoded to AAC" in err, err
    audio = _probe_json(out, "-select_streams", "a", "-show_entries", "stream=codec_name,channels,channel_layout")
    assert [(s["codec_name"], s["channels"], s["channel_layout"]) for s in audio["streams"]] == [("aac", 2, "stereo")]


def test_mp3_and_mp2_audio_are_copied_where_the_container_takes_them(sample, tmp_path, capsys):
    """PyAV names a track by its decoder (mp3float, mp2float), which no container lists: an MP3 track in an mp4 was
    re-encoded to AAC with a warning. The codec's own name decides now: MP3 is copied packet for packet into mp4,
    MP2 into Matroska; MP2 in mp4 (not in its list) is still re-encoded, with the warning."""
    src3, src2 = tmp_path / "mp3.mp4", tmp_path / "mp2.mkv"
    for src, codec in ((src3, "libmp3lame"), (src2, "mp2")):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-t", "2", "-c:v", "copy",
                        "-c:a", codec, "-b:a", "128k", str(src)], check=True, timeout=120)
    audio = lambda p: [s["codec_name"] for s in _probe_json(p, "-select_streams", "a", "-show_entries",
                                                            "stream=codec_name")["streams"]]
    packets = lambda p: _probe_json(p, "-select_streams", "a", "-show_entries", "packet=size")["packets"]
    for src, out, want in ((src3, tmp_path / "o3.mp4", "mp3"), (src2, tmp_path / "o2.mkv", "mp2")):
        err = run_cli("encode", src, "-o", out, "--no-assist", "--crf", "30", *ENC, capsys=capsys)
        assert "re-encoded" not in err, err
        assert audio(out) == [want] and packets(out) == packets(src)
    err = run_cli("encode", src2, "-o", tmp_path / "o2.mp4", "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    assert "mp2, which mp4 does not carry; re-encoded to AAC" in err, err


def test_interlaced_source_keeps_its_fields_and_its_roi(sample, tmp_path, capsys):
    """A top-field-first H.264 source (a broadcast or DVD capture): x264 codes it interlaced with the same field
    order (it was made progressive, fields woven), and the assisted encode's ROI is applied — FFmpeg's libx264
    skips the ROI of a frame flagged interlaced without an error, so the default encode and one with no offsets
    (--max-dqp 0) were byte-identical. x265, which codes whole frames here, says so in one line."""
    src = tmp_path / "tff.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-t", "1", "-vf",
                    "fps=50,interlace=scan=tff", "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264-params", "tff=1",
                    "-an", str(src)], check=True, timeout=120)
    order = lambda p: _probe_json(p, "-select_streams", "v", "-show_entries", "stream=field_order")["streams"][0][
        "field_order"]
    assert order(src) == "tt"
    roi, flat = tmp_path / "roi.mp4", tmp_path / "flat.mp4"
    run_cli("encode", src, "-o", roi, "--bitrate", "300k", *ENC, *FAST_ANALYSIS, "--analyzers", "faces",
            capsys=capsys)
    run_cli("encode", src, "-o", flat, "--bitrate", "300k", *ENC, *FAST_ANALYSIS, "--analyzers", "faces",
            "--max-dqp", "0", capsys=capsys)
    assert order(roi) == "tt" and order(flat) == "tt"
    assert roi.read_bytes() != flat.read_bytes()
    err = run_cli("encode", src, "-o", tmp_path / "h265.mp4", "--codec", "x265", "--no-assist", "--crf", "30", *ENC,
                  capsys=capsys)
    assert "is interlaced (top field first); x265 here codes whole frames" in err, err
    # a ladder rung at another size: scaling blends the woven fields, so that rung is progressive, and says why
    err = run_cli("encode", src, "-o", tmp_path / "{rung}.mp4", "--ladder", "480p:300k,240p:150k", "--no-plain", *ENC,
                  *FAST_ANALYSIS, "--analyzers", "shots", capsys=capsys)
    assert order(tmp_path / "480p.mp4") == "tt" and order(tmp_path / "240p.mp4") == "progressive"
    assert "scaled to 320x240 its two fields blend" in err, err


def _with_captions(src: Path, out: Path, frames: int = 30) -> None:
    """`frames` frames of `src` re-encoded with CEA-608 captions in every frame (A53 side data, which libx264 writes
    as SEI), attached through the same libavutil bridge the ROI uses."""
    import ctypes

    import av

    from codec_assist.encoding import roi

    lib = roi._libavutil()
    a53 = next(v for v in range(64) if (lib.av_frame_side_data_name(v) or b"").startswith(b"ATSC A53"))
    with av.open(str(src)) as c, av.open(str(out), "w") as o:
        st = o.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = c.streams.video[0].width, c.streams.video[0].height, "yuv420p"
        st.options = {"a53cc": "1", "crf": "26", "preset": "ultrafast"}
        for i, f in enumerate(c.decode(video=0)):
            if i == frames:
                break
            f = av.VideoFrame.from_ndarray(f.to_ndarray(format="yuv420p"), format="yuv420p")
            f.pts = i
            cc = bytes([0xFC, 0xC8, 0x80])  # one CEA-608 pair, field 1: "H" and a parity-padded blank
            sd = lib.av_frame_new_side_data(roi._frame_ptr(f), a53, len(cc))
            ctypes.memmove(sd.contents.data, cc, len(cc))
            for p in st.encode(f):
                o.mux(p)
        for p in st.encode():
            o.mux(p)


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_closed_captions_survive(sample, tmp_path, capsys, codec):
    """CEA-608 captions in the source's SEI reach the output with every frame; libx265 dropped them (its a53cc is
    off unless asked)."""
    import av

    src, out = tmp_path / "cc.mp4", tmp_path / f"cc.{codec}.mp4"
    _with_captions(sample("jwpIntro.mp4"), src)
    run_cli("encode", src, "-o", out, "--codec", codec, "--bitrate", "300k", *ENC, *FAST_ANALYSIS, capsys=capsys)
    with av.open(str(out)) as c:
        captioned = [any("A53" in str(sd.type) for sd in f.side_data) for f in c.decode(video=0)]
    assert len(captioned) == 30 and all(captioned)


def test_cover_picture_is_kept_in_mp4_and_named_elsewhere(sample, tmp_path, capsys):
    """A cover picture (an attached PNG) is copied into an MP4 output; a container the muxer writes none into
    (Matroska here) says so in one line. It used to be dropped without a word."""
    cover, src = tmp_path / "cover.png", tmp_path / "covered.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=1", "-frames:v", "1",
                    str(cover)], check=True, timeout=60)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-i", str(cover), "-t", "1",
                    "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:1", "attached_pic", str(src)],
                   check=True, timeout=60)
    covers = lambda p: [s["codec_name"] for s in _probe_json(p, "-show_streams")["streams"]
                        if s.get("disposition", {}).get("attached_pic")]
    assert covers(src) == ["png"]
    out = tmp_path / "out.mp4"
    run_cli("encode", src, "-o", out, "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    assert covers(out) == ["png"]
    err = run_cli("encode", src, "-o", tmp_path / "out.mkv", "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    assert "the cover picture (track 2, png) cannot go into Matroska" in err, err


def test_a_360_degree_3d_source_says_what_the_output_loses(sample, tmp_path, capsys):
    """A Matroska source tagged equirectangular and side-by-side 3D (mkvpropedit, as a 360 camera's software would):
    FFmpeg hands both to every decoded frame. PyAV cannot write the projection into any output, so the encode says so
    in one line instead of dropping it without a word; the 3D layout survives where x264 writes its frame-packing SEI
    or Matroska its StereoMode, and is named as lost where neither does (x265 into MP4)."""
    import av

    src = tmp_path / "vr.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-t", "1", "-an", "-c", "copy",
                    str(src)], check=True, timeout=60)
    subprocess.run(["mkvpropedit", "-q", str(src), "--edit", "track:v1", "--set", "projection-type=1",
                    "--set", "stereo-mode=1"], check=True, timeout=60)
    with av.open(str(src)) as c:
        assert {"SPHERICAL", "STEREO3D"} <= {sd.type.name for sd in next(c.decode(video=0)).side_data}

    def shown_as(path):  # what ffprobe reads on the video track and on its first frame
        (stream,) = _probe_json(path, "-show_streams", "-select_streams", "v")["streams"]
        (frame,) = _probe_json(path, "-show_frames", "-read_intervals", "%+#1", "-select_streams", "v")["frames"]
        return {d["side_data_type"] for d in stream.get("side_data_list", []) + frame.get("side_data_list", [])}

    for codec, ext, lost in (("x264", "mkv", "360° projection (spherical mapping): PyAV cannot write it"),
                             ("x265", "mp4", "360° projection (spherical mapping) and stereoscopic 3D layout")):
        out = tmp_path / f"out.{codec}.{ext}"
        err = run_cli("encode", src, "-o", out, "--codec", codec, "--bitrate", "300k", *ENC, *FAST_ANALYSIS,
                      capsys=capsys)
        line, = [ln for ln in err.splitlines() if "does not carry" in ln]
        assert lost in line, line
        found = shown_as(out)
        assert "Spherical Mapping" not in found and ("Stereo 3D" in found) == (codec == "x264"), (codec, found)


def test_transport_stream_clock_does_not_become_an_empty_edit(sample, tmp_path, capsys):
    """An MPEG-TS capture whose clock reads 10 h at its first frame: the MP4 used to start there too (a 10-hour
    empty edit, then 3 s of picture). Now it starts at 0, audio still 22 ms ahead of the picture as in the source.
    (An MP4's own start offset is kept: test_plain_encode_keeps_everything[offset].)"""
    src = tmp_path / "capture.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-t", "2", "-c:v", "libx264",
                    "-c:a", "aac", "-output_ts_offset", "36000", "-f", "mpegts", str(src)], check=True, timeout=120)
    starts = lambda p: {s["codec_type"]: float(s["start_time"]) for s in _probe_json(p, "-show_streams")["streams"]}
    for how in ([], ["--chunked", "--min-chunk", "0.5"]):  # the chunks' join sets its own timestamps
        out = tmp_path / f"capture{len(how)}.mp4"
        run_cli("encode", src, "-o", out, "--bitrate", "300k", *ENC, *FAST_ANALYSIS, *how, capsys=capsys)
        assert float(_probe_json(out, "-show_format")["format"]["duration"]) < 3, how
        s, o = starts(src), starts(out)
        assert min(o.values()) == pytest.approx(0, abs=0.002), how
        assert o["video"] - o["audio"] == pytest.approx(s["video"] - s["audio"], abs=0.002), how


def test_a_clip_trimmed_by_its_edit_list_is_not_called_truncated(tmp_path, capsys):
    """`ffmpeg -ss 1.5 -c copy` keeps the samples from the keyframe before 1.5 s and shows the rest through its edit
    list (100 samples, 62 frames shown), as stock clips trimmed in an editor do (npm thumbbot's fixture: 129 and
    78). Every frame it shows is encoded, and no warning calls the file truncated (one used to); a file that really
    stops short still gets one (tests/badinputs.py, truncated_mid_mdat)."""
    whole, src = tmp_path / "whole.mp4", tmp_path / "trimmed.mp4"
    _ff("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=25:duration=4", "-c:v", "libx264", "-g", "100",
        "-pix_fmt", "yuv420p", whole)
    _ff("-ss", "1.5", "-i", whole, "-c", "copy", src)
    shown = _probe_json(src, "-count_frames", "-show_streams")["streams"][0]
    assert (int(shown["nb_frames"]), int(shown["nb_read_frames"])) == (100, 62)
    out = tmp_path / "out.mp4"
    err = run_cli("encode", src, "-o", out, "--crf", "30", *ENC, *FAST_ANALYSIS, capsys=capsys)
    assert "truncated" not in err and "warning" not in err, err
    assert int(_probe_json(out, "-count_frames", "-show_streams")["streams"][0]["nb_read_frames"]) == 62


def test_reencoded_audio_keeps_its_place(sample, tmp_path, capsys):
    """Audio that starts 0.5 s after the picture and must be re-encoded (Vorbis cannot go into MP4) used to start at
    0 in the output, 0.5 s early against the picture; it now starts where the ffmpeg CLI puts it (its start minus the
    AAC encoder's 1024-sample priming)."""
    src = tmp_path / "late.mkv"
    jwp = str(sample("jwpIntro.mp4"))
    subprocess.run(["ffmpeg", "-v", "error", "-i", jwp, "-itsoffset", "0.5", "-i", jwp, "-map", "0:v", "-map", "1:a",
                    "-t", "2", "-c:v", "libx264", "-c:a", "libvorbis", str(src)], check=True, timeout=120)
    reference = tmp_path / "ffmpeg.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:v", "copy", "-c:a", "aac", str(reference)],
                   check=True, timeout=120)
    out = tmp_path / "late.mp4"
    err = run_cli("encode", src, "-o", out, "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    assert "vorbis, which mp4 does not carry; re-encoded to AAC" in err, err
    start = lambda p: {s["codec_type"]: float(s["start_time"]) for s in _probe_json(p, "-show_streams")["streams"]}
    assert start(out)["audio"] - start(out)["video"] == pytest.approx(
        start(reference)["audio"] - start(reference)["video"], abs=0.005)
    assert start(out)["audio"] > 0.45


def test_reencoded_audio_keeps_a_gap(tmp_path, capsys):
    """A Vorbis track with a 1 s hole in its timestamps at 1.5 s: re-encoded to AAC the hole stays (as with the ffmpeg
    CLI); it used to close, and everything after it played 1 s early."""
    src = tmp_path / "gap.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=4", "-f",
                    "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3", "-af",
                    "asetpts='if(gte(T,1.5),PTS+48000,PTS)'", "-c:v", "libx264", "-c:a", "libvorbis", "-shortest",
                    str(src)], check=True, timeout=120)
    out = tmp_path / "gap.mp4"
    run_cli("encode", src, "-o", out, "--no-assist", "--crf", "30", *ENC, capsys=capsys)
    times = [float(p["pts_time"]) for p in _probe_json(out, "-select_streams", "a", "-show_packets")["packets"]]
    jumps = [(a, b) for a, b in zip(times, times[1:]) if b - a > 0.1]
    assert len(jumps) == 1 and jumps[0][0] == pytest.approx(1.5, abs=0.05) and jumps[0][1] == pytest.approx(2.5, abs=0.06)


def test_quicktime_with_8_channel_pcm_is_a_one_line_error(tmp_path):
    """PyAV 18.1 corrupts the heap on a QuickTime 7.1 PCM track in its own channel order (the process aborted); the
    file is refused in one line before PyAV opens it (run in a child: a regression would abort the test process)."""
    import sys

    src = tmp_path / "surround.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=1", "-f",
                    "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1", "-filter_complex",
                    "[1:a]pan=8c|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0|c6=c0|c7=c0[a]", "-map", "0:v", "-map", "[a]",
                    "-c:v", "libx264", "-c:a", "pcm_s16le", str(src)], check=True, timeout=120)
    r = subprocess.run([sys.executable, "-m", "codec_assist", "-q", "analyze", str(src), "-o", str(tmp_path / "a")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-500:]
    assert r.stderr.strip().count("\n") == 0 and "8-channel PCM track" in r.stderr and "remux it" in r.stderr
