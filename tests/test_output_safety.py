"""Output safety and the odd-but-valid inputs whose result must be checked beyond the exit code:
never over the input (name, symlink, hard link), no overwrite without --overwrite, parent folders made,
Ctrl-C leaves nothing behind, VFR timestamps and rotation survive the encode."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from codec_assist import cli

from badinputs import foreground_signals, set_rotation, write_video

ROOT = Path(__file__).resolve().parent.parent
PLAIN = ["--no-assist", "--preset", "ultrafast"]


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _main(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", frames=12)


def test_output_is_input_by_any_name(clip, tmp_path, capsys):
    before = _digest(clip)
    hard = tmp_path / "hard.mp4"
    os.link(clip, hard)
    soft = tmp_path / "soft.mp4"
    soft.symlink_to(clip)
    for out in (clip, hard, soft, tmp_path / "." / "clip.mp4"):
        code, err = _main(capsys, "encode", clip, "-o", out, *PLAIN, "--overwrite")
        assert code == 2 and "is the input" in err, err
    # the input reached through a link is refused as an output too
    code, err = _main(capsys, "encode", soft, "-o", clip, *PLAIN, "--overwrite")
    assert code == 2 and "is the input" in err
    assert _digest(clip) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "hard.mp4", "soft.mp4"]


def test_existing_output_needs_overwrite(clip, tmp_path, capsys):
    out = tmp_path / "o.mkv"
    out.write_bytes(b"precious")
    code, err = _main(capsys, "encode", clip, "-o", out, *PLAIN)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"precious"
    code, err = _main(capsys, "encode", clip, "-o", out, *PLAIN, "--overwrite")  # after the command
    assert code == 0, err
    assert out.stat().st_size > 100
    out.write_bytes(b"precious")
    code, err = _main(capsys, "--overwrite", "encode", clip, "-o", out, *PLAIN)  # or before it
    assert code == 0, err and out.read_bytes() != b"precious"


def test_analyze_and_plan_refuse_existing_artifacts(clip, tmp_path, capsys):
    an = tmp_path / "an"
    assert _main(capsys, "analyze", clip, "-o", an, "--analyzers", "shots")[0] == 0
    code, err = _main(capsys, "analyze", clip, "-o", an, "--analyzers", "shots")
    assert code == 2 and "already exists" in err
    assert _main(capsys, "plan", an, "-o", tmp_path / "p.json")[0] == 0
    (tmp_path / "p.json").unlink()  # the npz beside it still exists: refused as well
    code, err = _main(capsys, "plan", an, "-o", tmp_path / "p.json")
    assert code == 2 and "p.npz already exists" in err
    code, err = _main(capsys, "plan", an, "-o", an / "analysis.json", "--overwrite")
    assert code == 2 and "is the input" in err


def test_parent_folders_are_created_or_refused_clearly(clip, tmp_path, capsys):
    deep = tmp_path / "a" / "b" / "c" / "o.mp4"
    code, err = _main(capsys, "encode", clip, "-o", deep, *PLAIN)
    assert code == 0 and deep.exists(), err
    (tmp_path / "blocker").write_text("a file where a folder should be")
    code, err = _main(capsys, "encode", clip, "-o", tmp_path / "blocker" / "x" / "o.mp4", *PLAIN)
    assert code == 2 and "is a file" in err
    # a failed run creates no folders
    code, err = _main(capsys, "encode", tmp_path / "missing.mp4", "-o", tmp_path / "new" / "o.mp4", *PLAIN)
    assert code == 2 and not (tmp_path / "new").exists()


def test_vfr_timestamps_are_kept(tmp_path, capsys):
    stamps = [0, 40, 80, 200, 210, 220, 500, 540, 580, 1000, 1040, 1080]
    src = write_video(tmp_path / "vfr.mp4", frames=len(stamps), pts_ms=stamps)
    for args in (PLAIN, ["--preset", "ultrafast", "--analyzers", "shots,saliency"]):
        out = tmp_path / f"o{len(args)}.mp4"
        code, err = _main(capsys, "encode", src, "-o", out, *args)
        assert code == 0, err
        with av.open(str(out)) as c:
            times = sorted(round(float(f.time) * 1000) for f in c.decode(video=0))
        assert times == stamps


def test_rotation_is_carried_to_the_output(tmp_path, capsys):
    src = set_rotation(write_video(tmp_path / "portrait.mp4", frames=6), 90)
    with av.open(str(src)) as c:
        angle = next(c.decode(video=0)).rotation
    assert angle in (90, -90)
    for ext in ("mp4", "mov"):
        out = tmp_path / f"o.{ext}"
        code, err = _main(capsys, "encode", src, "-o", out, *PLAIN)
        assert code == 0, err
        with av.open(str(out)) as c:
            assert next(c.decode(video=0)).rotation == angle


STOPS = [(signal.SIGINT, 130, "codec-assist: interrupted"), (signal.SIGTERM, 143, "codec-assist: terminated")]


@pytest.mark.parametrize("sig,code,line", STOPS, ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_mid_encode_leaves_no_files(tmp_path, sig, code, line):
    """SIGINT (Ctrl-C) or SIGTERM (kill, timeout) while encoding: its exit code, one line, no output and no temp
    file in the output folder."""
    src = write_video(tmp_path / "long.mp4", width=320, height=240, frames=250)  # placebo takes seconds on it
    before = _digest(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "codec_assist", "encode", str(src), "-o", str(out_dir / "o.mp4"),
                          "--preset", "placebo", "--no-assist"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE,
                         preexec_fn=foreground_signals)
    deadline = time.time() + 60
    while time.time() < deadline and not any(out_dir.iterdir()):  # wait for the temp file: mid-encode
        time.sleep(0.05)
    assert any(out_dir.iterdir()), "the encode never started"
    time.sleep(0.3)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert b"Traceback" not in err and err.decode().strip() == line
    assert list(out_dir.iterdir()) == []
    assert _digest(src) == before


def test_what_a_killed_encode_left_goes_with_the_next_run(tmp_path):
    """SIGKILL runs no clean-up: the part-written output stays beside the output (hidden, named with the dead
    process's id). The next encode to the same output removes it; a live process's part file and other names stay."""
    from codec_assist.media import safeio

    src = write_video(tmp_path / "long.mp4", width=320, height=240, frames=250)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cmd = [sys.executable, "-m", "codec_assist", "encode", str(src), "-o", str(out_dir / "o.mp4"), "--no-assist"]
    p = subprocess.Popen([*cmd, "--preset", "placebo"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(out_dir.iterdir()):
        time.sleep(0.05)
    time.sleep(0.3)
    p.kill()
    p.wait(timeout=60)
    (left,) = out_dir.iterdir()
    assert left.name.startswith(f".o.mp4.{p.pid}.") and left.name.endswith(".mp4.part")
    live = out_dir / f".o.mp4.{os.getpid()}.x.mp4.part"  # a run still writing (this process)
    live.write_bytes(b"")
    (out_dir / ".o.mp4.notes.txt").write_bytes(b"")  # not a part file
    subprocess.run([*cmd, "--preset", "ultrafast"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   check=True, capture_output=True, timeout=120)
    assert sorted(f.name for f in out_dir.iterdir()) == sorted([".o.mp4.notes.txt", live.name, "o.mp4"])
    # the same for work folders (compare's encodes, VMAF's log): one of a dead process goes, this one's stays
    dead = tmp_path / f"codec-assist-{p.pid}-abc"
    (dead / "sub").mkdir(parents=True)
    mine = tmp_path / f"codec-assist-{os.getpid()}-abc"
    mine.mkdir()
    assert safeio.sweep_stale(tmp_path, "codec-assist-") == [dead] and mine.exists() and not dead.exists()


def test_threads_stop_even_if_ctrl_c_left_a_queue_locked(monkeypatch):
    """A Ctrl-C can land inside Queue.put/get after the queue's lock is taken and before its `with` block starts,
    leaving the lock held for good (this hung a CI run's Ctrl-C test). Stopping the analyzer lanes and the
    read-ahead must not need that lock: they return within their bound and raise nothing."""
    import threading

    import numpy as np

    import codec_assist.media.decode as media
    from analyzers.base import Analyzer
    from codec_assist.analysis.pipeline import _Lane
    from codec_assist.schemas import AnalyzerRun

    monkeypatch.setattr(media, "STOP_GRACE_SECONDS", 0.5)

    class Counter(Analyzer):
        name = "counter"

        def process(self, frame) -> None:
            pass

    unit = Counter()
    lane = _Lane(unit, {unit.name: AnalyzerRun(name=unit.name, seconds=0, frames_seen=0)}, [unit])
    lane.put(np.zeros(4))
    assert lane._queue.mutex.acquire(timeout=5)  # the state an interrupted put() leaves
    t = time.perf_counter()
    lane.close(abandon=True)
    assert time.perf_counter() - t < 5

    ahead = media.ReadAhead(iter(range(10_000)), depth=2)
    assert next(ahead) == 0
    assert ahead._queue.mutex.acquire(timeout=5)  # as an interrupted next() leaves it
    t = time.perf_counter()
    ahead.close()
    assert time.perf_counter() - t < 5
    lane._queue.mutex.release()  # once the locks are free, both threads end of their own accord
    ahead._queue.mutex.release()
    lane._thread.join(5)
    ahead._worker.join(5)
    assert not lane._thread.is_alive() and not ahead._worker.is_alive()


def test_ctrl_c_does_not_wait_for_whisper(tmp_path, sample):
    """SIGINT while Whisper works through a minute of speech: exit 130 at once, not when Whisper is done
    (interpreter exit joins its thread: 15-25 s after Ctrl-C before the fix on this clip)."""
    import shutil

    src = tmp_path / "talk_58s.mp4"  # jwpIntro 10 times: a minute of one man speaking
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-stream_loop", "9", "-i",
                    str(sample("jwpIntro.mp4")), "-c", "copy", str(src)], check=True)
    p = subprocess.Popen([sys.executable, "-m", "codec_assist", "analyze", str(src), "-o", str(tmp_path / "an")],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE,
                         preexec_fn=foreground_signals)

    def cpu_seconds() -> float:
        try:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and cpu_seconds() < 5:  # models loaded, Whisper started
        time.sleep(0.05)
    assert p.poll() is None, "the analysis ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    t = time.perf_counter()
    _, err = p.communicate(timeout=120)
    waited = time.perf_counter() - t
    assert p.returncode == 130 and err.decode().strip() == "codec-assist: interrupted", err
    assert waited < 8, f"the exit waited {waited:.1f} s after Ctrl-C"
    assert not (tmp_path / "an").exists()


def _encode_trailer_20s(sample, tmp_path, *options: str):
    """A CLI encode of 20 s of 720p (bbb_trailer looped) into tmp_path/out, started with the foreground's signals;
    returns (process, output folder)."""
    src = tmp_path / "trailer_20s.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "1", "-i", str(sample("bbb_trailer.mp4")), "-t", "20",
                    "-c", "copy", str(src)], check=True)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "codec_assist", "encode", str(src), "-o", str(out_dir / "o.mp4"),
                          "--bitrate", "1000k", *options], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stderr=subprocess.PIPE, preexec_fn=foreground_signals)
    return p, out_dir


def _children(pid: int) -> list[str]:
    try:
        return open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return []


def _assert_gone(pids: list[str], what: str) -> None:
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{c}") for c in pids):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{c}") for c in pids), what


@pytest.mark.parametrize("sig,code,line", STOPS + [(signal.SIGKILL, -9, "")], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_ctrl_c_while_the_analysis_runs_beside_the_encoder(sample, tmp_path, sig, code, line):
    """The overlapped encode (--overlap: the analysis in a second process beside the encoder): SIGINT or SIGTERM to the
    encoder's process mid-encode gives its exit code and one line and leaves no output; whatever stops the encoder,
    even SIGKILL (which runs no clean-up), the analysis process does not outlive it."""
    p, out_dir = _encode_trailer_20s(sample, tmp_path, "--overlap")
    children: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline and not (children and any(out_dir.iterdir())):
        children = _children(p.pid)
        time.sleep(0.05)
    assert children and any(out_dir.iterdir()), "the overlapped encode never started"
    time.sleep(0.5)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    if sig != signal.SIGKILL:  # SIGKILL leaves the hidden temporary output: nothing can remove it
        assert b"Traceback" not in err and err.decode().strip() == line
        assert list(out_dir.iterdir()) == []
    _assert_gone(children, "the analysis process outlived the encode")


@pytest.mark.parametrize("sig,code,line", STOPS + [(signal.SIGKILL, -9, "")], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_ctrl_c_while_the_analysis_runs_first_in_its_child(sample, tmp_path, sig, code, line):
    """The analysis before the encode runs in a forked child (analysis.forked): a signal to the CLI while it works
    gives the exit code and one line at once (it does not wait for the child's analysis), and the child does not
    outlive the CLI, whatever stopped it."""
    p, out_dir = _encode_trailer_20s(sample, tmp_path, "--no-overlap")
    children: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline and not children:
        children = _children(p.pid)
        time.sleep(0.05)
    assert children, "the analysis never started"
    time.sleep(0.5)
    p.send_signal(sig)
    t = time.perf_counter()
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert time.perf_counter() - t < 3, "the CLI waited for its analysis child"
    if sig != signal.SIGKILL:
        assert b"Traceback" not in err and err.decode().strip() == line
    assert list(out_dir.iterdir()) == []  # the encode had not started: not even its temporary file
    _assert_gone(children, "the analysis child outlived the CLI")
