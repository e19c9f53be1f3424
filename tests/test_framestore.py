"""FrameStore / FrameStack: per-frame arrays past the memory budget go to an anonymous temp file, and every
result is the same as with everything in RAM (issue 8: memory must not grow with the input's duration)."""
from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from codec_assist import schemas
from codec_assist.framestore import SPILL_ENV, FrameStack, FrameStore, _Ram, stack
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
from codec_assist.planning.plan import make_plan
from policies.qp import (block_areas, block_grid, importance_to_offsets, neutralise, plan_offsets, quantise,
                         smooth_in_shots)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # memory.make_clip


def _open_fds() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


def test_store_below_budget_is_a_dict():
    rng = np.random.default_rng(0)
    s = FrameStore(budget=1 << 20)
    held = np.ones((4, 5), np.float32)
    for k in range(10):
        s[k] = held if k % 2 else rng.random((4, 5)).astype(np.float32)
    assert s.spilled_bytes == 0 and len(s) == 10 and sorted(s) == list(range(10))
    assert all(s[k] is held for k in range(1, 10, 2))  # held by reference, like a dict
    del s[3]
    assert 3 not in s and len(s) == 9
    with pytest.raises(KeyError):
        s[3]


def test_spilled_values_round_trip_and_shared_arrays_are_written_once(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rng = np.random.default_rng(1)
    values = {k: rng.random((45, 80)).astype(np.float32) for k in range(50)}
    held = np.zeros((45, 80), np.float32)
    s = FrameStore(budget=0)
    for k, v in values.items():
        s[k] = v
    for k in range(50, 150):  # a held grid repeated on 100 frames: stored once
        s[k] = held
    s[150] = np.arange(6, dtype=np.int64).reshape(2, 3)  # another shape and dtype
    assert s.spilled_bytes == 51 * held.nbytes + 48
    assert all(np.array_equal(s[k], v) for k, v in values.items())
    assert all(np.array_equal(s[k], held) for k in range(50, 150))
    assert s[150].dtype == np.int64 and s[150].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert list(tmp_path.iterdir()) == []  # the spill file has no name: nothing to leave behind
    spill = [p for p in _open_fds() if "codec-assist-frames" in p or str(tmp_path) in p]
    assert spill  # ... but it is open while the store lives
    s.close()
    assert not [p for p in _open_fds() if str(tmp_path) in p]


def test_rewrite_in_place_never_touches_a_shared_slot():
    s = FrameStore(budget=0)
    shared = np.full((3, 3), 7.0, np.float32)
    s[0] = shared
    s[1] = shared  # same slot as frame 0
    s[2] = np.zeros((3, 3), np.float32)
    end = s.spilled_bytes
    s[1] = np.ones((3, 3), np.float32)  # must not overwrite frame 0's data
    assert s[0].tolist() == [[7.0] * 3] * 3 and s[1].tolist() == [[1.0] * 3] * 3
    s[2] = np.full((3, 3), 2.0, np.float32)  # its own slot: rewritten in place, the file does not grow
    assert s[2].tolist() == [[2.0] * 3] * 3 and s.spilled_bytes == end + 36


def test_temporaries_are_not_mistaken_for_shared_arrays():
    # freed arrays' ids are reused at once: the store must not take a new array for an old one
    s = FrameStore(budget=0)
    for k in range(200):
        s[k] = np.full((8, 8), float(k), np.float32)
    assert [float(s[k][0, 0]) for k in range(200)] == [float(k) for k in range(200)]


def test_budget_is_shared_and_released():
    before = _Ram.held  # other live stores count too: budgets here are on top of theirs
    a, b = FrameStore(budget=before + 1000), FrameStore(budget=before + 1000)
    a[0] = np.zeros(100, np.float32)  # 400 bytes
    a[1] = np.zeros(100, np.float32)  # 800
    b[0] = np.zeros(100, np.float32)  # would make 1200: spilled
    assert a.spilled_bytes == 0 and b.spilled_bytes == 400 and _Ram.held == before + 800
    del a
    gc.collect()
    assert _Ram.held == before
    b[1] = np.zeros(100, np.float32)
    assert b.spilled_bytes == 400  # room again
    b.close()
    assert _Ram.held == before


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv(SPILL_ENV, "0")
    assert FrameStore().budget == 0
    monkeypatch.setenv(SPILL_ENV, "2")
    assert FrameStore().budget == 2 << 20


def test_stack_reads_frames_and_materialises_otherwise(monkeypatch):
    monkeypatch.setenv(SPILL_ENV, "0")
    rng = np.random.default_rng(2)
    ref = rng.random((12, 4, 5)).astype(np.float32)
    st = stack(ref, (4, 5))
    assert st.store.spilled_bytes == ref.nbytes
    assert st.shape == ref.shape and st.ndim == 3 and len(st) == 12 and st.dtype == np.float32
    assert np.array_equal(st[3], ref[3]) and np.array_equal(st[-1], ref[-1]) and st[2, 1, 3] == ref[2, 1, 3]
    assert np.array_equal(np.asarray(st), ref)
    mask = ref.mean(axis=(1, 2)) > 0.5
    assert np.array_equal(st[mask], ref[mask]) and np.array_equal(st[2:5], ref[2:5])
    assert np.array_equal(st[:, 1], ref[:, 1])
    half = st.astype(np.float16)
    assert isinstance(half, FrameStack) and half[0].dtype == np.float16
    # conversions compose as ndarray.astype would: float32 -> float16 -> float32 rounds
    assert np.array_equal(np.asarray(half.astype(np.float32)), ref.astype(np.float16).astype(np.float32))
    assert np.allclose(st * 2, ref * 2) and (st >= 0).all() and np.isclose(st.mean(), ref.mean())
    assert st.reshape(12, -1).shape == (12, 20) and np.percentile(st, 50) == np.percentile(ref, 50)
    assert [f.shape for f in st] == [(4, 5)] * 12
    back = pickle.loads(pickle.dumps(st))  # to another process (Ray): a plain ndarray
    assert isinstance(back, np.ndarray) and np.array_equal(back, ref)


def test_npz_streams_stacks_and_reads_them_back_as_stacks(tmp_path, monkeypatch):
    monkeypatch.setenv(SPILL_ENV, "0")  # the reader's stores spill too
    rng = np.random.default_rng(3)
    grid = rng.random((30, 9, 16)).astype(np.float32)
    arrays = {"importance/frames": np.arange(30) * 8, "importance/grid": stack(grid, (9, 16)).astype(np.float16),
              "flat": rng.random(7)}
    schemas.write_npz(tmp_path / "a.npz", arrays)
    with np.load(tmp_path / "a.npz") as z:  # a standard npz
        assert np.array_equal(z["importance/grid"], grid.astype(np.float16))
        assert np.array_equal(z["flat"], arrays["flat"])
    back = schemas.read_npz(tmp_path / "a.npz")
    assert isinstance(back["importance/grid"], FrameStack) and back["importance/grid"].store.spilled_bytes > 0
    assert back["importance/grid"].dtype == np.float16
    assert np.array_equal(np.asarray(back["importance/grid"]), grid.astype(np.float16))
    assert isinstance(back["flat"], np.ndarray) and np.array_equal(back["importance/frames"], arrays["importance/frames"])


def _plan_offsets_reference(frames, importance, width, height, block, shot_starts, fps, max_dqp, strength=2.0,
                            time_constant=0.5):
    """The whole-array plan_offsets from before the FrameStore (one (K, by, bx) array in RAM)."""
    shape = block_grid(width, height, block)
    areas = block_areas(width, height, block)
    out = np.empty((len(importance), *shape), np.float32)
    for k, g in enumerate(importance):
        out[k] = importance_to_offsets(g, areas, max_dqp, strength)
    seg = np.searchsorted(np.asarray(sorted(shot_starts)), frames, side="right")
    for s in np.unique(seg):
        idx = np.nonzero(seg == s)[0]
        for order in (idx, idx[::-1]):
            prev = None
            for k in order:
                if prev is not None:
                    a = 1.0 - np.exp(-abs(frames[k] - frames[prev]) / (fps * time_constant))
                    out[k] = out[prev] + a * (out[k] - out[prev])
                prev = k
    for k in range(len(out)):
        out[k] = quantise(neutralise(out[k], areas, max_dqp))
    return out


def test_spilled_analysis_and_plan_equal_the_in_memory_ones(sample, monkeypatch):
    """A real clip analysed and planned twice: in RAM, and with every per-frame array spilled to disk."""
    opt = AnalyzeOptions(analyzers=["shots", "saliency", "faces", "text"])
    runs = []
    for budget in ("64", "0"):
        monkeypatch.setenv(SPILL_ENV, budget)
        analysis, arrays = analyze(sample("bikes.mp4"), opt)
        plan, plan_arrays = make_plan(analysis, arrays)
        spilled = arrays["importance/grid"].store.spilled_bytes + plan_arrays["qp/offsets"].store.spilled_bytes
        runs.append((analysis, {k: np.asarray(v) for k, v in {**arrays, **plan_arrays}.items()}, plan, spilled))
    (a_ram, arr_ram, plan_ram, spilled_ram), (a_disk, arr_disk, plan_disk, spilled_disk) = runs
    assert spilled_ram == 0 and spilled_disk > 0
    assert (a_ram.model_dump(exclude={"seconds", "analyzers", "timing"})  # wall-clock times differ
            == a_disk.model_dump(exclude={"seconds", "analyzers", "timing"}))
    assert plan_ram == plan_disk
    for k in arr_ram:
        assert np.array_equal(arr_ram[k], arr_disk[k], equal_nan=True), k
    # and the offsets are exactly what the whole-array implementation gave
    v = a_ram.video
    ref = _plan_offsets_reference(arr_ram["importance/frames"], arr_ram["importance/grid"].astype(np.float32),
                                  v.width, v.height, plan_ram.block_size, plan_ram.shot_starts, v.fps, plan_ram.max_dqp)
    assert np.array_equal(arr_ram["qp/offsets"], ref)
    # smoothing an ndarray in place still works (and gives the same)
    frames = arr_ram["importance/frames"]
    areas = block_areas(v.width, v.height, plan_ram.block_size)
    raw = np.stack([importance_to_offsets(g, areas, plan_ram.max_dqp)
                    for g in arr_ram["importance/grid"].astype(np.float32)])
    via_store = FrameStore(budget=0)
    for k, o in enumerate(raw):
        via_store[k] = o
    smooth_in_shots(frames, via_store, plan_ram.shot_starts, v.fps, inplace=True)
    smoothed = smooth_in_shots(frames, raw, plan_ram.shot_starts, v.fps)
    assert np.array_equal(np.asarray(FrameStack(via_store, range(len(raw)))), smoothed)


def test_plan_offsets_matches_reference_with_cuts_and_gaps():
    rng = np.random.default_rng(4)
    frames = np.array([0, 3, 9, 10, 25, 31, 60, 61, 90])
    imp = rng.random((len(frames), 12, 16)).astype(np.float32)
    new = plan_offsets(frames, imp, 640, 360, 16, [0, 10, 61], 25.0, max_dqp=5.0)
    ref = _plan_offsets_reference(frames, imp, 640, 360, 16, [0, 10, 61], 25.0, max_dqp=5.0)
    assert isinstance(new, FrameStack) and np.array_equal(np.asarray(new), ref)


def test_no_writable_temp_dir_keeps_arrays_in_memory(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    monkeypatch.setattr(logging.getLogger("codec_assist"), "propagate", True)  # the CLI may have turned it off
    s = FrameStore(budget=0)
    values = [np.full((4, 4), float(k), np.float32) for k in range(5)]
    for k, v in enumerate(values):
        s[k] = v
    assert s.spilled_bytes == 0 and all(np.array_equal(s[k], v) for k, v in enumerate(values))
    assert "kept in memory" in caplog.text


def test_ctrl_c_leaves_no_spill_file(tmp_path):
    """SIGINT while the per-frame arrays are spilled: exit 130 and nothing left in TMPDIR (the file has no name)."""
    from badinputs import foreground_signals
    from memory import make_clip

    clip = make_clip(tmp_path / "clip.mp4", 24, 640, 360)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "codec_assist", "encode", str(clip), "-o", str(tmp_path / "o.mp4"),
                          "--preset", "ultrafast", "--analyzers", "saliency", "--analysis-fps", "25"],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), SPILL_ENV: "0"},
                         stderr=subprocess.PIPE, preexec_fn=foreground_signals)

    def spill_open() -> bool:
        try:
            return any(os.readlink(f"/proc/{p.pid}/fd/{fd}").startswith(str(tmp))
                       for fd in os.listdir(f"/proc/{p.pid}/fd"))
        except OSError:
            return False

    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and not spill_open():
        time.sleep(0.02)
    assert spill_open(), "the run never spilled"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert list(tmp.iterdir()) == [] and not (tmp_path / "o.mp4").exists()
