"""Helpers for tests that run a real service on loopback sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepdenoise_client import Message, Subscriber

from stream import Service, ServiceConfig

ALL_TOPICS = (b"denoised", b"status", b"event")


def free_tcp_endpoint() -> str:
    """A currently free loopback port (for peers that must bind an explicit port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


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
        "queues": {"inference_overflow": "block"},
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
def listening(service: Service, topics: tuple[bytes, ...] = ALL_TOPICS) -> Iterator[Subscriber]:
    """A subscriber on the service's output, returned once its subscription is live.

    PUB/SUB joins asynchronously; the first status message proves the path works.
    """
    with Subscriber(service.endpoints["output"], topics=(*topics, b"status")) as sub:
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


def events(messages: list[Message], name: str) -> list[dict[str, Any]]:
    return [m.header for m in messages if m.topic == b"event" and m.header.get("event") == name]


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)
