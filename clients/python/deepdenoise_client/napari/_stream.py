"""The receiving half of the live view: a thread that keeps only the newest frames.

Why a thread and a mailbox, not a SUB socket polled from the GUI timer: the service
may publish far faster than a screen refreshes (hundreds of frames a second, twice that
with ``raw``), and every message has to be taken off the socket to reach the newest.
Here a plain thread does that work: it blocks on the socket (releasing the GIL), decodes
each header (the pixels stay a zero-copy view of the received buffer) and overwrites the
previous frame of the same series and topic. The GUI thread only swaps the mailbox out,
at display rate, so its cost per tick is one layer update per series whatever the input
rate, and a busy napari (a dialog, a screenshot) never backs the socket up. Nothing in
this module imports Qt: it is tested and usable without a GUI.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq

from .._curve import CurveKeys
from .._errors import ProtocolError
from .._protocol import (
    DEFAULT_LIMITS,
    TOPIC_DENOISED,
    TOPIC_RAW,
    TOPIC_STATUS,
    Limits,
    Message,
    check_endpoint,
    decode_message,
    is_ipv6_endpoint,
)

log = logging.getLogger(__name__)

#: What the live view subscribes to.
TOPICS = (TOPIC_DENOISED, TOPIC_RAW, TOPIC_STATUS)
#: Messages libzmq keeps for this subscriber before the service's PUB socket drops more
#: for it (never for anyone else): a viewer wants the newest frames, not a backlog.
RCVHWM = 64
#: How often the thread looks at its stop flag while nothing arrives (seconds).
POLL_S = 0.1
#: The variables the CLI and every client's programs take CURVE keys from.
CLIENT_KEY_ENV, SERVER_KEY_ENV = "DEEPDENOISE_CLIENT_KEY", "DEEPDENOISE_SERVER_KEY"


def keys_from_env(environ: Mapping[str, str] | None = None) -> CurveKeys | None:
    """CURVE keys from ``DEEPDENOISE_CLIENT_KEY`` (this client's ``NAME.key_secret``) and
    ``DEEPDENOISE_SERVER_KEY`` (the service's ``service.key``), as the CLI takes them:
    both set, the keys; neither, None (plain text). One alone, or a file that is not a
    key, raises ValueError saying which."""
    env = os.environ if environ is None else environ
    client, server = env.get(CLIENT_KEY_ENV), env.get(SERVER_KEY_ENV)
    if not client and not server:
        return None
    if not (client and server):
        missing = SERVER_KEY_ENV if client else CLIENT_KEY_ENV
        raise ValueError(
            f"{missing} is not set: expected both {CLIENT_KEY_ENV} (this client's "
            f"NAME.key_secret) and {SERVER_KEY_ENV} (the service's service.key), or neither"
        )
    return CurveKeys.from_files(client, server)


@dataclass
class Latest:
    """What arrived since the last :meth:`LatestFrames.take`.

    ``frames`` maps ``(topic, series)`` (topic ``"denoised"`` or ``"raw"``) to the newest
    message of that series; ``status`` is the newest ``status`` header (or None).
    """

    frames: dict[tuple[str, str], Message] = field(default_factory=dict)
    status: dict[str, Any] | None = None


@dataclass
class ViewerCounters:
    """The viewer's own counts, since it connected."""

    received: int = 0  # frame messages (denoised + raw) taken off the socket
    shown: int = 0  # of those, handed to the display (the newest of each tick)
    bad: int = 0  # messages that did not decode (counted, skipped)

    @property
    def skipped(self) -> int:
        """Frames replaced by a newer one of the same series before a display tick."""
        return self.received - self.shown


class LatestFrames:
    """Subscribes to the service's output in a thread; :meth:`take` the newest frames.

    Parameters
    ----------
    endpoint
        The service's output (PUB) endpoint.
    topics
        Topics to subscribe to (default ``denoised``, ``raw`` and ``status``).
    context
        ZeroMQ context; default the process-wide ``zmq.Context.instance()``.
    curve
        Keys for a service with ``[security]``: this client's key pair and the service's
        public key (:class:`~deepdenoise_client.CurveKeys`); None: plain text. A key the
        service does not allow gets nothing at all (no status either).

    The socket is made (and the endpoint checked) in the caller's thread, so a bad
    endpoint raises from the constructor; from :meth:`start` on, only the thread uses it
    and closes it when stopped. An error in the thread ends it; :attr:`error` holds it.
    """

    def __init__(
        self,
        endpoint: str,
        topics: tuple[bytes, ...] = TOPICS,
        *,
        context: zmq.Context[Any] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        curve: CurveKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.limits = limits
        #: Whether this subscriber has CURVE keys (the panel's hints depend on it).
        self.secured = curve is not None
        self.counters = ViewerCounters()
        self.error: BaseException | None = None
        self._latest = Latest()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        ctx = context if context is not None else zmq.Context.instance()
        self._socket: zmq.Socket[bytes] = ctx.socket(zmq.SUB)
        try:
            self._socket.setsockopt(zmq.RCVHWM, RCVHWM)
            self._socket.setsockopt(zmq.LINGER, 0)
            for topic in topics:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic)
            if curve is not None:  # a client of the service's public key
                curve.apply(self._socket, bind=False)
            if is_ipv6_endpoint(check_endpoint(endpoint)):
                self._socket.setsockopt(zmq.IPV6, 1)
            self._socket.connect(endpoint)
        except BaseException:
            self._socket.close(linger=0)
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"deepdenoise-live-view {endpoint}", daemon=True
        )

    def start(self) -> LatestFrames:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (it closes the socket); safe to call more than once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._thread.ident and not self._socket.closed:  # never started
            self._socket.close(linger=0)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def take(self) -> Latest:
        """The newest frame of each series and topic, and the newest status, since the
        last call (each frame is handed out once)."""
        with self._lock:
            latest, self._latest = self._latest, Latest()
            self.counters.shown += len(latest.frames)
        return latest

    def _run(self) -> None:
        sock = self._socket
        try:
            while not self._stop.is_set():
                if not sock.poll(round(POLL_S * 1000), zmq.POLLIN):
                    continue
                while True:  # everything queued now, then look at the stop flag again
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._keep(parts)
        except BaseException as exc:  # ends the thread; the widget shows it
            log.exception("live view receiver on %s failed", self.endpoint)
            self.error = exc
        finally:
            sock.close(linger=0)

    def _keep(self, parts: list[zmq.Frame]) -> None:
        try:
            message = decode_message(parts, limits=self.limits)
        except ProtocolError as exc:
            with self._lock:
                self.counters.bad += 1
            log.debug("skipped a malformed message: %s", exc)
            return
        topic = message.topic
        with self._lock:
            if topic == TOPIC_STATUS:
                self._latest.status = message.header
            elif message.array is not None and isinstance(message.header.get("series"), str):
                key = (topic.decode("ascii", "replace"), message.header["series"])
                self._latest.frames[key] = message
                self.counters.received += 1
