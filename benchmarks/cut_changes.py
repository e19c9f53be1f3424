#!/usr/bin/env python3
"""What each labelled cut changes (issue 14): the HSV and edge change (`analyzers.shots.FrameChange`, the numbers
the shot detector sees) at every ground-truth cut of the corpus, and at the frames that change most without
being a cut. The shot detector's `min_edge_change` / `min_luma_change` were read off the dev rows.

    python benchmarks/cut_changes.py --split dev
Markdown on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import codec_assist.media.decode as media  # noqa: E402
from analyzers.shots import FrameChange  # noqa: E402


def changes(path: Path) -> dict[int, tuple[float, float, float, float]]:
    """frame -> (hue, saturation, luma, edges) change against the frame before, on the 320-px proxy."""
    info = media.probe(path)
    change, out = FrameChange(edges=True), {}
    for i, _frame, proxy in media.iter_proxy(path, media.proxy_size(info.width, info.height)):
        change.push(proxy.bgr)
        if change.components is not None:
            out[i] = tuple(float(v) for v in change.components)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gt", default=str(ROOT / "samples" / "corpus.json"))
    ap.add_argument("--media", default=str(ROOT / "samples" / "media"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--top", type=int, default=3, help="non-cut frames to list per clip (largest HSV change)")
    args = ap.parse_args()
    fmt = lambda f, c: f"{f}: h {c[0]:.0f} s {c[1]:.0f} l {c[2]:.0f} e {c[3]:.0f}"
    print(f"| clip ({args.split}) | labelled cuts: hue / sat / luma / edge change | largest changes elsewhere |")
    print("|---|---|---|")
    for name, clip in json.loads(Path(args.gt).read_text())["clips"].items():
        if clip["split"] != args.split:
            continue
        comps = changes(Path(args.media) / name)
        cuts = clip.get("cuts", [])
        at_cuts = [fmt(f, comps[f]) for f in cuts if f in comps]
        rest = sorted((f for f in comps if all(abs(f - c) > 2 for c in cuts)), key=lambda f: -sum(comps[f][:3]))
        print(f"| {name} | {'; '.join(at_cuts) or '–'} | {'; '.join(fmt(f, comps[f]) for f in rest[:args.top])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
