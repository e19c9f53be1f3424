"""Fusion: the analyzers' maps -> one ImportanceMap per analysis frame (first version: weighted).

The combination is a weighted probabilistic OR, imp = 1 - prod(1 - w_a * map_a): bounded in [0, 1], a
strong cue (a face) is not diluted by weak ones, and weak cues still add up. The cross-modal attention
fusion replaces `fuse` behind the same signature.
"""
from __future__ import annotations

import bisect

import numpy as np

from .schemas import RegionToken

DEFAULT_WEIGHTS = {"saliency": 0.5, "faces": 1.0, "text": 0.8}


def fuse(maps: dict[str, dict[int, np.ndarray]], frames: list[int], grid_shape: tuple[int, int],
         weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (scalar (N,), grid (N, gh, gw)) for the analysis `frames`.

    An analyzer that skipped a frame (e.g. OCR runs on a subset) contributes its latest earlier map.
    """
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    keys = {name: sorted(by_frame) for name, by_frame in maps.items()}  # sorted once, not per frame
    grid = np.zeros((len(frames), *grid_shape), np.float32)
    for i, f in enumerate(frames):
        keep = np.ones(grid_shape, np.float32)
        for name, by_frame in maps.items():
            m = _latest(by_frame, keys[name], f)
            if m is not None:
                keep *= 1.0 - np.clip(weights.get(name, 0.0) * m, 0.0, 1.0)
        grid[i] = 1.0 - keep
    return frame_scalar(grid), grid


def frame_scalar(grid: np.ndarray) -> np.ndarray:
    """How much a frame matters overall: the mean of its top-decile cells."""
    flat = grid.reshape(len(grid), -1)
    if flat.shape[1] == 0:
        return np.zeros(len(grid), np.float32)
    k = max(1, flat.shape[1] // 10)
    return np.sort(flat, axis=1)[:, -k:].mean(axis=1).astype(np.float32)


def _latest(by_frame: dict[int, np.ndarray], keys: list[int], frame: int) -> np.ndarray | None:
    k = bisect.bisect_right(keys, frame)
    return by_frame[keys[k - 1]] if k else None


def top_tokens(tokens: list[RegionToken], frames: list[int], weights: dict[str, float] | None = None,
               k: int = 5) -> list[list[int]]:
    """Per analysis frame, the indices of the tokens that weigh most there (the *why* of the map)."""
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    out: list[list[int]] = []
    for f in frames:
        live = [i for i, t in enumerate(tokens) if t.frame_start <= f < t.frame_end]
        live.sort(key=lambda i: -tokens[i].score * weights.get(tokens[i].source, 0.5))
        out.append(live[:k])
    return out
