"""Planning: the policies turn an analysis into an encode plan: importance -> rate-neutral QP offsets at the
codec's block size, cuts -> forced IDRs within the GOP bounds."""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from policies.keyframes import keyframes
from policies.moments import moment_offsets
from policies.qp import block_grid, plan_offsets, quantise

from codec_assist.schemas import Analysis, Codec, EncodePlan, VideoInfo

BLOCK_SIZE = {"x264": 16, "x265": 32}  # x264 honours 16x16 MBs; x265 showed no effect below 32 px (FACTS)
# Each encoder's own default AQ mode: the plan keeps it unless asked (x265's is 2; forcing x264's 1 on x265
# cost +18 % whole-frame PSNR BD-rate on cap12 with no offsets at all).
AQ_MODE = {"x264": 1, "x265": 2}
# How the cost bound weighs the blocks that pay for an ROI: by texture**exponent (their expected distortion). Chosen
# on dev, x264 medium and x265 medium (docs/BENCHMARKS.md, issue 15): on x264 it let flat-background ROIs go deeper
# at no VMAF cost (lecture VMAF BD-rate -12 -> -28 %); on x265's 32-px blocks it cost VMAF on both face clips.
COST_EXPONENT = {"x264": 1.0, "x265": 0.0}


class PlanOptions(BaseModel):
    codec: Codec = "x264"
    max_dqp: float = Field(6.0, ge=0, le=15)
    strength: float = Field(2.0, gt=0)  # a cell 1/strength of the way from roi_threshold to 1 is a full ROI
    roi_threshold: float = Field(0.5, ge=0, lt=1)  # importance above this is a region of interest (faces, text)
    max_cost_db: float = Field(0.15, ge=0)  # bound on the expected whole-frame PSNR loss of the offsets, per frame
    texture_gamma: float = Field(0.0, ge=-2, le=2)  # the ROI's bits come back from busy blocks (texture**gamma); 0: evenly
    # the cost bound weighs the paying blocks by their expected distortion, texture**cost_exponent (0: all alike);
    # None: the codec's (COST_EXPONENT)
    cost_exponent: float | None = Field(None, ge=0, le=3)
    time_constant: float = Field(0.5, ge=0)  # seconds, temporal smoothing of the offsets inside a shot
    min_gop: float = Field(0.5, gt=0)  # seconds
    max_gop: float = Field(10.0, gt=0)  # seconds
    block_size: int | None = None  # default per codec
    aq_mode: int | None = Field(None, ge=1, le=4)  # encoder AQ (ROI needs it on); None: the codec's default
    aq_strength: float = Field(1.0, gt=0, le=3)
    # frame-level share of a shot's bits for its moments (policies.moments): max |QP| of that offset, 0 = off
    moment_dqp: float = Field(3.0, ge=0, le=6)  # chosen on dev speech clips (docs/BENCHMARKS.md, issue 15)
    moment_rate: float = Field(2.0, gt=0)  # QP per second: how fast the moment offset may change


def make_plan(analysis: Analysis, arrays: dict[str, np.ndarray], options: PlanOptions | None = None,
              source: str = "") -> tuple[EncodePlan, dict[str, np.ndarray]]:
    """Policies: importance -> rate-neutral QP offsets at the codec's block size; cuts -> forced IDRs."""
    opt = options or PlanOptions()
    v = analysis.video
    starts = [s.start_frame for s in analysis.shots]
    frames = arrays["importance/frames"].astype(np.int64)
    offsets = make_offsets(arrays, v.width, v.height, v.fps, v.frame_count, starts, opt)
    min_gop, max_gop = gop_frames(opt, v.fps)
    # No cut (not even a gradual one): the plan has no IDR of its own to place, and an evenly split GOP is an
    # arbitrary one; the encoder's own scenecut puts its keyframes where the picture changes (docs/BENCHMARKS.md)
    plan = plan_model(v, opt, keyframes(analysis.hard_cut_frames, v.frame_count, min_gop, max_gop), starts, source,
                      own_keyframes=len(starts) <= 1)
    return plan, {"qp/frames": frames, "qp/offsets": offsets.astype(np.float32, copy=False)}


def gop_frames(opt: PlanOptions, fps: float) -> tuple[int, int]:
    """(min, max) GOP in frames."""
    min_gop = max(1, round(opt.min_gop * fps))
    return min_gop, max(min_gop, round(opt.max_gop * fps))


def plan_model(v: VideoInfo, opt: PlanOptions, keyframes: list[int], shot_starts: list[int], source: str = "",
               own_keyframes: bool = False) -> EncodePlan:
    """The EncodePlan (everything but the offset arrays) for a video."""
    block = opt.block_size or BLOCK_SIZE[opt.codec]
    by, bx = block_grid(v.width, v.height, block)
    min_gop, max_gop = gop_frames(opt, v.fps)
    return EncodePlan(
        codec=opt.codec, width=v.width, height=v.height, frame_count=v.frame_count, fps=v.fps, block_size=block,
        blocks_x=bx, blocks_y=by, max_dqp=opt.max_dqp, keyframes=keyframes, shot_starts=shot_starts,
        min_gop=min_gop, max_gop=max_gop, aq_mode=opt.aq_mode or AQ_MODE[opt.codec], aq_strength=opt.aq_strength,
        source=source, own_keyframes=own_keyframes,
    )


def make_offsets(arrays: dict[str, np.ndarray], width: int, height: int, fps: float, frame_count: int,
                 shot_starts: list[int], options: PlanOptions):
    """The policies on one stretch of analysis arrays: importance -> the QP offsets of its keypoints
    (arrays["importance/frames"]), rate-neutral per frame, smoothed inside the shots that start at
    `shot_starts`, with the moments' frame-level share added (mean zero per shot). A FrameStack."""
    opt = options
    block = opt.block_size or BLOCK_SIZE[opt.codec]
    frames = arrays["importance/frames"].astype(np.int64)
    grid = arrays["importance/grid"].astype(np.float32)
    offsets = plan_offsets(frames, grid, width, height, block, shot_starts, fps, opt.max_dqp, opt.strength,
                           opt.time_constant, opt.roi_threshold, opt.max_cost_db, arrays.get("texture/grid"),
                           opt.texture_gamma,
                           COST_EXPONENT[opt.codec] if opt.cost_exponent is None else opt.cost_exponent)
    if opt.moment_dqp > 0 and "importance/temporal" in arrays:
        add_moments(offsets, frames, arrays["importance/temporal"], shot_starts, fps, frame_count, opt)
    return offsets


def add_moments(offsets, frames: np.ndarray, temporal: np.ndarray, shot_starts: list[int], fps: float,
                frame_count: int, opt: PlanOptions) -> None:
    """Add the frame-level moment offset to each keypoint's block offsets (in place in the plan's FrameStack),
    clamped to ±max_dqp and re-quantised. Mean zero per shot, so the shot's rate holds."""
    moment = moment_offsets(frames, np.asarray(temporal, np.float32), shot_starts, fps, frame_count,
                            max_dqp=opt.moment_dqp, max_rate=opt.moment_rate)
    for k, key in enumerate(offsets.keys):
        if moment[k]:
            offsets.store[key] = quantise(np.clip(offsets[k] + moment[k], -opt.max_dqp, opt.max_dqp))
