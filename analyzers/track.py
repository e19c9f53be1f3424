"""Boxes followed across the analysis frames, so a detector's miss on one frame does not drop the region.

Detections are linked frame to frame into tracks (greedy, by IoU, or by centre distance for small boxes that
move further than their size). A track's gaps of up to `max_gap` analysis frames are filled by linear
interpolation between the boxes on either side; a track seen on at least `min_seen` frames is also held for
`hold` analysis frames past its ends (the detector often loses a face one frame before it leaves or turns).
Nothing is linked, bridged or held across a `break` (a frame where the picture jumped: a cut, a whip pan).
All of this runs in finish(), once every analysis frame has been seen: the analysis is offline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import box_iou

Box4 = tuple[float, float, float, float]  # normalised x0, y0, x1, y1


def _near(a: Box4, b: Box4) -> float:
    """Link score: IoU, or for boxes that do not overlap enough, how close the centres are in box sizes."""
    o = box_iou(a, b)
    if o >= 0.2:
        return o
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    d = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    ratio = (b[2] - b[0]) / max(1e-6, a[2] - a[0])
    return 0.1 if d < 0.75 * size and 0.6 < ratio < 1.7 else 0.0


@dataclass
class Placed:
    """A box on one analysis frame: seen by the detector, or filled in by the tracker."""

    box: Box4
    score: float
    track: int
    detected: bool


@dataclass
class _Track:
    id: int
    seen: dict[int, tuple[Box4, float]] = field(default_factory=dict)  # position in frames -> (box, score)


def track(frames: list[int], detections: dict[int, list[tuple[Box4, float]]], max_gap: int = 2, hold: int = 1,
          min_seen: int = 2, fill_score: float = 0.8, breaks: set[int] = frozenset()) -> dict[int, list[Placed]]:
    """frames: the analysis frames in order; detections: frame -> [(box, score)]; breaks: frames that start a
    new segment. Returns frame -> the boxes to use there (detected ones and filled-in ones)."""
    segment = np.cumsum([f in breaks for f in frames]) if frames else np.zeros(0, int)
    tracks: list[_Track] = []
    last: dict[int, int] = {}  # track id -> position of its last detection
    for pos, f in enumerate(frames):
        dets = detections.get(f, [])
        live = [t for t in tracks if pos - last[t.id] <= max_gap + 1 and segment[last[t.id]] == segment[pos]]
        pairs = sorted(((_near(t.seen[last[t.id]][0], d[0]), ti, di) for ti, t in enumerate(live)
                        for di, d in enumerate(dets)), reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        for s, ti, di in pairs:
            if s <= 0 or ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            live[ti].seen[pos] = dets[di]
            last[live[ti].id] = pos
        for di, d in enumerate(dets):
            if di not in used_d:
                t = _Track(id=len(tracks), seen={pos: d})
                tracks.append(t)
                last[t.id] = pos

    out: dict[int, list[Placed]] = {f: [] for f in frames}
    for t in tracks:
        ps = sorted(t.seen)
        for p in ps:
            box, score = t.seen[p]
            out[frames[p]].append(Placed(box, score, t.id, True))
        for a, b in zip(ps, ps[1:]):  # gaps: interpolate
            (ba, sa), (bb, sb) = t.seen[a], t.seen[b]
            for p in range(a + 1, b):
                w = (p - a) / (b - a)
                box = tuple(float((1 - w) * x + w * y) for x, y in zip(ba, bb))
                out[frames[p]].append(Placed(box, fill_score * min(sa, sb), t.id, False))
        if len(ps) >= min_seen:  # ends: hold, inside the segment
            seg = segment[ps[0]]
            for p in [*range(max(0, ps[0] - hold), ps[0]), *range(ps[-1] + 1, min(len(frames), ps[-1] + 1 + hold))]:
                if segment[p] != seg:
                    continue
                box, score = t.seen[ps[0] if p < ps[0] else ps[-1]]
                out[frames[p]].append(Placed(box, fill_score * score, t.id, False))
    return out
