"""Text regions (burned-in captions, signs, titles) with RapidOCR's PP-OCR detector, and their words.

The detector costs tens of ms a call, so it runs on a subset of the analysis frames — once per
`interval_s`, and early when the picture jumped since the previous analysis frame (a cut, a whip pan) —
and its boxes hold until the next run. The recogniser then reads the largest few lines of each run
(`read_lines`), so a text token's label carries the words and a text query can attend to them.

Text appearing is a moment (issue 15: "on-screen text appearing"): the signal `text_onset` is 1 on the analysis frames
within `onset_hold_s` of a detection that found a line none of the previous detections had, while lines are held.
It lags the text by up to `interval_s` (the detector's schedule), and the first detection of an analysis that does not
begin at the video's first frame (a segment of the overlapped encode) is the baseline, not an appearance.
"""
from __future__ import annotations

import contextlib
import importlib.util
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ClassVar

import cv2
import numpy as np

import codec_assist.media.decode as media
from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import Box, RegionToken, SignalInfo

from .base import AnalysisContext, Analyzer, AnalyzerOutput, box_iou, box_to_grid, in_background

# RapidOCR's default scales the short side up to 736: a 320x180 proxy became 1308x736, ~370 ms a call.
# Detecting at 1.5x the proxy instead finds ~12 px-high captions (on the proxy) at ~35 ms a call; at 1x
# (~20 ms) such captions were missed. A fixed factor keeps the cost and the smallest text size the same
# for every aspect ratio.
UPSCALE = 1.5
# Mean |diff| (gray levels) of 32x18 thumbnails of consecutive analysis frames above which the held boxes
# are stale. On the samples cuts scored 43-81, steady shots under 11, bikes' fast street motion up to ~50.
CHANGE_LEVEL = 30.0
# A line "appears" when it overlaps no line of the previous ONSET_MEMORY detections at IoU >= ONSET_IOU: two, so that
# a line the detector misses once and finds again (a blurred frame) is not new.
ONSET_IOU = 0.3
ONSET_MEMORY = 2
TEXT_ONSET_SIGNAL = SignalInfo(name="text_onset", unit="0..1", description="1 on the frames shortly after a text "
                               "line appeared (TextRegions.onset_hold_s: found where the detector's previous runs had "
                               "none), while text is shown; else 0")

_ENGINE = None  # the RapidOCR engine, created once per process (loading its models costs ~0.5 s)
_ENGINE_ARENA: bool | None = None  # whether _ENGINE's sessions keep their buffers (ONNX Runtime's memory arena)
# Held while any OCR session is made (the engine, which may load in a background thread: TextRegions.start, and a
# deferred stage, made by whichever thread first uses it): _sessions patches RapidOCR's class meanwhile
_ENGINE_LOCK = threading.RLock()


@contextlib.contextmanager
def _sessions(arena: bool):
    """The ONNX sessions RapidOCR makes inside this block keep their work buffers between calls (ONNX Runtime's
    memory arena) when `arena`; RapidOCR itself turns the arena off. Off, each call mallocs and frees its buffers,
    which fragments the heap (the process grew ~100 MiB over 80 detections here) unless the caller hands the heap
    back after every call, and the trim plus faulting the pages in again cost ~1 CPU-s a minute of 720p (80
    detections: 0.83-1.01 system CPU-s, 0.04 with the arena, which holds ~25-40 MiB more)."""
    import rapidocr_onnxruntime.utils.infer_engine as infer

    if not arena:
        yield
        return
    real = infer.OrtInferSession.__dict__["_init_sess_opts"]

    def with_arena(config):
        options = real.__func__(config)
        options.enable_cpu_mem_arena = True
        return options

    infer.OrtInferSession._init_sess_opts = staticmethod(with_arena)
    try:
        yield
    finally:
        infer.OrtInferSession._init_sess_opts = real


class _OnFirstUse:
    """A RapidOCR stage whose ONNX session is made when it is first used. The engine's constructor loads the
    detector, the angle classifier and the recogniser; this analyzer never uses the classifier and reads words
    only where boxes were found, so deferring those two saved ~0.14 s of session loading per process here
    (detector 0.08 s, classifier 0.03 s, recogniser 0.11 s)."""

    def __init__(self, make, config, arena: bool):
        self._make, self._config, self._arena, self._real = make, config, arena, None

    def _stage(self):
        if self._real is None:
            with _ENGINE_LOCK, _sessions(self._arena):
                if self._real is None:
                    self._real = self._make(self._config)
        return self._real

    def __call__(self, *args, **kwargs):
        return self._stage()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stage(), name)


def engine(arena: bool = True):
    """The process's RapidOCR engine; `arena`: its sessions keep their work buffers between calls (see _sessions).
    Asked with the other setting, it is made again."""
    with _ENGINE_LOCK:
        return _engine(arena)


def _engine(arena: bool = True):
    global _ENGINE, _ENGINE_ARENA
    if _ENGINE is None or _ENGINE_ARENA != arena:
        try:
            import rapidocr_onnxruntime.main as ocr
        except ImportError:
            raise CodecAssistError("the text analyzer needs rapidocr-onnxruntime: "
                                   "pip install --no-deps rapidocr-onnxruntime==1.4.4") from None
        stages = {name: getattr(ocr, name, None) for name in ("TextClassifier", "TextRecognizer")}
        try:  # the constructor looks these names up in its module: defer the two stages it would load
            for name, make in stages.items():
                if make is not None:
                    setattr(ocr, name, lambda config, make=make: _OnFirstUse(make, config, arena))
            # limit_type "max" with a large limit: the detector only rounds our size to multiples of 32.
            # One onnxruntime thread: the analyzer already has a thread of its own beside the decode and the
            # other analyzers; RapidOCR's default (a pool per core, spinning while it waits) took 2.3x the CPU
            # for the same boxes and words on 2 cores (60 frames of bbb_trailer: 7.3 -> 3.1 CPU-s).
            with _sessions(arena):
                _ENGINE = ocr.RapidOCR(det_limit_type="max", det_limit_side_len=2048, print_verbose=False,
                                       intra_op_num_threads=1, inter_op_num_threads=1)
            _ENGINE_ARENA = arena
        finally:
            for name, make in stages.items():
                if make is not None:
                    setattr(ocr, name, make)
    return _ENGINE


def detect_text(bgr: np.ndarray, upscale: float = UPSCALE, arena: bool = True
                ) -> list[tuple[float, float, float, float]]:
    """Text-line boxes as normalised (x0, y0, x1, y1) (`arena`: engine()'s)."""
    if upscale != 1.0:
        bgr = cv2.resize(bgr, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    return _detect(bgr, arena)


def read_text(bgr: np.ndarray, upscale: float = UPSCALE, read_lines: int = 4, arena: bool = True
              ) -> list[tuple[tuple[float, float, float, float], str, float]]:
    """Text lines as (normalised box, words, recogniser confidence); the `read_lines` largest are read, the
    others keep the words "" and confidence NaN, unread (reading costs ~5-15 ms a line on 2 cores)."""
    if upscale != 1.0:
        bgr = cv2.resize(bgr, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    boxes = _detect(bgr, arena)
    h, w = bgr.shape[:2]
    order = sorted(range(len(boxes)), key=lambda i: -(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))
    chosen = order[:read_lines]
    crops = []
    for i in chosen:
        x0, y0, x1, y1 = boxes[i]
        crop = bgr[int(y0 * h): max(int(y0 * h) + 1, int(np.ceil(y1 * h))),
                   int(x0 * w): max(int(x0 * w) + 1, int(np.ceil(x1 * w)))]
        crops.append(crop)
    words = {i: ("", float("nan")) for i in range(len(boxes))}
    # One line per call: RapidOCR pads a batch to its widest line's aspect ratio, so a short line read beside a
    # long one costs the long one's width (the lines of 30 frames of lecture: 2.04 s in batches, 1.41 s one by one)
    # and reads differently ("deservemorebits" in the batch, "deservemore bits" alone)
    for i, crop in zip(chosen, crops):
        (text, score, *_rest), = engine(arena).text_rec([crop])[0]
        words[i] = (text.strip(), float(score))
    return [(b, *words[i]) for i, b in enumerate(boxes)]


def _detect(bgr: np.ndarray, arena: bool = True) -> list[tuple[float, float, float, float]]:
    quads, _ = engine(arena)(bgr, use_det=True, use_cls=False, use_rec=False)
    h, w = bgr.shape[:2]
    boxes = []
    for q in quads if quads is not None else []:
        q = np.asarray(q, np.float32)
        side_w = float(np.linalg.norm(q[1] - q[0]))
        side_h = float(np.linalg.norm(q[3] - q[0]))
        # Lit window grids on night buildings come out as tall boxes; text lines are wider than tall.
        # (This drops vertical CJK text, which would need the classifier anyway.)
        if side_w < side_h:
            continue
        x0, y0 = q.min(0)
        x1, y1 = q.max(0)
        boxes.append((max(0.0, x0 / w), max(0.0, y0 / h), min(1.0, x1 / w), min(1.0, y1 / h)))
    return boxes


def appeared(lines: list, earlier: list[list]) -> bool:
    """Whether a box of `lines` overlaps no box of any of the `earlier` detections at IoU >= ONSET_IOU."""
    seen = [b for detection in earlier for b, *_ in detection]
    return any(all(box_iou(b, s) < ONSET_IOU for s in seen) for b, *_ in lines)


def thumbnail(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


class RerunSchedule:
    """When an analyzer that holds its result (OCR boxes, ImageNet classes, CLIP embeddings) runs again:
    once every `interval_s`, and early when the picture jumped (a cut: thumbnails differ by > CHANGE_LEVEL)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.last_time = -1e9
        self._prev_thumb: np.ndarray | None = None

    def due(self, frame: ProxyFrame) -> bool:
        """Whether to run on `frame` (call once per analysis frame, in order); marks the run when it says yes."""
        thumb = thumbnail(frame.gray)
        changed = self._prev_thumb is None or float(np.abs(thumb - self._prev_thumb).mean()) > CHANGE_LEVEL
        self._prev_thumb = thumb
        if changed or frame.time - self.last_time >= self.interval_s - 1e-6:
            self.last_time = frame.time
            return True
        return False


class TextRegions(Analyzer):
    name: ClassVar[str] = "text"
    every_frame: ClassVar[bool] = False
    produces_map: ClassVar[bool] = True

    def __init__(self, interval_s: float = 1.0, upscale: float = UPSCALE, grow: float = 0.02, read_lines: int = 4,
                 min_confidence: float = 0.5, keep_buffers: bool = True, workers: int = 2, onset_hold_s: float = 1.5):
        self.interval_s = interval_s
        self.upscale = upscale
        self.read_lines = read_lines  # 0: detection only
        self.min_confidence = min_confidence  # recogniser confidence under which the words are not trusted
        self.grow = grow  # normalised margin around each line: the strokes' anti-aliasing is part of it
        # The OCR's work buffers stay allocated between calls (faster); False hands them back after every call,
        # for an analysis whose memory adds to an encoder's running beside it (analysis.segments)
        self.keep_buffers = keep_buffers
        # Frames read at once (threads): the OCR was the analysis's longest lane (60 s of 720p before an x265 encode:
        # 4 s after the decode had ended, on one core while the other idled). ONNX Runtime runs release the GIL, and
        # which frames are read never depends on what was read, so the due frames go to a small pool and their
        # results are used in order: the same boxes and words, sooner. One beside an encoder (analysis.segments).
        self.workers = max(1, int(workers))
        # How long text that appeared stays a moment: about the time a viewer takes to read a short line
        self.onset_hold_s = onset_hold_s

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        if importlib.util.find_spec("rapidocr_onnxruntime") is None:  # a missing package fails before decoding
            engine()  # raises the one-line error that says what to install
        # The engine (imports, ONNX session: ~0.4 s) loads in a thread while the decode and the other
        # analyzers start; the first frame this analyzer reads waits for it.
        self._loaded = in_background(lambda: engine(self.keep_buffers), "ocr-load")
        self.out = AnalyzerOutput(signal_info={"text_onset": TEXT_ONSET_SIGNAL})
        self.out.signals["text_onset"] = {}
        self._times: dict[int, float] = {}  # analysis frame -> its time, until its signal is known
        self._earlier: list[list] = []  # the last ONSET_MEMORY detections' kept lines
        self._onset_time: float | None = None  # when text last appeared
        self._detections = 0
        self._held: list[tuple[tuple[float, float, float, float], str, float]] = []
        self._held_from: int | None = None  # frame the held boxes were detected on
        self._schedule = RerunSchedule(self.interval_s)
        self._grid = np.zeros((ctx.grid_h, ctx.grid_w), np.float32)
        self._pending: list[tuple[int, Future]] = []  # (due frame, its reading)
        self._spans: dict[int, list[int]] = {}  # pending due frame -> the analysis frames its boxes cover
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ocr") if self.workers > 1 else None
        self.calls = 0

    def _read(self, bgr: np.ndarray) -> list[tuple[tuple[float, float, float, float], str, float]]:
        lines = read_text(bgr, self.upscale, self.read_lines, self.keep_buffers)
        if not self.keep_buffers:
            # ONNX Runtime (arena off) frees each call's buffers into this thread's glibc arena, which kept
            # them: the process grew by ~200 MiB within the decoder's trims (50 calls on bbb_trailer: peak PSS
            # 403 MiB, 198 MiB with this; the trim costs ~1.4 ms a call, faulting the pages in again more)
            media.release_memory()
        return lines

    def process(self, frame: ProxyFrame) -> None:
        if self._schedule.due(frame):
            self._loaded.result()  # raises what loading raised
            while len(self._pending) >= self.workers:
                self._use_oldest()
            if self._pool:  # read after this call returns: its own copy of the picture
                reading = self._pool.submit(self._read, frame.bgr.copy())
            else:
                reading = Future()
                reading.set_result(self._read(frame.bgr))
            self._pending.append((frame.index, reading))
        self._times[frame.index] = frame.time
        if self._pending:
            self._spans.setdefault(self._pending[-1][0], []).append(frame.index)
        else:
            self._hold(frame.index)

    def _hold(self, index: int) -> None:
        """The held boxes' map and the text_onset signal for analysis frame `index`."""
        self.out.maps[index] = self._grid
        t = self._times.pop(index)
        recent = self._onset_time is not None and t - self._onset_time < self.onset_hold_s - 1e-6
        self.out.signals["text_onset"][index] = 1.0 if self._held and recent else 0.0

    def _use_oldest(self) -> None:
        """The oldest pending reading becomes the held boxes: tokens for the boxes before it, maps for its span."""
        index, reading = self._pending.pop(0)
        lines = reading.result()
        self._flush(index)
        # a line the recogniser read and could not make out is not text (foliage, a grille): on the dev clips
        # every such line was a false box, every real line read at >= 0.5 (docs/BENCHMARKS.md, issue 15)
        self._held = [line for line in lines if not line[2] < self.min_confidence]
        self.calls += 1
        self._held_from = index
        # an appearance needs a detection to compare with, except at the video's first frame (a title card)
        baseline = self._detections == 0 and index > 0
        if self._held and not baseline and appeared(self._held, self._earlier):
            self._onset_time = self._times[index]
        self._detections += 1
        self._earlier = (self._earlier + [self._held])[-ONSET_MEMORY:]
        self._grid = np.zeros((self.ctx.grid_h, self.ctx.grid_w), np.float32)
        for (x0, y0, x1, y1), _, _ in self._held:
            g = self.grow
            box_to_grid(x0 - g, y0 - g, x1 + g, y1 + g, self.ctx.grid_h, self.ctx.grid_w, out=self._grid)
        # The held grid itself, not a copy: it is replaced (never modified) at the next detection, and a copy
        # per analysis frame grew memory with duration for nothing.
        for f in self._spans.pop(index, []):
            self._hold(f)

    def _flush(self, end: int) -> None:
        """Turn the held boxes into tokens spanning [detected frame, end)."""
        if self._held_from is None or end <= self._held_from:
            return
        for (x0, y0, x1, y1), words, confidence in self._held:
            self.out.tokens.append(RegionToken(
                frame_start=self._held_from, frame_end=end, box=Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0),
                # RapidOCR's public call drops the detector's box scores; every kept box passed its
                # box_thresh (0.5), so the box is reported as sure. The label is what it says, when legible.
                label=words if words and confidence >= self.min_confidence else "text", score=1.0,
                source=self.name))

    def abandon(self) -> None:
        super().abandon()
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)  # readings not started are dropped

    def finish(self) -> AnalyzerOutput:
        while self._pending:
            self._use_oldest()
        if self._pool is not None:
            self._pool.shutdown()
        if self._held_from is not None:
            self._flush(max(self.ctx.video.frame_count, self._held_from + 1))
        self._held, self._held_from = [], None
        if not any(self.out.signals["text_onset"].values()):
            # no text appeared: no time signal (one of zeros would make the fusion scale every frame by its moment)
            del self.out.signals["text_onset"], self.out.signal_info["text_onset"]
        return self.out
