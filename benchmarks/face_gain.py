#!/usr/bin/env python3
"""Does the default assisted encode give the face what a hand-placed box would? (issue 14 part 4 target)

For every talking-head clip of samples/corpus.json (topics talking_head or interview, faces labelled), per split,
at 3 rates (bits per pixel per frame 0.025, 0.05, 0.1, x264 medium ABR), three encodes through the public API
(codec_assist.api.encode):
  plain      assist=False: x264 with its own AQ and mb-tree, nothing else;
  assisted   the default assisted encode (default analyzers, plan, ROI offsets, IDRs at cuts); its plan is saved
             at the first rate and reused at the others (the plan does not depend on the rate);
  gt_box     the same plan with the QP offsets replaced by a fixed box on the GT face: -5 QP in every block the
             GT box overlaps, +1 QP elsewhere (0 on GT frames without a face), keypoints on the GT frames.
Face-box PSNR-Y: PSNR inside the GT face boxes, each box scored on the frames [g-4, g+5) around its GT frame g
(codec_assist.api.measure). Gain = face-box PSNR minus the plain encode's, at the same ABR target and at matched
bitrate (ABR lands a few % apart: the plain curve, linear in log-rate through its 3 points, read at the other
encode's actual bitrate). Target: the assisted gain >= 70 % of the gt_box gain (matched bitrate) at each rate.

    python benchmarks/face_gain.py                       # all talking heads, both splits (~5 min on 2 cores)
    python benchmarks/face_gain.py --clips carphone.mp4 --split test
Markdown on stdout, JSON in out/bench/face_gain.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from perception import SPLIT_CHOICES  # noqa: E402  (one list of splits for the benchmarks)

BPP = (0.025, 0.05, 0.1)  # bits per pixel per frame
INSIDE, OUTSIDE = -5.0, 1.0
TALKING = {"talking_head", "interview"}


def talking_heads(corpus: dict[str, dict], splits, clips=None) -> list[str]:
    return [n for n, c in sorted(corpus.items(), key=lambda kv: (kv[1]["split"], kv[0]))
            if c["split"] in splits and TALKING & set(c.get("topics", [])) and not c.get("faces_ignore")
            and any(c.get("faces", {}).values()) and (not clips or n in clips)]


def face_rois(gt: dict, fps: float, frame_count: int):
    from codec_assist.schemas import RoiBox

    rois = []
    for k, boxes in gt.items():
        g = int(k)
        for x, y, w, h in boxes:
            rois.append(RoiBox(x=max(0, x), y=max(0, y), w=w, h=h, t0=max(0, g - 4) / fps,
                               t1=min(frame_count, g + 5) / fps))
    return rois


def gt_box_offsets(plan, gt: dict) -> dict[str, np.ndarray]:
    """Plan arrays with a fixed -5/+1 QP box on the GT faces, keypoints on the GT frames."""
    frames = sorted(int(k) for k in gt)
    b = plan.block_size
    grids = []
    for f in frames:
        boxes = gt[str(f)]
        g = np.zeros((plan.blocks_y, plan.blocks_x), np.float32)
        if boxes:
            g[:] = OUTSIDE
            for x, y, w, h in boxes:
                g[max(0, y // b):min(plan.blocks_y, -(-(y + h) // b)), max(0, x // b):min(plan.blocks_x, -(-(x + w) // b))] = INSIDE
        grids.append(g)
    return {"qp/frames": np.asarray(frames, np.int64), "qp/offsets": np.stack(grids)}


def face_psnr(quality, rois) -> float:
    vals = [quality.roi_psnr_y[r.label()] for r in rois if r.label() in quality.roi_psnr_y]
    return float(np.mean(vals))


def run_clip(path: Path, gt: dict, work: Path, add: tuple[str, ...] = (), swap: dict[str, str] | None = None) -> dict:
    """`add`: analyzers run on top of the default set for the assisted encode (e.g. people); `swap`: default
    analyzers replaced by others (e.g. {"faces": "faces_haar"}, the previous default)."""
    import analyzers
    import codec_assist.api as ca
    from codec_assist import schemas
    from codec_assist.options import AnalyzeOptions

    info = ca.probe(path)
    rois = face_rois(gt, info.fps, info.frame_count)
    rates = [max(8, int(round(bpp * info.width * info.height * info.fps / 1000))) for bpp in BPP]
    plan_path = work / f"{path.stem}.plan.json"
    gt_plan_path = work / f"{path.stem}.gtbox.plan.json"
    out = {"clip": path.name, "size": f"{info.width}x{info.height}", "fps": round(info.fps, 2), "rates": []}
    t0 = time.perf_counter()
    for i, kbps in enumerate(rates):
        row = {"target_kbps": kbps}
        enc = {}
        for mode in ("plain", "assisted", "gt_box"):
            dst = work / f"{path.stem}.{kbps}.{mode}.mp4"
            kw: dict = {"bitrate": kbps * 1000, "overwrite": True}
            if mode == "plain":
                kw["assist"] = False
            elif mode == "assisted":
                if i == 0:
                    kw["save_plan"] = plan_path
                    if add or swap:
                        names = [(swap or {}).get(n, n) for n in analyzers.DEFAULT]
                        kw["analyze_options"] = AnalyzeOptions(analyzers=[*names, *add])
                else:
                    kw["plan_file"] = plan_path
            else:
                if i == 0:
                    plan, _ = schemas.load_plan(plan_path)
                    schemas.save(plan, gt_plan_path, gt_box_offsets(plan, gt))
                kw["plan_file"] = gt_plan_path
            ca.encode(path, dst, **kw)
            q = ca.measure(path, dst, rois=rois)
            enc[mode] = {"kbps": round(q.bitrate_kbps, 1), "psnr_y": round(q.psnr_y, 3), "face_psnr_y": round(face_psnr(q, rois), 3)}
        row.update(enc)
        out["rates"].append(row)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return gains(out)


def plain_at(rates: list[dict], kbps: float) -> float:
    """The plain encode's face PSNR at `kbps`: linear in log-rate through its 3 points (extended at the ends)."""
    xs = np.log([r["plain"]["kbps"] for r in rates])
    ys = np.array([r["plain"]["face_psnr_y"] for r in rates])
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    x = np.log(kbps)
    k = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
    return float(ys[k] + (ys[k + 1] - ys[k]) * (x - xs[k]) / (xs[k + 1] - xs[k]))


def gains(clip: dict) -> dict:
    """Face gains over plain at the same ABR target and at matched bitrate (the plain curve read at the other
    encode's actual bitrate: ABR lands a few % apart), and the ratio assisted / gt_box of the matched gains."""
    for r in clip["rates"]:
        for mode in ("assisted", "gt_box"):
            e = r[mode]
            e["face_gain_db"] = round(e["face_psnr_y"] - r["plain"]["face_psnr_y"], 3)
            e["face_gain_matched_db"] = round(e["face_psnr_y"] - plain_at(clip["rates"], e["kbps"]), 3)
        g_gt = r["gt_box"]["face_gain_matched_db"]
        r["ratio"] = round(r["assisted"]["face_gain_matched_db"] / g_gt, 3) if g_gt > 0.05 else None
    clip["ratio_min"] = min((r["ratio"] for r in clip["rates"] if r["ratio"] is not None), default=None)
    return clip


def summary(clips: list[dict], splits) -> dict:
    out = {}
    for split in splits:
        cs = [c for c in clips if c["split"] == split]
        if cs:
            ratios = [r["ratio"] for c in cs for r in c["rates"]]
            out[split] = {"clips": len(cs), "ratio_min": min((r for r in ratios if r is not None), default=None),
                          "ratio_max": max((r for r in ratios if r is not None), default=None),
                          "met": f"{sum(1 for r in ratios if r is not None and r >= 0.7)}/{len(ratios)}"}
    return out


def markdown(result: dict) -> str:
    lines = ["| clip | split | size | target kbps | kbps plain / assisted / gt box | face PSNR plain | gain assisted "
             "(same target / matched kbps) | gain gt box (same target / matched kbps) | assisted / gt box (matched) | "
             "whole-frame PSNR plain / assisted / gt box |", "|" + "---|" * 10]
    for c in result["clips"]:
        for r in c["rates"]:
            p, a, g = r["plain"], r["assisted"], r["gt_box"]
            lines.append(f"| {c['clip']} | {c['split']} | {c['size']} | {r['target_kbps']} | {p['kbps']} / {a['kbps']} / "
                         f"{g['kbps']} | {p['face_psnr_y']:.2f} | {a['face_gain_db']:+.2f} / {a['face_gain_matched_db']:+.2f} | "
                         f"{g['face_gain_db']:+.2f} / {g['face_gain_matched_db']:+.2f} | "
                         f"{'–' if r['ratio'] is None else format(r['ratio'], '.2f')} | "
                         f"{p['psnr_y']:.2f} / {a['psnr_y']:.2f} / {g['psnr_y']:.2f} |")
    lines += ["", "| split | clips | assisted / gt box (matched kbps): min – max over clips and rates | "
              "clip-rates with ratio >= 0.70 |", "|---|---|---|---|"]
    for split, s in result["summary"].items():
        lines.append(f"| {split} | {s['clips']} | {s['ratio_min']} – {s.get('ratio_max')} | {s['met']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", default=str(ROOT / "samples" / "corpus.json"))
    ap.add_argument("--media", default=str(ROOT / "samples" / "media"))
    ap.add_argument("--split", choices=tuple(SPLIT_CHOICES), default="both",
                    help="both = dev and test; all = every split")
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--keep", help="keep the encodes and plans in this folder")
    ap.add_argument("--add", nargs="*", default=[], help="analyzers added to the default set (e.g. people)")
    ap.add_argument("--swap", nargs="*", default=[], help="OLD=NEW: replace a default analyzer (faces=faces_haar)")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "face_gain.json"))
    ap.add_argument("--rescore", help="re-score and re-print a JSON this script wrote (no encodes)")
    a = ap.parse_args()
    if a.rescore:
        result = json.loads(Path(a.rescore).read_text())
        result["clips"] = [gains(c) for c in result["clips"]]
        result["summary"] = summary(result["clips"], [s for s in ("dev", "test") if s in result["summary"]])
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))
        print(markdown(result))
        return 0
    corpus = json.loads(Path(a.gt).read_text())["clips"]
    splits = SPLIT_CHOICES[a.split]
    result = {"command": " ".join(sys.argv), "bpp": BPP, "added_analyzers": a.add, "swapped": a.swap, "clips": [], "summary": {}}
    with tempfile.TemporaryDirectory(prefix="face-gain-") as tmp:
        work = Path(a.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in talking_heads(corpus, splits, a.clips):
            path = Path(a.media) / name
            if not path.exists():
                print(f"face_gain: {name} missing: run samples/fetch.py --corpus", file=sys.stderr)
                continue
            c = run_clip(path, corpus[name]["faces"], work, tuple(a.add), dict(x.split("=", 1) for x in a.swap))
            c["split"] = corpus[name]["split"]
            result["clips"].append(c)
            print(f"face_gain: {name} min ratio {c['ratio_min']} ({c['seconds']} s)", file=sys.stderr)
    result["summary"] = summary(result["clips"], splits)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
