#!/usr/bin/env python3
"""Benchmark for issue 9: shot allocation vs uniform at equal total bitrate, target quality, ladder IDRs.

    python benchmarks/allocation.py                      # everything, preset medium (a few minutes on 2 cores)
    python benchmarks/allocation.py --preset veryfast --parts alloc
    python benchmarks/allocation.py --parts alloc --samples montage.mp4 --strength 2 --json out/bench/allocation_s2.json
Results: Markdown tables on stdout and JSON in out/bench/allocation.json.

Allocation: both encodes use the same plan (IDRs on cuts, no per-block offsets: --max-dqp 0) and the same
ABR target with the same ±2.5 % rate correction; "uniform" has no zones (strength 0), "allocated" has the
policy's per-shot zones. Scored: whole-frame PSNR-Y (mean of the per-frame PSNRs, and "global": PSNR of the
MSE pooled over all frames), importance-weighted PSNR-Y with the weights the allocation optimises (each frame's
grid rescaled to the frame's scalar importance: metrics.frame_importance_weights; self-graded), the same with
the raw importance grid (the ROI benchmark's weights), and PSNR-Y in the hand-labelled face box (jwpIntro; on
montage.mp4 only during its two talking-head shots). Per shot: planned zone factor vs the bits the allocated
encode spent over the uniform one (do the zones reach the encoder, or does ABR undo them?).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

import codec_assist.media.decode as media  # noqa: E402
from codec_assist.encoding.allocated import encode_budget, encode_ladder, encode_target_quality  # noqa: E402
from codec_assist.planning.allocate import plan_budget  # noqa: E402
from codec_assist.evaluation.metrics import bd_rate, compare_videos, frame_importance_weights, parse_roi  # noqa: E402
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze  # noqa: E402
from codec_assist.planning.plan import PlanOptions, make_plan  # noqa: E402
from codec_assist.schemas import RateControl  # noqa: E402

sys.path.insert(0, str(ROOT / "samples"))
import compose  # noqa: E402

MEDIA = ROOT / "samples" / "media"
# sample: (rates kb/s, face boxes, --segment seconds)
ALLOC = {"montage.mp4": ((250, 500, 1000), compose.montage_face_rois(), 0.0),
         "bikes.mp4": ((200, 400, 800), [], 0.0),
         "jwpIntro.mp4": ((150, 300, 600), ["190,60,160,240"], 2.0)}
SAMPLES: list[str] = []  # --samples: only these (allocation and ladder parts)
STRENGTH = [1.0]  # --strength: the allocation's importance tilt (encode --alloc-strength)
METRICS = ("psnr_y", "global_psnr_y", "weighted_psnr_y", "grid_weighted_psnr_y", "face_psnr_y")


def _face_psnr(q, boxes) -> float | None:
    """Mean face-box PSNR-Y over the frames of every box's window (a box without a window: all frames)."""
    spans = [(b.t1 - b.t0) if b.t0 is not None else 1.0 for b in boxes]
    vals = [q.roi_psnr_y.get(b.label()) for b in boxes]
    if not boxes or None in vals:
        return None
    return sum(v * s for v, s in zip(vals, spans)) / sum(spans)


def alloc_bench(preset: str, tmp: Path) -> list[dict]:
    """Uniform (strength 0) vs allocated (strength STRENGTH[0]) at each rate, per ALLOC sample."""
    rows = []
    for name, (rates, rois, segment) in ALLOC.items():
        if SAMPLES and name not in SAMPLES:
            continue
        src = MEDIA / name
        analysis, arrays = analyze(src, AnalyzeOptions())
        plan, pa = make_plan(analysis, arrays, PlanOptions(max_dqp=0))
        fr, g, sc = arrays["importance/frames"], arrays["importance/grid"], arrays["importance/scalar"]
        frame_weights, grid_weights = frame_importance_weights(fr, g, sc), frame_importance_weights(fr, g)

        def flat(i):
            return np.ones((1, 1), np.float32)

        boxes = [parse_roi(r) for r in rois]
        curves = {"uniform": [], "allocated": []}
        for kbps in rates:
            rate = RateControl(mode="abr", bitrate=kbps * 1000)
            spent = {}
            for tag, strength in (("uniform", 0.0), ("allocated", STRENGTH[0])):
                p = plan_budget(src, plan, arrays, rate, strength=strength, max_segment=segment)
                out = tmp / f"{src.stem}.{kbps}k.{tag}.mp4"  # an existing output is refused (issue 8)
                r = encode_budget(src, out, rate=rate, codec="x264", preset=preset, plan=p, plan_arrays=pa)
                q = compare_videos(src, out, rois=boxes, weights=frame_weights)
                score = {"kbps": q.bitrate_kbps, "psnr_y": q.psnr_y, "weighted_psnr_y": q.weighted_psnr_y,
                         "global_psnr_y": compare_videos(src, out, weights=flat).weighted_psnr_y,
                         "grid_weighted_psnr_y": compare_videos(src, out, weights=grid_weights).weighted_psnr_y,
                         "face_psnr_y": _face_psnr(q, boxes)}
                a = r.allocation
                curves[tag].append(score)
                spent[tag] = [s.bits_actual for s in a.shots]
                rows.append({"sample": name, "rate": kbps, "mode": tag, **score,
                             "budget_off_pct": (a.total_bits / a.budget_bits - 1) * 100, "encodes": a.final_encodes,
                             "shots": [{"frames": [s.start_frame, s.end_frame], "importance": round(s.importance, 3),
                                        "dqp": round(s.dqp, 2), "factor": round(s.bitrate_factor, 3),
                                        "planned_kB": s.bits / 8e3, "spent_kB": s.bits_actual / 8e3}
                                       for s in a.shots]})
                out.unlink()
            rows[-1]["spent_vs_uniform"] = [round(b / max(1, u), 3)
                                            for b, u in zip(spent["allocated"], spent["uniform"])]
        bd = {}
        for metric in METRICS:
            u, a = curves["uniform"], curves["allocated"]
            if u[0][metric] is None:
                continue
            bd[metric] = bd_rate([q["kbps"] for q in u], [q[metric] for q in u], [q["kbps"] for q in a],
                                 [q[metric] for q in a])
        rows.append({"sample": name, "bd_rate_pct": bd})
    return rows


def tq_bench(preset: str, tmp: Path) -> list[dict]:
    rows = []
    for name, metric, target in (("bikes.mp4", "psnr", 40.0), ("bikes.mp4", "xpsnr", 36.0),
                                 ("cityCC0.mpg", "psnr", 34.0), ("bikes.mp4", "psnr", 70.0)):
        src = MEDIA / name
        analysis, arrays = analyze(src, AnalyzeOptions(analyzers=["shots", "saliency"]))
        plan, pa = make_plan(analysis, arrays)
        out = tmp / f"{src.stem}.{metric}{target:g}.mp4"
        r = encode_target_quality(src, out, metric=metric, target=target, codec="x264", preset=preset,
                                  plan=plan, plan_arrays=pa, importance_arrays=arrays)
        a = r.allocation
        rows.append({"sample": name, "metric": metric, "target": target, "kbps": r.bitrate_kbps,
                     "probe_encodes": a.probe_encodes, "final_encodes": a.final_encodes, "message": a.message,
                     "shots": [{"frames": [s.start_frame, s.end_frame], "crf": s.crf, "probes": len(s.probes),
                                "status": s.status, "predicted": s.predicted, "achieved": s.achieved}
                               for s in a.shots]})
    return rows


def ladder_bench(preset: str, tmp: Path) -> list[dict]:
    rows = []
    for name, ladder in (("bikes.mp4", [("272p", None, 272, 400_000), ("180p", None, 180, 200_000),
                                        ("120p", None, 120, 100_000)]),
                         ("bigbuckbunny.mp4", [("720p", None, 720, 2_000_000), ("480p", None, 480, 1_000_000),
                                               ("240p", None, 240, 300_000)]),
                         ("montage.mp4", [("360p", None, 360, 1_000_000), ("240p", None, 240, 500_000),
                                          ("144p", None, 144, 200_000)])):
        if SAMPLES and name not in SAMPLES:
            continue
        src = MEDIA / name
        analysis, arrays = analyze(src, AnalyzeOptions(analyzers=["shots", "saliency"]))
        plan, pa = make_plan(analysis, arrays)
        outs = [tmp / f"{src.stem}.{r[0]}.mp4" for r in ladder]
        rep = encode_ladder(src, outs, ladder, codec="x264", preset=preset, plan=plan, plan_arrays=pa)
        decoded = [media.keyframe_indices(o) for o in outs]
        rows.append({"sample": name, "plan_idr": rep.plan_keyframes, "aligned": rep.aligned,
                     "decoded_equal": all(d == rep.plan_keyframes for d in decoded),
                     "plain_aligned": rep.plain_aligned,
                     "rungs": [{"name": r.name, "size": f"{r.width}x{r.height}", "kbps": r.bitrate_kbps,
                                "idr": r.keyframes, "plain_idr": r.plain_keyframes} for r in rep.rungs]})
    return rows


def tables(res: dict) -> str:
    out = []
    if "alloc" in res:
        out += ["| sample | rate | mode | kb/s | vs budget % | encodes | PSNR-Y | global PSNR-Y | weighted PSNR-Y | "
                "grid-weighted PSNR-Y | face PSNR-Y |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["alloc"]:
            if "bd_rate_pct" in r:
                bd = ", ".join(f"{k} {v:+.2f} %" if v is not None else f"{k} n/a" for k, v in r["bd_rate_pct"].items())
                out.append(f"| {r['sample']} | BD-rate allocated vs uniform | {bd} |||||||||")
                continue
            face = f"{r['face_psnr_y']:.2f}" if r["face_psnr_y"] is not None else "–"
            out.append(f"| {r['sample']} | {r['rate']}k | {r['mode']} | {r['kbps']:.1f} | {r['budget_off_pct']:+.1f} | "
                       f"{r['encodes']} | {r['psnr_y']:.3f} | {r['global_psnr_y']:.3f} | {r['weighted_psnr_y']:.3f} | "
                       f"{r['grid_weighted_psnr_y']:.3f} | {face} |")
        out.append("")
        out += ["| sample | rate | per shot: frames, importance, ΔQP planned, zone factor / spent allocated ÷ "
                "uniform |",
                "|---|---|---|"]
        for r in res["alloc"]:
            if "spent_vs_uniform" in r:
                per = "; ".join(f"{s['frames'][0]}-{s['frames'][1] - 1} {s['importance']:.2f} {s['dqp']:+.1f} "
                                f"{s['factor']:.2f}/{x:.2f}" for s, x in zip(r["shots"], r["spent_vs_uniform"]))
                out.append(f"| {r['sample']} | {r['rate']}k | {per} |")
        out.append("")
    if "tq" in res:
        out += ["| sample | target | kb/s | probes (total) | final encodes | per shot: CRF / probes / achieved |",
                "|---|---|---|---|---|---|"]
        for r in res["tq"]:
            per = "; ".join(f"{s['crf']:g}/{s['probes']}/{s['achieved']:.2f}{'' if s['status'] == 'hit' else ' ' + s['status']}"
                            for s in r["shots"])
            out.append(f"| {r['sample']} | {r['metric']}={r['target']:g} | {r['kbps']:.0f} | {r['probe_encodes']} | "
                       f"{r['final_encodes']} | {per} |")
        out.append("")
    if "ladder" in res:
        out += ["| sample | rung | size | kb/s | IDR (plan, decoded) | IDR plain x264 (scenecut) |", "|---|---|---|---|---|---|"]
        for r in res["ladder"]:
            for g in r["rungs"]:
                out.append(f"| {r['sample']} | {g['name']} | {g['size']} | {g['kbps']:.0f} | {g['idr']} | {g['plain_idr']} |")
            out.append(f"| {r['sample']} | all rungs identical: plan {r['aligned'] and r['decoded_equal']}, "
                       f"plain {r['plain_aligned']} |||||")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--parts", default="alloc,tq,ladder")
    ap.add_argument("--samples", nargs="*", default=[], help="allocation/ladder: only these samples")
    ap.add_argument("--strength", type=float, default=1.0, help="allocation strength (the CLI's default is 1)")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench" / "allocation.json"), help="results file")
    ap.add_argument("--tables-only", action="store_true", help="re-print the tables from the --json file")
    args = ap.parse_args()
    path = Path(args.json)
    if args.tables_only:
        print(tables(json.loads(path.read_text())))
        return
    SAMPLES[:] = args.samples
    STRENGTH[0] = args.strength
    compose.montage(MEDIA)  # built from the fetched clips (make samples does it too)
    res = {}
    with tempfile.TemporaryDirectory(prefix="ca-bench-") as tmp:
        for part in args.parts.split(","):
            res[part] = {"alloc": alloc_bench, "tq": tq_bench, "ladder": ladder_bench}[part](args.preset, Path(tmp))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(tables(res))


if __name__ == "__main__":
    main()
