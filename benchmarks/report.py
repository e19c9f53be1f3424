"""Issue 6 target: `codec-assist report` for a 10-second clip in <= 10 s on 2 cores, cold process (imports included).

    python benchmarks/report.py [--runs 5]

Analyses bikes.mp4 (10 s, 640x272) once, then times fresh `codec-assist report ANALYSIS -o report.html`
processes: wall time, CPU time (user+sys of the child) and the machine's load average, since the cores are
often shared. Also times the variant that re-analyses from an encode report and the --figures (PNG+SVG) one.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(*args) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # --overwrite: every run writes the same page (outputs are never replaced silently)
    r = subprocess.run([sys.executable, "-m", "codec_assist", "-q", "--overwrite", *map(str, args)], capture_output=True,
                       text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        sys.exit(f"failed: {' '.join(map(str, args))}: {r.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    clip = ROOT / "samples" / "media" / "bikes.mp4"
    with tempfile.TemporaryDirectory(prefix="ca-bench-report-") as tmp:
        tmp = Path(tmp)
        timed("analyze", clip, "-o", tmp / "an")
        timed("encode", clip, "-o", tmp / "b.mp4", "--bitrate", "400k", "--preset", "veryfast",
              "--report", tmp / "enc.json")
        cases = {
            "report ANALYSIS -o r.html": ("report", tmp / "an", "-o", tmp / "r.html"),
            "report ANALYSIS -o r.html --figures DIR (PNG+SVG)": ("report", tmp / "an", "-o", tmp / "r.html",
                                                                  "--figures", tmp / "figs"),
            "report ENCODE_REPORT -o r.html (re-analyses the video)": ("report", tmp / "enc.json", "-o", tmp / "r.html"),
        }
        print(f"bikes.mp4 (10.0 s, 640x272), {args.runs} cold runs each, {os.cpu_count()} cores\n")
        print("| command | wall s median | wall s max | CPU s median | load avg (1 min) at start |")
        print("|---|---|---|---|---|")
        for name, cmd in cases.items():
            load = os.getloadavg()[0]
            runs = [timed(*cmd) for _ in range(args.runs)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            print(f"| `{name}` | {statistics.median(walls):.2f} | {max(walls):.2f} | {statistics.median(cpus):.2f} "
                  f"| {load:.1f} |")


if __name__ == "__main__":
    main()
