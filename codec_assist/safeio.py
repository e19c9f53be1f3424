"""Output safety: outputs appear whole or not at all, and never over an input."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import CodecAssistError


def check_output(output: str | Path, *inputs: str | Path) -> Path:
    """Refuse an output path that is (or links to) one of the inputs, or sits in a missing folder."""
    out = Path(output)
    for inp in inputs:
        inp = Path(inp)
        same = out.resolve() == inp.resolve()
        if not same and out.exists() and inp.exists():
            same = os.path.samefile(out, inp)
        if same:
            raise CodecAssistError(f"output {out} is the input file; choose another output path")
    if out.exists() and out.is_dir():
        raise CodecAssistError(f"output {out} is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CodecAssistError(f"output folder {parent} does not exist")
    return out


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix + ".part", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
