"""The inference stage: jobs in, denoised frames out to the writer and the publisher.

It owns the engine: a new model is loaded and warmed up off this thread, then handed
over and swapped in between two frames (:meth:`InferenceStage.swap`), so no frame waits
for a model load and none is lost to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..camera import CameraModel, OffsetPattern
from ..engine import (
    BINNED_PASS_SHARE,
    BlendSetting,
    Engine,
    SeriesContext,
    count_non_finite,
    to_dtype,
)
from ..protocol import TOPIC_DENOISED, denoised_header, pack_header
from ._ensemble import EnsemblePolicy
from ._events import EventEmitter
from ._messages import CleanOp, EndOp, Job, ModelOp, Outgoing, SeriesEnd
from ._queues import Closed, StageQueue
from ._spare import SpareTime
from ._stats import ServiceStats
from ._traces import TraceStep
from ._writer import Writer, WriterGaveUp

log = logging.getLogger(__name__)

#: How long the loop waits for a job before it looks for a pending model swap.
POLL_S = 0.1


class InferenceStage:
    """Denoises each job with the current engine; a failed frame costs that frame only.

    Parameters
    ----------
    jobs
        Frames (and series ends) from the receive stage.
    publish
        Where denoised frames go (the publish stage's queue).
    writer
        The disk stage, or None without Zarr.
    engine
        The model running at start.
    output_in_input_dtype
        Publish the denoised frame rounded to the input dtype instead of float32.
    traces
        ROI traces and triggers, computed right after each frame (None: off).
    fallback
        Called with the engine and its error when a frame fails on a GPU provider: the
        same model on the next provider, which takes over and re-runs the frame (so no
        frame is lost to a GPU fault), or None when there is no next provider.
    """

    def __init__(
        self,
        jobs: StageQueue[Job | SeriesEnd],
        publish: StageQueue[Outgoing],
        writer: Writer | None,
        engine: Engine,
        stats: ServiceStats,
        events: EventEmitter,
        output_in_input_dtype: bool = False,
        camera: CameraModel | None = None,
        traces: TraceStep | None = None,
        fallback: Callable[[Engine, BaseException], Engine | None] | None = None,
        ensemble: EnsemblePolicy | None = None,
        blend: BlendSetting = "off",
        offset_pattern: OffsetPattern | None = None,
        first_at_once: bool = True,
    ) -> None:
        self._jobs = jobs
        self._publish = publish
        self._writer = writer
        self._stats = stats
        self._events = events
        self._as_input = output_in_input_dtype
        self.engine = engine
        self._camera = camera
        self.traces = traces
        self._fallback = fallback
        self.ensemble = ensemble or EnsemblePolicy(1)
        self._blend = blend
        self.offset_pattern = offset_pattern
        #: Whether a series' first blend measurement holds its first frame, until the
        #: series' next frame comes (False where the input queue drops frames: its
        #: frame_waits then always says one waits, SeriesBlend.blended).
        self._first_at_once = first_at_once
        self._spare = SpareTime()
        #: Per open series: its previous frames and camera (configured or estimated).
        self.contexts: dict[str, SeriesContext] = {}
        #: Each open series' frame shape: what a model loaded now must run on.
        self.frame_shapes: dict[str, tuple[int, int]] = {}
        self._pending: Engine | None = None
        self._swapped = threading.Condition()

    def run(self) -> None:
        """The stage's thread: until the job queue is closed and drained."""
        try:
            self._run()
        except WriterGaveUp as exc:  # a store that does not answer (the stop counted
            # the frame in hand: dropped.shutdown; its pixels dropped.store_*), or a writer gone
            log.error("inference stops: %s", exc)

    def _run(self) -> None:
        while True:
            self._swap_if_pending()
            try:
                item = self._jobs.get(timeout=POLL_S)
            except Closed:
                return
            if isinstance(item, SeriesEnd):
                self._finish_series(item.series)
            elif item is not None:
                self._denoise(item)
            elif self.traces is not None:
                self.traces.apply_pending()  # a ROI change while no frame comes

    def _denoise(self, job: Job) -> None:
        engine, frame = self.engine, job.frame
        context = self.contexts.get(frame.series)
        if context is None:
            context = self.contexts[frame.series] = SeriesContext(
                self._camera, self._blend, self.offset_pattern
            )
        shape = (int(frame.pixels.shape[0]), int(frame.pixels.shape[1]))
        self.frame_shapes[frame.series] = shape
        waiting = len(self._jobs)  # frames behind this one
        passes = self.ensemble.passes(frame.series, job.t_recv_ns, waiting, engine.model_id, shape)
        t0 = time.perf_counter()
        # a blend measurement waits until the frame is out (below), a series' first does not
        # (not even behind: once per series), nor, while frames come faster than they are
        # denoised, a regime's first few; with frames waiting, no blend that costs a
        # model pass (lean)
        outpaced = self.ensemble.outpaced(frame.series, waiting, engine.model_id, shape)
        # a blend with the binned pass only where it fits as more ensemble passes would:
        # served whenever no frame waited, it pushed a stream near the machine's pace
        # over it, frames waited, it stopped, they drained, and again (the demo at 20
        # fps, 256 x 256 on 2 vCPUs: latency p50 270-300 ms against 66-78 without it)
        lean = not self.ensemble.fits(
            frame.series, waiting, engine.model_id, shape, passes + BINNED_PASS_SHARE
        )
        try:
            clean = context.denoise(
                engine,
                frame.pixels,
                frame.index,
                passes,
                measure=False,
                lean=lean,
                outpaced=outpaced,
                frame_waits=lambda: (
                    not self._first_at_once
                    or self._jobs.holds(
                        lambda item: isinstance(item, Job) and item.frame.series == frame.series
                    )
                ),
            )
        except Exception as exc:  # an ORT/GPU failure costs this frame, not the service
            replacement = self._replace_failed(engine, exc)
            if replacement is not None:
                self._denoise(job)  # again, on the next provider
                return
            self._stats.count_dropped("inference_error")
            self._events.emit(
                "error",
                limit_key="inference",
                message=f"inference failed on {frame.series}[{frame.index}]: {exc}",
            )
            log.error("inference failed on %s[%d]: %s", frame.series, frame.index, exc)
            return
        t_done = time.time_ns()
        took = time.perf_counter() - t0
        # the frame's own time, without a measurement taken before it was served nor the
        # blend's binned pass (counted apart by the lean rule: counted here too, it
        # turned the binned blend on and off every few frames of a steady stream)
        own = took - context.measured_latest_s - context.served_binned_s
        self.ensemble.took(engine.model_id, shape, passes, own)
        if self.traces is not None:  # first: a closed loop waits for these (NaN
            # pixels give NaN means, which the baseline skips)
            camera = context.camera
            self.traces.on_frame(
                frame,
                clean,
                engine.model_id,
                job.t_recv_ns,
                t_done,
                camera.offset if camera is not None else None,
                job.raw_means,
            )
        non_finite = count_non_finite(clean)  # NaN where the input had NaN, and the model's
        model_made = non_finite > job.non_finite
        if model_made:  # published flagged, never stored as a valid denoised frame
            self._stats.count_sanitized("model_non_finite")
            self._events.emit(
                "error",
                limit_key="model_non_finite",
                kind="model_non_finite",
                series=frame.series,
                index=frame.index,
                message=f"model {engine.model_id} gave {non_finite - job.non_finite} "
                f"non-finite pixels on {frame.series}[{frame.index}]",
            )
        elif self._writer is not None:
            self._writer.put(CleanOp(frame.series, frame.index, clean))
        payload = to_dtype(clean, frame.pixels.dtype) if self._as_input else clean
        header = denoised_header(frame, payload, engine.model_id, job.t_recv_ns, t_done)
        if non_finite:
            header["non_finite"] = non_finite
        self._publish.put(
            Outgoing(TOPIC_DENOISED, pack_header(header), payload, frame.series, job.t_recv_ns)
        )
        self._spare.frame_done(frame.series, self.ensemble.interval(frame.series), took)
        kind = (engine.model_id, shape)
        if context.dearest_step_s:  # steps taken while the frame was held
            self._spare.seen(kind, context.dearest_step_s)
        if context.measurement_pending:
            self._measure(context, engine, frame.series, kind, took, outpaced)

    def _measure(
        self,
        context: SeriesContext,
        engine: Engine,
        series: str,
        kind: object,
        took: float,
        outpaced: bool,
    ) -> None:
        """The blend's deferred measurement, step by step (a model pass or the risks),
        while the series' spare time covers a step and no frame waits: a frame that
        comes waits for one step at most, and what is left is taken after the next
        frames. A failure costs the measurement only. A refusal is counted towards the
        report (:meth:`_report_deferred`) where the frames' pace is why: the series
        outpaced, or no frame waiting and too little spare time -- not frames waiting
        behind a series' start, which a live stream drains (a reviewer's demo at 20 fps
        was told its frames left too little time, and it kept up)."""
        refused = True
        while context.measurement_pending:
            if not self._spare.allows(series, kind, len(self._jobs), took):
                break
            refused = False
            t0 = time.perf_counter()
            try:
                context.measure_step(engine)
            except Exception as exc:
                self._events.emit(
                    "error",
                    limit_key="blend",
                    message=f"blend measurement failed on {series}: {exc}",
                )
                log.error("blend measurement failed on %s: %s", series, exc)
            self._spare.spent(series, kind, time.perf_counter() - t0)
        if refused and (outpaced or not self._jobs):
            count = self._spare.count_refused(series)
            if count is not None:
                self._report_deferred(context, series, count)

    def _report_deferred(self, context: SeriesContext, series: str, refused: int) -> None:
        """A series whose blend measurements keep finding no spare time: say so, once a
        run (a recording replayed as fast as it goes is served almost without the blend;
        a live stream the machine only just keeps up with gets few measurements)."""
        measured = context.blend_frames_measured
        self._events.emit("blend_deferred", series=series, deferred=refused, measured=measured)
        log.info(
            "series %r: %d frames in a row due a blend measurement found no spare time (the "
            "frames leave too little time between them); its blend rests on %d measured "
            "frame(s). For a recording on disk, `deepdenoise denoise` measures every due frame",
            series, refused, measured,
        )  # fmt: skip

    def _replace_failed(self, engine: Engine, error: BaseException) -> Engine | None:
        """Swap in the next provider after a GPU failure (the CPU never falls back)."""
        if self._fallback is None or engine.provider == "cpu":
            return None
        try:
            new = self._fallback(engine, error)
        except Exception as exc:  # the fallback itself failed: this frame is lost, counted
            log.error("provider fallback failed: %s", exc)
            return None
        if new is None:
            return None
        self.engine = new
        engine.close()
        return new

    def _finish_series(self, series: str) -> None:
        self.contexts.pop(series, None)
        self.frame_shapes.pop(series, None)
        self.ensemble.end_series(series)
        self._spare.end_series(series)
        if self.traces is not None:
            self.traces.end_series(series)
        if self._writer is not None:  # the writer reports series_end with the disk's totals
            self._writer.put(EndOp(series))
            return
        counters = self._stats.series_counters(series)
        self._events.emit(
            "series_end", series=series, frames=counters.frames_in, missing=counters.missing
        )
        self._stats.series_ended(series)
        log.info(
            "series %r ended: %d frames, %d missing", series, counters.frames_in, counters.missing
        )

    # -- model switch ----------------------------------------------------------------

    def swap(self, new: Engine, timeout: float, alive: Callable[[], bool]) -> None:
        """Hand ``new`` (loaded and warmed up) to the stage; returns once it is active.

        Raises TimeoutError if the stage did not take it within ``timeout`` (the stage
        is stuck or stopped, ``alive`` says which); ``new`` is then closed.
        """
        deadline = time.monotonic() + timeout
        with self._swapped:
            if self._pending is not None:
                self._pending.close()
            self._pending = new
            # not a whole timeout's wait on a stage that stopped (the service stopping
            # while a model warmed up): it never takes one
            while self._pending is new and alive() and (left := deadline - time.monotonic()) > 0:
                self._swapped.wait(min(left, 0.1))
            taken = self._pending is not new
            if not taken:
                self._pending = None
        if not taken:
            new.close()
            state = "running" if alive() else "stopped"
            raise TimeoutError(
                f"the inference stage ({state}) did not take the model within {timeout} s"
            )

    def _swap_if_pending(self) -> None:
        with self._swapped:
            new = self._pending
            if new is None:
                return
            old, self.engine, self._pending = self.engine, new, None
            self._swapped.notify_all()
        old.close()
        if self._writer is not None:
            self._writer.put(ModelOp(new.model_id))
        self._events.emit("model_loaded", model=new.model_id, provider=new.provider)
        log.info("model %s (%s) now active on %s", new.model_id, new.path, new.provider)

    def series_status(self) -> dict[str, dict[str, object]]:
        """Per open series: the camera in use (and how it was found), history memory,
        scene changes, the one-pixel spikes filled (latest frame, frames with any), the
        camera's noisy pixels filled, the pixels masked with a number (latest frame,
        frames with any), a bidirectional scan's lag, its row noise and its fixed
        patterns of columns and rows."""
        out: dict[str, dict[str, object]] = {}
        for series, context in list(self.contexts.items()):
            estimate = context.estimate
            if context.configured is not None:
                camera: dict[str, object] = {
                    **context.configured.model_dump(exclude_none=True),
                    "source": "configured",
                }
            elif estimate is not None:
                camera = estimate.as_dict()
            else:
                camera = {}
            side = context.camera_side
            out[series] = {
                "camera": camera,
                "history_bytes": context.history_bytes,
                "scene_changes": context.scene_changes,
                "scene_shifts": context.scene_shifts,
                "spikes": context.spikes,
                "frames_with_spikes": context.frames_with_spikes,
                "noisy_pixels": side.noisy_pixels,
                "masked": context.masked,
                "scan_lag": side.scan_lag,
                "frames_masked": context.frames_masked,
                "row_noise": {
                    "rms": round(side.row_noise, 4),
                    "corrected": side.row_noise_corrected,
                },
                "line_patterns": side.line_patterns,
                "frames_two_scales": context.frames_two_scales,
                "still_means": {
                    "share": round(context.still_means.share, 4),
                    "frames": round(context.still_means.frames, 2),
                    "model_error": context.still_means.model_error,
                },
                "blend": {
                    **context.blend_choice.as_dict(),
                    "measured": context.blend_measured,
                    "frames_measured": context.blend_frames_measured,
                    "frames_paired": context.blend_frames_paired,
                    "frames_outpaced": self.ensemble.frames_outpaced(series),
                    "young_window": context.young_window,
                },
            }
        return out

    def close(self) -> None:
        """Release the engines (after the thread has stopped)."""
        with self._swapped:
            pending, self._pending = self._pending, None
        for engine in (self.engine, pending):
            if engine is not None:
                engine.close()
