#!/usr/bin/env python3
"""How much the per-shot choice can win, by the probes' own prediction (issue 19): for each rung, the predicted
VMAF of the hull's equal-slope choice against one CRF for every shot at the same predicted bits, both read from
the probe cache that `benchmarks/hull.py --cache DIR` leaves (one resolution per rung, as the ladder encodes).

    python benchmarks/hull_headroom.py out/bench/hull_cache_s15/cache-montage.mp4 --fps 25 --height 360 --rates 400 200
Probes cover a shot's first frames (75 by default); their bits are scaled to the shot's length.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.hull import choose  # noqa: E402


def probes(cache: Path, height: int) -> dict[tuple[int, int], dict[float, tuple[float, float]]]:
    """(first frame, end frame) of each shot -> {crf: (bits, vmaf)} at `height`."""
    shots: dict = {}
    for f in cache.glob("*.json"):
        m = re.search(r"-f(\d+)-(\d+)-\d+x(\d+)-crf[\d.]+-", f.name)
        if m and int(m.group(3)) == height:
            d = json.loads(f.read_text())
            shots.setdefault((int(m.group(1)), int(m.group(2))), {})[float(d["crf"])] = (d["bits"], d["vmaf"])
    return shots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path, help="one clip's probe cache folder")
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--height", type=int, required=True, help="the rung's resolution (probe height)")
    ap.add_argument("--rates", type=float, nargs="+", required=True, help="rung budgets, kb/s")
    ap.add_argument("--probe-frames", type=int, default=75)
    a = ap.parse_args()
    shots = probes(a.cache, a.height)
    if not shots:
        print(f"no probes at {a.height}p in {a.cache}", file=sys.stderr)
        return 2
    keys = sorted(shots)
    frames = [b - f for f, b in keys]
    scale = [n / min(a.probe_frames, n) for n in frames]
    points = [([shots[k][c][0] * s for c in sorted(shots[k])], [shots[k][c][1] for c in sorted(shots[k])])
              for k, s in zip(keys, scale)]
    common = sorted(set.intersection(*(set(shots[k]) for k in keys)))
    bits = np.array([sum(shots[k][c][0] * s for k, s in zip(keys, scale)) for c in common])
    vmaf = np.array([sum(shots[k][c][1] * n for k, n in zip(keys, frames)) / sum(frames) for c in common])
    order = np.argsort(bits)
    print(f"| rung kb/s ({a.height}p) | hull, predicted VMAF | one CRF, predicted | hull − one CRF |\n|---|---|---|---|")
    for rate in a.rates:
        budget = rate * 1000 * sum(frames) / a.fps
        hull = sum(s.quality * n for s, n in zip(choose(points, frames, budget).shots, frames)) / sum(frames)
        one = float(np.interp(np.log(budget), np.log(bits[order]), vmaf[order]))
        print(f"| {rate:g} | {hull:.2f} | {one:.2f} | {hull - one:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
