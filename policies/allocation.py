"""Shot-level bit allocation under a total budget. Pure functions on numpy arrays.

Model (documented so the numbers can be checked):
- A shot's *complexity* c_i is the bits per frame it takes at one fixed encoder setting (a fast constant-CRF
  probe): what the encoder itself would spend on it at equal quality.
- Zone factor b_i scales the encoder's quantiser step: x264/x265 divide the frame's qscale by b (zones
  `b=`), i.e. ΔQP_i = -6 log2 b_i, and bits grow roughly in proportion, so predicted bits_i ∝ N_i c_i b_i.
- Importance tilt: minimising the importance-weighted MSE  Σ w_i N_i D_i  with D ∝ Qstep² and bits ∝ 1/Qstep
  gives  w_i D_i^{3/2} = const, i.e. ΔQP_i = -2 log2(w_i / w̄). `strength` scales that, `max_dqp` bounds it
  (large shot QP swings are visible as quality pumping at cuts).
- Factors are normalised so the *predicted* total equals what the encoder would spend without them
  (Σ N_i c_i b_i = Σ N_i c_i): a CRF encode keeps its size, an ABR encode keeps its rate control calm.
Shares are rounded to whole bits with the largest-remainder method, so they sum exactly to the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Allocation:
    """Per-shot decisions, all arrays of length S (number of shots)."""

    bits: np.ndarray  # int64, exact shares of the budget (sum == budget)
    factor: np.ndarray  # float, zone bitrate multiplier b_i (1 = what the encoder would do alone)
    dqp: np.ndarray  # float, QP offset equivalent of the factor (-6 log2 b)
    weight: np.ndarray  # float, the importance weight used (floor + importance)


def exact_shares(total: int, weights: np.ndarray) -> np.ndarray:
    """Split the integer `total` in proportion to non-negative `weights`; the parts sum exactly to `total`."""
    w = np.asarray(weights, np.float64)
    if total < 0 or w.ndim != 1 or w.size == 0 or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("need total >= 0 and a non-empty 1-D array of finite non-negative weights")
    if w.sum() <= 0:
        w = np.ones_like(w)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(np.int64)
    left = int(total - out.sum())
    if left:
        order = np.argsort(-(raw - out), kind="stable")  # largest remainders first
        out[order[:left]] += 1
    return out


def importance_dqp(importance: np.ndarray, frames: np.ndarray, strength: float = 1.0, max_dqp: float = 4.0,
                   floor: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(ΔQP per shot, weight per shot): ΔQP = -2·strength·log2(w / frame-weighted geometric mean of w)."""
    imp = np.clip(np.asarray(importance, np.float64), 0.0, 1.0)
    n = np.asarray(frames, np.float64)
    w = floor + imp
    mean_log = float((n * np.log2(w)).sum() / n.sum())
    dqp = np.clip(-2.0 * strength * (np.log2(w) - mean_log), -max_dqp, max_dqp)
    return dqp, w


def allocate(budget_bits: int, frames, complexity, importance, *, strength: float = 1.0, max_dqp: float = 4.0,
             floor: float = 0.1) -> Allocation:
    """Give each shot a share of `budget_bits` from its length, coding complexity and importance.

    frames: frames per shot (> 0); complexity: bits per frame at one fixed encoder setting (> 0);
    importance: per-shot importance in [0, 1]. strength = 0 gives the encoder's own equal-quality split.
    """
    n = np.asarray(frames, np.float64)
    c = np.asarray(complexity, np.float64)
    if n.ndim != 1 or n.size == 0 or c.shape != n.shape or np.shape(importance) != n.shape:
        raise ValueError("frames, complexity and importance must be 1-D arrays of the same non-zero length")
    if (n <= 0).any() or not (np.isfinite(c).all() and (c > 0).all()):
        raise ValueError("every shot needs frames > 0 and a finite complexity > 0")
    if budget_bits <= 0:
        raise ValueError(f"budget must be positive, got {budget_bits}")
    dqp, w = importance_dqp(np.asarray(importance), n, strength, max_dqp, floor)
    factor = 2.0 ** (-dqp / 6.0)
    base = n * c
    factor = factor * base.sum() / (base * factor).sum()  # predicted total unchanged
    dqp = -6.0 * np.log2(factor)
    return Allocation(bits=exact_shares(int(budget_bits), base * factor), factor=factor, dqp=dqp, weight=w)


def zones_string(starts, ends, factors, digits: int = 3) -> str:
    """x264/x265 `zones` value: 'start,end,b=F/...' with inclusive end frames; factors of 1 are left out."""
    parts = []
    for s, e, f in zip(starts, ends, factors):
        f = round(float(f), digits)
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"zone factor must be positive, got {f}")
        if f != 1.0:
            parts.append(f"{int(s)},{int(e)},b={f:g}")
    return "/".join(parts)


def crf_zone_factors(base_crf: float, crfs) -> np.ndarray:
    """Zone factors that turn one CRF encode into per-shot CRFs: b = 2^((base - crf_i) / 6)."""
    return 2.0 ** ((base_crf - np.asarray(crfs, np.float64)) / 6.0)
