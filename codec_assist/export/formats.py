"""`codec-assist export PLAN --format F -o OUT`: a plan's decisions in formats other encoders read.

Formats (docs/EXPORT.md has an example command consuming each):
- x264-zones, x265-zones  the `--zones` value (start,end,b=F/...; inclusive frame ranges)
- svt-roi                 SvtAv1EncApp `--roi-map-file`: per frame a line "FRAME o1 o2 ..." with one qindex
                          offset per 64x64 block, row by row, at most 8 distinct values per frame (AV1 has 8
                          segments); offsets = QP offsets x QINDEX_PER_QP, quantised to 8 levels
- addroi                  per shot "START END FILTER": FFmpeg `addroi` filters for static rectangles
- qp-npy                  per-frame QP offsets, float32 (frames, blocks_y, blocks_x), the plan's block size
- qp-csv                  the same as CSV: frame,block_row,block_col,qp_offset
- keyframes               CSV frame,time_s of the IDR frames
- qpfile                  x264/x265 `--qpfile` forcing the IDRs ("FRAME I -1" per line)
- force-key-frames        FFmpeg `-force_key_frames` value (comma-separated seconds)
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from policies.qp import block_areas, neutralise, offsets_at

from codec_assist.encoding.x26x import zones_param
from codec_assist.errors import CodecAssistError
from codec_assist.media.safeio import atomic_write_bytes, check_output
from codec_assist.schemas import EncodePlan

FORMATS = ("x264-zones", "x265-zones", "svt-roi", "addroi", "qp-npy", "qp-csv", "keyframes", "qpfile",
           "force-key-frames")
SVT_BLOCK = 64
SVT_MAX_SEGMENTS = 8
QINDEX_PER_QP = 4  # AV1 qindex (0..255) runs ~4x the 0..63 quantiser scale (SvtAv1EncApp docs: qindex = 4 x qp)
ADDROI_QP_RANGE = 51  # FFmpeg turns qoffset into qoffset x 51 QP for 8-bit x264/x265
ADDROI_MAX_RECTS = 4


def per_frame_offsets(plan: EncodePlan, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(frame_count, blocks_y, blocks_x) float32: the offsets the encoder applies to every frame (0 where
    the plan leaves a frame alone)."""
    frames = arrays["qp/frames"].tolist()
    offsets = arrays["qp/offsets"]
    out = np.zeros((plan.frame_count, plan.blocks_y, plan.blocks_x), np.float32)
    for n in range(plan.frame_count):
        g = offsets_at(n, frames, offsets, plan.shot_starts)
        if g is not None:
            out[n] = g
    return out


def zones_text(plan: EncodePlan) -> str:
    if not plan.zones:
        raise CodecAssistError("the plan has no zones; make one with `encode --allocate ... --save-plan PLAN` "
                               "or `encode --target-quality ... --save-plan PLAN`")
    return zones_param(plan.zones)


def quantise_levels(values: np.ndarray, levels: int = SVT_MAX_SEGMENTS) -> np.ndarray:
    """Integer values with at most `levels` distinct ones: unchanged when already few, else each value moves
    to the nearest of `levels` evenly spaced levels between the min and the max (0 kept exact if present)."""
    v = np.rint(values).astype(np.int64)
    if len(np.unique(v)) <= levels:
        return v
    lo, hi = int(v.min()), int(v.max())
    grid = np.unique(np.rint(np.linspace(lo, hi, levels)).astype(np.int64))
    if lo < 0 < hi and 0 not in grid:  # "no change" should stay representable
        grid[np.argmin(np.abs(grid))] = 0
    return grid[np.argmin(np.abs(v[..., None] - grid), axis=-1)]


def svt_roi_lines(plan: EncodePlan, arrays: dict[str, np.ndarray]) -> list[str]:
    """SvtAv1EncApp --roi-map-file lines: 'FRAME o1 o2 ...', one qindex offset per 64x64 block, raster order."""
    by, bx = -(-plan.height // SVT_BLOCK), -(-plan.width // SVT_BLOCK)
    per_frame = per_frame_offsets(plan, arrays)
    areas = block_areas(plan.width, plan.height, SVT_BLOCK)
    lines = []
    for n, grid in enumerate(per_frame):
        # area-weighted mean of the plan's blocks inside each 64x64 block: upsample to pixels, then average
        px = cv2.resize(grid, (plan.blocks_x * plan.block_size, plan.blocks_y * plan.block_size),
                        interpolation=cv2.INTER_NEAREST)[: plan.height, : plan.width]
        pad = np.zeros((by * SVT_BLOCK, bx * SVT_BLOCK), np.float32)
        pad[: plan.height, : plan.width] = px
        sums = pad.reshape(by, SVT_BLOCK, bx, SVT_BLOCK).sum(axis=(1, 3))
        coarse = sums / (areas * SVT_BLOCK * SVT_BLOCK)
        coarse = neutralise(coarse, areas, plan.max_dqp)
        q = np.clip(quantise_levels(coarse * QINDEX_PER_QP), -255, 255)
        lines.append(f"{n} " + " ".join(str(int(x)) for x in q.ravel()))
    return lines


def addroi_lines(plan: EncodePlan, arrays: dict[str, np.ndarray], threshold: float = 1.0) -> list[str]:
    """Per shot 'START END FILTERS' (END exclusive): the shot's mean offsets as static addroi rectangles —
    bounding boxes of the favoured blocks (mean offset <= -threshold QP), largest first, at most 4."""
    per_frame = per_frame_offsets(plan, arrays)
    starts = sorted(set(plan.shot_starts) | {0})
    lines = []
    for s, e in zip(starts, starts[1:] + [plan.frame_count]):
        mean = per_frame[s:e].mean(axis=0)
        mask = (mean <= -threshold).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        rects = sorted(range(1, count), key=lambda k: -stats[k, cv2.CC_STAT_AREA])[:ADDROI_MAX_RECTS]
        filters = []
        for k in rects:
            x, y, w, h = (int(stats[k, i]) for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                                      cv2.CC_STAT_HEIGHT))
            dqp = float(mean[labels == k].mean())
            b = plan.block_size
            px, py = x * b, y * b
            pw, ph = min(w * b, plan.width - px), min(h * b, plan.height - py)
            filters.append(f"addroi=x={px}:y={py}:w={pw}:h={ph}:qoffset={dqp / ADDROI_QP_RANGE:.4f}")
        lines.append(f"{s} {e} {','.join(filters) if filters else 'null'}")
    return lines


def keyframe_rows(plan: EncodePlan) -> list[tuple[int, float]]:
    return [(k, k / plan.fps) for k in plan.forced_keyframes]


def render(plan: EncodePlan, arrays: dict[str, np.ndarray], fmt: str) -> bytes:
    """The export's bytes (text formats end with a newline)."""
    if fmt in ("x264-zones", "x265-zones"):
        return (zones_text(plan) + "\n").encode()
    if fmt == "svt-roi":
        return ("\n".join(svt_roi_lines(plan, arrays)) + "\n").encode()
    if fmt == "addroi":
        return ("\n".join(addroi_lines(plan, arrays)) + "\n").encode()
    if fmt == "qp-npy":
        buf = io.BytesIO()
        np.save(buf, per_frame_offsets(plan, arrays), allow_pickle=False)
        return buf.getvalue()
    if fmt == "qp-csv":
        per = per_frame_offsets(plan, arrays)
        f, r, c = np.indices(per.shape).reshape(3, -1)
        rows = "\n".join(f"{a},{b},{d},{v:g}" for a, b, d, v in zip(f, r, c, per.ravel()))
        return ("frame,block_row,block_col,qp_offset\n" + rows + "\n").encode()
    if fmt == "keyframes":
        return ("frame,time_s\n" + "".join(f"{k},{t:.6f}\n" for k, t in keyframe_rows(plan))).encode()
    if fmt == "qpfile":
        return "".join(f"{k} I -1\n" for k in plan.forced_keyframes).encode()
    if fmt == "force-key-frames":
        return (",".join(f"{t:.6f}" for _, t in keyframe_rows(plan)) + "\n").encode()
    raise CodecAssistError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def export_plan(plan_path: str | Path, fmt: str, output: str | Path | None = None, *,
                overwrite: bool = False) -> bytes:
    """Read a plan file (its .npz beside it) and render it as `fmt` (one of FORMATS); with `output`, also
    write the bytes there atomically. Returns the bytes."""
    from codec_assist import schemas

    if fmt not in FORMATS:
        raise CodecAssistError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    plan, arrays = schemas.load_plan(plan_path)
    data = render(plan, arrays, fmt)
    if output is not None:
        out = check_output(output, plan_path, schemas.arrays_path(plan_path), overwrite=overwrite)
        atomic_write_bytes(out, data)
    return data
