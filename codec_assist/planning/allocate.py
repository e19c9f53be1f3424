"""Shot-level planning: allocation units (shots, long ones cut), their importance, semantic events as IDRs,
the budget plan (per-shot zones from a fast complexity probe: policies.allocation), and the parsing of
target-quality and ladder requests. The encodes that carry these plans out are in codec_assist.encoding.allocated.

- Budget mode (`encode --allocate --bitrate R`): one fast constant-CRF probe encode of a downscaled proxy
  measures each shot's complexity (bits/frame); the policy turns complexity + importance into per-shot zone
  factors, applied as x264/x265 `zones` (b=factor) under ABR so the encoder's own rate control keeps the total.
- Ladder (`encode --ladder 720p:1M,480p:500k,240p:150k`): one plan, resampled to each rung's block grid.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from policies.allocation import allocate
from policies.keyframes import keyframes as keyframe_policy
from policies.qp import block_areas, block_grid, neutralise, quantise, resample

from codec_assist.encoding.probes import probe_complexity
from codec_assist.errors import CodecAssistError, EncoderError
from codec_assist.evaluation.metrics import QUALITY_METRICS
from codec_assist.schemas import (
    AllocationInfo,
    Analysis,
    EncodePlan,
    RateControl,
    ShotAllocation,
    Zone,
    parse_bitrate,
)

log = logging.getLogger("codec_assist")

EVENT_PREFIX = "event:"  # region tokens labelled "event:<what>" with no box mark IDR-worthy moments


# ------------------------------------------------------------------------------------------ shots, events
def allocation_units(shot_starts: Sequence[int], frame_count: int, fps: float, max_segment: float = 0.0
                     ) -> list[tuple[int, int]]:
    """[start, end) frame ranges: the shots, long shots cut into near-equal pieces of at most `max_segment` s."""
    starts = sorted({0, *[s for s in shot_starts if 0 < s < frame_count]})
    out = []
    for a, b in zip(starts, starts[1:] + [frame_count]):
        pieces = 1 if max_segment <= 0 else max(1, int(np.ceil((b - a) / (max_segment * fps))))
        edges = [a + round(i * (b - a) / pieces) for i in range(pieces)] + [b]
        out.extend((s, e) for s, e in zip(edges, edges[1:]) if e > s)
    return out


def unit_importance(units: Sequence[tuple[int, int]], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Importance of each unit: the mean of its analysed frames' scalar importance (how much a frame matters:
    the fusion's top-decile mean, times the moment weight from speech/loudness where audio was analysed); the
    latest earlier frame when the unit has no analysed frame.

    Not the mean of the importance grid: the saliency floor of the grid covers every frame with about the
    same mean weight (a talking head's face adds ~10 % of the area), so grid means differ by a few per cent
    between a talking head and a street shot and a shot-level tilt on them does nothing. The frame scalar is
    the per-pixel mean weight of metrics.frame_importance_weights (the grid rescaled per frame to the scalar),
    which is how the allocation is scored: the weighted-MSE optimum and the score use the same weights."""
    frames = arrays["importance/frames"].astype(np.int64)
    scalar = arrays["importance/scalar"].astype(np.float64)
    out = []
    for s, e in units:
        inside = (frames >= s) & (frames < e)
        if inside.any():
            out.append(float(scalar[inside].mean()))
        else:
            k = max(0, int(np.searchsorted(frames, s, side="right")) - 1)
            out.append(float(scalar[k]) if len(scalar) else 0.0)
    return np.clip(np.asarray(out), 0.0, 1.0)


def events_from_analysis(analysis: Analysis) -> list[int]:
    """Hook for semantic events (speaker or topic change, a focus target appearing) found by the cross-modal
    analysis: the start frames of its whole-frame tokens labelled 'event:<what>'. None there: no events."""
    return sorted({t.frame_start for t in analysis.tokens if t.box is None and t.label.startswith(EVENT_PREFIX)})


def with_events(plan: EncodePlan, cuts: Sequence[int], events: Sequence[int]) -> EncodePlan:
    """The plan with its IDRs recomputed from the cuts plus the events (kept within min/max GOP)."""
    kf = keyframe_policy(list(cuts), plan.frame_count, plan.min_gop, plan.max_gop, list(events))
    return plan.model_copy(update={"keyframes": kf, "own_keyframes": False})


def zones(units: Sequence[tuple[int, int]], factors: Sequence[float]) -> list[Zone]:
    return [Zone(start_frame=s, end_frame=e - 1, bitrate_factor=round(float(f), 4))
            for (s, e), f in zip(units, factors) if abs(f - 1.0) >= 5e-4]


# ----------------------------------------------------------------------------------------- budget mode
def plan_budget(path: str | Path, plan: EncodePlan, arrays: dict[str, np.ndarray], rate: RateControl, *,
                strength: float = 1.0, max_dqp: float = 4.0, max_segment: float = 0.0, floor: float = 0.1
                ) -> EncodePlan:
    """The plan with per-shot zones and an AllocationInfo for an ABR budget of `rate.bitrate` b/s."""
    if rate.mode != "abr":
        raise EncoderError("shot allocation shares a total budget: give --bitrate (or --size)")
    units = allocation_units(plan.shot_starts, plan.frame_count, plan.fps, max_segment)
    importance = unit_importance(units, arrays)
    complexity, _ = probe_complexity(path, units, codec=plan.codec)
    budget = int(round(rate.bitrate * plan.frame_count / plan.fps))
    frames = np.asarray([e - s for s, e in units])
    alloc = allocate(budget, frames, complexity, importance, strength=strength, max_dqp=max_dqp, floor=floor)
    shots = [ShotAllocation(start_frame=s, end_frame=e, importance=float(i), weight=float(wt), complexity=float(c), bits=int(b),
                            bitrate_factor=float(f), dqp=float(d))
             for (s, e), i, wt, c, b, f, d in zip(units, importance, alloc.weight, complexity, alloc.bits, alloc.factor,
                                                  alloc.dqp)]
    info = AllocationInfo(mode="budget", budget_bits=budget, shots=shots, probe_encodes=1)
    return plan.model_copy(update={"zones": zones(units, alloc.factor), "allocation": info})


# ---------------------------------------------------------------------------------- target-quality mode
def parse_target(text: str) -> tuple[str, float]:
    """'psnr=40' -> ('psnr', 40.0); metrics: psnr, xpsnr, ssim (0..1), vmaf (0..100)."""
    m = re.fullmatch(r"\s*([a-zA-Z]+)\s*=\s*(\d+(?:\.\d*)?|\.\d+)\s*", text or "")
    if not m or m.group(1).lower() not in QUALITY_METRICS:
        raise CodecAssistError(f"target {text!r}: expected METRIC=VALUE with METRIC one of "
                                         f"{', '.join(QUALITY_METRICS)} (e.g. psnr=40)")
    metric, value = m.group(1).lower(), float(m.group(2))
    if metric == "ssim" and not 0 < value < 1:
        raise CodecAssistError(f"target {text!r}: SSIM targets lie between 0 and 1")
    if metric in ("psnr", "xpsnr") and not 10 <= value <= 99:
        raise CodecAssistError(f"target {text!r}: PSNR targets lie between 10 and 99 dB")
    if metric == "vmaf" and not 0 < value <= 100:
        raise CodecAssistError(f"target {text!r}: VMAF targets lie between 0 and 100")
    return metric, value


# ---------------------------------------------------------------------------------------------- ladders
_RUNG = re.compile(r"^\s*(?:(\d+)x(\d+)|(\d+)p)\s*:\s*(\S+)\s*$")


def parse_ladder(text: str) -> list[tuple[str, int | None, int, int]]:
    """'720p:1M,480p:500k' or '1280x720:1M' -> [(name, width or None, height, bits/s)]."""
    rungs = []
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        m = _RUNG.match(item)
        if not m or not int(m.group(2) or m.group(3)):
            raise CodecAssistError(f"ladder rung {item!r}: expected HEIGHTp:RATE or WxH:RATE (720p:1M)")
        width = int(m.group(1)) if m.group(1) else None
        height = int(m.group(2) or m.group(3))
        try:
            rate = parse_bitrate(m.group(4))
        except ValueError as e:
            raise CodecAssistError(f"ladder rung {item!r}: {e}") from None
        rungs.append((item.split(":")[0].strip(), width, height, rate))
    if not rungs:
        raise CodecAssistError("empty ladder")
    return rungs


def parse_auto_ladder(text: str) -> list[int] | None:
    """'auto' -> None (rates chosen from the probes); 'auto:1M,500k,250k' -> [bits/s, ...] highest first;
    anything not starting with 'auto' -> CodecAssistError (a fixed ladder is parse_ladder's)."""
    head, _, rest = (text or "").strip().partition(":")
    if head.strip().lower() != "auto":
        raise CodecAssistError(f"ladder {text!r} is not an auto ladder")
    if not rest.strip():
        return None
    rates = []
    for item in filter(None, (t.strip() for t in rest.split(","))):
        try:
            rates.append(parse_bitrate(item))
        except ValueError as e:
            raise CodecAssistError(f"auto ladder rate {item!r}: {e}") from None
    if len(set(rates)) != len(rates):
        raise CodecAssistError(f"auto ladder {text!r}: two rungs have the same rate")
    return sorted(rates, reverse=True)


def is_auto_ladder(text: str | None) -> bool:
    return bool(text) and text.strip().lower().split(":")[0].strip() == "auto"


def rung_size(src_w: int, src_h: int, width: int | None, height: int) -> tuple[int, int]:
    """Even output size; a bare height keeps the source's aspect."""
    if width is None:
        width = round(src_w * height / src_h)
    return max(16, width - width % 2), max(16, height - height % 2)


def warn_upscaled_rungs(rungs, src_w: int, src_h: int) -> None:
    """Say so, once per rung, when a rung is larger than the source: it is upscaled, which spends bits on
    interpolated detail."""
    for name, rw, rh, _ in rungs:
        w, h = rung_size(src_w, src_h, rw, rh)
        if w > src_w or h > src_h:
            log.warning("ladder rung %s is %dx%d, larger than the %dx%d source: it is upscaled (a rung at or below "
                        "%dp keeps the source's detail without spending bits on interpolation)",
                        name, w, h, src_w, src_h, src_h)


def plan_for_size(plan: EncodePlan, arrays: dict[str, np.ndarray], width: int, height: int
                  ) -> tuple[EncodePlan, dict[str, np.ndarray]]:
    """The same plan for another frame size: QP offsets resampled to that size's block grid (re-centred and
    bounded per frame); keyframes, shots and zones unchanged (frame numbers do not depend on size)."""
    by, bx = block_grid(width, height, plan.block_size)
    areas = block_areas(width, height, plan.block_size)
    offsets = np.stack([quantise(neutralise(resample(o, (by, bx)), areas, plan.max_dqp))
                        for o in arrays["qp/offsets"].astype(np.float32)])
    new = plan.model_copy(update={"width": width, "height": height, "blocks_x": bx, "blocks_y": by})
    return new, {"qp/frames": arrays["qp/frames"], "qp/offsets": offsets.astype(np.float32)}


def ladder_outputs(output: str, stem: str, names: Sequence[str]) -> list[Path]:
    """-o DIR -> DIR/STEM.NAME.mp4; -o pattern with {rung} -> the pattern filled in."""
    if "{rung}" in output:
        return [Path(output.replace("{rung}", n)) for n in names]
    d = Path(output)
    if d.exists() and not d.is_dir():
        raise CodecAssistError(f"--ladder output {d} must be a folder or a pattern containing {{rung}}")
    d.mkdir(parents=True, exist_ok=True)
    return [d / f"{stem}.{n}.mp4" for n in names]
