"""Media I/O through PyAV: probe, streaming decode, the analysis proxy, audio PCM.

Nothing here holds a whole video in memory: frames are decoded, used and dropped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .errors import InputError
from .schemas import AudioStreamInfo, VideoInfo

# PyAV's default (None): FFmpeg logs stay in C. Routing them through Python can deadlock when a decoder with
# busy worker threads is freed (e.g. stopping a decode early); encode.py captures warnings only while encoding.
av.logging.set_level(None)
logging.getLogger("libav").setLevel(logging.CRITICAL + 1)  # FFmpeg's words become our one-line errors

MAX_PIXELS = 8192 * 8192  # guard against absurd declared sizes


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading, turning every failure into a one-line InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as e:
        raise InputError(f"{p}: not a readable media file ({_ff_reason(e)})") from None
    except OSError as e:
        raise InputError(f"{p}: cannot open ({e.strerror or e})") from None


def _ff_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0]


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if s.codec_context is not None]
    # Cover art in audio files shows up as a one-picture "video" stream: not a video.
    streams = [s for s in streams if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        raise InputError(f"{path}: has no video stream")
    return streams[0]


def probe(path: str | Path) -> VideoInfo:
    """Describe the video (and its audio streams) without decoding it."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        cc = vs.codec_context
        width, height = cc.width, cc.height
        if width <= 0 or height <= 0:
            raise InputError(f"{p}: video stream has no frame size")
        if width * height > MAX_PIXELS:
            raise InputError(f"{p}: frame size {width}x{height} is too large (limit {MAX_PIXELS} pixels)")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate or rate <= 0:
            raise InputError(f"{p}: cannot determine the frame rate")
        fps = float(rate)
        tb = vs.time_base or Fraction(1, 90000)
        duration = float(vs.duration * tb) if vs.duration else (c.duration or 0) / av.time_base
        frames = vs.frames or _count_frames(c, vs)
        if frames == 0:
            raise InputError(f"{p}: video stream has no frames")
        if duration <= 0:
            duration = frames / fps
        audio = [
            AudioStreamInfo(
                index=a.index,
                codec=a.codec_context.name,
                sample_rate=a.codec_context.sample_rate or 0,
                channels=a.codec_context.channels or 0,
                duration=float(a.duration * a.time_base) if a.duration and a.time_base else None,
            )
            for a in c.streams.audio
            if a.codec_context is not None
        ]
        rotation = 0
        try:
            rotation = int(round(vs.side_data.get("DISPLAYMATRIX", 0))) if hasattr(vs, "side_data") else 0
        except (TypeError, ValueError):
            rotation = 0
        return VideoInfo(
            path=str(p),
            container=c.format.name,
            codec=cc.name,
            width=width,
            height=height,
            fps=fps,
            time_base=f"{tb.numerator}/{tb.denominator}",
            frame_count=frames,
            duration=duration,
            pix_fmt=cc.pix_fmt or "unknown",
            rotation=rotation,
            bit_rate=c.bit_rate or None,
            audio=audio,
        )


def _count_frames(c: av.container.InputContainer, vs) -> int:
    """Count video packets by demuxing (no decode) when the container does not say."""
    n = 0
    try:
        for pkt in c.demux(vs):
            if pkt.size:
                n += 1
    except av.error.FFmpegError:
        pass
    c.seek(0)
    return n


def iter_frames(path: str | Path, *, threads: int = 0) -> Iterator[av.VideoFrame]:
    """Decode every video frame in presentation order, streaming. Corrupt packets are skipped."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        vs.thread_type = "AUTO"
        if threads:
            vs.codec_context.thread_count = threads
        try:
            for frame in c.decode(vs):
                yield frame
        except av.error.InvalidDataError as e:
            raise InputError(f"{p}: corrupt video data ({_ff_reason(e)})") from None


@dataclass
class ProxyFrame:
    """A frame of the analysis proxy: downscaled, in the source's frame numbering."""

    index: int
    time: float
    bgr: np.ndarray  # (h, w, 3) uint8, the proxy size
    gray: np.ndarray  # (h, w) uint8


def proxy_size(width: int, height: int, target_width: int = 320) -> tuple[int, int]:
    """Proxy frame size: `target_width` wide (never upscaled), even dimensions, aspect kept."""
    w = min(target_width, width)
    h = max(2, int(round(height * w / width / 2)) * 2)
    return max(2, w - w % 2), h


def iter_proxy(path: str | Path, size: tuple[int, int]) -> Iterator[tuple[int, av.VideoFrame, ProxyFrame]]:
    """Yield (index, source frame, proxy frame) for every frame. swscale does the downscale (cheap)."""
    w, h = size
    for i, frame in enumerate(iter_frames(path)):
        bgr = frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
        gray = (bgr[..., 0] * 0.114 + bgr[..., 1] * 0.587 + bgr[..., 2] * 0.299).astype(np.uint8)
        t = float(frame.time) if frame.time is not None else 0.0
        yield i, frame, ProxyFrame(index=i, time=t, bgr=bgr, gray=gray)


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane of a decoded frame as (h, w) uint8 (8-bit formats; higher depths are scaled down)."""
    if frame.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return arr[:, : frame.width]


def decode_audio(path: str | Path, sample_rate: int = 16000, stream: int = 0) -> np.ndarray | None:
    """Decode one audio stream to mono float32 PCM at `sample_rate`; None when the file has no audio."""
    p = Path(path)
    with open_input(p) as c:
        if len(c.streams.audio) <= stream:
            return None
        a = c.streams.audio[stream]
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in c.decode(a):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray()[0])
        except av.error.InvalidDataError:
            pass  # keep what decoded; a corrupt tail should not lose the rest
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray()[0])
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def frame_timestamps(path: str | Path) -> list[int] | None:
    """Presentation timestamps of the video frames in order, from the packets (no decode), in the stream's
    time base; None when some packet has no timestamp or two share one (the frames cannot be told apart)."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        stamps = [pkt.pts for pkt in c.demux(vs) if pkt.size]
    if not stamps or any(s is None for s in stamps) or len(set(stamps)) != len(stamps):
        return None
    return sorted(stamps)


def keyframe_indices(path: str | Path) -> list[int]:
    """Frame numbers (presentation order) of the random-access (IDR) frames, read from packet flags."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        stamps = [(pkt.pts, pkt.is_keyframe) for pkt in c.demux(vs) if pkt.size and pkt.pts is not None]
    stamps.sort()
    return [i for i, (_, key) in enumerate(stamps) if key]
