"""Shot cuts -> forced IDR frames. Pure."""
from __future__ import annotations

import math


def keyframes(cuts: list[int], frame_count: int, min_gop: int, max_gop: int) -> list[int]:
    """IDR frames: frame 0, every cut at least `min_gop` after the previous IDR, and evenly spaced extra
    IDRs wherever a gap would exceed `max_gop` (so the encoder never has to insert its own)."""
    if min_gop < 1 or max_gop < min_gop:
        raise ValueError(f"need 1 <= min_gop <= max_gop, got {min_gop}, {max_gop}")
    anchors = [0]
    for cut in sorted(set(cuts)):
        if 0 < cut < frame_count and cut - anchors[-1] >= min_gop:
            anchors.append(cut)
    out: list[int] = []
    for start, end in zip(anchors, anchors[1:] + [frame_count]):
        pieces = max(1, math.ceil((end - start) / max_gop))
        out.extend(start + round(i * (end - start) / pieces) for i in range(pieces))
    return out
