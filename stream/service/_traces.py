"""The traces step of the inference stage: ROI traces, ΔF/F and triggers per frame.

Runs in the inference thread right after a frame is denoised, before the frame is
handed to the publisher: the ``traces`` message (and any ``trigger``) is queued *ahead*
of waiting denoised frames, so a closed-loop rig gets it first. ROIs change only
between two frames: ``set_rois`` (control thread) validates the new ROIs, queues the
change and returns once the inference thread has applied it.

ROIs: the configured file (``traces.rois``) for every series, replaced for all series
by a ``set_rois`` without ``series``, or for one series by a ``set_rois`` naming it.
Each series keeps its own baseline and trigger state, rebuilt when its ROIs change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import ConfigError, ModelError, RoiError
from ..protocol import (
    TOPIC_TRACES,
    TOPIC_TRIGGER,
    Frame,
    Limits,
    largest_traces_header_bytes,
    pack_header,
    traces_header,
    trigger_header,
)
from ..traces import (
    BoundRois,
    RoiSet,
    SeriesTraces,
    TraceConfig,
    TraceDenoiser,
    TriggerBank,
    load_rois,
    trace_columns,
)
from ._events import EventEmitter
from ._messages import Outgoing, RawMeans, TracesOp
from ._queues import StageQueue
from ._writer import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Change:
    series: str | None  # None: every series
    rois: RoiSet | None  # None: no ROIs


class TraceStep:
    """Per-series traces; owned by the inference stage (its thread calls :meth:`on_frame`)."""

    def __init__(
        self,
        config: TraceConfig,
        publish: StageQueue[Outgoing],
        events: EventEmitter,
        camera_configured: bool = False,
        max_header_bytes: int = Limits().max_output_header_bytes,
    ) -> None:
        self._config = config
        self._max_header_bytes = max_header_bytes
        self._camera_from = "[camera]" if camera_configured else "live estimate"
        self._publish = publish
        #: Where traces are stored (set once the writer exists; None: not stored).
        self.writer: Writer | None = None
        self._events = events
        try:
            path = config.denoiser_path
            self._denoiser = TraceDenoiser(path) if path is not None else None
            self.columns = trace_columns(self._denoiser)
            self._default = load_rois(config.rois) if config.rois is not None else None
            if self._default is not None:
                self._check_rules(self._default)
                if self._default.shape is not None:  # ready before the first frame
                    self._default.bind(self._default.shape)
        except (RoiError, ModelError) as exc:
            raise ConfigError(f"traces: {exc}") from exc
        self._per_series: dict[str, RoiSet | None] = {}
        self._state: dict[str, SeriesTraces | None] = {}  # None: ROIs do not fit the frames
        #: A series' traces before a ROI change: the ROIs that stay hand on their baseline.
        self._replaced: dict[str, SeriesTraces] = {}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._pending: list[_Change] = []
        self._applied = 0
        self._requested = 0
        self._cond = threading.Condition()
        self.frames = 0
        self.triggers: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    # ------------------------------------------------------------------ the hot path
    def raw_means(self, frame: Frame) -> RawMeans | None:
        """The raw ROI means of a frame, computed in the receive thread while its pixels
        are hot in cache, off the path between inference and the traces message.

        Reads the series' current ROIs without a lock (dict reads); if they change
        before the frame is denoised, :meth:`on_frame` sees other ROIs and recomputes.
        A series' first frame gets them too, from the ROIs it will have, when those are
        already bound to its frame shape (binding stays in the inference thread).
        Never raises: the inference thread then does the work, and reports any error.
        """
        shape = frame.pixels.shape
        state = self._state.get(frame.series)
        if state is not None:
            bound: BoundRois | None = state.bound
        else:
            rois = self._per_series.get(frame.series, self._default)
            bound = rois.bound(shape) if rois is not None and len(shape) == 2 else None
        if bound is None or bound.shape != shape:
            return None
        try:
            return RawMeans(bound, bound.means(frame.pixels))
        except Exception:  # reported by on_frame, which then recomputes them
            return None

    def on_frame(
        self,
        frame: Frame,
        clean: np.ndarray,
        model: str,
        t_recv_ns: int,
        t_done_ns: int,
        camera_offset: float | None,
        raw: RawMeans | None = None,
    ) -> None:
        """Compute, publish (ahead of frames), store and check this frame's traces."""
        self.apply_pending()
        offset = self._config.baseline.offset
        if offset is None:
            offset = camera_offset if camera_offset is not None else 0.0
        state = self._state_for(frame, offset, camera_known=camera_offset is not None)
        if state is None:
            return
        raw_means = raw.means if raw is not None and raw.rois is state.bound else None
        try:
            values = state.update(frame.pixels, clean, offset, raw_means)
        except Exception as exc:  # a bug or odd input costs this frame's traces only
            where = f"{frame.series}[{frame.index}]"
            self._error("traces_failed", frame.series, f"traces of {where}: {exc}")
            return
        labels = state.rois.labels
        header = traces_header(
            frame, labels, self.columns, model, t_recv_ns, t_done_ns, time.time_ns()
        )
        self._publish.put(Outgoing(TOPIC_TRACES, pack_header(header), values), urgent=True)
        self.frames += 1
        t_ns = frame.t_ns or t_recv_ns  # 0 is "unknown", as the store writes it
        for fired in state.check(values, t_ns):
            rule = fired.rule
            trigger = trigger_header(
                frame, rule.name, rule.column, fired.value, rule.threshold, rule.rois,
                t_recv_ns, t_done_ns,
            )  # fmt: skip
            self._publish.put(Outgoing(TOPIC_TRIGGER, pack_header(trigger)), urgent=True)
            self.triggers[rule.name] += 1
        if self.writer is not None:
            self.writer.put(TracesOp(frame.series, frame.index, values, state.store_attrs))
        state.settle()  # a completed block's quantile: after this frame's traces are out

    def _state_for(self, frame: Frame, offset: float, camera_known: bool) -> SeriesTraces | None:
        """The series' traces state; a new one (a series start, a ROI change) records
        the ΔF/F offset of its first frame and where it came from for the store."""
        series = frame.series
        shape = (int(frame.pixels.shape[0]), int(frame.pixels.shape[1]))
        self._shapes[series] = shape
        if series in self._state:
            state = self._state[series]
            if state is None or state.bound.shape == shape:
                return state
        # the traces before a ROI change: taken now, also when no ROIs follow
        old = self._replaced.pop(series, None)
        rois = self._per_series.get(series, self._default)
        if rois is None:
            self._state[series] = None
            return None
        try:
            state = SeriesTraces(
                rois, shape, self._config.baseline, self._config.triggers, self._denoiser
            )
        except RoiError as exc:  # told once; the series goes on without traces
            self._error("rois_shape", series, f"no traces for series {series!r}: {exc}")
            state = None
        except Exception as exc:  # unforeseen ROIs cost this series' traces, not the service
            log.exception("traces of series %r", series)
            self._error("traces_failed", series, f"no traces for series {series!r}: {exc}")
            state = None
        if state is not None:
            state.store_attrs["dff_offset"] = {
                "value": offset,
                "from": self._offset_from(camera_known),
            }
        if state is not None and old is not None and old.bound.shape == shape:
            kept = state.inherit(old)
            log.info("series %r: %d ROI(s) unchanged keep their ΔF/F baseline", series, kept)
        self._state[series] = state
        return state

    def _offset_from(self, camera_known: bool) -> str:
        """Where the offset in ΔF/F's denominator comes from (the stored traces say)."""
        if self._config.baseline.offset is not None:
            return "traces.baseline.offset"
        return self._camera_from if camera_known else "none (no camera: 0)"

    def end_series(self, series: str) -> None:
        """A series ended: its baseline and trigger state go (ROIs set for it stay)."""
        self._state.pop(series, None)
        self._replaced.pop(series, None)
        self._shapes.pop(series, None)

    # ------------------------------------------------------------------ ROI changes
    def set_rois(self, rois: RoiSet | None, series: str | None, timeout: float) -> list[str]:
        """Replace the ROIs (of ``series``, or of every series) between two frames.

        Returns the series whose frame shape the ROIs were checked against: those
        streaming now. A series that starts later checks them against its own frames
        (a mismatch is a ``rois_shape`` error). Raises RoiError, and changes nothing,
        when the ROIs do not fit a series already streaming or lack an ROI a trigger
        rule watches; TimeoutError when the inference thread did not apply the change
        in time (it then applies it later).
        """
        checked: list[str] = []
        if rois is not None:
            targets = [series] if series is not None else list(self._shapes)
            for name in targets:  # the shape first: a wrong one is the first thing wrong
                shape = self._shapes.get(name)
                if shape is not None:
                    try:
                        rois.bind(shape)
                    except RoiError as exc:
                        raise RoiError(f"series {name!r}: {exc}") from None
                    checked.append(name)
            self._check_rules(rois)
        with self._cond:
            self._pending.append(_Change(series, rois))
            self._requested += 1
            ticket = self._requested
            if not self._cond.wait_for(lambda: self._applied >= ticket, timeout):
                raise TimeoutError(f"the ROIs were not applied within {timeout} s")
        return checked

    def apply_pending(self) -> None:
        """Apply queued ROI changes (inference thread, between two frames)."""
        if not self._pending:  # racy read is fine: a change seen late waits one frame
            return
        with self._cond:
            changes, self._pending = self._pending, []
            for change in changes:
                if change.series is None:
                    self._default = change.rois
                    self._per_series.clear()
                    for name in list(self._state):
                        self._replace(name)
                else:
                    self._per_series[change.series] = change.rois
                    self._replace(change.series)
                self._applied += 1
            self._cond.notify_all()
        for change in changes:
            count = 0 if change.rois is None else change.rois.count
            log.info("ROIs of %s: %d", change.series or "every series", count)

    def _replace(self, series: str) -> None:
        state = self._state.pop(series, None)
        if state is not None:
            self._replaced[series] = state

    def _check_rules(self, rois: RoiSet) -> None:
        """RoiError when a trigger rule's ROI is missing, or when the traces header
        (which lists every label) would be over what clients accept."""
        TriggerBank(self._config.triggers, rois.labels, self.columns)
        size = largest_traces_header_bytes(rois.labels, self.columns)
        if size > self._max_header_bytes:
            raise RoiError(
                f"{rois.count} ROIs make a traces header of up to {size} bytes (one label "
                f"each), over the {self._max_header_bytes} bytes clients accept (16 x "
                f"[limits] max_header_bytes); give fewer ROIs, or raise max_header_bytes "
                f"on the service and on its clients"
            )

    def _series_rois(self) -> dict[str, int]:
        """Each series' ROI count; a series whose ROIs were just replaced, the new ones'
        (its state is made again at its next frame: it was left out till then); a series
        given ROIs of its own that has not streamed yet, those (set-rois --series before
        the run: a user's trial saw nothing to confirm them)."""
        counts = {
            name: (state.rois.count if state is not None else 0)
            for name, state in list(self._state.items())
        }
        for name in [*self._shapes, *self._per_series]:  # streaming, or given ROIs
            if name not in counts:
                rois = self._per_series.get(name, self._default)
                counts[name] = rois.count if rois is not None else 0
        return counts

    # ------------------------------------------------------------------ reporting
    def _error(self, kind: str, series: str, message: str) -> None:
        self.errors[kind] += 1
        self._events.emit(
            "error", limit_key=f"{kind}:{series}", kind=kind, series=series, message=message
        )
        log.error(message)

    def status(self) -> dict[str, Any]:
        default = self._default
        return {
            "rois": default.count if default is not None else 0,
            "source": default.source if default is not None else None,
            "columns": list(self.columns),
            "series": self._series_rois(),
            "frames": self.frames,
            "triggers": dict(self.triggers),
            "errors": dict(self.errors),
        }
