"""Issue 19: the per-shot convex-hull ladder (`encode --ladder auto`).

Pure-policy tests on synthetic rate-quality points (policies.hull), then one end-to-end ladder on the first two
shots of the real montage: playable rung files with an IDR at every shot start (check_joined), each rung near
its budget, the JSON map valid and the CSV map complete.
"""
from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from policies.hull import candidate_heights, choose, crf_between, refinement_crfs, upper_hull


# --------------------------------------------------------------------------------------------- pure policy
def test_upper_hull_drops_points_under_the_hull_and_dominated_points():
    bits = [100, 200, 300, 400, 500, 450]
    quality = [50, 70, 75, 90, 89, 60]
    # 300/75 lies under the chord 200/70 -> 400/90; 500/89 and 450/60 cost more than 400 for less quality
    assert upper_hull(bits, quality) == [0, 1, 3]


def _curve(scale: float, crfs=(18, 24, 30, 36, 42)):
    """A concave rate-quality curve: bits fall exponentially with CRF, quality saturates with log bits."""
    bits = np.array([scale * 2 ** ((30 - c) / 6) for c in crfs])
    return bits, 100 - 60 * np.exp(-bits / (scale * 1.2))


def test_choose_hits_the_budget_at_equal_slope_and_takes_hull_points():
    shots = [_curve(1e5), _curve(4e5), _curve(2e5)]
    frames = [50, 50, 50]
    for budget in (4e5, 8e5, 1.5e6):
        r = choose(shots, frames, budget)
        assert r.feasible
        assert r.bits == pytest.approx(budget, rel=1e-6)
        for (b, q), c in zip(shots, r.shots):
            hull = upper_hull(b, q)
            assert c.lo in hull and c.hi in hull
    # more budget never lowers the predicted quality
    qs = [choose(shots, frames, b).quality for b in (3e5, 6e5, 1.2e6)]
    assert qs == sorted(qs)


def test_equal_slope_beats_an_even_split_of_the_budget():
    """The point of the hull: shots whose quality saturates give bits to shots that still gain."""
    easy, hard = _curve(5e4), _curve(8e5)
    budget = 9e5
    r = choose([easy, hard], [50, 50], budget)
    # the best single-CRF (same index for both shots) allocation within the budget
    best_even = max(((easy[1][i] + hard[1][i]) / 2 for i in range(5) if easy[0][i] + hard[0][i] <= budget))
    assert r.quality > best_even


def test_importance_weight_moves_quality_to_the_shot_that_matters():
    shots, frames = [_curve(2e5), _curve(2e5)], [50, 50]
    plain = choose(shots, frames, 4e5)
    tilted = choose(shots, frames, 4e5, importance=[1.0, 0.0], importance_weight=2.0)
    assert tilted.bits == pytest.approx(4e5, rel=1e-6)
    assert tilted.shots[0].quality > plain.shots[0].quality
    assert tilted.shots[1].quality < plain.shots[1].quality


def test_budget_outside_the_hulls_takes_the_ends():
    shots = [_curve(1e5), _curve(2e5)]
    low = choose(shots, [10, 10], 1.0)
    assert not low.feasible and all(c.lo == c.hi for c in low.shots)
    high = choose(shots, [10, 10], 1e12)
    assert high.feasible and high.bits < 1e12


def test_crf_between_interpolates_in_log_bits_and_heights_stay_below_the_source():
    assert crf_between(20, 30, 1000, 250, 500) == pytest.approx(25.0)
    assert candidate_heights(360) == [360, 240]
    assert candidate_heights(1080) == [1080, 720, 540, 360, 240]
    assert candidate_heights(529) == [528, 360, 240]


def test_refinement_probes_the_gaps_next_to_the_choice_until_they_are_fine():
    # on a vertex: both neighbouring gaps are split; between two probes: that gap only
    assert refinement_crfs([19, 26, 33, 40], 26.0, 2.0) == [22.5, 29.5]
    assert refinement_crfs([19, 26, 33, 40], 30.2, 2.0) == [29.5]
    assert refinement_crfs([19, 26, 33], 19.0, 2.0) == [22.5]  # the grid's end has one side
    assert refinement_crfs([19, 22.5, 26], 24.0, 2.0) == [24.0]  # 3.5 apart: split again (half steps)
    assert refinement_crfs([23, 24, 25], 24.5, 2.0) == []  # fine enough: the refinement ends
    assert refinement_crfs([19, 26], 22.0, 0.0) == []  # step 0: off
    # repeated rounds converge to probes at most `step` apart around a fixed choice, a few probes each
    grid, rounds = [18.0, 26.0, 34.0, 42.0], 0
    while new := refinement_crfs(grid, 27.3, 2.0):
        grid, rounds = sorted(grid + new), rounds + 1
    lo, hi = max(c for c in grid if c <= 27.3), min(c for c in grid if c >= 27.3)
    assert hi - lo <= 2.0 and rounds <= 3 and len(grid) <= 7


def test_a_budget_beyond_the_grid_extends_it_one_step_until_the_crf_range_ends():
    from policies.hull import extension_crf

    grid = [19.0, 26.0, 33.0]
    assert extension_crf(grid, 93.0, 100.0, 0.025, 6.0) == 13.0  # the lowest CRF spends 93 %: probe CRF 13
    assert extension_crf(grid, 110.0, 100.0, 0.025, 6.0) == 39.0  # the highest spends 110 %: probe CRF 39
    assert extension_crf(grid, 98.0, 100.0, 0.025, 6.0) is None  # within tolerance: the grid holds it
    assert extension_crf([3.0, 10.0], 50.0, 100.0, 0.025, 6.0) == 0.0  # clipped to the encoder's range
    assert extension_crf([0.0, 10.0], 50.0, 100.0, 0.025, 6.0) is None  # nothing lower to probe: say so


def test_default_ladder_stops_above_rungs_no_one_should_send_and_resolutions_must_fit_the_budget():
    from policies.hull import worth_sending

    assert worth_sending([800, 400, 200, 100], [92.0, 80.0, 41.0, 12.0]) == [800, 400, 200]
    assert worth_sending([800, 400], [30.0, 10.0]) == [800]  # the top rung stays, whatever it reaches

    from codec_assist.encoding.hull import choose_rung
    from codec_assist.schemas import HullProbe, HullShot

    def probes(height, pairs):
        return [HullProbe(height=height, width=height * 16 // 9, crf=c, bits=b, kbps=0, vmaf=q) for c, b, q in pairs]

    # 480p scores higher at its cheapest point, but that point spends 150 % of the budget; 240p fits it
    shot = HullShot(start_frame=0, end_frame=25, probes=probes(480, [(40, 1500, 50), (51, 1200, 45)])
                    + probes(240, [(30, 1000, 40), (40, 600, 30)]), hull={})
    h, choices, q, *_ = choose_rung([shot], [480, 240], 800, 25.0)
    assert h == 240 and q < 40


def test_finer_hull_spreads_the_shots_over_crfs_where_a_coarse_grid_parks_them_on_one_vertex():
    """Shots of different difficulty on a 7-CRF-apart grid share a vertex; probed finely around the choice they
    take different CRFs and the prediction rises at the same budget (why the refinement exists)."""
    def curve(scale, knee, crfs):
        crfs = np.asarray(crfs, float)
        bits = scale * 2 ** ((30 - crfs) / 6)
        return bits, 100 - 100 * np.exp(-bits / (scale * knee))

    coarse = [19.0, 26.0, 33.0, 40.0]
    params = [(1e5, 0.6), (3e5, 1.0), (2e5, 1.6)]
    frames = [50, 50, 50]
    budget = sum(curve(s, k, [26.0])[0][0] for s, k in params)  # what one CRF 26 spends
    r0 = choose([curve(s, k, coarse) for s, k in params], frames, budget)
    grids = [list(coarse) for _ in params]
    for _ in range(4):
        pts = [curve(s, k, g) for (s, k), g in zip(params, grids)]
        r = choose(pts, frames, budget)
        chosen = [crf_between(g[c.lo], g[c.hi], b[c.lo], b[c.hi], c.bits) if c.lo != c.hi else g[c.lo]
                  for g, (b, _), c in zip(grids, pts, r.shots)]
        grids = [sorted(set(g + refinement_crfs(g, c, 2.0))) for g, c in zip(grids, chosen)]
    # the coarse grid: at most one shot off the shared vertex (it is the one placed between two vertices)
    assert sum(c.lo == c.hi == coarse.index(26.0) for c in r0.shots) >= len(params) - 1
    assert len({round(c) for c in chosen}) == 3  # refined: three different per-shot CRFs
    assert r.bits == pytest.approx(budget, rel=1e-6) and r.quality > r0.quality


# --------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def two_shots(montage, tmp_path_factory) -> Path:
    """The montage's first 110 frames (two shots, a cut at 50), re-encoded near-losslessly: a short real clip."""
    out = tmp_path_factory.mktemp("hull") / "two_shots.mp4"
    with av.open(str(montage)) as src, av.open(str(out), "w") as dst:
        vs = dst.add_stream("libx264", rate=25, options={"crf": "10", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        for n, frame in enumerate(src.decode(video=0)):
            if n >= 110:
                break
            f = frame.reformat(format="yuv420p")
            f.pts, f.time_base = n, Fraction(1, 25)
            for p in vs.encode(f):
                dst.mux(p)
        for p in vs.encode(None):
            dst.mux(p)
    return out


def test_auto_ladder_end_to_end(two_shots, tmp_path):
    import codec_assist as ca
    from codec_assist.encoding.chunked import check_joined
    from codec_assist.schemas import HullLadderReport, load

    out = tmp_path / "ladder"
    rep = ca.encode(two_shots, out, ladder="auto:250k,100k", preset="veryfast",
                    hull={"crfs": [22, 32, 42], "vmaf_every": 10})
    assert isinstance(rep, HullLadderReport)
    starts = [s.start_frame for s in rep.shots]
    assert starts[0] == 0 and 50 in starts
    assert rep.heights == [360, 240] and rep.aligned
    # the 3-CRF grid at both sizes, then refinement probes around each rung's choices (at its size only)
    assert rep.probe_encodes == len(rep.shots) * 2 * 3 + rep.probe_refined and rep.probe_cached == 0
    assert rep.probe_refined > 0 and rep.refine_step == 2.0
    for r in rep.rungs:
        for shot, choice in zip(rep.shots, r.shots):  # every choice has probes at most 2 CRF away on each side
            crfs = sorted(p.crf for p in shot.probes if p.height == r.height)
            below = [c for c in crfs if c <= choice.crf + 1e-6]
            above = [c for c in crfs if c >= choice.crf - 1e-6]
            if below and above and choice.crf not in crfs:
                assert min(above) - max(below) <= 2.0 + 1e-6, (r.name, choice.crf, crfs)
    for r in rep.rungs:
        assert check_joined(r.output, two_shots, starts) == []  # playable, timestamps kept, IDR at shot starts
        assert abs(r.error) <= 0.03, (r.name, r.error, r.encodes)
        assert not r.message
        with av.open(r.output) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (r.width, r.height)
        for shot, choice in zip(rep.shots, r.shots):  # between probed points (the grid may have been extended)
            probed = [p.crf for p in shot.probes if p.height == r.height]
            assert min(probed) <= choice.crf <= max(probed)
    assert rep.rungs[0].predicted_vmaf > rep.rungs[1].predicted_vmaf
    saved, _ = load(HullLadderReport, out / "two_shots.hull.json")  # the JSON map validates
    assert saved.rungs[0].shots == rep.rungs[0].shots
    rows = list(csv.DictReader((out / "two_shots.hull.csv").open()))
    assert len(rows) == len(rep.rungs) * len(rep.shots)
    assert (out / "two_shots.hull.png").read_bytes()[:4] == b"\x89PNG"
    from codec_assist.report.html import _hull

    assert "IDR at every shot start after a hard cut, in every rung: True." in _hull(rep)
    gradual = rep.model_copy(update={"shots": [rep.shots[0], rep.shots[1].model_copy(update={"idr": False})]})
    assert "no IDR after the gradual transition(s) at [50]" in _hull(gradual)

    # a rerun reuses every probe from the cache (no task runs)
    from codec_assist.encoding.hull import run_probes
    from codec_assist.scale.engine import EngineOptions

    units = [(s.start_frame, s.end_frame) for s in rep.shots]
    grid = {(k, h): sorted({p.crf for p in s.probes if p.height == h}) for k, s in enumerate(rep.shots)
            for h in rep.heights}
    probes, stats = run_probes(two_shots, units, grid, codec="x264", preset=rep.probe_preset,
                               engine=EngineOptions(), cache_dir=out / ".hull-probes", vmaf_every=10, max_frames=250)
    assert stats["encodes"] == 0 and stats["cached"] == rep.probe_encodes
    assert probes == [s.probes for s in rep.shots]


def test_auto_ladder_refuses_a_file_output_and_bad_rates(two_shots, tmp_path):
    import codec_assist as ca
    from codec_assist.errors import CodecAssistError

    with pytest.raises(CodecAssistError, match="must be a folder"):
        ca.encode(two_shots, tmp_path / "x.mp4", ladder="auto:400k")
    with pytest.raises(CodecAssistError, match="auto ladder rate"):
        ca.encode(two_shots, tmp_path / "d", ladder="auto:fast")
    assert not any(tmp_path.iterdir())


def test_rung_is_one_pass_whose_zones_carry_each_shots_crf(two_shots, tmp_path):
    """A rung at CRF 30, 20, 30 per shot is one encode: IDRs at the shot starts only, and the CRF-20 shot gets
    what CRF 20 gives (more bits, higher PSNR than the same frames in a plain CRF-30 encode with the same IDRs),
    while the CRF-30 shots stay where plain CRF 30 puts them."""
    import codec_assist.media.decode as media
    from codec_assist.encoding.hull import encode_rung, rung_zones
    from codec_assist.encoding.x26x import encode
    from codec_assist.evaluation.metrics import luma, psnr
    from codec_assist.schemas import HullShotChoice, RateControl

    spans, crfs = [(0, 40), (40, 75), (75, 110)], [30.0, 20.0, 30.0]
    choices = [HullShotChoice(start_frame=a, end_frame=b, crf=c, probe_kbps=0, vmaf=0)
               for (a, b), c in zip(spans, crfs)]
    base, zones = rung_zones(choices)
    assert base == 30.0 and [(z.start_frame, z.end_frame) for z in zones] == [(0, 39), (40, 74), (75, 109)]
    assert zones[1].bitrate_factor == pytest.approx(2 ** (10 / 6))  # -6*log2(f) = -10 QP
    rung, plain = tmp_path / "rung.mp4", tmp_path / "plain.mp4"
    bits = encode_rung(two_shots, rung, choices, (640, 360), codec="x264", preset="veryfast")
    encode(two_shots, plain, rate=RateControl(mode="crf", crf=30), preset="veryfast", params={"scenecut": "0"},
           keyframes=[0, 40, 75])
    assert media.keyframe_indices(rung) == media.keyframe_indices(plain) == [0, 40, 75]
    ref = list(media.iter_frames(two_shots))

    def shot_psnr(path):
        scores = [psnr(luma(r), luma(d)) for r, d in zip(ref, media.iter_frames(path))]
        assert len(scores) == 110
        return [float(np.mean(scores[a:b])) for a, b in spans]

    q_rung, q_plain = shot_psnr(rung), shot_psnr(plain)
    plain_bits = media.packet_bits(plain)
    assert bits[1] > 2 * plain_bits[40:75].sum() and q_rung[1] > q_plain[1] + 3, (bits, q_rung, q_plain)
    assert abs(q_rung[0] - q_plain[0]) < 0.3 and abs(q_rung[2] - q_plain[2]) < 1.0, (q_rung, q_plain)


def test_rung_shot_after_a_gradual_transition_gets_its_crf_without_an_idr(two_shots, tmp_path):
    """A shot start that is not a hard cut (idr_starts leaves it out) keeps its zone but gets no IDR in the rung:
    the CRF-20 span still spends what CRF 20 gives, and the only IDR is frame 0."""
    import codec_assist.media.decode as media
    from codec_assist.encoding.hull import encode_rung
    from codec_assist.schemas import HullShotChoice

    spans, crfs = [(0, 40), (40, 75), (75, 110)], [30.0, 20.0, 30.0]
    choices = [HullShotChoice(start_frame=a, end_frame=b, crf=c, probe_kbps=0, vmaf=0)
               for (a, b), c in zip(spans, crfs)]
    rung, flat = tmp_path / "rung.mp4", tmp_path / "flat.mp4"
    bits = encode_rung(two_shots, rung, choices, (640, 360), codec="x264", preset="veryfast", idr_starts=[0])
    flat_bits = encode_rung(two_shots, flat, [c.model_copy(update={"crf": 30.0}) for c in choices], (640, 360),
                            codec="x264", preset="veryfast", idr_starts=[0])
    assert media.keyframe_indices(rung) == media.keyframe_indices(flat) == [0]
    assert bits[1] > 2 * flat_bits[1], (bits, flat_bits)


def test_joined_chunks_whose_crfs_change_back_decode_every_chunk(two_shots, tmp_path):
    """Chunks at CRF 30, 20, 30 joined (--chunked): the third chunk's parameter sets equal the header's but not
    the second's, so they must go in-band again (before the fix it decoded with the second's initial QP: ~10 dB,
    no error)."""
    import codec_assist.media.decode as media
    from codec_assist.encoding.chunked import check_joined, encode_chunk, join
    from codec_assist.evaluation.metrics import luma, psnr

    spans, crfs = [(0, 40), (40, 75), (75, 110)], [30.0, 20.0, 30.0]
    files = [tmp_path / f"chunk{i}.mkv" for i in range(3)]
    for f, (a, b), c in zip(files, spans, crfs):
        encode_chunk(str(two_shots), str(f), "x264", {"mode": "crf", "crf": c}, "ultrafast", None, None,
                     {"scenecut": "0"}, a, b, 1, two_pass=False)
    out = tmp_path / "joined.mp4"
    join(files, spans, two_shots, out, "mp4", media.frame_timestamps(two_shots))
    assert check_joined(out, two_shots, [a for a, _ in spans]) == []
    scores = [psnr(luma(r), luma(d)) for r, d in zip(media.iter_frames(two_shots), media.iter_frames(out))]
    assert len(scores) == 110
    for a, b in spans:
        assert min(scores[a:b]) > 28, (a, b, min(scores[a:b]))
