"""The arrays of a series store on tensorstore: how blocks and flags reach the disk.

:class:`StoreArrays` knows *how* to put a block of frames or a set of flags on disk;
:class:`~stream.store.SeriesStore` decides *when* and in which order.

tensorstore's ``file`` driver never modifies a file in place: each write goes to a
``<key>.__lock`` file that is renamed over the key, so a killed process leaves every
file either old or new (a stale ``.__lock`` may remain; the next write of that key
removes it, and :meth:`StoreArrays.close` removes any left).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from ._config import StoreConfig
from ._layout import FLAGS, PATHS, flags_spec, frames_spec

log = logging.getLogger(__name__)

#: The time axis grows by at least this many shards, and at least doubles up to
#: GROWTH_MAX_SHARDS (each resize rewrites five metadata files).
GROWTH_SHARDS = 8
GROWTH_MAX_SHARDS = 256
#: Flag chunks kept in memory (the stream rarely revisits older ones).
FLAG_CHUNKS_CACHED = 4


class Block:
    """Buffer for one shard of frames: pixels, which slots are filled, timestamps."""

    __slots__ = ("block", "count", "data", "filled", "t_ns")

    def __init__(self, block: int, data: np.ndarray) -> None:
        self.block = block
        #: The pixels; None once they are on disk and the buffer went back to the pool.
        self.data: np.ndarray | None = data
        self.filled = np.zeros(data.shape[0], dtype=bool)
        self.t_ns = np.zeros(data.shape[0], dtype=np.int64)
        self.count = 0

    def runs(self) -> list[tuple[int, int]]:
        """Contiguous ``[start, stop)`` runs of filled slots, in order."""
        edges = np.flatnonzero(np.diff(np.concatenate(([0], self.filled.view(np.int8), [0]))))
        return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]

    def indices(self) -> np.ndarray:
        return np.flatnonzero(self.filled) + self.block * self.filled.size


def context(config: StoreConfig) -> ts.Context:
    """The tensorstore resources of one store: threads for codecs and file IO, fsync."""
    return ts.Context(
        {
            "data_copy_concurrency": {"limit": config.io_threads},
            "file_io_concurrency": {"limit": config.io_threads},
            "file_io_sync": config.fsync,
        }
    )


def create_arrays(
    path: Path,
    frame_shape: tuple[int, int],
    dtypes: dict[str, np.dtype[Any]],
    frames_per_shard: int,
    config: StoreConfig,
) -> None:
    """Create the image and flag arrays, empty (T = 0), in the group at ``path``."""
    ctx = context(config)
    futures = []
    for name, rel in PATHS.items():
        where = str(path / rel)
        if name in FLAGS:
            spec = flags_spec(where, name, frames_per_shard, config)
        else:
            spec = frames_spec(where, dtypes[name], frame_shape, frames_per_shard, config)
        futures.append(ts.open(spec, create=True, context=ctx))
    for future in futures:
        future.result()


@dataclass
class FlagWrite:
    """What :meth:`StoreArrays.write_flags` did: per flag array, how many entries turned
    True in the chunks written; per failed chunk, ``(array, its blocks, the error)``."""

    newly: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, list[Block], Exception]] = field(default_factory=list)


class _FlagChunk:
    """In-memory copy of one chunk of each 1-D array, so a chunk is written whole."""

    __slots__ = FLAGS

    def __init__(self, n: int) -> None:
        self.t_ns = np.zeros(n, np.int64)
        self.valid = np.zeros(n, bool)
        self.clean_valid = np.zeros(n, bool)


class StoreArrays:
    """The opened arrays of one store. tensorstore errors surface as ``ValueError``.

    Parameters
    ----------
    path
        The store folder.
    config
        IO threads and fsync (the layout comes from the arrays' own metadata).
    """

    def __init__(self, path: Path, config: StoreConfig) -> None:
        self.path = path
        ctx = context(config)
        opening = {
            name: ts.open(
                {
                    "driver": "zarr3",
                    "kvstore": {"driver": "file", "path": str(path / rel)},
                    # a frame of the fill value (all 0, all NaN: a dark frame, a closed
                    # shutter) is written too: skipped, it left a frame flagged valid
                    # with no pixels on disk, which reads as a damaged store
                    "store_data_equal_to_fill_value": name not in FLAGS,
                },
                open=True,
                context=ctx,
            )
            for name, rel in PATHS.items()
        }
        self.arrays: dict[str, ts.TensorStore] = {n: f.result() for n, f in opening.items()}
        raw = self.arrays["raw"]
        self.frames_per_shard = _chunk_length(raw)
        self.flag_chunk = _chunk_length(self.arrays["valid"])
        self._flags: OrderedDict[int, _FlagChunk] = OrderedDict()
        lengths = {int(a.shape[0]) for a in self.arrays.values()}
        self.length = int(raw.shape[0])
        if len(lengths) > 1:  # a writer killed while resizing: make them agree again
            log.info("%s: time axes of lengths %s; resizing all", path, sorted(lengths))
            self.length = -1
            self.resize(max(lengths))

    @property
    def frame_shape(self) -> tuple[int, int]:
        shape = self.arrays["raw"].shape
        return int(shape[1]), int(shape[2])

    @property
    def raw_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.arrays["raw"].dtype.numpy_dtype)

    def close(self) -> None:
        """Forget cached flags and remove temporaries a killed writer may have left."""
        self._flags.clear()
        for leftover in self.path.rglob("*.__lock"):
            leftover.unlink(missing_ok=True)

    # ------------------------------------------------------------------ time axis
    def grow(self, needed: int) -> None:
        """Make the time axis at least ``needed`` long, in steps of whole shards."""
        if needed > self.length:
            k = self.frames_per_shard
            shards = max(math.ceil(needed / k), math.ceil(self.length / k) + GROWTH_SHARDS)
            shards = max(shards, min(2 * math.ceil(self.length / k), GROWTH_MAX_SHARDS))
            self.resize(max(needed, shards * k))

    def resize(self, length: int) -> None:
        """Set the time axis of every array; chunks wholly past a shrunk end are deleted."""
        if length == self.length:
            return
        futures = {}
        for name, arr in self.arrays.items():
            current = int(arr.shape[0])
            if current == length:
                continue
            bounds = [length, *([None] * (arr.rank - 1))]
            if length > current:
                futures[name] = arr.resize(exclusive_max=bounds, expand_only=True)
            else:
                futures[name] = arr.resize(exclusive_max=bounds, shrink_only=True)
        for name, future in futures.items():
            self.arrays[name] = future.result()
        self.length = length
        for c in [c for c in self._flags if c * self.flag_chunk >= length]:
            del self._flags[c]  # past the end: read again after a trim

    # ------------------------------------------------------------------ pixels
    def write_block(self, name: str, blk: Block, fill: float) -> Any:
        """Start writing a block's filled frames into ``raw`` or ``clean``.

        Returns a future; ``blk.data`` must stay untouched until it is done. A complete
        block is one aligned whole-shard write (nothing read); a partial one writes its
        runs in one transaction, which keeps the shard's other frames.
        """
        k = self.frames_per_shard
        start = blk.block * k
        self.grow(start + k)
        arr, data = self.arrays[name], blk.data
        assert data is not None, "a block's pixels are written once"
        if blk.count == k:
            return arr[start : start + k].write(data)
        txn = ts.Transaction()
        view = arr.with_transaction(txn)
        for a, b in blk.runs():
            view[start + a : start + b].write(data[a:b]).result()
        return txn.commit_async()

    # ------------------------------------------------------------------ flags
    def write_flags(self, updates: dict[str, list[Block]]) -> FlagWrite:
        """Set the blocks' entries of each 1-D array named and write the touched chunks.

        All chunks are written concurrently; returns once each is on disk or failed. A
        chunk whose write failed gets its cached entries back as they were (as on disk),
        so a later write of that chunk does not carry them to the disk. A chunk that
        cannot be read raises before anything is changed or written.
        """
        chunks: dict[int, _FlagChunk] = {}
        touched: dict[tuple[str, int], list[tuple[Block, int]]] = {}
        for name, blocks in updates.items():
            for blk in blocks:
                c, at = self._flag_place(blk)
                if c not in chunks:  # one copy per chunk, even if the cache let it go
                    chunks[c] = self._flag_chunk(c)
                touched.setdefault((name, c), []).append((blk, at))
        writes = []
        for (name, c), placed in sorted(touched.items()):
            chunk = self._flags[c] = chunks[c]  # the one written stays the one cached
            before = getattr(chunk, name).copy()
            for blk, at in placed:
                part = getattr(chunk, name)[at : at + blk.filled.size]
                if name == "t_ns":
                    part[blk.filled] = blk.t_ns[blk.filled]
                else:
                    part |= blk.filled
            c0 = c * self.flag_chunk
            stop = min(c0 + self.flag_chunk, self.length)
            # a copy: the cached chunk changes again before the write has read it
            future = self.arrays[name][c0:stop].write(getattr(chunk, name)[: stop - c0].copy())
            writes.append((name, chunk, before, [blk for blk, _ in placed], future))
        self._trim_cache()
        result = FlagWrite()
        for name, chunk, before, blocks, future in writes:
            try:
                future.result()
            except (OSError, ValueError, RuntimeError) as exc:
                setattr(chunk, name, before)
                result.failed.append((name, blocks, exc))
                continue
            if name != "t_ns":
                newly = int(np.count_nonzero(getattr(chunk, name) & ~before))
                result.newly[name] = result.newly.get(name, 0) + newly
        return result

    def _flag_place(self, blk: Block) -> tuple[int, int]:
        """The flag chunk holding the block's entries, and where they start in it."""
        start = blk.block * self.frames_per_shard
        return start // self.flag_chunk, start % self.flag_chunk

    def _flag_chunk(self, c: int) -> _FlagChunk:
        """Flag chunk ``c``, from the cache or read from disk."""
        chunk = self._flags.get(c)
        if chunk is None:
            chunk = _FlagChunk(self.flag_chunk)
            c0 = c * self.flag_chunk
            stop = min(c0 + self.flag_chunk, self.length)
            for name in FLAGS:
                getattr(chunk, name)[: stop - c0] = self.arrays[name][c0:stop].read().result()
            self._flags[c] = chunk
            self._trim_cache()
        self._flags.move_to_end(c)
        return chunk

    def _trim_cache(self) -> None:
        while len(self._flags) > FLAG_CHUNKS_CACHED:
            self._flags.popitem(last=False)  # written already: only the copy goes


def _chunk_length(array: ts.TensorStore) -> int:
    """Length along time of the array's stored chunks (its shards, when sharded)."""
    shape = array.chunk_layout.write_chunk.shape
    if shape is None or shape[0] is None:
        raise ValueError(f"{array.kvstore} has no regular chunk grid")
    return int(shape[0])
