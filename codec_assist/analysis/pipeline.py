"""Analysis: decode the source once into a small proxy, run every selected analyzer on it (each isolated: one that
fails is skipped with a warning), and fuse their signals into the importance map."""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from pydantic import BaseModel, Field
from tqdm import tqdm

import analyzers
from analyzers.base import AnalysisContext, Analyzer, AnalyzerOutput, Skip

import codec_assist.media.decode as media
from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import ProxyFrame
from codec_assist.framestore import stack
from codec_assist.fusion.attention import DEFAULT_WEIGHTS, TEMPERATURE, fuse
from codec_assist.models import ModelUnavailable
from codec_assist.timing import Stopwatch
from codec_assist.schemas import (
    Analysis,
    AnalyzerRun,
    FocusPrompt,
    ImportanceInfo,
    Shot,
    SignalInfo,
    StageSeconds,
    VideoInfo,
)

log = logging.getLogger("codec_assist")
# How far the decode may run ahead of the analyzers: the proxies' bytes in the read-ahead queue, and the frames an
# analyzer's lane may lag behind (the frames are shared with the other lanes)
READ_AHEAD_BYTES = 16 << 20
LANE_DEPTH = 24



class AnalyzeOptions(BaseModel):
    analyzers: list[str] = list(analyzers.DEFAULT)
    proxy_width: int = Field(320, ge=32, le=1920)
    analysis_fps: float = Field(3.0, gt=0)  # sampled frames per second for the per-frame analyzers
    grid_cell: int = Field(4, ge=1)  # proxy pixels per importance cell
    weights: dict[str, float] = dict(DEFAULT_WEIGHTS)
    asr_model: str | None = None  # faster-whisper size, HF repo id or folder; None: the shipped tiny.en
    subtitles: str | None = None  # sidecar .srt/.vtt; the subtitles analyzer runs when given
    asr: bool = True  # False drops the speech analyzer
    focus: list[FocusPrompt] = []  # text queries the regions (and the transcript) are attended with
    temperature: float = Field(TEMPERATURE, gt=0, le=1)  # of the attention softmax
    # CLIP (open_clip): a model name with a pretrained tag or a local checkpoint adds the `clip` analyzer
    clip_model: str | None = None
    clip_pretrained: str | None = None
    clip_checkpoint: str | None = None
    # analyzer name -> constructor kwargs for the selected analyzers (e.g. tagging runs OCR less often)
    analyzer_settings: dict[str, dict] = {}
    # True: this analysis only feeds an encode plan (an assisted encode or compare with no report page), so the
    # analyzers whose output cannot change the plan are skipped, each with one line saying why (unused_analyzers)
    for_plan: bool = False

    def analyzer_options(self) -> tuple[list[str], dict[str, dict]]:
        names = list(self.analyzers)
        options = {k: dict(v) for k, v in self.analyzer_settings.items() if k in names}
        if self.clip_model or self.clip_pretrained or self.clip_checkpoint:
            if "clip" not in names:
                names.append("clip")
            options["clip"] = {"model": self.clip_model or "ViT-B-32", "pretrained": self.clip_pretrained,
                               "checkpoint": self.clip_checkpoint}
        return names, options


@dataclass
class Setup:
    """What an analysis knows before its first frame: the video, the proxy and grid sizes, the sampled frames,
    the analyzers that will run (with their options) and those left out (with why)."""

    info: VideoInfo
    proxy: tuple[int, int]  # (w, h)
    grid: tuple[int, int]  # (h, w)
    planned: frozenset[int]
    names: list[str]
    unit_options: dict[str, dict]
    unused: dict[str, str]

    def context(self) -> AnalysisContext:
        (pw, ph), (gh, gw) = self.proxy, self.grid
        return AnalysisContext(video=self.info, proxy_w=pw, proxy_h=ph, grid_h=gh, grid_w=gw,
                               analysis_frames=self.planned, analyzers=frozenset(self.names))

    def build(self, names: list[str], **overrides: dict) -> list[Analyzer]:
        """The analyzers `names` with their options (`overrides`: analyzer name -> options that win)."""
        options = {k: v for k, v in self.unit_options.items() if k in names}
        for k, v in overrides.items():
            if k in names:
                options[k] = {**options.get(k, {}), **v}
        return analyzers.build(names, **options)

    def proxies(self, path: str | Path, limits: media.Limits, threads: int = 0, budget: int = READ_AHEAD_BYTES
                ) -> "media.ReadAhead":
        """The proxy frames as (index, ProxyFrame), decoded in a worker thread ahead of the analyzers, at most
        `budget` bytes of them (`threads`: the decoder's, 0 for FFmpeg's choice)."""
        pw, ph = self.proxy
        # analysis frames carry a sharper picture where the faces analyzer runs (it judges small faces on it) and
        # the source is larger than the proxy
        detail = media.proxy_size(self.info.width, self.info.height, 2 * pw)
        sharper = "faces" in self.names and detail != (pw, ph)

        def frames():
            scaler = media.VideoReformatter()
            with contextlib.closing(media.iter_proxy(path, (pw, ph), declared=self.info.frame_count, limits=limits,
                                                     threads=threads)) as decoded:
                for i, frame, proxy in decoded:
                    if sharper and i in self.planned:
                        proxy.detail = scaler.reformat(frame, width=detail[0], height=detail[1], format="bgr24",
                                                       interpolation="AREA").to_ndarray()
                    yield i, proxy

        step = (self.info.frame_count + 1) / max(1, len(self.planned))  # frames per analysis frame
        extra = 3 * detail[0] * detail[1] / step if sharper else 0.0
        return media.ReadAhead(frames(), depth=_read_ahead_depth(pw, ph, extra, budget))


def prepare(path: str | Path, opt: AnalyzeOptions, limits: media.Limits = media.DEFAULT_LIMITS) -> Setup:
    """Probe the video and choose the analyzers (the ones that cannot change a plan-only analysis are left out,
    each with one line saying why)."""
    info = media.probe(path, limits)
    pw, ph = media.proxy_size(info.width, info.height, opt.proxy_width)
    gh, gw = max(1, ph // opt.grid_cell), max(1, pw // opt.grid_cell)
    step = max(1, round(info.fps / opt.analysis_fps))
    planned = frozenset(range(0, info.frame_count + step, step))
    names, unit_options = _audio_text_setup(path, opt)
    clip_names, clip_options = opt.analyzer_options()
    names += [n for n in clip_names if n not in names]
    for k, v in clip_options.items():  # the knobs above (model, subtitles path) win over analyzer_settings
        unit_options[k] = {**v, **unit_options.get(k, {})}
    unused = unused_analyzers(opt, names, bool(info.audio))
    for name, why in unused.items():
        log.info("%s", why)
    names = [n for n in names if n not in unused]
    return Setup(info=info, proxy=(pw, ph), grid=(gh, gw), planned=planned, names=names, unit_options=unit_options,
                 unused=unused)


def analyze(path: str | Path, options: AnalyzeOptions | None = None, progress: bool = False,
            limits: media.Limits = media.DEFAULT_LIMITS) -> tuple[Analysis, dict[str, np.ndarray]]:
    """Decode once into the analysis proxy, run every analyzer, fuse into the importance map."""
    opt = options or AnalyzeOptions()
    t0 = time.perf_counter()
    setup = prepare(path, opt, limits)
    info = setup.info
    units: list[Analyzer] = setup.build(setup.names)
    runs = {u.name: AnalyzerRun(name=u.name, seconds=0.0, frames_seen=0) for u in units}
    runs.update({n: AnalyzerRun(name=n, seconds=0.0, frames_seen=0, status="skipped", message=why)
                 for n, why in setup.unused.items()})
    bar = tqdm(total=info.frame_count, unit="f", desc="analyze", disable=not progress, leave=False)
    # The decode runs ahead in a worker thread from here on, so it overlaps the models' loading in start()
    # and each analyzer's work; only the proxies queue up (a bounded few MiB), not the source frames.
    proxies = setup.proxies(path, limits)
    try:
        run = run_units(units, setup.context(), proxies, runs, setup.planned, bar)
    finally:
        proxies.close()
        bar.close()
    n = run.frames
    if n == 0:
        raise CodecAssistError(f"{path}: no video frame could be decoded")
    if n != info.frame_count:
        info = info.model_copy(update={"frame_count": n})
    frames = [f for f in range(n) if f in setup.planned]
    outputs = run.outputs
    shots = next((o.shots for o in outputs.values() if o.shots is not None), None)
    shots = _clip_shots(shots, n)
    fused, arrays, signals, tokens = fuse_outputs(outputs, frames, setup.grid, opt)
    gh, gw = setup.grid
    # subtitles (listed first) over ASR: a subtitle file is usually the better text
    transcript = next((o.transcript for o in outputs.values() if o.transcript is not None), None)
    audio_segments = [s for o in outputs.values() for s in o.audio_segments or []]
    pw, ph = setup.proxy
    analysis = Analysis(
        video=info, proxy_width=pw, proxy_height=ph, analysis_frames=frames, shots=shots, tokens=tokens,
        signals=signals,
        importance=ImportanceInfo(grid_h=gh, grid_w=gw, top_tokens=fused.top_tokens, weights=opt.weights,
                                  fusion=fused.method, top_weights=fused.top_weights, top_queries=fused.top_queries,
                                  queries=fused.queries, temperature=opt.temperature),
        analyzers=list(runs.values()), seconds=time.perf_counter() - t0, transcript=transcript,
        audio_segments=audio_segments,
    )
    # the stages say where the wall time went: an analyzer counts for what the main thread waited on it (its
    # AnalyzerRun.seconds is its own work, in its lane, overlapping the others')
    timing = StageSeconds(decode=run.decode_seconds, fusion=fused.seconds,
                          analyzers={r.name: run.waited.get(r.name, 0.0) for r in analysis.analyzers
                                     if r.seconds > 0 or r.status == "ok"})
    analysis.timing = timing.closed(analysis.seconds)
    return analysis, arrays


@dataclass
class UnitsRun:
    outputs: dict[str, AnalyzerOutput]  # by analyzer name, for the analyzers that finished
    frames: int  # frames fed (the last index + 1)
    decode_seconds: float  # the time the analyzers waited for the next proxy frame
    waited: dict[str, float]  # the caller's time on each analyzer: start, finish, its lane's waits


def run_units(units: list[Analyzer], ctx: AnalysisContext, proxies: Iterable[tuple[int, ProxyFrame]],
              runs: dict[str, AnalyzerRun], planned: frozenset[int], bar=None, lane_depth: int = LANE_DEPTH
              ) -> UnitsRun:
    """Start the analyzers, feed them `proxies` (each analyzer in a lane of its own, lagging the decode by at most
    `lane_depth` frames), finish them. An analyzer that fails is dropped with a warning; an error that must stop
    the analysis abandons them all."""
    live = list(units)
    n = 0
    decode = Stopwatch()
    lanes: dict[str, _Lane] = {}
    waited = {u.name: 0.0 for u in units}
    try:
        try:
            # the analyzers that read the file themselves (speech, audio) start first: their work runs in the
            # background from then on, beside the other analyzers' model loading and the decode
            for u in sorted(units, key=lambda u: u.needs_pictures):
                t = time.perf_counter()
                _guarded(u, runs, live, lambda: u.start(ctx))
                waited[u.name] += time.perf_counter() - t
            lanes = {u.name: _Lane(u, runs, live, lane_depth) for u in live}
            for i, proxy in decode.iterate(proxies):
                sampled = i in planned
                for u in list(live):
                    if u.every_frame or sampled:
                        lanes[u.name].put(proxy)
                n = i + 1
                if bar is not None:
                    bar.update()
            for lane in lanes.values():
                lane.close()  # waits for the frames still queued
        finally:
            for lane in lanes.values():
                lane.close(abandon=True)
                waited[lane.unit.name] += lane.waited
        outputs = {}
        for u in list(live):
            t = time.perf_counter()
            out = _guarded(u, runs, live, u.finish)
            waited[u.name] += time.perf_counter() - t
            if out is not None:
                outputs[u.name] = out
    except BaseException:
        # an error or Ctrl-C: work an analyzer runs in the background (Whisper on a long file) stops now,
        # instead of holding the exit until it ends
        for u in units:
            u.abandon()
        raise
    return UnitsRun(outputs=outputs, frames=n, decode_seconds=decode.seconds, waited=waited)


def fuse_outputs(outputs: dict[str, AnalyzerOutput], frames: list[int], grid: tuple[int, int],
                 opt: AnalyzeOptions):
    """The analyzers' outputs on the analysis `frames` -> (fused importance, arrays, signal infos, tokens).
    `fused.seconds` is the time the fusion took."""
    gh, gw = grid
    tokens = [t for o in outputs.values() for t in o.tokens]
    maps = {name: o.maps for name, o in outputs.items() if o.maps}
    arrays: dict[str, np.ndarray] = {}
    signals = []
    for o in outputs.values():
        for name, series in o.signals.items():
            if f"signal/{name}" in arrays:
                continue  # two analyzers gave the same signal (subtitles and speech: sentiment): first wins
            arrays[f"signal/{name}"] = np.array([series.get(f, np.nan) for f in frames], np.float32)
            signals.append(o.signal_info.get(name, SignalInfo(name=name)))
    t_fuse = time.perf_counter()
    fused = fuse(maps, frames, (gh, gw), opt.weights, tokens=tokens, focus=opt.focus, temperature=opt.temperature,
                 signals={s.name: arrays[f"signal/{s.name}"] for s in signals})
    fused.seconds = time.perf_counter() - t_fuse
    empty = np.zeros((gh, gw), np.float16)
    for o in outputs.values():
        for name, by_frame in o.grids.items() if frames else ():
            # frame by frame into a FrameStore, never one stacked array: on a two-hour film the texture grid alone
            # was ~0.5 GB in RAM while stacked (float32, then its float16 copy)
            arrays[f"{name}/grid"] = stack((by_frame[f].astype(np.float16) if f in by_frame else empty
                                            for f in frames), (gh, gw), np.float16)
    arrays.update({
        "importance/frames": np.asarray(frames, np.int64),
        "importance/scalar": fused.scalar,
        "importance/grid": fused.grid.astype(np.float16),
        "importance/temporal": fused.temporal,
    })
    return fused, arrays, signals, tokens


def _read_ahead_depth(proxy_w: int, proxy_h: int, extra: float = 0.0, budget: int = READ_AHEAD_BYTES) -> int:
    """Proxy frames the decode may run ahead of the analyzers: a fixed memory budget (BGR + gray each, and `extra`
    bytes a frame on average: the analysis frames' larger picture; 72 frames of a 320x180 proxy without it, ~3 s
    of video), most of what decodes while the models load at the start. 32 MiB added ~30 MiB to the peak RSS of a
    5 s 720p encode (every proxy queued at once)."""
    return max(8, int(budget // (proxy_w * proxy_h * 4 + extra)))


def unused_analyzers(opt: AnalyzeOptions, names: list[str], has_audio: bool = True) -> dict[str, str]:
    """The selected analyzers that cannot change the plan of an analysis made only for a plan (`for_plan`), each
    with the line that says so; {} otherwise.

    - speech (Whisper): its transcript matters to a plan as queries, and without a --focus prompt those only
      re-weigh ImageNet/OCR labels that happen to be said; it is also what a report page, tags, the semantic
      stream and `analyze` show, which do not use for_plan. So it runs with a focus prompt, or when asked for by
      name (asr=True given explicitly). The audio analyzer's speech/loudness moments still feed the plan.
    - imagenet: fusion weight 0, so its class blobs count only where a query (a focus prompt, a transcript or
      subtitle line) attends to them; with no query source left it runs for nothing.
    """
    if not opt.for_plan or opt.focus:
        return {}
    out = {}
    if "speech" in names and has_audio and "asr" not in opt.model_fields_set:
        out["speech"] = ("speech transcription skipped: nothing in this encode uses the transcript (no --focus "
                         "prompt, no report page); the audio analyzer's speech and loudness moments still count "
                         "(--asr runs Whisper anyway)")
    queries = [n for n in names if n == "subtitles" or (n == "speech" and has_audio and n not in out)]
    if "imagenet" in names and not queries and opt.weights.get("imagenet", 0.0) <= 0.0:
        out["imagenet"] = ("ImageNet classes skipped: with fusion weight 0 they count only where a query (--focus, "
                           "a transcript or subtitles) attends to them, and this encode has none")
    return out


def _audio_text_setup(path: str | Path, opt: AnalyzeOptions) -> tuple[list[str], dict]:
    """Analyzer names and options after the audio/text knobs: --no-asr drops speech; subtitles run (before
    speech, so their transcript wins) when a file is given or the container has a text subtitle stream."""
    from codec_assist.media.subtitles import text_subtitle_streams

    names = [n for n in opt.analyzers if opt.asr or n != "speech"]
    if "subtitles" not in names and (opt.subtitles or text_subtitle_streams(path)):
        names.insert(names.index("speech") if "speech" in names else len(names), "subtitles")
    options: dict = {}
    if "speech" in names and opt.asr_model:
        options["speech"] = {"model": opt.asr_model}
    if "subtitles" in names and opt.subtitles:
        options["subtitles"] = {"path": opt.subtitles}
    return names, options


class _Lane:
    """One analyzer's process() calls, in a thread of its own fed through a bounded queue, so the analyzers work
    side by side (OpenCV, onnxruntime and LiteRT do their work without the GIL) instead of one after another.
    Each analyzer still sees its frames one at a time and in order, so its output is what a serial loop gives.
    A failing analyzer is dropped by _guarded as before; an error that must stop the analysis (a
    CodecAssistError, Ctrl-C) is raised in the caller's thread by the next put() or close()."""

    _END = object()

    def __init__(self, unit: Analyzer, runs: dict[str, AnalyzerRun], live: list[Analyzer], depth: int = LANE_DEPTH):
        self.unit, self.runs, self.live = unit, runs, live
        self.error: BaseException | None = None
        self.waited = 0.0  # the caller's seconds in put() and close(): where this lane held the analysis up
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"analyzer-{unit.name}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        u, run = self.unit, self.runs[self.unit.name]
        while not self._abandon.is_set():
            try:
                proxy = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if proxy is self._END:
                return
            try:
                _guarded(u, self.runs, self.live, lambda: u.process(proxy))
            except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
                self.error = e
                return
            run.frames_seen += 1

    def _send(self, item) -> None:
        t = time.perf_counter()
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.05)
                break
            except queue.Full:
                continue
        self.waited += time.perf_counter() - t

    def put(self, proxy) -> None:
        if self.error is not None:
            raise self.error
        self._send(proxy)

    def close(self, abandon: bool = False) -> None:
        """Wait for the queued frames to be processed; abandon=True (on an error or Ctrl-C) drops them instead."""
        if abandon:
            # Never touch the queue here: a Ctrl-C that landed inside put() can leave the queue's lock held by
            # this very thread (a lock's `with` is not interrupt-safe), and a put would then wait forever. The
            # worker sees the flag within 0.05 s; the join is bounded for a worker stuck on that lock (a daemon
            # thread, so it does not keep the process up).
            self._abandon.set()
            grace = media.STOP_GRACE_SECONDS
        else:
            self._send(self._END)
            grace = None
        t = time.perf_counter()
        self._thread.join(timeout=grace)
        self.waited += time.perf_counter() - t
        if self.error is not None and not abandon:
            raise self.error


def _guarded(u: Analyzer, runs: dict[str, AnalyzerRun], live: list[Analyzer], call):
    """Run one analyzer step; an analyzer that fails is dropped with a warning, the others go on."""
    if u not in live:
        return None
    run = runs[u.name]
    t = time.perf_counter()
    try:
        return call()
    except ModelUnavailable as e:  # weights asked for but not here: one line, the analysis goes on without it
        live.remove(u)
        run.status, run.message = "skipped", str(e)
        log.warning("%s: %s", u.name, e)
        return None
    except CodecAssistError:
        raise
    except Skip as e:  # nothing to work on (no audio stream, no subtitles): left out, not a failure
        live.remove(u)
        run.status, run.message = "skipped", str(e)
        log.info("analyzer %s skipped: %s", u.name, run.message)
        return None
    except Exception as e:  # noqa: BLE001 - an analyzer's bug must not sink the whole analysis
        live.remove(u)
        run.status, run.message = "failed", f"{type(e).__name__}: {e}"[:300]
        log.warning("analyzer %s failed and was skipped: %s", u.name, run.message)
        return None
    finally:
        run.seconds += time.perf_counter() - t


def _clip_shots(shots: list[Shot] | None, n: int) -> list[Shot]:
    """Shots covering [0, n) exactly (the decoded frame count may differ from what the container said)."""
    by_start = {s.start_frame: s for s in shots or [] if s.start_frame < n}
    starts = sorted({0, *by_start})
    out = []
    for a, b in zip(starts, starts[1:] + [n]):
        src = by_start.get(a)
        out.append(Shot(start_frame=a, end_frame=b, cut_type="start" if a == 0 else src.cut_type,
                        confidence=src.confidence if src else 1.0))
    return out
