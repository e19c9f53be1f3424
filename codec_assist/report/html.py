"""`codec-assist report`: one self-contained HTML page that shows where the bits went, why, and what it bought.

Inputs (any mix, told apart by their `schema` field): an analysis (folder or analysis.json + npz), an encode
plan, an encode report, a compare report, a tag report (`tag -o`), a semantic report (`semantic encode --report`). What one lacks is looked up from the others: an encode report names
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

from codec_assist import __version__

from codec_assist import schemas
from codec_assist.errors import CodecAssistError, InputError, SchemaError
from codec_assist.schemas import (AllocationInfo, Analysis, CompareReport, EncodePlan, EncodeReport, HullLadderReport,
                                  LadderReport, SemanticReport,
                      TagReport, VideoInfo)

log = logging.getLogger("codec_assist")

KINDS: dict[str, type] = {
    "codec-assist/analysis": Analysis,
    "codec-assist/plan": EncodePlan,
    "codec-assist/encode-report": EncodeReport,
    "codec-assist/compare-report": CompareReport,
    "codec-assist/tags": TagReport,
    "codec-assist/semantic-report": SemanticReport,
    "codec-assist/ladder-report": LadderReport,
    "codec-assist/hull-ladder": HullLadderReport,
}
WHAT = "analysis, plan, encode/compare/ladder/hull-ladder report, tag report or semantic report"
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
    """Load whichever of KINDS `path` holds."""
    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{p}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise SchemaError(f"{p}: not a codec-assist JSON file ({WHAT})") from None
    except OSError as e:
        raise SchemaError(f"{p}: cannot read ({e.strerror})") from None
    cls = KINDS.get(raw.get("schema")) if isinstance(raw, dict) else None
    if cls is None:
        found = raw.get("schema") if isinstance(raw, dict) else None
        raise SchemaError(f"{p}: not an {WHAT} (schema {found!r})")
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
    tags: TagReport | None = None
    semantic: SemanticReport | None = None
    ladder: LadderReport | None = None
    hull: HullLadderReport | None = None
    layers: dict[str, int] | None = None  # semantic bitstream: layer -> bytes (else from `semantic`)
    inputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def video(self) -> VideoInfo | None:
        for thing in (self.analysis, self.encode, self.compare, self.tags, self.ladder, self.hull):
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
        elif isinstance(model, TagReport):
            src.tags = model
        elif isinstance(model, SemanticReport):
            src.semantic = model
        elif isinstance(model, LadderReport):
            src.ladder = model
        elif isinstance(model, HullLadderReport):
            src.hull = model
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
                                        src.compare and src.compare.input, src.tags and src.tags.input,
                                        src.ladder and src.ladder.input) if t]
    if src.semantic is not None:
        recorded.append(Path(src.semantic.input))
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
    from codec_assist.analysis.pipeline import analyze
    from codec_assist.planning.plan import PlanOptions, make_plan

    info = src.video
    if info is None and src.semantic is not None:
        return  # a semantic report alone: its layers and captions are the page
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
        codec = (src.encode.result.codec if src.encode else src.compare.codec if src.compare
                 else src.ladder.codec if src.ladder else "x264")
        opt = (plan_options or PlanOptions()).model_copy(update={"codec": codec})
        src.plan, src.plan_arrays = make_plan(src.analysis, src.arrays, opt)
        src.notes.append(f"QP offsets shown are recomputed from the analysis for {codec} "
                         f"(max |ΔQP| {opt.max_dqp:g}, strength {opt.strength:g}).")


# ------------------------------------------------------------------------------------------------- moments
def decode_frames(path: Path, wanted: dict[int, int]) -> dict[int, np.ndarray]:
    """{frame index: width} -> {frame index: RGB array at that width}, in one streaming pass."""
    import codec_assist.media.decode as media

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
def audio_segments(analysis: Analysis) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, s.kind) for s in analysis.audio_segments]


def _bare(word: str) -> str:
    return word.strip(" .,!?;:\"'()-").lower()


def transcript_keywords(analysis: Analysis, limit: int = 12) -> list[tuple[float, str]]:
    """Each keyphrase once, where it is first said: the time of its first word in the segment's word timings,
    else the segment's start (subtitles have no word times). The first `limit` in time order."""
    if analysis.transcript is None:
        return []
    seen: set[str] = set()
    out = []
    for seg in analysis.transcript.segments:
        for phrase in seg.keyphrases:
            key = phrase.lower().strip()
            if not key or key in seen:
                continue
            seen.add(key)
            head = _bare(key.split()[0])
            out.append((float(next((w0 for w0, _w1, word, _p in seg.words if _bare(word) == head), seg.start)), phrase))
    return sorted(out)[:limit]


def allocation_of(src: Sources) -> AllocationInfo | None:
    """Per-shot allocation (encode --allocate / --target-quality): the encode's record, else the plan's."""
    if src.encode is not None and src.encode.result.allocation is not None:
        return src.encode.result.allocation
    return src.plan.allocation if src.plan is not None else None


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
    import codec_assist.report.figures as F
    from codec_assist.report.explain import describe_token, explain
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
        # the same moments and tokens as `codec-assist explain --top MOMENTS`
        explained = explain(a, arr, top=MOMENTS)
        moments = [int(np.searchsorted(frames, m.frame)) for m in explained.moments]
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
        keyframes = (src.encode.result.keyframes if src.encode else src.plan.forced_keyframes if src.plan else [])
        signals = {k.split("/", 1)[1]: v for k, v in arr.items() if k.startswith("signal/") and v.shape == times.shape}
        # the audio classes' probabilities go with their segments; the rest (motion, loudness...) share a panel
        heard = {x.kind for x in a.audio_segments}
        audio = {k: signals.pop(k) for k in F.SEGMENT_COLOURS if k in signals and a.audio_segments}
        audio = {k: v for k, v in audio.items() if k in heard or np.nanmax(v, initial=0) > 0.1}  # silent classes: noise
        signals.pop("loudness_norm", None)  # loudness again, rescaled: nothing new once both are min-max scaled
        signals = {k: v for k, v in signals.items() if np.ptp(np.nan_to_num(v)) > 1e-6}  # a flat line says nothing
        units = {x.name: x.unit for x in a.signals if x.unit in ("LUFS", "dB")}  # ranges like 0..1 say nothing more
        signals = {f"{k}, {units[k]}" if k in units else k: v for k, v in signals.items()}
        tl = F.Timeline(duration=a.video.duration, times=times, importance=scalar,
                        cuts=[c / a.video.fps for c in a.cut_frames], keyframes=[k / a.video.fps for k in keyframes],
                        signals=signals, segments=audio_segments(a), keywords=transcript_keywords(a),
                        audio_signals=audio, moments=[float(times[i]) for i in moments])
        add("timeline", "Importance timeline",
            "How much each moment matters (the fused importance map, mean of its top-decile cells) with the shot "
            "cuts (dashed), the keyframes (red triangles: "
            + ("found in the encoded file" if src.encode else "planned") + ") and the numbered key moments "
            "explained below. Lower panels: the analyzers' signals and, when present, the audio: speech / music / "
            "singing segments as bands over their probabilities, and transcript keyphrases where first said.",
            F.timeline(tl))

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

    alloc = allocation_of(src)
    shots = ([(x.start_frame, x.end_frame) for x in alloc.shots] if alloc and alloc.shots else
             [(s.start_frame, s.end_frame) for s in a.shots] if a is not None else
             _shots_from_plan(src.plan) if src.plan is not None else [])
    encodes = _encodes(src)
    if shots and encodes:
        from codec_assist.media.decode import packet_bits

        bits = {}
        for label, path in encodes.items():
            if Path(path).is_file():
                bits[label] = packet_bits(Path(path)).astype(np.float64)
            else:
                src.warnings.append(f"encoded file {path} is gone: not in the bits-per-shot figure")
        if bits:
            stats = shot_qp_stats(src.plan, src.plan_arrays, shots) if src.plan is not None and src.plan_arrays else None
            factors = (_zone_factors(src.plan, shots) if src.plan is not None else None)
            if alloc:
                factors = [x.bitrate_factor for x in alloc.shots]
            sb = F.ShotBits(fps=info.fps, shots=shots, frame_bits=bits,
                            qp_mean=stats[0] if stats else None, qp_low=stats[1] if stats else None,
                            qp_high=stats[2] if stats else None, qp_more_bits=stats[3] if stats else None,
                            bitrate_factors=factors)
            caption = ("Top: the bitrate each shot got, summed from the encoded packets. Bottom: the planned QP "
                       "offsets inside each shot; each frame's offsets average to 0 (rate-neutral), so the spread "
                       "shows how strongly bits were moved inside the picture.")
            if alloc:
                fps = info.fps
                if alloc.mode == "budget" and any(x.bits for x in alloc.shots):
                    sb.planned_kbps = [x.bits / max(1, x.end_frame - x.start_frame) * fps / 1000 if x.bits else None
                                       for x in alloc.shots]
                    caption += (" Black ticks: the bits the allocation planned for each shot (its share of the "
                                "budget, by importance and complexity); ×: the zone's bitrate multiplier.")
                if alloc.mode == "target-quality":
                    sb.quality = F.ShotQuality(metric=alloc.metric or "quality", target=alloc.target,
                                               achieved=[x.achieved for x in alloc.shots],
                                               predicted=[x.predicted for x in alloc.shots],
                                               crf=[x.crf for x in alloc.shots])
                    caption += (f" Quality panel: each shot's {alloc.metric} on the final encode against the "
                                "target, with the CRF chosen for it.")
            add("bits_per_shot", "Bits and QP per shot", caption, F.bits_per_shot(sb))

    if src.compare is not None and src.compare.points:
        add("rd_curves", "Rate–distortion curves",
            "Quality against bitrate for the plain encoder, codec-assist and the peer (the encoder with its own "
            "tools on) on each metric, whole frame and inside each ROI (an independent, hand-given region). "
            "BD-rate: bitrate change at equal quality. " + METRIC_NOTE,
            F.rd_curves(_rd_panels(src.compare), f"{src.compare.codec} {src.compare.preset}"))

    if src.hull is not None:
        add("hull", "Per-shot convex hulls",
            "Each shot's probes (kb/s, VMAF at display size) per resolution and their upper convex hulls; the "
            "stars are where each rung of the ladder placed the shot (equal slope across shots).",
            F.hull_figure(src.hull))

    layers = src.layers or ({x.name: x.stored_bytes for x in src.semantic.layers} if src.semantic else None)
    if layers:
        add("layer_sizes", "Semantic bitstream layers",
            "Bytes per layer of the semantic stream (the scene layer holds the per-shot captions and facts "
            "listed below).", F.layer_sizes(layers))

    why = []
    if a is not None:
        for n, (i, m) in enumerate(zip(moments, explained.moments), 1):
            f = int(frames[i])
            why.append({"n": n, "frame": f, "time": f / a.video.fps, "importance": float(scalar[i]),
                        "thumb": _jpeg(pictures[f]) if f in pictures else None,
                        "tokens": [describe_token(t, explained.queries) for t in m.tokens]})
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


WHOLE_FRAME_METRICS = (("psnr_y", "PSNR-Y", "PSNR-Y (dB)"), ("ssim_y", "SSIM-Y", "SSIM-Y"),
                       ("xpsnr_y", "XPSNR-Y", "XPSNR-Y (dB)"), ("vmaf", "VMAF", "VMAF (libvmaf, motion on)"))
METRIC_NOTE = ("PSNR punishes any redistribution of bits inside a frame — x264/x265's own adaptive quantisation "
               "as much as codec-assist's — while VMAF, the viewer's proxy, and XPSNR weigh errors by what masks "
               "them: read them side by side.")


def _measured(c: CompareReport, name: str) -> bool:
    return all(getattr(getattr(p, side).quality, name) is not None for p in c.points for side in ("baseline", "assisted"))


def _rd_panels(c: CompareReport):
    from codec_assist.report.figures import RdPanel

    def curve(side: str, metric):
        qs = [getattr(p, side).quality for p in c.points]
        return [q.bitrate_kbps for q in qs], [metric(q) for q in qs]

    has_peer = c.peer is not None and all(p.peer is not None for p in c.points)

    def panel(title: str, ylabel: str, key: str, metric) -> RdPanel:
        return RdPanel(title, ylabel, curve("baseline", metric), curve("assisted", metric), c.bd_rate.get(key),
                       peer=curve("peer", metric) if has_peer else None,
                       peer_label=f"peer ({c.peer.label()})" if has_peer else "peer",
                       bd_rate_peer=c.bd_rate_peer.get(key), bd_rate_vs_peer=c.bd_rate_vs_peer.get(key))

    panels = [panel(f"Whole frame {label}", ylabel, name, lambda q, n=name: getattr(q, n))
              for name, label, ylabel in WHOLE_FRAME_METRICS if _measured(c, name)]
    for key in c.points[0].baseline.quality.roi_psnr_y:
        panels.append(panel(f"ROI {key}", "PSNR-Y in ROI (dB)", f"roi_psnr_y[{key}]",
                            lambda q, k=key: q.roi_psnr_y.get(k, float("nan"))))
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
    if src.ladder is not None:
        parts.append(_ladder(src.ladder))
    if src.hull is not None:
        parts.append(_hull(src.hull))
    alloc = allocation_of(src)
    if alloc is not None:
        parts.append(_allocation(alloc, src.video.fps if src.video else 0.0))
    if src.compare is not None:
        c = src.compare
        rois = list(c.points[0].baseline.quality.roi_psnr_y) if c.points else []
        shown = [(n, label) for n, label, _ in WHOLE_FRAME_METRICS if _measured(c, n)]
        head = ["target", "encode", "kb/s"] + [label for _, label in shown] + [f"ROI {k} PSNR-Y" for k in rois]
        rows = []
        for p in c.points:
            sides = [("plain", p.baseline), ("assisted", p.assisted)]
            if p.peer is not None and c.peer is not None:
                sides.append((f"peer ({c.peer.label()})", p.peer))
            for k, (name, r) in enumerate(sides):
                q = r.quality
                cell = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
                rows.append([p.rate.describe() if k == 0 else "", name, f"{q.bitrate_kbps:.1f}"]
                            + [cell(getattr(q, n), ".4f" if n == "ssim_y" else ".2f") for n, _ in shown]
                            + [cell(q.roi_psnr_y.get(key), ".2f") for key in rois])
        peer = (f" Peer = the same encoder with its own tools on: {_e(c.peer.label())} ({_e(c.peer.tune_reason)})."
                if c.peer is not None else "")
        parts.append(f"<p>{_e(c.codec)} preset {_e(c.preset)}, baseline (plain) = the same encoder and rate, "
                     f"unassisted, same run.{peer}</p>")
        parts.append(_table(head, rows, set(range(2, len(head)))))
        if c.bd_rate:
            pairs = [("assisted vs plain", c.bd_rate)]
            if c.peer is not None:
                pairs += [("peer vs plain", c.bd_rate_peer), ("assisted vs peer", c.bd_rate_vs_peer)]
            parts.append(_table(["BD-rate metric"] + [n for n, _ in pairs],
                                [[k] + [f"{d[k]:+.1f} %" if d.get(k) is not None else "n/a" for _, d in pairs]
                                 for k in c.bd_rate], set(range(1, len(pairs) + 1))))
            parts.append("<p class='muted'>Negative BD-rate = fewer bits for the same quality. "
                         f"{_e(METRIC_NOTE)}</p>")
        parts.append(f"<p>Analysis {c.seconds_analysis:.2f} s; (analysis + assisted encode) / plain encode = "
                     f"{c.speed_ratio:.2f}× wall time (mean over rates).</p>")
    return "".join(parts) or "<p class='muted'>No encode measured: give an encode or compare report.</p>"


def _ladder(r: LadderReport) -> str:
    """The renditions of one plan: does every rung carry the plan's IDRs (segments align), and did plain
    x264/x265 scenecut at the same size and rate agree across rungs?"""
    plain = any(g.plain_keyframes is not None for g in r.rungs)
    head = ["rung", "size", "target kb/s", "kb/s", "PSNR-Y dB", "IDR frames (decoded)"] + (
        ["plain scenecut IDRs"] if plain else [])
    rows = [[g.name, f"{g.width}×{g.height}", f"{g.bitrate / 1000:.0f}", f"{g.bitrate_kbps:.1f}",
             f"{g.psnr_y:.2f}" if g.psnr_y is not None else "–",
             "same as the plan" if g.keyframes == r.plan_keyframes else _e(g.keyframes)]
            + ([_e(g.plain_keyframes) if g.plain_keyframes is not None else "–"] if plain else [])
            for g in r.rungs]
    verdict = ("every rung has exactly the plan's IDRs: segments align across renditions" if r.aligned
               else "the rungs' IDRs differ from the plan's: segments do not align")
    if r.plain_aligned is not None:
        verdict += ("; plain scenecut encodes also agreed across rungs" if r.plain_aligned
                    else "; plain scenecut encodes put IDRs at different frames in different rungs")
    return (f"<h3>Ladder ({_e(r.codec)} {_e(r.preset)}), plan IDRs at {_e(r.plan_keyframes)}</h3>"
            + _table(head, rows, {2, 3, 4}) + f"<p>{_e(verdict)}.</p>")


def _hull(r: HullLadderReport) -> str:
    """The convex-hull ladder's map: per rung its resolution, and per shot the CRF it chose."""
    head = ["rung", "size", "budget kb/s", "kb/s", "error", "predicted VMAF"] + [
        f"shot {k} CRF" for k in range(len(r.shots))]
    rows = [[g.name, f"{g.width}×{g.height}", f"{g.budget / 1000:.0f}", f"{g.bitrate_kbps:.1f}",
             f"{g.error * 100:+.1f} %", f"{g.predicted_vmaf:.1f}"] + [f"{c.crf:g}" for c in g.shots] for g in r.rungs]
    return (f"<h3>Convex-hull ladder ({_e(r.codec)} {_e(r.preset)}, probes {_e(r.probe_preset)}: "
            f"{r.probe_encodes} run, {r.probe_cached} cached, {r.probe_cpu_seconds:.0f} CPU-s)</h3>"
            + _table(head, rows, {2, 3, 5})
            + f"<p>IDR at every shot start after a hard cut, in every rung: {r.aligned}"
            + (f" (no IDR after the gradual transition(s) at {_e([s.start_frame for s in r.shots if not s.idr])})"
               if any(not s.idr for s in r.shots) else "") + ".</p>")


def _allocation(alloc: AllocationInfo, fps: float) -> str:
    budget = alloc.mode == "budget"
    head = ["shot", "frames", "importance"] + (["complexity kb/frame", "bitrate ×", "ΔQP", "planned kB", "spent kB"]
                                               if budget else ["CRF", f"{alloc.metric} probe", f"{alloc.metric} achieved",
                                                               "probes", "status", "spent kB"])
    rows = []
    for n, x in enumerate(alloc.shots, 1):
        row = [n, f"{x.start_frame}–{x.end_frame - 1}", f"{x.importance:.2f}"]
        if budget:
            row += [f"{x.complexity / 1000:.1f}", f"{x.bitrate_factor:.3f}", f"{x.dqp:+.1f}", _kb(x.bits), _kb(x.bits_actual)]
        else:
            row += [f"{x.crf:.2f}" if x.crf is not None else "–", f"{x.predicted:.3f}" if x.predicted is not None else "–",
                    f"{x.achieved:.3f}" if x.achieved is not None else "–", len(x.probes), x.status, _kb(x.bits_actual)]
        rows.append(row)
    what = (f"budget {alloc.budget_bits / 8000:.1f} kB shared between shots by importance and complexity"
            if budget and alloc.budget_bits else
            f"target {alloc.metric} {alloc.target:g} (±{alloc.tolerance:g}) per shot, {alloc.probe_encodes} probe "
            f"encode(s)" if not budget and alloc.target is not None else alloc.mode)
    spent = f"; the encode spent {alloc.total_bits / 8000:.1f} kB" if alloc.total_bits else ""
    msg = f"<p class='muted'>{_e(alloc.message)}</p>" if alloc.message else ""
    return (f"<h3>Per-shot allocation</h3><p>{_e(what)}{_e(spent)}.</p>"
            + _table(head, rows, {j for j, h in enumerate(head) if h not in ("frames", "status")}) + msg)


def _kb(bits: int | None) -> str:
    return f"{bits / 8000:.1f}" if bits is not None else "–"


def _queries(a: Analysis) -> str:
    """The focus prompts (and how many transcript/keyphrase queries) the fusion attended with."""
    qs = a.importance.queries
    focus = [q for q in qs if q.source == "focus"]
    others = len(qs) - len(focus)
    if not qs:
        return ""
    text = ("focus prompts: " + ", ".join(f"'{q.text}'" + (f" @{q.weight:g}" if q.weight != 1 else "") for q in focus)
            if focus else "no focus prompt")
    if others:
        text += f"; {others} more quer{'y' if others == 1 else 'ies'} from the transcript, keyphrases and tags"
    return f"<p>Cross-modal fusion ({_e(a.importance.fusion)}): {_e(text)}.</p>"


def _transcript(a: Analysis) -> str:
    tr = a.transcript
    if tr is None or not tr.segments:
        return ""
    rows = [[f"{s.start:.2f}–{s.end:.2f} s", s.text, f"{s.sentiment:+.2f}", f"{s.salience:.2f}", ", ".join(s.keyphrases)]
            for s in tr.segments]
    speech = [x for x in a.audio_segments]
    spans = ", ".join(f"{x.kind} {x.start:.2f}–{x.end:.2f} s ({x.score:.2f})" for x in speech)
    return ("<h2>Transcript</h2>"
            f"<p>{_e(tr.source)}" + (f", language {_e(tr.language)}" if tr.language else "") + ". "
            "Sentiment: VADER compound, −1..+1; salience: the weight of the segment's token in the fusion.</p>"
            + _table(["time", "text", "sentiment", "salience", "keyphrases"], rows, {0, 2, 3})
            + (f"<p>Audio segments: {_e(spans)}.</p>" if spans else ""))


def _tags(t: TagReport) -> str:
    out = [f"<h2>Topic tags</h2><p>Taxonomy <code>{_e(t.taxonomy)}</code>, evidence from "
           f"{_e(', '.join(t.modalities) or 'nothing')}" + (f", zero-shot {_e(t.clip)}" if t.clip else "") + ".</p>"]
    live = [x for x in t.tags if not x.ruled_out]
    out.append("<p>" + "".join(f"<span class='tag'>{_e(x.name)} ({x.score:.2f})</span>" for x in live) + "</p>")
    rows = [[x.name, f"{x.score:.2f}", "; ".join(f"{ev.modality}: {', '.join(_short(x) for x in ev.tokens[:3])} (+{ev.contribution:.2f})"
                                                for ev in x.evidence if ev.contribution > 0) or "–"]
            for x in live]
    # topics the words pointed to but a measurement contradicts (issue 14): which measurement ruled each out
    rows += [[x.name, "ruled out", x.ruled_out] for x in t.ruled_out]
    out.append(_table(["tag", "score", "evidence (modality: best-matching phrases (what it added))"], rows, {1}))
    if t.facts:
        out.append("<p>Measured (checked against each topic's conditions as numbers): "
                   + _e(", ".join(f"{k} {v:.3g}" for k, v in t.facts.items())) + ".</p>")
    if t.shots:
        out.append("<h3>Tags per shot</h3>")
        out.append(_table(["shot", "time", "tags"],
                          [[n, f"{s.start:.2f}–{s.end:.2f} s", ", ".join(f"{x.name} {x.score:.2f}" for x in [y for y in s.tags if not y.ruled_out][:3])]
                           for n, s in enumerate(t.shots, 1)], {0, 1}))
    return "".join(out)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _auto_preset(src: Sources) -> str:
    choices = ((src.encode.auto_preset if src.encode else None) or (src.compare.auto_preset if src.compare else None))
    if not choices:
        return ""
    rows = [[f"{c.tag} ({c.score:.2f})", c.preset, c.setting, f"{c.value:g}"] for c in choices]
    return ("<h3>Auto-preset: which tag chose what</h3>"
            + _table(["tag (score)", "preset", "setting", "value"], rows, {3}))


def _semantic(r: SemanticReport) -> str:
    layers = [[x.name, x.codec, x.stored_bytes, x.raw_bytes, f"{x.kbps:.3f}", f"{x.bpp:.6f}"] for x in r.layers]
    shots = [[n, f"{s.start}–{s.end - 1}", s.caption, ", ".join(s.tags)] for n, s in enumerate(r.shots, 1)]
    return ("<h2>Semantic stream</h2>"
            f"<p><code>{_e(r.output)}</code>: {r.total_bytes} bytes for {r.frames} frames ({r.duration:.2f} s, "
            f"{r.width}×{r.height}) = {r.total_kbps:.3f} kb/s, {r.total_bpp:.6f} bits/pixel; container "
            f"{r.container_bytes} bytes; built in {r.seconds:.2f} s.</p>"
            + _table(["layer", "codec", "stored bytes", "raw bytes", "kb/s", "bits/pixel"], layers, {2, 3, 4, 5})
            + "<h3>Per-shot captions</h3>" + _table(["shot", "frames", "caption", "tags"], shots, {0}))


def _why(rows: list[dict]) -> str:
    if not rows:
        return "<p class='muted'>No analysis, so no moments to explain.</p>"
    out = ["<table><thead><tr><th>#</th><th>time</th><th>frame</th><th>importance</th><th>picture</th>"
           "<th>why: tokens (source 'label' weight ← the query that attended to it)</th></tr></thead><tbody>"]
    for r in rows:
        img = (f"<img src='{_data_uri(r['thumb'], 'image/jpeg')}' alt='frame {r['frame']}' width='{THUMB_WIDTH}'>"
               if r["thumb"] else "<span class='muted'>video not available</span>")
        toks = "<br>".join(_e(line) for line in r["tokens"])
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
    if src.tags is not None:
        body.append("<p>Tags: " + "".join(f"<span class='tag'>{_e(t.name)} ({t.score:.2f})</span>"
                                          for t in src.tags.tags) + "</p>")
    if a is not None:
        runs = ", ".join(f"{r.name} {r.seconds:.2f} s" + ("" if r.status == "ok" else f" ({r.status}: {r.message})")
                         for r in a.analyzers)
        body.append(f"<p>{len(a.shots)} shot(s), cuts at frames {_e(a.cut_frames)}; {len(a.tokens)} region tokens; "
                    f"{len(a.analysis_frames)} analysed frames on a {a.proxy_width}×{a.proxy_height} proxy in "
                    f"{a.seconds:.2f} s ({_e(runs)}).</p>")
        body.append(_queries(a))
    if src.plan is not None:
        p = src.plan
        body.append(f"<p>Plan: {_e(p.codec)}, QP offsets within ±{p.max_dqp:g} on {p.blocks_x}×{p.blocks_y} blocks "
                    f"of {p.block_size} px, {_e(p.describe_keyframes())}.</p>")
    body.append("<h2>Metrics</h2>")
    body.append(_metrics(src))
    body.append(_auto_preset(src))
    if a is not None:
        body.append(_transcript(a))
    if src.tags is not None:
        body.append(_tags(src.tags))
    if src.semantic is not None:
        body.append(_semantic(src.semantic))
    for b in built:
        body.append(f"<h2>{_e(b.title)}</h2><figure><img src='{_data_uri(b.png, 'image/png')}' alt='{_e(b.title)}'>"
                    f"<figcaption>{_e(b.caption)}</figcaption></figure>")
    body.append("<h2>Why: the most important moments</h2>")
    body.append("<p>For each peak of importance (numbered as on the timeline), the tokens that weighed most there — "
                "faces, text, image classes, transcript — with the weight each added and, where the cross-modal "
                "fusion attended to it, the query (a focus prompt, a transcript segment, a keyphrase) that did "
                "(as <code>codec-assist explain</code> prints them).</p>")
    body.append(_why(why))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>codec-assist: {_e(name)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(src: Sources, output: str | Path, figures_dir: str | Path | None = None) -> dict:
    """Build the figures and the page in memory, then write the page (and figure files) atomically."""
    import codec_assist.report.figures as F
    from codec_assist.media.safeio import atomic_write_bytes

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
           plan=None, plan_arrays=None, encode=None, compare=None, tags=None, semantic=None, layers=None,
           ladder=None, hull=None, analyze_options=None, plan_options=None) -> dict:
    """Library entry point: artifacts on disk and/or in memory -> report.html. Returns a summary dict."""
    src = gather(list(inputs))
    if analysis is not None:
        src.analysis, src.arrays = analysis, arrays or {}
    if plan is not None:
        src.plan, src.plan_arrays = plan, plan_arrays or {}
    src.encode = encode or src.encode
    src.compare = compare or src.compare
    src.tags = tags or src.tags
    src.semantic = semantic or src.semantic
    src.ladder = ladder or src.ladder
    src.hull = hull or src.hull
    src.layers = layers
    follow_links(src)
    complete(src, analyze_options, plan_options)
    return write_report(src, output, figures_dir)
