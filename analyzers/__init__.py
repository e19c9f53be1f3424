"""Analyzers: one module per signal, each behind analyzers.base.Analyzer."""
from __future__ import annotations

from dataclasses import dataclass, field

from codec_assist.errors import CodecAssistError

from .audio import AudioSignals
from .base import Analyzer
from .clip import ClipPatches
from .faces import BlazeFaces, HaarFaces
from .imagenet import ImageNetRegions
from .people import PeopleRegions
from .saliency import ClassicalSaliency
from .scene_stats import SceneStats
from .shots import SceneDetectShots, TransNetV2Shots
from .speech import SpeechTranscript
from .subtitles import Subtitles
from .text import TextRegions

@dataclass(frozen=True)
class Registration:
    """An analyzer's entry: adding an analyzer is its module and one line here."""

    cls: type[Analyzer]
    weight: float | None = None  # default fusion weight of its region maps (None: it feeds no map)
    default: bool = False  # runs unless --analyzers names another set
    options: dict = field(default_factory=dict)  # default constructor options (a caller's options win)


# Default order matters only for the order analyzers run in; speech and audio skip cleanly (status "skipped")
# on a video without audio; subtitles join on their own when a file is given or the container has a text
# subtitle stream (pipeline._audio_text_setup); scene_stats describes the scene in words, for tags.
REGISTRY: dict[str, Registration] = {r.cls.name: r for r in (
    Registration(SceneDetectShots, default=True),
    Registration(TransNetV2Shots),
    Registration(ClassicalSaliency, weight=0.5, default=True),
    Registration(BlazeFaces, weight=1.0, default=True),  # BlazeFace, tracked (issue 14)
    Registration(HaarFaces, weight=1.0),  # the earlier default: OpenCV only, weaker on small/turned faces
    # person masks (issue 14 part 5): opt-in, see analyzers/people.py and docs/BENCHMARKS.md for why
    Registration(PeopleRegions, weight=0.3),
    Registration(TextRegions, weight=0.8, default=True),
    Registration(ImageNetRegions, weight=0.0, default=True),  # its blobs count where a query attends to them
    Registration(ClipPatches, weight=0.0),  # likewise
    Registration(SpeechTranscript, default=True),
    Registration(AudioSignals, default=True),
    Registration(Subtitles),
    Registration(SceneStats),
)}
ANALYZERS: dict[str, type[Analyzer]] = {name: r.cls for name, r in REGISTRY.items()}
DEFAULT = [name for name, r in REGISTRY.items() if r.default]
FUSION_WEIGHTS = {name: r.weight for name, r in REGISTRY.items() if r.weight is not None}


def build(names: list[str], **options) -> list[Analyzer]:
    """Instantiate analyzers by name. `options` maps an analyzer name to its constructor kwargs,
    e.g. build(["text"], text={"interval_s": 2.0})."""
    unknown = [n for n in names if n not in ANALYZERS]
    if unknown:
        raise CodecAssistError(f"unknown analyzer {', '.join(unknown)} (valid: {', '.join(ANALYZERS)})")
    bad = [k for k in options if k not in names]
    if bad:
        raise CodecAssistError(f"options given for analyzer(s) not selected: {', '.join(bad)}")
    built = []
    for n in names:
        try:
            built.append(ANALYZERS[n](**{**REGISTRY[n].options, **options.get(n, {})}))
        except TypeError as e:  # a misspelt option: say which analyzer, in one line
            raise CodecAssistError(f"analyzer {n}: {e}") from None
    return built
