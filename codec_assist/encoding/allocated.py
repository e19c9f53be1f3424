"""The encodes that carry out shot-level plans (codec_assist.planning.allocate):

- budget: the real encode applies the plan's zones under ABR; if the total lands more than 2.5 % off the
  budget, one corrective re-encode scales the ABR target (the result is checked again and reported);
- target quality (`encode --target-quality psnr=40`): per shot, probe encodes of the shot's frames at the final
  preset (same IDRs, AQ and ROI offsets) feed the interpolated search (policies.target_quality); the final
  encode is one CRF encode with zones moving each shot to its CRF; per-shot quality is measured on the final
  output. Unreachable targets give the closest encode and a message, never no output;
- ladder: every rung from one plan with the same forced IDR frames (so HLS/DASH segments align).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from policies.allocation import crf_zone_factors
from policies.target_quality import PRIOR_SLOPE, next_step

import codec_assist.media.decode as media
from codec_assist.encoding.probes import encode_frames, even_frame, units_bits
from codec_assist.encoding.x26x import encode
from codec_assist.errors import EncoderError
from codec_assist.evaluation.metrics import FrameScorer, sequence_quality
from codec_assist.media.decode import packet_bits
from codec_assist.planning.allocate import (
    allocation_units,
    plan_for_size,
    rung_size,
    unit_importance,
    warn_upscaled_rungs,
    zones,
)
from codec_assist.schemas import (
    AllocationInfo,
    EncodePlan,
    EncodeResult,
    LadderReport,
    LadderRung,
    RateControl,
    ShotAllocation,
)

RATE_TOLERANCE = 0.025  # re-encode once when the total is further than this from the budget (goal: ±3 %)
FINAL_TOLERANCE = 0.5  # target quality: re-encode when a shot lands further than this from its target
FINAL_CORRECTIONS = 2  # ... at most this many times
CRF_RANGE = {"x264": (8.0, 45.0), "x265": (8.0, 45.0)}


def _reencode(input_path, output_path, **options) -> EncodeResult:
    """Encode again over our own earlier output: encode() refuses to overwrite a file, so the new one is written
    beside it and then replaces it (a failed retry leaves the earlier encode in place)."""
    out = Path(output_path)
    retry = out.with_name(f".{out.stem}.retry{out.suffix}")
    result = encode(input_path, retry, **options)
    os.replace(retry, out)
    result.output = str(output_path)
    return result


def encode_budget(input_path, output_path, *, rate: RateControl, codec: str, preset: str, plan: EncodePlan,
                  plan_arrays: dict[str, np.ndarray], params=None, progress=False) -> EncodeResult:
    """Encode with the plan's allocation zones; keep the total within RATE_TOLERANCE of the budget."""
    info = plan.allocation
    if info is None or info.budget_bits is None:
        raise EncoderError("the plan has no budget allocation; make one with plan_budget")
    result = encode(input_path, output_path, codec=codec, rate=rate, preset=preset, plan=plan,
                    plan_arrays=plan_arrays, params=params, progress=progress)
    bits = packet_bits(output_path)
    finals, message = 1, ""
    if abs(bits.sum() / info.budget_bits - 1) > RATE_TOLERANCE:
        first = bits.sum() / info.budget_bits
        corrected = RateControl(mode="abr", bitrate=max(1000, int(rate.bitrate * info.budget_bits / bits.sum())))
        result = _reencode(input_path, output_path, codec=codec, rate=corrected, preset=preset, plan=plan,
                           plan_arrays=plan_arrays, params=params, progress=progress)
        result.rate = rate
        bits = packet_bits(output_path)
        finals = 2
        message = (f"first encode spent {first * 100:.1f} % of the budget; re-encoded with the ABR target "
                   f"scaled to {corrected.bitrate / 1000:g} kb/s")
    units = [(s.start_frame, s.end_frame) for s in info.shots]
    shots = [s.model_copy(update={"bits_actual": b}) for s, b in zip(info.shots, units_bits(bits, units))]
    total = int(bits.sum())
    off = total / info.budget_bits - 1
    message = "; ".join(filter(None, [message, f"total {total / 8e3:.1f} kB = budget {off * 100:+.1f} %"]))
    result.allocation = info.model_copy(update={"shots": shots, "total_bits": total, "final_encodes": finals,
                                                "message": message})
    return result


def _iter_units(path, units, width, height, max_frames: int):
    """Yield (unit index, its first frames up to max_frames) in one streaming decode."""
    k, buf = 0, []
    for n, frame in enumerate(media.iter_frames(path)):
        while k < len(units) and n >= units[k][1]:
            yield k, buf
            k, buf = k + 1, []
        if k < len(units) and len(buf) < max_frames:
            buf.append(even_frame(frame, width, height))
    while k < len(units):
        yield k, buf
        k, buf = k + 1, []


def _search(frames, first, metric, target, *, codec, preset, fps, plan, plan_arrays, tol, max_probes, lo, hi,
            start, vmaf_every):
    probes: list[tuple[float, float]] = []
    slope = PRIOR_SLOPE[metric] * (100 if metric == "ssim" and target > 1 else 1)
    while True:
        step = next_step(probes, target, lo=lo, hi=hi, start=start, tol=tol, max_probes=max_probes,
                         prior_slope=slope)
        if step.status != "probe":
            return step, probes
        _, decoded = encode_frames(frames, first, codec=codec, preset=preset, fps=fps, crf=step.crf, plan=plan,
                                   plan_arrays=plan_arrays)
        probes.append((step.crf, sequence_quality(metric, frames, decoded, vmaf_every)))


def unit_quality(reference, encoded, units: Sequence[tuple[int, int]], metric: str, vmaf_every: int = 10
                 ) -> list[float]:
    """Mean `metric` of each unit of an encoded file against the source (decoded in lockstep)."""
    means = [float("nan")] * len(units)
    scorer = None
    k = 0
    ref_it, dis_it = media.iter_frames(reference), media.iter_frames(encoded)
    try:
        for n, (r, d) in enumerate(zip(ref_it, dis_it)):
            while k < len(units) and n >= units[k][1]:
                if scorer is not None:
                    means[k], scorer = scorer.mean(), None
                k += 1
            if k >= len(units):
                break
            if n == units[k][0]:
                scorer = FrameScorer(metric, vmaf_every)  # scores restart at each unit, as in the probes
            if scorer is not None:
                scorer.add(even_frame(r, d.width, d.height), d)
        if scorer is not None and k < len(units):
            means[k], scorer = scorer.mean(), None
    finally:
        from codec_assist.evaluation.metrics import _close_decoders

        _close_decoders(ref_it, dis_it)
        if scorer is not None:
            scorer.close()
    return means


def encode_target_quality(input_path, output_path, *, metric: str, target: float, codec: str, preset: str,
                          plan: EncodePlan, plan_arrays: dict[str, np.ndarray], params=None, tol: float = 0.25,
                          max_probes: int = 6, max_segment: float = 0.0, max_probe_frames: int = 300,
                          vmaf_every: int = 10, importance_arrays: dict[str, np.ndarray] | None = None,
                          progress: bool = False) -> EncodeResult:
    """Per-shot interpolated CRF search, then one CRF encode with zones; always writes the closest encode."""
    info = media.probe(input_path)
    w, h = info.width & ~1, info.height & ~1
    lo, hi = CRF_RANGE[codec]
    units = allocation_units(plan.shot_starts, plan.frame_count, plan.fps, max_segment)
    shots: list[ShotAllocation] = []
    n_probes = 0
    start = 23.0 if codec == "x264" else 26.0
    for k, frames in _iter_units(input_path, units, w, h, max_probe_frames):
        s, e = units[k]
        if not frames:
            continue
        step, probes = _search(frames, s, metric, target, codec=codec, preset=preset, fps=info.fps, plan=plan,
                               plan_arrays=plan_arrays, tol=tol, max_probes=max_probes, lo=lo, hi=hi, start=start,
                               vmaf_every=vmaf_every)
        n_probes += len(probes)
        start = step.crf  # the next shot starts from this one's answer: neighbouring shots tend to agree
        predicted = dict(probes)[step.crf]
        shots.append(ShotAllocation(start_frame=s, end_frame=e, importance=0.0, crf=step.crf, probes=probes,
                                    status=step.status, predicted=predicted))
    units = [(x.start_frame, x.end_frame) for x in shots]
    if importance_arrays is not None:  # recorded for reports and plots; the target is the same for every shot
        shots = [x.model_copy(update={"importance": float(i)})
                 for x, i in zip(shots, unit_importance(units, importance_arrays))]
    base = float(np.median([x.crf for x in shots]))
    finals = 0
    for attempt in range(1 + FINAL_CORRECTIONS):
        factors = crf_zone_factors(base, [x.crf for x in shots])
        final_plan = plan.model_copy(update={"zones": zones(units, factors)})
        result = (_reencode if attempt else encode)(
            input_path, output_path, codec=codec, rate=RateControl(mode="crf", crf=base), preset=preset,
            plan=final_plan, plan_arrays=plan_arrays, params=params, progress=progress)
        finals += 1
        achieved = unit_quality(input_path, output_path, units, metric, vmaf_every)
        shots = [x.model_copy(update={"achieved": a}) for x, a in zip(shots, achieved)]
        if attempt == FINAL_CORRECTIONS or not any(
                x.status == "hit" and abs(x.achieved - target) > FINAL_TOLERANCE for x in shots):
            break
        # The full encode's rate control (lookahead across shots, mb-tree) differs a little from the isolated
        # probes: move every shot that drifted beyond the probe tolerance along its own measured slope.
        for i, x in enumerate(shots):
            if x.status == "hit" and abs(x.achieved - target) > tol:
                crf = x.crf + (target - x.achieved) / _slope(x.probes, metric)
                shots[i] = x.model_copy(update={"crf": round(min(hi, max(lo, crf)) * 4) / 4})
    bits = packet_bits(output_path)
    shots = [x.model_copy(update={"bits_actual": b}) for x, b in zip(shots, units_bits(bits, units))]
    result.allocation = AllocationInfo(
        mode="target-quality", metric=metric, target=target, tolerance=tol, base_crf=base, total_bits=int(bits.sum()),
        probe_encodes=n_probes, final_encodes=finals, shots=shots, message=_tq_message(shots, metric, target, lo, hi))
    return result


def _slope(probes, metric: str) -> float:
    pts = sorted(probes)
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        s = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
        if s < 0:
            return s
    return PRIOR_SLOPE[metric]


def _tq_message(shots: list[ShotAllocation], metric: str, target: float, lo: float, hi: float) -> str:
    notes = []
    for x in shots:
        span = f"frames {x.start_frame}-{x.end_frame - 1}"
        if x.status == "too-high":
            notes.append(f"{span}: {metric} {target:g} is out of reach (CRF {lo:g} gives {x.achieved:.2f}); "
                         "delivered the closest encode")
        elif x.status == "too-low":
            notes.append(f"{span}: even CRF {hi:g} gives {x.achieved:.2f} > {target:g}; delivered CRF {hi:g}")
        elif x.status == "max-probes":
            notes.append(f"{span}: no probe within tolerance after {len(x.probes)} probes; closest CRF {x.crf:g} "
                         f"({x.achieved:.2f})")
        elif abs(x.achieved - target) > FINAL_TOLERANCE:
            notes.append(f"{span}: final encode gave {x.achieved:.2f} (probe {x.predicted:.2f})")
    return "; ".join(notes) if notes else f"every shot within ±{FINAL_TOLERANCE:g} of {metric} {target:g}"


def encode_ladder(input_path, outputs: Sequence[Path], rungs, *, codec: str, preset: str, plan: EncodePlan,
                  plan_arrays: dict[str, np.ndarray], params=None, plain: bool = True, progress: bool = False,
                  overwrite: bool = False) -> LadderReport:
    """Every rung from one plan (same IDR frames); with `plain`, also a plain encode per rung (its own
    scenecut) to show how its IDRs differ. Plain encodes are written to temporary files and removed."""
    from codec_assist.media.safeio import work_dir

    info = media.probe(input_path)
    warn_upscaled_rungs(rungs, info.width, info.height)
    plan = plan.model_copy(update={"own_keyframes": False})  # the rungs' IDRs must be the same frames
    out_rungs = []
    for (name, rw, rh, bitrate), out in zip(rungs, outputs):
        w, h = rung_size(info.width, info.height, rw, rh)
        rplan, rarrays = plan_for_size(plan, plan_arrays, w, h)
        rate = RateControl(mode="abr", bitrate=bitrate)
        r = encode(input_path, out, codec=codec, rate=rate, preset=preset, plan=rplan, plan_arrays=rarrays,
                   params=params, progress=progress, size=(w, h), overwrite=overwrite)
        plain_kf = None
        if plain:
            with work_dir() as tmp:
                p = encode(input_path, Path(tmp) / "plain.mp4", codec=codec, rate=rate, preset=preset,
                           params=params, progress=progress, size=(w, h))
                plain_kf = p.keyframes
        out_rungs.append(LadderRung(name=name, width=w, height=h, bitrate=bitrate, output=str(out),
                                    bitrate_kbps=r.bitrate_kbps, keyframes=r.keyframes, plain_keyframes=plain_kf))
    aligned = all(r.keyframes == plan.keyframes for r in out_rungs)
    plain_aligned = (all(r.plain_keyframes == out_rungs[0].plain_keyframes for r in out_rungs) if plain else None)
    return LadderReport(input=info, codec=codec, preset=preset, plan_keyframes=plan.keyframes, rungs=out_rungs,
                        aligned=aligned, plain_aligned=plain_aligned)
