"""The encoder bridge on real footage: IDRs exactly where planned, ROI really moves quality, bitrate holds."""
import multiprocessing
import os
import subprocess

import av
import numpy as np
import pytest

import codec_assist.encoding.roi as roi
from codec_assist.encoding.x26x import encode, parse_params
from codec_assist.errors import EncoderError
from codec_assist.media.decode import keyframe_indices, probe
from codec_assist.evaluation.metrics import compare_videos
from codec_assist.schemas import EncodePlan, RateControl, RoiBox
from policies.keyframes import keyframes
from policies.qp import block_grid

BIKES_CUTS = [30, 76, 137, 187, 242]


def _plan(codec, w, h, n, fps, block, cuts, offsets_fn=None, max_dqp=6.0):
    by, bx = block_grid(w, h, block)
    starts = [0] + cuts
    plan = EncodePlan(codec=codec, width=w, height=h, frame_count=n, fps=fps, block_size=block, blocks_x=bx,
                      blocks_y=by, max_dqp=max_dqp, keyframes=keyframes(cuts, n, 12, 250), shot_starts=starts,
                      min_gop=12, max_gop=250)
    grid = np.zeros((by, bx), np.float32) if offsets_fn is None else offsets_fn(by, bx)
    arrays = {"qp/frames": np.array(starts), "qp/offsets": np.repeat(grid[None], len(starts), 0)}
    return plan, arrays


def test_roi_layout_check_and_regions():
    roi._check_layout()  # proves the AVFrame pointer assumption on this PyAV build
    grid = np.array([[0, 0, -2, -2], [1.5, 1.5, 1.5, 0]], np.float32)
    r = roi.regions_from_grid(grid, 16, 60, 32)
    assert len(r) == 2  # zero runs need no region; equal neighbours merge
    assert (r[0]["top"], r[0]["bottom"], r[0]["left"], r[0]["right"]) == (0, 16, 32, 60)  # clipped to width
    assert r[0]["num"] / r[0]["den"] * 51 == pytest.approx(-2)
    assert (r[1]["left"], r[1]["right"], r[1]["top"]) == (0, 48, 16)


def test_roi_map_of_zeros_is_attached_only_when_asked():
    frame = av.VideoFrame(64, 48, "yuv420p")
    assert roi.attach_qp_offsets(frame, np.zeros((2, 2), np.float32), 32) == 0
    assert not list(frame.side_data)
    frame = av.VideoFrame(64, 48, "yuv420p")  # PyAV reads a frame's side data once
    assert roi.attach_qp_offsets(frame, np.zeros((2, 2), np.float32), 32, always=True) == 1
    (sd,) = list(frame.side_data)
    region = np.frombuffer(bytes(sd), roi._ROI_DTYPE)[0]
    assert (region["top"], region["bottom"], region["left"], region["right"], region["num"]) == (0, 48, 0, 64, 0)


_X265_ZEROS_THEN_MAP = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_encode import _plan
from codec_assist.encoding.x26x import encode
from codec_assist.media.decode import probe
from codec_assist.schemas import RateControl
src = {src!r}
info = probe(src)
plan, _ = _plan("x265", info.width, info.height, info.frame_count, info.fps, 32, [])
frames = np.arange(0, info.frame_count, 10)
grids = np.zeros((len(frames), plan.blocks_y, plan.blocks_x), np.float32)
grids[frames >= 100, :, : plan.blocks_x // 2] = -2.0
grids[frames >= 100, :, plan.blocks_x // 2:] = 2.0
r = encode(src, {out!r}, codec="x265", rate=RateControl(mode="abr", bitrate=300_000), preset="veryfast",
           plan=plan, plan_arrays={{"qp/frames": frames, "qp/offsets": grids}})
print(r.frames)
"""


def test_x265_map_after_frames_without_one_does_not_crash(sample, tmp_path):
    """x265 4.x copies a frame's QP map into the picture buffer it reuses, and a buffer it made for a frame without
    a map has none: a plan whose first 100 frames need no offsets (a quiet opening, a face-free first shot) and the
    rest do crashed the process (SIGSEGV; the default x265 encode of bikes at 200k and of test4's clock_cat did).
    Every frame of an x265 encode with a plan now carries a map, of zeros where nothing moves. In a child process,
    so a crash fails this test, not the run."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "zeros_then_map.mp4"
    code = _X265_ZEROS_THEN_MAP.format(tests=str(Path(__file__).parent), src=str(sample("bikes.mp4")), out=str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() == "250"


@pytest.mark.parametrize("codec,block,preset", [("x264", 16, "veryfast"), ("x265", 32, "ultrafast")])
def test_idr_exactly_at_planned_cuts(sample, tmp_path, codec, block, preset):
    src = sample("bikes.mp4")
    info = probe(src)
    plan, arrays = _plan(codec, info.width, info.height, info.frame_count, info.fps, block, BIKES_CUTS)
    out = tmp_path / f"bikes.{codec}.mp4"
    r = encode(src, out, codec=codec, rate=RateControl(mode="abr", bitrate=400_000), preset=preset,
               plan=plan, plan_arrays=arrays)
    assert r.frames == info.frame_count == 250
    assert keyframe_indices(out) == [0] + BIKES_CUTS == r.keyframes


@pytest.mark.parametrize("codec,block,preset", [("x264", 16, "veryfast"), ("x265", 32, "ultrafast")])
def test_roi_raises_quality_in_region_and_keeps_bitrate(sample, tmp_path, codec, block, preset):
    """Left half -4 QP, right half +4 QP (mean zero): left PSNR up, right down, bitrate within 5 %."""
    src = sample("jwpIntro.mp4")
    info = probe(src)
    half = info.width // 2

    def left_right(by, bx):
        g = np.full((by, bx), 4.0, np.float32)
        g[:, : (half // block)] = -4.0
        return g

    rate = RateControl(mode="abr", bitrate=300_000)
    plain = encode(src, tmp_path / "plain.mp4", codec=codec, rate=rate, preset=preset)
    plan, arrays = _plan(codec, info.width, info.height, info.frame_count, info.fps, block, [], left_right)
    asst = encode(src, tmp_path / "roi.mp4", codec=codec, rate=rate, preset=preset, plan=plan, plan_arrays=arrays)
    left, right = RoiBox(x=0, y=0, w=half, h=info.height), RoiBox(x=half, y=0, w=half, h=info.height)
    q0 = compare_videos(src, tmp_path / "plain.mp4", rois=[left, right])
    q1 = compare_videos(src, tmp_path / "roi.mp4", rois=[left, right])
    gain = q1.roi_psnr_y[left.label()] - q0.roi_psnr_y[left.label()]
    loss = q1.roi_psnr_y[right.label()] - q0.roi_psnr_y[right.label()]
    assert gain > 1.0, (gain, loss)
    assert loss < -1.0, (gain, loss)
    assert abs(asst.bitrate_kbps / plain.bitrate_kbps - 1) < 0.05


def test_audio_is_carried(sample, tmp_path):
    import av

    src = sample("jwpIntro.mp4")
    out = tmp_path / "a.mp4"
    encode(src, out, rate=RateControl(mode="crf", crf=30), preset="ultrafast")
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
        a_pkts = sum(1 for p in c.demux(c.streams.audio[0]) if p.size)
    with av.open(str(src)) as c:
        assert a_pkts == sum(1 for p in c.demux(c.streams.audio[0]) if p.size)


def test_frame_range_of_packed_b_frame_avi_is_exactly_those_frames(sample, tmp_path, caplog):
    """megamind.avi (MPEG-4 Part 2 in AVI, packed B-frames): its decoder stamps frames out of order (155, 156,
    158, 157, ...), so a range placed by timestamps lost its last frame (45 of 46 for shot 154-199). Lossless,
    every frame of the range must be the source's frame of that number, pixel for pixel."""
    from codec_assist.media.decode import iter_frames

    src = sample("megamind.avi")
    out = tmp_path / "shot.mkv"
    r = encode(src, out, rate=RateControl(mode="crf", crf=0), preset="ultrafast", start_frame=154, end_frame=200)
    assert r.frames == 46 and r.keyframes == [0]
    assert "frames the container declares" not in caplog.text  # a range reads part of the file by design
    ref = [f.to_ndarray(format="gray") for n, f in zip(range(200), iter_frames(src))][154:]
    got = [f.to_ndarray(format="gray") for f in iter_frames(out)]
    assert len(got) == 46
    for k, (a, b) in enumerate(zip(ref, got)):
        assert np.array_equal(a, b), f"output frame {k} is not source frame {154 + k}"
    assert all(not np.array_equal(a, b) for a, b in zip(ref, ref[1:]))  # neighbours differ: the check can fail


def test_bad_options_are_refused_without_output(sample, tmp_path):
    src = sample("bikes.mp4")
    out = tmp_path / "x.mp4"
    rate = RateControl(mode="crf", crf=30)
    with pytest.raises(EncoderError, match="Error parsing option|refused"):
        encode(src, out, rate=rate, preset="ultrafast", params=parse_params("no-such-knob=3"))
    assert not out.exists() and not list(tmp_path.iterdir())
    plan, arrays = _plan("x264", 640, 272, 250, 25, 16, BIKES_CUTS)
    with pytest.raises(EncoderError, match="aq-mode=0"):
        encode(src, out, rate=rate, plan=plan, plan_arrays=arrays, params={"aq-mode": "0"})
    with pytest.raises(EncoderError, match="preset"):
        encode(src, out, rate=rate, preset="fastest")
    with pytest.raises(EncoderError, match="made for x264"):
        encode(src, out, codec="x265", rate=rate, plan=plan, plan_arrays=arrays)
    with pytest.raises(EncoderError, match="container"):
        encode(src, tmp_path / "x.avi", rate=rate)
    assert not list(tmp_path.iterdir())


def test_x264_runs_on_frame_threads_as_its_command_line_does(sample, tmp_path):
    """PyAV opens encoders on slice threads, which libx264 turns into sliced threads (slower, two slices a frame);
    the encode asks for frame threads, so x264's own settings record (its SEI) says no sliced threads."""
    out = tmp_path / "carphone.mp4"
    encode(sample("carphone.mp4"), out, rate=RateControl(mode="abr", bitrate=38_000), preset="medium")
    settings = out.read_bytes().split(b"x264 - core", 1)[1][:2000]
    assert b"sliced_threads=0" in settings and b" slices=" not in settings


def test_odd_height_mpeg2_source_is_cropped_to_even_and_cut_gets_idr(sample, tmp_path):
    """cityCC0 is 720x405 MPEG-2 in MPEG-PS: 4:2:0 needs even sizes, so the last row is cropped."""
    src = sample("cityCC0.mpg")
    info = probe(src)
    plan, arrays = _plan("x264", info.width, info.height, info.frame_count, info.fps, 16, [116])
    out = tmp_path / "city.mp4"
    r = encode(src, out, rate=RateControl(mode="abr", bitrate=600_000), preset="ultrafast", plan=plan,
               plan_arrays=arrays)
    assert (probe(out).width, probe(out).height) == (720, 404)
    assert r.keyframes == [0, 116] and r.frames == 190
    q = compare_videos(src, out)
    assert q.frames == 190 and q.psnr_y > 22  # frames line up (misaligned night frames score far lower)


def _ten_bit_copy(src, out, frames: int = 60):
    """The first `frames` of a real clip re-encoded as HEVC Main 10 (yuv420p10le): a 10-bit source."""
    from fractions import Fraction

    import av

    with av.open(str(src)) as c, av.open(str(out), "w") as o:
        vin = c.streams.video[0]
        s = o.add_stream("libx265", rate=30)
        s.width, s.height, s.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p10le"
        s.options = {"preset": "ultrafast", "crf": "18", "x265-params": "log-level=error"}
        for i, f in enumerate(c.decode(vin)):
            if i == frames:
                break
            g = f.reformat(format="yuv420p10le")
            g.pts, g.time_base, g.pict_type = i, Fraction(1, 30), av.video.frame.PictureType.NONE
            for p in s.encode(g):
                o.mux(p)
        for p in s.encode():
            o.mux(p)
    return out


def test_ten_bit_source_stays_ten_bit_with_x265_and_roi_still_works(sample, tmp_path, caplog):
    """x265 keeps a 10-bit source 10-bit (Main 10), and the ROI map, scaled by FFmpeg to the 10-bit QP range
    (63, not 51), still moves quality: left half -4 QP, right half +4 QP. x264 (its output stays 8-bit) warns and
    encodes 8-bit."""
    import logging

    import av

    src = _ten_bit_copy(sample("jwpIntro.mp4"), tmp_path / "ten.mp4")
    info = probe(src)
    assert info.pix_fmt == "yuv420p10le"
    half = info.width // 2

    def left_right(by, bx):
        g = np.full((by, bx), 4.0, np.float32)
        g[:, : (half // 32)] = -4.0
        return g

    rate = RateControl(mode="abr", bitrate=300_000)
    monkey = logging.getLogger("codec_assist")
    old = monkey.propagate
    monkey.propagate = True  # the CLI turns it off; caplog listens at the root
    try:
        with caplog.at_level(logging.WARNING, logger="codec_assist"):
            plain = encode(src, tmp_path / "plain.mp4", codec="x265", rate=rate, preset="ultrafast")
            plan, arrays = _plan("x265", info.width, info.height, info.frame_count, info.fps, 32, [], left_right)
            encode(src, tmp_path / "roi.mp4", codec="x265", rate=rate, preset="ultrafast", plan=plan,
                   plan_arrays=arrays)
            assert "8-bit" not in caplog.text
            encode(src, tmp_path / "x264.mp4", rate=RateControl(mode="crf", crf=30), preset="ultrafast")
            assert "encoding to 8-bit 4:2:0" in caplog.text
    finally:
        monkey.propagate = old
    for name, fmt in (("plain", "yuv420p10le"), ("roi", "yuv420p10le"), ("x264", "yuv420p")):
        with av.open(str(tmp_path / f"{name}.mp4")) as c:
            assert c.streams.video[0].codec_context.pix_fmt == fmt, name
            assert next(c.decode(video=0)).format.name == fmt
    left, right = RoiBox(x=0, y=0, w=half, h=info.height), RoiBox(x=half, y=0, w=half, h=info.height)
    q0 = compare_videos(src, tmp_path / "plain.mp4", rois=[left, right])
    q1 = compare_videos(src, tmp_path / "roi.mp4", rois=[left, right])
    gain = q1.roi_psnr_y[left.label()] - q0.roi_psnr_y[left.label()]
    loss = q1.roi_psnr_y[right.label()] - q0.roi_psnr_y[right.label()]
    print(f"10-bit ROI: left {gain:+.2f} dB, right {loss:+.2f} dB, bitrate x{q1.bitrate_kbps / plain.bitrate_kbps:.3f}")
    assert gain > 1.0 and loss < -1.0, (gain, loss)
    assert abs(q1.bitrate_kbps / plain.bitrate_kbps - 1) < 0.08


def test_analysis_beside_the_encoder_gives_the_plan_the_whole_analysis_gives(sample, tmp_path):
    """The overlapped encode (segmented analysis in a process, the encoder a max-GOP behind, issue 16): on bikes
    (5 cuts in 10 s), in 2 s segments with a 2 s max GOP, the cuts are the whole-video plan's and each is really an
    IDR in the output; as many IDRs as that plan, none further apart than the max GOP (the encoder's 1 s lookahead
    may put a long gap's extra IDR elsewhere); the offsets nearly the same, and the rate the same."""
    import codec_assist as ca
    from codec_assist import schemas
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.api import for_plan
    from codec_assist.encoding.overlapped import encode_overlapped
    from codec_assist.media.decode import DEFAULT_LIMITS
    from codec_assist.planning.plan import PlanOptions

    clip = sample("bikes.mp4")
    p_opt = PlanOptions(max_gop=2.0)
    serial = ca.encode(clip, tmp_path / "serial.mp4", bitrate="300k", overlap=False, plan_options=p_opt,
                       save_plan=tmp_path / "serial.json")
    plan_s, arrays_s = schemas.load_plan(tmp_path / "serial.json")
    result, plan, arrays = encode_overlapped(
        clip, tmp_path / "overlap.mp4", codec="x264", preset="medium", rate=serial.result.rate, params={},
        analyze_options=for_plan(AnalyzeOptions(), page=False), plan_options=p_opt, limits=DEFAULT_LIMITS,
        overwrite=False, progress=False, segment_s=2.0)
    assert plan.shot_starts == plan_s.shot_starts and len(plan.shot_starts) == 6
    assert len(plan.keyframes) == len(plan_s.keyframes) and set(plan.shot_starts) <= set(plan.keyframes)
    assert max(np.diff([*plan.keyframes, result.frames])) <= plan.max_gop
    assert result.keyframes == keyframe_indices(tmp_path / "overlap.mp4") == plan.keyframes
    assert (arrays["qp/frames"] == arrays_s["qp/frames"]).all()
    a, b = np.asarray(arrays["qp/offsets"]), np.asarray(arrays_s["qp/offsets"])
    assert np.abs(a - b).mean() < 0.25 * np.abs(b).mean() and np.abs(b).max() > 0
    assert abs(result.bitrate_kbps / serial.result.bitrate_kbps - 1) < 0.03
    assert result.timing.analyzers  # the report says how long the encoder waited for the analysis


def test_a_gradual_transition_is_a_shot_start_but_not_a_forced_idr(sample, tmp_path):
    """montage.mp4: the cross-fade (165-189) starts a shot (its offsets and zones restart there) but gets no IDR,
    in the whole-video plan and in the overlapped one: an I-frame coding a blend of two shots cost 2.5-3 %
    BD-rate at the same quality (docs/BENCHMARKS.md, issue 19). Every hard cut is an IDR in the output."""
    import codec_assist as ca
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.encoding.overlapped import encode_overlapped
    from codec_assist.media.decode import DEFAULT_LIMITS
    from codec_assist.planning.plan import PlanOptions

    clip = sample("montage.mp4")
    shots_only = AnalyzeOptions(analyzers=["shots"])
    whole = ca.encode(clip, tmp_path / "whole.mp4", bitrate="300k", preset="veryfast", overlap=False,
                      analyze_options=shots_only, save_plan=tmp_path / "plan.json")
    plan, _ = ca.schemas.load_plan(tmp_path / "plan.json")
    gradual = [s for s in plan.shot_starts if 165 <= s <= 189]
    assert len(gradual) == 1 and gradual[0] not in plan.keyframes
    hard = [0, 50, 110, 230, 285, 330]
    assert plan.keyframes == hard == keyframe_indices(tmp_path / "whole.mp4") == whole.result.keyframes
    result, plan_o, _ = encode_overlapped(
        clip, tmp_path / "overlap.mp4", codec="x264", preset="veryfast", rate=whole.result.rate, params={},
        analyze_options=shots_only, plan_options=PlanOptions(), limits=DEFAULT_LIMITS, overwrite=False,
        progress=False, segment_s=2.0)
    assert plan_o.shot_starts == plan.shot_starts and plan_o.keyframes == hard == result.keyframes


def test_x265_codes_the_plans_cut_as_its_own_scene_cut(sample, tmp_path):
    """cityCC0 (dev): one hard cut (116), no face, text or audio, so its plan moves no bits. x265 codes a frame its
    own lookahead flags as a scene cut better than the same frame forced to IDR unflagged; with the plan's x265
    parameters the cut is both: the IDRs are exactly the plan's, and the encode spends and scores as the plain
    x265 encode (its own keyframe at 116), where the plan's forced IDR alone cost ~0.1 dB PSNR at the same bits."""
    import codec_assist as ca
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.encoding.x26x import plan_params

    src = sample("cityCC0.mpg")
    fast = AnalyzeOptions(analyzers=["shots", "saliency"])
    assisted = ca.encode(src, tmp_path / "a.mp4", codec="x265", bitrate="182k", analyze_options=fast,
                         save_plan=tmp_path / "plan.json")
    plan, _ = ca.schemas.load_plan(tmp_path / "plan.json")
    params = plan_params(plan, "x265")
    assert plan.keyframes == [0, 116] and params["scenecut"] != "0" and params["min-keyint"] == str(plan.max_gop)
    assert assisted.result.keyframes == plan.keyframes == keyframe_indices(tmp_path / "a.mp4")
    plain = ca.encode(src, tmp_path / "p.mp4", codec="x265", bitrate="182k", assist=False)
    assert plain.result.keyframes == [0, 116]
    a, p = ca.measure(src, tmp_path / "a.mp4"), ca.measure(src, tmp_path / "p.mp4")
    assert abs(a.bitrate_kbps - p.bitrate_kbps) < 0.01 * p.bitrate_kbps and abs(a.psnr_y - p.psnr_y) < 0.02


def test_without_a_cut_the_encoder_places_its_own_keyframes(sample, tmp_path):
    """cockatoo_closeup (test5: 14 s hand-held, no cut), its first 8 s: the plan has no IDR of its own to force,
    so the assisted encode keeps x264's scenecut (and the plan's keyint) and gets the keyframes the plain encode
    gets at the camera's big moves, instead of an IDR at an evenly split GOP (on the whole clip that split cost 0.38 %
    VMAF BD-rate against plain; docs/BENCHMARKS.md). A ladder still forces the same IDRs in every rung."""
    import codec_assist as ca
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.encoding.x26x import plan_params

    clip = tmp_path / "cockatoo.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("cockatoo_closeup.mp4")), "-frames:v", "160", "-an",
                    "-c", "copy", str(clip)], check=True, timeout=60)
    fast = AnalyzeOptions(analyzers=["shots", "saliency"])
    assisted = ca.encode(clip, tmp_path / "a.mp4", bitrate="300k", preset="faster", analyze_options=fast,
                         save_plan=tmp_path / "plan.json")
    plain = ca.encode(clip, tmp_path / "p.mp4", bitrate="300k", preset="faster", assist=False)
    plan, _ = ca.schemas.load_plan(tmp_path / "plan.json")
    assert plan.own_keyframes and plan.forced_keyframes == [0] and "scenecut" not in plan_params(plan, "x264")
    assert len(plain.result.keyframes) > 1
    assert assisted.result.keyframes == plain.result.keyframes == keyframe_indices(tmp_path / "a.mp4")
    cut = ca.encode(sample("bikes.mp4"), tmp_path / "b.mp4", bitrate="300k", preset="ultrafast", analyze_options=fast,
                    save_plan=tmp_path / "bikes.plan.json")
    bikes, _ = ca.schemas.load_plan(tmp_path / "bikes.plan.json")
    assert not bikes.own_keyframes and plan_params(bikes, "x264")["scenecut"] == "0"
    assert cut.result.keyframes == bikes.keyframes == [0] + BIKES_CUTS
    ladder = ca.encode(clip, tmp_path / "l_{rung}.mp4", ladder="180p:100k,144p:60k", preset="faster",
                       plan_file=tmp_path / "plan.json", ladder_plain=False)
    assert ladder.aligned and all(r.keyframes == plan.keyframes for r in ladder.rungs)


def test_the_analysis_runs_beside_the_encoder_only_where_that_pays():
    """Overlap where the encoder is the heavier side and leaves cores idle (measured: x264 720p medium gains; x264
    480p and 360p, and x265, lose) and the video outlasts two segments."""
    from codec_assist.encoding.overlapped import worth_overlapping
    from codec_assist.schemas import VideoInfo

    def video(w, h, seconds):
        return VideoInfo(path="x.mp4", container="mp4", codec="h264", width=w, height=h, fps=25.0, time_base="1/25",
                         frame_count=int(25 * seconds), duration=seconds, pix_fmt="yuv420p")

    # x264 on frame threads keeps both cores busy: it no longer overlaps (docs/BENCHMARKS.md, issue 16)
    assert not worth_overlapping(video(1280, 720, 60), "x264", "medium")
    assert not worth_overlapping(video(1920, 1080, 20), "x264", "slow")
    assert not worth_overlapping(video(640, 480, 60), "x264", "medium")  # the analysis weighs as much as the encode
    assert not worth_overlapping(video(1280, 720, 60), "x264", "veryfast")
    assert not worth_overlapping(video(1280, 720, 60), "x265", "medium")  # x265 leaves little idle time
    assert not worth_overlapping(video(1280, 720, 10), "x264", "medium")  # over before the segments pay


def test_the_analysis_sees_other_processes_load_but_not_its_own():
    """The overlapped analysis lowers its priority only on a quiet machine (a lowered analysis starves behind other
    processes' work and the encoder waits for it): a busy loop in another process reads as about a core, the same
    loop in our own process reads as nothing (it is ours)."""
    import subprocess
    import sys
    import time

    from codec_assist.encoding.overlapped import OtherLoad

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    load = OtherLoad((os.getpid(),))
    busy(0.8)
    ours = load.cores()
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 3\nwhile time.time() < t: pass"])
    try:
        time.sleep(0.2)  # the child's start-up
        load.cores()
        time.sleep(0.8)
        theirs = load.cores()
    finally:
        spin.kill()
        spin.wait()
    assert theirs > 0.6 and theirs > ours + 0.5, (theirs, ours)


def test_lowering_the_analysis_priority_reaches_threads_already_running():
    """Linux keeps a nice value per thread: lowering the analysis process's priority after its first segment must
    reach the decode and model threads it has already started, and the threads they start later."""
    import threading

    from codec_assist.encoding.overlapped import _lower_priority

    seen: dict[str, int] = {}
    started, go = threading.Event(), threading.Event()

    def worker():
        started.set()
        go.wait()
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, 0)
        t = threading.Thread(target=lambda: seen.update(grandchild=os.getpriority(os.PRIO_PROCESS, 0)))
        t.start()
        t.join()

    def in_child(conn):
        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        _lower_priority(7)
        go.set()
        t.join()
        conn.send({**seen, "main": os.getpriority(os.PRIO_PROCESS, 0)})

    ctx = multiprocessing.get_context("fork")  # a process of its own: a priority lowered cannot be raised again
    receive, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=in_child, args=(send,))
    p.start()
    got = receive.recv()
    p.join()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert got == {"worker": max(7, base), "grandchild": max(7, base), "main": max(7, base)}, got
