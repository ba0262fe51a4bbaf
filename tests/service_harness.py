"""Helpers for tests that run a real service on loopback sockets."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from deepdenoise_client import Control, CurveKeys, Message, Publisher, Subscriber

from stream import Service, ServiceConfig

ALL_TOPICS = (b"denoised", b"status", b"event")


def free_tcp_endpoint() -> str:
    """A currently free loopback port (for peers that must bind an explicit port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def has_ipv6_loopback() -> bool:
    """Whether this machine can bind the IPv6 loopback (::1)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def service_config(tmp_path: Path, model: Path, **overrides: Any) -> ServiceConfig:
    """A config with every socket on an ephemeral loopback port and lossless queues."""
    values: dict[str, Any] = {
        "model": model,
        "input": "tcp://127.0.0.1:0",
        "input_mode": "pull",
        "input_bind": True,
        "output": "tcp://127.0.0.1:0",
        "control": "tcp://127.0.0.1:0",
        "zarr": tmp_path / "data",
        "status_interval_s": 0.1,
        "warmup_shape": None,
        # lossless on a busy machine: inference blocks instead of dropping, and the PUB
        # queue holds every message of a test's stream (frame, traces, trigger per frame)
        # even when the publisher thread is starved of CPU for a while
        "queues": {"inference_overflow": "block", "publish_depth": 512},
        # one pass per frame: "auto" adds self-ensemble passes by the machine's speed,
        # and tests compare outputs exactly (tests/service/test_ensemble.py covers it)
        "ensemble": 1,
        # the model's output as it is: the blend measures frames when the machine has
        # spare time, so outputs would depend on its speed (tests/service/test_blend.py)
        "blend": "off",
    }
    values.update(overrides)
    return ServiceConfig(**values)


@contextmanager
def running_service(tmp_path: Path, model: Path, **overrides: Any) -> Iterator[Service]:
    service = Service(service_config(tmp_path, model, **overrides))
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def serving(
    tmp_path: Path, model: Path, **overrides: Any
) -> Iterator[tuple[Service, Subscriber, Publisher]]:
    """A running service, a subscriber listening to it and a PUSH publisher into it."""
    with (
        running_service(tmp_path, model, **overrides) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        yield svc, sub, pub


def served(
    tmp_path: Path,
    model: Path,
    frames: list[np.ndarray],
    series: str = "run",
    pace_s: float = 0.0,
    **overrides: Any,
) -> tuple[list[Message], dict[str, Any]]:
    """``frames`` through a real service (no store) as one series, ``pace_s`` apart (a
    camera's frame interval: the service's spare time between frames): the denoised
    messages, then the service's status."""
    with (
        running_service(tmp_path, model, zarr=None, **overrides) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, series, i)
            if pace_s:
                time.sleep(pace_s)
        got, _ = collect(sub, len(frames))
        return got, svc.status()


def stream_series(
    svc: Service, series: str, frames: list[np.ndarray]
) -> tuple[list[Message], dict[str, Any], dict[str, Any]]:
    """``frames`` through a running service as one series, then its ``end``: the denoised
    messages, its ``series_end`` event and the status once it ended."""
    with (
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, series, i)
        pub.end(series)
        got, seen = collect(sub, len(frames))
        end = series_ended(sub, series, seen)
        return got, end, svc.status()


@contextmanager
def listening(
    service: Service, topics: tuple[bytes, ...] = ALL_TOPICS, curve: CurveKeys | None = None
) -> Iterator[Subscriber]:
    """A subscriber on the service's output, returned once its subscription is live
    (``curve``: keys for a service with ``[security]``).

    PUB/SUB joins asynchronously; the first status message proves the path works.
    """
    with Subscriber(service.endpoints["output"], topics=(*topics, b"status"), curve=curve) as sub:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sub.recv(timeout=2.0).topic == b"status":
                break
        else:
            raise TimeoutError("no status message from the service within 10 s")
        yield sub


def collect(
    sub: Subscriber, count: int, topic: bytes = b"denoised", timeout: float = 30.0
) -> tuple[list[Message], list[Message]]:
    """Receive until ``count`` messages of ``topic``; returns (those, every other message)."""
    wanted: list[Message] = []
    others: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(wanted) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"received {len(wanted)} of {count} {topic!r} messages in {timeout} s"
            )
        message = sub.recv(timeout=remaining)
        (wanted if message.topic == topic else others).append(message)
    return wanted, others


def swap_mid_stream(
    svc: Service, frames: list[np.ndarray], model: Path, before: int, hold_at: int
) -> tuple[list[Message], dict[str, Any], dict[str, Any]]:
    """Stream ``frames`` (series "swap") and ``load_model`` ``model`` once ``before`` of
    them came back; the sender waits at ``hold_at`` until the swap is done, so however
    slow the load, it lands mid-stream. Returns (every denoised message, the control
    reply, the status once every frame was counted out)."""
    n = len(frames)
    swapped = threading.Event()
    with (
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):

        def send() -> None:
            for i, frame in enumerate(frames):
                if i == hold_at:
                    swapped.wait(60)
                pub.send_frame(frame, "swap", i)
                time.sleep(0.003)

        sender = threading.Thread(target=send)
        sender.start()
        got, _ = collect(sub, before)
        with Control(svc.endpoints["control"], timeout=60) as ctl:
            reply = ctl.load_model(str(model))
        swapped.set()
        more, _ = collect(sub, n - before)
        sender.join()
    # frames_out is counted just after each send: the subscriber can be first
    wait_until(lambda: svc.status()["frames_out"] == n)
    return got + more, reply, svc.status()


def events(messages: list[Message], name: str) -> list[dict[str, Any]]:
    return [m.header for m in messages if m.topic == b"event" and m.header.get("event") == name]


def series_ended(
    sub: Subscriber, series: str, seen: Sequence[Message] = (), timeout: float = 30.0
) -> dict[str, Any]:
    """The ``series_end`` event of ``series``, from ``seen`` or received next: its store is
    closed by then (the time axis trimmed, every frame flagged), so it can be read whole.
    A flush alone may come before the series' end mark is processed."""
    for header in events(list(seen), "series_end"):
        if header.get("series") == series:
            return header
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        for header in events([sub.recv(timeout=remaining)], "series_end"):
            if header.get("series") == series:
                return header
    raise TimeoutError(f"no series_end for {series!r} within {timeout} s")


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that Ctrl-C should stop: a test run started in the
    background (``pytest &`` from a script) has SIGINT ignored, and its children would
    inherit that (Python then raises no KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(
    process: subprocess.Popen[str], ready: Any, timeout: float = 120.0
) -> tuple[str, str]:
    """Ctrl-C (SIGINT) to ``process`` once ``ready()`` holds, then its stdout and stderr;
    killed if it has not exited by then (a failed wait or a hung exit)."""
    try:
        wait_until(ready, timeout=timeout)
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


class ServeProcess:
    """`python -m stream serve` on free loopback ports, stopped by the test."""

    #: Starts tried: a port found free may be taken by another process (another test
    #: run on the machine) before the service binds it.
    STARTS = 3

    def __init__(
        self,
        tmp_path: Path,
        model: Path,
        config: str = "",
        zarr: Path | None = None,
        preexec_fn: Any = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.zarr = zarr or tmp_path / "data"
        toml = tmp_path / f"serve-{time.monotonic_ns()}.toml"
        toml.write_text(config)
        for start in range(1, self.STARTS + 1):
            try:
                self._start(tmp_path, model, toml, preexec_fn, args)
                return
            except RuntimeError as exc:
                if start == self.STARTS or "Address already in use" not in str(exc):
                    raise

    def _start(
        self, tmp_path: Path, model: Path, toml: Path, preexec_fn: Any, args: tuple[str, ...]
    ) -> None:
        """Start the service on new free ports and wait for its control socket; a
        RuntimeError with its log if it exits first or does not answer in 60 s."""
        self.input, self.output, self.control = (free_tcp_endpoint() for _ in range(3))
        self.log = tmp_path / f"serve-{time.monotonic_ns()}.log"
        self._log_file = self.log.open("wb")
        cmd = [
            sys.executable, "-m", "stream", "serve",
            "--model", str(model), "--zarr", str(self.zarr),
            "--input", self.input, "--input-mode", "pull", "--input-bind",
            "--output", self.output, "--control", self.control, "--config", str(toml), *args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )
        with Control(self.control, timeout=2) as ctl:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ctl.status()
                    break
                except TimeoutError as exc:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.terminate()
                        log = self.log.read_text()
                        raise RuntimeError(f"service did not start:\n{log}") from exc

    def status(self) -> dict:
        with Control(self.control, timeout=5) as ctl:
            return ctl.status()

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        self.proc.kill()
        self.proc.wait()
        self._log_file.close()

    def terminate(self, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or ``signum``), wait for the orderly exit (killing it if it hangs);
        the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            # beyond the default drain_s (30 s): a stop with a backlog may use all of it
            return self.proc.wait(75)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log_file.close()


@contextmanager
def subscribed(proc: ServeProcess, timeout: float = 10.0) -> Iterator[Subscriber]:
    """Events and status of a service process, once its first status shows the
    subscription is live."""
    with Subscriber(proc.output, topics=(b"event", b"status")) as sub:
        while sub.recv(timeout=timeout).topic != b"status":
            pass
        yield sub
