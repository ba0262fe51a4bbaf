"""Failed CURVE handshakes on the service's sockets, in its log.

A client with no keys (plain text) or with another server's public key gets no reply
from a CURVE server and no error either, and ZeroMQ's authenticator never sees it: only
a socket monitor does. An operator's trial found such a client left no trace at all.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from ._tally import Tally

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

#: One line per socket and reason at most this often, with the count since the last.
TOLD_EVERY_S = 10.0

#: Said of a connection closed during its handshake with no reason given: ZeroMQ's
#: "no detail" event, whose value is an errno. A client without keys often hangs up
#: first (it sees the service's CURVE greeting), and the service sees only a broken
#: pipe; so does a port probe (`nc -z`, a health check), which is why it is no warning.
CUT_OFF = (
    "connection(s) closed during the handshake ({why}): a client without CURVE keys "
    "that hung up first, or a port probe"
)

#: How often the watch wakes to tell what waited (and to run its ticks).
POLL_MS = 500


class HandshakeWatch:
    """A thread that reads the monitors of the watched sockets and logs failed
    handshakes, one line per socket and reason at most every :data:`TOLD_EVERY_S` with
    the count; what waited is told when due, not only at the next failure. ``ticks``
    run on each wake (other rate-limited lines that have counts to tell)."""

    def __init__(self, ctx: zmq.Context[Any], ticks: tuple[Callable[[], None], ...] = ()) -> None:
        self._ctx = ctx
        self._ticks = ticks
        self._monitors: list[tuple[zmq.Socket[Any], str]] = []
        # failures by (socket role, why, whether a warning)
        self._failures: Tally[tuple[str, str, bool]] = Tally(TOLD_EVERY_S)
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
        else:  # its monitors open: the context's end would wait for them for ever
            log.error("the CURVE handshake watch did not stop; its sockets stay open")

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
                value = int(event["value"])
                if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                    why = WHY.get(value, f"ZeroMQ protocol error {value:#x}")
                    self._failures.count((roles[monitor], why, True))
                elif event["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    why = CUT_OFF.format(why=os.strerror(value).lower())
                    self._failures.count((roles[monitor], why, False))
            self._tell_due()
            for tick in self._ticks:
                tick()

    def _tell_due(self) -> None:
        for key, count, _ in self._failures.due():
            role, why, warning = key
            if warning:
                log.warning(
                    "failed CURVE handshake(s) on the %s socket: %d x %s (such a client "
                    "gets no reply; give it the service's public key and its own key pair)",
                    role, count, why,
                )  # fmt: skip
            else:
                log.info("%s socket: %d %s", role, count, why)
