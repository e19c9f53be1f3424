"""Shot allocation, target-quality search, event keyframes and ladders: pure policies and real encodes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import codec_assist.media.decode as media
from codec_assist.encoding.allocated import encode_budget
from codec_assist.planning.allocate import allocation_units, plan_budget, unit_importance
from codec_assist.cli import main
from codec_assist.evaluation.metrics import bd_rate, compare_videos, frame_importance_weights, parse_roi
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
from codec_assist.planning.plan import PlanOptions, make_plan
from codec_assist.schemas import RateControl
from policies.allocation import allocate, crf_zone_factors, exact_shares, zones_string
from policies.keyframes import keyframes
from policies.target_quality import next_step


# ----------------------------------------------------------------------------------------------- policies
def test_exact_shares_sum_to_the_total():
    rng = np.random.default_rng(1)
    for _ in range(200):
        w = rng.random(rng.integers(1, 20)) * rng.integers(1, 1000)
        total = int(rng.integers(0, 10**9))
        parts = exact_shares(total, w)
        assert parts.sum() == total and (parts >= 0).all()
        assert np.abs(parts - total * w / w.sum()).max() <= 1.0


def test_allocate_sums_exactly_and_follows_importance_and_complexity():
    frames, cx = [30, 46, 61, 50], [5e3, 12e3, 13e3, 18e3]
    flat = allocate(10**6 + 7, frames, cx, [0.3, 0.3, 0.3, 0.3])
    assert flat.bits.sum() == 10**6 + 7
    np.testing.assert_allclose(flat.factor, 1.0)  # equal importance: the encoder's own equal-quality split
    np.testing.assert_allclose(flat.bits / flat.bits.sum(), np.multiply(frames, cx) / np.dot(frames, cx), atol=1e-5)
    tilted = allocate(10**6, frames, cx, [0.1, 0.3, 0.9, 0.3])
    assert tilted.bits.sum() == 10**6
    assert tilted.factor[2] > tilted.factor[1] > tilted.factor[0]
    assert tilted.factor[1] == pytest.approx(tilted.factor[3])
    assert np.dot(np.multiply(frames, cx), tilted.factor) == pytest.approx(np.dot(frames, cx))  # predicted total kept
    assert np.abs(tilted.dqp).max() <= 4.0 + 1e-9
    strong = allocate(10**6, frames, cx, [0.0, 0.0, 1.0, 0.0], strength=10, max_dqp=3)
    assert np.ptp(strong.dqp) <= 6.0 + 1e-9  # each side bounded (then re-centred)
    with pytest.raises(ValueError):
        allocate(10**6, [30, 0], [1e3, 1e3], [0.5, 0.5])


def test_zone_strings_and_crf_factors():
    assert zones_string([0, 30], [29, 75], [1.25, 1.0]) == "0,29,b=1.25"
    f = crf_zone_factors(26, [20, 26, 32])
    np.testing.assert_allclose(f, [2.0, 1.0, 0.5])


def curve(crf):  # a realistic PSNR(CRF) curve: convex, ~0.5 dB per step
    return 58.0 - 0.45 * crf - 0.004 * crf**2


@pytest.mark.parametrize("target", [32.0, 38.5, 44.0, 47.9])
def test_target_search_interpolates_to_the_target_in_few_probes(target):
    probes = []
    while (step := next_step(probes, target, lo=8, hi=45)).status == "probe":
        probes.append((step.crf, curve(step.crf)))
    assert step.status == "hit"
    assert abs(curve(step.crf) - target) <= 0.25
    assert len(probes) <= 4


def test_target_search_reports_unreachable_targets_with_the_closest_probe():
    probes = []
    while (step := next_step(probes, 60.0, lo=8, hi=45)).status == "probe":
        probes.append((step.crf, curve(step.crf)))
    assert step.status == "too-high" and step.crf == 8 and len(probes) <= 4
    probes = []
    while (step := next_step(probes, 20.0, lo=8, hi=45)).status == "probe":
        probes.append((step.crf, curve(step.crf)))
    assert step.status == "too-low" and step.crf == 45


def test_target_search_stops_at_the_probe_budget_on_noisy_quality():
    rng = np.random.default_rng(3)
    probes = []
    while (step := next_step(probes, 40.0, max_probes=3, tol=0.01)).status == "probe":
        probes.append((step.crf, curve(step.crf) + rng.normal(0, 0.5)))
    assert step.status in ("max-probes", "hit") and len(probes) <= 3


def test_event_keyframes_respect_cuts_and_gop_limits():
    kf = keyframes([30, 76], 250, min_gop=12, max_gop=250, events=[20, 40, 100, 105, 245])
    assert kf[:4] == [0, 30, 76, 100] and 105 not in kf  # 20 and 40 crowd cut 30; 105 crowds event 100
    kf = keyframes([30, 76], 250, min_gop=12, max_gop=250, events=[100, 200])
    assert kf == [0, 30, 76, 100, 200]
    kf = keyframes([], 250, min_gop=10, max_gop=60, events=[5, 130])
    assert kf[0] == 0 and 130 in kf and 5 not in kf
    assert max(np.diff(kf + [250])) <= 60


def test_shot_importance_is_the_frame_scalar_and_scores_with_the_same_weights():
    # two analysed frames per shot; the talking head's grid mean is barely higher, its scalar much higher
    grid = np.full((4, 3, 4), 0.2, np.float32)
    grid[2:, 1, 1] = 1.0
    scalar = np.array([0.2, 0.2, 0.8, 0.7], np.float32)
    arrays = {"importance/frames": np.array([0, 10, 20, 30]), "importance/grid": grid, "importance/scalar": scalar}
    units = allocation_units([20], 40, 25.0)
    np.testing.assert_allclose(unit_importance(units, arrays), [0.2, 0.75], atol=1e-6)
    w = frame_importance_weights(arrays["importance/frames"], grid, scalar)
    assert w(25).mean() == pytest.approx(0.8) and w(39).mean() == pytest.approx(0.7)  # latest analysed frame
    assert w(25)[1, 1] / w(25)[0, 0] == pytest.approx(5.0)  # where in the frame: the grid's shape is kept
    np.testing.assert_array_equal(frame_importance_weights(arrays["importance/frames"], grid)(5), grid[0])
    flat = frame_importance_weights(np.array([0]), np.zeros((1, 2, 2)), np.array([0.4]))(0)
    np.testing.assert_allclose(flat, 0.4)  # an empty grid spreads the frame's weight evenly


# ---------------------------------------------------------------------------------------- real encodes
def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_allocate_keeps_the_total_budget(sample, tmp_path, capsys):
    src = sample("bikes.mp4")
    out, plan = tmp_path / "a.mp4", tmp_path / "plan.json"
    code, text, err = _run(["-q", "encode", str(src), "-o", str(out), "--bitrate", "300k", "--allocate", "--preset",
                            "ultrafast", "--analyzers", "shots,saliency", "--save-plan", str(plan), "--json"], capsys)
    assert code == 0, err
    res = json.loads(text)
    alloc = res["allocation"]
    assert alloc["mode"] == "budget"
    assert sum(s["bits"] for s in alloc["shots"]) == alloc["budget_bits"] == round(300e3 * 250 / 25)
    assert abs(alloc["total_bits"] / alloc["budget_bits"] - 1) <= 0.03
    assert [s["start_frame"] for s in alloc["shots"]] == [0, 30, 76, 137, 187, 242]
    assert all(s["complexity"] > 0 and s["bits_actual"] > 0 for s in alloc["shots"])
    saved = json.loads(plan.read_text())
    assert saved["zones"] and saved["allocation"]["mode"] == "budget"


def test_target_quality_hits_psnr_per_shot(sample, tmp_path, capsys):
    src = sample("bikes.mp4")
    out = tmp_path / "tq.mp4"
    code, text, err = _run(["-q", "encode", str(src), "-o", str(out), "--target-quality", "psnr=38",
                            "--preset", "ultrafast", "--analyzers", "shots", "--json"], capsys)
    assert code == 0, err
    alloc = json.loads(text)["allocation"]
    assert alloc["metric"] == "psnr" and alloc["probe_encodes"] >= len(alloc["shots"])
    for s in alloc["shots"]:
        assert s["status"] == "hit" and 1 <= len(s["probes"]) <= 6
        assert abs(s["achieved"] - 38) <= 0.5, s
    assert len(set(s["crf"] for s in alloc["shots"])) > 1  # shots differ, so do their CRFs


def test_impossible_target_still_delivers_the_closest_encode(sample, tmp_path, capsys):
    src = sample("cityCC0.mpg")
    out = tmp_path / "tq.mp4"
    code, text, err = _run(["-q", "encode", str(src), "-o", str(out), "--target-quality", "psnr=75",
                            "--preset", "ultrafast", "--analyzers", "shots", "--max-probes", "3"], capsys)
    assert code == 0, err
    assert out.exists() and media.probe(out).frame_count == media.probe(src).frame_count
    assert "out of reach" in text and "closest" in text


def test_ladder_renditions_share_idr_frames(sample, tmp_path, capsys):
    src = sample("bikes.mp4")
    rep = tmp_path / "ladder.json"
    code, text, err = _run(["-q", "encode", str(src), "-o", str(tmp_path / "{rung}.mp4"), "--ladder",
                            "272p:300k,180p:150k,120p:80k", "--preset", "ultrafast", "--analyzers", "shots",
                            "--events", "100", "--report", str(rep), "--html", str(tmp_path / "ladder.html")], capsys)
    assert code == 0, err
    report = json.loads(rep.read_text())
    page = (tmp_path / "ladder.html").read_text()  # the page has the rungs' table and the verdict
    assert "<h3>Ladder (x264 ultrafast)" in page and page.count("same as the plan") == 3
    assert "segments align across renditions" in page
    assert report["aligned"] and 100 in report["plan_keyframes"]
    sizes = set()
    for r in report["rungs"]:
        path = tmp_path / f"{r['name']}.mp4"
        info = media.probe(path)
        sizes.add((info.width, info.height))
        assert media.keyframe_indices(path) == report["plan_keyframes"]  # decoded, not just reported
        assert r["plain_keyframes"] is not None and 100 not in r["plain_keyframes"]
    assert sizes == {(640, 272), (424, 180), (282, 120)}
    # the same command again: the rungs exist, --overwrite replaces them (it used to stop at the first rung)
    again = ["-q", "encode", str(src), "-o", str(tmp_path / "{rung}.mp4"), "--ladder", "120p:80k", "--preset",
             "ultrafast", "--analyzers", "shots"]
    code, _, err = _run(again, capsys)
    assert code == 2 and "already exists" in err
    code, _, err = _run([*again, "--overwrite"], capsys)
    assert code == 0, err


def test_bad_requests_are_one_line_errors(sample, tmp_path, capsys):
    src = sample("bikes.mp4")
    code, _, err = _run(["encode", str(src), "-o", str(tmp_path / "x.mp4"), "--allocate"], capsys)
    assert code == 2 and "budget" in err and err.count("\n") == 1
    code, _, err = _run(["encode", str(src), "-o", str(tmp_path / "x.mp4"), "--target-quality", "psnr=40",
                         "--bitrate", "300k"], capsys)
    assert code == 2 and err.count("\n") == 1
    code, _, err = _run(["encode", str(src), "-o", str(tmp_path / "x"), "--ladder", "720:1M"], capsys)
    assert code == 2 and "ladder rung" in err and err.count("\n") == 1
    code, _, err = _run(["encode", str(src), "-o", str(tmp_path / "x.mp4"), "--target-quality", "psnr=abc"], capsys)
    assert code == 2 and "METRIC=VALUE" in err
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------- montage: shots that differ
def _montage_layout():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "samples"))
    try:
        import compose
    finally:
        sys.path.pop(0)
    talking = {s for (src, *_), s in zip(compose.MONTAGE, compose.montage_starts()) if src == "jwpIntro.mp4"}
    return talking, [parse_roi(r) for r in compose.montage_face_rois()]


def _montage_pair(montage, tmp: Path, rates, preset):
    """Uniform and allocated encodes of the montage at each rate: (allocation, quality) per (rate, mode)."""
    analysis, arrays = analyze(montage, AnalyzeOptions(analyzers=["shots", "saliency", "faces", "audio"]))
    plan, plan_arrays = make_plan(analysis, arrays, PlanOptions(max_dqp=0))  # no per-block offsets: shots only
    weights = frame_importance_weights(arrays["importance/frames"], arrays["importance/grid"],
                                       arrays["importance/scalar"])
    _, faces = _montage_layout()
    out = {}
    for kbps in rates:
        rate = RateControl(mode="abr", bitrate=kbps * 1000)
        for mode, strength in (("uniform", 0.0), ("allocated", 1.0)):
            path = tmp / f"{kbps}.{mode}.mp4"
            p = plan_budget(montage, plan, arrays, rate, strength=strength)
            r = encode_budget(montage, path, rate=rate, codec="x264", preset=preset, plan=p, plan_arrays=plan_arrays)
            out[kbps, mode] = (r.allocation, compare_videos(montage, path, rois=faces, weights=weights))
    return out


def test_montage_allocation_gives_the_talking_head_more_at_equal_total(montage, tmp_path):
    talking, faces = _montage_layout()
    res = _montage_pair(montage, tmp_path, [400], "veryfast")
    (uni, qu), (alloc, qa) = res[400, "uniform"], res[400, "allocated"]
    # the cross-fade (165-189) is one gradual cut, inside the fade (issue 14's dissolve test)
    assert [s.start_frame for s in alloc.shots] == [0, 50, 110, 178, 230, 285, 330]
    for a in (uni, alloc):
        assert abs(a.total_bits / a.budget_bits - 1) <= 0.03
    # face + speech: the talking-head shots matter most and are tilted up, clearly apart from the rest
    heads = [s for s in alloc.shots if s.start_frame in talking]
    rest = [s for s in alloc.shots if s.start_frame not in talking]
    assert len(heads) == 2 and all(s.dqp < -1.5 for s in heads)
    assert min(s.importance for s in heads) > 2 * max(s.importance for s in rest)
    assert max(s.dqp for s in heads) < min(s.dqp for s in rest) - 1.5

    def share(a):
        return sum(s.bits_actual for s in a.shots if s.start_frame in talking) / a.total_bits

    assert share(alloc) > 1.15 * share(uni)  # the zones reach the encoder; ABR does not undo them
    for box in faces:  # the independent check: the hand-labelled face box gains in both talking-head shots
        assert qa.roi_psnr_y[box.label()] > qu.roi_psnr_y[box.label()] + 0.5
    # and at the same rate the importance-weighted PSNR (weights: metrics.frame_importance_weights) is no worse
    # (within 0.05 dB: with faces painted at their box the weights are tighter; measured 37.203 vs 37.206)
    assert abs(qa.bitrate_kbps / qu.bitrate_kbps - 1) <= 0.01 and qa.weighted_psnr_y >= qu.weighted_psnr_y - 0.05


@pytest.mark.slow
def test_montage_allocation_beats_uniform_in_bd_rate(montage, tmp_path):
    _, faces = _montage_layout()
    rates = (250, 500, 1000)
    res = _montage_pair(montage, tmp_path, rates, "veryfast")

    def bd(score):
        u, a = ([res[k, m][1] for k in rates] for m in ("uniform", "allocated"))
        return bd_rate([q.bitrate_kbps for q in u], [score(q) for q in u], [q.bitrate_kbps for q in a],
                       [score(q) for q in a])

    assert bd(lambda q: q.weighted_psnr_y) < 0
    assert bd(lambda q: np.mean([q.roi_psnr_y[b.label()] for b in faces])) < -10
