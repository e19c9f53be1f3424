"""Classical saliency: motion energy + spatial detail + a centre prior, the cheap floor of the importance map.

Motion is measured between every pair of consecutive proxy frames and accumulated up to the next analysis
frame, so a 5 fps analysis still sees 25 fps motion; maps are only made for the analysis frames.
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from codec_assist.framestore import FrameStore
from codec_assist.media.decode import ProxyFrame

from .base import AnalysisContext, Analyzer, AnalyzerOutput

# A frame whose mean luma change exceeds this (gray levels) is a cut or a flash, not motion: counting it
# would light up the whole frame. Fast pans on the samples stay near 20; cuts are 50-85.
CUT_LEVEL = 35.0
# Normalisation floors: below these a frame has no real motion / detail, and stretching sensor noise or a
# flat sky to 1.0 would invent saliency.
MOTION_FLOOR = 6.0  # mean |diff| per frame in a grid cell, gray levels
DETAIL_FLOOR = 40.0  # mean Sobel gradient magnitude in a grid cell


def normalise(x: np.ndarray, floor: float) -> np.ndarray:
    """Scale to [0, 1] by the frame's 99th percentile (robust to a few hot cells), never by less than floor."""
    top = max(float(np.percentile(x, 99)), floor)
    return np.clip(x / top, 0.0, 1.0).astype(np.float32)


def centre_prior(grid_h: int, grid_w: int, sigma: float = 0.35) -> np.ndarray:
    """Gaussian bump on the frame centre; sigma is a fraction of each dimension (viewers look centre-ish)."""
    y = (np.arange(grid_h) + 0.5) / grid_h - 0.5
    x = (np.arange(grid_w) + 0.5) / grid_w - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2)).astype(np.float32)


class ClassicalSaliency(Analyzer):
    name: ClassVar[str] = "saliency"
    every_frame: ClassVar[bool] = True
    produces_map: ClassVar[bool] = True

    def __init__(self, w_motion: float = 0.5, w_detail: float = 0.3, w_centre: float = 0.2):
        total = w_motion + w_detail + w_centre
        self.weights = (w_motion / total, w_detail / total, w_centre / total)

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        self._grid = (ctx.grid_w, ctx.grid_h)  # cv2 size order
        self._centre = centre_prior(ctx.grid_h, ctx.grid_w)
        self._prev: np.ndarray | None = None
        self._motion_sum = np.zeros((ctx.proxy_h, ctx.proxy_w), np.float32)
        self._motion_frames = 0
        self.out = AnalyzerOutput(signals={"motion": {}, "detail": {}, "frame_motion": {}},
                                  grids={"texture": FrameStore()})

    def process(self, frame: ProxyFrame) -> None:
        gray = frame.gray
        if self._prev is not None and self._prev.shape == gray.shape:
            diff = cv2.absdiff(gray, self._prev)
            level = float(diff.mean())
            self.out.signals["frame_motion"][frame.index] = level / 255.0
            if level < CUT_LEVEL:
                cv2.accumulate(diff, self._motion_sum)
                self._motion_frames += 1
        self._prev = gray
        if frame.index in self.ctx.analysis_frames:
            self._emit(frame)

    def _emit(self, frame: ProxyFrame) -> None:
        # INTER_AREA averages each grid cell's pixels: pooling for free.
        motion = cv2.resize(self._motion_sum / max(1, self._motion_frames), self._grid,
                            interpolation=cv2.INTER_AREA)
        gx = cv2.Sobel(frame.gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(frame.gray, cv2.CV_32F, 0, 1, ksize=3)
        raw_detail = cv2.resize(cv2.magnitude(gx, gy), self._grid, interpolation=cv2.INTER_AREA)
        # A light blur on the grid: saliency is a blob, not single speckled cells.
        motion = cv2.GaussianBlur(motion, (3, 3), 0)
        detail = cv2.GaussianBlur(raw_detail, (3, 3), 0)
        wm, wd, wc = self.weights
        combined = wm * normalise(motion, MOTION_FLOOR) + wd * normalise(detail, DETAIL_FLOOR) + wc * self._centre
        self.out.maps[frame.index] = np.clip(combined / max(float(combined.max()), 1e-6), 0, 1).astype(np.float32)
        # unblurred, unnormalised gradient energy per cell: comparable across frames, a cheap stand-in for
        # what a block costs to code (the QP policy takes the ROI's bits back where they are cheapest)
        self.out.grids["texture"][frame.index] = (raw_detail / 255.0).astype(np.float32)
        self.out.signals["motion"][frame.index] = float(motion.mean()) / 255.0
        self.out.signals["detail"][frame.index] = float(detail.mean()) / 255.0
        self._motion_sum[:] = 0
        self._motion_frames = 0

    def finish(self) -> AnalyzerOutput:
        return self.out
