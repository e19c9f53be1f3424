"""Compare: the plain encoder against the assisted encode at the same preset and rates, in one run, measured
on the whole frame and on the ROI boxes, with BD-rates over >= 3 rates.

Metrics, all in the same decode pass: PSNR-Y and SSIM-Y, XPSNR-Y (FFmpeg's xpsnr), whole-frame VMAF with
motion on every frame (vmaf-torch; the viewer's proxy) and PSNR in each ROI box. PSNR punishes any
redistribution of bits inside a frame — x264/x265's own adaptive quantisation as much as ours — while VMAF and
XPSNR model the masking a viewer has, so read whole-frame PSNR beside VMAF, not alone. VMAF is the costly one
(≈45 ms per 352x288 frame, 0.25-0.8 s per 720p frame on 2 cores, per encode measured): `vmaf_every` thins it
(k = every k-th frame, motion still from all) or switches it off (0)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

import codec_assist.media.decode as media
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
from codec_assist.encoding.x26x import encode
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
                vmaf_every: int = 1, limits: media.Limits = media.DEFAULT_LIMITS) -> CompareRun:
    """`compare`, keeping the analysis and the plan. `vmaf_every`: 1 = VMAF on every frame, k = every k-th,
    0 = off (see the module docstring for its cost)."""
    workdir = Path(workdir)
    if vmaf_every < 0:
        raise CodecAssistError(f"vmaf_every must be >= 0 (0 = off), got {vmaf_every}")
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

    points = []
    stem = Path(path).stem
    for rate in rates:
        tag = f"{stem}.{codec}.{rate.bitrate // 1000}k" if rate.mode == "abr" else f"{stem}.{codec}.crf{rate.crf:g}"
        res = {}
        for assisted in (False, True):
            out = workdir / f"{tag}.{'assisted' if assisted else 'baseline'}.mp4"
            r = encode(path, out, codec=codec, rate=rate, preset=preset, plan=plan if assisted else None,
                       plan_arrays=plan_arrays if assisted else None, progress=progress)
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
            res[assisted] = r
        b, a = res[False].quality, res[True].quality
        points.append(ComparePoint(
            rate=rate, baseline=res[False], assisted=res[True],
            bitrate_ratio=a.bitrate_kbps / b.bitrate_kbps, psnr_y_delta=a.psnr_y - b.psnr_y,
            roi_psnr_y_delta={k: a.roi_psnr_y[k] - b.roi_psnr_y[k] for k in b.roi_psnr_y},
        ))
    report = CompareReport(
        input=analysis.video, codec=codec, preset=preset, rois=list(rois), points=points,
        bd_rate=_bd_rates(points), seconds_analysis=seconds_analysis,
        speed_ratio=float(np.mean([(seconds_analysis + p.assisted.seconds_encode) / p.baseline.seconds_encode
                                   for p in points])),
        timing=stages.closed(time.perf_counter() - t0),
    )
    return CompareRun(report, analysis, arrays, plan, plan_arrays)


def _bd_rates(points: list[ComparePoint]) -> dict[str, float | None]:
    if len(points) < 3:
        return {}
    def curve(side: str, metric) -> tuple[list[float], list[float]]:
        rs = [getattr(p, side).quality for p in points]
        return [q.bitrate_kbps for q in rs], [metric(q) for q in rs]
    metrics = {"psnr_y": lambda q: q.psnr_y, "ssim_y": lambda q: q.ssim_y, "xpsnr_y": lambda q: q.xpsnr_y,
               "vmaf": lambda q: q.vmaf}
    for key in points[0].baseline.quality.roi_psnr_y:
        metrics[f"roi_psnr_y[{key}]"] = lambda q, key=key: q.roi_psnr_y[key]
    out = {}
    for name, metric in metrics.items():
        (rb, qb), (ra, qa) = curve("baseline", metric), curve("assisted", metric)
        out[name] = bd_rate(rb, qb, ra, qa)
    return out
