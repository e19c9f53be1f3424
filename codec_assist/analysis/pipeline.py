"""The spine: analyze (one decode, every analyzer) -> plan (policies) -> encode -> compare (evaluate)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, Field
from tqdm import tqdm

import analyzers
from analyzers.base import AnalysisContext, Analyzer, Skip
from policies.keyframes import keyframes
from policies.qp import block_grid, plan_offsets

import codec_assist.media.decode as media
from codec_assist.encoding.x26x import encode
from codec_assist.errors import CodecAssistError
from codec_assist.fusion.attention import DEFAULT_WEIGHTS, TEMPERATURE, fuse
from codec_assist.evaluation.metrics import bd_rate, compare_videos
from codec_assist.models import ModelUnavailable
from codec_assist.schemas import (
    Analysis,
    AnalyzerRun,
    Codec,
    CompareReport,
    ComparePoint,
    EncodePlan,
    FocusPrompt,
    ImportanceInfo,
    RateControl,
    RoiBox,
    Shot,
    SignalInfo,
)

log = logging.getLogger("codec_assist")

BLOCK_SIZE = {"x264": 16, "x265": 32}  # x264 honours 16x16 MBs; x265 showed no effect below 32 px (FACTS)


class AnalyzeOptions(BaseModel):
    analyzers: list[str] = list(analyzers.DEFAULT)
    proxy_width: int = Field(320, ge=32, le=1920)
    analysis_fps: float = Field(3.0, gt=0)  # sampled frames per second for the per-frame analyzers
    grid_cell: int = Field(4, ge=1)  # proxy pixels per importance cell
    weights: dict[str, float] = dict(DEFAULT_WEIGHTS)
    asr_model: str | None = None  # faster-whisper size, HF repo id or folder; None: the shipped tiny.en
    subtitles: str | None = None  # sidecar .srt/.vtt; the subtitles analyzer runs when given
    asr: bool = True  # False drops the speech analyzer
    focus: list[FocusPrompt] = []  # text queries the regions (and the transcript) are attended with
    temperature: float = Field(TEMPERATURE, gt=0, le=1)  # of the attention softmax
    # CLIP (open_clip): a model name with a pretrained tag or a local checkpoint adds the `clip` analyzer
    clip_model: str | None = None
    clip_pretrained: str | None = None
    clip_checkpoint: str | None = None
    # analyzer name -> constructor kwargs for the selected analyzers (e.g. tagging runs OCR less often)
    analyzer_settings: dict[str, dict] = {}

    def analyzer_options(self) -> tuple[list[str], dict[str, dict]]:
        names = list(self.analyzers)
        options = {k: dict(v) for k, v in self.analyzer_settings.items() if k in names}
        if self.clip_model or self.clip_pretrained or self.clip_checkpoint:
            if "clip" not in names:
                names.append("clip")
            options["clip"] = {"model": self.clip_model or "ViT-B-32", "pretrained": self.clip_pretrained,
                               "checkpoint": self.clip_checkpoint}
        return names, options


class PlanOptions(BaseModel):
    codec: Codec = "x264"
    max_dqp: float = Field(6.0, ge=0, le=15)
    strength: float = Field(2.0, gt=0)
    time_constant: float = Field(0.5, ge=0)  # seconds, temporal smoothing of the offsets inside a shot
    min_gop: float = Field(0.5, gt=0)  # seconds
    max_gop: float = Field(10.0, gt=0)  # seconds
    block_size: int | None = None  # default per codec
    aq_mode: int = Field(1, ge=1, le=4)  # encoder adaptive quantisation (ROI needs it on); tag presets set these
    aq_strength: float = Field(1.0, gt=0, le=3)


def analyze(path: str | Path, options: AnalyzeOptions | None = None, progress: bool = False,
            limits: media.Limits = media.DEFAULT_LIMITS) -> tuple[Analysis, dict[str, np.ndarray]]:
    """Decode once into the analysis proxy, run every analyzer, fuse into the importance map."""
    opt = options or AnalyzeOptions()
    t0 = time.perf_counter()
    info = media.probe(path, limits)
    pw, ph = media.proxy_size(info.width, info.height, opt.proxy_width)
    gh, gw = max(1, ph // opt.grid_cell), max(1, pw // opt.grid_cell)
    step = max(1, round(info.fps / opt.analysis_fps))
    planned = frozenset(range(0, info.frame_count + step, step))
    ctx = AnalysisContext(video=info, proxy_w=pw, proxy_h=ph, grid_h=gh, grid_w=gw, analysis_frames=planned)
    names, unit_options = _audio_text_setup(path, opt)
    clip_names, clip_options = opt.analyzer_options()
    names += [n for n in clip_names if n not in names]
    for k, v in clip_options.items():  # the knobs above (model, subtitles path) win over analyzer_settings
        unit_options[k] = {**v, **unit_options.get(k, {})}
    units: list[Analyzer] = analyzers.build(names, **unit_options)
    runs = {u.name: AnalyzerRun(name=u.name, seconds=0.0, frames_seen=0) for u in units}
    live = list(units)
    for u in units:
        _guarded(u, runs, live, lambda: u.start(ctx))

    n = 0
    bar = tqdm(total=info.frame_count, unit="f", desc="analyze", disable=not progress, leave=False)
    for i, _frame, proxy in media.iter_proxy(path, (pw, ph), declared=info.frame_count, limits=limits):
        sampled = i in planned
        for u in list(live):
            if u.every_frame or sampled:
                _guarded(u, runs, live, lambda: u.process(proxy))
                runs[u.name].frames_seen += 1
        n = i + 1
        bar.update()
    bar.close()
    if n == 0:
        raise CodecAssistError(f"{path}: no video frame could be decoded")
    if n != info.frame_count:
        info = info.model_copy(update={"frame_count": n})
    frames = [f for f in range(n) if f in planned]

    outputs = {}
    for u in list(live):
        out = _guarded(u, runs, live, u.finish)
        if out is not None:
            outputs[u.name] = out

    shots = next((o.shots for o in outputs.values() if o.shots is not None), None)
    shots = _clip_shots(shots, n)
    tokens = [t for o in outputs.values() for t in o.tokens]
    maps = {name: o.maps for name, o in outputs.items() if o.maps}
    arrays: dict[str, np.ndarray] = {}
    signals = []
    for o in outputs.values():
        for name, series in o.signals.items():
            if f"signal/{name}" in arrays:
                continue  # two analyzers gave the same signal (subtitles and speech: sentiment): first wins
            arrays[f"signal/{name}"] = np.array([series.get(f, np.nan) for f in frames], np.float32)
            signals.append(o.signal_info.get(name, SignalInfo(name=name)))
    # subtitles (listed first) over ASR: a subtitle file is usually the better text
    transcript = next((o.transcript for o in outputs.values() if o.transcript is not None), None)
    audio_segments = [s for o in outputs.values() for s in o.audio_segments or []]
    fused = fuse(maps, frames, (gh, gw), opt.weights, tokens=tokens, focus=opt.focus, temperature=opt.temperature,
                 signals={s.name: arrays[f"signal/{s.name}"] for s in signals})
    arrays.update({
        "importance/frames": np.asarray(frames, np.int64),
        "importance/scalar": fused.scalar,
        "importance/grid": fused.grid.astype(np.float16),
        "importance/temporal": fused.temporal,
    })
    analysis = Analysis(
        video=info, proxy_width=pw, proxy_height=ph, analysis_frames=frames, shots=shots, tokens=tokens,
        signals=signals,
        importance=ImportanceInfo(grid_h=gh, grid_w=gw, top_tokens=fused.top_tokens, weights=opt.weights,
                                  fusion=fused.method, top_weights=fused.top_weights, top_queries=fused.top_queries,
                                  queries=fused.queries, temperature=opt.temperature),
        analyzers=list(runs.values()), seconds=time.perf_counter() - t0, transcript=transcript,
        audio_segments=audio_segments,
    )
    return analysis, arrays


def _audio_text_setup(path: str | Path, opt: AnalyzeOptions) -> tuple[list[str], dict]:
    """Analyzer names and options after the audio/text knobs: --no-asr drops speech; subtitles run (before
    speech, so their transcript wins) when a file is given or the container has a text subtitle stream."""
    from codec_assist.media.subtitles import text_subtitle_streams

    names = [n for n in opt.analyzers if opt.asr or n != "speech"]
    if "subtitles" not in names and (opt.subtitles or text_subtitle_streams(path)):
        names.insert(names.index("speech") if "speech" in names else len(names), "subtitles")
    options: dict = {}
    if "speech" in names and opt.asr_model:
        options["speech"] = {"model": opt.asr_model}
    if "subtitles" in names and opt.subtitles:
        options["subtitles"] = {"path": opt.subtitles}
    return names, options


def _guarded(u: Analyzer, runs: dict[str, AnalyzerRun], live: list[Analyzer], call):
    """Run one analyzer step; an analyzer that fails is dropped with a warning, the others go on."""
    if u not in live:
        return None
    run = runs[u.name]
    t = time.perf_counter()
    try:
        return call()
    except ModelUnavailable as e:  # weights asked for but not here: one line, the analysis goes on without it
        live.remove(u)
        run.status, run.message = "skipped", str(e)
        log.warning("%s: %s", u.name, e)
        return None
    except CodecAssistError:
        raise
    except Skip as e:  # nothing to work on (no audio stream, no subtitles): left out, not a failure
        live.remove(u)
        run.status, run.message = "skipped", str(e)
        log.info("analyzer %s skipped: %s", u.name, run.message)
        return None
    except Exception as e:  # noqa: BLE001 - an analyzer's bug must not sink the whole analysis
        live.remove(u)
        run.status, run.message = "failed", f"{type(e).__name__}: {e}"[:300]
        log.warning("analyzer %s failed and was skipped: %s", u.name, run.message)
        return None
    finally:
        run.seconds += time.perf_counter() - t


def _clip_shots(shots: list[Shot] | None, n: int) -> list[Shot]:
    """Shots covering [0, n) exactly (the decoded frame count may differ from what the container said)."""
    by_start = {s.start_frame: s for s in shots or [] if s.start_frame < n}
    starts = sorted({0, *by_start})
    out = []
    for a, b in zip(starts, starts[1:] + [n]):
        src = by_start.get(a)
        out.append(Shot(start_frame=a, end_frame=b, cut_type="start" if a == 0 else src.cut_type,
                        confidence=src.confidence if src else 1.0))
    return out


def make_plan(analysis: Analysis, arrays: dict[str, np.ndarray], options: PlanOptions | None = None,
              source: str = "") -> tuple[EncodePlan, dict[str, np.ndarray]]:
    """Policies: importance -> rate-neutral QP offsets at the codec's block size; cuts -> forced IDRs."""
    opt = options or PlanOptions()
    v = analysis.video
    block = opt.block_size or BLOCK_SIZE[opt.codec]
    by, bx = block_grid(v.width, v.height, block)
    fps = v.fps
    min_gop = max(1, round(opt.min_gop * fps))
    max_gop = max(min_gop, round(opt.max_gop * fps))
    starts = [s.start_frame for s in analysis.shots]
    frames = arrays["importance/frames"].astype(np.int64)
    grid = arrays["importance/grid"].astype(np.float32)
    offsets = plan_offsets(frames, grid, v.width, v.height, block, starts, fps, opt.max_dqp, opt.strength,
                           opt.time_constant)
    plan = EncodePlan(
        codec=opt.codec, width=v.width, height=v.height, frame_count=v.frame_count, fps=fps, block_size=block,
        blocks_x=bx, blocks_y=by, max_dqp=opt.max_dqp,
        keyframes=keyframes(analysis.cut_frames, v.frame_count, min_gop, max_gop), shot_starts=starts,
        min_gop=min_gop, max_gop=max_gop, aq_mode=opt.aq_mode, aq_strength=opt.aq_strength, source=source,
    )
    return plan, {"qp/frames": frames, "qp/offsets": offsets.astype(np.float32, copy=False)}


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
                limits: media.Limits = media.DEFAULT_LIMITS) -> CompareRun:
    """`compare`, keeping the analysis and the plan."""
    workdir = Path(workdir)
    info = media.probe(path, limits)
    if min(info.width, info.height) < 11:  # fail before encoding anything
        raise CodecAssistError(f"{info.path}: frames of {info.width}x{info.height} are too small to measure "
                               "(SSIM needs 11x11)")
    t0 = time.perf_counter()
    analysis, arrays = analyze(path, analyze_options, progress=progress, limits=limits)
    plan, plan_arrays = make_plan(analysis, arrays, (plan_options or PlanOptions()).model_copy(update={"codec": codec}))
    seconds_analysis = time.perf_counter() - t0
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
            r.quality = compare_videos(Path(path), out, rois=list(rois), weights=weights)
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
    )
    return CompareRun(report, analysis, arrays, plan, plan_arrays)


def _bd_rates(points: list[ComparePoint]) -> dict[str, float | None]:
    if len(points) < 3:
        return {}
    def curve(side: str, metric) -> tuple[list[float], list[float]]:
        rs = [getattr(p, side).quality for p in points]
        return [q.bitrate_kbps for q in rs], [metric(q) for q in rs]
    metrics = {"psnr_y": lambda q: q.psnr_y, "ssim_y": lambda q: q.ssim_y}
    for key in points[0].baseline.quality.roi_psnr_y:
        metrics[f"roi_psnr_y[{key}]"] = lambda q, key=key: q.roi_psnr_y[key]
    out = {}
    for name, metric in metrics.items():
        (rb, qb), (ra, qa) = curve("baseline", metric), curve("assisted", metric)
        out[name] = bd_rate(rb, qb, ra, qa)
    return out
