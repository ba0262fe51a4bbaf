"""The connecting input's link to the acquisition: told when a connection fails, and
kept up where libzmq gives it up.

A connection whose ZeroMQ handshake fails -- a sender of another socket type (a PUSH
sender for a ``sub`` input, a PUB one for ``pull``), CURVE keys that do not match, or no
ZeroMQ at all on that port -- left nothing in the log; and libzmq never connects again
a connection it ended on a protocol error: the wrong socket type, or a message over the
input's size limit (``ZMQ_MAXMSGSIZE``) on a working connection. The input then stayed
deaf for good (two users' trials: every later frame lost until a restart, after one
oversized frame). The receiver's thread watches the socket's monitor: a failed
handshake is told, and a connection that ends with no retry of libzmq's is connected
again after :data:`RECONNECT_S`, so that the input comes back (once the sender is right).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from ._tally import Tally

log = logging.getLogger(__name__)

#: What the monitor reports: a connection made, its handshake done, its end, and
#: libzmq's own retry (which it schedules at once after an end it will retry).
EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
)

#: How long after an end that libzmq does not retry the input connects again.
RECONNECT_S = 1.0

#: One warning at most this often, with the count since the last.
TOLD_EVERY_S = 10.0

#: The sender's socket type each input mode takes.
SENDER = {"sub": "PUB", "pull": "PUSH"}


class InputLink:
    """Reconnects a connecting input that libzmq gave up: :meth:`open` before the
    input connects, then :meth:`check` on the receiver's thread each time it wakes.
    ``on_dropped`` is called with the warning for a working connection dropped (a
    message over the size limit, lost): the service publishes it as an event."""

    def __init__(
        self, endpoint: str, input_mode: str, on_dropped: Callable[[str], None] | None = None
    ) -> None:
        self.endpoint = endpoint
        self._mode = input_mode
        self._on_dropped = on_dropped
        self.monitor: zmq.Socket[Any] | None = None
        self._max_message_bytes = -1
        self._handshaking = False  # a connection made, not through its handshake yet
        self._reconnect_at: float | None = None
        self._dropped = False  # the connection to connect again was through its handshake
        self._failed: Tally[str] = Tally(TOLD_EVERY_S)
        self.reconnects = 0

    def open(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        """Start monitoring ``sock``; returns the monitor socket, to poll with it."""
        address = f"inproc://deepdenoise-input-link-{id(self)}"
        self._max_message_bytes = int(sock.getsockopt(zmq.MAXMSGSIZE))
        sock.monitor(address, EVENTS)
        monitor = sock.context.socket(zmq.PAIR)
        monitor.setsockopt(zmq.LINGER, 0)
        # no high-water mark: libzmq's retries, every 0.1-0.2 s while no sender is
        # there, would fill its 2,000 events while the receiver waits (on a hung disk)
        # and then block the I/O thread, and with it every socket of the service (a
        # review); they are a few bytes each
        monitor.setsockopt(zmq.RCVHWM, 0)
        monitor.connect(address)
        self.monitor = monitor
        return monitor

    def check(self, sock: zmq.Socket[Any]) -> None:
        """Read what the monitor reported, and connect again when that is due."""
        while self.monitor is not None:
            try:
                event = parse_monitor_message(self.monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
            except zmq.ZMQError:  # the monitor gone (a stop): nothing more to read
                break
            except (RuntimeError, ValueError):  # a torn message: the next one will do
                continue
            kind = event["event"]
            if kind == zmq.EVENT_CONNECTED:
                self._handshaking = True
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                # its value is 0, not the connection's fd; a connecting socket has one
                # connection, and one through its handshake needs no help
                self._handshaking = False
                self._reconnect_at = None
            elif kind == zmq.EVENT_DISCONNECTED:
                if self._handshaking:  # told whether libzmq retries it (wrong keys) or not
                    self._failed.count("handshake")
                self._dropped = not self._handshaking
                self._handshaking = False
                # connected again unless libzmq says it retries (at once, if it does)
                self._reconnect_at = time.monotonic() + RECONNECT_S
            elif kind == zmq.EVENT_CONNECT_RETRIED:
                self._reconnect_at = None  # a sender gone or restarting: libzmq's to retry
        if self._reconnect_at is not None and time.monotonic() >= self._reconnect_at:
            self._reconnect_at = None
            self.reconnects += 1
            if self._dropped:  # a working connection libzmq gave up
                self._failed.count("dropped")
                if self._on_dropped is not None:
                    self._on_dropped(self._dropped_message())
            with contextlib.suppress(zmq.ZMQError):  # not connected (ENOENT): connect
                sock.disconnect(self.endpoint)
            sock.connect(self.endpoint)
        for ended, count, _ in self._failed.due():
            if ended == "dropped":
                log.warning("%s", self._dropped_message(count))
                continue
            log.warning(
                "the input's connection to %s failed its ZeroMQ handshake (%d x since the "
                "last such line): a sender there that is not a %s socket (input_mode "
                "'sub' takes PUB senders, 'pull' PUSH ones), CURVE keys that do not "
                "match, or no ZeroMQ at all; "
                "connecting again every %.0f s where ZeroMQ itself does not",
                self.endpoint, count, SENDER.get(self._mode, "?"), RECONNECT_S,
            )  # fmt: skip

    def _dropped_message(self, count: int | None = None) -> str:
        told = "" if count is None else f" ({count} x since the last such line)"
        return (
            f"the input's connection to {self.endpoint} was ended by ZeroMQ, which does "
            f"not connect it again{told}: a message over the input's size limit "
            f"({self._max_message_bytes} bytes: the larger of [limits] max_payload_bytes "
            "and max_header_bytes, and 1 KiB; that message is lost, as is what the sender "
            "sent until the input was back) or another ZeroMQ protocol error; connected again"
        )

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close(0)
            self.monitor = None
