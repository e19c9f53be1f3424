"""`codec-assist analyze VIDEO -o DIR`: the importance map (analysis.json + analysis.npz)."""
from __future__ import annotations

from pathlib import Path

from codec_assist.cli.common import add_analysis_knobs, add_global_flags, analyze_options, emit, limits


def register(sub) -> None:
    a = sub.add_parser("analyze", help="analyse a video into an importance map (JSON + npz)",
                       description="Decode once into a small proxy, run the analyzers, fuse their maps into the "
                       "importance map: analysis.json + analysis.npz (+ transcript.vtt when there is speech).")
    a.add_argument("input", help="video file")
    a.add_argument("-o", "--output", required=True, help="output folder (analysis.json + analysis.npz)")
    add_analysis_knobs(a)
    add_global_flags(a)
    a.set_defaults(handler=run)


def run(args) -> int:
    from codec_assist import api

    inp, out = Path(args.input), Path(args.output)
    analysis, _ = api.analyze(inp, analyze_options(args), output=out, limits=limits(args), overwrite=args.overwrite,
                              progress=not args.quiet)
    extra = ""
    if analysis.transcript is not None:
        extra = f", transcript of {len(analysis.transcript.segments)} segments ({analysis.transcript.source})"
    runs = ", ".join(f"{r.name} {r.seconds:.2f}s" + ("" if r.status == "ok" else f" ({r.status})")
                     for r in analysis.analyzers)
    emit(args, analysis, f"{inp.name}: {len(analysis.shots)} shots (cuts at frames {analysis.cut_frames}), "
         f"{len(analysis.tokens)} region tokens, {len(analysis.analysis_frames)} analysed frames{extra} "
         f"in {analysis.seconds:.2f}s [{runs}] -> {out / 'analysis.json'}"
         + (f"\ntime: {analysis.timing.describe()}" if analysis.timing else ""))
    return 0
