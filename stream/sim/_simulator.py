"""A simulated microscope: phantom frames with camera noise, streamed over ZeroMQ.

It speaks protocol v1 exactly as an acquisition program would (``start``, frames,
``end``), so the service, its tests and the demo run against a known ground truth.
Two choices make it trustworthy as a test fixture:

- PUB mode uses an XPUB socket and sends nothing until a matching subscription has
  arrived, so no frame is lost to ZeroMQ's slow-joiner window.
- Frame ``i`` is a pure function of ``(config, i)``: :meth:`Simulator.frame` returns the
  exact pixels that were sent and :meth:`Simulator.ground_truth` the noise-free image
  behind them, so a receiver can score what it got.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import numpy as np
import zmq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._errors import ConfigError, ServiceTimeoutError
from .._types import DEFAULT_INPUT, Endpoint, FrameShape, SeriesName, is_ipv6_endpoint
from ..protocol import ACCEPTED_DTYPES, frame_header, pack_header, series_header
from ._phantom import (
    CalciumPhantom,
    CameraDtype,
    FramePool,
    PhantomConfig,
    frame_rng,
)

log = logging.getLogger(__name__)

#: Length of the ground-truth movie in live mode when ``movie_frames`` is 0: long
#: enough to look alive, short enough that traces stay small; longer runs cycle it.
DEFAULT_MOVIE_FRAMES = 3000
_SPIN_S = 2e-4  # sleep until this close to a deadline, then spin: accurate, little CPU
_MAX_POOL_BYTES = 8 << 30


class SimulatorConfig(BaseModel):
    """Where and how fast the simulated microscope sends, and what it images.

    ``shape`` and ``seed`` replace those of ``phantom``; ``phantom.fps`` sets the
    biological time per frame, independent of the sending rate ``fps``.
    """

    model_config = ConfigDict(extra="forbid")

    endpoint: Endpoint = Field(DEFAULT_INPUT, description="ZeroMQ endpoint; tcp port 0 picks one")
    mode: Literal["pub", "push"] = "pub"
    bind: bool = Field(True, description="bind the endpoint (else connect to it)")
    topic: str = Field("frame", description="first message part (PUB topic)")
    shape: FrameShape = Field((512, 512), description="(height, width) in pixels")
    fps: float = Field(30.0, ge=0, le=100_000, description="sending rate, Hz; 0 = flat out")
    frames: int = Field(300, ge=0, description="frames to send; 0 = until stopped")
    start_index: int = Field(0, ge=0, description="index of the first frame")
    series: SeriesName = "sim"
    dtype: CameraDtype = "uint16"
    pool: int = Field(
        0, ge=0, le=1_000_000, description="pre-generated noisy frames cycled; 0 = live noise"
    )
    movie_frames: int = Field(
        0, ge=0, le=1_000_000, description="ground-truth movie length; 0 = pool or default"
    )
    wait_subscriber_s: float = Field(
        10.0, gt=0, le=86_400, description="wait for the first subscriber / PUSH peer, s"
    )
    send_timeout_s: float = Field(10.0, gt=0, le=86_400, description="PUSH back-pressure, s")
    linger_s: float = Field(5.0, ge=0, le=3600, description="flush time on close, s")
    sndhwm: int = Field(1000, ge=1, description="ZMQ send high-water mark, messages")
    workers: int = Field(
        0, ge=0, le=64, description="threads drawing live noise ahead; 0 = min(4, cores)"
    )
    nodrop: bool = Field(
        False,
        description="PUB: block (up to send_timeout_s) instead of dropping frames for a "
        "subscriber sndhwm behind; PUSH always blocks",
    )
    seed: int = Field(0, ge=0, description="seeds the phantom and every frame's noise")
    phantom: PhantomConfig = PhantomConfig.model_validate({})
    send_start_end: bool = Field(True, description="bracket the frames by start/end")
    meta: bool = Field(True, description="add meta {sim: true, truth: <movie frame>}")

    @model_validator(mode="after")
    def _pool_size(self) -> SimulatorConfig:
        nbytes = self.pool * self.shape[0] * self.shape[1] * np.dtype(self.dtype).itemsize
        if nbytes > _MAX_POOL_BYTES:
            raise ValueError(
                f"expected a pool of at most {_MAX_POOL_BYTES >> 30} GiB, got {self.pool} frames "
                f"of {self.shape[0]}x{self.shape[1]} {self.dtype} = {nbytes / 2**30:.1f} GiB"
            )
        return self


@dataclass(frozen=True, slots=True)
class SimulatorReport:
    """What one :meth:`Simulator.run` or :meth:`Simulator.send_frames` sent."""

    frames: int
    seconds: float  # first start/frame sent to last frame/end sent
    fps: float  # sender-side rate, first to last frame (a deep send queue can exceed the reader)
    late: int  # frames sent more than one period after their deadline
    stopped: bool  # ended early by the stop event
    endpoint: str


class Simulator:
    """The simulated microscope. A context manager: the socket lives inside ``with``.

    Parameters
    ----------
    config
        Endpoint, pacing and the phantom.
    context
        ZeroMQ context to share (needed for ``inproc://``); by default a private one,
        terminated on close.
    """

    def __init__(self, config: SimulatorConfig, context: zmq.Context[Any] | None = None) -> None:
        self.config = config
        self._context = context
        self._own_context = context is None
        self._socket: zmq.Socket[Any] | None = None
        self._endpoint = config.endpoint
        self._subscribed = False
        self._pool: FramePool | None = None
        self._clip_checked = False
        self._topic = config.topic.encode()
        phantom = PhantomConfig.model_validate(
            {**config.phantom.model_dump(), "shape": config.shape, "seed": config.seed}
        )
        length = config.movie_frames or config.pool or DEFAULT_MOVIE_FRAMES
        if not (config.movie_frames or config.pool) and config.frames:
            length = min(length, config.frames)
        self.phantom = CalciumPhantom(phantom, length)

    # -- lifecycle --------------------------------------------------------------------

    def open(self) -> Simulator:
        if self._socket is not None:
            return self
        cfg = self.config
        if self._context is None:
            self._context = zmq.Context()
        sock = self._context.socket(zmq.XPUB if cfg.mode == "pub" else zmq.PUSH)
        try:
            sock.setsockopt(zmq.SNDHWM, cfg.sndhwm)
            sock.setsockopt(zmq.LINGER, round(cfg.linger_s * 1000))
            if cfg.mode == "pub" and cfg.nodrop:
                sock.setsockopt(zmq.XPUB_NODROP, 1)
            if cfg.mode == "push" and not cfg.bind:
                sock.setsockopt(zmq.IMMEDIATE, 1)  # block (not queue) until a peer is there
            if is_ipv6_endpoint(cfg.endpoint):
                sock.setsockopt(zmq.IPV6, 1)
            if cfg.bind:
                sock.bind(cfg.endpoint)
                self._endpoint = str(sock.get_string(zmq.LAST_ENDPOINT))
            else:
                sock.connect(cfg.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._close_context()
            verb = "bind" if cfg.bind else "connect"
            raise ConfigError(f"simulator cannot {verb} {cfg.endpoint}: {exc}") from exc
        self._socket = sock
        log.info(
            "simulator %s %s %s", cfg.mode.upper(), "bound" if cfg.bind else "to", self.endpoint
        )
        return self

    def close(self) -> None:
        """Close the socket, giving queued messages up to ``linger_s`` to leave."""
        if self._socket is not None:
            self._socket.close(linger=round(self.config.linger_s * 1000))
            self._socket = None
        self._close_context()

    def _close_context(self) -> None:
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> Simulator:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """The endpoint actually bound (the real port when the config asked for port 0)."""
        return self._endpoint

    # -- ground truth -----------------------------------------------------------------

    def prepare(self) -> None:
        """Generate the frame pool now (``run`` does it otherwise, before sending)."""
        if self.config.pool and self._pool is None:
            t0 = time.perf_counter()
            self._pool = FramePool(
                self.phantom, self.config.pool, seed=self.config.seed, dtype=self.config.dtype
            )
            self._check_clipping(self._pool[0])
            log.info(
                "simulator pool: %d frames in %.2f s", self.config.pool, time.perf_counter() - t0
            )

    def truth_index(self, index: int) -> int:
        """The phantom frame behind stream index ``index``."""
        if self.config.pool:
            return (index % self.config.pool) % self.phantom.n_frames
        return index % self.phantom.n_frames

    def ground_truth(self, index: int) -> np.ndarray:
        """Noise-free image of stream index ``index`` in camera units (float32)."""
        return self.phantom.expected_camera(self.truth_index(index))

    def frame(self, index: int) -> np.ndarray:
        """The exact pixels sent as stream index ``index`` (read-only when pooled)."""
        if self.config.pool:
            self.prepare()
            assert self._pool is not None
            return self._pool[index]
        pixels = self.phantom.noisy(
            self.truth_index(index), frame_rng(self.config.seed, index), self.config.dtype
        )
        self._check_clipping(pixels)
        return pixels

    def _check_clipping(self, pixels: np.ndarray) -> None:
        if self._clip_checked or pixels.dtype.kind == "f":
            return
        self._clip_checked = True
        info = np.iinfo(pixels.dtype)
        clipped = float(np.mean((pixels == info.max) | (pixels == info.min)))
        if clipped > 0.01:
            log.warning(
                "simulator: %.0f%% of pixels saturate %s; lower phantom.noise gain/offset "
                "or the brightness",
                100 * clipped,
                pixels.dtype,
            )

    # -- sending ----------------------------------------------------------------------

    def run(
        self,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> SimulatorReport:
        """Send ``start``, ``frames`` frames paced at ``fps``, then ``end``.

        ``progress`` is called with the number of frames sent after each frame; setting
        ``stop`` ends the run early (``end`` is still sent).
        """
        cfg = self.config
        self.prepare()
        first = cfg.start_index
        indices: Iterable[int] = (
            range(first, first + cfg.frames) if cfg.frames else itertools.count(first)
        )

        def items() -> Iterator[tuple[int, np.ndarray, dict[str, Any] | None]]:
            for i, pixels in self._frames_ahead(indices):
                meta = {"sim": True, "truth": self.truth_index(i)} if cfg.meta else None
                yield i, pixels, meta

        return self._stream(items(), cfg.fps, progress, stop)

    def _frames_ahead(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Frames in order; live noise is drawn ``workers`` frames ahead in threads.

        A 512x512 Poisson draw takes ~20-30 ms of one core, but numpy releases the GIL
        while drawing and every frame has its own generator, so threads scale with cores.
        """
        workers = self.config.workers or min(4, os.cpu_count() or 1)
        if self.config.pool or workers < 2:
            yield from ((i, self.frame(i)) for i in indices)
            return
        pending: deque[tuple[int, Future[np.ndarray]]] = deque()
        source = iter(indices)
        with ThreadPoolExecutor(workers, thread_name_prefix="deepdenoise-sim") as pool:
            try:
                for i in itertools.islice(source, 2 * workers):
                    pending.append((i, pool.submit(self.frame, i)))
                while pending:
                    i, future = pending.popleft()
                    for nxt in itertools.islice(source, 1):
                        pending.append((nxt, pool.submit(self.frame, nxt)))
                    yield i, future.result()
            finally:
                for _, future in pending:
                    future.cancel()

    def send_frames(
        self,
        frames: Iterable[np.ndarray],
        *,
        start_index: int = 0,
        fps: float | None = None,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> SimulatorReport:
        """Send the given 2-D arrays as consecutive frames (for exact-pixel tests).

        Arrays of 64 KiB and more are sent zero-copy: do not modify them until the
        socket is closed.
        """

        def items() -> Iterator[tuple[int, np.ndarray, dict[str, Any] | None]]:
            for i, array in enumerate(frames, start=start_index):
                yield i, _wire_array(array), {"sim": True} if self.config.meta else None

        return self._stream(items(), self.config.fps if fps is None else fps, progress, stop)

    def wait_for_subscriber(self, stop: threading.Event | None = None) -> bool:
        """PUB: block until a subscription matching ``topic`` arrives (False if stopped).

        Raises :class:`ServiceTimeoutError` after ``wait_subscriber_s``.
        """
        sock = self._require_socket()
        if self.config.mode != "pub" or self._subscribed:
            return True
        deadline = time.monotonic() + self.config.wait_subscriber_s
        while not (stop is not None and stop.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceTimeoutError(
                    f"no subscriber for topic {self.config.topic!r} on {self.endpoint} within "
                    f"{self.config.wait_subscriber_s} s; start the receiver (deepdenoise serve) "
                    "first, or wait longer (wait_subscriber_s; simulate --wait); a service "
                    "with input_mode = 'pull' takes a PUSH sender (simulate --mode push)"
                )
            if sock.poll(max(1, round(min(remaining, 0.05) * 1000)), zmq.POLLIN):
                message = sock.recv()
                if message[:1] == b"\x01" and self._topic.startswith(message[1:]):
                    self._subscribed = True
                    log.info("simulator: subscriber arrived on %s", self.endpoint)
                    return True
        return False

    def _require_socket(self) -> zmq.Socket[Any]:
        if self._socket is None:
            raise ConfigError("the simulator is not open: use it as a context manager")
        return self._socket

    def _send(self, parts: list[Any], timeout_s: float, what: str) -> None:
        sock = self._require_socket()
        sock.setsockopt(zmq.SNDTIMEO, round(timeout_s * 1000))
        try:
            sock.send_multipart(parts, copy=False)  # pyzmq copies parts < 64 KiB anyway
        except zmq.Again:
            raise ServiceTimeoutError(
                f"sending {what} to {self.endpoint} blocked for more than {timeout_s} s: "
                "no PUSH peer connected (a service with input_mode = 'sub' takes a PUB "
                "sender: simulate --mode pub), or the receiver stopped reading (back-pressure)"
            ) from None

    def _stream(
        self,
        items: Iterator[tuple[int, np.ndarray, dict[str, Any] | None]],
        fps: float,
        progress: Callable[[int], None] | None,
        stop: threading.Event | None,
    ) -> SimulatorReport:
        cfg = self.config
        if not self.wait_for_subscriber(stop):
            return SimulatorReport(0, 0.0, 0.0, 0, True, self.endpoint)
        period = 1.0 / fps if fps > 0 else 0.0
        timeout = cfg.wait_subscriber_s  # the first message waits for a PUSH peer
        t_begin = time.perf_counter()
        if cfg.send_start_end:
            self._send(self._mark("start"), timeout, "start")
            timeout = cfg.send_timeout_s
        sent = late = 0
        stopped = False
        t0 = t_first = t_last = 0.0
        try:
            for index, pixels, meta in items:
                if stop is not None and stop.is_set():
                    stopped = True
                    break
                if period:
                    if sent == 0:
                        t0 = time.perf_counter()
                    deadline = t0 + sent * period
                    if _sleep_until(deadline, stop):
                        stopped = True
                        break
                    late += time.perf_counter() - deadline > period
                header = frame_header(cfg.series, index, pixels, t_ns=time.time_ns(), meta=meta)
                self._send([self._topic, pack_header(header), pixels], timeout, f"frame {index}")
                timeout = cfg.send_timeout_s
                t_last = time.perf_counter()
                t_first = t_first or t_last
                sent += 1
                if progress is not None:
                    progress(sent)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # stop frame generation (and its threads) now, not at GC
        if stop is not None and stop.is_set():
            stopped = True
        if cfg.send_start_end:
            self._send(self._mark("end"), timeout, "end")
        seconds = time.perf_counter() - t_begin
        fps_done = (sent - 1) / (t_last - t_first) if sent > 1 and t_last > t_first else 0.0
        log.info("simulator: sent %d frames in %.2f s (%.1f fps)", sent, seconds, fps_done)
        return SimulatorReport(sent, seconds, fps_done, late, stopped, self.endpoint)

    def _mark(self, kind: str) -> list[Any]:
        header = series_header(kind, self.config.series, t_ns=time.time_ns())
        return [self._topic, pack_header(header)]


def _wire_array(array: np.ndarray) -> np.ndarray:
    """A C-contiguous little-endian 2-D array of a protocol dtype, or ConfigError."""
    array = np.asarray(array)
    little = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if array.ndim != 2 or little.str not in ACCEPTED_DTYPES:
        raise ConfigError(
            "expected 2-D frames of dtype uint8, uint16, int16 or float32, "
            f"got shape {array.shape} dtype {array.dtype}"
        )
    return np.ascontiguousarray(array, dtype=little)


def _sleep_until(deadline: float, stop: threading.Event | None) -> bool:
    """Deadline pacing: sleep most of the wait, spin the last ``_SPIN_S`` for accuracy.

    Returns True when ``stop`` was set while waiting.
    """
    while (remaining := deadline - time.perf_counter()) > _SPIN_S:
        if stop is None:
            time.sleep(remaining - _SPIN_S)
        elif stop.wait(remaining - _SPIN_S):
            return True
    while time.perf_counter() < deadline:
        pass
    return False
