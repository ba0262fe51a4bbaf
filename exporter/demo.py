"""``deepdenoise demo``: simulator → service → subscriber, then a summary and a preview.

Everything runs in this process on loopback sockets with the real service, so the
figures are those a user would see: end-to-end latency from the simulator's
acquisition stamp to the subscriber holding the denoised pixels, and the PSNR gain
measured against the simulator's ground truth. It lives on the offline side because
the preview figure needs matplotlib, which ``stream`` never imports.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np
import zmq
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from exporter.evaluation import psnr
from stream.cli import blend_choice, blend_in_part, frames_by_passes, kv_table
from stream.engine import BlendSetting
from stream.service import Provider, Service, ServiceConfig
from stream.sim import Simulator, SimulatorConfig

from ._folders import removed_if_left_empty

log = logging.getLogger(__name__)


#: The demo's default rate. Why not 30 (one-off probe, 2026-12-06, 256 x 256, a 2-vCPU
#: VM whose engine runs ``na-lite`` at 24 ms a frame): with the simulator, the
#: subscriber and the store on the same two cores, 30 fps was at the machine's edge (28-33
#: ms a frame once learnt) and the latency stayed 0.7-1 s to the end; at 20 fps it kept up
#: (p50 57-105 ms over 5 s runs, when the series' first measurement was still taken
#: before its first frame was served and left a backlog of a second or two; 49-60 ms since
#: 2026-12-06, ``benchmarks.live_latency_check``). ``--fps 30`` shows the other case, and
#: the summary says so.
DEMO_FPS = 20.0
#: Frames that waited more than this many frame intervals (the median of the last tenth
#: of the frames, acquisition to subscriber) show a service that fell behind its input.
BEHIND_INTERVALS = 2.0
#: Fewer frames than this tell nothing of it: a series' start (the camera side's
#: learning, its first frames' one-off work) leaves a backlog that takes a second or
#: so to drain (a reviewer's 1 s runs at 20 fps said "no", then "yes").
KEPT_UP_MIN_FRAMES = 40


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(5.0, gt=0, le=3600, allow_inf_nan=False)
    fps: float = Field(DEMO_FPS, gt=0, le=10_000, allow_inf_nan=False)
    shape: tuple[int, int] = (256, 256)
    out: Path = Path("demo-output")
    model: Path | None = None
    provider: Provider = "auto"
    blend: BlendSetting = "spatial"


@dataclass
class DemoResult:
    frames_sent: int
    frames_received: int
    seconds: float
    provider: str
    model: str
    store: Path | None
    e2e_ms: np.ndarray = field(repr=False)
    service_ms: np.ndarray = field(repr=False)
    psnr_raw_db: float
    psnr_denoised_db: float
    dropped: dict[str, int]
    preview: Path | None = None
    #: The camera the service used for the series (estimated live: none is configured)
    #: and the simulator's true one, for a noise-adaptive model; empty otherwise.
    camera_used: dict[str, object] = field(default_factory=dict)
    #: The service's self-ensemble: its setting and the frames it gave each pass count.
    ensemble: dict[str, object] = field(default_factory=dict)
    #: The series' blend with smoothing (``status.series.<name>.blend``).
    blend: dict[str, object] = field(default_factory=dict)
    camera_true: dict[str, float] = field(default_factory=dict)
    #: Stopped early by Ctrl-C: the figures are of the frames streamed until then.
    interrupted: bool = False
    #: The simulator's rate (frames per second).
    fps_sent: float = DEMO_FPS

    def kept_up_row(self) -> str:
        late = late_wait_ms(self.e2e_ms)
        verdict = kept_up(self.e2e_ms, self.fps_sent)
        if verdict is None:
            frames = self.e2e_ms.size
            if frames < KEPT_UP_MIN_FRAMES:
                return f"too few frames to tell ({frames}; {KEPT_UP_MIN_FRAMES} or more)"
            return f"not yet told: the start's backlog was still draining ({late:.0f} ms)"
        if verdict:
            return f"yes (the last frames: {late:.0f} ms)"
        return (
            f"no: the last frames waited {late:.0f} ms; this machine denoises slower than "
            f"{self.fps_sent:g} fps with the simulator beside it: try a lower --fps or a "
            "smaller --shape"
        )

    @property
    def fps(self) -> float:
        return self.frames_received / self.seconds if self.seconds > 0 else 0.0

    def table(self) -> Table:
        p50, p99 = np.percentile(self.e2e_ms, [50, 99]) if self.e2e_ms.size else (0.0, 0.0)
        s50, s99 = np.percentile(self.service_ms, [50, 99]) if self.service_ms.size else (0, 0)
        gain = self.psnr_denoised_db - self.psnr_raw_db
        rows = [
            ("frames sent / denoised", f"{self.frames_sent} / {self.frames_received}"),
            ("dropped", ", ".join(f"{k}: {v}" for k, v in self.dropped.items()) or "none"),
            ("throughput", f"{self.fps:.1f} fps"),
            ("latency p50 / p99 (acquisition → subscriber)", f"{p50:.2f} / {p99:.2f} ms"),
            ("latency p50 / p99 (inside the service)", f"{s50:.2f} / {s99:.2f} ms"),
            ("kept up with the simulator", self.kept_up_row()),
            ("provider / model", f"{self.provider} / {self.model}"),
            *([("self-ensemble (setting; frames by passes)", _ensemble_row(self.ensemble))]
              if self.ensemble else []),
            *([("blend (frames measured; choice)", _blend_row(self.blend))]
              if self.blend else []),
            ("PSNR vs ground truth: raw → denoised", f"{self.psnr_raw_db:.2f} → "
             f"{self.psnr_denoised_db:.2f} dB ({gain:+.2f} dB)"),
            *([("camera (estimated live / simulator's)", _camera_row(self.camera_used,
                                                                     self.camera_true))]
              if self.camera_used else []),
            ("store", str(self.store) if self.store else "off"),
            ("preview (raw | denoised | ground truth)", str(self.preview)),
        ]  # fmt: skip
        return kv_table("deepdenoise demo", rows)


def late_wait_ms(e2e_ms: np.ndarray, tenth: int = 1) -> float:
    """The median latency of the last tenth of the frames (at least one; ``tenth`` 2:
    the tenth before it): what a frame waits once the series' start is behind it."""
    if not e2e_ms.size:
        return 0.0
    size = max(1, e2e_ms.size // 10)
    end = e2e_ms.size - (tenth - 1) * size
    return float(np.median(e2e_ms[max(0, end - size) : end]))


def kept_up(e2e_ms: np.ndarray, fps: float) -> bool | None:
    """Whether the service kept up with frames at ``fps``: its last tenth of the frames
    waited at most :data:`BEHIND_INTERVALS` frame intervals. None where that cannot be
    told: too few frames (:data:`KEPT_UP_MIN_FRAMES`), or a backlog still draining --
    the last tenth waited less, by a frame interval, than the tenth before it."""
    if e2e_ms.size < KEPT_UP_MIN_FRAMES:
        return None
    interval = 1000.0 / fps
    late = late_wait_ms(e2e_ms)
    if late <= BEHIND_INTERVALS * interval:
        return True
    return None if late < late_wait_ms(e2e_ms, tenth=2) - interval else False


def _ensemble_row(ensemble: dict[str, object]) -> str:
    return f"{ensemble.get('setting')}; {frames_by_passes(ensemble)}"


def _blend_row(blend: dict[str, object]) -> str:
    measured = blend.get("frames_measured", 0)
    if blend_in_part(blend):  # a choice already, on the first measurement's part
        return f"{measured} (the first in part); {blend_choice(blend)}"
    return f"{measured}; {blend_choice(blend)}"


def _camera_row(used: dict[str, object], true: dict[str, float]) -> str:
    def fmt(camera: dict[str, object] | dict[str, float]) -> str:
        return "gain {gain:.3g}, offset {offset:.4g}, read {read_noise:.3g}".format(**camera)

    return f"{fmt(used)} / {fmt(true)}" if true else fmt(used)


def run_demo(cfg: DemoConfig, console: Console | None = None) -> DemoResult:
    """Stream ``cfg.seconds`` of simulated acquisition through a real service.

    Ctrl-C while streaming stops the simulator, lets the service close the store and
    returns the summary so far (``interrupted``). A run that fails removes the output
    folder it created if it left nothing in it (a bad model, say).
    """
    with removed_if_left_empty(Path(cfg.out)):
        return _run_demo(cfg, console)


def _run_demo(cfg: DemoConfig, console: Console | None) -> DemoResult:
    n_frames = max(1, round(cfg.seconds * cfg.fps))
    series = time.strftime("demo-%Y%m%d-%H%M%S")
    sim_cfg = SimulatorConfig(
        endpoint="tcp://127.0.0.1:0",
        mode="push",
        shape=cfg.shape,
        fps=cfg.fps,
        frames=n_frames,
        series=series,
        pool=min(n_frames, 64),
    )
    with Simulator(sim_cfg) as sim:
        sim.prepare()
        service_cfg = ServiceConfig(
            model=cfg.model,
            input=sim.endpoint,
            input_mode="pull",
            output="tcp://127.0.0.1:0",
            control="tcp://127.0.0.1:0",
            zarr=cfg.out,
            provider=cfg.provider,
            warmup_shape=cfg.shape,
            status_interval_s=0.2,
            blend=cfg.blend,
        )
        with Service(service_cfg) as service, zmq.Context() as ctx:
            assert service.engine is not None
            if console is not None:
                console.print(
                    f"demo: {n_frames} frames {cfg.shape[0]}x{cfg.shape[1]} at {cfg.fps:g} fps "
                    f"through model {service.engine.model_id} on {service.engine.provider}"
                )
            received = _receive_while_sending(ctx, service.endpoints["output"], sim, n_frames)
            service.flush()
            status = service.status()
            provider, model = service.engine.provider, service.engine.model_id
        dropped = status["dropped"]
        result = _summarise(received, sim, n_frames, provider, model, dropped, cfg, series)
        result.ensemble = status.get("ensemble") or {}
        result.interrupted = received.interrupted
        return result


@dataclass
class _Received:
    headers: list[dict[str, object]]
    frames: list[np.ndarray]
    t_arrival_ns: list[int]
    seconds: float
    #: The series' camera from the latest status (configured or estimated live).
    camera: dict[str, object] = field(default_factory=dict)
    #: The series' blend with smoothing from the latest status.
    blend: dict[str, object] = field(default_factory=dict)
    #: Frames the simulator sent.
    sent: int = 0
    #: Ctrl-C stopped the receiving (and the simulator) early.
    interrupted: bool = False


def _receive_while_sending(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, sim: Simulator, n_frames: int
) -> _Received:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for topic in (b"denoised", b"status"):
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(endpoint)
    out = _Received([], [], [], 0.0)
    stop = threading.Event()
    failed: list[BaseException] = []

    def send() -> None:
        def progress(sent: int) -> None:
            out.sent = sent

        try:
            sim.run(progress, stop)
        except Exception as exc:  # re-raised by the receiver, not printed by threading
            failed.append(exc)

    sender = threading.Thread(target=send, name="demo-simulator", daemon=True)
    t0 = time.monotonic()
    try:
        while sub.recv_multipart()[0] != b"status":  # the subscription is live
            pass
        t0 = time.monotonic()
        sender.start()
        _receive(sub, sim, n_frames, sender, out)
    except KeyboardInterrupt:  # Ctrl-C: stop sending, keep what came, close cleanly
        out.interrupted = True
        # a frame it caught half-recorded (its arrival, header and pixels are three
        # appends) is left out
        whole = min(len(out.t_arrival_ns), len(out.headers), len(out.frames))
        del out.t_arrival_ns[whole:], out.headers[whole:], out.frames[whole:]
    finally:
        # the simulator stops (and sends its end mark) before any socket closes: its
        # thread must not be left sending into a socket closed under it
        stop.set()
        if sender.is_alive():
            sender.join(10)
        sub.close()
    out.seconds = time.monotonic() - t0
    if failed and not out.interrupted:
        raise failed[0]
    return out


def _receive(
    sub: zmq.Socket[bytes], sim: Simulator, n_frames: int, sender: threading.Thread, out: _Received
) -> None:
    """Denoised frames and status into ``out`` until all came or none for a while."""
    idle_deadline = time.monotonic() + 10
    while len(out.frames) < n_frames and time.monotonic() < idle_deadline:
        if not sub.poll(200):
            if not sender.is_alive():
                idle_deadline = min(idle_deadline, time.monotonic() + 1)
            continue
        topic, *rest = sub.recv_multipart()
        if topic == b"status":
            status = msgpack.unpackb(rest[0], raw=False)
            series = status.get("series", {}).get(sim.config.series, {})
            out.camera = series.get("camera") or out.camera
            out.blend = series.get("blend") or out.blend
            continue
        if topic != b"denoised":
            continue
        out.t_arrival_ns.append(time.time_ns())
        header = msgpack.unpackb(rest[0], raw=False)
        out.headers.append(header)
        out.frames.append(np.frombuffer(rest[1], dtype=header["dtype"]).reshape(header["shape"]))
        idle_deadline = time.monotonic() + 10
    sender.join(10)


def _summarise(
    rx: _Received,
    sim: Simulator,
    n_frames: int,
    provider: str,
    model: str,
    dropped: dict[str, int],
    cfg: DemoConfig,
    series: str,
) -> DemoResult:
    e2e = np.array(
        [(t - int(h["t_ns"])) / 1e6 for h, t in zip(rx.headers, rx.t_arrival_ns, strict=True)]  # type: ignore[call-overload]
    )
    service = np.array([(int(h["t_done_ns"]) - int(h["t_recv_ns"])) / 1e6 for h in rx.headers])  # type: ignore[call-overload]
    raw_db, clean_db = [], []
    for header, frame in zip(rx.headers, rx.frames, strict=True):
        index = int(header["index"])  # type: ignore[call-overload]
        truth = sim.ground_truth(index)
        raw_db.append(psnr(sim.frame(index), truth))
        clean_db.append(psnr(frame, truth))
    preview = None
    if rx.frames:
        middle = len(rx.frames) // 2
        index = int(rx.headers[middle]["index"])  # type: ignore[call-overload]
        preview = write_preview(
            cfg.out / "preview.png",
            sim.frame(index),
            rx.frames[middle],
            sim.ground_truth(index),
            title=f"frame {index}, model {model} on {provider}",
        )
    return DemoResult(
        frames_sent=rx.sent if rx.interrupted else n_frames,
        frames_received=len(rx.frames),
        seconds=rx.seconds,
        provider=provider,
        model=model,
        store=cfg.out / f"{series}.zarr",
        e2e_ms=e2e,
        service_ms=service,
        psnr_raw_db=float(np.mean(raw_db)) if raw_db else float("nan"),
        psnr_denoised_db=float(np.mean(clean_db)) if clean_db else float("nan"),
        dropped=dropped,
        preview=preview,
        camera_used=rx.camera,
        blend=rx.blend,
        camera_true=sim.config.phantom.noise.model_dump() if rx.camera else {},
        fps_sent=cfg.fps,
    )


def write_preview(
    path: Path, raw: np.ndarray, denoised: np.ndarray, truth: np.ndarray, title: str
) -> Path:
    """Raw | denoised | ground truth side by side, on one intensity scale, plus a zoom row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = np.percentile(truth, [0.5, 99.8])
    h, w = truth.shape
    zh, zw = max(8, h // 4), max(8, w // 4)
    zoom = (slice(h // 2 - zh // 2, h // 2 + zh // 2), slice(w // 2 - zw // 2, w // 2 + zw // 2))
    panels = (
        ("raw", raw, psnr(raw, truth)),
        ("denoised", denoised, psnr(denoised, truth)),
        ("ground truth", truth, None),
    )
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4), constrained_layout=True)
    for col, (name, image, db) in enumerate(panels):
        label = name if db is None else f"{name} ({db:.1f} dB)"
        for row, crop in enumerate((np.s_[:, :], zoom)):
            ax = axes[row, col]
            ax.imshow(image[crop], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label if row == 0 else f"{name}, centre zoom x4")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
