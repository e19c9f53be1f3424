"""`codec-assist tag VIDEO_OR_FOLDER`: topic tags with evidence, per video and per shot."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from codec_assist.cli.common import add_analysis_knobs, add_global_flags, analyze_options, emit, limits
from codec_assist.errors import CodecAssistError


def register(sub) -> None:
    from codec_assist.tags.tagging import TAG_ANALYZERS, TAG_FPS

    t = sub.add_parser(
        "tag", help="topic tags for a video (or a folder), with evidence; per-shot tags and WebVTT chapters",
        description="Multi-label topic tags from a short-video taxonomy, each with a calibrated score and its "
        "evidence (which modality, which words). The analysis evidence (ImageNet classes, transcript, audio "
        "kind, on-screen text, faces, scene statistics) is matched to topic descriptions in a sentence-"
        "embedding space; with CLIP weights, frames are matched too. Scores are a heuristic calibration: "
        "read them as a ranking with a rough confidence.")
    t.add_argument("input", help="video file, or a folder of videos (then --summary is required)")
    t.add_argument("--taxonomy", help="taxonomy YAML/JSON (default: the shipped short-video taxonomy)")
    t.add_argument("--top", type=int, default=5, help="tags to report, per video and per shot")
    t.add_argument("-o", "--output", help="report JSON path (folder mode: a folder for one report per video)")
    t.add_argument("--chapters", help="write WebVTT chapters (one cue per shot, with its tags) here")
    t.add_argument("--summary", help="folder mode: summary CSV path (a JSON twin is written beside it)")
    add_analysis_knobs(t, analyzers_default=",".join(TAG_ANALYZERS), fps_default=TAG_FPS)
    add_global_flags(t)
    t.set_defaults(handler=run)


def _analyze_options(args):
    import analyzers
    from codec_assist.tags.tagging import TAG_ANALYZERS

    opts = analyze_options(args)
    if args.analyzers == ",".join(TAG_ANALYZERS):  # the default list names analyzers extras add: run those here
        opts.analyzers = [n for n in opts.analyzers if n in analyzers.ANALYZERS]
    return opts


def run(args) -> int:
    from codec_assist import api
    from codec_assist.tags.tagging import format_report, summary_csv

    inp = Path(args.input)
    clip = dict(clip_model=args.clip_model, clip_pretrained=args.clip_pretrained, clip_checkpoint=args.clip_checkpoint)
    if inp.is_dir():
        if not args.summary:
            raise CodecAssistError(f"{inp} is a folder: give --summary summary.csv (and -o DIR for per-video reports)")
        if args.chapters:
            raise CodecAssistError("--chapters is for one video; in folder mode -o DIR gets a .vtt per video")

        def said(i, n, path, report):
            if not args.quiet and report is not None:
                print(f"[{i}/{n}] {path.name}: " + ", ".join(f"{t.name} {t.score:.2f}" for t in report.tags[:3]),
                      file=sys.stderr)

        rows, failed = api.tag_folder(inp, args.summary, taxonomy=args.taxonomy, top=args.top,
                                      analyze_options=_analyze_options(args), outdir=args.output,
                                      limits=limits(args), overwrite=args.overwrite, on_video=said, **clip)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(summary_csv(rows), end="")
            print(f"-> {args.summary} and {Path(args.summary).with_suffix('.json')}")
        if failed:
            raise CodecAssistError(f"{failed} of {len(rows)} videos could not be tagged (see {args.summary})")
        return 0
    if args.summary:
        raise CodecAssistError("--summary is for a folder of videos; give -o for one video")
    report = api.tag(inp, taxonomy=args.taxonomy, top=args.top, analyze_options=_analyze_options(args),
                     output=args.output, chapters=args.chapters, limits=limits(args), overwrite=args.overwrite,
                     progress=not args.quiet, **clip)
    text = format_report(report, args.top)
    if args.output:
        text += f"\n-> {args.output}"
    emit(args, report, text)
    return 0
