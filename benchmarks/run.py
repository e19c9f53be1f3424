#!/usr/bin/env python3
"""Benchmark: plain vs assisted x264/x265 on the real samples, in the same run.

For each sample x codec x rate: bitrate, whole-frame PSNR-Y/SSIM-Y, ROI PSNR-Y (hand-labelled boxes from
samples/manifest.json, never derived from the map under test), for the baseline and the assisted encode;
BD-rates over the rates; speed: analysis fps and (analysis + assisted encode) / plain encode wall time.

    python benchmarks/run.py                       # everything (a few minutes on 2 cores)
    python benchmarks/run.py --samples jwpIntro.mp4 --codecs x264 --preset medium
    python benchmarks/run.py --analysis-only --samples jwpIntro.mp4 bikes_speech.mp4 bigbuckbunny.mp4
                                                   # per-analyzer seconds and x real time, no encodes
Results: a Markdown table on stdout and JSON in out/bench/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "samples"))  # the sample fetchers (samples/ holds scripts, not a package)

from compose import COMPOSED  # noqa: E402
from fetch import fetch, manifest  # noqa: E402

import codec_assist as ca  # noqa: E402

RATES_KBPS = {
    "bikes.mp4": (200, 400, 800),
    "bigbuckbunny.mp4": (500, 1000, 2000),
    "jwpIntro.mp4": (150, 300, 600),
    "cityCC0.mpg": (300, 600, 1200),
}


def analysis_speed(path: Path) -> dict:
    """Analysis alone, per analyzer, against the clip's duration."""
    t, cpu = time.perf_counter(), time.process_time()
    a, _ = ca.analyze(path, ca.AnalyzeOptions())
    wall = time.perf_counter() - t
    return {"seconds": wall, "cpu_seconds": time.process_time() - cpu, "fps": a.video.frame_count / wall, "realtime_x": a.video.duration / wall,
            "duration": a.video.duration, "size": f"{a.video.width}x{a.video.height}",
            "per_analyzer": {r.name: round(r.seconds, 3) for r in a.analyzers},
            "status": {r.name: r.status for r in a.analyzers if r.status != "ok"},
            "transcript": " / ".join(s.text for s in a.transcript.segments) if a.transcript else None}


def asr_seconds(path: Path) -> float | None:
    """Whisper alone (the speech analyzer's transcribe call, model already loaded) on the clip's audio."""
    from analyzers.audio import pcm16k
    from analyzers.speech import SpeechTranscript

    pcm = pcm16k(path)
    if pcm is None or len(pcm) == 0:
        return None
    unit = SpeechTranscript()
    unit.label = "tiny.en"
    t = time.perf_counter()
    unit.transcribe(pcm, len(pcm) / 16000)
    return time.perf_counter() - t


def analyzer_table(speeds: dict[str, dict]) -> str:
    """Per-analyzer cost: seconds (and x real time = clip seconds / analyzer seconds) per sample."""
    names = list(dict.fromkeys(n for sp in speeds.values() for n in sp["per_analyzer"]))
    lines = ["| sample | size | clip s | first run in process s (per analyzer) | analysis s | × real time | "
             "CPU s (all threads) | " + " | ".join(f"{n} s" for n in names) + " |", "|" + "---|" * (7 + len(names))]
    for sample, sp in speeds.items():
        cells = []
        for n in names:
            sec = sp["per_analyzer"].get(n)
            cells.append("–" if sec is None else f"{sec:.2f}" + (f" ({sp['status'][n]})" if n in sp["status"] else ""))
        first = sp["first_run"]
        first_cell = f"{first['seconds']:.2f} ({', '.join(f'{k} {v:.2f}' for k, v in first['per_analyzer'].items())})"
        lines.append(f"| {sample} | {sp['size']} | {sp['duration']:.1f} | {first_cell} | {sp['seconds']:.2f} | "
                     f"{sp['realtime_x']:.1f} | {sp['cpu_seconds']:.2f} | "
                     + " | ".join(cells) + " |")
    said = [f"- {s}: Whisper alone {sp['asr_s']:.2f} s = real-time factor {sp['asr_s'] / sp['duration']:.3f}; "
            f"transcript {sp['transcript']!r}" for s, sp in speeds.items() if sp.get("asr_s") is not None]
    return "\n".join(lines + ([""] + said if said else []))


def table(reports: list[tuple[str, str, ca.CompareReport, dict]]) -> str:
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
    # issue 15: the viewer's metrics and the peer (the encoder's own aq-mode=3 + tune), BD-rate % per pair
    lines += ["", "| sample | codec | peer | metric | assisted vs plain | peer vs plain | assisted vs peer |",
              "|---|---|---|---|---|---|---|"]
    for name, codec, rep, _ in reports:
        for metric in rep.bd_rate:
            lines.append(f"| {name} | {codec} | {rep.peer.label() if rep.peer else '–'} | {metric} | "
                         f"{fmt(rep.bd_rate.get(metric))} | {fmt(rep.bd_rate_peer.get(metric))} | "
                         f"{fmt(rep.bd_rate_vs_peer.get(metric))} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", nargs="*", default=list(RATES_KBPS))
    ap.add_argument("--codecs", nargs="*", default=["x264", "x265"])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--max-dqp", type=float, default=ca.PlanOptions().max_dqp)
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"))
    ap.add_argument("--vmaf-every", type=int, default=1, help="VMAF on every K-th frame (1 = all, 0 = off)")
    ap.add_argument("--tables-only", action="store_true", help="print the tables from the JSON of an earlier run")
    ap.add_argument("--analysis-only", action="store_true", help="only time the analysis, per analyzer (no encodes)")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {e["name"]: e for e in manifest()}
    if args.analysis_only:
        speeds = {}
        for name in args.samples:
            path = COMPOSED[name]() if name in COMPOSED else fetch(entries[name])
            first = analysis_speed(path)  # includes loading whatever models this process has not loaded yet
            speeds[name] = analysis_speed(path)
            speeds[name]["first_run"] = first
            speeds[name]["asr_s"] = asr_seconds(path)
            print(f"# {name}: done", file=sys.stderr)
        print(analyzer_table(speeds))
        return 0
    reports = []
    for name in args.samples:
        path = fetch(entries[name])
        speed_file = out_dir / f"{Path(name).stem}.speed.json"
        if args.tables_only:
            speed = json.loads(speed_file.read_text()) if speed_file.exists() else {}
        else:
            speed = analysis_speed(path)
            speed_file.write_text(json.dumps(speed, indent=2))
        rois = [ca.parse_roi(v) for v in entries[name].get("eval_rois", {}).values()]
        for codec in args.codecs:
            rep_file = out_dir / f"{Path(name).stem}.{codec}.json"
            if args.tables_only:
                if not rep_file.exists():
                    continue
                rep = ca.CompareReport.model_validate_json(rep_file.read_text())
            else:
                try:
                    rep = ca.compare(path, [k * 1000 for k in RATES_KBPS[name]], codec=codec, preset=args.preset,
                                     rois=rois, plan_options=ca.PlanOptions(codec=codec, max_dqp=args.max_dqp),
                                     vmaf_every=args.vmaf_every)
                except ca.CodecAssistError as e:
                    print(f"# {name} {codec}: skipped: {e}", file=sys.stderr)
                    continue
                rep_file.write_text(rep.model_dump_json(indent=2, by_alias=True))
            reports.append((name, codec, rep, speed))
            print(f"# {name} {codec}: done", file=sys.stderr)
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
