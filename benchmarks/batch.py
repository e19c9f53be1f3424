#!/usr/bin/env python3
"""Benchmark: batch (1 vs 2 workers, local and Ray) and shot-chunked vs unchunked encoding, in the same run.

Batch: the real samples copied to 8 files, `batch` encode (assisted, x264 veryfast, 400k) from a clean output
folder each time; wall time includes engine start-up (process spawn, Ray init). Chunked: plain x264 ABR on
bikes.mp4 and on bikes x4 (40 s, stream-copied end to end), chunked with 2 workers (two passes per chunk) vs
the unchunked encode with one pass and with two passes, PSNR-Y against the source.

    python benchmarks/batch.py                    # everything (~10 minutes on 2 busy cores)
    python benchmarks/batch.py --skip-ray --skip-chunked
Results: Markdown tables on stdout and JSON in out/bench/batch.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import av  # noqa: E402

from codec_assist.scale.batch import COMMANDS, run_batch  # noqa: E402
from codec_assist.encoding.chunked import check_joined, encode_chunked, plan_chunks  # noqa: E402
from codec_assist.encoding.x26x import encode  # noqa: E402
from codec_assist.scale.engine import EngineOptions, cores  # noqa: E402
from codec_assist.evaluation.metrics import compare_videos  # noqa: E402
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze  # noqa: E402
from codec_assist.schemas import RateControl  # noqa: E402

SAMPLES = ["bikes.mp4", "bigbuckbunny.mp4", "jwpIntro.mp4", "cityCC0.mpg"]


def batch_options() -> dict:
    ns = argparse.Namespace(bitrate=400_000, crf=None, params="", codec="x264", preset="veryfast", no_assist=False,
                            analyzers="shots,saliency,faces,text", proxy_width=320, analysis_fps=3.0, max_dqp=6.0,
                            strength=2.0, min_gop=0.5, max_gop=10.0)
    return COMMANDS["encode"].options(ns)


def bench_batch(media: Path, work: Path, engines: list[str]) -> list[dict]:
    lib = work / "library"
    lib.mkdir()
    for copy in range(2):
        for name in SAMPLES:
            shutil.copy(media / name, lib / f"{copy}_{name}")
    options = batch_options()
    rows = []
    # Default: each task gets cores / workers threads (1 worker: 2 threads). Also 1 thread per task for both,
    # which shows the engine's own scaling when a task does not already keep every core busy.
    configs = [(e, w, None) for e in engines for w in (1, 2)] + [("local", 1, 1.0), ("local", 2, 1.0)]
    for engine, workers, cpt in configs:
        opts = EngineOptions(engine=engine, workers=workers, cpus_per_task=cpt)
        out = work / f"out-{engine}-{workers}-{cpt}"
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        m = run_batch(lib, out, "encode", options, opts)
        wall = time.perf_counter() - t
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = sum(i.status == "done" for i in m.items)
        rows.append({"engine": engine, "workers": workers, "cpus_per_task": cpt, "threads": opts.threads(),
                     "items": len(m.items),
                     "done": done, "seconds": wall, "task_seconds": sum(i.seconds for i in m.items),
                     # CPU of the local pool's worker processes (Ray's workers are not our children)
                     "worker_cpu_s": (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
                     if engine == "local" else None, "load_1min": os.getloadavg()[0]})
        print(f"batch {engine} x{workers} threads {opts.threads()}: {done}/{len(m.items)} done in {wall:.1f}s",
              file=sys.stderr)
    return rows


def repeat_video(src: Path, out: Path, times: int) -> Path:
    """`src` end to end `times` times by stream copy (each copy starts on its IDR)."""
    with av.open(str(src)) as probe_c:
        vs = probe_c.streams.video[0]
        span = max(p.pts + (p.duration or 0) for p in probe_c.demux(vs) if p.pts is not None)
    with av.open(str(out), "w") as dst:
        vout = None
        for k in range(times):
            with av.open(str(src)) as c:
                vs = c.streams.video[0]
                if vout is None:
                    vout = dst.add_stream_from_template(vs)
                for p in c.demux(vs):
                    if p.dts is None:
                        continue
                    p.pts += k * span
                    p.dts += k * span
                    p.stream = vout
                    dst.mux(p)
    return out


def bench_chunked(src: Path, work: Path, kbps: int, preset: str, workers: int) -> dict:
    rate = RateControl(mode="abr", bitrate=kbps * 1000)
    analysis, _ = analyze(src, AnalyzeOptions(analyzers=["shots"]))
    starts = [s.start_frame for s in analysis.shots]
    v = analysis.video
    row = {"sample": src.name, "frames": v.frame_count, "seconds_video": v.duration, "shots": len(starts),
           "chunks": len(plan_chunks(starts, v.frame_count, v.fps)), "kbps": kbps, "preset": preset,
           "workers": workers}

    def cpu() -> float:  # this process (in-process encodes, their threads) + finished children (chunk workers)
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def timed(fn, key):
        c, t = cpu(), time.perf_counter()
        r = fn()
        row[f"s_{key}"], row[f"cpu_{key}"] = time.perf_counter() - t, cpu() - c
        return r

    one = timed(lambda: encode(src, work / "one.mp4", rate=rate, preset=preset), "unchunked_1pass")

    def two_pass():
        encode(src, work / "p1.mkv", rate=rate, preset=preset, rc_pass=1, stats_file=work / "stats")
        return encode(src, work / "two.mp4", rate=rate, preset=preset, rc_pass=2, stats_file=work / "stats")

    two = timed(two_pass, "unchunked_2pass")
    ch = timed(lambda: encode_chunked(src, work / "chunked.mp4", rate=rate, preset=preset, shot_starts=starts,
                                      engine=EngineOptions(workers=workers)), "chunked")
    row["problems"] = check_joined(work / "chunked.mp4", src, [a for a, _ in plan_chunks(starts, v.frame_count, v.fps)])
    for key, r, path in (("1pass", one, "one.mp4"), ("2pass", two, "two.mp4"), ("chunked", ch, "chunked.mp4")):
        row[f"kbps_{key}"] = r.bitrate_kbps
        row[f"psnr_{key}"] = compare_videos(src, work / path).psnr_y
    row["speedup_vs_1pass"] = row["s_unchunked_1pass"] / row["s_chunked"]
    row["speedup_vs_2pass"] = row["s_unchunked_2pass"] / row["s_chunked"]
    row["load_1min"] = os.getloadavg()[0]
    print(f"chunked {src.name}: {row['s_chunked']:.1f}s vs {row['s_unchunked_1pass']:.1f}s / "
          f"{row['s_unchunked_2pass']:.1f}s", file=sys.stderr)
    return row


def tables(result: dict) -> str:
    lines = [f"cores: {result['cores']}", ""]
    if result.get("batch"):
        lines += ["| engine | workers | threads/task | items done | wall s | sum of task s | worker CPU s "
                  "| speed-up vs 1 worker | load (1 min) after |", "|---|---|---|---|---|---|---|---|---|"]
        base = {(r["engine"], r.get("cpus_per_task")): r["seconds"] for r in result["batch"] if r["workers"] == 1}
        for r in result["batch"]:
            one = base[(r["engine"], r.get("cpus_per_task"))]  # 1 worker, same threads rule
            cpu = r.get("worker_cpu_s")
            lines.append(f"| {r['engine']} | {r['workers']} | {r.get('threads', '?')} | {r['done']}/{r['items']} | "
                         f"{r['seconds']:.1f} | {r['task_seconds']:.1f} | {'–' if cpu is None else f'{cpu:.1f}'} | "
                         f"{one / r['seconds']:.2f}x | {r.get('load_1min', 0):.1f} |")
        lines.append("")
    if result.get("chunked"):
        lines += ["| sample | frames | shots | chunks | rate | unchunked 1-pass s | unchunked 2-pass s | chunked s "
                  "| speed-up vs 1-pass | vs 2-pass | CPU s 1p / 2p / chunked | kb/s 1p / 2p / chunked "
                  "| PSNR-Y 1p / 2p / chunked | checks | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["chunked"]:
            lines.append(
                f"| {r['sample']} | {r['frames']} | {r['shots']} | {r['chunks']} | {r['kbps']}k {r['preset']} | "
                f"{r['s_unchunked_1pass']:.1f} | {r['s_unchunked_2pass']:.1f} | {r['s_chunked']:.1f} | "
                f"{r['speedup_vs_1pass']:.2f}x | {r['speedup_vs_2pass']:.2f}x | "
                f"{r.get('cpu_unchunked_1pass', 0):.1f} / {r.get('cpu_unchunked_2pass', 0):.1f} / "
                f"{r.get('cpu_chunked', 0):.1f} | "
                f"{r['kbps_1pass']:.0f} / {r['kbps_2pass']:.0f} / {r['kbps_chunked']:.0f} | "
                f"{r['psnr_1pass']:.2f} / {r['psnr_2pass']:.2f} / {r['psnr_chunked']:.2f} | "
                f"{'ok' if not r['problems'] else '; '.join(r['problems'])} | {r.get('load_1min', 0):.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-chunked", action="store_true")
    ap.add_argument("--preset", default="medium", help="x264 preset of the chunked comparison")
    ap.add_argument("--tables-only", action="store_true", help="re-print the tables from out/bench/batch.json")
    args = ap.parse_args()
    out = ROOT / "out" / "bench" / "batch.json"
    if args.tables_only:
        print(tables(json.loads(out.read_text())))
        return 0
    media = ROOT / "samples" / "media"
    missing = [n for n in SAMPLES if not (media / n).exists()]
    if missing:
        ap.error(f"missing samples {missing}: run samples/fetch.py first")
    result: dict = {"cores": cores(), "batch": [], "chunked": []}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        if not args.skip_batch:
            result["batch"] = bench_batch(media, work, ["local"] + ([] if args.skip_ray else ["ray"]))
        if not args.skip_chunked:
            long = repeat_video(media / "bikes.mp4", work / "bikes_x4.mp4", 4)
            for src in (media / "bikes.mp4", long):
                d = work / f"chunked-{src.stem}"
                d.mkdir()
                result["chunked"].append(bench_chunked(src, d, 300, args.preset, 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(tables(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
