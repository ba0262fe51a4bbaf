"""The receive stage: decode, validate, detect gaps, fan out to disk and inference.

Runs on the thread that owns the input socket. Raw pixels are handed to the writer
*before* the inference queue so a model or GPU failure never loses raw data; with
``publish_raw`` they also go, as received, to the publish queue (topic ``raw``). A
frame rejected for its series (``series_mismatch``, ``duplicate``) still has readable
pixels: they go to the writer's side store of rejected frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from .._errors import (
    DeepDenoiseError,
    ProtocolError,
    SeriesNotOpenError,
    ServiceTimeoutError,
    StoreError,
    shown,
)
from ..engine import LARGEST_PIXEL, beyond_range, count_non_finite
from ..protocol import (
    TOPIC_RAW,
    Frame,
    Limits,
    Reject,
    SeriesMark,
    decode_input,
    pack_header,
    raw_header,
)
from ..store import store_path, stored_series
from ._events import EventEmitter
from ._index_runs import IndexRuns
from ._input_link import InputLink
from ._messages import Job, Outgoing, RawEndOp, RawOp, RejectedOp, SeriesEnd
from ._queues import StageQueue
from ._stats import ServiceStats
from ._traces import TraceStep
from ._writer import Writer, WriterGaveUp

log = logging.getLogger(__name__)


@dataclass
class _SeriesState:
    """What the receiver knows of a series: its fixed frame layout and the indices in.

    Kept after the series ends (a later ``start`` continues it, as its store does), and
    seeded from the store when one exists: its shape and dtype are then fixed, and the
    indices already on disk count as received.
    """

    shape: tuple[int, int] | None = None
    dtype: np.dtype | None = None
    received: IndexRuns = field(default_factory=IndexRuns)
    open: bool = True
    #: When the series last took a frame (or began): monotonic seconds.
    active_at: float = field(default_factory=time.monotonic)


#: How long the receive loop waits for input before it checks for a halt.
POLL_MS = 100
#: Messages taken in one burst before the halt is checked again.
BURST = 256
#: On stop, the input counts as drained once quiet this long.
QUIET_MS = 50
#: After the drain, the socket's rest is read and stored for at most this long: a sender
#: that keeps sending faster cannot hold the stop up; what comes then is counted only.
REST_S = 10.0
#: How often open series are looked at for idleness.
IDLE_CHECK_S = 1.0
#: Open series named in an end_series refusal.
OPEN_LISTED = 8


@dataclass(frozen=True)
class MemoryGate:
    """The memory budget as the receiver applies it to each frame.

    ``in_use`` returns the bytes the service holds now; over ``budget`` a ``wait``
    gate (PULL input) holds the frame until memory frees, which back-pressures the
    sender, and a dropping gate (SUB input) drops it, counted as ``memory_budget``.
    """

    in_use: Callable[[], int]
    budget: int
    wait: bool
    #: The input socket's high-water mark (messages) and the bytes of the budget meant
    #: for it: larger frames than it was sized for make it hold more (told once).
    socket_frames: int = 0
    socket_share: int = 0


class Receiver:
    """Turns raw multipart messages into jobs; never raises on bad input.

    ``raw_out``: the publish queue, when received frames are published (``raw`` topic)
    for live viewers; None (the default) publishes nothing from here. ``traces``: with
    ROIs, the raw ROI means are taken here, where the frame is still in cache.
    ``idle_end_s``: an open series that takes no frame for this long is ended as if it
    had sent ``end`` (its store closed, its history freed; a later frame resumes it);
    0: never. Without it, an acquisition that names each trial a series and never
    ends one would hold every trial's store and history open until the service stops.
    """

    def __init__(
        self,
        limits: Limits,
        stats: ServiceStats,
        events: EventEmitter,
        inference: StageQueue[Job | SeriesEnd],
        writer: Writer | None,
        paused: threading.Event,
        halt: threading.Event,
        memory: MemoryGate | None = None,
        drain_s: float = 0.0,
        drain_input_s: float | None = None,
        raw_out: StageQueue[Outgoing] | None = None,
        traces: TraceStep | None = None,
        idle_end_s: float = 0.0,
        link: InputLink | None = None,
    ) -> None:
        self._limits = limits
        self._stats = stats
        self._events = events
        self._inference = inference
        self._writer = writer
        self._paused = paused
        self._over_budget_told = False  # the warning for frames over the whole budget
        self._socket_told = False  # the warning for frames larger than the socket's sizing
        self._halt = halt
        self._memory = memory
        self._drain_s = drain_s
        self._drain_input_s = drain_s if drain_input_s is None else min(drain_input_s, drain_s)
        self._raw_out = raw_out
        self._traces = traces
        self._idle_end_s = idle_end_s
        self._link = link  # a connecting input: connected again after a failed handshake
        self._idle_checked = time.monotonic()
        self._series: dict[str, _SeriesState] = {}
        self._drain_until: float | None = None
        self._drain_cut = threading.Event()  # wakes a frame waiting for room at once
        self._not_denoised = 0  # taken in the drain, no room in inference before its end
        # end_series requests from the control thread; taken between two messages here,
        # where the series' state lives, so an end never lands inside a frame's handling
        self._end_requests: queue.SimpleQueue[tuple[str, Future[int]]] = queue.SimpleQueue()
        self._ended = False  # the stage has stopped taking requests

    def end_series(self, series: str, timeout: float) -> int:
        """End an open series as its ``end`` would (from any thread); returns its last
        index received (-1: none). Raises SeriesNotOpenError; DeepDenoiseError once the
        service is stopping; TimeoutError when the receiver does not take the request in
        time (it waits for room: a memory budget); nothing changes then.
        """
        reply: Future[int] = Future()
        self._end_requests.put((series, reply))
        if self._ended or self._halt.is_set():  # it takes no more requests
            self._refuse_end_requests()
        try:
            return reply.result(timeout)
        except TimeoutError:
            if not reply.cancel():  # taken as the wait ended: answered at once (below)
                return reply.result(timeout)
            if self._halt.is_set():
                raise DeepDenoiseError(
                    f"the service is stopping: {series!r} was not ended"
                ) from None
            raise ServiceTimeoutError(
                f"the receiver did not take the request within {timeout:g} s (is it "
                "waiting for room under the memory budget?); nothing changed"
            ) from None

    def _waiting_end_requests(self) -> Iterator[tuple[str, Future[int]]]:
        """The end_series requests waiting, each now running (those whose asker gave up
        waiting are left out)."""
        while True:
            try:
                series, reply = self._end_requests.get_nowait()
            except queue.Empty:
                return
            if reply.set_running_or_notify_cancel():
                yield series, reply

    def _take_end_requests(self) -> None:
        if self._end_requests.empty():  # nearly always: no exception raised to say so
            return
        for series, reply in self._waiting_end_requests():
            state = self._series.get(series)
            if state is None or not state.open:
                open_series = sorted(name for name, s in self._series.items() if s.open)
                listed = ", ".join(map(repr, open_series[:OPEN_LISTED])) or "none"
                if len(open_series) > OPEN_LISTED:
                    listed += f" and {len(open_series) - OPEN_LISTED} more"
                reply.set_exception(
                    SeriesNotOpenError(f"series {series!r} is not open (open: {listed})")
                )
                continue
            log.info("series %r ended by an end_series request", series)
            # answered before the end's marks are queued: they may wait for room behind
            # a slow disk, and the series is ended here already (a frame now resumes it)
            reply.set_result(state.received.last)
            try:
                self._end(series)
            except WriterGaveUp:  # the service stops: its stop closes the store
                log.error("series %r: its end was not queued: the store writer gave up", series)
                raise

    def _refuse_end_requests(self) -> None:
        for series, reply in self._waiting_end_requests():
            reply.set_exception(
                DeepDenoiseError(f"the service is stopping: {series!r} was not ended")
            )

    def run(self, sock: zmq.Socket[Any]) -> None:
        """The stage's thread: receive until halted, drain, then close the socket.

        On a halt the input is still taken until it has been quiet for ``QUIET_MS`` or
        ``drain_input_s`` has passed (a live camera is never quiet), frames waiting for
        room in inference until ``drain_s`` has; what is
        left in the socket then is read without waiting: stored raw, denoised where
        inference has room, else counted (``dropped.shutdown``). No frame that reached
        the service goes unstored or uncounted.
        """
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            if self._link is not None and self._link.monitor is not None:
                poller.register(self._link.monitor, zmq.POLLIN)
            self._receive(sock, poller)
        except WriterGaveUp as exc:  # a store that does not answer, or a writer gone
            self._discard(sock)
            log.error("the receiver stops: %s", exc)
        finally:
            self._ended = True
            self._refuse_end_requests()
            if self._link is not None:
                self._link.close()
            sock.close(0)

    def _receive(self, sock: zmq.Socket[Any], poller: zmq.Poller) -> None:
        """Receive until halted, then drain (see :meth:`run`)."""
        while not self._halt.is_set():
            if poller.poll(POLL_MS):
                self._burst(sock)
            if self._link is not None:
                self._link.check(sock)
            self._take_end_requests()
            self._end_idle_series()
        if self._link is not None and self._link.monitor is not None:
            poller.unregister(self._link.monitor)  # unread, it would wake the drain at once
        input_until = time.monotonic() + self._drain_input_s
        while time.monotonic() < min(input_until, self._drain_deadline()) and poller.poll(QUIET_MS):
            self._burst(sock)
        rest_until = time.monotonic() + REST_S
        while self._burst(sock) and time.monotonic() < rest_until:
            pass  # the rest, without waiting for inference
        self._discard(sock)  # a sender faster than the rest is read: counted only
        if self._not_denoised:
            log.warning(
                "stopping: %d frame(s) not denoised: inference had no room before the "
                "drain ended (drain_s %.1f); their raw frames are stored",
                self._not_denoised,
                self._drain_s,
            )

    def _burst(self, sock: zmq.Socket[Any]) -> bool:
        """Handle up to BURST waiting messages; True if there may be more."""
        for _ in range(BURST):
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            self.handle([part.buffer for part in parts], time.time_ns())
        return True

    def _discard(self, sock: zmq.Socket[Any]) -> None:
        discarded = 0
        while True:
            try:
                sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            discarded += 1
        if discarded:
            self._stats.count_dropped("shutdown", discarded)
            log.warning(
                "stopping: %d message(s) still arriving %.0f s after the drain were "
                "discarded unread",
                discarded,
                REST_S,
            )

    def handle(self, parts: Sequence[Any], t_recv_ns: int) -> None:
        """Process one multipart message (buffers); bad input is counted and reported."""
        try:
            message = decode_input(parts, self._limits)
        except ProtocolError as exc:
            self._reject(exc.reason, exc.message, **exc.where)
            return
        except Exception as exc:  # a case the decoder missed costs this message only
            log.exception("input message not decoded")
            self._reject(
                Reject.HEADER_DECODE,
                f"expected a protocol v1 message; decoding this one failed ({shown(exc)})",
            )
            return
        if isinstance(message, SeriesMark):
            if message.kind == "start":
                self._begin(message.series, explicit=True)
            else:
                self._end(message.series)
            return
        self._frame(message, t_recv_ns)

    def _frame(self, frame: Frame, t_recv_ns: int) -> None:
        state = self._series.get(frame.series)
        if state is None or not state.open:
            state = self._begin(frame.series, explicit=False)
        shape = (int(frame.pixels.shape[0]), int(frame.pixels.shape[1]))
        if state.shape is None:
            state.shape, state.dtype = shape, frame.pixels.dtype
            self._check_socket_share(frame)
        elif shape != state.shape or frame.pixels.dtype != state.dtype:
            self._reject(
                Reject.SERIES_MISMATCH,
                f"series {frame.series!r} has frames of shape {list(state.shape)} dtype "
                f"{state.dtype.str if state.dtype else '?'} (fixed by its first frame and its "
                f"store); frame {frame.index} has shape {list(shape)} dtype "
                f"{frame.pixels.dtype.str}",
                series=frame.series,
                index=frame.index,
            )
            self._keep_rejected(frame, Reject.SERIES_MISMATCH, t_recv_ns)
            return
        if frame.index in state.received and not frame.resend:
            self._reject(
                Reject.DUPLICATE,
                f"series {frame.series!r} already has frame {frame.index} (received or on "
                "disk); expected a new index, or resend: true to overwrite it",
                series=frame.series,
                index=frame.index,
            )
            self._keep_rejected(frame, Reject.DUPLICATE, t_recv_ns)
            return
        room = self._within_budget(frame)
        if room is False:
            return
        state.active_at = time.monotonic()
        self._track_index(frame.series, frame.index, state)
        non_finite = count_non_finite(frame.pixels)
        if non_finite:
            self._stats.count_sanitized("non_finite")
        if self._writer is not None:
            try:
                meta = frame.header.get("meta")
                if meta is None and frame.resend:  # the frame it replaces keeps no meta
                    meta = {}
                self._writer.put(RawOp(frame.series, frame.index, frame.pixels, frame.t_ns, meta))
            except WriterGaveUp:  # its raw frame counted lost; it will not be denoised
                self._stats.count_dropped("shutdown")
                raise
        if self._raw_out is not None:  # before inference, and while paused: what came in
            header = pack_header(raw_header(frame, t_recv_ns))
            self._raw_out.put(Outgoing(TOPIC_RAW, header, frame.pixels))
        if room is None:  # stopping, over the budget: stored raw, not denoised
            self._stats.count_dropped("shutdown")
            self._not_denoised += 1
            return
        if self._paused.is_set():
            self._stats.count_dropped("paused")
            return
        if not self._in_range(frame):
            return
        raw_means = self._traces.raw_means(frame) if self._traces is not None else None
        job = Job(frame, t_recv_ns, non_finite, raw_means)
        if not self._inference.put(job, stop=self._halt):
            self._queue_while_draining(job)

    def _queue_while_draining(self, job: Job) -> None:
        """A frame taken while halted with inference full (PULL input): inference runs
        until the receiver has stopped, so the frame waits for room until the drain
        ends; one still not queued then is counted (``dropped.shutdown``; its raw
        frame is on disk)."""
        if not self._inference.put(job, stop=self._drain_cut, deadline=self._drain_deadline()):
            self._stats.count_dropped("shutdown")
            self._not_denoised += 1

    def cut_drain(self) -> None:
        """End the drain now (a stop asked again): what is in the socket is still read
        and stored, without waiting for it to go quiet."""
        self._drain_until = 0.0
        self._drain_cut.set()

    def _drain_deadline(self) -> float:
        """When the drain after a halt ends (fixed when first asked, after the halt)."""
        if self._drain_until is None:
            self._drain_until = time.monotonic() + self._drain_s
        return self._drain_until

    def _keep_rejected(self, frame: Frame, reason: str, t_recv_ns: int) -> None:
        """Hand a rejected frame's pixels to the writer, apart from its series' store;
        counted as ``dropped.store_rejected`` when the memory budget has no room."""
        if self._writer is None:
            return
        if not self._room_for(frame.pixels.nbytes):
            self._stats.count_dropped("store_rejected")
            return
        meta = frame.header.get("meta")
        self._writer.put(
            RejectedOp(frame.series, reason, frame.index, frame.pixels, frame.t_ns, t_recv_ns, meta)
        )

    def _room_for(self, nbytes: int) -> bool:
        """True when ``nbytes`` more fit the memory budget (waited for on PULL input)."""
        gate = self._memory
        if gate is None:
            return True
        while gate.in_use() + nbytes > gate.budget:
            if gate.in_use() == 0:  # more than the whole budget: taken alone, as no wait
                self._warn_over_budget(nbytes, gate.budget)  # could ever make room for it
                return True
            if not gate.wait or self._halt.is_set():
                return False
            time.sleep(0.005)  # PULL: not reading is the back-pressure on the sender
        return True

    def _check_socket_share(self, frame: Frame) -> None:
        """Warn once when the input socket, full of frames like this one, would hold more
        than twice its share of the budget: its high-water mark counts messages, sized
        from ``warmup_shape`` (a fault trial's 2048² frames took the service to 4.1 GiB
        against a 2 GiB budget, and a kill -9 lost the frames it held unread)."""
        gate = self._memory
        if gate is None or self._socket_told or not gate.socket_share:
            return
        held = gate.socket_frames * frame.pixels.nbytes
        if held <= 2 * gate.socket_share:
            return
        self._socket_told = True
        h, w = frame.pixels.shape
        log.warning(
            "frames of %dx%d: the input socket may hold %d of them (%.1f GiB), more than its "
            "share of the memory budget (%.1f GiB): set warmup_shape = [%d, %d]",
            h, w, gate.socket_frames, held / 2**30, gate.socket_share / 2**30, h, w,
        )  # fmt: skip

    def _warn_over_budget(self, nbytes: int, budget: int) -> None:
        if self._over_budget_told:
            return
        self._over_budget_told = True
        log.warning(
            "a frame needs %.0f MiB in flight, more than the whole memory budget (%.0f MiB): "
            "such frames are taken one at a time, when nothing else is held; raise "
            "memory_budget_mb to hold several",
            nbytes / 2**20, budget / 2**20,
        )  # fmt: skip

    def _in_range(self, frame: Frame) -> bool:
        """False, counted and told, for a float frame whose values the model and the camera
        estimate cannot compute with (``LARGEST_PIXEL``): its raw frame is stored, it is
        not denoised (it came out NaN, blamed on the model)."""
        top = beyond_range(frame.pixels)
        if top is None:
            return True
        self._drop(
            "out_of_range",
            frame,
            f"not denoised (its raw frame is stored): it holds values up to {top:.3g}, over "
            f"{LARGEST_PIXEL:.0e}, beyond which the float32 arithmetic overflows; expected "
            "pixels in a smaller unit (ADU, photons)",
        )
        return False

    def _within_budget(self, frame: Frame) -> bool | None:
        """True when the frame fits the memory budget (waiting for it on PULL input);
        None on PULL input over it while the service stops: the frame is stored raw and
        not denoised (a backlog of frames read ahead of inference had filled it, and
        the frames read in the stop were dropped unstored: a review); False: dropped,
        counted (``memory_budget``)."""
        if self._room_for(5 * frame.pixels.nbytes):  # raw + float32 clean, in and out
            return True
        gate = self._memory
        assert gate is not None  # no gate, always room
        if gate.wait and self._halt.is_set():
            return None
        # received, as a frame dropped later is (frames_in); not taken as arrived, so
        # its index stays missing (no pixels on disk) and may come again
        self._stats.count_in(frame.series)
        self._drop(
            "memory_budget",
            frame,
            f"dropped: the service holds {gate.in_use() / 2**20:.3g} MiB of frames, its "
            f"budget for them is {gate.budget / 2**20:.3g} MiB (memory_budget_mb)",
        )
        return False

    def _drop(self, reason: str, frame: Frame, why: str) -> None:
        """A frame not denoised: counted under ``reason`` and told in an error event."""
        self._stats.count_dropped(reason)
        self._events.emit(
            "error",
            limit_key=reason,
            kind=reason,
            series=frame.series,
            index=frame.index,
            message=f"frame {frame.index} of {frame.series!r} {why}",
        )

    def _track_index(self, series: str, index: int, state: _SeriesState) -> None:
        self._stats.count_in(series)
        counters = self._stats.series_counters(series)
        last = state.received.last
        if not state.received.add(index):
            counters.resent += 1  # an index already in: overwritten on request
        elif index > last + 1:  # also a series' first frame past 0: its slots are holes
            self._report_gap(series, last + 1, index - last - 1)
        elif index < last:
            counters.out_of_order += 1  # a late frame fills its hole
        counters.last_index = state.received.last
        # every index up to the last that has not arrived (this session or on disk)
        counters.missing = state.received.last + 1 - len(state.received)

    def _report_gap(self, series: str, first: int, count: int, stored: bool = False) -> None:
        """A ``gap`` event; ``stored``: a hole a resumed store already had, rate-limited
        apart from live gaps (a store with hundreds would use up their budget, and the
        live ones that follow would never be published) and logged as a whole by the
        caller, not hole by hole."""
        counters = self._stats.series_counters(series)
        counters.gaps += 1
        limit_key = f"{series}/stored" if stored else series
        published = self._events.emit(
            "gap", limit_key=limit_key, series=series, first_missing=first, count=count
        )
        if published and not stored:  # as the events: a camera skipping every other index
            # wrote 1,499 lines in 5 s (an operator's trial); the rest are counted
            log.warning("series %r: %d frame(s) missing from index %d", series, count, first)

    def _begin(self, series: str, explicit: bool) -> _SeriesState:
        state = self._series.get(series)
        seeded = False
        if state is None:
            state = _SeriesState()
            seeded = self._seed_from_store(series, state)
            self._series[series] = state
        # continued: frames of it on disk, or received earlier in this session
        resumed = seeded or len(state.received) > 0
        state.open, state.active_at = True, time.monotonic()
        counters = self._stats.series_counters(series)
        counters.last_index = state.received.last
        counters.missing = state.received.last + 1 - len(state.received)
        self._events.emit("series_start", series=series, resumed=resumed, implicit=not explicit)
        log.info("series %r started%s", series, " (resumed)" if resumed else "")
        if seeded:  # the holes a killed or failing earlier session left
            self._report_stored_holes(series, state.received.holes())
        return state

    def _report_stored_holes(self, series: str, holes: list[tuple[int, int]]) -> None:
        """A resumed store's holes: a ``gap`` event each, and one log line."""
        for first, stop in holes:
            self._report_gap(series, first, stop - first, stored=True)
        if holes:
            log.warning(
                "series %r: its store has %d hole(s), %d frame(s) missing, the first at index %d",
                series, len(holes), sum(stop - first for first, stop in holes), holes[0][0],
            )  # fmt: skip

    def _seed_from_store(self, series: str, state: _SeriesState) -> bool:
        """Take the layout and stored indices of an existing store; True if there was one."""
        if self._writer is None:
            return False
        path = store_path(self._writer.root, series)
        if not path.exists():
            return False
        try:
            shape, dtype, runs = stored_series(path)
        except (StoreError, OSError, ValueError) as exc:  # the writer will report it too
            log.warning("series %r: cannot read its store %s: %s", series, path, exc)
            return False
        state.shape, state.dtype, state.received = shape, np.dtype(dtype), IndexRuns(runs)
        return True

    def _end_idle_series(self) -> None:
        """End the open series idle for ``idle_end_s`` (looked at once a second)."""
        now = time.monotonic()
        if self._idle_end_s <= 0 or now - self._idle_checked < IDLE_CHECK_S:
            return
        self._idle_checked = now
        for series, state in list(self._series.items()):
            idle_s = now - state.active_at
            if state.open and idle_s >= self._idle_end_s:
                self._events.emit(
                    "series_idle",
                    series=series,
                    idle_s=round(idle_s, 1),
                    last_index=state.received.last,
                )
                log.info("series %r took no frame for %.0f s: ended", series, idle_s)
                self._end(series)

    def _end(self, series: str) -> None:
        state = self._series.get(series)
        if state is not None:
            state.open = False
        else:  # its series_end says 0 frames; the log says why (a mistyped name?)
            log.warning("end of series %r, which this service has not seen", series)
        if self._writer is not None:  # behind its raw frames: what follows is a next run's
            self._writer.put(RawEndOp(series))
        # Behind the series' frames, so the store closes after its last clean frame.
        self._inference.put(SeriesEnd(series), droppable=False)

    def _reject(self, reason: str, message: str, **where: Any) -> None:
        self._stats.count_rejected(reason)
        if self._events.emit("rejected", limit_key=reason, reason=reason, message=message, **where):
            log.warning("rejected input (%s): %s", reason, message)
