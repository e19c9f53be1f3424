"""Quality and rate metrics — the one place codec-assist measures video. numpy + OpenCV only.

Definitions (so every report can be reproduced):

- **MSE / PSNR** on 8-bit planes: ``mse = mean((a - b)^2)`` in float64; ``psnr = 10 log10(peak^2 / mse)``
  with ``peak = 255``. Identical inputs (mse = 0) give ``PSNR_CAP`` = 100 dB, and no value exceeds it.
- **psnr_y** of a video = arithmetic mean over the compared frames of the per-frame Y PSNR (each capped).
  This is x264's "PSNR Mean" / the usual per-frame average of codec test conditions. Note it is *not*
  FFmpeg's ``psnr`` filter "average", which is the PSNR of the mean MSE (x264's "Global"); that one is
  never higher than ours.
- **SSIM** = Wang, Bovik, Sheikh & Simoncelli (2004) on the Y plane: 11x11 Gaussian window (sigma 1.5),
  K1 = 0.01, K2 = 0.03, L = 255, population (not sample) covariances, mean of the SSIM map over the
  "valid" region (a 5-pixel border is dropped, as in the authors' MATLAB ``filter2(..., 'valid')`` and
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255)``, which it matches to ~1e-5). Computed in float32 with ``cv2.GaussianBlur`` (four
  blurs, of x+y, x-y and their squares). No downsampling. (FFmpeg's ``ssim`` filter uses x264's unweighted
  8x8 windows on a 4-pixel grid instead, so its values differ slightly.)
  **ssim_y** = mean over the compared frames.
- **roi_psnr_y[label]** = mean, over the compared frames whose time lies in the box's window
  ``t0 <= t < t1`` (seconds from the reference's first frame; no window = every frame), of the PSNR of the
  pixels inside the box (clipped to the frame). A box with no compared frame in its window is left out.
- **weighted_psnr_y** = PSNR of the importance-weighted MSE pooled over all frames that have weights:
  ``sum_f sum_p w * d^2 / sum_f sum_p w`` (frames for which ``weights(i)`` returns None are skipped). A
  coarse weight grid is stretched to the frame with ``cv2.resize(..., INTER_LINEAR)``. Only comparable
  between encodes scored with the same weights. ``frame_importance_weights`` builds the weights the shot
  allocation is scored with: each frame's importance grid rescaled so that its mean is the frame's scalar
  importance (where in the frame x how much the frame matters).
- With ``every = k`` only frames 0, k, 2k, ... are scored (all frames are still decoded).
- **bitrate_kbps** of a file = total bytes of its video packets * 8 / the video's duration taken from the
  packet timestamps (last pts + last packet duration - first pts), / 1000. Header fields are not used.
- **BD-rate** (Bjøntegaard): log10(rate) as a function of quality for each curve, integrated over the
  overlapping quality interval; result = (10^(mean difference) - 1) * 100 % of B versus A (negative: B
  needs fewer bits for the same quality). Both curves are fitted with a least-squares cubic when both have
  >= 4 points, otherwise (3 points) with piecewise cubic Hermite interpolation (PCHIP, Fritsch-Carlson with
  the same end conditions as SciPy's ``PchipInterpolator``, implemented here). Integrals are exact.
  **BD-PSNR** is the same with the axes swapped: mean quality difference of B minus A at equal log-rate.
"""
from __future__ import annotations

import json
import logging

import math
import re
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence

import av
import cv2
import numpy as np

from codec_assist.errors import CodecAssistError, InputError
from codec_assist.media.decode import _video_stream, iter_frames, luma, open_input, probe
from codec_assist.media.safeio import work_dir
from codec_assist.schemas import Quality, RoiBox

PSNR_CAP = 100.0  # dB, returned for identical inputs
_T_EPS = 1e-6  # seconds: a frame at exactly t1 (up to float error) is outside [t0, t1)

_SSIM_K1, _SSIM_K2, _SSIM_L = 0.01, 0.03, 255.0
_SSIM_C1 = (_SSIM_K1 * _SSIM_L) ** 2
_SSIM_C2 = (_SSIM_K2 * _SSIM_L) ** 2
_SSIM_WIN = 11
_SSIM_SIGMA = 1.5
_SSIM_PAD = (_SSIM_WIN - 1) // 2


# ------------------------------------------------------------------------------------- per-image metrics
def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("empty image")


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two equally shaped arrays (computed in float64)."""
    a, b = np.asarray(a), np.asarray(b)
    _check_pair(a, b)
    if a.dtype == np.uint8 and b.dtype == np.uint8 and a.ndim == 2:
        # Exact integer squares summed in double (exact below 2^53), ~3x faster than numpy. (cv2.norm's
        # NORM_L2SQR is not used: it is off in the last bits, e.g. 1535.9999999999998 for 1536 unit errors.)
        d = cv2.absdiff(a, b)
        return cv2.sumElems(cv2.multiply(d, d, dtype=cv2.CV_32S))[0] / a.size
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr_from_mse(m: float, peak: float = 255.0) -> float:
    """PSNR in dB for a mean squared error; 0 (or anything giving more than PSNR_CAP) -> PSNR_CAP."""
    if m <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / m))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255) -> float:
    """PSNR in dB of two uint8 images; identical images give PSNR_CAP (100 dB)."""
    return psnr_from_mse(mse(a, b), peak)


class SsimWorkspace:
    """Reusable float32 buffers for SSIM of one plane size (fresh 4 MB arrays per frame cost more than the math).

    Not thread-safe: use one per thread. ``ws(a, b)`` returns the mean SSIM like :func:`ssim`.
    """

    def __init__(self, shape: tuple[int, int]):
        if len(shape) != 2 or min(shape) < _SSIM_WIN:
            raise ValueError(f"ssim needs 2-D planes of at least {_SSIM_WIN}x{_SSIM_WIN}, got {tuple(shape)}")
        self.shape = tuple(shape)
        self._buf = [np.empty(shape, np.float32) for _ in range(6)]

    def map(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The SSIM map over the valid region (a view into a reused buffer: copy it to keep it)."""
        if a.shape != self.shape or b.shape != self.shape:
            raise ValueError(f"ssim: planes {a.shape} / {b.shape} do not match the workspace {self.shape}")
        # Four blurs instead of five, on u = x + y and v = x - y (exact in float32):
        #   mu_x mu_y = (mu_u^2 - mu_v^2) / 4        mu_x^2 + mu_y^2 = (mu_u^2 + mu_v^2) / 2
        #   E[xy]     = (E[u^2] - E[v^2]) / 4        E[x^2] + E[y^2] = (E[u^2] + E[v^2]) / 2
        # Only the valid region is kept, so the blur's border mode never reaches the result.
        u, v, mu, mv, t, s = self._buf
        k, sg, c1, c2 = (_SSIM_WIN, _SSIM_WIN), _SSIM_SIGMA, _SSIM_C1, _SSIM_C2
        cv2.add(a, b, dst=u, dtype=cv2.CV_32F)
        cv2.subtract(a, b, dst=v, dtype=cv2.CV_32F)
        cv2.GaussianBlur(u, k, sg, dst=mu)
        cv2.GaussianBlur(v, k, sg, dst=mv)
        cv2.multiply(u, u, dst=t)
        cv2.GaussianBlur(t, k, sg, dst=u)  # u = E[u^2]
        cv2.multiply(v, v, dst=t)
        cv2.GaussianBlur(t, k, sg, dst=v)  # v = E[v^2]
        cv2.multiply(mu, mu, dst=mu)
        cv2.multiply(mv, mv, dst=mv)
        cv2.addWeighted(mu, 0.5, mv, -0.5, c1, dst=t)  # 2 mu_x mu_y + C1
        cv2.addWeighted(mu, 0.5, mv, 0.5, c1, dst=s)  # mu_x^2 + mu_y^2 + C1
        cv2.addWeighted(u, 0.5, v, -0.5, c1 + c2, dst=mu)
        cv2.subtract(mu, t, dst=mu)  # 2 cov_xy + C2
        cv2.addWeighted(u, 0.5, v, 0.5, c1 + c2, dst=mv)
        cv2.subtract(mv, s, dst=mv)  # var_x + var_y + C2
        cv2.multiply(mu, t, dst=mu)  # numerator
        cv2.multiply(mv, s, dst=mv)  # denominator
        cv2.divide(mu, mv, dst=mu)
        p = _SSIM_PAD
        return mu[p:-p, p:-p]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(cv2.mean(self.map(a, b))[0])


def _as_planes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    _check_pair(a, b)
    if a.ndim != 2:
        raise ValueError(f"ssim needs 2-D planes, got shape {a.shape}")
    return a, b


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map (float32) over the valid region (a 5-pixel border dropped) of two 2-D uint8 planes."""
    a, b = _as_planes(a, b)
    return SsimWorkspace(a.shape).map(a, b).copy()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian 11x11 sigma 1.5, L=255) of two 2-D uint8 planes."""
    a, b = _as_planes(a, b)
    return SsimWorkspace(a.shape)(a, b)


# ------------------------------------------------------------------------------------------- ROI syntax
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_ROI_RE = re.compile(rf"^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:@\s*{_NUM}\s*-\s*{_NUM}\s*)?$")


def parse_roi(text: str) -> RoiBox:
    """Parse the CLI syntax ``x,y,w,h`` or ``x,y,w,h@t0-t1`` (pixels; seconds) into a RoiBox."""
    m = _ROI_RE.match(text or "")
    if not m:
        raise CodecAssistError(f"bad region {text!r}: expected x,y,w,h or x,y,w,h@t0-t1 (pixels, seconds)")
    x, y, w, h = (int(g) for g in m.groups()[:4])
    if w <= 0 or h <= 0:
        raise CodecAssistError(f"bad region {text!r}: width and height must be positive")
    t0 = t1 = None
    if m.group(5) is not None:
        t0, t1 = float(m.group(5)), float(m.group(6))
        if t1 <= t0:
            raise CodecAssistError(f"bad region {text!r}: the time span must end after it starts")
    return RoiBox(x=x, y=y, w=w, h=h, t0=t0, t1=t1)


# ---------------------------------------------------------------------------------------------- bitrate
def video_bitrate_kbps(path: str | Path) -> float:
    """Bit rate of the first video stream in kb/s: video packet bytes * 8 / packet-timestamp duration."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        tb = vs.time_base
        total = n = 0
        first = last = None
        last_dur = 0
        try:
            for pkt in c.demux(vs):
                if not pkt.size:
                    continue  # the flush packet
                total += pkt.size
                n += 1
                ts = pkt.pts if pkt.pts is not None else pkt.dts
                if ts is None:
                    continue
                first = ts if first is None else min(first, ts)
                if last is None or ts >= last:
                    last, last_dur = ts, pkt.duration or 0
        except av.error.FFmpegError as e:
            raise InputError(f"{p}: cannot read the video packets ({getattr(e, 'strerror', None) or e})") from None
        if n == 0:
            raise InputError(f"{p}: video stream has no packets")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        frame_s = 1.0 / float(rate) if rate else 0.0
        duration = 0.0
        if first is not None and tb:
            duration = float((last - first) * tb) + (float(last_dur * tb) if last_dur else frame_s)
        if duration <= 0:
            duration = n * frame_s
        if duration <= 0:
            raise InputError(f"{p}: cannot determine the video duration for its bit rate")
        return total * 8 / duration / 1000.0


# ----------------------------------------------------------------------------------------- video compare
def _weight_map(wm, shape: tuple[int, int], index: int) -> np.ndarray:
    w = np.asarray(wm, dtype=np.float32)
    if w.ndim != 2 or w.size == 0:
        raise CodecAssistError(f"weights for frame {index}: expected a 2-D map, got shape {w.shape}")
    if w.shape != shape:
        w = cv2.resize(w, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    if not np.isfinite(w).all() or (w < 0).any():
        raise CodecAssistError(f"weights for frame {index}: must be finite and non-negative")
    return w


def _close_decoders(*gens) -> None:
    """Close frame generators, possibly mid-stream, with FFmpeg logging detached meanwhile.

    With a Python log callback installed (media sets av.logging to ERROR), freeing an H.264 decoder whose
    frame threads are still busy can deadlock: the main thread holds the GIL inside avcodec_free_context
    while a worker thread's av_log waits for the GIL. PyAV's no-op callback (level None) takes no GIL.
    """
    level = av.logging.get_level()
    av.logging.set_level(None)
    try:
        for g in gens:
            g.close()
    finally:
        av.logging.set_level(level)


def compare_videos(
    reference: str | Path,
    distorted: str | Path,
    *,
    rois: Sequence[RoiBox] = (),
    weights: Callable[[int], np.ndarray | None] | None = None,
    every: int = 1,
    xpsnr: bool = False,
    vmaf_every: int = 0,
    progress: bool = False,
) -> Quality:
    """Score `distorted` against `reference` on the Y plane, decoding both in lockstep (streaming).

    Only frames whose index is a multiple of `every` get PSNR/SSIM/ROI/weighted scores (all are decoded).
    `weights(i)` may return a per-pixel or coarse-grid importance map for frame i, or None to leave that frame
    out of weighted PSNR. `xpsnr`: also XPSNR-Y (:class:`XpsnrMeter`, every frame: its temporal term needs
    neighbours; roughly doubles the cost of PSNR+SSIM). `vmaf_every` > 0: also whole-video VMAF with motion
    (:class:`VmafMeter`, libvmaf in a process beside this one) on frames 0, k, 2k, ...; 1 = every frame, the
    viewer's proxy; 0 = off.
    Raises CodecAssistError when the frame counts or sizes differ. See the module docstring for definitions.
    """
    if every < 1:
        raise CodecAssistError(f"every must be >= 1, got {every}")
    if vmaf_every < 0:
        raise CodecAssistError(f"vmaf_every must be >= 0 (0 = off), got {vmaf_every}")
    reference, distorted = Path(reference), Path(distorted)
    ref_info = probe(reference)
    if min(ref_info.width, ref_info.height) < 11:
        raise CodecAssistError(f"{ref_info.path}: frames of {ref_info.width}x{ref_info.height} are too small to "
                               "measure (SSIM needs 11x11)")
    bitrate = video_bitrate_kbps(distorted)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=probe(reference).frame_count, unit="frame", desc="compare", file=sys.stderr, leave=False)

    labels: list[str] = []
    for r in rois:
        if r.label() not in labels:
            labels.append(r.label())
    roi_by_label = {r.label(): r for r in rois}
    roi_slices: dict[str, tuple[slice, slice]] = {}
    roi_sum = {k: 0.0 for k in labels}
    roi_n = {k: 0 for k in labels}

    psnr_sum = ssim_sum = 0.0
    w_num = w_den = 0.0
    n = 0
    t_first = 0.0
    fps: float | None = None
    ws: SsimWorkspace | None = None
    xpsnr_meter = XpsnrMeter(ref_info.fps) if xpsnr else None
    vmaf_meter = VmafMeter(vmaf_every) if vmaf_every else None
    xpsnr_sum = 0.0
    ref_it = iter_frames(reference)
    dis_it = iter_frames(distorted)
    i = -1
    try:
        for i, fr in enumerate(ref_it):
            fd = next(dis_it, None)
            if fd is None:
                raise CodecAssistError(f"frame count mismatch: {distorted} has {i} frames, {reference} has more")
            if (fr.width & ~1, fr.height & ~1) != (fd.width, fd.height) and (fr.width, fr.height) != (fd.width, fd.height):
                raise CodecAssistError(
                    f"frame size mismatch at frame {i}: {reference} is {fr.width}x{fr.height}, "
                    f"{distorted} is {fd.width}x{fd.height}"
                )
            if i == 0:
                for k in labels:
                    r = roi_by_label[k]
                    if r.x >= fr.width or r.y >= fr.height:
                        raise CodecAssistError(f"region {k} lies outside the {fr.width}x{fr.height} frame")
                    roi_slices[k] = (slice(r.y, min(r.y + r.h, fr.height)), slice(r.x, min(r.x + r.w, fr.width)))
                t_first = float(fr.time) if fr.time is not None else 0.0
                if vmaf_meter is not None and min(fd.width, fd.height) < VMAF_MIN_SIDE:
                    logging.getLogger("codec_assist").warning(
                        "VMAF skipped: %dx%d frames are too small for its multi-scale features (needs %d px a side)",
                        fd.width, fd.height, VMAF_MIN_SIDE)
                    vmaf_meter = None
            if bar is not None:
                bar.update(1)
            if i % every and vmaf_meter is None and xpsnr_meter is None:
                continue
            a, b = luma(fr), luma(fd)
            if a.shape != b.shape and a.shape[0] - b.shape[0] in (0, 1) and a.shape[1] - b.shape[1] in (0, 1):
                a = a[: b.shape[0], : b.shape[1]]  # the encoder cropped an odd row/column (4:2:0 needs even)
            if xpsnr_meter is not None:
                xpsnr_sum += xpsnr_meter(a, b)  # every frame: its temporal term needs the neighbours
            if vmaf_meter is not None:
                vmaf_meter.add(a, b)  # every frame: motion needs the neighbours
            if i % every:
                continue
            if ws is None or ws.shape != a.shape:
                ws = SsimWorkspace(a.shape)
            psnr_sum += psnr_from_mse(mse(a, b))
            ssim_sum += ws(a, b)
            n += 1
            if labels:
                if fr.time is not None:
                    t = float(fr.time) - t_first
                else:  # no timestamps: fall back to the index and the declared frame rate
                    if fps is None:
                        fps = probe(reference).fps
                    t = i / fps
                for k in labels:
                    r = roi_by_label[k]
                    if (r.t0 is not None and t < r.t0 - _T_EPS) or (r.t1 is not None and t >= r.t1 - _T_EPS):
                        continue
                    ys, xs = roi_slices[k]
                    roi_sum[k] += psnr(a[ys, xs], b[ys, xs])
                    roi_n[k] += 1
            if weights is not None:
                wm = weights(i)
                if wm is not None:
                    w = _weight_map(wm, a.shape, i)
                    d = cv2.absdiff(a, b).astype(np.float32)
                    w_num += float(np.sum(d * d * w, dtype=np.float64))
                    w_den += float(np.sum(w, dtype=np.float64))
        if next(dis_it, None) is not None:
            raise CodecAssistError(f"frame count mismatch: {reference} has {i + 1} frames, {distorted} has more")
    except BaseException:
        if vmaf_meter is not None:
            vmaf_meter.close()  # no FFmpeg left running, no files left behind
        raise
    finally:
        fr = fd = a = b = None
        _close_decoders(ref_it, dis_it)
        if bar is not None:
            bar.close()
    if n == 0:
        raise CodecAssistError(f"{reference}: no frames to compare")
    vmaf_scores = vmaf_meter.scores() if vmaf_meter is not None else None
    return Quality(
        frames=n,
        bitrate_kbps=bitrate,
        psnr_y=psnr_sum / n,
        ssim_y=ssim_sum / n,
        roi_psnr_y={k: roi_sum[k] / roi_n[k] for k in labels if roi_n[k]},
        weighted_psnr_y=psnr_from_mse(w_num / w_den) if w_den > 0 else None,
        xpsnr_y=xpsnr_sum / (i + 1) if xpsnr_meter is not None else None,
        vmaf=float(vmaf_scores.mean()) if vmaf_scores is not None and vmaf_scores.size else None,
        vmaf_frames=int(vmaf_scores.size) if vmaf_scores is not None else None,
    )


def frame_importance_weights(frames: np.ndarray, grid: np.ndarray, scalar: np.ndarray | None = None
                             ) -> Callable[[int], np.ndarray]:
    """`weights` for compare_videos from an analysis's importance arrays: frame i takes the latest analysed frame
    at or before it. Without `scalar`: that frame's grid as it is. With `scalar`: the grid rescaled so that its
    mean is the frame's scalar importance, so a frame that matters more (a face, speech) weighs more in the
    pooled MSE, and the grid still says where in the frame (a flat grid gives a flat map)."""
    frames = np.asarray(frames, np.int64)
    grid = np.asarray(grid, np.float32)
    if scalar is not None:
        means = grid.reshape(len(grid), -1).mean(axis=1)
        flat = means <= 1e-6
        grid = np.where(flat[:, None, None], 1.0, grid) * (np.asarray(scalar, np.float32)
                                                           / np.where(flat, 1.0, means))[:, None, None]

    def weights(i: int) -> np.ndarray:
        return grid[max(0, int(np.searchsorted(frames, i, side="right")) - 1)]

    return weights


# -------------------------------------------------------------------------------------------- BD metrics
def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson PCHIP derivatives with SciPy's shape-preserving three-point end conditions."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    if len(x) == 2:
        d[:] = delta[0]
        return d
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same = (np.sign(delta[:-1]) * np.sign(delta[1:])) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        hm = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same, hm, 0.0)

    def end(h0, h1, m0, m1):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(e) > abs(3 * m0):
            return 3 * m0
        return e

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_coeffs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-segment coefficients (n-1, 4) of y = c0 + c1 s + c2 s^2 + c3 s^3, s = x - x_k."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = _pchip_slopes(x, y)
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * delta) / (h * h)
    return np.stack([y[:-1], d[:-1], c2, c3], axis=1)


def pchip_eval(x: Iterable[float], y: Iterable[float], xq: np.ndarray | float) -> np.ndarray:
    """Evaluate the PCHIP interpolant of (x ascending, y) at xq (clamped to the end segments)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    c = _pchip_coeffs(x, y)
    xq = np.asarray(xq, float)
    k = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
    s = xq - x[k]
    return c[k, 0] + s * (c[k, 1] + s * (c[k, 2] + s * c[k, 3]))


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    c = _pchip_coeffs(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        sa, sb = a - x[k], b - x[k]
        total += sum(c[k, j] * (sb ** (j + 1) - sa ** (j + 1)) / (j + 1) for j in range(4))
    return total


def _curve(rates: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(log10 rates, quality) sorted by rate; None when unusable (too few points or non-monotonic)."""
    r = np.asarray(rates, float).ravel()
    q = np.asarray(quality, float).ravel()
    if r.shape != q.shape:
        raise ValueError(f"rates and quality differ in length: {r.size} vs {q.size}")
    if r.size < 3 or not (np.isfinite(r).all() and np.isfinite(q).all()) or (r <= 0).any():
        return None
    order = np.argsort(r)
    lr, q = np.log10(r[order]), q[order]
    if (np.diff(lr) <= 0).any() or (np.diff(q) <= 0).any():
        return None  # repeated rates, or quality not strictly rising with rate
    return lr, q


def _bd_integral_mean(xa, ya, xb, yb) -> float | None:
    """Mean of (fit_b - fit_a)(x) over the overlap of the x ranges; x ascending for both curves."""
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not hi > lo:
        return None
    if len(xa) >= 4 and len(xb) >= 4:
        ia = np.polyint(np.polyfit(xa, ya, 3))
        ib = np.polyint(np.polyfit(xb, yb, 3))
        area_a = np.polyval(ia, hi) - np.polyval(ia, lo)
        area_b = np.polyval(ib, hi) - np.polyval(ib, lo)
    else:
        area_a = _pchip_integral(xa, ya, lo, hi)
        area_b = _pchip_integral(xb, yb, lo, hi)
    return float((area_b - area_a) / (hi - lo))


def bd_rate(
    rates_a: Sequence[float], quality_a: Sequence[float], rates_b: Sequence[float], quality_b: Sequence[float]
) -> float | None:
    """Bjøntegaard delta rate of B versus A in percent (negative: B needs fewer bits for equal quality).

    None when a curve has fewer than 3 points, quality does not rise strictly with rate, or the quality
    ranges do not overlap.
    """
    ca, cb = _curve(rates_a, quality_a), _curve(rates_b, quality_b)
    if ca is None or cb is None:
        return None
    (lra, qa), (lrb, qb) = ca, cb
    avg = _bd_integral_mean(qa, lra, qb, lrb)  # log10 rate as a function of quality
    return None if avg is None else (10.0**avg - 1.0) * 100.0


def bd_psnr(
    rates_a: Sequence[float], quality_a: Sequence[float], rates_b: Sequence[float], quality_b: Sequence[float]
) -> float | None:
    """Bjøntegaard delta quality of B versus A at equal rate (dB for PSNR; positive: B is better).

    None under the same conditions as bd_rate (with the log-rate ranges required to overlap).
    """
    ca, cb = _curve(rates_a, quality_a), _curve(rates_b, quality_b)
    if ca is None or cb is None:
        return None
    (lra, qa), (lrb, qb) = ca, cb
    return _bd_integral_mean(lra, qa, lrb, qb)  # quality as a function of log10 rate


# ------------------------------------------------------- whole-video XPSNR and VMAF, fed in display order
def require_vmaf() -> None:
    """Fail early, in one line, when VMAF was asked for and no FFmpeg with libvmaf is installed (before any
    encode runs, not at the first measurement)."""
    exe = ffmpeg_with_libvmaf()
    try:
        shown = subprocess.run([exe, "-hide_banner", "-h", "filter=libvmaf"], capture_output=True, text=True,
                               timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise CodecAssistError(f"VMAF: cannot run {exe}: {e}") from None
    if "Filter libvmaf" not in shown:
        raise CodecAssistError(f"VMAF: {_no_libvmaf(exe)}; or switch VMAF off (--vmaf-every 0)")


def _no_libvmaf(exe: str) -> str:
    return f"{exe} has no libvmaf filter (imageio-ffmpeg's own FFmpeg has it: is IMAGEIO_FFMPEG_EXE set to another?)"


def ffmpeg_with_libvmaf() -> str:
    """The FFmpeg executable imageio-ffmpeg ships: FFmpeg 9 built with libvmaf, the reference VMAF, with its
    vmaf_v0.6.1 model inside. PyAV's own FFmpeg and Debian's have no libvmaf."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise CodecAssistError("VMAF needs the optional imageio-ffmpeg package, whose FFmpeg has libvmaf (pip "
                               "install 'codec-assist[vmaf]'); or switch VMAF off (compare --vmaf-every 0)") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise CodecAssistError(f"VMAF: no FFmpeg executable ({e})") from None


class XpsnrMeter:
    """FFmpeg's ``xpsnr`` filter (Y component, ``lavfi.xpsnr.xpsnr.y``) inside PyAV's FFmpeg, one pair at a time.

    XPSNR (Helmrich et al., ITU-T P.1206 family) weights the squared error by each block's spatial and temporal
    activity, so busy areas count less, as a viewer's masking does. Its temporal term looks at the previous
    frame(s) of the reference: feed every pair of one sequence, in display order, to one meter. The frame rate
    matters (above 32 fps the filter uses a second-order temporal difference), so pass the source's.
    """

    def __init__(self, fps: float = 25.0):
        self.fps = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._graph = None
        self._size: tuple[int, int] | None = None
        self._n = 0

    def _build(self, w: int, h: int) -> None:
        g = av.filter.Graph()
        rate = self.fps
        args = (f"video_size={w}x{h}:pix_fmt=yuv420p:time_base={rate.denominator}/{rate.numerator}"
                f":frame_rate={rate.numerator}/{rate.denominator}:pixel_aspect=1/1")
        self._src = [g.add("buffer", args) for _ in range(2)]
        x = g.add("xpsnr")
        self._sink = g.add("buffersink")
        self._src[0].link_to(x, 0, 0)
        self._src[1].link_to(x, 0, 1)
        x.link_to(self._sink)
        g.configure()
        self._graph, self._size = g, (w, h)

    def __call__(self, ref_y: np.ndarray, dist_y: np.ndarray) -> float:
        """XPSNR-Y in dB of the next pair of Y planes (uint8, same shape; an odd last row/column is dropped, as
        4:2:0 needs even sizes). Chroma is fed flat: the Y score does not look at it."""
        if ref_y.shape != dist_y.shape:
            raise CodecAssistError(f"xpsnr: planes {ref_y.shape} and {dist_y.shape} differ")
        h, w = ref_y.shape[0] & ~1, ref_y.shape[1] & ~1
        if self._graph is None:
            self._build(w, h)
        elif self._size != (w, h):
            raise CodecAssistError(f"xpsnr: frame size changed from {self._size[0]}x{self._size[1]} to {w}x{h}")
        for src, y in zip(self._src, (ref_y, dist_y)):
            buf = np.full((h * 3 // 2, w), 128, np.uint8)
            buf[:h] = y[:h, :w]
            f = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            f.pts = self._n
            src.push(f)
        self._n += 1
        value = float(self._sink.pull().metadata["lavfi.xpsnr.xpsnr.y"])
        return min(PSNR_CAP, value) if math.isfinite(value) else PSNR_CAP


VMAF_MIN_SIDE = 32  # below this VMAF is skipped: its four-scale features need room (vmaf-torch failed on 16 px)


class VmafMeter:
    """Whole-video VMAF by libvmaf (FFmpeg's ``libvmaf`` filter, model vmaf_v0.6.1, motion on, per-frame scores
    clipped to [0, 100] as the model file says), fed the Y planes of every frame pair in display order.

    The pairs stream to one FFmpeg process through a pipe, each as one raw 4:2:0 frame with the reference
    above the distorted picture (flat chroma: VMAF reads luma only); the filter graph crops the two apart, so
    libvmaf sees exactly the planes PSNR sees, in lockstep, with no timestamps or colour conversion in between.
    libvmaf computes motion across the whole sequence (motion2 of frame i is the smaller of its blurred SAD to
    the previous and the next reference frame) and, with ``every = k``, the costly ADM/VIF features on frames
    0, k, 2k, ... only (``n_subsample``; their scores are what every frame gives on those frames). It runs beside
    the caller, which goes on decoding and scoring while libvmaf works. On jwpIntro (640x480, 173 frames) it
    gave 92.3179 where vmaf-torch 1.1 gave 92.3171, in 0.6 s instead of 38 s. An odd last row or column is dropped,
    as 4:2:0 needs even sizes.
    """

    def __init__(self, every: int = 1, threads: int = 1):
        if every < 1:
            raise CodecAssistError(f"vmaf every must be >= 1, got {every}")
        self.exe = ffmpeg_with_libvmaf()
        self.every = every
        self.threads = max(1, threads)
        self._n = 0
        self._shape: tuple[int, int] | None = None
        self._proc: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self._buf: np.ndarray | None = None
        self._scores: np.ndarray | None = None

    @property
    def frames(self) -> int:
        """Frames that get a score: 0, every, 2*every, ... of those added."""
        return -(-self._n // self.every)

    def _start(self, h: int, w: int) -> None:
        self._dir = work_dir("codec-assist-vmaf-")
        graph = (f"[0:v]split[a][b];[a]crop={w}:{h}:0:{h}[dist];[b]crop={w}:{h}:0:0[ref];"
                 f"[dist][ref]libvmaf=log_fmt=json:log_path=vmaf.json:n_subsample={self.every}"
                 f":n_threads={self.threads}")
        cmd = [self.exe, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
               "-s", f"{w}x{2 * h}", "-r", "25", "-i", "pipe:0", "-lavfi", graph, "-f", "null", "-"]
        # stderr to a file, not a pipe nobody reads while the frames go in
        with open(Path(self._dir.name) / "stderr.txt", "wb") as err:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                          cwd=self._dir.name)
        self._buf = np.full((3 * h, w), 128, np.uint8)  # Y: 2h rows (reference, distorted); U and V: h/2 rows each

    def add(self, ref_y: np.ndarray, dist_y: np.ndarray) -> None:
        """The next pair's Y planes (uint8, same shape)."""
        if ref_y.shape != dist_y.shape:
            raise CodecAssistError(f"vmaf: planes {ref_y.shape} and {dist_y.shape} differ")
        if self._shape is None:
            self._shape = ref_y.shape
            self._start(ref_y.shape[0] & ~1, ref_y.shape[1] & ~1)
        elif ref_y.shape != self._shape:
            raise CodecAssistError(f"vmaf: frame size changed from {self._shape} to {ref_y.shape}")
        h, w = self._buf.shape[0] // 3, self._buf.shape[1]
        self._buf[:h] = ref_y[:h, :w]
        self._buf[h:2 * h] = dist_y[:h, :w]
        try:
            self._proc.stdin.write(self._buf.data)
        except (BrokenPipeError, OSError):
            raise CodecAssistError(f"VMAF: FFmpeg stopped: {self._error()}") from None
        self._n += 1

    def _error(self) -> str:
        self._proc.wait()
        text = (Path(self._dir.name) / "stderr.txt").read_text(errors="replace").strip()
        if "libvmaf" in text and ("No such filter" in text or "not found" in text):
            return _no_libvmaf(self.exe)
        return text.splitlines()[-1] if text else f"exit code {self._proc.returncode}"

    def scores(self) -> np.ndarray:
        """Per-frame VMAF of the scored frames (0, every, 2*every, ...), after the last pair was added."""
        if self._scores is not None:
            return self._scores
        if self._proc is None:
            return np.zeros(0)
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        if self._proc.wait() != 0:
            raise CodecAssistError(f"VMAF: FFmpeg failed: {self._error()}")
        log = json.loads((Path(self._dir.name) / "vmaf.json").read_text())
        values = {int(f["frameNum"]): float(f["metrics"]["vmaf"]) for f in log["frames"]}
        self._scores = np.array([values[i] for i in range(0, self._n, self.every)], np.float64)
        self.close()
        return self._scores

    def close(self) -> None:
        """Stop FFmpeg if it still runs and remove its files (scores() calls it; an error on the way calls it)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


# ------------------------------------------------------------- per-frame scores of frame sequences (issue 9)
QUALITY_METRICS = ("psnr", "ssim", "xpsnr", "vmaf")


class FrameScorer:
    """Per-frame quality of a distorted sequence against its reference, fed pair by pair in display order
    (add), read once the sequence is in (scores, mean). One scorer per sequence.

    - psnr: Y-plane PSNR as above (capped at PSNR_CAP); ssim: Y-plane SSIM as above; every pair.
    - xpsnr: FFmpeg's ``xpsnr`` filter (Y component, ``lavfi.xpsnr.xpsnr.y``), run inside PyAV's FFmpeg; every
      pair (its temporal term looks at the previous frame).
    - vmaf: :class:`VmafMeter` (libvmaf, motion on, as in `compare`), scored on every ``vmaf_every``-th pair; the
      others still count for motion, which libvmaf takes from the reference alone, so a caller may pass the
      reference itself as their distorted picture instead of scaling one that nothing reads.
    """

    def __init__(self, metric: str, vmaf_every: int = 10, threads: int = 1):
        if metric not in QUALITY_METRICS:
            raise CodecAssistError(f"unknown quality metric {metric!r}; choose one of {', '.join(QUALITY_METRICS)}")
        self.metric = metric
        self.vmaf_every = max(1, vmaf_every)
        self._n = 0
        self._scores: dict[int, float] = {}
        self._ws: SsimWorkspace | None = None
        self._xpsnr: XpsnrMeter | None = None
        self._vmaf: VmafMeter | None = VmafMeter(self.vmaf_every, threads) if metric == "vmaf" else None

    def scored(self, index: int) -> bool:
        """Whether pair `index` gets a score of its own (all do, but with vmaf only every vmaf_every-th)."""
        return self.metric != "vmaf" or index % self.vmaf_every == 0

    def add(self, ref: av.VideoFrame, dist: av.VideoFrame) -> None:
        i = self._n
        self._n += 1
        a, b = luma(ref), luma(dist)
        if a.shape != b.shape:
            a = a[: b.shape[0], : b.shape[1]]  # the encoder cropped an odd row/column
        if self._vmaf is not None:
            self._vmaf.add(a, b)
        elif self.metric == "psnr":
            self._scores[i] = psnr(a, b)
        elif self.metric == "ssim":
            if self._ws is None or self._ws.shape != a.shape:
                self._ws = SsimWorkspace(a.shape)
            self._scores[i] = self._ws(a, b)
        else:
            if self._xpsnr is None:
                self._xpsnr = XpsnrMeter()
            self._scores[i] = self._xpsnr(a, b)

    def scores(self) -> dict[int, float]:
        """{pair index: score} of the scored pairs."""
        if self._vmaf is not None and self._n:
            frames = range(0, self._n, self.vmaf_every)
            self._scores = {i: float(v) for i, v in zip(frames, self._vmaf.scores())}
        return dict(self._scores)

    def mean(self) -> float:
        """The sequence's score: the mean of its scored pairs' (nan when none was added)."""
        scores = self.scores()
        return float(np.mean(list(scores.values()))) if scores else float("nan")

    def close(self) -> None:
        """Stop the VMAF process of a sequence that will not be finished (scores() ends it otherwise)."""
        if self._vmaf is not None:
            self._vmaf.close()


def sequence_quality(metric: str, refs: Sequence[av.VideoFrame], dists: Sequence[av.VideoFrame],
                     vmaf_every: int = 10) -> float:
    """Mean per-frame `metric` of `dists` against `refs` (same length, display order)."""
    if len(refs) != len(dists) or not refs:
        raise CodecAssistError(f"cannot score {len(dists)} frames against {len(refs)}")
    scorer = FrameScorer(metric, vmaf_every)
    try:
        for r, d in zip(refs, dists):
            scorer.add(r, d)
        return scorer.mean()
    finally:
        scorer.close()
