"""ROI traces in a series store: ``traces`` (T, rois, columns) float32 beside the images.

Row ``t`` holds the traces of frame index ``t`` (NaN where there are none), so they line
up with ``raw``, ``clean`` and ``t_ns``. The array's attributes say what its rows and
columns are (``labels``, ``columns``) and how ΔF/F was computed (``baseline``). A series
whose ROIs change (``set_rois``) gets a new array for the new layout: ``traces_1``,
``traces_2``, ... each with its own attributes and ``first_index``; the store's
``deepdenoise.traces`` lists them in order. A resumed store continues its last array
when the layout is the same.

Frames are collected per chunk and written when the chunk is complete, when the stream
moves past it, and on flush (the service flushes every ``flush_interval_s``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from .._errors import StoreWriteError
from ._arrays import context
from ._config import StoreConfig
from ._layout import F4, _blosc

#: Bytes per chunk of a trace array (a thousand ROIs x 3 columns: ~87 frames).
TARGET_CHUNK_BYTES = 1 << 20
MIN_CHUNK_FRAMES, MAX_CHUNK_FRAMES = 16, 4096
BASE_NAME = "traces"


def trace_array_name(number: int) -> str:
    return BASE_NAME if number == 0 else f"{BASE_NAME}_{number}"


def layout_key(attrs: dict[str, Any]) -> str:
    """What makes two trace layouts the same: labels, columns and which pixels make
    each ROI (``rois_digest``: the same labels may be redrawn)."""
    return json.dumps([attrs.get("labels"), attrs.get("columns"), attrs.get("rois_digest")])


class TraceArray:
    """One open trace array; not thread-safe (the store's owner thread calls it)."""

    def __init__(
        self,
        path: Path,
        name: str,
        rois: int,
        columns: int,
        attrs: dict[str, Any] | None,
        config: StoreConfig,
    ) -> None:
        self.name = name
        where = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / name)}}
        ctx = context(config)
        if attrs is None:  # resume
            self._array = ts.open(where, open=True, context=ctx).result()
        else:
            frames = TARGET_CHUNK_BYTES // max(1, rois * columns * 4)
            chunk = int(min(MAX_CHUNK_FRAMES, max(MIN_CHUNK_FRAMES, frames)))
            codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
            codecs += _blosc(config, F4)
            spec = {
                **where,
                "metadata": {
                    "shape": [0, rois, columns],
                    "data_type": "float32",
                    "chunk_grid": {
                        "name": "regular",
                        "configuration": {"chunk_shape": [chunk, rois, columns]},
                    },
                    "chunk_key_encoding": {"name": "default"},
                    "fill_value": "NaN",
                    "codecs": codecs,
                    "dimension_names": ["t", "roi", "column"],
                    "attributes": attrs,
                },
            }
            self._array = ts.open(spec, create=True, context=ctx).result()
        shape = self._array.chunk_layout.read_chunk.shape
        if shape is None or shape[0] is None:
            raise ValueError(f"{path / name} has no regular chunk grid")
        self.chunk = int(shape[0])
        self.rois, self.columns = int(self._array.shape[1]), int(self._array.shape[2])
        self._length = int(self._array.shape[0])
        self._buffer = np.full((self.chunk, self.rois, self.columns), np.nan, dtype=F4)
        self._filled = np.zeros(self.chunk, dtype=bool)
        self._current: int | None = None  # the chunk the buffer holds
        self._adding = 0  # 1 while a row is being added, until it is in the buffer
        self.last_index: int | None = None  # highest index written this session

    @property
    def buffered_rows(self) -> int:
        """Frames' traces not on disk yet: buffered, being written, or being added (a
        write waiting for the previous chunk's rows to reach the disk)."""
        return int(np.count_nonzero(self._filled)) + self._adding

    def write(self, index: int, values: np.ndarray) -> None:
        """Buffer the traces of frame ``index`` (``[rois, columns]``)."""
        if values.shape != (self.rois, self.columns):
            raise ValueError(
                f"traces of shape {values.shape} do not fit {self.name} "
                f"({self.rois} rois x {self.columns} columns)"
            )
        chunk, slot = divmod(index, self.chunk)
        failed: StoreWriteError | None = None
        self._adding = 1
        try:
            if chunk != self._current:
                try:
                    self.flush()
                except StoreWriteError as exc:  # those rows are lost, not this one
                    failed = exc
                self._current = chunk
            self._buffer[slot] = values
            self._filled[slot] = True
        finally:
            self._adding = 0
        self.last_index = index if self.last_index is None else max(self.last_index, index)
        if failed is not None:
            raise failed
        if self._filled.all():
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows (only those filled: others keep what is on disk). Rows
        that cannot be written are given up: StoreWriteError counts them (``traces``)."""
        if self._current is None or not self._filled.any():
            return
        start = self._current * self.chunk
        try:
            self._grow(start + self.chunk)
            edges = np.flatnonzero(np.diff(np.concatenate(([0], self._filled.view(np.int8), [0]))))
            txn = ts.Transaction()
            view = self._array.with_transaction(txn)
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                view[start + a : start + b].write(self._buffer[a:b]).result()
            txn.commit_async().result()
        except (OSError, ValueError, RuntimeError) as exc:
            rows = int(np.count_nonzero(self._filled))
            raise StoreWriteError(
                f"{rows} frame(s)' traces not written to {self.name}: {exc}",
                lost={"traces": rows},
                kind="store_traces",
            ) from exc
        finally:  # written, or counted lost
            self._buffer.fill(np.nan)
            self._filled[:] = False

    def finish(self) -> None:
        """Flush and end the array after its last row (another layout follows)."""
        self.flush()
        if self.last_index is not None:
            self.resize(max(self.last_index + 1, 0))

    def resize(self, length: int) -> None:
        """Set the time axis (trimmed to the store's on close)."""
        if length != self._length:
            self._array = self._array.resize(exclusive_max=[length, None, None]).result()
            self._length = length

    def _grow(self, needed: int) -> None:
        if needed > self._length:
            self.resize(max(needed, 2 * self._length))


def existing_trace_arrays(path: Path) -> dict[str, dict[str, Any]]:
    """The trace arrays of a store and their attributes, in order."""
    found: dict[str, dict[str, Any]] = {}
    number = 0
    while (path / trace_array_name(number) / "zarr.json").exists():
        name = trace_array_name(number)
        meta = json.loads((path / name / "zarr.json").read_text(encoding="utf-8"))
        found[name] = dict(meta.get("attributes", {}))
        number += 1
    return found
