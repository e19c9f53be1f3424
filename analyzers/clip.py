"""CLIP frame and patch embeddings (open_clip), for text queries in CLIP's joint space.

Only runs when the user names a CLIP model and supplies its weights (nothing ships offline; see models.clip_model).
Once per `interval_s` (and early at a picture jump) the proxy frame, resized to the model's input square, goes
through the vision tower; the frame embedding becomes a whole-frame token and the patch tokens, projected into
the joint space (as MaskCLIP does), become one region token per patch cell, pooled to at most `max_cells` a
side. The fusion then attends from each text query over a frame's patches: token-wise text-patch interaction
in the spirit of DRL / CLIP4Clip, whose softmax over patches is the text-patch relevance map.
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from codec_assist.media.decode import ProxyFrame
from codec_assist.models import ModelUnavailable, clip_model, torch_threads
from codec_assist.schemas import Box, RegionToken

from .base import AnalysisContext, Analyzer, AnalyzerOutput
from .text import RerunSchedule


class ClipPatches(Analyzer):
    name: ClassVar[str] = "clip"
    every_frame: ClassVar[bool] = False
    produces_map: ClassVar[bool] = False  # relevance needs a query: the fusion makes it

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = None, checkpoint: str | None = None,
                 interval_s: float = 1.0, max_cells: int = 8, random_weights: bool = False):
        self.model_name, self.pretrained, self.checkpoint = model, pretrained, checkpoint
        self.random_weights = random_weights  # tests only: the path runs, the similarities mean nothing
        self.interval_s = interval_s
        self.max_cells = max_cells  # ViT-B-16's 14x14 patches would make 196 tokens a frame; 8x8 is plenty

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        if not (self.pretrained or self.checkpoint or self.random_weights):
            raise ModelUnavailable(f"CLIP {self.model_name} needs weights: give --clip-pretrained TAG (from the "
                                   f"open_clip / Hugging Face cache) or --clip-checkpoint FILE")
        self.clip = clip_model(self.model_name, self.pretrained, self.checkpoint)  # ModelUnavailable: skipped
        self.out = AnalyzerOutput()
        self._held: list[tuple[Box, str, np.ndarray]] = []
        self._held_from: int | None = None
        self._schedule = RerunSchedule(self.interval_s)
        self.calls = 0

    def embed(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(frame embedding (d,), patch embeddings (rows, cols, d) or None), L2-normalised, in the joint space."""
        import torch

        c = self.clip
        rgb = cv2.cvtColor(cv2.resize(bgr, (c.image_size, c.image_size), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        x = torch.from_numpy((rgb - np.array(c.mean, np.float32)) / np.array(c.std, np.float32)).permute(2, 0, 1)[None]
        visual = c.model.visual
        patches = None
        with torch.inference_mode(), torch_threads(1):
            if hasattr(visual, "output_tokens") and getattr(visual, "proj", None) is not None:
                visual.output_tokens = True
                try:
                    pooled, tokens = visual(x)
                finally:
                    visual.output_tokens = False
                side = int(round(tokens.shape[1] ** 0.5))
                if side * side == tokens.shape[1]:
                    p = (tokens[0] @ visual.proj).reshape(side, side, -1).permute(2, 0, 1)[None]
                    cells = min(side, self.max_cells)
                    p = torch.nn.functional.adaptive_avg_pool2d(p, cells)[0].permute(1, 2, 0)
                    patches = torch.nn.functional.normalize(p, dim=-1).numpy()
            else:  # e.g. a ResNet tower: the frame embedding only
                pooled = visual(x)
            frame = torch.nn.functional.normalize(pooled[0].float(), dim=-1).numpy()
        return frame.astype(np.float32), patches

    def process(self, frame: ProxyFrame) -> None:
        if not self._schedule.due(frame):
            return
        self._flush(frame.index)
        whole, patches = self.embed(frame.bgr)
        self._held = [(Box(x=0, y=0, w=1, h=1), "frame", whole)]
        if patches is not None:
            rows, cols = patches.shape[:2]
            for r in range(rows):
                for c in range(cols):
                    self._held.append((Box(x=c / cols, y=r / rows, w=1 / cols, h=1 / rows), f"patch {r},{c}",
                                       patches[r, c]))
        self.calls += 1
        self._held_from = frame.index

    def _flush(self, end: int) -> None:
        if self._held_from is None or end <= self._held_from:
            return
        for box, label, vec in self._held:
            self.out.tokens.append(RegionToken(
                frame_start=self._held_from, frame_end=end, box=box, label=f"clip {label}", score=1.0,
                source=self.name, embedding_space=self.clip.space, embedding=[round(float(v), 5) for v in vec]))

    def finish(self) -> AnalyzerOutput:
        if self._held_from is not None:
            self._flush(max(self.ctx.video.frame_count, self._held_from + 1))
        self._held, self._held_from = [], None
        return self.out
