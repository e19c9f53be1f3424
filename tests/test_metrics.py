"""Tests for codec_assist.metrics: PSNR/SSIM definitions, BD-rate, ROI syntax, and video comparison on real footage."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

import codec_assist.evaluation.metrics as M
from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import iter_frames, luma

RNG_SEED = 1234
N_FRAMES = 50  # frames of bikes.mp4 used for the encode tests (2 s at 25 fps, includes the cut at 1.2 s)


# --------------------------------------------------------------------------------------------- PSNR / MSE
def test_psnr_identical_is_capped():
    a = np.random.default_rng(RNG_SEED).integers(0, 256, (64, 80), dtype=np.uint8)
    assert M.mse(a, a) == 0.0
    assert M.psnr(a, a) == M.PSNR_CAP == 100.0


def test_psnr_exact_value_for_unit_error():
    a = np.full((32, 48), 100, np.uint8)
    b = a + 1
    assert M.mse(a, b) == 1.0
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)  # 48.1308 dB
    assert M.psnr(a, b, peak=1023) == pytest.approx(20 * math.log10(1023), abs=1e-9)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 12.0])
def test_psnr_matches_gaussian_noise_sigma(sigma):
    rng = np.random.default_rng(RNG_SEED)
    a = np.full((512, 512), 128, np.uint8)  # mid-grey: no clipping for these sigmas
    b = np.clip(np.rint(a + rng.normal(0, sigma, a.shape)), 0, 255).astype(np.uint8)
    expected = 10 * math.log10(255**2 / sigma**2)
    assert M.psnr(a, b) == pytest.approx(expected, abs=0.15)
    # Rounding to integers adds uniform quantisation noise of variance 1/12: with it the match is tight.
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (sigma**2 + 1 / 12)), abs=0.03)
    # mse on uint8 (cv2 path) equals the float64 definition
    assert M.mse(a, b) == int(((a.astype(np.int64) - b) ** 2).sum()) / a.size  # exact


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        M.psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


# ---------------------------------------------------------------------------------------------------- SSIM
def test_ssim_identical_is_one_and_symmetric():
    rng = np.random.default_rng(RNG_SEED)
    a = rng.integers(0, 256, (60, 90), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(a, b) == pytest.approx(M.ssim(b, a), abs=1e-6)
    assert M.ssim_map(a, b).shape == (50, 80)  # the 11x11 window's valid region


def test_ssim_of_flat_planes_has_closed_form():
    # No variance: SSIM reduces to the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    c1 = (0.01 * 255) ** 2
    a = np.full((40, 40), 100, np.uint8)
    b = np.full((40, 40), 140, np.uint8)
    expected = (2 * 100 * 140 + c1) / (100**2 + 140**2 + c1)
    assert M.ssim(a, b) == pytest.approx(expected, abs=1e-6)


def test_ssim_falls_with_noise():
    rng = np.random.default_rng(RNG_SEED)
    a = np.tile(np.linspace(0, 255, 128, dtype=np.float32), (96, 1)).astype(np.uint8)
    values = [M.ssim(a, np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8)) for s in (2, 8, 30)]
    assert values[0] > values[1] > values[2] > 0


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    skd = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(RNG_SEED)
    a = skd.camera()
    cases = [
        np.clip(a + rng.normal(0, 3, a.shape), 0, 255).astype(np.uint8),
        np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8),
        (a // 16 * 16).astype(np.uint8),  # quantised, like a coarse encode
        np.roll(a, 3, axis=1),
    ]
    for b in cases:
        ref = skm.structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert M.ssim(a, b) == pytest.approx(ref, abs=1e-4)


# ----------------------------------------------------------------------------------------------- BD-rate
RATES = [800.0, 1500.0, 3000.0, 6000.0]
PSNRS = [33.1, 35.9, 38.6, 41.0]


@pytest.mark.parametrize("n", [3, 4])
def test_bd_rate_scaled_rates_is_minus_20_percent(n):
    r, q = RATES[:n], PSNRS[:n]
    assert M.bd_rate(r, q, [x * 0.8 for x in r], q) == pytest.approx(-20.0, abs=1e-6)
    assert M.bd_rate(r, q, [x * 1.25 for x in r], q) == pytest.approx(25.0, abs=1e-6)


@pytest.mark.parametrize("n", [3, 4])
def test_bd_identical_curves_are_zero(n):
    r, q = RATES[:n], PSNRS[:n]
    assert M.bd_rate(r, q, r, q) == pytest.approx(0.0, abs=1e-9)
    assert M.bd_psnr(r, q, r, q) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n", [3, 4])
def test_bd_psnr_of_shifted_quality(n):
    r, q = RATES[:n], PSNRS[:n]
    assert M.bd_psnr(r, q, r, [x + 0.5 for x in q]) == pytest.approx(0.5, abs=1e-9)
    # Better quality at every rate means fewer bits for the same quality.
    assert M.bd_rate(r, q, r, [x + 0.5 for x in q]) < 0


def test_bd_rate_is_order_independent():
    b_r, b_q = [700.0, 1400.0, 2900.0, 5500.0], [33.0, 36.2, 38.8, 41.3]
    ref = M.bd_rate(RATES, PSNRS, b_r, b_q)
    assert M.bd_rate(RATES[::-1], PSNRS[::-1], b_r[::-1], b_q[::-1]) == pytest.approx(ref, abs=1e-9)


def test_bd_rate_cubic_matches_numeric_integration():
    # An independent check of the classic cubic Bjøntegaard computation: dense trapezoid integration.
    b_r, b_q = [700.0, 1400.0, 2900.0, 5500.0], [33.0, 36.2, 38.8, 41.3]
    pa = np.polyfit(PSNRS, np.log10(RATES), 3)
    pb = np.polyfit(b_q, np.log10(b_r), 3)
    lo, hi = max(min(PSNRS), min(b_q)), min(max(PSNRS), max(b_q))
    x = np.linspace(lo, hi, 20001)
    diff = np.polyval(pb, x) - np.polyval(pa, x)
    avg = float(np.sum((diff[1:] + diff[:-1]) / 2 * np.diff(x))) / (hi - lo)
    assert M.bd_rate(RATES, PSNRS, b_r, b_q) == pytest.approx((10**avg - 1) * 100, abs=1e-4)


def test_bd_rate_returns_none_when_undefined():
    assert M.bd_rate(RATES[:2], PSNRS[:2], RATES[:2], PSNRS[:2]) is None  # fewer than 3 points
    bumpy = [33.1, 36.0, 35.5, 41.0]  # quality falls while rate rises
    assert M.bd_rate(RATES, bumpy, RATES, PSNRS) is None
    assert M.bd_rate(RATES, PSNRS, RATES, [q + 20 for q in PSNRS]) is None  # quality ranges do not overlap
    assert M.bd_psnr(RATES, PSNRS, [r * 100 for r in RATES], PSNRS) is None  # rate ranges do not overlap
    assert M.bd_rate([800, 800, 3000], [33, 35, 38], RATES, PSNRS) is None  # repeated rate


def test_pchip_matches_scipy():
    interp = pytest.importorskip("scipy.interpolate")
    cases = [([1.0, 2.0, 4.0], [3.0, 5.0, 5.5]), ([30.0, 33.0, 37.0, 40.0], [2.1, 2.5, 3.3, 3.4]), ([0, 1, 3], [1, 3, 2])]
    for x, y in cases:
        x, y = np.asarray(x, float), np.asarray(y, float)
        ref = interp.PchipInterpolator(x, y)
        xq = np.linspace(x[0], x[-1], 101)
        np.testing.assert_allclose(M.pchip_eval(x, y, xq), ref(xq), atol=1e-12)
        lo, hi = x[0] + 0.3, x[-1] - 0.1
        assert M._pchip_integral(x, y, lo, hi) == pytest.approx(ref.integrate(lo, hi), abs=1e-12)


# -------------------------------------------------------------------------------------------------- ROIs
@pytest.mark.parametrize(
    "text, expected",
    [
        ("10,20,30,40", (10, 20, 30, 40, None, None)),
        (" 0, 0 ,64,64 ", (0, 0, 64, 64, None, None)),
        ("10,20,30,40@1.5-3", (10, 20, 30, 40, 1.5, 3.0)),
        ("1,2,3,4 @ 0 - .5", (1, 2, 3, 4, 0.0, 0.5)),
    ],
)
def test_parse_roi_accepts(text, expected):
    r = M.parse_roi(text)
    assert (r.x, r.y, r.w, r.h, r.t0, r.t1) == expected
    assert M.parse_roi(r.label()) == r  # label() round-trips


@pytest.mark.parametrize(
    "text", ["", "10,20,30", "10,20,30,40,50", "a,b,c,d", "-1,0,10,10", "0,0,0,10", "0,0,10,10@3-1", "0,0,10,10@1", "1.5,0,4,4"]
)
def test_parse_roi_rejects(text):
    with pytest.raises(CodecAssistError) as e:
        M.parse_roi(text)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------- video comparisons
def _encode(frames: list[av.VideoFrame], path, **options: str) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        s.options = {"preset": "veryfast", **options}
        for f in frames:
            f.pict_type = av.video.frame.PictureType.NONE
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)


@pytest.fixture(scope="module")
def clips(sample, tmp_path_factory):
    """The first 50 frames of bikes.mp4: a lossless reference and x264 encodes at CRF 18 and 38."""
    d = tmp_path_factory.mktemp("metrics")
    frames = []
    with av.open(str(sample("bikes.mp4"))) as c:
        vs = c.streams.video[0]
        vs.codec_context.thread_count = 1  # stop early without frame threads in flight
        for f in c.decode(vs):
            frames.append(f)
            if len(frames) == N_FRAMES:
                break
    paths = {"ref": d / "ref.mp4", "crf18": d / "crf18.mp4", "crf38": d / "crf38.mp4", "short": d / "short.mp4"}
    _encode(frames, paths["ref"], qp="0", preset="ultrafast")  # lossless
    _encode(frames, paths["crf18"], crf="18")
    _encode(frames, paths["crf38"], crf="38")
    _encode(frames[:30], paths["short"], crf="38")
    return paths


BOX = M.parse_roi("200,60,240,160")  # the middle of the 640x272 frame
BOX_EARLY = M.parse_roi("200,60,240,160@0-1")  # frames 0..24
BOX_LATE = M.parse_roi("200,60,240,160@100-200")  # after the clip ends


def test_video_bitrate_from_packets(sample):
    path = sample("bikes.mp4")
    with av.open(str(path)) as c:
        header = c.streams.video[0].bit_rate
    assert M.video_bitrate_kbps(path) == pytest.approx(header / 1000, rel=0.01)


def test_compare_identical_is_perfect(clips):
    q = M.compare_videos(clips["ref"], clips["ref"])
    assert q.frames == N_FRAMES
    assert q.psnr_y == M.PSNR_CAP
    assert q.ssim_y == pytest.approx(1.0, abs=1e-6)


def test_compare_lower_crf_is_better(clips):
    uniform = lambda i: np.ones((4, 8), np.float32)  # noqa: E731 — coarse grid, resized to the frame
    hi = M.compare_videos(clips["ref"], clips["crf18"], rois=[BOX, BOX_EARLY, BOX_LATE], weights=uniform)
    lo = M.compare_videos(clips["ref"], clips["crf38"], rois=[BOX, BOX_EARLY, BOX_LATE], weights=uniform)
    for q in (hi, lo):
        assert q.frames == N_FRAMES
        assert 20 < q.psnr_y < 60 and 0.5 < q.ssim_y < 1
        assert set(q.roi_psnr_y) == {BOX.label(), BOX_EARLY.label()}  # nothing of the clip lies in BOX_LATE
        assert all(20 < v < 60 for v in q.roi_psnr_y.values())
        assert q.roi_psnr_y[BOX_EARLY.label()] != q.roi_psnr_y[BOX.label()]
        # Uniform weights: PSNR of the pooled MSE, never above the mean of per-frame PSNRs.
        assert q.weighted_psnr_y is not None and q.weighted_psnr_y <= q.psnr_y + 1e-9
    assert hi.psnr_y > lo.psnr_y + 5
    assert hi.ssim_y > lo.ssim_y
    assert hi.bitrate_kbps > 2 * lo.bitrate_kbps
    assert hi.roi_psnr_y[BOX.label()] > lo.roi_psnr_y[BOX.label()]
    assert hi.weighted_psnr_y > lo.weighted_psnr_y


def test_compare_matches_direct_computation(clips):
    """psnr_y, ROI PSNR and weighted PSNR against a plain per-frame computation."""
    ys, xs = slice(BOX.y, BOX.y + BOX.h), slice(BOX.x, BOX.x + BOX.w)
    mask = np.zeros((272, 640), np.float32)
    mask[ys, xs] = 1.0
    per_frame, roi, early, box_sse = [], [], [], 0.0
    for i, (fr, fd) in enumerate(zip(iter_frames(clips["ref"]), iter_frames(clips["crf38"]), strict=True)):
        a, b = luma(fr).astype(float), luma(fd).astype(float)
        per_frame.append(10 * math.log10(255**2 / np.mean((a - b) ** 2)))
        box_err = np.mean((a[ys, xs] - b[ys, xs]) ** 2)
        roi.append(10 * math.log10(255**2 / box_err))
        if i < 25:
            early.append(roi[-1])
        box_sse += box_err
    q = M.compare_videos(clips["ref"], clips["crf38"], rois=[BOX, BOX_EARLY], weights=lambda i: mask)
    assert q.psnr_y == pytest.approx(np.mean(per_frame), abs=1e-9)
    assert q.roi_psnr_y[BOX.label()] == pytest.approx(np.mean(roi), abs=1e-9)
    assert q.roi_psnr_y[BOX_EARLY.label()] == pytest.approx(np.mean(early), abs=1e-9)
    # A 0/1 mask: weighted PSNR = PSNR of the box's MSE pooled over frames.
    assert q.weighted_psnr_y == pytest.approx(10 * math.log10(255**2 / (box_sse / len(roi))), abs=1e-6)


def test_compare_every_and_progress(clips):
    full = M.compare_videos(clips["ref"], clips["crf38"])
    sub = M.compare_videos(clips["ref"], clips["crf38"], every=5, progress=True)
    assert sub.frames == N_FRAMES // 5
    assert sub.psnr_y == pytest.approx(full.psnr_y, abs=1.5)
    assert sub.bitrate_kbps == full.bitrate_kbps
    # weights returning None for every frame: no weighted PSNR
    assert M.compare_videos(clips["ref"], clips["crf38"], every=10, weights=lambda i: None).weighted_psnr_y is None


def test_compare_frame_count_mismatch(clips):
    for ref, dis in ((clips["ref"], clips["short"]), (clips["short"], clips["ref"])):
        with pytest.raises(CodecAssistError, match="frame count mismatch") as e:
            M.compare_videos(ref, dis)
        assert "\n" not in str(e.value)


def test_compare_size_mismatch_and_bad_inputs(clips, sample, tmp_path):
    with pytest.raises(CodecAssistError, match="frame size mismatch"):
        M.compare_videos(sample("jwpIntro.mp4"), clips["crf38"])  # 640x480 vs 640x272
    with pytest.raises(CodecAssistError, match="outside"):
        M.compare_videos(clips["ref"], clips["crf38"], rois=[M.parse_roi("700,0,10,10")])
    with pytest.raises(CodecAssistError):
        M.compare_videos(clips["ref"], clips["crf38"], every=0)
    with pytest.raises(CodecAssistError, match="non-negative"):
        M.compare_videos(clips["ref"], clips["crf38"], weights=lambda i: -np.ones((2, 2)))
    with pytest.raises(CodecAssistError, match="no such file"):
        M.compare_videos(clips["ref"], tmp_path / "missing.mp4")


# ------------------------------------------------------------------ XPSNR and whole-video VMAF (issue 15)
def test_vmaf_and_xpsnr_track_quality(clips):
    """Whole-frame VMAF (motion on, every frame) and XPSNR in the same pass as PSNR: near 100 / capped for the
    source itself, high for CRF 18, much lower for CRF 38 (a heavy degradation)."""
    same = M.compare_videos(clips["ref"], clips["ref"], xpsnr=True, vmaf_every=5)
    assert same.xpsnr_y == M.PSNR_CAP and same.vmaf_frames == N_FRAMES // 5
    assert same.vmaf == pytest.approx(100.0, abs=1.0)
    hi = M.compare_videos(clips["ref"], clips["crf18"], xpsnr=True, vmaf_every=1)
    lo = M.compare_videos(clips["ref"], clips["crf38"], xpsnr=True, vmaf_every=1)
    assert hi.vmaf_frames == lo.vmaf_frames == N_FRAMES
    assert hi.vmaf > 90 and lo.vmaf < hi.vmaf - 20
    assert 20 < lo.xpsnr_y < hi.xpsnr_y < 60 and hi.xpsnr_y > lo.xpsnr_y + 5  # FFmpeg reads ~8 dB below PSNR here
    # off by default: the other callers of compare_videos pay nothing for them
    plain = M.compare_videos(clips["ref"], clips["crf38"])
    assert plain.vmaf is None and plain.xpsnr_y is None and plain.vmaf_frames is None
    assert plain.psnr_y == lo.psnr_y  # the same pass gives the same PSNR
    with pytest.raises(CodecAssistError, match="vmaf_every"):
        M.compare_videos(clips["ref"], clips["crf38"], vmaf_every=-1)


def test_vmaf_meter_gives_what_ffmpeg_gives_on_the_files(clips, tmp_path):
    """The meter (planes through a pipe, stacked and cropped apart) gives per frame what FFmpeg's libvmaf filter
    gives reading the two files itself (motion across the whole sequence included); `every` scores a subset
    with the same values; a meter stopped half-way leaves no process and no files behind."""
    log = tmp_path / "direct.json"
    subprocess.run([M.ffmpeg_with_libvmaf(), "-hide_banner", "-loglevel", "error", "-i", str(clips["crf38"]),
                    "-i", str(clips["ref"]), "-lavfi", f"[0:v][1:v]libvmaf=log_fmt=json:log_path={log}", "-f",
                    "null", "-"], check=True)
    direct = np.array([f["metrics"]["vmaf"] for f in json.loads(log.read_text())["frames"]])
    pairs = [(luma(r).copy(), luma(d).copy()) for r, d in zip(iter_frames(clips["ref"]), iter_frames(clips["crf38"]))]
    assert len(direct) == len(pairs) == N_FRAMES and direct.std() > 1  # the scores move: frames line up or fail
    for every in (1, 4):
        meter = M.VmafMeter(every=every)
        for a, b in pairs:
            meter.add(a, b)
        assert meter.frames == len(direct[::every])
        assert np.allclose(meter.scores(), direct[::every], atol=1e-4)
    meter = M.VmafMeter()
    meter.add(*pairs[0])
    proc, folder = meter._proc, Path(meter._dir.name)
    meter.close()
    assert proc.poll() is not None and not folder.exists()


def test_vmaf_without_libvmaf_fails_early_in_one_line(monkeypatch):
    """An FFmpeg without libvmaf (Debian's, named by IMAGEIO_FFMPEG_EXE) is refused before any work, saying why."""
    assert M.require_vmaf() is None  # imageio-ffmpeg's own build has it
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/usr/bin/ffmpeg")
    with pytest.raises(CodecAssistError, match="has no libvmaf filter") as e:
        M.require_vmaf()
    assert "\n" not in str(e.value)


def test_frame_scorer_vmaf_reads_only_the_scored_frames_distorted_pictures(clips):
    """FrameScorer("vmaf", k): libvmaf takes motion from the reference alone, so the hull's probes may pass the
    reference itself where a pair is not scored (nothing is scaled for it) and get the same scores."""
    pairs = list(zip(iter_frames(clips["ref"]), iter_frames(clips["crf38"])))[:20]
    full, thin = M.FrameScorer("vmaf", 4), M.FrameScorer("vmaf", 4)
    for i, (r, d) in enumerate(pairs):
        full.add(r, d)
        thin.add(r, d if thin.scored(i) else r)
    assert sorted(full.scores()) == [0, 4, 8, 12, 16]
    assert full.scores() == pytest.approx(thin.scores(), abs=1e-6)
    assert full.mean() < 90  # CRF 38 is far from the source: the scores are real, not the reference's 100
    psnr = M.FrameScorer("psnr")
    for r, d in pairs[:3]:
        psnr.add(r, d)
    assert sorted(psnr.scores()) == [0, 1, 2] and all(psnr.scored(i) for i in range(3))
