"""Planning: the policies turn an analysis into an encode plan: importance -> rate-neutral QP offsets at the
codec's block size, cuts -> forced IDRs within the GOP bounds."""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from policies.keyframes import keyframes
from policies.qp import block_grid, plan_offsets

from codec_assist.schemas import Analysis, Codec, EncodePlan

BLOCK_SIZE = {"x264": 16, "x265": 32}  # x264 honours 16x16 MBs; x265 showed no effect below 32 px (FACTS)
# Each encoder's own default AQ mode: the plan keeps it unless asked (x265's is 2; forcing x264's 1 on x265
# cost +18 % whole-frame PSNR BD-rate on cap12 with no offsets at all).
AQ_MODE = {"x264": 1, "x265": 2}


class PlanOptions(BaseModel):
    codec: Codec = "x264"
    max_dqp: float = Field(6.0, ge=0, le=15)
    strength: float = Field(2.0, gt=0)  # a cell 1/strength of the way from roi_threshold to 1 is a full ROI
    roi_threshold: float = Field(0.5, ge=0, lt=1)  # importance above this is a region of interest (faces, text)
    max_cost_db: float = Field(0.15, ge=0)  # bound on the expected whole-frame PSNR loss of the offsets, per frame
    texture_gamma: float = Field(0.0, ge=-2, le=2)  # the ROI's bits come back from busy blocks (texture**gamma); 0: evenly
    time_constant: float = Field(0.5, ge=0)  # seconds, temporal smoothing of the offsets inside a shot
    min_gop: float = Field(0.5, gt=0)  # seconds
    max_gop: float = Field(10.0, gt=0)  # seconds
    block_size: int | None = None  # default per codec
    aq_mode: int | None = Field(None, ge=1, le=4)  # encoder AQ (ROI needs it on); None: the codec's default
    aq_strength: float = Field(1.0, gt=0, le=3)


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
                           opt.time_constant, opt.roi_threshold, opt.max_cost_db, arrays.get("texture/grid"),
                           opt.texture_gamma)
    plan = EncodePlan(
        codec=opt.codec, width=v.width, height=v.height, frame_count=v.frame_count, fps=fps, block_size=block,
        blocks_x=bx, blocks_y=by, max_dqp=opt.max_dqp,
        keyframes=keyframes(analysis.cut_frames, v.frame_count, min_gop, max_gop), shot_starts=starts,
        min_gop=min_gop, max_gop=max_gop, aq_mode=opt.aq_mode or AQ_MODE[opt.codec], aq_strength=opt.aq_strength, source=source,
    )
    return plan, {"qp/frames": frames, "qp/offsets": offsets.astype(np.float32, copy=False)}
