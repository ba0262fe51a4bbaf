"""One measured run of the real service: simulator -> ``stream.Service`` -> subscriber.

The service runs in its own process, as deployed (``deepdenoise serve``), so it does
not share an interpreter lock with the benchmark's sender and subscriber; it is
driven over its control socket like any operator would (flush, status, stop). All on
loopback: the simulator's send stamp (``t_ns``, taken just before the frame enters
ZeroMQ) and the subscriber's receive time share one clock (``time.time_ns``, the
system clock, common to both processes). The subscriber stamps a frame once it holds
its pixels: the message is received and the array is a view of it, as a closed-loop
rig would use it. The run ends when the service announces the end of the series
(``series_end`` event, published after the series' last frame), so frames the
service dropped are counted rather than waited for.
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgpack
import numpy as np
import zmq

from ._common import percentiles

if TYPE_CHECKING:
    from stream import ServiceConfig, Simulator, SimulatorReport

log = logging.getLogger(__name__)

Mode = Literal["push", "pub"]
Policy = Literal["block", "drop_oldest"]


@dataclass
class ServiceRun:
    """Raw samples and counters of one run (latencies in ms)."""

    shape: tuple[int, int]
    offered_fps: float  # 0: as fast as possible
    zarr: bool
    mode: Mode
    policy: Policy
    frames_sent: int = 0
    frames_received: int = 0
    seconds: float = 0.0  # first send -> last frame received
    flush_seconds: float = 0.0  # then until the store holds every frame (Zarr on)
    dropped: dict[str, int] = field(default_factory=dict)
    e2e_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    inside_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: With ROIs: the traces stage in the service (inference done -> traces queued),
    #: traces in the subscriber's hand after inference, triggers after frame receive.
    traces_stage_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    traces_in_hand_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    trigger_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    provider: str = ""

    @property
    def achieved_fps(self) -> float:
        return self.frames_received / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        """Frames sent but never received (the service's counted drops included)."""
        return self.frames_sent - self.frames_received

    def row(self) -> dict[str, Any]:
        """Counters and percentiles, JSON-ready."""
        frame_mb = self.shape[0] * self.shape[1] * 2 / 1e6
        persisted = self.seconds + self.flush_seconds
        return {
            "shape": f"{self.shape[0]}x{self.shape[1]}",
            "offered_fps": self.offered_fps or "max",
            "zarr": self.zarr,
            "mode": self.mode,
            "policy": self.policy,
            "provider": self.provider,
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_dropped": self.lost,
            "dropped_by_reason": self.dropped,
            "seconds": round(self.seconds, 3),
            "achieved_fps": round(self.achieved_fps, 1),
            "fps_incl_flush": round(self.frames_received / persisted, 1) if persisted else 0.0,
            "mb_per_s": round(self.achieved_fps * frame_mb, 1),
            "e2e_ms": percentiles(self.e2e_ms),
            "inside_ms": percentiles(self.inside_ms),
            **(
                {
                    "traces": int(self.traces_in_hand_ms.size),
                    "triggers": int(self.trigger_ms.size),
                    "traces_stage_ms": percentiles(self.traces_stage_ms),
                    "traces_in_hand_ms": percentiles(self.traces_in_hand_ms),
                    "trigger_ms": percentiles(self.trigger_ms),
                }
                if self.traces_in_hand_ms.size
                else {}
            ),
        }


def run_service(
    model: Path,
    pool: np.ndarray,
    frames: int,
    fps: float,
    *,
    provider: str = "cpu",
    zarr: bool = False,
    mode: Mode = "push",
    policy: Policy = "block",
    timeout_s: float = 30.0,
    store: dict[str, Any] | None = None,
    traces: dict[str, Any] | None = None,
    ensemble: str | int = 1,
    blend: str = "off",
) -> ServiceRun:
    """Stream ``frames`` frames cycled from ``pool`` at ``fps`` (0: flat out) and measure.

    ``policy`` is the inference queue's overflow policy: ``block`` makes the run
    lossless (every frame denoised, so flat-out fps is what the service sustains);
    ``drop_oldest`` is the live default (a slow model drops frames, counted).
    ``traces``: the service's ``[traces]`` config (ROIs, triggers); their latencies are
    measured too. ``ensemble``: the service's self-ensemble passes; 1 (not the service's
    ``auto``) so that a run measures the model's own speed and latency at every rate;
    ``blend`` "off" (not the default "spatial") for the same reason: its measurements take
    the series' spare time (``benchmarks.blend_check`` measures what it costs).
    """
    from stream import ServiceConfig, Simulator, SimulatorConfig

    shape = (int(pool.shape[1]), int(pool.shape[2]))
    run = ServiceRun(shape, fps, zarr, mode, policy)
    series = f"bench-{time.monotonic_ns() % 10**12}"
    sim_cfg = SimulatorConfig(
        endpoint="tcp://127.0.0.1:0",
        mode=mode,
        shape=shape,
        fps=fps,
        frames=frames,
        series=series,
        meta=False,
        movie_frames=1,  # frames come from ``pool``: keep the unused phantom small
        send_timeout_s=timeout_s,
    )
    with tempfile.TemporaryDirectory(prefix="deepdenoise-bench-") as tmp, Simulator(sim_cfg) as sim:
        cfg = ServiceConfig(
            model=model,
            input=sim.endpoint,
            input_mode="pull" if mode == "push" else "sub",
            output="tcp://127.0.0.1:0",
            control="tcp://127.0.0.1:0",
            zarr=Path(tmp) / "data" if zarr else None,
            provider=provider,
            ensemble=ensemble,
            blend=blend,
            warmup_shape=shape,
            status_interval_s=0.2,
            # lossless runs keep every denoised frame queued for the PUB thread too, so a
            # publisher starved of CPU on a busy machine delays frames instead of dropping
            queues={"inference_overflow": policy}
            | ({"publish_depth": max(32, frames)} if policy == "block" else {}),
            store=store or {},
            traces=traces or {},
        )
        with (
            service_process(cfg) as service,
            zmq.Context() as ctx,
            ctx.socket(zmq.SUB) as sub,
        ):
            run.provider = service.provider
            sub.setsockopt(zmq.RCVHWM, 0)
            for topic in (b"denoised", b"status", b"event", b"traces", b"trigger"):
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(service.endpoints["output"])
            if not sub.poll(10_000):
                raise TimeoutError("no status message from the service within 10 s")
            sender = Sender(sim, pool, frames, fps).start()
            got = _receive(sub, series, sender.thread, timeout_s)
            report = sender.join(timeout_s)
            t_flushed = time.time_ns()
            if zarr and not service.request("flush", timeout_s).get("ok"):
                log.warning("the store did not flush within %.0f s", timeout_s)
            run.flush_seconds = (time.time_ns() - t_flushed) / 1e9 if zarr else 0.0
            dropped = service.request("status", timeout_s)["dropped"]
            run.dropped = {k: int(v) for k, v in dropped.items()}
    run.frames_sent = report.frames
    run.frames_received = len(got.e2e)
    run.seconds = (got.last - sender.t0_ns) / 1e9 if got.e2e else 0.0
    run.e2e_ms = np.asarray(got.e2e)
    run.inside_ms = np.asarray(got.inside)
    run.traces_stage_ms = np.asarray(got.traces_stage)
    run.traces_in_hand_ms = np.asarray(got.traces_in_hand)
    run.trigger_ms = np.asarray(got.trigger)
    return run


class Sender:
    """Streams ``frames`` frames cycled from ``pool`` through ``sim`` on a thread, so the
    calling thread is free to receive; :meth:`join` re-raises what the thread hit."""

    def __init__(self, sim: Simulator, pool: np.ndarray, frames: int, fps: float) -> None:
        self._sim, self._pool, self._frames, self._fps = sim, pool, frames, fps
        self.t0_ns = 0  # when the first frame was handed over (time.time_ns)
        self._report: SimulatorReport | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._send, name="bench-sender", daemon=True)

    def start(self) -> Sender:
        self.thread.start()
        return self

    def join(self, timeout_s: float) -> SimulatorReport:
        self.thread.join(timeout_s)
        if self._error is not None:
            raise self._error
        if self._report is None:
            raise TimeoutError(f"the sender did not finish within {timeout_s} s")
        return self._report

    def _send(self) -> None:
        try:
            items = (self._pool[i % len(self._pool)] for i in range(self._frames))
            self.t0_ns = time.time_ns()
            self._report = self._sim.send_frames(items, fps=self._fps)
        except BaseException as exc:
            self._error = exc


@dataclass
class _Received:
    """Latency samples (ms) by kind, and the last frame's receive time (ns)."""

    e2e: list[float] = field(default_factory=list)
    inside: list[float] = field(default_factory=list)
    traces_stage: list[float] = field(default_factory=list)
    traces_in_hand: list[float] = field(default_factory=list)
    trigger: list[float] = field(default_factory=list)
    last: int = field(default_factory=time.time_ns)


def _receive(
    sub: zmq.Socket[Any], series: str, sender: threading.Thread, timeout_s: float
) -> _Received:
    """Receive until the service's ``series_end`` for ``series`` (or ``timeout_s`` of silence
    once the sender is done)."""
    got = _Received()
    quiet_since = time.monotonic()
    while True:
        if not sub.poll(100):
            if not sender.is_alive() and time.monotonic() - quiet_since > timeout_s:
                log.warning("no series_end from the service within %.0f s", timeout_s)
                return got
            continue
        quiet_since = time.monotonic()
        parts = sub.recv_multipart(copy=False)
        topic = parts[0].bytes
        if topic in (b"denoised", b"traces"):
            header = msgpack.unpackb(parts[1].bytes, raw=False)
            values = np.frombuffer(parts[2].buffer, dtype=header["dtype"]).reshape(header["shape"])
            _ = values[0, 0]  # the subscriber holds the pixels (or traces) now
            now = time.time_ns()
            if topic == b"denoised":
                got.e2e.append((now - header["t_ns"]) / 1e6)
                got.inside.append((header["t_done_ns"] - header["t_recv_ns"]) / 1e6)
                got.last = now
            else:
                got.traces_in_hand.append((now - header["t_done_ns"]) / 1e6)
                got.traces_stage.append((header["t_traces_ns"] - header["t_done_ns"]) / 1e6)
        elif topic == b"trigger":
            header = msgpack.unpackb(parts[1].bytes, raw=False)
            got.trigger.append((time.time_ns() - header["t_recv_ns"]) / 1e6)
        elif topic == b"event":
            header = msgpack.unpackb(parts[1].bytes, raw=False)
            if header.get("event") == "series_end" and header.get("series") == series:
                return got


@dataclass(frozen=True)
class RemoteService:
    """A service in a child process, reached over its sockets."""

    endpoints: dict[str, str]
    provider: str

    def request(self, cmd: str, timeout_s: float = 10.0) -> dict[str, Any]:
        from stream.cli import request

        return request(self.endpoints["control"], {"cmd": cmd}, timeout_s)


@contextmanager
def service_process(
    config: ServiceConfig, start_timeout_s: float = 120.0
) -> Iterator[RemoteService]:
    """Run ``stream.Service(config)`` in a spawned process until the block exits.

    The child binds port 0 and reports its endpoints back; on exit it is stopped over
    its control socket (an orderly drain), and terminated only if that fails.
    """
    spawn = multiprocessing.get_context("spawn")  # fork would copy this process's threads
    ours, theirs = spawn.Pipe()
    child = spawn.Process(
        target=_serve, args=(config.model_dump_json(), theirs), name="deepdenoise-serve"
    )
    child.start()
    remote: RemoteService | None = None
    try:
        if not ours.poll(start_timeout_s):
            raise TimeoutError(f"the service process did not start within {start_timeout_s} s")
        hello = ours.recv()
        if "error" in hello:
            raise RuntimeError(f"the service process failed to start: {hello['error']}")
        remote = RemoteService(hello["endpoints"], hello["provider"])
        yield remote
    finally:
        if remote is not None and child.is_alive():
            try:
                remote.request("stop")
            except Exception as exc:  # the process is terminated below anyway
                log.warning("could not stop the service process over control: %s", exc)
        child.join(60)
        if child.is_alive():
            log.warning("the service process did not stop within 60 s; terminating it")
            child.terminate()
            child.join(10)
        ours.close()


def _serve(config_json: str, conn: Connection) -> None:
    """Child process: start the service, report its endpoints, serve until stopped."""
    from stream import Service, ServiceConfig

    try:
        service = Service(ServiceConfig.model_validate_json(config_json))
        service.start()
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    try:
        assert service.engine is not None
        conn.send({"endpoints": dict(service.endpoints), "provider": service.engine.provider})
        service.wait()
    finally:
        service.stop()
        conn.close()
