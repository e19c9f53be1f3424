"""Peak RSS does not grow with the input's duration (the quick version of benchmarks/memory.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from memory import COMMANDS, make_clip, peak_rss_mb  # noqa: E402


@pytest.mark.parametrize("command", ["encode --no-assist", "analyze"])
def test_peak_rss_flat_in_duration(command, tmp_path):
    peaks = {}
    for seconds in (8, 32):
        clip = make_clip(tmp_path / f"p{seconds}.mp4", seconds, 640, 360)
        out = tmp_path / f"out{seconds}"
        out.mkdir()
        rss, _, rc = peak_rss_mb([sys.executable, "-m", "codec_assist", "-q",
                                  *map(str, COMMANDS[command](clip, out))])
        assert rc == 0
        peaks[seconds] = rss
    # 4x the frames; a streaming pipeline stays within noise (allocator, lazy imports), a buffering one grows
    assert peaks[32] - peaks[8] < 12, peaks
