"""What the plan's forced IDRs cost a clip: VMAF and PSNR of four encodes at each rate, side by side.

  plain              assist=False: the encoder's own keyframes (scenecut on)
  plain, scenecut=0  assist=False with no keyframe of the encoder's own but every keyint frames
  assisted           the default plan (an IDR at every cut, at least min_gop apart)
  assisted, no cuts  the same plan made with min_gop = the clip's length: no IDR but frame 0 (offsets unchanged)

The last two differ only in the IDRs at the cuts, so their gap is what those IDRs cost or give at that rate.
`--plan-scenecut N` adds "assisted, scenecut=N": the default plan with the encoder's scene-cut detection left on at
threshold N beside its forced IDRs (a what-if: plans turn it off; the IDRs column shows what the encoder adds).

    PYTHONPATH=. python benchmarks/idr_cost.py cityCC0.mpg --codec x265 --bitrates 182k 364k [--plan-scenecut 5]
Markdown on stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import codec_assist as ca
from codec_assist import schemas
from codec_assist.encoding import x26x
from codec_assist.options import AnalyzeOptions, EncodeOptions
from codec_assist.planning.plan import PlanOptions, make_plan

MEDIA = Path(__file__).resolve().parents[1] / "samples" / "media"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", help="a file in samples/media, or a path")
    ap.add_argument("--codec", choices=("x264", "x265"), default="x264")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--bitrates", nargs="+", default=["200k", "400k"])
    ap.add_argument("--plan-scenecut", type=int, help="also the default plan with the encoder's scenecut at N")
    a = ap.parse_args()
    src = Path(a.clip) if Path(a.clip).exists() else MEDIA / a.clip
    analysis, arrays = ca.analyze(src, AnalyzeOptions(for_plan=True))
    seconds = analysis.video.frame_count / analysis.video.fps
    print(f"| {src.name} ({a.codec} {a.preset}) | kb/s | PSNR-Y | VMAF | IDRs |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="idr-cost-") as tmp:
        plans = {}
        for name, opt in (("assisted", PlanOptions(codec=a.codec)),
                          ("assisted, no cuts", PlanOptions(codec=a.codec, min_gop=seconds, max_gop=seconds))):
            plan, plan_arrays = make_plan(analysis, arrays, opt)
            plans[name] = Path(tmp) / f"{len(plans)}.plan.json"
            schemas.save(plan, plans[name], plan_arrays)
        variants = {"plain": dict(assist=False), "plain, scenecut=0": dict(assist=False, params={"scenecut": "0"}),
                    "assisted": dict(plan_file=plans["assisted"]),
                    "assisted, no cuts": dict(plan_file=plans["assisted, no cuts"])}
        if a.plan_scenecut is not None:
            variants[f"assisted, scenecut={a.plan_scenecut}"] = dict(plan_file=plans["assisted"])
        for rate in a.bitrates:
            for name, kw in variants.items():
                out = Path(tmp) / "out.mp4"
                with _plan_scenecut(a.plan_scenecut if "scenecut=" in name and "plain" not in name else None):
                    report = ca.encode(src, out, EncodeOptions(codec=a.codec, preset=a.preset, bitrate=rate, **kw),
                                       overwrite=True)
                q = ca.measure(src, out, vmaf_every=1)
                print(f"| {rate} {name} | {q.bitrate_kbps:.1f} | {q.psnr_y:.3f} | {q.vmaf:.3f} | "
                      f"{report.result.keyframes} |", flush=True)


@contextlib.contextmanager
def _plan_scenecut(threshold: int | None):
    """Within: plans leave the encoder's scene-cut detection on at `threshold` (None: as they are)."""
    if threshold is None:
        yield
        return
    made = x26x.plan_params

    def params(plan, codec, zones=True):
        p = made(plan, codec, zones)
        if p.get("scenecut") == "0":
            p["scenecut"] = str(threshold)
        return p

    x26x.plan_params = params
    try:
        yield
    finally:
        x26x.plan_params = made


if __name__ == "__main__":
    main()
