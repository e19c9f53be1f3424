"""A second look at each face box: MTCNN's output network (ONet, the last stage of Zhang et al.'s 2016 cascade;
weights inside facenet-pytorch 2.6.0, MIT; codec_assist.models.face_check_session) scores a 48x48 crop of the
box as face or not.

BlazeFace also fires on things with face-like parts: a LEGO figure's printed face, a rendered title letter, at
scores (0.42-0.62) where small true faces sit too, so no score threshold separates them. On every split's GT
frames (docs/BENCHMARKS.md, issue 14), ONet on the 320-px proxy crop gave those false boxes 0.00-0.20 and the
corpus's true faces 0.9-1.0, except three of dev's 15-18 px cyclists (0.02-0.38): a box under MTCNN's own
smallest face (MIN_SIDE_PX) on the proxy is cropped from a picture twice the proxy's width instead. The faces
analyzer judges a tracked face by its best-scored detection (analyzers/faces.py): a face missed on one frame is
still kept by the others, a face-like object found on every frame is dropped on every frame.
"""
from __future__ import annotations

import cv2
import numpy as np

from codec_assist import models

from .track import Box4

# MTCNN's own threshold for its last stage (facenet-pytorch's default [0.6, 0.7, 0.7]): not tuned here
MIN_FACE = 0.7
# MTCNN's own smallest face (facenet-pytorch's min_face_size=20): ONet never sees a smaller crop there, and on the
# corpus' smallest true faces (15-18 px on the 320-px proxy) it was unsure (0.02-0.38). A smaller box is judged on
# the analysis frame's picture at twice the proxy's width (ProxyFrame.detail); one that is small there too is not.
MIN_SIDE_PX = 20


def crops(bgr: np.ndarray, boxes: list[Box4]) -> np.ndarray:
    """(n, 3, 48, 48) float32: each box's centred square (side = its longer side; what falls outside the frame is
    black, as MTCNN pads), area-resized, RGB, scaled as ONet was trained."""
    h, w = bgr.shape[:2]
    size = models.FACE_CHECK_SIZE
    out = np.zeros((len(boxes), 3, size, size), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
        side = max(2, int(round(max((x1 - x0) * w, (y1 - y0) * h))))
        ax, ay = int(round(cx - side / 2)), int(round(cy - side / 2))
        square = np.zeros((side, side, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(0, ax), max(0, ay), min(w, ax + side), min(h, ay + side)
        if sx1 > sx0 and sy1 > sy0:
            square[sy0 - ay:sy1 - ay, sx0 - ax:sx1 - ax] = bgr[sy0:sy1, sx0:sx1]
        rgb = cv2.cvtColor(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        out[i] = ((rgb.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)
    return out


def _side(box: Box4, w: int, h: int) -> float:
    return max((box[2] - box[0]) * w, (box[3] - box[1]) * h)


def face_probability(bgr: np.ndarray, boxes: list[Box4], detail: np.ndarray | None = None) -> np.ndarray:
    """P(face) for each normalised (x0, y0, x1, y1) box of the BGR picture. A box under MIN_SIDE_PX there is
    cropped from `detail` (the same picture, larger) instead; NaN where it is too small in both to judge."""
    x, judged = [], []
    for i, box in enumerate(boxes):
        for picture in (bgr, detail):
            if picture is not None and _side(box, picture.shape[1], picture.shape[0]) >= MIN_SIDE_PX:
                x.append(crops(picture, [box]))
                judged.append(i)
                break
    p = np.full(len(boxes), np.nan, np.float32)
    if judged:
        p[judged] = models.face_check_session().run(None, {"crops": np.concatenate(x)})[0]
    return p


def load() -> None:
    """Load the model now (ModelUnavailable, one line saying how to install, where it cannot be)."""
    models.face_check_session()
