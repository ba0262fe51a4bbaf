"""The disk stage: one thread owns every open series store.

Raw frames arrive from the receiver *before* inference, clean frames from the
inference stage; both go through one FIFO so a series' ``end`` (forwarded by the
inference stage after its last clean frame) is seen after everything it closes. Raw
frames of the same series started again before that (``end`` then ``start``) are
written at once, to the same store, which then stays open for them at that end (whose
``series_end`` tells the ended run's totals as of its last raw frame).
The writer never drops: its queue blocks producers when full.

Nothing is lost silently. A frame that does not reach the disk (a full disk, an IO
error, a store that cannot be created) is counted, one by one, as dropped with reason
``store_raw`` or ``store_clean``, and each kind of failure is reported as an ``error``
event (rate-limited per kind and series). The store's health is in ``status``; a store
that could not be created is tried again every ``RETRY_S`` seconds, and block writes
go on after a failure, so writing resumes by itself when space comes back. When a
series ends, ``series_end`` gives the store's own totals: frames on disk, and missing
frames (holes up to the last index: never received, or lost on the way to disk).

Frames rejected for their series but readable (``RejectedOp``) are kept apart, in
``rejected/<series>.zarr``, buffered and written with the periodic flush; one that does
not reach the disk is counted as ``store_rejected``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .._errors import StoreError, StoreHeldError, StoreUnlockableError, StoreWriteError
from .._types import is_series_name
from ..store import (
    RejectedStore,
    SeriesStore,
    StoreConfig,
    closed_totals,
    left_open,
    recorded_frames,
    store_path,
)
from ._messages import (
    CleanOp,
    EndOp,
    FlushOp,
    ModelOp,
    RawEndOp,
    RawOp,
    RejectedOp,
    TracesOp,
    WriterOp,
)

log = logging.getLogger(__name__)

#: Stores closed at start named in the log line, at most.
CLOSED_SHOWN = 10

#: Tells the writer thread that nothing more will come (not a writer operation).
_CLOSE = object()


def _frames_of(items: Iterable[object]) -> Counter[str]:
    """The frames ``items`` carry, by kind (``raw``, ``clean``, ``traces``, ``rejected``)."""
    kinds = {RawOp: "raw", CleanOp: "clean", TracesOp: "traces", RejectedOp: "rejected"}
    return Counter(kinds[type(item)] for item in items if type(item) in kinds)


#: Longest wait for room in a full queue before a put tries again (the writer thread
#: wakes it sooner, when it takes an operation).
PUT_TRY_S = 0.05
#: Longest wait of the writer thread for an operation (a put wakes it sooner): a
#: periodic flush may be due meanwhile.
TAKE_WAIT_S = 0.25
#: Seconds before a store that could not be created is tried again.
RETRY_S = 1.0
#: A store error within this many seconds makes the health "failing".
HEALTH_WINDOW_S = 10.0
_IO = (StoreError, OSError, ValueError)
#: A series' rejected frames are written once this many bytes wait (else on the flush).
REJECTED_BLOCK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class _RunEnd:
    """A run's raw totals at its end: raw frames applied to the writer so far (all
    series' runs of it), its frames on disk, its highest index (None: no store)."""

    raw_applied: int
    frames: int
    last: int | None


def _left_open_totals(store: SeriesStore) -> str:
    """A left-open store's totals as the restart tells them, with the raw frames on disk
    that were never denoised (a kill during a backlog left them unsaid: a trial)."""
    info = store.info
    frames, missing, clean = info.get("frames"), info.get("missing"), info.get("clean_frames")
    undenoised = (
        f", {frames - clean} not denoised"
        if isinstance(frames, int) and isinstance(clean, int) and clean < frames
        else ""
    )
    lost = info.get("lost")
    lost = lost if isinstance(lost, dict) else {}
    told = [f"{n} {kind}" for kind, n in lost.items() if isinstance(n, int) and n > 0]
    lost_text = f", lost to write errors: {', '.join(told)}" if told else ""  # over its life
    return f"{store.series} ({frames} frames, {missing} missing{undenoised}{lost_text})"


class WriterGaveUp(Exception):
    """A put the writer refuses -- a stop gave up on it (a disk that does not answer),
    or its thread has ended or failed: the operation's frames are counted lost, and the
    stage that put it stops."""


def _with_unstored(lost: Mapping[str, int], unstored: Counter[str]) -> dict[str, int]:
    """A store's lost frames by kind, with those lost before it opened (no store)."""
    total = dict(lost)
    for kind, frames in unstored.items():
        total[kind] = total.get(kind, 0) + frames
    return total


def _nbytes(op: WriterOp) -> int:
    return op.pixels.nbytes if isinstance(op, RawOp | RejectedOp | CleanOp) else 0


class Writer:
    """Writes raw and clean frames to one Zarr store per series on its own thread.

    Parameters
    ----------
    root
        Folder holding ``<series>.zarr`` stores.
    attrs
        Provenance recorded in every store (model, config, protocol version).
    on_error
        Called with ``(series, kind, message)`` for each store failure (``store_open``,
        ``store_write``, ``store_flags``, ``store_removed``, ``store_attrs``, ``store_close``,
        ``store_rejected``; ``frame_meta``: the frames' ``meta``, counted in
        ``frame_meta_lost``, not as frames lost).
    on_lost
        Called with ``(reason, frames)`` for frames that will not be on disk
        (``store_raw`` / ``store_clean`` / ``store_traces``; ``store_rejected``: the pixels
        of a rejected frame).
    on_series_end
        Called with ``(series, totals)`` once a series' store is closed.
    on_died
        Called with the error should the writer thread fail (no frame can be written
        after that: later puts count their frames lost and raise WriterGaveUp).
    """

    def __init__(
        self,
        root: Path,
        config: StoreConfig,
        attrs: Mapping[str, Any],
        on_error: Callable[[str, str, str], None],
        on_lost: Callable[[str, int], None],
        on_series_end: Callable[[str, dict[str, Any]], None],
        depth: int,
        flush_interval_s: float = 2.0,
        store_budget: int | None = None,
        on_died: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.root = root
        self._on_died = on_died
        self._config = config
        self._attrs = dict(attrs)
        self._on_error = on_error
        self._on_lost = on_lost
        self._on_series_end = on_series_end
        self._queue: queue.Queue[WriterOp | object] = queue.Queue(maxsize=depth)
        # Why puts are refused, once a stop gave up on a stuck writer or the thread ended:
        # what is put after that is counted lost, not queued. Puts, the thread's take (an
        # operation is in hand as it leaves the queue) and that drain of the queue take
        # turns under _turns, which also wakes the thread when an operation comes and a
        # put when room does.
        self._refusing: str | None = None
        self._given_up = False  # by a stop: the thread, should it come back, writes no more
        self._turns = threading.Condition()
        self._stores: dict[str, SeriesStore] = {}
        self._store_closing: SeriesStore | None = None  # out of _stores while it closes
        self._in_hand: object = None  # the operation being applied, until a store has it
        self._rejected: dict[str, RejectedStore] = {}
        self.rejected_kept = 0  # rejected frames written whole, all series
        self.frame_meta_lost = 0  # frames whose meta a store could not write, all series
        self._retry_at: dict[str, float] = {}  # series whose store could not be created
        # Frames of a series that found no open store, by kind, and the index after the
        # last of them: its series_end must tell them, even when no store ever opened.
        self._unstored: dict[str, Counter[str]] = {}
        self._unstored_end: dict[str, int] = {}
        # Series whose last raw frame before an `end` is in (RawEndOp), its EndOp not yet
        # (inference is behind): each run's raw totals as of its end, in order. A next
        # run's frames are written meanwhile, to the same store, which stays open for
        # them (they were kept back in memory until then: a backlog of frames read ahead
        # of inference made that minutes, and a kill -9 lost them: a fault trial).
        self._closing: dict[str, list[_RunEnd]] = {}
        self._raw_applied: Counter[str] = Counter()  # raw frames applied, by series
        self._flush_interval_s = flush_interval_s
        self._store_budget = store_budget
        self._thread = threading.Thread(target=self._run, name="deepdenoise-writer", daemon=True)
        self._errors: Counter[str] = Counter()
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._last_error: tuple[float, str] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def depth(self) -> int:
        return self._queue.qsize()

    def put(self, op: WriterOp) -> None:
        """Queue an operation; blocks while the queue is full (disk never drops). Once a
        stop has given up on a stuck writer (:meth:`abandon_if_stuck`), its frames are
        counted lost instead -- a frame a stage held while it waited for room, say --
        and WriterGaveUp tells the stage to go (the stop counts what it held)."""
        with self._bytes_lock:
            self._queued_bytes += _nbytes(op)
        with self._turns:
            while True:
                if self._refusing is not None:
                    with self._bytes_lock:
                        self._queued_bytes -= _nbytes(op)
                    self._count_lost(_frames_of([op]))
                    raise WriterGaveUp(f"{self._refusing}; this operation's frames are lost")
                if self._put_now(op):
                    return
                self._turns.wait(PUT_TRY_S)  # the lock is free meanwhile: others go on

    def _put_now(self, item: object) -> bool:
        """Queue ``item`` if there is room (under ``_turns``), waking the thread."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        self._turns.notify_all()
        return True

    def _take(self, wait: bool = True) -> object:
        """The next queued item, or None after ``TAKE_WAIT_S`` without one (at once
        without ``wait``); an operation is in hand as it leaves the queue, so a stop's
        drain finds each either queued or in hand."""
        with self._turns:
            if self._queue.empty() and wait:
                self._turns.wait(TAKE_WAIT_S)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return None
            if item is not _CLOSE:
                self._in_hand = item
            self._turns.notify_all()  # room for a put waiting
            return item

    @property
    def queued_bytes(self) -> int:
        """Pixels waiting in the queue."""
        return self._queued_bytes

    @property
    def store_bytes(self) -> int:
        """The open stores' block buffers (frames not yet written whole)."""
        stores: list[SeriesStore | RejectedStore] = [*self._stores.values()]
        stores += self._rejected.values()
        return sum(store.buffered_bytes for store in stores)

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything buffered so far; True once it is on disk (or counted lost)."""
        done = threading.Event()
        try:
            self.put(FlushOp(done))
        except WriterGaveUp:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Drain the queue, close every store and stop the thread."""
        if self._thread.is_alive():
            deadline = time.monotonic() + timeout
            with self._turns:  # a full queue before a writer that does not answer: stuck
                while not self._put_now(_CLOSE):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._turns.wait(left)
            self._thread.join(timeout)

    def abandon_if_stuck(self) -> str | None:
        """After :meth:`close`: None when the thread finished; else (a disk that does not
        answer) the frames not on disk -- queued, or held by its stores -- are counted
        lost (``dropped.store_raw`` ...), logged, and described in the returned message."""
        if not self._thread.is_alive():
            return None
        with self._turns:  # the thread counts nothing after this (_thread_lost)
            self._given_up = True
        lost = self._refuse(  # the thread is stuck inside a write: the queue is ours
            f"the stop gave up on the store under {self.root} (a disk that does not answer?)"
        )
        with self._turns:
            lost += _frames_of([self._in_hand])
        for store in [*self._stores.values(), self._store_closing]:
            if store is not None:
                lost += store.unwritten()
        lost["rejected"] += sum(store.buffered_rows for store in list(self._rejected.values()))
        lost = +lost  # the kinds with frames
        self._count_lost(lost)
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(lost.items())) or "0"
        message = (
            f"the store under {self.root} did not finish writing within the stop's time "
            f"(a disk that does not answer?): {counts} frame(s) not on disk, counted in "
            "dropped.store_*; the series stores are left open (info reads what they hold)"
        )
        log.error("%s", message)
        return message

    def _refuse(self, why: str) -> Counter[str]:
        """From now on puts count their own frames lost and raise WriterGaveUp (``why``);
        the frames still queued are taken out and returned, the puts waiting woken."""
        lost: Counter[str] = Counter()
        with self._turns:
            if self._refusing is None:
                self._refusing = why
            while True:
                try:
                    lost += _frames_of([self._queue.get_nowait()])
                except queue.Empty:
                    break
            self._turns.notify_all()
        return lost

    def _count_lost(self, frames: Counter[str]) -> None:
        for kind, n in frames.items():
            self._on_lost(f"store_{kind}", n)

    def _thread_lost(self, kind: str, frames: int, in_hand: bool = False) -> None:
        """Count frames the thread lost (``in_hand``: the operation it holds, which is
        then no longer held), unless a stop gave up on it: the stop counted what it held,
        and a write that came back after that counted a frame twice (4 for 3)."""
        with self._turns:
            if in_hand:
                self._in_hand = None
            if not self._given_up:
                self._on_lost(kind, frames)

    def health(self) -> dict[str, Any]:
        """``ok``, or ``failing`` while store errors happened in the last 10 s."""
        last = self._last_error
        failing = last is not None and time.monotonic() - last[0] < HEALTH_WINDOW_S
        report: dict[str, Any] = {
            "health": "failing" if failing else "ok",
            "errors": dict(self._errors),
            "open_stores": len(self._stores),
            "rejected_kept": self.rejected_kept,
            "frame_meta_lost": self.frame_meta_lost,
        }
        if last is not None:
            report["last_error"] = last[1]
            report["last_error_age_s"] = round(time.monotonic() - last[0], 3)
        return report

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        # Partial shards are flushed every flush_interval_s so a killed process loses at
        # most that much of a slow stream; fast streams complete whole shards long before.
        last_flush = time.monotonic()
        try:
            self._find_left_open()
            while True:
                # None: nothing came, only a periodic flush (or a left-open store) is due
                item = self._take(wait=not self._left_open_paths)
                if item is _CLOSE or self._given_up:
                    break
                op = cast("WriterOp | None", item)
                if op is not None:
                    with self._bytes_lock:
                        self._queued_bytes -= _nbytes(op)
                if isinstance(op, FlushOp) or self._due(last_flush):
                    self._flush_all()
                    last_flush = time.monotonic()
                if self._given_up:  # back from a flush the stop gave up on: no more
                    break
                if isinstance(op, FlushOp):  # written out just above
                    self._in_hand = None
                    op.done.set()
                elif op is not None:
                    self._apply(op)
                    if self._given_up:  # back from a write the stop gave up on: no more
                        break
                    self._in_hand = None
                    self._keep_to_budget()
                else:  # idle: a store left open, closed between frames
                    self._close_next_left_open()
        except BaseException as exc:  # surfaced to the service, which re-raises it on stop
            self.error = exc
            log.exception("writer thread failed")
        finally:
            self._end()

    def _end(self) -> None:
        """The thread's last act: close every store (or, given up on by a stop, let go
        of them unwritten: what they hold was counted lost), then refuse later puts."""
        if self._given_up:
            for store in [*self._stores.values(), self._store_closing]:
                if store is not None:
                    self._guarded(store.series, "store_close", store.release)
            for rejected in self._rejected.values():
                rejected.close()
            log.warning("writer: the disk answered after the stop gave up on it; let go")
        else:
            for series in list(self._closing):  # runs ended whose EndOp never came
                while series in self._closing:
                    self._end_run(series)
            for series in [*self._stores, *(s for s in self._unstored if s not in self._stores)]:
                self._close_store(series)
            for series in list(self._rejected):
                self._close_rejected(series)
        why = (
            "the writer thread ended" if self.error is None else f"the writer failed ({self.error})"
        )
        lost = self._refuse(why)
        if self.error is not None:  # it died with an operation in hand
            lost += _frames_of([self._in_hand])
            self._in_hand = None
        lost = +lost
        if lost:
            log.error("%s: %s frame(s) queued or in hand are not on disk", why, dict(lost))
            self._count_lost(lost)
        if self.error is not None and self._on_died is not None:
            self._on_died(self.error)

    def _due(self, last_flush: float) -> bool:
        return time.monotonic() - last_flush >= self._flush_interval_s

    def _apply(self, op: WriterOp) -> None:
        if isinstance(op, ModelOp):
            models = [*self._attrs.get("models", []), op.model_id]
            self._attrs.update(model=op.model_id, models=models)
            for series, open_store in self._stores.items():
                self._guarded(
                    series,
                    "store_attrs",
                    lambda s=open_store: s.update_attrs(model=op.model_id, models=models),
                )
            return
        if isinstance(op, RawEndOp):
            self._closing.setdefault(op.series, []).append(self._run_end(op.series))
            return
        if isinstance(op, EndOp):
            self._end_run(op.series)
            return
        if isinstance(op, FlushOp):
            return
        if isinstance(op, TracesOp):
            self._write_traces(op)
            return
        if isinstance(op, RejectedOp):
            self._keep_rejected(op)
            return
        kind = "raw" if isinstance(op, RawOp) else "clean"
        self._raw_applied[op.series] += kind == "raw"
        store = self._store_for(op)
        if store is None:
            self._thread_lost(f"store_{kind}", 1, in_hand=True)
            self._note_unstored(op.series, kind, op.index)
            return
        self._in_hand = None  # the store's now: its buffers count it
        try:
            if isinstance(op, RawOp):
                store.write_raw(op.index, op.pixels, op.t_ns, op.meta)
            else:
                store.write_clean(op.index, op.pixels)
        except StoreWriteError as exc:  # earlier blocks failed; this frame is buffered
            self._report_lost(op.series, exc)
        except _IO as exc:
            self._failure(op.series, "store_write", f"frame {op.index}: {exc}")
            self._thread_lost(f"store_{kind}", 1)
        self._tell_meta_lost(op.series, store)

    def _run_end(self, series: str) -> _RunEnd:
        """A run's raw totals as its last raw frame is in: written out first, so the
        store's count is the run's (a next run's frames may follow before it closes)."""
        store = self._stores.get(series)
        if store is None:
            return _RunEnd(self._raw_applied[series], 0, None)
        self._guarded(series, "store_write", store.flush)
        return _RunEnd(self._raw_applied[series], store.frames_written, store.max_index)

    def _end_run(self, series: str) -> None:
        """A run's end (EndOp, after its denoised frames): its store closed, or, where
        its next run has sent frames meanwhile (or ended too), left open for them, and
        the run's totals told as of its end."""
        runs = self._closing.get(series) or [_RunEnd(self._raw_applied[series], 0, None)]
        run = runs.pop(0)
        if not runs:
            self._closing.pop(series, None)
        store = self._stores.get(series)
        if store is not None and (runs or self._raw_applied[series] > run.raw_applied):
            missing = 0 if run.last is None else run.last + 1 - run.frames
            lost = _with_unstored(store.lost, self._unstored.get(series, Counter()))
            self._on_series_end(
                series, {"frames": run.frames, "missing": missing, "lost": lost, "closed": False}
            )
            return
        self._close_store(series)
        self._close_rejected(series)
        self._retry_at.pop(series, None)

    def _write_traces(self, op: TracesOp) -> None:
        store = self._stores.get(op.series)  # traces follow their raw frame: no store, no row
        if store is None:
            self._thread_lost("store_traces", 1, in_hand=True)
            self._note_unstored(op.series, "traces", op.index)
            return
        self._in_hand = None  # the store's now: its trace rows count it
        try:
            store.write_traces(op.index, op.values, op.attrs)
        except StoreWriteError as exc:
            self._report_lost(op.series, exc)
        except _IO as exc:
            self._failure(op.series, "store_traces", f"traces of frame {op.index}: {exc}")
            self._thread_lost("store_traces", 1)

    def _keep_rejected(self, op: RejectedOp) -> None:
        store = self._rejected.get(op.series)
        if store is None:
            store = self._rejected[op.series] = RejectedStore(self.root, op.series)
        store.add(op.reason, op.index, op.pixels, op.t_ns, op.t_recv_ns, op.meta)
        self._in_hand = None  # in its buffered rows now
        if store.buffered_bytes >= REJECTED_BLOCK_BYTES:
            self._flush_rejected(op.series, store)

    def _flush_rejected(self, series: str, store: RejectedStore) -> None:
        before = store.written
        self._guarded(series, "store_rejected", store.flush)
        self.rejected_kept += store.written - before
        self._tell_meta_lost(series, store)

    def _close_rejected(self, series: str) -> None:
        store = self._rejected.get(series)
        if store is not None:
            self._flush_rejected(series, store)  # still listed: counted should it hang
            del self._rejected[series]
            store.close()
            if store.written:
                log.info("%d rejected frame(s) of %r kept in %s", store.written, series, store.path)

    def _store_for(self, op: RawOp | CleanOp) -> SeriesStore | None:
        existing = self._stores.get(op.series)
        if existing is not None:
            return existing
        retry_at = self._retry_at.get(op.series)
        if retry_at is not None and time.monotonic() < retry_at:
            return None
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
        except _IO as exc:
            self._retry_at[op.series] = time.monotonic() + RETRY_S
            self._failure(op.series, "store_open", f"cannot open the store: {exc}")
            return None
        self._retry_at.pop(op.series, None)
        self._stores[op.series] = store
        log.info("%s store %s", "resumed" if store.resumed else "created", store.path)
        return store

    def _keep_to_budget(self) -> None:
        """Over its budget, write the stores' partial blocks and free spare buffers."""
        if self._store_budget is None or self.store_bytes <= self._store_budget:
            return
        for series, store in sorted(self._stores.items(), key=lambda item: -item[1].buffered_bytes):
            self._guarded(series, "store_write", store.flush)
            store.free_spares()
            if self.store_bytes <= self._store_budget:
                return
        for series, rejected in list(self._rejected.items()):
            self._flush_rejected(series, rejected)

    def _flush_all(self) -> None:
        for series, store in list(self._stores.items()):
            self._guarded(series, "store_write", store.flush)
        for series, rejected in list(self._rejected.items()):
            self._flush_rejected(series, rejected)

    def _note_unstored(self, series: str, kind: str, index: int) -> None:
        self._unstored.setdefault(series, Counter())[kind] += 1
        self._unstored_end[series] = max(self._unstored_end.get(series, 0), index + 1)

    def _close_store(self, series: str) -> None:
        store = self._stores.pop(series, None)
        unstored = self._unstored.pop(series, Counter())
        end = self._unstored_end.pop(series, 0)
        left_open_before = store is None and not unstored
        if left_open_before:
            store = self._left_open(series)
        if store is None:  # no store open: a series ended with no frame still ends, and
            # series_end says so (0 stored); a second `end` gives the closed store's totals
            closed = None if unstored else closed_totals(store_path(self.root, series))
            self._on_series_end(
                series,
                closed
                or {
                    "frames": 0,
                    "missing": end,
                    "lost": _with_unstored({"raw": 0, "clean": 0}, unstored),  # keys as ever
                    "closed": False,
                },
            )
            return
        self._store_closing = store  # counted by abandon_if_stuck should its close hang
        self._guarded(series, "store_close", store.close)
        self._store_closing = None
        self._tell_meta_lost(series, store)
        info = store.info
        lost = _with_unstored(store.lost, unstored)
        recorded = bool(info.get("closed", False))
        if left_open_before and recorded:  # named with those closed between frames (one
            # whose close failed stays left open: tried again between frames)
            self._left_open_done(store.path, store)
        if recorded:
            frames, missing = int(info["frames"]), int(info["missing"])
            clean = int(info.get("clean_frames", store.clean_written))
        else:  # its totals could not be recorded (a resumed store's are stale): as counted
            frames, last, clean = store.frames_written, store.max_index, store.clean_written
            missing = 0 if last is None else last + 1 - frames
        totals = {"frames": frames, "missing": missing, "lost": lost, "closed": recorded}
        self._on_series_end(series, {**totals, "clean": clean})

    def _find_left_open(self) -> None:
        """The stores a session before this one left open (a kill -9, a power cut):
        their time axis is allocated ahead, and readers saw thousands of frames of zeros
        until their series streamed again (an operator's trial). They are closed one at
        a time while the writer has nothing else to do (:meth:`_close_next_left_open`):
        closing a thousand took 27 s, and new frames waited behind it."""
        self._left_open_closed: list[str] = []
        self._left_open_resumed: list[str] = []  # by their series' frames, before closed
        self._left_open_paths = [p for p in sorted(self.root.glob("*.zarr")) if left_open(p)]
        if self._left_open_paths:
            log.info(
                "%d store(s) an earlier session left open (killed, or a stop that could not "
                "close them: a full disk?): closing them between frames",
                len(self._left_open_paths),
            )
        self._left_open_paths.reverse()  # popped from the end: in name order

    def _close_next_left_open(self) -> None:
        """Close one of the stores :meth:`_find_left_open` found (a store this session
        has opened meanwhile is its own series': left to it); after the last, one line
        names them. A store another process is writing is left to it, and so is every
        store where no lock can tell (no ``flock``: Windows, some network file systems);
        a damaged one stays as it is, and the writer goes on."""
        if not self._left_open_paths:
            return
        path = self._left_open_paths[-1]
        store = None
        if path.name.removesuffix(".zarr") in self._stores:
            self._left_open_resumed.append(path.name.removesuffix(".zarr"))
        else:
            try:
                store = self._closed_if_left_open(path)
            except StoreHeldError:  # a service started beside this one writes it
                log.info("%s is being written by another process: left to it", path)
            except Exception as exc:  # any damage (a store's own series finds it again)
                log.warning("%s was left open and stays so: %s", path, exc)
        self._left_open_done(path, store)

    def _left_open_done(self, path: Path, store: SeriesStore | None) -> None:
        """One of the stores found left open is seen to (``store``: closed, its totals
        recorded); after the last, one line names them -- also those a series' ``end``
        closed first (they went unnamed: a trial) and those its frames resumed."""
        found = [p for p in self._left_open_paths if p.name == path.name]  # p: resolved
        if not found:
            return
        self._left_open_paths.remove(found[0])
        if store is not None:
            self._left_open_closed.append(_left_open_totals(store))
        closed, resumed = self._left_open_closed, self._left_open_resumed
        if self._left_open_paths:
            return
        if closed:
            more = " ..." if len(closed) > CLOSED_SHOWN else ""
            log.warning(
                "closed %d store(s) an earlier session left open (killed, or a stop that "
                "could not close them: a full disk?): %s; missing counts the holes up to "
                "each one's last frame on disk, and frames sent after it are not known "
                "(unless a stop on a full disk set its totals aside: then up to its last)",
                len(closed),
                ", ".join(closed[:CLOSED_SHOWN]) + more,
            )
        if resumed:
            more = " ..." if len(resumed) > CLOSED_SHOWN else ""
            log.warning(
                "%d store(s) an earlier session left open were resumed by their series' "
                "frames (their series_end tells their totals): %s",
                len(resumed),
                ", ".join(resumed[:CLOSED_SHOWN]) + more,
            )

    def _closed_if_left_open(self, path: Path) -> SeriesStore | None:
        """The series store at ``path``, closed, if it was left open and no live process
        holds it; else None (StoreError: another process writes it)."""
        series = path.name.removesuffix(".zarr")
        if not (is_series_name(series) and left_open(path)):
            return None
        shape, dtype = recorded_frames(path)  # no flags read before the lock is taken
        try:  # StoreHeldError: held by a live writer
            store = SeriesStore(
                self.root, series, shape, dtype, config=self._config, locked_only=True
            )
        except StoreUnlockableError:  # nothing can tell whether another service writes it
            return None
        store.close()
        return store

    def _left_open(self, series: str) -> SeriesStore | None:
        """The series' store on disk, opened, where a session before this one left it
        unclosed (a kill -9) and this one wrote nothing to it (every frame a duplicate):
        closed now, its totals are told and recorded and its time axis trimmed (it said
        0 on disk, and stayed open: a fault trial)."""
        path = store_path(self.root, series)
        if not left_open(path):
            return None
        try:
            shape, dtype = recorded_frames(path)
            store = SeriesStore(
                self.root, series, shape, dtype, config=self._config, attrs=self._attrs
            )
        except _IO as exc:
            self._failure(series, "store_open", f"cannot open the store to close it: {exc}")
            return None
        log.info("closing %s, left open by an earlier session", store.path)
        return store

    # ------------------------------------------------------------------ failures
    def _guarded(self, series: str, kind: str, action: Callable[..., Any], *args: Any) -> None:
        try:
            action(*args)
        except StoreWriteError as exc:
            self._report_lost(series, exc)
        except _IO as exc:
            self._failure(series, kind, str(exc))
        store = self._stores.get(series)
        if store is not None:  # a flush appends the frames' meta too
            self._tell_meta_lost(series, store)

    def _tell_meta_lost(self, series: str, store: SeriesStore | RejectedStore) -> None:
        """Count and report the frames' meta the store could not write since last told
        (its frames go on: the meta has a file of its own)."""
        lost, why = store.take_frame_meta_lost()
        if lost > 0:
            self.frame_meta_lost += lost
            self._failure(
                series, "frame_meta", f"the meta of {lost} frame(s) is not on disk: {why}"
            )

    def _report_lost(self, series: str, exc: StoreWriteError) -> None:
        for kind, frames in exc.lost.items():
            if frames:
                self._thread_lost(f"store_{kind}", frames)
        self._failure(series, exc.kind, str(exc))

    def _failure(self, series: str, kind: str, message: str) -> None:
        self._errors[kind] += 1
        self._last_error = (time.monotonic(), f"{kind}: {message}")
        self._on_error(series, kind, message)
