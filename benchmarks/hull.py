#!/usr/bin/env python3
"""Benchmark for issue 19: the per-shot convex-hull ladder (`encode --ladder auto:RATES`) vs fixed ladders.

    PYTHONPATH=. .venv/bin/python benchmarks/hull.py --clips montage.mp4 megamind.avi --agreement montage.mp4 \
        --speedup montage.mp4 --json out/bench/hull.json
    PYTHONPATH=. .venv/bin/python benchmarks/hull.py --tables-only --json out/bench/hull_montage.json
    PYTHONPATH=. .venv/bin/python benchmarks/hull.py --importance montage.mp4 --weights 0 1 2 --json out/bench/imp.json

Per clip, in one run: the hull ladder at the clip's rates (a coarse probe grid at --probe-preset, then probes
refined around every rung's per-shot choice down to --refine-step CRF apart; rungs at --preset, each rung's
resolution chosen from the hulls), and fixed ladders at the same preset. At the same rung resolutions: x264
1-pass ABR at the rung's rate, x264 2-pass ABR at the rung's rate, and one CRF for the whole clip per rung,
searched (secant in log-bits, full encodes) until the file is within 2 % of the rung's rate. At a
conventional resolution (CONVENTIONAL: a fixed bitrate -> resolution table, not the hull's choice): 2-pass
ABR. Quality: whole-frame VMAF (libvmaf, motion on, every --vmaf-every-th frame) of each file decoded and
upscaled bicubically to the source size, against the source. BD-rate over the rungs (hull vs each fixed
ladder: negative = the hull needs fewer bits for the same VMAF), each rung's bitrate error, probe
CPU-seconds per second of video, and per rung the VMAF the probes predict if every shot could take its own
resolution (the union of its resolutions' hulls) against the one resolution the rung takes.
--speedup CLIP also reruns a small probe grid (fresh caches) on 1 and 2 local workers and on Ray with 2
workers, interleaved, best of --speedup-runs, and reports the wall-time ratios to 1 worker.
--agreement CLIP also probes every shot at the source height with --preset and compares (Spearman) with the
probe preset's points.
--importance CLIP runs the ladder at each --weights W (`--hull-importance W`) and reports, per rung, the VMAF of
the shots whose importance is above the clip's mean against the rest.
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
from codec_assist.encoding.hull import display_vmaf, probe_grid, run_probes  # noqa: E402
from codec_assist.encoding.x26x import encode  # noqa: E402
from codec_assist.evaluation.metrics import bd_rate, video_bitrate_kbps  # noqa: E402
from codec_assist.options import EncodeOptions, EngineOptions, HullOptions  # noqa: E402
from codec_assist.schemas import RateControl  # noqa: E402

# clip: (split, rates kb/s highest first; None: the product's default, `--ladder auto`). The clips added in the
# tenth session take the default ladder's first three candidates, fixed before their first run: R, R/2, R/4
# with R what CRF 26 spends at the source size in the probes (three rungs for a BD-rate; the default itself
# stops earlier on some of them, where the probes predict VMAF under 40).
CLIPS = {"montage.mp4": ("dev", (400, 200, 100)),
         "bbb_trailer.mp4": ("dev", (1200, 600, 300)),
         "bikes.mp4": ("dev", (249, 124, 62)),
         "megamind.avi": ("test", (800, 400, 200)),
         # the multi-shot clips of the held-out test2 split
         "rick_dance.mp4": ("test2", (56, 28, 14)),
         "spiral_band.mp4": ("test2", (63, 31, 15)),
         "robotics_lab3d.mp4": ("test2", (129, 64, 32)),
         # the multi-shot clips of test3 (2026-12-05), rates fixed the same way before their first run
         "webcam_title.mp4": ("test3", (308, 154, 77)),
         "festival_crowd.mp4": ("test3", (422, 211, 105)),
         "clock_cat.mp4": ("test4", (161, 80, 40)),
         "calais_1906.ogv": ("test5", (82, 41, 20))}
CRFS = [19.0, 26.0, 33.0, 40.0, 47.0]  # the coarse probe grid (refined around the choices, --refine-step)
SPEED_CRFS = [25.0, 37.0]  # --speedup reruns the probes with this smaller grid on 1 and 2 workers and on Ray
# A conventional fixed ladder: Apple's HLS authoring specification (2016) AVC table, (kb/s, height); its 234p
# row is encoded at 240p (our candidate height). A rung takes the row whose rate is nearest in log-rate,
# capped at the source height.
CONVENTIONAL = ((145, 240), (365, 360), (730, 432), (1100, 432), (2000, 540), (3000, 720), (4500, 720),
                (6000, 1080), (7800, 1080))


def conventional_height(rate_kbps: float, source_height: int) -> int:
    kbps, height = min(CONVENTIONAL, key=lambda row: abs(math.log(row[0] / rate_kbps)))
    return min(height, source_height & ~1)


def load_average() -> float:
    import os

    return round(os.getloadavg()[0], 2)


def vmaf_frames(source: Path, encoded: Path, every: int) -> dict[int, float]:
    """VMAF (libvmaf, motion on) of `encoded` upscaled (bicubic) to the source size on every `every`-th frame:
    {frame: score}."""
    from codec_assist.encoding.probes import even_frame

    info = media.probe(source)
    sw, sh = info.width & ~1, info.height & ~1
    pairs = ((even_frame(r, sw, sh), d) for r, d in zip(media.iter_frames(source), media.iter_frames(encoded)))
    return display_vmaf(pairs, (sw, sh), every)


def vmaf_of(source: Path, encoded: Path, every: int) -> float:
    """Mean VMAF of `encoded` upscaled (bicubic) to the source size, every `every`-th frame."""
    return float(np.mean(list(vmaf_frames(source, encoded, every).values())))


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


def two_pass(src: Path, out: Path, size, rate_bps: int, preset: str, tmp: Path) -> None:
    stats = tmp / f"{out.stem}.stats"
    for rc_pass in (1, 2):
        if out.exists():
            out.unlink()
        encode(src, out, codec="x264", rate=RateControl(mode="abr", bitrate=rate_bps), preset=preset, size=size,
               rc_pass=rc_pass, stats_file=stats)


def run_clip(name: str, args, tmp: Path) -> dict:
    from policies.hull import choose

    split, rates = CLIPS[name]
    src = MEDIA / name
    info = media.probe(src)
    duration = info.frame_count / info.fps
    out = tmp / name.split(".")[0]
    cache = (Path(args.cache) if args.cache else tmp) / f"cache-{name}"
    hull_opts = HullOptions(probe_preset=args.probe_preset, crfs=CRFS, vmaf_every=args.probe_vmaf_every,
                            max_probe_frames=args.probe_frames, cache_dir=cache, refine_step=args.refine_step)
    opts = EncodeOptions(ladder="auto" + (":" + ",".join(f"{r}k" for r in rates) if rates else ""),
                         preset=args.preset, hull=hull_opts,
                         engine=EngineOptions(workers=1))
    load0 = load_average()
    t0 = time.perf_counter()
    rep = api.hull_ladder(src, out, opts)
    wall = time.perf_counter() - t0
    res = {"clip": name, "split": split, "frames": info.frame_count, "size": [info.width, info.height],
           "duration": duration, "shots": [[s.start_frame, s.end_frame] for s in rep.shots],
           "refine_step": args.refine_step, "probe_encodes": rep.probe_encodes, "probe_refined": rep.probe_refined,
           "probe_cached": rep.probe_cached, "probe_points": sum(len(s.probes) for s in rep.shots),
           "probe_cpu_s": rep.probe_cpu_seconds, "probe_wall_s": rep.probe_wall_seconds,
           "probe_cpu_per_video_s": rep.probe_cpu_seconds / duration, "hull_wall_s": wall, "load_start": load0,
           "rungs": []}
    frames = [s.end_frame - s.start_frame for s in rep.shots]
    for r in rep.rungs:
        size = (r.width, r.height)
        abr = tmp / f"abr-{name}-{r.name}.mp4"
        encode(src, abr, codec="x264", rate=RateControl(mode="abr", bitrate=r.budget), preset=args.preset, size=size)
        abr2 = tmp / f"abr2-{name}-{r.name}.mp4"
        two_pass(src, abr2, size, r.budget, args.preset, tmp)
        crf_file = tmp / f"crf-{name}-{r.name}.mp4"
        crf, crf_kbps = crf_for_rate(src, crf_file, size, r.budget / 1000, args.preset)
        conv_h = conventional_height(r.budget / 1000, info.height)
        # per-shot resolution (not playable as one file): every shot on the union of its resolutions' hulls
        union = choose([([p.bits for p in s.probes], [p.vmaf for p in s.probes]) for s in rep.shots], frames,
                       r.budget * duration)
        row = {"rung": r.name, "budget_kbps": r.budget / 1000, "height": r.height, "encodes": r.encodes,
               "predicted_vmaf": r.predicted_vmaf, "vmaf_by_height": r.predicted_vmaf_by_height,
               "predicted_vmaf_per_shot_height": union.quality,
               "per_shot_heights": [s.probes[c.lo].height if c.fraction < 0.5 else s.probes[c.hi].height
                                    for s, c in zip(rep.shots, union.shots)],
               "crfs": [c.crf for c in r.shots], "message": r.message,
               "hull": {"kbps": r.bitrate_kbps, "vmaf": vmaf_of(src, Path(r.output), args.vmaf_every)},
               "abr": {"kbps": video_bitrate_kbps(abr), "vmaf": vmaf_of(src, abr, args.vmaf_every)},
               "abr2": {"kbps": video_bitrate_kbps(abr2), "vmaf": vmaf_of(src, abr2, args.vmaf_every)},
               "crf": {"kbps": crf_kbps, "crf": crf, "vmaf": vmaf_of(src, crf_file, args.vmaf_every)},
               "conv_height": conv_h}
        if conv_h == r.height:
            row["conv"] = dict(row["abr2"])  # the same encode: the table picks the hull's resolution
        else:
            conv = tmp / f"conv-{name}-{r.name}.mp4"
            two_pass(src, conv, media_size(info, conv_h), r.budget, args.preset, tmp)
            row["conv"] = {"kbps": video_bitrate_kbps(conv), "vmaf": vmaf_of(src, conv, args.vmaf_every)}
        for k in ("hull", "abr", "abr2", "crf", "conv"):
            row[k]["error"] = row[k]["kbps"] / row["budget_kbps"] - 1
        res["rungs"].append(row)
        print(json.dumps(row), flush=True)

    def curve(k):
        return [x[k]["kbps"] for x in res["rungs"]], [x[k]["vmaf"] for x in res["rungs"]]

    for k in ("abr", "abr2", "crf", "conv"):
        res[f"bd_rate_vs_{k}"] = bd_rate(*curve(k), *curve("hull"))
    res["bd_rate_crf_vs_abr"] = bd_rate(*curve("abr"), *curve("crf"))
    res["bd_rate_crf_vs_abr2"] = bd_rate(*curve("abr2"), *curve("crf"))
    res["load_end"] = load_average()
    units = [(s.start_frame, s.end_frame) for s in rep.shots]
    if name in args.speedup:
        res.update(measure_speedup(src, units, rep.heights, args, tmp))
    if name in args.agreement:
        from scipy.stats import spearmanr

        h = rep.heights[0]
        full, _ = run_probes(src, units, probe_grid(len(units), [h], CRFS), codec="x264", preset=args.preset,
                             engine=EngineOptions(), cache_dir=cache, vmaf_every=args.probe_vmaf_every,
                             max_frames=args.probe_frames)
        fast = [[p for p in s.probes if p.height == h and p.crf in CRFS] for s in rep.shots]
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


def measure_importance(name: str, args, tmp: Path) -> dict:
    """The hull ladder at each --weights W (`--hull-importance W`, the default analysis): per rung, its rate,
    whole VMAF, and the frame-weighted VMAF of the shots whose mean importance is above the clip's mean
    against the rest (the importance comes from the first W > 0 run; W = 0 runs no analysis)."""
    split, rates = CLIPS[name]
    src = MEDIA / name
    cache = (Path(args.cache) if args.cache else tmp) / f"cache-{name}"
    runs, importance = {}, None
    for w in sorted(args.weights, key=lambda w: w == 0):  # W > 0 first: it measures the importance
        hull_opts = HullOptions(probe_preset=args.probe_preset, crfs=CRFS, vmaf_every=args.probe_vmaf_every,
                                max_probe_frames=args.probe_frames, cache_dir=cache, refine_step=args.refine_step,
                                importance_weight=w)
        opts = EncodeOptions(ladder="auto" + (":" + ",".join(f"{r}k" for r in rates) if rates else ""),
                             preset=args.preset, hull=hull_opts, engine=EngineOptions(workers=1))
        rep = api.hull_ladder(src, tmp / f"importance-{w:g}", opts)
        if w > 0 and importance is None:
            importance = [s.importance for s in rep.shots]
        runs[w] = rep
    if importance is None:
        raise SystemExit("--importance needs at least one weight above 0 (it measures the shots' importance)")
    shots = [(s.start_frame, s.end_frame) for s in next(iter(runs.values())).shots]
    matters = [i > float(np.mean(importance)) for i in importance]
    out = {"clip": name, "split": split, "importance": importance, "shots": shots, "matters": matters,
           "weights": {}}
    for w in sorted(runs):
        rows = []
        for r in runs[w].rungs:
            scores = vmaf_frames(src, Path(r.output), args.vmaf_every)

            def mean(sel):
                v = [q for f, q in scores.items() if any(a <= f < b for (a, b), m in zip(shots, matters) if m == sel)]
                return float(np.mean(v)) if v else None

            rows.append({"rung": r.name, "kbps": r.bitrate_kbps, "error": r.error,
                         "vmaf": float(np.mean(list(scores.values()))), "vmaf_matters": mean(True),
                         "vmaf_rest": mean(False), "crfs": [c.crf for c in r.shots]})
        out["weights"][f"{w:g}"] = rows
        print(json.dumps({"weight": w, "rungs": rows}), flush=True)
    return out


def importance_table(res: dict) -> str:
    lines = [f"shots {res['shots']}, importance {[round(i, 3) for i in res['importance']]}, above the mean: "
             f"{[s for s, m in zip(res['shots'], res['matters']) if m]}", "",
             "| weight | rung | kb/s (error) | VMAF | VMAF, shots that matter | VMAF, the rest | per-shot CRFs |",
             "|---|---|---|---|---|---|---|"]
    for w, rows in res["weights"].items():
        for x in rows:
            lines.append(f"| {w} | {x['rung']} | {x['kbps']:.0f} ({x['error'] * 100:+.1f} %) | {x['vmaf']:.2f} "
                         f"| {x['vmaf_matters']:.2f} | {x['vmaf_rest']:.2f} | {' '.join(f'{c:g}' for c in x['crfs'])} |")
    return "\n".join(lines)


def measure_speedup(src: Path, units, heights, args, tmp: Path) -> dict:
    """Probe wall time of the SPEED_CRFS grid (fresh caches) on 1 and 2 local workers and on Ray (2 workers),
    interleaved, best of --speedup-runs."""
    timing: dict[str, list[float]] = {"local1": [], "local2": [], "ray2": []}
    cpu: dict[str, list[float]] = {k: [] for k in timing}
    engines = {"local1": EngineOptions(workers=1), "local2": EngineOptions(workers=2),
               "ray2": EngineOptions(engine="ray", workers=2)}
    grid = probe_grid(len(units), heights, SPEED_CRFS)
    loads = [load_average()]
    for run in range(args.speedup_runs):  # interleaved: the machine's load drifts
        for key, eng in engines.items():
            _, st = run_probes(src, units, grid, codec="x264", preset=args.probe_preset, engine=eng,
                               cache_dir=tmp / f"speed-{src.name}-{key}-{run}", vmaf_every=args.probe_vmaf_every,
                               max_frames=args.probe_frames)
            timing[key].append(st["wall"])
            cpu[key].append(st["cpu"])
            loads.append(load_average())
            print(json.dumps({"speedup": key, "run": run, "wall": st["wall"], "cpu": st["cpu"],
                              "load": loads[-1]}), flush=True)
    return {"probe_wall": timing, "probe_cpu_speed": cpu, "speedup_probes": len(grid) * len(SPEED_CRFS),
            "speedup_2_workers": min(timing["local1"]) / min(timing["local2"]),
            "speedup_ray_2_workers": min(timing["local1"]) / min(timing["ray2"]), "speedup_loads": loads}


def media_size(info, height: int) -> tuple[int, int]:
    from codec_assist.planning.allocate import rung_size

    return rung_size(info.width, info.height, None, height)


def tables(results: list[dict]) -> str:
    kinds = ("hull", "abr", "abr2", "crf", "conv")
    lines = ["| clip (split) | rung | height (conv.) | hull kb/s (err) | hull VMAF | 1-pass ABR | 2-pass ABR "
             "| one CRF | conventional 2-pass | per-shot CRFs |", "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(x, k):
        return f"{x[k]['kbps']:.0f} ({x[k]['error'] * 100:+.1f} %) / {x[k]['vmaf']:.2f}"

    for r in results:
        for x in r["rungs"]:
            lines.append(f"| {r['clip']} ({r['split']}) | {x['rung']} | {x['height']}p ({x.get('conv_height', '-')}p) "
                         f"| {x['hull']['kbps']:.0f} ({x['hull']['error'] * 100:+.1f} %) | {x['hull']['vmaf']:.2f} | "
                         + " | ".join(cell(x, k) if k in x else "-" for k in kinds[1:])
                         + " | " + " ".join(f"{c:g}" for c in x["crfs"]) + " |")
    lines += ["", "| clip (split) | shots | probes (refined) | BD-rate hull vs 1-pass ABR | vs 2-pass ABR | vs one CRF "
              "| vs conventional | one CRF vs 2-pass ABR | probe CPU-s per s of video | 2 workers vs 1 | Ray (2) vs 1 "
              "| load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def pct(v):
        return "n/a" if v is None else f"{v:+.1f} %"

    for r in results:
        sp = f"{r['speedup_2_workers']:.2f}x" if "speedup_2_workers" in r else "-"
        ray = f"{r['speedup_ray_2_workers']:.2f}x" if "speedup_ray_2_workers" in r else "-"
        lines.append(f"| {r['clip']} ({r['split']}) | {len(r['shots'])} | {r.get('probe_points', '-')} "
                     f"({r.get('probe_refined', 0)}) | {pct(r.get('bd_rate_vs_abr'))} | {pct(r.get('bd_rate_vs_abr2'))} "
                     f"| {pct(r.get('bd_rate_vs_crf'))} | {pct(r.get('bd_rate_vs_conv'))} "
                     f"| {pct(r.get('bd_rate_crf_vs_abr2'))} | {r['probe_cpu_per_video_s']:.1f} | {sp} | {ray} "
                     f"| {r.get('load_start', '-')}-{r.get('load_end', '-')} |")
    lines += ["", "| clip (split) | rung | predicted VMAF, one resolution | predicted, per-shot resolution "
              "| per-shot heights |", "|---|---|---|---|---|"]
    for r in results:
        for x in r["rungs"]:
            if "predicted_vmaf_per_shot_height" in x:
                best = max(x["vmaf_by_height"].values())
                lines.append(f"| {r['clip']} ({r['split']}) | {x['rung']} | {best:.2f} "
                             f"| {x['predicted_vmaf_per_shot_height']:.2f} "
                             f"| {' '.join(str(h) for h in x['per_shot_heights'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--probe-preset", default="veryfast")
    ap.add_argument("--vmaf-every", type=int, default=10, help="final files: VMAF on every n-th frame")
    ap.add_argument("--probe-vmaf-every", type=int, default=5)
    ap.add_argument("--refine-step", type=float, default=2.0, help="refine the probes down to this CRF step (0: off)")
    ap.add_argument("--speedup-runs", type=int, default=2, help="--speedup: interleaved runs, best of")
    ap.add_argument("--probe-frames", type=int, default=75, help="probe each shot on its first N frames")
    ap.add_argument("--speedup", nargs="*", default=[], metavar="CLIP", help="measure the speed-up on these clips")
    ap.add_argument("--agreement", nargs="*", default=[], metavar="CLIP",
                    help="compare probe-preset and full-preset probes on these clips")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench" / "hull.json"))
    ap.add_argument("--cache", help="keep the probe cache here (default: a temporary folder)")
    ap.add_argument("--tables-only", action="store_true")
    ap.add_argument("--speedup-only", action="store_true",
                    help="only measure --speedup CLIPs, on the shots of the earlier run in --json, and add it there")
    ap.add_argument("--importance", metavar="CLIP", help="measure --hull-importance at each --weights on this clip")
    ap.add_argument("--weights", nargs="*", type=float, default=[0.0, 1.0, 2.0])
    args = ap.parse_args()
    path = Path(args.json)
    if args.importance:
        with tempfile.TemporaryDirectory(prefix="ca-hull-imp-") as tmp:
            res = measure_importance(args.importance, args, Path(tmp))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
        print(importance_table(res))
        return
    if args.tables_only:
        print(tables(json.loads(path.read_text())))
        return
    if args.speedup_only:  # add the speed-up to an earlier run's results for these clips
        from policies.hull import candidate_heights

        results = json.loads(path.read_text())
        with tempfile.TemporaryDirectory(prefix="ca-hull-speed-") as tmp:
            for r in results:
                if r["clip"] in args.speedup:
                    src = MEDIA / r["clip"]
                    units = [tuple(u) for u in r["shots"]]
                    heights = candidate_heights(media.probe(src).height)
                    r.update(measure_speedup(src, units, heights, args, Path(tmp)))
                    path.write_text(json.dumps(results, indent=1))
        print(tables(results))
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
