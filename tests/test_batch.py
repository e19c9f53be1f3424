"""Batch and chunked encoding on real clips: local and Ray engines, resume after a kill, one bad file failing
alone, outputs confined to OUT_DIR; shot chunks joined losslessly onto the source's timestamps."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import psutil
import pytest

from codec_assist import schemas
from codec_assist.scale.batch import COMMANDS, fingerprint, output_names, sha256_file, verified
from codec_assist.encoding.chunked import check_joined, chunk_rates, encode_chunked, parameter_sets, plan_chunks
from codec_assist.encoding.x26x import encode
from codec_assist.scale.engine import EngineOptions
from codec_assist.media.decode import keyframe_indices, probe
from codec_assist.evaluation.metrics import compare_videos
from codec_assist.schemas import BatchManifest, RateControl

ROOT = Path(__file__).resolve().parent.parent
BIKES_CUTS = [30, 76, 137, 187, 242]
FAST = ["--no-assist", "--preset", "ultrafast", "--bitrate", "150k"]


def batch(inp, out, *extra, wait=True):
    cmd = [sys.executable, "-m", "codec_assist", "-q", "batch", str(inp), "-o", str(out), *map(str, extra)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def manifest(out) -> BatchManifest:
    return schemas.load(BatchManifest, Path(out) / "manifest.json")[0]


def leftovers(folder) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".part") or ".chunks-" in p.name]


@pytest.fixture
def library(sample, tmp_path):
    """Three real clips (one in a subfolder) and one file that is not a video."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(sample("bikes.mp4"), d / "bikes.mp4")
    shutil.copy(sample("jwpIntro.mp4"), d / "jwp.mp4")
    shutil.copy(sample("bikes.mp4"), d / "sub" / "bikes.mp4")
    (d / "notes.mp4").write_text("this is not a video\n")
    return d


def test_batch_local_bad_file_fails_alone_and_rerun_skips_verified(library, tmp_path):
    out = tmp_path / "out"
    r = batch(library, out, *FAST, "--engine", "local", "--workers", "2")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "1 of 4 items failed" in r.stderr and "Traceback" not in r.stderr
    m = manifest(out)
    items = {i.input: i for i in m.items}
    assert items["notes.mp4"].status == "failed" and "not a readable media file" in items["notes.mp4"].error
    assert not (out / "notes.mp4").exists()
    for name, frames in (("bikes.mp4", 250), ("jwp.mp4", 173), ("sub/bikes.mp4", 250)):
        item = items[name]
        assert item.status == "done" and item.attempts == 1 and item.summary["frames"] == frames
        (o,) = item.outputs
        assert o.path == name and sha256_file(out / o.path) == o.sha256
        assert probe(out / o.path).frame_count == frames
    assert not leftovers(out)

    # Re-run: verified items are skipped (files untouched), the bad one is tried again; a tampered output is redone.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    with open(out / "jwp.mp4", "r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 16)
    r = batch(library, out, *FAST, "--engine", "local", "--workers", "2")
    assert r.returncode == 2
    m2 = manifest(out)
    items2 = {i.input: i for i in m2.items}
    assert m2.reused == 2
    assert items2["bikes.mp4"].attempts == items2["sub/bikes.mp4"].attempts == 1
    assert items2["jwp.mp4"].attempts == 2 and items2["notes.mp4"].attempts == 2
    assert (out / "bikes.mp4").stat().st_mtime_ns == before[out / "bikes.mp4"]
    assert sha256_file(out / "jwp.mp4") == items2["jwp.mp4"].outputs[0].sha256

    # Changed options or a changed input: not verified, so redone.
    done, names = items2["bikes.mp4"], [Path("bikes.mp4")]
    assert verified(done, fingerprint("encode", m2.options, library / "bikes.mp4"), out, names)
    assert not verified(done, fingerprint("encode", m2.options, library / "bikes.mp4"), out, [Path("other.mp4")])
    assert not verified(done, fingerprint("encode", {**m2.options, "preset": "fast"}, library / "bikes.mp4"), out,
                        names)
    os.utime(library / "bikes.mp4", ns=(1, 1))
    assert not verified(done, fingerprint("encode", m2.options, library / "bikes.mp4"), out, names)


def test_batch_ray_engine(sample, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(sample("bikes.mp4"), d / "a.mp4")
    shutil.copy(sample("jwpIntro.mp4"), d / "b.mp4")
    r = batch(d, tmp_path / "out", *FAST, "--engine", "ray", "--workers", "2")
    assert r.returncode == 0, r.stderr
    m = manifest(tmp_path / "out")
    assert m.engine == "ray" and [i.status for i in m.items] == ["done", "done"]
    assert probe(tmp_path / "out" / "a.mp4").frame_count == 250


def _wait_for(pred, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _done_count(out) -> int:
    try:
        return sum(i["status"] == "done" for i in json.loads((out / "manifest.json").read_text())["items"])
    except (OSError, ValueError, KeyError):
        return 0


def test_batch_killed_mid_run_resumes_without_redoing(library, tmp_path):
    """SIGKILL the whole batch (driver and worker) after the first item: the manifest stays valid; the rerun
    finishes the rest, leaves the finished item alone, and no temp file survives."""
    (library / "notes.mp4").unlink()
    out = tmp_path / "out"
    slow = ["--no-assist", "--preset", "medium", "--bitrate", "300k", "--workers", "1"]
    p = batch(library, out, *slow, wait=False)
    try:
        assert _wait_for(lambda: _done_count(out) >= 1), "no item finished"
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        p.wait(30)
    m = manifest(out)  # valid JSON, schema-checked
    finished = {i.input: i for i in m.items if i.status == "done"}
    assert 1 <= len(finished) < 3
    stamps = {name: (out / name).stat().st_mtime_ns for name in finished}
    r = batch(library, out, *slow)
    assert r.returncode == 0, r.stderr
    m2 = manifest(out)
    assert m2.reused == len(finished) and all(i.status == "done" for i in m2.items)
    for name, item in ((i.input, i) for i in m2.items):
        assert item.attempts == 1, name
        assert sha256_file(out / name) == item.outputs[0].sha256
    assert all((out / name).stat().st_mtime_ns == t for name, t in stamps.items())
    assert not leftovers(out) and not (out / ".codec-assist-batch.lock").exists()


@pytest.mark.slow
def test_batch_worker_killed_is_retried(library, tmp_path):
    (library / "notes.mp4").unlink()
    out = tmp_path / "out"
    p = batch(library, out, "--no-assist", "--preset", "medium", "--bitrate", "300k", "--workers", "1", wait=False)
    try:
        def worker():
            try:
                kids = psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return None
            return next((k for k in kids if "multiprocessing" in " ".join(k.cmdline())
                         and "resource_tracker" not in " ".join(k.cmdline())), None)

        assert _wait_for(lambda: worker() is not None)
        time.sleep(1.5)  # inside the first encode
        worker().kill()
        stdout, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, stderr
    assert all(i.status == "done" for i in manifest(out).items)
    assert not leftovers(out)


def test_outputs_never_leave_the_output_folder(sample, tmp_path):
    d, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    (d / "sub").mkdir(parents=True)
    out.mkdir()
    elsewhere.mkdir()
    shutil.copy(sample("bikes.mp4"), d / "sub" / "clip.mp4")
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)  # a folder in OUT_DIR pointing out of it
    r = batch(d, out, *FAST, "--workers", "1")
    assert r.returncode == 2
    (item,) = manifest(out).items
    assert item.status == "failed" and "outside" in item.error
    assert list(elsewhere.iterdir()) == []


def test_output_names_and_collisions():
    """An encode keeps the input's container where it can (issue 17: motion.mov stays .mov); inputs that would
    share a name keep their suffix."""
    encode_names = COMMANDS["encode"].suffixes
    names = output_names([Path("a.mp4"), Path("a.mkv"), Path("s/b.mov"), Path("c.avi"), Path("c.webm")],
                         encode_names)
    assert names[Path("a.mp4")] == [Path("a.mp4")] and names[Path("a.mkv")] == [Path("a.mkv")]
    assert names[Path("s/b.mov")] == [Path("s/b.mov")]
    assert names[Path("c.avi")] == [Path("c.avi.mp4")] and names[Path("c.webm")] == [Path("c.webm.mp4")]
    assert output_names([Path("x.mpg")], COMMANDS["analyze"].suffixes)[Path("x.mpg")] == [
        Path("x.analysis.json"), Path("x.analysis.npz")]


def test_batch_analyze_command(sample, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(sample("bikes.mp4"), d / "bikes.mp4")
    r = batch(d, tmp_path / "out", "--command", "analyze", "--analyzers", "shots", "--workers", "1")
    assert r.returncode == 0, r.stderr
    analysis, _ = schemas.load(schemas.Analysis, tmp_path / "out" / "bikes.analysis.json",
                               need_arrays=("importance/frames",))
    assert analysis.cut_frames == BIKES_CUTS
    assert manifest(tmp_path / "out").items[0].summary["shots"] == 6


# ---------------------------------------------------------------------------------------------- chunked
def test_plan_chunks_merge_short_shots_and_split_long_ones():
    # bikes: shots of 30, 46, 61, 50, 55, 8 frames at 25 fps; >= 2 s chunks
    assert plan_chunks(BIKES_CUTS, 250, 25.0, 2.0) == [(0, 76), (76, 137), (137, 187), (187, 250)]
    assert plan_chunks([], 100, 25.0, 2.0) == [(0, 100)]
    assert plan_chunks([10], 30, 25.0, 2.0) == [(0, 30)]  # shorter than the minimum: one chunk
    assert plan_chunks([], 250, 25.0, 2.0, max_seconds=4.0) == [(0, 83), (83, 166), (166, 250)]


def test_chunk_rates_from_a_shot_allocation():
    chunks = [(0, 76), (76, 250)]
    even = chunk_rates(chunks, [0, 30, 76], RateControl(mode="abr", bitrate=300_000))
    assert [r.bitrate for r in even] == [300_000, 300_000]
    alloc = chunk_rates(chunks, [0, 30, 76], RateControl(mode="abr", bitrate=300_000), {0: 100_000, 1: 400_000})
    assert alloc[0].bitrate == round((30 * 100_000 + 46 * 400_000) / 76) and alloc[1].bitrate == 300_000


def test_parameter_sets_from_real_headers(sample):
    with av.open(str(sample("bikes.mp4"))) as c:
        size, nals = parameter_sets(c.streams.video[0].codec_context.extradata, "h264")
    assert size == 4 and [n[0] & 0x1F for n in nals] == [7, 8]  # SPS, PPS


def test_chunked_encode_matches_unchunked(bikes_speech, tmp_path):
    """bikes (5 cuts) + speech: same frames and timestamps as the input, IDRs at chunk starts, decodes cleanly,
    audio copied, and PSNR within 0.2 dB of the unchunked two-pass encode at the same bitrate."""
    rate = RateControl(mode="abr", bitrate=300_000)
    out = tmp_path / "chunked.mp4"
    r = encode_chunked(bikes_speech, out, rate=rate, preset="veryfast", shot_starts=[0, *BIKES_CUTS],
                       engine=EngineOptions(workers=2))
    starts = [a for a, _ in plan_chunks(BIKES_CUTS, 250, 25.0)]
    assert check_joined(out, bikes_speech, starts, decode=True) == []
    assert r.frames == 250 and set(starts) <= set(keyframe_indices(out))
    with av.open(str(bikes_speech)) as a, av.open(str(out)) as b:
        src_audio = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        out_audio = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert out_audio == src_audio  # stream copy

    # The same encoder settings unchunked: two passes, and one thread like each chunk (x264's output depends on
    # its thread count: two-pass bikes at 300k measured 40.93 dB with 1 thread, 40.64 with automatic threads).
    same = dict(rate=rate, preset="veryfast", stats_file=tmp_path / "s", threads=1)
    encode(bikes_speech, tmp_path / "p1.mkv", rc_pass=1, **same)
    whole = encode(bikes_speech, tmp_path / "whole.mp4", rc_pass=2, **same)
    q_chunked, q_whole = compare_videos(bikes_speech, out), compare_videos(bikes_speech, tmp_path / "whole.mp4")
    assert abs(r.bitrate_kbps / whole.bitrate_kbps - 1) < 0.03
    assert abs(q_chunked.psnr_y - q_whole.psnr_y) < 0.2, (q_chunked.psnr_y, q_whole.psnr_y)
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_encode_chunked_cli(sample, tmp_path):
    out = tmp_path / "o.mp4"
    r = subprocess.run([sys.executable, "-m", "codec_assist", "-q", "encode", str(sample("bikes.mp4")), "-o", str(out),
                        "--bitrate", "200k", "--preset", "ultrafast", "--no-assist", "--chunked", "--workers", "2",
                        "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["frames"] == 250 and set([0, 76, 137, 187]) <= set(res["keyframes"])


def test_unreachable_ray_address_is_one_line_error(sample, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(sample("bikes.mp4"), d / "a.mp4")
    r = batch(d, tmp_path / "out", *FAST, "--address", "127.0.0.1:1")
    assert r.returncode == 2 and "cannot reach the Ray cluster" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "a.mp4").exists()


# ------------------------------------------------------------------------ options reach every item (issue 17)
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_batch_max_duration_reaches_every_item(sample, tmp_path, engine):
    """--max-duration is passed to each worker (no global set in the parent): a 10-s clip fails, a 5.8-s passes."""
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(sample("bikes.mp4"), d / "long.mp4")  # 10 s
    shutil.copy(sample("jwpIntro.mp4"), d / "short.mp4")  # 5.8 s
    r = batch(d, tmp_path / "out", *FAST, "--engine", engine, "--workers", "2", "--max-duration", "8")
    assert r.returncode == 2, r.stderr
    items = {i.input: i for i in manifest(tmp_path / "out").items}
    assert items["long.mp4"].status == "failed" and "max-duration 8" in items["long.mp4"].error
    assert items["short.mp4"].status == "done"


def test_batch_keeps_containers_and_earlier_outputs(sample, tmp_path):
    """An encode keeps a .mov a .mov (an .avi becomes .mp4, and says so once, with the CLI's prefix); a rerun
    with another --bitrate keeps the earlier outputs unless --overwrite."""
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(sample("bikes.mp4"), d / "motion.mov")
    with av.open(str(sample("jwpIntro.mp4"))) as src, av.open(str(d / "clip.avi"), "w") as dst:
        vs = dst.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        for i, f in enumerate(src.decode(video=0)):
            if i == 25:
                break
            g = f.reformat(320, 240, "yuv420p")
            g.pts, g.time_base = i, Fraction(1, 25)
            for p in vs.encode(g):
                dst.mux(p)
        for p in vs.encode():
            dst.mux(p)
    out = tmp_path / "out"
    r = batch(d, out, *FAST, "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert (out / "motion.mov").is_file() and (out / "clip.mp4").is_file()
    said = [ln for ln in r.stderr.splitlines() if "encoded to MP4" in ln]
    assert len(said) == 1 and said[0].startswith("codec-assist: warning: ") and "clip.avi" in said[0], r.stderr
    before = sha256_file(out / "motion.mov")
    r = batch(d, out, "--no-assist", "--preset", "ultrafast", "--bitrate", "300k", "--workers", "1")
    assert r.returncode == 2 and "--overwrite" in r.stderr, r.stderr
    assert sha256_file(out / "motion.mov") == before
    r = batch(d, out, "--no-assist", "--preset", "ultrafast", "--bitrate", "300k", "--workers", "1", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert sha256_file(out / "motion.mov") != before
