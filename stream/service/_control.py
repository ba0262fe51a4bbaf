"""Control commands (REP socket): ``{"cmd": ...}`` in, ``{"ok": ...}`` out.

Every request gets a reply, whatever it contains: a REP socket that fails to answer
is stuck forever, and the control channel is how an operator recovers a service.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgpack
import numpy as np
import zmq

from .._errors import DeepDenoiseError, RoiError, shown
from .._types import MAX_SIDE, SERIES_RULE, is_series_name

log = logging.getLogger(__name__)

Reply = dict[str, Any]
#: Label image dtypes ``set_rois`` takes (little-endian, as every payload).
LABEL_DTYPES = ("|u1", "<u2", "<i2", "<u4", "<i4", "<i8")
#: Longest ``source`` of a set_rois request (a file path, say).
SOURCE_MAX = 1024
#: How long the control loop waits for a request before it checks for a stop.
POLL_MS = 100


class Controllable(Protocol):
    """What the control socket can ask of a service."""

    def status(self) -> dict[str, Any]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def flush(self, timeout: float = ...) -> bool: ...
    def request_stop(self) -> None: ...
    def load_model(self, path: str | Path, timeout: float = ...) -> Any: ...
    def set_rois(
        self,
        labels: Any,
        series: str | None = ...,
        timeout: float = ...,
        fit: bool = ...,
        source: str | None = ...,
    ) -> tuple[int, list[str]]: ...


class ControlHandler:
    """Maps control requests to service actions."""

    def __init__(self, service: Controllable) -> None:
        self._service = service
        self._commands: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "status": self._status,
            "pause": self._pause,
            "resume": self._resume,
            "flush": self._flush,
            "stop": self._stop,
            "load_model": self._load_model,
            "set_rois": self._set_rois,
        }

    def run(self, sock: zmq.Socket[Any], closing: threading.Event) -> None:
        """The control thread: answer every request until ``closing`` is set.

        A request of several parts gets an error reply like any malformed one (reading
        only its first part would leave the REP socket unable to send, and stuck).
        """
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not closing.is_set():
                if not poller.poll(POLL_MS):
                    continue
                parts = sock.recv_multipart()
                if len(parts) != 1:
                    reply = _error(f"expected a request of 1 message part, got {len(parts)}")
                    sock.send(msgpack.packb(reply, use_bin_type=True))
                else:
                    sock.send(self.handle(parts[0]))
        finally:
            sock.close(0)

    def handle(self, request: bytes) -> bytes:
        """Decode, dispatch and encode; never raises."""
        try:
            reply = self._dispatch(request)
        except Exception as exc:  # the reply is the error report; the service stays up
            log.exception("control command failed")
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return msgpack.packb(reply, use_bin_type=True)

    def _dispatch(self, request: bytes) -> Reply:
        try:
            message = msgpack.unpackb(request, raw=False)
        except Exception as exc:
            why = str(exc) or type(exc).__name__
            return _error(
                f"expected a msgpack map like {{'cmd': 'status'}}, got {len(request)} bytes "
                f"that do not decode ({why}): {request[:32]!r}"
            )
        if not isinstance(message, dict) or not isinstance(message.get("cmd"), str):
            return _error(f"expected a map with a string 'cmd', got {shown(message)}")
        handler = self._commands.get(message["cmd"])
        if handler is None:
            known = ", ".join(sorted(self._commands))
            return _error(f"unknown cmd {shown(message['cmd'])}; expected one of {known}")
        return handler(message)

    def _status(self, _: dict[str, Any]) -> Reply:
        return {"ok": True, **self._service.status()}

    def _pause(self, _: dict[str, Any]) -> Reply:
        self._service.pause()
        return {"ok": True, "paused": True}

    def _resume(self, _: dict[str, Any]) -> Reply:
        self._service.resume()
        return {"ok": True, "paused": False}

    def _flush(self, _: dict[str, Any]) -> Reply:
        if not self._service.flush():
            return _error("flush did not complete within 30 s (disk too slow?)")
        return {"ok": True}

    def _stop(self, _: dict[str, Any]) -> Reply:
        self._service.request_stop()
        return {"ok": True, "stopping": True}

    def _load_model(self, message: dict[str, Any]) -> Reply:
        path = message.get("path")
        if not isinstance(path, str) or not path or "\0" in path:
            return _error(f"load_model needs 'path' (a string, no NUL byte), got {shown(path)}")
        try:
            engine = self._service.load_model(path)
        except (DeepDenoiseError, OSError, TimeoutError) as exc:
            return _error(f"cannot load model {shown(path)}: {exc}")
        return {
            "ok": True,
            "model": engine.model_id,
            "provider": engine.provider,
            "path": str(engine.path),
        }

    def _set_rois(self, message: dict[str, Any]) -> Reply:
        series = message.get("series")
        if series is not None and not is_series_name(series):
            return _error(
                f"set_rois: expected 'series' of {SERIES_RULE} or nil, got {shown(series)}"
            )
        if "labels" not in message:
            return _error(
                "set_rois needs 'labels': the label image as bin (with 'dtype' and 'shape'), "
                "or nil to remove the ROIs"
            )
        labels = message["labels"]
        fit = message.get("fit", False)
        if not isinstance(fit, bool):
            return _error(f"set_rois: expected 'fit' true or false, got {shown(fit)}")
        source = message.get("source")
        if source is not None and not (
            isinstance(source, str) and 0 < len(source) <= SOURCE_MAX and source.isprintable()
        ):
            return _error(
                f"set_rois: expected 'source' a printable str of 1 to {SOURCE_MAX} characters "
                f"(where the labels came from) or nil, got {shown(source)}"
            )
        image = None
        if labels is not None:
            image_or_error = _label_image(labels, message.get("dtype"), message.get("shape"))
            if isinstance(image_or_error, str):
                return _error(f"set_rois: {image_or_error}")
            image = image_or_error
        try:
            count, checked = self._service.set_rois(image, series, fit=fit, source=source)
        except RoiError as exc:  # it names the ROIs by their source: set_rois (FILE)
            return _error(str(exc))
        except TimeoutError as exc:
            return _error(f"set_rois: {exc}")
        return {"ok": True, "rois": count, "series": series, "checked": checked}


def _label_image(labels: Any, dtype: Any, shape: Any) -> np.ndarray | str:
    """The label image of a set_rois request, or what is wrong with it."""
    if not isinstance(labels, bytes):
        return f"expected 'labels' as bin (the image's bytes, C order), got {type(labels).__name__}"
    if dtype not in LABEL_DTYPES:
        return f"expected 'dtype' one of {', '.join(LABEL_DTYPES)}, got {shown(dtype)}"
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(s) is int and 1 <= s <= MAX_SIDE for s in shape)
    ):
        return f"expected 'shape' [height, width], each 1..{MAX_SIDE}, got {shown(shape)}"
    expected = shape[0] * shape[1] * np.dtype(dtype).itemsize
    if len(labels) != expected:
        return f"shape {shape} dtype {dtype} needs {expected} bytes of labels, got {len(labels)}"
    return np.frombuffer(labels, dtype=dtype).reshape(shape)


def _error(message: str) -> Reply:
    return {"ok": False, "error": message}
