"""The command line as a user meets it: real runs, and bad input -> one line, non-zero exit, nothing written."""
import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from codec_assist.media.decode import keyframe_indices


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "codec_assist", "-q", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def _one_line_error(r, code=2):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_help_explains_commands():
    r = subprocess.run([sys.executable, "-m", "codec_assist", "encode", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for knob in ("--bitrate", "--crf", "--codec", "--preset", "--plan", "--no-assist", "--report", "--max-dqp"):
        assert knob in r.stdout


def test_missing_file(tmp_path):
    msg = _one_line_error(run("encode", tmp_path / "nope.mp4", "-o", tmp_path / "o.mp4"))
    assert "no such file" in msg
    assert not (tmp_path / "o.mp4").exists()


def test_non_video_file(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    before = _digest(fake)
    for cmd in (["encode", fake, "-o", tmp_path / "o.mp4"], ["analyze", fake, "-o", tmp_path / "an"],
                ["compare", fake, "--bitrate", "100k", "-o", tmp_path / "r.json"]):
        msg = _one_line_error(run(*cmd))
        assert "not a readable media file" in msg or "no video stream" in msg
    assert _digest(fake) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_output_equal_to_input_is_refused(sample, tmp_path):
    src = tmp_path / "bikes.mp4"
    shutil.copy(sample("bikes.mp4"), src)
    before = _digest(src)
    msg = _one_line_error(run("encode", src, "-o", src, "--no-assist"))
    assert "is the input" in msg
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    _one_line_error(run("encode", src, "-o", link, "--no-assist"))
    assert _digest(src) == before


def test_bad_option_values(sample, tmp_path):
    src = sample("bikes.mp4")
    assert "bitrate" in _one_line_error(run("encode", src, "-o", tmp_path / "o.mp4", "--bitrate", "fast"))
    assert "crf" in _one_line_error(run("encode", src, "-o", tmp_path / "o.mp4", "--crf", "80"))
    assert "parsing option" in _one_line_error(
        run("encode", src, "-o", tmp_path / "o.mp4", "--no-assist", "--params", "keyinit=5", "--preset", "ultrafast"))
    (tmp_path / "file").write_text("x")
    assert "is a file" in _one_line_error(run("encode", src, "-o", tmp_path / "file" / "dir" / "o.mp4"))
    assert not (tmp_path / "o.mp4").exists()


def test_analyze_plan_encode_chain(sample, tmp_path):
    """The three steps by hand give the same IDRs as the one-shot encode: at frame 0 and the 5 cuts."""
    src = sample("bikes.mp4")
    r = run("analyze", src, "-o", tmp_path / "an", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert [s["start_frame"] for s in summary["shots"]] == [0, 30, 76, 137, 187, 242]
    r = run("plan", tmp_path / "an", "-o", tmp_path / "plan.json", "--codec", "x264")
    assert r.returncode == 0, r.stderr
    r = run("encode", src, "-o", tmp_path / "o.mp4", "--plan", tmp_path / "plan.json", "--bitrate", "400k",
            "--preset", "veryfast", "--report", tmp_path / "rep.json")
    assert r.returncode == 0, r.stderr
    assert keyframe_indices(tmp_path / "o.mp4") == [0, 30, 76, 137, 187, 242]
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["schema"] == "codec-assist/encode-report" and rep["result"]["quality"]["psnr_y"] > 30
    # a plan for x264 cannot drive x265
    assert "made for x264" in _one_line_error(
        run("encode", src, "-o", tmp_path / "p.mp4", "--plan", tmp_path / "plan.json", "--codec", "x265"))
    # a corrupted plan is refused in one line
    (tmp_path / "plan.json").write_text("{not json")
    assert "plan" in _one_line_error(run("encode", src, "-o", tmp_path / "q.mp4", "--plan", tmp_path / "plan.json"))
    assert not (tmp_path / "q.mp4").exists()


# ------------------------------------------------------------------- a command line that behaves like one
def test_general_flags_work_before_and_after_the_command(sample, tmp_path):
    """-q, --debug, --json and --overwrite are accepted wherever a user types them (issue 17)."""
    src = sample("bikes.mp4")
    out = tmp_path / "o.mp4"
    common = ["encode", src, "-o", out, "--no-assist", "--preset", "ultrafast", "--bitrate", "200k"]
    r = subprocess.run([sys.executable, "-m", "codec_assist", *map(str, common), "-q", "--debug", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"] == 250
    r = subprocess.run([sys.executable, "-m", "codec_assist", "--json", "--overwrite", *map(str, common)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)["frames"] == 250, r.stderr
    stream = tmp_path / "s.cas"
    assert run("semantic", "encode", src, "-o", stream, "--analyzers", "shots").returncode == 0
    (tmp_path / "d.mp4").write_bytes(b"old")
    r = run("semantic", "decode", stream, "-o", tmp_path / "d.mp4", "--overwrite", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"] == 250


def test_help_says_only_what_helps():
    """No "(default: None)", no internal notes; explain offers no output or input-limit flags it would ignore;
    export lists one format per line."""
    texts = {}
    for cmd in (["encode"], ["compare"], ["tag"], ["batch"], ["explain"], ["export"], ["semantic", "decode"]):
        r = subprocess.run([sys.executable, "-m", "codec_assist", *cmd, "--help"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        texts[" ".join(cmd)] = r.stdout
    for name, text in texts.items():
        assert "(default: None)" not in text and "(default: False)" not in text, name
        assert "FACTS" not in text and "issue " not in text, name
    assert "--overwrite" not in texts["explain"] and "--max-pixels" not in texts["explain"]
    assert "\n- x264-zones" in texts["export"] and "\n- qp-npy" in texts["export"]
    assert "--overwrite" in texts["semantic decode"]


def test_explain_points_a_video_to_analyze(sample, tmp_path):
    msg = _one_line_error(run("explain", sample("bikes.mp4")))
    assert "run `codec-assist analyze`" in msg


# ------------------------------------------------------------------- compare: VMAF, XPSNR and peers (issue 15)
def _x264_settings(path) -> str:
    """x264 writes its options into an SEI of the stream: 'x264 - core ... options: ... aq=3:1.00 ...'."""
    data = path.read_bytes()
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\0", start)].decode("ascii", "replace")


@pytest.fixture(scope="module")
def short_clip(sample, tmp_path_factory):
    """The first 30 frames of carphone.mp4 (176x144 talking head), near-lossless, so VMAF stays cheap."""
    from fractions import Fraction

    import av

    path = tmp_path_factory.mktemp("short") / "carphone30.mp4"
    with av.open(str(sample("carphone.mp4"))) as src, av.open(str(path), "w") as dst:
        vs = src.streams.video[0]
        vs.codec_context.thread_count = 1
        out = dst.add_stream("libx264", rate=25)
        out.width, out.height, out.pix_fmt = 176, 144, "yuv420p"
        out.options = {"preset": "ultrafast", "qp": "0"}
        for i, f in enumerate(src.decode(vs)):
            if i == 30:
                break
            f.pict_type = av.video.frame.PictureType.NONE
            f.pts, f.time_base = i, Fraction(1, 25)  # the source is 29.97 fps: new timestamps for 25
            for pkt in out.encode(f):
                dst.mux(pkt)
        for pkt in out.encode():
            dst.mux(pkt)
    return path


def test_compare_measures_vmaf_and_runs_the_peer(short_clip, tmp_path):
    """compare: plain, assisted and the peer (x264 aq-mode=3, tune film) at each rate, every metric measured,
    BD-rates of the three pairs on each metric; the peer's options reached the encoder."""
    out, keep = tmp_path / "cmp.json", tmp_path / "keep"
    face = "60,20,64,80"
    r = run("compare", short_clip, "--bitrate", "40k,80k,160k", "--preset", "veryfast", "--analyzers",
            "shots,saliency", "--roi", face, "--keep", keep, "-o", out)
    assert r.returncode == 0, r.stderr
    for text in ("peer (aq-mode=3 tune=film)", "assisted vs peer", "peer vs plain", "VMAF", "XPSNR",
                 "PSNR punishes"):
        assert text in r.stdout
    rep = json.loads(out.read_text())
    assert rep["version"] == 3
    assert rep["peer"]["aq_mode"] == 3 and rep["peer"]["tune"] == "film" and rep["peer"]["tune_reason"]
    metrics = {"psnr_y", "ssim_y", "xpsnr_y", "vmaf", f"roi_psnr_y[{face}]"}
    for key in ("bd_rate", "bd_rate_peer", "bd_rate_vs_peer"):
        assert set(rep[key]) == metrics, key
    vmaf = {side: [p[side]["quality"]["vmaf"] for p in rep["points"]] for side in ("baseline", "assisted", "peer")}
    for side, values in vmaf.items():
        assert all(0 < v <= 100 for v in values) and values == sorted(values), (side, values)  # rises with rate
    for p in rep["points"]:
        for side in ("baseline", "assisted", "peer"):
            q = p[side]["quality"]
            assert q["vmaf_frames"] == q["frames"] == 30 and q["xpsnr_y"] > 15
    # what each encoder was actually given, read back from the streams
    sei = {side: _x264_settings(next(keep.glob(f"*.80k.{side}.mp4"))) for side in ("baseline", "assisted", "peer")}
    assert " aq=3:" in sei["peer"] and " deblock=1:-1:-1" in sei["peer"]  # aq-mode 3 and tune film
    assert " aq=1:" in sei["baseline"] and " deblock=1:0:0" in sei["baseline"]  # veryfast's defaults
    assert " aq=1:" in sei["assisted"]


def test_compare_refuses_bad_peer_and_vmaf_options(short_clip, tmp_path):
    out = tmp_path / "cmp.json"
    for args, words in ((["--peer-aq-mode", "5"], "peer aq-mode 5"), (["--peer-tune", "cartoon"], "unknown x264 tune"),
                        (["--codec", "x265", "--peer-tune", "film"], "unknown x265 tune"),
                        (["--vmaf-every", "-1"], "vmaf-every")):
        msg = _one_line_error(run("compare", short_clip, "--bitrate", "40k", "-o", out, *args))
        assert words in msg
        assert not out.exists()
