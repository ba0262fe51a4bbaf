"""The streaming service: sockets, stage threads, lifecycle.

Stages (each a thread with a bounded queue, see DESIGN.md):

``receiver`` (input socket) → raw to ``writer`` → ``inference`` queue → ``inference``
(engine) → ``publisher`` (PUB socket: denoised, status, events) and ``writer``
(clean); ``control`` (ROUTER socket, for REQ clients) changes state. Overflow policies:

- inference queue: ``drop_oldest`` (default; counted as ``inference_queue_full``) or
  ``block`` (back-pressure on the input);
- publish queue: drop the oldest denoised frame (``publish_queue_full``; a received
  frame published with ``publish_raw``: ``raw_queue_full``); events and status are
  never dropped here;
- writer queue: blocks, never drops.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from .._errors import ConfigError, ModelError, StoreError
from .._version import __version__
from ..camera import load_offset_pattern
from ..engine import (
    Engine,
    default_model_path,
    preload_frame_path,
    select_providers,
    shipped_model_path,
)
from ..protocol import PROTOCOL_VERSION, TOPIC_DENOISED, TOPIC_EVENT, TOPIC_RAW, pack_header
from ..store import check_store_folder, clear_left_overs
from ..traces import rois_from_labels
from ._config import ServiceConfig
from ._control import WORKER_STOP_S, ControlHandler
from ._ensemble import EnsemblePolicy
from ._events import EventEmitter
from ._infer import InferenceStage
from ._input_link import InputLink
from ._messages import Job, Outgoing, SeriesEnd
from ._publish import PublishStage
from ._queues import StageQueue
from ._receive import MemoryGate, Receiver
from ._security import CurveGuard
from ._sockets import open_sockets
from ._stats import ServiceStats
from ._traces import TraceStep
from ._writer import Writer

log = logging.getLogger(__name__)

#: Why an outgoing message evicted from the full publish queue was dropped, by topic
#: (the rest are traces and triggers).
DROP_REASONS = {TOPIC_DENOISED: "publish_queue_full", TOPIC_RAW: "raw_queue_full"}
#: The interpreter's thread switch interval while a service runs (seconds).
SWITCH_INTERVAL_S = 0.0005
#: Seconds a stop waits for a stage that held a frame for a stuck writer's queue, once
#: the writer is given up on (the frame is then counted lost, and the stage goes).
STAGE_AFTER_ABANDON_S = 5.0
#: Frames the inference queue may hold when it blocks (PULL input): the memory budget
#: bounds it first. The receiver reads on while inference is behind, so every frame
#: sent is read and its raw pixels written: frames left unread in ZeroMQ's buffers are
#: lost to a kill -9 (a fault trial lost 1,165 of them with the queue at 4 frames).
BACKLOG_FRAMES = 100_000
#: What a queued frame holds beyond its pixels (its message, header and job: about
#: 10 KB measured), counted against the memory budget: a backlog of small frames
#: counted by its pixels alone held some 20 times the budget (a review).
JOB_OVERHEAD_BYTES = 16 * 1024


class Service:
    """A running denoising service; use as a context manager or call start()/stop().

    Worker-thread failures are re-raised by :meth:`stop`.
    """

    def __init__(self, config: ServiceConfig, context: zmq.Context[Any] | None = None) -> None:
        self.config = config
        self.stats = ServiceStats()
        self.endpoints: dict[str, str] = {}
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._halt_input = threading.Event()
        self._closing = threading.Event()
        self._stop_requested = threading.Event()
        self._drain_cut = threading.Event()  # a stop asked again: no more draining
        self._receiver: Receiver | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._paused = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._errors: list[BaseException] = []
        queues = config.queues
        backlog = config.inference_overflow == "block" and config.input_mode == "pull"
        self._jobs: StageQueue[Job | SeriesEnd] = StageQueue(
            BACKLOG_FRAMES if backlog else queues.inference_depth,
            config.inference_overflow,
            on_drop=lambda _: self.stats.count_dropped("inference_queue_full"),
            sizeof=lambda job: (
                job.frame.pixels.nbytes + JOB_OVERHEAD_BYTES if isinstance(job, Job) else 0
            ),
        )
        self._outgoing: StageQueue[Outgoing] = StageQueue(
            queues.publish_depth,
            "drop_oldest",
            on_drop=lambda out: self.stats.count_dropped(
                DROP_REASONS.get(out.topic, "traces_queue_full")
            ),
            sizeof=lambda out: out.payload.nbytes if out.payload is not None else 0,
        )
        self.events = EventEmitter(self._queue_event)
        self.writer: Writer | None = None
        self._inference: InferenceStage | None = None
        self._curve: CurveGuard | None = None
        self._traces: TraceStep | None = None
        #: The model path load_model is loading and when it began (None: no load).
        self._loading: tuple[str, float] | None = None
        #: Provider fallbacks so far (``from``, ``to``, ``reason``, ``when``: load or run).
        self.fallbacks: list[dict[str, str]] = []

    @property
    def engine(self) -> Engine | None:
        """The model running now (None before start)."""
        return self._inference.engine if self._inference is not None else None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Load the model, bind sockets and start the stage threads."""
        cfg = self.config
        # The stages are Python threads: one that waits for the GIL (a frame just denoised,
        # traces to compute) gets it when the holder releases it, or after the switch
        # interval, 5 ms by default: the tail of every stage's latency. 0.5 ms bounds it.
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        cfg.warn_public_binds()
        cfg.warn_missing_model_dirs()
        engine = None
        link = None
        sockets: dict[str, zmq.Socket[Any]] = {}
        try:
            traces = TraceStep(  # bad ROIs: fail here
                cfg.traces,
                self._outgoing,
                self.events,
                camera_configured=cfg.camera is not None,
                max_header_bytes=cfg.limits.max_output_header_bytes,
            )
            offset_pattern = None if cfg.offset_map is None else load_offset_pattern(cfg.offset_map)
            if cfg.zarr is not None:  # an unwritable folder: said now, not at the first frame
                clear_left_overs(check_store_folder(Path(cfg.zarr)))  # a killed run's
            engine = self._load_engine(cfg.model)
            preload_frame_path()  # not on a frame's time
            if cfg.security is not None:
                self._curve = CurveGuard(self._ctx, cfg.security)
            link = (
                None
                if cfg.input_bind
                else InputLink(cfg.input, cfg.input_mode, self._input_dropped)
            )
            sockets = open_sockets(self._ctx, cfg, self.endpoints, self._curve, link)
            if cfg.zarr is not None:
                self.writer = Writer(
                    Path(cfg.zarr),
                    cfg.store,
                    attrs=self._store_attrs(engine),
                    on_error=self._store_error,
                    on_lost=self.stats.count_dropped,
                    on_series_end=self._series_end,
                    depth=cfg.queues.writer_depth,
                    flush_interval_s=cfg.store.flush_interval_s,
                    store_budget=cfg.store_budget_bytes,
                    on_died=self._writer_died,
                )
                self.writer.start()
            traces.writer = self.writer if cfg.traces.store else None
            self._traces = traces
            receiver = Receiver(
                cfg.limits,
                self.stats,
                self.events,
                self._jobs,
                self.writer,
                self._paused,
                self._halt_input,
                memory=MemoryGate(
                    self.queued_bytes,
                    cfg.queue_budget_bytes,
                    cfg.input_mode == "pull",
                    socket_frames=cfg.receive_hwm,
                    socket_share=cfg.queue_budget_bytes,  # a quarter, as each share
                ),
                drain_s=cfg.drain_s,
                drain_input_s=cfg.drain_input_s,
                idle_end_s=cfg.series_idle_end_s,
                raw_out=self._outgoing if cfg.publish_raw else None,
                traces=traces,
                link=link,
            )
            self._inference = InferenceStage(
                self._jobs,
                self._outgoing,
                self.writer,
                engine,
                self.stats,
                self.events,
                output_in_input_dtype=cfg.output_dtype == "input",
                camera=cfg.camera,
                traces=traces,
                fallback=self._fallback_engine,
                ensemble=EnsemblePolicy(cfg.ensemble, cfg.ensemble_budget),
                blend=cfg.blend,
                # a live input whose queue drops the oldest frame: a series' first frame held
                # for its blend measurement (12 x a frame) would cost the frames behind it
                # (the quick start at 20 fps, 256 x 256 on 2 vCPUs: 4 of them at each start)
                first_at_once=cfg.inference_overflow == "block",
                offset_pattern=offset_pattern,
            )
            publisher = PublishStage(
                self._outgoing, self.stats, self._periodic_status, cfg.status_interval_s
            )
            control = ControlHandler(self)
        except BaseException:
            # nothing runs yet: release what was acquired so a failed start leaks nothing
            for sock in sockets.values():
                sock.close(0)
            if link is not None:
                link.close()
            if self.writer is not None:
                self.writer.close()
                self.writer = None
            if engine is not None:
                engine.close()
            if self._curve is not None:
                self._curve.close()
            if self._own_ctx:
                self._ctx.term()
            self._stopped.set()
            raise
        self._receiver = receiver
        self._spawn("receiver", receiver.run, sockets["input"])
        self._spawn("inference", self._inference.run)
        self._spawn("publisher", publisher.run, sockets["output"])
        self._spawn("control", control.run, sockets["control"], self._closing)
        self.events.emit("model_loaded", model=engine.model_id, provider=engine.provider)
        if engine.fallback is not None:
            self._report_fallback(engine.fallback)
        log.info(
            "deepdenoise %s serving: input %s (%s%s), output %s, control %s, zarr %s",
            __version__,
            self.endpoints["input"],
            cfg.input_mode,
            ", bound" if cfg.input_bind else "",
            self.endpoints["output"],
            self.endpoints["control"],
            cfg.zarr if cfg.zarr is not None else "off",
        )

    def _input_dropped(self, message: str) -> None:
        """libzmq ended the input's working connection for good (a message over the size
        limit): told to subscribers too, as what was sent meanwhile is lost unseen."""
        self.events.emit("error", limit_key="input_dropped", kind="input_dropped", message=message)

    def _writer_died(self, exc: BaseException) -> None:
        """The writer thread failed: no frame can reach the disk, so the service stops
        (the stages stop at their next frame; the stop raises the writer's error)."""
        self.events.emit("error", message=f"the store writer failed: {exc}; stopping")
        self.request_stop()

    def request_stop(self) -> None:
        """Ask for an orderly stop from any thread or a signal handler; returns at once."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        threading.Thread(target=self._stop_quietly, name="deepdenoise-stopper").start()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (it may still be draining)."""
        return self._stop_requested.is_set()

    def cut_drain(self) -> None:
        """Cut a stop's drain short (an operator's second Ctrl-C or SIGTERM): the input
        is read on without waiting for it to go quiet, and the frames waiting for
        inference beyond the queue's depth are counted ``dropped.shutdown`` (their raw
        frames are stored). From any thread or a signal handler; returns at once."""
        if self._drain_cut.is_set():
            return
        self._drain_cut.set()
        if self._receiver is not None:
            self._receiver.cut_drain()
        log.warning("stop asked again: the drain is cut short")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the service has stopped; True if it has."""
        return self._stopped.wait(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Drain every stage in order, flush and close the stores, close sockets.

        Raises the first error a worker thread died with, if any.
        """
        with self._stop_lock:
            if not self._stopped.is_set() and self._threads:
                self._shutdown(timeout)
            self._stopped.set()
        if self._errors:
            raise self._errors[0]

    def _stop_quietly(self) -> None:
        try:
            self.stop()
        except BaseException:
            log.exception("service stopped with an error")

    def _shutdown(self, timeout: float) -> None:
        # In data-flow order: each stage drains what the one before it handed over.
        drain_until = time.monotonic() + self.config.drain_s
        self._halt_input.set()
        self._join("receiver", timeout)
        self._leave_backlog(drain_until)
        self._jobs.close()
        self._join("inference", timeout)
        if self._alive("inference"):
            self._abandon_waiting_frames(timeout)
        if self.writer is not None:
            self.writer.close(timeout)
            if self.writer.error is not None:
                self._errors.append(self.writer.error)
            unwritten = self.writer.abandon_if_stuck()
            if unwritten:  # a hung disk: counted, told, and the exit status says so
                self._errors.append(StoreError(unwritten))
                for stage in ("receiver", "inference"):  # a frame held for the queue's
                    self._join(stage, min(timeout, STAGE_AFTER_ABANDON_S))  # room: counted
        self._outgoing.close()
        self._join("publisher", timeout)
        self._closing.set()
        # a slow command under way (a model's warm-up) is waited for and answered
        self._join("control", max(timeout, WORKER_STOP_S + 5.0))
        if self._inference is not None:
            self._inference.close()
        if self._curve is not None:
            self._curve.close()
        if self._own_ctx:
            self._ctx.term()
        unstored = self.raw_frames_not_on_disk()
        if unstored:  # the one promise broken: a frame's raw pixels not on disk
            log.error(
                "service stopped: %s; %d raw frame(s) are not on disk (store_raw: the "
                "store_* errors above say why)",
                self._summary(),
                unstored,
            )
        else:
            log.info("service stopped: %s", self._summary())

    def raw_frames_not_on_disk(self) -> int:
        """Frames received whose raw pixels the store could not write (``store_raw``):
        the one promise broken, which the stop logs and ``serve``'s exit status tells."""
        return int(self.stats.snapshot()["dropped"].get("store_raw", 0))

    def _summary(self) -> str:
        snap = self.stats.snapshot()

        def counted(counter: dict[Any, int] | None) -> str:
            # reason codes are str enums: their values, not their reprs
            return (
                ", ".join(f"{getattr(k, 'value', k)!s} {n}" for k, n in counter.items())
                if counter
                else "0"
            )

        return (
            f"{snap['frames_in']} in, {snap['frames_out']} out, "
            f"dropped {counted(snap['dropped'])}, rejected {counted(snap['rejected'])}"
        )

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self._errors.append(exc)
                log.exception("%s thread failed; stopping the service", name)
                self.events.emit("error", message=f"{name} thread failed: {exc}")
                self.request_stop()

        thread = threading.Thread(target=run, name=f"deepdenoise-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def _leave_backlog(self, drain_until: float) -> None:
        """Once input has stopped: the frames waiting for inference are denoised until
        the drain ends (``drain_s`` after the stop began); then as many as the queue's
        depth are, the rest counted (``dropped.shutdown``; their raw pixels are on
        disk). A backlog read while inference was behind would otherwise hold the stop
        for as long as it takes to denoise it."""
        depth = self.config.queues.inference_depth
        while (
            self._jobs.droppable > depth
            and time.monotonic() < drain_until
            and not self._drain_cut.is_set()
        ):
            if not self._alive("inference"):
                break
            time.sleep(0.01)
        behind = self._jobs.take_where(lambda item: isinstance(item, Job), keep=depth)
        if behind:
            self.stats.count_dropped("shutdown", len(behind))
            log.warning(
                "stopping: %d frame(s) waiting for inference beyond the queue's depth (%d) "
                "are not denoised (dropped.shutdown); their raw frames are stored",
                len(behind), depth,
            )  # fmt: skip

    def _abandon_waiting_frames(self, timeout: float) -> None:
        """Inference did not drain its queue within the stop's ``timeout`` (a slow model,
        a deep queue): the frames still waiting are not denoised but counted
        (``dropped.shutdown``; their raw frames are stored), and the frame in hand is
        waited for as long again, then counted too."""
        waiting = self._jobs.take_where(lambda item: isinstance(item, Job))
        if waiting:
            self.stats.count_dropped("shutdown", len(waiting))
        log.error(
            "stopping: inference did not finish its queue within %.0f s; %d frame(s) still "
            "waiting are not denoised (dropped.shutdown; their raw frames are stored)",
            timeout, len(waiting),
        )  # fmt: skip
        self._join("inference", timeout)
        if self._alive("inference"):  # held by a store that does not answer, say
            self.stats.count_dropped("shutdown")
            log.error("stopping: the frame inference holds is not finished; dropped.shutdown")

    def _alive(self, name: str) -> bool:
        thread = self._threads.get(name)
        return thread is not None and thread.is_alive() and thread is not threading.current_thread()

    def _join(self, name: str, timeout: float) -> None:
        thread = self._threads.get(name)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.error("%s thread did not stop within %.0f s", name, timeout)

    # ------------------------------------------------------------------ set-up
    def _load_engine(self, model: Path | str | None, provider: str | None = None) -> Engine:
        cfg = self.config
        if model is None:  # the shipped model that suits the provider that will run it
            model = default_model_path(select_providers(cfg.provider).name)
        engine = Engine(
            model,
            provider=provider or cfg.provider,
            tile=cfg.tile,
            overlap=cfg.overlap,
            warmup_shape=cfg.warmup_shape,
            gpu=cfg.gpu,
            spikes=cfg.spikes,
            follow=cfg.follow,
        )
        if engine.metadata.frames > 1:
            log.info("%s follows fast events: %s (follow)", engine.path.name, cfg.follow)
        elif cfg.follow != "balanced":  # said, not ignored without a word (a user's trial)
            log.warning(
                "follow = %r does nothing for %s: a spatial model has no lag to take back",
                cfg.follow,
                engine.path.name,
            )
        return engine

    def _store_attrs(self, engine: Engine) -> dict[str, Any]:
        return {
            "protocol_version": PROTOCOL_VERSION,
            "deepdenoise_version": __version__,
            "model": engine.model_id,
            "models": [engine.model_id],
            "model_path": str(engine.path),
            "provider": engine.provider,
            "config": self.config.model_dump(mode="json"),
        }

    def _fallback_engine(self, failed: Engine, error: BaseException) -> Engine | None:
        """The same model on the next provider after a run-time failure (None: none left)."""
        nxt = failed.next_provider()
        if nxt is None:
            return None
        reason = f"{type(error).__name__}: {error}"
        log.error("%s failed at run time (%s); loading %s on %s", failed.provider, reason,
                  failed.path.name, nxt)  # fmt: skip
        engine = self._load_engine(failed.path, provider=nxt)
        self._report_fallback({"from": failed.provider, "to": engine.provider, "reason": reason,
                               "when": "run"})  # fmt: skip
        return engine

    def _report_fallback(self, fallback: dict[str, str]) -> None:
        self.fallbacks.append(fallback)
        self.events.emit("provider_fallback", **fallback)
        log.warning("provider fallback: %s", fallback)

    def _queue_event(self, header: dict[str, Any]) -> None:
        self._outgoing.put(Outgoing(TOPIC_EVENT, pack_header(header)), droppable=False)

    def _store_error(self, series: str, kind: str, message: str) -> None:
        self.events.emit(
            "error", limit_key=f"{kind}:{series}", kind=kind, series=series, message=message
        )
        log.error("series %r: %s: %s", series, kind, message)

    def _series_end(self, series: str, totals: dict[str, Any]) -> None:
        """A series' store is closed: report its true totals (from the disk)."""
        counters = self.stats.series_counters(series)
        self.events.emit(
            "series_end",
            series=series,
            frames=counters.frames_in,
            stored=totals["frames"],
            missing=totals["missing"],
            lost=totals["lost"],
        )
        self.stats.series_ended(series)
        lost = ", ".join(f"{kind} {n}" for kind, n in totals["lost"].items() if n)
        # the log is a long run's record: a frame not denoised or not written is a warning;
        # both counts from the store, which the writer closes after its last clean frame
        clean = totals.get("clean")
        skipped = 0 if clean is None else totals["frames"] - clean
        log.log(
            logging.WARNING if skipped > 0 or lost else logging.INFO,
            "series %r ended: %d frames received, %d raw on disk%s, %d missing%s",
            series,
            counters.frames_in,
            totals["frames"],
            ""
            if clean is None
            else f", {clean} denoised on disk"
            + (
                f" ({skipped} without their denoised frame on disk: paused, dropped or not "
                "written, as status.dropped counts, or an earlier session's)"
                if skipped
                else ""
            ),
            totals["missing"],
            f"; not written: {lost}" if lost else "",
        )

    # ------------------------------------------------------------------ control
    def load_model(self, path: str | Path, timeout: float = 60.0) -> Engine:
        """Load and warm up a model off the hot path (also on the frame shapes of the
        series streaming now), then swap it in between frames.

        Only models under the allowed folders load (see :meth:`allowed_model_dirs`); a
        path elsewhere gets the same error whether or not a file is there.
        """
        if self._inference is None:
            raise RuntimeError("the service is not running: start() it first")
        candidate = Path(path).expanduser()
        if len(candidate.parts) == 1 and not candidate.suffix:
            # a shipped model's name: its file; else the folders decide, with the one
            # error that tells nothing
            with contextlib.suppress(ModelError):
                candidate = shipped_model_path(candidate.name)
        elif len(candidate.parts) == 1:  # a bare file name: looked for in the model folders
            found = [d / candidate for d in self.allowed_model_dirs()]
            files = list(dict.fromkeys(f.resolve() for f in found if f.is_file()))
            if len(files) > 1:  # the first folder's won, unsaid (an operator's trial)
                raise ConfigError(
                    f"{candidate} is in more than one model folder "
                    f"({', '.join(str(f) for f in files)}): give the one to load by its path"
                )
            candidate = files[0] if files else candidate
        candidate = candidate.resolve()
        if not any(candidate.is_relative_to(d) for d in self.allowed_model_dirs()):
            raise ConfigError(
                "load_model loads models only from the service's model folders (the shipped "
                "models, the configured model's folder, and `model_dirs` in its config or "
                "`serve --model-dir`)"
            )
        self._loading = (str(candidate), time.monotonic())
        try:
            new = self._load_engine(candidate)
            # the series streaming now go on with it: it must run on their frames first
            new.warm_up(list(self._inference.frame_shapes.values()))
            inference = self._threads["inference"]
            self._inference.swap(new, timeout, alive=inference.is_alive)
        finally:
            self._loading = None
        return new

    def allowed_model_dirs(self) -> list[Path]:
        """Folders load_model may load from, resolved."""
        dirs = [default_model_path().parent, *self.config.model_dirs]
        if self.config.model is not None:
            dirs.append(self.config.model.parent)
        return [d.resolve() for d in dirs]

    def set_rois(
        self,
        labels: Any,
        series: str | None = None,
        timeout: float = 10.0,
        fit: bool = False,
        source: str | None = None,
    ) -> tuple[int, list[str]]:
        """Replace the ROIs (of ``series``, or of every series) between two frames.

        ``labels``: an integer label image (0 = background), or None for no ROIs.
        ``fit``: the image is the ROIs' extent from the top-left corner (suite2p ROIs
        with no frame shape), so any frame that holds it fits, not only its own shape.
        ``source``: where the labels came from (a file), kept as the ROIs' source in
        ``status`` and in the stored traces. Returns the number of ROIs and the
        streaming series whose frames they were checked against (none streaming: each
        series checks them when it starts).
        Raises RoiError (nothing changes) for bad labels.
        """
        if self._traces is None:
            raise RuntimeError("the service is not running: start() it first")
        origin = f"set_rois ({source})" if source else "set_rois"
        rois = None if labels is None else rois_from_labels(labels, origin, extent_only=fit)
        checked = self._traces.set_rois(rois, series, timeout)
        return (0 if rois is None else rois.count), checked

    def end_series(self, series: str, timeout: float = 10.0) -> int:
        """End an open series as if its sender had sent ``end``: its store is closed
        after its last frame is denoised, its history freed, and a ``series_end`` follows;
        a later frame resumes it. For a sender that crashed with a series open (which
        holds its store, and keeps a global ``set_rois`` of another shape refused, until
        ``series_idle_end_s``). Returns the series' last index received (-1: none).
        Raises SeriesNotOpenError (nothing changes), or TimeoutError.
        """
        if self._receiver is None:
            raise RuntimeError("the service is not running: start() it first")
        return self._receiver.end_series(series, timeout)

    def memory_by_stage(self) -> dict[str, int]:
        """Bytes of frames each part of the service holds now."""
        inference = self._inference
        history = (
            sum(c.history_bytes for c in list(inference.contexts.values())) if inference else 0
        )
        return {
            "inference_queue": self._jobs.nbytes,
            "publish_queue": self._outgoing.nbytes,
            "writer_queue": self.writer.queued_bytes if self.writer is not None else 0,
            "stores": self.writer.store_bytes if self.writer is not None else 0,
            "history": history,
        }

    def queued_bytes(self) -> int:
        """Frames waiting in the stage queues: what grows when a stage falls behind."""
        writer = self.writer.queued_bytes if self.writer is not None else 0
        return self._jobs.nbytes + self._outgoing.nbytes + writer

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything received so far to disk; True when done (or no Zarr)."""
        return self.writer.flush(timeout) if self.writer is not None else True

    def _loading_status(self) -> dict[str, Any] | None:
        """The model ``load_model`` is loading and warming up now, and for how long."""
        loading = self._loading
        if loading is None:
            return None
        path, since = loading
        return {"path": path, "for_s": round(time.monotonic() - since, 1)}

    def _periodic_status(self) -> dict[str, Any]:
        """The status message the publisher sends each ``status_interval_s``; a flood of
        events that ended is logged then (not only at its next event)."""
        self.events.report_suppressed()
        return self.status()

    def status(self) -> dict[str, Any]:
        """The fields of the status message (also the control ``status`` reply)."""
        engine = self.engine
        snap = self.stats.snapshot()
        if self._inference is not None:
            for series, extra in self._inference.series_status().items():
                snap["series"].setdefault(series, {}).update(extra)
        snap.update(
            v=PROTOCOL_VERSION,
            state="stopping" if self._stop_requested.is_set() else "running",
            paused=self.paused,
            queues={
                "inference": len(self._jobs),
                "publish": len(self._outgoing),
                "writer": self.writer.depth() if self.writer is not None else 0,
            },
            provider=engine.provider if engine is not None else "",
            provider_fallbacks=list(self.fallbacks),
            model=engine.model_id if engine is not None else "",
            zarr=str(self.config.zarr) if self.config.zarr is not None else None,
            store=self.writer.health() if self.writer is not None else None,
            memory={
                "budget_mb": self.config.memory_budget_mb,
                "queues_budget_mb": round(self.config.queue_budget_bytes / 2**20, 1),
                "stores_budget_mb": round(self.config.store_budget_bytes / 2**20, 1),
                "pub_hwm": self.config.pub_hwm,
                "receive_hwm": self.config.receive_hwm,
                "in_use_mb": {k: round(v / 2**20, 2) for k, v in self.memory_by_stage().items()},
            },
            events_suppressed=self.events.suppressed,
            traces=self._traces.status() if self._traces is not None else None,
            ensemble=self._inference.ensemble.status() if self._inference is not None else None,
            loading=self._loading_status(),
            blend=self.config.blend,
            # how a temporal model follows fast events; "none": the model is spatial
            follow=(engine.follow if engine.metadata.frames > 1 else "none")
            if engine is not None
            else "",
            offset_map=(
                self._inference.offset_pattern.status()
                if self._inference is not None and self._inference.offset_pattern is not None
                else None
            ),
        )
        return snap
