#!/usr/bin/env python3
"""Speed of the assisted encode against the plain encode (issue 16), cold processes, in one run.

Per clip and codec (x264 / x265, preset medium, ABR at the clip's rate): the plain encode
(`codec-assist encode --no-assist`) and the assisted encode (analysis + plan + encode, one process) each run
as a fresh CLI subprocess, so interpreter start-up, imports and model loading are counted. The two alternate
(plain, assisted, plain, assisted, ...) and each keeps its best of N wall times; the ratio is best / best. Each
child's own peak RSS comes from os.wait4 (ru_maxrss). `analyze` alone is timed the same way (× real time =
clip duration / wall). The assisted encode's own report (--json) says where its time went (per stage).

    python benchmarks/speed.py                                  # the issue-16 clips, x264 + x265, best of 3
    python benchmarks/speed.py --clips bigbuckbunny.mp4 --codecs x264 --repeat 2
    python benchmarks/speed.py --tree before=/tmp/base   # and a checkout of an older commit, interleaved
Results: a Markdown table on stdout and JSON in out/bench/speed.json (each run's wall, RSS and stages).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "samples" / "media"

# clip -> (ABR rate, what it stands for in issue 16's targets)
CLIPS = {
    "bigbuckbunny.mp4": ("1000k", "720p, music/effects"),
    "jwpIntro.mp4": ("300k", "480p talking head with speech"),
    "gradio_thanks.mp4": ("1500k", "1080p (analyze only)"),
    # issue 16's "10 s 480p talking head": jwpIntro looped to 10 s (out/bench/jwpIntro_10s.mp4, made with
    # `ffmpeg -stream_loop 1 -i samples/media/jwpIntro.mp4 -t 10 -c copy out/bench/jwpIntro_10s.mp4`)
    "jwpIntro_10s.mp4": ("300k", "10 s 480p talking head with speech"),
}
ANALYZE_ONLY = {"gradio_thanks.mp4"}


def run_child(argv: list[str], env: dict, cwd: Path = ROOT) -> dict:
    """Run argv as a child; its wall seconds, own peak RSS (MiB), exit code, stdout and stderr tail."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # cwd matters: `python -m` puts the current directory first on sys.path, before PYTHONPATH
        p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    rc = os.waitstatus_to_exitcode(status)
    if rc:
        print(f"  ! {' '.join(argv[2:6])} exited {rc}: {stderr.strip()[-400:]}", file=sys.stderr)
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "rc": rc, "stdout": stdout,
            "stderr": stderr.strip()[-2000:]}


def duration(path: Path) -> tuple[float, str]:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return float(c.duration or 0) / 1e6, f"{v.width}x{v.height}"


def stages_of(stdout: str) -> tuple[dict | None, float | None]:
    """(per-stage seconds, in-process seconds) from a command's --json output: an encode's EncodeResult.timing,
    an analysis's timing (version 2 files) and its `seconds` (the analysis inside the process)."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None, None
    timing = data.get("timing")
    seconds = data.get("seconds", data.get("seconds_encode"))
    return (timing if isinstance(timing, dict) else None), seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", default=[c for c in CLIPS if (MEDIA / c).exists()],
                    help="names in samples/media or paths")
    ap.add_argument("--codecs", nargs="*", default=["x264", "x265"])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the best wall time counts")
    ap.add_argument("--label", default="", help="a name for this run in the JSON (e.g. before/after)")
    ap.add_argument("--only", nargs="*", help="run only these jobs (analyze, 'x264 plain', 'x264 assisted', ...)")
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                    help="also run the jobs with codec_assist from this source tree (e.g. a checkout of the commit "
                    "before a change), interleaved with this one's, so before and after share the machine's load")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench" / "speed.json"))
    args = ap.parse_args(argv)
    trees = {"": ROOT, **{t.partition("=")[0]: Path(t.partition("=")[2]).resolve() for t in args.tree}}
    work = Path(tempfile.mkdtemp(prefix="speed-", dir=ROOT / "out" if (ROOT / "out").is_dir() else None))
    runs_by_tree = {label: [] for label in trees}
    for name in args.clips:
        for label, row in run_clip_trees(name, args, trees, work).items():
            if row is not None:
                runs_by_tree[label].append(row)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"label": args.label, "preset": args.preset, "repeat": args.repeat,
                               "python": sys.version.split()[0], "load_avg": os.getloadavg(),
                               "trees": {k: str(v) for k, v in trees.items()},
                               "rows": runs_by_tree[""], "rows_by_tree": runs_by_tree}, indent=2))
    for label, rows in runs_by_tree.items():
        print((f"## {label} ({trees[label]})\n" if len(trees) > 1 else "") + table(rows, args.codecs, args.repeat)
              + "\n")
    return 0 if all(r["rc"] == 0 for rows in runs_by_tree.values() for row in rows for runs in row["runs"].values()
                    for r in runs) else 1


def run_clip_trees(name: str, args, trees: dict[str, Path], work: Path) -> dict[str, dict | None]:
    """Every job of one clip for every tree, interleaved (job by job, tree by tree, repeat by repeat)."""
    clip = Path(name) if Path(name).is_file() else MEDIA / name  # a path, or a name in samples/media
    name = clip.name
    if not clip.exists():
        print(f"# {name}: not in samples/media, skipped", file=sys.stderr)
        return {label: None for label in trees}
    seconds, size = duration(clip)
    rate = CLIPS.get(name, ("1000k", ""))[0]
    cli = [sys.executable, "-m", "codec_assist", "-q"]
    jobs = {"analyze": cli + ["analyze", str(clip), "-o", str(work / "an"), "--overwrite", "--json"]}
    if name not in ANALYZE_ONLY:
        for codec in args.codecs:
            common = ["--codec", codec, "--preset", args.preset, "--bitrate", rate, "--overwrite", "--json"]
            jobs[f"{codec} plain"] = cli + ["encode", str(clip), "-o", str(work / f"plain_{codec}.mp4"),
                                            "--no-assist", *common]
            jobs[f"{codec} assisted"] = cli + ["encode", str(clip), "-o", str(work / f"asst_{codec}.mp4"), *common]
            # the analysis before the encode, not beside it (every encode's default since x264 runs on frame
            # threads; an older tree's x264 default overlapped on 720p over 16 s)
            jobs[f"{codec} serial"] = cli + ["encode", str(clip), "-o", str(work / f"serial_{codec}.mp4"),
                                             "--no-overlap", *common]
    if args.only:
        jobs = {k: v for k, v in jobs.items() if k in args.only}
    cells: dict[str, dict[str, list[dict]]] = {label: {} for label in trees}
    for k in range(args.repeat):  # interleaved: plain and assisted (and each tree) see the same machine load
        for job, cmd in jobs.items():
            for label, root in trees.items():
                env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
                r = run_child(cmd, env, root)
                r["stages"], r["in_process_s"] = stages_of(r.pop("stdout"))
                cells[label].setdefault(job, []).append(r)
                print(f"{name} {label:<7} {job:<14} run {k + 1}: {r['wall_s']:6.2f}s  peak RSS "
                      f"{r['peak_rss_mib']:6.0f} MiB  rc={r['rc']}", file=sys.stderr)
    return {label: summarise(name, size, seconds, rate, c, args.codecs) for label, c in cells.items()}


def summarise(name: str, size: str, seconds: float, rate: str, cells: dict[str, list[dict]], codecs: list[str]
              ) -> dict:
    best = {job: min(runs, key=lambda r: r["wall_s"]) for job, runs in cells.items()}
    row = {"clip": name, "size": size, "duration_s": seconds, "rate": rate, "runs": cells,
           "best_wall_s": {job: b["wall_s"] for job, b in best.items()},
           "peak_rss_mib": {job: max(r["peak_rss_mib"] for r in runs) for job, runs in cells.items()},
           "analyze_realtime_x": seconds / best["analyze"]["wall_s"] if "analyze" in best else None}
    inproc = [r["in_process_s"] for r in cells.get("analyze", []) if r.get("in_process_s")]
    if inproc:  # the analysis alone, inside the process (no interpreter start-up, imports before it)
        row["analyze_in_process_s"] = min(inproc)
        row["analyze_in_process_realtime_x"] = seconds / min(inproc)
        row["analyze_stages"] = min((r for r in cells["analyze"] if r.get("in_process_s")),
                                    key=lambda r: r["in_process_s"]).get("stages")
    for codec in codecs:
        if f"{codec} plain" in best and f"{codec} assisted" in best:
            row[f"{codec}_ratio"] = best[f"{codec} assisted"]["wall_s"] / best[f"{codec} plain"]["wall_s"]
            row[f"{codec}_assisted_stages"] = best[f"{codec} assisted"].get("stages")
        if f"{codec} plain" in best and f"{codec} serial" in best:
            row[f"{codec}_serial_ratio"] = best[f"{codec} serial"]["wall_s"] / best[f"{codec} plain"]["wall_s"]
    return row


def table(rows: list[dict], codecs: list[str], repeat: int) -> str:
    head = ["clip", "size", "clip s", "analyze s (cold process)", "× real time", "analysis in process s",
            "× real time"]
    for c in codecs:
        head += [f"{c} plain s", f"{c} assisted s", f"{c} ratio"]
    head += ["peak RSS plain / assisted MiB (x264)"]
    lines = [f"best of {repeat}, cold CLI processes; peak RSS: the largest of the runs", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        b = r["best_wall_s"]
        cells = [r["clip"], r["size"], f"{r['duration_s']:.1f}"]
        cells += [f"{b['analyze']:.2f}", f"{r['analyze_realtime_x']:.2f}"] if "analyze" in b else ["–", "–"]
        cells += ([f"{r['analyze_in_process_s']:.2f}", f"{r['analyze_in_process_realtime_x']:.2f}"]
                  if r.get("analyze_in_process_s") else ["–", "–"])
        for c in codecs:
            if f"{c}_ratio" in r:
                cells += [f"{b[f'{c} plain']:.2f}", f"{b[f'{c} assisted']:.2f}", f"{r[f'{c}_ratio']:.2f}×"]
            else:
                cells += ["–", "–", "–"]
        rss = r["peak_rss_mib"]
        shown = [f"{rss[k]:.0f}" if k in rss else "–" for k in ("x264 plain", "x264 assisted")]
        cells.append(" / ".join(shown) if any(k in rss for k in ("x264 plain", "x264 assisted"))
                     else f"analyze {rss['analyze']:.0f}" if "analyze" in rss else "–")
        lines.append("| " + " | ".join(cells) + " |")
    serial = [f"- {r['clip']} {c}: analysis before the encode (--no-overlap) {r['best_wall_s'][f'{c} serial']:.2f} s = "
              f"{r[f'{c}_serial_ratio']:.2f}× plain" for r in rows for c in codecs if f"{c}_serial_ratio" in r]
    if serial:
        lines += ["", "The same assisted encode with the whole analysis first (best of the same runs):", "", *serial]
    staged = [(r["clip"], c, r.get(f"{c}_assisted_stages")) for r in rows for c in codecs if r.get(f"{c}_assisted_stages")]
    staged += [(r["clip"], "analyze", r["analyze_stages"]) for r in rows if r.get("analyze_stages")]
    if staged:
        lines += ["", "Where the assisted encode's time went (seconds, best run, from its report):", ""]
        for clip, c, st in staged:
            lines.append(f"- {clip} {c}: " + ", ".join(f"{k} {v:.2f}" for k, v in flatten(st).items()))
    return "\n".join(lines)


def flatten(st: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in st.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and v is not None:
            out[f"{prefix}{k}"] = float(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
