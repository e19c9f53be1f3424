"""`codec-assist compare VIDEO --bitrate R,R,R -o report.json`: plain vs assisted at several rates."""
from __future__ import annotations

from codec_assist.cli.common import (
    add_analysis_knobs,
    add_codec_knobs,
    add_global_flags,
    add_plan_knobs,
    analyze_options,
    emit,
    limits,
    parse_rates,
    parse_roi_arg,
    plan_options,
)
from codec_assist.errors import CodecAssistError


def register(sub) -> None:
    from codec_assist.cli.encode import add_auto_preset_knobs

    c = sub.add_parser("compare", help="plain vs assisted encodes at several rates, with metrics and BD-rate",
                       description="Encode the video plainly and assisted with the same encoder, preset and "
                       "rate control at each bitrate, and measure both against the source: bitrate, whole-frame "
                       "PSNR/SSIM/XPSNR and VMAF (vmaf-torch, motion on), PSNR in --roi boxes and, with 3+ rates, "
                       "BD-rates on each. PSNR punishes any redistribution of bits inside a frame (x264/x265's own "
                       "AQ too); VMAF is the viewer's proxy: read them side by side.")
    c.add_argument("input", help="video file")
    c.add_argument("--bitrate", type=parse_rates, required=True, metavar="R[,R...]",
                   help="target bitrates, e.g. 150k,300k,600k (3+ give BD-rates)")
    c.add_argument("-o", "--output", required=True, help="report JSON path")
    add_codec_knobs(c)
    c.add_argument("--roi", type=parse_roi_arg, action="append", default=[], metavar="X,Y,W,H[@T0-T1]",
                   help="region (source pixels, optional seconds window) to measure PSNR in (repeatable)")
    c.add_argument("--vmaf-every", type=int, default=1, metavar="K",
                   help="whole-frame VMAF on every frame (1, default), every K-th frame (motion still from all) or "
                   "off (0). It is the costly metric: about 45 ms per 352x288 frame, 0.1 s at 640x360 and "
                   "0.25-0.8 s at 1280x720 on 2 cores, for each encode measured")
    c.add_argument("--keep", metavar="DIR", help="keep the encodes in this folder")
    c.add_argument("--html", metavar="FILE", help="also write the HTML report (RD curves, QP maps, bits per shot) here")
    add_analysis_knobs(c)
    add_plan_knobs(c)
    add_auto_preset_knobs(c)
    add_global_flags(c)
    c.set_defaults(handler=run)


def run(args) -> int:
    from codec_assist import api
    from codec_assist.encoding.x26x import parse_params

    if parse_params(args.params):
        raise CodecAssistError("compare runs both encoders with their defaults; --params is not supported here")
    if args.preset_table or args.taxonomy:
        if not args.auto_preset:
            raise CodecAssistError("--preset-table and --taxonomy go with --auto-preset")
    report = api.compare(args.input, args.bitrate, output=args.output, codec=args.codec, preset=args.preset,
                         rois=args.roi, analyze_options=analyze_options(args),
                         plan_options=plan_options(args, args.codec), auto_preset=args.auto_preset, keep=args.keep,
                         html=args.html, vmaf_every=args.vmaf_every, limits=limits(args), overwrite=args.overwrite, progress=not args.quiet)
    extra = ""
    if report.auto_preset is not None:
        from codec_assist.tags.tagging import describe_choices

        extra = "\n" + describe_choices(report.auto_preset)
    emit(args, report, format_compare(report) + extra + f"\n-> {args.output}")
    return 0


def format_compare(report) -> str:
    rois = list(report.points[0].baseline.quality.roi_psnr_y) if report.points else []
    head = f"{'rate':>8} | {'kb/s base':>9} {'kb/s asst':>9} {'ratio':>6} | {'PSNR base':>9} {'asst':>6} {'Δ':>6}"
    head += "".join(f" | ROI {k:<14} {'Δ':>6}" for k in rois)
    lines = [f"{report.input.path} {report.codec} {report.preset}", head, "-" * len(head)]
    for p in report.points:
        b, a = p.baseline.quality, p.assisted.quality
        row = (f"{p.rate.bitrate / 1000:>7g}k | {b.bitrate_kbps:9.1f} {a.bitrate_kbps:9.1f} {p.bitrate_ratio:6.3f} | "
               f"{b.psnr_y:9.2f} {a.psnr_y:6.2f} {p.psnr_y_delta:+6.2f}")
        row += "".join(f" | {b.roi_psnr_y[k]:6.2f}→{a.roi_psnr_y[k]:6.2f}  {p.roi_psnr_y_delta[k]:+6.2f}" for k in rois)
        lines.append(row)
    if report.bd_rate:
        lines.append("BD-rate (assisted vs baseline, negative = fewer bits): " + ", ".join(
            f"{k} {v:+.1f}%" if v is not None else f"{k} n/a" for k, v in report.bd_rate.items()))
    lines.append(f"analysis {report.seconds_analysis:.2f}s; (analysis + assisted encode) / plain encode = "
                 f"{report.speed_ratio:.2f}x (mean over rates)")
    if report.timing is not None:
        lines.append(f"time: {report.timing.describe()}")
    return "\n".join(lines)
