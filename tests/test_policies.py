"""QP-map and keyframe policies: rate neutrality, bounds, smoothing, cut reset, interpolation."""
import numpy as np
import pytest

from policies.keyframes import keyframes
from policies.qp import (block_areas, block_distortion, block_grid, importance_to_offsets, offsets_at, plan_offsets,
                         smooth_in_shots, whole_frame_cost_db)


def _mean(off, areas):
    return float((off * areas).sum() / areas.sum())


def test_block_grid_and_partial_areas():
    assert block_grid(640, 272, 16) == (17, 40)
    assert block_grid(650, 270, 16) == (17, 41)
    areas = block_areas(650, 270, 16)
    assert areas[0, -1] == pytest.approx(10 / 16) and areas[-1, 0] == pytest.approx(14 / 16)
    assert areas.sum() * 256 == pytest.approx(650 * 270)


@pytest.mark.parametrize("max_dqp", [2.0, 6.0, 10.0])
def test_offsets_rate_neutral_and_bounded(max_dqp):
    rng = np.random.default_rng(0)
    areas = block_areas(650, 270, 16)
    for _ in range(20):
        imp = rng.random(areas.shape) ** 3  # skewed, like a few important blocks
        off = importance_to_offsets(imp, areas, max_dqp)
        assert np.abs(off).max() <= max_dqp + 1e-6
        assert abs(_mean(off, areas)) < 0.02 * max_dqp
        # more important block -> lower (better) QP
        assert off.flat[np.argmax(imp)] < off.flat[np.argmin(imp)]


def test_face_blob_gets_negative_offset_rest_small_positive():
    areas = block_areas(640, 480, 16)
    imp = np.full(areas.shape, 0.1, np.float32)
    imp[5:15, 12:22] = 1.0  # ~8 % of the frame
    off = importance_to_offsets(imp, areas, 6.0)
    assert off[5:15, 12:22].max() < -4  # the whole-frame cost bound (0.15 dB) trims it below -6
    assert 0 < off[0, 0] < 1.0
    assert abs(_mean(off, areas)) < 0.05


def test_flat_importance_gives_zero_offsets():
    areas = block_areas(320, 240, 16)
    assert np.allclose(importance_to_offsets(np.full(areas.shape, 0.7), areas, 6.0), 0)


def test_saliency_floor_alone_moves_nothing():
    """Below the ROI threshold (the saliency floor reaches 0.5 at most) the encoder's own AQ is left alone."""
    rng = np.random.default_rng(2)
    areas = block_areas(640, 360, 16)
    assert np.allclose(importance_to_offsets(0.5 * rng.random(areas.shape), areas, 6.0, threshold=0.5), 0)


def test_rest_of_frame_pays_one_small_uniform_offset():
    areas = block_areas(640, 480, 16)
    imp = np.full(areas.shape, 0.3, np.float32)
    imp[2:6, 3:7] = 0.3 + np.linspace(0, 0.19, 16).reshape(4, 4)  # busy saliency, still below the threshold
    imp[10:14, 20:24] = 1.0
    off = importance_to_offsets(imp, areas, 6.0)
    rest = np.ones(areas.shape, bool)
    rest[10:14, 20:24] = False
    assert np.ptp(off[rest]) == pytest.approx(0, abs=1e-4) and off[rest][0] > 0
    assert off[10:14, 20:24].max() == pytest.approx(-6.0)


def test_busy_blocks_pay_for_the_roi_flat_ones_little():
    areas = block_areas(640, 480, 16)
    imp = np.zeros(areas.shape, np.float32)
    imp[10:14, 20:24] = 1.0
    texture = np.full(areas.shape, 0.02, np.float32)
    texture[:, :10] = 0.4  # a bookcase on the left, a flat wall elsewhere
    off = importance_to_offsets(imp, areas, 6.0, texture=texture, texture_gamma=1.0)
    assert off[0, 0] > 4 * off[0, 30] > 0  # the bookcase gives the bits back, the wall barely moves
    assert abs(_mean(off, areas)) < 0.05 and off[10:14, 20:24].max() < -4
    even = importance_to_offsets(imp, areas, 6.0, texture=texture, texture_gamma=0.0)
    assert np.ptp(even[0]) == pytest.approx(0, abs=1e-4)


def test_whole_frame_cost_of_a_block_with_no_weight_is_nothing_even_when_its_offset_overflows():
    """A block of no area (or no distortion) spends nothing, whatever its offset: 0 x 2^(huge) was nan, which max()
    read as a cost of 0 dB for the whole frame, however much the other blocks' spread cost."""
    from policies.qp import whole_frame_cost_db

    areas = np.array([0.0, 1.0, 1.0])
    spread = whole_frame_cost_db(np.array([0.0, 30.0, -30.0]), areas)
    assert spread > 25.0  # 10 log10((2^10 + 2^-10) / 2)
    assert whole_frame_cost_db(np.array([6000.0, 30.0, -30.0]), areas) == spread
    assert whole_frame_cost_db(np.array([6000.0, 6000.0, -30.0]), areas) == float("inf")


@pytest.mark.parametrize("bound", [0.1, 0.25, 0.5])
def test_whole_frame_cost_is_bounded_and_big_rois_get_shallower(bound):
    areas = block_areas(352, 288, 16)
    depths = []
    for rows in (3, 9, 15):  # the ROI grows from ~17 % to ~83 % of the frame's height
        imp = np.zeros(areas.shape, np.float32)
        imp[:rows, 4:18] = 1.0
        off = importance_to_offsets(imp, areas, 8.0, max_cost_db=bound)
        assert whole_frame_cost_db(off, areas) <= bound + 0.02
        assert abs(_mean(off, areas)) < 0.05
        depths.append(-off[0, 10])
    assert depths[0] > depths[1] > depths[2] > 0


def test_a_face_against_a_flat_wall_goes_deeper_than_one_against_a_bookcase():
    """The cost bound weighs the paying blocks by their expected distortion (texture): paying with a flat wall
    costs little PSNR, paying with a bookcase much; a busy face is not credited with its own texture."""
    areas = block_areas(352, 288, 16)
    imp = np.zeros(areas.shape, np.float32)
    imp[4:14, 6:16] = 1.0  # a face filling ~30 % of the frame
    depth = {}
    for name, background, face in (("wall", 0.01, 0.15), ("bookcase", 0.5, 0.15), ("busy face", 0.5, 0.6)):
        texture = np.full(areas.shape, background, np.float32)
        texture[4:14, 6:16] = face
        off = importance_to_offsets(imp, areas, 6.0, max_cost_db=0.15, texture=texture)
        assert abs(_mean(off, areas)) < 0.05
        depth[name] = -off[8, 10]
    unweighted = -importance_to_offsets(imp, areas, 6.0, max_cost_db=0.15, texture=texture, cost_exponent=0)[8, 10]
    assert depth["wall"] > unweighted + 1 > 1
    assert depth["bookcase"] < unweighted - 0.3  # busy payers: a shallower face
    assert depth["bookcase"] <= depth["busy face"] < unweighted + 0.5  # a busy face earns no credit of its own
    assert whole_frame_cost_db(-importance_to_offsets(imp, areas, 6.0, texture=texture, cost_exponent=0), areas) > 0
    assert block_distortion(np.array([[0.0, 0.5]]), (1, 2)).ravel().tolist() == pytest.approx([0.01, 0.51])


def test_smoothing_damps_flicker_and_resets_at_cuts():
    frames = np.arange(0, 100, 5)
    k = len(frames)
    off = np.zeros((k, 2, 2), np.float32)
    off[::2, 0, 0] = 4.0  # flicker between 4 and 0 every keypoint
    off[::2, 0, 1] = -4.0
    cut = 50
    off[frames >= cut] = 0.0
    off[frames >= cut, 1, 1] = 3.0  # a different, steady map after the cut
    sm = smooth_in_shots(frames, off, [0, cut], fps=25, time_constant=0.5)
    before = sm[frames < cut][:, 0, 0]
    assert np.ptp(before[2:-2]) < 0.5 * np.ptp(off[frames < cut][:, 0, 0])  # flicker damped
    after = sm[frames >= cut]
    assert np.allclose(after[:, 1, 1], 3.0) and np.allclose(after[:, 0, 0], 0.0)  # nothing leaks across the cut


def test_plan_offsets_end_to_end_properties():
    rng = np.random.default_rng(1)
    frames = np.arange(0, 60, 6)
    imp = rng.random((len(frames), 12, 16)).astype(np.float32)
    off = plan_offsets(frames, imp, 640, 480, 16, [0, 30], 25.0, max_dqp=5.0)
    areas = block_areas(640, 480, 16)
    assert off.shape == (len(frames), 30, 40)
    assert np.abs(off).max() <= 5.0
    assert all(abs(_mean(o, areas)) < 0.1 for o in off)
    assert np.allclose(off / 0.25, np.rint(off / 0.25))  # quantised to quarter QPs


def test_offsets_at_interpolates_inside_shot_and_not_across_cut():
    frames = [0, 10, 20, 30]
    offs = np.stack([np.full((1, 1), v, np.float32) for v in (0.0, 4.0, -4.0, 2.0)])
    starts = [0, 20]
    assert offsets_at(5, frames, offs, starts)[0, 0] == pytest.approx(2.0)
    assert offsets_at(10, frames, offs, starts)[0, 0] == 4.0
    assert offsets_at(15, frames, offs, starts)[0, 0] == 4.0  # held at shot end, no blending into next shot
    assert offsets_at(25, frames, offs, starts)[0, 0] == pytest.approx(-1.0)
    assert offsets_at(99, frames, offs, starts)[0, 0] == 2.0
    assert offsets_at(5, [10], offs[:1], [0, 8]) is None  # shot [0, 8) has no keypoint


def test_keyframes_on_cuts_with_gop_limits():
    assert keyframes([30, 76, 137, 187, 242], 250, 12, 250) == [0, 30, 76, 137, 187, 242]
    assert keyframes([30, 35], 100, 12, 250) == [0, 30]  # 35 is too close to 30
    kf = keyframes([], 1000, 12, 250)
    assert kf[0] == 0 and max(np.diff(kf + [1000])) <= 250 and len(kf) == 4
    with pytest.raises(ValueError):
        keyframes([], 10, 5, 2)


# ------------------------------------------------------------------------------- moments (issue 15 part 3)
from policies.moments import frame_weights, moment_offsets  # noqa: E402


def _per_frame(frames, offsets, starts, n):
    """The offsets as the encoder applies them (offsets_at: linear between keypoints, held at the shot ends)."""
    return np.array([float(offsets_at(i, frames, offsets[:, None, None], starts)[0, 0]) for i in range(n)])


def _speech_in_shots():
    """30 fps, keypoints every 10 frames, cuts at 120 and 240; speech comes and goes inside the shots."""
    frames = np.arange(0, 360, 10)
    w = np.full(len(frames), 0.1)
    w[(frames >= 40) & (frames < 90)] = 0.5  # a moment inside shot 0
    w[(frames >= 250) & (frames < 300)] = 0.45  # and one inside shot 2; shot 1 is flat
    return frames, w, [0, 120, 240], 30.0, 360


def test_frame_weights_count_every_frame_once():
    f = np.array([5, 15, 35])
    w = frame_weights(f, 0, 50)
    assert w.sum() == pytest.approx(50)
    x = np.array([1.0, -2.0, 4.0])
    per = _per_frame(f, x, [0], 50)
    assert (w * x).sum() / 50 == pytest.approx(per.mean(), abs=0.13)  # offsets_at rounds to 0.25 QP


@pytest.mark.parametrize("max_dqp", [1.0, 2.0, 3.0])
def test_moments_mean_zero_per_shot_bounded_and_favour_the_moments(max_dqp):
    frames, w, starts, fps, n = _speech_in_shots()
    off = moment_offsets(frames, w, starts, fps, n, max_dqp=max_dqp)
    assert np.abs(off).max() <= max_dqp + 1e-6
    bounds = [*starts, n]
    for lo, hi in zip(bounds, bounds[1:]):
        k = (frames >= lo) & (frames < hi)
        cover = frame_weights(frames[k], lo, hi)
        assert abs((off[k] * cover).sum() / cover.sum()) < 1e-6  # mean 0 over the shot's frames: the rate holds
    moment = w > 0.3
    assert off[moment].max() < 0 and off[moment].mean() < -0.3 * max_dqp  # more bits while it talks (the ramp limit costs some)
    assert off[(frames >= 120) & (frames < 240)].tolist() == [0] * 12  # the flat shot is left alone
    per = _per_frame(frames, off, starts, n)
    for lo, hi in zip(bounds, bounds[1:]):
        assert abs(per[lo:hi].mean()) < 0.13  # and as the encoder applies it (0.25 QP steps)


@pytest.mark.parametrize("rate", [0.5, 2.0, 6.0])
def test_moments_ramp_no_faster_than_the_limit(rate):
    frames, w, starts, fps, n = _speech_in_shots()
    off = moment_offsets(frames, w, starts, fps, n, max_dqp=3.0, max_rate=rate)
    seg = np.searchsorted(starts, frames, side="right")
    for s in np.unique(seg):
        k = np.flatnonzero(seg == s)
        slope = np.abs(np.diff(off[k])) / (np.diff(frames[k]) / fps)
        assert slope.max(initial=0) <= rate + 1e-5
    # a ramp starts before the moment: the keypoint before the words already gets more bits than the silence
    assert off[3] < off[0]


def test_moments_zero_when_weights_are_flat_or_absent():
    frames = np.arange(0, 300, 10)
    assert not moment_offsets(frames, np.full(30, 0.4), [0], 30.0, 300).any()
    assert not moment_offsets(frames, np.full(30, np.nan), [0], 30.0, 300).any()
    assert not moment_offsets(frames, np.linspace(0, 1, 30), [0], 30.0, 300, max_dqp=0).any()
    assert not moment_offsets(frames[:1], np.ones(1), [0], 30.0, 300).any()  # one keypoint: nothing to move
    assert moment_offsets(frames[:0], np.ones(0), [0], 30.0, 300).shape == (0,)


def test_plan_adds_the_moment_offset_within_bounds():
    """make_plan: the spatial offsets plus the frame-level moment share, clamped to ±max_dqp, on the QP grid."""
    from codec_assist.planning.plan import PlanOptions, make_plan
    from codec_assist.schemas import Analysis, ImportanceInfo, Shot, VideoInfo

    frames, w, starts, fps, n = _speech_in_shots()
    grid = np.full((len(frames), 12, 16), 0.2, np.float32)
    grid[:, 4:8, 6:10] = 0.9  # a face
    info = VideoInfo(path="x.mp4", container="mp4", codec="h264", width=256, height=192, fps=fps, time_base="1/30",
                     frame_count=n, duration=n / fps, pix_fmt="yuv420p")
    shots = [Shot(start_frame=a, end_frame=b) for a, b in zip(starts, [*starts[1:], n])]
    analysis = Analysis(video=info, proxy_width=64, proxy_height=48, analysis_frames=frames.tolist(), shots=shots,
                        importance=ImportanceInfo(grid_h=12, grid_w=16))
    arrays = {"importance/frames": frames, "importance/grid": grid, "importance/temporal": w.astype(np.float32)}
    off_plan, off_arr = make_plan(analysis, arrays, PlanOptions(moment_dqp=0))
    on_plan, on_arr = make_plan(analysis, arrays, PlanOptions(moment_dqp=2, max_dqp=6))
    a, b = np.asarray(off_arr["qp/offsets"]), np.asarray(on_arr["qp/offsets"])
    assert np.abs(b).max() <= 6 and np.allclose(b * 4, np.rint(b * 4))
    shift = (b - a).mean(axis=(1, 2))
    moment = w > 0.3
    assert shift[moment].max() < -0.5  # the talking keypoints get more bits; the silence far from them fewer
    assert shift[frames < 20].min() > 0 and shift[(frames >= 100) & (frames < 120)].min() > 0
    assert np.allclose(shift[(frames >= 120) & (frames < 240)], 0)


def test_spaced_starts_drop_a_one_frame_shots_second_cut():
    """The cuts that can begin a GOP of their own, as keyframes() keeps them and the hull ladder's units follow:
    festival_crowd's shots (0, a cross-fade's middle at 23, a one-frame shot at 69, the next shot at 70) at 25 fps
    with a 0.5 s minimum GOP keep 69 and drop 70; frame 0 always stays, starts outside the video go."""
    from policies.keyframes import keyframes, spaced

    assert spaced([0, 23, 69, 70], 78, 13) == [0, 23, 69]
    assert spaced([70, 69, -5, 200], 78, 13) == [0, 69]
    assert keyframes([69, 70], 78, 13, 250) == [0, 69]
