"""Analysis work in a forked child process, so that what it loads leaves with it (issue 16: flat memory).

The analysis imports ONNX Runtime, LiteRT, the OCR and the audio libraries and loads their models. Freeing the
models afterwards (models.release_models) still left the process ~120 MiB larger when the encoder started: the
libraries stay mapped and the allocator keeps the freed heap in pieces (60 s of 720p, x264 medium 1000k: 438-446
MiB during the encode, against 319-325 MiB for the plain encode). A child that exits takes all of it along, so
the encode's peak is the larger of the analysis's and the plain encode's, not their sum.

The child's result comes back through a pipe; per-frame arrays that live in FrameStores (long videos spill
them to disk) come frame by frame into the parent's own FrameStores, so a long film's maps never sit whole
in the pipe or in memory. The overlapped encode (encoding.overlapped) runs its segmented analysis in a child
of the same kind.
"""
from __future__ import annotations

import gc
import logging
import logging.handlers
import multiprocessing
import os
import signal
import threading
from typing import Any, Callable

import numpy as np

from codec_assist.errors import CodecAssistError
from codec_assist.framestore import FrameStack, FrameStore


def can_fork() -> bool:
    """Whether a forked child is possible here: Linux-style fork, and not inside a daemonic process (a
    multiprocessing worker), which may not start children."""
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def die_with_parent(parent: int) -> None:
    """The child ends with its parent: SIGTERM and SIGHUP do what they do by default here (the CLI's handlers,
    inherited through the fork, would raise in the middle of a model call), and the kernel sends SIGKILL when the
    parent dies however it dies (even by SIGKILL, which runs no clean-up). Linux only; elsewhere the parent's
    terminate() on its way out is all there is."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def enter_child(parent: int) -> None:
    """What a forked analysis child does first: end with its parent, and leave alone the models the parent had
    loaded (an earlier analysis in the same Python process), whose thread pools did not survive the fork."""
    from codec_assist.models import forget_inherited_models

    die_with_parent(parent)
    forget_inherited_models()


def start_child(child) -> None:
    """Start a forked child with the parent's objects out of the cyclic GC's reach while it forks: a collection
    in the child would write to every object the parent made (their GC headers), copying each page it shares."""
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()


def run_forked(work: Callable[..., tuple[Any, list[dict[str, Any]]]], *args: Any,
               name: str = "codec-assist-analysis") -> tuple[Any, list[dict[str, Any]]]:
    """`work(*args)` in a forked child; it returns (a picklable value, a list of array dicts). Returns the same
    here, with every FrameStack of the dicts rebuilt in this process's FrameStores. An exception in the child is
    raised here. Where no child can be forked (can_fork), `work` runs in this process."""
    if not can_fork():
        return work(*args)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, name=name, daemon=True, args=(send, work, args, os.getpid()))
    start_child(child)
    send.close()
    try:
        message = receive.recv()
        while is_log_record(message):
            tell(message)
            message = receive.recv()
        kind, value = message
        if kind == "error":
            raise value
        dicts = [receive_arrays(receive) for _ in range(receive.recv())]
    except EOFError:
        child.join(timeout=5)
        raise CodecAssistError(f"the analysis process ended without a result (exit code {child.exitcode}; "
                               "out of memory?)") from None
    except BaseException:  # this process stops first (Ctrl-C, SIGTERM): the child's work is not needed
        child.terminate()
        raise
    finally:
        receive.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
    return value, dicts


def _child(conn, work, args, parent: int) -> None:
    conn = Sender(conn)
    try:
        enter_child(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends this process
        log_to(conn)
        value, dicts = work(*args)
    except BaseException as e:  # noqa: BLE001 - the parent raises it
        try:
            conn.send(("error", e))
        except Exception:  # noqa: BLE001 - not picklable: say what it was
            conn.send(("error", CodecAssistError(f"the analysis failed: {type(e).__name__}: {e}")))
        conn.close()
        return
    conn.send(("ok", value))
    conn.send(len(dicts))
    for arrays in dicts:
        send_arrays(conn, arrays)
    conn.close()


class Sender:
    """One end of a pipe that several threads send on (the analyzers' lanes log while the main thread sends its
    results): a Connection's send is not thread-safe, so every message goes whole, one at a time."""

    def __init__(self, conn):
        self.conn = conn  # a multiprocessing Connection
        self._lock = threading.Lock()

    def send(self, message) -> None:
        with self._lock:
            self.conn.send(message)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class _PipeHandler(logging.handlers.QueueHandler):
    """Sends each log record (its message formatted, as QueueHandler prepares it) down the pipe."""

    def __init__(self, sender: Sender):
        super().__init__(None)
        self.sender = sender

    def enqueue(self, record: logging.LogRecord) -> None:
        self.sender.send(("log", record))


def is_log_record(message) -> bool:
    return isinstance(message, tuple) and len(message) == 2 and message[0] == "log"


def tell(message: tuple[str, logging.LogRecord]) -> None:
    """A child's log record, through this process's handlers (as if logged here)."""
    record = message[1]
    logging.getLogger(record.name).handle(record)


def log_to(sender: Sender) -> None:
    """Every record this process logs goes to the parent, which passes it to its own handlers (a library caller's
    handlers, pytest's caplog), instead of to the handlers inherited through the fork."""
    root = logging.getLogger()
    for logger in [root, *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.propagate = True  # each record reaches the root's handler once; the parent applies its own flags
    root.addHandler(_PipeHandler(sender))


# ------------------------------------------------------------------------- arrays through a pipe, frame by frame
_SAME = "same"  # a frame equal to the one before (held maps repeat): the parent's store shares one array


def send_arrays(conn, arrays: dict[str, Any]) -> None:
    """Send a dict whose values may be FrameStacks: everything else at once, each FrameStack frame by frame."""
    stacks = {k: v for k, v in arrays.items() if isinstance(v, FrameStack)}
    conn.send((list(arrays), {k: v for k, v in arrays.items() if k not in stacks},
               {k: (len(v), v.frame_shape, v.dtype.str) for k, v in stacks.items()}))
    for stack in stacks.values():
        previous = None
        for k in range(len(stack)):
            frame = np.asarray(stack[k])
            same = previous is not None and frame.shape == previous.shape and np.array_equal(frame, previous)
            conn.send(_SAME if same else frame)
            previous = frame


def receive_arrays(conn) -> dict[str, Any]:
    """What send_arrays sent, each FrameStack in a FrameStore of this process."""
    order, arrays, stacks = conn.recv()
    for key, (count, frame_shape, dtype) in stacks.items():
        store = FrameStore()
        previous = None
        for k in range(count):
            frame = conn.recv()
            previous = previous if isinstance(frame, str) and frame == _SAME else frame
            store[k] = previous
        arrays[key] = FrameStack(store, list(range(count)), frame_shape, np.dtype(dtype))
    return {k: arrays[k] for k in order}
