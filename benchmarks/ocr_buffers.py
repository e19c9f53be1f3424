#!/usr/bin/env python3
"""The OCR's cost per call with its work buffers kept (ONNX Runtime's arena) or handed back (issue 16).

One mode per process (the engine is made once per process): `read_text` on every `--every`-th proxy frame of a clip,
then wall time, user and system CPU-s (getrusage) and RSS before, after and at its peak (VmRSS after each call).

    python benchmarks/ocr_buffers.py arena                      # what `analyze` and the analysis before an encode do
    python benchmarks/ocr_buffers.py trim                       # what the analysis beside the encoder does
    python benchmarks/ocr_buffers.py off                        # neither (the heap fragments)
    python benchmarks/ocr_buffers.py arena_trim --clip out/bench/bbb_trailer_60s.mp4 --every 18
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import codec_assist.media.decode as media  # noqa: E402
from analyzers import text  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["arena", "arena_trim", "trim", "off"])
    ap.add_argument("--clip", default=str(ROOT / "out" / "bench" / "bbb_trailer_60s.mp4"))
    ap.add_argument("--every", type=int, default=18, help="one proxy frame in this many (18: 80 calls a minute)")
    a = ap.parse_args(argv)
    info = media.probe(a.clip)
    size = media.proxy_size(info.width, info.height)
    frames = [p.bgr for i, _f, p in media.iter_proxy(a.clip, size) if i % a.every == 0]
    arena = a.mode.startswith("arena")
    trim = a.mode.endswith("trim")
    text.read_text(frames[0], arena=arena)  # the engine and both stages loaded before the clock starts
    r0, t0, base = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), rss_mib()
    peak = base
    for bgr in frames:
        text.read_text(bgr, arena=arena)
        if trim:
            media.release_memory()
        peak = max(peak, rss_mib())
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{a.mode}: {len(frames)} calls, wall {time.perf_counter() - t0:.2f} s, user {r1.ru_utime - r0.ru_utime:.2f} "
          f"s, system {r1.ru_stime - r0.ru_stime:.2f} s, RSS {base:.0f} -> {rss_mib():.0f} MiB (peak {peak:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
