"""Encode through PyAV libx264 / libx265, plain or following an EncodePlan (ROI offsets + forced IDRs).

Streams: the first video stream is re-encoded; audio and subtitle tracks, chapters and metadata are carried,
and the picture keeps its colour, HDR, aspect and rotation (codec_assist.encoding.faithful). The output appears only
when complete.
"""
from __future__ import annotations

import bisect
import contextlib
import logging
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

import av
import numpy as np
from tqdm import tqdm

from policies.qp import offsets_at

import codec_assist.media.decode as media

import codec_assist.encoding.faithful as faithful
import codec_assist.encoding.roi as roi
from codec_assist.errors import EncoderError, InputError
from codec_assist.media.safeio import atomic_output, check_output
from codec_assist.schemas import EncodePlan, EncodeResult, RateControl, StageSeconds
from codec_assist.timing import Stopwatch

log = logging.getLogger("codec_assist")

ENCODERS = {"x264": "libx264", "x265": "libx265"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
EIGHT_BIT_420 = {"yuv420p", "yuvj420p"}
TEN_BIT_420 = "yuv420p10le"
# x264/x265 `--tune` values of this build (an unknown tune is refused by the encoder; checked here first)
TUNES = {"x264": ("film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency"),
         "x265": ("animation", "grain", "psnr", "ssim", "fastdecode", "zerolatency")}
NO_AQ_PRESETS = ("ultrafast",)  # x264's and x265's ultrafast switch AQ off, and ROI offsets (frame_qp) with it
PLAN_OWNED = {"keyint", "min-keyint", "scenecut", "aq-mode", "open-gop", "qp", "crf", "bitrate", "pass"}
X265_CUT_FLAG_THRESHOLD = 5  # x265 `scenecut` beside a plan's forced IDRs: flags hard cuts only (plan_params)


def parse_params(text: str | None) -> dict[str, str]:
    """Parse x264/x265-style 'key=value:key=value' (a bare key means '1')."""
    out: dict[str, str] = {}
    for item in filter(None, (text or "").split(":")):
        key, _, value = item.partition("=")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", key.strip()):
            raise EncoderError(f"encoder parameter {item!r} is not of the form key=value")
        out[key.strip()] = value.strip() or "1"
    return out


def zones_param(zones) -> str:
    """x264/x265 `zones` syntax: 'start,end,b=F' or 'start,end,q=QP', '/'-separated, inclusive ends."""
    parts = []
    for z in zones:
        if z.qp is not None:
            parts.append(f"{z.start_frame},{z.end_frame},q={z.qp}")
        elif z.bitrate_factor is not None:
            parts.append(f"{z.start_frame},{z.end_frame},b={z.bitrate_factor:.4g}")
    return "/".join(parts)


def plan_params(plan: EncodePlan | None, codec: str, zones: bool = True) -> dict[str, str]:
    """The x264/x265 parameters a plan sets (the one place they are built): its own IDRs only (no scenecut,
    keyint from the plan; with `own_keyframes` the encoder's scenecut and minimum GOP stay), its AQ, closed GOPs
    for x265 and, with `zones`, its per-shot zones."""
    if plan is None:
        return {}
    p = {"keyint": str(plan.max_gop), "aq-mode": str(plan.aq_mode), "aq-strength": f"{plan.aq_strength:g}"}
    if not plan.own_keyframes and codec == "x265":
        # x265's rate control codes a frame its lookahead flags as a scene cut better than the same frame forced to
        # IDR unflagged (cityCC0, dev: +0.38 VMAF at the same bits, as plain's own keyframe there). Threshold 5 flags
        # only frames inter prediction barely helps; a minimum GOP of the whole GOP makes a flagged frame an I frame,
        # never an IDR of its own, so the IDRs stay the plan's (docs/BENCHMARKS.md)
        p.update({"min-keyint": str(plan.max_gop), "scenecut": str(X265_CUT_FLAG_THRESHOLD)})
    elif not plan.own_keyframes:
        p.update({"min-keyint": "1", "scenecut": "0"})
    if codec == "x265":
        p["open-gop"] = "0"
    if zones and plan.zones:
        p["zones"] = zones_param(plan.zones)
    return p


def check_request(codec: str, rate: RateControl, preset: str, params: dict[str, str], assisted: bool,
                  tune: str | None = None) -> None:
    """Refuse what FFmpeg would silently ignore or what would silently switch the ROI off."""
    if codec not in ENCODERS:
        raise EncoderError(f"unknown codec {codec!r}; choose one of {', '.join(ENCODERS)}")
    if preset not in PRESETS:
        raise EncoderError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if tune is not None and tune not in TUNES[codec]:
        raise EncoderError(f"unknown {codec} tune {tune!r}; choose one of {', '.join(TUNES[codec])}")
    if assisted:
        if params.get("aq-mode") == "0" or params.get("no-aq") == "1":
            raise EncoderError("aq-mode=0 disables ROI encoding in x264/x265; keep adaptive quantisation on")
        taken = sorted(set(params) & PLAN_OWNED)
        if taken:
            raise EncoderError(f"parameter(s) {', '.join(taken)} are set by the plan or the rate options; remove them")


def _log_problem(logs) -> str | None:
    for _level, _name, message in logs:
        m = message.strip()
        if m.startswith("Error parsing option") or "Invalid value" in m or "Unknown option" in m:
            return m
        if "skipping ROI" in m or "ROI encoding" in m:
            return m
    return None


def encode(
    input_path: str | Path,
    output_path: str | Path,
    *,
    codec: str = "x264",
    rate: RateControl,
    preset: str = "medium",
    plan: EncodePlan | None = None,
    plan_arrays: dict[str, np.ndarray] | None = None,
    params: dict[str, str] | None = None,
    tune: str | None = None,
    progress: bool = False,
    size: tuple[int, int] | None = None,
    start_frame: int = 0,
    end_frame: int | None = None,
    keyframes: Sequence[int] = (),
    frame_qp: Mapping[int, float] | None = None,
    threads: int = 0,
    rc_pass: int = 0,
    stats_file: str | Path | None = None,
    overwrite: bool = False,
    limits: media.Limits = media.DEFAULT_LIMITS,
    live=None,
) -> EncodeResult:
    """Encode `input_path` to `output_path`. With a plan: forced IDRs and per-block QP offsets (assisted).

    `size` (width, height) scales the video (ladder rungs); a plan must then be made for that size.
    The plan's zones (x264/x265 `zones`, per-shot bitrate factors) are passed to the encoder. `tune` is the
    encoder's `--tune` (one of TUNES[codec]), applied before `params` as the x264/x265 command lines do.
    `start_frame`/`end_frame` (end exclusive, source frame numbers) encode only that range, video only, starting
    with an IDR: one chunk of a chunked encode (codec_assist.encoding.chunked). `keyframes`: source frames
    that get a forced IDR without a plan (a hull ladder's shot starts, the same in every rung). `frame_qp`
    {source frame: QP delta} moves those frames' QP uniformly (an ROI over the whole picture, added to a plan's
    offsets): a hull rung's shot-start IDRs, whose QP x264/x265 derive from the frames before them. `threads`
    caps the encoder and decoder threads (0 = FFmpeg's automatic choice), so parallel encodes share the cores
    instead of fighting over them.
    `rc_pass` 1 or 2 with `stats_file`: one pass of a two-pass ABR encode (short chunks miss a one-pass ABR
    target by up to a third; two passes hit it). `overwrite` replaces an existing output; `limits` guard the
    input (declared and decoded). `live` (encoding.overlapped.LivePlan): the plan's IDRs and offsets come from it
    frame by frame, as the analysis beside the encoder finishes them; `plan` is then its model (block size, AQ).
    """
    t_call = time.perf_counter()
    params = dict(params or {})
    assisted = plan is not None
    check_request(codec, rate, preset, params, assisted, tune)
    info = media.probe(input_path, limits)
    src_w, src_h = info.width, info.height
    if size is not None:
        w, h = size
        if w < 16 or h < 16 or w % 2 or h % 2:
            raise EncoderError(f"output size {w}x{h}: both sides must be even and at least 16")
        info = info.model_copy(update={"width": w, "height": h})
    out_path = check_output(output_path, input_path, overwrite=overwrite)
    fmt = CONTAINERS.get(out_path.suffix.lower())
    if fmt is None:
        raise EncoderError(f"output {out_path}: unsupported container; use one of {', '.join(CONTAINERS)}")
    if plan is not None:
        _check_plan(plan, {} if live is not None else plan_arrays, codec, info, params)

    if info.width % 2 or info.height % 2:
        log.warning("%s is %dx%d; the output is %dx%d (4:2:0 needs even sizes: last column/row cropped)",
                    media.display_path(input_path), info.width, info.height, info.width & ~1, info.height & ~1)
    look = faithful.read_look(input_path)
    flagged = look.interlaced  # the decoded frames say "interlaced" (see unflag below)
    if look.interlaced and (info.width, info.height) != (src_w, src_h):
        # scaling a frame of two woven fields blends them: the rung is a progressive picture, coded as one
        log.warning("%s is interlaced; scaled to %dx%d its two fields blend (deinterlace first for a clean picture)",
                    media.display_path(input_path), info.width, info.height)
        look.fields = ""
    out_fmt = output_pix_fmt(codec, look.pix_fmt)
    faithful.announce(look, codec, out_fmt, media.display_path(input_path), fmt)
    # FFmpeg scales an ROI qoffset by the QP range of the encoded bit depth: 51 + 6 * (bits - 8)
    qp_range = 63.0 if out_fmt == TEN_BIT_420 else 51.0
    frame_qp = {k: v for k, v in (frame_qp or {}).items() if v}
    opts = _encoder_options(codec, preset, rate, plan, params, look, threads, rc_pass, stats_file, tune,
                            forced_idr=plan is not None or bool(keyframes), roi=plan is not None or bool(frame_qp))

    ranged = start_frame > 0 or end_frame is not None
    end = info.frame_count if end_frame is None else end_frame
    if not 0 <= start_frame < end:
        raise EncoderError(f"frame range {start_frame}..{end_frame} is empty or negative")
    # x265 4.x crashes (a copy into a NULL buffer) when a frame with a QP map reuses a picture buffer that x265 made
    # for a frame without one: a map of zeros (a cut, a quiet moment, a shot with no keypoint) goes to it too.
    every_frame_map = codec == "x265" and (plan is not None or bool(frame_qp))
    keyset = set(plan.forced_keyframes) if plan is not None else set()
    keyset.update(keyframes)
    if ranged:
        keyset.add(start_frame)  # a chunk starts with an IDR so that chunks concatenate
    qp_frames = plan_arrays["qp/frames"].tolist() if plan is not None and live is None else []
    qp_offsets = plan_arrays["qp/offsets"] if plan is not None and live is None else None

    start = time.perf_counter()
    n = 0
    with atomic_output(out_path) as tmp, media.open_input(input_path) as src:
        vin = [s for s in src.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)][0]
        vin.thread_type = "AUTO"
        # Source frame numbers: counted from the start, or (for a range) counted from the first frame after a
        # seek to the keyframe before the range, that frame placed by its timestamp (_frame_index), so a chunk
        # does not decode the whole video before it.
        stamps = media.frame_timestamps(input_path) if start_frame > 0 else None
        if stamps:
            _seek_before(src, vin, stamps, start_frame, input_path)
        index = -1
        if threads:
            vin.codec_context.thread_count = threads
        # FFmpeg's libx264 skips the ROI of a frame flagged interlaced ("not supported ... yet") without an error;
        # x264 codes the fields by its own tff/bff parameter (faithful.encoder_params), so the flag can go
        unflag = faithful.Unflagged(vin) if flagged and codec == "x264" else None
        origin = faithful.ClockOrigin(src)
        with av.open(str(tmp), mode="w", format=fmt) as dst:
            vout = dst.add_stream(ENCODERS[codec], rate=Fraction(info.fps).limit_denominator(1001000))
            vout.width, vout.height, vout.pix_fmt = info.width & ~1, info.height & ~1, out_fmt
            faithful.apply_look(vout, look, (src_w, src_h), (vout.width, vout.height))
            tb = vin.time_base or Fraction(1, 90000)
            vout.codec_context.time_base = tb
            # x264's frame threads, as the x264 and ffmpeg command lines use: PyAV opens encoders with slice threads,
            # which libx264 turns into sliced threads (two slices a frame on two cores). Frame threads encoded a minute
            # of 720p at medium in 18.6-21.5 s against 25.0-26.1 s, with a higher PSNR and VMAF at the same rate
            # (docs/BENCHMARKS.md, issue 16). libx265 runs its own thread pools either way.
            vout.codec_context.thread_type = "FRAME"
            if threads:
                vout.codec_context.thread_count = threads
            if rate.mode == "abr":
                vout.bit_rate = int(rate.bitrate)
            vout.options = opts
            audio_map = {} if ranged else _add_audio(src, dst, fmt)  # chunks are video only
            faithful.copy_stream_info(vin, vout)
            if not ranged:
                faithful.copy_container_info(src, dst)
            bar = tqdm(total=end - start_frame, unit="f", desc=f"encode {codec}", disable=not progress, leave=False)
            last_pts = None
            # a range reads a part of the file by design: its length is checked below, not the container's count
            stats = media.DecodeStats(input_path, 0 if ranged else info.frame_count, limits,
                                      media.stream_seconds(vin))
            decode = Stopwatch()  # demux + decode inside the loop; the rest of the loop is the encoder's
            with _encoder_errors(codec):
                for packet, frames in decode.iterate(media.decode_packets(src, vin, stats, [vin, *audio_map])):
                    if frames is not None:
                        for frame in frames:
                            index = _frame_index(frame, index, stamps, input_path)
                            if n == 0 and index > start_frame:
                                raise EncoderError(f"{input_path}: seeking to frame {start_frame} landed at "
                                                   f"frame {index}; cannot encode a frame range of this file")
                            if index < start_frame:
                                continue
                            if index >= end:
                                break
                            if unflag is not None:
                                frame = unflag(frame)
                            frame = _prepare(frame, info, out_fmt, look)
                            if frame.pts is not None:
                                frame.pts -= origin.ticks(frame.time_base)
                            if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                                frame.pts = (last_pts or 0) + 1 if last_pts is not None else 0
                            last_pts = frame.pts
                            # Decoded frames carry the source's picture types and x264 copies them: reset
                            # them all (baseline too, so it is the encoder's own decision), force the plan's IDRs.
                            if live is not None:
                                key, grid = live.at(index)
                                key = key or index in keyset
                            else:
                                key = index in keyset
                                grid = (offsets_at(index, qp_frames, qp_offsets, plan.shot_starts)
                                        if plan is not None else None)
                            frame.pict_type = (av.video.frame.PictureType.I if key
                                               else av.video.frame.PictureType.NONE)
                            if grid is None and (every_frame_map or index in frame_qp):
                                grid = np.zeros((1, 1), np.float32)
                            if index in frame_qp:
                                grid = grid + np.float32(frame_qp[index])
                            if grid is not None:
                                block = plan.block_size if plan is not None else max(frame.width, frame.height)
                                roi.attach_qp_offsets(frame, grid, block, qp_range, always=every_frame_map)
                            for out in vout.encode(frame):
                                dst.mux(out)
                            n += 1
                            if n % media.TRIM_EVERY == 0:
                                media.release_memory()
                            bar.update()
                        if ranged and index >= end - 1:
                            break  # the range is done; the rest of the file is not decoded
                    elif packet.stream in audio_map and (packet.dts is not None or faithful.is_cover(packet)):
                        origin.shift(packet)
                        _mux_audio(packet, audio_map[packet.stream], dst)
                for out in vout.encode(None):
                    dst.mux(out)
                for target in audio_map.values():
                    _mux_audio(None, target, dst)
            bar.close()
        if n == 0:
            raise InputError(f"{media.display_path(input_path)}: no video frame could be decoded")
        if ranged and n < end - start_frame:
            raise EncoderError(f"{media.display_path(input_path)}: frames {start_frame}-{end - 1} requested, "
                               f"{n} decoded; cannot encode this frame range")
        stats.warn()
    seconds = time.perf_counter() - start
    from codec_assist.evaluation.metrics import video_bitrate_kbps  # the one definition of bitrate

    result = EncodeResult(
        output=media.display_path(out_path), codec=codec, preset=preset, rate=rate, assisted=assisted, frames=n,
        keyframes=media.keyframe_indices(out_path), bitrate_kbps=video_bitrate_kbps(out_path),
        seconds_encode=seconds,
    )
    result.timing = StageSeconds(decode=decode.seconds, encode=max(0.0, seconds - decode.seconds)).closed(
        time.perf_counter() - t_call)
    return result


def _check_plan(plan: EncodePlan, plan_arrays, codec: str, info, params: dict[str, str]) -> None:
    """A plan fits this encode: same codec and frame size, its arrays present, zones not given twice."""
    if plan.codec != codec:
        raise EncoderError(f"the plan was made for {plan.codec}, not {codec}; make a plan with --codec {codec}")
    if (plan.width, plan.height) != (info.width, info.height):
        raise EncoderError(f"the plan is for {plan.width}x{plan.height} video, the input is {info.width}x{info.height}")
    if plan_arrays is None:
        raise EncoderError("the plan's arrays (qp/frames, qp/offsets) are missing")
    if plan.zones and "zones" in params:
        raise EncoderError("the plan has zones; remove zones from the encoder parameters")


def _encoder_options(codec: str, preset: str, rate: RateControl, plan: EncodePlan | None, params: dict[str, str],
                     look, threads: int, rc_pass: int, stats_file, tune: str | None = None,
                     forced_idr: bool = False, roi: bool = False) -> dict[str, str]:
    """The libx264/libx265 options of an encode, tried on a scratch encoder first (FFmpeg only logs a refusal)."""
    x_params = {"log-level": "error"} if codec == "x265" else {}
    x_params.update(faithful.encoder_params(look, codec))  # HDR10 mastering display, light level
    x_params.update(plan_params(plan, codec))
    if threads and codec == "x265":
        x_params["pools"] = str(threads)  # libx265 does not read the codec context's thread count
    x_params.update(params)
    if rc_pass:
        if rate.mode != "abr" or not stats_file or rc_pass not in (1, 2):
            raise EncoderError("two-pass encoding needs an ABR rate, pass 1 or 2 and a stats file")
        x_params.update({"pass": str(rc_pass), "stats": str(stats_file)})

    def options(xp: dict[str, str]) -> dict[str, str]:
        opts = {"preset": preset, "tune": tune or "", f"{codec}-params": ":".join(f"{k}={v}" for k, v in xp.items())}
        if forced_idr:
            opts["forced-idr"] = "1"  # a forced I is an IDR (x265 and open-GOP x264 would not make it one)
        if codec == "x265":
            opts["a53cc"] = "1"  # carry the source's closed captions (frame side data), as libx264 does by default
        if rate.mode == "crf":
            opts["crf"] = f"{rate.crf:g}"
        return {k: v for k, v in opts.items() if v}

    # the probe must not touch a two-pass stats file (pass 1 would write it, pass 2 read it)
    probe_params = {k: v for k, v in x_params.items() if k not in ("pass", "stats")}
    block = (plan.block_size if plan is not None else 16) if roi else None
    problem = _probe_options(codec, options(probe_params), rate, block)
    if problem:
        raise EncoderError(f"{codec} refused an option: {problem}")
    return options(x_params)


def _probe_options(codec: str, opts: dict[str, str], rate: RateControl, block_size: int | None) -> str | None:
    """Open the encoder with the real options on two tiny frames (with an ROI map when assisted) and return
    what it refused, if anything: typos and ROI refusals only show up in FFmpeg's log.

    Done on a scratch encoder before any decoder runs, because routing FFmpeg's log to Python while a
    frame-threaded decoder works can deadlock (a decoder thread waits for the GIL inside av_log while the
    main thread, holding it, waits for that decoder thread).
    """
    ctx = av.CodecContext.create(ENCODERS[codec], "w")
    ctx.width, ctx.height, ctx.pix_fmt = 128, 128, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    if rate.mode == "abr":
        ctx.bit_rate = int(rate.bitrate)
    ctx.options = dict(opts)
    with _warnings_captured() as logs:
        try:
            for i in range(2):
                frame = av.VideoFrame(128, 128, "yuv420p")
                for plane in frame.planes:
                    plane.update(bytes(plane.buffer_size))
                frame.pts = i
                if block_size:
                    cells = -(-128 // block_size)
                    roi.attach_qp_offsets(frame, np.full((cells, cells), 1.0, np.float32), block_size)
                ctx.encode(frame)
            ctx.encode(None)
        except av.error.FFmpegError as e:
            return _log_problem(logs) or f"{getattr(e, 'strerror', None) or e}"
    return _log_problem(logs)


def _seek_before(src, vin, stamps: list[int], frame: int, path) -> None:
    """Seek to a keyframe at or before `frame`. Containers without an index (MPEG-PS) land after the target
    now and then: step further back until the first keyframe there is not after it."""
    target = stamps[frame]
    second = int(1 / vin.time_base) if vin.time_base else 90000
    for back in (0, 1, 4, 16, 64, None):
        pos = stamps[0] - second if back is None else target - back * second
        src.seek(pos, stream=vin, backward=True, any_frame=False)
        first = next((p.pts for p in src.demux(vin) if p.size and p.is_keyframe), None)
        if first is not None and first <= target:
            src.seek(pos, stream=vin, backward=True, any_frame=False)
            return
        if back is not None and pos <= stamps[0]:
            break
    raise EncoderError(f"{path}: cannot seek to frame {frame}; cannot encode a frame range of this file")


def _frame_index(frame: av.VideoFrame, previous: int, stamps: list[int] | None, path) -> int:
    """The source frame number of a decoded frame: the first one after a seek by its timestamp, every other one
    by counting. A decoder outputs frames in presentation order, but the timestamps it attaches need not be in
    that order (MPEG-4 Part 2 in AVI with packed B-frames: megamind.avi's frames come out stamped 155, 156,
    158, 157, ...), so looking each one up would misplace frames and end a range one frame early; counting
    numbers them as a decode from the start does."""
    if stamps is None or previous >= 0:
        return previous + 1
    i = bisect.bisect_left(stamps, frame.pts) if frame.pts is not None else len(stamps)
    if i >= len(stamps) or stamps[i] != frame.pts:
        raise EncoderError(f"{path}: decoded frame with timestamp {frame.pts} is not among the video's packets; "
                           "cannot encode a frame range of this file")
    return i


@contextlib.contextmanager
def _warnings_captured():
    """Capture FFmpeg's warnings while encoding: that is where option typos and ROI refusals show up."""
    old = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(old)


@contextlib.contextmanager
def _encoder_errors(codec: str):
    """An encoder or muxer that fails inside FFmpeg: one line naming it, not a PyAV traceback."""
    try:
        yield
    except av.error.FFmpegError as e:
        # the same block re-encodes audio tracks: name the encoder that failed (an AAC open failed as "x264 failed")
        who = "the AAC audio encoder" if '"aac"' in str(getattr(e, "filename", "") or "") else codec
        raise EncoderError(f"{who} failed: {getattr(e, 'strerror', None) or e}") from None


def output_pix_fmt(codec: str, source_pix_fmt: str) -> str:
    """What the encoder gets: 4:2:0, 10-bit for x265 (Main 10) when the source has more than 8 bits, else 8-bit
    (H.264 stays 8-bit 4:2:0: PyAV's libx264 also takes 10-bit and 4:4:4, but High 10 and High 4:4:4 are not decoded
    by browsers and most hardware; 4:2:2 / 4:4:4 are subsampled, which every player decodes)."""
    try:
        bits = max(c.bits for c in av.video.format.VideoFormat(source_pix_fmt).components)
    except (ValueError, TypeError):  # an unknown or missing format: the 8-bit default
        bits = 8
    return TEN_BIT_420 if codec == "x265" and bits > 8 else "yuv420p"


def _prepare(frame: av.VideoFrame, info, pix_fmt: str = "yuv420p", look=None) -> av.VideoFrame:
    """The encoder takes 4:2:0 (`pix_fmt`) at the source size, with an odd last row/column cropped (4:2:0 needs
    even sizes). Conversions keep the source's range and matrix (faithful.reformat)."""
    pts, tb = frame.pts, frame.time_base
    if frame.format.name != pix_fmt or frame.width != info.width or frame.height != info.height:
        frame = faithful.reformat(frame, info.width, info.height, pix_fmt, look or faithful.Look())
    if frame.width % 2 or frame.height % 2:
        w, h = frame.width & ~1, frame.height & ~1
        dtype = np.uint16 if pix_fmt == TEN_BIT_420 else np.uint8
        y, u, v = (np.frombuffer(p, dtype).reshape(p.height, p.line_size // dtype().itemsize) for p in frame.planes)
        planes = [y[:h, :w], u[: h // 2, : w // 2], v[: h // 2, : w // 2]]
        frame = av.VideoFrame(w, h, pix_fmt)
        for plane, data in zip(frame.planes, planes):
            _fill_plane(plane, data)
    frame.pts, frame.time_base = pts, tb
    return frame


def _fill_plane(plane, data: np.ndarray) -> None:
    """Copy a (rows, cols) sample array into a frame plane, whose rows may be padded (line_size)."""
    row = plane.line_size // data.itemsize
    padded = np.zeros((data.shape[0], row), data.dtype)
    padded[:, : data.shape[1]] = data
    plane.update(padded.tobytes())


def _add_audio(src, dst, fmt: str) -> dict:
    """Audio and subtitle tracks to carry (faithful.add_streams: copied, or converted with a warning)."""
    return faithful.add_streams(src, dst, fmt)


def _mux_audio(packet, target, dst) -> None:
    faithful.mux(packet, target, dst)
