"""The streaming service: sockets, stage threads, lifecycle.

Stages (each a thread with a bounded queue, see DESIGN.md):

``receiver`` (input socket) → raw to ``writer`` → ``inference`` queue → ``inference``
(engine) → ``publisher`` (PUB socket: denoised, status, events) and ``writer``
(clean); ``control`` (REP socket) changes state. Overflow policies:

- inference queue: ``drop_oldest`` (default; counted as ``inference_queue_full``) or
  ``block`` (back-pressure on the input);
- publish queue: drop the oldest denoised frame (``publish_queue_full``); events and
  status are never dropped here;
- writer queue: blocks, never drops.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from ._config import ServiceConfig
from ._control import ControlHandler
from ._engine import Engine, default_model_path
from ._events import EventEmitter
from ._pipeline import STOP, Job, Outgoing, SeriesEnd
from ._protocol import (
    PROTOCOL_VERSION,
    TOPIC_DENOISED,
    TOPIC_EVENT,
    TOPIC_STATUS,
    denoised_header,
    pack_header,
)
from ._providers import select_providers
from ._queues import Closed, StageQueue
from ._receiver import Receiver
from ._sockets import open_sockets
from ._stats import ServiceStats
from ._version import __version__
from ._writer import CleanOp, EndOp, ModelOp, Writer

log = logging.getLogger("deepdenoise")

_POLL_MS = 100


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
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._paused = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._errors: list[BaseException] = []
        self.engine: Engine | None = None
        self._pending_engine: Engine | None = None
        self._swapped = threading.Condition()
        queues = config.queues
        self._inference: StageQueue[Job | SeriesEnd] = StageQueue(
            queues.inference_depth,
            queues.inference_overflow,
            on_drop=lambda _: self.stats.count_dropped("inference_queue_full"),
        )
        self._publish: StageQueue[Outgoing] = StageQueue(
            queues.publish_depth,
            "drop_oldest",
            on_drop=lambda _: self.stats.count_dropped("publish_queue_full"),
        )
        self.events = EventEmitter(self._queue_event)
        self.writer: Writer | None = None
        self._control = ControlHandler(self)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Load the model, bind sockets and start the stage threads."""
        cfg = self.config
        cfg.warn_public_binds()
        try:
            self.engine = self._load_engine(cfg.model)
            sockets = open_sockets(self._ctx, cfg, self.endpoints)
        except BaseException:
            # nothing runs yet: release what was acquired so a failed start leaks nothing
            if self.engine is not None:
                self.engine.close()
            if self._own_ctx:
                self._ctx.term()
            self._stopped.set()
            raise
        if cfg.zarr is not None:
            self.writer = Writer(
                Path(cfg.zarr),
                cfg.store,
                attrs=self._store_attrs(),
                on_error=self._store_error,
                on_drop=lambda _series: self.stats.count_dropped("store_error"),
                depth=cfg.queues.writer_depth,
                flush_interval_s=cfg.store.flush_interval_s,
            )
            self.writer.start()
        receiver = Receiver(
            cfg.limits,
            self.stats,
            self.events,
            self._inference,
            self.writer,
            self._paused,
            self._halt_input,
        )
        self._spawn("receiver", self._receive_loop, sockets["input"], receiver)
        self._spawn("inference", self._inference_loop)
        self._spawn("publisher", self._publish_loop, sockets["output"])
        self._spawn("control", self._control_loop, sockets["control"])
        self.events.emit("model_loaded", model=self.engine.model_id, provider=self.engine.provider)
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

    def request_stop(self) -> None:
        """Ask for an orderly stop from any thread or a signal handler; returns at once."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        threading.Thread(target=self._stop_quietly, name="deepdenoise-stopper").start()

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
        self._halt_input.set()
        self._join("receiver", timeout)
        self._inference.put(STOP, droppable=False)
        self._inference.close()
        self._join("inference", timeout)
        if self.writer is not None:
            self.writer.close(timeout)
            if self.writer.error is not None:
                self._errors.append(self.writer.error)
        self._publish.close()
        self._join("publisher", timeout)
        self._closing.set()
        self._join("control", timeout)
        for engine in (self.engine, self._pending_engine):
            if engine is not None:
                engine.close()
        if self._own_ctx:
            self._ctx.term()
        log.info("service stopped: %s", self._summary())

    def _summary(self) -> str:
        snap = self.stats.snapshot()
        return (
            f"{snap['frames_in']} in, {snap['frames_out']} out, "
            f"dropped {snap['dropped'] or 0}, rejected {snap['rejected'] or 0}"
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

    def _join(self, name: str, timeout: float) -> None:
        thread = self._threads.get(name)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.error("%s thread did not stop within %.0f s", name, timeout)

    # ------------------------------------------------------------------ set-up
    def _load_engine(self, model: Path | str | None) -> Engine:
        cfg = self.config
        if model is None:  # the shipped model that suits the provider that will run it
            model = default_model_path(select_providers(cfg.provider).name)
        return Engine(
            model,
            provider=cfg.provider,
            tile=cfg.tile,
            overlap=cfg.overlap,
            warmup_shape=cfg.warmup_shape,
        )

    def _store_attrs(self) -> dict[str, Any]:
        assert self.engine is not None
        return {
            "protocol_version": PROTOCOL_VERSION,
            "deepdenoise_version": __version__,
            "model": self.engine.model_id,
            "models": [self.engine.model_id],
            "model_path": str(self.engine.path),
            "provider": self.engine.provider,
            "config": self.config.model_dump(mode="json"),
        }

    # ------------------------------------------------------------------ stages
    def _receive_loop(self, sock: zmq.Socket[Any], receiver: Receiver) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._halt_input.is_set():
                if not poller.poll(_POLL_MS):
                    continue
                for _ in range(256):  # drain a burst, then re-check for a halt
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    receiver.handle([part.buffer for part in parts], time.time_ns())
        finally:
            sock.close(0)

    def _inference_loop(self) -> None:
        out_dtype_input = self.config.output_dtype == "input"
        while True:
            self._swap_engine_if_pending()
            try:
                item = self._inference.get(timeout=_POLL_MS / 1000)
            except Closed:
                return
            if item is None:
                continue
            if isinstance(item, SeriesEnd):
                if item is STOP:
                    continue  # drained up to here; the queue closes behind it
                self._finish_series(item.series)
                continue
            self._denoise(item, out_dtype_input)

    def _denoise(self, job: Job, out_dtype_input: bool) -> None:
        engine = self.engine
        assert engine is not None
        frame = job.frame
        try:
            clean = engine.denoise(frame.pixels)
        except Exception as exc:  # an ORT/GPU failure costs this frame, not the service
            self.stats.count_dropped("inference_error")
            self.events.emit(
                "error",
                limit_key="inference",
                message=f"inference failed on {frame.series}[{frame.index}]: {exc}",
            )
            log.error("inference failed on %s[%d]: %s", frame.series, frame.index, exc)
            return
        t_done = time.time_ns()
        if self.writer is not None:
            self.writer.put(CleanOp(frame.series, frame.index, clean))
        payload = _to_dtype(clean, frame.pixels.dtype) if out_dtype_input else clean
        header = denoised_header(frame, payload, engine.model_id, job.t_recv_ns, t_done)
        if job.non_finite:
            header["non_finite"] = job.non_finite
        self._publish.put(
            Outgoing(TOPIC_DENOISED, pack_header(header), payload, frame.series, job.t_recv_ns)
        )

    def _finish_series(self, series: str) -> None:
        if self.writer is not None:
            self.writer.put(EndOp(series))
        counters = self.stats.series_counters(series)
        self.events.emit(
            "series_end", series=series, frames=counters.frames_in, missing=counters.missing
        )
        log.info(
            "series %r ended: %d frames, %d missing", series, counters.frames_in, counters.missing
        )

    def _swap_engine_if_pending(self) -> None:
        with self._swapped:
            new = self._pending_engine
            if new is None:
                return
            old, self.engine, self._pending_engine = self.engine, new, None
            self._swapped.notify_all()
        if old is not None:
            old.close()
        if self.writer is not None:
            self.writer.put(ModelOp(new.model_id))
        self.events.emit("model_loaded", model=new.model_id, provider=new.provider)
        log.info("model %s (%s) now active on %s", new.model_id, new.path, new.provider)

    def load_model(self, path: str | Path, timeout: float = 60.0) -> Engine:
        """Load and warm up a model off the hot path, then swap it in between frames."""
        new = self._load_engine(Path(path))
        with self._swapped:
            if self._pending_engine is not None:
                self._pending_engine.close()
            self._pending_engine = new
            if not self._swapped.wait_for(lambda: self._pending_engine is not new, timeout):
                raise TimeoutError(f"the inference stage did not take the model within {timeout}s")
        return new

    def _publish_loop(self, sock: zmq.Socket[Any]) -> None:
        interval = self.config.status_interval_s
        next_status = time.monotonic() + interval
        try:
            while True:
                try:
                    item = self._publish.get(timeout=max(0.0, next_status - time.monotonic()))
                except Closed:
                    break
                if item is not None:
                    self._send(sock, item)
                if time.monotonic() >= next_status:
                    self._send_status(sock)
                    next_status = time.monotonic() + interval
            self._send_status(sock)
        finally:
            sock.close()

    def _send(self, sock: zmq.Socket[Any], item: Outgoing) -> None:
        if item.payload is None:
            sock.send_multipart([item.topic, item.header])
            return
        # copy=False: pyzmq copies parts below its copy_threshold (64 KiB) and sends
        # larger ones zero-copy; the array is never reused, so that is safe.
        parts: list[Any] = [item.topic, item.header, item.payload]
        sock.send_multipart(parts, copy=False)
        if item.series is not None:
            self.stats.count_out(item.series, (time.time_ns() - item.t_recv_ns) / 1e6)

    def _send_status(self, sock: zmq.Socket[Any]) -> None:
        sock.send_multipart([TOPIC_STATUS, pack_header(self.status())])

    def _queue_event(self, header: dict[str, Any]) -> None:
        self._publish.put(Outgoing(TOPIC_EVENT, pack_header(header)), droppable=False)

    def _store_error(self, series: str, message: str) -> None:
        self.events.emit("error", limit_key=f"store:{series}", series=series, message=message)
        log.error("%s", message)

    def _control_loop(self, sock: zmq.Socket[Any]) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._closing.is_set():
                if poller.poll(_POLL_MS):
                    request = sock.recv()
                    sock.send(self._control.handle(request))
        finally:
            sock.close(0)

    # ------------------------------------------------------------------ state
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

    def status(self) -> dict[str, Any]:
        """The fields of the status message (also the control ``status`` reply)."""
        engine = self.engine
        snap = self.stats.snapshot()
        snap.update(
            v=PROTOCOL_VERSION,
            state="stopping" if self._stop_requested.is_set() else "running",
            paused=self.paused,
            queues={
                "inference": len(self._inference),
                "publish": len(self._publish),
                "writer": self.writer.depth() if self.writer is not None else 0,
            },
            provider=engine.provider if engine is not None else "",
            model=engine.model_id if engine is not None else "",
            zarr=str(self.config.zarr) if self.config.zarr is not None else None,
            events_suppressed=self.events.suppressed,
        )
        return snap


def _to_dtype(clean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer input dtype (float32 input passes through)."""
    if dtype.kind == "f":
        return clean.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.rint(clean), info.min, info.max).astype(dtype)
