"""Shot cuts (and optional semantic events) -> forced IDR frames. Pure."""
from __future__ import annotations

import math


def spaced(starts: list[int], frame_count: int, min_gap: int) -> list[int]:
    """Frame 0 and every start in (0, frame_count) at least `min_gap` frames after the previous one kept: the cuts
    that can begin a GOP of their own (a one-frame shot's second cut, one frame after the first, cannot)."""
    kept = [0]
    for start in sorted(set(starts)):
        if 0 < start < frame_count and start - kept[-1] >= min_gap:
            kept.append(start)
    return kept


def keyframes(cuts: list[int], frame_count: int, min_gop: int, max_gop: int,
              events: list[int] | None = None, lookahead: int | None = None, open_end: bool = False) -> list[int]:
    """IDR frames: frame 0, every cut at least `min_gop` after the previous IDR, and evenly spaced extra
    IDRs wherever a gap would exceed `max_gop` (so the encoder never has to insert its own).

    `events` (speaker change, topic change, a focus target appearing, ...) are IDR candidates too, weaker
    than cuts: an event is kept only when it lies at least `min_gop` from every kept cut and earlier IDR, so
    events never displace or crowd a cut.

    `lookahead` (frames): the decision at each frame may only use the cuts up to that many frames ahead, as when
    the encoder runs beside the analysis. Where a gap's end is not yet in sight when `max_gop` frames have passed,
    the IDR goes there; once the end is in sight the rest of the gap is split evenly (not before the frame where
    it came in sight). As many IDRs as without a lookahead in every gap up to 2 x max_gop, and the same ones when
    the lookahead is at least max_gop. `open_end`: the video goes on past `frame_count` (only the cuts so far are
    known); the IDRs before frame_count - lookahead are then final.
    """
    if min_gop < 1 or max_gop < min_gop:
        raise ValueError(f"need 1 <= min_gop <= max_gop, got {min_gop}, {max_gop}")
    if lookahead is not None and lookahead < 0:
        raise ValueError(f"the lookahead must not be negative, got {lookahead}")
    anchors = spaced(cuts, frame_count, min_gop)
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
        out.append(start)
        unseen = open_end and end == frame_count  # the last gap's end is past what is known
        while end - start > max_gop:
            # the first frame at which the gap's end is in sight
            seen = math.inf if unseen else start + 1 if lookahead is None else max(start + 1, end - lookahead)
            if start + max_gop < seen:  # max_gop reached with the end still out of sight
                start += max_gop
                if start < frame_count:
                    out.append(start)
                continue
            pieces = math.ceil((end - start) / max_gop)
            # max(seen, ...): with a lookahead under max_gop a two-piece gap's middle can come before its end is
            # in sight (not with a lookahead of max_gop or more: then every position here is already >= seen)
            out.extend(max(seen, start + round(i * (end - start) / pieces)) for i in range(1, pieces))
            break
    return out
