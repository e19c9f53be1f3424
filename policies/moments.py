"""Moments -> a frame-level QP offset: the moments that matter (speech, a keyword or a focus said aloud, loud or
emotional peaks: the fusion's per-moment weight, `importance/temporal`) take a share of their shot's bits.

Pure function on numpy arrays. Within each shot the offset has mean zero over the shot's frames (so the rate holds:
bits move between moments of one shot, never between shots), is bounded by ±max_dqp, and changes by at most
`max_rate` QP per second (a step in quality that a viewer would see as pumping becomes a ramp). Negative = more bits.
"""
from __future__ import annotations

import numpy as np


def frame_weights(frames: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """How many frames of [lo, hi) each keypoint stands for when offsets are interpolated linearly between the
    keypoints of a shot and held before the first and after the last (policies.qp.offsets_at): a weighted mean
    over keypoints with these weights is the mean over the shot's frames."""
    f = np.asarray(frames, np.float64)
    k = len(f)
    w = np.zeros(k, np.float64)
    if k == 0:
        return w
    w[0] += f[0] - lo  # held before the first keypoint
    w[-1] += hi - f[-1]  # the last keypoint's frame and the hold after it
    gaps = np.diff(f)
    # frames f_j .. f_{j+1}-1 interpolate with weights (1 - t, t), t = m / gap, m = 0..gap-1
    w[:-1] += (gaps + 1) / 2  # sum over m of (1 - m/gap) = (gap + 1) / 2
    w[1:] += (gaps - 1) / 2  # sum over m of m/gap = (gap - 1) / 2
    return w


def moment_offsets(frames: np.ndarray, weights: np.ndarray, shot_starts: list[int], fps: float,
                   frame_count: int | None = None, max_dqp: float = 2.0, span: float = 0.25,
                   max_rate: float = 2.0) -> np.ndarray:
    """Per keypoint: (K,) frame numbers (sorted) and moment weights in [0, 1] -> (K,) frame-level QP offsets.

    offset = -max_dqp / span * (weight - the shot's mean weight): a moment `span` above its shot's mean weight
    reaches the bound (the fusion's moment weights move by ~0.1-0.5 between silence and speech); then, per shot, the change between neighbouring
    keypoints is limited to max_rate QP per second (ramping into a moment early rather than cutting it), the result
    re-centred to a frame-weighted mean of 0 and scaled
    down (never clipped, which would move the mean) until it lies within ±max_dqp. A shot with flat weights, or
    with one keypoint, gets 0. NaN weights count as the shot's mean. `frame_count` ends the last shot (default:
    the last keypoint + 1).
    """
    frames = np.asarray(frames, np.int64)
    w = np.asarray(weights, np.float64)
    out = np.zeros(len(frames), np.float32)
    if len(frames) == 0 or max_dqp <= 0 or span <= 0:
        return out
    end = int(frame_count) if frame_count is not None else int(frames[-1]) + 1
    bounds = sorted({int(s) for s in shot_starts if 0 < s < end} | {0, end})
    seg = np.searchsorted(np.asarray(bounds[1:-1], np.int64), frames, side="right")
    for s in np.unique(seg):
        idx = np.flatnonzero(seg == s)
        if len(idx) < 2:
            continue
        f, x = frames[idx], w[idx]
        cover = frame_weights(f, bounds[s], bounds[s + 1])
        known = ~np.isnan(x)
        if not known.any():
            continue
        mean = float((x[known] * cover[known]).sum() / cover[known].sum())
        off = -max_dqp / span * (np.where(known, x, mean) - mean)
        off = _limit_rate(off, f / fps, max_rate)
        off -= float((off * cover).sum() / cover.sum())
        peak = float(np.abs(off).max())
        if peak > max_dqp:
            off *= max_dqp / peak  # scaling keeps the mean at 0 and only lowers the slopes
        out[idx] = off
    return out


def _limit_rate(x: np.ndarray, t: np.ndarray, rate: float) -> np.ndarray:
    """The largest y <= x whose change is at most `rate` per unit of t: y_k = min_j x_j + rate * |t_k - t_j|,
    in two passes. The deepest offsets (the moments' extra bits) are kept whole and ramped into before they start
    and out of after they end; the fewer-bits side is eroded instead, and the caller's re-centring pays for it."""
    y = x.astype(np.float64).copy()
    dt = np.diff(t)
    for k in range(1, len(y)):
        y[k] = min(y[k], y[k - 1] + rate * dt[k - 1])
    for k in range(len(y) - 2, -1, -1):
        y[k] = min(y[k], y[k + 1] + rate * dt[k])
    return y
