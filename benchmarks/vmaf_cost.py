#!/usr/bin/env python3
"""Cost per frame of the whole-frame quality metrics compare measures (issue 15): VMAF (libvmaf, motion on, the
frames piped to FFmpeg by VmafMeter, 1 libvmaf thread as compare uses it, and 2 threads for comparison), XPSNR
(FFmpeg's xpsnr filter via XpsnrMeter) and PSNR+SSIM, at 352x288, 640x360 and 1280x720.

Frames: the first N of samples/media/bigbuckbunny.mp4 (1280x720), Y plane, scaled down with INTER_AREA; the
distorted side is an x264 encode of the same scaled frames (veryfast, CRF 30), so the numbers are what compare
pays per encode it measures. Wall and CPU (this process and its children: libvmaf's FFmpeg) milliseconds per frame, with the 1-minute load average
before and after: these 2 cores are shared, so wall time moves with the load.

    python benchmarks/vmaf_cost.py                   # 24 frames per size
    python benchmarks/vmaf_cost.py --frames 12
Results: a Markdown table on stdout and JSON in out/bench/vmaf_cost.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from codec_assist.evaluation.metrics import SsimWorkspace, VmafMeter, XpsnrMeter, psnr  # noqa: E402
from codec_assist.media.decode import iter_frames, luma  # noqa: E402

SIZES = [(352, 288), (640, 360), (1280, 720)]


def encoded(planes: list[np.ndarray], crf: int = 30) -> list[np.ndarray]:
    """x264 veryfast CRF encode and decode of Y planes (chroma flat), in memory."""
    h, w = planes[0].shape
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    ctx.options = {"preset": "veryfast", "crf": str(crf)}
    dec = av.CodecContext.create("h264", "r")
    out = []
    packets = []
    for i, y in enumerate(planes):
        buf = np.full((h * 3 // 2, w), 128, np.uint8)
        buf[:h] = y
        f = av.VideoFrame.from_ndarray(buf, format="yuv420p")
        f.pts = i
        packets += ctx.encode(f)
    packets += ctx.encode(None)
    for p in packets:
        out += [luma(f).copy() for f in dec.decode(p)]
    out += [luma(f).copy() for f in dec.decode(None)]
    return out


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of fn(), the CPU of the child processes it waited for (FFmpeg) included."""
    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    t, c = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - t, cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24)
    args = ap.parse_args()
    src = []
    for f in iter_frames(ROOT / "samples/media/bigbuckbunny.mp4"):
        src.append(luma(f).copy())
        if len(src) == args.frames:
            break
    rows = []
    for w, h in SIZES:
        ref = [cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA) for y in src]
        dist = encoded(ref)
        n = len(ref)
        load0 = os.getloadavg()[0]

        def vmaf(threads: int = 1):
            m = VmafMeter(threads=threads)
            for a, b in zip(ref, dist):
                m.add(a, b)
            vmaf.score = float(m.scores().mean())

        def xpsnr():
            m = XpsnrMeter(25.0)
            for a, b in zip(ref, dist):
                m(a, b)

        def psnr_ssim():
            ws = SsimWorkspace((h, w))
            for a, b in zip(ref, dist):
                psnr(a, b)
                ws(a, b)

        vmaf()  # warm-up: the first FFmpeg start reads the binary from disk
        row = {"size": f"{w}x{h}", "frames": n}
        for name, fn in (("vmaf", vmaf), ("vmaf_2threads", lambda: vmaf(2)), ("xpsnr", xpsnr),
                         ("psnr_ssim", psnr_ssim)):
            wall, cpu = timed(fn)
            row[f"{name}_wall_ms"] = round(wall / n * 1000, 1)
            row[f"{name}_cpu_ms"] = round(cpu / n * 1000, 1)
        row["vmaf_score"] = round(vmaf.score, 2)
        row["load_before"], row["load_after"] = round(load0, 1), round(os.getloadavg()[0], 1)
        rows.append(row)
        print(row, file=sys.stderr)
    print("| size | frames | VMAF ms/frame wall (CPU), 1 libvmaf thread (default) | same, 2 threads "
          "| XPSNR ms/frame wall (CPU) | PSNR+SSIM ms/frame wall (CPU) | VMAF of the CRF 30 encode "
          "| load avg before → after |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['frames']} | {r['vmaf_wall_ms']} ({r['vmaf_cpu_ms']}) "
              f"| {r['vmaf_2threads_wall_ms']} ({r['vmaf_2threads_cpu_ms']}) | {r['xpsnr_wall_ms']} "
              f"({r['xpsnr_cpu_ms']}) | {r['psnr_ssim_wall_ms']} ({r['psnr_ssim_cpu_ms']}) | {r['vmaf_score']} "
              f"| {r['load_before']} → {r['load_after']} |")
    out = ROOT / "out/bench/vmaf_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
