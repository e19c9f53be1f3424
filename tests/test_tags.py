"""Topic tags (issue 5): real samples tagged with evidence, user taxonomies, hostile files, tag-driven presets."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

import codec_assist.tags.tagging as tagging
from codec_assist.errors import SchemaError
from codec_assist.analysis.pipeline import AnalyzeOptions, analyze
from codec_assist.planning.plan import PlanOptions, make_plan
from codec_assist.schemas import PresetTable, TagReport
from policies.presets import choose, split

# What this branch produces on the samples (video level, default taxonomy, merged i3a + i3b analyzers).
# Scores are the heuristic calibration; the tolerance absorbs small analyzer changes, not a different answer.
# bikes: ImageNet-Lite0 on the 320-px proxy names cabs, limousines, minibuses and rickshaws again and again over
# its shots; the recurring classes, weighed by their time on screen, make it a street/traffic scene, with a low
# score (one modality, no bicycle seen at this size) - see docs/BENCHMARKS.md, "Topic tags".
# Issue 14: faces, speech/music and scene statistics are measured facts checked against each topic's conditions
# (modality "measured"), no longer phrases matched in MiniLM (modalities faces/audio/scene): the expected
# modalities changed accordingly, and so did the scores (animation 0.64 -> 0.86: the animated-film conditions
# are met by numbers; city_night 0.79 -> 1.0: darkness, blue light and detail all measured). City at night, 1.0 ->
# 0.41 (twentieth session): a dark, detailed picture is no evidence of a city, so only the night-light condition
# adds to its score and the other two only rule it out (montage's dev contradiction, a dark street shot).
EXPECTED = {
    "jwpIntro.mp4": ("talking_head", 1.0, {"measured"}),
    "bigbuckbunny.mp4": ("animation", 0.86, {"measured"}),
    "cityCC0.mpg": ("city_night", 0.41, {"measured", "visual"}),
    "bikes.mp4": ("street", 0.12, {"visual"}),
}
TOLERANCE = 0.15


def run(*args):
    return subprocess.run([sys.executable, "-m", "codec_assist", "-q", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def run_here(capsys, *args):
    """The CLI in this process (models already loaded by earlier tests): (exit code, stdout, stderr)."""
    from codec_assist.cli import main

    code = main(["-q", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def analyses(sample):
    """Each sample analysed once with the tagging analyzers."""
    return {name: analyze(sample(name), tagging.tag_options()) for name in EXPECTED}


@pytest.fixture(scope="module")
def taxonomy():
    return tagging.load_taxonomy()


def test_default_taxonomy_and_presets_ship(taxonomy):
    assert 40 <= len(taxonomy.topics) <= 200
    ids = {t.id for t in taxonomy.topics}
    for needed in ("talking_head", "cooking", "sports", "gaming", "music_performance", "dance", "news",
                   "education", "animation", "animals", "travel", "vehicles", "street", "product_unboxing",
                   "screen_recording", "city_night"):
        assert needed in ids
    table = tagging.load_presets(taxonomy=taxonomy)
    assert {t.preset for t in taxonomy.topics if t.preset} <= set(table.presets)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_top_tag_per_sample_with_evidence(analyses, taxonomy, name):
    analysis, arrays = analyses[name]
    tags, shots, modalities = tagging.tag_analysis(analysis, arrays, taxonomy)
    top_id, score, expected_modalities = EXPECTED[name]
    assert tags[0].id == top_id, [(t.id, t.score) for t in tags[:5]]
    assert abs(tags[0].score - score) <= TOLERANCE, tags[0].score
    assert expected_modalities <= {e.modality for e in tags[0].evidence}
    for t in tags[:3]:  # every reported tag says why: a modality and the words that matched
        assert t.evidence and all(e.tokens and e.contribution > 0 for e in t.evidence)
    assert [t.score for t in tags] == sorted((t.score for t in tags), reverse=True)
    # per shot: one entry per shot, covering the clip
    assert len(shots) == len(analysis.shots) and shots[0].start_frame == 0
    assert shots[-1].end_frame == analysis.video.frame_count


def test_confident_only_where_evidence_is(analyses, taxonomy):
    tops = {n: tagging.tag_analysis(a, arr, taxonomy)[0][0].score for n, (a, arr) in analyses.items()}
    assert tops["jwpIntro.mp4"] > 0.8 and tops["bigbuckbunny.mp4"] > 0.55
    assert 0.3 < tops["cityCC0.mpg"] < 0.55  # night light measured, a city only glimpsed by ImageNet: not confident
    assert tops["bikes.mp4"] < 0.5  # weak evidence, low score: the calibration does not invent confidence


def test_evidence_words_per_modality(analyses):
    """Words are matched as words; measurements stay numbers (issue 14): no scene, face or speech phrase is
    embedded any more, and the facts carry what those phrases said."""
    from codec_assist.tags.scene_facts import measure

    a, arr = analyses["jwpIntro.mp4"]
    ev = tagging.collect_evidence(a, arr, 0, a.video.frame_count, whole_video=True)
    assert not {"scene", "faces", "editing"} & set(ev) and "speech, a person talking" not in ev.get("audio", {})
    assert any("lecturer" in p for p in ev["transcript"])  # Whisper's transcript
    facts = measure(a, arr, 0, a.video.frame_count)
    assert facts["face_share"] > 0.8 and facts["face_area"] > 0.04 and facts["people"] == 1
    assert facts["speech"] > 0.5 and facts["words_per_min"] > 100 and facts["brightness"] > 0.45
    assert facts["static_camera"] > 0.8 and facts["animation"] < 0.2
    a, arr = analyses["cityCC0.mpg"]
    facts = measure(a, arr, 0, a.video.frame_count)
    assert facts["blue_tint"] > 0.4 and "speech" not in facts  # no audio track: audio facts unmeasured
    a, arr = analyses["bigbuckbunny.mp4"]
    facts = measure(a, arr, 0, a.video.frame_count)
    assert facts["music"] > 0.5 and facts["animation"] > 0.5 and facts["faces"] == 0
    a, arr = analyses["bikes.mp4"]
    facts = measure(a, arr, 0, a.video.frame_count)
    assert facts["animation"] < 0.2 and facts["motion"] > 1.5 and facts["cuts_per_min"] > 20


def test_a_silent_track_is_no_evidence_of_silence(sample, taxonomy, tmp_path):
    """jwpIntro with its sound replaced by a digitally silent track (as stock clips carry: test3's close-up): the
    speech/music facts stay unmeasured, as without a track, so the talking head is not ruled out for not talking
    (it was: speech 0 < 0.3)."""
    src = tmp_path / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample("jwpIntro.mp4")), "-f", "lavfi", "-i",
                    "anullsrc=r=48000:cl=mono", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(src)], check=True, timeout=120)
    from codec_assist.tags.scene_facts import heard, measure

    a, arr = analyze(src, tagging.tag_options())
    assert a.video.audio and not heard(a, arr)
    facts = measure(a, arr, 0, a.video.frame_count)
    assert not {"speech", "music", "singing", "words_per_min"} & set(facts) and facts["face_share"] > 0.8
    tags, _shots, _modalities = tagging.tag_analysis(a, arr, taxonomy)
    assert tagging.live_tags(tags)[0].id == "talking_head"


NIGHT = {"night_scene", "city_night"}


@pytest.mark.parametrize("name", ["jwpIntro.mp4", "bikes.mp4", "bigbuckbunny.mp4"])
def test_a_measurement_rules_a_topic_out_and_says_which(analyses, taxonomy, name):
    """Day clips never get a night tag, per video or per shot; the report says which measurement ruled it out."""
    a, arr = analyses[name]
    tags, shots, modalities = tagging.tag_analysis(a, arr, taxonomy)
    live = [t.id for t in tagging.live_tags(tags)]
    assert not NIGHT & set(live[:5])
    night = next(t for t in tags if t.id == "night_scene")
    assert night.ruled_out and night.score == 0
    assert any(f"measured {fact}" in night.ruled_out for fact in ("brightness", "dark", "detail")), night.ruled_out
    assert tags.index(night) >= len(live)  # a ruled-out topic ranks after every live one
    for s in shots:
        assert not NIGHT & {t.id for t in tagging.live_tags(s.tags)[:3]}, (s.start_frame, s.facts)
    assert "measured" in modalities


def test_night_clip_keeps_its_night_tags_from_numbers(analyses, taxonomy):
    a, arr = analyses["cityCC0.mpg"]
    tags = tagging.tag_analysis(a, arr, taxonomy)[0]
    top = tags[0]
    assert top.id == "city_night" and not top.ruled_out
    measured = next(e for e in top.evidence if e.modality == "measured")
    assert any(tok.startswith("blue_tint") for tok in measured.tokens) and measured.contribution > 0


def test_conditions_are_numbers_not_words():
    from codec_assist.tags.scene_facts import judge, parse_condition

    assert [str(c) for c in parse_condition("dark >= 0.45 or blue_tint > 0.4")] == ["dark >= 0.45", "blue_tint > 0.4"]
    v = judge(["brightness < 0.4"], [], {"brightness": 0.62})
    assert v.ruled_out == "measured brightness 0.62; the topic requires brightness < 0.4"
    v = judge(["brightness < 0.4", "dark >= 0.45 or blue_tint >= 0.4"], [], {"brightness": 0.2, "blue_tint": 0.7})
    assert not v.ruled_out and len(v.met) == 2 and v.support == pytest.approx(2.0)
    assert judge(["speech >= 0.3"], [], {}).met == []  # unmeasured: neither rules out nor supports
    v = judge([], ["static_camera > 0.7"], {"static_camera": 0.9})
    assert v.ruled_out.startswith("measured static_camera 0.9; the topic excludes")
    with pytest.raises(ValueError, match="unknown fact"):
        parse_condition("loudness > 3")


def test_animation_likeness_keeps_a_margin_from_camera_footage():
    """The dev split's camera footage, after grey-world balance: the most colourful live frame (cityCC0) measures
    48 colourfulness with 4 hue bins, jwpIntro's webcam 44; the least grainy (cap12's flat wall) 0.32 grain at
    0.64 flat on the 2x2-averaged picture; the rendered films 59-63, the title card 0.00 grain. Livelier or
    smoother camera footage than those must not read as animated."""
    from codec_assist.tags.scene_facts import animation_likeness, graphics_likeness

    def arrays(cf, hs, flat, noise):
        return {"signal/colourfulness_balanced": np.array([cf], float),
                "signal/hue_spread_balanced": np.array([hs], float),
                "signal/flat_fraction": np.array([flat], float), "signal/noise": np.array([noise], float)}

    sel = np.ones(1, bool)
    assert animation_likeness(arrays(51, 4, 0.2, 0.5), sel)[0] == 0  # a livelier camera frame than cityCC0's
    assert animation_likeness(arrays(59, 4, 0.05, 1.5), sel)[0] == 1  # bigbuckbunny's least colourful frame
    assert animation_likeness(arrays(66, 2, 0.1, 0.8), sel)[0] == 1  # more vivid than any camera frame on dev
    assert graphics_likeness(arrays(40, 2, 0.64, 0.25), sel)[0] == 0  # a smoother flat-walled webcam than cap12
    assert graphics_likeness(arrays(10, 1, 0.95, 0.0), sel)[0] == 1  # a drawn title card
    # an analysis from before the balanced palette was measured: animation-likeness is unmeasured, not guessed
    assert animation_likeness({"signal/colourfulness": np.array([70.0]), "signal/hue_spread": np.array([4.0])},
                              sel) is None


def _frame_at(path, index: int) -> np.ndarray:
    """The 320-px analysis proxy of frame `index` (BGR), as the scene_stats analyzer sees it."""
    import codec_assist.media.decode as media

    info = media.probe(path)
    for i, _f, pf in media.iter_proxy(path, media.proxy_size(info.width, info.height, 320)):
        if i == index:
            return pf.bgr
    raise AssertionError(f"{path} has no frame {index}")


def _likeness(stats: dict[str, float]):
    from codec_assist.tags.scene_facts import animation_likeness, graphics_likeness

    arrays = {f"signal/{k}": np.array([v], float) for k, v in stats.items()}
    sel = np.ones(1, bool)
    return float(animation_likeness(arrays, sel)[0]), float(graphics_likeness(arrays, sel)[0])


def test_a_colour_cast_is_not_a_palette(sample):
    """A webcam frame with a strong blue cast (dev jwpIntro, blue x1.45, red x0.7, as a cheap camera under cold
    light gives): raw colourfulness jumps past where the old 'vivid' ramp started, the grey-world balanced
    palette that animation-likeness reads does not move, and the frame stays camera footage."""
    import cv2

    from analyzers.scene_stats import frame_stats

    bgr = _frame_at(sample("jwpIntro.mp4"), 90)
    cast = np.clip(bgr.astype(np.float32) * np.array([1.45, 1.0, 0.7], np.float32), 0, 255).astype(np.uint8)
    plain = frame_stats(bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    blue = frame_stats(cast, cv2.cvtColor(cast, cv2.COLOR_BGR2GRAY))
    assert blue["colourfulness"] > 60 > plain["colourfulness"] + 5
    assert abs(blue["colourfulness_balanced"] - plain["colourfulness_balanced"]) < 4
    assert _likeness(blue) == (0.0, 0.0) and _likeness(plain) == (0.0, 0.0)


def test_a_dithered_graphic_is_still_drawn(sample):
    """The dev end card (gradio_thanks, frame 100: words on a flat slate) with a 4x4 ordered dither of +-3 levels,
    as generated graphics use for smooth ramps: measured on the 2x2-averaged picture it is still flat fills
    without grain (drawn), where at full size the dither read as sensor grain."""
    import cv2

    from analyzers.scene_stats import frame_stats

    bgr = _frame_at(sample("gradio_thanks.mp4"), 100)
    bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0 - 0.5
    h, w = bgr.shape[:2]
    pattern = np.tile(bayer, (h // 4 + 1, w // 4 + 1))[:h, :w, None] * 6
    dithered = np.clip(bgr.astype(np.float32) + pattern, 0, 255).astype(np.uint8)
    for picture in (bgr, dithered):
        stats = frame_stats(picture, cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY))
        assert _likeness(stats)[1] == 1.0, stats
    webcam = _frame_at(sample("cap12.mp4"), 60)  # the flattest camera footage on dev stays camera footage
    assert _likeness(frame_stats(webcam, cv2.cvtColor(webcam, cv2.COLOR_BGR2GRAY)))[1] == 0.0


def test_slideshow_needs_large_text_and_dashcam_a_camera(taxonomy):
    from codec_assist.tags.scene_facts import judge

    topics = {t.id: t for t in taxonomy.topics}
    slideshow, dashcam = topics["slideshow"], topics["dashcam"]
    lecture = {"static_camera": 1.0, "text_share": 1.0, "text_area": 0.18, "cuts_per_min": 12, "motion": 0.02}
    assert not judge(slideshow.requires, slideshow.excludes, lecture).ruled_out
    # a rendered title whose words fly in over a moving sky (test3's caminandes_title): large text, but it moves
    title = {"static_camera": 1.0, "text_share": 0.5, "text_area": 0.05, "cuts_per_min": 0, "motion": 0.77}
    assert "motion" in judge(slideshow.requires, slideshow.excludes, title).ruled_out
    # a fixed camera where OCR reads a small sign now and then, no cuts: not a slide deck
    fixed_camera = {"static_camera": 1.0, "text_share": 0.5, "text_area": 0.01, "cuts_per_min": 0}
    assert "text_area" in judge(slideshow.requires, slideshow.excludes, fixed_camera).ruled_out
    moving_graphics = {"camera_motion": 0.8, "static_camera": 0.0, "animation": 0.0, "graphics": 0.9}
    assert "graphics" in judge(dashcam.requires, dashcam.excludes, moving_graphics).ruled_out
    road = {"camera_motion": 0.8, "static_camera": 0.0, "animation": 0.0, "graphics": 0.0}
    assert not judge(dashcam.requires, dashcam.excludes, road).ruled_out


@pytest.mark.parametrize("cond, message", [("brightness << 0.3", "should match pattern"),
                                           ("sunshine > 0.5", "unknown fact"),
                                           ("__import__('os') > 1", "should match pattern")])
def test_bad_topic_condition_is_one_line_error(tmp_path, cond, message):
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump({"topics": [{"id": "a", "name": "A", "description": "abc", "requires": [cond]}]}))
    with pytest.raises(SchemaError, match=message) as e:
        tagging.load_taxonomy(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_new_topic_is_picked_up_without_code(analyses, tmp_path):
    raw = yaml.safe_load(tagging.DEFAULT_TAXONOMY.read_text())
    raw["name"] = "plus-skyline"
    # measurements are conditions, not words (issue 14): the new topic states the light it needs as numbers
    raw["topics"].append({"id": "skyline_at_dusk", "name": "skyline at dusk",
                          "description": "a skyline of tall buildings in the deep blue light of dusk",
                          "requires": ["blue_tint >= 0.4", "detail >= 0.1"]})
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump(raw))
    tax = tagging.load_taxonomy(path)
    a, arr = analyses["cityCC0.mpg"]
    tags = tagging.tag_analysis(a, arr, tax)[0]
    assert "skyline_at_dusk" in [t.id for t in tags[:3]]
    # ... and a taxonomy of just that one topic works too
    path.write_text(yaml.safe_dump({"topics": raw["topics"][-1:]}))
    only = tagging.tag_analysis(a, arr, tagging.load_taxonomy(path))[0]
    assert [t.id for t in only] == ["skyline_at_dusk"]


BAD_TAXONOMIES = {
    "not_yaml.yaml": "topics: [unclosed\n",
    "list.yaml": "- a\n- b\n",
    "dupe.yaml": "topics:\n- {id: a, name: A, description: first one}\n- {id: a, name: B, description: again}\n",
    "no_desc.yaml": "topics:\n- {id: a, name: A}\n",
    "bad_id.yaml": "topics:\n- {id: '../etc', name: A, description: path-like id}\n",
    "empty.yaml": "topics: []\n",
    "wrong_schema.yaml": "schema: codec-assist/plan\ntopics:\n- {id: a, name: A, description: abc}\n",
    "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\ntopics: *c\n",
    "bad.json": "{\"topics\": [1, 2",
}


@pytest.mark.parametrize("name", sorted(BAD_TAXONOMIES))
def test_malformed_taxonomy_is_one_line_error(tmp_path, name):
    path = tmp_path / name
    path.write_text(BAD_TAXONOMIES[name])
    with pytest.raises(SchemaError) as e:
        tagging.load_taxonomy(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_hostile_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (tagging.MAX_DATA_BYTES + 1))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00topics")
    for p in (big, binary, tmp_path / "missing.yaml"):
        with pytest.raises(SchemaError):
            tagging.load_taxonomy(p)
    with pytest.raises(SchemaError):
        tagging.load_presets(binary)


def test_cli_bad_taxonomy_one_line_nothing_written(sample, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_TAXONOMIES["dupe.yaml"])
    out = tmp_path / "tags.json"
    r = run("tag", sample("jwpIntro.mp4"), "--taxonomy", bad, "-o", out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "appears twice" in r.stderr
    assert not out.exists()
    r = run("encode", sample("jwpIntro.mp4"), "-o", tmp_path / "o.mp4", "--auto-preset", "--no-assist")
    assert r.returncode == 2 and "--auto-preset" in r.stderr and not (tmp_path / "o.mp4").exists()


def test_cli_tag_json_and_chapters(sample, tmp_path, capsys):
    import webvtt

    out, vtt = tmp_path / "t.json", tmp_path / "t.vtt"
    code, stdout, stderr = run_here(capsys, "tag", sample("bikes.mp4"), "-o", out, "--chapters", vtt, "--top", "3")
    assert code == 0, stderr
    # the evidence behind the decisions: measured facts, and which measurement ruled a topic out
    assert "measured: brightness" in stdout and "ruled out:" in stdout
    report = TagReport.model_validate_json(out.read_text())
    assert len(report.tags) == 3 and len(report.shots) == 6  # bikes: 5 cuts
    cues = webvtt.read(str(vtt))
    assert len(cues) == 6 and cues[1].start == "00:00:01.200" and "Shot 2:" in cues[1].text
    assert report.shots[1].tags[0].name in cues[1].text


def test_folder_mode_summary(sample, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_city.mpg").symlink_to(sample("cityCC0.mpg"))
    (folder / "b_broken.mp4").write_text("not a video")
    (folder / "notes.txt").write_text("ignored")
    summary = tmp_path / "summary.csv"
    code, stdout, stderr = run_here(capsys, "tag", folder, "--summary", summary, "-o", tmp_path / "reports")
    assert code == 2 and "1 of 2 videos" in stderr.strip().splitlines()[-1]
    rows = summary.read_text().splitlines()
    assert rows[0].startswith("file,duration_s,shots,tag_1") and len(rows) == 3
    assert rows[1].startswith("a_city.mpg,") and ",city_night," in rows[1]
    assert rows[1].endswith(",")  # no error: an empty cell, not a spreadsheet-quoted "'"
    assert rows[2].startswith("b_broken.mp4,") and "not a readable media file" in rows[2]
    data = json.loads(summary.with_suffix(".json").read_text())
    assert [v["file"] for v in data["videos"]] == ["a_city.mpg", "b_broken.mp4"]
    assert (tmp_path / "reports" / "a_city.tags.json").exists()
    assert (tmp_path / "reports" / "a_city.chapters.vtt").exists()


# ------------------------------------------------------------------------------------------- presets
TABLE = PresetTable.model_validate({"min_score": 0.5, "presets": {
    "action": {"min_gop": 0.3, "max_gop": 2.0, "weights": {"saliency": 0.8}},
    "talking": {"max_gop": 5.0, "max_dqp": 7.0, "weights": {"faces": 1.0, "saliency": 0.3}},
    "slow": {"min_gop": 4.0, "aq_strength": 0.6},
}})
PRESET_OF = {"sports": "action", "vlog": "talking", "scenery": "slow", "other": None}


def test_presets_highest_scoring_tag_wins_each_setting():
    choices = choose([("vlog", 0.7), ("sports", 0.9), ("scenery", 0.6), ("other", 0.99)], PRESET_OF, TABLE)
    by = {c.setting: c for c in choices}
    assert by["max_gop"].tag == "sports" and by["max_gop"].value == 2.0
    assert by["weights.saliency"].value == 0.8 and by["weights.faces"].tag == "vlog"
    assert by["max_dqp"].value == 7.0 and by["aq_strength"].tag == "scenery"
    assert by["min_gop"].tag == "sports"  # sports (0.9) outranks scenery (0.6) for min_gop
    plan, weights = split(choices)
    assert plan == {"min_gop": 0.3, "max_gop": 2.0, "max_dqp": 7.0, "aq_strength": 0.6}
    assert weights == {"saliency": 0.8, "faces": 1.0}


def test_presets_threshold_keep_and_gop_consistency():
    assert choose([("sports", 0.49)], PRESET_OF, TABLE) == []
    kept = choose([("sports", 0.9)], PRESET_OF, TABLE, keep=frozenset({"max_gop"}))
    assert {c.setting for c in kept} == {"min_gop", "weights.saliency"}
    # min_gop from one tag may not exceed max_gop from another
    mixed = {c.setting: c.value for c in choose([("scenery", 0.95), ("sports", 0.9)], PRESET_OF, TABLE)}
    assert mixed["min_gop"] == mixed["max_gop"] == 2.0


def test_auto_preset_changes_the_plan_as_the_table_says(sample, analyses):
    path = sample("jwpIntro.mp4")
    a_opt, p_opt, choices, report = tagging.auto_preset(path, AnalyzeOptions(analyzers=["shots", "saliency", "faces"]),
                                                        PlanOptions())
    assert report.tags[0].id == "talking_head"
    table = tagging.load_presets()
    want = table.presets["talking_head"]
    by = {c.setting: c for c in choices}
    assert by["time_constant"].tag == "talking_head" and by["time_constant"].preset == "talking_head"
    assert p_opt.time_constant == want.time_constant != PlanOptions().time_constant
    assert a_opt.weights["faces"] == want.weights["faces"] and a_opt.weights["saliency"] == want.weights["saliency"]
    analysis, arrays = analyses["jwpIntro.mp4"]
    _, default_arrays = make_plan(analysis, arrays, PlanOptions())
    plan, plan_arrays = make_plan(analysis, arrays, p_opt)
    assert not np.allclose(plan_arrays["qp/offsets"], default_arrays["qp/offsets"])  # smoother in time
    assert plan.max_dqp == PlanOptions().max_dqp and abs(plan_arrays["qp/offsets"]).max() <= plan.max_dqp


def test_encode_auto_preset_report_says_which_tag_chose_what(sample, tmp_path, capsys):
    rep = tmp_path / "r.json"
    code, stdout, stderr = run_here(capsys, "encode", sample("bigbuckbunny.mp4"), "-o", tmp_path / "o.mp4", "--bitrate",
                                    "300k", "--preset", "ultrafast", "--analyzers", "shots,saliency", "--auto-preset",
                                    "--report", rep)
    assert code == 0, stderr
    assert "auto-preset: max_gop=10 (animation 0.8" in stdout and "aq_strength=0.6 (animation 0.8" in stdout
    data = json.loads(rep.read_text())
    by = {c["setting"]: c for c in data["auto_preset"]}
    assert set(by) == {"max_gop", "aq_strength"}  # the animation preset sets only these
    assert all(c["tag"] == "animation" and c["preset"] == "animation" for c in by.values())
    assert by["aq_strength"]["value"] == 0.6
    # no tag of the night city reaches the table's min_score (city at night 0.41): the defaults stay, and it says so
    code, stdout, stderr = run_here(capsys, "encode", sample("cityCC0.mpg"), "-o", tmp_path / "c.mp4", "--bitrate",
                                    "300k", "--preset", "ultrafast", "--analyzers", "shots,saliency", "--auto-preset")
    assert code == 0, stderr
    assert "auto-preset: no tag reached the table's min_score; defaults kept" in stdout


@pytest.mark.slow  # building a random-init RN50 costs ~10-25 s on 2 cores
def test_clip_zero_shot_shapes_with_random_weights(analyses, taxonomy, sample):
    pytest.importorskip("open_clip")
    a, arr = analyses["bikes.mp4"]
    frames = tagging.clip_frames(sample("bikes.mp4"), a, per_shot=1)
    assert sorted(frames) == list(range(len(a.shots)))
    space = tagging.topic_space(taxonomy)
    sims = tagging.clip_similarities(tagging.ClipSpec("RN50"), space, frames)  # pretrained=None: random init
    assert all(s.shape == (1, len(taxonomy.topics)) for s in sims.values())
    tags, shots, modalities = tagging.tag_analysis(a, arr, taxonomy, sims, "RN50 (random init)")
    assert "clip" in modalities and any(e.modality == "clip" for t in tags for e in t.evidence)


def test_summary_csv_quotes_formulas_only():
    """A cell that a spreadsheet would run as a formula (= + - @ first) is quoted as text; empty cells stay empty."""
    from codec_assist.tags.tagging import summary_csv

    text = summary_csv([{"file": "=HYPERLINK(1).mp4", "error": ""}, {"file": "-x.mp4", "error": "@bad"}])
    assert text.splitlines()[1:] == ["'=HYPERLINK(1).mp4" + "," * 12, "'-x.mp4" + "," * 12 + "'@bad"]
