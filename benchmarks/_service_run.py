"""One measured run of the real service: simulator -> ``stream.Service`` -> subscriber.

Everything is in this process (threads) on loopback, so the simulator's send stamp
(``t_ns``, taken just before the frame enters ZeroMQ) and the subscriber's receive
time share one clock (``time.time_ns``). The subscriber stamps a frame once it holds
its pixels: the message is received and the array is a view of it, as a closed-loop
rig would use it. The run ends when the service announces the end of the series
(``series_end`` event, published after the series' last frame), so frames the
service dropped are counted rather than waited for.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgpack
import numpy as np
import zmq

from ._common import percentiles

log = logging.getLogger("deepdenoise")

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
) -> ServiceRun:
    """Stream ``frames`` frames cycled from ``pool`` at ``fps`` (0: flat out) and measure.

    ``policy`` is the inference queue's overflow policy: ``block`` makes the run
    lossless (every frame denoised, so flat-out fps is what the service sustains);
    ``drop_oldest`` is the live default (a slow model drops frames, counted).
    """
    from stream import Service, ServiceConfig, Simulator, SimulatorConfig

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
            warmup_shape=shape,
            status_interval_s=0.2,
            queues={"inference_overflow": policy},
        )
        with Service(cfg) as service, zmq.Context() as ctx, ctx.socket(zmq.SUB) as sub:
            run.provider = service.engine.provider if service.engine is not None else ""
            sub.setsockopt(zmq.RCVHWM, 0)
            for topic in (b"denoised", b"status", b"event"):
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(service.endpoints["output"])
            if not sub.poll(10_000):
                raise TimeoutError("no status message from the service within 10 s")
            sent: dict[str, Any] = {}

            def send() -> None:
                try:
                    items = (pool[i % len(pool)] for i in range(frames))
                    sent["t0"] = time.time_ns()
                    sent["report"] = sim.send_frames(items, fps=fps)
                except BaseException as exc:
                    sent["error"] = exc

            sender = threading.Thread(target=send, name="bench-sender", daemon=True)
            sender.start()
            e2e, inside, last = _receive(sub, series, sender, timeout_s)
            sender.join(timeout_s)
            if "error" in sent:
                raise sent["error"]
            t_flushed = time.time_ns()
            if zarr and not service.flush(timeout_s):
                log.warning("the store did not flush within %.0f s", timeout_s)
            run.flush_seconds = (time.time_ns() - t_flushed) / 1e9 if zarr else 0.0
            run.dropped = {k: int(v) for k, v in service.status()["dropped"].items()}
    run.frames_sent = sent["report"].frames
    run.frames_received = len(e2e)
    run.seconds = (last - sent["t0"]) / 1e9 if e2e else 0.0
    run.e2e_ms = np.asarray(e2e)
    run.inside_ms = np.asarray(inside)
    return run


def _receive(
    sub: zmq.Socket[Any], series: str, sender: threading.Thread, timeout_s: float
) -> tuple[list[float], list[float], int]:
    """Receive until the service's ``series_end`` for ``series`` (or ``timeout_s`` of silence
    once the sender is done). Returns e2e and in-service latencies (ms) and the last
    receive time (ns)."""
    e2e: list[float] = []
    inside: list[float] = []
    last = time.time_ns()
    quiet_since = time.monotonic()
    while True:
        if not sub.poll(100):
            if not sender.is_alive() and time.monotonic() - quiet_since > timeout_s:
                log.warning("no series_end from the service within %.0f s", timeout_s)
                return e2e, inside, last
            continue
        quiet_since = time.monotonic()
        parts = sub.recv_multipart(copy=False)
        topic = parts[0].bytes
        if topic == b"denoised":
            header = msgpack.unpackb(parts[1].bytes, raw=False)
            pixels = np.frombuffer(parts[2].buffer, dtype=header["dtype"]).reshape(header["shape"])
            _ = pixels[0, 0]  # the subscriber holds the pixels now
            now = time.time_ns()
            e2e.append((now - header["t_ns"]) / 1e6)
            inside.append((header["t_done_ns"] - header["t_recv_ns"]) / 1e6)
            last = now
        elif topic == b"event":
            header = msgpack.unpackb(parts[1].bytes, raw=False)
            if header.get("event") == "series_end" and header.get("series") == series:
                return e2e, inside, last
