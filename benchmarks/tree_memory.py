"""Peak memory of a command and every process it starts, together (issue 16: the overlapped assisted encode is two
processes). Every 0.5 s it sums RSS and PSS (proportional set size: pages two processes share after a fork count
once, split between them) over the process tree from /proc/PID/smaps_rollup, and prints the peaks of the sums.
`benchmarks/memory.py` and `speed.py` read ru_maxrss from wait4, the largest single process, which understates a
tree's total.

    python benchmarks/tree_memory.py .venv/bin/python -m codec_assist -q encode IN.mp4 -o OUT.mp4 --bitrate 1000k
    python benchmarks/tree_memory.py --series 1 ...   # also the summed RSS and PSS every second, to see phases
"""
from __future__ import annotations

import subprocess
import sys
import time


def tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return out
    for child in children:
        out += tree(int(child))
    return out


def sizes(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MiB; zeros when it is gone."""
    rss = pss = 0.0
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def main(argv: list[str]) -> int:
    series = 0.0
    if argv[:1] == ["--series"] and len(argv) > 2:
        series, argv = float(argv[1]), argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    t0 = time.time()
    try:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as e:  # not a command: one line, not a traceback
        print(f"tree_memory: cannot run {argv[0]!r}: {e.strerror}", file=sys.stderr)
        return 2
    peak_rss = peak_pss = 0.0
    most = 1
    each: dict[int, float] = {}  # pid -> its own peak PSS
    shown: list[str] = []
    while p.poll() is None:
        pids = tree(p.pid)
        both = [sizes(pid) for pid in pids]
        peak_rss = max(peak_rss, sum(r for r, _ in both))
        peak_pss = max(peak_pss, sum(s for _, s in both))
        for pid, (_, pss) in zip(pids, both):
            each[pid] = max(each.get(pid, 0.0), pss)
        most = max(most, len(pids))
        if series and time.time() - t0 >= len(shown) * series:
            shown.append(f"{time.time() - t0:6.1f} s  RSS {sum(r for r, _ in both):6.1f}  PSS "
                         f"{sum(s for _, s in both):6.1f} MiB  ({len(pids)} processes)")
            print(shown[-1], flush=True)
        time.sleep(0.25 if series else 0.5)
    print(f"rc={p.returncode} wall={time.time() - t0:.1f}s processes={most} peak sum RSS={peak_rss:.1f} MiB "
          f"peak sum PSS={peak_pss:.1f} MiB; each process's own peak PSS: "
          + ", ".join(f"{pss:.1f}" for pss in each.values()) + " MiB")
    if p.returncode:
        print(p.stderr.read().decode()[-500:])
    return p.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
