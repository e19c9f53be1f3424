"""Analyzers: one module per signal, each behind analyzers.base.Analyzer."""
from __future__ import annotations

from codec_assist.errors import CodecAssistError

from .audio import AudioSignals
from .base import Analyzer
from .clip import ClipPatches
from .faces import HaarFaces
from .imagenet import ImageNetRegions
from .saliency import ClassicalSaliency
from .scene_stats import SceneStats
from .shots import SceneDetectShots, TransNetV2Shots
from .speech import SpeechTranscript
from .subtitles import Subtitles
from .text import TextRegions

ANALYZERS: dict[str, type[Analyzer]] = {
    cls.name: cls for cls in (SceneDetectShots, TransNetV2Shots, ClassicalSaliency, HaarFaces, TextRegions,
                              SpeechTranscript, AudioSignals, Subtitles, ImageNetRegions, ClipPatches)
}
ANALYZERS[SceneStats.name] = SceneStats  # issue 5: scene statistics in words, for tags
# speech and audio skip cleanly (status "skipped") on a video without audio; subtitles join on their own
# when a file is given or the container has a text subtitle stream (pipeline._audio_text_setup)
DEFAULT = ["shots", "saliency", "faces", "text", "imagenet", "speech", "audio"]


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
            built.append(ANALYZERS[n](**options.get(n, {})))
        except TypeError as e:  # a misspelt option: say which analyzer, in one line
            raise CodecAssistError(f"analyzer {n}: {e}") from None
    return built
