"""`codec-assist report ARTIFACT... -o page.html`: one self-contained HTML page from any mix of artifacts."""
from __future__ import annotations

import json
import logging
import time

from codec_assist.cli.common import add_analysis_knobs, add_global_flags, analyze_options

log = logging.getLogger("codec_assist")


def register(sub) -> None:
    r = sub.add_parser("report", help="one self-contained HTML page: timeline, QP maps, bits per shot, RD curves",
                       description="Turn an analysis, a plan, an encode report, a compare report, a tag report "
                       "(`tag -o`), a ladder report (`encode --ladder --report`) and/or a semantic report "
                       "(`semantic encode --report`) — any mix; each is recognised by its schema — into one HTML "
                       "file with the figures inlined. Opens offline in any browser.")
    r.add_argument("inputs", nargs="+", metavar="ANALYSIS_OR_REPORT",
                   help="analysis folder/JSON, plan JSON, encode/compare/tag/semantic report JSON")
    r.add_argument("-o", "--output", required=True, help="HTML file to write")
    r.add_argument("--figures", metavar="DIR", help="also write every figure as PNG and SVG into this folder")
    add_analysis_knobs(r)
    add_global_flags(r, reads_video=False)
    r.set_defaults(handler=run)


def run(args) -> int:
    from codec_assist import api

    t = time.perf_counter()
    summary = api.write_report(args.inputs, args.output, figures=args.figures, analyze_options=analyze_options(args),
                               overwrite=args.overwrite)
    summary["seconds"] = round(time.perf_counter() - t, 3)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        warn = f", {len(summary['warnings'])} warning(s)" if summary["warnings"] else ""
        print(f"{args.output}: {len(summary['figures'])} figures ({', '.join(summary['figures'])}), "
              f"{summary['moments']} key moments{warn}, {summary['bytes'] / 1024:.0f} KiB in {summary['seconds']:.2f}s")
    for w in summary["warnings"]:
        log.warning("%s", w)
    return 0
