"""Fusion: analyzer maps, region tokens, text queries and temporal signals -> one ImportanceMap per analysis frame.

Cross-modal attention (DESIGN.md). Queries are text: the user's focus prompts and the transcript-like tokens
(box None, source transcript / subtitles / keyphrase / tag; weight = their salience score, times speech activity
where a `speech` signal exists). Keys are each frame's region tokens (faces, text lines, ImageNet CAM blobs,
CLIP patches), compared in the embedding space they carry: MiniLM for words (labels embedded here, once per
unique label, only when a query exists), or the CLIP joint space for CLIP patches. Per frame and per query,
attention = softmax over that frame's regions plus a "nothing here" key at a fixed similarity, at a temperature,
with the region's confidence as a prior; a region's relevance is the probabilistic OR of the attention it gets
from every query (weighted). Relevance is painted on the grid over the region's box.

The grid is a probabilistic OR, imp = 1 - prod(1 - w_i * m_i): the saliency map is the floor, faces and text
are region priors (their maps), attention adds the query-relevant regions. Bounded in [0, 1], a strong cue is
not diluted by weak ones; with no query this is exactly the weighted OR of the first version.
Per-moment weight: the signals `speech`, `loudness_norm`, `sentiment` (|value|), `onset`, `text_onset` where present,
and focus prompts matching a transcript-like token (same attention, over the tokens live at that frame) scale the frame
scalar: scalar = spatial scalar * (MOMENT_FLOOR + (1 - MOMENT_FLOOR) * moment weight) when any time signal exists.
Every frame keeps its top tokens with the weight each added and the query that attended to it (the *why*).

A user's `--focus` outranks the defaults (DESIGN.md "What a bit costs"). Focus prompts are attended apart from the
transcript-like queries: a region whose focus relevance reaches FOCUS_MATCH is painted at the top of the scale (1),
weaker ones at their relevance, and while a focus matches in a frame everything else in that frame (saliency, face and
text priors, transcript attention) is scaled by (1 - FOCUS_DAMPING * match). The QP policy spends bits on importance
*differences* (and, since issue 15 part 1, only on what stands above its roi_threshold), so raising the focus alone
would leave it level with a face at 1; damping the rest keeps a face above a flat wall, and still a partial region of
interest, but below what the user asked for. A prompt that reaches FOCUS_MATCH nowhere in the video (no region, nothing
said) is reported in one warning line and weighs nothing: the map is as without it.
"""
from __future__ import annotations

import bisect
import functools
import logging
import re
from dataclasses import dataclass, field

import numpy as np

from analyzers import FUSION_WEIGHTS
from codec_assist.framestore import FrameStack, FrameStore
from codec_assist.models import TEXT_SPACE, ModelUnavailable, embed_cached
from codec_assist.schemas import Box, FocusPrompt, FusionQuery, RegionToken

log = logging.getLogger("codec_assist")

METHOD = "cross-modal-attention"
# Map weights (the OR above). "attention" weighs the query-relevance map; imagenet/clip maps are not priors by
# default: a class the net guesses is not by itself a reason to spend bits; a query makes it one.
# each analyzer's map weight comes with its registration (analyzers.REGISTRY); "attention" weighs the attended map
DEFAULT_WEIGHTS = {**FUSION_WEIGHTS, "attention": 1.0}
# Region priors: how much a token of this source weighs with no query (for the top-token ranking).
PRIOR_SOURCES = ("faces", "faces_haar", "people", "text")
QUERY_SOURCES = ("transcript", "subtitles", "keyphrase", "tag")  # box-None tokens that act as queries
# MiniLM cosine similarities measured on the ImageNet labels (tests/test_semantic_fusion.py): "bicycle" vs
# "mountain bike" 0.61, "tricycle" 0.63, but "sports car" 0.51, "minibus" 0.39, "face" 0.22. A region must beat
# NULL_SIMILARITY to take attention from "nothing here"; TEMPERATURE 0.025 makes 0.05 of cosine an e^2 ratio.
TEMPERATURE = 0.025
MOMENT_FLOOR = 0.5  # a silent, still moment keeps half the importance of what it shows
NULL_SIMILARITY = 0.55
CLIP_TEMPERATURE = 0.01  # CLIP's own logit scale (100)
# text_onset: a line of text just appeared (analyzers.text), as much a moment as speech: the viewer reads it now
SIGNAL_WEIGHTS = {"speech": 0.3, "loudness_norm": 0.2, "sentiment": 0.3, "onset": 0.2, "text_onset": 0.3}
SOUND_EVENT_SIGNALS = ("loudness_norm", "onset")  # a loud or sudden sound: a moment where it is not music
FOCUS_MOMENT_WEIGHT = 0.8  # how far a focus prompt that matches what is said raises that moment
TOP_K = 5
# Focus attention at or above this is a match (MiniLM, measured on jwpIntro's "bookcase, library" token: "the
# bookshelf behind him" 0.41, "the books" 0.23, "bookshelf" 0.99; "his shirt" 0.01, "the window" 0.00, nonsense 0.00;
# on bikes, "bicycle" gives ImageNet's car classes up to 0.13).
FOCUS_MATCH = 0.2
# share of the other importance taken away in a frame where a focus fully matches: a face (1) drops to 0.65, still
# a partial region of interest under the QP policy's roi_threshold 0.5, but below the focus (measured on jwpIntro
# with that policy: 0.5 gave the books +2.8..+3.8 dB and the face -2.0 dB, 0.35 the books +2.7..+3.5, the face -1.4)
FOCUS_DAMPING = 0.35


@dataclass
class Fused:
    scalar: np.ndarray  # (N,) in [0, 1]
    grid: np.ndarray  # (N, gh, gw) in [0, 1]: a FrameStack (per frame in a FrameStore, spilled when long)
    temporal: np.ndarray  # (N,) the per-moment weight in [0, 1]
    top_tokens: list[list[int]]
    top_weights: list[list[float]]
    top_queries: list[list[int]]
    queries: list[FusionQuery] = field(default_factory=list)
    method: str = METHOD
    seconds: float = 0.0  # the fusion's wall time (set by the pipeline)


# ------------------------------------------------------------------------------------ the attention math
def attention(sim: np.ndarray, temperature: float = TEMPERATURE, null: float | np.ndarray = NULL_SIMILARITY,
              prior: np.ndarray | None = None) -> np.ndarray:
    """(Q, K) similarities -> (Q, K) attention weights: per query a softmax over the K keys and one "nothing
    here" key of similarity `null`, logits / temperature, plus log(prior) per key. Rows sum to < 1; the rest is
    the weight of "nothing here", so a query that matches nothing lights nothing."""
    sim = np.asarray(sim, np.float64)
    q, k = sim.shape
    if k == 0:
        return np.zeros((q, 0), np.float32)
    logits = np.concatenate([sim, np.broadcast_to(np.asarray(null, np.float64).reshape(-1, 1), (q, 1))], 1)
    logits = logits / temperature
    if prior is not None:
        logits[:, :k] += np.log(np.clip(np.asarray(prior, np.float64), 1e-6, 1.0))[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True))[:, :k].astype(np.float32)


def combine(attn: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-key relevance from (Q, K) attention and (Q,) query weights in [0, 1]: 1 - prod_q(1 - w_q a_qk)."""
    if attn.size == 0:
        return np.zeros(attn.shape[1], np.float32)
    return (1.0 - np.prod(1.0 - np.clip(weights[:, None] * attn, 0, 1), axis=0)).astype(np.float32)


def frame_scalar(grid: np.ndarray) -> np.ndarray:
    """How much a frame matters overall: the mean of its top-decile cells."""
    flat = grid.reshape(len(grid), -1)
    if flat.shape[1] == 0:
        return np.zeros(len(grid), np.float32)
    k = max(1, flat.shape[1] // 10)
    return np.sort(flat, axis=1)[:, -k:].mean(axis=1).astype(np.float32)


@functools.lru_cache(maxsize=4096)  # the same labels and queries come back every frame
def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3)


def lexical_match(query: str, label: str) -> bool:
    """All of the query's words (3+ letters) occur in the label: OCR text or a transcript says it literally."""
    q = _words(query)
    return bool(q) and q <= _words(label)


def similarity(queries: list[str], q_emb: np.ndarray, labels: list[str], k_emb: np.ndarray,
               split_labels: bool = True) -> np.ndarray:
    """(Q, K) cosine similarity, raised to 1 where the label says the query literally. A comma-joined label (an
    ImageNet token "moped, unicycle, mountain bike") scores its best part: the mean of the parts blurs them."""
    sim = q_emb @ k_emb.T if len(q_emb) and len(k_emb) else np.zeros((len(queries), len(labels)), np.float32)
    if split_labels:
        parts = {i: [p.strip() for p in lab.split(",") if p.strip()] for i, lab in enumerate(labels) if "," in lab}
        if parts:
            for i, ps in parts.items():
                sim[:, i] = np.maximum(sim[:, i], (q_emb @ embed_cached(ps).T).max(axis=1))
    for a, qt in enumerate(queries):
        for b, lab in enumerate(labels):
            if lexical_match(qt, lab):
                sim[a, b] = 1.0
    return sim


# -------------------------------------------------------------------------------------------- the fusion
def fuse(maps: dict[str, dict[int, np.ndarray]], frames: list[int], grid_shape: tuple[int, int],
         weights: dict[str, float] | None = None, tokens: list[RegionToken] | None = None,
         focus: list[FocusPrompt] | None = None, signals: dict[str, np.ndarray] | None = None,
         temperature: float = TEMPERATURE) -> Fused:
    """Fuse for the analysis `frames`. An analyzer that skipped a frame contributes its latest earlier map.
    `signals` are aligned to `frames` (NaN where unknown). Tokens get TEXT_SPACE embeddings (in place) when a
    query exists and they carry none."""
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    tokens = tokens or []
    focus = focus or []
    signals = signals or {}
    n, (gh, gw) = len(frames), grid_shape
    starts = np.array([t.frame_start for t in tokens], np.int64)
    ends = np.array([t.frame_end for t in tokens], np.int64)
    has_box = np.array([t.box is not None for t in tokens], bool)
    is_query = np.array([t.box is None and t.source in QUERY_SOURCES for t in tokens], bool)

    queries = [FusionQuery(text=f.text, source="focus", weight=f.weight) for f in focus]
    queries += [FusionQuery(text=tokens[i].label, source=tokens[i].source, weight=float(tokens[i].score), token=int(i))
                for i in np.flatnonzero(is_query)]
    q_emb = _embed_queries(queries, tokens) if queries else {}
    # temporal keys for focus prompts: box-less tokens in the word space (all are, once embedded above)
    is_said = np.array([t.box is None and t.embedding_space == TEXT_SPACE for t in tokens], bool)

    speech = _signal(signals, "speech", n)
    moment = _moment_weights(signals, n)
    n_focus = len(focus)
    if n_focus:  # a prompt that matches nothing anywhere weighs nothing (and says so)
        for j in _unmatched_focus(frames, tokens, queries, q_emb, n_focus, starts, ends, has_box, is_said,
                                  temperature):
            log.warning("--focus %r matches nothing in this video (no region or speech reaches attention %.2f); "
                        "the importance map is as without it", queries[j].text, FOCUS_MATCH)
            queries[j] = queries[j].model_copy(update={"weight": 0.0})

    keys = {name: sorted(by_frame) for name, by_frame in maps.items()}  # sorted once, not per frame
    grid = FrameStore()  # one grid per frame, never stacked: a long video's grids spill to disk
    spatial = np.zeros(n, np.float32)
    top_tokens, top_weights, top_queries = [], [], []
    for i, f in enumerate(frames):
        keep = np.ones(grid_shape, np.float32)
        for name, by_frame in maps.items():
            m = _latest(by_frame, keys[name], f)
            if m is not None:
                keep *= 1.0 - np.clip(weights.get(name, 0.0) * m, 0.0, 1.0)
        live = (starts <= f) & (f < ends) if len(tokens) else np.zeros(0, bool)
        regions = np.flatnonzero(live & has_box)
        # query weights at this frame: focus as given; transcript-like tokens only while live, times speech
        qw = np.array([q.weight for q in queries], np.float32)
        for j, q in enumerate(queries[n_focus:], start=n_focus):
            qw[j] = q.weight * (speech[i] if not np.isnan(speech[i]) else 1.0) if live[q.token] else 0.0
        # the other queries' attention joins the defaults; the focus prompts' is kept apart (it outranks them)
        is_focus = np.arange(len(queries)) < n_focus
        relevance, best_query = _region_relevance(regions, tokens, queries, q_emb, np.where(is_focus, 0, qw),
                                                  temperature)
        focus_rel, focus_best = _region_relevance(regions, tokens, queries, q_emb, np.where(is_focus, qw, 0),
                                                  temperature)
        # a match goes to the top; a near-miss (a sports car for "bicycle", 0.13) keeps its attention as it is
        focus_level = np.where(focus_rel >= FOCUS_MATCH, 1.0, focus_rel).astype(np.float32)
        attn_map = np.zeros(grid_shape, np.float32)
        focus_map = np.zeros(grid_shape, np.float32)
        for r, rel, lv in zip(regions, relevance, focus_level):
            if rel > 1e-3:
                _paint(tokens[r].box, gh, gw, rel, attn_map)
            if lv > 1e-3:
                _paint(tokens[r].box, gh, gw, lv, focus_map)
        keep *= 1.0 - np.clip(weights["attention"] * attn_map, 0.0, 1.0)
        damping = 1.0 - FOCUS_DAMPING * float(focus_level.max(initial=0.0))
        grid[i] = g = np.maximum(focus_map, (1.0 - keep) * damping)
        spatial[i] = frame_scalar(g[None])[0]

        # focus prompts against what is said now: a match raises this moment
        temporal_keys = np.flatnonzero(live & is_said) if n_focus else np.zeros(0, np.int64)
        match = 0.0
        if n_focus and len(temporal_keys):
            sim = _focus_vs_said(queries[:n_focus], q_emb, [tokens[t] for t in temporal_keys])
            a = attention(sim, temperature)
            match = float(combine(a, qw[:n_focus]).max())
        moment[i] = 1.0 - (1.0 - moment[i]) * (1.0 - FOCUS_MOMENT_WEIGHT * match)

        # the why: region tokens by what they added (prior and attention), query tokens by the attention they gave
        contrib: dict[int, tuple[float, int]] = {}
        for r, rel, bq, lv, fq in zip(regions, relevance, best_query, focus_level, focus_best):
            prior = weights.get(tokens[r].source, 0.0) * tokens[r].score if tokens[r].source in PRIOR_SOURCES else 0.0
            w = (1.0 - (1.0 - min(1.0, prior)) * (1.0 - min(1.0, weights["attention"] * rel))) * damping
            contrib[int(r)] = (float(lv), int(fq)) if lv > 1e-3 and lv >= w else (w, int(bq) if rel > 1e-3 else -1)
        if n_focus and len(temporal_keys) and match > 0:
            for t, val in zip(temporal_keys, (a * qw[:n_focus, None]).max(axis=0)):
                contrib[int(t)] = (max(contrib.get(int(t), (0.0, -1))[0], FOCUS_MOMENT_WEIGHT * float(val)),
                                   int(np.argmax(a[:, list(temporal_keys).index(t)])))
        ranked = sorted(((w, t, q) for t, (w, q) in contrib.items() if w > 1e-3), reverse=True)[:TOP_K]
        top_tokens.append([t for _, t, _ in ranked])
        top_weights.append([round(float(w), 4) for w, _, _ in ranked])
        top_queries.append([q for _, _, q in ranked])

    # What is seen sets the frame's importance; when there is a time signal, the moment scales it (a talking
    # head matters more while it talks). A product, not an OR: a face alone already saturates the spatial part.
    timed = any(not np.isnan(_signal(signals, k, n)).all() for k in SIGNAL_WEIGHTS) or bool(is_query.any())
    scalar = spatial * (MOMENT_FLOOR + (1.0 - MOMENT_FLOOR) * moment) if timed else spatial
    return Fused(scalar=scalar.astype(np.float32), grid=FrameStack(grid, range(n), grid_shape, np.float32),
                 temporal=moment.astype(np.float32),
                 top_tokens=top_tokens, top_weights=top_weights, top_queries=top_queries, queries=queries)


def _unmatched_focus(frames: list[int], tokens: list[RegionToken], queries: list[FusionQuery],
                     q_emb: dict[str, np.ndarray], n_focus: int, starts: np.ndarray, ends: np.ndarray,
                     has_box: np.ndarray, is_said: np.ndarray, temperature: float) -> list[int]:
    """Indices of the focus prompts (the first n_focus queries) whose attention reaches FOCUS_MATCH on no region
    and no said token at any analysed frame. Tokens change only at their span ends, so each distinct set of live
    tokens is attended once."""
    best = np.zeros(n_focus, np.float32)
    qw = np.array([q.weight if j < n_focus else 0.0 for j, q in enumerate(queries)], np.float32)
    seen: set[tuple[int, ...]] = set()
    for f in frames:
        live = (starts <= f) & (f < ends) if len(tokens) else np.zeros(0, bool)
        key = tuple(np.flatnonzero(live))
        if key in seen:
            continue
        seen.add(key)
        for j in range(n_focus):  # one prompt at a time: its own best attention
            only = np.where(np.arange(len(queries)) == j, qw, 0)
            rel, _ = _region_relevance(np.flatnonzero(live & has_box), tokens, queries, q_emb, only, temperature)
            best[j] = max(best[j], float(rel.max(initial=0.0)))
        said = np.flatnonzero(live & is_said)
        if len(said):
            a = attention(_focus_vs_said(queries[:n_focus], q_emb, [tokens[t] for t in said]), temperature)
            best = np.maximum(best, (a * qw[:n_focus, None]).max(axis=1))
    return [j for j in range(n_focus) if best[j] < FOCUS_MATCH]


def _region_relevance(regions: np.ndarray, tokens: list[RegionToken], queries: list[FusionQuery],
                      q_emb: dict[str, np.ndarray], qw: np.ndarray, temperature: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per region of one frame: relevance in [0, 1] and the index of the query that attended most to it.
    Attention is taken per embedding space (similarities of different spaces are not comparable)."""
    relevance = np.zeros(len(regions), np.float32)
    best = np.full(len(regions), -1, np.int64)
    if not len(regions) or not queries or not (qw > 0).any():
        return relevance, best
    spaces: dict[str, list[int]] = {}
    for k, r in enumerate(regions):
        spaces.setdefault(tokens[r].embedding_space or "", []).append(k)
    for space, ks in spaces.items():
        if space not in q_emb:
            continue
        keys = [tokens[regions[k]] for k in ks]
        k_emb = np.array([t.embedding for t in keys], np.float32)
        if space.startswith("clip:"):
            # raw CLIP similarities: the patches that stand out from this frame's mean, at CLIP's temperature
            sim = q_emb[space] @ k_emb.T
            a = attention(sim, CLIP_TEMPERATURE, null=sim.mean(axis=1, keepdims=True))
        else:
            sim = similarity([q.text for q in queries], q_emb[space], [t.label for t in keys], k_emb,
                             split_labels=True)
            a = attention(sim, temperature, prior=np.array([t.score for t in keys], np.float32))
        relevance[ks] = np.maximum(relevance[ks], combine(a, qw))
        weighted = a * qw[:, None]
        best[ks] = np.where(weighted.max(axis=0) > 1e-3, weighted.argmax(axis=0), -1)
    return relevance, best


def _focus_vs_said(queries: list[FusionQuery], q_emb: dict[str, np.ndarray], keys: list[RegionToken]) -> np.ndarray:
    """Focus queries (the first entries of the query list) vs temporal (box-None) tokens, in the word space."""
    k_emb = np.array([t.embedding for t in keys], np.float32)
    return similarity([q.text for q in queries], q_emb[TEXT_SPACE][: len(queries)], [t.label for t in keys],
                      k_emb, split_labels=False)


def _embed_queries(queries: list[FusionQuery], tokens: list[RegionToken]) -> dict[str, np.ndarray]:
    """Query embeddings per space, and TEXT_SPACE embeddings for word tokens that carry none (in place)."""
    bare = [t for t in tokens if t.embedding is None]
    vecs = embed_cached([t.label for t in bare]) if bare else []
    for t, v in zip(bare, vecs):
        t.embedding, t.embedding_space = [round(float(x), 5) for x in v], TEXT_SPACE
    texts = [q.text for q in queries]
    out = {TEXT_SPACE: embed_cached(texts)}
    for space in {t.embedding_space for t in tokens if t.embedding_space and t.embedding_space != TEXT_SPACE}:
        try:
            out[space] = embed_cached(texts, space)
        except ModelUnavailable as e:
            log.warning("queries not attended in %s: %s", space, e)
    return out


def _signal(signals: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    s = signals.get(name)
    return np.asarray(s, np.float32) if s is not None and len(s) == n else np.full(n, np.nan, np.float32)


def moment_terms(signals: dict[str, np.ndarray], n: int) -> tuple[dict[str, np.ndarray], float | None]:
    """What each temporal signal present counts for at each frame (x_k in [0, 1]: sentiment as |value|, NaN as 0)
    and the span's soundtrack share (mean music-or-singing probability; None unmeasured). Loudness and onsets count
    only as far as the span is not music or song (x 1 - that share): a soundtrack's swells and beats are its own
    dynamics, not moments of the picture (moving bits between the frames of one picture by them cost whole-frame
    VMAF for nothing a viewer sees); a shout, a bang or applause over no music counts in full. The span's mean, not
    each frame's: a frame-by-frame factor turned the music probability's own dips into moments."""
    soundtrack = np.fmax(_signal(signals, "music", n), _signal(signals, "singing", n))
    share = float(np.clip(np.nanmean(soundtrack), 0.0, 1.0)) if np.isfinite(soundtrack).any() else None
    terms = {}
    for name in SIGNAL_WEIGHTS:
        x = _signal(signals, name, n)
        if np.isnan(x).all():
            continue
        x = np.clip(np.nan_to_num(np.abs(x) if name == "sentiment" else x, nan=0.0), 0.0, 1.0)
        terms[name] = x * (1.0 - share) if name in SOUND_EVENT_SIGNALS and share is not None else x
    return terms, share


def _moment_weights(signals: dict[str, np.ndarray], n: int) -> np.ndarray:
    """1 - prod(1 - c_k x_k) over the temporal signals present (moment_terms)."""
    keep = np.ones(n, np.float32)
    for name, x in moment_terms(signals, n)[0].items():
        keep *= 1.0 - SIGNAL_WEIGHTS[name] * x
    return 1.0 - keep


def _paint(box: Box, gh: int, gw: int, value: float, out: np.ndarray) -> None:
    from analyzers.base import box_to_grid

    box_to_grid(box.x, box.y, box.x + box.w, box.y + box.h, gh, gw, value=float(value), out=out)


def _latest(by_frame: dict[int, np.ndarray], keys: list[int], frame: int) -> np.ndarray | None:
    k = bisect.bisect_right(keys, frame)
    return by_frame[keys[k - 1]] if k else None
