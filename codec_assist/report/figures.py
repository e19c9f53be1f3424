"""Figures for people: plain data in -> a matplotlib Figure out. No I/O here except `save`.

Built on `matplotlib.figure.Figure` with the Agg canvas, never pyplot: no global state, no GUI backend, safe
in a server or a test. Every axis says what it shows and in which unit; QP offsets use a diverging colour map
centred on 0 (red = negative = more bits).
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from codec_assist.media.safeio import atomic_write_bytes

DPI = 110
QP_CMAP = "RdBu"  # low (negative offset, more bits) = red, high (fewer bits) = blue, 0 = white
QP_LABEL = "QP offset (negative = more bits, better quality)"
SEGMENT_COLOURS = {"speech": "#2ca02c", "singing": "#9467bd", "music": "#ff7f0e"}
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "svg.fonttype": "none"}


def _styled(fn):
    """Build the figure under our rc settings without touching the process-wide matplotlib state."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# ------------------------------------------------------------------------------------------------ output
def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def svg_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):  # svg.fonttype none: text stays text (searchable, small)
        fig.savefig(buf, format="svg")
    return buf.getvalue()


def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write `stem.png` and `stem.svg`, each atomically (a reader never sees half a file)."""
    out = []
    for fmt in formats:
        path = Path(stem).with_suffix(f".{fmt}")
        atomic_write_bytes(path, png_bytes(fig) if fmt == "png" else svg_bytes(fig))
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------- timeline
@dataclass
class Timeline:
    """Everything the timeline draws, in seconds. Optional parts are drawn only when present."""

    duration: float
    times: np.ndarray  # (N,) analysis frame times
    importance: np.ndarray  # (N,) in [0, 1]
    cuts: list[float] = field(default_factory=list)
    keyframes: list[float] = field(default_factory=list)  # planned or found IDRs
    signals: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) values on `times`
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # audio: (t0, t1, kind)
    keywords: list[tuple[float, str]] = field(default_factory=list)  # transcript keyphrases at a time
    audio_signals: dict[str, np.ndarray] = field(default_factory=dict)  # speech/music/singing probability on `times`
    moments: list[float] = field(default_factory=list)  # the numbered peaks the report explains


@_styled
def timeline(t: Timeline) -> Figure:
    has_audio = bool(t.segments or t.keywords or t.audio_signals)
    rows = [3.0] + ([1.6] if t.signals else []) + ([1.3] if has_audio else [])
    fig = _figure(10, 1.0 + 0.95 * sum(rows))
    axes = fig.subplots(len(rows), 1, sharex=True, height_ratios=rows, squeeze=False)[:, 0]

    ax = axes[0]
    ax.fill_between(t.times, t.importance, step=None, alpha=0.25, color="#1f77b4")
    ax.plot(t.times, t.importance, color="#1f77b4", lw=1.6, label="importance (top-decile mean)")
    for i, c in enumerate(t.cuts):
        ax.axvline(c, color="0.25", ls="--", lw=1, label="shot cut" if i == 0 else None)
    if t.keyframes:
        ax.plot(t.keyframes, [1.04] * len(t.keyframes), "v", color="#d62728", ms=7, clip_on=False,
                label="keyframe (IDR)")
    for n, m in enumerate(t.moments, 1):
        y = float(np.interp(m, t.times, t.importance)) if len(t.times) else 0.5
        ax.annotate(str(n), (m, y), xytext=(0, 8), textcoords="offset points", ha="center", fontsize=9,
                    fontweight="bold", bbox={"boxstyle": "circle,pad=0.2", "fc": "#ffd92f", "ec": "0.3"})
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("importance (0–1)")
    ax.set_title("Where the video matters: importance over time, with cuts, keyframes and key moments")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), borderaxespad=0)
    ax.grid(alpha=0.3)

    k = 1
    if t.signals:
        ax = axes[k]
        k += 1
        for name, values in t.signals.items():
            v = np.asarray(values, np.float64)
            ok = np.isfinite(v)
            if not ok.any():
                continue
            lo, hi = float(v[ok].min()), float(v[ok].max())
            norm = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
            ax.plot(t.times, norm, lw=1.2, label=f"{name} ({lo:.3g}–{hi:.3g})")
        for c in t.cuts:
            ax.axvline(c, color="0.25", ls="--", lw=1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("signal\n(min–max scaled)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), borderaxespad=0, title="signal (raw range)")
        ax.grid(alpha=0.3)

    if has_audio:
        ax = axes[k]
        seen = set()
        # top half: each class's probability (0-1 mapped onto 0.55-0.95) under its detected segments
        for kind, values in t.audio_signals.items():
            v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0, 1)
            ax.plot(t.times, 0.55 + 0.4 * v, color=SEGMENT_COLOURS.get(kind, "0.4"), lw=1.0,
                    label=f"{kind} probability")
        for t0, t1, kind in t.segments:
            colour = SEGMENT_COLOURS.get(kind, "0.6")
            ax.axvspan(t0, t1, ymin=0.55, ymax=0.95, color=colour, alpha=0.35,
                       label=f"{kind} segment" if kind not in seen else None)
            seen.add(kind)
        end = max(t.duration, 1e-6)
        for j, (tk, word) in enumerate(t.keywords):
            y = 0.4 - 0.13 * (j % 3)  # three staggered rows so neighbouring keywords do not overprint
            ax.plot([tk, tk], [y, 0.5], color="0.35", lw=0.8, label="transcript keyword" if j == 0 else None)
            right = tk > 0.85 * end  # near the end: text runs leftwards so it stays inside the axes
            ax.text(tk, y, word[:28], ha="right" if right else "left", va="top", fontsize=8)
            seen.add("keyword")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel("audio &\nkeywords")
        if seen:
            ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), borderaxespad=0)
    axes[-1].set_xlim(0, max(t.duration, float(t.times[-1]) if len(t.times) else 0.0))
    axes[-1].set_xlabel("time (s)")
    return fig


# -------------------------------------------------------------------------------------------- QP overlay
@dataclass
class OverlayFrame:
    frame: int
    time: float
    rgb: np.ndarray  # (h, w, 3) uint8 source picture (any size; the offsets are stretched over it)
    offsets: np.ndarray  # (blocks_y, blocks_x) QP offsets
    covered: tuple[float, float] = (1.0, 1.0)  # fraction of the block grid's width/height inside the picture


@_styled
def qp_overlay(frames: Sequence[OverlayFrame], max_dqp: float, block_size: int, codec: str = "") -> Figure:
    """One row per sampled frame: the source | the planned QP offsets over a grey copy of it."""
    n = max(1, len(frames))
    h, w = frames[0].rgb.shape[:2] if frames else (9, 16)
    panel_w = 4.2
    fig = _figure(2 * panel_w + 1.1, 0.7 + n * panel_w * h / w + 0.35 * n)
    axes = fig.subplots(n, 2, squeeze=False)
    bound = max(float(max_dqp), 0.5)
    norm = TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound)
    cmap = matplotlib.colormaps[QP_CMAP]
    for row, f in zip(axes, frames):
        fh, fw = f.rgb.shape[:2]
        row[0].imshow(f.rgb, interpolation="bilinear")
        row[0].set_title(f"frame {f.frame} · {f.time:.2f} s (source)")
        # A dimmed grey copy underneath keeps the picture legible without competing with the offset colours.
        grey = f.rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        row[1].imshow(60 + 0.6 * grey, cmap="gray", vmin=0, vmax=255, interpolation="bilinear")
        # Blocks at the right/bottom edge may overhang the picture: extend the grid beyond it, then crop.
        gx, gy = fw / f.covered[0], fh / f.covered[1]
        row[1].imshow(f.offsets, cmap=cmap, norm=norm, alpha=0.7, interpolation="nearest", extent=(0, gx, gy, 0))
        row[1].set_xlim(0, fw)
        row[1].set_ylim(fh, 0)
        less = float((f.offsets < 0).mean()) * 100
        row[1].set_title(f"QP offsets: {less:.0f}% of blocks get more bits")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    # The colour bar is opaque (the overlay's transparency would wash out the scale).
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=min(1.0, 0.5 + 0.25 * n), pad=0.02)
    cb.set_label(QP_LABEL)
    what = f"{codec} " if codec else ""
    fig.suptitle(f"Planned {what}QP offsets on {block_size}-px blocks (±{max_dqp:g} max)")
    return fig


# ------------------------------------------------------------------------------------ bits and QP per shot
@dataclass
class ShotBits:
    fps: float
    shots: list[tuple[int, int]]  # (start_frame, end_frame exclusive)
    frame_bits: dict[str, np.ndarray]  # encode label -> (n_frames,) bits per frame, presentation order
    qp_mean: list[float] | None = None  # per shot: mean planned offset (area-weighted; ~0 by design)
    qp_low: list[float] | None = None  # per shot: 5th percentile of the planned offsets
    qp_high: list[float] | None = None  # per shot: 95th percentile
    qp_more_bits: list[float] | None = None  # per shot: share of blocks with a negative offset, 0..1
    bitrate_factors: list[float | None] | None = None  # per shot allocation (zones), when planned
    planned_kbps: list[float | None] | None = None  # per shot: what the budget allocation planned
    quality: "ShotQuality | None" = None  # per shot: target-quality results


@dataclass
class ShotQuality:
    metric: str  # psnr, xpsnr, ssim, vmaf
    target: float | None
    achieved: list[float | None]  # measured on the final encode
    predicted: list[float | None] | None = None  # the chosen probe's quality
    crf: list[float | None] | None = None


def shot_bitrates(frame_bits: np.ndarray, shots: Sequence[tuple[int, int]], fps: float) -> np.ndarray:
    """kb/s spent in each shot: its frames' bits over its duration."""
    out = []
    for a, b in shots:
        seg = frame_bits[a:min(b, len(frame_bits))]
        out.append(seg.sum() / max(1, b - a) * fps / 1000.0 if len(seg) else np.nan)
    return np.asarray(out, np.float64)


@_styled
def bits_per_shot(s: ShotBits) -> Figure:
    has_qp = s.qp_mean is not None
    has_q = s.quality is not None and any(v is not None for v in s.quality.achieved)
    rows = [3.0] + ([2.0] if has_qp else []) + ([2.0] if has_q else [])
    fig = _figure(10, 1.2 + sum(rows) if len(rows) > 1 else 3.8)
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False, height_ratios=rows)
    ax = axes[0, 0]
    labels = list(s.frame_bits)
    width = 0.8 / max(1, len(labels))
    idx = np.arange(len(s.shots))
    others = iter(["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"])
    for j, label in enumerate(labels):
        colour = "#8c8c8c" if label.startswith(("baseline", "plain")) else next(others, "#17becf")
        rates = shot_bitrates(s.frame_bits[label], s.shots, s.fps)
        x = idx - 0.4 + width * (j + 0.5)
        bars = ax.bar(x, rates, width * 0.95, color=colour, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
    if s.planned_kbps is not None:
        planned = np.asarray([np.nan if v is None else v for v in s.planned_kbps], np.float64)
        ax.hlines(planned, idx - 0.45, idx + 0.45, colors="k", lw=2.2, label="planned (allocation)", zorder=3)
    pad = max(0.0, (3 - len(s.shots)) / 2)  # one or two shots: keep the bars from filling the whole width
    ax.set_xlim(-0.5 - pad, len(s.shots) - 0.5 + pad)
    ax.set_ylabel("bitrate in shot (kb/s)")
    ax.set_title("Where the bits went: bitrate per shot (from the encoded packets)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), borderaxespad=0)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)
    if s.bitrate_factors:
        for i, f in enumerate(s.bitrate_factors):
            if f is not None and abs(f - 1) > 1e-3:
                ax.annotate(f"×{f:.2f}", (i, 0), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    if has_qp:
        ax = axes[1, 0]
        mean = np.asarray(s.qp_mean, float)
        lo = np.asarray(s.qp_low if s.qp_low is not None else mean, float)
        hi = np.asarray(s.qp_high if s.qp_high is not None else mean, float)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.vlines(idx, lo, hi, color="#d62728", lw=6, alpha=0.35, label="5th–95th percentile of block offsets")
        ax.plot(idx, mean, "o", color="0.15", label="area-weighted mean (0 = rate-neutral)")
        if s.qp_more_bits is not None:
            for i, share in enumerate(s.qp_more_bits):
                ax.annotate(f"{share * 100:.0f}% ↑bits", (i, hi[i]), xytext=(0, 4), textcoords="offset points",
                            ha="center", fontsize=8)
        ax.set_ylabel("planned QP offset\n(negative = more bits)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), borderaxespad=0)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.25)
    if has_q:
        q = s.quality
        ax = axes[-1, 0]
        achieved = np.asarray([np.nan if v is None else v for v in q.achieved], np.float64)
        if q.target is not None:
            ax.axhline(q.target, color="#d62728", ls="--", lw=1.2, label=f"target {q.target:g}")
        if q.predicted is not None:
            pred = np.asarray([np.nan if v is None else v for v in q.predicted], np.float64)
            ax.plot(idx, pred, "o", mfc="none", mec="0.4", ms=8, label="chosen probe")
        ax.plot(idx, achieved, "o", color="#1f77b4", ms=6, label="achieved (final encode)")
        for i, v in enumerate(achieved):
            crf = q.crf[i] if q.crf else None
            if np.isfinite(v):
                ax.annotate(f"{v:.2f}" + (f"\nCRF {crf:.1f}" if crf is not None else ""), (i, v), xytext=(10, 0),
                            textcoords="offset points", va="center", fontsize=8)
        ax.set_ylabel(f"{q.metric} per shot" + (" (dB)" if q.metric in ("psnr", "xpsnr") else ""))
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), borderaxespad=0)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.3)
    bottom = axes[-1, 0]
    bottom.set_xticks(idx, [f"{i + 1}\n{a / s.fps:.1f}–{b / s.fps:.1f} s" for i, (a, b) in enumerate(s.shots)])
    bottom.set_xlabel("shot (number, time span)")
    return fig


# ------------------------------------------------------------------------------------------- RD curves
@dataclass
class RdPanel:
    title: str
    ylabel: str
    baseline: tuple[list[float], list[float]]  # (kb/s, quality)
    assisted: tuple[list[float], list[float]]
    bd_rate: float | None = None  # assisted vs baseline
    peer: tuple[list[float], list[float]] | None = None  # the encoder with its own tools on (compare's peer)
    peer_label: str = "peer"
    bd_rate_peer: float | None = None  # peer vs baseline
    bd_rate_vs_peer: float | None = None  # assisted vs peer


@_styled
def rd_curves(panels: Sequence[RdPanel], subtitle: str = "") -> Figure:
    """One panel per metric: the plain, assisted and (when given) peer encodes' quality against bitrate, with
    their BD-rates in a box. Up to three panels a row."""
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _figure(4.6 * cols, 4.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()  # an empty grid cell
    for ax, p in zip(axes, panels):
        curves = [(p.baseline, "plain encoder", "o--"), (p.assisted, "assisted (codec-assist)", "s-")]
        if p.peer is not None:
            curves.append((p.peer, p.peer_label, "^:"))
        for (rates, q), label, style in curves:
            order = np.argsort(rates)
            ax.plot(np.asarray(rates)[order], np.asarray(q, dtype=float)[order], style, lw=1.6, ms=6, label=label)
        ax.set_xlabel("bitrate (kb/s)")
        ax.set_ylabel(p.ylabel)
        ax.set_title(p.title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fmt = lambda v: "n/a" if v is None else f"{v:+.1f} %"  # noqa: E731
        text = f"BD-rate assisted vs plain {fmt(p.bd_rate)}"
        if p.peer is not None:
            text += f"\npeer vs plain {fmt(p.bd_rate_peer)}\nassisted vs peer {fmt(p.bd_rate_vs_peer)}"
        text += "\n(negative = fewer bits for the same quality)"
        colour = "0.9" if p.bd_rate is None else ("#c7e9c0" if p.bd_rate < 0 else "#fdd0a2")
        ax.text(0.03, 0.96, text, transform=ax.transAxes, va="top", fontsize=8,
                bbox={"boxstyle": "round", "fc": colour, "ec": "0.5"})
    fig.suptitle("Rate–distortion: plain vs assisted" + (" vs peer" if any(p.peer for p in panels) else "")
                 + (f" — {subtitle}" if subtitle else ""))
    return fig


# ----------------------------------------------------------------------------------------- layer sizes
@_styled
def layer_sizes(sizes: Mapping[str, int], title: str = "Semantic bitstream: size per layer") -> Figure:
    """Horizontal bars, one per layer, in KiB with each layer's share of the total."""
    names = list(sizes)
    values = np.asarray([sizes[k] for k in names], np.float64)
    total = float(values.sum()) or 1.0
    fig = _figure(8, 1.2 + 0.45 * max(1, len(names)))
    ax = fig.subplots()
    bars = ax.barh(names, values / 1024, color="#1f77b4")
    ax.bar_label(bars, [f"{v / 1024:.2f} KiB ({v / total * 100:.0f}%)" for v in values], padding=3, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("size (KiB)")
    ax.set_ylabel("layer")
    ax.set_title(f"{title} — total {total / 1024:.2f} KiB")
    ax.margins(x=0.3)
    ax.grid(axis="x", alpha=0.3)
    return fig


# -------------------------------------------------------------------------------- convex hulls (issue 19)
@_styled
def hull_figure(report) -> Figure:
    """Per shot: the probes (kb/s, VMAF) per resolution, each resolution's upper convex hull, and where every
    rung of the ladder landed (its prediction from the probes). `report` is a HullLadderReport."""
    shots = report.shots
    cols = min(4, max(1, len(shots)))
    rows = -(-len(shots) // cols)
    fig = _figure(3.4 * cols, 2.8 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    fps = report.input.fps
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, max(1, len(report.heights))))
    for k, (ax, shot) in enumerate(zip(axes, shots)):
        for colour, h in zip(colours, report.heights):
            pts = [p for p in shot.probes if p.height == h]
            ax.plot([p.kbps for p in pts], [p.vmaf for p in pts], "o", ms=3, color=colour, alpha=0.5)
            hull = [shot.probes[i] for i in shot.hull.get(h, [])]
            ax.plot([p.kbps for p in hull], [p.vmaf for p in hull], "-", lw=1.3, color=colour,
                    label=f"{h}p" if k == 0 else None)
        for r in report.rungs:
            c = r.shots[k]
            ax.plot([c.probe_kbps], [c.vmaf], "*", ms=9, color="#d62728", mec="k", mew=0.4)
            ax.annotate(f"{r.height}p crf {c.crf:g}", (c.probe_kbps, c.vmaf), fontsize=6, xytext=(3, -8),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log minor labels overlap
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"shot {k}: frames {shot.start_frame}-{shot.end_frame - 1} "
                     f"({(shot.end_frame - shot.start_frame) / fps:.1f}s)", fontsize=9)
        ax.set_xlabel("kb/s (probe)")
        ax.set_ylabel("VMAF at display size")
        ax.grid(alpha=0.3)
    for ax in axes[len(shots):]:
        ax.set_visible(False)
    if len(shots):
        axes[0].legend(loc="lower right", fontsize=7)
    fig.suptitle(f"Per-shot rate–quality hulls ({report.codec} {report.probe_preset} probes); "
                 "stars: each rung's choice")
    return fig
