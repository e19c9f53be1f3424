#!/usr/bin/env python3
"""Bits a viewer sees (issue 15): does the assisted encode buy ROI quality without costing the whole frame,
and does it beat x264/x265's own tools?

Per clip of samples/corpus.json, at 3 rates (bits per pixel per frame 0.025, 0.05, 0.1; ABR), in one run:
  plain      assist=False: the encoder with its default AQ and mb-tree;
  aq3        assist=False with aq-mode=3 (x264's and x265's auto-variance AQ biased to dark scenes), the peer a
             careful user turns on;
  assisted   the default assisted encode (its plan made once and reused at every rate).
Measured against the source (codec_assist.measure): bitrate, whole-frame PSNR-Y and XPSNR-Y, whole-frame VMAF
(libvmaf, every frame, motion on), and ROI PSNR-Y inside the corpus' hand-marked face and text boxes (each box on frames [g-4, g+5) around
its GT frame g: independent of the importance map under test). BD-rates over the 3 rates, per metric:
assisted vs plain, aq3 vs plain, assisted vs aq3 (negative: fewer bits for the same quality).

Clip groups: "roi" = clips with labelled faces or text boxes (talking heads, interviews, slides); "none" =
face- and text-free clips (the assisted encode must never be worse than plain there; a clip whose overlay text
was seen but not boxed, `text_unboxed`, is in neither). PSNR punishes any
redistribution (x264's own AQ too); VMAF is the viewer's proxy; both are reported.

    PYTHONPATH=. python benchmarks/roi_cost.py --split dev                 # tune on dev
    PYTHONPATH=. python benchmarks/roi_cost.py --split both --codec x264  # report (test beside dev)
    PYTHONPATH=. python benchmarks/roi_cost.py --clips cap12.mp4 --plan max_dqp=4 max_cost_db=0.5
Markdown on stdout, JSON in out/bench/roi_cost.<codec>.json.
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
MODES = ("plain", "aq3", "assisted")
ROI_TOPICS = {"talking_head", "interview", "education", "slideshow"}


def clip_group(c: dict) -> str | None:
    """'roi' (labelled faces or text to judge), 'none' (face- and text-free), or None (not scored)."""
    faces = any(c.get("faces", {}).values()) and not c.get("faces_ignore")
    text = any(c.get("text", {}).values()) and not c.get("text_dense")
    if faces or text:
        return "roi" if (ROI_TOPICS & set(c.get("topics", [])) or text) else None
    facts = c.get("facts", {})
    text_free = not (c.get("text_dense") or c.get("text_unboxed"))  # text seen but not boxed: neither group
    return "none" if facts.get("face_free") and text_free else None


def gt_rois(c: dict, fps: float, frame_count: int):
    """RoiBoxes on the corpus' face and text boxes, frames [g-4, g+5) around each GT frame g."""
    from codec_assist.schemas import RoiBox

    rois = []
    for kind in ("faces", "text"):
        if kind == "faces" and c.get("faces_ignore") or kind == "text" and c.get("text_dense"):
            continue
        for k, boxes in c.get(kind, {}).items():
            g = int(k)
            for x, y, w, h in boxes:
                rois.append(RoiBox(x=max(0, x), y=max(0, y), w=w, h=h, t0=max(0, g - 4) / fps,
                                   t1=min(frame_count, g + 5) / fps))
    return rois


def roi_psnr(quality, rois) -> float | None:
    vals = [quality.roi_psnr_y[r.label()] for r in rois if r.label() in quality.roi_psnr_y]
    return float(np.mean(vals)) if vals else None


def run_clip(path: Path, c: dict, work: Path, codec: str, plan_fields: dict, vmaf: bool,
             cache: Path | None = None) -> dict:
    """`cache`: a folder keeping the plain and aq3 rows (they do not depend on the plan) between runs."""
    import codec_assist as ca
    from codec_assist import schemas

    info = ca.probe(path)
    rois = gt_rois(c, info.fps, info.frame_count)
    rates = [max(8, int(round(bpp * info.width * info.height * info.fps / 1000))) for bpp in BPP]
    plan_path = work / f"{path.stem}.{codec}.plan.json"
    out = {"clip": path.name, "size": f"{info.width}x{info.height}", "frames": info.frame_count, "rates": []}
    t0 = time.perf_counter()
    for i, kbps in enumerate(rates):
        row = {"target_kbps": kbps}
        for mode in MODES:
            key = cache / f"{path.stem}.{codec}.{kbps}.{mode}.{'vmaf' if vmaf else 'novmaf'}.v2.json" if cache else None
            if key is not None and mode != "assisted" and key.exists():
                row[mode] = json.loads(key.read_text())
                continue
            dst = work / f"{path.stem}.{codec}.{kbps}.{mode}.mp4"
            kw: dict = {"bitrate": kbps * 1000, "codec": codec, "overwrite": True}
            if mode == "plain":
                kw["assist"] = False
            elif mode == "aq3":
                kw.update(assist=False, params={"aq-mode": "3"})
            elif i == 0:
                kw["save_plan"] = plan_path
                kw["plan_options"] = ca.PlanOptions(codec=codec, **plan_fields)
            else:
                kw["plan_file"] = plan_path
            ca.encode(path, dst, **kw)
            q = ca.measure(path, dst, rois=rois, xpsnr=True, vmaf_every=1 if vmaf else 0)
            row[mode] = {"kbps": round(q.bitrate_kbps, 2), "psnr_y": round(q.psnr_y, 3),
                         "xpsnr_y": None if q.xpsnr_y is None else round(q.xpsnr_y, 3),
                         "roi_psnr_y": None if roi_psnr(q, rois) is None else round(roi_psnr(q, rois), 3),
                         "vmaf": None if q.vmaf is None else round(q.vmaf, 3)}
            dst.unlink(missing_ok=True)
            if key is not None and mode != "assisted":
                key.parent.mkdir(parents=True, exist_ok=True)
                key.write_text(json.dumps(row[mode]))
        out["rates"].append(row)
    if plan_path.exists():
        plan, arrays = schemas.load_plan(plan_path)
        off = arrays["qp/offsets"]
        out["offsets"] = {"min": float(np.min(off)), "max": float(np.max(off)),
                          "share_negative": round(float(np.mean(np.asarray(off) < 0)), 4)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return bd_rates(out)


def bd_rates(clip: dict) -> dict:
    import codec_assist as ca

    def curve(mode, metric):
        pts = [(r[mode]["kbps"], r[mode].get(metric)) for r in clip["rates"]]
        if any(v is None for _, v in pts):
            return None
        return [p[0] for p in pts], [p[1] for p in pts]

    clip["bd_rate"] = {}
    for metric in ("roi_psnr_y", "psnr_y", "xpsnr_y", "vmaf"):
        for a, b in (("plain", "assisted"), ("plain", "aq3"), ("aq3", "assisted")):
            ca_, cb = curve(a, metric), curve(b, metric)
            if ca_ and cb:
                v = ca.bd_rate(*ca_, *cb)
                clip["bd_rate"][f"{metric}:{b}_vs_{a}"] = None if v is None else round(v, 2)
    return clip


def markdown(result: dict) -> str:
    keys = ["roi_psnr_y:assisted_vs_plain", "psnr_y:assisted_vs_plain", "xpsnr_y:assisted_vs_plain",
            "vmaf:assisted_vs_plain",
            "roi_psnr_y:aq3_vs_plain", "vmaf:aq3_vs_plain", "roi_psnr_y:assisted_vs_aq3", "vmaf:assisted_vs_aq3"]
    lines = ["| clip | split | group | size | " + " | ".join(k.replace(":", " ") for k in keys) + " |",
             "|" + "---|" * (4 + len(keys))]
    for c in result["clips"]:
        vals = [c["bd_rate"].get(k) for k in keys]
        lines.append(f"| {c['clip']} | {c['split']} | {c['group']} | {c['size']} | "
                     + " | ".join("–" if v is None else f"{v:+.1f}%" for v in vals) + " |")
    lines += ["", "| clip | kbps target | kbps plain / aq3 / assisted | PSNR-Y | XPSNR-Y | ROI PSNR-Y | VMAF |",
              "|---|---|---|---|---|---|---|"]
    for c in result["clips"]:
        for r in c["rates"]:
            def f(metric, nd=2):
                return " / ".join("–" if r[m].get(metric) is None else f"{r[m][metric]:.{nd}f}" for m in MODES)
            lines.append(f"| {c['clip']} | {r['target_kbps']} | {f('kbps', 1)} | {f('psnr_y')} | {f('xpsnr_y')} | "
                         f"{f('roi_psnr_y')} | {f('vmaf')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", default=str(ROOT / "samples" / "corpus.json"))
    ap.add_argument("--media", default=str(ROOT / "samples" / "media"))
    ap.add_argument("--split", choices=tuple(SPLIT_CHOICES), default="both",
                    help="both = dev and test; all = every split")
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--codec", choices=("x264", "x265"), default="x264")
    ap.add_argument("--plan", nargs="*", default=[], help="PlanOptions fields for the assisted encode, k=v")
    ap.add_argument("--no-vmaf", action="store_true", help="skip VMAF (every frame)")
    ap.add_argument("--out")
    ap.add_argument("--cache", help="keep the plain and aq3 measurements here and reuse them (tuning runs)")
    a = ap.parse_args()
    corpus = json.loads(Path(a.gt).read_text())["clips"]
    splits = SPLIT_CHOICES[a.split]
    plan_fields = {k: float(v) for k, v in (x.split("=", 1) for x in a.plan)}
    result = {"command": " ".join(sys.argv), "codec": a.codec, "bpp": BPP, "plan": plan_fields, "clips": []}
    names = [n for n, c in sorted(corpus.items(), key=lambda kv: (kv[1]["split"], kv[0]))
             if c["split"] in splits and clip_group(c) and (not a.clips or n in a.clips)]
    with tempfile.TemporaryDirectory(prefix="roi-cost-") as tmp:
        for name in names:
            path = Path(a.media) / name
            if not path.exists():
                print(f"roi_cost: {name} missing: run samples/fetch.py --corpus", file=sys.stderr)
                continue
            c = run_clip(path, corpus[name], Path(tmp), a.codec, plan_fields, not a.no_vmaf,
                         Path(a.cache) if a.cache else None)
            c.update(split=corpus[name]["split"], group=clip_group(corpus[name]))
            result["clips"].append(c)
            print(f"roi_cost: {name} {c['bd_rate']} ({c['seconds']} s)", file=sys.stderr)
    out = Path(a.out or ROOT / "out" / "bench" / f"roi_cost.{a.codec}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
