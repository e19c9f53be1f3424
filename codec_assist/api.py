"""The public API: each function runs one job end to end from typed options and returns a typed report.

The command line (codec_assist/cli/) is a thin shell over these functions; scripts and benchmarks call them
directly. Every function that writes files takes `overwrite` (existing outputs are kept unless it is True) and
every function that reads videos takes `limits` (absurd inputs are refused); neither is global state.
Errors are CodecAssistError subclasses with one-line messages (see codec_assist.errors for the exit codes).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codec_assist import schemas
from codec_assist.errors import CodecAssistError
from codec_assist.options import (
    DEFAULT_LIMITS,
    AnalyzeOptions,
    EncodeOptions,
    EngineOptions,
    Limits,
    PlanOptions,
)
from codec_assist.schemas import (
    Analysis,
    BatchManifest,
    CompareReport,
    EncodePlan,
    EncodeReport,
    Explanation,
    LadderReport,
    RateControl,
    RoiBox,
    SemanticReport,
    StageSeconds,
    TagReport,
)

log = logging.getLogger("codec_assist")

Arrays = dict[str, np.ndarray]


def _limits(limits: Limits | None) -> Limits:
    return limits or DEFAULT_LIMITS


# ------------------------------------------------------------------------------------------------ analyze
def analyze(input: str | Path, options: AnalyzeOptions | None = None, *, output: str | Path | None = None,
            limits: Limits | None = None, overwrite: bool = False, progress: bool = False
            ) -> tuple[Analysis, Arrays]:
    """Decode `input` once into a small proxy, run the analyzers, fuse their signals into the importance map.

    Returns the analysis (shots, region tokens, transcript, per-analyzer timing) and its arrays (per analysed
    frame: `importance/scalar` in [0, 1] and `importance/grid`, a coarse grid over the frame). With `output`
    (a folder), also writes analysis.json + analysis.npz there (and transcript.vtt when there is speech).

    >>> analysis, arrays = codec_assist.analyze("talk.mp4", AnalyzeOptions(focus=[FocusPrompt(text="slides")]))
    """
    from codec_assist.analysis.pipeline import analyze as run_analysis
    from codec_assist.media.safeio import atomic_write_bytes, check_output, shown
    from codec_assist.media.subtitles import to_webvtt

    inp = Path(input)
    out = Path(output) if output is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise CodecAssistError(f"output {shown(out)} exists and is not a folder")
        if inp.exists() and out.resolve() == inp.resolve():
            raise CodecAssistError(f"output {shown(out)} is the input")
        for name in ("analysis.json", "analysis.npz"):
            check_output(out / name, inp, overwrite=overwrite)
    analysis, arrays = run_analysis(inp, options, progress=progress, limits=_limits(limits))
    if out is not None:
        schemas.save(analysis, out / "analysis.json", arrays)
        if analysis.transcript is not None:
            atomic_write_bytes(out / "transcript.vtt", to_webvtt(analysis.transcript).encode())
        else:
            (out / "transcript.vtt").unlink(missing_ok=True)  # an earlier run's, not this analysis's
    return analysis, arrays


# --------------------------------------------------------------------------------------------------- plan
def make_plan(analysis: Analysis | str | Path, arrays: Arrays | None = None, options: PlanOptions | None = None, *,
              output: str | Path | None = None, overwrite: bool = False) -> tuple[EncodePlan, Arrays]:
    """Turn an analysis (the pair `analyze` returns, or an analysis folder/JSON) into an encode plan: per-frame
    QP-offset grids at the codec's block size (rate-neutral, clamped to ±max_dqp, smoothed in shots) and the
    forced IDR frames. With `output` (a JSON path), also writes the plan + its .npz."""
    from codec_assist.planning.plan import make_plan as run_plan
    from codec_assist.media.safeio import check_output

    source = None
    if not isinstance(analysis, Analysis):
        analysis, arrays, source = schemas.load_analysis(analysis)
    if arrays is None:
        raise CodecAssistError("make_plan needs the analysis arrays (the second value analyze returns)")
    if output is not None:
        inputs = [source, schemas.arrays_path(source)] if source else []
        check_output(output, *inputs, overwrite=overwrite)
        check_output(schemas.arrays_path(output), *inputs, overwrite=overwrite)
    plan, plan_arrays = run_plan(analysis, arrays, options, source=str(source) if source else "")
    if output is not None:
        schemas.save(plan, output, plan_arrays)
    return plan, plan_arrays


# ------------------------------------------------------------------------------------------------- encode
def encode(input: str | Path, output: str | Path, options: EncodeOptions | None = None, *,
           analyze_options: AnalyzeOptions | None = None, plan_options: PlanOptions | None = None,
           limits: Limits | None = None, overwrite: bool = False, progress: bool = False,
           report: str | Path | None = None, html: str | Path | None = None, rois: Sequence[RoiBox] = (),
           **fields: Any) -> EncodeReport | LadderReport:
    """Encode `input` to `output` with x264 or x265 through PyAV — the one encode orchestration.

    Assisted by default: analyse (`analyze_options`), plan (`plan_options`: QP offsets, IDRs at cuts and
    events), encode with per-block ROI offsets and forced IDRs. `EncodeOptions` (or its fields as keyword
    arguments) choose plain (`assist=False`), a saved plan (`plan_file`), shot allocation or target quality
    (`allocation`), a ladder of renditions (`ladder`; `output` is then a folder or a pattern with {rung}) or
    parallel shot chunks (`chunked`). Rates: `bitrate` in bits/s ("400k", "2M" accepted), `crf`, or a total
    `size` in bytes. With `report`/`html`, the output is measured against the input (PSNR/SSIM/XPSNR, `rois`)
    and a JSON/HTML report is written.

    Returns an EncodeReport (a LadderReport for ladders).

    >>> import codec_assist as ca
    >>> rep = ca.encode("in.mp4", "out.mp4", bitrate="400k")                       # assisted x264 medium
    >>> rep = ca.encode("in.mp4", "plain.mp4", bitrate="400k", assist=False)       # the plain encode
    >>> rep.result.bitrate_kbps, rep.result.keyframes
    """
    from codec_assist.encoding.x26x import check_request
    import codec_assist.media.decode as media
    from codec_assist.media.safeio import check_output

    t_call = time.perf_counter()
    if options is None:
        options = _model(EncodeOptions, fields)
    elif fields:
        options = _model(EncodeOptions, {**options.model_dump(), **fields})
    o = options
    limits = _limits(limits)
    inp = Path(input)
    info = media.probe(inp, limits)
    rate = o.rate(info.frame_count / info.fps)
    check_request(o.codec, rate, o.preset, o.params, assisted=o.assist)
    from codec_assist.planning.allocate import is_auto_ladder

    if is_auto_ladder(o.ladder):
        return hull_ladder(inp, output, o, analyze_options=analyze_options, limits=limits, overwrite=overwrite,
                           progress=progress, report=report, html=html)

    # every output is checked before any work starts
    plan_files = [o.plan_file, schemas.arrays_path(o.plan_file)] if o.plan_file else []
    rungs = outs = None
    if o.ladder:
        from codec_assist.planning.allocate import ladder_outputs, parse_ladder

        rungs = parse_ladder(o.ladder)
        outs = ladder_outputs(str(output), inp.stem, [r[0] for r in rungs])
        for path in outs:
            check_output(path, inp, *plan_files, overwrite=overwrite)
    else:
        check_output(output, inp, *plan_files, overwrite=overwrite)
    sides = [p for p in (report, html, o.save_plan) if p]
    for p in sides:
        check_output(p, inp, *plan_files, overwrite=overwrite)
        if not o.ladder and Path(p).resolve() == Path(output).resolve():
            raise CodecAssistError(f"{p} must differ from the output video")
    if len({Path(p).resolve() for p in sides}) < len(sides):
        raise CodecAssistError("--report, --html and --save-plan must be different files")

    a_opt = for_plan(analyze_options or AnalyzeOptions(), page=bool(html))
    p_opt = (plan_options or PlanOptions()).model_copy(update={"codec": o.codec})
    if _overlaps(o, a_opt, p_opt, info, bool(html)):
        from codec_assist.encoding.overlapped import encode_overlapped

        result, plan, plan_arrays = encode_overlapped(
            inp, Path(output), codec=o.codec, preset=o.preset, rate=rate, params=o.params, analyze_options=a_opt,
            plan_options=p_opt, limits=limits, overwrite=overwrite, progress=progress)
        return _finish(EncodeReport(input=info, result=result, plan=str(o.save_plan or "") or None), result.timing,
                       inp, output, o, plan, plan_arrays, report, rois, t_call)
    choices = None
    analysis = arrays = plan = plan_arrays = None
    t0 = time.perf_counter()
    if o.plan_file:
        plan, plan_arrays = schemas.load_plan(o.plan_file)
    elif o.assist:
        # Without a report page nothing here needs the models after the plan: the analysis runs in a child
        # process, which takes its libraries and their heap along when it ends (analysis.forked)
        from codec_assist.analysis.forked import run_forked

        args = (inp, a_opt, p_opt, o, plan_options, limits, progress)
        (a_opt, p_opt, choices, analysis, plan, plan_seconds), (arrays, plan_arrays) = (
            _analyse_and_plan(*args) if html else run_forked(_analyse_and_plan, *args))
    if plan is not None:
        plan = _with_events(plan, analysis, o.events)
        if o.allocation.allocate:
            if analysis is None:
                raise CodecAssistError("--allocate needs the importance of each shot: run it without --plan")
            from codec_assist.planning.allocate import plan_budget

            a = o.allocation
            plan = plan_budget(inp, plan, arrays, rate, strength=a.strength, max_dqp=a.max_shot_dqp,
                               max_segment=a.segment)
    seconds_analysis = time.perf_counter() - t0
    stages = analysis.timing.model_copy(update={"wall": 0.0, "other": 0.0}) if analysis and analysis.timing \
        else StageSeconds()
    if analysis is not None:
        stages.plan = plan_seconds
    if analysis is not None and not html:  # an analysis that ran here (no fork): free its models before the encode
        from codec_assist.models import release_models

        t = time.perf_counter()
        release_models()
        stages.release = time.perf_counter() - t

    if o.ladder:
        from codec_assist.encoding.allocated import encode_ladder

        ladder = encode_ladder(inp, outs, rungs, codec=o.codec, preset=o.preset, plan=plan, plan_arrays=plan_arrays,
                               params=o.params, plain=o.ladder_plain, progress=progress, overwrite=overwrite)
        _save_side_outputs(ladder, report, o.save_plan, plan, plan_arrays)
        if html:
            from codec_assist.report.html import report as html_report

            html_report([], html, ladder=ladder, analysis=analysis, arrays=arrays, plan=plan, plan_arrays=plan_arrays,
                        analyze_options=a_opt, plan_options=p_opt)
        return ladder

    result = _encode_one(inp, Path(output), o, rate, plan, plan_arrays, arrays if analysis else None, limits,
                         overwrite, progress)
    if result.allocation is not None:
        plan = plan.model_copy(update={"allocation": result.allocation})
    result.seconds_analysis = seconds_analysis
    enc_report = EncodeReport(input=info, result=result, plan=str(o.save_plan or o.plan_file or "") or None,
                              auto_preset=choices)
    if result.timing is not None:
        stages.decode += result.timing.decode
        stages.encode = result.timing.encode
    else:  # allocated / chunked encodes: one figure for the whole encode
        stages.encode = result.seconds_encode
    _finish(enc_report, stages, inp, output, o, plan, plan_arrays, report, rois, t_call, measure=bool(html))
    if html:
        from codec_assist.report.html import report as html_report

        html_report([], html, encode=enc_report, analysis=analysis, arrays=arrays, plan=plan, plan_arrays=plan_arrays,
                    analyze_options=a_opt, plan_options=p_opt)
    return enc_report


def hull_ladder(input: str | Path, output_dir: str | Path, options: EncodeOptions, *,
                analyze_options: AnalyzeOptions | None = None, limits: Limits | None = None,
                overwrite: bool = False, progress: bool = False, report: str | Path | None = None,
                html: str | Path | None = None) -> schemas.HullLadderReport:
    """`encode --ladder auto[:RATE,...]`: per-shot probes (resolution x CRF, VMAF at display size), per-shot
    convex hulls, each rung's CRF per shot at equal slope, one playable file per rung in `output_dir`
    (codec_assist.encoding.hull). Beside the rungs: STEM.hull.json (the report: probes, hulls, choices),
    STEM.hull.csv (the map) and STEM.hull.png (the hulls); `report` another copy of the JSON, `html` the HTML
    report (the map and the hull figure). Shots come from a shots-only analysis, or from the
    full analysis (`analyze_options`) when `options.hull.importance_weight` > 0, which then weighs each shot
    by its mean importance."""
    import codec_assist.media.decode as media
    from codec_assist.encoding.hull import encode_hull_ladder, map_csv
    from codec_assist.media.safeio import atomic_write_bytes, check_output
    from codec_assist.planning.allocate import allocation_units, parse_auto_ladder, unit_importance

    o, h = options, options.hull
    limits = _limits(limits)
    inp = Path(input)
    rates = parse_auto_ladder(o.ladder or "auto")
    if o.bitrate is not None or o.crf is not None or o.size is not None:
        raise CodecAssistError("--ladder auto chooses each rung's CRF per shot from the rung rates "
                               "(auto:1M,500k): drop --bitrate/--crf/--size")
    out_dir = Path(output_dir)
    if "{rung}" in str(out_dir) or (out_dir.exists() and not out_dir.is_dir()) or out_dir.suffix.lower() in (
            ".mp4", ".mkv", ".mov"):
        raise CodecAssistError(f"--ladder auto writes a folder of rungs: -o {out_dir} must be a folder")
    side = {k: out_dir / f"{inp.stem}.hull.{k}" for k in ("json", "csv", "png")}
    for p in [*side.values(), *([report] if report else []), *([html] if html else [])]:
        check_output(p, inp, overwrite=overwrite)
    outputs = [out_dir / f"{inp.stem}.{r // 1000}k.mp4" for r in rates] if rates else None
    for p in outputs or []:
        check_output(p, inp, overwrite=overwrite)
    media.probe(inp, limits)
    weigh = h.importance_weight > 0
    a_opt = for_plan(analyze_options or AnalyzeOptions(), page=False) if weigh else AnalyzeOptions(
        analyzers=["shots"])
    analysis, arrays = analyze(inp, a_opt, limits=limits, progress=progress)
    # the shots that can begin a GOP of their own, as every other encode path keeps them (policies.keyframes): a
    # one-frame shot's second cut, one frame after the first, gave its rungs two IDRs in a row and a one-frame
    # hull unit whose rate the probes mispredicted (festival_crowd's 105k rung 3.3 % under its budget)
    from codec_assist.planning.plan import gop_frames
    from policies.keyframes import spaced

    min_gop = gop_frames(PlanOptions(), analysis.video.fps)[0]
    starts = spaced([s.start_frame for s in analysis.shots], analysis.video.frame_count, min_gop)
    kept = set(starts)
    idr_starts = [c for c in analysis.hard_cut_frames if c in kept]
    importance = None
    if weigh:
        if "importance/frames" not in arrays:
            raise CodecAssistError("--hull-importance needs the importance map: keep the analysis's analyzers")
        units = allocation_units(starts, analysis.video.frame_count, analysis.video.fps)
        importance = unit_importance(units, arrays).tolist()
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = encode_hull_ladder(inp, outputs, out_dir, rates, starts, idr_starts=idr_starts,
                             codec=o.codec, preset=o.preset,
                             probe_preset=h.probe_preset, crfs=h.crfs, heights=h.heights, importance=importance,
                             importance_weight=h.importance_weight, engine=o.engine,
                             cache_dir=h.cache_dir or out_dir / ".hull-probes", vmaf_every=h.vmaf_every,
                             max_probe_frames=h.max_probe_frames, refine_step=h.refine_step,
                             overwrite=overwrite, progress=progress)
    schemas.save(rep, side["json"])
    atomic_write_bytes(side["csv"], map_csv(rep).encode())
    from codec_assist.report.figures import hull_figure, png_bytes

    atomic_write_bytes(side["png"], png_bytes(hull_figure(rep)))
    if report:
        schemas.save(rep, report)
    if html:
        from codec_assist.report.html import report as html_report

        html_report([], html, hull=rep)
    return rep


def _overlaps(o: EncodeOptions, a_opt: AnalyzeOptions, p_opt: PlanOptions, info, page: bool) -> bool:
    """Whether this encode runs the analysis beside the encoder (EncodeOptions.overlap says when it can)."""
    import multiprocessing

    from codec_assist.encoding.overlapped import worth_overlapping

    a = o.allocation
    # a daemonic process (a multiprocessing.Pool worker) may not start the analysis process: the old order there
    return (o.overlap is not False and o.assist and not multiprocessing.current_process().daemon and not o.plan_file
            and not a.allocate and not a.target_quality and not o.ladder and not o.chunked and not o.auto_preset
            and not o.events and not a_opt.focus and not page
            and (o.overlap or worth_overlapping(info, o.codec, o.preset)))


def _finish(enc_report: EncodeReport, stages: StageSeconds, inp: Path, output, o: EncodeOptions, plan, plan_arrays,
            report, rois, t_call: float, measure: bool = False) -> EncodeReport:
    """After the encode: measure the output when a report (or page) is asked for, close the timing, write the
    side outputs."""
    result = enc_report.result
    if report or measure:
        from codec_assist.evaluation.metrics import compare_videos

        t = time.perf_counter()
        result.quality = compare_videos(inp, output, rois=list(rois))
        stages = stages.model_copy(update={"evaluation": time.perf_counter() - t})
    result.timing = stages.closed(time.perf_counter() - t_call)
    _save_side_outputs(enc_report if report else None, report, o.save_plan, plan, plan_arrays)
    return enc_report


def _encode_one(inp: Path, out: Path, o: EncodeOptions, rate: RateControl, plan, plan_arrays, importance,
                limits: Limits, overwrite: bool, progress: bool):
    """One output file: plain or planned, allocated, target-quality or chunked (the options say which)."""
    a = o.allocation
    common = dict(codec=o.codec, preset=o.preset, plan=plan, plan_arrays=plan_arrays, params=o.params,
                  progress=progress)
    if a.target_quality:
        from codec_assist.encoding.allocated import encode_target_quality
        from codec_assist.planning.allocate import parse_target

        metric, value = parse_target(a.target_quality)
        tol = a.tolerance if a.tolerance is not None else {"ssim": 0.003, "vmaf": 0.5}.get(metric, 0.25)
        return encode_target_quality(inp, out, metric=metric, target=value, tol=tol, max_probes=a.max_probes,
                                     max_segment=a.segment, importance_arrays=importance, **common)
    if a.allocate:
        from codec_assist.encoding.allocated import encode_budget

        return encode_budget(inp, out, rate=rate, **common)
    if o.chunked:
        from codec_assist.encoding.chunked import encode_chunked

        return encode_chunked(inp, out, rate=rate, engine=o.engine, min_seconds=o.min_chunk, overwrite=overwrite,
                              limits=limits, **common)
    from codec_assist.encoding.x26x import encode as x26x_encode

    return x26x_encode(inp, out, rate=rate, overwrite=overwrite, limits=limits, **common)


def _with_events(plan: EncodePlan, analysis: Analysis | None, events: Sequence[int]) -> EncodePlan:
    """The plan's IDRs with the user's events and the analysis's 'event:' tokens added (within GOP limits)."""
    from codec_assist.planning.allocate import events_from_analysis, with_events

    found = sorted({*events, *(events_from_analysis(analysis) if analysis else [])})
    if not found:
        return plan
    cuts = analysis.hard_cut_frames if analysis else plan.idr_shot_starts
    return with_events(plan, cuts, found)


def for_plan(options: AnalyzeOptions, page: bool) -> AnalyzeOptions:
    """The analysis options of an encode: made only for the plan (analyzers that cannot change it are skipped,
    see analysis.pipeline.unused_analyzers) unless a report page will show the analysis or the caller set
    `for_plan` themselves."""
    if page or "for_plan" in options.model_fields_set:
        return options
    return options.model_copy(update={"for_plan": True})


def _analyse_and_plan(inp: Path, a_opt: AnalyzeOptions, p_opt: PlanOptions, o: EncodeOptions,
                      user_plan: PlanOptions | None, limits: Limits, progress: bool):
    """The assisted encode's analysis and plan: ((analysis and plan options as --auto-preset left them, its
    choices, the analysis, the plan, the plan's seconds), [the analysis arrays, the plan arrays])."""
    choices = None
    if o.auto_preset:
        a_opt, p_opt, choices = _auto_preset(inp, a_opt, p_opt, o, user_plan, limits, progress)
    analysis, arrays = analyze(inp, a_opt, limits=limits, progress=progress)
    t_plan = time.perf_counter()
    plan, plan_arrays = make_plan(analysis, arrays, p_opt)
    return (a_opt, p_opt, choices, analysis, plan, time.perf_counter() - t_plan), [arrays, plan_arrays]


def _save_side_outputs(model, report, save_plan, plan, plan_arrays) -> None:
    if report and model is not None:
        schemas.save(model, report)
    if save_plan:
        schemas.save(plan, save_plan, plan_arrays)


def _auto_preset(inp: Path, a_opt: AnalyzeOptions, p_opt: PlanOptions, o: EncodeOptions,
                 user_plan: PlanOptions | None, limits: Limits, progress: bool):
    """Tag the input; the preset table adjusts plan settings the caller left at their defaults."""
    from codec_assist.tags.tagging import auto_preset, load_presets, load_taxonomy

    defaults = PlanOptions()
    keep = frozenset(k for k in ("max_dqp", "strength", "min_gop", "max_gop")
                     if user_plan is not None and getattr(user_plan, k) != getattr(defaults, k))
    if "aq-strength" in o.params:
        keep |= {"aq_strength"}
    taxonomy = load_taxonomy(o.taxonomy)
    table = load_presets(o.preset_table, taxonomy)
    a_opt, p_opt, choices, tags = auto_preset(inp, a_opt, p_opt, taxonomy=taxonomy, table=table, keep=keep,
                                              progress=progress, limits=limits)
    log.info("tags: %s", ", ".join(f"{t.name} {t.score:.2f}" for t in tags.tags[:3]))
    return a_opt, p_opt, choices


# ------------------------------------------------------------------------------------------------ compare
def compare(input: str | Path, bitrates: Sequence[int | str], *, output: str | Path | None = None,
            codec: str = "x264", preset: str = "medium", rois: Sequence[RoiBox] = (),
            analyze_options: AnalyzeOptions | None = None, plan_options: PlanOptions | None = None,
            auto_preset: bool = False, keep: str | Path | None = None, html: str | Path | None = None,
            vmaf_every: int = 1, peer: bool = True, peer_aq_mode: int = 3, peer_tune: str | None = "auto",
            limits: Limits | None = None, overwrite: bool = False, progress: bool = False) -> CompareReport:
    """Plain vs assisted encodes of `input` at each bitrate (same encoder, preset and rate control), measured
    against the source: bitrate, PSNR/SSIM/XPSNR and VMAF (whole frame), PSNR in `rois` (boxes marked
    independently of the importance map) and, with 3+ rates, BD-rates on each. `vmaf_every`: VMAF (libvmaf,
    motion on) on every frame (1, default), every k-th (k) or off (0). PSNR punishes any redistribution
    of bits inside a frame (the encoder's own AQ too); VMAF is the viewer's proxy. `peer` (default on) also
    encodes the encoder with its own tools on — `peer_aq_mode` (3) and `peer_tune` ("auto": animation or film
    from the analysis; "none"; or a tune name) — so the report has assisted vs plain, peer vs plain and assisted
    vs peer. `keep` keeps the encodes in that folder; `output` writes the report JSON, `html` the report page."""
    from codec_assist.evaluation.compare import compare_run
    from codec_assist.media.safeio import check_output

    inp = Path(input)
    limits = _limits(limits)
    rates = [RateControl(mode="abr", bitrate=b) for b in sorted({schemas.parse_bitrate(b) for b in bitrates})]
    if not rates:
        raise CodecAssistError("compare needs at least one bitrate")
    if vmaf_every < 0:
        raise CodecAssistError(f"--vmaf-every must be >= 0 (0 = off), got {vmaf_every}")
    if peer:
        from codec_assist.evaluation.compare import check_peer

        check_peer(codec, peer_aq_mode, peer_tune)
    for p in (output, html):
        if p:
            check_output(p, inp, overwrite=overwrite)
    if output and html and Path(output).resolve() == Path(html).resolve():
        raise CodecAssistError("--html must differ from the report")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
    a_opt = for_plan(analyze_options or AnalyzeOptions(), page=bool(html))
    p_opt = plan_options or PlanOptions()
    choices = None
    if auto_preset:
        a_opt, p_opt, choices = _auto_preset(inp, a_opt, p_opt.model_copy(update={"codec": codec}),
                                             EncodeOptions(codec=codec), plan_options, limits, progress)
    from codec_assist.media.safeio import work_dir

    with work_dir() as tmp:
        run = compare_run(inp, rates, keep or tmp, codec=codec, preset=preset, rois=rois, analyze_options=a_opt,
                          plan_options=p_opt, progress=progress, keep=bool(keep or html), vmaf_every=vmaf_every,
                          peer=peer, peer_aq_mode=peer_aq_mode, peer_tune=peer_tune, limits=limits)
        run.report.auto_preset = choices
        if output:
            schemas.save(run.report, output)
        if html:  # while the encodes exist: the page counts their packets per shot
            from codec_assist.report.html import report as html_report

            html_report([output] if output else [], html, compare=None if output else run.report,
                        analysis=run.analysis, arrays=run.arrays, plan=run.plan, plan_arrays=run.plan_arrays)
    return run.report


# ---------------------------------------------------------------------------------------------------- tag
def tag(input: str | Path, *, taxonomy: str | Path | None = None, top: int = 5,
        analyze_options: AnalyzeOptions | None = None, clip_model: str | None = None,
        clip_pretrained: str | None = None, clip_checkpoint: str | None = None, output: str | Path | None = None,
        chapters: str | Path | None = None, limits: Limits | None = None, overwrite: bool = False,
        progress: bool = False) -> TagReport:
    """Topic tags for a short video from the shipped (or a given) taxonomy, each with a calibrated score and
    its evidence, per video and per shot. `output` writes the report JSON, `chapters` WebVTT chapters.
    With CLIP weights (`clip_model` + `clip_pretrained`/`clip_checkpoint`), frames are matched too."""
    from codec_assist.media.safeio import atomic_write_bytes, check_output
    from codec_assist.tags.tagging import ClipSpec, chapters_vtt, load_taxonomy, tag_video

    inp = Path(input)
    if top < 1:
        raise CodecAssistError("--top must be at least 1")
    if (clip_pretrained or clip_checkpoint) and not clip_model:
        raise CodecAssistError("--clip-pretrained/--clip-checkpoint need --clip-model")
    for p in (output, chapters):
        if p:
            check_output(p, inp, overwrite=overwrite)
    if output and chapters and Path(output).resolve() == Path(chapters).resolve():
        raise CodecAssistError("--chapters must differ from --output")
    tax = load_taxonomy(taxonomy)
    clip = ClipSpec(clip_model, clip_pretrained, clip_checkpoint) if clip_model else None
    rep = tag_video(inp, tax, options=tag_analyze_options(analyze_options), top=top, clip=clip,
                    progress=progress, limits=_limits(limits))
    if output:
        schemas.save(rep, output)
    if chapters:
        atomic_write_bytes(chapters, chapters_vtt(rep).encode())
    return rep


def tag_folder(folder: str | Path, summary: str | Path, *, taxonomy: str | Path | None = None, top: int = 5,
               analyze_options: AnalyzeOptions | None = None, clip_model: str | None = None,
               clip_pretrained: str | None = None, clip_checkpoint: str | None = None,
               outdir: str | Path | None = None, limits: Limits | None = None, overwrite: bool = False,
               on_video=None) -> tuple[list[dict], int]:
    """`tag` for every video in a folder: a summary CSV (+ JSON twin) and, with `outdir`, a report and chapters
    per video. Returns (summary rows, number of videos that failed)."""
    from codec_assist.tags.tagging import ClipSpec, load_taxonomy, tag_folder as run_folder

    if top < 1:
        raise CodecAssistError("--top must be at least 1")
    if (clip_pretrained or clip_checkpoint) and not clip_model:
        raise CodecAssistError("--clip-pretrained/--clip-checkpoint need --clip-model")
    clip = ClipSpec(clip_model, clip_pretrained, clip_checkpoint) if clip_model else None
    return run_folder(folder, summary, load_taxonomy(taxonomy), options=tag_analyze_options(analyze_options),
                      top=top, clip=clip, outdir=outdir, overwrite=overwrite, limits=_limits(limits),
                      on_video=on_video)


def tag_analyze_options(options: AnalyzeOptions | None) -> AnalyzeOptions:
    """The analysis tagging runs: the caller's options (default: the tagging analyzers at the tagging frame
    rate) with CLIP left to the per-shot zero-shot step and OCR run less often."""
    from codec_assist.tags.tagging import TAG_ANALYZER_SETTINGS, tag_options

    if options is None:
        return tag_options()
    return options.model_copy(update={"clip_model": None, "clip_pretrained": None, "clip_checkpoint": None,
                                      "analyzer_settings": TAG_ANALYZER_SETTINGS})


# ------------------------------------------------------------------------------------------------ explain
def explain(analysis: str | Path | tuple[Analysis, Arrays], *, frame: int | None = None, time: float | None = None,
            top: int = 3) -> Explanation:
    """Why a moment matters: for the analysed frame at (or just before) `frame` or `time` seconds, or for the
    `top` most important moments, the importance, the hottest region and the tokens (faces, text, objects,
    transcript) that contributed most, with the query that attended to each."""
    from codec_assist.report.explain import explain as run_explain

    source = ""
    if isinstance(analysis, tuple):
        a, arrays = analysis
    else:
        a, arrays, path = schemas.load_analysis(analysis)
        source = str(path)
    if "importance/scalar" not in arrays:
        raise CodecAssistError(f"{source or 'analysis'}: the arrays have no importance/scalar")
    return run_explain(a, arrays, source, frame=frame, time=time, top=top)


# ------------------------------------------------------------------------------------------------- report
def write_report(inputs: Sequence[str | Path], output: str | Path, *, figures: str | Path | None = None,
                 analyze_options: AnalyzeOptions | None = None, overwrite: bool = False) -> dict:
    """One self-contained HTML page from any mix of analysis folders/JSON, plans, encode, compare, tag, ladder
    and semantic reports (each recognised by its schema). `figures` also writes each figure as PNG and SVG.
    Returns a summary (figures, key moments, warnings, bytes)."""
    from codec_assist.media.safeio import check_output
    from codec_assist.report.html import report

    paths = [Path(p) / "analysis.json" if Path(p).is_dir() else Path(p) for p in inputs]
    out = check_output(output, *paths, *(schemas.arrays_path(p) for p in paths), overwrite=overwrite)
    return report(paths, out, figures_dir=figures, analyze_options=analyze_options)


# ------------------------------------------------------------------------------------------------- export
def export_plan(plan: str | Path, format: str, output: str | Path | None = None, *, overwrite: bool = False) -> bytes:
    """A plan's decisions in a format another encoder reads (x264-zones, x265-zones, svt-roi, addroi, qp-npy,
    qp-csv, keyframes, qpfile, force-key-frames; docs/EXPORT.md). Returns the bytes; `output` also writes them."""
    from codec_assist.export.formats import export_plan as run_export

    return run_export(plan, format, output, overwrite=overwrite)


# ----------------------------------------------------------------------------------------------- semantic
def semantic_encode(input: str | Path, output: str | Path, options=None, *,
                    analyze_options: AnalyzeOptions | None = None, report: str | Path | None = None,
                    limits: Limits | None = None, overwrite: bool = False, progress: bool = False) -> SemanticReport:
    """Describe each shot of `input` (caption + facts) and pack it with the chosen side layers
    (`SemanticOptions`) into a compact stream file (docs/BITSTREAM.md). Returns sizes per layer and the facts."""
    from codec_assist.media.safeio import atomic_write_bytes, check_output
    from codec_assist.semantic.stream import encode_video, semantic_report

    inp, out = Path(input), Path(output)
    check_output(out, inp, overwrite=overwrite)
    if report:
        check_output(report, inp, overwrite=overwrite)
    blob, scene, info = encode_video(inp, options, analyze_options, progress=progress, limits=_limits(limits))
    atomic_write_bytes(out, blob)
    rep = semantic_report(inp, out, blob, scene, info)
    if report:
        schemas.save(rep, report)
    return rep


def semantic_decode(stream: str | Path, output: str | Path, *, generator: str = "layers", model: str | None = None,
                    images: str | Path | None = None, steps: int = 20, strength: float = 0.6,
                    vtt: str | Path | None = None, subtitle_track: bool = True, crf: float = 28,
                    overwrite: bool = False, progress: bool = False) -> dict:
    """Rebuild a video from a semantic stream with its original frame rate, frame count and shot timing; the
    captions go into a mov_text track and a WebVTT file (`vtt`, default: the output with .vtt)."""
    from codec_assist.media.safeio import check_output
    from codec_assist.semantic.generators import build_generator, write_video
    from codec_assist.semantic.stream import read_file

    src, out = Path(stream), Path(output)
    check_output(out, src, overwrite=overwrite)
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise CodecAssistError(f"output {out} must be .mp4 (H.264 with a mov_text caption track)")
    vtt_path = Path(vtt) if vtt else out.with_suffix(".vtt")
    check_output(vtt_path, src, overwrite=overwrite)
    if vtt_path.resolve() == out.resolve():
        raise CodecAssistError("--vtt must differ from the output video")
    if not 0 <= crf <= 51:
        raise CodecAssistError("--crf must be 0..51")
    if not 1 <= steps <= 1000 or not 0 < strength <= 1:
        raise CodecAssistError("--steps must be 1..1000 and --strength in (0, 1]")
    parsed = read_file(src)  # validates everything before any output is created
    gen = build_generator(generator, model=model, folder=images, steps=steps, strength=strength)
    written = write_video(parsed, gen, out, vtt=vtt_path, crf=crf, subtitles=subtitle_track, progress=progress)
    written.update(generator=gen.name, vtt=str(vtt_path), shots=len(parsed.scene.shots))
    return written


# -------------------------------------------------------------------------------------------------- batch
def batch(input_dir: str | Path, output_dir: str | Path, command: str = "encode",
          options: EncodeOptions | None = None, *, analyze_options: AnalyzeOptions | None = None,
          plan_options: PlanOptions | None = None, engine: EngineOptions | None = None,
          manifest: str | Path | None = None, limits: Limits | None = None, overwrite: bool = False,
          progress: bool = False) -> BatchManifest:
    """Run `command` ("encode" or "analyze") over every video under `input_dir` (recursively) into
    `output_dir`, in parallel on `engine` (a local process pool or Ray), resumably: verified items of an
    earlier run are skipped. The limits reach every worker. Returns the manifest (also written as JSON)."""
    from codec_assist.scale.batch import batch_options, run_batch

    o = options or EncodeOptions()
    if command == "encode" and (o.staged or o.chunked or o.auto_preset or o.plan_file):
        raise CodecAssistError("batch encodes plain or assisted items; allocation, ladders, chunks, auto-preset "
                               "and saved plans are per-video options of `encode`")
    opts = batch_options(command, rate=o.rate() if command == "encode" else None, codec=o.codec, preset=o.preset,
                         params=o.params, assist=o.assist, analyze_options=analyze_options,
                         plan_options=plan_options, limits=_limits(limits))
    return run_batch(input_dir, output_dir, command, opts, engine or EngineOptions(), manifest, progress=progress,
                     overwrite=overwrite)


# ----------------------------------------------------------------------------------------------- evaluate
def probe(input: str | Path, *, limits: Limits | None = None) -> schemas.VideoInfo:
    """Describe a video without decoding it: size, frame rate, frame count, duration, pixel format, colour,
    rotation, audio streams. Refuses inputs beyond `limits`."""
    import codec_assist.media.decode as media

    return media.probe(input, _limits(limits))


def measure(reference: str | Path, encoded: str | Path, *, rois: Sequence[RoiBox] = (), every: int = 1,
            xpsnr: bool = False, vmaf_every: int = 0) -> schemas.Quality:
    """Quality of `encoded` against `reference`: bitrate, whole-frame PSNR-Y/SSIM-Y (every `every`-th frame)
    and PSNR-Y inside each of `rois`; with `xpsnr`, XPSNR-Y; with `vmaf_every` k > 0, whole-frame VMAF
    (libvmaf, motion on) on every k-th frame (1: all frames)."""
    from codec_assist.evaluation.metrics import compare_videos

    return compare_videos(reference, encoded, rois=list(rois), every=every, xpsnr=xpsnr, vmaf_every=vmaf_every)


def bd_rate(rates_a: Sequence[float], quality_a: Sequence[float], rates_b: Sequence[float],
            quality_b: Sequence[float]) -> float | None:
    """Bjøntegaard delta rate of curve B versus A in percent (negative: B needs fewer bits for the same
    quality); None when a curve has fewer than 3 points or the curves do not overlap."""
    from codec_assist.evaluation.metrics import bd_rate as run_bd_rate

    return run_bd_rate(rates_a, quality_a, rates_b, quality_b)


# ---------------------------------------------------------------------------------------------- internals
def _model(cls, values: dict):
    """Build an options model from keyword arguments, turning a validation error into one line."""
    from pydantic import ValidationError

    from codec_assist.errors import options_error

    try:
        return cls(**values)
    except ValidationError as e:
        raise options_error(e) from None


__all__ = ["analyze", "make_plan", "encode", "compare", "tag", "tag_folder", "tag_analyze_options", "explain",
           "write_report", "export_plan", "semantic_encode", "semantic_decode", "batch", "probe", "measure", "bd_rate"]
