"""The assisted encode with the analysis running beside the encoder (issue 16).

A plain x264/x265 encode leaves part of the cores idle (x264 medium on 2 cores: ~73 % busy on 720p); the
analysis used to run before the encode, on the same cores, and add its whole time. Here the segmented analysis
(analysis.segments) runs in a forked process and finishes the plan segment by segment (QP offsets, cuts); the encoder
follows a second behind it (LivePlan.lookahead), so every frame's offsets and IDR flag are final when it is
encoded. The encoder decodes the source itself (a second, full-resolution decode): holding the
source frames for the lookahead would cost more memory than the proxy decode costs time.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policies.keyframes import keyframes
from policies.qp import offsets_at

import codec_assist.media.decode as media
from codec_assist.analysis.pipeline import AnalyzeOptions, prepare
from codec_assist.analysis.forked import Sender, enter_child, is_log_record, log_to, start_child, tell
from codec_assist.analysis.segments import Segment, analyze_segments
from codec_assist.framestore import FrameStack, FrameStore
from codec_assist.planning.plan import PlanOptions, gop_frames, make_offsets, plan_model
from codec_assist.errors import CodecAssistError
from codec_assist.schemas import EncodePlan, EncodeResult, StageSeconds, VideoInfo

log = logging.getLogger("codec_assist")
# On a quiet machine the analysis process runs at a lower priority: it takes the cores the encoder leaves idle and
# yields them when the encoder wants them (60 s of 720p, x264 medium on 2 cores: 36.9-40.1 s at equal priority, 33.9 s
# at nice 10). Not while other processes keep the cores busy: there the lowered analysis starves behind them, the
# encoder waits for it, and the overlapped encode took 86 s where the analysis first took 55 s and the analysis beside
# the encoder at its own priority 50 s (two busy loops in the same session, docs/BENCHMARKS.md). A priority once
# lowered cannot be raised again without privileges, so the analysis lowers it only after a segment during which
# other processes used less than QUIET_CORES.
NICENESS = 10
QUIET_CORES = 0.5
# Seconds of video per segment (after the first ones, 2 s and 4 s, which let the encoder start soon): shorter
# segments repeat more context (1.5 s each); on 60 s of 720p, with every segment the same length, 8 s gave 33.9 s
# against 38.6 s with 4 s segments.
SEGMENT_S = 8.0
LOOKAHEAD_S = 1.0
# The analysis's proxy decoder: one thread. FFmpeg's choice (a frame thread per core, plus one) holds a frame and a
# context per thread; beside the encoder the cores are the encoder's, and one thread decodes 720p ~10x faster than
# x264 medium encodes it (60 s of 720p: the two processes' peak PSS 463-469 MiB, 480-484 with FFmpeg's choice;
# wall time unchanged).
DECODE_THREADS = 1


class LivePlan:
    """The plan as the segmented analysis finishes it; the encoder asks for each frame's IDR flag and offsets
    (at()) and waits until the analysis is `lookahead` frames past that frame, or done."""

    def __init__(self, info: VideoInfo, options: PlanOptions):
        self.info, self.options = info, options
        self.min_gop, self.max_gop = gop_frames(options, info.fps)
        # The encoder's distance behind the analysis: the next keypoint (offsets are interpolated between them,
        # 1/3 s apart) and the IDR policy's horizon. A max GOP (10 s) would give the whole-video plan's IDRs in every
        # gap up to 20 s, but the encoder would wait for 10 s more analysis first; with 1 s, a gap between 10 and
        # 11 s gets its one extra IDR at 10 s instead of in its middle, and the encode starts seconds sooner.
        self.lookahead = max(1, round(LOOKAHEAD_S * info.fps))
        self.model = plan_model(info, options, [0], [0])  # for the encoder's options (block size, AQ)
        self.cuts: list[int] = []
        self.hard_cuts: list[int] = []  # the cuts that get an IDR
        self.frames: list[int] = []  # keypoints (analysis frames) with final offsets, in order
        self.offsets = FrameStore()  # keypoint k -> its (by, bx) offsets
        self.ready = 0  # frames [0, ready) are analysed
        self.done = False
        self.error: BaseException | None = None
        self.waited = 0.0  # the encoder's seconds in at(), waiting for the analysis
        self._cond = threading.Condition()
        self._keys: set[int] = set()
        self._keys_until = 0  # the IDR decisions before this frame are final

    # ---- the analysis side
    def add(self, part: "PlannedSegment") -> None:
        with self._cond:
            for f, grid in zip(part.frames, part.offsets):
                self.offsets[len(self.frames)] = grid
                self.frames.append(f)
            self.cuts += part.cuts
            self.hard_cuts += part.hard_cuts
            self.ready = part.end
            self.done = part.last
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()

    # ---- the encoder side
    def at(self, index: int) -> tuple[bool, np.ndarray | None]:
        """(whether `index` is a forced IDR, its QP offsets or None); waits for the analysis as needed."""
        t = time.perf_counter()
        with self._cond:
            while self.error is None and not self.done and self.ready <= index + self.lookahead:
                self._cond.wait(0.1)  # a timeout, so that Ctrl-C reaches the encoder's thread
            self.waited += time.perf_counter() - t
            if self.error is not None:
                raise self.error
            if index >= self._keys_until:
                end = self.ready
                self._keys = set(keyframes(self.hard_cuts, end, self.min_gop, self.max_gop, lookahead=self.lookahead,
                                           open_end=not self.done))
                self._keys_until = end if self.done else end - self.lookahead
            grid = offsets_at(index, self.frames, self.offsets, [0, *self.cuts])
            return index in self._keys, grid

    def final(self, frame_count: int, source: str = "") -> tuple[EncodePlan, dict[str, np.ndarray]]:
        """The plan as a whole, once the analysis is done (for --save-plan and the report)."""
        info = self.info.model_copy(update={"frame_count": frame_count})
        keys = keyframes(self.hard_cuts, frame_count, self.min_gop, self.max_gop, lookahead=self.lookahead)
        plan = plan_model(info, self.options, keys, [0, *self.cuts], source)
        shape = (plan.blocks_y, plan.blocks_x)
        return plan, {"qp/frames": np.asarray(self.frames, np.int64),
                      "qp/offsets": FrameStack(self.offsets, range(len(self.frames)), shape, np.float32)}


@dataclass
class PlannedSegment:
    """One segment's share of the plan: its cuts and its keypoints' final offsets (what crosses the process
    boundary: a few hundred KiB a segment)."""

    end: int
    last: bool
    cuts: list[int]
    hard_cuts: list[int]
    frames: list[int]
    offsets: list[np.ndarray]
    seconds: float


def plan_segment(seg: Segment, known_cuts: list[int], info: VideoInfo, options: PlanOptions) -> PlannedSegment:
    """The policies on one segment: offsets for its keypoints in [start, end), smoothed and mean-zero per shot over
    all the frames it analysed (its context included), with the cuts known so far. Pure."""
    frames = seg.arrays["importance/frames"]
    hi = int(frames[-1]) + 1 if len(frames) else seg.end
    starts = [seg.lo] + [c for c in known_cuts if c > seg.lo] + seg.cuts
    offsets = make_offsets(seg.arrays, info.width, info.height, info.fps, hi, starts, options)
    keep = [k for k, f in enumerate(frames) if seg.start <= f < seg.end]
    return PlannedSegment(end=seg.end, last=seg.last, cuts=list(seg.cuts),
                          hard_cuts=list(seg.hard_cuts), frames=[int(frames[k]) for k in keep],
                          offsets=[np.asarray(offsets[k], np.float32) for k in keep], seconds=seg.seconds)


def _analyse(conn, inp: Path, analyze_options: AnalyzeOptions, plan_options: PlanOptions, limits: media.Limits,
             segment_s: float, parent: int) -> None:
    """The analysis process: segments -> planned segments down the pipe; an error and log records go down it too."""
    conn = Sender(conn)
    try:
        enter_child(parent)
        # large blocks unmapped when freed, two malloc arenas: this process's peak adds to the encoder's (the two
        # processes' peak PSS on 60 s of 720p, docs/BENCHMARKS.md, nineteenth session)
        media.lean_heap()
        log_to(conn)
        others = OtherLoad((parent, os.getpid()))
        setup = prepare(inp, analyze_options, limits)
        cuts: list[int] = []
        for seg in analyze_segments(inp, analyze_options, limits, setup=setup, segment_s=segment_s,
                                    decode_threads=DECODE_THREADS):
            part = plan_segment(seg, cuts, setup.info, plan_options)
            cuts += part.cuts
            conn.send(part)
            if others is not None and others.cores() < QUIET_CORES:
                _lower_priority(NICENESS)
                others = None
    except BaseException as e:  # noqa: BLE001 - the encoder's side raises it
        try:
            conn.send(e)
        except Exception:  # noqa: BLE001 - not picklable: say what it was
            conn.send(CodecAssistError(f"the analysis failed: {type(e).__name__}: {e}"))
    finally:
        conn.close()


class OtherLoad:
    """How many cores processes other than `ours` kept busy between two readings, from /proc/stat's busy time less
    our processes' CPU time (all their threads). Linux; elsewhere cores() says the machine is quiet."""

    def __init__(self, ours: tuple[int, ...]):
        self.ours = ours
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self._read()

    def _read(self) -> tuple[float, int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
            busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait (guest time is within user)
            busy -= sum(fields[8:10]) if len(fields) > 9 else 0
            own = 0
            for pid in self.ours:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                own += int(stat[11]) + int(stat[12])  # utime, stime: fields 14 and 15
            return time.monotonic(), busy, own
        except (OSError, ValueError, IndexError):
            return None

    def cores(self) -> float:
        """Cores the others kept busy since the last call (0.0 when /proc cannot say)."""
        now, last = self._read(), self.last
        self.last = now
        if now is None or last is None or now[0] - last[0] <= 0:
            return 0.0
        return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / self.hz / (now[0] - last[0]))


def _lower_priority(niceness: int) -> None:
    """Every thread of this process at `niceness` (Linux keeps a nice value per thread; the threads started from here
    on inherit it from the ones that start them)."""
    for _ in range(2):  # a thread started while the first pass ran is caught by the second
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tids = [0]
        for tid in tids:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))
            except OSError:
                pass


# Overlapping pays only where the encoder is the heavier side and leaves cores idle: the analysis costs about the
# same per frame at any size (a 320 px proxy), the encoder grows with the pixels and the preset. x264 left ~27 % of
# 2 cores idle while PyAV ran it on sliced threads, and overlapping won there (60 s of 720p at medium: faster in 8
# of 8 pairs). On x264's frame threads, as the encode now runs, it keeps both cores busy: 25.3-26.1 s overlapped
# against 24.0-24.4 s with the analysis first; x265 (91 % busy) was slower overlapped too; x264 at 480p and 360p
# 1.5-5.4 s slower (docs/BENCHMARKS.md, issue 16). So no codec overlaps by default; a codec added here would.
MIN_PIXELS = 1280 * 720
PRESETS = ("medium", "slow", "slower", "veryslow", "placebo")
CODECS: tuple[str, ...] = ()


def worth_overlapping(info: VideoInfo, codec: str, preset: str, segment_s: float = SEGMENT_S) -> bool:
    """Whether overlapping pays: a codec of CODECS (none today), 720p or more, preset medium or slower, and longer than
    two segments (on a short clip the segments only add their context's work to an analysis over in a second or two)."""
    return (codec in CODECS and info.width * info.height >= MIN_PIXELS and preset in PRESETS
            and info.frame_count > 2 * round(segment_s * info.fps))


def encode_overlapped(inp: Path, out: Path, *, codec: str, preset: str, rate, params: dict[str, str],
                      analyze_options: AnalyzeOptions, plan_options: PlanOptions, limits: media.Limits,
                      overwrite: bool, progress: bool, segment_s: float = SEGMENT_S
                      ) -> tuple[EncodeResult, EncodePlan, dict[str, np.ndarray]]:
    """The assisted encode of `inp` with the segmented analysis running beside the encoder. Returns the encode
    result (its timing says how long the encoder waited for the analysis) and the whole plan."""
    from codec_assist.encoding.x26x import encode as x26x_encode

    info = media.probe(inp, limits)
    live = LivePlan(info, plan_options)
    # A process, not threads: beside the encoder's Python loop, analysis threads made the overlapped encode slower
    # than the analysis first (49.0 s against ~37 s on 60 s of 720p: the GIL passes between them at every call); a
    # forked process shares the imports and is ready at once.
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_analyse, name="codec-assist-analysis", daemon=True,
                        args=(send, inp, analyze_options, plan_options, limits, segment_s, os.getpid()))
    start_child(child)
    send.close()
    analysed = {"seconds": 0.0}

    def pump() -> None:
        try:
            while True:
                part = receive.recv()  # waits without the GIL
                if is_log_record(part):
                    tell(part)
                    continue
                if isinstance(part, BaseException):
                    live.fail(part)
                    return
                live.add(part)
                analysed["seconds"] += part.seconds
                if part.last:
                    return
        except EOFError:
            live.fail(CodecAssistError("the analysis process ended before the video did"))

    reader = threading.Thread(target=pump, name="analysis-pipe", daemon=True)
    reader.start()
    try:
        result = x26x_encode(inp, out, codec=codec, rate=rate, preset=preset, plan=live.model, live=live,
                             params=params, progress=progress, overwrite=overwrite, limits=limits)
    finally:
        if child.is_alive() and not live.done:
            child.terminate()  # the encoder stopped first (an error, Ctrl-C): the analysis is not needed
        child.join(timeout=5)
        receive.close()
    plan, arrays = live.final(result.frames, source=media.display_path(inp))
    timing = result.timing or StageSeconds()
    result.timing = timing.model_copy(update={
        "analyzers": {"analysis (overlapped, waited)": live.waited},
        "encode": max(0.0, timing.encode - live.waited)})
    result.seconds_analysis = live.waited
    log.info("analysis beside the encoder: %.1f s of analysis, of which the encoder waited %.1f s",
             analysed["seconds"], live.waited)
    return result, plan, arrays
