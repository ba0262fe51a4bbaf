"""Control the running service over its REP socket."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import msgpack
import zmq

from ._curve import CURVE_HINT, CurveKeys
from ._errors import ClientTimeoutError, ControlError
from ._protocol import (
    check_endpoint,
    check_series,
    encode_request,
    encode_set_rois,
    is_ipv6_endpoint,
)

DEFAULT_CONTROL = "tcp://127.0.0.1:5557"


class Control:
    """Send commands to the service and wait for its replies.

    Every request is one msgpack map ``{"cmd": ..., **arguments}``; the reply is a map
    with ``ok``. A REQ socket that timed out waiting for a reply can send nothing
    else, so after a timeout the socket is replaced and the client stays usable.

    Not thread-safe: one ``Control`` per thread.

    Parameters
    ----------
    endpoint
        The service's control endpoint.
    timeout
        Seconds to wait for each reply (``None``: forever).
    context
        ZeroMQ context; default ``zmq.Context.instance()``.
    curve
        Keys for a service with ``[security]`` (:class:`CurveKeys`, with the service's
        public key).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_CONTROL,
        timeout: float | None = 5.0,
        *,
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.endpoint = check_endpoint(endpoint)
        self.timeout = timeout
        self.curve = curve
        self._context = context if context is not None else zmq.Context.instance()
        self._socket = self._connect()

    def _connect(self) -> zmq.Socket[bytes]:
        sock = self._context.socket(zmq.REQ)
        try:
            ms = -1 if self.timeout is None else max(0, round(self.timeout * 1000))
            sock.setsockopt(zmq.SNDTIMEO, ms)
            if self.curve is not None:
                self.curve.apply(sock, bind=False)
            if is_ipv6_endpoint(self.endpoint):
                sock.setsockopt(zmq.IPV6, 1)
            sock.connect(self.endpoint)
        except BaseException:
            sock.close(linger=0)
            raise
        return sock

    def _reset(self) -> None:
        self._socket.close(linger=0)
        self._socket = self._connect()

    def __enter__(self) -> Control:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close(linger=0)

    @property
    def closed(self) -> bool:
        return bool(self._socket.closed)

    def request(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **kwargs}`` and return the reply map (``ok`` is true).

        Raises
        ------
        ControlError
            The service replied ``ok: false``; the message is its ``error``.
        TimeoutError
            No reply within ``timeout`` seconds (the service is not running, busy, or
            listening elsewhere).
        """
        return self._exchange(cmd, encode_request(cmd, **kwargs))

    def _exchange(self, cmd: str, request: bytes) -> dict[str, Any]:
        if self._socket.closed:
            raise RuntimeError("this Control is closed")
        try:
            self._socket.send(request)
        except zmq.Again:
            self._reset()
            raise self._timeout(cmd) from None
        ms = -1 if self.timeout is None else max(0, round(self.timeout * 1000))
        if not self._socket.poll(ms, zmq.POLLIN):
            self._reset()
            raise self._timeout(cmd)
        raw = self._socket.recv()
        try:
            reply = msgpack.unpackb(raw, raw=False)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise ControlError(f"reply to {cmd!r} is not valid msgpack: {exc}") from exc
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise ControlError(
                f"reply to {cmd!r} is not a map with a bool 'ok': {reply!r}",
                reply if isinstance(reply, dict) else None,
            )
        if not reply["ok"]:
            error = reply.get("error") or "no error message given"
            raise ControlError(f"service refused {cmd!r}: {error}", reply)
        return reply

    def _timeout(self, cmd: str) -> ClientTimeoutError:
        return ClientTimeoutError(
            f"no reply to {cmd!r} from {self.endpoint} within {self.timeout} s: "
            f"is the service running with its control socket there?"
            + (CURVE_HINT if self.curve is not None else "")
        )

    def status(self) -> dict[str, Any]:
        """The service's counters: the fields of a ``status`` message, plus ``ok``."""
        return self.request("status")

    def pause(self) -> dict[str, Any]:
        """Stop denoising; raw frames are still recorded (dropped as ``paused``)."""
        return self.request("pause")

    def resume(self) -> dict[str, Any]:
        return self.request("resume")

    def flush(self) -> dict[str, Any]:
        """Write buffered frames to disk now."""
        return self.request("flush")

    def stop(self) -> dict[str, Any]:
        """Drain the queues and shut the service down."""
        return self.request("stop")

    def load_model(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Swap the model between two frames, dropping none.

        ``path`` is opened by the service, so a relative path is relative to the
        service's working directory, on the service's machine.
        """
        return self.request("load_model", path=os.fspath(path))

    def end_series(self, series: str) -> dict[str, Any]:
        """End an open series as its sender's ``end`` would: for a sender that crashed
        with it open (its store stays open, and ROIs of another shape are refused, until
        the service's idle time ends it). The reply has ``last_index``, the last frame
        received (-1: none); a later frame resumes the series. A series not open is
        refused (ControlError).
        """
        return self.request("end_series", series=check_series(series))

    def set_rois(
        self, labels: Any, series: str | None = None, fit: bool = False, source: str | None = None
    ) -> dict[str, Any]:
        """Replace the ROIs between two frames: ``labels`` an integer (H, W) label image
        (0 = background; a single plane, 1 x H x W as a TIFF reads, is taken as it), or
        None to remove them; ``series`` one series, or all.
        ``fit``: the image is the ROIs' extent from the top-left corner, not the frame.
        ``source``: where the labels came from (a file path, say): ``status`` and the
        stored traces name it.

        The reply has ``rois`` (the ROI count) and ``checked``: the series streaming
        now, whose frames the ROIs fit (empty: none streams, and a series that starts
        later checks them, a mismatch being a ``rois_shape`` error in ``status``).
        The service refuses (ControlError) labels that do not fit the frames, are
        empty, or lack a ROI a trigger watches.
        """
        return self._exchange("set_rois", encode_set_rois(labels, series, fit, source))
