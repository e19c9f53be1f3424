"""`codec-assist encode VIDEO -o OUT`: the assisted (or plain) encode, with allocation, target quality, ladders
and chunks as options of the one encode orchestration (codec_assist.api.encode)."""
from __future__ import annotations

from pathlib import Path

from codec_assist.cli.common import (
    add_analysis_knobs,
    add_codec_knobs,
    add_engine_knobs,
    add_global_flags,
    add_plan_knobs,
    add_rate_knobs,
    analyze_options,
    build,
    defaults,
    emit,
    engine_options,
    limits,
    parse_events,
    parse_roi_arg,
    parse_size,
    plan_options,
)

FLAGS = {"plan_file": "--plan", "assist": "--no-assist", "allocation": "--allocate", "ladder_plain": "--no-plain"}


def register(sub) -> None:
    from codec_assist.options import AllocationOptions, EncodeOptions, HullOptions

    e = sub.add_parser("encode", help="encode a video, content-aware by default",
                       description="Encode with per-block QP offsets and IDRs on shot cuts, or plainly with "
                       "--no-assist. The analysis runs first, in a child process that exits before the encoder "
                       "starts (running it in segments beside the encoder was slower once the encoder used both "
                       "cores). "
                       "--plan, --ladder, --chunked, --events, --focus, --html and --auto-preset use the whole "
                       "analysis before the encode starts; --allocate and --target-quality also need every shot's "
                       "complexity first (probe encodes).")
    e.add_argument("input", help="video file")
    e.add_argument("-o", "--output", required=True,
                   help="output video (.mp4, .mkv, .mov); with --ladder a folder or a pattern with {rung}. It keeps "
                   "the source's colour (range, matrix, primaries, transfer, HDR10 metadata), rotation, aspect, "
                   "interlaced fields (x264), timestamps (an MPEG-TS clock restarts at 0), audio and subtitle "
                   "tracks, closed captions, chapters, metadata and cover picture, or a warning says what changed")
    add_rate_knobs(e)
    add_codec_knobs(e)
    e.add_argument("--plan", help="use this plan JSON instead of analysing")
    e.add_argument("--no-assist", action="store_true", help="plain encode: no analysis, no ROI, no forced IDRs")
    e.add_argument("--report", help="write a JSON report (with PSNR/SSIM against the input) here")
    e.add_argument("--html", metavar="FILE", help="also write the HTML report (figures inlined) here")
    e.add_argument("--roi", type=parse_roi_arg, action="append", default=[], metavar="X,Y,W,H[@T0-T1]",
                   help="box to measure PSNR in for --report (repeatable)")
    add_analysis_knobs(e)
    add_plan_knobs(e)
    add_auto_preset_knobs(e)
    g = e.add_argument_group("allocation, target quality, ladders (see docs/EXPORT.md)")
    g.add_argument("--allocate", action="store_true",
                   help="share the --bitrate (or --size) budget between shots by importance and complexity (zones)")
    g.add_argument("--size", type=parse_size, metavar="BYTES",
                   help="total video size instead of --bitrate, e.g. 2M, 750k (bytes)")
    alloc, hull, enc = defaults(AllocationOptions), defaults(HullOptions), defaults(EncodeOptions)
    g.add_argument("--alloc-strength", type=float, default=alloc["strength"],
                   help="importance tilt: shot QP offset = -2 x strength x log2(weight / mean weight)")
    g.add_argument("--max-shot-dqp", type=float, default=alloc["max_shot_dqp"],
                   help="largest per-shot QP offset either way")
    g.add_argument("--segment", type=float, default=alloc["segment"],
                   help="cut shots longer than this many seconds into pieces for allocation (0: whole shots)")
    g.add_argument("--target-quality", metavar="METRIC=VALUE",
                   help="per-shot quality target, e.g. psnr=40, xpsnr=38, ssim=0.97, vmaf=93 (libvmaf, every 10th frame)")
    g.add_argument("--tolerance", type=float,
                   help="target-quality probe tolerance (default 0.25 dB; 0.003 SSIM; 0.5 VMAF)")
    g.add_argument("--max-probes", type=int, default=alloc["max_probes"],
                   help="target-quality: most probe encodes per shot")
    g.add_argument("--ladder", metavar="RUNG:RATE[,...]",
                   help="encode renditions from one plan with identical IDRs, e.g. 720p:1M,480p:500k,240p:150k "
                   "(-o is then a folder or a pattern with {rung}); auto[:RATE,...] (e.g. auto:1M,500k,250k): "
                   "the per-shot convex-hull ladder, each rung's resolution and per-shot CRF chosen from probes "
                   "(-o a folder; rates default to up to four, halving from what CRF 26 spends, while the probes "
                   "predict VMAF >= 40)")
    h = e.add_argument_group("convex-hull ladder (--ladder auto[:RATE,...]; see docs/BENCHMARKS.md)")
    h.add_argument("--probe-preset", default=hull["probe_preset"],
                   help="--ladder auto: preset of the per-shot probe encodes (the rungs use --preset)")
    h.add_argument("--hull-crfs", default=",".join(f"{c:g}" for c in hull["crfs"]), metavar="CRF,CRF,...",
                   help="--ladder auto: probe CRF grid")
    h.add_argument("--hull-heights", type=_heights, metavar="H,H,...",
                   help="--ladder auto: probe resolutions (default: the source height and 1080/720/540/360/240 "
                        "below it)")
    h.add_argument("--hull-importance", type=float, default=hull["importance_weight"], metavar="WEIGHT",
                   help="--ladder auto: > 0 runs the full analysis and lets shots that matter take higher points")
    h.add_argument("--hull-vmaf-every", type=int, default=hull["vmaf_every"], metavar="N",
                   help="--ladder auto: probes score every N-th frame with VMAF")
    h.add_argument("--hull-refine", type=float, default=hull["refine_step"], metavar="STEP",
                   help="--ladder auto: probe more CRFs around each rung's per-shot choice until the probed CRFs "
                        "there are at most STEP apart (0: the --hull-crfs grid only)")
    h.add_argument("--hull-cache", metavar="DIR",
                   help="--ladder auto: probe results are cached here (default OUT/.hull-probes); reruns reuse them")
    g.add_argument("--no-plain", action="store_true", help="--ladder: skip the plain per-rung encodes (IDR check)")
    g.add_argument("--events", type=parse_events, default=[], metavar="F[,F...]",
                   help="extra IDR candidates (frame numbers: speaker/topic changes...), kept within min/max GOP; "
                   "the analysis's 'event:' tokens are added automatically")
    g.add_argument("--save-plan", metavar="PATH", help="write the plan used (with zones and allocation) here")
    overlap = g.add_mutually_exclusive_group()
    overlap.add_argument("--overlap", action="store_true",
                         help="analyse in segments in a process beside the encoder, which follows 1 s behind (not "
                         "with --plan, --allocate, --target-quality, --ladder, --chunked, --auto-preset, --events, "
                         "--focus or --html, which need the whole analysis first). It pays only where the encoder "
                         "leaves cores idle, so no encode does it unless asked: x264 on frame threads keeps two cores "
                         "busy (60 s of 720p: 25.3 s overlapped against 24.0 s with the analysis first), and it holds "
                         "the analysis and the encoder in memory at once")
    overlap.add_argument("--no-overlap", action="store_true",
                         help="analyse the whole video before the encode starts (what every encode does unless "
                         "--overlap)")
    c = e.add_argument_group("chunked encoding (long videos: shot chunks in parallel, joined losslessly)")
    c.add_argument("--chunked", action="store_true",
                   help="split at shot cuts, encode the chunks in parallel (two-pass ABR per chunk), join them")
    c.add_argument("--min-chunk", type=float, default=enc["min_chunk"], metavar="SECONDS",
                   help="with --chunked: shortest chunk; consecutive shots are merged up to it")
    add_engine_knobs(e)
    add_global_flags(e)
    e.set_defaults(handler=run)


def add_auto_preset_knobs(sp) -> None:
    g = sp.add_argument_group("tag-driven preset")
    g.add_argument("--auto-preset", action="store_true",
                   help="tag the video first and let the preset table choose GOP limits, QP-offset bounds, "
                   "AQ and analyzer weights (settings given explicitly on the command line win)")
    g.add_argument("--preset-table", metavar="FILE", help="preset table YAML/JSON (default: the shipped one)")
    g.add_argument("--taxonomy", metavar="FILE", help="taxonomy for --auto-preset (default: the shipped one)")


def _heights(text: str) -> list[int]:
    import argparse

    try:
        return [int(x.strip().rstrip("p")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"heights {text!r}: expected numbers like 720,360") from None


def encode_options(args):
    from codec_assist.options import AllocationOptions, EncodeOptions, HullOptions

    allocation = build(AllocationOptions, {"strength": "--alloc-strength", "target_quality": "--target-quality"},
                       allocate=args.allocate, strength=args.alloc_strength, max_shot_dqp=args.max_shot_dqp,
                       segment=args.segment, target_quality=args.target_quality, tolerance=args.tolerance,
                       max_probes=args.max_probes)
    hull = build(HullOptions, {"probe_preset": "--probe-preset", "crfs": "--hull-crfs", "heights": "--hull-heights",
                               "importance_weight": "--hull-importance", "vmaf_every": "--hull-vmaf-every",
                               "cache_dir": "--hull-cache", "refine_step": "--hull-refine"},
                 probe_preset=args.probe_preset, crfs=args.hull_crfs, heights=args.hull_heights,
                 importance_weight=args.hull_importance, vmaf_every=args.hull_vmaf_every, cache_dir=args.hull_cache,
                 refine_step=args.hull_refine)
    return build(EncodeOptions, FLAGS, codec=args.codec, preset=args.preset, bitrate=args.bitrate, crf=args.crf,
                 size=args.size, params=args.params, assist=not args.no_assist, plan_file=args.plan,
                 events=args.events, allocation=allocation, ladder=args.ladder, ladder_plain=not args.no_plain,
                 hull=hull,
                 overlap=True if args.overlap else False if args.no_overlap else None,
                 chunked=args.chunked, min_chunk=args.min_chunk,
                 engine=engine_options(args),
                 auto_preset=args.auto_preset, preset_table=args.preset_table, taxonomy=args.taxonomy,
                 save_plan=args.save_plan)


def run(args) -> int:
    from codec_assist import api
    from codec_assist.encoding.x26x import ENCODERS
    from codec_assist.schemas import HullLadderReport, LadderReport

    options = encode_options(args)
    rep = api.encode(args.input, args.output, options, analyze_options=analyze_options(args),
                     plan_options=plan_options(args), limits=limits(args), overwrite=args.overwrite,
                     progress=not args.quiet, report=args.report, html=args.html, rois=args.roi)
    if isinstance(rep, HullLadderReport):
        lines = [f"{r.name} {r.width}x{r.height} {r.bitrate_kbps:.0f} kb/s (budget {r.budget / 1000:g}, "
                 f"{r.error * 100:+.1f} %), predicted VMAF {r.predicted_vmaf:.1f}, CRF per shot "
                 f"{[c.crf for c in r.shots]} -> {r.output}" for r in rep.rungs]
        lines.append(f"{len(rep.shots)} shots; probes: {rep.probe_encodes} run ({rep.probe_cpu_seconds:.0f} CPU-s), "
                     f"{rep.probe_cached} cached; IDRs at every hard-cut shot start in every rung: {rep.aligned}")
        emit(args, rep, "\n".join(lines))
        return 0 if rep.aligned else 1
    if isinstance(rep, LadderReport):
        lines = [f"{r.name} {r.width}x{r.height} {r.bitrate_kbps:.0f} kb/s IDR {r.keyframes}"
                 + (f" (plain scenecut: {r.plain_keyframes})" if r.plain_keyframes is not None else "")
                 + f" -> {r.output}" for r in rep.rungs]
        lines.append(f"IDRs identical in every rung: {rep.aligned}"
                     + (f"; plain encodes identical: {rep.plain_aligned}" if rep.plain_aligned is not None else ""))
        emit(args, rep, "\n".join(lines))
        return 0 if rep.aligned else 1
    result = rep.result
    text = (f"{Path(args.output)}: {result.frames} frames, {result.bitrate_kbps:.1f} kb/s, IDR at {result.keyframes}, "
            f"{'assisted' if result.assisted else 'plain'} {ENCODERS[options.codec]} {options.preset} "
            f"{result.rate.describe()}, analysis {result.seconds_analysis:.2f}s + encode {result.seconds_encode:.2f}s")
    if result.quality:
        text += f", PSNR-Y {result.quality.psnr_y:.2f} dB, SSIM-Y {result.quality.ssim_y:.4f}"
    if result.timing is not None:
        text += f"\ntime: {result.timing.describe()}"
    if result.allocation:
        text += "\n" + format_allocation(result.allocation)
    if rep.auto_preset is not None:
        from codec_assist.tags.tagging import describe_choices

        text += "\n" + describe_choices(rep.auto_preset)
    emit(args, result, text)
    return 0


def format_allocation(a) -> str:
    rows = []
    for x in a.shots:
        row = f"  frames {x.start_frame:>5}-{x.end_frame - 1:<5} importance {x.importance:.2f}"
        if a.mode == "budget":
            row += (f" complexity {x.complexity / 1000:7.1f} kb/f  factor {x.bitrate_factor:5.3f} "
                    f"(ΔQP {x.dqp:+.1f})  bits {x.bits / 8e3:8.1f} kB planned, {x.bits_actual / 8e3:8.1f} kB spent")
        else:
            row += (f" CRF {x.crf:5.2f}  {a.metric} {x.achieved:.3f} (probe {x.predicted:.3f}, "
                    f"{len(x.probes)} probes, {x.status})")
        rows.append(row)
    text = "\n".join(rows) + f"\n{a.message}"
    if a.mode == "target-quality":
        text += f"\nprobe encodes: {a.probe_encodes}, final encodes: {a.final_encodes}"
    return text
