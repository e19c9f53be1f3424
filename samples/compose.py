#!/usr/bin/env python3
"""Build derived samples from the fetched ones (nothing third-party is committed; these are made locally).

bikes_speech.mp4: bikes.mp4's video (stream copy: its 5 cuts stay where they are) with the first 10 s of the
studio-speech sample demo-congrats.g722 as AAC audio, for tests that need speech over multi-shot footage.

montage.mp4: 640x360 25 fps, 15.4 s (385 frames), shots of the four real clips whose importance really differs:
a talking head (jwpIntro, face + speech) twice between street, night-city and animation shots, joined by hard
cuts, one 1 s cross-fade and one fade through black (see MONTAGE for the source frames). Every source is
scaled to fit 640x360 and padded with black (bikes letterboxed, jwpIntro pillarboxed); jwpIntro's 29.97 fps is
resampled to 25 fps by nearest frame. Audio: jwpIntro's speech under its two shots, silence elsewhere (AAC
mono 16 kHz). Encoded with x264 CRF 18, preset medium, one thread (deterministic; a clean source for
allocation benchmarks). MONTAGE_FACE is jwpIntro's hand-labelled face box (190,60,160,240 in its 640x480
frame) mapped into the montage.
Usage: python samples/compose.py            (run samples/fetch.py first)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import av
import numpy as np

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


# ---------------------------------------------------------------------------------------------- montage
MONTAGE_SIZE = (640, 360)
MONTAGE_FPS = 25
# (source, first source frame at the source's own rate, montage frames, how the shot begins). The talking-head
# shots start at 0.6 s and 3.0 s of jwpIntro (its speech runs from 0.53 to 4.97 s).
MONTAGE = [
    ("bikes.mp4", 76, 50, "cut"),          # montage frames   0- 49: street, one bikes shot (76-136)
    ("jwpIntro.mp4", 18, 60, "cut"),       #                 50-109: talking head, speaking
    ("cityCC0.mpg", 0, 55, "cut"),         #                110-164: night city (its first shot)
    ("bigbuckbunny.mp4", 0, 65, "xfade"),  #                165-229: animation; 165-189 cross-fade from city
    ("jwpIntro.mp4", 90, 55, "cut"),       #                230-284: talking head, speaking
    ("bikes.mp4", 137, 45, "cut"),         #                285-329: street (bikes shot 137-186); fades out
    ("cityCC0.mpg", 116, 55, "fade"),      #                330-384: night city (its second shot); fades in
]
MONTAGE_TRANSITION = 25  # frames: a cross-fade lasts 1 s; a fade through black 12 out + 13 in
# jwpIntro's face box (x, y, w, h) 190,60,160,240 at 640x480, scaled by 0.75 and moved 80 px right
MONTAGE_FACE = "222,45,120,180"


def montage_starts() -> list[int]:
    """Montage frame where each MONTAGE shot's own picture starts (a cross-fade's first blended frame)."""
    starts, n = [], 0
    for _src, _first, count, _how in MONTAGE:
        starts.append(n)
        n += count
    return starts


def montage_face_rois() -> list[str]:
    """The face box during each talking-head shot, as --roi strings with the shot's time span (x,y,w,h@t0-t1)."""
    return [f"{MONTAGE_FACE}@{start / MONTAGE_FPS:g}-{(start + count) / MONTAGE_FPS:g}"
            for (src, _first, count, _how), start in zip(MONTAGE, montage_starts()) if src == "jwpIntro.mp4"]


def _fit(frame: av.VideoFrame) -> np.ndarray:
    """The frame scaled to fit MONTAGE_SIZE (aspect kept, even size) and centred on black, as RGB."""
    w, h = MONTAGE_SIZE
    scale = min(w / frame.width, h / frame.height)
    sw, sh = int(round(frame.width * scale / 2)) * 2, int(round(frame.height * scale / 2)) * 2
    pic = frame.reformat(width=sw, height=sh, format="rgb24", interpolation="AREA").to_ndarray()
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - sh) // 2, (w - sw) // 2
    out[y:y + sh, x:x + sw] = pic
    return out


def _source_frames(path: Path, first: int, count: int) -> list[np.ndarray]:
    """`count` montage frames (25 fps) from `path` starting at its frame `first`: nearest source frame in time."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate)
        want = [first + int(round(k * fps / MONTAGE_FPS)) for k in range(count)]
        got: dict[int, np.ndarray] = {}
        for i, frame in enumerate(c.decode(vs)):
            if i in want:
                got[i] = _fit(frame)
            if i >= want[-1]:
                break
    missing = sorted(set(want) - set(got))
    if missing:
        raise SystemExit(f"compose: {path.name} has no frame {missing[0]}")
    return [got[i] for i in want]


def _speech(path: Path, first_frame: int, count: int, rate: int = 16000) -> np.ndarray:
    """The source's audio under a shot that starts at its video frame `first_frame`: mono float32 at `rate`."""
    chunks = []
    with av.open(str(path)) as c:
        start = first_frame / float(c.streams.video[0].average_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in c.decode(audio=0):
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray().reshape(-1))
    pcm = np.concatenate(chunks)
    a = int(round(start * rate))
    return pcm[a:a + int(round(count / MONTAGE_FPS * rate))]


def montage(media: Path = MEDIA) -> Path:
    out = media / "montage.mp4"
    if out.exists():
        return out
    video: list[np.ndarray] = []
    rate = 16000
    audio = np.zeros(int(round(sum(m[2] for m in MONTAGE) / MONTAGE_FPS * rate)), np.float32)
    t = MONTAGE_TRANSITION
    for i, ((src, first, count, how), start) in enumerate(zip(MONTAGE, montage_starts())):
        shot = _source_frames(media / src, first, count)
        if how == "xfade":  # the previous shot runs on under this one's first t frames, blended out
            prev_src, prev_first, prev_count, _ = MONTAGE[i - 1]
            tail = _source_frames(media / prev_src, prev_first + _source_span(media / prev_src, prev_count), t)
            for k in range(t):
                a = (k + 1) / (t + 1)
                shot[k] = np.round((1 - a) * tail[k] + a * shot[k]).astype(np.uint8)
        if how == "fade":  # fade through black: the previous shot fades out, this one fades in
            out_n, in_n = t // 2, t - t // 2
            for k in range(out_n):
                j = len(video) - out_n + k
                video[j] = np.round(video[j] * (1 - (k + 1) / (out_n + 1))).astype(np.uint8)
            for k in range(in_n):
                shot[k] = np.round(shot[k] * ((k + 1) / (in_n + 1))).astype(np.uint8)
        video.extend(shot)
        if src == "jwpIntro.mp4":
            pcm = _speech(media / src, first, count, rate)
            a = int(round(start / MONTAGE_FPS * rate))
            audio[a:a + len(pcm)] = pcm[: len(audio) - a]
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as dst:
        vs = dst.add_stream("libx264", rate=MONTAGE_FPS)
        vs.width, vs.height, vs.pix_fmt = *MONTAGE_SIZE, "yuv420p"
        vs.options = {"crf": "18", "preset": "medium", "threads": "1"}
        as_ = dst.add_stream("aac", rate=rate, layout="mono")
        for k, rgb in enumerate(video):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            f.pts = k
            for p in vs.encode(f):
                dst.mux(p)
        for p in vs.encode(None):
            dst.mux(p)
        step = 1024
        for k in range(0, len(audio), step):
            f = av.AudioFrame.from_ndarray(audio[None, k:k + step].copy(), format="flt", layout="mono")
            f.sample_rate, f.pts = rate, k
            for p in as_.encode(f):
                dst.mux(p)
        for p in as_.encode(None):
            dst.mux(p)
    os.replace(tmp, out)
    return out


def _source_span(path: Path, count: int) -> int:
    """Source frames that `count` montage frames cover."""
    with av.open(str(path)) as c:
        return int(round(count * float(c.streams.video[0].average_rate) / MONTAGE_FPS))


COMPOSED = {"bikes_speech.mp4": bikes_speech, "montage.mp4": montage}

if __name__ == "__main__":
    for name, make in COMPOSED.items():
        print(make(), file=sys.stderr)
