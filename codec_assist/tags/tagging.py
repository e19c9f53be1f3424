"""Topic tags for short videos (issue 5): multi-label tags with calibrated scores and their evidence,
per shot and for the whole video, WebVTT chapters, folder summaries, and the `tag` command.

How a tag is scored:
1. The analysis is run with the evidence analyzers (shots, faces, text, scene_stats and, where installed,
   imagenet, speech, audio). What is said in words is grouped by modality: visual (ImageNet classes),
   transcript (segments, keyphrases, and the whole transcript as one passage: its topic), on-screen text
   (OCR words). Each phrase weighs score x the fraction of the span it covers.
2. What is measured stays a number (issue 14, codec_assist/tags/scene_facts.py): brightness, darkness, blue light,
   detail, animation- and graphics-likeness, motion, static camera, text coverage, speech/music/singing share,
   faces, people, cut rate. Each topic's `requires`/`excludes` conditions are checked against these numbers:
   a topic a measurement contradicts is ruled out (score 0, ranked last, `ruled_out` names the measurement)
   and each met `requires` adds FACT_UNIT x how clearly it is met ("measured" evidence). These facts are never
   embedded as sentences: MiniLM put "bright well-lit scene" next to "night / low light".
3. Each word modality's phrases attend to each topic description: softmax over phrases of
   cos/TEMPERATURE + log(weight), so a topic is matched by its best, best-supported phrases, not the mean.
   A modality adds MODALITY_WEIGHT x presence x max(0, its similarity - its mean similarity over the whole
   taxonomy): only evidence that singles a topic out counts. `raw` is the sum over modalities and facts.
4. Calibration (heuristic, honest about it): score = 1 / (1 + exp(-CAL_SLOPE (raw - CAL_MID))), set by hand;
   FACT_UNIT and the conditions' thresholds were set on the corpus `dev` split (samples/corpus.json) only.
   Read scores as a ranking with a rough confidence, not as probabilities.
With CLIP weights (--clip-model/--clip-pretrained/--clip-checkpoint) frames of each shot are also matched to
"a video of <name>: <description>" in CLIP space; that modality adds CLIP_WEIGHT x z-score x CLIP_SCALE.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from codec_assist.errors import CodecAssistError, SchemaError
from codec_assist.media.subtitles import vtt_time
from codec_assist.schemas import (
    Analysis,
    PresetChoice,
    PresetTable,
    ShotTags,
    Tag,
    TagEvidence,
    TagReport,
    Taxonomy,
)

log = logging.getLogger("codec_assist")

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_TAXONOMY = DATA / "taxonomy.yaml"
DEFAULT_PRESETS = DATA / "presets.yaml"
MAX_DATA_BYTES = 1 << 20  # a taxonomy or preset table is a few KB; refuse anything absurd before parsing

# Analyzers whose output is evidence; the ones not installed on this branch/machine are skipped.
TAG_ANALYZERS = ("shots", "faces", "text", "scene_stats", "imagenet", "speech", "audio")
# Topics change slowly and held results cover the gaps; both still run early at a cut. OCR was the largest
# analyzer cost of tagging (0.7-0.9 s a clip at 1 s intervals under load).
TAG_ANALYZER_SETTINGS = {"text": {"interval_s": 2.0}}
TAG_FPS = 1.5  # analysis frames per second for tagging: topics change slowly; keeps tagging well under real time

TEMPERATURE = 0.02  # attention over a modality's phrases (support units): ~ a soft maximum
MODALITY_WEIGHT = {"visual": 1.0, "transcript": 1.0, "audio": 0.5, "on-screen text": 0.6}
FACT_UNIT = 0.2  # raw score a fully met `requires` condition adds (measured facts, scene_facts.py)
PART_MIN_SHARE = 0.25  # shots covering this share of a video can carry a topic the whole-video facts rule out
OTHER_MODALITY_WEIGHT = 0.5  # a source this module does not know yet
CLIP_WEIGHT, CLIP_SCALE = 1.5, 0.1  # CLIP z-scores brought to the range of MiniLM margins (~0.1 a std)
CAL_SLOPE, CAL_MID = 16.0, 0.3  # the heuristic calibration (see the module docstring)
WEIGHT_POWER = 0.75  # phrase weight -> support factor: sub-linear, a brief but clear cue still counts
BAG_SIZE = 6  # ImageNet classes joined into the "objects seen together" phrase
NAME_WEIGHT = 0.3  # keyphrases that are only names (proper nouns in the transcript) count this much
EVIDENCE_PHRASES = 3  # phrases shown per modality in a tag's evidence
TRANSCRIPT_CHARS = 1000  # the whole transcript as one passage (MiniLM reads its first ~256 word pieces)

SOURCE_MODALITY = {"imagenet": "visual", "transcript": "transcript", "keyphrase": "transcript",
                   "speech": "transcript", "subtitles": "transcript", "audio": "audio", "text": "on-screen text", "ocr": "on-screen text",
                   "faces": "faces", "scene_stats": "scene"}
AUDIO_SIGNAL_PHRASES = {"speech": "speech, a person talking", "music": "music playing",
                        "singing": "singing voice, a song"}
SKIP_SOURCES = {"shots", "transnetv2", "saliency"}  # structure and maps, not content words
# Measurements are numbers, checked against the topics' conditions (scene_facts.py), never matched as sentences:
# "bright well-lit scene" lands next to "night / low light" in MiniLM because both talk about light.
MEASURED_SOURCES = {"scene_stats", "faces", "faces_haar", "people", "person", "pose"}


# -------------------------------------------------------------------------------------- taxonomy files
MAX_NESTING = 64  # a taxonomy nests 3 levels, a preset table 4


def _nesting(text: str) -> int:
    """Deepest bracket nesting ([ and {, quotes not parsed: an over-estimate, which is the safe side)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def _read_structured(path: Path, what: str) -> object:
    """YAML or JSON from a user file, refusing the hostile kinds (huge, alias bombs, non-UTF-8) in one line."""
    import yaml

    try:
        size = path.stat().st_size
        if not path.is_file():
            raise CodecAssistError(f"{path}: not a file")
        if size > MAX_DATA_BYTES:
            raise SchemaError(f"{path}: {what} file is {size} bytes; more than {MAX_DATA_BYTES} is refused")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: {what} file is not UTF-8 text") from None
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror})") from None
    # PyYAML takes minutes over deeply nested flow collections ("[[[[..." 200 KB: ~8 min): refuse them first.
    if _nesting(text) > MAX_NESTING:
        raise SchemaError(f"{path}: {what} file is nested more than {MAX_NESTING} levels deep")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        # Aliases can expand a tiny file into a huge structure ("billion laughs"): a taxonomy needs none.
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise SchemaError(f"{path}: YAML aliases (*name) are not allowed in a {what} file")
        return yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, RecursionError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise SchemaError(f"{path}: not a valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                          f"{what} file{where}: {type(e).__name__}") from None


def _validate(cls, raw: object, path: Path):
    what = cls.kind
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: not a {what} file (top level is not a mapping)")
    version = cls.model_fields["version"].default
    if raw.get("version", version) != version:  # a newer writer's file may mean something else: refuse it
        raise SchemaError(f"{path}: {what} version {raw.get('version')!r} is not supported (this is {version})")
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise SchemaError(f"{path}: invalid {what}: {where}: {err['msg']}"[:400].replace("\n", " ")) from None


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The shipped short-video taxonomy, or a user's YAML/JSON file of the same shape."""
    from .scene_facts import check_topic_conditions

    p = Path(path) if path else DEFAULT_TAXONOMY
    taxonomy = _validate(Taxonomy, _read_structured(p, "taxonomy"), p)
    try:
        check_topic_conditions(taxonomy.topics)
    except ValueError as e:
        raise SchemaError(f"{p}: invalid taxonomy: {e}"[:400]) from None
    return taxonomy


def load_presets(path: str | Path | None = None, taxonomy: Taxonomy | None = None) -> PresetTable:
    p = Path(path) if path else DEFAULT_PRESETS
    table = _validate(PresetTable, _read_structured(p, "preset table"), p)
    if taxonomy is not None:
        missing = sorted({t.preset for t in taxonomy.topics if t.preset and t.preset not in table.presets})
        if missing:
            log.warning("taxonomy %s names preset(s) not in %s: %s (those topics choose nothing)",
                        taxonomy.name, p.name, ", ".join(missing))
    return table


# ------------------------------------------------------------------------------------------- evidence
Evidence = dict[str, dict[str, float]]  # modality -> phrase -> weight (score x covered fraction)


def face_phrase(area: float) -> str:
    """Faces said with their size: a face filling the frame means someone talking to the camera."""
    if area >= 0.04:
        return "close-up of a person's face"
    return "a person's face" if area >= 0.005 else "small faces of people in the distance"


def _phrase(token) -> tuple[str, str] | None:
    """(modality, phrase) for a region token, or None for tokens that are not content words."""
    if token.source in SKIP_SOURCES or token.source in MEASURED_SOURCES or not token.label.strip():
        return None
    modality = SOURCE_MODALITY.get(token.source, token.source)
    label = " ".join(token.label.split())[:200]
    if token.source == "faces":
        area = token.box.w * token.box.h if token.box is not None else 0.0
        return modality, face_phrase(area)
    if modality == "on-screen text" and label == "text":
        return None  # a box without words: its area is the text_area fact
    return modality, label


def proper_nouns(analysis: Analysis) -> set[str]:
    """Lower-cased words the transcript writes capitalised other than at a sentence start: names of people
    and places, which say little about a video's topic."""
    out: set[str] = set()
    for t in analysis.tokens:
        if SOURCE_MODALITY.get(t.source) == "transcript" and t.source != "keyphrase":
            words = t.label.split()
            for prev, w in zip(["."] + words, words):
                core = w.strip(".,!?;:\"'()")
                if core[:1].isupper() and core != "I" and not core.startswith("I'") and prev[-1:] not in ".!?":
                    out.add(core.lower())
    return out


def collect_evidence(analysis: Analysis, arrays: dict[str, np.ndarray], start: int, end: int,
                     whole_video: bool = False) -> Evidence:
    """Everything the analysis found in frames [start, end), in words, with weights in [0, 1]."""
    span = max(1, end - start)
    ev: Evidence = {}

    def add(modality: str, phrase: str, weight: float) -> None:
        if weight > 0:
            phrases = ev.setdefault(modality, {})
            phrases[phrase] = min(1.0, phrases.get(phrase, 0.0) + weight)

    names = proper_nouns(analysis)
    seen_in: dict[str, int] = {}  # ImageNet class -> how many classifier runs (held spans) named it
    runs: list[tuple[int, float, set[str]]] = []  # ImageNet tokens: (run start, weight, classes)
    for t in analysis.tokens:
        overlap = min(end, t.frame_end) - max(start, t.frame_start)
        said = _phrase(t) if overlap > 0 else None
        if not said:
            continue
        modality, phrase = said
        weight = t.score * overlap / span
        if t.source == "keyphrase" and set(phrase.lower().split()) <= names:
            weight *= NAME_WEIGHT  # "john pierce" says who, not what about (it matched basketball)
        if t.source == "imagenet":  # "racer, sports car, limousine": classes whose blobs coincided
            classes = [c.strip() for c in phrase.split(",") if c.strip()]
            for c in classes:
                add(modality, c, weight / len(classes))
                seen_in[c] = seen_in.get(c, 0) + 1
            runs.append((t.frame_start, weight, set(classes)))
        else:
            add(modality, phrase, weight)
    visual = ev.get("visual", {})
    if len(visual) > 1:
        # The objects seen together, as one phrase: "limousine, cab, minibus" reads as a street scene where
        # each word alone is weak (a sentence-level embedding of a bag of objects, like a crude caption).
        # Classes named again and again (in several shots, run after run) lead the bag: a class seen once for
        # a long time (bikes' 'beacon' in its first shot) is a single guess, cabs and limousines recurring over
        # five shots are what the video shows.
        ranked = sorted(visual, key=lambda p: (-seen_in.get(p, 0), -visual[p]))
        recurring = [p for p in ranked if seen_in.get(p, 0) > 1]
        top = (recurring if len(recurring) >= 3 else ranked)[:BAG_SIZE]
        # The bag weighs the time its objects are on screen (per classifier run, its best token naming one),
        # not the sum of its classes' split shares: five kinds of car over most of the clip is strong evidence.
        best: dict[int, float] = {}
        for run_start, weight, classes in runs:
            if classes & set(top):
                best[run_start] = max(best.get(run_start, 0.0), weight)
        add("visual", ", ".join(top), min(1.0, sum(best.values())))
    # The transcript's topic: everything said in the span as one passage (a sentence-level embedding of the
    # whole speech says what it is about where single segments are greetings or names).
    said = [t for t in analysis.tokens if t.source in ("transcript", "subtitles") and t.label.strip()
            and min(end, t.frame_end) > max(start, t.frame_start)]
    if len(said) > 1:
        passage = " ".join(" ".join(t.label.split()) for t in said)[:TRANSCRIPT_CHARS]
        covered = sum(min(end, t.frame_end) - max(start, t.frame_start) for t in said) / span
        add("transcript", passage, min(1.0, covered))
    # speech / music / singing shares, faces, brightness, motion and the cut rate are measured facts
    # (scene_facts.measure), scored against each topic's conditions as numbers, not as phrases here.
    return ev


def _segment_frames(seg, fps: float) -> tuple[int, int]:
    """An audio segment's span in frames, whichever way it is given (frames or seconds)."""
    if getattr(seg, "frame_start", None) is not None:
        return int(seg.frame_start), int(seg.frame_end)
    t0 = getattr(seg, "start", None) if getattr(seg, "start", None) is not None else getattr(seg, "t0", 0.0)
    t1 = getattr(seg, "end", None) if getattr(seg, "end", None) is not None else getattr(seg, "t1", t0)
    return int(round(float(t0) * fps)), int(round(float(t1) * fps))


# ------------------------------------------------------------------------------------------- matching
_PHRASES: dict[str, np.ndarray] = {}  # phrase -> MiniLM vector, kept for the process (phrases repeat a lot)


def embed_phrases(phrases: list[str]) -> np.ndarray:
    """MiniLM vectors of `phrases`, embedding only the ones not seen before, in one batch (each call to the
    model costs ~0.1-0.5 s of overhead on 2 busy cores, whatever the batch)."""
    from codec_assist.models import embed_texts

    new = [p for p in dict.fromkeys(phrases) if p not in _PHRASES]
    if new:
        _PHRASES.update(zip(new, embed_texts(new)))
    return np.stack([_PHRASES[p] for p in phrases]) if phrases else np.zeros((0, 384), np.float32)


@dataclass
class TopicSpace:
    """A taxonomy embedded once: topic vectors in the language space (and CLIP text vectors when given)."""

    taxonomy: Taxonomy
    vectors: np.ndarray  # (T, 384)
    clip_text: np.ndarray | None = None  # (T, d)


def topic_text(topic) -> str:
    return f"{topic.name}: {topic.description}"


@functools.lru_cache(maxsize=4)
def _topic_vectors(key: str, texts: tuple[str, ...]) -> np.ndarray:
    from codec_assist.models import embed_texts

    return embed_texts(list(texts))


def topic_space(taxonomy: Taxonomy) -> TopicSpace:
    try:  # transformers draws a "Loading weights" bar on stderr when MiniLM loads; tags print their own output
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    texts = tuple(topic_text(t) for t in taxonomy.topics)
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return TopicSpace(taxonomy=taxonomy, vectors=_topic_vectors(key, texts))


def modality_scores(space: TopicSpace, phrases: dict[str, float]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """How much one modality's phrases single out each topic.

    A phrase's support for a topic is its cosine to the topic minus its mean cosine over the whole taxonomy
    (a phrase like "speech" that resembles every topic a little supports none much), times weight**WEIGHT_POWER (a
    phrase heard for a moment counts less than one present throughout). A soft maximum over the phrases
    (attention, temperature TEMPERATURE) pools them: a topic is carried by its best phrases, not diluted by
    the others. Returns (support (T,), attention (P, T), phrases, cosines (P, T))."""
    names = list(phrases)
    w = np.array([phrases[p] for p in names], np.float64)[:, None] ** WEIGHT_POWER
    cos = embed_phrases(names).astype(np.float64) @ space.vectors.T.astype(np.float64)  # (P, T)
    support = w * np.maximum(0.0, cos - cos.mean(axis=1, keepdims=True))
    att = np.exp((support - support.max(axis=0, keepdims=True)) / TEMPERATURE)
    att /= att.sum(axis=0, keepdims=True)
    return (att * support).sum(axis=0), att, names, cos


def calibrate(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-CAL_SLOPE * (np.asarray(raw, np.float64) - CAL_MID)))


def topic_verdict(topic, facts: dict[str, float], parts: list[tuple[dict[str, float], float, str]] = ()):
    """A topic's conditions against the measured facts (and, for a multi-shot video, its shots'; see
    score_topics): (verdict, support, met conditions in words, their strengths)."""
    from .scene_facts import judge

    verdict = judge(topic.requires, topic.excludes, facts)
    support, met = verdict.support, [c for c, _ in verdict.met or []]
    strengths = [s for _, s in verdict.met or []]
    if len(parts) > 1:
        held = [(share, v, name) for f, share, name in parts
                if not (v := judge(topic.requires, topic.excludes, f)).ruled_out and v.met]
        share = sum(h[0] for h in held)
        part_support = sum(h[0] * h[1].support for h in held)
        if held and (part_support > support or verdict.ruled_out) and share >= PART_MIN_SHARE:
            biggest = max(held, key=lambda h: h[0])
            support, verdict = part_support, biggest[1]
            strengths = [s for _, s in biggest[1].met]
            met = [f"{', '.join(h[2] for h in held)} ({share:.0%} of the video)"] + [c for c, _ in biggest[1].met]
    return verdict, support, met, strengths


def score_topics(space: TopicSpace, evidence: Evidence, clip_sims: np.ndarray | None = None,
                 clip_note: str = "", facts: dict[str, float] | None = None,
                 parts: list[tuple[dict[str, float], float, str]] = ()) -> list[Tag]:
    """All topics scored (best first), each with the evidence of every modality that added to it.

    `facts` (scene_facts.measure) are checked against each topic's `requires`/`excludes`: a topic a
    measurement contradicts is ruled out (score 0, ranked after every other, `ruled_out` says which
    measurement), and each met `requires` adds FACT_UNIT x how clearly it is met.
    `parts` (video level of a multi-shot video: each shot's facts, its share of the video, its name): a video
    is also what its shots are. A topic the whole-video facts rule out still stands when shots covering at
    least PART_MIN_SHARE of the video meet its conditions (a talking head between street shots), with their
    support weighed by their share; its evidence names those shots."""
    topics = space.taxonomy.topics
    raw = np.zeros(len(topics))
    per_topic: list[list[TagEvidence]] = [[] for _ in topics]
    ruled_out = [""] * len(topics)
    for k, t in enumerate(topics):
        if facts is None or not (t.requires or t.excludes):
            continue
        verdict, support, met, strengths = topic_verdict(t, facts, parts)
        ruled_out[k] = verdict.ruled_out
        if met and not verdict.ruled_out:
            add = FACT_UNIT * support
            raw[k] += add
            per_topic[k].append(TagEvidence(modality="measured", tokens=met,
                                            similarity=round(float(np.mean(strengths)), 4), contribution=round(add, 4)))
    for modality, phrases in sorted(evidence.items()):
        if not phrases:
            continue
        support, att, names, cos = modality_scores(space, phrases)
        alpha = MODALITY_WEIGHT.get(modality, OTHER_MODALITY_WEIGHT)
        raw += alpha * support
        for k in np.flatnonzero(support > 1e-3):
            order = np.argsort(-att[:, k])[:EVIDENCE_PHRASES]
            per_topic[k].append(TagEvidence(
                modality=modality, tokens=[names[i] for i in order if att[i, k] > 0.1] or [names[order[0]]],
                similarity=round(float(cos[order[0], k]), 4), contribution=round(float(alpha * support[k]), 4)))
    if clip_sims is not None and len(clip_sims):
        sim = clip_sims.mean(axis=0)  # (T,) over the frames
        z = (sim - sim.mean()) / (sim.std() + 1e-6)
        add = CLIP_WEIGHT * CLIP_SCALE * np.maximum(0.0, z)
        raw += add
        for k in np.flatnonzero(add > 0):
            per_topic[k].append(TagEvidence(modality="clip", tokens=[clip_note], similarity=round(float(sim[k]), 4),
                                            contribution=round(float(add[k]), 4)))
    scores = calibrate(raw)
    tags = [Tag(id=t.id, name=t.name, score=0.0 if why else round(float(s), 4), raw=round(float(r), 4),
                evidence=sorted(e, key=lambda x: -x.contribution), ruled_out=why)
            for t, s, r, e, why in zip(topics, scores, raw, per_topic, ruled_out)]
    order = sorted(range(len(tags)), key=lambda k: (bool(ruled_out[k]), -raw[k], topics[k].id))  # unrounded raw
    return [tags[k] for k in order]


# --------------------------------------------------------------------------------------------- CLIP
@dataclass
class ClipSpec:
    model: str
    pretrained: str | None = None
    checkpoint: str | None = None

    def describe(self) -> str:
        return f"{self.model} ({self.checkpoint or self.pretrained or 'random init'})"


def clip_frames(path: str | Path, analysis: Analysis, per_shot: int = 2) -> dict[int, list[np.ndarray]]:
    """A few RGB frames per shot (evenly inside it) for CLIP, decoded at 256 px wide: shot index -> frames."""
    import codec_assist.media.decode as media

    wanted: dict[int, int] = {}
    for k, s in enumerate(analysis.shots):
        n = s.end_frame - s.start_frame
        for j in range(per_shot):
            wanted[s.start_frame + int((j + 0.5) * n / per_shot)] = k
    info = analysis.video
    size = media.proxy_size(info.width, info.height, 256)
    out: dict[int, list[np.ndarray]] = {}
    last = max(wanted)
    for i, _frame, proxy in media.iter_proxy(path, size):
        if i in wanted:
            out.setdefault(wanted[i], []).append(proxy.bgr[..., ::-1].copy())
        if i >= last:
            break
    return out


def clip_similarities(spec: ClipSpec, space: TopicSpace, frames: dict[int, list[np.ndarray]]) -> dict[int, np.ndarray]:
    """Shot index -> (frames, T) cosine similarities of its frames to the topics, in CLIP space."""
    import cv2
    import torch

    from codec_assist import models

    clip = models.clip_model(spec.model, spec.pretrained, spec.checkpoint)
    if space.clip_text is None:
        space.clip_text = models.clip_embed_texts(clip, [f"a video of {t.name}: {t.description}"
                                                         for t in space.taxonomy.topics])
    mean, std = np.array(clip.mean, np.float32), np.array(clip.std, np.float32)

    def prepare(rgb: np.ndarray) -> np.ndarray:  # CLIP's own transform: short side to size, centre crop
        h, w = rgb.shape[:2]
        k = clip.image_size / min(h, w)
        im = cv2.resize(rgb, (max(clip.image_size, round(w * k)), max(clip.image_size, round(h * k))),
                        interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        y, x = (im.shape[0] - clip.image_size) // 2, (im.shape[1] - clip.image_size) // 2
        im = im[y:y + clip.image_size, x:x + clip.image_size].astype(np.float32) / 255.0
        return ((im - mean) / std).transpose(2, 0, 1)

    out = {}
    with torch.no_grad():
        for k, imgs in frames.items():
            batch = torch.from_numpy(np.stack([prepare(im) for im in imgs]))
            iv = torch.nn.functional.normalize(clip.model.encode_image(batch).float(), dim=-1).numpy()
            out[k] = iv @ space.clip_text.T
    return out


# --------------------------------------------------------------------------------------------- tagging
def tag_analysis(analysis: Analysis, arrays: dict[str, np.ndarray], taxonomy: Taxonomy,
                 clip: dict[int, np.ndarray] | None = None, clip_note: str = "") -> tuple[list[Tag], list[ShotTags], list[str]]:
    """Video-level tags (evidence pooled over the whole clip, each phrase weighted by the time it covers)
    and per-shot tags (the same scoring on each shot's span)."""
    return tag_analysis_facts(analysis, arrays, taxonomy, clip, clip_note)[:3]


def tag_analysis_facts(analysis: Analysis, arrays: dict[str, np.ndarray], taxonomy: Taxonomy,
                       clip: dict[int, np.ndarray] | None = None, clip_note: str = ""
                       ) -> tuple[list[Tag], list[ShotTags], list[str], dict[str, float]]:
    """tag_analysis and the video's measured facts (scene_facts.measure) the conditions were checked against."""
    from .scene_facts import measure

    space = topic_space(taxonomy)
    n = analysis.video.frame_count
    evidence = collect_evidence(analysis, arrays, 0, n, whole_video=True)
    shot_evidence = [collect_evidence(analysis, arrays, s.start_frame, s.end_frame) for s in analysis.shots]
    embed_phrases([p for ev in [evidence, *shot_evidence] for phrases in ev.values() for p in phrases])
    all_clip = np.concatenate(list(clip.values())) if clip else None
    facts = measure(analysis, arrays, 0, n)
    fps = analysis.video.fps
    per_shot = [measure(analysis, arrays, s.start_frame, s.end_frame) for s in analysis.shots]
    parts = [(f, (s.end_frame - s.start_frame) / max(1, n), f"shot {k + 1} ({s.start_frame / fps:.1f}-{s.end_frame / fps:.1f} s)")
             for k, (s, f) in enumerate(zip(analysis.shots, per_shot))]
    video_tags = score_topics(space, evidence, all_clip, clip_note, facts, parts)
    shots = []
    for k, (s, ev) in enumerate(zip(analysis.shots, shot_evidence)):
        shot_facts = per_shot[k]
        shots.append(ShotTags(start_frame=s.start_frame, end_frame=s.end_frame, start=round(s.start_frame / fps, 3),
                              end=round(s.end_frame / fps, 3), facts=shot_facts,
                              tags=score_topics(space, ev, clip.get(k) if clip else None, clip_note, shot_facts)))
    modalities = sorted(evidence) + (["measured"] if facts else []) + (["clip"] if clip else [])
    return video_tags, shots, modalities, facts


def tag_options(analysis_fps: float = TAG_FPS, proxy_width: int = 320, names: list[str] | None = None):
    import analyzers

    from codec_assist.analysis.pipeline import AnalyzeOptions

    names = [n for n in (names or TAG_ANALYZERS) if n in analyzers.ANALYZERS]
    return AnalyzeOptions(analyzers=names, analysis_fps=analysis_fps, proxy_width=proxy_width,
                          analyzer_settings={k: v for k, v in TAG_ANALYZER_SETTINGS.items() if k in names})


def tag_video(path: str | Path, taxonomy: Taxonomy | None = None, *, options=None, top: int = 5,
              clip: ClipSpec | None = None, progress: bool = False, limits=None) -> TagReport:
    import codec_assist.media.decode as media
    from codec_assist.analysis.pipeline import analyze

    t0 = time.perf_counter()
    taxonomy = taxonomy or load_taxonomy()
    analysis, arrays = analyze(path, options or tag_options(), progress=progress,
                               limits=limits or media.DEFAULT_LIMITS)
    seconds_analysis = time.perf_counter() - t0
    sims, note = None, ""
    if clip is not None:
        space = topic_space(taxonomy)
        sims = clip_similarities(clip, space, clip_frames(path, analysis))
        note = f"{clip.describe()}: frames vs topic text"
    video_tags, shots, modalities, facts = tag_analysis_facts(analysis, arrays, taxonomy, sims, note)
    for s in shots:
        s.tags = live_tags(s.tags)[:top]
    return TagReport(input=analysis.video, taxonomy=taxonomy.name, tags=live_tags(video_tags)[:top], shots=shots,
                     facts=facts, ruled_out=ruled_out_shown(video_tags),
                     modalities=modalities, clip=clip.describe() if clip else None,
                     seconds=time.perf_counter() - t0, seconds_analysis=seconds_analysis,
                     analyzer_seconds={r.name: round(r.seconds, 3) for r in analysis.analyzers})


RULED_OUT_SHOWN = 3  # ruled-out topics kept in a report (those the words alone would have ranked highest)


def live_tags(tags: list[Tag]) -> list[Tag]:
    """The tags no measurement ruled out, best first."""
    return [t for t in tags if not t.ruled_out]


def ruled_out_shown(tags: list[Tag]) -> list[Tag]:
    """The ruled-out topics the other evidence would have ranked highest: the report shows which measurement
    ruled each out."""
    out = sorted((t for t in tags if t.ruled_out), key=lambda t: -t.raw)[:RULED_OUT_SHOWN]
    return [t for t in out if t.raw > 0]


# ------------------------------------------------------------------------------------ presets (apply)
def auto_preset(path: str | Path, analyze_options, plan_options, *, taxonomy: Taxonomy | None = None,
                table: PresetTable | None = None, keep: frozenset[str] = frozenset(), progress: bool = False,
                limits=None) -> tuple[object, object, list[PresetChoice], TagReport]:
    """Tag the video, let the preset table choose settings, and return the updated (analyze, plan) options.
    Settings named in `keep` (the user set them) are left alone."""
    from policies.presets import choose, split

    taxonomy = taxonomy or load_taxonomy()
    table = table or load_presets(taxonomy=taxonomy)
    report = tag_video(path, taxonomy, top=len(taxonomy.topics), progress=progress, limits=limits)
    presets = {t.id: t.preset for t in taxonomy.topics}
    choices = choose([(t.id, t.score) for t in report.tags], presets, table, keep)
    plan_updates, weights = split(choices)
    analyze_options = analyze_options.model_copy(update={"weights": {**analyze_options.weights, **weights}})
    plan_options = plan_options.model_copy(update=plan_updates)
    report.tags = report.tags[:5]
    return analyze_options, plan_options, choices, report


def describe_choices(choices: list[PresetChoice]) -> str:
    if not choices:
        return "auto-preset: no tag reached the table's min_score; defaults kept"
    return "auto-preset: " + ", ".join(f"{c.setting}={c.value:g} ({c.tag} {c.score:.2f})" for c in choices)


# ------------------------------------------------------------------------------------------- outputs
def chapters_vtt(report: TagReport, top: int = 3) -> str:
    """WebVTT chapters: one cue per shot, titled with its top tags."""
    lines = ["WEBVTT", "", f"NOTE codec-assist tags ({report.taxonomy}) for {Path(report.input.path).name}", ""]
    for k, s in enumerate(report.shots, 1):
        title = ", ".join(f"{t.name} {t.score:.2f}" for t in live_tags(s.tags)[:top]) or "untagged"
        title = title.replace("-->", "->").replace("&", "&amp;").replace("<", "&lt;")
        end = s.end if s.end > s.start else s.start + 0.001
        lines += [f"shot-{k}", f"{vtt_time(s.start)} --> {vtt_time(end)}", f"Shot {k}: {title}", ""]
    return "\n".join(lines)


def format_report(report: TagReport, top: int) -> str:
    v = report.input
    lines = [f"{Path(v.path).name}: {v.duration:.1f} s, evidence from {', '.join(report.modalities) or 'nothing'}"
             f" (tagged in {report.seconds:.2f} s)"]
    for t in live_tags(report.tags)[:top]:
        lines.append(f"  {t.score:5.2f}  {t.name} [{t.id}]")
        for e in t.evidence[:3]:
            lines.append(f"         {e.modality}: " + ", ".join(f"'{p}'" for p in e.tokens))
    for t in report.ruled_out:
        lines.append(f"  ruled out: {t.name} [{t.id}]: {t.ruled_out}")
    if report.facts:
        lines.append("  measured: " + ", ".join(f"{k} {v:.3g}" for k, v in report.facts.items()))
    if len(report.shots) > 1:
        for k, s in enumerate(report.shots, 1):
            lines.append(f"  shot {k} {s.start:6.2f}-{s.end:6.2f} s: "
                         + ", ".join(f"{t.name} {t.score:.2f}" for t in s.tags[:3] if not t.ruled_out))
    return "\n".join(lines)


SUMMARY_FIELDS = ("file", "duration_s", "shots", "tag_1", "score_1", "tag_2", "score_2", "tag_3", "score_3",
                  "evidence_1", "modalities", "seconds", "error")


def summary_row(path: Path, report: TagReport | None, error: str = "") -> dict[str, object]:
    row: dict[str, object] = {k: "" for k in SUMMARY_FIELDS}
    row["file"], row["error"] = path.name, error
    if report is not None:
        row.update(duration_s=round(report.input.duration, 3), shots=len(report.shots),
                   modalities=" ".join(report.modalities), seconds=round(report.seconds, 3))
        tags = live_tags(report.tags)
        for i, t in enumerate(tags[:3], 1):
            row[f"tag_{i}"], row[f"score_{i}"] = t.id, t.score
        if tags and tags[0].evidence:
            e = tags[0].evidence[0]
            row["evidence_1"] = f"{e.modality}: " + ", ".join(e.tokens)
    return row


def summary_csv(rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        # A file name starting with = + - @ would be a formula in a spreadsheet: quote it as text.
        w.writerow({k: ("'" + v if isinstance(v, str) and v.startswith(("=", "+", "-", "@")) else v)
                    for k, v in r.items()})
    return buf.getvalue()


def tag_folder(folder: str | Path, summary: str | Path, taxonomy: Taxonomy | None = None, *, options=None,
               top: int = 5, clip: ClipSpec | None = None, outdir: str | Path | None = None,
               overwrite: bool = False, limits=None, on_video=None) -> tuple[list[dict[str, object]], int]:
    """Tag every video in `folder` (not recursive): a summary CSV (+ a JSON twin beside it) and, with
    `outdir`, a report and WebVTT chapters per video. A video that cannot be tagged is a row with its error.
    `on_video(i, n, path, report_or_None)` is called after each. Returns (summary rows, failed count)."""
    import codec_assist.media.decode as media
    from codec_assist import schemas
    from codec_assist.media.safeio import atomic_write_bytes, check_output

    folder = Path(folder)
    taxonomy = taxonomy or load_taxonomy()
    summary = check_output(summary, overwrite=overwrite)
    summary_json = summary.with_suffix(".json")
    out = Path(outdir) if outdir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise CodecAssistError(f"output {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in media.VIDEO_SUFFIXES)
    if not videos:
        raise CodecAssistError(f"{folder}: no video files ({', '.join(sorted(media.VIDEO_SUFFIXES))})")
    rows, reports, failed = [], [], 0
    for i, v in enumerate(videos, 1):
        try:
            report = tag_video(v, taxonomy, options=options, top=top, clip=clip, limits=limits)
        except CodecAssistError as e:
            failed += 1
            rows.append(summary_row(v, None, str(e)))
            reports.append({"file": v.name, "error": str(e)})
            if on_video:
                on_video(i, len(videos), v, None)
            continue
        rows.append(summary_row(v, report))
        reports.append({"file": v.name, "report": report.model_dump(mode="json", by_alias=True)})
        if out is not None:
            schemas.save(report, out / f"{v.stem}.tags.json")
            atomic_write_bytes(out / f"{v.stem}.chapters.vtt", chapters_vtt(report).encode())
        if on_video:
            on_video(i, len(videos), v, report)
    atomic_write_bytes(summary, summary_csv(rows).encode())
    atomic_write_bytes(summary_json, (json.dumps({"schema": "codec-assist/tag-summary", "version": 1,
                                                  "taxonomy": taxonomy.name, "videos": reports}, indent=2)
                                      + "\n").encode())
    return rows, failed
