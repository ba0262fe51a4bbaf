"""The disk stage: one thread owns every open series store.

Raw frames arrive from the receiver *before* inference, clean frames from the
inference stage; both go through one FIFO so a series' ``end`` (forwarded by the
inference stage after its last clean frame) is seen after everything it closes.
The writer never drops: its queue blocks producers when full.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from .._errors import StoreError
from ..store import SeriesStore, StoreConfig
from ._messages import CleanOp, EndOp, FlushOp, ModelOp, RawOp, WriterOp

log = logging.getLogger(__name__)


#: Tells the writer thread that nothing more will come (not a writer operation).
_CLOSE = object()


class Writer:
    """Writes raw and clean frames to one Zarr store per series on its own thread.

    Parameters
    ----------
    root
        Folder holding ``<series>.zarr`` stores.
    attrs
        Provenance recorded in every store (model, config, protocol version).
    on_error
        Called with ``(series, message)`` when a store fails; the frame is counted as
        dropped (reason ``store_error``) by the caller-supplied ``on_drop``.
    """

    def __init__(
        self,
        root: Path,
        config: StoreConfig,
        attrs: Mapping[str, Any],
        on_error: Callable[[str, str], None],
        on_drop: Callable[[str], None],
        depth: int,
        flush_interval_s: float = 2.0,
    ) -> None:
        self.root = root
        self._config = config
        self._attrs = dict(attrs)
        self._on_error = on_error
        self._on_drop = on_drop
        self._queue: queue.Queue[WriterOp | object] = queue.Queue(maxsize=depth)
        self._stores: dict[str, SeriesStore] = {}
        self._failed: set[str] = set()
        self._flush_interval_s = flush_interval_s
        self._thread = threading.Thread(target=self._run, name="deepdenoise-writer", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def depth(self) -> int:
        return self._queue.qsize()

    def put(self, op: WriterOp) -> None:
        """Queue an operation; blocks while the queue is full (disk never drops)."""
        self._queue.put(op)

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything buffered so far; True once it is on disk."""
        done = threading.Event()
        self.put(FlushOp(done))
        return done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Drain the queue, close every store and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_CLOSE)
            self._thread.join(timeout)

    def _run(self) -> None:
        # Partial shards are flushed every flush_interval_s so a killed process loses at
        # most that much of a slow stream; fast streams complete whole shards long before.
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.25)
                except queue.Empty:
                    item = None  # nothing came: only a periodic flush may be due
                if item is _CLOSE:
                    break
                op = cast("WriterOp | None", item)
                if isinstance(op, FlushOp) or self._due(last_flush):
                    self._flush_all()
                    last_flush = time.monotonic()
                if isinstance(op, FlushOp):
                    op.done.set()
                elif op is not None:
                    self._apply(op)
        except BaseException as exc:  # surfaced to the service, which re-raises it on stop
            self.error = exc
            log.exception("writer thread failed")
        finally:
            for series in list(self._stores):
                self._close_store(series)

    def _due(self, last_flush: float) -> bool:
        return time.monotonic() - last_flush >= self._flush_interval_s

    def _apply(self, op: WriterOp) -> None:
        if isinstance(op, ModelOp):
            models = [*self._attrs.get("models", []), op.model_id]
            self._attrs.update(model=op.model_id, models=models)
            for open_store in self._stores.values():
                open_store.update_attrs(model=op.model_id, models=models)
            return
        if isinstance(op, EndOp):
            self._close_store(op.series)
            self._failed.discard(op.series)
            return
        if isinstance(op, FlushOp):
            return
        store = self._store_for(op)
        if store is None:
            self._on_drop(op.series)
            return
        try:
            if isinstance(op, RawOp):
                store.write_raw(op.index, op.pixels, op.t_ns)
            else:
                store.write_clean(op.index, op.pixels)
        except (StoreError, OSError, ValueError) as exc:
            self._on_error(op.series, f"writing frame {op.index} of {op.series!r} failed: {exc}")
            self._on_drop(op.series)

    def _store_for(self, op: RawOp | CleanOp) -> SeriesStore | None:
        existing = self._stores.get(op.series)
        if existing is not None or op.series in self._failed:
            return existing
        if not isinstance(op, RawOp):
            return None  # a clean frame whose raw never opened a store: nothing to add it to
        try:
            store = SeriesStore(
                self.root,
                op.series,
                (int(op.pixels.shape[0]), int(op.pixels.shape[1])),
                op.pixels.dtype,
                config=self._config,
                attrs=self._attrs,
            )
        except (StoreError, OSError, ValueError) as exc:
            self._failed.add(op.series)
            self._on_error(op.series, f"cannot open the store for series {op.series!r}: {exc}")
            return None
        self._stores[op.series] = store
        log.info("%s store %s", "resumed" if store.resumed else "created", store.path)
        return store

    def _flush_all(self) -> None:
        for series, store in self._stores.items():
            try:
                store.flush()
            except (StoreError, OSError, ValueError) as exc:
                self._on_error(series, f"flushing series {series!r} failed: {exc}")

    def _close_store(self, series: str) -> None:
        store = self._stores.pop(series, None)
        if store is None:
            return
        try:
            store.close()
        except (StoreError, OSError, ValueError) as exc:
            self._on_error(series, f"closing series {series!r} failed: {exc}")
