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
from codec_assist.errors import CodecAssistError  # noqa: E402
from codec_assist.schemas import CompareReport, RateControl  # noqa: E402

RATES_KBPS = {
    "bikes.mp4": (200, 400, 800),
    "bigbuckbunny.mp4": (500, 1000, 2000),
    "jwpIntro.mp4": (150, 300, 600),
    "cityCC0.mpg": (300, 600, 1200),
}


def analysis_speed(path: Path) -> dict:
    """Analysis alone, per analyzer, against the clip's duration."""
    t, cpu = time.perf_counter(), time.process_time()
    a, _ = analyze(path, AnalyzeOptions())
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    # CPU seconds (all threads) as well as wall: other jobs share the 2 cores, which inflates wall time
    return {"seconds": wall, "cpu_seconds": cpu, "fps": a.video.frame_count / wall,
            "realtime_x": a.video.duration / wall, "per_analyzer": {r.name: round(r.seconds, 3) for r in a.analyzers}}


def table(reports: list[tuple[str, str, CompareReport, dict]]) -> str:
    head = ["sample", "codec", "rate", "kb/s base", "kb/s asst", "ratio", "PSNR-Y base", "PSNR-Y asst",
            "SSIM-Y base", "SSIM-Y asst", "ROI PSNR base", "ROI PSNR asst", "enc s base", "enc s asst",
            "(analysis+asst)/plain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, codec, rep, _ in reports:
        for p in rep.points:
            b, a = p.baseline.quality, p.assisted.quality
            roi = next(iter(b.roi_psnr_y), None)
            lines.append("| " + " | ".join([
                name, codec, f"{p.rate.bitrate // 1000}k", f"{b.bitrate_kbps:.0f}", f"{a.bitrate_kbps:.0f}",
                f"{p.bitrate_ratio:.3f}", f"{b.psnr_y:.2f}", f"{a.psnr_y:.2f}", f"{b.ssim_y:.4f}", f"{a.ssim_y:.4f}",
                f"{b.roi_psnr_y[roi]:.2f}" if roi else "–", f"{a.roi_psnr_y[roi]:.2f}" if roi else "–",
                f"{p.baseline.seconds_encode:.2f}", f"{p.assisted.seconds_encode:.2f}",
                f"{(rep.seconds_analysis + p.assisted.seconds_encode) / p.baseline.seconds_encode:.2f}",
            ]) + " |")
    lines += ["", "| sample | codec | analysis s (in compare) | analysis alone × real time | mean (analysis+asst)/plain "
              "| BD-rate PSNR-Y % | BD-rate SSIM-Y % | BD-rate ROI PSNR-Y % | per-analyzer s |",
              "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:+.1f}"  # noqa: E731
    for name, codec, rep, speed in reports:
        bd = rep.bd_rate
        roi = next((v for k, v in bd.items() if k.startswith("roi")), None)
        lines.append(f"| {name} | {codec} | {rep.seconds_analysis:.2f} | {speed.get('realtime_x', 0):.1f} | "
                     f"{rep.speed_ratio:.2f} | {fmt(bd.get('psnr_y'))} | {fmt(bd.get('ssim_y'))} | {fmt(roi)} | "
                     f"{speed.get('per_analyzer', {})} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", nargs="*", default=list(RATES_KBPS))
    ap.add_argument("--codecs", nargs="*", default=["x264", "x265"])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--max-dqp", type=float, default=PlanOptions().max_dqp)
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"))
    ap.add_argument("--tables-only", action="store_true", help="print the tables from the JSON of an earlier run")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {e["name"]: e for e in manifest()}
    reports = []
    for name in args.samples:
        path = fetch(entries[name])
        speed_file = out_dir / f"{Path(name).stem}.speed.json"
        if args.tables_only:
            speed = json.loads(speed_file.read_text()) if speed_file.exists() else {}
        else:
            speed = analysis_speed(path)
            speed_file.write_text(json.dumps(speed, indent=2))
        rois = [parse_roi(v) for v in entries[name].get("eval_rois", {}).values()]
        for codec in args.codecs:
            rep_file = out_dir / f"{Path(name).stem}.{codec}.json"
            if args.tables_only:
                if not rep_file.exists():
                    continue
                rep = CompareReport.model_validate_json(rep_file.read_text())
            else:
                rates = [RateControl(mode="abr", bitrate=k * 1000) for k in RATES_KBPS[name]]
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        rep = compare(path, rates, tmp, codec=codec, preset=args.preset, rois=rois,
                                      plan_options=PlanOptions(codec=codec, max_dqp=args.max_dqp))
                except CodecAssistError as e:
                    print(f"# {name} {codec}: skipped: {e}", file=sys.stderr)
                    continue
                rep_file.write_text(rep.model_dump_json(indent=2, by_alias=True))
            reports.append((name, codec, rep, speed))
            print(f"# {name} {codec}: done", file=sys.stderr)
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
