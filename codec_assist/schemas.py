"""The shared vocabulary: every artifact codec-assist reads or writes is defined here (pydantic v2).

An artifact is a JSON file (the model, with `schema` and `version` fields) plus, when it carries arrays,
an `.npz` beside it with the same stem. Both are written atomically and validated on load.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import SchemaError
from .safeio import atomic_write_bytes

SCHEMA_VERSION = 1

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
    seconds: float
    frames_seen: int
    status: Literal["ok", "failed", "skipped"] = "ok"
    message: str = ""


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


class Analysis(_Model):
    kind: ClassVar[str] = "analysis"
    schema_: Literal["codec-assist/analysis"] = Field("codec-assist/analysis", alias="schema")
    version: int = SCHEMA_VERSION
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

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def cut_frames(self) -> list[int]:
        return [s.start_frame for s in self.shots if s.start_frame > 0]


# ------------------------------------------------------------------------------------------------- plans
class RateControl(_Model):
    mode: Literal["abr", "crf"]
    bitrate: int | None = Field(default=None, gt=0)  # bits/s, for abr
    crf: float | None = Field(default=None, ge=0, le=51)

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
    keyframes: list[int]  # forced IDR frames, ascending, includes 0
    shot_starts: list[int]  # the offsets are not interpolated across these
    min_gop: int = Field(ge=1)
    max_gop: int = Field(ge=1)
    aq_mode: int = Field(default=1, ge=1, le=4)  # ROI needs AQ on
    aq_strength: float = Field(default=1.0, gt=0, le=3)
    zones: list[Zone] = []
    source: str = ""  # analysis this was made from

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


class EncodeReport(_Model):
    kind: ClassVar[str] = "encode-report"
    schema_: Literal["codec-assist/encode-report"] = Field("codec-assist/encode-report", alias="schema")
    version: int = SCHEMA_VERSION
    input: VideoInfo
    result: EncodeResult
    plan: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ComparePoint(_Model):
    rate: RateControl
    baseline: EncodeResult
    assisted: EncodeResult
    bitrate_ratio: float  # assisted / baseline
    psnr_y_delta: float  # assisted - baseline, dB
    roi_psnr_y_delta: dict[str, float] = {}


class CompareReport(_Model):
    kind: ClassVar[str] = "compare-report"
    schema_: Literal["codec-assist/compare-report"] = Field("codec-assist/compare-report", alias="schema")
    version: int = SCHEMA_VERSION
    input: VideoInfo
    codec: Codec
    preset: str
    rois: list[RoiBox] = []
    points: list[ComparePoint]
    bd_rate: dict[str, float | None] = {}  # metric -> % bitrate change of assisted vs baseline at equal quality
    seconds_analysis: float
    speed_ratio: float  # mean over the rates of (analysis + assisted encode) / plain encode wall time

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
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(arrays_path(path), buf.getvalue())
    text = model.model_dump_json(indent=2, by_alias=True) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


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
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: not a codec-assist {what} file (top level is not an object)")
    expected = cls.model_fields["schema_"].default if "schema_" in cls.model_fields else None
    if expected and raw.get("schema") != expected:
        raise SchemaError(f"{path}: expected a '{expected}' file, found schema {raw.get('schema')!r}")
    if raw.get("version") != SCHEMA_VERSION:
        raise SchemaError(f"{path}: {what} version {raw.get('version')!r} is not supported (this is {SCHEMA_VERSION})")
    try:
        model = cls.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise SchemaError(f"{path}: invalid {what}: {where}: {err['msg']}") from None
    arrays: dict[str, np.ndarray] = {}
    npz = arrays_path(path)
    if need_arrays:
        try:
            with np.load(npz, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise SchemaError(f"{npz}: missing (the arrays of {path.name})") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise SchemaError(f"{npz}: unreadable arrays ({type(e).__name__})") from None
        missing = [k for k in need_arrays if k not in arrays]
        if missing:
            raise SchemaError(f"{npz}: missing array(s) {', '.join(missing)}")
    return model, arrays


def validate_plan_arrays(plan: EncodePlan, arrays: dict[str, np.ndarray], where: str = "plan") -> None:
    frames, offsets = arrays["qp/frames"], arrays["qp/offsets"]
    if frames.ndim != 1 or offsets.ndim != 3 or len(frames) != len(offsets) or len(frames) == 0:
        raise SchemaError(f"{where}: qp arrays have inconsistent shapes {frames.shape} / {offsets.shape}")
    if offsets.shape[1:] != (plan.blocks_y, plan.blocks_x):
        raise SchemaError(f"{where}: qp grid {offsets.shape[1:]} does not match blocks {plan.blocks_y}x{plan.blocks_x}")
    if not np.issubdtype(frames.dtype, np.integer) or (np.diff(frames) <= 0).any() or frames[0] < 0:
        raise SchemaError(f"{where}: qp/frames must be ascending non-negative integers")
    if not np.isfinite(offsets).all() or np.abs(offsets).max() > plan.max_dqp + 1e-3:
        raise SchemaError(f"{where}: qp offsets must be finite and within ±max_dqp ({plan.max_dqp})")
    if plan.keyframes != sorted(set(plan.keyframes)) or (plan.keyframes and plan.keyframes[0] != 0):
        raise SchemaError(f"{where}: keyframes must be ascending, unique and start at 0")
    if plan.keyframes and plan.keyframes[-1] >= plan.frame_count:
        raise SchemaError(f"{where}: keyframe {plan.keyframes[-1]} is beyond the last frame")


# --- batch (issue 7)
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
