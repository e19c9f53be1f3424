"""Target-quality search: the next CRF to probe, from the (crf, quality) probes so far. Pure.

Quality falls as CRF rises. The search interpolates (it does not bisect): with one probe it steps by a prior
slope; with a bracket it interpolates linearly between the two closest probes either side of the target;
without one it extrapolates along the secant of the two nearest probes. It stops when a probe lands within
`tol`, when the budget of probes is spent, or when the target lies beyond a CRF bound already probed — then
the closest probe is the best effort and the status says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

Status = Literal["probe", "hit", "too-high", "too-low", "max-probes"]

# Prior slope of quality per CRF step, used until two probes give a secant (PSNR/XPSNR: dB; SSIM: unit; VMAF).
PRIOR_SLOPE = {"psnr": -0.55, "xpsnr": -0.55, "ssim": -0.004, "vmaf": -1.6}


@dataclass(frozen=True)
class Step:
    status: Status  # "probe": try `crf` next; anything else: finished, `crf` is the best one probed
    crf: float


def _round(crf: float, step: float) -> float:
    return round(crf / step) * step


def next_step(probes: Sequence[tuple[float, float]], target: float, *, lo: float = 10.0, hi: float = 45.0,
              start: float = 23.0, tol: float = 0.25, max_probes: int = 6, prior_slope: float = -0.55,
              step: float = 0.25) -> Step:
    """Decide the next probe. `probes` are (crf, quality) pairs in the order they were measured."""
    if not lo < hi:
        raise ValueError(f"need lo < hi, got {lo}, {hi}")
    if not probes:
        return Step("probe", min(hi, max(lo, _round(start, step))))
    pts = sorted(probes)
    best = min(pts, key=lambda p: (abs(p[1] - target), -p[0]))  # closest; on a tie the cheaper (higher CRF)
    if abs(best[1] - target) <= tol:
        return Step("hit", best[0])
    tried = {p[0] for p in pts}
    lowest, highest = pts[0], pts[-1]
    if lowest[1] < target and lowest[0] <= lo:
        return Step("too-high", lowest[0])  # even the best quality allowed falls short
    if highest[1] > target and highest[0] >= hi:
        return Step("too-low", highest[0])  # even the cheapest setting allowed is above the target
    if len(pts) >= max_probes:
        return Step("max-probes", best[0])

    above = [p for p in pts if p[1] > target]  # quality above target: lower CRFs
    below = [p for p in pts if p[1] < target]
    if above and below:
        a = max(above, key=lambda p: p[0])  # the bracket's tightest ends
        b = min(below, key=lambda p: p[0])
        crf = a[0] + (target - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        crf = min(max(crf, min(a[0], b[0])), max(a[0], b[0]))
    else:
        if len(pts) >= 2:
            near = sorted(pts, key=lambda p: abs(p[1] - target))[:2]
            (c1, q1), (c2, q2) = near
            slope = (q2 - q1) / (c2 - c1) if c2 != c1 else prior_slope
            if not slope < 0:
                slope = prior_slope  # noisy or flat: quality must fall with CRF
            slope = max(slope, 4 * prior_slope)  # do not leap on a nearly flat secant
            slope = min(slope, prior_slope / 4)
        else:
            slope = prior_slope
        crf = best[0] + (target - best[1]) / slope
    crf = min(hi, max(lo, _round(crf, step)))
    if crf in tried:  # rounding landed on a probe already made: nudge one step toward the target
        direction = -1 if best[1] < target else 1
        crf = min(hi, max(lo, best[0] + direction * step))
        if crf in tried:
            return Step("hit" if abs(best[1] - target) <= 2 * tol else "max-probes", best[0])
    return Step("probe", crf)
