"""`codec-assist batch`: one command over every video in a folder, in parallel, resumable.

One task per video runs the Python API (analyze, or analyze + plan + encode) on the chosen engine (a local
process pool, or Ray: local or a cluster; see codec_assist/engine.py and docs/SCALING.md). A manifest (JSON,
schema `codec-assist/batch-manifest`) in the output folder records each item's status, outputs with their
sha256, attempts and error; it is rewritten atomically after every item, so a killed batch leaves a valid one.

Re-running the same command skips items whose outputs are verified (present, sha256 as recorded, same
options and unchanged input), redoes the rest, and deletes temporary files a killed run left (`.*.part`,
`.*.chunks-*`). Outputs appear whole (written to a temp file, renamed) and only inside the output folder;
a failed item leaves none, and one bad video fails alone with its error in the manifest.

Adding a command (e.g. `tag`) is one entry in COMMANDS: output suffixes, the options from the CLI, the runner.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from codec_assist import __version__
from codec_assist.scale.engine import EngineOptions, add_engine_knobs, engine_options, run_tasks
from codec_assist.errors import CodecAssistError
from codec_assist.schemas import BatchItem, BatchManifest, BatchOutput

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".flv", ".wmv", ".3gp", ".ogv", ".y4m"}
MANIFEST = "manifest.json"
LOCK = ".codec-assist-batch.lock"


# ------------------------------------------------------------------------------------------- commands
def _encode_options(args) -> dict:
    """JSON-able options of an encode item (also what the fingerprint is made of)."""
    from codec_assist.cli import _plan_options
    from codec_assist.encoding.x26x import check_request, parse_params
    from codec_assist.schemas import RateControl

    rate = (RateControl(mode="abr", bitrate=args.bitrate) if args.bitrate
            else RateControl(mode="crf", crf=23.0 if args.crf is None else args.crf))
    params = parse_params(args.params)
    check_request(args.codec, rate, args.preset, params, assisted=not args.no_assist)  # fail once, not per item
    options = {"rate": rate.model_dump(), "codec": args.codec, "preset": args.preset, "params": params,
               "assist": not args.no_assist}
    if not args.no_assist:  # a plain encode does not depend on the analysis knobs
        options.update(_analysis_part(args), plan=_plan_options(args, args.codec).model_dump())
    return options


def _analysis_part(args) -> dict:
    import analyzers
    from codec_assist.cli import _analyze_options

    opts = _analyze_options(args)
    unknown = [n for n in opts.analyzers if n not in analyzers.ANALYZERS]
    if unknown:
        raise CodecAssistError(f"unknown analyzer {', '.join(unknown)} (valid: {', '.join(analyzers.ANALYZERS)})")
    return {"analyze": opts.model_dump()}


def _run_encode(inp: Path, outs: list[Path], o: dict, threads: int) -> dict:
    from codec_assist.encoding.x26x import encode
    from codec_assist.analysis.pipeline import AnalyzeOptions, PlanOptions, analyze, make_plan
    from codec_assist.schemas import RateControl

    plan = plan_arrays = None
    if o["assist"]:
        analysis, arrays = analyze(inp, AnalyzeOptions(**o["analyze"]))
        plan, plan_arrays = make_plan(analysis, arrays, PlanOptions(**o["plan"]))
    r = encode(inp, outs[0], codec=o["codec"], rate=RateControl(**o["rate"]), preset=o["preset"], plan=plan,
               plan_arrays=plan_arrays, params=o["params"], threads=threads,
               overwrite=True)  # OUT_DIR is the batch's: an item that is redone replaces its own stale output
    return {"frames": r.frames, "bitrate_kbps": round(r.bitrate_kbps, 2), "seconds_encode": round(r.seconds_encode, 3)}


def _run_analyze(inp: Path, outs: list[Path], o: dict, threads: int) -> dict:
    from codec_assist import schemas
    from codec_assist.analysis.pipeline import AnalyzeOptions, analyze

    analysis, arrays = analyze(inp, AnalyzeOptions(**o["analyze"]))
    schemas.save(analysis, outs[0], arrays)  # npz first, then the JSON: the JSON's presence means complete
    return {"frames": analysis.video.frame_count, "shots": len(analysis.shots), "tokens": len(analysis.tokens)}


@dataclass(frozen=True)
class BatchCommand:
    suffixes: tuple[str, ...]  # output files per input: <input's relative path without suffix> + each suffix
    options: Callable[[Any], dict]  # parsed CLI args -> JSON-able options (validated once, before any task)
    run: Callable[[Path, list[Path], dict, int], dict]  # (input, outputs, options, threads) -> small summary


COMMANDS: dict[str, BatchCommand] = {
    "encode": BatchCommand((".mp4",), _encode_options, _run_encode),
    "analyze": BatchCommand((".analysis.json", ".analysis.npz"), _analysis_part, _run_analyze),
}


# ------------------------------------------------------------------------------------------ the task
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_item(command: str, input_path: str, output_paths: list[str], options: dict, threads: int) -> dict:
    """One item, in a worker: run the command, checksum its outputs. Expected failures come back as a result."""
    t = time.perf_counter()
    outs = [Path(p) for p in output_paths]
    try:
        summary = COMMANDS[command].run(Path(input_path), outs, options, threads)
        outputs = [{"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in outs]
        return {"status": "done", "outputs": outputs, "summary": summary, "seconds": time.perf_counter() - t,
                "error": ""}
    except CodecAssistError as e:
        error = " ".join(str(e).split())
    except Exception as e:  # noqa: BLE001 - one bad video must not stop the batch
        error = f"internal error: {type(e).__name__}: {' '.join(str(e).split())}"[:500]
    for p in outs:  # a failed item leaves no output (not even a complete npz without its JSON)
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return {"status": "failed", "outputs": [], "summary": {}, "seconds": time.perf_counter() - t, "error": error}


# ---------------------------------------------------------------------------------------- the driver
def discover(input_dir: Path, skip: Path | None = None) -> list[Path]:
    """Video files under `input_dir` (by suffix; hidden files and folders, and `skip`, left out), sorted,
    as paths relative to it. Symlinked folders are not followed (no loops); symlinked files are read."""
    found = []
    skip_r = skip.resolve() if skip else None
    for root, dirs, files in os.walk(input_dir, followlinks=False):
        r = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (r / d).resolve() != skip_r)
        found += [(r / f).relative_to(input_dir) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES]
    return sorted(found)


def output_names(rels: list[Path], suffixes: tuple[str, ...]) -> dict[Path, list[Path]]:
    """Relative output paths per input: its path without the suffix + each output suffix; where two inputs
    would share a name (a.mp4, a.mkv), both keep their suffix (a.mp4.mp4, a.mkv.mp4)."""
    stems: dict[Path, int] = {}
    for rel in rels:
        stems[rel.with_suffix("")] = stems.get(rel.with_suffix(""), 0) + 1
    out = {}
    for rel in rels:
        base = rel.with_suffix("") if stems[rel.with_suffix("")] == 1 else rel
        out[rel] = [base.with_name(base.name + s) for s in suffixes]
    return out


def inside(path: Path, folder: Path) -> bool:
    """Whether `path`, with every symlink on the way resolved, lies inside `folder`."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def fingerprint(command: str, options: dict, input_path: Path) -> str:
    st = input_path.stat()
    blob = json.dumps({"command": command, "options": options, "input": [st.st_size, st.st_mtime_ns],
                       "codec-assist": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def verified(item: BatchItem | None, fp: str, out_dir: Path, expected: list[Path]) -> bool:
    """Done before with the same fingerprint, and every output (exactly the `expected` relative paths: a
    manifest is a file anyone could have edited) still there with its recorded checksum."""
    if item is None or item.status != "done" or item.fingerprint != fp or not item.outputs:
        return False
    if [o.path for o in item.outputs] != [p.as_posix() for p in expected]:
        return False
    for o in item.outputs:
        p = out_dir / o.path
        if not p.is_file() or p.stat().st_size != o.bytes or sha256_file(p) != o.sha256:
            return False
    return True


def clean_temporaries(out_dir: Path) -> int:
    """Delete what a killed run left: atomic-write temp files (.NAME.XXXX.EXT.part) and chunk folders."""
    n = 0
    for root, dirs, files in os.walk(out_dir, followlinks=False):
        for d in [d for d in dirs if d.startswith(".") and ".chunks-" in d]:
            shutil.rmtree(Path(root) / d, ignore_errors=True)
            dirs.remove(d)
            n += 1
        for f in files:
            if f.startswith(".") and f.endswith(".part"):
                with contextlib.suppress(FileNotFoundError):
                    (Path(root) / f).unlink()
                n += 1
    return n


@contextlib.contextmanager
def _locked(out_dir: Path):
    """One batch per output folder at a time (a second one would delete the first one's temp files)."""
    lock = out_dir / LOCK
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid, _, host = lock.read_text().partition(" ")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                lock.unlink(missing_ok=True)  # stale: its batch was killed
                continue
            raise CodecAssistError(f"another batch ({lock.read_text().strip()}) is writing to {out_dir}; "
                                   f"wait for it, or delete {lock} if it is gone") from None
    else:
        raise CodecAssistError(f"cannot take the lock {lock}")
    try:
        os.write(fd, me.encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def run_batch(input_dir: str | Path, output_dir: str | Path, command: str, options: dict,
              engine: EngineOptions | None = None, manifest_path: str | Path | None = None,
              progress: bool = False) -> BatchManifest:
    """Run `command` over every video under `input_dir` into `output_dir`; return the final manifest."""
    from tqdm import tqdm

    from codec_assist import schemas

    engine = engine or EngineOptions()
    spec = COMMANDS[command]
    src, out = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise CodecAssistError(f"input folder {src} does not exist or is not a folder")
    if out.exists() and not out.is_dir():
        raise CodecAssistError(f"output {out} exists and is not a folder")
    if out.resolve() == src.resolve():
        raise CodecAssistError("the output folder must differ from the input folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(manifest_path) if manifest_path else out / MANIFEST
    t0 = time.perf_counter()
    with _locked(out):
        clean_temporaries(out)
        previous: dict[str, BatchItem] = {}
        if manifest_path.exists():
            old, _ = schemas.load(BatchManifest, manifest_path)
            previous = {i.input: i for i in old.items if old.command == command}
        rels = discover(src, skip=out)
        names = output_names(rels, spec.suffixes)
        manifest = BatchManifest(command=command, input_dir=str(src), output_dir=str(out), options=options,
                                 engine=engine.engine if not engine.address else f"ray {engine.address}",
                                 workers=engine.workers)
        tasks: dict[int, tuple] = {}
        for rel in rels:
            key = rel.as_posix()
            prev = previous.get(key)
            fp = fingerprint(command, options, src / rel)
            if verified(prev, fp, out, names[rel]):
                manifest.items.append(prev)
                manifest.reused += 1
                continue
            item = BatchItem(input=key, fingerprint=fp, attempts=prev.attempts if prev else 0)
            manifest.items.append(item)
            targets = [out / n for n in names[rel]]
            escaped = [t for t in targets if not inside(t.parent, out) or (t.is_symlink() or not inside(t, out))]
            if escaped:
                item.status, item.error = "failed", f"output {escaped[0]} would lie outside {out}; not written"
                continue
            targets[0].parent.mkdir(parents=True, exist_ok=True)
            for t in targets:  # a stale or tampered output of an earlier run: redo means replace (the encoder
                if t.is_file():  # refuses an existing output, and the failed item would then delete it)
                    t.unlink()
            tasks[len(manifest.items) - 1] = (command, str(src / rel), [str(t) for t in targets], options,
                                              engine.threads())
        schemas.save(manifest, manifest_path)
        bar = tqdm(total=len(tasks), unit="video", desc=f"batch {command}", disable=not progress)

        def done(index: int, result: dict | None, error: str | None) -> None:
            item = manifest.items[index]
            item.attempts += 1
            if error is not None:  # the worker died for good, or the task raised what it should have caught
                result = {"status": "failed", "outputs": [], "summary": {}, "seconds": 0.0, "error": error}
            item.status, item.error = result["status"], result["error"]
            item.summary, item.seconds = result["summary"], round(result["seconds"], 3)
            item.outputs = [BatchOutput(path=Path(o["path"]).relative_to(out).as_posix(), sha256=o["sha256"],
                                        bytes=o["bytes"]) for o in result["outputs"]]
            manifest.seconds = time.perf_counter() - t0
            schemas.save(manifest, manifest_path)  # atomically, after every item
            bar.update()

        try:
            run_tasks(run_item, tasks, engine, done)
        finally:
            bar.close()
            clean_temporaries(out)
        manifest.seconds = time.perf_counter() - t0
        schemas.save(manifest, manifest_path)
    return manifest


# ------------------------------------------------------------------------------------------------ CLI
def register(sub) -> None:
    from codec_assist.cli import FMT, add_analysis_knobs, add_codec_knobs, add_plan_knobs, parse_crf, parse_rate

    b = sub.add_parser(
        "batch", formatter_class=FMT,
        help="run encode or analyze over every video in a folder, in parallel (local processes or Ray), resumable",
        description="One task per video under INPUT_DIR (searched recursively), outputs under OUT_DIR at the same "
        "relative paths, a manifest (OUT_DIR/manifest.json) with each item's status, outputs and sha256. "
        "Re-running the same command skips verified items, redoes changed or failed ones, and cleans up what a "
        "killed run left. A bad video fails alone (exit 2 at the end, its error in the manifest).")
    b.add_argument("input_dir", help="folder of videos (searched recursively)")
    b.add_argument("-o", "--output", required=True, help="output folder (created; outputs never go outside it)")
    b.add_argument("--command", choices=list(COMMANDS), default="encode", help="what to do with each video")
    b.add_argument("--manifest", help=f"manifest path (default OUT_DIR/{MANIFEST})")
    b.add_argument("--json", action="store_true", help="print the manifest as JSON")
    rate = b.add_mutually_exclusive_group()
    rate.add_argument("--bitrate", type=parse_rate, help="encode: target bitrate (ABR), e.g. 400k")
    rate.add_argument("--crf", type=parse_crf, help="encode: constant rate factor (default 23 when no --bitrate)")
    add_codec_knobs(b)
    b.add_argument("--no-assist", action="store_true", help="encode: plain encode (no analysis, ROI or forced IDRs)")
    add_analysis_knobs(b)
    add_plan_knobs(b)
    add_engine_knobs(b)
    b.set_defaults(handler=cmd_batch)


def cmd_batch(args) -> int:
    engine = engine_options(args)
    options = COMMANDS[args.command].options(args)
    manifest = run_batch(args.input_dir, args.output, args.command, options, engine, args.manifest,
                         progress=not args.quiet)
    failed = [i for i in manifest.items if i.status != "done"]
    where = args.manifest or str(Path(args.output) / MANIFEST)
    if args.json:
        print(manifest.model_dump_json(indent=2, by_alias=True))
    else:
        done = len(manifest.items) - len(failed)
        print(f"{args.command}: {done} of {len(manifest.items)} done ({manifest.reused} verified from an earlier run), "
              f"{len(failed)} failed, "
              f"{manifest.seconds:.1f}s on {manifest.engine} x{manifest.workers} -> {where}")
        for i in failed:
            print(f"  failed: {i.input}: {i.error}")
    if failed:
        raise CodecAssistError(f"{len(failed)} of {len(manifest.items)} items failed; their errors are in {where}")
    return 0
