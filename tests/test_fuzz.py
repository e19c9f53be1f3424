"""Property-based tests (hypothesis) for the policies, the artifact loader and the ROI bridge, plus a short bounded
pass of the atheris harness (the long run is documented in fuzz/README.md and docs/ROBUSTNESS.md)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import codec_assist.encoding.roi as roi

from codec_assist import schemas
from codec_assist.errors import SchemaError
from policies.keyframes import keyframes
from policies.qp import block_areas, block_grid, importance_to_offsets, offsets_at, plan_offsets

ROOT = Path(__file__).resolve().parent.parent
CI = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------------------ policies
@CI
@given(cuts=st.lists(st.integers(-10, 3000), max_size=40), frame_count=st.integers(1, 3000),
       min_gop=st.integers(1, 300), extra=st.integers(0, 300))
def test_keyframes_properties(cuts, frame_count, min_gop, extra):
    max_gop = min_gop + extra
    ks = keyframes(cuts, frame_count, min_gop, max_gop)
    assert ks[0] == 0 and ks == sorted(set(ks)) and ks[-1] < frame_count
    gaps = np.diff([*ks, frame_count])
    assert (gaps <= max_gop).all()  # the encoder never needs its own keyframe
    for c in set(cuts):  # a cut far enough from every other anchor becomes an IDR
        if 0 < c < frame_count and all(abs(c - o) >= min_gop for o in [0, *cuts] if o != c and 0 <= o < frame_count):
            assert c in ks


@CI
@given(cuts=st.lists(st.integers(1, 3000), max_size=40), frame_count=st.integers(1, 3000),
       min_gop=st.integers(1, 100), extra=st.integers(0, 200), more=st.integers(0, 300), known=st.integers(1, 3000))
def test_keyframes_with_a_lookahead(cuts, frame_count, min_gop, extra, more, known):
    """The encoder beside the analysis: each IDR decision sees only `lookahead` frames of cuts ahead. The GOP
    bound still holds; where no gap exceeds 2 max_gop there are as many IDRs as in the whole-video plan, and the
    same ones with a lookahead of max_gop or more; what is decided from the cuts known so far (open_end) is final
    before known - lookahead."""
    max_gop = min_gop + extra
    lookahead = more
    ks = keyframes(cuts, frame_count, min_gop, max_gop, lookahead=lookahead)
    assert ks[0] == 0 and ks == sorted(set(ks)) and ks[-1] < frame_count
    assert (np.diff([*ks, frame_count]) <= max_gop).all()
    whole = keyframes(cuts, frame_count, min_gop, max_gop)
    anchors = [k for k in whole if k == 0 or k in cuts]
    if (np.diff([*anchors, frame_count]) <= 2 * max_gop).all():
        assert len(ks) == len(whole) and (ks == whole or lookahead < max_gop)
    known = min(known, frame_count)
    so_far = keyframes([c for c in cuts if c < known], known, min_gop, max_gop, lookahead=lookahead, open_end=True)
    final = known - lookahead
    assert [k for k in so_far if k < final] == [k for k in ks if k < final]


@CI
@given(cuts=st.lists(st.integers(0, 100)), frame_count=st.integers(1, 100), min_gop=st.integers(-5, 0))
def test_keyframes_refuses_bad_gops(cuts, frame_count, min_gop):
    with pytest.raises(ValueError):
        keyframes(cuts, frame_count, min_gop, 10)


sizes = st.tuples(st.integers(16, 400), st.integers(16, 300), st.sampled_from([16, 32, 64]))


@CI
@given(size=sizes, max_dqp=st.floats(0.5, 15), strength=st.floats(0.1, 10), data=st.data())
def test_offsets_are_bounded_and_rate_neutral(size, max_dqp, strength, data):
    w, h, block = size
    by, bx = block_grid(w, h, block)
    imp = data.draw(arrays(np.float32, (by, bx), elements=st.floats(0, 1, width=32)))
    areas = block_areas(w, h, block)
    off = importance_to_offsets(imp, areas, max_dqp, strength)
    assert off.shape == (by, bx) and np.isfinite(off).all()
    assert np.abs(off).max() <= max_dqp + 1e-4
    assert abs(float((off * areas).sum() / areas.sum())) <= 0.02 * max_dqp + 1e-4


@CI
@given(size=sizes, k=st.integers(1, 6), data=st.data())
def test_plan_offsets_and_lookup(size, k, data):
    w, h, block = size
    frames = np.array(sorted(data.draw(st.sets(st.integers(0, 200), min_size=k, max_size=k))), np.int64)
    starts = sorted({0, *data.draw(st.lists(st.integers(1, 200), max_size=4))})
    grid = data.draw(arrays(np.float32, (k, 6, 8), elements=st.floats(0, 1, width=32)))
    off = plan_offsets(frames, grid, w, h, block, starts, 25.0, 6.0)
    assert off.shape == (k, *block_grid(w, h, block)) and np.abs(off).max() <= 6.0 + 1e-4
    for f in data.draw(st.lists(st.integers(0, 250), max_size=10)):
        g = offsets_at(f, frames, off, starts)
        assert g is None or (g.shape == off.shape[1:] and np.abs(g).max() <= 6.0 + 1e-4)


# ----------------------------------------------------------------------------------------------- schemas
GOOD_PLAN = schemas.EncodePlan(codec="x264", width=64, height=48, frame_count=12, fps=25.0, block_size=16,
                               blocks_x=4, blocks_y=3, max_dqp=6.0, keyframes=[0, 6], shot_starts=[0, 6],
                               min_gop=1, max_gop=250)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=4), max_leaves=12)


@settings(CI, max_examples=30)
@given(field=st.sampled_from(list(json.loads(GOOD_PLAN.model_dump_json(by_alias=True)))), value=json_values)
def test_mutated_plan_json_loads_or_fails_in_one_line(tmp_path_factory, field, value):
    d = tmp_path_factory.mktemp("p")
    raw = json.loads(GOOD_PLAN.model_dump_json(by_alias=True))
    raw[field] = value
    (d / "plan.json").write_text(json.dumps(raw))
    try:
        plan, _ = schemas.load(schemas.EncodePlan, d / "plan.json")
    except SchemaError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(plan, schemas.EncodePlan)


@CI
@given(data=st.binary(max_size=2000))
def test_any_bytes_as_plan_or_npz(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("b")
    (d / "plan.json").write_bytes(data)
    with pytest.raises(SchemaError):
        schemas.load(schemas.EncodePlan, d / "plan.json")
    schemas.save(GOOD_PLAN, d / "good.json")
    (d / "good.npz").write_bytes(data)
    with pytest.raises(SchemaError):
        schemas.load(schemas.EncodePlan, d / "good.json", need_arrays=("qp/frames",))


@CI
@given(plan=st.builds(schemas.EncodePlan, codec=st.sampled_from(["x264", "x265"]), width=st.integers(1, 8192),
                      height=st.integers(1, 8192), frame_count=st.integers(1, 10**6), fps=st.floats(0.1, 240),
                      block_size=st.sampled_from([16, 32, 64]), blocks_x=st.integers(1, 512),
                      blocks_y=st.integers(1, 512), max_dqp=st.floats(0, 25), keyframes=st.lists(st.integers(0, 10**6)),
                      shot_starts=st.lists(st.integers(0, 10**6)), min_gop=st.integers(1, 100),
                      max_gop=st.integers(1, 1000), source=st.text(max_size=20)))
def test_plan_round_trip(tmp_path_factory, plan):
    p = tmp_path_factory.mktemp("r") / "plan.json"
    schemas.save(plan, p)
    again, _ = schemas.load(schemas.EncodePlan, p)
    assert again == plan


# ------------------------------------------------------------------------------------------------ ROI bridge
@CI
@given(offsets=arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                      elements=st.floats(-51, 51, width=32)), block=st.sampled_from([4, 8, 16, 32]))
def test_regions_tile_the_grid_exactly(offsets, block):
    by, bx = offsets.shape
    w, h = bx * block - block // 2, by * block  # a partial last column
    regions = roi.regions_from_grid(offsets, block, w, h)
    back = np.zeros((by, bx), np.int32)
    for r in regions:
        assert 0 <= r["left"] < r["right"] <= w and 0 <= r["top"] < r["bottom"] <= h
        back[r["top"] // block, r["left"] // block: -(-r["right"] // block)] = r["num"]
    assert (back == np.rint(offsets * 256)).all()


def test_random_qp_maps_encode_without_crash(tmp_path):
    """Random grids (any shape, values up to ±51 QP, NaN-free) attached to real frames and encoded: no crash,
    no memory error, every frame comes out. Runs the bridge ~100 times with fresh maps."""
    rng = np.random.default_rng(7)
    path = tmp_path / "roi.mp4"
    for codec, block in (("libx264", 16), ("libx265", 32)):
        with av.open(str(path), "w", format="mp4") as out:
            s = out.add_stream(codec, rate=25)
            s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
            s.options = {"preset": "ultrafast", f"{codec[3:]}-params": "log-level=error" if codec == "libx265"
                         else "aq-mode=1"}
            for i in range(50):
                f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 96, 3), np.uint8), format="rgb24")
                f = f.reformat(format="yuv420p")
                f.pts, f.time_base = i, Fraction(1, 25)
                by, bx = int(rng.integers(1, 9)), int(rng.integers(1, 9))  # any grid, even mismatched
                grid = rng.uniform(-51, 51, (by, bx)).astype(np.float32) * rng.integers(0, 2, (by, bx))
                roi.attach_qp_offsets(f, grid, int(rng.integers(1, 4)) * block)
                for p in s.encode(f):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
        with av.open(str(path)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 50


# ------------------------------------------------------------------------------------------------ atheris
def _fuzz(harness: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a harness as a grandchild of this process. libFuzzer's -rss_limit_mb reads the peak RSS from getrusage,
    which Linux carries across fork+exec: a harness forked straight from a pytest process that has loaded models
    starts "using" the parent's gigabytes and fails out-of-memory at its first input. Going through sh (which
    forks it from its own small process) measures the harness alone."""
    return subprocess.run(["sh", "-c", '"$@"; exit $?', "sh", sys.executable, str(ROOT / "fuzz" / harness), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_atheris_plan_loader_short_pass():
    """A bounded coverage-guided run in CI; fuzz/README.md has the long one (>= 10 000 runs)."""
    r = _fuzz("plan_loader.py", "-atheris_runs=300", "-seed=1", cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 300 " in r.stderr, r.stderr[-500:]
    r = _fuzz("plan_loader.py", "--random", "300", "1", cwd=ROOT)
    assert r.returncode == 0 and "no crash" in r.stdout, r.stderr[-3000:]


@pytest.mark.parametrize("harness,runs", [("bitstream_parser.py", 300), ("subtitles.py", 300),
                                          ("taxonomy_loader.py", 60)])  # the YAML loader runs ~20 inputs/s
def test_atheris_short_pass(harness, runs, tmp_path):
    """The other harnesses, bounded for CI (fuzz/README.md has their >= 10 000-run results). Run from a temp
    folder so a crash file or a harness's corpus lands there, not in the checkout."""
    r = _fuzz(harness, f"-atheris_runs={runs}", "-seed=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Done {runs} " in r.stderr, r.stderr[-500:]
    # the RSS libFuzzer budgets against is the harness's own, not what this pytest process holds
    start_rss = int(re.search(r"INITED .* rss: (\d+)Mb", r.stderr).group(1))
    assert start_rss < 1024, r.stderr[-500:]
