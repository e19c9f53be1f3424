"""Per-shot rate-quality convex hulls and the equal-slope choice that fills a budget (the shot-based dynamic
optimizer's decision, as pure functions on numpy).

Each shot has probe points (bits, quality) — one per CRF at one resolution. Only the upper convex hull of
those points can be the best answer at some slope: a point under the hull is beaten by a mix of its two
neighbours. For a total budget B, maximising sum_i w_i * frames_i * quality_i subject to sum_i bits_i <= B
is solved by one Lagrangian slope lambda: each shot takes the hull vertex maximising
w_i * frames_i * q - lambda * b. Lambda is bisected until the total meets B; the shot whose vertex changes at
that lambda is placed between its two vertices (CRF interpolated in log-bits), so the total lands on B
instead of one step below it.

The weight w_i = 1 + importance_weight * (importance_i - mean importance) lets a shot that matters take a
point of higher quality than its slope alone gives (importance_weight 0: pure rate-quality).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

STANDARD_HEIGHTS = (2160, 1440, 1080, 720, 540, 360, 240)


def candidate_heights(source_height: int, lowest: int = 240) -> list[int]:
    """The source height and the standard heights below it (down to `lowest`), largest first."""
    src = source_height - source_height % 2
    return [src] + [h for h in STANDARD_HEIGHTS if lowest <= h < src]


def upper_hull(bits: Sequence[float], quality: Sequence[float]) -> list[int]:
    """Indices of the points on the upper-left convex hull, in increasing bits: each adds quality for its
    bits at a falling slope (points that cost more and give no more quality are dropped)."""
    b, q = np.asarray(bits, float), np.asarray(quality, float)
    order = sorted(range(len(b)), key=lambda i: (b[i], -q[i]))
    hull: list[int] = []
    for i in order:
        if hull and q[i] <= q[hull[-1]]:
            continue  # dominated: more (or equal) bits, no more quality
        while len(hull) >= 2:
            a, m = hull[-2], hull[-1]
            # m lies on or under the chord a -> i: it is never the best at any slope
            if (q[m] - q[a]) * (b[i] - b[a]) <= (q[i] - q[a]) * (b[m] - b[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


@dataclass(frozen=True)
class ShotChoice:
    """Where one shot lands: between hull vertices `lo` and `hi` (indices into its probe points; equal when it
    sits on a vertex) at `fraction` of the way in bits, with the bits and quality that predicts."""

    lo: int
    hi: int
    fraction: float
    bits: float
    quality: float


@dataclass(frozen=True)
class BudgetChoice:
    shots: list[ShotChoice]
    slope: float  # lambda: quality per bit (weighted, per frame) at which every shot sits
    bits: float  # predicted total
    quality: float  # predicted frame-weighted mean quality
    feasible: bool  # False: even the cheapest point of every shot exceeds the budget (all take their cheapest)


def _vertex_at(b: np.ndarray, q: np.ndarray, hull: list[int], gain: float, slope: float) -> int:
    """Position in `hull` maximising gain * q - slope * b."""
    return int(np.argmax(gain * q[hull] - slope * b[hull]))


def choose(points: Sequence[tuple[Sequence[float], Sequence[float]]], frames: Sequence[int], budget: float, *,
           importance: Sequence[float] | None = None, importance_weight: float = 0.0,
           iterations: int = 80) -> BudgetChoice:
    """Equal-slope choice over shots: `points[i]` = (bits, quality) of shot i's probes; `frames[i]` its length;
    `budget` the total bits. Returns each shot's place on its hull so the predicted total is the budget (or
    as close as the hulls allow)."""
    if len(points) != len(frames) or not points:
        raise ValueError("one (bits, quality) set per shot, and at least one shot")
    frames_a = np.asarray(frames, float)
    weights = np.ones(len(points))
    if importance is not None and importance_weight:
        imp = np.asarray(importance, float)
        weights = np.clip(1.0 + importance_weight * (imp - imp.mean()), 0.05, None)
    gains = weights * frames_a
    arrays = [(np.asarray(b, float), np.asarray(q, float)) for b, q in points]
    hulls = [upper_hull(b, q) for b, q in arrays]

    def totals(slope: float) -> tuple[list[int], float]:
        pos = [_vertex_at(b, q, h, g, slope) for (b, q), h, g in zip(arrays, hulls, gains)]
        return pos, float(sum(b[h[p]] for (b, _), h, p in zip(arrays, hulls, pos)))

    cheapest = float(sum(b[h[0]] for (b, _), h in zip(arrays, hulls)))
    richest = float(sum(b[h[-1]] for (b, _), h in zip(arrays, hulls)))
    if budget <= cheapest or budget >= richest:
        at_top = budget >= richest
        pos = [len(h) - 1 if at_top else 0 for h in hulls]
        slope = 0.0 if at_top else float("inf")
        return _result(arrays, hulls, pos, pos, [0.0] * len(hulls), frames_a, slope, feasible=at_top)
    # slope bounds: 0 spends everything; the largest vertex-to-vertex slope spends the least
    hi_slope = max(float(g * (q[h[k + 1]] - q[h[k]]) / max(b[h[k + 1]] - b[h[k]], 1e-9))
                   for (b, q), h, g in zip(arrays, hulls, gains) for k in range(len(h) - 1)) * 2 + 1e-12
    lo_slope = 0.0
    for _ in range(iterations):  # total bits fall as the slope rises
        mid = 0.5 * (lo_slope + hi_slope)
        if totals(mid)[1] > budget:
            lo_slope = mid
        else:
            hi_slope = mid
    under, under_bits = totals(hi_slope)  # <= budget
    over, _ = totals(lo_slope)  # > budget
    # Shots whose vertex differs between the two sides switch at this slope; move them along their segment
    # together, by the same fraction, until the total equals the budget.
    switch_bits = sum(b[h[o]] - b[h[u]] for (b, _), h, u, o in zip(arrays, hulls, under, over))
    t = float(np.clip((budget - under_bits) / switch_bits, 0.0, 1.0)) if switch_bits > 0 else 0.0
    fractions = [t if o != u else 0.0 for u, o in zip(under, over)]
    return _result(arrays, hulls, under, over, fractions, frames_a, hi_slope, feasible=True)


def _result(arrays, hulls, lo_pos, hi_pos, fractions, frames, slope, feasible) -> BudgetChoice:
    shots = []
    for (b, q), h, lp, hp, t in zip(arrays, hulls, lo_pos, hi_pos, fractions):
        lo, hi = h[lp], h[hp]
        shots.append(ShotChoice(lo=lo, hi=hi, fraction=t, bits=float(b[lo] + t * (b[hi] - b[lo])),
                                quality=float(q[lo] + t * (q[hi] - q[lo]))))
    total = sum(s.bits for s in shots)
    mean_q = float(np.dot([s.quality for s in shots], frames) / frames.sum())
    return BudgetChoice(shots=shots, slope=float(slope), bits=total, quality=mean_q, feasible=feasible)


def crf_between(crf_lo: float, crf_hi: float, bits_lo: float, bits_hi: float, bits: float) -> float:
    """The CRF expected to spend `bits` between two probes (bits fall about exponentially with CRF, so
    interpolate CRF linearly in log-bits)."""
    if bits_lo <= 0 or bits_hi <= 0 or bits_lo == bits_hi:
        return float(crf_lo)
    t = (np.log(bits) - np.log(bits_lo)) / (np.log(bits_hi) - np.log(bits_lo))
    return float(crf_lo + float(np.clip(t, 0.0, 1.0)) * (crf_hi - crf_lo))


def refinement_crfs(probed: Sequence[float], chosen: float, step: float) -> list[float]:
    """The CRFs to probe next for a shot whose equal-slope choice is CRF `chosen`, given the CRFs it was probed
    at: the middle of each probed gap next to the choice (the one it sits in, or both sides of a vertex) that
    is wider than `step`. The hull between two probes is a straight chord under the real concave curve, so a
    coarse grid parks most shots on the same vertex; probing where each rung's choice lands makes the hull
    fine only where a decision is made (empty once the gaps there are at most `step`: the refinement ends)."""
    grid = sorted(set(float(c) for c in probed))
    if step <= 0 or len(grid) < 2:
        return []
    eps = 1e-6
    if any(abs(chosen - c) <= eps for c in grid):
        at = min(range(len(grid)), key=lambda i: abs(grid[i] - chosen))
        gaps = [(grid[i], grid[i + 1]) for i in (at - 1, at) if 0 <= i < len(grid) - 1]
    else:
        gaps = [(a, b) for a, b in zip(grid, grid[1:]) if a < chosen < b]
    out = []
    for a, b in gaps:
        if b - a > step + eps:
            mid = float(np.round((a + b) / 2 * 2) / 2)  # x264 takes fractional CRFs; half steps keep keys short
            if a < mid < b:
                out.append(mid)
    return out


def extension_crf(probed: Sequence[float], predicted_bits: float, budget: float, tolerance: float,
                  step: float, crf_range: tuple[float, float] = (0.0, 51.0)) -> float | None:
    """One CRF past the end of a shot's probed grid when a rung's budget lies beyond what the grid spends:
    `step` below the lowest probed CRF when even the lowest under-spends the budget by more than `tolerance`,
    `step` above the highest when the highest over-spends it; None inside the grid or at the encoder's
    CRF range (x264/x265: 0-51)."""
    grid = sorted(set(float(c) for c in probed))
    if not grid or budget <= 0:
        return None
    if predicted_bits < budget * (1 - tolerance) and grid[0] > crf_range[0]:
        return max(crf_range[0], grid[0] - step)
    if predicted_bits > budget * (1 + tolerance) and grid[-1] < crf_range[1]:
        return min(crf_range[1], grid[-1] + step)
    return None


def best_height(predicted_quality: dict[int, float]) -> int:
    """The resolution whose equal-slope choice predicts the highest quality at the rung's budget (ties: the
    larger picture)."""
    return max(predicted_quality, key=lambda h: (round(predicted_quality[h], 6), h))


# The lowest quality a default rung may have: VMAF 40, "poor" where the VMAF scale maps the five ACR grades
# (20 points a grade). Halving from the CRF-26 rate reached VMAF 4-15 on 90-272p clips, rungs no one should send.
MIN_RUNG_VMAF = 40.0


def default_rates(top_bits_per_second: float, rungs: int = 4, step: float = 2.0) -> list[int]:
    """A ladder below a top rate: each rung `step` times cheaper than the one above (highest first)."""
    return [int(round(top_bits_per_second / step ** k)) for k in range(rungs)]


def worth_sending(rates: Sequence[int], predicted_quality: Sequence[float], floor: float = MIN_RUNG_VMAF
                  ) -> list[int]:
    """A default ladder (highest first) down to its last rung whose predicted quality reaches `floor`; the top
    rung always stays."""
    keep = 1
    while keep < len(rates) and predicted_quality[keep] >= floor:
        keep += 1
    return list(rates[:keep])
