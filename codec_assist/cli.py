"""`codec-assist` command line: analyze, plan, encode, compare.

Errors are one line on stderr with a non-zero exit (2: bad input or request, 1: internal error, 130: interrupted);
--debug shows the traceback instead. Outputs are written to a temp file and renamed at the end.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import sys
import tempfile
from pathlib import Path

from . import __version__
from .errors import CodecAssistError

EPILOG = "Exit codes: 0 ok, 1 internal error, 2 bad input or options, 130 interrupted."


# ------------------------------------------------------------------------------------------------ parsing
def parse_rate(text: str) -> int:
    """'400k', '1.5M', '800000' -> bits per second."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:bps|b/s)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bitrate {text!r} is not a number like 400k or 1.5M")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if not 1000 <= value <= 1e9:
        raise argparse.ArgumentTypeError(f"bitrate {text!r} is out of range (1k to 1000M)")
    return int(value)


def parse_rates(text: str) -> list[int]:
    return [parse_rate(t) for t in text.split(",") if t.strip()]


def parse_crf(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"crf {text!r} is not a number") from None
    if not 0 <= v <= 51:
        raise argparse.ArgumentTypeError(f"crf {v:g} is out of range (0 to 51)")
    return v


def parse_focus(text: str):
    """'bicycle' or 'bicycle@0.5' -> FocusPrompt."""
    from .schemas import FocusPrompt

    body, _, weight = text.rpartition("@") if re.search(r"@\s*\d*\.?\d+\s*$", text) else (text, "", "")
    try:
        return FocusPrompt(text=body.strip(), weight=float(weight) if weight else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"focus {text!r}: needs text and an optional weight in (0, 1], "
                                         f"like 'bicycle@0.5'") from None


def parse_roi_arg(text: str):
    from .metrics import parse_roi

    try:
        return parse_roi(text)
    except CodecAssistError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------------- shared option groups
# Side-path commands (tag, semantic, export, report, batch) reuse these, so one knob means one thing everywhere.
FMT = argparse.ArgumentDefaultsHelpFormatter


def add_analysis_knobs(sp) -> None:
    g = sp.add_argument_group("analysis")
    g.add_argument("--analyzers", default="shots,saliency,faces,text,imagenet,speech,audio",
                   help="comma-separated analyzers to run (shots, transnetv2, saliency, faces, text, imagenet, clip, "
                   "speech, audio, subtitles); speech and audio skip videos without audio")
    g.add_argument("--proxy-width", type=int, default=320, help="width of the downscaled analysis proxy, px")
    g.add_argument("--analysis-fps", type=float, default=3.0,
                   help="frames per second sampled for the per-frame analyzers (faces, text, saliency maps)")
    g.add_argument("--focus", type=parse_focus, action="append", default=[], metavar="TEXT[@W]",
                   help="what matters, in words (repeatable): regions and moments whose meaning matches get more "
                   "bits; optional weight in (0, 1], e.g. --focus bicycle@0.5")
    g.add_argument("--clip-model", metavar="NAME", help="attend in CLIP space too with this open_clip model "
                   "(e.g. ViT-B-32); needs --clip-pretrained or --clip-checkpoint weights on this machine")
    clip = g.add_mutually_exclusive_group()
    clip.add_argument("--clip-pretrained", metavar="TAG", help="open_clip pretrained tag, found in the local "
                      "open_clip / Hugging Face cache (never downloaded)")
    clip.add_argument("--clip-checkpoint", metavar="FILE", help="local open_clip checkpoint file for --clip-model")
    g.add_argument("--subtitles", metavar="FILE",
                   help="sidecar .srt or .vtt subtitles, used as a time-aligned text source (text subtitle streams "
                   "inside the input are read without this)")
    g.add_argument("--asr-model", metavar="NAME_OR_PATH",
                   help="faster-whisper model for speech: a size or HF repo id already in the local cache, or a "
                   "CTranslate2 model folder (default: the bundled Whisper tiny.en)")
    g.add_argument("--no-asr", action="store_true", help="no speech recognition (drops the speech analyzer)")


def add_plan_knobs(sp) -> None:
    g = sp.add_argument_group("plan")
    g.add_argument("--max-dqp", type=float, default=6.0,
                   help="largest QP offset either way; small keeps the bitrate (FACTS: ±25 broke it)")
    g.add_argument("--strength", type=float, default=2.0,
                   help="QP offset per unit of importance above the frame mean, in units of --max-dqp")
    g.add_argument("--min-gop", type=float, default=0.5, help="minimum seconds between forced IDRs")
    g.add_argument("--max-gop", type=float, default=10.0, help="maximum seconds between IDRs")


def add_codec_knobs(sp) -> None:
    from .encode import PRESETS

    sp.add_argument("--codec", choices=["x264", "x265"], default="x264", help="encoder")
    sp.add_argument("--preset", choices=PRESETS, default="medium", help="encoder preset")
    sp.add_argument("--params", default="", metavar="K=V:K=V",
                    help="extra x264-params/x265-params (validated: unknown keys are an error)")


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def add_safety_knobs(sp, top: bool = False) -> None:
    """--overwrite and the input guards. On the main parser (defaults) and on every subcommand (so they may
    follow the command name); a subcommand only sets them when given."""
    from .media import Limits

    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    g = sp.add_argument_group("safety")
    g.add_argument("--overwrite", action="store_true", default=d(False), help="replace existing output files")
    g.add_argument("--max-duration", type=positive_float, default=d(Limits.max_duration), metavar="SECONDS",
                   help="refuse inputs longer than this (declared or decoded)")
    g.add_argument("--max-pixels", type=positive_int, default=d(Limits.max_pixels), metavar="N",
                   help="refuse inputs whose frames have more pixels than this (declared or decoded)")


# Modules that add a subcommand: each has register(sub) that adds its parser(s) with set_defaults(handler=...).
SIDE_COMMANDS: tuple[str, ...] = (
    "codec_assist.export",
    "codec_assist.report",
    "codec_assist.semantic_cmd",
    "codec_assist.tagging",
    "codec_assist.explain",
    "codec_assist.batch",
)
CORE_COMMANDS: dict = {}  # filled below, after the handlers are defined


def build_parser() -> argparse.ArgumentParser:
    fmt = FMT
    p = _Parser(prog="codec-assist", description="Content-aware x264/x265 encoding: find what matters in a video "
                "(shots, faces, text, motion), move bits toward it with per-block QP offsets and put IDR frames "
                "on the cuts, and measure it against the plain encoder.", epilog=EPILOG, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"codec-assist {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    add_safety_knobs(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    a = sub.add_parser("analyze", help="analyse a video into an importance map (JSON + npz)", formatter_class=fmt,
                       description="Decode once into a small proxy, run the analyzers, fuse their maps.")
    a.add_argument("input", help="video file")
    a.add_argument("-o", "--output", required=True, help="output folder (analysis.json + analysis.npz)")
    a.add_argument("--json", action="store_true", help="print the analysis summary as JSON")
    add_analysis_knobs(a)

    pl = sub.add_parser("plan", help="turn an analysis into an encode plan (QP maps + keyframes)", formatter_class=fmt)
    pl.add_argument("analysis", help="analysis folder or its analysis.json")
    pl.add_argument("-o", "--output", required=True, help="plan JSON path (arrays go to the .npz beside it)")
    pl.add_argument("--codec", choices=["x264", "x265"], default="x264", help="encoder the plan is for")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_plan_knobs(pl)

    e = sub.add_parser("encode", help="encode a video, content-aware by default", formatter_class=fmt,
                       description="Encode with per-block QP offsets and IDRs on shot cuts (analysis runs first "
                       "unless --plan is given), or plainly with --no-assist.")
    e.add_argument("input", help="video file")
    e.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .mov); it keeps the source's "
                   "colour (range, matrix, primaries, transfer, HDR10 metadata), rotation, aspect, timestamps, "
                   "audio and subtitle tracks, chapters and metadata, or says in a warning what it had to change")
    rate = e.add_mutually_exclusive_group()
    rate.add_argument("--bitrate", type=parse_rate, help="target bitrate (ABR), e.g. 400k, 2M")
    rate.add_argument("--crf", type=parse_crf, help="constant rate factor (default 23 when no --bitrate)")
    add_codec_knobs(e)
    e.add_argument("--plan", help="use this plan JSON instead of analysing")
    e.add_argument("--no-assist", action="store_true", help="plain encode: no analysis, no ROI, no forced IDRs")
    e.add_argument("--report", help="write a JSON report (with PSNR/SSIM against the input) here")
    e.add_argument("--html", metavar="FILE", help="also write the HTML report (figures inlined) here")
    e.add_argument("--roi", type=parse_roi_arg, action="append", default=[], metavar="X,Y,W,H[@T0-T1]",
                   help="box to measure PSNR in for --report (repeatable)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    add_analysis_knobs(e)
    add_plan_knobs(e)
    importlib.import_module("codec_assist.allocate").add_encode_options(e)
    importlib.import_module("codec_assist.chunked").add_chunk_knobs(e)  # --chunked, --workers, --engine, ...

    c = sub.add_parser("compare", help="plain vs assisted encodes at several rates, with metrics and BD-rate",
                       formatter_class=fmt)
    c.add_argument("input", help="video file")
    c.add_argument("--bitrate", type=parse_rates, required=True, metavar="R[,R...]",
                   help="target bitrates, e.g. 150k,300k,600k (3+ give BD-rates)")
    c.add_argument("-o", "--output", required=True, help="report JSON path")
    add_codec_knobs(c)
    c.add_argument("--roi", type=parse_roi_arg, action="append", default=[], metavar="X,Y,W,H[@T0-T1]",
                   help="region (source pixels, optional seconds window) to measure PSNR in (repeatable)")
    c.add_argument("--keep", metavar="DIR", help="keep the encodes in this folder")
    c.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    c.add_argument("--html", metavar="FILE", help="also write the HTML report (RD curves, QP maps, bits per shot) here")
    add_analysis_knobs(c)
    add_plan_knobs(c)
    for name, handler in CORE_COMMANDS.items():
        sub.choices[name].set_defaults(handler=handler)
    for module in SIDE_COMMANDS:
        importlib.import_module(module).register(sub)
    for sp in sub.choices.values():
        add_safety_knobs(sp)
    return p


# ----------------------------------------------------------------------------------------------- commands
def _analyze_options(args):
    from .pipeline import AnalyzeOptions

    names = [n.strip() for n in args.analyzers.split(",") if n.strip()]
    return AnalyzeOptions(analyzers=names, proxy_width=args.proxy_width, analysis_fps=args.analysis_fps,
                          subtitles=args.subtitles, asr_model=args.asr_model, asr=not args.no_asr,
                          focus=args.focus, clip_model=args.clip_model, clip_pretrained=args.clip_pretrained,
                          clip_checkpoint=args.clip_checkpoint)


def _plan_options(args, codec: str):
    from .pipeline import PlanOptions

    return PlanOptions(codec=codec, max_dqp=args.max_dqp, strength=args.strength, min_gop=args.min_gop,
                       max_gop=args.max_gop)


def _emit(args, model, text: str) -> None:
    from .safeio import shown

    print(model.model_dump_json(indent=2, by_alias=True) if args.json else shown(text))


def cmd_analyze(args) -> int:
    from . import schemas
    from .pipeline import analyze

    from .safeio import check_output, shown

    out = Path(args.output)
    inp = Path(args.input)
    if out.exists() and not out.is_dir():
        raise CodecAssistError(f"output {shown(out)} exists and is not a folder")
    if inp.exists() and out.resolve() == inp.resolve():
        raise CodecAssistError(f"output {shown(out)} is the input")
    for name in ("analysis.json", "analysis.npz"):
        check_output(out / name, inp)
    options = _analyze_options(args)
    analysis, arrays = analyze(inp, options, progress=not args.quiet)
    schemas.save(analysis, out / "analysis.json", arrays)
    extra = ""
    if analysis.transcript is not None:
        from .safeio import atomic_write_bytes
        from .subtitles import to_webvtt

        atomic_write_bytes(out / "transcript.vtt", to_webvtt(analysis.transcript).encode())
        extra = f", transcript of {len(analysis.transcript.segments)} segments ({analysis.transcript.source})"
    else:
        (out / "transcript.vtt").unlink(missing_ok=True)  # an earlier run's, not this analysis's
    runs = ", ".join(f"{r.name} {r.seconds:.2f}s" + ("" if r.status == "ok" else f" ({r.status})")
                     for r in analysis.analyzers)
    _emit(args, analysis, f"{inp.name}: {len(analysis.shots)} shots (cuts at frames {analysis.cut_frames}), "
          f"{len(analysis.tokens)} region tokens, {len(analysis.analysis_frames)} analysed frames{extra} "
          f"in {analysis.seconds:.2f}s [{runs}] -> {out / 'analysis.json'}")
    return 0


def _load_analysis(path: str):
    from . import schemas

    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    analysis, arrays = schemas.load(schemas.Analysis, p, need_arrays=("importance/frames", "importance/grid"))
    schemas.validate_analysis_arrays(analysis, arrays, str(p))
    return (analysis, arrays), p


def cmd_plan(args) -> int:
    from . import schemas
    from .pipeline import make_plan
    from .safeio import check_output

    (analysis, arrays), src = _load_analysis(args.analysis)
    out = check_output(args.output, src, schemas.arrays_path(src))
    check_output(schemas.arrays_path(out), src, schemas.arrays_path(src))
    plan, plan_arrays = make_plan(analysis, arrays, _plan_options(args, args.codec), source=str(src))
    schemas.save(plan, out, plan_arrays)
    _emit(args, plan, f"plan for {plan.codec}: {len(plan.keyframes)} IDRs at {plan.keyframes}, "
          f"QP offsets within ±{plan.max_dqp:g} on {plan.blocks_x}x{plan.blocks_y} blocks of {plan.block_size}px "
          f"-> {out}")
    return 0


def cmd_encode(args) -> int:
    from . import allocate

    if allocate.wants(args):  # --allocate, --target-quality, --ladder, --events, --save-plan
        return allocate.run_encode(args)
    from . import schemas
    from .encode import encode, parse_params
    from .metrics import compare_videos
    from .pipeline import analyze, make_plan
    from .safeio import check_output
    from .schemas import EncodeReport, RateControl

    inp, out = Path(args.input), Path(args.output)
    plan_files = [args.plan, schemas.arrays_path(args.plan)] if args.plan else []
    check_output(out, inp, *plan_files)
    if args.report:
        check_output(args.report, inp, *plan_files)
        if Path(args.report).resolve() == out.resolve():
            raise CodecAssistError("--report must differ from the output video")
    if args.html:
        check_output(args.html, inp, out, *([args.report] if args.report else []))
    if args.plan and args.no_assist:
        raise CodecAssistError("--plan and --no-assist contradict each other")
    rate = (RateControl(mode="abr", bitrate=args.bitrate) if args.bitrate
            else RateControl(mode="crf", crf=23.0 if args.crf is None else args.crf))
    params = parse_params(args.params)
    from .encode import check_request, ENCODERS

    check_request(args.codec, rate, args.preset, params, assisted=not args.no_assist)
    from . import media

    info = media.probe(inp)
    plan = plan_arrays = analysis = arrays = None
    seconds_analysis = 0.0
    choices = None
    if getattr(args, "auto_preset", False) and (args.plan or args.no_assist):
        raise CodecAssistError("--auto-preset chooses plan settings; it cannot go with --plan or --no-assist")
    if args.plan:
        plan, plan_arrays = schemas.load(schemas.EncodePlan, args.plan, need_arrays=("qp/frames", "qp/offsets"))
        schemas.validate_plan_arrays(plan, plan_arrays, args.plan)
    elif not args.no_assist:
        import time

        t = time.perf_counter()
        a_opt, p_opt, choices = _auto_preset(args, inp, _analyze_options(args), _plan_options(args, args.codec))
        analysis, arrays = analyze(inp, a_opt, progress=not args.quiet)
        plan, plan_arrays = make_plan(analysis, arrays, p_opt)
        seconds_analysis = time.perf_counter() - t
    if args.chunked:
        from .chunked import encode_chunked_args

        result = encode_chunked_args(args, inp, out, rate, params, plan, plan_arrays)
    else:
        result = encode(inp, out, codec=args.codec, rate=rate, preset=args.preset, plan=plan,
                        plan_arrays=plan_arrays, params=params, progress=not args.quiet)
    result.seconds_analysis = seconds_analysis
    if args.report or args.html:
        result.quality = compare_videos(inp, out, rois=args.roi)
        enc_report = EncodeReport(input=info, result=result, plan=args.plan, auto_preset=choices)
    if args.report:
        schemas.save(enc_report, args.report)
    if args.html:
        from .report import report

        report([], args.html, encode=enc_report, analysis=analysis, arrays=arrays, plan=plan, plan_arrays=plan_arrays,
               analyze_options=_analyze_options(args), plan_options=_plan_options(args, args.codec))
    text = (f"{out}: {result.frames} frames, {result.bitrate_kbps:.1f} kb/s, IDR at {result.keyframes}, "
            f"{'assisted' if result.assisted else 'plain'} {ENCODERS[args.codec]} {args.preset} {rate.describe()}, "
            f"analysis {seconds_analysis:.2f}s + encode {result.seconds_encode:.2f}s")
    if result.quality:
        text += f", PSNR-Y {result.quality.psnr_y:.2f} dB, SSIM-Y {result.quality.ssim_y:.4f}"
    if choices is not None:
        from .tagging import describe_choices

        text += "\n" + describe_choices(choices)
    _emit(args, result, text)
    return 0


def cmd_compare(args) -> int:
    from . import schemas
    from .pipeline import compare_run
    from .safeio import check_output
    from .schemas import RateControl

    inp = Path(args.input)
    out = check_output(args.output, inp)
    from .encode import parse_params

    if parse_params(args.params):
        raise CodecAssistError("compare runs both encoders with their defaults; --params is not supported here")
    rates = [RateControl(mode="abr", bitrate=b) for b in sorted(set(args.bitrate))]
    if args.html:
        check_output(args.html, inp, out)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    a_opt, p_opt, choices = _auto_preset(args, inp, _analyze_options(args), _plan_options(args, args.codec))
    with tempfile.TemporaryDirectory(prefix="codec-assist-") as tmp:
        run = compare_run(inp, rates, args.keep or tmp, codec=args.codec, preset=args.preset, rois=args.roi,
                          analyze_options=a_opt, plan_options=p_opt, progress=not args.quiet,
                          keep=bool(args.keep or args.html))
        report = run.report
        report.auto_preset = choices
        schemas.save(report, out)
        if args.html:  # while the encodes exist: the page counts their packets per shot
            from .report import report as html_report

            html_report([out], args.html, analysis=run.analysis, arrays=run.arrays, plan=run.plan,
                        plan_arrays=run.plan_arrays)
    extra = ""
    if choices is not None:
        from .tagging import describe_choices

        extra = "\n" + describe_choices(choices)
    _emit(args, report, format_compare(report) + extra + f"\n-> {out}")
    return 0


def _auto_preset(args, inp, analyze_options, plan_options):
    """With --auto-preset (added by codec_assist.tagging): tag the input and let the preset table adjust the
    options; returns (analyze options, plan options, choices or None)."""
    if not getattr(args, "auto_preset", False):
        return analyze_options, plan_options, None
    from .tagging import apply_auto_preset

    return apply_auto_preset(args, inp, analyze_options, plan_options)


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
    return "\n".join(lines)




def _one_line(e: BaseException) -> str:
    """The message on one printable line, whatever it holds (newlines, non-UTF-8 file names)."""
    text = " ".join(str(e).split())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _WarningHandler(logging.Handler):
    """Warnings as "codec-assist: warning: ..." on the current stderr, each distinct message once per run."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = _one_line(Exception(record.getMessage()))
        if text not in self.seen:
            self.seen.add(text)
            print(f"codec-assist: warning: {text}", file=sys.stderr)


def _setup_warnings() -> None:
    log = logging.getLogger("codec_assist")
    for h in [h for h in log.handlers if isinstance(h, _WarningHandler)]:
        log.removeHandler(h)
    log.addHandler(_WarningHandler())
    log.setLevel(logging.WARNING)
    log.propagate = False


CORE_COMMANDS.update(analyze=cmd_analyze, plan=cmd_plan, encode=cmd_encode, compare=cmd_compare)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():
        args.quiet = True  # progress bars only where a person watches a terminal
    _setup_warnings()
    from . import media, safeio

    safeio.OVERWRITE = args.overwrite
    media.LIMITS = media.Limits(max_pixels=args.max_pixels, max_duration=args.max_duration)
    try:
        return args.handler(args)
    except CodecAssistError as e:
        if args.debug:
            raise
        print(f"codec-assist: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("codec-assist: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - never a traceback for the user; --debug shows it
        if args.debug:
            raise
        print(f"codec-assist: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
