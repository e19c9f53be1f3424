#!/usr/bin/env python3
"""Build derived samples from the fetched ones (nothing third-party is committed; these are made locally).

bikes_speech.mp4: bikes.mp4's video (stream copy: its 5 cuts stay where they are) with the first 10 s of the
studio-speech sample demo-congrats.g722 as AAC audio, for tests that need speech over multi-shot footage.
Usage: python samples/compose.py            (run samples/fetch.py first)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"


def bikes_speech(media: Path = MEDIA) -> Path:
    out = media / "bikes_speech.mp4"
    if out.exists():
        return out
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(media / "bikes.mp4")) as vin, av.open(str(media / "demo-congrats.g722"), format="g722") as ain, \
            av.open(str(tmp), "w") as dst:
        vsrc = vin.streams.video[0]
        vdst = dst.add_stream_from_template(vsrc)
        adst = dst.add_stream("aac", rate=16000, layout="mono")
        duration = float(vsrc.duration * vsrc.time_base) if vsrc.duration else 10.0
        for packet in vin.demux(vsrc):
            if packet.dts is None:
                continue
            packet.stream = vdst
            dst.mux(packet)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        done = False
        for frame in ain.decode(audio=0):
            if frame.time is not None and frame.time >= duration:
                done = True
            if done:
                break
            for f in resampler.resample(frame):
                f.pts = None
                for p in adst.encode(f):
                    dst.mux(p)
        for p in adst.encode(None):
            dst.mux(p)
    os.replace(tmp, out)
    return out


COMPOSED = {"bikes_speech.mp4": bikes_speech}

if __name__ == "__main__":
    for name, make in COMPOSED.items():
        print(make(), file=sys.stderr)
