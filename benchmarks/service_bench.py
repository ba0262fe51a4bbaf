"""Service throughput and latency: simulator → service → subscriber on loopback.

Run: ``python -m benchmarks.service_bench [--model M] [--shape 512x512] [--frames N]``.
Measures, with Zarr off and on, (a) sustained throughput with lossless queues (PUSH
sender, ``block`` policy: every frame denoised, so fps is what the service sustains)
and (b) latency at a fixed offered rate: end to end (simulator stamp → subscriber holds
the pixels) and inside the service (receive → denoised).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from stream import Service, ServiceConfig, Simulator, SimulatorConfig, default_model_path


@dataclass
class RunResult:
    label: str
    zarr: bool
    offered_fps: float  # 0 = as fast as possible
    frames_sent: int
    frames_received: int
    seconds: float
    achieved_fps: float
    e2e_ms: dict[str, float]
    service_ms: dict[str, float]
    dropped: dict[str, int]


def percentiles(samples: np.ndarray) -> dict[str, float]:
    if samples.size == 0:
        return {}
    qs = [50, 90, 99, 99.9]
    values = np.percentile(samples, qs)
    out = {f"p{q:g}": round(float(v), 3) for q, v in zip(qs, values, strict=True)}
    out["max"] = round(float(samples.max()), 3)
    return out


def run_once(
    model: Path, shape: tuple[int, int], frames: int, fps: float, zarr_dir: Path | None
) -> RunResult:
    sim_cfg = SimulatorConfig(
        endpoint="tcp://127.0.0.1:0",
        mode="push",
        shape=shape,
        fps=fps,
        frames=frames,
        pool=32,
        series=f"bench-{time.monotonic_ns()}",
        meta=False,
    )
    with Simulator(sim_cfg) as sim:
        sim.prepare()
        cfg = ServiceConfig(
            model=model,
            input=sim.endpoint,
            input_mode="pull",
            output="tcp://127.0.0.1:0",
            control="tcp://127.0.0.1:0",
            zarr=zarr_dir,
            warmup_shape=shape,
            status_interval_s=0.2,
            queues={"inference_overflow": "block"},
        )
        with Service(cfg) as service, zmq.Context() as ctx, ctx.socket(zmq.SUB) as sub:
            sub.setsockopt(zmq.RCVHWM, 0)
            for topic in (b"denoised", b"status"):
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(service.endpoints["output"])
            while sub.recv_multipart()[0] != b"status":
                pass
            e2e, inside = [], []
            sender = threading.Thread(target=sim.run, daemon=True)
            t0 = time.monotonic()
            sender.start()
            received = 0
            while received < frames and sub.poll(10_000):
                topic, header_bytes, *_ = sub.recv_multipart(copy=True)
                if topic != b"denoised":
                    continue
                now = time.time_ns()
                header = msgpack.unpackb(header_bytes, raw=False)
                e2e.append((now - header["t_ns"]) / 1e6)
                inside.append((header["t_done_ns"] - header["t_recv_ns"]) / 1e6)
                received += 1
            seconds = time.monotonic() - t0
            sender.join(30)
            dropped = service.status()["dropped"]
    return RunResult(
        label=f"{'zarr' if zarr_dir else 'no-zarr'} @ {'max' if fps == 0 else f'{fps:g}'} fps",
        zarr=zarr_dir is not None,
        offered_fps=fps,
        frames_sent=frames,
        frames_received=received,
        seconds=round(seconds, 3),
        achieved_fps=round(received / seconds, 1),
        e2e_ms=percentiles(np.array(e2e)),
        service_ms=percentiles(np.array(inside)),
        dropped=dropped,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="default: identity model")
    parser.add_argument("--shape", default="512x512")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="fixed offered fps")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from exporter.simple_models import make_identity

            model = make_identity(Path(tmp) / "identity.onnx")
        results: list[RunResult] = []
        for zarr_on in (False, True):
            for fps in (0.0, args.rate):
                zarr_dir = Path(tmp) / f"data-{len(results)}" if zarr_on else None
                n = args.frames if fps == 0 else max(200, int(args.rate * 5))
                results.append(run_once(model, shape, n, fps, zarr_dir))  # type: ignore[arg-type]
    print(f"model {model if args.model else 'identity'}, {args.shape} uint16, {platform.node()}")
    print(f"{'run':<22}{'fps':>9}{'e2e p50':>9}{'p99':>8}{'svc p50':>9}{'p99':>8}  dropped")
    for r in results:
        print(
            f"{r.label:<22}{r.achieved_fps:>9.1f}{r.e2e_ms.get('p50', 0):>9.2f}"
            f"{r.e2e_ms.get('p99', 0):>8.2f}{r.service_ms.get('p50', 0):>9.2f}"
            f"{r.service_ms.get('p99', 0):>8.2f}  {r.dropped or 'none'}"
        )
    if args.json:
        payload: dict[str, Any] = {
            "machine": platform.node(),
            "cpu_count": __import__("os").cpu_count(),
            "shape": args.shape,
            "model": str(args.model or "identity"),
            "default_model": str(default_model_path()),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
