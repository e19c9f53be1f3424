"""Every bad-input case (tests/badinputs.py) against every command that reads its kind of input.

Asserted for each pair: the exit code, one stderr line "codec-assist: error: ..." (or a warning for inputs usable
in part), no traceback, no partial or temp file in the output folder, and the input byte-identical afterwards.
Run in-process (cli.main) for speed; test_subprocess_* prove the same through a real interpreter.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codec_assist import cli

from badinputs import CASES, Fixtures, make_fixtures, pairs, write_video

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory) -> Fixtures:
    return make_fixtures(tmp_path_factory.mktemp("good"))


def _digest(p: Path) -> str | None:
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _inputs_of(p: Path) -> list[Path]:
    """The input and its companion npz (artifacts are read as a pair)."""
    return [p, p.with_suffix(".npz")] if p.suffix == ".json" else [p]


def _files(d: Path, skip: Path) -> dict[str, str | None]:
    """Every path under `d` outside `skip`, with its sha256 (None for folders)."""
    return {str(p.relative_to(d)): _digest(p) for p in d.rglob("*") if skip not in (p, *p.parents)}


@pytest.mark.parametrize("case,command", pairs(), ids=[f"{c.name}-{cmd.name}" for c, cmd in pairs()])
def test_bad_input(case, command, fixtures, tmp_path, capsys):
    inp = case.make(tmp_path / "in", fixtures)
    out = tmp_path / "out"
    out.mkdir()
    dest = command.written_to(inp, out)  # where the command writes (a batch: where its manifest lies)
    state = dest != out  # the input is the command's own state file in its output folder (a batch manifest)
    before = {p: _digest(p) for p in _inputs_of(inp)}
    inputs_tree = _tree(tmp_path / "in")
    outside = _files(tmp_path / "in", dest)
    argv = [str(a) for a in [*command.argv(inp, out, fixtures), *case.args]]

    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]

    assert "Traceback" not in err, err
    outcome, expect = case.outcome_for(command.name)
    assert _files(tmp_path / "in", dest) == outside, "something beside the input was written, changed or deleted"
    if not state or outcome == "error":
        assert {p: _digest(p) for p in _inputs_of(inp)} == before, "the input changed"
        assert _tree(tmp_path / "in") == inputs_tree, "something was written beside the input"
    if outcome == "error":
        assert code == 2, (code, err)
        assert len(lines) == 1 and lines[0].startswith("codec-assist: error: "), err
        assert (command.failed_says or expect).lower() in lines[0].lower(), lines[0]
        kept = {str(p.relative_to(out)) for f in command.failed_outputs(out) for p in [f, *f.parents] if out in p.parents}
        assert _tree(out) == kept, f"left behind: {_tree(out) - kept}"
    else:
        assert code == 0, (code, err)
        assert not [ln for ln in lines if "error" in ln], err
        written = {str(p.relative_to(dest)) for f in command.outputs(dest) for p in [f, *f.parents]
                   if dest in p.parents}
        assert _tree(dest) == written, "missing outputs or stray temp files"
        warnings = [ln for ln in lines if ln.startswith("codec-assist: warning: ")]
        if outcome == "warn":
            assert any(expect.lower() in w.lower() for w in warnings), err
        else:
            assert not warnings, err
        if command.kind == "manifest":  # the re-run trusted no claim pointing outside its folder
            m = json.loads((dest / "manifest.json").read_text())
            for item in m["items"]:
                for o in item["outputs"]:
                    assert (dest / o["path"]).resolve().parent == dest.resolve(), o
                    assert _digest(dest / o["path"]) == o["sha256"], o


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert len(pairs()) >= 80


# ------------------------------------------------------------------------------------- through a real process
def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "codec_assist", *map(str, args)], capture_output=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, **kw)


@pytest.mark.parametrize("name", ["text_as_mp4", "truncated_no_moov", "huge_declared_size", "audio_only"])
def test_subprocess_error_is_one_line(name, fixtures, tmp_path):
    case = next(c for c in CASES if c.name == name)
    inp = case.make(tmp_path / "in", fixtures)
    r = _run("encode", inp, "-o", tmp_path / "o.mp4", "--preset", "ultrafast")
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("codec-assist: error: "), err
    assert not (tmp_path / "o.mp4").exists()


def test_subprocess_non_utf8_path(fixtures, tmp_path):
    """A file name that is not UTF-8 reaches PyAV and comes back in messages without crashing the terminal."""
    d = os.fsencode(tmp_path)
    src = d + b"/v\xe9deo.mp4"
    os.link(fixtures.clip, src)
    r = subprocess.run([sys.executable, "-m", "codec_assist", "encode", src, "-o", d + b"/\xffout.mkv",
                        "--no-assist", "--preset", "ultrafast"], capture_output=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(d + b"/\xffout.mkv")
    r = subprocess.run([sys.executable, "-m", "codec_assist", "encode", d + b"/\xfemissing.mp4", "-o",
                        d + b"/o.mp4"], capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and b"Traceback" not in r.stderr and r.stderr.count(b"\n") == 1, r.stderr
