"""Scene statistics: brightness, colour, detail and motion of the proxy, as signals and as region tokens.

The signals are what codec_assist/tags/scene_facts.py turns into numeric facts for topic conditions (issue 14):
also camera motion (phase correlation of 128x72 thumbnails), the still share of the border ring (a static
camera), flat fills and sensor grain (drawn/generated pictures); statistics ignore letterbox/pillarbox bars.
The phrase tokens below are for the fusion's text queries; tags no longer match them as words.

Cheap low-level cues that no model here gives directly: whether a scene is dark (night), its colours vivid
and many-hued (animation often is) or muted, its detail dense, its camera static or moving. Each analysis
frame is described by a few phrases ("dark night scene in low light", "still picture with little motion");
runs of consecutive analysis frames with the same phrase become one whole-frame token whose score is the
mean strength, so the tagger can match them against topic descriptions like any other words.

The thresholds were read off the four samples and are deliberately coarse (see tests/test_tags.py):
  dark fraction (luma < 60): cityCC0 0.34 (0.6 in shot 2), bikes 0.25 (0.4 in its shaded shots), bbb 0.17,
      jwpIntro 0.09; blue fraction (hue 180-260 deg, S > 60): cityCC0 0.67, bigbuckbunny 0.16, others < 0.02
  saturated fraction (S > 120) / hue bins over 80 % of saturated pixels: bigbuckbunny 0.47 / 3.9,
      cityCC0 0.48 / 2.6 (a blue cast, one hue), jwpIntro 0.25 / 3.0, bikes 0.01 / 2.1
  motion (median mean |diff| of 64x36 thumbnails per frame): bikes 3.3, cityCC0 2.0, bbb 1.0, jwpIntro 0.2
  Canny edge density: cityCC0 0.21, bigbuckbunny 0.15, jwpIntro 0.10, bikes 0.09
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import RegionToken

from .base import AnalysisContext, Analyzer, AnalyzerOutput
from .faces import next_frames

THUMB = (64, 36)  # motion is measured on a thumbnail: cheap enough for every frame
CAM_THUMB = (128, 72)  # camera motion: global shift by phase correlation, on a larger thumbnail for sub-pixel precision
STILL_LEVEL = 3.0  # |diff| (grey levels) under which a thumbnail pixel did not change between two frames
BORDER_LEVEL = 2.0  # the same on the blurred 128x72 thumbnail's border ring (outer 20 % each side)
CUT_LEVEL = 35.0  # mean |diff| of the thumbnail above which a frame pair is a cut, not motion (as saliency.py)
MIN_STRENGTH = 0.3  # a phrase weaker than this is not said


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at lo, 1 at hi, linear between (hi < lo gives a falling ramp)."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def active_area(gray: np.ndarray, level: float = 20.0) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the picture inside black letterbox/pillarbox bars: edge rows/columns whose mean
    and maximum luma stay dark are padding, not a dark scene (a letterboxed day street read as 'dark')."""
    rows_dark = (gray.mean(axis=1) < level) & (gray.max(axis=1) < 2 * level)
    cols_dark = (gray.mean(axis=0) < level) & (gray.max(axis=0) < 2 * level)

    def span(dark: np.ndarray) -> tuple[int, int]:
        n = len(dark)
        lo = int(np.argmin(dark)) if not dark.all() else 0
        hi = n - int(np.argmin(dark[::-1])) if not dark.all() else n
        if hi - lo < n // 3:  # (nearly) all dark: a black frame, not bars
            return 0, n
        return lo, hi

    y0, y1 = span(rows_dark)
    x0, x1 = span(cols_dark)
    return y0, y1, x0, x1


def palette(bgr: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(hue spread, colourfulness, hue, saturation) of a BGR picture.

    hue spread: how many 20-degree hue bins it takes to cover 80 % of the coloured pixels (many-hued vs one cast);
    colourfulness: Hasler & Suesstrunk's."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hue, sat = hsv[..., 0], hsv[..., 1]
    hues = hue[sat > 80] // 10  # OpenCV hue is 0..179: 18 bins of 20 degrees
    hist = np.bincount(hues, minlength=18) / max(1, hues.size)
    spread = float((np.sort(hist)[::-1].cumsum() < 0.8).sum() + 1) if hues.size else 0.0
    b, g, r = (bgr[..., k].astype(np.float32) for k in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return spread, float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())), hue, sat


def grey_world(bgr: np.ndarray) -> np.ndarray:
    """The picture with each channel scaled so that the three channel means are equal (grey-world white balance):
    a colour cast of the light or the camera (a blue webcam, a green screen) no longer counts as vivid colour."""
    f = bgr.astype(np.float32)
    means = f.reshape(-1, 3).mean(axis=0)
    return np.clip(f * (means.mean() / np.maximum(means, 1.0)), 0, 255).astype(np.uint8)


def frame_stats(bgr: np.ndarray, gray: np.ndarray) -> dict[str, float]:
    y0, y1, x0, x1 = active_area(gray)
    bgr, gray = bgr[y0:y1, x0:x1], gray[y0:y1, x0:x1]
    spread, colourfulness, hue, sat = palette(bgr)
    spread_balanced, colourfulness_balanced, _, _ = palette(grey_world(bgr))
    return {
        "luma": float(gray.mean()),
        "dark_fraction": float((gray < 60).mean()),
        "saturation": float(sat.mean()),
        "saturated_fraction": float((sat > 120).mean()),
        "hue_spread": spread,
        "blue_fraction": float(((hue > 90) & (hue < 130) & (sat > 60)).mean()),
        "colourfulness": colourfulness,
        # the same two after grey-world balance: what animation-likeness reads (scene_facts.animation_likeness)
        "hue_spread_balanced": spread_balanced,
        "colourfulness_balanced": colourfulness_balanced,
        "edge_density": float(cv2.Canny(gray, 100, 200).mean() / 255.0),
        **cartoon_stats(gray),
    }


def cartoon_stats(gray: np.ndarray) -> dict[str, float]:
    """Edge and grain statistics that tell drawn or rendered pictures from camera footage, measured on the
    picture averaged over 2x2 pixels: an ordered dither (1-4 px patterns that generated graphics use for smooth
    ramps) averages out there, sensor grain does not (dev: the title card with a 4x4 ordered dither of +-3
    levels measures 0.00 flat / 0.84 grain at full size, 0.95 / 0.04 averaged; the least grainy camera footage,
    cap12's webcam, 0.64 / 0.36 averaged).

    flat_fraction: share of 4x4 blocks of mid-grey luma (30..225, so black night sky and blown-out white do
    not count) whose luma varies by less than 1.5 grey levels: flat fills of cartoons and renders; camera
    footage carries sensor noise and texture. noise: median |luma - its 3x3 median| over pixels away from
    edges: grain of a camera sensor (compression removes some of it, rendering has none).
    """
    h2, w2 = gray.shape[0] // 2 * 2, gray.shape[1] // 2 * 2
    if h2 >= 8 and w2 >= 8:
        gray = cv2.resize(gray[:h2, :w2], (w2 // 2, h2 // 2), interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    bh, bw = h // 4 * 4, w // 4 * 4
    g = gray[:bh, :bw].astype(np.float32)
    blocks = g.reshape(bh // 4, 4, bw // 4, 4).transpose(0, 2, 1, 3).reshape(bh // 4, bw // 4, 16)
    mean, std = blocks.mean(axis=2), blocks.std(axis=2)
    mid = (mean > 30) & (mean < 225)
    flat = float(((std < 1.5) & mid).sum() / max(1, mid.sum()))
    edges = cv2.dilate(cv2.Canny(gray, 50, 150), np.ones((3, 3), np.uint8)) > 0
    resid = np.abs(gray.astype(np.int16) - cv2.medianBlur(gray, 3).astype(np.int16))[~edges]
    noise = float(np.mean(resid)) if resid.size else 0.0
    return {"flat_fraction": flat, "noise": noise}


def describe(s: dict[str, float]) -> dict[str, float]:
    """Phrase -> strength in [0, 1] for one analysis frame's statistics (and its motion)."""
    phrases = {
        "dark scene in low light": min(_ramp(s["dark_fraction"], 0.3, 0.5), _ramp(s["luma"], 110, 80)),
        "bright well-lit scene": _ramp(s["luma"], 120, 160) * _ramp(s["dark_fraction"], 0.15, 0.05),
        # dark alone is not night (bikes has dark shade): a saturated blue cast is the dusk/night light
        "deep blue tint of dusk or night light": min(_ramp(s["blue_fraction"], 0.3, 0.6),
                                                    _ramp(s["saturation"], 70, 110)),
        "vivid saturated many-coloured palette, cartoon-like": min(_ramp(s["saturated_fraction"], 0.3, 0.45),
                                                                   _ramp(s["hue_spread"], 3.0, 4.0)),
        "muted grey colours": _ramp(s["saturation"], 50, 25),
        "dense fine detail with many edges and lines": _ramp(s["edge_density"], 0.15, 0.22),
    }
    m = s.get("motion")
    if m is not None and np.isfinite(m):
        phrases["fast motion in the picture"] = _ramp(m, 1.5, 4.0)
        phrases["still picture with little motion"] = _ramp(m, 0.9, 0.3)
    return phrases


class SceneStats(Analyzer):
    name: ClassVar[str] = "scene_stats"
    every_frame: ClassVar[bool] = True  # motion between consecutive frames; the colour stats only on samples
    produces_map: ClassVar[bool] = False

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        self._next = next_frames(ctx)
        self._prev: np.ndarray | None = None
        self._diffs: list[float] = []  # frame-pair motion since the last analysis frame
        self._cam_prev: np.ndarray | None = None
        self._shifts: list[tuple[float, float]] = []  # frame-pair global shift (dx, dy), fractions of the width
        self._still: list[float] = []  # frame-pair share of unchanged thumbnail pixels
        self._window = cv2.createHanningWindow(CAM_THUMB, cv2.CV_32F)
        self._crop: tuple[int, int, int, int] | None = None  # the picture inside letterbox bars
        self._border: list[float] = []  # frame-pair share of the border ring unchanged
        w, h = CAM_THUMB
        self._ring = np.ones((h, w), bool)
        self._ring[h // 5:h - h // 5, w // 5:w - w // 5] = False
        self._stats: dict[int, dict[str, float]] = {}

    def process(self, frame: ProxyFrame) -> None:
        if frame.index in self.ctx.analysis_frames or self._crop is None:
            crop = active_area(frame.gray)
            if crop != self._crop:  # bars changed (a cut between a letterboxed and a full-frame shot)
                self._prev, self._crop = None, crop
        y0, y1, x0, x1 = self._crop
        gray = frame.gray[y0:y1, x0:x1]
        thumb = cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        cam = cv2.GaussianBlur(cv2.resize(gray, CAM_THUMB, interpolation=cv2.INTER_AREA).astype(np.float32), (3, 3), 0)
        if self._prev is not None:
            diff = np.abs(thumb - self._prev)
            level = float(diff.mean())
            if level < CUT_LEVEL:
                self._diffs.append(level)
                self._still.append(float((diff < STILL_LEVEL).mean()))
                # the border ring: subjects sit in the middle, so an unchanged border means the camera stood still
                self._border.append(float((np.abs(cam - self._cam_prev)[self._ring] < BORDER_LEVEL).mean()))
                # copies: OpenCV applies the window to its inputs in place
                (dx, dy), _response = cv2.phaseCorrelate(self._cam_prev.copy(), cam.copy(), self._window)
                self._shifts.append((dx / CAM_THUMB[0], dy / CAM_THUMB[0]))
        self._prev, self._cam_prev = thumb, cam
        if frame.index in self.ctx.analysis_frames:
            s = frame_stats(frame.bgr, frame.gray)
            s["motion"] = float(np.median(self._diffs)) if self._diffs else float("nan")
            # camera motion in % of the frame width per frame; still: share of the picture that did not change
            shifts = np.asarray(self._shifts, np.float64).reshape(-1, 2)
            s["camera_motion"] = 100.0 * float(np.median(np.hypot(*shifts.T))) if len(shifts) else float("nan")
            s["still_fraction"] = float(np.median(self._still)) if self._still else float("nan")
            s["border_still"] = float(np.median(self._border)) if self._border else float("nan")
            self._diffs, self._shifts, self._still, self._border = [], [], [], []
            self._stats[frame.index] = s

    def finish(self) -> AnalyzerOutput:
        out = AnalyzerOutput()
        frames = sorted(self._stats)
        if not frames:
            return out
        for key in self._stats[frames[0]]:
            out.signals[key] = {f: self._stats[f][key] for f in frames}
        # The first analysis frame has no motion measured yet: borrow the next one's.
        if len(frames) > 1:
            for key in ("motion", "camera_motion", "still_fraction", "border_still"):
                if not np.isfinite(self._stats[frames[0]][key]):
                    self._stats[frames[0]][key] = self._stats[frames[1]][key]
        open_runs: dict[str, tuple[int, list[float]]] = {}  # phrase -> (first frame, strengths)
        last_end = frames[0]
        for f in frames:
            said = {p: v for p, v in describe(self._stats[f]).items() if v >= MIN_STRENGTH}
            for p in [p for p in open_runs if p not in said]:
                start, vals = open_runs.pop(p)
                out.tokens.append(self._token(p, start, f, vals))
            for p, v in said.items():
                open_runs.setdefault(p, (f, []))[1].append(v)
            last_end = self._next.get(f, f + 1)
        for p, (start, vals) in open_runs.items():
            out.tokens.append(self._token(p, start, last_end, vals))
        return out

    def _token(self, phrase: str, start: int, end: int, strengths: list[float]) -> RegionToken:
        return RegionToken(frame_start=start, frame_end=max(end, start + 1), box=None, label=phrase,
                           score=float(np.mean(strengths)), source=self.name)
