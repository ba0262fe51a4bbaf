"""The connecting input's link to the acquisition, kept up after a failed handshake.

A connection whose ZeroMQ handshake fails on a protocol error -- a sender of another
socket type (a PUSH sender for a ``sub`` input, a PUB one for ``pull``), keys that do
not match, or no ZeroMQ at all on that port -- is never tried again by libzmq: the
input stayed deaf for good, and nothing was logged (a user's trial: every later frame
lost until a restart). The receiver's thread watches the socket's monitor, says what is
wrong, and connects again every :data:`RECONNECT_S`, so that the input comes back once
the sender is right.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from ._tally import Tally

log = logging.getLogger(__name__)

#: What the monitor reports: a connection made, its handshake done, its end.
EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED

#: How long after a failed handshake the input connects again.
RECONNECT_S = 1.0

#: One warning at most this often, with the count since the last.
TOLD_EVERY_S = 10.0

#: The sender's socket type each input mode takes.
SENDER = {"sub": "PUB", "pull": "PUSH"}


class InputLink:
    """Reconnects a connecting input whose handshake failed: :meth:`open` before the
    input connects, then :meth:`check` on the receiver's thread each time it wakes."""

    def __init__(self, endpoint: str, input_mode: str) -> None:
        self.endpoint = endpoint
        self._mode = input_mode
        self.monitor: zmq.Socket[Any] | None = None
        self._handshaking = False  # a connection made, not through its handshake yet
        self._reconnect_at: float | None = None
        self._failed: Tally[str] = Tally(TOLD_EVERY_S)
        self.reconnects = 0

    def open(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        """Start monitoring ``sock``; returns the monitor socket, to poll with it."""
        address = f"inproc://deepdenoise-input-link-{id(self)}"
        sock.monitor(address, EVENTS)
        monitor = sock.context.socket(zmq.PAIR)
        monitor.setsockopt(zmq.LINGER, 0)
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
            if event["event"] == zmq.EVENT_CONNECTED:
                self._handshaking = True
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                # its value is 0, not the connection's fd; a connecting socket has one
                # connection, and one through its handshake needs no help
                self._handshaking = False
                self._reconnect_at = None
            elif event["event"] == zmq.EVENT_DISCONNECTED and self._handshaking:
                self._handshaking = False
                self._failed.count("handshake")
                self._reconnect_at = time.monotonic() + RECONNECT_S
        for _, count, _ in self._failed.due():
            log.warning(
                "the input's connection to %s failed its ZeroMQ handshake (%d x since the "
                "last such line): a sender there that is not a %s socket (input_mode "
                "'sub' takes PUB senders, 'pull' PUSH ones), CURVE keys that do not "
                "match, or no ZeroMQ at all; "
                "connecting again every %.0f s (ZeroMQ itself would not)",
                self.endpoint, count, SENDER.get(self._mode, "?"), RECONNECT_S,
            )  # fmt: skip
        if self._reconnect_at is not None and time.monotonic() >= self._reconnect_at:
            self._reconnect_at = None
            self.reconnects += 1
            with contextlib.suppress(zmq.ZMQError):  # not connected (ENOENT): connect
                sock.disconnect(self.endpoint)
            sock.connect(self.endpoint)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close(0)
            self.monitor = None
