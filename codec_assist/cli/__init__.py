"""`codec-assist` command line: a thin shell over the API (codec_assist.api). One module per command turns
arguments into typed options, calls the API and prints.

Errors are one line on stderr with a non-zero exit (2: bad input or request, 1: internal error, 130: interrupted);
--debug shows the traceback instead. Flags that every command knows (-q, --debug, --json, --overwrite, the input
limits) are accepted before or after the command.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

from codec_assist import __version__
from codec_assist.cli.common import Parser, add_global_flags
from codec_assist.errors import CodecAssistError

EPILOG = "Exit codes: 0 ok, 1 internal error, 2 bad input or options, 130 interrupted."

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_command(sys.argv[1:] if argv is None else list(argv)))
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():
        args.quiet = True  # progress bars and info lines only where a person watches a terminal
    _setup_logging(args.quiet)
    try:
        return args.handler(args)
    except CodecAssistError as e:
        if args.debug:
            raise
        print(f"codec-assist: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("codec-assist: interrupted", file=sys.stderr)
        if argv is None:  # this is the process (console script, python -m), not a call from Python code
            _exit_now(130)
        return 130
    except Exception as e:  # noqa: BLE001 - never a traceback for the user; --debug shows it
        if args.debug:
            raise
        print(f"codec-assist: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
