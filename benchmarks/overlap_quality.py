"""The assisted encode with the analysis beside the encoder (default) against the whole analysis first
(`--no-overlap`), same clip, codec, preset and rate, in one run (issue 16): do the segmented analysis's plans encode
the same? The segmented plan is made on every clip given, whether or not the default would overlap on it (it does
from 720p at medium). Per clip: the plans' IDRs and shot starts, the mean |difference| of their QP offsets, and the outputs'
bitrate, PSNR/SSIM/XPSNR and VMAF (every `--vmaf-every`-th frame).

    python benchmarks/overlap_quality.py --clips out/bench/jwp_40s.mp4 ... --rate 600k --json out/bench/overlap_quality.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import codec_assist as ca  # noqa: E402
from codec_assist import schemas  # noqa: E402
from codec_assist.analysis.pipeline import AnalyzeOptions  # noqa: E402
from codec_assist.api import for_plan  # noqa: E402
from codec_assist.encoding.overlapped import encode_overlapped  # noqa: E402
from codec_assist.evaluation.metrics import compare_videos  # noqa: E402
from codec_assist.media.decode import DEFAULT_LIMITS  # noqa: E402
from codec_assist.options import EncodeOptions  # noqa: E402
from codec_assist.planning.plan import PlanOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", required=True)
    ap.add_argument("--rate", default="600k")
    ap.add_argument("--codecs", nargs="+", default=["x264"])
    ap.add_argument("--vmaf-every", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for clip in map(Path, args.clips):
            for codec in args.codecs:
                row = {"clip": clip.name, "codec": codec, "rate": args.rate}
                plans = {}
                for mode in ("overlap", "serial"):
                    out, plan = work / f"{mode}.mp4", work / f"{mode}.json"
                    if mode == "serial":
                        result = ca.encode(clip, out, bitrate=args.rate, codec=codec, overlap=False, save_plan=plan,
                                           overwrite=True).result
                    else:  # the segmented plan on every clip, whether or not the default would overlap on it
                        result, p, arrays = encode_overlapped(
                            clip, out, codec=codec, preset="medium", rate=EncodeOptions(bitrate=args.rate).rate(0),
                            params={}, analyze_options=for_plan(AnalyzeOptions(), page=False),
                            plan_options=PlanOptions(codec=codec), limits=DEFAULT_LIMITS, overwrite=True,
                            progress=False)
                        schemas.save(p, plan, arrays)
                    q = compare_videos(clip, out, xpsnr=True, vmaf_every=args.vmaf_every)
                    row[mode] = {"bitrate_kbps": result.bitrate_kbps, "psnr_y": q.psnr_y, "ssim_y": q.ssim_y,
                                 "xpsnr_y": q.xpsnr_y, "vmaf": q.vmaf}
                    plans[mode] = schemas.load_plan(plan)
                (pa, aa), (pb, ab) = plans["overlap"], plans["serial"]
                oa, ob = np.asarray(aa["qp/offsets"]), np.asarray(ab["qp/offsets"])
                same_frames = len(aa["qp/frames"]) == len(ab["qp/frames"]) and (aa["qp/frames"] == ab["qp/frames"]).all()
                row["plans"] = {"same_keyframes": pa.keyframes == pb.keyframes,
                                "same_shot_starts": pa.shot_starts == pb.shot_starts,
                                "keyframes": [len(pa.keyframes), len(pb.keyframes)],
                                "offset_mean_abs_diff": float(np.abs(oa - ob).mean()) if same_frames else None,
                                "offset_mean_abs": float(np.abs(ob).mean()),
                                "offsets_identical_share": float((oa == ob).mean()) if same_frames else None}
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = ["| clip | codec | IDRs equal | cuts equal | mean abs ΔQP diff / mean abs ΔQP | kb/s overlap / serial | "
             "PSNR-Y | SSIM-Y | XPSNR-Y | VMAF |", "|" + "---|" * 10]
    for r in rows:
        o, s, p = r["overlap"], r["serial"], r["plans"]
        diff = f"{p['offset_mean_abs_diff']:.3f} / {p['offset_mean_abs']:.3f}" if p["offset_mean_abs_diff"] is not None else "–"
        lines.append(f"| {r['clip']} | {r['codec']} | {p['same_keyframes']} | {p['same_shot_starts']} | {diff} | "
                     f"{o['bitrate_kbps']:.0f} / {s['bitrate_kbps']:.0f} | {o['psnr_y']:.2f} / {s['psnr_y']:.2f} | "
                     f"{o['ssim_y']:.4f} / {s['ssim_y']:.4f} | "
                     + (f"{o['xpsnr_y']:.2f} / {s['xpsnr_y']:.2f}" if o["xpsnr_y"] else "–") + " | "
                     + (f"{o['vmaf']:.2f} / {s['vmaf']:.2f}" if o["vmaf"] is not None else "–") + " |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
