"""In-memory probe encodes with the final encode's settings (forced IDRs, the plan's ROI offsets): a run of
frames at one CRF for target-quality search, and one fast constant-CRF encode of a small proxy that measures
each shot's complexity for budget allocation."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from policies.qp import offsets_at

import codec_assist.encoding.roi as roi
import codec_assist.media.decode as media
from codec_assist.encoding.x26x import ENCODERS, plan_params
from codec_assist.errors import EncoderError
from codec_assist.schemas import EncodePlan


def even_frame(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """yuv420p at (width, height) (even): the same picture the real encode gets."""
    if frame.format.name == "yuv420p" and (frame.width, frame.height) == (width, height):
        return frame
    if (frame.width & ~1, frame.height & ~1) == (width, height) and frame.format.name == "yuv420p":
        y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size) for p in frame.planes)
        packed = np.concatenate([y[:height, :width].ravel(), u[: height // 2, : width // 2].ravel(),
                                 v[: height // 2, : width // 2].ravel()])
        return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")
    return frame.reformat(width=width, height=height, format="yuv420p")


def _encoder(codec: str, preset: str, width: int, height: int, fps: float, crf: float,
             x_params: dict[str, str]) -> av.CodecContext:
    ctx = av.CodecContext.create(ENCODERS[codec], "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 1) / Fraction(fps).limit_denominator(1001000)
    ctx.framerate = Fraction(fps).limit_denominator(1001000)
    ctx.thread_type = "FRAME"  # x264's frame threads, as the final encode (x26x.encode)
    params = {"log-level": "error", **x_params} if codec == "x265" else dict(x_params)
    ctx.options = {"preset": preset, "crf": f"{crf:g}", "forced-idr": "1",
                   f"{codec}-params": ":".join(f"{k}={v}" for k, v in params.items())}
    ctx.open()
    return ctx


def encode_frames(frames: Sequence[av.VideoFrame], first_index: int, *, codec: str, preset: str, fps: float,
                  crf: float, plan: EncodePlan | None = None, plan_arrays: dict[str, np.ndarray] | None = None,
                  decode: bool = True) -> tuple[np.ndarray, list[av.VideoFrame]]:
    """Encode a run of frames (source numbering from `first_index`) in memory, as the real encode would
    (forced IDRs at the run's start and the plan's keyframes, the plan's ROI offsets); return the bits per
    frame and, if `decode`, the decoded frames."""
    w, h = frames[0].width, frames[0].height
    enc = _encoder(codec, preset, w, h, fps, crf, plan_params(plan, codec, zones=False))  # as the final encode
    keyset = set(plan.forced_keyframes) if plan is not None else set()
    bits = np.zeros(len(frames), np.int64)
    packets = []
    for k, f in enumerate([*frames, None]):
        if f is not None:
            f = av.VideoFrame.from_ndarray(f.to_ndarray(), format="yuv420p")
            f.pts, f.time_base = k, enc.time_base
            n = first_index + k
            f.pict_type = (av.video.frame.PictureType.I if k == 0 or n in keyset
                           else av.video.frame.PictureType.NONE)
            if plan is not None and plan_arrays is not None:
                grid = offsets_at(n, plan_arrays["qp/frames"].tolist(), plan_arrays["qp/offsets"], plan.shot_starts)
                if grid is not None:
                    roi.attach_qp_offsets(f, grid, plan.block_size)
        for p in enc.encode(f):
            bits[int(p.pts)] += p.size * 8
            packets.append(p)
    decoded: list[av.VideoFrame] = []
    if decode:
        dec = av.CodecContext.create({"x264": "h264", "x265": "hevc"}[codec], "r")
        dec.extradata = enc.extradata
        for p in [*packets, None]:
            decoded.extend(dec.decode(p))
        decoded.sort(key=lambda f: f.pts if f.pts is not None else 0)
        if len(decoded) != len(frames):
            raise EncoderError(f"probe encode returned {len(decoded)} frames for {len(frames)}")
    return bits, decoded


def probe_complexity(path: str | Path, units: Sequence[tuple[int, int]], *, codec: str = "x264", crf: float = 26.0,
                     preset: str = "ultrafast", width: int = 320) -> tuple[np.ndarray, int]:
    """Bits per frame of each unit in one fast constant-CRF encode of a `width`-px proxy, IDR at each unit's
    start (the cheap, content-adaptive complexity measure). Returns (bits/frame per unit, frames seen)."""
    info = media.probe(path)
    pw, ph = media.proxy_size(info.width, info.height, width)
    starts = {s for s, _ in units}
    enc = _encoder(codec, preset, pw, ph, info.fps, crf, {"scenecut": "0", "keyint": "infinite" if codec == "x264"
                                                           else "100000"})
    per_frame: dict[int, int] = {}
    n = 0
    for n, frame in enumerate(media.iter_frames(path)):
        f = frame.reformat(width=pw, height=ph, format="yuv420p")
        f.pts, f.time_base = n, enc.time_base
        f.pict_type = av.video.frame.PictureType.I if n in starts else av.video.frame.PictureType.NONE
        for p in enc.encode(f):
            per_frame[int(p.pts)] = per_frame.get(int(p.pts), 0) + p.size * 8
    for p in enc.encode(None):
        per_frame[int(p.pts)] = per_frame.get(int(p.pts), 0) + p.size * 8
    total = n + 1
    out = []
    for s, e in units:
        e = min(e, total)
        bits = sum(per_frame.get(i, 0) for i in range(s, e))
        out.append(max(bits, 8) / max(1, e - s))
    return np.asarray(out, np.float64), total


def units_bits(bits: np.ndarray, units: Sequence[tuple[int, int]]) -> list[int]:
    return [int(bits[s:e].sum()) for s, e in units]
