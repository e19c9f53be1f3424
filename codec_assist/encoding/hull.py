"""Convex-hull ladder (`encode --ladder auto[:RATE,...]`): per-shot probes, equal-slope choice, rung encodes.

1. Probes: every shot x resolution (the source height and the standard heights below it) x CRF grid is
   encoded in memory (codec_assist.encoding.probes.encode_frames) at a probe preset, decoded, upscaled to the
   source size as a player would (bicubic) and scored with VMAF (libvmaf, every `vmaf_every`-th frame, motion
   on, as `compare` measures it) against the source. One task per (shot, resolution) on the engine (local processes or Ray);
   each probe's result is cached on disk under a key of the clip's sha256, shot, size, CRF, codec and preset,
   so a rerun (or another rung set) skips what was measured.
2. Per rung, for each candidate resolution the equal-slope choice (policies.hull.choose) over the shots' hulls
   at that resolution predicts the VMAF at the rung's budget; the rung takes the best resolution.
3. Output (a): one resolution per rung, a CRF per shot, the rung encoded in ONE pass (x264/x265 CRF) with an
   IDR forced at every shot start after a hard cut (scenecut off, so the rungs' IDRs are identical; a shot
   that begins with a gradual transition gets its zone but no IDR: an IDR on the blend cost 3.5-5 % of the
   rung's bits on the montage's cross-fade for no VMAF, docs/BENCHMARKS.md) and each shot's CRF carried
   by a zone: `b=2^((base - crf)/6)` on the base CRF (the first shot's). In CRF mode a zone's b=f divides the
   qscale by f, i.e. moves the QP by -6*log2(f): measured on the montage (240p, medium) b=0.5 / b=2 on CRF 30
   spend within 0.13 % of CRF 36 / 24, and x265 b=0.5 on CRF 26 is bit-identical to CRF 32. x264 also takes
   `crf=` inside a zone (same bits within 0.01 %), x265 does not; b= serves both. One pass keeps x264's
   mb-tree and lookahead across the cuts: encoding each shot as its own chunk lost 0.4-1.3 VMAF on the
   montage at the same bits (docs/BENCHMARKS.md), as much as the per-shot CRFs gain. Why not (b), per-shot
   resolution segments behind an HLS manifest: a player switches resolution only between renditions, a file
   whose frame size changes mid-stream is not an ordinary MP4 track, and the probes on our clips choose one
   resolution for every shot of a rung at most budgets anyway. The resolution is still chosen from the
   hulls, per rung.
4. Rate: CRF encodes at the full preset spend differently from the probes; when a rung lands more than
   RATE_TOLERANCE off its budget, each shot's probe bits are scaled by its measured full/probe ratio, the
   choice is made again and the rung re-encoded, at most RATE_PASSES times, keeping the file closest to the
   budget (the result says how far it landed).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from policies.hull import (best_height, candidate_heights, choose, crf_between, extension_crf, refinement_crfs,
                           upper_hull)

import codec_assist.media.decode as media
from codec_assist.errors import CodecAssistError, EncoderError
from codec_assist.media.safeio import atomic_write_bytes
from codec_assist.planning.allocate import rung_size
from codec_assist.scale.engine import EngineOptions, run_tasks
from codec_assist.schemas import HullLadderReport, HullProbe, HullRung, HullShot, HullShotChoice, RateControl, Zone

log = logging.getLogger("codec_assist")

RATE_TOLERANCE = 0.025  # re-encode a rung that lands further than this from its budget (goal ±3 %)
RATE_PASSES = 2  # at most this many re-encodes (rate passes) per rung
DEFAULT_CRFS = (18.0, 22.0, 26.0, 30.0, 34.0, 38.0, 42.0)
EXTEND_STEP = 6.0  # CRFs past a grid end a rung's budget lies beyond (about a doubling or halving of the bits)
# scenecut off inside a shot: an IDR only at shot starts (and every keyint frames), the same in every rung
RUNG_PARAMS = {"scenecut": "0"}


# -------------------------------------------------------------------------------------------------- probes
def probe_key(sha: str, codec: str, preset: str, start: int, end: int, width: int, height: int, crf: float,
              vmaf_every: int, max_frames: int) -> str:
    # "lv": libvmaf with motion; probes cached by the earlier scorer (vmaf-torch, motion off) are not reused
    return f"{sha[:20]}-{codec}-{preset}-f{start}-{end}-{width}x{height}-crf{crf:g}-lv{vmaf_every}-m{max_frames}"


def probe_shot(input_path: str, start: int, end: int, width: int, height: int, crfs: list[float], codec: str,
               preset: str, vmaf_every: int, max_frames: int, threads: int) -> dict:
    """The task: one shot at one size, every CRF. Returns {"probes": [{crf, bits, vmaf}], "cpu": seconds,
    "frames": n}. Long shots are probed on their first `max_frames` frames (bits are scaled to the shot)."""
    from codec_assist.encoding.probes import encode_frames, even_frame

    cpu0 = _cpu_seconds()
    info = media.probe(input_path)
    sw, sh = info.width & ~1, info.height & ~1
    refs, scaled = [], []
    for n, frame in enumerate(media.iter_frames(input_path)):
        if n >= end or len(refs) >= max_frames:
            break
        if n >= start:
            refs.append(even_frame(frame, sw, sh))
            scaled.append(frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
                          if (width, height) != (sw, sh) else refs[-1])
    if not refs:
        raise EncoderError(f"shot {start}-{end - 1}: no frames decoded")
    scale = (end - start) / len(refs)
    out = []
    for crf in crfs:
        bits, decoded = encode_frames(scaled, start, codec=codec, preset=preset, fps=info.fps, crf=crf)
        vmaf = float(np.mean(list(display_vmaf(zip(refs, decoded), (sw, sh), vmaf_every, threads).values())))
        out.append({"crf": crf, "bits": int(round(bits.sum() * scale)), "vmaf": vmaf})
    return {"probes": out, "cpu": _cpu_seconds() - cpu0, "frames": len(refs)}


def display_vmaf(pairs, size: tuple[int, int], every: int, threads: int = 1) -> dict[int, float]:
    """VMAF (libvmaf, motion on) of (source frame, encoded frame) pairs in display order, each encoded frame
    upscaled (bicubic) to the source `size` as a player shows it, on every `every`-th pair: {pair index: score}.
    The other pairs count for motion only, which libvmaf takes from the source alone: nothing is scaled for them."""
    from codec_assist.evaluation.metrics import FrameScorer

    scorer = FrameScorer("vmaf", every, threads=threads)
    try:
        for j, (r, d) in enumerate(pairs):
            if not scorer.scored(j):
                d = r
            elif (d.width, d.height) != size:
                d = d.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="BICUBIC")
            scorer.add(r, d)
        return scorer.scores()
    finally:
        scorer.close()


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (libvmaf's FFmpeg, one per probe)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def probe_grid(shots: int, heights: Sequence[int], crfs: Sequence[float]) -> dict[tuple[int, int], list[float]]:
    """The same CRFs at every (shot index, height): the coarse grid."""
    return {(k, h): list(crfs) for k in range(shots) for h in heights}


def run_probes(input_path: Path, units: Sequence[tuple[int, int]], grid: Mapping[tuple[int, int], Sequence[float]],
               *, codec: str, preset: str, engine: EngineOptions, cache_dir: Path | None, vmaf_every: int,
               max_frames: int, progress: bool = False) -> tuple[list[list[HullProbe]], dict]:
    """The probe points `grid[(shot index, height)]` = CRFs, from the cache where present. Returns them per shot
    (by height, largest first, then CRF) and {"encodes", "cached", "cpu", "wall"} for what ran in this call."""
    from tqdm import tqdm

    from codec_assist.scale.batch import sha256_file

    info = media.probe(input_path)
    sha = sha256_file(input_path)
    sizes = {h: rung_size(info.width, info.height, None, h) for h in {h for _, h in grid}}
    fps = info.fps
    found: dict[tuple[int, int, float], dict] = {}
    tasks: dict[tuple[int, int], tuple] = {}
    for (k, h), crfs in sorted(grid.items()):
        s, e = units[k]
        w, hh = sizes[h]
        missing = []
        for crf in sorted(set(float(c) for c in crfs)):
            key = probe_key(sha, codec, preset, s, e, w, hh, crf, vmaf_every, max_frames)
            f = cache_dir / f"{key}.json" if cache_dir else None
            if f is not None and f.is_file():
                try:
                    found[(k, h, crf)] = json.loads(f.read_text())
                    continue
                except (OSError, json.JSONDecodeError):
                    pass  # a damaged cache entry is measured again
            missing.append(crf)
        if missing:
            tasks[(k, h)] = (str(input_path), s, e, w, hh, missing, codec, preset, vmaf_every, max_frames,
                             engine.threads())
    cached = len(found)
    stats = {"encodes": 0, "cached": cached, "cpu": 0.0, "wall": 0.0}
    errors: dict = {}
    bar = tqdm(total=len(tasks), unit="probe set", desc="hull probes", disable=not progress, leave=False)

    def done(key, result, error):
        bar.update()
        if error:
            errors[key] = error
            return
        k, h = key
        s, e = units[k]
        w, hh = sizes[h]
        stats["cpu"] += result["cpu"]
        for p in result["probes"]:
            found[(k, h, p["crf"])] = p
            stats["encodes"] += 1
            if cache_dir is not None:
                key_s = probe_key(sha, codec, preset, s, e, w, hh, p["crf"], vmaf_every, max_frames)
                atomic_write_bytes(cache_dir / f"{key_s}.json", json.dumps(p).encode())

    t0 = time.perf_counter()
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    run_tasks(probe_shot, tasks, engine, done)
    bar.close()
    stats["wall"] = time.perf_counter() - t0
    if errors:
        (k, h), msg = min(errors.items())
        raise EncoderError(f"probe of shot {units[k][0]}-{units[k][1] - 1} at {h}p failed: {msg}")
    out = []
    for k, (s, e) in enumerate(units):
        seconds = (e - s) / fps
        shot = []
        for (kk, h, crf) in sorted(found, key=lambda x: (-x[1], x[2])):
            if kk != k:
                continue
            w, hh = sizes[h]
            p = found[(k, h, crf)]
            shot.append(HullProbe(height=hh, width=w, crf=crf, bits=p["bits"], kbps=p["bits"] / seconds / 1000,
                                  vmaf=p["vmaf"]))
        out.append(shot)
    return out, stats


# ----------------------------------------------------------------------------------------------- choosing
def _points_at(shot: HullShot, height: int, scale: float = 1.0) -> tuple[list[HullProbe], np.ndarray, np.ndarray]:
    probes = [p for p in shot.probes if p.height == height]
    return probes, np.asarray([p.bits * scale for p in probes], float), np.asarray([p.vmaf for p in probes], float)


def choose_rung(shots: Sequence[HullShot], heights: Sequence[int], budget_bits: float, fps: float, *,
                importance_weight: float = 0.0, scales: dict[int, list[float]] | None = None, only: int | None = None
                ) -> tuple[int, list[HullShotChoice], float, float, dict[int, float], str]:
    """The rung's resolution and per-shot CRFs: (height, choices, predicted VMAF, slope, VMAF per height,
    message: empty, or why the budget cannot be met with the probed CRFs).
    `scales[h][k]` multiplies shot k's probe bits at height h (the refinement's full/probe ratio)."""
    frames = [s.end_frame - s.start_frame for s in shots]
    importance = [s.importance for s in shots]
    results = {}
    for h in ([only] if only is not None else heights):
        pts = [_points_at(s, h, (scales or {}).get(h, [1.0] * len(shots))[k]) for k, s in enumerate(shots)]
        results[h] = (pts, choose([(b, q) for _, b, q in pts], frames, budget_bits, importance=importance,
                                  importance_weight=importance_weight))
    by_height = {h: r.quality for h, (_, r) in results.items()}
    # a resolution whose cheapest points already spend more than the budget is no choice while another fits
    # (its "quality" is bought with more bits than the rung has); when none fits, the one closest to it
    fits = {k: q for k, q in by_height.items() if results[k][1].feasible}
    h = best_height(fits) if fits else min(results, key=lambda k: results[k][1].bits)
    pts, r = results[h]
    message = ""
    if r.bits < budget_bits * (1 - RATE_TOLERANCE):
        message = (f"the budget is above what CRF {min(p.crf for p in shots[0].probes):g} spends at {h}p "
                   f"({r.bits / budget_bits * 100:.0f} % of it): widen the CRF grid (--hull-crfs) to spend it")
    elif not r.feasible:
        message = (f"the budget is below what CRF {max(p.crf for p in shots[0].probes):g} spends at {h}p "
                   f"({r.bits / budget_bits * 100:.0f} % of it): widen the CRF grid or add a lower resolution")
    choices = []
    for shot, (probes, b, _), c in zip(shots, pts, r.shots):
        lo, hi = probes[c.lo], probes[c.hi]
        crf = crf_between(lo.crf, hi.crf, b[c.lo], b[c.hi], c.bits) if c.lo != c.hi else lo.crf
        seconds = (shot.end_frame - shot.start_frame) / fps
        choices.append(HullShotChoice(start_frame=shot.start_frame, end_frame=shot.end_frame,
                                      crf=round(crf, 2), probe_kbps=c.bits / seconds / 1000, vmaf=c.quality))
    return h, choices, r.quality, r.slope, by_height, message


def _hull_shots(units, probes, importance, heights, idr: set[int]) -> list[HullShot]:
    shots = []
    for (s, e), pr, i in zip(units, probes, importance):
        hull = {}
        for h in heights:
            sel = [j for j, p in enumerate(pr) if p.height == h]
            hull[h] = [sel[j] for j in upper_hull([pr[j].bits for j in sel], [pr[j].vmaf for j in sel])]
        shots.append(HullShot(start_frame=s, end_frame=e, importance=float(i), probes=pr, hull=hull,
                              idr=s == 0 or s in idr))
    return shots


# ------------------------------------------------------------------------------------------------ encoding
def rung_zones(choices: Sequence[HullShotChoice]) -> tuple[float, list[Zone]]:
    """The base CRF of a rung's one pass (the first shot's: x264 derives the first IDR's QP from it) and one
    zone per shot whose bitrate factor moves that base to the shot's CRF (-6*log2(factor) QP)."""
    base = choices[0].crf
    return base, [Zone(start_frame=c.start_frame, end_frame=c.end_frame - 1, bitrate_factor=2 ** ((base - c.crf) / 6))
                  for c in choices]


def encode_rung(input_path: Path, output: Path, choices: Sequence[HullShotChoice], size: tuple[int, int], *,
                codec: str, preset: str, idr_starts: Sequence[int] | None = None) -> list[int]:
    """The rung in one encoder pass at `size` (module doc, 3): each shot's CRF by its zone, an IDR forced at
    each of `idr_starts` (None: every shot start). Written atomically; checked: every frame, an IDR at each
    of them. Returns the bits spent on each shot."""
    from codec_assist.encoding.x26x import NO_AQ_PRESETS, encode, zones_param

    base, zones = rung_zones(choices)
    starts = sorted({0, *(c.start_frame for c in choices)} if idr_starts is None else {0, *idr_starts})
    # x264/x265 (1-pass CRF) give an I-frame the mean QP of the P-frames before it, i.e. the previous shot's
    # level; zones do not reach it. Moved by the CRF step, it is coded as a one-CRF encode at the shot's CRF
    # would code it (montage 240p: without, the IDR after a CRF-28 shot into a CRF-34.9 one spent 2x its bits).
    # Not at ultrafast: no AQ, no ROI offsets there.
    idr_qp = ({} if preset in NO_AQ_PRESETS else
              {b.start_frame: b.crf - a.crf for a, b in zip(choices, choices[1:]) if b.start_frame in starts})
    r = encode(input_path, output, codec=codec, rate=RateControl(mode="crf", crf=base), preset=preset, size=size,
               params={**RUNG_PARAMS, "zones": zones_param(zones)}, keyframes=starts, frame_qp=idr_qp,
               overwrite=True)
    missing = sorted(set(starts) - set(r.keyframes))
    if r.frames != choices[-1].end_frame or missing:
        output.unlink(missing_ok=True)
        raise EncoderError(f"rung {output.name}: {r.frames} frames for {choices[-1].end_frame}"
                           + (f", no IDR at shot start(s) {missing}" if missing else ""))
    bits = media.packet_bits(output)
    return [int(bits[c.start_frame:c.end_frame].sum()) for c in choices]


def encode_hull_ladder(input_path: str | Path, outputs: Sequence[Path] | None, output_dir: Path,
                       rates: Sequence[int] | None, shot_starts: Sequence[int], *,
                       idr_starts: Sequence[int] | None = None, codec: str = "x264",
                       preset: str = "medium", probe_preset: str = "veryfast", crfs: Sequence[float] = DEFAULT_CRFS,
                       heights: Sequence[int] | None = None, importance: Sequence[float] | None = None,
                       importance_weight: float = 0.0, engine: EngineOptions | None = None,
                       cache_dir: Path | None = None, vmaf_every: int = 5, max_probe_frames: int = 250,
                       refine_step: float = 2.0, overwrite: bool = False, progress: bool = False
                       ) -> HullLadderReport:
    """Probe, choose and encode every rung (see the module doc). `idr_starts`: the shot starts that get a
    forced IDR in every rung (the hard cuts; None: all of them). `rates` in bits/s, highest first; None: four
    rungs from the rate of the source-size CRF-26 probes down by halves, those the probes predict at VMAF 40 or
    more (policies.hull.worth_sending). `outputs` (one per rate, or None to
    name them DIR/STEM.RATE.mp4 once the rates are known). `refine_step` > 0: after the coarse `crfs` grid,
    probe again around every rung's equal-slope choice at its resolution until the probed CRFs next to each
    choice are at most `refine_step` apart (policies.hull.refinement_crfs). A rung whose budget lies beyond what
    the grid spends at its resolution gets its shots probed EXTEND_STEP past the grid's end, round after round
    (policies.hull.extension_crf), whatever `refine_step`."""
    from tqdm import tqdm

    from policies.hull import MIN_RUNG_VMAF, default_rates, worth_sending

    from codec_assist.encoding.x26x import CONTAINERS
    from codec_assist.media.safeio import check_output
    from codec_assist.planning.allocate import allocation_units

    inp = Path(input_path)
    engine = engine or EngineOptions()
    info = media.probe(inp)
    stamps = media.frame_timestamps(inp)
    if not stamps:
        raise CodecAssistError(f"{inp}: its frames have no distinct timestamps; a hull ladder needs them")
    n = len(stamps)
    units = allocation_units(shot_starts, n, info.fps)
    idr = set(shot_starts if idr_starts is None else idr_starts)
    heights = sorted(set(heights or candidate_heights(info.height)), reverse=True)
    if any(h > (info.height & ~1) for h in heights):
        raise CodecAssistError(f"hull heights {heights} include one above the source's {info.height}p")
    crfs = sorted({float(c) for c in crfs})
    if len(crfs) < 2:
        raise CodecAssistError("a hull needs at least two CRFs")

    probe_args = dict(codec=codec, preset=probe_preset, engine=engine, cache_dir=cache_dir, vmaf_every=vmaf_every,
                      max_frames=max_probe_frames, progress=progress)
    grid = probe_grid(len(units), heights, crfs)
    probes, stats = run_probes(inp, units, grid, **probe_args)
    imp = list(importance) if importance is not None else [0.0] * len(units)
    shots = _hull_shots(units, probes, imp, heights, idr)
    idr_at = [sh.start_frame for sh in shots if sh.idr]
    duration = n / info.fps
    if rates is None:
        top = sum(p.bits for s in shots for p in s.probes if p.height == heights[0] and p.crf == min(
            crfs, key=lambda c: abs(c - 26.0)))
        candidates = default_rates(top / duration)
        predicted = [choose_rung(shots, heights, r * duration, info.fps, importance_weight=importance_weight)[2]
                     for r in candidates]
        rates = worth_sending(candidates, predicted)
        if len(rates) < len(candidates):
            log.info("--ladder auto: no rung at %s: the probes predict VMAF under %g there",
                     ", ".join(f"{r // 1000}k" for r in candidates[len(rates):]), MIN_RUNG_VMAF)
    refined = 0
    while True:  # ends: every round halves the probed gaps next to the choices or moves a grid end outwards
        extra: dict[tuple[int, int], set[float]] = {}
        for rate in rates:
            h, choices, *_ = choose_rung(shots, heights, rate * duration, info.fps, importance_weight=importance_weight)
            # a budget beyond what the grid spends at this resolution: probe one step past its end (every
            # shot sits on its end vertex then), instead of encoding a rung that misses its budget
            predicted_bits = sum(c.probe_kbps * 1000 * (c.end_frame - c.start_frame) / info.fps for c in choices)
            for k, (shot, c) in enumerate(zip(shots, choices)):
                probed = [p.crf for p in shot.probes if p.height == h]
                new = refinement_crfs(probed, c.crf, refine_step)
                edge = extension_crf(probed, predicted_bits, rate * duration, RATE_TOLERANCE, EXTEND_STEP)
                new = new + ([edge] if edge is not None else [])
                if new:
                    extra.setdefault((k, h), set()).update(new)
        if not extra:
            break
        for (k, h), new in extra.items():
            grid[(k, h)] = sorted({*grid[(k, h)], *new})
        probes, more = run_probes(inp, units, grid, **probe_args)
        refined += sum(len(v) for v in extra.values())
        for key in ("encodes", "cpu", "wall"):
            stats[key] += more[key]
        shots = _hull_shots(units, probes, imp, heights, idr)
    if outputs is None:
        outputs = [output_dir / f"{inp.stem}.{r // 1000}k.mp4" for r in rates]
    for p in outputs:
        check_output(p, inp, overwrite=overwrite)

    rungs = []
    t0 = time.perf_counter()
    for rate, out in tqdm(list(zip(rates, outputs)), unit="rung", desc="hull rungs", disable=not progress,
                          leave=False):
        out = Path(out)
        if out.suffix.lower() not in CONTAINERS:
            raise EncoderError(f"output {out}: unsupported container; use one of {', '.join(CONTAINERS)}")
        budget = rate * duration
        h, choices, q, slope, by_h, message = choose_rung(shots, heights, budget, info.fps,
                                                          importance_weight=importance_weight)
        size = rung_size(info.width, info.height, None, h)
        bits = encode_rung(inp, out, choices, size, codec=codec, preset=preset, idr_starts=idr_at)
        encodes, scale = 1, [1.0] * len(shots)
        # also when the probes said the budget lay beyond the grid: the full preset spends differently
        while abs(sum(bits) / budget - 1) > RATE_TOLERANCE and encodes <= RATE_PASSES:
            # the full preset spends differently from the probes, shot by shot: scale each shot's probe
            # bits by what its full encode spent against the (scaled) prediction, choose again, encode again;
            # the file closest to the budget is kept
            scale = [s * b / max(1.0, c.probe_kbps * 1000 * (c.end_frame - c.start_frame) / info.fps)
                     for s, b, c in zip(scale, bits, choices)]
            again = choose_rung(shots, heights, budget, info.fps, only=h, importance_weight=importance_weight,
                                scales={h: scale})
            retry = out.with_name(f".{out.stem}.refine{out.suffix}")
            retry_bits = encode_rung(inp, retry, again[1], size, codec=codec, preset=preset,
                                     idr_starts=idr_at)
            encodes += 1
            if abs(sum(retry_bits) / budget - 1) < abs(sum(bits) / budget - 1):
                retry.replace(out)
                h, choices, q, slope, _, message = again
                bits = retry_bits
            else:
                retry.unlink()
                break  # further from the budget: keep the file before it
        choices = [c.model_copy(update={"kbps": b / ((c.end_frame - c.start_frame) / info.fps) / 1000})
                   for c, b in zip(choices, bits)]
        kbps = sum(bits) / duration / 1000
        rungs.append(HullRung(name=out.stem.rsplit(".", 1)[-1], width=size[0], height=size[1], budget=rate,
                              output=str(out), bitrate_kbps=kbps, error=kbps * 1000 / rate - 1,
                              predicted_vmaf=q, predicted_vmaf_by_height=by_h, slope=slope, encodes=encodes,
                              keyframes=media.keyframe_indices(out), shots=choices, message=message))
        if message:
            log.warning("rung %s: %s", rungs[-1].name, message)
    aligned = all(set(idr_at) <= set(r.keyframes) for r in rungs)
    return HullLadderReport(
        input=info, codec=codec, preset=preset, probe_preset=probe_preset, crfs=crfs, heights=heights,
        importance_weight=importance_weight, refine_step=refine_step, shots=shots, rungs=rungs, aligned=aligned,
        probe_encodes=stats["encodes"], probe_refined=refined, probe_cached=stats["cached"], probe_cpu_seconds=stats["cpu"],
        probe_wall_seconds=stats["wall"], encode_wall_seconds=time.perf_counter() - t0)


# -------------------------------------------------------------------------------------------------- export
CSV_COLUMNS = ("rung", "budget_kbps", "width", "height", "start_frame", "end_frame", "crf", "probe_kbps",
               "predicted_vmaf", "kbps")


def map_csv(report: HullLadderReport) -> str:
    """The allocation map as CSV: one row per rung and shot."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report.rungs:
        for c in r.shots:
            w.writerow([r.name, f"{r.budget / 1000:g}", r.width, r.height, c.start_frame, c.end_frame, f"{c.crf:g}",
                        f"{c.probe_kbps:.1f}", f"{c.vmaf:.2f}", "" if c.kbps is None else f"{c.kbps:.1f}"])
    return buf.getvalue()
