"""Per-frame arrays that do not grow the process with the input's duration.

A long input yields one small array per analysed frame and stage (an 80x45 map per analyzer, the fused
importance grid, the plan's per-block QP offsets): ~10 MiB per minute of 1080p in all, gigabytes for hours.
A FrameStore keeps them in RAM up to a small byte budget (all stores together, spill_budget()) and appends
the rest to an anonymous temporary file, read back with pread: page cache, not process memory. The file has
no name (O_TMPFILE / unlinked at once), so nothing is left on disk whatever happens: exception, Ctrl-C or
kill -9. Where no temporary file can be written (TMPDIR read-only or full) the arrays stay in RAM, with a
warning.

Why the budget is small (1 MiB): arrays held in RAM cost far more than their size. Each is a small malloc
block that stays put while the decoder's and analyzers' temporaries come and go around it, so the glibc heap
fragments: 360p, a 160x90 map per frame, 600 frames: a 16 MiB budget raised the peak RSS from 103 to
178-185 MiB, 1 MiB to 104 MiB (docs/ROBUSTNESS.md, "Memory on long inputs"). Reading a spilled frame back is
one pread from the page cache.
Not np.memmap: the pages a memmap touches count in the process's RSS until unmapped.

FrameStack is the (K, ...) array view of a store that the artifacts hold (`importance/grid`, `qp/offsets`):
indexing one frame reads that frame only, iteration streams, `astype` converts lazily frame by frame; any
other numpy use (a mask, arithmetic, np.percentile, .reshape ...) materialises the whole array, so code that
needs an ndarray keeps working and pays for it only where it runs.
"""
from __future__ import annotations

import logging
import os
import tempfile
import weakref
from collections.abc import Iterator, MutableMapping, Sequence

import numpy as np

log = logging.getLogger("codec_assist")

SPILL_ENV = "CODEC_ASSIST_SPILL_MIB"
DEFAULT_BUDGET_MIB = 1.0


def spill_budget() -> int:
    """Bytes of per-frame arrays all stores together keep in RAM before spilling (env CODEC_ASSIST_SPILL_MIB)."""
    try:
        mib = float(os.environ.get(SPILL_ENV, DEFAULT_BUDGET_MIB))
    except ValueError:
        mib = DEFAULT_BUDGET_MIB
    return max(0, int(mib * 2**20))


class _Ram:
    """The bytes every live store holds in RAM (one counter: the budget bounds them together)."""

    held = 0


class FrameStore(MutableMapping):
    """int -> np.ndarray, in RAM up to the shared budget, then in an anonymous temp file.

    The same array object stored under several keys (a held map repeated on every frame until it changes)
    is kept once, in RAM or on disk. Values read back from disk are fresh copies: treat values as read-only
    and store a changed array again (`store[k] = new`), as a dict of shared arrays needs anyway.
    """

    def __init__(self, budget: int | None = None):
        self.budget = spill_budget() if budget is None else budget
        self._index: dict[int, object] = {}  # key -> ndarray (in RAM) or int offset / (offset, shape, dtype) on disk
        self._ram: dict[int, list] = {}  # id(array) -> [array, number of keys holding it]
        self._spilled: dict[int, tuple[weakref.ref, object]] = {}  # id(array) -> (ref, disk location), while alive
        self._owner: dict[int, int] = {}  # disk offset -> id(array) of the live array written there
        self._shared: set[int] = set()  # disk offsets that several keys point at (never rewritten in place)
        self._shape: tuple[int, ...] | None = None  # the common shape/dtype: disk entries then need only an offset
        self._dtype: np.dtype | None = None
        self._file = None
        self._in_ram = False  # set when no temporary file can be written
        self._end = 0
        self.spilled_bytes = 0
        self._ram_bytes = [0]  # a list: the finalizer below releases what the store holds when it is dropped
        self._finalizer = weakref.finalize(self, FrameStore._release, self._ram_bytes, None)

    @staticmethod
    def _release(ram_bytes: list, file) -> None:
        _Ram.held -= ram_bytes[0]
        ram_bytes[0] = 0
        if file is not None:
            file.close()

    def close(self) -> None:
        """Drop everything now (the store also does this when garbage-collected)."""
        self._index.clear()
        self._ram.clear()
        self._spilled.clear()
        self._owner.clear()
        self._finalizer()

    # ----------------------------------------------------------------------------- the mapping interface
    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[int]:
        return iter(self._index)

    def __contains__(self, key) -> bool:
        return key in self._index

    def __getitem__(self, key: int) -> np.ndarray:
        entry = self._index[key]
        return entry if isinstance(entry, np.ndarray) else self._read(entry)

    def __setitem__(self, key: int, value: np.ndarray) -> None:
        value = np.asarray(value)
        old = self._index.get(key)
        if old is not None and old is value:
            return
        ram = self._ram.get(id(value))
        if ram is not None and ram[0] is value:  # already held in RAM under another key
            self._drop(key)
            ram[1] += 1
            self._index[key] = value
            return
        seen = self._spilled.get(id(value))
        if seen is not None and seen[0]() is value:  # already written (for another key)
            if old is not seen[1]:
                self._drop(key)
                self._index[key] = seen[1]
                self._shared.add(self._offset(seen[1]))
            return
        if self._in_ram or _Ram.held + value.nbytes <= self.budget:
            self._drop(key)
            self._ram[id(value)] = [value, 1]
            self._hold(value.nbytes)
            self._index[key] = value
            return
        try:
            loc = self._spill(key, old, value)
        except OSError as e:  # no temporary file here: keep the arrays in memory rather than fail
            self._in_ram = True
            log.warning("per-frame arrays are kept in memory: cannot write a temporary file in %s (%s)",
                        tempfile.gettempdir(), e.strerror or e)
            self[key] = value
            return
        self._index[key] = loc
        try:
            self._spilled[id(value)] = (weakref.ref(value, self._forget(id(value), self._offset(loc))), loc)
            self._owner[self._offset(loc)] = id(value)
        except TypeError:  # not weak-referenceable: stored without sharing, still correct
            pass

    def __delitem__(self, key: int) -> None:
        if key not in self._index:
            raise KeyError(key)
        self._drop(key)

    # ---------------------------------------------------------------------------------------- internals
    def _spill(self, key: int, old, value: np.ndarray):
        """Write `value` to the file for `key`; return its location."""
        if not isinstance(old, np.ndarray) and old is not None and self._fits(old, value):
            # same size and no other key points there: rewrite in place (the smoothing passes of a plan)
            ident = self._owner.pop(self._offset(old), None)
            if ident is not None:
                self._spilled.pop(ident, None)
            self._write(value, self._offset(old))
            return old
        self._drop(key)
        loc = self._location(self._end, value)
        self._write(value, self._end)
        self._end += value.nbytes
        self.spilled_bytes += value.nbytes
        return loc

    def _hold(self, nbytes: int) -> None:
        _Ram.held += nbytes
        self._ram_bytes[0] += nbytes

    def _drop(self, key: int) -> None:
        entry = self._index.pop(key, None)
        if isinstance(entry, np.ndarray):
            ram = self._ram[id(entry)]
            ram[1] -= 1
            if ram[1] == 0:
                del self._ram[id(entry)]
                self._hold(-entry.nbytes)

    def _forget(self, ident: int, offset: int):
        spilled, owner = self._spilled, self._owner  # not self: the callback must not keep the store alive

        def forget(ref) -> None:
            entry = spilled.get(ident)
            if entry is not None and entry[0] is ref:
                del spilled[ident]
                if owner.get(offset) == ident:
                    del owner[offset]
        return forget

    def _location(self, offset: int, value: np.ndarray):
        if self._shape is None:
            self._shape, self._dtype = value.shape, value.dtype
        if value.shape == self._shape and value.dtype == self._dtype:
            return offset
        return (offset, value.shape, value.dtype)

    @staticmethod
    def _offset(loc) -> int:
        return loc if isinstance(loc, int) else loc[0]

    def _fits(self, loc, value: np.ndarray) -> bool:
        shape, dtype = (self._shape, self._dtype) if isinstance(loc, int) else loc[1:]
        return shape == value.shape and dtype == value.dtype and self._offset(loc) not in self._shared

    def _write(self, value: np.ndarray, offset: int) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="codec-assist-frames-")  # no name left on disk
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, FrameStore._release, self._ram_bytes, self._file)
        data = memoryview(np.ascontiguousarray(value)).cast("B")
        while len(data):
            n = os.pwrite(self._file.fileno(), data, offset)
            data, offset = data[n:], offset + n

    def _read(self, loc) -> np.ndarray:
        offset, shape, dtype = (loc, self._shape, self._dtype) if isinstance(loc, int) else loc
        out = np.empty(shape, dtype)
        view = memoryview(out).cast("B")
        while len(view):
            n = os.preadv(self._file.fileno(), [view], offset)
            if n <= 0:
                raise OSError(f"frame store: short read at byte {offset}")
            view, offset = view[n:], offset + n
        return out


class FrameStack(np.lib.mixins.NDArrayOperatorsMixin):
    """A read-only (K, ...) array whose K frames live in a FrameStore (or any int -> array mapping).

    `stack[k]` and iteration read frame by frame; `astype` is lazy; other indexing (slices, masks, index
    arrays) returns an ndarray of the frames selected; anything else (arithmetic, ufuncs, numpy functions,
    ndarray methods) works on the materialised array. Pickles as a plain ndarray (Ray tasks, processes).
    """

    def __init__(self, store: MutableMapping, keys: Sequence[int], frame_shape: tuple[int, ...] | None = None,
                 dtype=None, casts: tuple[np.dtype, ...] = ()):
        self.store, self.keys = store, keys
        first = store[keys[0]] if len(keys) else None
        self.frame_shape = tuple(frame_shape if frame_shape is not None else (first.shape if first is not None else ()))
        self.dtype = np.dtype(dtype if dtype is not None else (first.dtype if first is not None else np.float32))
        self.casts = casts  # earlier astype()s, applied in order on read: float32 -> float16 -> float32 rounds

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.keys), *self.frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self.keys)):
            yield self[k]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            frame = self.store[self.keys[index]]
            for dtype in (*self.casts, self.dtype):
                if frame.dtype != dtype:
                    frame = frame.astype(dtype)
            return frame
        if isinstance(index, tuple) and index and isinstance(index[0], (int, np.integer)):
            return self[index[0]][index[1:]]
        picks = np.arange(len(self.keys))[index[0] if isinstance(index, tuple) else index]
        rest = index[1:] if isinstance(index, tuple) else ()
        out = np.empty((len(picks), *self.frame_shape), self.dtype)
        for j, k in enumerate(picks):
            out[j] = self[int(k)]
        return out[(slice(None), *rest)] if rest else out

    def astype(self, dtype, copy: bool = True) -> "FrameStack":
        """Lazy: the conversion happens frame by frame as frames are read (a copy, as ndarray.astype gives)."""
        return FrameStack(self.store, self.keys, self.frame_shape, dtype, (*self.casts, self.dtype))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        for k in range(len(self.keys)):
            out[k] = self[k]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(isinstance(x, FrameStack) for x in kwargs.get("out", ())):
            raise TypeError("a FrameStack is read-only: it cannot be a ufunc's out=")
        inputs = [np.asarray(x) if isinstance(x, FrameStack) else x for x in inputs]
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("store", "keys", "frame_shape", "dtype", "casts"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)  # ndarray methods (mean, reshape, tolist ...) on the whole

    def __reduce__(self):
        return np.asarray(self).__reduce__()

    def __repr__(self) -> str:
        return f"FrameStack(shape={self.shape}, dtype={self.dtype})"


def stack(arrays, frame_shape: tuple[int, ...], dtype=np.float32) -> FrameStack:
    """Put an iterable of per-frame arrays into a new FrameStore and return them as a FrameStack."""
    store = FrameStore()
    n = 0
    for n, a in enumerate(arrays, 1):
        store[n - 1] = a
    return FrameStack(store, range(n), frame_shape, dtype)
