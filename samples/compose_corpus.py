#!/usr/bin/env python3
"""Composite clips of the perception corpus, built locally from fetched real clips (nothing is committed).

interview.mp4: a two-person video call, 640x288 24 fps, 4 s (96 frames), no audio: franck.mp4 (left half) and
carphone.mp4 (right half, resampled from 29.97 to 24 fps by nearest frame), each scaled to fit 320x288 and
centred on black.
lecture.mp4: 640x360 25 fps, 10 s (250 frames), no audio: three text slides (white pages, black text drawn with
OpenCV's Hershey font) changing at frames 90 and 180, with cap13.mp4 as a 160x120 picture-in-picture at the
bottom right. SLIDES gives every line with its position, so the text boxes in samples/corpus.json can be
re-derived (they were also checked by eye on rendered frames).
Both are encoded with libx264 CRF 18, preset medium, one thread (deterministic).
Usage: python samples/fetch.py --corpus   (fetches the sources and calls these builders)
"""
from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"


def _frames(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate)
        return [f.to_ndarray(format="rgb24") for f in c.decode(vs)], fps


def _fit(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    s = min(w / rgb.shape[1], h / rgb.shape[0])
    sw, sh = int(round(rgb.shape[1] * s / 2)) * 2, int(round(rgb.shape[0] * s / 2)) * 2
    pic = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - sh) // 2, (w - sw) // 2
    out[y:y + sh, x:x + sw] = pic
    return out


def _encode(frames: list[np.ndarray], out: Path, fps: int) -> Path:
    tmp = out.with_name(out.name + ".part.mp4")
    with av.open(str(tmp), "w", format="mp4") as dst:
        vs = dst.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "18", "preset": "medium", "threads": "1"}
        for k, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            f.pts = k
            for p in vs.encode(f):
                dst.mux(p)
        for p in vs.encode(None):
            dst.mux(p)
    os.replace(tmp, out)
    return out


INTERVIEW_FPS, INTERVIEW_FRAMES = 24, 96


def interview(media: Path = MEDIA) -> Path:
    out = media / "interview.mp4"
    if out.exists():
        return out
    left, lfps = _frames(media / "franck.mp4")
    right, rfps = _frames(media / "carphone.mp4")
    frames = []
    for k in range(INTERVIEW_FRAMES):
        t = k / INTERVIEW_FPS
        a = left[min(len(left) - 1, int(round(t * lfps)))]
        b = right[min(len(right) - 1, int(round(t * rfps)))]
        frames.append(np.hstack([_fit(a, 320, 288), _fit(b, 320, 288)]))
    return _encode(frames, out, INTERVIEW_FPS)


LECTURE_SIZE, LECTURE_FPS, LECTURE_FRAMES = (640, 360), 25, 250
PIP = (464, 228, 160, 120)  # x, y, w, h of the speaker inset
# (first frame, [(text, x, y_baseline, scale, thickness)])
SLIDES = [
    (0, [("Video coding basics", 40, 70, 1.4, 3), ("1. Frames, blocks and motion", 50, 140, 0.8, 2),
         ("2. Transform and quantisation", 50, 185, 0.8, 2), ("3. Rate control", 50, 230, 0.8, 2)]),
    (90, [("Quantisation", 40, 70, 1.4, 3), ("QP +6 halves the bitrate", 50, 140, 0.8, 2),
          ("Faces deserve more bits", 50, 185, 0.8, 2)]),
    (180, [("Questions?", 40, 70, 1.4, 3), ("Thank you for watching", 50, 140, 0.8, 2)]),
]


def slide_text_boxes(frame: int) -> list[list[int]]:
    """Pixel boxes [x, y, w, h] of every text line on the slide shown at `frame` (2 px margin)."""
    lines = [s for start, s in SLIDES if start <= frame][-1]
    boxes = []
    for text, x, y, scale, th in lines:
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
        boxes.append([x - 2, y - h - 2, w + 4, h + base + 4])
    return boxes


def lecture(media: Path = MEDIA) -> Path:
    out = media / "lecture.mp4"
    if out.exists():
        return out
    speaker, sfps = _frames(media / "cap13.mp4")
    w, h = LECTURE_SIZE
    frames = []
    for k in range(LECTURE_FRAMES):
        page = np.full((h, w, 3), 255, np.uint8)
        for text, x, y, scale, th in [s for start, s in SLIDES if start <= k][-1]:
            cv2.putText(page, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), th, cv2.LINE_AA)
        px, py, pw, ph = PIP
        s = speaker[min(len(speaker) - 1, int(round(k / LECTURE_FPS * sfps)))]
        page[py:py + ph, px:px + pw] = cv2.resize(s, (pw, ph), interpolation=cv2.INTER_AREA)
        frames.append(page)
    return _encode(frames, out, LECTURE_FPS)


COMPOSED = {"interview.mp4": interview, "lecture.mp4": lecture}
