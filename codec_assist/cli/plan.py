"""`codec-assist plan ANALYSIS -o plan.json`: QP-offset maps and IDR frames from an analysis."""
from __future__ import annotations

from codec_assist.cli.common import add_global_flags, add_plan_knobs, emit, plan_options


def register(sub) -> None:
    pl = sub.add_parser("plan", help="turn an analysis into an encode plan (QP maps + keyframes)",
                        description="Rate-neutral per-block QP offsets at the codec's block size and the forced "
                        "IDR frames, from an analysis: plan.json + plan.npz.")
    pl.add_argument("analysis", help="analysis folder or its analysis.json")
    pl.add_argument("-o", "--output", required=True, help="plan JSON path (arrays go to the .npz beside it)")
    pl.add_argument("--codec", choices=["x264", "x265"], default="x264", help="encoder the plan is for")
    add_plan_knobs(pl)
    add_global_flags(pl, reads_video=False)
    pl.set_defaults(handler=run)


def run(args) -> int:
    from codec_assist import api

    plan, _ = api.make_plan(args.analysis, options=plan_options(args), output=args.output, overwrite=args.overwrite)
    emit(args, plan, f"plan for {plan.codec}: {plan.describe_keyframes()}, "
         f"QP offsets within ±{plan.max_dqp:g} on {plan.blocks_x}x{plan.blocks_y} blocks of {plan.block_size}px "
         f"-> {args.output}")
    return 0
