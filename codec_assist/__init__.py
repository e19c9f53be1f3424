"""codec-assist: content-aware video encoding assistant.

The public API (typed options in, typed reports out; see each function's help):

    import codec_assist as ca
    analysis, arrays = ca.analyze("talk.mp4", ca.AnalyzeOptions(focus=[ca.FocusPrompt(text="the slides")]))
    plan, plan_arrays = ca.make_plan(analysis, arrays, ca.PlanOptions(codec="x264"))
    report = ca.encode("talk.mp4", "out.mp4", bitrate="400k")          # analyse + plan + assisted encode
    plain = ca.encode("talk.mp4", "plain.mp4", bitrate="400k", assist=False)
    cmp = ca.compare("talk.mp4", ["150k", "300k", "600k"], rois=[ca.parse_roi("190,60,160,240")])
    tags = ca.tag("talk.mp4")

Names are imported on first use, so `import codec_assist` stays cheap (no torch, no FFmpeg until needed).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    **{name: "codec_assist.api" for name in (
        "analyze", "make_plan", "encode", "compare", "tag", "tag_folder", "explain", "write_report", "export_plan",
        "semantic_encode", "semantic_decode", "batch", "probe", "measure", "bd_rate", "hull_ladder")},
    **{name: "codec_assist.options" for name in (
        "AnalyzeOptions", "PlanOptions", "EncodeOptions", "AllocationOptions", "HullOptions", "EngineOptions",
        "Limits")},
    "SemanticOptions": "codec_assist.semantic.stream",
    "parse_roi": "codec_assist.evaluation.metrics",
    **{name: "codec_assist.schemas" for name in (
        "Analysis", "EncodePlan", "EncodeReport", "EncodeResult", "CompareReport", "LadderReport", "TagReport",
        "Explanation", "SemanticReport", "BatchManifest", "RateControl", "RoiBox", "FocusPrompt", "VideoInfo",
        "Quality", "HullLadderReport")},
    **{name: "codec_assist.errors" for name in ("CodecAssistError", "InputError", "SchemaError", "EncoderError")},
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from codec_assist.api import (analyze, batch, bd_rate, compare, encode, explain, export_plan,  # noqa: F401
                                  hull_ladder, make_plan, measure, probe, semantic_decode, semantic_encode, tag, tag_folder,
                                  write_report)
    from codec_assist.errors import CodecAssistError, EncoderError, InputError, SchemaError  # noqa: F401
    from codec_assist.evaluation.metrics import parse_roi  # noqa: F401
    from codec_assist.options import (AllocationOptions, AnalyzeOptions, EncodeOptions, EngineOptions,  # noqa: F401
                                      HullOptions, Limits, PlanOptions)
    from codec_assist.schemas import (Analysis, BatchManifest, CompareReport, EncodePlan, EncodeReport,  # noqa: F401
                                      EncodeResult, Explanation, FocusPrompt, HullLadderReport, LadderReport, Quality, RateControl,
                                      RoiBox, SemanticReport, TagReport, VideoInfo)
    from codec_assist.semantic.stream import SemanticOptions  # noqa: F401


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codec_assist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
