"""Media I/O through PyAV: probe, streaming decode, the analysis proxy, audio PCM.

Nothing here holds a whole video in memory: frames are decoded, used and dropped.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import queue
import re
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterator, TypeVar

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from pydantic import BaseModel, ConfigDict, Field

from codec_assist.errors import InputError
from codec_assist.schemas import AudioStreamInfo, VideoInfo

# PyAV's default (None): FFmpeg logs stay in C. Routing them through Python can deadlock when a decoder with
# busy worker threads is freed (e.g. stopping a decode early); encode.py captures warnings only while encoding.
av.logging.set_level(None)
logging.getLogger("libav").setLevel(logging.CRITICAL + 1)  # FFmpeg's words become our one-line errors

log = logging.getLogger("codec_assist")
T = TypeVar("T")


class Limits(BaseModel):
    """Guards against absurd inputs, checked on what the container declares and on what is really decoded.
    Passed explicitly to every probe and decode (and to batch and chunk workers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_pixels: int = Field(8192 * 8192, gt=0)  # pixels per frame
    max_duration: float = Field(4 * 3600.0, gt=0)  # seconds


DEFAULT_LIMITS = Limits()
TRIM_EVERY = 250  # frames between release_memory() calls in long decodes (a trim costs well under 1 ms)
MAX_PIXELS = DEFAULT_LIMITS.max_pixels  # the default, for callers that only need the number
# What a folder of videos is searched for (batch, tag of a folder): the containers these commands were run on,
# down to the old web ones (iscc-samples' demo in each of them, docs/ROBUSTNESS.md)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m1v", ".m2v",
                            ".vob", ".ts", ".mts", ".m2ts", ".flv", ".f4v", ".swf", ".wmv", ".asf", ".rm", ".rmvb",
                            ".3gp", ".3g2", ".ogv", ".y4m"})
STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "qoi_pipe",
                       "j2k_pipe", "pgm_pipe", "ppm_pipe", "svg_pipe", "jpegxl_pipe", "dds_pipe")


@lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (it has malloc_trim and mallopt), else None (macOS, musl): nothing to do."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - AttributeError where they are missing
        return libc
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Hand freed heap back to the OS. FFmpeg's and ONNX Runtime's worker threads free into per-thread glibc
    arenas that otherwise stay resident and fragment, so RSS crept up with the input's duration (measured:
    +20 MiB per 24 s of 360p with the OCR analyzer, flat with this called every few hundred frames)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt parameters (glibc's malloc.h)


def lean_heap(mmap_threshold: int = 1 << 20, arenas: int = 2) -> None:
    """For a process whose memory adds to another's (the analysis beside the encoder): blocks of `mmap_threshold`
    bytes or more are mapped for each use and unmapped when freed, and the threads share `arenas` malloc arenas.
    By default glibc raises its mmap threshold to the largest block freed so far (up to 32 MiB), so ONNX Runtime's
    per-call work buffers (~27 MiB for the OCR detector) then come from the heap and linger there, and it gives
    each busy thread an arena of its own that keeps what that thread freed. Call it before the threads start."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_ARENA_MAX, arenas)


def display_path(path: str | Path) -> str:
    """A path as text that can always be printed and stored as JSON (non-UTF-8 bytes become \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_size(width: int, height: int, path, limits: Limits = DEFAULT_LIMITS) -> None:
    if width * height > limits.max_pixels:
        raise InputError(f"{display_path(path)}: frame size {width}x{height} is too large "
                         f"({width * height} pixels, over --max-pixels {limits.max_pixels})")


def check_duration(seconds: float, path, limits: Limits = DEFAULT_LIMITS) -> None:
    if seconds > limits.max_duration:
        raise InputError(f"{display_path(path)}: duration {seconds:.1f} s is too long "
                         f"(over --max-duration {limits.max_duration:g} s)")


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading, turning every failure into a one-line InputError."""
    p = Path(path)
    shown = display_path(p)
    try:
        if not p.exists():
            raise InputError(f"{shown}: no such file")
        if p.is_dir():
            raise InputError(f"{shown}: is a directory, not a video file")
        if p.stat().st_size == 0:
            raise InputError(f"{shown}: empty file")
        try:
            str(p).encode("utf-8")
            return av.open(str(p), mode="r")
        except UnicodeEncodeError:  # a non-UTF-8 file name: hand FFmpeg the open file instead of the name
            return av.open(open(p, "rb"), mode="r")
    except av.error.EOFError:  # headers parsed, then nothing: FFmpeg gives up looking for the first frame
        raise InputError(f"{shown}: no frames: the file ends before the first one (truncated or empty stream)") \
            from None
    except av.error.FFmpegError as e:
        raise InputError(f"{shown}: not a readable media file ({_ff_reason(e)})") from None
    except OSError as e:
        raise InputError(f"{shown}: cannot open ({e.strerror or e})") from None


def _ff_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0]


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    # Cover art in audio files shows up as a one-picture "video" stream: not a video.
    video = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    streams = [s for s in video if s.codec_context is not None]
    if video and not streams:
        raise InputError(f"{display_path(path)}: its video stream has no frames (no codec parameters)")
    if not streams:
        raise InputError(f"{display_path(path)}: has no video stream")
    if container.format.name in STILL_IMAGE_FORMATS:
        raise InputError(f"{display_path(path)}: is a still image ({container.format.name}), not a video")
    return streams[0]


# "Audio: pcm_s16le (...), 48000 Hz, 8 channels (FL+FR+...)": a PCM track of 7+ channels in a custom order
_UNORDERED_PCM = re.compile(r"Audio: pcm_\w+.*?, (\d+) channels")


def refuse_crashing_audio(path: Path) -> None:
    """A QuickTime file whose PCM track has 7+ channels in a custom order (its `chan` atom) makes PyAV 18.1 corrupt
    the heap the moment the track's codec context is read, and the process aborts (docs/ROBUSTNESS.md). Before PyAV
    opens a .mov, the FFmpeg binary imageio-ffmpeg ships (when installed) lists its tracks; such a file gets a
    one-line error instead of a crash. Costs ~0.05 s a .mov; other containers are not affected."""
    if path.suffix.lower() not in (".mov", ".qt"):
        return
    st = path.stat() if path.exists() else None
    if st is not None:
        _refuse_crashing_audio(str(path), (st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _refuse_crashing_audio(name: str, stamp: tuple[int, int]) -> None:
    """refuse_crashing_audio, once per file version and process (a command probes its input several times)."""
    path = Path(name)
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return
    try:
        info = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=30,
                              errors="replace").stderr
    except (OSError, subprocess.TimeoutExpired):
        return
    for m in _UNORDERED_PCM.finditer(info):
        if int(m.group(1)) >= 7:
            raise InputError(f"{display_path(path)}: its {m.group(1)}-channel PCM track in QuickTime's own channel "
                             f"order crashes PyAV 18.1; remux it first (ffmpeg -i IN -c copy OUT.mkv)")


def probe(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> VideoInfo:
    """Describe the video (and its audio streams) without decoding it; refuse it when it declares more than
    `limits` allow."""
    p = Path(path)
    refuse_crashing_audio(p)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        cc = vs.codec_context
        width, height = cc.width, cc.height
        shown = display_path(p)
        if width <= 0 or height <= 0:
            raise InputError(f"{shown}: video stream has no frame size")
        check_size(width, height, p, limits)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate or rate <= 0:
            raise InputError(f"{shown}: cannot determine the frame rate")
        fps = float(rate)
        tb = vs.time_base or Fraction(1, 90000)
        duration = float(vs.duration * tb) if vs.duration else (c.duration or 0) / av.time_base
        check_duration(duration, p, limits)  # before counting: a hostile index could make counting slow
        frames = vs.frames or _count_frames(c, vs)
        if frames == 0:
            raise InputError(f"{shown}: video stream has no frames")
        if duration <= 0:
            duration = frames / fps
        check_duration(duration, p, limits)
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
        return VideoInfo(
            path=shown,
            container=c.format.name,
            codec=cc.name,
            width=width,
            height=height,
            fps=fps,
            time_base=f"{tb.numerator}/{tb.denominator}",
            frame_count=frames,
            duration=duration,
            pix_fmt=cc.pix_fmt or "unknown",
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
    return n  # the caller closes the container: no seek back (FLV and SWF inputs refuse one)


def stream_seconds(vs) -> float:
    """The time a stream says it shows (after its edit list), 0 when it does not say."""
    return float(vs.duration * vs.time_base) if vs.duration and vs.time_base else 0.0


class DecodeStats:
    """What a streaming decode had to skip: corrupt packets, and frames the container promised but lacked.

    `declared` is the stream's frame count (for MP4/MOV: the samples it holds) and `declared_seconds` the time it
    says it shows. They differ where an edit list shows part of the samples (a clip trimmed by its edit list: 129
    samples, 78 shown): frames missing from the count but not from that time are not missing."""

    def __init__(self, path, declared: int = 0, limits: Limits = DEFAULT_LIMITS, declared_seconds: float = 0.0):
        self.path, self.declared, self.frames, self.corrupt = path, declared, 0, 0
        self.limits = limits
        self.declared_seconds = declared_seconds
        self.first_time: float | None = None
        self.last_time: float | None = None

    def check(self, frame: av.VideoFrame) -> None:
        """Guards on what is really decoded (headers can lie): the size and the time of every frame, counted from
        the first frame's (a broadcast capture's clock starts anywhere: an MPEG-TS at 10 h is not 10 h long)."""
        self.frames += 1
        check_size(frame.width, frame.height, self.path, self.limits)
        if frame.time is not None:
            if self.first_time is None:
                self.first_time = frame.time
            self.last_time = frame.time if self.last_time is None else max(self.last_time, frame.time)
            check_duration(frame.time - self.first_time, self.path, self.limits)

    def warn(self) -> None:
        """One warning saying what was skipped, if anything (the output covers the rest)."""
        shown = display_path(self.path)
        if self.corrupt:
            log.warning("%s: skipped %d corrupt packet(s); %d frames decoded", shown, self.corrupt, self.frames)
        if self.frames and self.frames + self.corrupt < self.declared and not self._shown_in_full():
            log.warning("%s: only %d of the %d frames the container declares could be read "
                        "(truncated file?); using those", shown, self.frames, self.declared)

    def _shown_in_full(self) -> bool:
        """Whether the decoded frames span the time the stream says it shows (to within two frame intervals)."""
        if self.declared_seconds <= 0 or self.first_time is None or self.last_time is None or self.frames < 2:
            return False
        span = self.last_time - self.first_time
        return span >= self.declared_seconds - 2.0 * span / (self.frames - 1)


def decode_packet(packet: av.Packet) -> list:
    """packet.decode(), but an empty packet inside the stream (the Ogg demuxer gives Theora one after its
    headers) decodes to nothing: sent to the decoder it would be the end-of-stream signal, after which every
    packet fails. The demuxer's own end-of-stream packet (empty, no timestamp) still drains the decoder."""
    if not packet.size and packet.pts is not None:
        return []
    return packet.decode()


def decode_packets(container, stream, stats: DecodeStats, streams=None) -> Iterator[tuple]:
    """Demux and decode, skipping corrupt packets (counted in `stats`): yields (packet, frames of that packet).

    With `streams`, packets of those other streams are passed through with frames=None.
    """
    for packet in container.demux(streams or [stream]):
        if packet.stream is not stream:
            yield packet, None
            continue
        try:
            frames = decode_packet(packet)
        except av.error.FFmpegError:  # what the decoder refuses is one corrupt packet (Theora: EPERM, EINVAL)
            stats.corrupt += 1
            continue
        for frame in frames:
            stats.check(frame)
        yield packet, frames


def iter_frames(path: str | Path, *, threads: int = 0, declared: int = 0, limits: Limits = DEFAULT_LIMITS
                ) -> Iterator[av.VideoFrame]:
    """Decode every video frame in presentation order, streaming. Corrupt packets are skipped with a warning."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        vs.thread_type = "AUTO"
        if threads:
            vs.codec_context.thread_count = threads
        stats = DecodeStats(p, declared, limits, stream_seconds(vs))
        for _packet, frames in decode_packets(c, vs, stats):
            yield from frames
            if stats.frames % TRIM_EVERY < len(frames):
                release_memory()
        stats.warn()


@dataclass
class ProxyFrame:
    """A frame of the analysis proxy: downscaled, in the source's frame numbering."""

    index: int
    time: float
    bgr: np.ndarray  # (h, w, 3) uint8, the proxy size
    gray: np.ndarray  # (h, w) uint8
    # On analysis frames only (Setup.proxies): the picture at twice the proxy's width (at most the source's), where
    # the face check judges boxes too small on the proxy. An image, not the decoded frame: a frame held in the
    # read-ahead queue pins the decoder's buffers (the overlapped encode's analysis grew by 36 MiB holding them).
    detail: np.ndarray | None = None


def proxy_size(width: int, height: int, target_width: int = 320) -> tuple[int, int]:
    """Proxy frame size: `target_width` wide (never upscaled), even dimensions, aspect kept."""
    w = min(target_width, width)
    h = max(2, int(round(height * w / width / 2)) * 2)
    return max(2, w - w % 2), h


def iter_proxy(path: str | Path, size: tuple[int, int], declared: int = 0, limits: Limits = DEFAULT_LIMITS,
               threads: int = 0) -> Iterator[tuple[int, av.VideoFrame, ProxyFrame]]:
    """Yield (index, source frame, proxy frame) for every frame. swscale does the downscale (cheap). `threads`:
    the decoder's (0: FFmpeg's choice)."""
    w, h = size
    # One reformatter for the whole run: frame.reformat() makes a fresh swscale context every call, which cost
    # more than the scaling itself (60 s of 720p: 2.9 CPU-s over the decode, 1.0 s with this and cvtColor).
    import cv2  # here, not at the top: the plain encode reads this module and never needs OpenCV

    scaler = VideoReformatter()
    for i, frame in enumerate(iter_frames(path, threads=threads, declared=declared, limits=limits)):
        bgr = scaler.reformat(frame, width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)  # BT.601 luma weights, rounded
        t = float(frame.time) if frame.time is not None else 0.0
        yield i, frame, ProxyFrame(index=i, time=t, bgr=bgr, gray=gray)


# How long close() waits for a worker thread that was told to stop. It needs one frame's decode at most (it
# checks the stop flag between frames); the bound only matters when the worker can never finish (see close()).
STOP_GRACE_SECONDS = 10.0


class ReadAhead(Iterator[T]):
    """Iterate over `items`, produced in a worker thread up to `depth` items ahead of the consumer.

    For a decode: FFmpeg's decoder and swscale run without the GIL, so the next frames are decoded while the
    caller works on this one (and while it loads models before asking for its first frame) instead of the
    decoder idling between the caller's requests. The worker starts at construction. An exception in the worker
    is raised by next(); close() (or the end of a `with` block) stops the worker, which closes `items` in its
    own thread, and waits for it (up to STOP_GRACE_SECONDS), so the file is closed when close() returns.
    """

    _END = object()

    def __init__(self, items: Iterator[T], depth: int):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._worker = threading.Thread(target=self._work, name="read-ahead", daemon=True)
        self._worker.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._put(self._END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(_Failure(e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is self._END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        self._done = True
        self._stop.set()
        # Bounded: a Ctrl-C can land while the consumer holds the queue's lock inside Queue.get() (the lock's
        # `with` is not interrupt-safe) and leave it held; the worker then never returns and an unbounded join
        # would hang the exit. The worker is a daemon thread, so one left behind does not keep the process up.
        self._worker.join(timeout=STOP_GRACE_SECONDS)

    def __enter__(self) -> "ReadAhead[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Failure:
    error: BaseException


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane of a decoded frame as (h, w) uint8 (8-bit formats; higher depths are scaled down)."""
    if frame.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return arr[:, : frame.width]


def audio_seconds(path: str | Path, stream: int = 0) -> float | None:
    """The declared duration of one audio stream (the container's when the stream has none; 0 when neither
    says); None when the file has no such stream."""
    p = Path(path)
    with open_input(p) as c:
        if len(c.streams.audio) <= stream:
            return None
        a = c.streams.audio[stream]
        if a.duration and a.time_base:
            return float(a.duration * a.time_base)
        return c.duration / av.time_base if c.duration else 0.0


def iter_audio(path: str | Path, sample_rate: int = 16000, stream: int = 0) -> Iterator[np.ndarray]:
    """One audio stream as mono float32 PCM at `sample_rate`, a decoded frame at a time (nothing when the file
    has no such stream): long soundtracks are read without holding them whole."""
    p = Path(path)
    with open_input(p) as c:
        if len(c.streams.audio) <= stream:
            return
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
        try:
            for packet in c.demux(c.streams.audio[stream]):
                for frame in decode_packet(packet):
                    for out in resampler.resample(frame):
                        yield out.to_ndarray()[0]
        except av.error.InvalidDataError:
            pass  # keep what decoded; a corrupt tail should not lose the rest
        for out in resampler.resample(None):
            yield out.to_ndarray()[0]


def decode_audio(path: str | Path, sample_rate: int = 16000, stream: int = 0) -> np.ndarray | None:
    """Decode one audio stream to mono float32 PCM at `sample_rate`; None when the file has no audio.

    Written into one array sized from the declared duration (grown by half when that was short), not a list of
    chunks concatenated at the end: that held the PCM two to three times over (30 min of audio at 16 kHz: 110 MiB
    of samples, 461 MiB peak)."""
    seconds = audio_seconds(path, stream)
    if seconds is None:
        return None
    pcm = np.empty(int((seconds or 60.0) * sample_rate) + sample_rate, np.float32)
    n = 0
    for x in iter_audio(path, sample_rate, stream):
        if n + len(x) > len(pcm):
            pcm = np.resize(pcm, max(n + len(x), len(pcm) * 3 // 2))
        pcm[n:n + len(x)] = x
        n += len(x)
    return pcm[:n].copy() if n < len(pcm) * 0.9 else pcm[:n]


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


def packet_bits(path: str | Path) -> np.ndarray:
    """Bits of each video frame of a file, in presentation order, from its packet sizes (no decode)."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        sizes = sorted((pkt.pts, pkt.size) for pkt in c.demux(vs) if pkt.size and pkt.pts is not None)
    return np.asarray([s * 8 for _, s in sizes], np.int64)


def keyframe_indices(path: str | Path) -> list[int]:
    """Frame numbers (presentation order) of the random-access (IDR) frames, read from packet flags."""
    p = Path(path)
    with open_input(p) as c:
        vs = _video_stream(c, p)
        stamps = [(pkt.pts, pkt.is_keyframe) for pkt in c.demux(vs) if pkt.size and pkt.pts is not None]
    stamps.sort()
    return [i for i, (_, key) in enumerate(stamps) if key]
