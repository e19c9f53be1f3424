"""Semantic fusion: visual tokens in words (ImageNet CAM blobs, OCR text, faces), cross-modal attention from
focus prompts and transcript tokens, the CLIP path (random weights: shapes and flow), and `explain`.
Real clips and real models throughout; each clip is analysed once per module."""
from __future__ import annotations

import json
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

import analyzers
from analyzers.base import AnalysisContext, AnalyzerOutput
import codec_assist.media.decode as media
from codec_assist import schemas
from codec_assist.cli.common import parse_focus
from codec_assist.fusion.attention import DEFAULT_WEIGHTS, attention, combine, frame_scalar, fuse
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
from codec_assist.schemas import Box, FocusPrompt, RegionToken

def drive(path, names: list[str], **options) -> tuple[AnalysisContext, dict[str, AnalyzerOutput], list[int]]:
    """The pipeline's decode loop, keeping the analyzers' own maps so fusion can be re-run with other queries."""
    info = media.probe(path)
    pw, ph = media.proxy_size(info.width, info.height, 320)
    step = max(1, round(info.fps / 3.0))
    frames = list(range(0, info.frame_count, step))
    ctx = AnalysisContext(video=info, proxy_w=pw, proxy_h=ph, grid_h=ph // 4, grid_w=pw // 4,
                          analysis_frames=frozenset(frames))
    units = analyzers.build(names, **options)
    for u in units:
        u.start(ctx)
    for i, _, pf in media.iter_proxy(path, (pw, ph)):
        for u in units:
            if u.every_frame or i in ctx.analysis_frames:
                u.process(pf)
    return ctx, {u.name: u.finish() for u in units}, frames


def fuse_outputs(ctx, outs, frames, tokens=None, **kw):
    tokens = [t.model_copy(deep=True) for t in (tokens if tokens is not None else
                                                [t for o in outs.values() for t in o.tokens])]
    maps = {n: o.maps for n, o in outs.items() if o.maps}
    return fuse(maps, frames, (ctx.grid_h, ctx.grid_w), tokens=tokens, **kw), tokens


def box_mask(box: Box, gh: int, gw: int) -> np.ndarray:
    m = np.zeros((gh, gw), bool)
    m[int(box.y * gh): max(int(box.y * gh) + 1, int(np.ceil((box.y + box.h) * gh))),
      int(box.x * gw): max(int(box.x * gw) + 1, int(np.ceil((box.x + box.w) * gw)))] = True
    return m


# ------------------------------------------------------------------------------------- attention math
def test_attention_softmax_temperature_and_null():
    sim = np.array([[0.70, 0.60, 0.20], [0.30, 0.20, 0.10]])
    sharp, soft = attention(sim, 0.02, null=0.55), attention(sim, 0.2, null=0.55)
    assert (sharp.sum(1) < 1).all() and (soft.sum(1) < 1).all()  # the rest went to "nothing here"
    assert sharp[0, 0] > soft[0, 0] and sharp[0, 0] > 0.9  # colder -> the best key takes it all
    assert sharp[0, 2] < 1e-4
    assert sharp[1].max() < 0.01  # a query that matches nothing lights nothing
    # the key's confidence is a prior: equal similarity, the surer key gets more
    eq = attention(np.array([[0.7, 0.7]]), 0.05, prior=np.array([1.0, 0.25]))
    assert eq[0, 0] > 3 * eq[0, 1]
    assert attention(np.zeros((2, 0)), 0.05).shape == (2, 0)


def test_combine_is_a_bounded_or_over_queries():
    a = np.array([[0.9, 0.1], [0.5, 0.0]], np.float32)
    rel = combine(a, np.array([1.0, 1.0], np.float32))
    assert rel[0] == pytest.approx(1 - 0.1 * 0.5) and rel[1] == pytest.approx(0.1)
    assert combine(a, np.array([0.5, 0.0], np.float32))[0] == pytest.approx(0.45)  # weights scale each query
    assert (combine(np.zeros((0, 3), np.float32), np.zeros(0, np.float32)) == 0).all()


def test_no_query_reduces_to_the_weighted_or_of_the_maps():
    rng = np.random.default_rng(1)
    sal, face = rng.random((2, 6, 8)).astype(np.float32), np.zeros((2, 6, 8), np.float32)
    face[1, 2:4, 3:5] = 1.0
    maps = {"saliency": {0: sal[0], 10: sal[1]}, "faces": {0: face[0], 10: face[1]}}
    tok = RegionToken(frame_start=10, frame_end=20, box=Box(x=3 / 8, y=2 / 6, w=2 / 8, h=2 / 6), label="face",
                      score=0.8, source="faces")
    out = fuse(maps, [0, 5, 10], (6, 8), tokens=[tok])
    w = DEFAULT_WEIGHTS
    expect1 = 1 - (1 - w["saliency"] * sal[1]) * (1 - w["faces"] * face[1])
    assert np.allclose(out.grid[2], expect1, atol=1e-6)
    assert np.allclose(out.grid[1], out.grid[0])  # frame 5 holds frame 0's maps
    assert np.allclose(out.scalar, frame_scalar(out.grid)) and (out.temporal == 0).all()
    assert out.top_tokens == [[], [], [0]] and out.top_queries[2] == [-1]
    assert out.top_weights[2][0] == pytest.approx(0.8)
    assert tok.embedding is None  # no query: nothing was embedded (MiniLM not even loaded for this)


def test_temporal_signals_weigh_moments_and_are_optional():
    maps = {"saliency": {0: np.full((2, 2), 0.2, np.float32)}}
    speech = np.array([0.0, 1.0, np.nan], np.float32)
    out = fuse(maps, [0, 1, 2], (2, 2), signals={"speech": speech})
    assert out.temporal[1] > 0 and out.temporal[0] == 0 and out.temporal[2] == 0
    assert out.scalar[1] > out.scalar[0] == pytest.approx(out.scalar[2])
    # a signal of the wrong length (misaligned) is ignored, not broadcast
    assert (fuse(maps, [0, 1, 2], (2, 2), signals={"speech": np.ones(5)}).temporal == 0).all()


def test_loud_moments_count_where_the_sound_is_not_music():
    """Loudness and onsets over a soundtrack of music are its own dynamics: they move no bits between the frames of
    one picture (lego_propeller's music did, at a whole-frame VMAF cost). Over no music they are moments; speech is
    a moment over music too."""
    maps = {"saliency": {0: np.full((2, 2), 0.2, np.float32)}}
    frames = [0, 1, 2, 3]
    loud = np.array([0.2, 1.0, 0.3, 0.9], np.float32)
    onset = np.array([0.0, 1.0, 0.0, 1.0], np.float32)

    def temporal(music, speech=None):
        signals = {"loudness_norm": loud, "onset": onset, "music": np.full(4, music, np.float32)}
        if speech is not None:
            signals["speech"] = speech
        return fuse(maps, frames, (2, 2), signals=signals).temporal

    assert np.ptp(temporal(0.0)) > 0.2 and temporal(0.0)[1] > temporal(0.0)[0]
    assert np.ptp(temporal(1.0)) == pytest.approx(0.0, abs=1e-6)
    assert np.ptp(temporal(0.5)) == pytest.approx(0.5 * np.ptp(temporal(0.0)), rel=0.15)
    talk = temporal(1.0, speech=np.array([0.0, 0.0, 1.0, 0.0], np.float32))
    assert talk[2] > talk[0] + 0.2


def test_explain_says_what_made_the_moment(sample):
    """bigbuckbunny's soundtrack is music: `explain` shows each signal as it counted, loudness and onsets scaled
    by 1 - the span's music share, and says so on its moment line."""
    from codec_assist.report.explain import explain, format_explanation

    analysis, arrays = analyze(sample("bigbuckbunny.mp4"), AnalyzeOptions(analyzers=["saliency", "audio"]))
    e = explain(analysis, arrays, "bbb", time=2.0)
    (m,) = e.moments
    assert m.soundtrack is not None and m.soundtrack > 0.5
    k = list(analysis.analysis_frames).index(m.frame)
    raw = float(np.clip(arrays["signal/loudness_norm"][k], 0, 1))
    assert m.signals["loudness_norm"] == pytest.approx(raw * (1 - m.soundtrack), abs=1e-3)
    assert m.signals["speech"] == pytest.approx(float(np.nan_to_num(arrays["signal/speech"][k])), abs=1e-3)
    assert "loudness and onsets count x" in format_explanation(e)


def test_text_appearing_raises_the_moment_and_explain_says_so(sample):
    """gradio_thanks (dev, no sound worth a moment): the thank-you line appearing gives the frames after it a
    higher moment weight than the frames before it and the still end, and `explain` names it."""
    from codec_assist.report.explain import explain, format_explanation

    analysis, arrays = analyze(sample("gradio_thanks.mp4"), AnalyzeOptions(analyzers=["saliency", "text"]))
    onset, temporal = arrays["signal/text_onset"], arrays["importance/temporal"]
    assert onset.max() == 1 and temporal[onset > 0].min() > temporal[onset == 0].max()
    first = int(analysis.analysis_frames[int(np.argmax(onset))])
    e = explain(analysis, arrays, "thanks", time=first / analysis.video.fps)
    assert e.moments[0].signals["text_onset"] == 1.0 and "text appearing 1.00" in format_explanation(e)


def test_parse_focus():
    assert parse_focus("bicycle@0.5") == FocusPrompt(text="bicycle", weight=0.5)
    assert parse_focus("red car") == FocusPrompt(text="red car", weight=1.0)
    import argparse

    for bad in ("@0.5", "car@2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_focus(bad)


# ---------------------------------------------------------------------- bikes + speech: focus prompts
@pytest.fixture(scope="module")
def bikes(bikes_speech):
    return drive(bikes_speech, ["saliency", "imagenet"])


def test_focus_on_something_visible_raises_it_where_imagenet_sees_it(bikes):
    ctx, outs, frames = bikes
    plain, _ = fuse_outputs(ctx, outs, frames)
    focused, tokens = fuse_outputs(ctx, outs, frames, focus=[FocusPrompt(text="bicycle")])
    bike_tokens = [t for t in tokens if t.source == "imagenet" and ("bike" in t.label or "cycle" in t.label)]
    assert bike_tokens, [t.label for t in tokens]
    gains, others = [], []
    for i, f in enumerate(frames):
        live = [t for t in bike_tokens if t.frame_start <= f < t.frame_end]
        if not live:
            continue
        m = np.logical_or.reduce([box_mask(t.box, ctx.grid_h, ctx.grid_w) for t in live])
        # importance of the bicycle relative to the rest of its frame, with and without the prompt
        rel = lambda g: g[m].mean() - g[~m].mean() if (~m).any() else g[m].mean()  # noqa: E731
        gains.append(rel(focused.grid[i]) - rel(plain.grid[i]))
        others.append(focused.grid[i][~m].mean() - plain.grid[i][~m].mean())
    assert len(gains) >= 2  # ImageNet names a bicycle in two of the shots (the parked one reads as 'horse cart')
    assert np.mean(gains) > 0.15 and min(gains) > 0, gains
    assert np.mean(gains) > 3 * max(0.0, np.mean(others))
    # and the why: the focus query is recorded and named by the bicycle tokens in the top tokens
    q = [i for i, qq in enumerate(focused.queries) if qq.text == "bicycle"]
    hits = [(t, qi) for tt, qq in zip(focused.top_tokens, focused.top_queries) for t, qi in zip(tt, qq)
            if tokens[t] in bike_tokens]
    assert hits and all(qi == q[0] for _, qi in hits)
    # cars are not bicycles: MiniLM puts "sports car" at 0.51 from "bicycle"; the null key keeps them dark
    cars = {k for k, t in enumerate(tokens) if t.source == "imagenet" and "cycle" not in t.label
            and "bike" not in t.label and any(w in t.label for w in ("car", "cab", "limousine", "minibus"))}
    assert cars
    for tt, ww, qq in zip(focused.top_tokens, focused.top_weights, focused.top_queries):
        for t, w, qi in zip(tt, ww, qq):
            if t in cars:
                assert w < 0.25, (tokens[t].label, w)


@pytest.fixture(scope="module")
def spoken(bikes_speech):
    """The speech analyzer (Whisper tiny.en, shipped) on bikes_speech: real transcript tokens."""
    return drive(bikes_speech, ["speech"])[1]["speech"]


def test_focus_on_a_spoken_word_raises_that_moment(bikes, spoken):
    ctx, outs, frames = bikes
    fps = ctx.video.fps
    said_tokens = [t for t in spoken.tokens if t.source == "transcript"]
    hit = [t for t in said_tokens if "asterisk" in t.label.lower()]
    assert len(hit) == 1, [t.label for t in said_tokens]  # Whisper: "... executed the asterisk open source PBX."
    tokens = [t for o in outs.values() for t in o.tokens] + said_tokens
    plain, _ = fuse_outputs(ctx, outs, frames, tokens=tokens)
    focused, toks = fuse_outputs(ctx, outs, frames, tokens=tokens, focus=[FocusPrompt(text="asterisk")])
    f = np.array(frames)
    said = (f >= hit[0].frame_start) & (f < hit[0].frame_end)
    lift = focused.scalar - plain.scalar
    assert said.sum() >= 3 and lift[said].min() > 0.1, lift
    assert np.abs(lift[~said]).max() < 0.1, lift  # other sentences are not about the focus
    assert (focused.temporal[said] > 0.5).all()
    k = int(np.flatnonzero(said)[0])
    assert hit[0].label in [toks[i].label for i in focused.top_tokens[k]]  # the sentence is the why
    # the transcript tokens are queries too: sentences naming nothing visible light no region
    assert np.allclose(plain.grid, fuse_outputs(ctx, outs, frames)[0].grid, atol=0.05)


# ------------------------------------------------------------------------------------ jwpIntro: faces
@pytest.fixture(scope="module")
def jwp(sample):
    return analyze(sample("jwpIntro.mp4"), AnalyzeOptions(analyzers=["saliency", "faces", "imagenet", "speech",
                                                                     "audio"]))


def test_talking_head_face_dominates(jwp):
    analysis, arrays = jwp
    grid = arrays["importance/grid"].astype(np.float32)
    frames = list(arrays["importance/frames"])
    gh, gw = grid.shape[1:]
    inside, outside, peak_in_face = [], [], 0
    for i, f in enumerate(frames):
        faces = [t for t in analysis.tokens if t.source == "faces" and t.frame_start <= f < t.frame_end]
        assert faces, f"no face at frame {f}"
        m = np.logical_or.reduce([box_mask(t.box, gh, gw) for t in faces])
        inside.append(grid[i][m].mean())
        outside.append(grid[i][~m].mean())
        peak_in_face += bool(grid[i][m].max() >= grid[i].max() - 1e-3)
        assert analysis.tokens[analysis.importance.top_tokens[i][0]].source == "faces"
    assert np.mean(inside) > 0.9 and np.mean(inside) > 2.5 * np.mean(outside)
    assert peak_in_face == len(frames)
    assert analysis.importance.fusion == "cross-modal-attention"
    assert {t.source for t in analysis.tokens} >= {"faces", "imagenet"}


def test_talking_head_matters_more_while_it_talks(jwp):
    """The speaker's words (Whisper word timestamps) mark the talking frames; the silent head and tail
    (before the first word, after the last) weigh less, though the face is there all along."""
    analysis, arrays = jwp
    t = arrays["importance/frames"] / analysis.video.fps
    words = [w for s in analysis.transcript.segments for w in s.words]
    first, last = words[0][0], words[-1][1]
    talking = (t >= first + 0.2) & (t <= last - 0.2)
    silent = (t < first - 0.2) | (t > last + 0.2)
    scalar = arrays["importance/scalar"]
    assert talking.sum() >= 6 and silent.sum() >= 2
    assert scalar[talking].min() > scalar[silent].max(), (t, scalar)
    assert scalar[talking].mean() > scalar[silent].mean() + 0.1, (t, scalar)


# ---------------------------------------------------------------------- jwpIntro: a focus outranks the face
@pytest.fixture(scope="module")
def jwp_maps(sample):
    return drive(sample("jwpIntro.mp4"), ["saliency", "faces", "imagenet"])


def test_focus_on_the_bookshelf_outranks_the_face(jwp_maps):
    """issue 15: "the bookshelf behind him" attends ImageNet's 'bookcase, library' blob (0.41); where it matches,
    the shelves must get more importance than the face (the QP policy spends bits on the differences)."""
    ctx, outs, frames = jwp_maps
    plain, _ = fuse_outputs(ctx, outs, frames)
    focused, tokens = fuse_outputs(ctx, outs, frames, focus=[FocusPrompt(text="the bookshelf behind him")])
    shelf = [t for t in tokens if t.source == "imagenet" and "bookcase" in t.label]
    assert shelf, sorted({t.label for t in tokens})
    q = next(i for i, qq in enumerate(focused.queries) if qq.source == "focus")
    matched = 0
    for i, f in enumerate(frames):
        live = [t for t in shelf if t.frame_start <= f < t.frame_end]
        faces = [t for t in tokens if t.source == "faces" and t.frame_start <= f < t.frame_end]
        if not live or not faces:
            continue
        m_shelf = np.logical_or.reduce([box_mask(t.box, ctx.grid_h, ctx.grid_w) for t in live])
        m_face = np.logical_or.reduce([box_mask(t.box, ctx.grid_h, ctx.grid_w) for t in faces]) & ~m_shelf
        g, g0 = focused.grid[i], plain.grid[i]
        assert g0[m_face].mean() > g0[m_shelf].mean() + 0.3  # without the focus the face wins
        assert g[m_shelf].mean() > g[m_face].mean() + 0.2, (f, g[m_shelf].mean(), g[m_face].mean())
        from analyzers.base import box_to_grid

        full = np.logical_or.reduce([box_to_grid(t.box.x, t.box.y, t.box.x + t.box.w, t.box.y + t.box.h,
                                                 ctx.grid_h, ctx.grid_w) > 0.999 for t in live])
        assert g[full].min() >= g[m_face].max() - 1e-6  # every cell the shelf covers at least the face's best
        # the why: the shelf token leads the frame, attended by the focus
        assert tokens[focused.top_tokens[i][0]] in live and focused.top_queries[i][0] == q
        matched += 1
    assert matched >= len(frames) - 1


def test_focus_matching_nothing_warns_once_and_leaves_the_map(jwp_maps, caplog):
    ctx, outs, frames = jwp_maps
    plain, _ = fuse_outputs(ctx, outs, frames)
    with caplog.at_level("WARNING", logger="codec_assist"):
        focused, _ = fuse_outputs(ctx, outs, frames, focus=[FocusPrompt(text="a purple elephant on rollerskates")])
    lines = [r.getMessage() for r in caplog.records if "matches nothing" in r.getMessage()]
    assert len(lines) == 1 and "purple elephant" in lines[0]
    assert np.array_equal(np.asarray(focused.grid), np.asarray(plain.grid))
    assert np.array_equal(focused.scalar, plain.scalar)


def test_cli_prints_one_line_when_a_focus_matches_nothing(sample, tmp_path):
    r = subprocess.run([sys.executable, "-m", "codec_assist", "analyze", str(sample("jwpIntro.mp4")), "-o",
                        str(tmp_path / "a"), "--analyzers", "saliency,imagenet", "--analysis-fps", "1",
                        "--focus", "a purple elephant on rollerskates", "--focus", "bookcase"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "matches nothing" in ln]
    assert lines == ["codec-assist: warning: --focus 'a purple elephant on rollerskates' matches nothing in this "
                     "video (no region or speech reaches attention 0.20); the importance map is as without it"], r.stderr
    e = subprocess.run([sys.executable, "-m", "codec_assist", "explain", str(tmp_path / "a"), "--top", "1"],
                       capture_output=True, text=True, timeout=120)
    assert e.returncode == 0, e.stderr
    assert "<- focus 'bookcase'" in e.stdout and "won by focus 'bookcase'" in e.stdout, e.stdout


# ----------------------------------------------------------------------------- burned-in on-screen text
@pytest.fixture(scope="module")
def captioned(sample, tmp_path_factory):
    """2 s of jwpIntro with 'OPEN DAY' burned in, large, at the bottom; encoded with PyAV (x264)."""
    out = tmp_path_factory.mktemp("caption") / "caption.mp4"
    with av.open(str(out), "w") as dst:
        vs = dst.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 640, 480, "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        for i, frame in enumerate(media.iter_frames(sample("jwpIntro.mp4"))):
            if i == 50:
                break
            img = frame.to_ndarray(format="bgr24")
            cv2.putText(img, "OPEN DAY", (40, 445), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (255, 255, 255), 6, cv2.LINE_AA)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                dst.mux(p)
        for p in vs.encode(None):
            dst.mux(p)
    analysis, arrays = analyze(out, AnalyzeOptions(analyzers=["saliency", "text"]))
    folder = out.parent / "analysis"
    folder.mkdir()
    schemas.save(analysis, folder / "analysis.json", arrays)
    return analysis, arrays, folder


def test_burned_in_text_is_read_and_weighs(captioned):
    analysis, arrays, _ = captioned
    grid = arrays["importance/grid"].astype(np.float32)
    gh, gw = grid.shape[1:]
    words = [t for t in analysis.tokens if t.source == "text" and t.label == "OPEN DAY"]
    assert words, [t.label for t in analysis.tokens if t.source == "text"]
    for i, f in enumerate(analysis.analysis_frames):
        live = [t for t in words if t.frame_start <= f < t.frame_end]
        assert live, f
        m = box_mask(live[0].box, gh, gw)
        assert grid[i][m].mean() > 0.75 and grid[i][m].mean() > 2 * grid[i][~m].mean()
        labels = [analysis.tokens[k].label for k in analysis.importance.top_tokens[i]]
        assert "OPEN DAY" in labels


def test_explain_says_why(captioned):
    _, _, folder = captioned
    r = subprocess.run([sys.executable, "-m", "codec_assist", "explain", str(folder), "--time", "1.0", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    e = schemas.Explanation.model_validate_json(r.stdout)
    (m,) = e.moments
    assert m.frame <= 25 and 1.0 - m.time < 0.5 and m.importance > 0.5
    assert m.tokens[0].label == "OPEN DAY" and m.tokens[0].weight > 0.5
    assert m.hottest.y > 0.75  # the caption is at the bottom
    top = subprocess.run([sys.executable, "-m", "codec_assist", "explain", str(folder), "--top", "2"],
                         capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and top.stdout.count("frame ") == 2 and "'OPEN DAY'" in top.stdout
    bad = subprocess.run([sys.executable, "-m", "codec_assist", "explain", str(folder), "--frame", "100000"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "outside" in bad.stderr


# ---------------------------------------------------------------------------------------------- CLIP
def test_clip_path_runs_with_random_weights(sample):
    import torch

    torch.manual_seed(0)  # random weights, but the same ones every run
    path = sample("bikes.mp4")
    ctx, outs, frames = drive(path, ["saliency", "clip"],
                              clip={"model": "ViT-S-32", "random_weights": True, "interval_s": 2.0})
    toks = outs["clip"].tokens
    space = toks[0].embedding_space
    assert space == "clip:ViT-S-32:random"
    patches = [t for t in toks if t.label.startswith("clip patch")]
    starts = sorted({t.frame_start for t in toks})
    assert len(patches) == 49 * len(starts) and len(starts) >= 5  # 7x7 patches per embedded frame, cuts included
    dims = {len(t.embedding) for t in toks}
    assert dims == {384} and abs(np.linalg.norm(patches[0].embedding) - 1) < 1e-3  # ViT-S-32's joint space
    out, tokens = fuse_outputs(ctx, outs, frames, focus=[FocusPrompt(text="a bicycle")])
    assert out.grid.shape == (len(frames), ctx.grid_h, ctx.grid_w) and np.isfinite(out.grid).all()
    assert (out.grid >= 0).all() and (out.grid <= 1).all()
    # the text-patch attention map: per frame the patches share at most one unit of the query's attention
    f0 = starts[0]
    live = [t for t in tokens if t.frame_start == f0]
    from codec_assist.models import embed_in_space

    q = embed_in_space(space, ["a bicycle"])
    assert q.shape == (1, 384)
    sim = q @ np.array([t.embedding for t in live]).T
    a = attention(sim, 0.01, null=sim.mean(axis=1, keepdims=True))
    assert a.shape == (1, 50) and 0 < a.sum() <= 1 + 1e-5 and (a >= 0).all()
    assert any(tokens[t].source == "clip" for tt in out.top_tokens for t in tt)


def test_missing_clip_weights_one_line_and_analysis_goes_on(sample, tmp_path):
    r = subprocess.run([sys.executable, "-m", "codec_assist", "-q", "analyze", str(sample("bikes.mp4")), "-o",
                        str(tmp_path / "an"), "--analyzers", "shots,saliency", "--clip-model", "ViT-B-32",
                        "--clip-pretrained", "laion2b_s34b_b79k", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--clip-checkpoint" in lines[0] and "Traceback" not in r.stderr, r.stderr
    runs = {a["name"]: a for a in json.loads(r.stdout)["analyzers"]}
    assert runs["clip"]["status"] == "skipped" and runs["saliency"]["status"] == "ok"
    assert (tmp_path / "an" / "analysis.npz").exists()
