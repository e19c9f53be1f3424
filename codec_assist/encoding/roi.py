"""The one ROI bridge: attach FFmpeg region-of-interest side data to a PyAV frame.

libx264 and libx265 (through FFmpeg) read `AV_FRAME_DATA_REGIONS_OF_INTEREST` — an array of
`AVRegionOfInterest {uint32 self_size; int top, bottom, left, right; AVRational qoffset}` — and turn each
region's qoffset into a QP delta of qoffset x qp_range (51 for 8-bit) on the blocks it covers; the first
region wins where regions overlap. PyAV 18 exposes side data read-only, so we call `av_frame_new_side_data`
from PyAV's own bundled libavutil through ctypes. That needs the `AVFrame*` inside PyAV's Frame object:
it sits right after the Python object header and Cython's vtable pointer. `_check_layout()` proves that
assumption on a scratch frame (pointer, data planes, size, and the side data PyAV then reports) before the
first real write, and refuses to run otherwise, instead of corrupting memory.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
from functools import lru_cache

import av
import numpy as np

from codec_assist.errors import EncoderError

_FRAME_PTR_OFFSET = 2 * ctypes.sizeof(ctypes.c_void_p) + ctypes.sizeof(ctypes.c_void_p)  # header + vtable
_QOFFSET_DEN = 256 * 51  # qoffset = dqp * 256 / (256 * 51): 1/256 QP resolution for 8-bit


class AVRegionOfInterest(ctypes.Structure):
    _fields_ = [
        ("self_size", ctypes.c_uint32),
        ("top", ctypes.c_int),
        ("bottom", ctypes.c_int),
        ("left", ctypes.c_int),
        ("right", ctypes.c_int),
        ("qoffset_num", ctypes.c_int),
        ("qoffset_den", ctypes.c_int),
    ]


class AVFrameSideData(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class _AVFrameHead(ctypes.Structure):
    """The first fields of AVFrame (stable across FFmpeg 4-8)."""

    _fields_ = [
        ("data", ctypes.c_void_p * 8),
        ("linesize", ctypes.c_int * 8),
        ("extended_data", ctypes.c_void_p),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
    ]


_ROI_SIZE = ctypes.sizeof(AVRegionOfInterest)
_ROI_DTYPE = np.dtype([("self_size", "<u4"), ("top", "<i4"), ("bottom", "<i4"), ("left", "<i4"),
                       ("right", "<i4"), ("num", "<i4"), ("den", "<i4")])
assert _ROI_DTYPE.itemsize == _ROI_SIZE == 28


@lru_cache(maxsize=1)
def _libavutil() -> ctypes.CDLL:
    """PyAV's own libavutil (the one its frames were allocated with), never a system copy."""
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    candidates = sorted(glob.glob(os.path.join(libs_dir, "libavutil*.so*")))
    if not candidates and sys.platform == "darwin":
        candidates = sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), ".dylibs", "libavutil*.dylib")))
    if not candidates:
        raise EncoderError("ROI bridge: PyAV's bundled libavutil was not found (install PyAV from its wheel)")
    lib = ctypes.CDLL(candidates[0])
    lib.av_frame_new_side_data.restype = ctypes.POINTER(AVFrameSideData)
    lib.av_frame_new_side_data.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    lib.av_frame_side_data_name.restype = ctypes.c_char_p
    lib.av_frame_side_data_name.argtypes = [ctypes.c_int]
    return lib


@lru_cache(maxsize=1)
def _roi_type() -> int:
    """The enum value of AV_FRAME_DATA_REGIONS_OF_INTEREST, looked up by name rather than assumed."""
    lib = _libavutil()
    for value in range(64):
        name = lib.av_frame_side_data_name(value)
        if name and name.decode() == "Regions Of Interest":
            return value
    raise EncoderError("ROI bridge: this libavutil has no 'Regions Of Interest' side data type")


def _frame_ptr(frame: av.VideoFrame) -> int:
    """The AVFrame* of a PyAV frame, checked against what PyAV itself reports for that frame."""
    ptr = ctypes.c_void_p.from_address(id(frame) + _FRAME_PTR_OFFSET).value
    if not ptr:
        raise EncoderError("ROI bridge: PyAV frame layout not recognised (null AVFrame pointer)")
    head = _AVFrameHead.from_address(ptr)
    planes = frame.planes
    if (head.width, head.height) != (frame.width, frame.height) or any(
        head.data[i] != p.buffer_ptr for i, p in enumerate(planes[:8])
    ):
        raise EncoderError(f"ROI bridge: PyAV {av.__version__} frame layout not recognised; refusing to write")
    return ptr


def _attach(frame: av.VideoFrame, regions: np.ndarray) -> None:
    if len(regions) == 0:
        return
    ptr = _frame_ptr(frame)
    size = regions.nbytes
    sd = _libavutil().av_frame_new_side_data(ptr, _roi_type(), size)
    if not sd:
        raise EncoderError("ROI bridge: av_frame_new_side_data failed (out of memory?)")
    ctypes.memmove(sd.contents.data, regions.ctypes.data, size)


@lru_cache(maxsize=1)
def _check_layout() -> None:
    """Prove the bridge on a scratch frame: PyAV must then report exactly the bytes we wrote."""
    frame = av.VideoFrame(64, 48, "yuv420p")
    regions = np.zeros(1, _ROI_DTYPE)
    regions[0] = (_ROI_SIZE, 0, 16, 0, 32, -5 * 256, _QOFFSET_DEN)
    _attach(frame, regions)
    found = [sd for sd in iter(frame.side_data) if "REGIONS_OF_INTEREST" in str(getattr(sd, "type", ""))]
    if len(found) != 1 or bytes(found[0]) != regions.tobytes():
        raise EncoderError("ROI bridge: side data written through ctypes did not read back through PyAV")


def regions_from_grid(offsets: np.ndarray, block: int, width: int, height: int,
                      qp_range: float = 51.0) -> np.ndarray:
    """Turn a (blocks_y, blocks_x) grid of QP deltas into ROI regions, one per run of equal values in a row.

    Zero cells need no region (the encoder's default offset is 0). Values are rounded to 1/256 QP.
    """
    offsets = np.asarray(offsets, np.float32)
    by, bx = offsets.shape
    q = np.rint(offsets * 256).astype(np.int32)  # qoffset numerators
    # Run starts: first column, or value differs from the left neighbour.
    change = np.ones_like(q, bool)
    change[:, 1:] = q[:, 1:] != q[:, :-1]
    ys, xs = np.nonzero(change)
    # Run ends: next run start in the same row, or the row end.
    next_x = np.append(xs[1:], bx)
    next_y = np.append(ys[1:], by)
    ends = np.where(next_y == ys, next_x, bx)
    vals = q[ys, xs]
    keep = vals != 0
    ys, xs, ends, vals = ys[keep], xs[keep], ends[keep], vals[keep]
    regions = np.zeros(len(ys), _ROI_DTYPE)
    regions["self_size"] = _ROI_SIZE
    regions["top"] = ys * block
    regions["bottom"] = np.minimum((ys + 1) * block, height)
    regions["left"] = xs * block
    regions["right"] = np.minimum(ends * block, width)
    regions["num"] = vals
    regions["den"] = int(round(256 * qp_range))
    return regions


def attach_qp_offsets(frame: av.VideoFrame, offsets: np.ndarray, block: int, qp_range: float = 51.0,
                      always: bool = False) -> int:
    """Attach a per-block QP-delta map (negative = better quality) to `frame`. Returns the region count.

    `always`: a map of all zeros is attached too (one region of offset 0 over the frame), where it would otherwise
    be left off; x265 needs every frame of an encode to carry a map once any does (see x26x.encode)."""
    _check_layout()
    regions = regions_from_grid(offsets, block, frame.width, frame.height, qp_range)
    if always and not len(regions):
        regions = np.zeros(1, _ROI_DTYPE)
        regions[0] = (_ROI_SIZE, 0, frame.height, 0, frame.width, 0, int(round(256 * qp_range)))
    _attach(frame, regions)
    return len(regions)
