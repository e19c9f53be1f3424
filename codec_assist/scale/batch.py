"""`codec-assist batch`: one command over every video in a folder, in parallel, resumable.

One task per video runs the Python API (analyze, or analyze + plan + encode) on the chosen engine (a local
process pool, or Ray: local or a cluster; see codec_assist/scale/engine.py and docs/SCALING.md). A manifest (JSON,
schema `codec-assist/batch-manifest`) in the output folder records each item's status, outputs with their
sha256, attempts and error; it is rewritten atomically after every item, so a killed batch leaves a valid one.

Re-running the same command skips items whose outputs are verified (present, sha256 as recorded, same
options and unchanged input), redoes the rest, and deletes temporary files a killed run left (`.*.part`,
`.*.chunks-*`). Outputs appear whole (written to a temp file, renamed) and only inside the output folder;
a failed item leaves none, and one bad video fails alone with its error in the manifest.

Adding a command (e.g. `tag`) is one entry in COMMANDS: output suffixes and the runner; `batch_options` builds
the JSON-able options (the limits included, so every worker enforces them).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from codec_assist import __version__
import codec_assist.media.decode as media
from codec_assist.scale.engine import EngineOptions, run_tasks, warnings_returned
from codec_assist.errors import CodecAssistError
from codec_assist.schemas import BatchItem, BatchManifest, BatchOutput

MANIFEST = "manifest.json"
LOCK = ".codec-assist-batch.lock"

log = logging.getLogger("codec_assist")


# ------------------------------------------------------------------------------------------- commands
def batch_options(command: str, *, rate=None, codec: str = "x264", preset: str = "medium",
                  params: dict[str, str] | None = None, assist: bool = True, analyze_options=None,
                  plan_options=None, limits: media.Limits = media.DEFAULT_LIMITS) -> dict:
    """The JSON-able options of every item of `command` (also what the fingerprint is made of), checked once
    here rather than failing in every item."""
    import analyzers
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.planning.plan import PlanOptions
    from codec_assist.encoding.x26x import check_request
    from codec_assist.schemas import RateControl

    if command not in COMMANDS:
        raise CodecAssistError(f"unknown batch command {command!r} (choose from {', '.join(COMMANDS)})")
    options: dict[str, Any] = {"limits": limits.model_dump()}
    if command == "encode":
        rate = rate or RateControl(mode="crf", crf=23.0)
        params = dict(params or {})
        check_request(codec, rate, preset, params, assisted=assist)
        options.update(rate=rate.model_dump(), codec=codec, preset=preset, params=params, assist=assist)
        if not assist:  # a plain encode does not depend on the analysis knobs
            return options
        options["plan"] = (plan_options or PlanOptions()).model_copy(update={"codec": codec}).model_dump()
    a = analyze_options or AnalyzeOptions()
    unknown = [n for n in a.analyzers if n not in analyzers.ANALYZERS]
    if unknown:
        raise CodecAssistError(f"unknown analyzer {', '.join(unknown)} (valid: {', '.join(analyzers.ANALYZERS)})")
    if command == "encode" and "for_plan" not in a.model_fields_set:
        a = a.model_copy(update={"for_plan": True})  # as `encode` does: skip what cannot change the plan
    # asr only when the caller set it: left out, a for-plan analysis may skip Whisper (unused_analyzers)
    options["analyze"] = a.model_dump(exclude=set() if "asr" in a.model_fields_set else {"asr"})
    return options


def _limits(o: dict) -> media.Limits:
    return media.Limits.model_validate(o.get("limits") or {})


def _run_encode(inp: Path, outs: list[Path], o: dict, threads: int) -> dict:
    from codec_assist.encoding.x26x import encode
    from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
    from codec_assist.planning.plan import PlanOptions, make_plan
    from codec_assist.schemas import RateControl

    plan = plan_arrays = None
    limits = _limits(o)
    if o["assist"]:
        analysis, arrays = analyze(inp, AnalyzeOptions(**o["analyze"]), limits=limits)
        plan, plan_arrays = make_plan(analysis, arrays, PlanOptions(**o["plan"]))
    r = encode(inp, outs[0], codec=o["codec"], rate=RateControl(**o["rate"]), preset=o["preset"], plan=plan,
               plan_arrays=plan_arrays, params=o["params"], threads=threads, limits=limits,
               overwrite=True)  # OUT_DIR is the batch's: an item that is redone replaces its own stale output
    return {"frames": r.frames, "bitrate_kbps": round(r.bitrate_kbps, 2), "seconds_encode": round(r.seconds_encode, 3)}


def _run_analyze(inp: Path, outs: list[Path], o: dict, threads: int) -> dict:
    from codec_assist import schemas
    from codec_assist.analysis.pipeline import AnalyzeOptions, analyze

    analysis, arrays = analyze(inp, AnalyzeOptions(**o["analyze"]), limits=_limits(o))
    schemas.save(analysis, outs[0], arrays)  # npz first, then the JSON: the JSON's presence means complete
    return {"frames": analysis.video.frame_count, "shots": len(analysis.shots), "tokens": len(analysis.tokens)}


ENCODE_CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv")  # an encode keeps one of these; other inputs become .mp4


@dataclass(frozen=True)
class BatchCommand:
    suffixes: Callable[[Path], tuple[str, ...]]  # input -> output suffixes (appended to its path sans suffix)
    run: Callable[[Path, list[Path], dict, int], dict]  # (input, outputs, options, threads) -> small summary


def _encode_suffixes(rel: Path) -> tuple[str, ...]:
    suffix = rel.suffix.lower()
    return (suffix if suffix in ENCODE_CONTAINERS else ".mp4",)


COMMANDS: dict[str, BatchCommand] = {
    "encode": BatchCommand(_encode_suffixes, _run_encode),
    "analyze": BatchCommand(lambda rel: (".analysis.json", ".analysis.npz"), _run_analyze),
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
        with warnings_returned() as warnings:
            summary = COMMANDS[command].run(Path(input_path), outs, options, threads)
        outputs = [{"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in outs]
        return {"status": "done", "outputs": outputs, "summary": summary, "seconds": time.perf_counter() - t,
                "error": "", "warnings": warnings}
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
                  if not f.startswith(".") and Path(f).suffix.lower() in media.VIDEO_SUFFIXES]
    return sorted(found)


def output_names(rels: list[Path], suffixes: Callable[[Path], tuple[str, ...]]) -> dict[Path, list[Path]]:
    """Relative output paths per input: its path without the suffix + each output suffix; where two inputs
    would share a name (a.avi, a.webm -> a.mp4), both keep their suffix (a.avi.mp4, a.webm.mp4)."""
    plain = {rel: [rel.with_suffix("").with_name(rel.with_suffix("").name + s) for s in suffixes(rel)]
             for rel in rels}
    count: dict[Path, int] = {}
    for names in plain.values():
        for n in names:
            count[n] = count.get(n, 0) + 1
    return {rel: names if all(count[n] == 1 for n in names) else [rel.with_name(rel.name + s) for s in suffixes(rel)]
            for rel, names in plain.items()}


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


def _own_output(item: BatchItem | None, fp: str) -> bool:
    """Whether an existing output is this batch's own: made by the same command, options and input (a stale
    or tampered copy is redone and replaced; anything else needs --overwrite)."""
    return item is not None and item.fingerprint == fp


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
              progress: bool = False, overwrite: bool = False) -> BatchManifest:
    """Run `command` over every video under `input_dir` into `output_dir` with `options` (from
    `batch_options`); return the final manifest. Outputs this batch did not make with these options (another
    run's, with other options or of another input) are kept unless `overwrite`."""
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
        renamed = [f"{r.as_posix()} -> {names[r][0].as_posix()}" for r in rels
                   if command == "encode" and names[r][0].suffix != r.suffix]
        if renamed:
            log.warning("%d input(s) in containers an encode does not write are encoded to MP4: %s%s",
                        len(renamed), ", ".join(renamed[:3]), ", ..." if len(renamed) > 3 else "")
        if not overwrite:  # an earlier run's output that this run would replace: only with --overwrite
            kept = [out / n for r in rels for n in names[r] if (out / n).is_file()
                    and not _own_output(previous.get(r.as_posix()), fingerprint(command, options, src / r))]
            if kept:
                raise CodecAssistError(f"{kept[0]} exists from an earlier run with other options or another "
                                       f"input ({len(kept)} such output(s)); pass --overwrite to replace them")
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
            for message in result.get("warnings", []):
                log.warning("%s", message)  # the CLI prints each distinct one once
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
