"""Run independent tasks in parallel on an existing engine: local processes or Ray. One task function for both.

- "local": `concurrent.futures.ProcessPoolExecutor` with the spawn start method (no forked FFmpeg/ONNX state),
  `workers` processes, each capped to `threads` threads and, when asked, to an address-space limit.
- "ray": `ray.remote` tasks with `num_cpus` and `memory` reserved per task; `ray.init(address=...)` joins a
  cluster, no address starts a private local Ray with `num_cpus=workers`. Ray retries a task whose worker
  died (`max_retries`); the local engine does the same by restarting its pool.

A task function must be importable by module path (the workers import it), take picklable arguments, catch
its own expected errors and return a small picklable result. What reaches `on_done` as an error is what the
function did not catch, or a worker that died more than `retries` times.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codec_assist.errors import CodecAssistError

ROOT = Path(__file__).resolve().parents[2]  # the folder holding codec_assist/, for local Ray workers


def cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_memory(text: str) -> int:
    """'2G', '512M', '1.5GiB', '800000000' -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not m:
        raise ValueError(f"memory {text!r} is not a size like 512M or 2G")
    value = int(float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper()))
    if value < 64 * 1024 ** 2:
        raise ValueError(f"memory {text!r} is too small (at least 64M)")
    return value


class EngineOptions(BaseModel):
    """Where parallel tasks (batch items, chunks) run: a local process pool or Ray."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    engine: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1)  # tasks at once (for a Ray cluster: at most this many in flight)
    address: str | None = None  # Ray cluster address ("auto", "ray://host:10001", "host:6379"); None: local Ray
    cpus_per_task: float | None = Field(None, gt=0)  # None: this machine's cores / workers (at least 1)
    memory_per_task: int | None = Field(None, ge=64 * 1024 ** 2)  # bytes; None: no limit
    retries: int = Field(2, ge=0)  # re-runs of a task whose worker died

    @model_validator(mode="after")
    def _address_means_ray(self) -> "EngineOptions":
        if self.address and self.engine != "ray":
            object.__setattr__(self, "engine", "ray")
        return self

    def cpus(self) -> float:
        if self.cpus_per_task:
            return self.cpus_per_task
        if self.address:
            return 1.0  # a cluster's nodes differ from this one; say --cpus-per-task to reserve more
        return float(max(1, cores() // max(1, self.workers)))

    def threads(self) -> int:
        """Threads each task's encoder/decoder may use: its CPU share, so parallel tasks don't oversubscribe."""
        return max(1, int(self.cpus()))


# --------------------------------------------------------------------------------------------- in workers
@contextlib.contextmanager
def warnings_returned() -> Iterator[list[str]]:
    """A task runs in a worker process, where nothing prints warnings the CLI's way ("codec-assist: warning:",
    once per run): collect them there and return them with the result; the parent logs them."""
    logger = logging.getLogger("codec_assist")
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler, propagate = Keep(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def limit_threads(threads: int, memory: int | None = None) -> None:
    """Cap the libraries that spawn their own thread pools (OpenCV, torch, BLAS/OpenMP) to `threads`."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import cv2

    cv2.setNumThreads(threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if memory:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


_started = None  # local workers: a queue on which each task announces itself, to tell who a dead worker ran


def _local_init(threads: int, memory: int | None, started) -> None:
    global _started
    _started = started
    limit_threads(threads, memory)


def _local_call(key, fn: Callable, args: tuple, threads: int) -> Any:
    _started.put(key)
    return call(fn, args, threads)


def call(fn: Callable, args: tuple, threads: int) -> Any:
    """What a worker runs: the task with its thread cap (the same wrapper on both engines)."""
    limit_threads(threads)
    return fn(*args)


# ---------------------------------------------------------------------------------------------- drivers
OnDone = Callable[[Hashable, Any, "str | None"], None]


def run_tasks(fn: Callable, tasks: dict[Hashable, tuple], options: EngineOptions, on_done: OnDone) -> None:
    """Run fn(*args) for every task; call on_done(key, result, None) or on_done(key, None, error) as each ends."""
    if not tasks:
        return
    if options.engine == "ray":
        _run_ray(fn, tasks, options, on_done)
    else:
        _run_local(fn, tasks, options, on_done)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, CodecAssistError) else f"{type(e).__name__}: {text}"[:500]


def _run_local(fn, tasks, options: EngineOptions, on_done: OnDone) -> None:
    import multiprocessing
    import queue
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = options.threads()
    pending = dict(tasks)
    deaths: dict[Hashable, int] = {}
    ctx = multiprocessing.get_context("spawn")
    while pending:
        started = ctx.Queue()
        began: set = set()

        def drain(wait: float = 0.0) -> None:  # read as we go: a full pipe would stall the workers' exit
            while True:
                try:
                    began.add(started.get(timeout=wait) if wait else started.get_nowait())
                except queue.Empty:
                    return

        # A worker that dies (killed, out of memory) breaks the whole pool: every unfinished task gets
        # BrokenProcessPool. Those that had started are charged a death; all go round again in a fresh pool.
        with ProcessPoolExecutor(max_workers=min(options.workers, len(pending)),
                                 mp_context=ctx, initializer=_local_init,
                                 initargs=(threads, options.memory_per_task, started)) as pool:
            futures = {pool.submit(_local_call, key, fn, args, threads): key for key, args in pending.items()}
            broken: list[Hashable] = []
            for fut in as_completed(futures):
                key = futures[fut]
                drain()
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken.append(key)
                    continue
                except Exception as e:  # noqa: BLE001 - the task's own uncaught error: report, don't stop
                    pending.pop(key)
                    on_done(key, None, _one_line(e))
                    continue
                pending.pop(key)
                on_done(key, result, None)
        drain(wait=0.1)
        started.close()
        for key in [k for k in broken if k in began] or broken:
            deaths[key] = deaths.get(key, 0) + 1
            if deaths[key] > options.retries:
                pending.pop(key)
                on_done(key, None, f"worker died {deaths[key]} times (killed or out of memory)")


def _check_reachable(address: str) -> None:
    """Fail in seconds with one line on an unreachable host:port (Ray itself retries for minutes)."""
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if not m:
        return  # "auto", "local", ...: Ray resolves these itself
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=5).close()
    except OSError as e:
        raise CodecAssistError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})") from None


def _run_ray(fn, tasks, options: EngineOptions, on_done: OnDone) -> None:
    try:
        import ray
    except ImportError:
        raise CodecAssistError("--engine ray needs Ray: pip install 'codec-assist[scale]'") from None
    from ray.exceptions import RayError, RayTaskError

    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                                      configure_logging=True)
        if options.address:
            _check_reachable(options.address)
            kwargs["address"] = options.address
        else:
            # A private local Ray sized to the workers. Its workers inherit this environment: put this checkout on
            # their path (a runtime_env would do the same through Ray's agent, ~20 s slower to start here).
            kwargs["num_cpus"] = max(1, round(options.workers * options.cpus()))
            paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if str(ROOT) not in paths:
                os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), *paths]))
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise CodecAssistError(f"cannot start or join Ray ({_one_line(e)})") from None
    try:
        threads = options.threads()
        remote_opts: dict[str, Any] = dict(num_cpus=options.cpus(), max_retries=options.retries,
                                           retry_exceptions=False)
        if options.memory_per_task:
            remote_opts["memory"] = options.memory_per_task
        remote = ray.remote(call).options(**remote_opts)
        queue = list(tasks.items())
        running: dict = {}
        while queue or running:
            while queue and len(running) < options.workers:
                key, args = queue.pop(0)
                running[remote.remote(fn, args, threads)] = key
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                key = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as e:  # the task raised: report its own error, one line
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    on_done(key, None, _one_line(cause))
                except RayError as e:  # worker died more than max_retries times, node lost, ...
                    on_done(key, None, f"{type(e).__name__}: " + " ".join(str(e).split())[:300])
                else:
                    on_done(key, result, None)
    finally:
        if started_here:
            ray.shutdown()
