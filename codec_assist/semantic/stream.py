"""Semantic compression: send what each shot *is* (a caption and structured facts) plus tiny side layers.

encode_video(): analysis (codec_assist.analysis.pipeline) -> per shot facts (people, objects, on-screen text, speech,
colours, light, motion, layout) -> a caption composed from the facts by a small grammar ("who/what, doing what,
where": template-based generation from structured data, which needs no weights) -> layers:

  scene      canonical JSON of schemas.SceneLayer (timing, captions, facts)         always
  palette    k dominant colours per shot with their shares (k-means on the proxy)  --layers palette
  thumbnail  one tiny keyframe per shot, all shots in one mosaic image, coded with
             whichever of AVIF / WebP / JPEG is smallest at the quality target      --layers thumbnail
  sketch     a coarse Canny edge map per shot, bit-packed                          --layers sketch

-> bitstream.pack (zstd where it helps). read_stream() parses and validates a stream back into a
SemanticStream. Decoding to pixels is codec_assist.generators.
"""
from __future__ import annotations

import io
import json
import struct
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, features
from pydantic import ValidationError

import codec_assist.semantic.bitstream as bitstream

import codec_assist.media.decode as media
from codec_assist.errors import CodecAssistError, SchemaError
from codec_assist.schemas import Analysis, LayerStat, SceneLayer, SemanticReport, ShotFacts

LAYERS = ("scene", "palette", "thumbnail", "sketch")
DEFAULT_LAYERS = ("scene", "palette", "thumbnail")

# Motion: the saliency analyzer's mean absolute luma change per frame (gray levels), shot mean. On the samples
# a presenter talking scored 0.3-0.5, a slow night-city pan ~2-5, bikes' street shots 3-12.
MOTION_LEVELS = ((0.8, "still"), (3.0, "slow"), (8.0, "moving"), (float("inf"), "fast"))
LIGHT_LEVELS = ((50, "dark"), (100, "dim"), (170, ""), (256, "bright"))  # keyframe mean luma -> word

# A small set of colour names (sRGB); dominant colours are named by the nearest one in CIELAB.
COLOUR_NAMES = {
    "black": (20, 20, 20), "grey": (128, 128, 128), "white": (240, 240, 240), "red": (200, 30, 30),
    "orange": (240, 140, 30), "yellow": (240, 220, 50), "green": (50, 160, 60), "dark green": (20, 70, 30),
    "teal": (30, 130, 130), "blue": (40, 90, 200), "navy": (20, 30, 80), "sky blue": (130, 190, 240),
    "purple": (120, 50, 150), "pink": (240, 150, 190), "brown": (110, 70, 40), "beige": (220, 200, 160),
}
NUMBERS = {1: "a", 2: "two", 3: "three", 4: "four"}


@dataclass
class SemanticOptions:
    layers: tuple[str, ...] = DEFAULT_LAYERS
    thumb_width: int = 48  # px; height follows the aspect ratio
    thumb_psnr: float = 30.0  # dB at thumbnail size: the smallest coding that reaches this wins
    palette_k: int = 4
    sketch_width: int = 64  # px
    captioner: str = "grammar"  # or a transformers image-to-text model path (models.image_captioner)


@dataclass
class SemanticStream:
    """A parsed and validated stream."""

    scene: SceneLayer
    palette: list[np.ndarray] | None = None  # per shot (k, 4) uint8: r, g, b, share*255
    thumbnails: list[np.ndarray] | None = None  # per shot (h, w, 3) uint8 RGB
    thumb_codec: str = ""
    sketches: list[np.ndarray] | None = None  # per shot (h, w) bool
    stored: dict[str, int] = field(default_factory=dict)  # stored payload bytes per layer
    size: int = 0  # whole stream, bytes

    @property
    def fps(self) -> Fraction:
        return Fraction(self.scene.fps_num, self.scene.fps_den)


# ------------------------------------------------------------------------------------------ facts, caption
def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _where(box) -> tuple[str, str]:
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    h = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    v = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    return h, v


def _level(value: float, levels) -> str:
    return next(word for top, word in levels if value < top)


def shot_facts(analysis: Analysis, arrays: dict[str, np.ndarray], start: int, end: int,
               keyframe_rgb: np.ndarray | None, palette: np.ndarray | None) -> ShotFacts:
    """Facts for frames [start, end) from whatever tokens the analyzers produced (by source and label)."""
    tokens = [t for t in analysis.tokens if t.frame_start < end and t.frame_end > start]
    faces_at: dict[int, int] = {}
    text_at: dict[int, int] = {}
    objects: dict[str, float] = {}
    words: list[str] = []
    speech: list[str] = []
    tags: dict[str, float] = {}
    layout: list[str] = []
    biggest_face = None
    for t in tokens:
        if t.source == "faces" or t.label == "face":
            faces_at[t.frame_start] = faces_at.get(t.frame_start, 0) + 1
            if t.box and (biggest_face is None or t.box.w * t.box.h > biggest_face.w * biggest_face.h):
                biggest_face = t.box
        elif t.source == "text":
            text_at[t.frame_start] = text_at.get(t.frame_start, 0) + 1
            if t.label.strip() and t.label != "text" and t.label not in words:
                words.append(t.label.strip())
            if t.box:
                h, v = _where(t.box)
                if f"text {v}" not in layout:
                    layout.append(f"text {v}")
        elif t.source == "transcript":
            if t.label.strip() and t.label.strip() not in speech:
                speech.append(t.label.strip())
        elif t.box is None:  # a whole-frame token from another analyzer: a topic tag, a sound class
            tags[t.label] = max(tags.get(t.label, 0.0), t.score)
        else:  # a region with a class name (ImageNet, detectors)
            overlap = (min(end, t.frame_end) - max(start, t.frame_start)) / max(1, end - start)
            objects[t.label] = objects.get(t.label, 0.0) + t.score * overlap
    if biggest_face is not None:
        h, v = _where(biggest_face)
        layout.insert(0, f"face {h}" + (" close-up" if biggest_face.h > 0.3 else ""))

    motion = ""
    if "signal/motion" in arrays:
        frames = np.asarray(analysis.analysis_frames)
        values = arrays["signal/motion"] * 255.0
        inside = (frames > start) & (frames < end)  # a sample's motion covers the frames before it
        if not inside.any():
            inside = (frames >= start) & (frames <= end)
        finite = values[inside][np.isfinite(values[inside])]
        if finite.size:
            motion = _level(float(finite.mean()), MOTION_LEVELS)
    if "importance/grid" in arrays and "importance/frames" in arrays:
        frames = arrays["importance/frames"]
        sel = (frames >= start) & (frames < end)
        if sel.any():
            g = arrays["importance/grid"][sel].astype(np.float32).mean(0)
            ys, xs = np.mgrid[0:g.shape[0], 0:g.shape[1]]
            w = np.clip(g - g.mean(), 0, None)
            if w.sum() > 0:
                cx, cy = (xs * w).sum() / w.sum() / g.shape[1], (ys * w).sum() / w.sum() / g.shape[0]
                h = "left" if cx < 0.4 else "right" if cx > 0.6 else "centre"
                layout.append(f"focus {h}")

    light, colours = "", []
    if keyframe_rgb is not None:
        luma = float((keyframe_rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).mean())
        light = _level(luma, LIGHT_LEVELS)
    if palette is not None:
        for r, g, b, share in palette:
            name = colour_name((int(r), int(g), int(b)))
            if share >= 20 and name not in colours:  # >= 8 % of the picture
                colours.append(name)
    objs = [k for k, _ in sorted(objects.items(), key=lambda kv: -kv[1])][:5]
    people = max(faces_at.values(), default=0)
    facts = ShotFacts(
        start=start, end=end, caption="", people=people, objects=objs, text=words[:16],
        text_regions=max(text_at.values(), default=0), speech=speech[:64], colours=colours[:4], light=light,
        motion=motion, layout=layout[:6],
    )
    facts.tags = make_tags(facts, [k for k, _ in sorted(tags.items(), key=lambda kv: -kv[1])])
    facts.caption = compose_caption(facts)
    return facts


def make_tags(f: ShotFacts, extra: list[str] = ()) -> list[str]:
    tags = list(extra)[:8]
    if f.people:
        tags.append("person" if f.people == 1 else "people")
    tags += f.objects[:3]
    if f.text_regions or f.text:
        tags.append("on-screen text")
    if f.speech:
        tags.append("speech")
    tags += [w for w in (f.motion if f.motion not in ("", "moving") else "", f.light) if w]
    tags += f.colours[:2]
    seen: list[str] = []
    for t in tags:
        if t and t not in seen:
            seen.append(t)
    return seen[:16]


def compose_caption(f: ShotFacts) -> str:
    """'Who/what does what, where' from the facts: template-based generation from structured data."""
    if f.people:
        who = "a person" if f.people == 1 else f"{NUMBERS.get(f.people, 'several')} people"
        if any(x.endswith("close-up") for x in f.layout):
            who = "a close-up of " + who
        subject = who + (f" with {_article(f.objects[0])}" if f.objects else "")
    elif f.objects:
        subject = _article(f.objects[0]) + (f" and {_article(f.objects[1])}" if len(f.objects) > 1 else "")
    else:
        subject = {"dark": "a dark scene", "dim": "a dim scene", "bright": "a bright scene"}.get(f.light, "a scene")
    face_where = next((x.split()[1] for x in f.layout if x.startswith("face ")), "")
    if f.people and face_where:
        subject += " in the centre" if face_where == "centre" else f" on the {face_where}"
    if f.speech:
        action = "talking" + (" to the camera" if f.people == 1 and face_where == "centre" else "")
        quote = " ".join(f.speech)
        action += f', saying "{quote[:120].rstrip()}{"..." if len(quote) > 120 else ""}"'
    else:
        action = {"still": "in a still shot", "slow": "with slow motion", "moving": "with movement",
                  "fast": "with fast motion"}.get(f.motion, "")
    caption = subject + (" " + action if action else "")
    setting = []
    if f.colours:
        names = f.colours[:2]
        setting.append(f"{' and '.join(names)} tones")
    if f.light and f.people + len(f.objects) > 0:
        setting.insert(0, f"{f.light} light")
    if setting:
        caption += ", in " + ", ".join(setting)
    if f.text:
        shown = " ".join(f.text)[:80]
        caption += f'; on-screen text "{shown}"'
    elif f.text_regions:
        caption += "; on-screen text"
    return caption[0].upper() + caption[1:] + "."


# -------------------------------------------------------------------------------------------- colours
def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)


_NAMED_LAB = _lab(np.array(list(COLOUR_NAMES.values())))
NAMES = list(COLOUR_NAMES)


def colour_name(rgb: tuple[int, int, int]) -> str:
    lab = _lab(np.array([rgb]))[0]
    return NAMES[int(np.argmin(((_NAMED_LAB - lab) ** 2).sum(1)))]


def palette_of(rgb: np.ndarray, k: int) -> np.ndarray:
    """(k, 4) uint8: the k dominant colours (k-means in RGB on a small copy) with share*255, biggest first."""
    small = cv2.resize(rgb, (64, max(1, round(64 * rgb.shape[0] / rgb.shape[1]))), interpolation=cv2.INTER_AREA)
    pix = small.reshape(-1, 3).astype(np.float32)
    k = min(k, len(pix))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)  # deterministic: the same video gives the same stream
    _, labels, centres = cv2.kmeans(pix, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=k) / len(pix)
    order = np.argsort(-shares)
    out = np.zeros((k, 4), np.uint8)
    out[:, :3] = np.clip(np.round(centres[order]), 0, 255)
    out[:, 3] = np.round(shares[order] * 255)
    return out


# --------------------------------------------------------------------------------------- layer payloads
THUMB = struct.Struct("<BHHH")  # image codec, width, height (of one thumbnail), shot count
SKETCH = struct.Struct("<HHH")  # width, height, shot count
PALETTE = struct.Struct("<BH")  # k, shot count
IMAGE_CODECS = {1: "AVIF", 2: "WEBP", 3: "JPEG"}
QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90)


def encode_scene(scene: SceneLayer) -> bytes:
    """Canonical JSON: sorted keys, no spaces, defaults left out, UTF-8."""
    obj = scene.model_dump(exclude_defaults=True)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_palette(palettes: list[np.ndarray]) -> bytes:
    k = palettes[0].shape[0]
    return PALETTE.pack(k, len(palettes)) + b"".join(p.astype(np.uint8).tobytes() for p in palettes)


def encode_sketch(edges: list[np.ndarray]) -> bytes:
    h, w = edges[0].shape
    return SKETCH.pack(w, h, len(edges)) + np.packbits(np.stack(edges).astype(bool), axis=None).tobytes()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def encode_thumbnails(thumbs: list[np.ndarray], target_psnr: float) -> tuple[bytes, str, float]:
    """All shot thumbnails stacked into one mosaic (one image header for all), coded with the smallest of
    AVIF/WebP/JPEG x quality that reaches target_psnr at thumbnail size (else the best PSNR found).
    Returns payload, codec name and its PSNR."""
    h, w = thumbs[0].shape[:2]
    mosaic = np.concatenate(thumbs, axis=0)
    best = None
    for cid, fmt in IMAGE_CODECS.items():
        if fmt != "JPEG" and not features.check(fmt.lower()):
            continue  # this Pillow build cannot write it (AVIF needs Pillow >= 11.3)
        for q in QUALITIES:
            buf = io.BytesIO()
            Image.fromarray(mosaic).save(buf, format=fmt, quality=q)
            data = buf.getvalue()
            back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            p = _psnr(back, mosaic)
            ok = p >= target_psnr
            key = (not ok, len(data) if ok else -p)
            if best is None or key < best[0]:
                best = (key, cid, data, p)
            if ok:
                break  # higher qualities of this codec are only bigger
    _, cid, data, p = best
    return THUMB.pack(cid, w, h, len(thumbs)) + data, IMAGE_CODECS[cid], p


def _decode_thumbnails(raw: bytes, shots: int, bad) -> tuple[list[np.ndarray], str]:
    if len(raw) < THUMB.size:
        raise bad("thumbnail layer is too short")
    cid, w, h, n = THUMB.unpack_from(raw)
    if cid not in IMAGE_CODECS or n != shots or not (1 <= w <= 512 and 1 <= h <= 512):
        raise bad(f"thumbnail layer header is invalid (codec {cid}, {w}x{h}, {n} for {shots} shots)")
    if h * n > 65535:
        raise bad("thumbnail mosaic is too tall")
    fmt = IMAGE_CODECS[cid]
    try:
        with Image.open(io.BytesIO(raw[THUMB.size:]), formats=[fmt]) as im:
            if im.size != (w, h * n):  # checked before decoding any pixel: no image bombs
                raise bad(f"thumbnail image is {im.size[0]}x{im.size[1]}, the layer declares {w}x{h * n}")
            mosaic = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise bad(f"thumbnail image does not decode ({type(e).__name__})") from None
    return [mosaic[i * h:(i + 1) * h] for i in range(n)], fmt


def _decode_palette(raw: bytes, shots: int, bad) -> list[np.ndarray]:
    if len(raw) < PALETTE.size:
        raise bad("palette layer is too short")
    k, n = PALETTE.unpack_from(raw)
    if not 1 <= k <= 64 or n != shots or len(raw) != PALETTE.size + n * k * 4:
        raise bad(f"palette layer is inconsistent (k={k}, {n} entries for {shots} shots, {len(raw)} bytes)")
    arr = np.frombuffer(raw, np.uint8, offset=PALETTE.size).reshape(n, k, 4)
    return [arr[i].copy() for i in range(n)]


def _decode_sketch(raw: bytes, shots: int, bad) -> list[np.ndarray]:
    if len(raw) < SKETCH.size:
        raise bad("sketch layer is too short")
    w, h, n = SKETCH.unpack_from(raw)
    if not (1 <= w <= 1024 and 1 <= h <= 1024) or n != shots:
        raise bad(f"sketch layer header is invalid ({w}x{h}, {n} for {shots} shots)")
    need = (w * h * n + 7) // 8
    if len(raw) != SKETCH.size + need:
        raise bad(f"sketch layer holds {len(raw) - SKETCH.size} bytes, {w}x{h}x{n} needs {need}")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8, offset=SKETCH.size))[: w * h * n].astype(bool)
    return list(bits.reshape(n, h, w))


def read_stream(blob: bytes, where: str = "stream") -> SemanticStream:
    """Parse and validate a whole stream (container, then every layer's payload). SchemaError on anything."""
    def bad(msg: str) -> SchemaError:
        return SchemaError(f"{where}: {msg}")

    layers = bitstream.parse(blob, where)
    try:
        obj = json.loads(layers["scene"].data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(f"scene layer is not JSON ({type(e).__name__})") from None
    try:
        scene = SceneLayer.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise bad(f"invalid scene layer: {loc}: {err['msg']}"[:300]) from None
    n = len(scene.shots)
    out = SemanticStream(scene=scene, stored={k: v.stored_bytes for k, v in layers.items()}, size=len(blob))
    if "palette" in layers:
        out.palette = _decode_palette(layers["palette"].data, n, bad)
    if "thumbnail" in layers:
        out.thumbnails, out.thumb_codec = _decode_thumbnails(layers["thumbnail"].data, n, bad)
    if "sketch" in layers:
        out.sketches = _decode_sketch(layers["sketch"].data, n, bad)
    return out


def read_file(path: str | Path) -> SemanticStream:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > bitstream.MAX_STREAM:
            raise SchemaError(f"{p}: {size} bytes is over the {bitstream.MAX_STREAM >> 20} MiB stream limit")
        blob = p.read_bytes()
    except FileNotFoundError:
        raise CodecAssistError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise CodecAssistError(f"{p}: is a directory, not a stream") from None
    except OSError as e:
        raise CodecAssistError(f"{p}: cannot read ({e.strerror})") from None
    return read_stream(blob, str(p))


# ------------------------------------------------------------------------------------------------ encoder
def keyframes_rgb(path: str | Path, frames: list[int], width: int = 320) -> dict[int, np.ndarray]:
    """RGB proxy pictures of the given frames, in one streaming decode that stops after the last one."""
    info = media.probe(path)
    size = media.proxy_size(info.width, info.height, width)
    want, out = set(frames), {}
    for i, _frame, proxy in media.iter_proxy(path, size):
        if i in want:
            out[i] = np.ascontiguousarray(proxy.bgr[..., ::-1])
            if len(out) == len(want):
                break
    return out


def thumb_size(width: int, height: int, thumb_width: int) -> tuple[int, int]:
    return thumb_width, max(2, round(height * thumb_width / width))


def sketch_of(rgb: np.ndarray, width: int) -> np.ndarray:
    h = max(2, round(rgb.shape[0] * width / rgb.shape[1]))
    gray = cv2.cvtColor(cv2.resize(rgb, (width * 2, h * 2), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 60, 150)
    # max-pool 2x2: keep thin lines visible at the coarse size
    return edges.reshape(h, 2, width, 2).max(axis=(1, 3)) > 0


def build_layers(analysis: Analysis, arrays: dict[str, np.ndarray], keys: dict[int, np.ndarray],
                 options: SemanticOptions) -> tuple[dict[str, bytes], SceneLayer, dict]:
    v = analysis.video
    fps = Fraction(v.fps).limit_denominator(1001 * 1000)
    shots = analysis.shots
    mids = [(s.start_frame + s.end_frame - 1) // 2 for s in shots]
    palettes = [palette_of(keys[m], options.palette_k) for m in mids]
    facts = [shot_facts(analysis, arrays, s.start_frame, s.end_frame, keys[m], p)
             for s, m, p in zip(shots, mids, palettes)]
    captioner = "grammar"
    if options.captioner != "grammar":
        from codec_assist.models import image_captioner

        caption = image_captioner(options.captioner)
        for f, m in zip(facts, mids):
            f.caption = caption(keys[m])
        captioner = options.captioner
    scene = SceneLayer(width=v.width, height=v.height, fps_num=fps.numerator, fps_den=fps.denominator,
                       frames=v.frame_count, captioner=captioner[:200], shots=facts)
    layers = {"scene": encode_scene(scene)}
    extra: dict = {}
    if "palette" in options.layers:
        layers["palette"] = encode_palette(palettes)
    if "thumbnail" in options.layers:
        tw, th = thumb_size(v.width, v.height, options.thumb_width)
        thumbs = [cv2.resize(keys[m], (tw, th), interpolation=cv2.INTER_AREA) for m in mids]
        layers["thumbnail"], extra["thumb_codec"], extra["thumb_psnr"] = encode_thumbnails(thumbs, options.thumb_psnr)
    if "sketch" in options.layers:
        layers["sketch"] = encode_sketch([sketch_of(keys[m], options.sketch_width) for m in mids])
    return layers, scene, extra


def check_layers(names: list[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise CodecAssistError(f"unknown layer {', '.join(unknown)} (valid: {', '.join(LAYERS)})")
    return tuple(n for n in LAYERS if n == "scene" or n in names)  # scene always, in spec order


def layer_stats(stored: dict[str, int], raw: dict[str, int], codecs: dict[str, str], width: int, height: int,
                frames: int, duration: float) -> list[LayerStat]:
    pixels = width * height * frames
    return [LayerStat(name=k, stored_bytes=b, raw_bytes=raw.get(k, b), codec=codecs.get(k, ""),
                      kbps=b * 8 / duration / 1000, bpp=b * 8 / pixels) for k, b in stored.items()]


def encode_video(path: str | Path, options: SemanticOptions | None = None, analyze_options=None,
                 progress: bool = False, analyzed: tuple[Analysis, dict[str, np.ndarray]] | None = None,
                 limits=None) -> tuple[bytes, SceneLayer, dict]:
    """Analyse a video (unless `analyzed` already holds its analysis) and build its semantic stream.
    Returns (stream, scene, info)."""
    import codec_assist.media.decode as media
    from codec_assist.analysis.pipeline import analyze

    opt = options or SemanticOptions()
    t0 = time.perf_counter()
    analysis, arrays = analyzed or analyze(path, analyze_options, progress=progress,
                                           limits=limits or media.DEFAULT_LIMITS)
    mids = [(s.start_frame + s.end_frame - 1) // 2 for s in analysis.shots]
    keys = keyframes_rgb(path, mids)
    missing = [m for m in mids if m not in keys]
    if missing:
        raise CodecAssistError(f"{path}: frame {missing[0]} could not be decoded for the keyframe")
    layers, scene, extra = build_layers(analysis, arrays, keys, opt)
    blob, stored = bitstream.pack(layers)
    parsed = bitstream.parse(blob)  # never hand out a stream this reader would refuse
    v = analysis.video
    duration = v.frame_count / (scene.fps_num / scene.fps_den)
    info = {
        "analysis": analysis, "duration": duration, "seconds": time.perf_counter() - t0,
        "container_bytes": bitstream.overhead_bytes(len(layers)),
        "layers": layer_stats(stored, {k: len(b) for k, b in layers.items()},
                              {k: parsed[k].codec + ("+" + extra["thumb_codec"].lower() if k == "thumbnail" else "")
                               for k in parsed}, v.width, v.height, v.frame_count, duration),
        **extra,
    }
    return blob, scene, info


def format_layers(stats, container_bytes: int, total: int, pixels: int, duration: float) -> str:
    head = f"{'layer':<10} {'codec':<10} {'bytes':>7} {'kb/s':>8} {'bpp':>10}"
    lines = [head, "-" * len(head)]
    for s in stats:
        lines.append(f"{s.name:<10} {s.codec:<10} {s.stored_bytes:>7} {s.kbps:>8.3f} {s.bpp:>10.6f}")
    lines.append(f"{'container':<10} {'':<10} {container_bytes:>7} {container_bytes * 8 / duration / 1000:>8.3f} "
                 f"{container_bytes * 8 / pixels:>10.6f}")
    lines.append(f"{'total':<10} {'':<10} {total:>7} {total * 8 / duration / 1000:>8.3f} {total * 8 / pixels:>10.6f}")
    return "\n".join(lines)


def semantic_report(inp: Path, out: Path, blob: bytes, scene, info: dict):
    """What `semantic encode --report` writes: sizes per layer and the per-shot facts."""
    pixels = scene.width * scene.height * scene.frames
    return SemanticReport(
        input=str(inp), output=str(out), width=scene.width, height=scene.height, frames=scene.frames,
        duration=info["duration"], total_bytes=len(blob), container_bytes=info["container_bytes"],
        total_kbps=len(blob) * 8 / info["duration"] / 1000, total_bpp=len(blob) * 8 / pixels,
        layers=info["layers"], shots=scene.shots, seconds=info["seconds"])


