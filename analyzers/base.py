"""The analyzer interface: one small pluggable unit per signal (in the spirit of PySceneDetect's detectors).

The pipeline decodes the video once into an analysis proxy and feeds each analyzer the frames it asks for:
every frame (`every_frame = True`, e.g. shots, motion) or only the sampled analysis frames. At the end each
analyzer returns an AnalyzerOutput. Maps are on the importance grid (grid_h x grid_w cells tiling the frame).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from codec_assist.framestore import FrameStore
from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import AudioSegment, RegionToken, Shot, SignalInfo, Transcript, VideoInfo


@dataclass
class AnalysisContext:
    """What an analyzer knows before the first frame."""

    video: VideoInfo
    proxy_w: int
    proxy_h: int
    grid_h: int
    grid_w: int
    analysis_frames: frozenset[int]  # the sampled frames non-every-frame analyzers will see
    analyzers: frozenset[str] = frozenset()  # the names of every analyzer in this run (work they can share)


@dataclass
class AnalyzerOutput:
    # frame index -> (grid_h, grid_w) float32 in [0, 1]; only for the analysis frames the analyzer mapped.
    # A FrameStore (a dict that spills to disk past a memory budget): a long video's maps do not grow RAM.
    maps: dict[int, np.ndarray] = field(default_factory=FrameStore)
    tokens: list[RegionToken] = field(default_factory=list)
    # signal name -> {frame index: value}; the pipeline aligns them to the analysis frames
    signals: dict[str, dict[int, float]] = field(default_factory=dict)
    shots: list[Shot] | None = None  # only shot analyzers set this
    # signal name -> its unit and description (a signal without one is listed by name only)
    signal_info: dict[str, SignalInfo] = field(default_factory=dict)
    transcript: Transcript | None = None  # speech (ASR) and subtitles analyzers
    audio_segments: list[AudioSegment] | None = None  # the audio analyzer
    # grid name -> {frame index: (grid_h, grid_w) float32}: per-frame grids that are not importance and are not
    # fused, stored as arrays["<name>/grid"] (saliency's "texture": what a block costs, read by the QP policy)
    grids: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


def in_background(work: Callable[[], object], name: str) -> Future:
    """Start `work` in its own thread now; its result (or what it raised) comes from the Future. For analyzer
    work that does not need the pictures (audio, model loading) and releases the GIL: it runs beside the decode."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    job = pool.submit(work)
    pool.shutdown(wait=False)
    return job


class Skip(Exception):
    """Raised by an analyzer that has nothing to work on (e.g. no audio stream): it is left out of the
    analysis with status "skipped" and this message, which is not a failure."""


class Analyzer:
    """Base class. Subclasses set `name`, maybe `every_frame`, and implement process()/finish()."""

    name: ClassVar[str] = "analyzer"
    every_frame: ClassVar[bool] = False  # True: process() sees every decoded frame, not just the samples
    produces_map: ClassVar[bool] = True  # whether it contributes to the importance map
    # False: it reads the file itself (audio, subtitle cues), not the pictures: a segmented analysis runs it once
    # over the whole video instead of once per segment
    needs_pictures: ClassVar[bool] = True

    def start(self, ctx: AnalysisContext) -> None:
        self.ctx = ctx

    def process(self, frame: ProxyFrame) -> None:
        raise NotImplementedError

    def finish(self) -> AnalyzerOutput:
        raise NotImplementedError

    def partial(self, lo: int, hi: int) -> AnalyzerOutput | None:
        """For an analyzer that reads the file (needs_pictures False) and can follow its own progress: its output
        for the analysis frames in [lo, hi), final, while it is still running (it waits until it has read that
        far). None: it gives its output only whole, from finish()."""
        return None

    abandoned: bool = False  # set by abandon(); work running in the background checks it at safe points

    def abandon(self) -> None:
        """The analysis stopped early (an error elsewhere, Ctrl-C) and finish() will not be called: work this
        analyzer runs in the background should stop at its next check (raise Abandoned), so that the process can
        exit now instead of when that work ends (background threads are joined at exit)."""
        self.abandoned = True


class Abandoned(Exception):
    """Raised by an analyzer's background work that stopped because the analysis was abandoned."""


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two normalised (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box_to_grid(x0: float, y0: float, x1: float, y1: float, grid_h: int, grid_w: int,
                value: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Paint a normalised box (0..1 coords) onto a grid with fractional cell coverage; keeps the max."""
    g = np.zeros((grid_h, grid_w), np.float32) if out is None else out
    xs = np.clip(np.array([x0, x1]) * grid_w, 0, grid_w)
    ys = np.clip(np.array([y0, y1]) * grid_h, 0, grid_h)
    cx = np.clip(np.minimum(np.arange(grid_w) + 1, xs[1]) - np.maximum(np.arange(grid_w), xs[0]), 0, 1)
    cy = np.clip(np.minimum(np.arange(grid_h) + 1, ys[1]) - np.maximum(np.arange(grid_h), ys[0]), 0, 1)
    np.maximum(g, value * np.outer(cy, cx).astype(np.float32), out=g)
    return g
