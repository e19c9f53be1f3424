"""What every command shares: argument types, option groups, options built from arguments, output."""
from __future__ import annotations

import argparse
import re

from pydantic import ValidationError

from codec_assist.errors import CodecAssistError, options_error

SUPPRESS = argparse.SUPPRESS


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; a default is shown only when it says something (not None/False)
    and the help text does not already give it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default in (None, False, SUPPRESS, [], "") or "default" in text or action.option_strings == []
                or isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction, argparse._HelpAction))):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# ------------------------------------------------------------------------------------------ argument types
def parse_rate(text: str) -> int:
    """'400k', '1.5M', '800000' -> bits per second."""
    from codec_assist.schemas import parse_bitrate

    try:
        return parse_bitrate(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_rates(text: str) -> list[int]:
    return [parse_rate(t) for t in text.split(",") if t.strip()]


def parse_size(text: str) -> int:
    """'2M', '750k' -> bytes."""
    from codec_assist.schemas import parse_bitrate

    try:
        return parse_bitrate(text, "size")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    from codec_assist.schemas import FocusPrompt

    body, _, weight = text.rpartition("@") if re.search(r"@\s*\d*\.?\d+\s*$", text) else (text, "", "")
    try:
        return FocusPrompt(text=body.strip(), weight=float(weight) if weight else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"focus {text!r}: needs text and an optional weight in (0, 1], "
                                         f"like 'bicycle@0.5'") from None


def parse_roi_arg(text: str):
    from codec_assist.evaluation.metrics import parse_roi

    try:
        return parse_roi(text)
    except CodecAssistError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_events(text: str) -> list[int]:
    try:
        return sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected frame numbers like 120,300") from None


def parse_memory_arg(text: str) -> int:
    from codec_assist.scale.engine import parse_memory

    try:
        return parse_memory(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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


# ------------------------------------------------------------------------------- flags valid everywhere
def add_global_flags(p: argparse.ArgumentParser, *, top: bool = False, writes: bool = True,
                     reads_video: bool = True) -> None:
    """-q, --debug, --json and, where they mean something, --overwrite and the input limits. On the main
    parser (with the defaults) and on every command (so they may follow it, as users of git and ffmpeg
    expect); a command only sets them when given."""
    from codec_assist.media.decode import Limits

    d = (lambda v: v) if top else (lambda v: SUPPRESS)
    g = p.add_argument_group("general")
    g.add_argument("-q", "--quiet", action="store_true", default=d(False), help="no progress bars")
    g.add_argument("--debug", action="store_true", default=d(False),
                   help="show tracebacks instead of one-line errors")
    g.add_argument("--json", action="store_true", default=d(False), help="print the result as JSON")
    if writes:
        g.add_argument("--overwrite", action="store_true", default=d(False), help="replace existing output files")
    if reads_video:
        g.add_argument("--max-duration", type=positive_float, default=d(Limits().max_duration), metavar="SECONDS",
                       help="refuse inputs longer than this (declared or decoded)")
        g.add_argument("--max-pixels", type=positive_int, default=d(Limits().max_pixels), metavar="N",
                       help="refuse inputs whose frames have more pixels than this (declared or decoded)")


# ------------------------------------------------------------------------------------------ option groups
def add_analysis_knobs(sp, analyzers_default: str | None = None, fps_default: float | None = None) -> None:
    import analyzers
    from codec_assist.options import AnalyzeOptions

    g = sp.add_argument_group("analysis")
    g.add_argument("--analyzers", default=analyzers_default or ",".join(analyzers.DEFAULT),
                   help="comma-separated analyzers to run (" + ", ".join(analyzers.ANALYZERS) +
                   "); speech and audio skip videos without audio")
    g.add_argument("--proxy-width", type=int, default=defaults(AnalyzeOptions)["proxy_width"],
                   help="width of the downscaled analysis proxy, px")
    g.add_argument("--analysis-fps", type=float, default=fps_default or defaults(AnalyzeOptions)["analysis_fps"],
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
    asr = g.add_mutually_exclusive_group()
    asr.add_argument("--asr", action="store_true",
                     help="always run speech recognition (an assisted encode skips Whisper when nothing it makes "
                     "uses the transcript: no --focus prompt, no --html page)")
    asr.add_argument("--no-asr", action="store_true", help="no speech recognition (drops the speech analyzer)")


def defaults(model) -> dict:
    """A typed options model's field defaults: the command line shows and uses the library's, never its own."""
    return {name: f.default for name, f in model.model_fields.items()}


def add_plan_knobs(sp) -> None:
    from codec_assist.options import PlanOptions

    default = defaults(PlanOptions)
    g = sp.add_argument_group("plan")
    g.add_argument("--max-dqp", type=float, default=default["max_dqp"],
                   help="largest QP offset either way; small offsets keep the bitrate")
    g.add_argument("--strength", type=float, default=default["strength"],
                   help="how fast importance above --roi-threshold reaches --max-dqp (1/strength of the way to 1 "
                   "is the full offset)")
    g.add_argument("--roi-threshold", type=float, default=default["roi_threshold"],
                   help="importance above this is a region of interest (faces, text, a matched --focus); the "
                   "saliency floor stays below it, so a clip with none is left to the encoder's own AQ")
    g.add_argument("--max-cost-db", type=float, default=default["max_cost_db"],
                   help="bound on each frame's expected whole-frame PSNR loss from the offsets (dB): the ROI gets "
                   "shallower when it is large or the blocks that pay for it are busy (a flat wall pays cheaply, a "
                   "bookcase dearly), so it is not paid for with the whole picture")
    g.add_argument("--moment-dqp", type=float, default=None, metavar="QP",
                   help="largest frame-level QP share the moments that matter (speech, a focus said aloud, loud or "
                   f"emotional peaks) take from the rest of their shot; 0 = off (default: {default['moment_dqp']:g})")
    g.add_argument("--min-gop", type=float, default=default["min_gop"], help="minimum seconds between forced IDRs")
    g.add_argument("--max-gop", type=float, default=default["max_gop"], help="maximum seconds between IDRs")


def add_codec_knobs(sp) -> None:
    from codec_assist.options import PRESETS

    sp.add_argument("--codec", choices=["x264", "x265"], default="x264", help="encoder")
    sp.add_argument("--preset", choices=PRESETS, default="medium", help="encoder preset")
    sp.add_argument("--params", default="", metavar="K=V:K=V",
                    help="extra x264-params/x265-params (validated: unknown keys are an error)")


def add_rate_knobs(sp, what: str = "") -> None:
    rate = sp.add_mutually_exclusive_group()
    rate.add_argument("--bitrate", type=parse_rate, help=f"{what}target bitrate (ABR), e.g. 400k, 2M")
    rate.add_argument("--crf", type=parse_crf, help=f"{what}constant rate factor (23 when no --bitrate is given)")


def add_engine_knobs(sp) -> None:
    """--engine/--address/--workers/...: where parallel tasks run (batch, encode --chunked)."""
    from codec_assist.scale.engine import EngineOptions, cores

    g = sp.add_argument_group("engine (parallel tasks)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: a process pool on this machine; ray: Ray tasks (local Ray unless --address)")
    g.add_argument("--address", metavar="RAY_ADDRESS",
                   help="Ray cluster to join, e.g. auto or ray://head:10001 (implies --engine ray); inputs and "
                        "outputs must be on a filesystem every node sees at the same path")
    g.add_argument("--workers", type=int, default=max(1, cores()),
                   help="tasks run at once (on a cluster: at most this many in flight)")
    g.add_argument("--cpus-per-task", type=float, metavar="N",
                   help="CPUs reserved per task, and encoder threads per task (unset: cores / workers)")
    g.add_argument("--memory-per-task", type=parse_memory_arg, metavar="SIZE",
                   help="memory per task, e.g. 2G: a Ray scheduling reservation, a hard address-space limit "
                        "for local workers (unset: no limit)")
    g.add_argument("--retries", type=int, default=defaults(EngineOptions)["retries"],
                   help="re-runs of a task whose worker died")


# ------------------------------------------------------------------------------ typed options from args
def build(cls, flags: dict[str, str] | None = None, **values):
    """cls(**values), a validation error turned into one line naming the command-line flag."""
    try:
        return cls(**values)
    except ValidationError as e:
        names = {f: (flags or {}).get(f, "--" + f.replace("_", "-")) for f in cls.model_fields}
        raise options_error(e, names) from None


def analyze_options(args):
    from codec_assist.options import AnalyzeOptions

    names = [n.strip() for n in args.analyzers.split(",") if n.strip()]
    # asr only when asked either way: left unset, an assisted encode may skip Whisper (unused_analyzers)
    asr = {"asr": False} if args.no_asr else {"asr": True} if getattr(args, "asr", False) else {}
    return build(AnalyzeOptions, analyzers=names, proxy_width=args.proxy_width, analysis_fps=args.analysis_fps,
                 subtitles=args.subtitles, asr_model=args.asr_model, focus=args.focus,
                 clip_model=args.clip_model, clip_pretrained=args.clip_pretrained,
                 clip_checkpoint=args.clip_checkpoint, **asr)


def plan_options(args, codec: str | None = None):
    from codec_assist.options import PlanOptions

    moments = {} if getattr(args, "moment_dqp", None) is None else {"moment_dqp": args.moment_dqp}
    return build(PlanOptions, codec=codec or getattr(args, "codec", "x264"), max_dqp=args.max_dqp,
                 strength=args.strength, roi_threshold=args.roi_threshold, max_cost_db=args.max_cost_db,
                 min_gop=args.min_gop, max_gop=args.max_gop, **moments)


def engine_options(args):
    from codec_assist.options import EngineOptions

    return build(EngineOptions, engine="ray" if args.address else args.engine, workers=args.workers,
                 address=args.address, cpus_per_task=args.cpus_per_task, memory_per_task=args.memory_per_task,
                 retries=args.retries)


def limits(args):
    from codec_assist.options import Limits

    return build(Limits, max_pixels=args.max_pixels, max_duration=args.max_duration)


def emit(args, model, text: str) -> None:
    """The result: the model as JSON with --json, else the line(s) for a person."""
    from codec_assist.media.safeio import shown

    print(model.model_dump_json(indent=2, by_alias=True) if args.json else shown(text))
