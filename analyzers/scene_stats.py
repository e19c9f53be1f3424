"""Scene statistics put into words: brightness, colour, detail and motion of the proxy, as region tokens.

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
CUT_LEVEL = 35.0  # mean |diff| of the thumbnail above which a frame pair is a cut, not motion (as saliency.py)
MIN_STRENGTH = 0.3  # a phrase weaker than this is not said


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at lo, 1 at hi, linear between (hi < lo gives a falling ramp)."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def frame_stats(bgr: np.ndarray, gray: np.ndarray) -> dict[str, float]:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hue, sat = hsv[..., 0], hsv[..., 1]
    saturated = sat > 120
    hues = hue[sat > 80] // 10  # OpenCV hue is 0..179: 18 bins of 20 degrees
    hist = np.bincount(hues, minlength=18) / max(1, hues.size)
    b, g, r = (bgr[..., k].astype(np.float32) for k in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return {
        "luma": float(gray.mean()),
        "dark_fraction": float((gray < 60).mean()),
        "saturation": float(sat.mean()),
        "saturated_fraction": float(saturated.mean()),
        # how many 20-degree hue bins it takes to cover 80 % of the coloured pixels: many-hued vs one cast
        "hue_spread": float((np.sort(hist)[::-1].cumsum() < 0.8).sum() + 1) if hues.size else 0.0,
        "blue_fraction": float(((hue > 90) & (hue < 130) & (sat > 60)).mean()),
        # Hasler & Suesstrunk's colourfulness
        "colourfulness": float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())),
        "edge_density": float(cv2.Canny(gray, 100, 200).mean() / 255.0),
    }


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
        self._stats: dict[int, dict[str, float]] = {}

    def process(self, frame: ProxyFrame) -> None:
        thumb = cv2.resize(frame.gray, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._prev is not None:
            level = float(np.abs(thumb - self._prev).mean())
            if level < CUT_LEVEL:
                self._diffs.append(level)
        self._prev = thumb
        if frame.index in self.ctx.analysis_frames:
            s = frame_stats(frame.bgr, frame.gray)
            s["motion"] = float(np.median(self._diffs)) if self._diffs else float("nan")
            self._diffs = []
            self._stats[frame.index] = s

    def finish(self) -> AnalyzerOutput:
        out = AnalyzerOutput()
        frames = sorted(self._stats)
        if not frames:
            return out
        for key in self._stats[frames[0]]:
            out.signals[key] = {f: self._stats[f][key] for f in frames}
        # The first analysis frame has no motion measured yet: borrow the next one's.
        if len(frames) > 1 and not np.isfinite(self._stats[frames[0]]["motion"]):
            self._stats[frames[0]]["motion"] = self._stats[frames[1]]["motion"]
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
