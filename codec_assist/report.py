"""`codec-assist report`: one self-contained HTML page that shows where the bits went, why, and what it bought.

Inputs (any mix, told apart by their `schema` field): an analysis (folder or analysis.json + npz), an encode
plan, an encode report, a compare report. What one lacks is looked up from the others: an encode report names
its plan, a plan names its analysis; with no analysis at all the recorded video is analysed again (default
options, noted in the page). Missing pieces (the video, the encodes) become a warning in the page, not an error.

The page has no scripts and no external references: images are PNG data: URIs, CSS is inline, every string
that came from a file (OCR text, transcript words, paths) is escaped.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, schemas
from .errors import CodecAssistError, InputError, SchemaError
from .schemas import Analysis, CompareReport, EncodePlan, EncodeReport, VideoInfo

log = logging.getLogger("codec_assist")

KINDS: dict[str, type] = {
    "codec-assist/analysis": Analysis,
    "codec-assist/plan": EncodePlan,
    "codec-assist/encode-report": EncodeReport,
    "codec-assist/compare-report": CompareReport,
}
NEED_ARRAYS = {
    Analysis: ("importance/frames", "importance/scalar", "importance/grid"),
    EncodePlan: ("qp/frames", "qp/offsets"),
}
OVERLAY_FRAMES = 3  # sampled frames in the QP overlay
MOMENTS = 6  # rows of the "why" table
OVERLAY_WIDTH = 480  # px of the decoded source frames drawn in the overlay
THUMB_WIDTH = 160


# ------------------------------------------------------------------------------------------------ inputs
def load_any(path: str | Path) -> tuple[Any, dict[str, np.ndarray], Path]:
    """Load an analysis, plan, encode report or compare report, whichever `path` holds."""
    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{p}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise SchemaError(f"{p}: not a codec-assist JSON file (analysis, plan, encode or compare report)") from None
    except OSError as e:
        raise SchemaError(f"{p}: cannot read ({e.strerror})") from None
    cls = KINDS.get(raw.get("schema")) if isinstance(raw, dict) else None
    if cls is None:
        found = raw.get("schema") if isinstance(raw, dict) else None
        raise SchemaError(f"{p}: not an analysis, plan, encode or compare report (schema {found!r})")
    model, arrays = schemas.load(cls, p, need_arrays=NEED_ARRAYS.get(cls, ()))
    if cls is EncodePlan:
        schemas.validate_plan_arrays(model, arrays, str(p))
    elif cls is Analysis:  # the same checks `plan` and `explain` make: the page indexes these arrays
        schemas.validate_analysis_arrays(model, arrays, str(p))
    return model, arrays, p


@dataclass
class Sources:
    """What the page is made from. Each part is optional; `warnings` and `notes` end up in the page."""

    analysis: Analysis | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    plan: EncodePlan | None = None
    plan_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    encode: EncodeReport | None = None
    compare: CompareReport | None = None
    layers: dict[str, int] | None = None  # semantic bitstream: layer -> bytes
    inputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def video(self) -> VideoInfo | None:
        for thing in (self.analysis, self.encode, self.compare):
            if thing is not None:
                return thing.video if isinstance(thing, Analysis) else thing.input
        return None


def gather(paths: list[str | Path]) -> Sources:
    src = Sources()
    for path in paths:
        model, arrays, p = load_any(path)
        src.inputs.append(str(p))
        if isinstance(model, Analysis):
            src.analysis, src.arrays = model, arrays
        elif isinstance(model, EncodePlan):
            src.plan, src.plan_arrays = model, arrays
        elif isinstance(model, EncodeReport):
            src.encode = model
        else:
            src.compare = model
    return src


def follow_links(src: Sources) -> None:
    """An encode report names its plan, a plan names its analysis: load what is missing."""
    if src.encode and src.encode.plan and src.plan is None:
        _try(src, "plan", src.encode.plan)
    if src.plan and src.plan.source and src.analysis is None:
        _try(src, "analysis", src.plan.source)


def _try(src: Sources, what: str, path: str) -> None:
    """Follow a path recorded in an artifact; a missing or broken one is a warning."""
    try:
        model, arrays, _ = load_any(path)
    except CodecAssistError as e:
        src.warnings.append(f"the {what} named in the inputs could not be read: {e}")
        return
    if what == "plan" and isinstance(model, EncodePlan):
        src.plan, src.plan_arrays = model, arrays
    elif what == "analysis" and isinstance(model, Analysis):
        src.analysis, src.arrays = model, arrays


def video_path(src: Sources) -> Path | None:
    """The video as recorded in any input, else a file of that name beside an input (they may move together)."""
    recorded = [Path(t.path) for t in (src.analysis and src.analysis.video, src.encode and src.encode.input,
                                        src.compare and src.compare.input) if t]
    for p in recorded:
        if p.is_file():
            return p
    for p in recorded:
        for inp in src.inputs:
            if (Path(inp).parent / p.name).is_file():
                return Path(inp).parent / p.name
    return None


def complete(src: Sources, analyze_options=None, plan_options=None) -> None:
    """Fill in an analysis and a plan where the inputs lack them (both are cheap next to an encode)."""
    from .pipeline import PlanOptions, analyze, make_plan

    info = src.video
    if info is None:
        raise CodecAssistError("nothing to report: give an analysis, a plan with its analysis, or a report")
    if src.analysis is None:
        vpath = video_path(src)
        if vpath is None:
            src.warnings.append(f"no analysis given and the video {info.path} is gone: no timeline, no 'why'")
        else:
            src.analysis, src.arrays = analyze(vpath, analyze_options)
            src.notes.append("No analysis was given, so the video was analysed again for this page "
                             "(default analyzers unless the command said otherwise).")
    assisted = (src.encode.result.assisted if src.encode else True)
    if src.plan is None and src.analysis is not None and assisted:
        codec = src.encode.result.codec if src.encode else src.compare.codec if src.compare else "x264"
        opt = (plan_options or PlanOptions()).model_copy(update={"codec": codec})
        src.plan, src.plan_arrays = make_plan(src.analysis, src.arrays, opt)
        src.notes.append(f"QP offsets shown are recomputed from the analysis for {codec} "
                         f"(max |ΔQP| {opt.max_dqp:g}, strength {opt.strength:g}).")


# ------------------------------------------------------------------------------------------------- moments
def peak_moments(scalar: np.ndarray, times: np.ndarray, k: int, min_gap: float = 1.0) -> list[int]:
    """Indices of the k most important analysis frames, at least `min_gap` seconds apart, in time order."""
    chosen: list[int] = []
    for i in np.argsort(-np.nan_to_num(scalar, nan=-1.0), kind="stable"):
        if all(abs(times[i] - times[j]) >= min_gap for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return sorted(chosen)


def decode_frames(path: Path, wanted: dict[int, int]) -> dict[int, np.ndarray]:
    """{frame index: width} -> {frame index: RGB array at that width}, in one streaming pass."""
    from . import media

    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    last = max(wanted)
    for i, frame in enumerate(media.iter_frames(path)):
        if i in wanted:
            w = min(wanted[i], frame.width)
            h = max(2, round(frame.height * w / frame.width))
            out[i] = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
        if i >= last:
            break
    return out


# ---------------------------------------------------------------------------------------- data extraction
def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """Read a field from a pydantic model or a dict, trying a few names (other branches name things freely)."""
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


def _span(obj: Any, fps: float) -> tuple[float, float] | None:
    t0, t1 = _get(obj, "start", "t0", "start_s", "time_start"), _get(obj, "end", "t1", "end_s", "time_end")
    if t0 is None or t1 is None:
        f0, f1 = _get(obj, "frame_start", "start_frame"), _get(obj, "frame_end", "end_frame")
        if f0 is None or f1 is None:
            return None
        t0, t1 = f0 / fps, f1 / fps
    return float(t0), float(t1)


def audio_segments(analysis: Analysis) -> list[tuple[float, float, str]]:
    out = []
    for seg in getattr(analysis, "audio_segments", None) or []:
        span = _span(seg, analysis.video.fps)
        if span:
            out.append((*span, str(_get(seg, "kind", "label", default="audio"))))
    return out


def transcript_keywords(analysis: Analysis, limit: int = 12) -> list[tuple[float, str]]:
    """Keyphrases placed where they are first said (their own time, else the first matching word/segment)."""
    tr = getattr(analysis, "transcript", None)
    if not tr:
        return []
    fps = analysis.video.fps
    words = [(w, _span(w, fps)) for w in _get(tr, "words", default=[]) or []]
    segments = [(s, _span(s, fps)) for s in _get(tr, "segments", default=[]) or []]
    out = []
    for kp in (_get(tr, "keyphrases", "keywords", default=[]) or [])[:limit]:
        text = kp if isinstance(kp, str) else str(_get(kp, "text", "phrase", "label", default=""))
        if not text:
            continue
        span = None if isinstance(kp, str) else _span(kp, fps)
        t = _get(kp, "time", default=None) if not isinstance(kp, str) else None
        if t is None and span:
            t = span[0]
        if t is None:
            head = text.lower().split()[0] if text.split() else ""
            t = next((s[0] for w, s in words if s and str(_get(w, "word", "text", default="")).strip(" .,!?").lower() == head), None)
        if t is None:
            t = next((s[0] for g, s in segments if s and text.lower() in str(_get(g, "text", default="")).lower()), None)
        if t is not None:
            out.append((float(t), text))
    return sorted(out)


def tags_of(*things: Any) -> list[str]:
    for thing in things:
        tags = getattr(thing, "tags", None) if thing is not None else None
        if tags:
            out = []
            for t in tags:
                label = t if isinstance(t, str) else _get(t, "label", "name", "tag", default=str(t))
                score = None if isinstance(t, str) else _get(t, "score", "confidence")
                out.append(f"{label} ({score:.2f})" if isinstance(score, (int, float)) else str(label))
            return out
    return []


def packet_bits(path: Path) -> np.ndarray:
    """Bits per frame in presentation order, from the container's packets (no decode)."""
    from . import media

    with media.open_input(path) as c:
        vs = c.streams.video[0]
        pk = sorted((p.pts, p.size) for p in c.demux(vs) if p.size and p.pts is not None)
    return np.asarray([s * 8 for _, s in pk], np.float64)


def shot_qp_stats(plan: EncodePlan, arrays: dict[str, np.ndarray], shots: list[tuple[int, int]]):
    from policies.qp import block_areas

    frames, offsets = arrays["qp/frames"], arrays["qp/offsets"]
    areas = block_areas(plan.width, plan.height, plan.block_size)
    mean, lo, hi, more = [], [], [], []
    for a, b in shots:
        sel = offsets[(frames >= a) & (frames < b)]
        if len(sel) == 0:
            mean.append(np.nan), lo.append(np.nan), hi.append(np.nan), more.append(0.0)
            continue
        mean.append(float((sel * areas).sum() / (areas.sum() * len(sel))))
        lo.append(float(np.percentile(sel, 5)))
        hi.append(float(np.percentile(sel, 95)))
        more.append(float((sel < 0).mean()))
    return mean, lo, hi, more


# ----------------------------------------------------------------------------------------------- figures
@dataclass
class Built:
    title: str
    caption: str
    png: bytes
    stem: str
    fig: Any = None  # kept only when the caller wants SVGs too


def build_figures(src: Sources, keep_figs: bool = False) -> tuple[list[Built], list[dict]]:
    """All figures that the sources allow, plus the 'why' rows (time, frame, thumbnail, tokens)."""
    from . import figures as F
    from policies.qp import offsets_at

    built: list[Built] = []

    def add(stem: str, title: str, caption: str, fig) -> None:
        built.append(Built(title, caption, F.png_bytes(fig), stem, fig if keep_figs else None))

    info = src.video
    a, arr = src.analysis, src.arrays
    vpath = video_path(src)
    moments: list[int] = []
    times = np.zeros(0)
    if a is not None:
        frames = arr["importance/frames"].astype(np.int64)
        times = frames / a.video.fps
        scalar = arr["importance/scalar"].astype(np.float64)
        moments = peak_moments(scalar, times, MOMENTS)
    overlay_idx = sorted(sorted(moments, key=lambda i: -scalar[i])[:OVERLAY_FRAMES]) if moments else []

    # One decode pass for every picture the page needs.
    pictures: dict[int, np.ndarray] = {}
    if a is not None and vpath is not None:
        wanted = {int(frames[i]): THUMB_WIDTH for i in moments}
        if src.plan is not None:
            wanted.update({int(frames[i]): OVERLAY_WIDTH for i in overlay_idx})
        try:
            pictures = decode_frames(vpath, wanted)
        except InputError as e:
            src.warnings.append(f"could not decode frames from the video: {e}")
    elif a is not None:
        src.warnings.append(f"the video {info.path} is gone: no QP overlay and no thumbnails")

    if a is not None:
        keyframes = (src.encode.result.keyframes if src.encode else src.plan.keyframes if src.plan else [])
        signals = {k.split("/", 1)[1]: v for k, v in arr.items() if k.startswith("signal/") and v.shape == times.shape}
        tl = F.Timeline(duration=a.video.duration, times=times, importance=scalar,
                        cuts=[c / a.video.fps for c in a.cut_frames], keyframes=[k / a.video.fps for k in keyframes],
                        signals=signals, segments=audio_segments(a), keywords=transcript_keywords(a),
                        moments=[float(times[i]) for i in moments])
        add("timeline", "Importance timeline",
            "How much each moment matters (the fused importance map, mean of its top-decile cells) with the shot "
            "cuts (dashed), the keyframes (red triangles: "
            + ("found in the encoded file" if src.encode else "planned") + ") and the numbered key moments "
            "explained below. Lower panels: the analyzers' signals and, when present, the audio segments and "
            "transcript keywords.", F.timeline(tl))

    if src.plan is not None and src.plan_arrays and a is not None and overlay_idx:
        plan, pa = src.plan, src.plan_arrays
        qf = pa["qp/frames"].tolist()
        rows = []
        for i in overlay_idx:
            f = int(frames[i])
            grid = offsets_at(f, qf, pa["qp/offsets"], plan.shot_starts)
            if f in pictures and grid is not None:
                cov = (plan.width / (plan.blocks_x * plan.block_size), plan.height / (plan.blocks_y * plan.block_size))
                rows.append(F.OverlayFrame(frame=f, time=f / plan.fps, rgb=pictures[f], offsets=grid, covered=cov))
        if rows:
            add("qp_overlay", "QP offsets on sampled frames",
                "The most important moments: the source frame and, beside it, the planned per-block QP offsets "
                "over it. Red blocks get more bits (negative offset), blue ones fewer; white is unchanged.",
                F.qp_overlay(rows, plan.max_dqp, plan.block_size, plan.codec))

    shots = ([(s.start_frame, s.end_frame) for s in a.shots] if a is not None else
             _shots_from_plan(src.plan) if src.plan is not None else [])
    encodes = _encodes(src)
    if shots and encodes:
        bits = {}
        for label, path in encodes.items():
            if Path(path).is_file():
                bits[label] = packet_bits(Path(path))
            else:
                src.warnings.append(f"encoded file {path} is gone: not in the bits-per-shot figure")
        if bits:
            stats = shot_qp_stats(src.plan, src.plan_arrays, shots) if src.plan is not None and src.plan_arrays else None
            factors = _zone_factors(src.plan, shots) if src.plan is not None else None
            sb = F.ShotBits(fps=info.fps, shots=shots, frame_bits=bits,
                            qp_mean=stats[0] if stats else None, qp_low=stats[1] if stats else None,
                            qp_high=stats[2] if stats else None, qp_more_bits=stats[3] if stats else None,
                            bitrate_factors=factors)
            add("bits_per_shot", "Bits and QP per shot",
                "Top: the bitrate each shot got, summed from the encoded packets. Bottom: the planned QP offsets "
                "inside each shot; each frame's offsets average to 0 (rate-neutral), so the spread shows how "
                "strongly bits were moved inside the picture.", F.bits_per_shot(sb))

    if src.compare is not None and src.compare.points:
        add("rd_curves", "Rate–distortion curves",
            "Quality against bitrate for the plain encoder and codec-assist, whole frame and inside each ROI "
            "(an independent, hand-given region). BD-rate: bitrate change at equal quality.",
            F.rd_curves(_rd_panels(src.compare), f"{src.compare.codec} {src.compare.preset}"))

    if src.layers:
        add("layer_sizes", "Semantic bitstream layers", "Bytes per layer of the semantic bitstream.",
            F.layer_sizes(src.layers))

    why = []
    if a is not None:
        for n, i in enumerate(moments, 1):
            f = int(frames[i])
            ids = a.importance.top_tokens[i] if i < len(a.importance.top_tokens) else []
            toks = [a.tokens[j] for j in ids if 0 <= j < len(a.tokens)]
            why.append({"n": n, "frame": f, "time": f / a.video.fps, "importance": float(scalar[i]),
                        "thumb": _jpeg(pictures[f]) if f in pictures else None,
                        "tokens": [(t.label, t.source, t.score) for t in toks]})
    return built, why


def _shots_from_plan(plan: EncodePlan) -> list[tuple[int, int]]:
    starts = sorted(set(plan.shot_starts) | {0})
    return list(zip(starts, starts[1:] + [plan.frame_count]))


def _encodes(src: Sources) -> dict[str, str]:
    if src.encode is not None:
        r = src.encode.result
        return {f"{'assisted' if r.assisted else 'plain'} {r.bitrate_kbps:.0f} kb/s": r.output}
    if src.compare is not None and src.compare.points:
        p = src.compare.points[len(src.compare.points) // 2]  # the middle rate
        return {f"baseline {p.baseline.bitrate_kbps:.0f} kb/s": p.baseline.output,
                f"assisted {p.assisted.bitrate_kbps:.0f} kb/s": p.assisted.output}
    return {}


def _zone_factors(plan: EncodePlan, shots: list[tuple[int, int]]) -> list[float | None] | None:
    if not plan.zones:
        return None
    out = []
    for a, _b in shots:
        z = next((z for z in plan.zones if z.start_frame <= a <= z.end_frame and z.bitrate_factor), None)
        out.append(z.bitrate_factor if z else None)
    return out


def _rd_panels(c: CompareReport):
    from .figures import RdPanel

    def curve(side: str, metric):
        qs = [getattr(p, side).quality for p in c.points]
        return [q.bitrate_kbps for q in qs], [metric(q) for q in qs]

    panels = [RdPanel("Whole frame", "PSNR-Y (dB)", curve("baseline", lambda q: q.psnr_y),
                      curve("assisted", lambda q: q.psnr_y), c.bd_rate.get("psnr_y"))]
    for key in c.points[0].baseline.quality.roi_psnr_y:
        panels.append(RdPanel(f"ROI {key}", "PSNR-Y in ROI (dB)",
                              curve("baseline", lambda q, k=key: q.roi_psnr_y[k]),
                              curve("assisted", lambda q, k=key: q.roi_psnr_y[k]), c.bd_rate.get(f"roi_psnr_y[{key}]")))
    return panels


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    img = Image.fromarray(rgb)
    if img.width > THUMB_WIDTH:  # the frame may have been decoded larger for the overlay
        img = img.resize((THUMB_WIDTH, max(2, round(img.height * THUMB_WIDTH / img.width))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------- HTML
CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1.5em;color:#222;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.92em;max-width:60em}.warn{background:#fff4e5;border-left:4px solid #f0a020;
padding:.4em .8em;margin:.4em 0}.note{background:#eef5ff;border-left:4px solid #4a8ad4;padding:.4em .8em;
margin:.4em 0}.tag{display:inline-block;background:#eef;border-radius:1em;padding:.1em .7em;margin:.15em}
.muted{color:#777}code{background:#f6f6f6;padding:0 .2em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td class='n'>{_e(v)}</td>" if j in numeric else f"<td>{_e(v)}</td>"
                                    for j, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _facts(v: VideoInfo) -> str:
    audio = "; ".join(f"{a.codec} {a.sample_rate} Hz × {a.channels}" for a in v.audio) or "none"
    rows = [["file", v.path], ["container / codec", f"{v.container} / {v.codec} ({v.pix_fmt})"],
            ["frame size", f"{v.width}×{v.height}" + (f", rotated {v.rotation}°" if v.rotation else "")],
            ["frame rate", f"{v.fps:.3f} fps"], ["frames / duration", f"{v.frame_count} frames, {v.duration:.2f} s"],
            ["source bitrate", f"{v.bit_rate / 1000:.0f} kb/s" if v.bit_rate else "unknown"], ["audio", audio]]
    return _table(["", ""], rows).replace("<thead><tr><th></th><th></th></tr></thead>", "")


def _metrics(src: Sources) -> str:
    parts = []
    if src.encode is not None:
        r = src.encode.result
        q = r.quality
        row = [("assisted" if r.assisted else "plain") + f" {r.codec} {r.preset}", r.rate.describe(),
               f"{r.bitrate_kbps:.1f}", f"{q.psnr_y:.2f}" if q else "–", f"{q.ssim_y:.4f}" if q else "–",
               ", ".join(f"{k}: {v:.2f}" for k, v in q.roi_psnr_y.items()) if q and q.roi_psnr_y else "–",
               f"{r.seconds_analysis:.2f}", f"{r.seconds_encode:.2f}"]
        parts.append(_table(["encode", "rate control", "kb/s", "PSNR-Y dB", "SSIM-Y", "ROI PSNR-Y dB",
                             "analysis s", "encode s"], [row], {2, 3, 4, 6, 7}))
        parts.append(f"<p>IDR frames in the output: {_e(r.keyframes)}</p>")
    if src.compare is not None:
        c = src.compare
        rois = list(c.points[0].baseline.quality.roi_psnr_y) if c.points else []
        head = ["target", "kb/s base", "kb/s asst", "ratio", "PSNR-Y base", "PSNR-Y asst", "Δ dB",
                "SSIM-Y base", "SSIM-Y asst"] + [f"ROI {k} Δ dB" for k in rois]
        rows = []
        for p in c.points:
            b, a = p.baseline.quality, p.assisted.quality
            rows.append([p.rate.describe(), f"{b.bitrate_kbps:.1f}", f"{a.bitrate_kbps:.1f}", f"{p.bitrate_ratio:.3f}",
                         f"{b.psnr_y:.2f}", f"{a.psnr_y:.2f}", f"{p.psnr_y_delta:+.2f}", f"{b.ssim_y:.4f}",
                         f"{a.ssim_y:.4f}"] + [f"{p.roi_psnr_y_delta[k]:+.2f}" for k in rois])
        parts.append(f"<p>{_e(c.codec)} preset {_e(c.preset)}, baseline = the same encoder and rate, unassisted, "
                     "same run.</p>")
        parts.append(_table(head, rows, set(range(1, len(head)))))
        if c.bd_rate:
            parts.append(_table(["BD-rate metric", "assisted vs baseline"],
                                [[k, f"{v:+.1f} %" if v is not None else "n/a"] for k, v in c.bd_rate.items()], {1}))
            parts.append("<p class='muted'>Negative BD-rate = fewer bits for the same quality.</p>")
        parts.append(f"<p>Analysis {c.seconds_analysis:.2f} s; (analysis + assisted encode) / plain encode = "
                     f"{c.speed_ratio:.2f}× wall time (mean over rates).</p>")
    return "".join(parts) or "<p class='muted'>No encode measured: give an encode or compare report.</p>"


def _why(rows: list[dict]) -> str:
    if not rows:
        return "<p class='muted'>No analysis, so no moments to explain.</p>"
    out = ["<table><thead><tr><th>#</th><th>time</th><th>frame</th><th>importance</th><th>picture</th>"
           "<th>why: tokens (label · source · score)</th></tr></thead><tbody>"]
    for r in rows:
        img = (f"<img src='{_data_uri(r['thumb'], 'image/jpeg')}' alt='frame {r['frame']}' width='{THUMB_WIDTH}'>"
               if r["thumb"] else "<span class='muted'>video not available</span>")
        toks = "<br>".join(f"<b>{_e(label)}</b> · {_e(source)} · {score:.2f}" for label, source, score in r["tokens"])
        toks = toks or "<span class='muted'>no region token: picture-level saliency (motion, detail) only</span>"
        out.append(f"<tr><td class='n'>{r['n']}</td><td class='n'>{r['time']:.2f} s</td><td class='n'>{r['frame']}</td>"
                   f"<td class='n'>{r['importance']:.2f}</td><td>{img}</td><td>{toks}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(src: Sources, built: list[Built], why: list[dict]) -> str:
    v = src.video
    name = Path(v.path).name if v else "codec-assist"
    a = src.analysis
    body = [f"<h1>codec-assist report: {_e(name)}</h1>",
            f"<p class='muted'>codec-assist {_e(__version__)} · {_e(time.strftime('%Y-%m-%d %H:%M'))} · made from "
            f"{', '.join('<code>' + _e(p) + '</code>' for p in src.inputs)}</p>"]
    body += [f"<div class='warn'>⚠ {_e(w)}</div>" for w in src.warnings]
    body += [f"<div class='note'>{_e(n)}</div>" for n in src.notes]
    body.append("<h2>The video</h2>")
    body.append(_facts(v) if v else "<p class='muted'>unknown</p>")
    tags = tags_of(a, src.encode, src.compare)
    if tags:
        body.append("<p>Tags: " + "".join(f"<span class='tag'>{_e(t)}</span>" for t in tags) + "</p>")
    if a is not None:
        runs = ", ".join(f"{r.name} {r.seconds:.2f} s" + ("" if r.status == "ok" else f" ({r.status}: {r.message})")
                         for r in a.analyzers)
        body.append(f"<p>{len(a.shots)} shot(s), cuts at frames {_e(a.cut_frames)}; {len(a.tokens)} region tokens; "
                    f"{len(a.analysis_frames)} analysed frames on a {a.proxy_width}×{a.proxy_height} proxy in "
                    f"{a.seconds:.2f} s ({_e(runs)}).</p>")
    if src.plan is not None:
        p = src.plan
        body.append(f"<p>Plan: {_e(p.codec)}, QP offsets within ±{p.max_dqp:g} on {p.blocks_x}×{p.blocks_y} blocks "
                    f"of {p.block_size} px, IDR frames at {_e(p.keyframes)}.</p>")
    body.append("<h2>Metrics</h2>")
    body.append(_metrics(src))
    for b in built:
        body.append(f"<h2>{_e(b.title)}</h2><figure><img src='{_data_uri(b.png, 'image/png')}' alt='{_e(b.title)}'>"
                    f"<figcaption>{_e(b.caption)}</figcaption></figure>")
    body.append("<h2>Why: the most important moments</h2>")
    body.append("<p>For each peak of importance (numbered as on the timeline), the region tokens that weighed most "
                "there — faces, text, sounds — as the analyzers labelled them.</p>")
    body.append(_why(why))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>codec-assist: {_e(name)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(src: Sources, output: str | Path, figures_dir: str | Path | None = None) -> dict:
    """Build the figures and the page in memory, then write the page (and figure files) atomically."""
    from . import figures as F
    from .safeio import atomic_write_bytes

    built, why = build_figures(src, keep_figs=figures_dir is not None)
    page = render_html(src, built, why)
    written = []
    if figures_dir is not None:
        d = Path(figures_dir)
        d.mkdir(parents=True, exist_ok=True)
        for b in built:
            atomic_write_bytes(d / f"{b.stem}.png", b.png)
            atomic_write_bytes(d / f"{b.stem}.svg", F.svg_bytes(b.fig))
            written += [str(d / f"{b.stem}.png"), str(d / f"{b.stem}.svg")]
    atomic_write_bytes(output, page.encode("utf-8"))
    return {"output": str(output), "figures": [b.stem for b in built], "files": written,
            "moments": len(why), "warnings": src.warnings, "bytes": len(page)}


def report(inputs: list[str | Path], output: str | Path, *, figures_dir=None, analysis=None, arrays=None,
           plan=None, plan_arrays=None, encode=None, compare=None, layers=None, analyze_options=None,
           plan_options=None) -> dict:
    """Library entry point: artifacts on disk and/or in memory -> report.html. Returns a summary dict."""
    src = gather(list(inputs))
    if analysis is not None:
        src.analysis, src.arrays = analysis, arrays or {}
    if plan is not None:
        src.plan, src.plan_arrays = plan, plan_arrays or {}
    src.encode = encode or src.encode
    src.compare = compare or src.compare
    src.layers = layers
    follow_links(src)
    complete(src, analyze_options, plan_options)
    return write_report(src, output, figures_dir)


# ---------------------------------------------------------------------------------------------------- CLI
def register(sub) -> None:
    from .cli import FMT, add_analysis_knobs

    r = sub.add_parser("report", help="one self-contained HTML page: timeline, QP maps, bits per shot, RD curves",
                       formatter_class=FMT,
                       description="Turn an analysis, a plan, an encode report and/or a compare report (any mix; "
                       "each is recognised by its schema) into one HTML file with the figures inlined. Opens "
                       "offline in any browser.")
    r.add_argument("inputs", nargs="+", metavar="ANALYSIS_OR_REPORT",
                   help="analysis folder/JSON, plan JSON, encode report JSON or compare report JSON")
    r.add_argument("-o", "--output", required=True, help="HTML file to write")
    r.add_argument("--figures", metavar="DIR", help="also write every figure as PNG and SVG into this folder")
    r.add_argument("--json", action="store_true", help="print a JSON summary instead of a line")
    add_analysis_knobs(r)
    r.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from .cli import _analyze_options
    from .safeio import check_output

    inputs = [Path(p) / "analysis.json" if Path(p).is_dir() else Path(p) for p in args.inputs]
    out = check_output(args.output, *inputs, *(schemas.arrays_path(p) for p in inputs))
    t = time.perf_counter()
    summary = report(inputs, out, figures_dir=args.figures, analyze_options=_analyze_options(args))
    summary["seconds"] = round(time.perf_counter() - t, 3)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        warn = f", {len(summary['warnings'])} warning(s)" if summary["warnings"] else ""
        print(f"{out}: {len(summary['figures'])} figures ({', '.join(summary['figures'])}), "
              f"{summary['moments']} key moments{warn}, {summary['bytes'] / 1024:.0f} KiB in {summary['seconds']:.2f}s")
    for w in summary["warnings"]:
        log.warning("%s", w)
    return 0
