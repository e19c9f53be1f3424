#!/usr/bin/env python3
"""Benchmark: plain vs assisted x264/x265 on the real samples, in the same run.

For each sample x codec x rate: bitrate, whole-frame PSNR-Y/SSIM-Y, ROI PSNR-Y (hand-labelled boxes from
samples/manifest.json, never derived from the map under test), for the baseline and the assisted encode;
BD-rates over the rates; speed: analysis fps and (analysis + assisted encode) / plain encode wall time.

    python benchmarks/run.py                       # everything (a few minutes on 2 cores)
    python benchmarks/run.py --samples jwpIntro.mp4 --codecs x264 --preset medium
Results: a Markdown table on stdout and JSON in out/bench/.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "samples"))

from fetch import fetch, manifest  # noqa: E402

from codec_assist import media  # noqa: E402
from codec_assist.metrics import parse_roi  # noqa: E402
from codec_assist.pipeline import AnalyzeOptions, PlanOptions, analyze, compare  # noqa: E402
from codec_assist.schemas import RateControl  # noqa: E402

RATES_KBPS = {
    "bikes.mp4": (200, 400, 800),
    "bigbuckbunny.mp4": (500, 1000, 2000),
    "jwpIntro.mp4": (150, 300, 600),
    "cityCC0.mpg": (300, 600, 1200),
}


def analysis_speed(path: Path) -> dict:
    """Analysis alone, per analyzer, against the clip's duration."""
    t = time.perf_counter()
    a, _ = analyze(path, AnalyzeOptions())
    wall = time.perf_counter() - t
    return {"seconds": wall, "fps": a.video.frame_count / wall, "realtime_x": a.video.duration / wall,
            "per_analyzer": {r.name: round(r.seconds, 3) for r in a.analyzers}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", nargs="*", default=list(RATES_KBPS))
    ap.add_argument("--codecs", nargs="*", default=["x264", "x265"])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--max-dqp", type=float, default=PlanOptions().max_dqp)
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"))
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {e["name"]: e for e in manifest()}
    rows, results = [], []
    for name in args.samples:
        path = fetch(entries[name])
        info = media.probe(path)
        speed = analysis_speed(path)
        rois = [parse_roi(v) for v in entries[name].get("eval_rois", {}).values()]
        for codec in args.codecs:
            rates = [RateControl(mode="abr", bitrate=k * 1000) for k in RATES_KBPS[name]]
            with tempfile.TemporaryDirectory() as tmp:
                rep = compare(path, rates, tmp, codec=codec, preset=args.preset, rois=rois,
                              plan_options=PlanOptions(codec=codec, max_dqp=args.max_dqp))
            (out_dir / f"{Path(name).stem}.{codec}.json").write_text(rep.model_dump_json(indent=2, by_alias=True))
            results.append({"sample": name, "codec": codec, "analysis": speed, "bd_rate": rep.bd_rate,
                            "speed_ratio": rep.speed_ratio})
            for p in rep.points:
                b, a = p.baseline.quality, p.assisted.quality
                roi = next(iter(b.roi_psnr_y), None)
                rows.append([
                    name, codec, f"{p.rate.bitrate // 1000}k",
                    f"{b.bitrate_kbps:.0f}", f"{a.bitrate_kbps:.0f}", f"{p.bitrate_ratio:.3f}",
                    f"{b.psnr_y:.2f}", f"{a.psnr_y:.2f}", f"{b.ssim_y:.4f}", f"{a.ssim_y:.4f}",
                    f"{b.roi_psnr_y[roi]:.2f}" if roi else "–", f"{a.roi_psnr_y[roi]:.2f}" if roi else "–",
                    f"{p.baseline.seconds_encode:.2f}", f"{p.assisted.seconds_encode:.2f}",
                ])
            print(f"# {name} {codec}: {info.width}x{info.height}, analysis {speed['seconds']:.2f}s "
                  f"({speed['realtime_x']:.1f}x real time), speed ratio {rep.speed_ratio:.2f}, "
                  f"BD-rate {json.dumps({k: None if v is None else round(v, 1) for k, v in rep.bd_rate.items()})}",
                  file=sys.stderr)
    head = ["sample", "codec", "rate", "kb/s base", "kb/s asst", "ratio", "PSNR-Y base", "PSNR-Y asst",
            "SSIM-Y base", "SSIM-Y asst", "ROI PSNR base", "ROI PSNR asst", "enc s base", "enc s asst"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print("| sample | codec | analysis s | analysis × real time | (analysis + assisted) / plain | BD-rate PSNR-Y % "
          "| BD-rate ROI PSNR-Y % | per-analyzer s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        bd = r["bd_rate"]
        roi = next((v for k, v in bd.items() if k.startswith("roi")), None)
        fmt = lambda v: "n/a" if v is None else f"{v:+.1f}"  # noqa: E731
        print(f"| {r['sample']} | {r['codec']} | {r['analysis']['seconds']:.2f} | {r['analysis']['realtime_x']:.1f} | "
              f"{r['speed_ratio']:.2f} | {fmt(bd.get('psnr_y'))} | {fmt(roi)} | {r['analysis']['per_analyzer']} |")
    (out_dir / "summary.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
