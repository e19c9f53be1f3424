#!/usr/bin/env python3
"""Peak memory while streaming long inputs: does RSS stay bounded as the clip gets longer?

Makes synthetic clips (a scrolling test pattern with a moving box, H.264 ultrafast, made here with PyAV: no
third-party media), then runs real CLI commands on each in a fresh child process and reads that child's own
peak RSS from os.wait4 (ru_maxrss). Compare the short and the long clip: a streaming pipeline shows the
same peak, a pipeline that holds frames (or per-frame arrays) grows with duration.

    python benchmarks/memory.py                          # 1080p25: 1 min and 10 min (slow: ~20 min on 2 cores)
    python benchmarks/memory.py --seconds 60,300,600 --repeat 2   # the run in docs/ROBUSTNESS.md (~45 min)
    python benchmarks/memory.py --size 640x360 --seconds 20,60   # a quick check
Results: a Markdown table on stdout and JSON in out/bench/memory.json. Clips are cached in out/memory/.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_clip(path: Path, seconds: float, width: int, height: int, fps: int = 25, crf: int = 30) -> Path:
    """A test-pattern clip: colour bars scrolling sideways, a bright box bouncing, a noisy strip.

    Frames are built as yuv420p planes by slicing a wider pre-built pattern, so making 10 minutes of
    1080p costs about what the ultrafast encoder costs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    w2, h2 = width // 2, height // 2
    bars_y = np.repeat(np.linspace(16, 235, 8, dtype=np.uint8)[np.arange(2 * width) * 8 // (2 * width)][None, :],
                       height, 0)
    bars_u = np.repeat(np.array([128, 44, 156, 72, 184, 100, 212, 128], np.uint8)[np.arange(w2) * 8 // w2]
                       [None, :], h2, 0)
    bars_v = bars_u[:, ::-1].copy()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (height // 8, 2 * width), np.uint8)
    n = int(round(seconds * fps))
    with av.open(str(tmp), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": str(crf)}
        for i in range(n):
            dx = (i * 4) % width
            y = bars_y[:, dx:dx + width].copy()
            y[height - height // 8:] = noise[:, (i * 16) % width:(i * 16) % width + width]
            bx = int((np.sin(i / 40) * 0.4 + 0.5) * (width - width // 8))
            by = int((np.cos(i / 55) * 0.4 + 0.5) * (height - height // 4 - height // 8))
            y[by:by + height // 8, bx:bx + width // 8] = 235
            u = np.roll(bars_u, dx // 2, axis=1)
            v = np.roll(bars_v, dx // 2, axis=1)
            frame = av.VideoFrame.from_ndarray(np.concatenate([y.ravel(), u.ravel(), v.ravel()])
                                               .reshape(height * 3 // 2, width), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    os.replace(tmp, path)
    return path


def peak_rss_mb(argv: list[str]) -> tuple[float, float, int]:
    """Run argv in a child; return (its own peak RSS in MiB, wall seconds, exit code)."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace").strip()
    if p.returncode:
        print(f"  ! {' '.join(argv[3:5])} exited {p.returncode}: {err[-300:]}", file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - t, p.returncode  # Linux: ru_maxrss is in KiB


COMMANDS = {
    "analyze": lambda clip, out: ["analyze", clip, "-o", out / "an", "--overwrite"],
    "encode --no-assist": lambda clip, out: ["encode", clip, "-o", out / "plain.mp4", "--no-assist",
                                             "--preset", "ultrafast", "--crf", "30", "--overwrite"],
    "encode (assisted)": lambda clip, out: ["encode", clip, "-o", out / "asst.mp4", "--preset", "ultrafast",
                                            "--crf", "30", "--overwrite"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--seconds", default="60,600", help="clip durations to compare")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--analyzers", help="analyzers for analyze and the assisted encode (default: the CLI's); e.g. "
                    "shots,saliency,faces,text leaves out the torch models (importing torch is ~630 MiB here)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per cell: the peak of a run with model threads varies by tens of MiB")
    ap.add_argument("--workdir", default=str(ROOT / "out" / "memory"))
    ap.add_argument("--json", default=str(ROOT / "out" / "bench" / "memory.json"))
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = Path(args.workdir)
    rows = []
    for seconds in [float(s) for s in args.seconds.split(",")]:
        clip = work / f"pattern_{width}x{height}_{seconds:g}s.mp4"
        if not clip.exists():
            t = time.perf_counter()
            make_clip(clip, seconds, width, height, args.fps)
            print(f"made {clip.name} ({clip.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.0f}s",
                  file=sys.stderr)
        for name in args.commands.split(","):
            out = work / "out"
            out.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "codec_assist", "-q", *map(str, COMMANDS[name](clip, out))]
            label = name
            if args.analyzers and name != "encode --no-assist":
                cmd += ["--analyzers", args.analyzers]
                label = f"{name} [{args.analyzers}]"
            for _ in range(args.repeat):
                rss, wall, rc = peak_rss_mb(cmd)
                rows.append({"size": f"{width}x{height}", "seconds": seconds, "command": label, "peak_rss_mib": rss,
                             "wall_s": wall, "rc": rc})
                print(f"{width}x{height} {seconds:>5g}s  {label:<20} peak RSS {rss:7.1f} MiB  {wall:6.1f}s  rc={rc}",
                      file=sys.stderr)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print("| size | clip s | command | peak RSS MiB (each run) | wall s |\n|---|---|---|---|---|")
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["size"], r["seconds"], r["command"]), []).append(r)
    for (size, seconds, name), runs in cells.items():
        peaks = ", ".join(f"{r['peak_rss_mib']:.1f}" for r in runs)
        print(f"| {size} | {seconds:g} | {name} | {peaks} | {min(r['wall_s'] for r in runs):.0f} |")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
