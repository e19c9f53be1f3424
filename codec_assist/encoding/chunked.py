"""Shot-chunked encoding of one long video: chunks in parallel (local processes or Ray), joined without re-encoding.

1. Chunks are groups of consecutive shots, at least `min_seconds` long (so tiny shots don't make tiny chunks)
   and at most `max_seconds` (a long shot is split evenly), so every chunk but the first starts on a cut.
2. Each chunk is encoded by `codec_assist.encoding.x26x.encode` over its frame range (an IDR first, the plan's QP
   offsets and IDRs inside), with its own ABR target: the even target, or the frame-weighted mean of a
   per-shot allocation {shot index: bits/s}, in two passes (CRF: one). Encoder threads per chunk =
   cores / workers.
3. The chunks' packets are remuxed (stream copy) into one file with the source's frame timestamps rewritten
   onto them, and the source's audio and subtitle tracks, chapters, metadata and rotation are carried
   (codec_assist.encoding.faithful: copied, or converted where the container needs it, with a warning).
4. Before the output appears it is checked at packet level: frame count, timestamps equal to the source's,
   an IDR at every chunk start. `verify` also decodes it fully.
"""
from __future__ import annotations

import heapq
import logging
import math
import os
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

import codec_assist.media.decode as media
from codec_assist.scale.engine import EngineOptions, run_tasks, warnings_returned
from codec_assist.errors import EncoderError, InputError
from codec_assist.media import safeio
from codec_assist.media.safeio import atomic_output, check_output
from codec_assist.schemas import EncodePlan, EncodeResult, RateControl

log = logging.getLogger("codec_assist")


def plan_chunks(shot_starts: list[int], frame_count: int, fps: float, min_seconds: float = 2.0,
                max_seconds: float = 60.0) -> list[tuple[int, int]]:
    """[start, end) frame ranges: consecutive shots merged to >= min_seconds, longer than max_seconds split evenly."""
    min_len = max(1, round(min_seconds * fps))
    max_len = max(min_len, round(max_seconds * fps))
    bounds = sorted({s for s in shot_starts if 0 < s < frame_count}) + [frame_count]
    chunks: list[tuple[int, int]] = []
    start = 0
    for b in bounds:
        if b - start >= min_len:
            chunks.append((start, b))
            start = b
    if start < frame_count:  # a short tail joins the chunk before it
        chunks[-1:] = [(chunks[-1][0] if chunks else 0, frame_count)]
    out = []
    for a, b in chunks:
        pieces = math.ceil((b - a) / max_len)
        out.extend((a + (b - a) * i // pieces, a + (b - a) * (i + 1) // pieces) for i in range(pieces))
    return out


def chunk_rates(chunks: list[tuple[int, int]], shot_starts: list[int], rate: RateControl,
                allocation: dict[int, int] | None = None) -> list[RateControl]:
    """Rate control per chunk: the target as is (evenly), or from a per-shot allocation {shot index: bits/s},
    frame-weighted over the chunk's shots (shots missing from the allocation take the target)."""
    if not allocation:
        return [rate] * len(chunks)
    if rate.mode != "abr":
        raise EncoderError("a per-shot bitrate allocation needs an ABR target (--bitrate)")
    starts = sorted({0, *shot_starts})
    ends = starts[1:] + [chunks[-1][1]]
    out = []
    for a, b in chunks:
        bits = frames = 0
        for i, (s, e) in enumerate(zip(starts, ends)):
            n = max(0, min(b, e) - max(a, s))
            bits += n * allocation.get(i, rate.bitrate)
            frames += n
        out.append(RateControl(mode="abr", bitrate=max(1000, round(bits / frames))))
    return out


def _plan_slice(plan_arrays: dict[str, np.ndarray] | None, a: int, b: int) -> dict[str, np.ndarray] | None:
    """The plan's QP keypoints inside [a, b): chunks start on shot starts, and offsets never cross a shot start,
    so a chunk needs no keypoint outside its range (and a Ray task ships only its share)."""
    if plan_arrays is None:
        return None
    frames = plan_arrays["qp/frames"]
    keep = (frames >= a) & (frames < b)
    return {"qp/frames": frames[keep], "qp/offsets": plan_arrays["qp/offsets"][keep]}


def encode_chunk(input_path: str, output_path: str, codec: str, rate: dict, preset: str, plan: dict | None,
                 plan_arrays: dict | None, params: dict, start: int, end: int, threads: int,
                 two_pass: bool = True, limits: dict | None = None) -> dict:
    """The task: one chunk through the ordinary encoder. Small arguments in, a small result out.

    An ABR chunk is encoded in two passes: one pass over a few seconds misses the target by up to a third
    (bikes.mp4 at 300k, x264 veryfast: 192-319 kb/s per chunk), two passes land within a few percent."""
    with warnings_returned() as warnings:
        result = _encode_chunk(input_path, output_path, codec, rate, preset, plan, plan_arrays, params,
                               start, end, threads, two_pass, media.Limits.model_validate(limits or {}))
    return {**result, "warnings": warnings}


def _encode_chunk(input_path, output_path, codec, rate, preset, plan, plan_arrays, params, start, end, threads,
                  two_pass, limits) -> dict:
    from codec_assist.encoding.x26x import encode

    rc = RateControl.model_validate(rate)
    kw = dict(codec=codec, rate=rc, preset=preset, plan=EncodePlan.model_validate(plan) if plan else None,
              plan_arrays=plan_arrays, params=params, start_frame=start, end_frame=end, threads=threads,
              limits=limits)
    out = Path(output_path)
    seconds = 0.0
    if two_pass and rc.mode == "abr":
        stats, first = out.with_suffix(".stats"), out.with_suffix(".pass1.mkv")
        seconds += encode(input_path, first, rc_pass=1, stats_file=stats, **kw).seconds_encode
        first.unlink()
        r = encode(input_path, out, rc_pass=2, stats_file=stats, **kw)
        for f in out.parent.glob(stats.name + "*"):
            f.unlink()
    else:
        r = encode(input_path, out, **kw)
    return {"frames": r.frames, "seconds": seconds + r.seconds_encode, "keyframes": r.keyframes}


def encode_chunked(input_path: str | Path, output_path: str | Path, *, codec: str = "x264", rate: RateControl,
                   preset: str = "medium", plan: EncodePlan | None = None,
                   plan_arrays: dict[str, np.ndarray] | None = None, params: dict[str, str] | None = None,
                   shot_starts: list[int] | None = None, allocation: dict[int, int] | None = None,
                   engine: EngineOptions | None = None, min_seconds: float = 2.0, max_seconds: float = 60.0,
                   two_pass: bool = True, progress: bool = False, overwrite: bool = False,
                   limits: media.Limits = media.DEFAULT_LIMITS) -> EncodeResult:
    """Encode `input_path` in shot chunks in parallel and join them into `output_path` (see the module doc).

    Shot starts come from the plan, else `shot_starts`, else a shots-only analysis. Chunks split at the shot
    starts that begin with an IDR (Shot.hard_cut), never inside a gradual transition.
    """
    from tqdm import tqdm

    from codec_assist.encoding.x26x import CONTAINERS, check_request
    from codec_assist.evaluation.metrics import video_bitrate_kbps

    engine = engine or EngineOptions()
    params = dict(params or {})
    check_request(codec, rate, preset, params, assisted=plan is not None)
    if min_seconds <= 0:
        raise EncoderError(f"--min-chunk must be positive, got {min_seconds:g}")
    out = check_output(output_path, input_path, overwrite=overwrite)
    fmt = CONTAINERS.get(out.suffix.lower())
    if fmt is None:
        raise EncoderError(f"output {out}: unsupported container; use one of {', '.join(CONTAINERS)}")
    info = media.probe(input_path, limits)
    stamps = media.frame_timestamps(input_path)
    if not stamps:
        raise InputError(f"{input_path}: its frames have no distinct timestamps; encode it without --chunked")
    if plan is not None:
        if plan.frame_count != len(stamps):
            raise EncoderError(f"the plan covers {plan.frame_count} frames, the input has {len(stamps)}")
        shot_starts = plan.shot_starts
        bounds = plan.idr_shot_starts  # a chunk begins with an IDR: never inside a gradual transition
    elif shot_starts is None:
        from codec_assist.analysis.pipeline import AnalyzeOptions, analyze

        analysis, _ = analyze(input_path, AnalyzeOptions(analyzers=["shots"]))
        shot_starts = [s.start_frame for s in analysis.shots]
        bounds = analysis.hard_cut_frames
    else:
        bounds = shot_starts
    chunks = plan_chunks(bounds, len(stamps), info.fps, min_seconds, max_seconds)
    rates = chunk_rates(chunks, shot_starts, rate, allocation)

    t0 = time.perf_counter()
    # beside the output (a file system the workers share), named with this process's id: a killed run's folder is
    # removed by the next one
    safeio.sweep_stale(out.parent, f".{out.name}.chunks-")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.chunks-{os.getpid()}-", dir=out.parent))
    try:
        files = [work / f"chunk{i:05d}.mkv" for i in range(len(chunks))]
        plan_dump = plan.model_dump(by_alias=True) if plan is not None else None
        tasks = {i: (str(input_path), str(files[i]), codec, rates[i].model_dump(), preset, plan_dump,
                     _plan_slice(plan_arrays, a, b), params, a, b, engine.threads(), two_pass, limits.model_dump())
                 for i, (a, b) in enumerate(chunks)}
        errors: dict[int, str] = {}
        bar = tqdm(total=len(chunks), unit="chunk", desc="chunks", disable=not progress, leave=False)

        def done(key, result, error):
            bar.update()
            for message in (result or {}).get("warnings", []):
                log.warning("%s", message)  # the CLI prints each distinct one once
            if error:
                errors[key] = error
            elif result["frames"] != chunks[key][1] - chunks[key][0]:
                errors[key] = f"encoded {result['frames']} frames, expected {chunks[key][1] - chunks[key][0]}"

        run_tasks(encode_chunk, tasks, engine, done)
        bar.close()
        if errors:
            first = min(errors)
            raise EncoderError(f"chunk {first} (frames {chunks[first][0]}-{chunks[first][1] - 1}) failed: "
                               f"{errors[first]}")
        with atomic_output(out) as tmp:
            join(files, chunks, input_path, tmp, fmt, stamps)
            problems = check_joined(tmp, input_path, [a for a, _ in chunks], decode=False)
            if problems:
                raise EncoderError(f"the joined chunks do not match the input: {problems[0]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return EncodeResult(
        output=str(out), codec=codec, preset=preset, rate=rate, assisted=plan is not None, frames=len(stamps),
        keyframes=media.keyframe_indices(out), bitrate_kbps=video_bitrate_kbps(out),
        seconds_encode=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------------------------- joining
def _chunk_packets(path: Path, expect: int) -> tuple[list[av.Packet], list[int], tuple[bytes | None, str]]:
    """A chunk's video packets in decode order, each one's presentation rank inside the chunk, and its header."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        extradata = (vs.codec_context.extradata, vs.codec_context.name)
        packets = [p for p in c.demux(vs) if p.size]
    if len(packets) != expect:
        raise EncoderError(f"{path.name}: {len(packets)} packets, expected {expect}")
    order = sorted(range(len(packets)), key=lambda j: packets[j].pts)
    rank = [0] * len(packets)
    for k, j in enumerate(order):
        rank[j] = k
    return packets, rank, extradata


def join(files: list[Path], chunks: list[tuple[int, int]], source: str | Path, out: Path, fmt: str,
         stamps: list[int]) -> None:
    """Concatenate chunk bitstreams (no re-encode) onto the source's frame timestamps, with the source's audio.

    Frame k of chunk [a, b) in presentation order is source frame a + k and gets its pts. Decode timestamps are
    the pts of the frame `delay` places earlier in display order, `delay` being the smallest that keeps
    dts <= pts for every packet (the encoders' reorder depth), so dts rise strictly and never pass pts.
    """
    import codec_assist.encoding.faithful as faithful

    n = len(stamps)
    step = (stamps[-1] - stamps[0]) // max(1, n - 1) or 1

    def stamp(i: int) -> int:  # extended before the first frame by the mean frame step
        return stamps[i] if i >= 0 else stamps[0] + i * step

    # Pass 1 (demux only): the reorder delay over the whole stream, and each chunk's parameter sets. The file's
    # header carries the first chunk's; a chunk whose sets differ (x264's two-pass PPS has its own initial QP)
    # gets them in-band, in front of its IDR, where a decoder takes them up (as in a broadcast stream).
    # The sets a decoder holds are the last ones it was given, so a chunk whose sets differ from the chunk
    # before it gets them in-band, even when they equal the header's (CRF chunks: 26, 20, 26 -> the third
    # needs the header's sets again, or it decodes with the second's initial QP).
    delay, g, extradata, active, inband = 0, 0, None, None, {}
    for c, (f, (a, b)) in enumerate(zip(files, chunks)):
        _, rank, ex = _chunk_packets(f, b - a)
        if extradata is None:
            extradata = ex
            size, _ = parameter_sets(*ex)
        elif ex != active:
            size_c, nals = parameter_sets(*ex)
            if size_c != size:
                raise EncoderError(f"{f.name}: NAL length size {size_c} differs from the first chunk's {size}")
            inband[c] = b"".join(len(n).to_bytes(size, "big") + n for n in nals)
        active = ex
        for j, k in enumerate(rank):
            delay = max(delay, (g + j) - (a + k))
        g += b - a

    with media.open_input(source) as src, av.open(str(files[0])) as first, av.open(str(out), "w", format=fmt) as dst:
        vin = [s for s in src.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)][0]
        tb = vin.time_base or Fraction(1, 90000)
        vout = dst.add_stream_from_template(first.streams.video[0])
        vout.time_base = tb
        look = faithful.read_look(source)
        if look.display_matrix:  # the chunks' colour and aspect come with the template; the rotation is set here
            vout.set_display_matrix(look.display_matrix)
        faithful.copy_stream_info(vin, vout)
        faithful.copy_container_info(src, dst)
        audio_map = faithful.add_streams(src, dst, fmt)
        origin = faithful.ClockOrigin(src)
        zero = origin.ticks(tb)

        def video() -> Iterator[tuple[float, int, av.Packet]]:
            g = 0
            for c, (f, (a, b)) in enumerate(zip(files, chunks)):
                packets, rank, _ = _chunk_packets(f, b - a)
                if c in inband:
                    head = packets[0]
                    packets[0] = av.Packet(inband[c] + bytes(head))
                    packets[0].is_keyframe = True
                for j, p in enumerate(packets):
                    i = a + rank[j]
                    p.stream = vout
                    p.time_base = tb
                    p.pts, p.dts = stamps[i] - zero, stamp(g - delay) - zero
                    p.duration = (stamps[i + 1] if i + 1 < n else stamps[i] + step) - stamps[i]
                    yield float(p.dts * tb), 0, p
                    g += 1

        def audio() -> Iterator[tuple[float, int, av.Packet]]:
            if not audio_map:
                return
            for p in src.demux(list(audio_map)):
                if faithful.is_cover(p):
                    yield float("-inf"), 1, p
                elif p.dts is not None and p.size:
                    origin.shift(p)
                    yield float(p.dts * p.time_base), 1, p

        # Interleave by time, so the muxer never buffers a whole stream.
        for _, kind, p in heapq.merge(video(), audio(), key=lambda t: (t[0], t[1])):
            if kind == 0:
                dst.mux(p)
            else:
                faithful.mux(p, audio_map[p.stream], dst)
        for target in audio_map.values():
            faithful.mux(None, target, dst)  # flush a re-encoder


def parameter_sets(extradata: bytes | None, codec: str) -> tuple[int, list[bytes]]:
    """(NAL length size, parameter-set NAL units) from an avcC (h264) or hvcC (hevc) header."""
    ex = bytes(extradata or b"")
    nals: list[bytes] = []

    def take(pos: int, count: int) -> int:
        for _ in range(count):
            n = int.from_bytes(ex[pos:pos + 2], "big")
            nals.append(ex[pos + 2:pos + 2 + n])
            pos += 2 + n
        return pos

    if codec == "h264" and len(ex) >= 7 and ex[0] == 1:
        pos = take(6, ex[5] & 0x1F)  # SPS
        take(pos + 1, ex[pos])  # PPS
        return (ex[4] & 3) + 1, nals
    if codec == "hevc" and len(ex) >= 23 and ex[0] == 1:
        pos = 23
        for _ in range(ex[22]):  # arrays of VPS / SPS / PPS / SEI
            pos = take(pos + 3, int.from_bytes(ex[pos + 1:pos + 3], "big"))
        return (ex[21] & 3) + 1, nals
    raise EncoderError(f"chunk headers are not {codec} avcC/hvcC records; cannot join losslessly")


TIME_PRECISION = Fraction(1, 1000)  # seconds: what the output containers keep of a timestamp


def _times(path: str | Path, on_output_clock: bool = False) -> tuple[list[Fraction], list[bool]]:
    """Presentation times (exact, in seconds) of the video packets in display order, and their key flags;
    `on_output_clock`: a source's, on the timeline its output gets (faithful.ClockOrigin)."""
    import codec_assist.encoding.faithful as faithful

    p = Path(path)
    with media.open_input(p) as c:
        vs = media._video_stream(c, p)
        tb = vs.time_base
        stamps = sorted((pkt.pts, pkt.is_keyframe) for pkt in c.demux(vs) if pkt.size and pkt.pts is not None)
        zero = Fraction(faithful.ClockOrigin(c).ticks(tb)) * tb if on_output_clock else 0
    return [Fraction(s) * tb - zero for s, _ in stamps], [k for _, k in stamps]


def check_joined(output: str | Path, source: str | Path, chunk_starts: list[int], decode: bool = True) -> list[str]:
    """What is wrong with a joined output, as sentences (empty: it is right). Frame count and timestamps equal
    the source's, an IDR at every chunk start, and (decode=True) every frame decodes without error."""
    problems = []
    src_t, _ = _times(source, on_output_clock=True)
    out_t, keys = _times(output)
    if len(out_t) != len(src_t):
        problems.append(f"{len(out_t)} frames, the input has {len(src_t)}")
    else:
        # equal to the containers' precision: Matroska stores 1 ms, an MP4 edit list 1/1000 s of the movie
        # (megamind.avi's first frame, 125/2997 s, lands 0.67 ms early in MP4, 0.29 ms late in MKV)
        bad = [i for i, (s, o) in enumerate(zip(src_t, out_t)) if abs(s - o) > TIME_PRECISION]
        if bad:
            problems.append(f"frame {bad[0]} is at {float(out_t[bad[0]]):.6f}s, "
                            f"the input's at {float(src_t[bad[0]]):.6f}s")
        missing = [s for s in chunk_starts if not keys[s]]
        if missing:
            problems.append(f"no IDR at chunk start(s) {missing}")
    if decode:
        n = 0
        try:
            with av.open(str(output)) as c:
                vs = c.streams.video[0]
                vs.codec_context.options = {"err_detect": "explode"}
                for _ in c.decode(vs):
                    n += 1
        except av.error.FFmpegError as e:
            problems.append(f"decode error after {n} frames: {e}")
        if n != len(src_t) and not problems:
            problems.append(f"{n} frames decode, the input has {len(src_t)}")
    return problems
