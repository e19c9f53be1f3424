"""Artifacts round-trip and refuse anything malformed with one clear line."""
import json

import numpy as np
import pytest

from codec_assist import schemas
from codec_assist.errors import SchemaError
from codec_assist.schemas import Analysis, EncodePlan, ImportanceInfo, Shot, VideoInfo


def _video():
    return VideoInfo(path="x.mp4", container="mp4", codec="h264", width=64, height=48, fps=25, time_base="1/12800",
                     frame_count=10, duration=0.4, pix_fmt="yuv420p")


def _plan(**kw):
    base = dict(codec="x264", width=64, height=48, frame_count=10, fps=25, block_size=16, blocks_x=4, blocks_y=3,
                max_dqp=4, keyframes=[0, 5], shot_starts=[0, 5], min_gop=2, max_gop=250)
    return EncodePlan(**{**base, **kw})


def test_analysis_roundtrip(tmp_path):
    a = Analysis(video=_video(), proxy_width=64, proxy_height=48, analysis_frames=[0, 5],
                 shots=[Shot(start_frame=0, end_frame=5, cut_type="start"), Shot(start_frame=5, end_frame=10)],
                 importance=ImportanceInfo(grid_h=12, grid_w=16, top_tokens=[[], []]))
    arrays = {"importance/frames": np.array([0, 5]), "importance/grid": np.random.rand(2, 12, 16).astype(np.float16)}
    schemas.save(a, tmp_path / "analysis.json", arrays)
    raw = json.loads((tmp_path / "analysis.json").read_text())
    assert raw["schema"] == "codec-assist/analysis" and raw["version"] == schemas.TIMED_VERSION == schemas.Analysis.versions[-1]
    b, arr = schemas.load(Analysis, tmp_path / "analysis.json", need_arrays=("importance/grid",))
    assert b == a and np.array_equal(arr["importance/grid"], arrays["importance/grid"])
    assert b.cut_frames == [5]


def test_plan_roundtrip_and_array_validation(tmp_path):
    p = _plan()
    arrays = {"qp/frames": np.array([0, 5]), "qp/offsets": np.zeros((2, 3, 4), np.float32)}
    schemas.save(p, tmp_path / "plan.json", arrays)
    q, arr = schemas.load(EncodePlan, tmp_path / "plan.json", need_arrays=("qp/frames", "qp/offsets"))
    schemas.validate_plan_arrays(q, arr)
    with pytest.raises(SchemaError, match="does not match blocks"):
        schemas.validate_plan_arrays(q, {"qp/frames": np.array([0]), "qp/offsets": np.zeros((1, 2, 2))})
    with pytest.raises(SchemaError, match="max_dqp"):
        schemas.validate_plan_arrays(q, {"qp/frames": np.array([0]), "qp/offsets": np.full((1, 3, 4), 9.0)})
    with pytest.raises(SchemaError, match="ascending"):
        schemas.validate_plan_arrays(q, {"qp/frames": np.array([5, 0]), "qp/offsets": np.zeros((2, 3, 4))})
    with pytest.raises(SchemaError, match="beyond the last frame"):
        schemas.validate_plan_arrays(_plan(keyframes=[0, 10]), arrays)


@pytest.mark.parametrize("content,match", [
    ("", "not a codec-assist plan JSON"),
    ("[1, 2]", "top level is not an object"),
    ('{"schema": "codec-assist/analysis", "version": 1}', "expected a 'codec-assist/plan'"),
    ('{"schema": "codec-assist/plan", "version": 99}', "version 99 is not supported"),
    ('{"schema": "codec-assist/plan", "version": 1, "codec": "vp9"}', "invalid plan: codec"),
    ("\xff\xfe garbage", "not a codec-assist plan JSON"),
])
def test_load_rejects_malformed(tmp_path, content, match):
    f = tmp_path / "bad.json"
    f.write_bytes(content.encode("latin-1"))
    with pytest.raises(SchemaError, match=match) as e:
        schemas.load(EncodePlan, f)
    assert "\n" not in str(e.value)


def test_missing_or_corrupt_arrays(tmp_path):
    schemas.save(_plan(), tmp_path / "plan.json")
    with pytest.raises(SchemaError, match="missing"):
        schemas.load(EncodePlan, tmp_path / "plan.json", need_arrays=("qp/frames",))
    (tmp_path / "plan.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SchemaError, match="unreadable arrays"):
        schemas.load(EncodePlan, tmp_path / "plan.json", need_arrays=("qp/frames",))


def test_shot_must_be_nonempty():
    with pytest.raises(ValueError):
        Shot(start_frame=5, end_frame=5)


def _compare_report(**kw):
    from codec_assist.schemas import ComparePoint, CompareReport, EncodeResult, Quality, RateControl

    def result(assisted, kbps):
        return EncodeResult(output="o.mp4", codec="x264", preset="medium", rate=RateControl(mode="abr", bitrate=100_000),
                            assisted=assisted, frames=10, keyframes=[0], bitrate_kbps=kbps, seconds_encode=1.0,
                            quality=Quality(frames=10, bitrate_kbps=kbps, psnr_y=35.0, ssim_y=0.95, **kw.get("q", {})))

    point = ComparePoint(rate=RateControl(mode="abr", bitrate=100_000), baseline=result(False, 100.0),
                         assisted=result(True, 101.0), bitrate_ratio=1.01, psnr_y_delta=0.0,
                         **({"peer": result(False, 99.0)} if "peer" in kw else {}))
    return CompareReport(input=_video(), codec="x264", preset="medium", points=[point], seconds_analysis=1.0,
                         speed_ratio=1.2, **({"peer": kw["peer"]} if "peer" in kw else {}))


def test_compare_report_v3_and_older_versions_load(tmp_path):
    """Version 3 (issue 15) adds VMAF/XPSNR to Quality and the peer encode; version 1 and 2 files still load."""
    from codec_assist.schemas import CompareReport, PeerSettings

    new = _compare_report(q={"vmaf": 91.5, "vmaf_frames": 10, "xpsnr_y": 33.0},
                          peer=PeerSettings(aq_mode=3, tune="film", tune_reason="asked for"))
    schemas.save(new, tmp_path / "v3.json")
    raw = json.loads((tmp_path / "v3.json").read_text())
    assert raw["version"] == 3 == CompareReport.versions[-1]
    back, _ = schemas.load(CompareReport, tmp_path / "v3.json")
    assert back == new and back.points[0].peer.quality.bitrate_kbps == 99.0 and back.peer.label() == "aq-mode=3 tune=film"

    old = json.loads(_compare_report().model_dump_json(by_alias=True))
    for version in (1, 2):  # what earlier releases wrote: no vmaf/xpsnr fields, no peer, no timing in version 1
        for p in old["points"]:
            for side in ("baseline", "assisted"):
                for key in ("vmaf", "vmaf_frames", "xpsnr_y"):
                    p[side]["quality"].pop(key)
            p.pop("peer")
        for key in ("peer", "bd_rate_peer", "bd_rate_vs_peer") + (("timing",) if version == 1 else ()):
            old.pop(key, None)
        old["version"] = version
        (tmp_path / f"v{version}.json").write_text(json.dumps(old))
        rep, _ = schemas.load(CompareReport, tmp_path / f"v{version}.json")
        assert rep.version == version and rep.peer is None and rep.points[0].baseline.quality.vmaf is None
        old = json.loads(_compare_report().model_dump_json(by_alias=True))
