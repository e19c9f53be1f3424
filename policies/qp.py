"""Importance -> per-block QP offsets. Pure functions on numpy arrays.

The map must not move the bitrate: per frame the area-weighted mean offset is 0, every offset is within
±max_dqp (FACTS: ±25 QP broke the rate, ±5 kept it within a few %), offsets change smoothly in time inside
a shot and start afresh at every cut. Negative offsets mean more bits.
"""
from __future__ import annotations

import bisect

import cv2
import numpy as np

from codec_assist.framestore import FrameStack, FrameStore

QP_STEP = 0.25  # offsets are rounded to this; fewer distinct values -> fewer ROI regions per frame


def block_grid(width: int, height: int, block: int) -> tuple[int, int]:
    """(blocks_y, blocks_x) covering the frame; edge blocks may be partial."""
    return -(-height // block), -(-width // block)


def block_areas(width: int, height: int, block: int) -> np.ndarray:
    """Fraction of each block that lies inside the frame, (blocks_y, blocks_x)."""
    by, bx = block_grid(width, height, block)
    wx = np.minimum(block, width - np.arange(bx) * block) / block
    wy = np.minimum(block, height - np.arange(by) * block) / block
    return np.outer(wy, wx).astype(np.float32)


def resample(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample an importance grid to another grid covering the same frame (area when shrinking)."""
    gh, gw = grid.shape
    h, w = shape
    interp = cv2.INTER_AREA if (h <= gh and w <= gw) else cv2.INTER_LINEAR
    return cv2.resize(grid.astype(np.float32), (w, h), interpolation=interp)


def neutralise(offsets: np.ndarray, areas: np.ndarray, max_dqp: float, rounds: int = 8) -> np.ndarray:
    """Clamp to ±max_dqp and shift to an area-weighted mean of 0, alternately, until both hold."""
    out = offsets.astype(np.float32)
    total = float(areas.sum())
    for _ in range(rounds):
        out -= float((out * areas).sum()) / total
        np.clip(out, -max_dqp, max_dqp, out=out)
    return out


def whole_frame_cost_db(offsets: np.ndarray, areas: np.ndarray, distortion: np.ndarray | None = None) -> float:
    """Expected whole-frame PSNR loss (dB, >= 0) of a mean-zero offset map at the same mean QP.

    The MSE of a block goes as Qstep^2 = 2^(QP/3), so by Jensen any spread of offsets raises the frame's MSE
    even when the mean offset is 0: 10 log10(sum D 2^(offset/3) / sum D), D = each block's share of the frame's
    MSE before the offsets (its area times `distortion`; equal when None). PSNR punishes redistribution; this is
    the bound the policy keeps, so a face cannot be paid for with the whole picture.
    """
    w = areas if distortion is None else areas * distortion
    total = float(w.sum())
    # Offsets of thousands of QP (a probe depth when the payers' area is ~0) overflow to inf: a cost over any bound,
    # which is what the bisection needs to hear, so the overflow is not a warning.
    # Blocks of no weight spend nothing, even where their offset overflows (0 x inf would be nan).
    keep = w > 0
    with np.errstate(over="ignore"):
        spent = float((w[keep] * np.exp2(offsets[keep] / 3.0)).sum())
    return max(0.0, 10.0 * float(np.log10(spent / total)))


def block_distortion(texture: np.ndarray, shape: tuple[int, int], exponent: float = 1.0,
                     floor: float = 0.01) -> np.ndarray:
    """Each block's expected MSE at a common QP, up to a scale, from its texture (gradient energy per cell).

    Measured on dev clips (x264 medium, plain encodes at 3 rates, docs/BENCHMARKS.md issue 15): block MSE grows
    about linearly with the saliency analyzer's gradient energy (log-log slope 1.0-1.4 on camera footage), so a
    flat wall loses little PSNR when it pays for a face and a bookcase loses much.
    """
    t = np.maximum(resample(np.asarray(texture, np.float32), shape), 0.0)
    return ((t + floor) ** exponent).astype(np.float32)


def roi_strength(importance: np.ndarray, threshold: float, strength: float) -> np.ndarray:
    """Importance grid -> how strongly each cell is a region of interest, in [0, 1].

    Only what stands above `threshold` counts (faces, text, a matched --focus): the saliency floor never reaches
    it, so a clip with nothing of interest is left to the encoder's own AQ. A cell `1/strength` of the way
    from the threshold to 1 is a full ROI.
    """
    imp = np.clip(importance, 0, 1).astype(np.float32)
    return np.clip(strength * (imp - threshold) / max(1e-6, 1.0 - threshold), 0.0, 1.0)


def importance_to_offsets(importance: np.ndarray, areas: np.ndarray, max_dqp: float, strength: float = 2.0,
                          threshold: float = 0.5, max_cost_db: float = 0.15, texture: np.ndarray | None = None,
                          texture_gamma: float = 0.0, cost_exponent: float = 1.0) -> np.ndarray:
    """One frame: importance grid (any resolution covering the frame) -> QP offsets on the block grid of `areas`.

    Cost-aware, not only rate-neutral: the regions of interest get down to -max_dqp, where the ROI is only the
    part of the map above `threshold`; every other block pays the same small positive offset, so the area-
    weighted mean stays 0 (the rate holds) while the spread, which is what costs whole-frame quality, stays as
    small as the ROI allows. With a `texture` grid (gradient energy per cell, any resolution), that payment is
    weighted by texture**texture_gamma: a busy block gives back more bits per QP and hides the loss (masking),
    a flat one shows it, so the bits come back from where they cost a viewer, and PSNR, least.
    The ROI's depth is then scaled down until the expected whole-frame PSNR loss (whole_frame_cost_db) is at
    most `max_cost_db`: a face filling half the frame gets a shallower offset than a small one, because taking
    bits from everything else would cost more than it gives. With a `texture` grid that loss weighs each block
    by its expected distortion (block_distortion, texture**cost_exponent; 0: every block alike): a face
    against a flat wall may go deeper than one in front of a bookcase.
    """
    roi = resample(roi_strength(importance, threshold, strength), areas.shape)  # area fraction of each block
    if float(roi.max()) <= 1e-3:
        return np.zeros(areas.shape, np.float32)
    payer = 1.0 - roi  # what each block has outside the ROI pays
    distortion = None
    if texture is not None and texture_gamma != 0:
        t = resample(np.asarray(texture, np.float32), areas.shape)
        payer = payer * (np.maximum(t, 0.0) + 0.01) ** texture_gamma
    if texture is not None and cost_exponent > 0:
        # the payers weigh by their own texture; the ROI counts at the frame's mean, so a busy face is not
        # credited with a gain its extra bits (which the rate control takes back from everything) do not give
        d = block_distortion(texture, areas.shape, cost_exponent)
        distortion = roi * float((areas * d).sum() / areas.sum()) + (1.0 - roi) * d
    rest = areas * payer

    def offsets(depth: float) -> np.ndarray:
        gain = depth * roi
        pay = float((areas * gain).sum()) / max(1e-6, float(rest.sum()))
        return (-gain + pay * payer).astype(np.float32)

    lo, hi = 0.0, float(max_dqp)
    if whole_frame_cost_db(offsets(hi), areas, distortion) > max_cost_db:
        for _ in range(20):  # cost grows with depth: bisect the deepest ROI within the bound
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if whole_frame_cost_db(offsets(mid), areas, distortion) <= max_cost_db else (lo, mid)
        hi = lo
    return neutralise(offsets(hi), areas, max_dqp)


def smooth_in_shots(frames: np.ndarray, offsets: np.ndarray, shot_starts: list[int], fps: float,
                    time_constant: float = 0.5, inplace: bool = False) -> np.ndarray:
    """Zero-phase exponential smoothing of (K, by, bx) offsets over keypoint time, restarted at each cut.

    Linear in the maps, so each smoothed map stays mean-zero and within bounds. `offsets` is an array or,
    with `inplace`, any int -> float32 array mapping (a FrameStore: plan_offsets).
    """
    inplace = inplace and getattr(offsets, "dtype", np.float32) == np.float32
    out = offsets if inplace else np.array(offsets, np.float32)
    seg = np.searchsorted(np.asarray(sorted(shot_starts)), frames, side="right")
    for s in np.unique(seg):
        idx = np.nonzero(seg == s)[0]
        for order in (idx, idx[::-1]):  # forward then backward: no lag
            prev = None
            for k in order:
                cur = out[k]
                if prev is not None:
                    a = 1.0 - np.exp(-abs(frames[k] - frames[prev]) / (fps * time_constant))
                    cur = (prev_value + a * (cur - prev_value)).astype(np.float32)  # as stored
                    out[k] = cur
                prev, prev_value = k, cur
    return out


def quantise(offsets: np.ndarray, step: float = QP_STEP) -> np.ndarray:
    return (np.rint(offsets / step) * step).astype(np.float32)


def plan_offsets(frames: np.ndarray, importance: np.ndarray, width: int, height: int, block: int,
                 shot_starts: list[int], fps: float, max_dqp: float, strength: float = 2.0,
                 time_constant: float = 0.5, threshold: float = 0.5, max_cost_db: float = 0.15,
                 texture: np.ndarray | None = None, texture_gamma: float = 0.0,
                 cost_exponent: float = 1.0) -> np.ndarray:
    """All keypoints: (K, gh, gw) importance -> (K, by, bx) rate-neutral, bounded, smoothed QP offsets.

    `importance` is read frame by frame and the result is a FrameStack: the offsets live in a FrameStore,
    filled, smoothed and finished in place, spilled to disk past the memory budget (a 10-minute 1080p x264
    plan is ~60 MB of offsets, 4 hours ~1.4 GB).
    """
    shape = block_grid(width, height, block)
    areas = block_areas(width, height, block)
    out = FrameStore()
    for k, g in enumerate(importance):
        out[k] = importance_to_offsets(g, areas, max_dqp, strength, threshold, max_cost_db,
                                       None if texture is None else texture[k], texture_gamma, cost_exponent)
    smooth_in_shots(np.asarray(frames), out, shot_starts, fps, time_constant, inplace=True)
    for k in range(len(out)):
        out[k] = quantise(neutralise(out[k], areas, max_dqp))
    return FrameStack(out, range(len(out)), shape, np.float32)


def offsets_at(frame: int, frames: np.ndarray, offsets: np.ndarray, shot_starts: list[int]) -> np.ndarray | None:
    """The offsets for any frame: linear between the keypoints of its shot, held at the shot's ends.

    Returns None when the frame's shot has no keypoint (leave that frame to the encoder alone).
    """
    starts = sorted(shot_starts)
    s = bisect.bisect_right(starts, frame) - 1
    lo = starts[s] if s >= 0 else 0
    hi = starts[s + 1] if s + 1 < len(starts) else np.iinfo(np.int64).max
    a = bisect.bisect_left(frames, lo)
    b = bisect.bisect_left(frames, hi)
    if a == b:
        return None
    k = bisect.bisect_right(frames, frame, a, b) - 1  # last keypoint <= frame, inside the shot
    if k < a:
        return offsets[a]
    if k + 1 >= b or frames[k] == frame:
        return offsets[k]
    t = (frame - frames[k]) / (frames[k + 1] - frames[k])
    return quantise((1 - t) * offsets[k] + t * offsets[k + 1])
