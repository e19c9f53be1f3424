"""`codec-assist explain ANALYSIS`: why a moment or a region matters, from the fusion's recorded top tokens.

    codec-assist explain analysis/                 # the 3 most important moments
    codec-assist explain analysis/ --top 10
    codec-assist explain analysis/ --time 4.2      # the analysed frame at (or just before) 4.2 s
    codec-assist explain analysis/ --frame 120 --json
"""
from __future__ import annotations

from codec_assist.cli.common import add_global_flags, emit


def register(sub) -> None:
    p = sub.add_parser("explain", help="say why a moment or region of an analysed video matters",
                       description="Read an analysis (run `codec-assist analyze` first) and list, for a moment, "
                       "its importance, its hottest region and the tokens (faces, text, ImageNet classes, CLIP "
                       "patches, transcript) that contributed most, with the weight each added and the query that "
                       "attended to it.")
    p.add_argument("analysis", help="analysis folder or its analysis.json")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--frame", type=int, metavar="N", help="explain the analysed frame at or just before frame N")
    which.add_argument("--time", type=float, metavar="SECONDS",
                       help="explain the analysed frame at or just before this time")
    which.add_argument("--top", type=int, default=3, metavar="K", help="explain the K most important moments")
    add_global_flags(p, writes=False, reads_video=False)
    p.set_defaults(handler=run)


def run(args) -> int:
    from codec_assist import api
    from codec_assist.report.explain import format_explanation

    e = api.explain(args.analysis, frame=args.frame, time=args.time, top=args.top)
    emit(args, e, format_explanation(e))
    return 0
