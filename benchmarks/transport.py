"""Transport: the same frames over raw pyzmq on loopback, no processing — the floor.

The sender is the project's own simulator (``send_frames``: the same header, the same
zero-copy send), the receiver a bare SUB or PULL socket that decodes the header and
views the pixels, exactly what a subscriber of the service does. So the only thing
between "raw" and "service" rows is the service itself. Per frame size: PUB/SUB and
PUSH/PULL over tcp and ipc, flat out (frames/s, MB/s; lossless: PUB uses
``XPUB_NODROP``) and at a fixed 100 fps (latency). Then a bare relay process (PULL in,
PUB out, nothing done: ``_relay``), the service's shape with no work — two hops and a
process. Then the service (its own process, identity model, Zarr off, PUSH/PULL over
tcp in, PUB out, lossless queues) on the same frames, reported as a ratio to raw
PUSH/PULL tcp (the target is >= 50 %) and to the relay.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack
import numpy as np
import zmq

from ._common import (
    Level,
    SuiteResult,
    Target,
    megabytes,
    new_figure,
    percentiles,
    phantom_frames,
    save_figure,
    shape_label,
)
from ._models import resolve_models
from ._relay import relay_process
from ._service_run import Sender, run_service

log = logging.getLogger(__name__)

Pattern = Literal["pubsub", "pushpull"]
Transport = Literal["tcp", "ipc"]
LATENCY_FPS = 100.0
TARGET_RATIO = 0.5


@dataclass
class Settings:
    sizes: list[int]
    throughput_bytes: float  # per flat-out run; frames = clamp(bytes / frame bytes)
    min_frames: int
    max_frames: int
    latency_frames: int  # at LATENCY_FPS
    pool: int = 8

    @classmethod
    def for_level(cls, level: Level) -> Settings:
        if level == "tiny":
            return cls([64], 1e6, 30, 60, 20, pool=4)
        if level == "quick":
            return cls([256, 512], 60e6, 100, 600, 100)
        return cls([256, 512, 1024, 2048], 1e9, 200, 5000, 1000)

    def frames_for(self, shape: tuple[int, int]) -> int:
        frame_bytes = shape[0] * shape[1] * 2
        return int(np.clip(self.throughput_bytes / frame_bytes, self.min_frames, self.max_frames))


def measure_raw(
    pattern: Pattern,
    transport: Transport,
    pool: np.ndarray,
    frames: int,
    fps: float,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Send ``frames`` frames (cycled from ``pool``) over a bare socket pair; one row."""
    from stream import Simulator, SimulatorConfig

    shape = (int(pool.shape[1]), int(pool.shape[2]))
    with tempfile.TemporaryDirectory(prefix="dd-ipc-") as tmp:
        endpoint = "tcp://127.0.0.1:0" if transport == "tcp" else f"ipc://{tmp}/bench.ipc"
        sim_cfg = SimulatorConfig(
            endpoint=endpoint,
            mode="pub" if pattern == "pubsub" else "push",
            nodrop=True,  # lossless PUB: a throughput that dropped frames would flatter it
            shape=shape,
            fps=fps,
            frames=frames,
            meta=False,
            movie_frames=1,
            send_timeout_s=timeout_s,
        )
        with (
            Simulator(sim_cfg) as sim,
            zmq.Context() as ctx,
            ctx.socket(zmq.SUB if pattern == "pubsub" else zmq.PULL) as sock,
        ):
            sock.setsockopt(zmq.RCVHWM, 0)
            if pattern == "pubsub":
                sock.setsockopt(zmq.SUBSCRIBE, b"frame")
            sock.connect(sim.endpoint)
            return _measure(sim, sock, pool, frames, fps, timeout_s) | {
                "path": f"raw {'pub/sub' if pattern == 'pubsub' else 'push/pull'} {transport}",
                "pattern": pattern,
                "transport": transport,
            }


def measure_relay(
    pool: np.ndarray, frames: int, fps: float, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Frames through a bare relay process (PUSH -> PULL | PUB -> SUB, tcp); one row."""
    from stream import Simulator, SimulatorConfig

    shape = (int(pool.shape[1]), int(pool.shape[2]))
    sim_cfg = SimulatorConfig(
        endpoint="tcp://127.0.0.1:0",
        mode="push",
        shape=shape,
        fps=fps,
        frames=frames,
        meta=False,
        movie_frames=1,
        send_timeout_s=timeout_s,
    )
    with (
        Simulator(sim_cfg) as sim,
        relay_process(sim.endpoint) as relay_endpoint,
        zmq.Context() as ctx,
        ctx.socket(zmq.SUB) as sock,
    ):
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(relay_endpoint)
        return _measure(sim, sock, pool, frames, fps, timeout_s) | {
            "path": "relay push/pull -> pub/sub tcp (no work)",
            "pattern": "relay",
            "transport": "tcp",
        }


def _measure(
    sim: Any, sock: zmq.Socket[Any], pool: np.ndarray, frames: int, fps: float, timeout_s: float
) -> dict[str, Any]:
    """Send from ``sim`` while ``sock`` receives; the row's counters and latencies."""
    sender = Sender(sim, pool, frames, fps).start()
    latencies, last = _receive_raw(sock, sender.thread, timeout_s)
    report = sender.join(timeout_s)
    seconds = (last - sender.t0_ns) / 1e9 if latencies else 0.0
    fps_done = len(latencies) / seconds if seconds > 0 else 0.0
    shape = (int(pool.shape[1]), int(pool.shape[2]))
    return {
        "shape": shape_label(shape),
        "offered_fps": fps or "max",
        "frames_sent": report.frames,
        "frames_received": len(latencies),
        "seconds": round(seconds, 3),
        "achieved_fps": round(fps_done, 1),
        "mb_per_s": round(fps_done * megabytes(shape[0] * shape[1] * 2), 1),
        "e2e_ms": percentiles(latencies),
    }


def _receive_raw(
    sock: zmq.Socket[Any], sender: threading.Thread, timeout_s: float
) -> tuple[list[float], int]:
    """Frames until the simulator's ``end`` message; latency per frame in ms."""
    latencies: list[float] = []
    last = time.time_ns()
    quiet_since = time.monotonic()
    while True:
        if not sock.poll(100):
            if not sender.is_alive() and time.monotonic() - quiet_since > timeout_s:
                log.warning("raw transport: no end message within %.0f s", timeout_s)
                return latencies, last
            continue
        quiet_since = time.monotonic()
        parts = sock.recv_multipart(copy=False)
        header = msgpack.unpackb(parts[1].bytes, raw=False)
        if header.get("kind") == "end":
            return latencies, last
        if len(parts) == 3:
            pixels = np.frombuffer(parts[2].buffer, dtype=header["dtype"]).reshape(header["shape"])
            _ = pixels[0, 0]
            last = time.time_ns()
            latencies.append((last - header["t_ns"]) / 1e6)


def run(level: Level, out_dir: Path, work: Path, **_: Any) -> SuiteResult:
    settings = Settings.for_level(level)
    result = SuiteResult("transport", level, {**settings.__dict__, "latency_fps": LATENCY_FPS})
    result.columns = [
        ("shape", "frame"),
        ("path", "path"),
        ("offered_fps", "offered"),
        ("achieved_fps", "fps"),
        ("mb_per_s", "MB/s"),
        ("x_raw", "x raw"),
        ("x_relay", "x relay"),
        ("e2e_ms.p50", "p50 ms"),
        ("e2e_ms.p99", "p99 ms"),
        ("e2e_ms.p99.9", "p99.9 ms"),
        ("e2e_ms.max", "max ms"),
        ("frames_received", "recv"),
    ]
    (identity,), _missing = resolve_models(["identity"], work)
    ratios: list[tuple[str, float]] = []
    for size in settings.sizes:
        shape = (size, size)
        pool = phantom_frames(shape, settings.pool)
        frames = settings.frames_for(shape)
        base: dict[str, Any] | None = None
        for pattern in ("pushpull", "pubsub"):
            for transport in ("tcp", "ipc"):
                for fps, n in ((0.0, frames), (LATENCY_FPS, settings.latency_frames)):
                    row = measure_raw(pattern, transport, pool, n, fps)
                    if (pattern, transport, fps) == ("pushpull", "tcp", 0.0):
                        base = row
                    result.rows.append(row)
        relay: dict[float, dict[str, Any]] = {}
        for fps, n in ((0.0, frames), (LATENCY_FPS, settings.latency_frames)):
            relay[fps] = measure_relay(pool, n, fps)
            result.rows.append(relay[fps])
        for fps, n in ((0.0, frames), (LATENCY_FPS, settings.latency_frames)):
            svc = run_service(identity.path, pool, n, fps, zarr=False, mode="push")
            row = {**svc.row(), "path": "service push/pull -> pub/sub tcp (identity, no zarr)"}
            if fps == 0.0 and base is not None and base["achieved_fps"] > 0:
                row["x_raw"] = round(row["achieved_fps"] / base["achieved_fps"], 3)
                ratios.append((shape_label(shape), row["x_raw"]))
            if fps == 0.0 and relay[fps]["achieved_fps"] > 0:
                row["x_relay"] = round(row["achieved_fps"] / relay[fps]["achieved_fps"], 3)
            result.rows.append(row)
    if ratios:
        worst = min(ratios, key=lambda r: r[1])
        result.targets.append(
            Target.at_least(
                "service throughput / raw PUSH/PULL (tcp)",
                worst[1],
                TARGET_RATIO,
                "x",
                f"worst frame size ({worst[0]}) of {', '.join(f'{s}: {r:.2f}' for s, r in ratios)};"
                " identity model, Zarr off, flat out",
            )
        )
    _figure(result, out_dir)
    return result


def _figure(result: SuiteResult, out_dir: Path) -> None:
    fig, (ax_tp, ax_lat) = new_figure(2)
    paths = sorted({r["path"] for r in result.rows})
    for path in paths:
        flat = [r for r in result.rows if r["path"] == path and r["offered_fps"] == "max"]
        paced = [r for r in result.rows if r["path"] == path and r["offered_fps"] != "max"]
        sizes = [int(r["shape"].split("x")[0]) for r in flat]
        ax_tp.plot(sizes, [r["mb_per_s"] for r in flat], marker="o", label=path)
        sizes = [int(r["shape"].split("x")[0]) for r in paced]
        ax_lat.plot(sizes, [r["e2e_ms"].get("p99", np.nan) for r in paced], marker="o", label=path)
    for ax, title, unit in ((ax_tp, "flat out", "MB/s"), (ax_lat, "p99 latency at 100 fps", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("frame side (px, uint16)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_tp.legend(fontsize=7)
    save_figure(fig, result, out_dir, "transport")
