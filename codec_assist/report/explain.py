"""`codec-assist explain ANALYSIS`: why a moment or a region matters, from the fusion's recorded top tokens.

    codec-assist explain analysis/                 # the 3 most important moments
    codec-assist explain analysis/ --top 10
    codec-assist explain analysis/ --time 4.2      # the analysed frame at (or just before) 4.2 s
    codec-assist explain analysis/ --frame 120 --json
"""
from __future__ import annotations


import numpy as np

from codec_assist.errors import CodecAssistError
from codec_assist.schemas import Analysis, Box, ExplainMoment, ExplainToken, Explanation, FusionQuery


def explain(analysis: Analysis, arrays: dict[str, np.ndarray], source: str = "", frame: int | None = None,
            time: float | None = None, top: int = 3) -> Explanation:
    frames = arrays["importance/frames"].astype(np.int64)
    scalar = arrays["importance/scalar"].astype(np.float32)
    grid = arrays["importance/grid"].astype(np.float32)
    temporal = arrays.get("importance/temporal", np.zeros(len(frames), np.float32))
    if len(frames) == 0:
        raise CodecAssistError(f"{source}: the analysis has no analysed frames")
    fps = analysis.video.fps
    if time is not None:
        duration = analysis.video.frame_count / fps
        if not 0 <= time < duration:
            raise CodecAssistError(f"time {time:g} s is outside the video (0 to {duration:.2f} s)")
        frame = int(np.floor(time * fps + 1e-6))
    if frame is not None:
        if not 0 <= frame < analysis.video.frame_count:
            raise CodecAssistError(f"frame {frame} is outside the video (0..{analysis.video.frame_count - 1}, "
                                   f"{analysis.video.duration:.2f} s)")
        picks = [max(0, int(np.searchsorted(frames, frame, side="right")) - 1)]
    else:
        if top < 1:
            raise CodecAssistError("--top must be at least 1")
        picks = _peaks(scalar, frames, fps, top)
    imp = analysis.importance
    from codec_assist.fusion.attention import moment_terms

    signals = {k.split("/", 1)[1]: np.asarray(v) for k, v in arrays.items() if k.startswith("signal/")}
    terms, soundtrack = moment_terms(signals, len(frames))
    moments = []
    for k in picks:
        gh, gw = grid.shape[1:]
        cy, cx = np.unravel_index(int(np.argmax(grid[k])), (gh, gw))
        ids = imp.top_tokens[k] if k < len(imp.top_tokens) else []
        weights = imp.top_weights[k] if k < len(imp.top_weights) else [None] * len(ids)
        queries = imp.top_queries[k] if k < len(imp.top_queries) else [-1] * len(ids)
        toks = []
        for t, w, q in zip(ids, weights, queries):
            tok = analysis.tokens[t]
            toks.append(ExplainToken(token=t, label=tok.label, source=tok.source, box=tok.box, score=tok.score,
                                     weight=float(w if w is not None else tok.score),
                                     query=imp.queries[q].text if 0 <= q < len(imp.queries) else None))
        moments.append(ExplainMoment(
            frame=int(frames[k]), time=round(float(frames[k]) / fps, 3), importance=round(float(scalar[k]), 4),
            temporal=round(float(temporal[k]), 4), hottest=Box(x=cx / gw, y=cy / gh, w=1 / gw, h=1 / gh),
            hottest_value=round(float(grid[k, cy, cx]), 4), tokens=toks,
            signals={name: round(float(x[k]), 4) for name, x in terms.items()},
            soundtrack=None if soundtrack is None else round(soundtrack, 4)))
    return Explanation(analysis=source, fusion=imp.fusion, queries=imp.queries, moments=moments)


def _peaks(scalar: np.ndarray, frames: np.ndarray, fps: float, k: int, gap_s: float = 1.0) -> list[int]:
    """Indices of the k highest frames, at least gap_s apart (neighbouring frames say the same thing)."""
    chosen: list[int] = []
    for i in np.argsort(-scalar, kind="stable"):
        if all(abs(int(frames[i]) - int(frames[j])) >= gap_s * fps for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return sorted(chosen)


def format_explanation(e: Explanation) -> str:
    lines = [f"{e.analysis} ({e.fusion})"]
    if e.queries:
        shown = [f"{q.text!r}" + (f"@{q.weight:g}" if q.weight != 1 else "") + f" [{q.source}]" for q in e.queries[:8]]
        lines.append("queries: " + ", ".join(shown) + (f", … ({len(e.queries)} in all)" if len(e.queries) > 8 else ""))
    for m in e.moments:
        h = m.hottest
        lines.append(f"frame {m.frame} ({m.time:.2f} s): importance {m.importance:.2f}, moment weight {m.temporal:.2f}, "
                     f"hottest cell at x={h.x + h.w / 2:.2f} y={h.y + h.h / 2:.2f} ({m.hottest_value:.2f})")
        if m.signals:
            lines.append("    " + describe_moment(m))
        won = focus_winner(m, e.queries)
        if won:
            lines.append("    " + won)
        if not m.tokens:
            lines.append("    no token: saliency (motion, detail, centre) only")
        for t in m.tokens:
            where = f" at {t.box.x:.2f},{t.box.y:.2f} {t.box.w:.2f}x{t.box.h:.2f}" if t.box else ""
            lines.append(f"    {t.weight:.2f}  {t.source}: {t.label!r}{where}{attended_by(t, e.queries)}")
    return "\n".join(lines)


def describe_moment(m: ExplainMoment) -> str:
    """'moment: speech 0.80, loudness 0.03, onset 0.00 (music 0.86 of the span: loudness and onsets count x0.14)'."""
    from codec_assist.fusion.attention import SOUND_EVENT_SIGNALS

    names = {"loudness_norm": "loudness", "text_onset": "text appearing"}
    said = ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in m.signals.items())
    if m.soundtrack is not None and round(m.soundtrack, 2) > 0 and set(SOUND_EVENT_SIGNALS) & set(m.signals):
        said += f" (music {m.soundtrack:.2f} of the span: loudness and onsets count x{1 - m.soundtrack:.2f})"
    return "moment: " + said


def focus_winner(m: ExplainMoment, queries: list[FusionQuery]) -> str:
    """'won by focus 'bookcase' at x,y wxh' when the moment's leading token was put first by a --focus prompt
    (fusion ranks a matched focus region above the default priors); '' otherwise."""
    if not m.tokens or not m.tokens[0].query:
        return ""
    t = m.tokens[0]
    if not any(q.source == "focus" and q.text == t.query for q in queries):
        return ""
    where = f" at {t.box.x:.2f},{t.box.y:.2f} {t.box.w:.2f}x{t.box.h:.2f}" if t.box else " (what is said)"
    return f"won by focus {t.query!r}{where}"


def attended_by(t: ExplainToken, queries: list[FusionQuery]) -> str:
    """' <- focus 'bicycle'': the query that attended to the token most, with where that query came from."""
    if not t.query:
        return ""
    source = next((q.source for q in queries if q.text == t.query), "")
    return f" <- {source + ' ' if source else ''}{t.query!r}"


def describe_token(t: ExplainToken, queries: list[FusionQuery]) -> str:
    """One line per token, e.g. "imagenet 'mountain bike' 0.92 <- focus 'bicycle'" (the report's why-table)."""
    return f"{t.source} {t.label!r} {t.weight:.2f}{attended_by(t, queries)}"
