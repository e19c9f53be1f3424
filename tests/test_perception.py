"""The perception benchmark (issue 14 part 3) on a few clips `make samples` always fetches, and the corpus split."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import perception  # noqa: E402

CORPUS = perception.load_corpus()


def test_dev_and_test_splits_are_disjoint():
    splits = {name: c["split"] for name, c in CORPUS.items()}
    assert {"dev", "test"} <= set(splits.values()) <= set(perception.SPLITS)
    manifest = {e["name"]: e for e in json.loads((ROOT / "samples" / "manifest.json").read_text())["samples"]}
    # a composite is built from clips of its own split only (or from clips outside the corpus)
    for name, split in splits.items():
        for src in manifest.get(name, {}).get("from", []):
            assert splits.get(src, split) == split, (name, src)
    # no footage in two splits under two names: each corpus clip comes from its own file of a package (and, for a
    # trim, its own frames of it), so a clip of the held-out splits is never a copy of a dev clip
    source = {}
    for name in splits:
        e = manifest.get(name, {"source": "composite"})  # montage.mp4 is built by samples/compose.py
        if e["source"] == "composite":
            continue
        key = (e["sha256"], json.dumps(e.get("trim")))
        assert key not in source, (name, source.get(key))
        source[key] = name
    for name, e in manifest.items():  # two trims of one file (or a trim of a file used whole) must not overlap
        if name in splits and "trim" in e:
            a = e["trim"]
            for other in (n for n in splits if n != name and manifest.get(n, {}).get("sha256") == e["sha256"]):
                b = manifest[other].get("trim")
                assert b is not None, (name, other)
                assert a["start"] + a["frames"] <= b["start"] or b["start"] + b["frames"] <= a["start"], (name, other)


def test_scoring_helpers():
    assert perception.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    assert perception.match([(0, 0, 10, 10), (50, 50, 10, 10)], [(1, 1, 10, 10)]) == 1
    r = perception.score_cuts([30, 77, 170], [30, 76, 165], {"165": [165, 189]})
    assert (r["tp"], r["missed"], r["false"]) == (2, [76], [77])
    assert perception.covered((0, 0, 10, 10), [(0, 0, 5, 10)]) == pytest.approx(0.5)


def test_short_perception_pass(sample):
    """Shots and faces on three real clips: exact cuts, every presenter frame, no face on the night city."""
    names = ["jwpIntro.mp4", "bikes.mp4", "cityCC0.mpg"]
    for n in names:
        sample(n)
    res = perception.evaluate(CORPUS, ROOT / "samples" / "media", clips=names, text=False)
    rows = {r["clip"]: r for r in res["rows"]}
    assert set(rows) == set(names) and all("error" not in r for r in rows.values())
    assert rows["bikes.mp4"]["cuts"]["tp"] == 5 and rows["cityCC0.mpg"]["cuts"]["tp"] == 1
    assert res["summary"]["dev"]["cuts_precision"] == 1.0 and res["summary"]["dev"]["cuts_recall"] == 1.0
    jwp = rows["jwpIntro.mp4"]["faces"]
    assert jwp["frames_found"] == jwp["gt_frames"] == 18
    assert rows["bikes.mp4"]["faces"]["frames_found"] >= 4  # 30-px cyclists on a hand-held camera (of 6)
    assert rows["cityCC0.mpg"]["faces"]["fp_frames"] == 0
    assert 0 < rows["jwpIntro.mp4"]["cpu_ms_per_frame"]["faces"] < 50
    assert "| summary | dev |" in perception.markdown(res)
