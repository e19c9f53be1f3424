#!/usr/bin/env python3
"""Topic-tag accuracy on the labelled corpus (issue 14): top-1 / top-3 and contradictions, per split.

For each clip of the ground truth (1-3 topic labels from the taxonomy, and hand-checked facts: animation,
static camera, night, speech), the clip is tagged with the default analyzers and taxonomy, and:
  top-1    the first tag is one of the clip's labels
  top-3    one of the first three tags is one of its labels
  contradictions, two kinds, counted over the first three tags:
    measured   a tag whose taxonomy condition the clip's own measured facts contradict (scene_facts.judge):
               zero by construction, checked here so a regression shows;
    labelled   a tag that contradicts a hand-checked fact: night/city-at-night on a day clip, animation or
               anime on live footage, surveillance on a moving camera or on animation, dashcam on a static
               camera, interview/news/motivational on a clip with an audio track and no speech.
With `--clip-model NAME --clip-pretrained TAG | --clip-checkpoint FILE` the frames are matched to the topics with CLIP
too, as `codec-assist tag` does with weights (none ship in a package here: supply them to measure that path).
Every figure says its split; tune on `dev`, report the others (a figure on a clip tuned on is not evidence;
each later split holds clips added after the one before had been looked at; `test5` is the clean held-out
split for tags: its one reading is in docs/BENCHMARKS.md, and no tag change was kept after it).

    python benchmarks/tag_accuracy.py --gt samples/corpus.json            # all splits, side by side
    python benchmarks/tag_accuracy.py --split both --cache out/tagcache   # dev and test
    python benchmarks/tag_accuracy.py --gt samples/corpus.json --split dev --cache out/tagcache
Markdown on stdout, JSON in out/bench/tag_accuracy.json. `evaluate()` is what the perception benchmark calls.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from perception import SPLIT_CHOICES, SPLITS  # noqa: E402  (one list of splits for both benchmarks)

# hand-checked fact -> value -> topics that contradict it
LABELLED_CONTRADICTIONS = {
    "night": {False: {"night_scene", "city_night"}},
    "animation": {False: {"animation", "anime"}, True: {"surveillance", "dashcam"}},
    "static_camera": {False: {"surveillance"}, True: {"dashcam"}},
    "speech": {False: {"interview", "news", "motivational"}},  # only where the clip has an audio track
}


def load_gt(path: str | Path) -> dict[str, dict]:
    """clip name -> {"split", "topics", "facts"} from the corpus ground truth. Accepts {"clips": {name: {...}}},
    {"clips": [{"name": ...}]} or a list; topic labels under "topics" / "tags" / "labels"."""
    raw = json.loads(Path(path).read_text())
    clips = raw.get("clips", raw) if isinstance(raw, dict) else raw
    if isinstance(clips, dict):
        items = [{"name": k, **v} for k, v in clips.items() if isinstance(v, dict)]
    else:
        items = list(clips)
    out = {}
    for c in items:
        name = c.get("name") or c.get("file") or c.get("clip")
        topics = c.get("topics") or c.get("tags") or c.get("labels") or []
        if not name or not topics:
            continue
        out[name] = {"split": c.get("split", "dev"), "topics": list(topics), "facts": c.get("facts", {})}
    return out


def labelled_contradictions(tag_ids: list[str], facts: dict, has_audio: bool) -> list[str]:
    found = []
    for fact, by_value in LABELLED_CONTRADICTIONS.items():
        value = facts.get(fact)
        if value is None or (fact == "speech" and not has_audio):
            continue
        bad = by_value.get(bool(value), set())
        found += [f"{t} (labelled {fact}={bool(value)})" for t in tag_ids if t in bad]
    return found


def measured_contradictions(tags, taxonomy, facts: dict[str, float], parts) -> list[str]:
    """Tags whose conditions the clip's measured facts contradict (for a multi-shot clip: unless shots covering
    tagging.PART_MIN_SHARE of it meet them), re-checked from the facts, not read from the tagger's flags."""
    from codec_assist.tags.tagging import topic_verdict

    topics = {t.id: t for t in taxonomy.topics}
    found = []
    for t in tags:
        v = topic_verdict(topics[t.id], facts, parts)[0]
        if v.ruled_out:
            found.append(f"{t.id}: {v.ruled_out}")
    return found


def tag_clip(path: Path, taxonomy, cache: Path | None, clip=None):
    """(live tags best first, measured facts, per-shot (facts, share, name), has audio); the analysis is cached
    when `cache` is given. `clip` (tagging.ClipSpec): frames are matched to the topics with CLIP too, as `tag
    --clip-model` does."""
    import codec_assist.tags.tagging as tagging
    from codec_assist import schemas
    from codec_assist.analysis.pipeline import analyze
    from codec_assist.schemas import Analysis

    hit = cache / f"{path.name}.analysis.json" if cache else None
    if hit is not None and hit.exists():
        analysis, arrays = schemas.load(Analysis, hit, need_arrays=("importance/frames",))
    else:
        analysis, arrays = analyze(path, tagging.tag_options())
        if hit is not None:
            cache.mkdir(parents=True, exist_ok=True)
            schemas.save(analysis, hit, arrays)
    sims, note = None, ""
    if clip is not None:
        sims = tagging.clip_similarities(clip, tagging.topic_space(taxonomy), tagging.clip_frames(path, analysis))
        note = f"{clip.describe()}: frames vs topic text"
    tags, shots, _mods, facts = tagging.tag_analysis_facts(analysis, arrays, taxonomy, sims, note)
    n = max(1, analysis.video.frame_count)
    parts = [(s.facts, (s.end_frame - s.start_frame) / n, f"shot {k + 1}") for k, s in enumerate(shots)]
    return tagging.live_tags(tags), facts, parts, bool(analysis.video.audio)


def evaluate(gt: dict[str, dict], media: Path, splits=SPLITS, cache: Path | None = None,
             taxonomy=None, clip=None) -> dict:
    """Per clip and per split: top-1, top-3, contradictions. The function the perception benchmark calls."""
    import codec_assist.tags.tagging as tagging

    taxonomy = taxonomy or tagging.load_taxonomy()
    known = {t.id for t in taxonomy.topics}
    rows = []
    for name, g in sorted(gt.items(), key=lambda kv: (kv[1]["split"], kv[0])):
        if g["split"] not in splits:
            continue
        path = media / name
        if not path.exists():
            rows.append({"clip": name, "split": g["split"], "error": "missing (run samples/fetch.py)"})
            continue
        t0 = time.perf_counter()
        tags, facts, parts, has_audio = tag_clip(path, taxonomy, cache, clip)
        top3 = [t.id for t in tags[:3]]
        labels = [x for x in g["topics"] if x in known]
        rows.append({
            "clip": name, "split": g["split"], "labels": g["topics"], "unknown_labels": sorted(set(g["topics"]) - known),
            "top3": [(t.id, t.score) for t in tags[:3]], "top1_ok": bool(top3) and top3[0] in labels,
            "top3_ok": any(x in labels for x in top3),
            "measured_contradictions": measured_contradictions(tags[:3], taxonomy, facts, parts),
            "labelled_contradictions": labelled_contradictions(top3, g["facts"], has_audio),
            "facts": facts, "seconds": round(time.perf_counter() - t0, 2)})
    summary = {}
    for split in splits:
        r = [x for x in rows if x["split"] == split and "error" not in x]
        if not r:
            continue
        summary[split] = {"clips": len(r), "top1": sum(x["top1_ok"] for x in r) / len(r),
                          "top3": sum(x["top3_ok"] for x in r) / len(r),
                          "measured_contradictions": sum(len(x["measured_contradictions"]) for x in r),
                          "labelled_contradictions": sum(len(x["labelled_contradictions"]) for x in r),
                          "clips_with_contradiction": sum(bool(x["measured_contradictions"] or x["labelled_contradictions"])
                                                          for x in r)}
    return {"rows": rows, "summary": summary}


def markdown(result: dict) -> str:
    lines = ["| split | clips | top-1 | top-3 | contradictions (measured / labelled) | clips with one |", "|---|---|---|---|---|---|"]
    for split, s in result["summary"].items():
        lines.append(f"| {split} | {s['clips']} | {s['top1']:.0%} ({round(s['top1'] * s['clips'])}/{s['clips']}) | "
                     f"{s['top3']:.0%} ({round(s['top3'] * s['clips'])}/{s['clips']}) | "
                     f"{s['measured_contradictions']} / {s['labelled_contradictions']} | {s['clips_with_contradiction']} |")
    lines += ["", "| split | clip | labels | top 3 (score) | top-1 | top-3 | contradictions |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['split']} | {r['clip']} | – | {r['error']} | | | |")
            continue
        c = "; ".join(r["measured_contradictions"] + r["labelled_contradictions"]) or "none"
        lines.append(f"| {r['split']} | {r['clip']} | {', '.join(r['labels'])} | "
                     f"{', '.join(f'{t} {s:.2f}' for t, s in r['top3'])} | {'✓' if r['top1_ok'] else '✗'} | "
                     f"{'✓' if r['top3_ok'] else '✗'} | {c} |")
    return "\n".join(lines)


def main() -> int:
    from codec_assist.models import ModelUnavailable

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", default=str(ROOT / "samples" / "corpus.json"), help="ground-truth JSON")
    ap.add_argument("--media", default=str(ROOT / "samples" / "media"))
    ap.add_argument("--split", choices=tuple(SPLIT_CHOICES), default="all",
                    help="both = dev and test; all = every split (dev, test, test2, test3, test4, test5)")
    ap.add_argument("--cache", help="folder to keep each clip's analysis in (re-scoring without re-analysing)")
    ap.add_argument("--clips", nargs="*", help="only these clips")
    ap.add_argument("--clip-model", help="also match frames to the topics with this open_clip model (as `tag`)")
    weights = ap.add_mutually_exclusive_group()
    weights.add_argument("--clip-pretrained", help="open_clip pretrained tag (its weights already on this machine)")
    weights.add_argument("--clip-checkpoint", help="a CLIP checkpoint file")
    args = ap.parse_args()
    if (args.clip_pretrained or args.clip_checkpoint) and not args.clip_model:
        ap.error("--clip-pretrained/--clip-checkpoint need --clip-model")
    clip = None
    if args.clip_model:
        from codec_assist.tags.tagging import ClipSpec

        clip = ClipSpec(args.clip_model, args.clip_pretrained, args.clip_checkpoint)
    gt = load_gt(args.gt)
    if args.clips:
        gt = {k: v for k, v in gt.items() if k in args.clips}
    splits = SPLIT_CHOICES[args.split]
    try:
        result = evaluate(gt, Path(args.media), splits, Path(args.cache) if args.cache else None, clip=clip)
    except ModelUnavailable as e:
        print(f"tag_accuracy: {e}", file=sys.stderr)
        return 2
    print(markdown(result))
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tag_accuracy.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
