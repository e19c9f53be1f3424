"""Shot cuts (and optional semantic events) -> forced IDR frames. Pure."""
from __future__ import annotations

import math


def keyframes(cuts: list[int], frame_count: int, min_gop: int, max_gop: int,
              events: list[int] | None = None) -> list[int]:
    """IDR frames: frame 0, every cut at least `min_gop` after the previous IDR, and evenly spaced extra
    IDRs wherever a gap would exceed `max_gop` (so the encoder never has to insert its own).

    `events` (speaker change, topic change, a focus target appearing, ...) are IDR candidates too, weaker
    than cuts: an event is kept only when it lies at least `min_gop` from every kept cut and earlier IDR, so
    events never displace or crowd a cut.
    """
    if min_gop < 1 or max_gop < min_gop:
        raise ValueError(f"need 1 <= min_gop <= max_gop, got {min_gop}, {max_gop}")
    anchors = [0]
    for cut in sorted(set(cuts)):
        if 0 < cut < frame_count and cut - anchors[-1] >= min_gop:
            anchors.append(cut)
    if events:
        cut_anchors = list(anchors)
        for ev in sorted(set(events)):
            if not 0 < ev < frame_count or any(abs(ev - a) < min_gop for a in cut_anchors):
                continue
            if ev - max(a for a in anchors if a < ev) >= min_gop:
                anchors.append(ev)
                anchors.sort()
    out: list[int] = []
    for start, end in zip(anchors, anchors[1:] + [frame_count]):
        pieces = max(1, math.ceil((end - start) / max_gop))
        out.extend(start + round(i * (end - start) / pieces) for i in range(pieces))
    return out
