"""Semantic compression benchmark (issue 4): layers x bytes x bpp x fidelity, next to x264/x265 at CRF 51.

    PYTHONPATH=. python benchmarks/semantic.py [SAMPLE ...] [--proxy-width 160]

For each sample: one semantic encode with every layer (default analysis: 320-px proxy, 3 fps), then decodes
of growing layer sets (captions only -> +palette -> +thumbnail -> +sketch) with the default `layers` generator,
and the plain x264 / x265 encodes at CRF 51 (their lowest usable rate; preset medium) of the same clip.
Fidelity, all against the original:
  PSNR-Y / SSIM-Y  on every frame at proxy scale (both sides downscaled to --proxy-width, area filter)
  text sim         cosine (MiniLM) between the original's caption of each shot and the caption re-derived by
                   analysing the reconstruction over the same shot spans, frame-weighted mean
  (no CLIP score: no CLIP weights ship on this machine, and this script does not load user weights yet)
bpp = bits / (width x height x frames) of the original; a row's bytes are the whole stream (container included).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np


import codec_assist.semantic.bitstream as bitstream

import codec_assist.media.decode as media  # noqa: E402
from codec_assist.semantic.generators import LayersGenerator, write_video  # noqa: E402
from codec_assist.evaluation.metrics import psnr, ssim  # noqa: E402
from codec_assist.models import embed_texts  # noqa: E402
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze  # noqa: E402
from codec_assist.semantic.stream import (LAYERS, SemanticOptions, encode_video, keyframes_rgb,  # noqa: E402
                                   palette_of, read_stream, shot_facts)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ["bikes.mp4", "bigbuckbunny.mp4", "jwpIntro.mp4", "cityCC0.mpg"]
SETS = [("scene",), ("scene", "palette"), ("scene", "palette", "thumbnail"), LAYERS]


def proxy_luma(path: Path, width: int, crop: tuple[int, int]) -> list[np.ndarray]:
    w, h = crop
    out = []
    for f in media.iter_frames(path):
        if (f.width, f.height) != (w, h):  # odd-sized originals: compare the even area the decoder keeps
            rgb = f.to_ndarray(format="rgb24")[:h, :w]
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        ph = max(2, round(h * width / w / 2) * 2)
        out.append(f.reformat(width=width, height=ph, format="gray", interpolation="AREA").to_ndarray())
    return out


def fidelity(orig: list[np.ndarray], path: Path, width: int, crop) -> tuple[float, float]:
    rec = proxy_luma(path, width, crop)
    n = min(len(orig), len(rec))
    if len(rec) != len(orig):
        print(f"  note: {path.name} has {len(rec)} frames, the original {len(orig)}", file=sys.stderr)
    ps = [psnr(orig[i], rec[i]) for i in range(n)]
    ss = [ssim(orig[i], rec[i]) for i in range(n)]
    return float(np.mean(np.minimum(ps, 99))), float(np.mean(ss))


def rederived_captions(path: Path, shots) -> list[str]:
    """Captions composed from an analysis of `path`, over the original's shot spans (like for like)."""
    analysis, arrays = analyze(path, AnalyzeOptions())
    mids = [min((s.start + s.end - 1) // 2, analysis.video.frame_count - 1) for s in shots]
    keys = keyframes_rgb(path, mids)
    return [shot_facts(analysis, arrays, s.start, s.end, keys[m], palette_of(keys[m], 4)).caption
            for s, m in zip(shots, mids)]


def text_similarity(shots, captions: list[str]) -> float:
    a, b = embed_texts([s.caption for s in shots]), embed_texts(captions)
    w = np.array([s.end - s.start for s in shots], np.float64)
    return float(((a * b).sum(1) * w).sum() / w.sum())


def x26x(src: Path, out: Path, codec: str) -> None:
    lib = {"x264": "libx264", "x265": "libx265"}[codec]
    with av.open(str(src)) as ic, av.open(str(out), "w") as oc:
        iv = ic.streams.video[0]
        w, h = iv.codec_context.width // 2 * 2, iv.codec_context.height // 2 * 2
        vs = oc.add_stream(lib, rate=iv.average_rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "51", "preset": "medium"}
        if codec == "x265":
            vs.options["x265-params"] = "log-level=error"
        for f in ic.decode(iv):
            f = f.reformat(width=w, height=h, format="yuv420p") if (f.width, f.height) != (w, h) else f
            f.pict_type = av.video.frame.PictureType.NONE
            for p in vs.encode(f):
                oc.mux(p)
        for p in vs.encode():
            oc.mux(p)


def video_bytes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(p.size for p in c.demux(c.streams.video[0]) if p.size)


def bench(name: str, width: int, tmp: Path) -> list[dict]:
    src = ROOT / "samples" / "media" / name
    t = time.perf_counter()
    blob, scene, info = encode_video(src, SemanticOptions(layers=LAYERS))
    seconds = time.perf_counter() - t
    full = bitstream.parse(blob)
    pixels = scene.width * scene.height * scene.frames
    duration = scene.frames * scene.fps_den / scene.fps_num
    crop = (scene.width // 2 * 2, scene.height // 2 * 2)
    orig = proxy_luma(src, width, crop)
    rows = []
    for names in SETS:
        sub, _ = bitstream.pack({k: full[k].data for k in names})
        stream = read_stream(sub)
        out = tmp / f"{Path(name).stem}.{len(names)}.mp4"
        write_video(stream, LayersGenerator(), out, subtitles=False)
        p, s = fidelity(orig, out, width, crop)
        sim = text_similarity(scene.shots, rederived_captions(out, scene.shots))
        rows.append(dict(sample=name, what="semantic " + "+".join(names), bytes=len(sub),
                         per_layer=" ".join(f"{k}:{stream.stored[k]}" for k in names),
                         kbps=len(sub) * 8 / duration / 1000, bpp=len(sub) * 8 / pixels, psnr=p, ssim=s, text=sim))
    for codec in ("x264", "x265"):
        out = tmp / f"{Path(name).stem}.{codec}.mp4"
        x26x(src, out, codec)
        b = video_bytes(out)
        p, s = fidelity(orig, out, width, crop)
        sim = text_similarity(scene.shots, rederived_captions(out, scene.shots))
        rows.append(dict(sample=name, what=f"{codec} crf 51 medium", bytes=b, per_layer="video stream",
                         kbps=b * 8 / duration / 1000, bpp=b * 8 / pixels, psnr=p, ssim=s, text=sim))
    print(f"  {name}: semantic encode {seconds:.1f}s; thumbnail {info.get('thumb_codec')} "
          f"({info.get('thumb_psnr', 0):.1f} dB at thumbnail size); captions:", file=sys.stderr)
    for sh in scene.shots:
        print(f"    [{sh.start}-{sh.end}) {sh.caption}", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    head = ("| sample | stream | bytes | bytes per layer | kb/s | bpp | PSNR-Y (proxy) | SSIM-Y (proxy) | text sim |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['sample']} | {r['what']} | {r['bytes']} | {r['per_layer']} | {r['kbps']:.3f} | "
                     f"{r['bpp']:.6f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['text']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", nargs="*", default=SAMPLES)
    ap.add_argument("--proxy-width", type=int, default=160, help="width at which PSNR/SSIM are measured")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="semantic-bench-") as tmp:
        for name in args.samples:
            rows += bench(name, args.proxy_width, Path(tmp))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
