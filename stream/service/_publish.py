"""The publish stage: the one thread that owns the PUB socket.

Denoised frames, events and the periodic status message all leave through it, so the
socket is never shared between threads (ZeroMQ sockets are not thread-safe).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import zmq

from ..protocol import TOPIC_STATUS, pack_header
from ._messages import Outgoing
from ._queues import Closed, StageQueue
from ._stats import ServiceStats


class PublishStage:
    """Sends queued messages and, every ``interval_s``, the status from ``status()``."""

    def __init__(
        self,
        queue: StageQueue[Outgoing],
        stats: ServiceStats,
        status: Callable[[], dict[str, Any]],
        interval_s: float,
    ) -> None:
        self._queue = queue
        self._stats = stats
        self._status = status
        self._interval_s = interval_s

    def run(self, sock: zmq.Socket[Any]) -> None:
        """The stage's thread: until the queue is closed and drained; a last status."""
        next_status = time.monotonic() + self._interval_s
        try:
            while True:
                try:
                    item = self._queue.get(timeout=max(0.0, next_status - time.monotonic()))
                except Closed:
                    break
                if item is not None:
                    self._send(sock, item)
                if time.monotonic() >= next_status:
                    self._send_status(sock)
                    next_status = time.monotonic() + self._interval_s
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
            self._stats.count_out(item.series, (time.time_ns() - item.t_recv_ns) / 1e6)

    def _send_status(self, sock: zmq.Socket[Any]) -> None:
        sock.send_multipart([TOPIC_STATUS, pack_header(self._status())])
