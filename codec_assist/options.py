"""Typed options of the public API, in one place (each is a pydantic model; the CLI only fills them in).

AnalyzeOptions and PlanOptions live beside the analysis and planning code that reads them, EngineOptions beside
the engine, Limits beside the decoder; they are re-exported here so that `codec_assist.options` names every
knob. EncodeOptions and AllocationOptions are defined here: they steer the encode orchestration (codec_assist.api).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from codec_assist.analysis.pipeline import AnalyzeOptions

from codec_assist.planning.plan import PlanOptions
from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import DEFAULT_LIMITS, Limits
from codec_assist.scale.engine import EngineOptions
from codec_assist.schemas import Codec, RateControl, parse_bitrate

from codec_assist.encoding.x26x import PRESETS
Preset = Literal[PRESETS]  # x264/x265 preset names

__all__ = ["AnalyzeOptions", "PlanOptions", "EncodeOptions", "AllocationOptions", "HullOptions", "EngineOptions", "Limits",
           "DEFAULT_LIMITS", "PRESETS"]


class AllocationOptions(BaseModel):
    """Shot-level decisions of an encode: share a budget between shots (`allocate`), or search a CRF per shot
    for a quality target (`target_quality`, e.g. "psnr=40", "vmaf=93")."""

    model_config = ConfigDict(extra="forbid")
    allocate: bool = False
    strength: float = Field(1.0, ge=0)  # importance tilt: shot QP offset = -2 x strength x log2(weight / mean)
    max_shot_dqp: float = Field(4.0, ge=0, le=15)  # largest per-shot QP offset either way
    segment: float = Field(0.0, ge=0)  # seconds; cut longer shots into pieces (0: whole shots)
    target_quality: str | None = None  # METRIC=VALUE: psnr, xpsnr, ssim or vmaf
    tolerance: float | None = Field(None, gt=0)  # probe tolerance (default 0.25 dB; 0.003 SSIM; 0.5 VMAF)
    max_probes: int = Field(6, ge=1, le=50)  # probe encodes per shot

    @model_validator(mode="after")
    def _one_mode(self) -> "AllocationOptions":
        if self.allocate and self.target_quality:
            raise ValueError("choose one of allocate and target_quality")
        return self


class HullOptions(BaseModel):
    """`--ladder auto`: the per-shot convex-hull ladder (codec_assist.encoding.hull)."""

    model_config = ConfigDict(extra="forbid")
    probe_preset: Preset = "veryfast"  # probes' x264/x265 preset (the rungs use the encode's preset)
    crfs: list[float] = [18.0, 22.0, 26.0, 30.0, 34.0, 38.0, 42.0]  # probe CRF grid
    heights: list[int] | None = None  # probe resolutions; None: the source height and standard heights below
    importance_weight: float = Field(0.0, ge=0)  # > 0: shots that matter take higher points (runs the analysis)
    vmaf_every: int = Field(5, ge=1)  # probes score every n-th frame with VMAF
    max_probe_frames: int = Field(250, ge=1)  # a longer shot is probed on its first frames
    refine_step: float = Field(2.0, ge=0)  # probe around each rung's choice until CRFs there are this close (0: off)
    cache_dir: Path | None = None  # probe results kept here (None: OUTDIR/.hull-probes)

    @field_validator("crfs", mode="before")
    @classmethod
    def _crf_text(cls, v):
        if isinstance(v, str):
            try:
                return [float(x) for x in v.split(",") if x.strip()]
            except ValueError:
                raise ValueError(f"CRF list {v!r}: expected numbers like 20,26,32") from None
        return v

    @field_validator("crfs")
    @classmethod
    def _crf_range(cls, v):
        if len(set(v)) < 2 or not all(0 <= c <= 51 for c in v):
            raise ValueError("give at least two distinct CRFs between 0 and 51")
        return sorted(set(v))


class EncodeOptions(BaseModel):
    """One encode: codec, preset and rate; assisted (analysis -> plan -> ROI offsets and IDRs) unless
    `assist=False`; optionally from a saved plan, with shot allocation or target quality, as a ladder of
    renditions, or in parallel shot chunks. Rates accept what a user types: bitrate="400k", size="2M".

    >>> EncodeOptions(bitrate="400k").rate()
    RateControl(mode='abr', bitrate=400000, crf=None)
    """

    model_config = ConfigDict(extra="forbid")
    codec: Codec = "x264"
    preset: Preset = "medium"
    bitrate: int | None = None  # bits/s (ABR); "400k", "2M" accepted
    crf: float | None = Field(None, ge=0, le=51)  # constant rate factor (23 when neither bitrate nor size)
    size: int | None = None  # total bytes instead of a bitrate; "2M", "750k" accepted
    params: dict[str, str] = {}  # extra x264-params/x265-params; "k=v:k=v" accepted; checked on a scratch encoder
    assist: bool = True  # False: the plain encode (no analysis, no ROI offsets, no forced IDRs)
    plan_file: Path | None = None  # encode with this saved plan instead of analysing
    events: list[int] = []  # extra IDR candidates (frame numbers), kept within the plan's GOP limits
    allocation: AllocationOptions = AllocationOptions()
    ladder: str | None = None  # renditions from one plan, "720p:1M,480p:500k" (the output is a folder or {rung})
    ladder_plain: bool = True  # with a ladder: also a plain encode per rung to show its own IDRs
    hull: HullOptions = HullOptions()  # with ladder="auto[:RATE,...]": the per-shot convex-hull ladder
    # the analysis in segments in a process beside the encoder, which follows a second behind it (issue 16): None
    # where encoding.overlapped.worth_overlapping says it pays (for no codec today), True wherever it can, False
    # never (not with a saved plan, --allocate, --target-quality, --ladder, --chunked, --auto-preset, --events,
    # --focus or an HTML page: they need the whole analysis first)
    overlap: bool | None = None
    chunked: bool = False  # split at shot cuts, encode chunks in parallel on `engine`, join losslessly
    min_chunk: float = Field(2.0, gt=0)  # seconds, shortest chunk of a chunked encode
    engine: EngineOptions = EngineOptions()
    auto_preset: bool = False  # tag the video first; the preset table chooses plan settings the user did not set
    preset_table: Path | None = None  # for auto_preset; None: the shipped data/presets.yaml
    taxonomy: Path | None = None  # for auto_preset; None: the shipped data/taxonomy.yaml
    save_plan: Path | None = None  # write the plan used (with zones and allocation) here

    @field_validator("bitrate", mode="before")
    @classmethod
    def _bitrate_text(cls, v):
        return None if v is None else parse_bitrate(v)

    @field_validator("size", mode="before")
    @classmethod
    def _size_text(cls, v):
        return None if v is None else parse_bitrate(v, "size")

    @field_validator("params", mode="before")
    @classmethod
    def _params_text(cls, v):
        if isinstance(v, str):
            from codec_assist.encoding.x26x import parse_params

            return parse_params(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "EncodeOptions":
        """Combinations the orchestration does not support are refused here, never dropped."""
        if sum(x is not None for x in (self.bitrate, self.crf, self.size)) > 1:
            raise ValueError("give one of bitrate, crf and size")
        a = self.allocation
        modes = [n for n, on in (("--allocate", a.allocate), ("--target-quality", a.target_quality),
                                 ("--ladder", self.ladder)) if on]
        if len(modes) > 1:
            raise ValueError(f"choose one of --allocate, --target-quality, --ladder (got {', '.join(modes)})")
        if self.chunked and (modes or self.events or self.size):
            raise ValueError(f"--chunked cannot go with {', '.join(modes) or ('--events' if self.events else '--size')}"
                             ": chunks are encoded on their own")
        if not self.assist:
            if self.plan_file:
                raise ValueError("--plan and --no-assist contradict each other")
            if self.auto_preset:
                raise ValueError("--auto-preset chooses plan settings; it cannot go with --plan or --no-assist")
            if modes or self.events or self.size or self.save_plan:
                raise ValueError("allocation, target quality, ladders and events need the analysis: drop --no-assist "
                                 "(use --max-dqp 0 for IDRs and zones without per-block offsets)")
        if (self.preset_table or self.taxonomy) and not self.auto_preset:
            raise ValueError("--preset-table and --taxonomy go with --auto-preset")
        if self.plan_file and self.auto_preset:
            raise ValueError("--auto-preset chooses plan settings; it cannot go with --plan or --no-assist")
        if a.target_quality and (self.bitrate or self.crf is not None or self.size):
            raise ValueError("--target-quality chooses the CRF per shot; drop --bitrate/--crf/--size")
        if a.allocate and self.bitrate is None and self.size is None:
            raise ValueError("--allocate shares a total budget: give --bitrate or --size")
        return self

    def rate(self, duration: float | None = None) -> RateControl:
        """The rate control; a `size` budget needs the video's duration in seconds."""
        if self.size is not None:
            if not duration:
                raise CodecAssistError("a size budget needs the video's duration")
            return RateControl(mode="abr", bitrate=int(self.size * 8 / duration))
        return RateControl.of(self.bitrate, self.crf)

    @property
    def staged(self) -> bool:
        """Whether the encode needs the shot-level stage (allocation, target quality, ladder, events, saved plan)."""
        a = self.allocation
        return bool(a.allocate or a.target_quality or self.ladder or self.events or self.size or self.save_plan)
