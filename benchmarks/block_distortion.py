#!/usr/bin/env python3
"""What a block's MSE grows with (issue 15): the evidence behind `policies.qp.block_distortion`.

Per clip, plain x264 medium ABR encodes at 3 rates (bits per pixel per frame 0.025, 0.05, 0.1); on every 5th
frame, each 16x16 block's MSE (luma, encode vs source) beside its texture measured the way the saliency
analyzer measures it (Sobel gradient magnitude on the 320-px proxy, averaged per block, / 255). Prints the
log-log slope of MSE vs (texture + 0.02) and the mean MSE per texture decile: the QP policy weighs the blocks
that pay for a region of interest by texture**cost_exponent, so this slope is what the exponent should be.

    PYTHONPATH=. python benchmarks/block_distortion.py cap12.mp4 jwpIntro.mp4 testmovie.mp4   # dev clips
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BPP = (0.025, 0.05, 0.1)
BLOCK = 16


def block_stats(src: Path, dst: Path, every: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(texture, MSE) of every block of every `every`-th frame."""
    import codec_assist.media.decode as media

    tex, mse = [], []
    for i, (r, d) in enumerate(zip(media.iter_frames(src), media.iter_frames(dst))):
        if i % every:
            continue
        ry = r.to_ndarray(format="gray").astype(np.float32)
        dy = d.to_ndarray(format="gray").astype(np.float32)
        h = (min(ry.shape[0], dy.shape[0]) // BLOCK) * BLOCK
        w = (min(ry.shape[1], dy.shape[1]) // BLOCK) * BLOCK
        ry, dy = ry[:h, :w], dy[:h, :w]
        proxy = cv2.resize(ry, (320, int(round(h * 320 / w))), interpolation=cv2.INTER_AREA)
        mag = cv2.magnitude(cv2.Sobel(proxy, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(proxy, cv2.CV_32F, 0, 1, ksize=3))
        tex.append((cv2.resize(mag, (w // BLOCK, h // BLOCK), interpolation=cv2.INTER_AREA) / 255.0).ravel())
        mse.append(((ry - dy) ** 2).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3)).ravel())
    return np.concatenate(tex), np.concatenate(mse)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--media", default=str(ROOT / "samples" / "media"))
    a = ap.parse_args()
    import codec_assist as ca

    print("| clip | kb/s | slope of log MSE vs log(texture + 0.02) | mean (texture, MSE) per texture decile |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in a.clips:
            src = Path(a.media) / clip
            info = ca.probe(src)
            for bpp in BPP:
                kbps = max(8, int(round(bpp * info.width * info.height * info.fps / 1000)))
                dst = Path(tmp) / f"{src.stem}.{kbps}.mp4"
                ca.encode(src, dst, bitrate=kbps * 1000, assist=False, overwrite=True)
                t, d = block_stats(src, dst)
                edges = np.quantile(t, np.linspace(0, 1, 11))
                idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, 9)
                deciles = " ".join(f"({t[idx == k].mean():.3f}, {d[idx == k].mean():.1f})" for k in range(10))
                slope = np.polyfit(np.log(t + 0.02), np.log(d + 1e-3), 1)[0]
                print(f"| {clip} | {kbps} | {slope:.2f} | {deciles} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
