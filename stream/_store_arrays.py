"""The arrays of a series store: their layout, and how blocks and flags reach them.

:class:`StoreArrays` knows *how* to put a block of frames or a set of flags on disk
(whole-shard writes, read-modify-write of a shard already on disk, whole chunks of
the 1-D arrays from an in-memory copy); :class:`~stream._store.SeriesStore` decides
*when* and in which order.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.sync import sync

from ._config import StoreConfig
from ._store_meta import ARRAYS, FlagScan, scan_flags
from ._store_shard import DirectWriter

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfigParams

log = logging.getLogger("deepdenoise")

#: Write whole chunks directly (see ``_store_shard``); False sends every write through
#: zarr-python (the baseline of ``benchmarks/storage.py``, and an escape hatch).
DIRECT_WRITES = True
GROWTH_SHARDS = 8  # the time axis grows by this many shards at a time
FLAG_CHUNK = 16384  # entries per chunk of the 1-D arrays (rounded to a multiple of k)
F4 = np.dtype("<f4")
FLAGS = ("t_ns", "valid", "clean_valid")
# Storing chunks equal to the fill value skips zarr's compare of every chunk with it.
_ARRAY_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}


class Block:
    """Buffer for one shard of frames: pixels, which slots are filled, timestamps."""

    __slots__ = ("block", "count", "data", "filled", "t_ns")

    def __init__(self, block: int, data: np.ndarray) -> None:
        self.block = block
        self.data = data
        self.filled = np.zeros(data.shape[0], dtype=bool)
        self.t_ns = np.zeros(data.shape[0], dtype=np.int64)
        self.count = 0

    def runs(self) -> list[tuple[int, int]]:
        """Contiguous ``[start, stop)`` runs of filled slots, in order."""
        edges = np.flatnonzero(np.diff(np.concatenate(([0], self.filled.view(np.int8), [0]))))
        return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]

    def indices(self) -> np.ndarray:
        return np.flatnonzero(self.filled) + self.block * self.data.shape[0]


def create_arrays(
    group: zarr.Group,
    frame_shape: tuple[int, int],
    raw_dtype: np.dtype[Any],
    frames_per_shard: int,
    config: StoreConfig,
) -> None:
    """Create the five arrays, empty (T = 0), in a new group."""
    h, w = frame_shape
    k = frames_per_shard
    frames = {"chunks": (1, h, w), "shards": (k, h, w), "dimension_names": ("t", "y", "x")}
    flags = {"chunks": (k * max(1, FLAG_CHUNK // k),), "dimension_names": ("t",)}
    specs: dict[str, tuple[dict[str, Any], np.dtype[Any], Any]] = {
        "raw": (frames, raw_dtype, 0),
        "clean": (frames, F4, float("nan")),
        "t_ns": (flags, np.dtype("<i8"), 0),
        "valid": (flags, np.dtype(bool), False),
        "clean_valid": (flags, np.dtype(bool), False),
    }
    for name, (layout, dtype, fill) in specs.items():
        group.create_array(
            name,
            shape=(0, h, w) if name in ("raw", "clean") else (0,),
            dtype=dtype,
            fill_value=fill,
            compressors=compressors(config, dtype.itemsize),
            config=_ARRAY_CONFIG,
            **layout,
        )


def _resize_keeping_chunks(arr: zarr.Array, shape: tuple[int, ...]) -> None:
    try:
        resize = arr.async_array.resize
        sync(resize(shape, delete_outside_chunks=False))
    except (AttributeError, TypeError):  # a zarr without the option: let it enumerate
        arr.resize(shape)


def _time_chunk(arr: zarr.Array) -> int:
    """Length along time of the array's stored chunks (its shards, when sharded)."""
    return int((arr.shards or arr.chunks)[0])


def compressors(config: StoreConfig, itemsize: int) -> list[BloscCodec] | None:
    """Blosc with the byte shuffle, or bit shuffle for 1-byte data (where bytes cannot move).

    Measured on phantom camera frames (512x512, one core, cache-cold): lz4 clevel 1
    with byte shuffle encodes a uint16 + float32 frame pair in 0.9 ms at ratios 2.0 /
    1.3; bit shuffle compresses 8-11 % better for 2x the CPU (1.8 ms); blosc-zstd
    clevel 1 takes 4-5 ms. On a 2-core machine the CPU matters more than the disk.
    """
    if config.codec == "none":
        return None
    shuffle: Literal["bitshuffle", "shuffle"] = "bitshuffle" if itemsize == 1 else "shuffle"
    return [
        BloscCodec(cname=config.codec, clevel=config.clevel, shuffle=shuffle, typesize=itemsize)
    ]


class _FlagChunk:
    """In-memory copy of one chunk of each 1-D array, so those chunks are written whole."""

    __slots__ = FLAGS

    def __init__(self, n: int) -> None:
        self.t_ns = np.zeros(n, np.int64)
        self.valid = np.zeros(n, bool)
        self.clean_valid = np.zeros(n, bool)


class StoreArrays:
    """The opened arrays of one store. Raises ``OSError`` (and zarr's errors) as is.

    Parameters
    ----------
    path
        The store folder.
    group
        The store's group, opened for writing.
    """

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = path
        self.arrays: dict[str, zarr.Array] = {}
        for name in ARRAYS:
            node = group[name]
            if not isinstance(node, zarr.Array):
                raise ValueError(f"{path / name} is not a Zarr array")
            self.arrays[name] = node.with_config(_ARRAY_CONFIG)
        raw = self.arrays["raw"]
        if raw.shards is None:
            raise ValueError(f"{path / 'raw'} is not sharded")
        self.frames_per_shard = int(raw.shards[0])
        self.flag_chunk = int(self.arrays["valid"].chunks[0])
        workers = min(4, os.cpu_count() or 1)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="deepdenoise-store")
        self._direct = {
            name: DirectWriter.maybe(arr, path / name, self._executor) if DIRECT_WRITES else None
            for name, arr in self.arrays.items()
        }
        self._flags: OrderedDict[int, _FlagChunk] = OrderedDict()
        lengths = {int(a.shape[0]) for a in self.arrays.values()}
        self.length = int(raw.shape[0])
        if len(lengths) > 1:  # a writer killed while resizing: make them agree again
            log.info("%s: time axes of lengths %s; resizing all", path, sorted(lengths))
            self.length = -1
            self.resize(max(lengths))

    def close(self) -> None:
        self._flags.clear()
        self._executor.shutdown()

    # ------------------------------------------------------------------ time axis
    def grow(self, needed: int) -> None:
        """Make the time axis at least ``needed`` long, in steps of whole shards."""
        if needed > self.length:
            step = GROWTH_SHARDS * self.frames_per_shard
            self.resize(math.ceil(needed / step) * step)

    def resize(self, length: int) -> None:
        """Set the time axis of every array; chunks wholly past a shrunk end are deleted."""
        if length == self.length:
            return
        for name, arr in self.arrays.items():
            if length < arr.shape[0] and self._default_keys(arr):
                # zarr would enumerate every chunk of both shapes (unbounded for a sparse
                # axis); the files that exist say which chunks there are.
                _resize_keeping_chunks(arr, (length, *arr.shape[1:]))
                self._delete_from(name, -(-length // _time_chunk(arr)))
            else:
                arr.resize((length, *arr.shape[1:]))
        self.length = length
        for c in [c for c in self._flags if c * self.flag_chunk >= length]:
            del self._flags[c]  # past the end: fill again after a trim

    def _delete_from(self, name: str, first: int) -> None:
        """Delete the chunks (shards) of ``name`` whose time index is ``first`` or more."""
        try:
            entries = list((self.path / name / "c").iterdir())
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.isdigit() and int(entry.name) >= first:
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)

    @staticmethod
    def _default_keys(arr: zarr.Array) -> bool:
        encoding = arr.metadata.to_dict().get("chunk_key_encoding", {})
        return encoding == {"name": "default", "configuration": {"separator": "/"}}

    # ------------------------------------------------------------------ pixels
    def write_block(self, name: str, blk: Block, fill: float) -> None:
        """Put a block's filled frames into ``raw`` or ``clean``; other slots keep theirs."""
        k = self.frames_per_shard
        start = blk.block * k
        arr = self.arrays[name]
        self.grow(start + k)
        if blk.count == k or not self._shard_exists(name, blk.block):
            # Complete, or nothing of it on disk yet (its holes are fill anyway):
            # one aligned whole-shard write instead of one write per run.
            data = blk.data
            data[~blk.filled] = fill
        else:
            runs = blk.runs()
            if len(runs) <= 2:  # zarr reads, patches and rewrites the shard per run
                for a, b in runs:
                    arr[start + a : start + b] = blk.data[a:b]
                return
            data = np.ascontiguousarray(arr[start : start + k])  # one decode, one encode
            data[blk.filled] = blk.data[blk.filled]
        direct = self._direct[name]
        if direct is not None:
            direct.write_shard(blk.block, data)
        else:
            arr[start : start + k] = data

    def _shard_exists(self, name: str, block: int) -> bool:
        key = self.arrays[name].metadata.encode_chunk_key((block, 0, 0))
        return self.path.joinpath(name, *key.split("/")).exists()

    # ------------------------------------------------------------------ flags
    def newly_valid(self, blocks: list[Block]) -> int:
        """How many of the blocks' frames are not yet flagged ``valid``."""
        n = 0
        for blk in blocks:
            chunk, at = self._flag_chunk(blk)
            n += int(np.count_nonzero(blk.filled & ~chunk.valid[at : at + blk.filled.size]))
        return n

    def write_flags(self, name: str, blocks: list[Block]) -> None:
        """Set the blocks' entries of 1-D array ``name`` and write the touched chunks."""
        dirty: dict[int, _FlagChunk] = {}
        for blk in blocks:
            chunk, at = self._flag_chunk(blk)
            part = getattr(chunk, name)[at : at + blk.filled.size]
            if name == "t_ns":
                part[blk.filled] = blk.t_ns[blk.filled]
            else:
                part |= blk.filled
            dirty[blk.block * self.frames_per_shard // self.flag_chunk] = chunk
        direct = self._direct[name]
        for c, chunk in sorted(dirty.items()):
            values = getattr(chunk, name)
            if direct is not None:
                direct.write_chunk(c, values)
            else:
                c0 = c * self.flag_chunk
                stop = min(c0 + self.flag_chunk, self.length)
                self.arrays[name][c0:stop] = values[: stop - c0]

    def _flag_chunk(self, blk: Block) -> tuple[_FlagChunk, int]:
        start = blk.block * self.frames_per_shard
        c = start // self.flag_chunk
        chunk = self._flags.get(c)
        if chunk is None:
            chunk = _FlagChunk(self.flag_chunk)
            c0 = c * self.flag_chunk
            stop = min(c0 + self.flag_chunk, self.length)
            for name in FLAGS:
                getattr(chunk, name)[: stop - c0] = self.arrays[name][c0:stop]
            self._flags[c] = chunk
            while len(self._flags) > 4:
                self._flags.popitem(last=False)  # written already: only the copy goes
        self._flags.move_to_end(c)
        return chunk, start - c * self.flag_chunk

    def scan(self) -> FlagScan:
        return scan_flags(self.path, self.arrays["valid"], self.arrays["clean_valid"])
