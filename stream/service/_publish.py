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

#: The published status stays under the 64 KiB a client's decoder takes for a header (the
#: clients apply the input limit to what they receive too): past it, the per-series
#: entries give way, the first seen first, and ``series_omitted`` counts them. Why: a rig
#: that never ends its series (one per trial) adds about 0.5 KiB a series, and at 170
#: such series the C, C++, Node and MATLAB subscribers all refused the status (101 KiB).
#: The control ``status`` reply keeps every entry.
STATUS_MAX_BYTES = 60 * 1024


def packed_status(status: dict[str, Any], limit: int = STATUS_MAX_BYTES) -> bytes:
    """The status header, packed within ``limit`` bytes where its series allow."""
    packed = pack_header(status)
    series = dict(status.get("series") or {})
    names, omitted = list(series), 0
    while len(packed) > limit and omitted < len(names):
        excess = len(packed) - limit
        while excess > 0 and omitted < len(names):  # drop about enough, then measure
            excess -= len(pack_header({names[omitted]: series.pop(names[omitted])}))
            omitted += 1
        packed = pack_header({**status, "series": series, "series_omitted": omitted})
    return packed


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
        if item.series is not None:  # counted as it is handed over, so that a status
            # asked for after the frame came never lags it (PUB does not block or fail)
            self._stats.count_out(item.series, (time.time_ns() - item.t_recv_ns) / 1e6)
        sock.send_multipart(parts, copy=False)

    def _send_status(self, sock: zmq.Socket[Any]) -> None:
        sock.send_multipart([TOPIC_STATUS, packed_status(self._status())])
