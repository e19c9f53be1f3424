"""`codec-assist export PLAN --format F -o OUT`: a plan's decisions in formats other encoders read."""
from __future__ import annotations

from codec_assist.cli.common import add_global_flags
from codec_assist.errors import CodecAssistError


def register(sub) -> None:
    from codec_assist.export import formats

    p = sub.add_parser("export", help="write a plan's zones, ROI maps, QP arrays or keyframes for other encoders",
                       description=formats.__doc__.split("\n\n", 1)[1] if formats.__doc__ else None)
    p.add_argument("plan", help="plan JSON (its .npz beside it)")
    p.add_argument("--format", "-f", required=True, choices=formats.FORMATS, help="what to write")
    p.add_argument("-o", "--output", required=True, help="output file ('-' for stdout, text formats only)")
    add_global_flags(p, reads_video=False)
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from codec_assist import api

    to_stdout = args.output == "-"
    if to_stdout and args.format == "qp-npy":
        raise CodecAssistError("qp-npy is binary; give an output file")
    data = api.export_plan(args.plan, args.format, None if to_stdout else args.output, overwrite=args.overwrite)
    if to_stdout:
        print(data.decode(), end="")
    elif args.json:
        print(json.dumps({"format": args.format, "output": args.output, "bytes": len(data)}, indent=2))
    else:
        print(f"{args.format} -> {args.output} ({len(data)} bytes)")
    return 0
