"""Compare: the plain encoder against the assisted encode at the same preset and rates, in one run, measured
on the whole frame and on the ROI boxes, with BD-rates over >= 3 rates.

Metrics, all in the same decode pass: PSNR-Y and SSIM-Y, XPSNR-Y (FFmpeg's xpsnr), whole-frame VMAF with
motion on every frame (libvmaf; the viewer's proxy) and PSNR in each ROI box. PSNR punishes any
redistribution of bits inside a frame — x264/x265's own adaptive quantisation as much as ours — while VMAF and
XPSNR model the masking a viewer has, so read whole-frame PSNR beside VMAF, not alone. VMAF is the costly one
(per frame of each encode measured, 2 shared cores: ≈0.05-0.14 s at 352x288, 0.1-0.4 s at 640x360, 0.25-1 s at
720p, idle to busy; XPSNR and PSNR+SSIM cost 5-25 ms): `vmaf_every` thins it
(k = every k-th frame, motion still from all) or switches it off (0).

Peers (issue 15): the same run also encodes the encoder with its own tools on, as careful users set it —
`aq-mode=3` (auto-variance AQ biased to dark scenes; x265 4.2 also has mode 4, edge-aware, on request) and a
`--tune` where one applies — at the same preset and rates, so the report shows assisted vs plain, peer vs
plain and assisted vs peer. The tune is "auto" by default: `animation` when the analysis measures the clip as
animation (scene facts, animation-likeness >= 0.5), else `film` for x264 (live action; x265 has no film tune,
so none). It is read from the analysis, because a user picking a tune looks at the content; the reason is
written into the report, and an explicit tune (or "none") overrides it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

import codec_assist.media.decode as media
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
from codec_assist.encoding.x26x import TUNES, encode
from codec_assist.errors import CodecAssistError
from codec_assist.evaluation.metrics import bd_rate, compare_videos, require_vmaf
from codec_assist.planning.plan import PlanOptions, make_plan
from codec_assist.models import release_models
from codec_assist.schemas import (
    Analysis,
    Codec,
    CompareReport,
    ComparePoint,
    EncodePlan,
    PeerSettings,
    RateControl,
    RoiBox,
    StageSeconds,
)

@dataclass
class CompareRun:
    """A compare report with the analysis and plan it made, so a report page needs no second analysis."""

    report: CompareReport
    analysis: Analysis
    arrays: dict[str, np.ndarray]
    plan: EncodePlan
    plan_arrays: dict[str, np.ndarray]


def compare(path: str | Path, rates: Sequence[RateControl], workdir: str | Path, **kwargs) -> CompareReport:
    """Baseline (plain encoder, same preset and rate) against assisted, at each rate, in the same run."""
    return compare_run(path, rates, workdir, **kwargs).report


def compare_run(path: str | Path, rates: Sequence[RateControl], workdir: str | Path, *, codec: Codec = "x264",
                preset: str = "medium", rois: Sequence[RoiBox] = (), analyze_options: AnalyzeOptions | None = None,
                plan_options: PlanOptions | None = None, progress: bool = False, keep: bool = False,
                vmaf_every: int = 1, peer: bool = True, peer_aq_mode: int = 3, peer_tune: str | None = "auto",
                limits: media.Limits = media.DEFAULT_LIMITS) -> CompareRun:
    """`compare`, keeping the analysis and the plan. `vmaf_every`: 1 = VMAF on every frame, k = every k-th,
    0 = off (see the module docstring for its cost). `peer`: also encode the encoder with its own tools on
    (`peer_aq_mode`, `peer_tune`: "auto", "none" or a tune of TUNES[codec])."""
    workdir = Path(workdir)
    if vmaf_every < 0:
        raise CodecAssistError(f"vmaf_every must be >= 0 (0 = off), got {vmaf_every}")
    if peer:
        check_peer(codec, peer_aq_mode, peer_tune)
    if vmaf_every:
        require_vmaf()
    info = media.probe(path, limits)
    if min(info.width, info.height) < 11:  # fail before encoding anything
        raise CodecAssistError(f"{info.path}: frames of {info.width}x{info.height} are too small to measure "
                               "(SSIM needs 11x11)")
    t0 = time.perf_counter()
    analysis, arrays = analyze(path, analyze_options, progress=progress, limits=limits)
    t_plan = time.perf_counter()
    plan, plan_arrays = make_plan(analysis, arrays, (plan_options or PlanOptions()).model_copy(update={"codec": codec}))
    seconds_analysis = time.perf_counter() - t0
    stages = (analysis.timing or StageSeconds()).model_copy(update={"wall": 0.0, "other": 0.0})
    stages.plan = time.perf_counter() - t_plan
    t = time.perf_counter()
    release_models()  # every model has done its work: the encodes and metrics run without them
    stages.release = time.perf_counter() - t
    imp_frames = arrays["importance/frames"]
    imp_grid = arrays["importance/grid"].astype(np.float32)

    def weights(i: int) -> np.ndarray:
        k = max(0, int(np.searchsorted(imp_frames, i, side="right")) - 1)
        return imp_grid[k]

    peer_settings = choose_peer(codec, analysis, arrays, peer_aq_mode, peer_tune) if peer else None
    sides = ["baseline", "assisted"] + (["peer"] if peer_settings is not None else [])
    points = []
    stem = Path(path).stem
    for rate in rates:
        tag = f"{stem}.{codec}.{rate.bitrate // 1000}k" if rate.mode == "abr" else f"{stem}.{codec}.crf{rate.crf:g}"
        res = {}
        for side in sides:
            out = workdir / f"{tag}.{side}.mp4"
            assisted = side == "assisted"
            extra = {}
            if side == "peer":
                extra = {"params": {"aq-mode": str(peer_settings.aq_mode)}, "tune": peer_settings.tune}
            r = encode(path, out, codec=codec, rate=rate, preset=preset, plan=plan if assisted else None,
                       plan_arrays=plan_arrays if assisted else None, progress=progress, **extra)
            t = time.perf_counter()
            r.quality = compare_videos(Path(path), out, rois=list(rois), weights=weights, xpsnr=True,
                                       vmaf_every=vmaf_every, progress=progress)
            if r.timing is not None:
                r.timing = r.timing.model_copy(update={"evaluation": time.perf_counter() - t})
                r.timing = r.timing.closed(r.timing.wall + r.timing.evaluation)
                stages.decode += r.timing.decode
                stages.encode += r.timing.encode
                stages.evaluation += r.timing.evaluation
            if not keep:
                out.unlink(missing_ok=True)
            res[side] = r
        b, a = res["baseline"].quality, res["assisted"].quality
        points.append(ComparePoint(
            rate=rate, baseline=res["baseline"], assisted=res["assisted"], peer=res.get("peer"),
            bitrate_ratio=a.bitrate_kbps / b.bitrate_kbps, psnr_y_delta=a.psnr_y - b.psnr_y,
            roi_psnr_y_delta={k: a.roi_psnr_y[k] - b.roi_psnr_y[k] for k in b.roi_psnr_y},
        ))
    report = CompareReport(
        input=analysis.video, codec=codec, preset=preset, rois=list(rois), points=points,
        bd_rate=bd_rates(points, "baseline", "assisted"), peer=peer_settings,
        bd_rate_peer=bd_rates(points, "baseline", "peer") if peer_settings else {},
        bd_rate_vs_peer=bd_rates(points, "peer", "assisted") if peer_settings else {},
        seconds_analysis=seconds_analysis,
        speed_ratio=float(np.mean([(seconds_analysis + p.assisted.seconds_encode) / p.baseline.seconds_encode
                                   for p in points])),
        timing=stages.closed(time.perf_counter() - t0),
    )
    return CompareRun(report, analysis, arrays, plan, plan_arrays)


def check_peer(codec: str, aq_mode: int, tune: str | None) -> None:
    """Refuse a peer the encoder would refuse (or silently clip), before anything is analysed or encoded."""
    top = 4 if codec == "x265" else 3  # x265 4.2 has aq-mode 4 (edge-aware); x264 stops at 3
    if not 1 <= aq_mode <= top:
        raise CodecAssistError(f"peer aq-mode {aq_mode} is not a {codec} AQ mode with AQ on; choose 1..{top}")
    if tune not in (None, "auto", "none") and tune not in TUNES[codec]:
        raise CodecAssistError(f"unknown {codec} tune {tune!r} for the peer; choose auto, none or one of "
                               f"{', '.join(TUNES[codec])}")


ANIMATION_TUNE_AT = 0.5  # animation-likeness (scene facts) from which the peer takes --tune animation


def choose_peer(codec: str, analysis: Analysis, arrays: dict[str, np.ndarray], aq_mode: int = 3,
                tune: str | None = "auto") -> PeerSettings:
    """The peer's settings; tune "auto" reads the clip's animation-likeness from the analysis (see the module
    docstring), "none"/None means no tune, anything else is the user's choice."""
    check_peer(codec, aq_mode, tune)
    if tune in (None, "none"):
        return PeerSettings(aq_mode=aq_mode, tune=None, tune_reason="no tune asked for")
    if tune != "auto":
        return PeerSettings(aq_mode=aq_mode, tune=tune, tune_reason="asked for")
    from codec_assist.tags.scene_facts import measure

    anim = measure(analysis, arrays, 0, max(1, analysis.video.frame_count)).get("animation")
    if anim is not None and anim >= ANIMATION_TUNE_AT:
        return PeerSettings(aq_mode=aq_mode, tune="animation",
                            tune_reason=f"auto: animation-likeness {anim:.2f} >= {ANIMATION_TUNE_AT}")
    seen = f"animation-likeness {anim:.2f} < {ANIMATION_TUNE_AT}" if anim is not None else "animation not measured"
    if codec == "x264":
        return PeerSettings(aq_mode=aq_mode, tune="film", tune_reason=f"auto: live action ({seen})")
    return PeerSettings(aq_mode=aq_mode, tune=None, tune_reason=f"auto: live action ({seen}); x265 has no film tune")


METRIC_NAMES = ("psnr_y", "ssim_y", "xpsnr_y", "vmaf")  # whole-frame metrics with a BD-rate, then each ROI's PSNR


def bd_rates(points: list[ComparePoint], reference: str, candidate: str) -> dict[str, float | None]:
    """BD-rate (%) of the `candidate` side's encodes versus the `reference` side's ("baseline", "assisted",
    "peer") on each measured metric: negative = the candidate needs fewer bits for the same quality. Needs 3+
    rates; a metric that was not measured (VMAF off) is left out, one that cannot be fitted is None."""
    if len(points) < 3:
        return {}
    sides = [[getattr(p, side) for p in points] for side in (reference, candidate)]
    if any(r is None or r.quality is None for rs in sides for r in rs):
        return {}
    qualities = [[r.quality for r in rs] for rs in sides]
    names = [m for m in METRIC_NAMES if all(getattr(q, m) is not None for qs in qualities for q in qs)]
    names += [f"roi_psnr_y[{k}]" for k in qualities[0][0].roi_psnr_y]

    def value(q, name: str) -> float:
        if name.startswith("roi_psnr_y["):
            return q.roi_psnr_y.get(name[len("roi_psnr_y["):-1], float("nan"))
        return getattr(q, name)

    out = {}
    for name in names:
        (qa, qb) = qualities
        out[name] = bd_rate([q.bitrate_kbps for q in qa], [value(q, name) for q in qa],
                            [q.bitrate_kbps for q in qb], [value(q, name) for q in qb])
    return out
