#!/usr/bin/env python3
"""Benchmark for issue 19: the per-shot convex-hull ladder (`encode --ladder auto:RATES`) vs fixed ladders.

    PYTHONPATH=. .venv/bin/python benchmarks/hull.py --clips montage.mp4 megamind.avi --agreement montage.mp4 \
        --speedup montage.mp4 --json out/bench/hull.json
    PYTHONPATH=. .venv/bin/python benchmarks/hull.py --tables-only --json out/bench/hull_montage.json

Per clip, in one run: the hull ladder at the clip's rates (probes at --probe-preset, rungs at --preset, each
rung's resolution chosen from the hulls), and at the same rung resolutions two fixed ladders at the same
preset: x264 1-pass ABR at the rung's rate, and one CRF for the whole clip per rung, searched (secant in
log-bits, full encodes) until the file is within 2 % of the rung's rate. Quality: whole-frame VMAF
(vmaf-torch, motion off, every --vmaf-every-th frame) of each file decoded and upscaled bicubically to the
source size, against the source. BD-rate over the rungs (hull vs each fixed ladder: negative = the hull
needs fewer bits for the same VMAF), each rung's bitrate error, probe CPU-seconds per second of video.
--speedup CLIP also reruns the probes (fresh cache) on 2 local workers and reports the wall-time ratio to 1.
--agreement CLIP also probes every shot at the source height with --preset and compares (Spearman) with the
probe preset's points.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "samples" / "media"

import codec_assist.media.decode as media  # noqa: E402
from codec_assist import api  # noqa: E402
from codec_assist.encoding.hull import run_probes  # noqa: E402
from codec_assist.encoding.x26x import encode  # noqa: E402
from codec_assist.evaluation.metrics import FrameScorer, bd_rate, video_bitrate_kbps  # noqa: E402
from codec_assist.options import EncodeOptions, EngineOptions, HullOptions  # noqa: E402
from codec_assist.schemas import RateControl  # noqa: E402

# clip: (split, rates kb/s highest first)
CLIPS = {"montage.mp4": ("dev", (400, 200, 100)),
         "bbb_trailer.mp4": ("dev", (1200, 600, 300)),
         "megamind.avi": ("test", (800, 400, 200))}
CRFS = [19.0, 26.0, 33.0, 40.0, 47.0]  # five probe CRFs: the CPU is shared (load 10-12), the probes are the cost
SPEED_CRFS = [25.0, 37.0]  # --speedup reruns the probes with this smaller grid on 1 and on 2 workers


def vmaf_of(source: Path, encoded: Path, every: int) -> float:
    """Mean VMAF of `encoded` upscaled (bicubic) to the source size, every `every`-th frame."""
    from codec_assist.encoding.probes import even_frame

    info = media.probe(source)
    sw, sh = info.width & ~1, info.height & ~1
    scorer = FrameScorer("vmaf", every)
    scores = []
    for r, d in zip(media.iter_frames(source), media.iter_frames(encoded)):
        if (d.width, d.height) != (sw, sh):
            d = d.reformat(width=sw, height=sh, format="yuv420p", interpolation="BICUBIC")
        s = scorer(even_frame(r, sw, sh), d)
        if s is not None:
            scores.append(s)
    return float(np.mean(scores))


def crf_for_rate(src: Path, out: Path, size, rate_kbps: float, preset: str, tol: float = 0.02) -> tuple[float, float]:
    """One CRF for the whole clip whose encode lands within `tol` of the rate (secant on log-bits)."""
    pts: list[tuple[float, float]] = []
    crf = 26.0
    for _ in range(7):
        if out.exists():
            out.unlink()
        encode(src, out, codec="x264", rate=RateControl(mode="crf", crf=crf), preset=preset, size=size)
        kbps = video_bitrate_kbps(out)
        pts.append((crf, kbps))
        if abs(kbps / rate_kbps - 1) <= tol:
            break
        if len(pts) == 1:
            crf += 6 * math.log2(kbps / rate_kbps)  # ~6 CRF per halving
        else:
            (c0, k0), (c1, k1) = sorted(pts, key=lambda p: abs(math.log(p[1] / rate_kbps)))[:2]
            slope = (c1 - c0) / (math.log(k1) - math.log(k0)) if k1 != k0 else -8.6
            crf = c0 + slope * (math.log(rate_kbps) - math.log(k0))
        crf = float(np.clip(round(crf, 2), 0, 51))
    return crf, kbps


def run_clip(name: str, args, tmp: Path) -> dict:
    split, rates = CLIPS[name]
    src = MEDIA / name
    info = media.probe(src)
    duration = info.frame_count / info.fps
    out = tmp / name.split(".")[0]
    cache = (Path(args.cache) if args.cache else tmp) / f"cache-{name}"
    hull_opts = HullOptions(probe_preset=args.probe_preset, crfs=CRFS, vmaf_every=args.probe_vmaf_every,
                            max_probe_frames=args.probe_frames, cache_dir=cache)
    opts = EncodeOptions(ladder="auto:" + ",".join(f"{r}k" for r in rates), preset=args.preset, hull=hull_opts,
                         engine=EngineOptions(workers=1))
    t0 = time.perf_counter()
    rep = api.hull_ladder(src, out, opts)
    wall = time.perf_counter() - t0
    res = {"clip": name, "split": split, "frames": info.frame_count, "size": [info.width, info.height],
           "duration": duration, "shots": [[s.start_frame, s.end_frame] for s in rep.shots],
           "probe_encodes": rep.probe_encodes, "probe_cpu_s": rep.probe_cpu_seconds,
           "probe_wall_s": rep.probe_wall_seconds, "probe_cpu_per_video_s": rep.probe_cpu_seconds / duration,
           "hull_wall_s": wall, "rungs": []}
    for r in rep.rungs:
        size = (r.width, r.height)
        abr = tmp / f"abr-{name}-{r.name}.mp4"
        encode(src, abr, codec="x264", rate=RateControl(mode="abr", bitrate=r.budget), preset=args.preset, size=size)
        crf_file = tmp / f"crf-{name}-{r.name}.mp4"
        crf, crf_kbps = crf_for_rate(src, crf_file, size, r.budget / 1000, args.preset)
        row = {"rung": r.name, "budget_kbps": r.budget / 1000, "height": r.height, "encodes": r.encodes,
               "predicted_vmaf": r.predicted_vmaf, "vmaf_by_height": r.predicted_vmaf_by_height,
               "crfs": [c.crf for c in r.shots], "message": r.message,
               "hull": {"kbps": r.bitrate_kbps, "vmaf": vmaf_of(src, Path(r.output), args.vmaf_every)},
               "abr": {"kbps": video_bitrate_kbps(abr), "vmaf": vmaf_of(src, abr, args.vmaf_every)},
               "crf": {"kbps": crf_kbps, "crf": crf, "vmaf": vmaf_of(src, crf_file, args.vmaf_every)}}
        for k in ("hull", "abr", "crf"):
            row[k]["error"] = row[k]["kbps"] / row["budget_kbps"] - 1
        res["rungs"].append(row)
        print(json.dumps(row), flush=True)

    def curve(k):
        return [x[k]["kbps"] for x in res["rungs"]], [x[k]["vmaf"] for x in res["rungs"]]

    res["bd_rate_vs_abr"] = bd_rate(*curve("abr"), *curve("hull"))
    res["bd_rate_vs_crf"] = bd_rate(*curve("crf"), *curve("hull"))
    res["bd_rate_crf_vs_abr"] = bd_rate(*curve("abr"), *curve("crf"))
    units = [(s.start_frame, s.end_frame) for s in rep.shots]
    if name in args.speedup:
        timing = {}
        for workers in (1, 2):
            _, st = run_probes(src, units, rep.heights, SPEED_CRFS, codec="x264", preset=args.probe_preset,
                               engine=EngineOptions(workers=workers), cache_dir=tmp / f"speed-{name}-{workers}",
                               vmaf_every=args.probe_vmaf_every, max_frames=args.probe_frames)
            timing[workers] = st["wall"]
        res["probe_wall_1_worker"], res["probe_wall_2_workers"] = timing[1], timing[2]
        res["speedup_2_workers"] = timing[1] / timing[2]
    if name in args.agreement:
        from scipy.stats import spearmanr

        h = rep.heights[0]
        full, _ = run_probes(src, units, [h], CRFS, codec="x264", preset=args.preset, engine=EngineOptions(),
                             cache_dir=cache, vmaf_every=args.probe_vmaf_every, max_frames=args.probe_frames)
        fast = [[p for p in s.probes if p.height == h] for s in rep.shots]
        fb = [p.bits for s in fast for p in s]
        mb = [p.bits for s in full for p in s]
        fv = [p.vmaf for s in fast for p in s]
        mv = [p.vmaf for s in full for p in s]
        # per shot: is the (bits, VMAF) order of the CRF points and the hull the same at both presets?
        res["agreement"] = {"height": h, "spearman_bits": float(spearmanr(fb, mb)[0]),
                            "spearman_vmaf": float(spearmanr(fv, mv)[0]),
                            "bits_ratio_full_over_probe": float(np.median(np.asarray(mb) / np.asarray(fb))),
                            "vmaf_diff_full_minus_probe": float(np.median(np.asarray(mv) - np.asarray(fv)))}
    return res


def tables(results: list[dict]) -> str:
    lines = ["| clip (split) | rung | height | hull kb/s (err) | hull VMAF | ABR kb/s (err) | ABR VMAF "
             "| 1-CRF kb/s (err) | 1-CRF VMAF |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for x in r["rungs"]:
            lines.append(f"| {r['clip']} ({r['split']}) | {x['rung']} | {x['height']}p "
                         + " ".join(f"| {x[k]['kbps']:.0f} ({x[k]['error'] * 100:+.1f} %) | {x[k]['vmaf']:.2f}"
                                    for k in ("hull", "abr", "crf")) + " |")
    lines += ["", "| clip (split) | shots | BD-rate hull vs ABR | BD-rate hull vs 1-CRF | BD-rate 1-CRF vs ABR "
              "| probe CPU-s per s of video | 2 workers vs 1 |", "|---|---|---|---|---|---|---|"]

    def pct(v):
        return "n/a" if v is None else f"{v:+.1f} %"

    for r in results:
        sp = f"{r['speedup_2_workers']:.2f}x" if "speedup_2_workers" in r else "-"
        lines.append(f"| {r['clip']} ({r['split']}) | {len(r['shots'])} | {pct(r['bd_rate_vs_abr'])} "
                     f"| {pct(r['bd_rate_vs_crf'])} | {pct(r['bd_rate_crf_vs_abr'])} "
                     f"| {r['probe_cpu_per_video_s']:.1f} | {sp} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--probe-preset", default="veryfast")
    ap.add_argument("--vmaf-every", type=int, default=10, help="final files: VMAF on every n-th frame")
    ap.add_argument("--probe-vmaf-every", type=int, default=15)
    ap.add_argument("--probe-frames", type=int, default=75, help="probe each shot on its first N frames")
    ap.add_argument("--speedup", nargs="*", default=[], metavar="CLIP", help="measure the speed-up on these clips")
    ap.add_argument("--agreement", nargs="*", default=[], metavar="CLIP",
                    help="compare probe-preset and full-preset probes on these clips")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench" / "hull.json"))
    ap.add_argument("--cache", help="keep the probe cache here (default: a temporary folder)")
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args()
    path = Path(args.json)
    if args.tables_only:
        print(tables(json.loads(path.read_text())))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="ca-hull-") as tmp:
        for name in args.clips:
            results.append(run_clip(name, args, Path(tmp)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1))
    print(tables(results))


if __name__ == "__main__":
    main()
