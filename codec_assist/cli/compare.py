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
                       "PSNR/SSIM/XPSNR and VMAF (libvmaf, motion on), PSNR in --roi boxes and, with 3+ rates, "
                       "BD-rates on each. PSNR punishes any redistribution of bits inside a frame (x264/x265's own "
                       "AQ too); VMAF is the viewer's proxy: read them side by side. A third encode, the peer, "
                       "is the encoder with its own tools on (aq-mode=3 and a tune), so the table shows "
                       "assisted vs plain, peer vs plain and assisted vs peer.")
    c.add_argument("input", help="video file")
    c.add_argument("--bitrate", type=parse_rates, required=True, metavar="R[,R...]",
                   help="target bitrates, e.g. 150k,300k,600k (3+ give BD-rates)")
    c.add_argument("-o", "--output", required=True, help="report JSON path")
    add_codec_knobs(c)
    c.add_argument("--roi", type=parse_roi_arg, action="append", default=[], metavar="X,Y,W,H[@T0-T1]",
                   help="region (source pixels, optional seconds window) to measure PSNR in (repeatable)")
    c.add_argument("--vmaf-every", type=int, default=1, metavar="K",
                   help="whole-frame VMAF (libvmaf) on every frame (1, default), every K-th frame (motion still "
                   "from all) or off (0); about 3 ms a frame at 352x288 and 20 ms at 1280x720 of each encode "
                   "measured, beside the other metrics")
    c.add_argument("--no-peer", dest="peer", action="store_false",
                   help="skip the peer encode (the encoder with its own tools on)")
    c.add_argument("--peer-aq-mode", type=int, default=3, metavar="N",
                   help="the peer's aq-mode (default 3: auto-variance biased to dark scenes; x265 also has 4)")
    c.add_argument("--peer-tune", default="auto", metavar="TUNE",
                   help="the peer's --tune: auto (default: animation when the analysis finds animation, else film "
                   "for x264, none for x265), none, or an encoder tune such as film, animation, grain")
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
                         html=args.html, vmaf_every=args.vmaf_every, peer=args.peer, peer_aq_mode=args.peer_aq_mode,
                         peer_tune=args.peer_tune, limits=limits(args), overwrite=args.overwrite, progress=not args.quiet)
    extra = ""
    if report.auto_preset is not None:
        from codec_assist.tags.tagging import describe_choices

        extra = "\n" + describe_choices(report.auto_preset)
    emit(args, report, format_compare(report) + extra + f"\n-> {args.output}")
    return 0


METRIC_NOTE = ("PSNR punishes any redistribution of bits inside a frame (x264/x265's own AQ as much as ours); "
               "VMAF (libvmaf, motion on) is the viewer's proxy and XPSNR weights errors by what masks them: "
               "read them side by side.")


def _side_rows(report, p) -> list[tuple[str, object]]:
    rows = [("plain", p.baseline), ("assisted", p.assisted)]
    if p.peer is not None:
        rows.append((f"peer ({report.peer.label()})" if report.peer else "peer", p.peer))
    return rows


def format_compare(report) -> str:
    """The compare table: per rate, the plain, assisted and peer encodes on every metric; then BD-rates of each
    pair on each metric."""
    rois = list(report.points[0].baseline.quality.roi_psnr_y) if report.points else []
    name_w = max([8] + [len(n) for p in report.points for n, _ in _side_rows(report, p)])
    head = (f"{'rate':>8} {'encode':<{name_w}} | {'kb/s':>8} | {'PSNR-Y':>6} {'SSIM-Y':>6} {'XPSNR':>6} {'VMAF':>6}"
            + "".join(f" | ROI {k}" for k in rois))
    lines = [f"{report.input.path} {report.codec} {report.preset}", head, "-" * len(head)]
    num = lambda v, spec: format(v, spec) if v is not None else "n/a".rjust(int(spec.split(".")[0]))  # noqa: E731
    for p in report.points:
        for k, (name, r) in enumerate(_side_rows(report, p)):
            q = r.quality
            rate = f"{p.rate.bitrate / 1000:>7g}k" if k == 0 else " " * 8
            row = (f"{rate} {name:<{name_w}} | {q.bitrate_kbps:8.1f} | {q.psnr_y:6.2f} {q.ssim_y:6.4f} "
                   f"{num(q.xpsnr_y, '6.2f')} {num(q.vmaf, '6.2f')}")
            row += "".join(f" | {num(q.roi_psnr_y.get(key), '6.2f'):>{len(key) + 4}}" for key in rois)
            lines.append(row)
    pairs = [("assisted vs plain", report.bd_rate)]
    if report.peer is not None:
        pairs += [("peer vs plain", report.bd_rate_peer), ("assisted vs peer", report.bd_rate_vs_peer)]
    if report.bd_rate:
        metrics = list(report.bd_rate)
        width = max(len(m) for m in metrics)
        lines.append("BD-rate, % bits for the same quality (negative = fewer bits):")
        lines.append(f"  {'metric':<{width}} " + " ".join(f"{n:>17}" for n, _ in pairs))
        for m in metrics:
            cells = []
            for _, d in pairs:
                v = d.get(m)
                cells.append(f"{v:+16.1f}%" if v is not None else f"{'n/a':>17}")
            lines.append(f"  {m:<{width}} " + " ".join(cells))
    if report.peer is not None:
        lines.append(f"peer: {report.codec} {report.preset} {report.peer.label()} ({report.peer.tune_reason})")
    lines.append(METRIC_NOTE)
    lines.append(f"analysis {report.seconds_analysis:.2f}s; (analysis + assisted encode) / plain encode = "
                 f"{report.speed_ratio:.2f}x (mean over rates)")
    if report.timing is not None:
        lines.append(f"time: {report.timing.describe()}")
    return "\n".join(lines)
