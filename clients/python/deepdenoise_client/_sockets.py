"""Sockets: publish frames to the service, subscribe to its output.

Each class owns one ZeroMQ socket and is a context manager; none is thread-safe
(ZeroMQ sockets are not), so use one per thread.
"""

from __future__ import annotations

import atexit
import logging
import time
import weakref
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Literal

import numpy as np
import zmq

# pyzmq's keeper of zero-copy buffers registers its exit hook when first imported: here,
# so that it is before this module's (_close_unclosed), which then runs first
import zmq.utils.garbage  # isort: skip

from ._curve import CURVE_HINT, CURVE_SERVER_HINT, CurveKeys
from ._errors import ClientTimeoutError
from ._protocol import (
    DEFAULT_LIMITS,
    TOPIC_DENOISED,
    TOPIC_EVENT,
    TOPIC_FRAME,
    TOPIC_RAW,
    TOPIC_STATUS,
    TOPIC_TRACES,
    TOPIC_TRIGGER,
    Limits,
    Message,
    check_endpoint,
    decode_message,
    encode_end,
    encode_frame,
    encode_start,
    is_ipv6_endpoint,
)

log = logging.getLogger("deepdenoise_client")

#: Every topic on the wire: the service's output, and ``frame`` (an acquisition's).
TOPICS = (
    TOPIC_DENOISED,
    TOPIC_TRACES,
    TOPIC_TRIGGER,
    TOPIC_STATUS,
    TOPIC_EVENT,
    TOPIC_RAW,
    TOPIC_FRAME,
)

DEFAULT_INPUT = "tcp://127.0.0.1:5555"
DEFAULT_OUTPUT = "tcp://127.0.0.1:5556"

#: Parts at least this large are sent without copying (below it a copy is cheaper
#: than the bookkeeping that keeps the caller's buffer alive).
ZERO_COPY_THRESHOLD = 64 * 1024


def _ms(timeout: float | None) -> int:
    return -1 if timeout is None else max(0, round(timeout * 1000))


class _Socket:
    _socket: zmq.Socket[bytes]

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def socket(self) -> zmq.Socket[bytes]:
        """The underlying ZeroMQ socket, for options this class does not expose."""
        return self._socket

    @property
    def closed(self) -> bool:
        return bool(self._socket.closed)

    def close(self, linger: float | None = 0.0) -> None:
        if not self._socket.closed:
            self._socket.close(linger=_ms(linger))


#: PUSH mode's send high-water mark (frames queued in this process for the service).
PUSH_SEND_HWM = 8


def _drop(sock: zmq.Socket[bytes], context: zmq.Context[Any] | None, linger: float | None) -> None:
    """Close an unclosed publisher's socket and end its own context, waiting at most
    ``linger`` for its queued frames (none when unlimited: a leak must not hang)."""
    if not sock.closed:
        sock.close(linger=0 if linger is None else _ms(linger))
    if context is not None and not context.closed:
        context.term()


#: The unclosed publishers' finalizers, run by :func:`_close_unclosed` at exit.
_UNCLOSED: set[weakref.finalize[Any, Any]] = set()
_exit_hook: list[bool] = []  # registered once


def _close_unclosed() -> None:
    """At exit, close the publishers left open, waiting for their queued frames. This
    runs before pyzmq's own exit hook, registered earlier, which frees the buffers of
    frames sent without a copy: ZeroMQ, still sending them, then aborted the process
    ("Bad address", a user's script that never closed its publisher)."""
    for finalizer in list(_UNCLOSED):
        finalizer()
    _UNCLOSED.clear()


class Publisher(_Socket):
    """Send frames to the service, as an acquisition program does.

    Parameters
    ----------
    endpoint
        ZeroMQ endpoint; ``tcp://127.0.0.1:*`` (or port ``0``) binds a free port,
        readable afterwards from :attr:`endpoint`.
    mode
        ``"pub"``: an XPUB socket that the service's SUB socket connects to; it can
        tell when the service has subscribed (:meth:`wait_for_subscriber`). Sends never
        block; past the high-water mark frames are dropped, as with any PUB socket.
        ``"push"``: a PUSH socket for a service started with ``input_mode = "pull"``;
        a send blocks while the service is not keeping up (back-pressure) or not
        connected (bound or connecting, frames are queued only on a live connection),
        at most ``timeout`` seconds.
    bind
        Bind (the default; the service connects) or connect.
    topic
        First part of every message; the service subscribes to the prefix ``frame``.
    context
        ZeroMQ context. Default: one of the publisher's own, ended by :meth:`close`,
        which therefore waits for the queued frames to go out (at most ``linger``). A
        context given here is left alone: its queued frames go out in the background
        while it lives, and are lost if the process exits first.
    timeout
        PUSH mode: seconds a send may block before :class:`TimeoutError`; ``None``
        blocks as long as it takes.
    linger
        Seconds that :meth:`close` waits for queued frames to be delivered (``None``:
        until delivered).
    limits
        The service's limits, checked before sending.
    curve
        Keys for a secured service (:class:`CurveKeys`): bound, this end is a CURVE
        server (the service has its public key as ``security.input_server_key``);
        connecting, a client of the service's public key.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_INPUT,
        *,
        mode: Literal["pub", "push"] = "pub",
        bind: bool = True,
        topic: bytes | str = TOPIC_FRAME,
        context: zmq.Context[Any] | None = None,
        timeout: float | None = None,
        linger: float | None = 1.0,
        limits: Limits = DEFAULT_LIMITS,
        curve: CurveKeys | None = None,
    ) -> None:
        if mode not in ("pub", "push"):
            raise ValueError(f"expected mode 'pub' or 'push', got {mode!r}")
        self.mode = mode
        self.topic = topic.encode() if isinstance(topic, str) else bytes(topic)
        self.limits = limits
        self.linger = linger
        self._subscriptions = 0
        # with keys, a refused handshake is dropped unsaid: a timeout says what to check
        self._hint = "" if curve is None else CURVE_SERVER_HINT if bind else CURVE_HINT
        # A context of its own unless one is given: ending it at close is what waits
        # for the queued frames (pyzmq never ends the process-wide one, and a script
        # that exited right after sending lost its last frames and its end: 2 runs in
        # 10 in an operator's trial)
        self._own_context = zmq.Context() if context is None else None
        ctx = context if context is not None else self._own_context
        assert ctx is not None
        try:
            self._socket = ctx.socket(zmq.XPUB if mode == "pub" else zmq.PUSH)
        except BaseException:
            self._end_own_context()
            raise
        # A publisher dropped unclosed (collected, or left at exit) closes with linger
        # too: libzmq's default is to wait for ever, and ending its own context then
        # hung the collecting thread behind a service that no longer read
        self._finalizer = weakref.finalize(self, _drop, self._socket, self._own_context, linger)
        self._finalizer.atexit = False  # run by _close_unclosed, before pyzmq's exit hook
        _UNCLOSED.add(self._finalizer)
        if not _exit_hook:  # after pyzmq's (imported above): it runs first at exit
            atexit.register(_close_unclosed)
            _exit_hook.append(True)
        try:
            if mode == "pub":
                # Report every (un)subscription, not just the first per topic, so the
                # count of subscribers stays right with several services attached.
                verboser = getattr(zmq, "XPUB_VERBOSER", None)
                self._socket.setsockopt(verboser or zmq.XPUB_VERBOSE, 1)
            else:
                self._socket.setsockopt(zmq.SNDTIMEO, _ms(timeout))
                # Queue only on a live connection: a PUSH that connects to a service
                # that is not there waits (and times out) instead of queueing frames
                # that close() would then discard unsaid.
                self._socket.setsockopt(zmq.IMMEDIATE, 1)
                # A few frames queued here, not libzmq's 1,000: a send that returned
                # is then a frame the service is about to read, and back-pressure
                # (a blocking send) comes as soon as it falls behind
                self._socket.setsockopt(zmq.SNDHWM, PUSH_SEND_HWM)
            if curve is not None:
                curve.apply(self._socket, bind=bind)
            check_endpoint(endpoint)
            if is_ipv6_endpoint(endpoint):
                self._socket.setsockopt(zmq.IPV6, 1)
            if bind:
                self._socket.bind(endpoint)
            else:
                self._socket.connect(endpoint)
        except BaseException:
            self._socket.close(linger=0)
            self._end_own_context()
            raise
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT) if bind else endpoint

    def __enter__(self) -> Publisher:
        return self

    def close(self, linger: float | None = None) -> None:
        """Close the socket and wait up to ``linger`` seconds (default: the
        constructor's) for queued frames to go out; frames still queued then are
        discarded. With a ``context`` given, the frames go out in the background and
        this returns at once."""
        self._forget_at_exit()
        super().close(self.linger if linger is None else linger)
        self._end_own_context()

    def _forget_at_exit(self) -> None:
        """Leave this publisher's close to its owner, not to the exit hook: a close in
        another thread (the pymmcore-plus handler's) may be ending the context while the
        process exits, and the hook's close would end it a second time (or, the socket
        closed with no linger limit, wait for ever: a review)."""
        _UNCLOSED.discard(self._finalizer)

    def _end_own_context(self) -> None:
        # term() returns once every queued frame is delivered or the linger is over
        if self._own_context is not None and not self._own_context.closed:
            self._own_context.term()

    # -- subscriptions (pub mode) ------------------------------------------------

    def _drain_subscriptions(self) -> None:
        while self._socket.poll(0, zmq.POLLIN):
            msg = self._socket.recv()
            if not msg or not self.topic.startswith(msg[1:]):
                continue
            if msg[0] == 1:
                self._subscriptions += 1
            elif msg[0] == 0:
                self._subscriptions = max(0, self._subscriptions - 1)

    @property
    def subscribers(self) -> int:
        """How many subscriptions matching :attr:`topic` are active (pub mode)."""
        self._require_pub("subscribers")
        self._drain_subscriptions()
        return self._subscriptions

    def wait_for_subscriber(self, timeout: float) -> None:
        """Block until a subscriber to :attr:`topic` is attached (pub mode).

        A PUB socket drops whatever it sends before a subscription has arrived (the
        "slow joiner"); frames sent after this returns reach that subscriber.
        Returns at once when one is already attached.

        Raises
        ------
        TimeoutError
            No subscription within ``timeout`` seconds.
        """
        self._require_pub("wait_for_subscriber")
        deadline = time.monotonic() + timeout
        while True:
            self._drain_subscriptions()
            if self._subscriptions > 0:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientTimeoutError(
                    f"no subscriber to topic {self.topic!r} on {self.endpoint} within "
                    f"{timeout} s: is the service running, with its input connected to "
                    f"this endpoint and subscribed to a prefix of this topic?{self._hint}"
                )
            self._socket.poll(_ms(remaining) or 1, zmq.POLLIN)

    def _require_pub(self, what: str) -> None:
        if self.mode != "pub":
            raise RuntimeError(f"{what} needs mode='pub'; this publisher is mode={self.mode!r}")

    # -- sending ------------------------------------------------------------------

    def send_frame(
        self,
        array: np.ndarray,
        series: str,
        index: int,
        t_ns: int | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        resend: bool = False,
        copy: bool | None = None,
    ) -> None:
        """Validate and send one frame (``resend``: overwrite an index sent before).

        Parts of 64 KiB and more are sent without a copy (``copy=None``): ZeroMQ then
        reads the array's memory after this returns, so do not write into it until the
        frame is out; pass ``copy=True`` when the array is a reused acquisition buffer.

        Raises
        ------
        ValueError
            (:class:`~deepdenoise_client.ProtocolError`) dtype, shape, series, index,
            t_ns or meta the service would reject; ``.reason`` is its code.
        TimeoutError
            PUSH mode: the frame could not be queued within ``timeout``.
        """
        parts = encode_frame(
            array,
            series,
            index,
            t_ns=t_ns,
            meta=meta,
            resend=resend,
            topic=self.topic,
            limits=self.limits,
        )
        self._send(parts, copy)

    def start(self, series: str, t_ns: int | None = None) -> None:
        """Announce the start of a series (optional; frames may come without it)."""
        self._send(encode_start(series, t_ns=t_ns, topic=self.topic), None)

    def end(self, series: str, t_ns: int | None = None) -> None:
        """Announce the end of a series: the service flushes it to disk and reports
        frames and missing indices in a ``series_end`` event."""
        self._send(encode_end(series, t_ns=t_ns, topic=self.topic), None)

    def _send(self, parts: list[bytes | memoryview], copy: bool | None) -> None:
        last = len(parts) - 1
        try:
            for i, part in enumerate(parts):
                nbytes = part.nbytes if isinstance(part, memoryview) else len(part)
                zero_copy = nbytes >= ZERO_COPY_THRESHOLD if copy is None else not copy
                # Only the first part can block: ZeroMQ accepts the rest of a message
                # once its first part is queued, so a message is never half sent.
                self._socket.send(part, zmq.SNDMORE if i < last else 0, copy=not zero_copy)
        except zmq.Again:
            raise ClientTimeoutError(
                f"could not queue a message on {self.endpoint} within the send timeout: "
                "no PULL peer connected (is the service's input `--input-mode pull`?), or "
                f"the service is not keeping up.{self._hint}"
            ) from None


class Subscriber(_Socket):
    """Receive the service's output (``denoised`` frames, ``status``, ``event``).

    Iterating yields ``(header, array)`` pairs, ``array`` being ``None`` for
    header-only messages; it ends when ``timeout`` seconds pass without a message
    (never, when ``timeout`` is None). Arrays are read-only views of the received
    ZeroMQ buffers, copied nowhere; ``array.copy()`` when you need to write.

    A SUB socket misses what is published before its connection is up, so the first
    messages after connecting may be lost.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_OUTPUT,
        topics: tuple[bytes | str, ...] | list[bytes | str] = (TOPIC_DENOISED,),
        *,
        timeout: float | None = None,
        context: zmq.Context[Any] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        curve: CurveKeys | None = None,
    ) -> None:
        if isinstance(topics, bytes | str):
            raise TypeError(
                f"expected a sequence of topics like (b'denoised',), got the single {topics!r}"
            )
        self.timeout = timeout
        self.limits = limits
        self.endpoint = endpoint
        self.topics = tuple(t.encode() if isinstance(t, str) else bytes(t) for t in topics)
        if not self.topics:  # a SUB socket with no subscription receives nothing, silently
            raise ValueError("expected at least one topic (b'' for every topic), got none")
        for topic in self.topics:  # a prefix no topic has (a typo) would receive nothing
            if not any(name.startswith(topic) for name in TOPICS):
                raise ValueError(
                    f"no topic starts with {topic!r}: expected a prefix of "
                    f"{', '.join(repr(name.decode()) for name in TOPICS)}"
                )
        self._curve = curve is not None  # only whether: for a timeout's message
        ctx = context if context is not None else zmq.Context.instance()
        self._socket = ctx.socket(zmq.SUB)
        try:
            for topic in self.topics:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic)
            if curve is not None:  # keys for a secured service (with its public key)
                curve.apply(self._socket, bind=False)
            if is_ipv6_endpoint(check_endpoint(endpoint)):
                self._socket.setsockopt(zmq.IPV6, 1)
            self._socket.connect(endpoint)
        except BaseException:
            self._socket.close(linger=0)
            raise

    def __enter__(self) -> Subscriber:
        return self

    def recv(self, timeout: float | None = None) -> Message:
        """Receive and decode one message.

        ``timeout`` in seconds; ``None`` uses the subscriber's ``timeout`` (which may
        itself be ``None``: wait forever).

        Raises
        ------
        TimeoutError
            Nothing arrived in time.
        ValueError
            (:class:`~deepdenoise_client.ProtocolError`) the message is malformed.
        """
        wait = self.timeout if timeout is None else timeout
        if wait is not None and not self._socket.poll(_ms(wait), zmq.POLLIN):
            raise ClientTimeoutError(
                f"no message on topics {list(self.topics)} from {self.endpoint} within {wait} s"
                + (f".{CURVE_HINT}" if self._curve else "")
            )
        frames = self._socket.recv_multipart(copy=False)
        return decode_message(frames, limits=self.limits)

    def __iter__(self) -> Iterator[tuple[dict[str, Any], np.ndarray | None]]:
        while True:
            try:
                msg = self.recv()
            except ClientTimeoutError:
                return
            yield msg.header, msg.array
