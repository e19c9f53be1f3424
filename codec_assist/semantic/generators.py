"""Semantic decoder: rebuild a video from a SemanticStream with a pluggable picture generator per shot.

Generators (all return one RGB picture per shot at the output size; the shot's frames repeat it, so the
original frame count, frame rate and shot timing are kept exactly):
  layers     (default, no weights) the thumbnail upsampled, else a palette composition, else the colour names
             of the facts; the sketch's edges drawn over it
  diffusion  a diffusers pipeline from user-supplied weights: text-to-image from the caption, or
             image-to-image from the layers picture when the stream has a thumbnail
  retrieval  the image in a local folder whose description (a NAME.txt beside it, else its file name) is
             nearest the shot's caption in the MiniLM text space

write_video() encodes H.264 (PyAV libx264) with the captions as a mov_text subtitle track, and writes a
WebVTT file of the same captions beside it.
"""
from __future__ import annotations

import contextlib
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.subtitles.subtitle import SubtitleSet
from PIL import Image
from tqdm import tqdm

from codec_assist.errors import CodecAssistError
from codec_assist.media.safeio import atomic_output
from codec_assist.schemas import ShotFacts
from codec_assist.semantic.stream import COLOUR_NAMES, SemanticStream

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


def output_size(stream: SemanticStream) -> tuple[int, int]:
    """The original size, less an odd last row/column (4:2:0 needs even sizes, as in codec_assist.encoding.x26x)."""
    s = stream.scene
    return s.width - s.width % 2, s.height - s.height % 2


class Generator:
    name = "generator"

    def picture(self, index: int, facts: ShotFacts, stream: SemanticStream, size: tuple[int, int]) -> np.ndarray:
        """(h, w, 3) uint8 RGB for shot `index`."""
        raise NotImplementedError


class LayersGenerator(Generator):
    name = "layers"

    def __init__(self, sketch_strength: float | None = None):
        self.sketch_strength = sketch_strength  # None: faint over a thumbnail, stronger over a palette

    def picture(self, index, facts, stream, size):
        w, h = size
        if stream.thumbnails is not None:
            # cubic over a tiny picture rings; linear after a half-pixel blur at thumbnail scale looks calmer
            thumb = cv2.GaussianBlur(stream.thumbnails[index], (3, 3), 0.6)
            img = cv2.resize(thumb, (w, h), interpolation=cv2.INTER_CUBIC)
        elif stream.palette is not None:
            img = palette_picture(stream.palette[index], size)
        else:
            rgb = [COLOUR_NAMES[c] for c in facts.colours if c in COLOUR_NAMES] or [(128, 128, 128)]
            pal = np.array([[*c, 255 // len(rgb)] for c in rgb], np.uint8)
            img = palette_picture(pal, size)
        if stream.sketches is not None:
            strength = self.sketch_strength
            if strength is None:
                strength = 0.15 if stream.thumbnails is not None else 0.45
            img = draw_sketch(img, stream.sketches[index], strength)
        return img


def palette_picture(palette: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Horizontal bands of the palette colours, lightest on top (sky, walls) and heights by share, blurred."""
    w, h = size
    cols = palette[:, :3].astype(np.float32)
    shares = palette[:, 3].astype(np.float32) + 1
    order = np.argsort(-(cols @ np.array([0.299, 0.587, 0.114], np.float32)))
    edges = np.concatenate([[0], np.cumsum(shares[order]) / shares.sum()]) * h
    img = np.zeros((h, w, 3), np.float32)
    for (a, b), k in zip(zip(edges[:-1], edges[1:]), order):
        img[int(round(a)):int(round(b))] = cols[k]
    sigma = max(1.0, h / 12)
    return np.clip(cv2.GaussianBlur(img, (0, 0), sigma), 0, 255).astype(np.uint8)


def draw_sketch(img: np.ndarray, edges: np.ndarray, strength: float) -> np.ndarray:
    """Edges as soft lines: darker over light areas, lighter over dark ones."""
    h, w = img.shape[:2]
    m = cv2.resize(edges.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    m = cv2.GaussianBlur(m, (0, 0), max(0.8, w / edges.shape[1] / 4))[..., None] * strength
    f = img.astype(np.float32)
    luma = cv2.GaussianBlur(f.mean(2), (0, 0), 3)[..., None]
    ink = np.where(luma > 110, 0.0, 255.0)
    return np.clip(f * (1 - m) + ink * m, 0, 255).astype(np.uint8)


def cover(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to fill `size` and centre-crop (no letterbox)."""
    w, h = size
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x, y = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(big[y:y + h, x:x + w])


class DiffusionGenerator(Generator):
    name = "diffusion"

    def __init__(self, model: str, steps: int = 20, strength: float = 0.6, guidance: float = 7.5, seed: int = 0,
                 resolution: int | None = None):
        from codec_assist.models import diffusion_pipeline

        self.pipe = diffusion_pipeline(model)
        self.steps, self.strength, self.guidance, self.seed = steps, strength, guidance, seed
        native = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        self.resolution = resolution or native
        self._img2img = None
        self._layers = LayersGenerator(sketch_strength=0.5)

    def _size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Generation size: the model's resolution on the long side, the video's aspect, multiples of 8."""
        w, h = size
        s = self.resolution / max(w, h)
        return max(8, round(w * s / 8) * 8), max(8, round(h * s / 8) * 8)

    def picture(self, index, facts, stream, size):
        import torch

        gw, gh = self._size(size)
        generator = torch.Generator("cpu").manual_seed(self.seed + index)
        common = dict(prompt=facts.caption, num_inference_steps=self.steps, guidance_scale=self.guidance,
                      generator=generator, output_type="np")
        if stream.thumbnails is not None:
            if self._img2img is None:
                from diffusers import AutoPipelineForImage2Image

                self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe)
                self._img2img.set_progress_bar_config(disable=True)
            init = self._layers.picture(index, facts, stream, (gw, gh))
            out = self._img2img(image=Image.fromarray(init), strength=self.strength, **common).images[0]
        else:
            out = self.pipe(height=gh, width=gw, **common).images[0]
        rgb = np.clip(np.asarray(out) * 255 + 0.5, 0, 255).astype(np.uint8)
        return cover(rgb, size)


def describe_image(path: Path) -> str:
    """An image's description: NAME.txt beside it, else its file name in words."""
    side = path.with_suffix(".txt")
    if side.is_file():
        return side.read_text(encoding="utf-8", errors="replace").strip()[:1000]
    return re.sub(r"[_\-.]+", " ", path.stem).strip()


class RetrievalGenerator(Generator):
    name = "retrieval"

    def __init__(self, folder: str | Path):
        from codec_assist.models import embed_texts

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CodecAssistError(f"retrieval folder {self.folder} does not exist")
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not self.paths:
            raise CodecAssistError(f"retrieval folder {self.folder} has no images ({', '.join(IMAGE_EXTS)})")
        self.descriptions = [describe_image(p) for p in self.paths]
        self.keys = embed_texts(self.descriptions)
        self._embed = embed_texts
        self.chosen: list[Path] = []

    def best(self, text: str) -> tuple[Path, float]:
        sims = self.keys @ self._embed([text])[0]
        k = int(np.argmax(sims))
        return self.paths[k], float(sims[k])

    def picture(self, index, facts, stream, size):
        path, _ = self.best(" ".join([facts.caption, *facts.tags]))
        self.chosen.append(path)
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise CodecAssistError(f"{path}: cannot read the image ({type(e).__name__})") from None
        return cover(rgb, size)


def build_generator(name: str, *, model: str | None = None, folder: str | None = None, steps: int = 20,
                    strength: float = 0.6) -> Generator:
    if name == "layers":
        return LayersGenerator()
    if name == "diffusion":
        if not model:
            raise CodecAssistError("the diffusion generator needs --model (a diffusers folder or cached hub id)")
        return DiffusionGenerator(model, steps=steps, strength=strength)
    if name == "retrieval":
        if not folder:
            raise CodecAssistError("the retrieval generator needs --images FOLDER")
        return RetrievalGenerator(folder)
    raise CodecAssistError(f"unknown generator {name!r} (layers, diffusion, retrieval)")


# --------------------------------------------------------------------------------------------- captions
def _stamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def cue_text(text: str) -> str:
    """One line, safe inside a WebVTT cue (no '-->', no blank line, escaped markup)."""
    text = " ".join(text.split()).replace("-->", "->")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(stream: SemanticStream) -> str:
    fps = stream.fps
    lines = ["WEBVTT", ""]
    for i, s in enumerate(stream.scene.shots, 1):
        lines += [str(i), f"{_stamp(s.start / fps)} --> {_stamp(s.end / fps)}", cue_text(s.caption), ""]
    return "\n".join(lines)


ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    "MarginR, MarginV, Encoding\n"
    "Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


# ------------------------------------------------------------------------------------------ the decoder
def write_video(stream: SemanticStream, generator: Generator, output: str | Path, *, vtt: str | Path | None = None,
                crf: float = 28, preset: str = "veryfast", subtitles: bool = True, progress: bool = False) -> dict:
    """Render every shot and encode H.264 at the original frame rate and frame count. Outputs appear whole
    or not at all. Returns what was written."""
    output = Path(output)
    fps = stream.fps
    w, h = output_size(stream)
    shots = stream.scene.shots
    frame_tb = Fraction(fps.denominator, fps.numerator)
    ms = Fraction(1, 1000)
    with contextlib.ExitStack() as outputs:  # both files appear only when the whole video is encoded
        tmp = outputs.enter_context(atomic_output(output))
        if vtt:
            outputs.enter_context(atomic_output(vtt)).write_text(webvtt(stream), encoding="utf-8")
        with av.open(str(tmp), mode="w", format="mp4") as c:
            vs = c.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            vs.time_base = frame_tb
            vs.options = {"crf": f"{crf:g}", "preset": preset}
            # the pictures are RGB made YUV by swscale's default, BT.601 limited range: say so (faithful.py)
            from codec_assist.encoding.faithful import RANGE_LIMITED, SPC_SMPTE170M

            vs.codec_context.color_range, vs.codec_context.colorspace = RANGE_LIMITED, SPC_SMPTE170M
            ss = None
            if subtitles:
                ss = c.add_stream("mov_text")
                ss.codec_context.time_base = ms
                ss.codec_context.subtitle_header = ASS_HEADER.encode()
            bar = tqdm(total=stream.scene.frames, unit="f", desc="decode", disable=not progress, leave=False)
            for k, facts in enumerate(shots):
                rgb = generator.picture(k, facts, stream, (w, h))
                if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
                    raise CodecAssistError(f"generator {generator.name} returned {rgb.shape} {rgb.dtype}, "
                                           f"not ({h}, {w}, 3) uint8")
                pic = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                for i in range(facts.start, facts.end):
                    pic.pts, pic.time_base = i, frame_tb
                    for pkt in vs.encode(pic):
                        c.mux(pkt)
                    bar.update()
                if ss is not None:
                    a, b = int(facts.start / fps * 1000), int(facts.end / fps * 1000)
                    text = cue_text(facts.caption).replace("{", "(").replace("}", ")")
                    sub = SubtitleSet.create(text=f"{k},0,Default,,0,0,0,,{text}".encode(), start=0, end=b - a, pts=a)
                    pkt = ss.codec_context.encode_subtitle(sub)
                    pkt.stream, pkt.time_base, pkt.pts, pkt.dts, pkt.duration = ss, ms, a, a, b - a
                    c.mux(pkt)
            for pkt in vs.encode():
                c.mux(pkt)
            bar.close()
    written = {"video": str(output), "width": w, "height": h, "frames": stream.scene.frames,
               "fps": f"{fps.numerator}/{fps.denominator}", "subtitle_track": subtitles}
    if vtt:
        written["webvtt"] = str(vtt)
    return written
