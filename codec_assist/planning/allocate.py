"""Shot-level bit allocation, target quality and ladders: the encoding side of policies.allocation,
policies.target_quality and policies.keyframes (events).

- Budget mode (`encode --allocate --bitrate R`): one fast constant-CRF probe encode of a downscaled proxy
  measures each shot's complexity (bits/frame); the policy turns complexity + importance into per-shot zone
  factors; the real encode applies them as x264/x265 `zones` (b=factor) under ABR, so the encoder's own rate
  control keeps the total. If the total lands more than 2.5 % off the budget, one corrective re-encode
  scales the ABR target (the result is checked again and reported).
- Target-quality mode (`encode --target-quality psnr=40`): per shot, probe encodes of the shot's frames at
  the final preset (same IDRs, AQ and ROI offsets as the final encode) feed the interpolated search; the
  final encode is one CRF encode with zones moving each shot to its CRF; per-shot quality is then measured
  on the final output. Unreachable targets give the closest encode and a message, never no output.
- Ladder (`encode --ladder 720p:1M,480p:500k,240p:150k`): one plan, resampled to each rung's block grid,
  the same forced IDR frames in every rendition (so HLS/DASH segments align).
"""
from __future__ import annotations

import logging
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from policies.allocation import allocate, crf_zone_factors
from policies.keyframes import keyframes as keyframe_policy
from policies.qp import block_areas, block_grid, neutralise, offsets_at, quantise, resample
from policies.target_quality import PRIOR_SLOPE, next_step

import codec_assist.media.decode as media

import codec_assist.encoding.roi as roi
from codec_assist.encoding.x26x import ENCODERS, encode, plan_params
from codec_assist.errors import CodecAssistError, EncoderError
from codec_assist.evaluation.metrics import QUALITY_METRICS, FrameScorer, sequence_quality
from codec_assist.schemas import (
    AllocationInfo,
    Analysis,
    EncodePlan,
    EncodeResult,
    LadderReport,
    LadderRung,
    RateControl,
    ShotAllocation,
    Zone,
    parse_bitrate,
)

log = logging.getLogger("codec_assist")

RATE_TOLERANCE = 0.025  # re-encode once when the total is further than this from the budget (goal: ±3 %)
FINAL_TOLERANCE = 0.5  # target quality: re-encode when a shot lands further than this from its target
FINAL_CORRECTIONS = 2  # ... at most this many times
CRF_RANGE = {"x264": (8.0, 45.0), "x265": (8.0, 45.0)}
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
    return plan.model_copy(update={"keyframes": kf})


# ------------------------------------------------------------------------------------- in-memory encodes
def _even_frame(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """yuv420p at (width, height) (even): the same picture the real encode gets."""
    if frame.format.name == "yuv420p" and (frame.width, frame.height) == (width, height):
        return frame
    if (frame.width & ~1, frame.height & ~1) == (width, height) and frame.format.name == "yuv420p":
        y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size) for p in frame.planes)
        packed = np.concatenate([y[:height, :width].ravel(), u[: height // 2, : width // 2].ravel(),
                                 v[: height // 2, : width // 2].ravel()])
        return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")
    return frame.reformat(width=width, height=height, format="yuv420p")


def _encoder(codec: str, preset: str, width: int, height: int, fps: float, crf: float,
             x_params: dict[str, str]) -> av.CodecContext:
    ctx = av.CodecContext.create(ENCODERS[codec], "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 1) / Fraction(fps).limit_denominator(1001000)
    ctx.framerate = Fraction(fps).limit_denominator(1001000)
    params = {"log-level": "error", **x_params} if codec == "x265" else dict(x_params)
    ctx.options = {"preset": preset, "crf": f"{crf:g}", "forced-idr": "1",
                   f"{codec}-params": ":".join(f"{k}={v}" for k, v in params.items())}
    ctx.open()
    return ctx


def encode_frames(frames: Sequence[av.VideoFrame], first_index: int, *, codec: str, preset: str, fps: float,
                  crf: float, plan: EncodePlan | None = None, plan_arrays: dict[str, np.ndarray] | None = None,
                  decode: bool = True) -> tuple[np.ndarray, list[av.VideoFrame]]:
    """Encode a run of frames (source numbering from `first_index`) in memory, as the real encode would
    (forced IDRs at the run's start and the plan's keyframes, the plan's ROI offsets); return the bits per
    frame and, if `decode`, the decoded frames."""
    w, h = frames[0].width, frames[0].height
    enc = _encoder(codec, preset, w, h, fps, crf, plan_params(plan, codec, zones=False))  # as the final encode
    keyset = set(plan.keyframes) if plan is not None else set()
    bits = np.zeros(len(frames), np.int64)
    packets = []
    for k, f in enumerate([*frames, None]):
        if f is not None:
            f = av.VideoFrame.from_ndarray(f.to_ndarray(), format="yuv420p")
            f.pts, f.time_base = k, enc.time_base
            n = first_index + k
            f.pict_type = (av.video.frame.PictureType.I if k == 0 or n in keyset
                           else av.video.frame.PictureType.NONE)
            if plan is not None and plan_arrays is not None:
                grid = offsets_at(n, plan_arrays["qp/frames"].tolist(), plan_arrays["qp/offsets"], plan.shot_starts)
                if grid is not None:
                    roi.attach_qp_offsets(f, grid, plan.block_size)
        for p in enc.encode(f):
            bits[int(p.pts)] += p.size * 8
            packets.append(p)
    decoded: list[av.VideoFrame] = []
    if decode:
        dec = av.CodecContext.create({"x264": "h264", "x265": "hevc"}[codec], "r")
        dec.extradata = enc.extradata
        for p in [*packets, None]:
            decoded.extend(dec.decode(p))
        decoded.sort(key=lambda f: f.pts if f.pts is not None else 0)
        if len(decoded) != len(frames):
            raise EncoderError(f"probe encode returned {len(decoded)} frames for {len(frames)}")
    return bits, decoded


def probe_complexity(path: str | Path, units: Sequence[tuple[int, int]], *, codec: str = "x264", crf: float = 26.0,
                     preset: str = "ultrafast", width: int = 320) -> tuple[np.ndarray, int]:
    """Bits per frame of each unit in one fast constant-CRF encode of a `width`-px proxy, IDR at each unit's
    start (the cheap, content-adaptive complexity measure). Returns (bits/frame per unit, frames seen)."""
    info = media.probe(path)
    pw, ph = media.proxy_size(info.width, info.height, width)
    starts = {s for s, _ in units}
    enc = _encoder(codec, preset, pw, ph, info.fps, crf, {"scenecut": "0", "keyint": "infinite" if codec == "x264"
                                                           else "100000"})
    per_frame: dict[int, int] = {}
    n = 0
    for n, frame in enumerate(media.iter_frames(path)):
        f = frame.reformat(width=pw, height=ph, format="yuv420p")
        f.pts, f.time_base = n, enc.time_base
        f.pict_type = av.video.frame.PictureType.I if n in starts else av.video.frame.PictureType.NONE
        for p in enc.encode(f):
            per_frame[int(p.pts)] = per_frame.get(int(p.pts), 0) + p.size * 8
    for p in enc.encode(None):
        per_frame[int(p.pts)] = per_frame.get(int(p.pts), 0) + p.size * 8
    total = n + 1
    out = []
    for s, e in units:
        e = min(e, total)
        bits = sum(per_frame.get(i, 0) for i in range(s, e))
        out.append(max(bits, 8) / max(1, e - s))
    return np.asarray(out, np.float64), total


def packet_bits(path: str | Path) -> np.ndarray:
    """Bits of each video frame of a file, in presentation order (from packet sizes)."""
    p = Path(path)
    with media.open_input(p) as c:
        vs = media._video_stream(c, p)
        sizes = sorted((pkt.pts, pkt.size) for pkt in c.demux(vs) if pkt.size and pkt.pts is not None)
    return np.asarray([s * 8 for _, s in sizes], np.int64)


def _units_bits(bits: np.ndarray, units: Sequence[tuple[int, int]]) -> list[int]:
    return [int(bits[s:e].sum()) for s, e in units]


def _zones(units: Sequence[tuple[int, int]], factors: Sequence[float]) -> list[Zone]:
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
    return plan.model_copy(update={"zones": _zones(units, alloc.factor), "allocation": info})


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
    shots = [s.model_copy(update={"bits_actual": b}) for s, b in zip(info.shots, _units_bits(bits, units))]
    total = int(bits.sum())
    off = total / info.budget_bits - 1
    message = "; ".join(filter(None, [message, f"total {total / 8e3:.1f} kB = budget {off * 100:+.1f} %"]))
    result.allocation = info.model_copy(update={"shots": shots, "total_bits": total, "final_encodes": finals,
                                                "message": message})
    return result


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


def _iter_units(path, units, width, height, max_frames: int):
    """Yield (unit index, its first frames up to max_frames) in one streaming decode."""
    k, buf = 0, []
    for n, frame in enumerate(media.iter_frames(path)):
        while k < len(units) and n >= units[k][1]:
            yield k, buf
            k, buf = k + 1, []
        if k < len(units) and len(buf) < max_frames:
            buf.append(_even_frame(frame, width, height))
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
    scores: list[list[float]] = [[] for _ in units]
    scorer = None
    k = 0
    ref_it, dis_it = media.iter_frames(reference), media.iter_frames(encoded)
    try:
        for n, (r, d) in enumerate(zip(ref_it, dis_it)):
            while k < len(units) and n >= units[k][1]:
                k += 1
            if k >= len(units):
                break
            if n == units[k][0]:
                scorer = FrameScorer(metric, vmaf_every)  # scores restart at each unit, as in the probes
            s = scorer(_even_frame(r, d.width, d.height), d)
            if s is not None:
                scores[k].append(s)
    finally:
        from codec_assist.evaluation.metrics import _close_decoders

        _close_decoders(ref_it, dis_it)
    return [float(np.mean(s)) if s else float("nan") for s in scores]


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
        final_plan = plan.model_copy(update={"zones": _zones(units, factors)})
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
    shots = [x.model_copy(update={"bits_actual": b}) for x, b in zip(shots, _units_bits(bits, units))]
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


def encode_ladder(input_path, outputs: Sequence[Path], rungs, *, codec: str, preset: str, plan: EncodePlan,
                  plan_arrays: dict[str, np.ndarray], params=None, plain: bool = True, progress: bool = False
                  ) -> LadderReport:
    """Every rung from one plan (same IDR frames); with `plain`, also a plain encode per rung (its own
    scenecut) to show how its IDRs differ. Plain encodes are written to temporary files and removed."""
    import tempfile

    info = media.probe(input_path)
    warn_upscaled_rungs(rungs, info.width, info.height)
    out_rungs = []
    for (name, rw, rh, bitrate), out in zip(rungs, outputs):
        w, h = rung_size(info.width, info.height, rw, rh)
        rplan, rarrays = plan_for_size(plan, plan_arrays, w, h)
        rate = RateControl(mode="abr", bitrate=bitrate)
        r = encode(input_path, out, codec=codec, rate=rate, preset=preset, plan=rplan, plan_arrays=rarrays,
                   params=params, progress=progress, size=(w, h))
        plain_kf = None
        if plain:
            with tempfile.TemporaryDirectory(prefix="codec-assist-") as tmp:
                p = encode(input_path, Path(tmp) / "plain.mp4", codec=codec, rate=rate, preset=preset,
                           params=params, progress=progress, size=(w, h))
                plain_kf = p.keyframes
        out_rungs.append(LadderRung(name=name, width=w, height=h, bitrate=bitrate, output=str(out),
                                    bitrate_kbps=r.bitrate_kbps, keyframes=r.keyframes, plain_keyframes=plain_kf))
    aligned = all(r.keyframes == plan.keyframes for r in out_rungs)
    plain_aligned = (all(r.plain_keyframes == out_rungs[0].plain_keyframes for r in out_rungs) if plain else None)
    return LadderReport(input=info, codec=codec, preset=preset, plan_keyframes=plan.keyframes, rungs=out_rungs,
                        aligned=aligned, plain_aligned=plain_aligned)


def ladder_outputs(output: str, stem: str, names: Sequence[str]) -> list[Path]:
    """-o DIR -> DIR/STEM.NAME.mp4; -o pattern with {rung} -> the pattern filled in."""
    if "{rung}" in output:
        return [Path(output.replace("{rung}", n)) for n in names]
    d = Path(output)
    if d.exists() and not d.is_dir():
        raise CodecAssistError(f"--ladder output {d} must be a folder or a pattern containing {{rung}}")
    d.mkdir(parents=True, exist_ok=True)
    return [d / f"{stem}.{n}.mp4" for n in names]
