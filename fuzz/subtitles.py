#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of the subtitle sidecar parser: subtitles.read_subtitle_file, what
`analyze --subtitles FILE` reads (size, binary and encoding checks, SRT/WebVTT sniffing and parsing through
webvtt-py, cue clipping, text cleaning). SubtitleError (one line) is the only acceptable failure; the cues that
come back must be finite, ordered, inside [0, duration] and one line each.

    python fuzz/subtitles.py -atheris_runs=10000          # the documented long run
    python fuzz/subtitles.py -atheris_runs=300 -seed=1    # what CI runs (tests/test_fuzz.py)
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import fuzz_main  # noqa: E402  (fuzz/harness.py, beside this file)

import webvtt  # noqa: E402,F401  (third-party code is not instrumented)

with atheris.instrument_imports(include=["codec_assist.media.subtitles"]):
    from codec_assist.errors import CodecAssistError
    from codec_assist.media.subtitles import read_subtitle_file

WORK = Path(tempfile.mkdtemp(prefix="fuzz-subtitles-"))
DURATION = 30.0


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    p = WORK / ("in.vtt" if data[0] & 1 else "in.srt")  # the format is sniffed; the name must not matter
    p.write_bytes(data[1:])
    try:
        cues = read_subtitle_file(p, duration=DURATION if data[0] & 2 else None)
    except CodecAssistError as e:
        assert "\n" not in str(e), f"a multi-line error: {e!r}"
        return
    for c in cues:
        assert math.isfinite(c.start) and math.isfinite(c.end) and 0 <= c.start <= c.end, c
        assert not data[0] & 2 or c.end <= DURATION, c
        assert c.text and "\n" not in c.text, c


SRT = b"1\n00:00:01,000 --> 00:00:02,500\nHello <i>there</i>.\n\n2\n00:00:03,000 --> 00:00:04,000\n{\\i1}Bye{\\i0}\n"
VTT = b"WEBVTT\n\nNOTE a note\n\n00:00.000 --> 00:01.000 align:start\n<v Bob>Hi</v>\n\n01:00:00.000 --> 01:00:01.000\nLate\n"


def seeds() -> list[bytes]:
    return [b"\x00" + SRT, b"\x03" + VTT, b"\x02\xef\xbb\xbf" + SRT, b"\x01" + "WEBVTT\n\n".encode("utf-16"),
            b"\x00" + bytes(range(256))]


def main() -> None:
    fuzz_main(sys.argv, TestOneInput, seeds, WORK)


if __name__ == "__main__":
    main()
