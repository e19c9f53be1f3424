"""`codec-assist batch DIR -o OUT`: encode or analyze every video in a folder, in parallel, resumable."""
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
    engine_options,
    limits,
    plan_options,
)
from codec_assist.errors import CodecAssistError


def register(sub) -> None:
    from codec_assist.scale.batch import COMMANDS, MANIFEST

    b = sub.add_parser(
        "batch", help="run encode or analyze over every video in a folder, in parallel (local processes or Ray), resumable",
        description="One task per video under INPUT_DIR (searched recursively), outputs under OUT_DIR at the same "
        "relative paths (an encode keeps an .mp4/.m4v/.mov/.mkv container and writes other inputs as .mp4, "
        "saying so), a manifest (OUT_DIR/manifest.json) with each item's status, outputs and sha256. "
        "Re-running the same command skips verified items, redoes changed or failed ones, and cleans up what a "
        "killed run left; outputs an earlier run made with other options are kept unless --overwrite. A bad "
        "video fails alone (exit 2 at the end, its error in the manifest). --max-duration and --max-pixels "
        "reach every item.")
    b.add_argument("input_dir", help="folder of videos (searched recursively)")
    b.add_argument("-o", "--output", required=True, help="output folder (created; outputs never go outside it)")
    b.add_argument("--command", choices=list(COMMANDS), default="encode", help="what to do with each video")
    b.add_argument("--manifest", help=f"manifest path (default: OUT_DIR/{MANIFEST})")
    add_rate_knobs(b, "encode: ")
    add_codec_knobs(b)
    b.add_argument("--no-assist", action="store_true", help="encode: plain encode (no analysis, ROI or forced IDRs)")
    add_analysis_knobs(b)
    add_plan_knobs(b)
    add_engine_knobs(b)
    add_global_flags(b)
    b.set_defaults(handler=run)


def run(args) -> int:
    from codec_assist import api
    from codec_assist.options import EncodeOptions
    from codec_assist.scale.batch import MANIFEST

    options = build(EncodeOptions, {"assist": "--no-assist"}, codec=args.codec, preset=args.preset,
                    bitrate=args.bitrate, crf=args.crf, params=args.params, assist=not args.no_assist)
    manifest = api.batch(args.input_dir, args.output, args.command, options, analyze_options=analyze_options(args),
                         plan_options=plan_options(args), engine=engine_options(args), manifest=args.manifest,
                         limits=limits(args), overwrite=args.overwrite, progress=not args.quiet)
    failed = [i for i in manifest.items if i.status != "done"]
    where = args.manifest or str(Path(args.output) / MANIFEST)
    if args.json:
        print(manifest.model_dump_json(indent=2, by_alias=True))
    else:
        done = len(manifest.items) - len(failed)
        print(f"{args.command}: {done} of {len(manifest.items)} done ({manifest.reused} verified from an earlier run), "
              f"{len(failed)} failed, {manifest.seconds:.1f}s on {manifest.engine} x{manifest.workers} -> {where}")
        for i in failed:
            print(f"  failed: {i.input}: {i.error}")
    if failed:
        raise CodecAssistError(f"{len(failed)} of {len(manifest.items)} items failed; their errors are in {where}")
    return 0
