"""Failed CURVE handshakes on the service's sockets, in its log.

A client with no keys (plain text) or with another server's public key gets no reply
from a CURVE server and no error either, and ZeroMQ's authenticator never sees it: only
a socket monitor does. An operator's trial found such a client left no trace at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

log = logging.getLogger(__name__)

#: The monitor events read: a handshake that failed before any key was checked.
EVENTS = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL

#: Why, by ZeroMQ's protocol error, in words that say what to check.
WHY: dict[int, str] = {
    int(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH): "a client without CURVE keys (plain text)",
    int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): (
        "a client whose server key is not this service's public key"
    ),
}

#: One line per socket at most this often, with the count since the last.
TOLD_EVERY_S = 10.0

#: How often the watch wakes to tell what waited (and to run its ticks).
POLL_MS = 500


class HandshakeWatch:
    """A thread that reads the monitors of the watched sockets and logs failed
    handshakes, one line per socket at most every :data:`TOLD_EVERY_S` with the count;
    what waited is told when due, not only at the next failure. ``ticks`` run on each
    wake (other rate-limited lines that have counts to tell)."""

    def __init__(self, ctx: zmq.Context[Any], ticks: tuple[Callable[[], None], ...] = ()) -> None:
        self._ctx = ctx
        self._ticks = ticks
        self._monitors: list[tuple[zmq.Socket[Any], str]] = []
        self._pending: dict[str, dict[str, int]] = {}  # role -> why -> count not told
        self._told_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, sock: zmq.Socket[Any], role: str) -> None:
        """Monitor ``sock`` (on the thread that owns it, before it is handed on)."""
        address = f"inproc://deepdenoise-handshakes-{id(self)}-{role}"
        sock.monitor(address, EVENTS)
        monitor = self._ctx.socket(zmq.PAIR)
        monitor.setsockopt(zmq.LINGER, 0)
        monitor.connect(address)
        self._monitors.append((monitor, role))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="deepdenoise-handshakes", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close the monitors (before the context ends)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._thread is None or not self._thread.is_alive():
            for monitor, _ in self._monitors:
                monitor.close(0)

    def _run(self) -> None:
        poller = zmq.Poller()
        for monitor, _ in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        roles = {monitor: role for monitor, role in self._monitors}
        while not self._stop.is_set():
            for monitor, _ in poller.poll(POLL_MS):
                try:
                    event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
                except (zmq.ZMQError, ValueError):  # its socket closed, or a torn message
                    poller.unregister(monitor)
                    continue
                if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                    error = int(event["value"])
                    self._count(roles[monitor], WHY.get(error, f"protocol error {error:#x}"))
                elif event["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    # the value is an errno: a plain-text client's REQ, seen cut off
                    why = os.strerror(int(event["value"])).lower()
                    self._count(roles[monitor], f"a handshake cut off ({why})")
            self._tell_due()
            for tick in self._ticks:
                tick()

    def _count(self, role: str, why: str) -> None:
        pending = self._pending.setdefault(role, {})
        pending[why] = pending.get(why, 0) + 1

    def _tell_due(self) -> None:
        now = time.monotonic()
        for role, pending in self._pending.items():
            told_at = self._told_at.get(role)
            if not pending or (told_at is not None and now - told_at < TOLD_EVERY_S):
                continue
            counts = "; ".join(f"{n} x {why}" for why, n in pending.items())
            log.warning(
                "failed CURVE handshake(s) on the %s socket: %s (such a client gets no "
                "reply; give it the service's public key and its own key pair)",
                role,
                counts,
            )
            pending.clear()
            self._told_at[role] = now
