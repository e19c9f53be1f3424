"""Output safety: outputs appear whole or not at all, and never over an input.

A process killed outright (SIGKILL, the OOM killer, a power cut) runs no clean-up: its part-written output and its
work folder stay. Their names carry the writer's process id, and the next run that writes the same output, or makes a
work folder, removes those whose process is gone (`sweep_stale`).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from codec_assist.errors import CodecAssistError


def shown(path: str | Path) -> str:
    """A path as printable text, whatever bytes its name holds."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_output(output: str | Path, *inputs: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output path that is one of the inputs (by name, symlink or hard link), an existing file
    (unless overwriting), a directory, or under a path that cannot become a folder. Missing parent folders
    are created when the output is written (atomic_output), so a failed run leaves no empty folders."""
    out = Path(output)
    for inp in inputs:
        inp = Path(inp)
        same = out.resolve() == inp.resolve()
        if not same and out.exists() and inp.exists():
            same = os.path.samefile(out, inp)  # same device and inode: a hard link
        if same:
            raise CodecAssistError(f"output {shown(out)} is the input file; choose another output path")
    if out.is_dir():
        raise CodecAssistError(f"output {shown(out)} is a directory")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise CodecAssistError(f"output {shown(out)} already exists; pass --overwrite to replace it")
    ancestor = out.parent if str(out.parent) else Path(".")
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CodecAssistError(f"cannot create the output folder {shown(out.parent)}: {shown(ancestor)} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CodecAssistError(f"output folder {shown(ancestor)} is not writable")
    return out


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CodecAssistError(f"cannot create the output folder {shown(parent)} ({e.strerror})") from None
    # The temp name must be UTF-8 (FFmpeg opens it by name): a non-UTF-8 output name gets a generic prefix.
    name = path.name if shown(path.name) == path.name else "codec-assist"
    suffix = suffix or path.suffix + ".part"
    sweep_stale(parent, f".{name}.", suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=suffix, dir=parent)
    tmp_path = Path(tmp)
    try:
        os.fchmod(fd, _created_mode(path))  # mkstemp makes 0600; an output gets what open() would give it
        os.close(fd)
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def work_dir(prefix: str = "codec-assist-") -> tempfile.TemporaryDirectory:
    """A temporary folder named with this process's id, after removing those of dead processes (sweep_stale)."""
    folder = Path(tempfile.gettempdir())
    sweep_stale(folder, prefix)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", dir=folder)


def sweep_stale(folder: Path, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the entries of `folder` named PREFIX<pid>[.-]...SUFFIX whose process no longer runs and that belong to
    this user: what a killed run left. A pid now taken by another process keeps its entry (the safe side)."""
    removed = []
    pattern = re.compile(re.escape(prefix) + r"(\d+)[.-].*" + re.escape(suffix) + "$", re.S)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or _alive(int(m.group(1))):
            continue
        try:
            if entry.lstat().st_uid != os.getuid():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue  # another run removed it first, or it is not ours to remove
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id: not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it (os.umask can only set it: setting and
    restoring it races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _created_mode(path: Path) -> int:
    """The mode a plain open(path, "w") gives: an existing file's own mode when replacing it (--overwrite),
    else 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
