"""Wall-clock accounting for the per-stage report (schemas.StageSeconds): how long a loop waited on its source."""
from __future__ import annotations

import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class Stopwatch:
    """Accumulates seconds. `iterate(it)` yields from `it` and counts only the time spent producing each item
    (e.g. demux + decode), not the time the caller spends on it between items."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        it = iter(items)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - t
                return
            self.seconds += time.perf_counter() - t
            yield item

    def __enter__(self) -> "Stopwatch":
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds += time.perf_counter() - self._t
