"""The Python API alone, no CLI (issue 17): analyze -> plan -> encode -> compare -> tag -> report on the real
talking-head clip, with typed options, rates as a user types them, and the face box marked by hand."""
import json

import pytest

import codec_assist as ca
from codec_assist.media.decode import keyframe_indices, probe

FACE = "190,60,160,240"  # jwpIntro's face, marked by hand on rendered frames (independent of the map)
QUICK = ca.AnalyzeOptions(analyzers=["shots", "saliency", "faces"])


def test_api_drives_the_whole_job(sample, tmp_path):
    src = sample("jwpIntro.mp4")
    analysis, arrays = ca.analyze(src, QUICK, output=tmp_path / "an")
    assert (tmp_path / "an" / "analysis.json").is_file() and any(t.source == "faces" for t in analysis.tokens)

    plan, plan_arrays = ca.make_plan(tmp_path / "an", options=ca.PlanOptions(codec="x264"), output=tmp_path / "p.json")
    assert plan.keyframes[0] == 0 and plan_arrays["qp/offsets"].shape[1:] == (plan.blocks_y, plan.blocks_x)

    rep = ca.encode(src, tmp_path / "a.mp4", plan_file=tmp_path / "p.json", bitrate="300k", preset="veryfast",
                    report=tmp_path / "a.json", rois=[ca.parse_roi(FACE)])
    assert isinstance(rep, ca.EncodeReport) and rep.result.assisted and rep.result.rate.bitrate == 300_000
    assert keyframe_indices(tmp_path / "a.mp4") == plan.keyframes  # decoded, not just reported
    assert json.loads((tmp_path / "a.json").read_text())["result"]["quality"]["roi_psnr_y"]

    plain = ca.encode(src, tmp_path / "b.mp4", ca.EncodeOptions(bitrate="300k", preset="veryfast", assist=False))
    assert not plain.result.assisted and probe(tmp_path / "b.mp4").frame_count == probe(src).frame_count

    cmp = ca.compare(src, ["150k", "300k", "600k"], codec="x264", preset="veryfast", rois=[ca.parse_roi(FACE)],
                     analyze_options=QUICK, output=tmp_path / "cmp.json", vmaf_every=10)
    key = next(iter(cmp.points[0].roi_psnr_y_delta))
    assert all(p.roi_psnr_y_delta[key] > 0.5 for p in cmp.points), "the face must get better at the same rate"
    assert cmp.bd_rate[f"roi_psnr_y[{key}]"] < -10
    assert cmp.peer is not None and all(p.peer.quality.vmaf is not None for p in cmp.points)
    assert set(cmp.bd_rate_vs_peer) == set(cmp.bd_rate) >= {"psnr_y", "ssim_y", "xpsnr_y", "vmaf"}

    tags = ca.tag(src, top=3)
    assert tags.tags[0].name and tags.tags[0].evidence

    summary = ca.write_report([tmp_path / "an", tmp_path / "cmp.json"], tmp_path / "r.html")
    assert "rd_curves" in summary["figures"] and (tmp_path / "r.html").stat().st_size > 10_000

    why = ca.explain(tmp_path / "an", top=1)
    assert why.moments and why.moments[0].tokens


def test_api_refuses_what_it_does_not_support(sample, tmp_path):
    src = sample("bikes.mp4")
    with pytest.raises(ca.CodecAssistError, match="--chunked cannot go with --allocate"):
        ca.encode(src, tmp_path / "o.mp4", bitrate="300k", chunked=True, allocation=ca.AllocationOptions(allocate=True))
    with pytest.raises(ca.CodecAssistError, match="bitrate 'fast' is not a number"):
        ca.encode(src, tmp_path / "o.mp4", bitrate="fast")
    with pytest.raises(ca.CodecAssistError, match="already exists"):
        (tmp_path / "x.mp4").write_bytes(b"keep")
        ca.encode(src, tmp_path / "x.mp4", bitrate="300k", assist=False)
    assert (tmp_path / "x.mp4").read_bytes() == b"keep" and not (tmp_path / "o.mp4").exists()
    with pytest.raises(ca.InputError, match="max-duration"):
        ca.encode(src, tmp_path / "o.mp4", bitrate="300k", assist=False, limits=ca.Limits(max_duration=5))
