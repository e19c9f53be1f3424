"""Faces with OpenCV's Haar cascades (they ship inside opencv-python-headless 4.x; no model download).

Run on the proxy gray frame of each analysis frame. Tuned on the samples (see tests/test_analyzers.py):
frontal "alt2" with minNeighbors 6 finds the presenter in every jwpIntro frame and nothing in bikes,
bigbuckbunny or cityCC0, where "frontalface_default" fired on night-city windows.
A cascade costs 10-20 ms a 320x180 frame on 2 cores, so the profile cascade is opt-in (profile=True), and
then runs only where no frontal face was found. Upper/full-body cascades were tried for "person" tokens:
they missed the presenter in most frames and fired on bikes' street scenes, so they are left out.
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import Box, RegionToken

from .base import AnalysisContext, Analyzer, AnalyzerOutput, box_to_grid

FRONTAL = "haarcascade_frontalface_alt2.xml"
PROFILE = "haarcascade_profileface.xml"

_CASCADES: dict[str, cv2.CascadeClassifier] = {}  # loaded once per process


def cascade(filename: str) -> cv2.CascadeClassifier:
    if filename not in _CASCADES:
        data = getattr(cv2, "data", None)
        c = cv2.CascadeClassifier(data.haarcascades + filename) if data else cv2.CascadeClassifier()
        if c.empty():
            raise CodecAssistError(f"OpenCV has no Haar cascade {filename}: install opencv-python-headless<5")
        _CASCADES[filename] = c
    return _CASCADES[filename]


def next_frames(ctx: AnalysisContext) -> dict[int, int]:
    """analysis frame -> the next analysis frame, capped at the end of the video: how long a detection holds.
    (The planned analysis frames may run past the last frame.)"""
    frames = sorted(ctx.analysis_frames)
    return {f: max(f + 1, min(nxt, ctx.video.frame_count))
            for f, nxt in zip(frames, [*frames[1:], ctx.video.frame_count])}


class HaarFaces(Analyzer):
    name: ClassVar[str] = "faces"
    every_frame: ClassVar[bool] = False
    produces_map: ClassVar[bool] = True

    def __init__(self, min_neighbors: int = 6, scale_factor: float = 1.25, min_face_px: int = 24,
                 profile: bool = False, grow: float = 1.3):
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor  # 1.25 costs half of 1.1 and found the same faces on the samples
        self.min_face_px = min_face_px  # at the 320-px proxy (7.5 % of its width); smaller faces cost most
        self.profile = profile
        self.grow = grow  # paint a bit beyond the box: hair, chin and the box's jitter matter too

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        self._frontal = cascade(FRONTAL)
        self._profile = cascade(PROFILE) if self.profile else None
        self._next = next_frames(ctx)
        self.out = AnalyzerOutput()

    def detect(self, gray: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """(x, y, w, h, score) in proxy pixels. Score n/(n+minNeighbors) from the cascade's neighbour count:
        Haar gives no probability, but more overlapping hits means a surer face."""
        gray = cv2.equalizeHist(gray)  # cascades were trained on normalised faces: helps dim scenes
        size = (self.min_face_px, self.min_face_px)
        for c in (self._frontal, self._profile):
            if c is None:
                continue
            boxes, hits = c.detectMultiScale2(gray, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=size)
            if len(boxes):
                return [(int(x), int(y), int(w), int(h), float(n / (n + self.min_neighbors)))
                        for (x, y, w, h), n in zip(boxes, np.ravel(hits))]
        return []

    def process(self, frame: ProxyFrame) -> None:
        ph, pw = frame.gray.shape
        grid = np.zeros((self.ctx.grid_h, self.ctx.grid_w), np.float32)
        end = self._next.get(frame.index) or frame.index + 1
        for x, y, w, h, score in self.detect(frame.gray):
            box = Box(x=x / pw, y=y / ph, w=w / pw, h=h / ph)
            self.out.tokens.append(RegionToken(frame_start=frame.index, frame_end=end, box=box, label="face",
                                               score=float(score), source=self.name))
            cx, cy, gw, gh = box.x + box.w / 2, box.y + box.h / 2, box.w * self.grow / 2, box.h * self.grow / 2
            box_to_grid(cx - gw, cy - gh, cx + gw, cy + gh, self.ctx.grid_h, self.ctx.grid_w, out=grid)
        # Most frames have no face: they share one read-only empty grid instead of a fresh one each (a map per
        # analysis frame made memory grow with the input's duration).
        if not grid.any():
            if getattr(self, "_empty", None) is None or self._empty.shape != grid.shape:
                self._empty = grid
                self._empty.flags.writeable = False
            grid = self._empty
        self.out.maps[frame.index] = grid

    def finish(self) -> AnalyzerOutput:
        return self.out
