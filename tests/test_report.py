"""The HTML report as a person meets it: rendered from real clips, opened in headless Chromium, every picture
loaded, nothing fetched from outside; the figures say what they show; bad input -> one line, no file."""
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import codec_assist.report.figures as F
from codec_assist import schemas
from codec_assist.analysis.pipeline import analyze
from codec_assist.planning.plan import make_plan
from codec_assist.report.html import report

FACE = "190,60,160,240"  # jwpIntro's speaker, hand-labelled (samples/manifest.json)
CHROMIUM = "/usr/bin/chromium"
# Without these Chromium keeps trying to reach Google's servers (updates, sync, field trials).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = "<img src='http://example.invalid/x.png'><script>alert(1)</script>"
SHORT_HOSTILE = "<b>x</b><script>alert(1)</script>"  # fits in the tag evidence column (60 characters)


def run(*args):
    return subprocess.run([sys.executable, "-m", "codec_assist", "-q", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def _one_line_error(r, code=2):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def open_in_chromium(page_path: Path, screenshot: Path) -> dict:
    """Load the page from disk in headless Chromium; return every request URL and the state of every <img>."""
    if os.environ.get("CODEC_ASSIST_NO_BROWSER") == "1":
        pytest.skip("CODEC_ASSIST_NO_BROWSER=1")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian chromium (apt-get install chromium "
                    "chromium-driver); set CODEC_ASSIST_NO_BROWSER=1 to skip the browser checks")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[dev]'")
    requests: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ca-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                    args=CHROMIUM_FLAGS, viewport={"width": 1200, "height": 900})
        try:
            ctx.on("request", lambda r: requests.append(r.url))
            page = ctx.new_page()
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate("""Array.from(document.images).map(i => ({
                src: i.src.slice(0, 40), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))""")
            headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
            scripts = page.evaluate("document.scripts.length")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            ctx.close()
    return {"requests": requests, "images": images, "headings": headings, "scripts": scripts}


def assert_self_contained(seen: dict, screenshot: Path, min_images: int) -> None:
    outside = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
    assert not outside, f"the page made external requests: {outside}"
    assert len(seen["images"]) >= min_images, seen["images"]
    broken = [i for i in seen["images"] if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert seen["scripts"] == 0
    from PIL import Image

    with Image.open(screenshot) as shot:
        assert shot.format == "PNG" and shot.width >= 1000 and shot.height > 2000  # the whole page, not a stub
        px = np.asarray(shot.convert("L"), np.float32)
    assert px.std() > 20, "screenshot is blank"


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def jwp_analysis(sample, tmp_path_factory):
    """jwpIntro analysed (face tokens), saved with a hostile OCR-like label to prove the page escapes it."""
    analysis, arrays = analyze(sample("jwpIntro.mp4"))
    analysis.tokens.append(schemas.RegionToken(frame_start=0, frame_end=analysis.video.frame_count, label=HOSTILE,
                                               score=1.0, source="text"))
    hostile = len(analysis.tokens) - 1
    imp = analysis.importance
    imp.top_tokens = [ids + [hostile] for ids in imp.top_tokens]
    imp.top_weights = [w + [1.0] for w in imp.top_weights]  # a prior (no query attended to it), like a text box
    imp.top_queries = [q + [-1] for q in imp.top_queries]
    out = tmp_path_factory.mktemp("jwp") / "analysis"
    out.mkdir()
    schemas.save(analysis, out / "analysis.json", arrays)
    return out


@pytest.fixture(scope="module")
def bikes_analysis(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("bikes") / "analysis"
    r = run("analyze", sample("bikes.mp4"), "-o", out)
    assert r.returncode == 0, r.stderr
    return out


# ---------------------------------------------------------------------------------------------- browser
def test_compare_html_opens_offline_in_chromium(sample, jwp_analysis, tmp_path):
    """compare --html on a real talking-head clip; then `report` joins it with the analysis; both in Chromium."""
    out, page = tmp_path / "cmp.json", tmp_path / "cmp.html"
    r = run("compare", sample("jwpIntro.mp4"), "--bitrate", "100k,200k,400k", "--preset", "ultrafast",
            "--roi", FACE, "-o", out, "--html", page, "--vmaf-every", "30")  # VMAF on every 30th frame: a short test
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    # issue 15: every metric, the peer encode and BD-rates of the three pairs, with the PSNR-vs-VMAF note
    for words in ("VMAF", "XPSNR-Y", "peer (aq-mode=3 tune=film)", "assisted vs peer", "peer vs plain",
                  "PSNR punishes any redistribution"):
        assert words in text, words
    for title in ("Importance timeline", "QP offsets on sampled frames", "Bits and QP per shot",
                  "Rate–distortion curves", "Why: the most important moments"):
        assert title in text
    assert "BD-rate" in text and "roi_psnr_y[190,60,160,240]" in text
    assert "analysed again" not in text  # the page reuses compare's own analysis and plan

    joined = tmp_path / "joined.html"
    r = run("report", out, jwp_analysis, "-o", joined, "--figures", tmp_path / "figs")
    assert r.returncode == 0, r.stderr
    text = joined.read_text()
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # OCR text is escaped
    assert "faces &#x27;face&#x27; 0." in text  # the why-table names the face the analyzer found, with its weight
    # compare ran without --keep: its encodes are gone, so the page says so instead of counting packets
    assert "Bits and QP per shot" not in text and "is gone: not in the bits-per-shot figure" in text
    seen = open_in_chromium(joined, tmp_path / "joined.png")
    # 3 figures + 6 thumbnails of the key moments
    assert_self_contained(seen, tmp_path / "joined.png", min_images=9)
    assert "Rate–distortion curves" in seen["headings"]
    for stem in ("timeline", "qp_overlay", "rd_curves"):
        assert (tmp_path / "figs" / f"{stem}.png").stat().st_size > 10_000
        assert (tmp_path / "figs" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")


def test_encode_html_for_bikes(sample, tmp_path):
    """encode --allocate --html: the page shows the per-shot budget, planned against spent."""
    src = sample("bikes.mp4")
    page, rep = tmp_path / "bikes.html", tmp_path / "bikes.json"
    r = run("encode", src, "-o", tmp_path / "b.mp4", "--bitrate", "300k", "--preset", "ultrafast", "--allocate",
            "--report", rep, "--html", page)
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    assert "QP offsets on sampled frames" in text and "Bits and QP per shot" in text
    assert "IDR frames in the output: [0, 30, 76, 137, 187, 242]" in text  # the cuts became IDRs
    alloc = schemas.load(schemas.EncodeReport, rep)[0].result.allocation
    assert "Per-shot allocation" in text and "Black ticks: the bits the allocation planned" in text
    for x in alloc.shots:  # every shot's planned and spent kB, as recorded
        assert f"<td class='n'>{x.bits / 8000:.1f}</td><td class='n'>{x.bits_actual / 8000:.1f}</td>" in text
    seen = open_in_chromium(page, tmp_path / "bikes.png")
    assert_self_contained(seen, tmp_path / "bikes.png", min_images=9)


# --------------------------------------------------------------------------------------- json summary
def test_report_json_summary(bikes_analysis, tmp_path):
    """A cold `report --json` on a 10-s clip's analysis: the summary names its figures and moments. (Its speed
    is a benchmark figure in docs/BENCHMARKS.md, not a timed test: shared machines are noisy.)"""
    r = run("report", bikes_analysis, "-o", tmp_path / "r.html", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["figures"] == ["timeline", "qp_overlay"] and summary["moments"] == 6


# ----------------------------------------------------------------------------------------------- figures
def _labelled(fig):
    """Every axis that shows tick labels says what it measures."""
    fig.canvas.draw()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if any(t.get_visible() and t.get_text() for t in ax.get_xticklabels()):
            assert ax.get_xlabel(), f"x axis without a label: {ax.get_title()!r}"
        if any(t.get_visible() and t.get_text() for t in ax.get_yticklabels()):
            assert ax.get_ylabel(), f"y axis without a label: {ax.get_title()!r}"


def test_figures_are_labelled(bikes_analysis, tmp_path):
    analysis, arrays = schemas.load(schemas.Analysis, bikes_analysis / "analysis.json",
                                    need_arrays=("importance/frames", "importance/scalar", "importance/grid"))
    times = arrays["importance/frames"] / analysis.video.fps
    tl = F.Timeline(duration=analysis.video.duration, times=times, importance=arrays["importance/scalar"],
                    cuts=[c / 25 for c in analysis.cut_frames], keyframes=[0.0, 1.2],
                    signals={"motion": arrays["signal/motion"]},
                    segments=[(0.5, 3.0, "speech"), (4.0, 9.0, "music")], keywords=[(1.0, "bicycle"), (5.0, "taxi")])
    fig = F.timeline(tl)
    _labelled(fig)
    assert fig.axes[0].get_legend() is not None and fig.axes[-1].get_xlabel() == "time (s)"
    legend_text = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert {"shot cut", "keyframe (IDR)", "speech segment", "music segment"} <= set(legend_text)
    assert F.save(fig, tmp_path / "timeline")[1].read_text().count("bicycle") >= 1  # SVG keeps text as text

    plan, pa = make_plan(analysis, arrays)
    rgb = np.full((68, 160, 3), 128, np.uint8)
    fig = F.qp_overlay([F.OverlayFrame(frame=40, time=1.6, rgb=rgb, offsets=pa["qp/offsets"][5])], plan.max_dqp, 16)
    bar = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bar) == 1 and "negative = more bits" in bar[0].get_ylabel()
    assert tuple(bar[0].get_ylim()) == (-plan.max_dqp, plan.max_dqp)
    offsets_image = fig.axes[1].images[-1]  # right panel: grey picture, then the offsets on top
    norm = offsets_image.norm
    assert norm.vmin == -plan.max_dqp and norm.vmax == plan.max_dqp and norm(0.0) == 0.5  # centred on 0
    assert offsets_image.cmap.name in ("RdBu", "RdBu_r", "coolwarm", "bwr")  # diverging

    shots = [(0, 30), (30, 76), (76, 137)]
    sb = F.ShotBits(fps=25.0, shots=shots, frame_bits={"assisted 300 kb/s": np.full(137, 12_000.0)},
                    planned_kbps=[200.0, 320.0, None],
                    quality=F.ShotQuality(metric="psnr", target=38.0, achieved=[37.9, 38.2, None],
                                          predicted=[38.0, 38.1, None], crf=[24.0, 27.5, None]))
    fig = F.bits_per_shot(sb)
    _labelled(fig)
    legend_text = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert {"planned (allocation)", "target 38", "achieved (final encode)"} <= set(legend_text)
    assert fig.axes[-1].get_ylabel() == "psnr per shot (dB)"

    fig = F.layer_sizes({"captions": 812, "keyframes": 20480, "side info": 3100})
    _labelled(fig)
    assert "KiB" in fig.axes[0].get_xlabel()
    fig = F.rd_curves([F.RdPanel("Whole frame", "PSNR-Y (dB)", ([100, 200, 400], [35, 38, 41]),
                                 ([105, 210, 410], [35.5, 38.4, 41.2]), -3.2)])
    _labelled(fig)
    assert any("BD-rate assisted vs plain -3.2 %" in t.get_text() for t in fig.axes[0].texts)
    # with the peer (issue 15): a third curve and the BD-rates of all three pairs, one panel per metric
    peer = ([98, 205, 400], [34.6, 37.9, 40.8])
    fig = F.rd_curves([F.RdPanel(title, "q", ([100, 200, 400], [35, 38, 41]), ([105, 210, 410], [35.5, 38.4, 41.2]),
                                 -3.2, peer=peer, peer_label="peer (aq-mode=3 tune=film)", bd_rate_peer=4.0,
                                 bd_rate_vs_peer=-7.1) for title in ("PSNR-Y", "SSIM-Y", "XPSNR-Y", "VMAF")])
    _labelled(fig)
    shown = fig.axes  # 2 rows of 3, the 2 empty cells removed
    assert len(shown) == 4 and all(len(ax.get_lines()) == 3 for ax in shown)
    assert any("assisted vs peer -7.1 %" in t.get_text() for t in shown[3].texts)


# ---------------------------------------------------------------------------------------------- failures
def test_missing_video_is_a_warning_not_a_crash(bikes_analysis, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(bikes_analysis, moved)
    raw = json.loads((moved / "analysis.json").read_text())
    raw["video"]["path"] = str(tmp_path / "gone.mp4")
    (moved / "analysis.json").write_text(json.dumps(raw))
    summary = report([moved / "analysis.json"], tmp_path / "r.html")
    assert summary["figures"] == ["timeline"]  # no overlay without the pictures
    assert any("gone.mp4 is gone" in w for w in summary["warnings"])
    assert "gone.mp4 is gone" in (tmp_path / "r.html").read_text()


def test_bad_inputs_one_line_no_file(bikes_analysis, tmp_path):
    out = tmp_path / "r.html"
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\x01 not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "someone-else/thing", "version": 1}))
    broken = tmp_path / "broken"
    shutil.copytree(bikes_analysis, broken)
    (broken / "analysis.npz").write_bytes((broken / "analysis.npz").read_bytes()[:200])
    invalid = tmp_path / "invalid"
    shutil.copytree(bikes_analysis, invalid)
    raw = json.loads((invalid / "analysis.json").read_text())
    raw["shots"][0]["end_frame"] = -1
    (invalid / "analysis.json").write_text(json.dumps(raw))
    for bad, words in ((garbage, "not a codec-assist JSON"), (other, "not an analysis, plan"),
                       (broken, "unreadable arrays"), (invalid, "invalid analysis"), (tmp_path / "nope", "no such")):
        msg = _one_line_error(run("report", bad, "-o", out))
        assert words in msg, msg
        assert not out.exists()
    msg = _one_line_error(run("report", bikes_analysis, "-o", bikes_analysis / "analysis.json"))
    assert "is the input" in msg
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


# ------------------------------------------------------------------------- speech, fusion, tags, semantic
@pytest.fixture(scope="module")
def jwp_speech(sample, tmp_path_factory):
    """jwpIntro with the audio/text analyzers and a focus prompt; its tag report and semantic report, saved."""
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.semantic.stream import encode_video
    from codec_assist.semantic.stream import semantic_report
    from codec_assist.tags.tagging import load_taxonomy, tag_analysis_facts

    path = sample("jwpIntro.mp4")
    analysis, arrays = analyze(path, AnalyzeOptions(analyzers=["shots", "faces", "speech", "audio"],
                                                    focus=[schemas.FocusPrompt(text="person talking")]))
    d = tmp_path_factory.mktemp("jwp-speech")
    schemas.save(analysis, d / "analysis.json", arrays)
    taxonomy = load_taxonomy()
    tags, shots, modalities, facts = tag_analysis_facts(analysis, arrays, taxonomy)
    tags = tags[:5]
    tags[0].evidence[0].tokens.insert(0, SHORT_HOSTILE)  # a phrase read from a file: must come out escaped
    schemas.save(schemas.TagReport(input=analysis.video, taxonomy=taxonomy.name, tags=tags, shots=shots,
                                   modalities=modalities, facts=facts), d / "tags.json")
    blob, scene, info = encode_video(path, analyzed=(analysis, arrays))
    schemas.save(semantic_report(path, d / "jwp.cas", blob, scene, info), d / "semantic.json")
    return d, analysis


def test_report_shows_transcript_tags_semantic_and_focus(jwp_speech, tmp_path):
    d, analysis = jwp_speech
    page = tmp_path / "r.html"
    summary = report([d / "analysis.json", d / "tags.json", d / "semantic.json"], page)
    assert summary["figures"] == ["timeline", "qp_overlay", "layer_sizes"] and not summary["warnings"]
    text = page.read_text()
    # transcript table: the words said, with sentiment and salience; the speech segments the audio analyzer found
    seg = analysis.transcript.segments[0]
    assert "John Pierce" in seg.text  # what jwpIntro's speaker says first
    assert f"<td>{html.escape(seg.text)}</td><td class='n'>{seg.sentiment:+.2f}</td><td class='n'>{seg.salience:.2f}</td>" in text
    assert any(x.kind == "speech" for x in analysis.audio_segments)
    assert "Audio segments: speech " in text
    # the focus prompt the fusion attended with, in the facts
    assert "focus prompts: &#x27;person talking&#x27;" in text
    # tags with scores and evidence, per shot too; the hostile evidence phrase is escaped
    tags = schemas.load(schemas.TagReport, d / "tags.json")[0]
    top = tags.tags[0]
    assert f"<td>{html.escape(top.name)}</td><td class='n'>{top.score:.2f}</td>" in text
    # issue 14: faces and speech are measured facts checked against the topic's conditions, shown as numbers
    assert top.name == "vlog / talking head" and "face_share 1 (face_share &gt;= 0.5)" in text
    assert "measured: " in text and "Measured (checked against each topic's conditions as numbers)" in text
    assert "Tags per shot" in text and SHORT_HOSTILE not in text and html.escape(SHORT_HOSTILE) in text
    # semantic stream: the layer table and each shot's caption
    sem = schemas.load(schemas.SemanticReport, d / "semantic.json")[0]
    for layer in sem.layers:
        assert f"<td>{layer.name}</td><td>{html.escape(layer.codec)}</td><td class='n'>{layer.stored_bytes}</td>" in text
    assert html.escape(sem.shots[0].caption) in text and "Per-shot captions" in text


def test_timeline_reads_the_transcript_and_audio(jwp_speech):
    from codec_assist.report.html import audio_segments, transcript_keywords

    _, analysis = jwp_speech
    segs = audio_segments(analysis)
    assert segs and all(kind == "speech" for _, _, kind in segs)
    words = {w: t0 for t0, _t1, w, _p in analysis.transcript.segments[0].words}
    kw = dict((k, t) for t, k in transcript_keywords(analysis))
    assert kw["john pierce"] == words["John"]  # placed at its first word, not at the segment's start
