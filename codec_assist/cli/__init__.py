"""`codec-assist` command line: a thin shell over the API (codec_assist.api). One module per command turns
arguments into typed options, calls the API and prints.

Errors are one line on stderr with a non-zero exit (2: bad input or request, 1: internal error, 130: interrupted,
143/129: terminated by SIGTERM/SIGHUP, with the same clean-up as Ctrl-C);
--debug shows the traceback instead. Flags that every command knows (-q, --debug, --json, --overwrite, the input
limits) are accepted before or after the command.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys

from codec_assist import __version__
from codec_assist.cli.common import Parser, add_global_flags
from codec_assist.errors import CodecAssistError

EPILOG = ("Exit codes: 0 ok, 1 internal error, 2 bad input or options, 130 interrupted (Ctrl-C), 143 terminated "
          "(SIGTERM), 129 hung up (SIGHUP); a stopped run leaves no output file.")

# One module per command, each with register(sub) adding its parser(s) with set_defaults(handler=...).
COMMANDS = ("analyze", "plan", "encode", "compare", "tag", "explain", "report", "export", "semantic", "batch")


def build_parser(only: str | None = None) -> Parser:
    """The command line's parser; with `only` (a command name) just that command's, so running one command does
    not import what the others need to describe themselves (semantic layers, tag analyzers, batch commands:
    ~0.25 s of imports a process here)."""
    p = Parser(prog="codec-assist", description="Content-aware x264/x265 encoding: find what matters in a video "
               "(shots, faces, text, motion, speech), move bits toward it with per-block QP offsets and put IDR "
               "frames on the cuts, and measure it against the plain encoder.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"codec-assist {__version__}")
    add_global_flags(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in [only] if only in COMMANDS else COMMANDS:
        importlib.import_module(f"codec_assist.cli.{name}").register(sub)
    return p


def _command(argv: list[str]) -> str | None:
    """The command named in argv (the first word that is not an option or a top-level option's value)."""
    takes_value = {"--max-duration", "--max-pixels"}
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in takes_value:
            skip = True
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _one_line(e: BaseException) -> str:
    """The message on one printable line, whatever it holds (newlines, non-UTF-8 file names)."""
    text = " ".join(str(e).split())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _WarningHandler(logging.Handler):
    """Warnings as "codec-assist: warning: ..." on the current stderr, each distinct message once per run;
    info lines (what auto-preset chose, ...) as "codec-assist: ..." unless quiet."""

    def __init__(self, quiet: bool):
        super().__init__(logging.WARNING if quiet else logging.INFO)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = _one_line(Exception(record.getMessage()))
        if text in self.seen:
            return
        self.seen.add(text)
        prefix = "codec-assist: warning: " if record.levelno >= logging.WARNING else "codec-assist: "
        print(prefix + text, file=sys.stderr)


def _setup_logging(quiet: bool) -> None:
    log = logging.getLogger("codec_assist")
    for h in [h for h in log.handlers if isinstance(h, _WarningHandler)]:
        log.removeHandler(h)
    log.addHandler(_WarningHandler(quiet))
    log.setLevel(logging.INFO)
    log.propagate = False


def _exit_now(code: int) -> None:
    """Leave without the interpreter's exit, which joins background threads: after Ctrl-C an analysis may still
    have Whisper working through a long file (measured: the exit came 15-25 s after Ctrl-C on a minute of
    speech). Every finally block has run by now (partial outputs removed; spill files have no name), so only
    the buffers need flushing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`kill`, `timeout`, a closed terminal, a service stopping): raised like Ctrl-C, so the same
    clean-up runs (partial outputs removed, the analysis process stopped) instead of the process dying where it
    stood and leaving its temporary output and its analysis process behind."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, _frame) -> None:
    raise Terminated(signum)


def _catch_termination() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread (only a process's own main thread may install it)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _raise_terminated)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the process: before numpy loads OpenBLAS, which reads this once
        # OpenBLAS's own worker threads spin-wait after every BLAS call numpy makes (fusion, the audio and text
        # models' small matrices) and gain nothing: the analysis already runs its analyzers in threads of their
        # own. One thread: `analyze` of a minute of 720p 12.65 -> 11.72 CPU-s, the same output. A user's setting
        # wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser(_command(sys.argv[1:] if argv is None else list(argv)))
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():
        args.quiet = True  # progress bars and info lines only where a person watches a terminal
    _setup_logging(args.quiet)
    if argv is None:  # this is the process (console script, python -m), not a call from Python code
        _catch_termination()
    try:
        return args.handler(args)
    except CodecAssistError as e:
        if args.debug:
            raise
        print(f"codec-assist: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Terminated) else signal.SIGINT
        print("codec-assist: " + ("interrupted" if signum == signal.SIGINT else "terminated"), file=sys.stderr)
        if argv is None:
            _exit_now(128 + signum)
        return 128 + signum
    except Exception as e:  # noqa: BLE001 - never a traceback for the user; --debug shows it
        if args.debug:
            raise
        print(f"codec-assist: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
