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
import zmq

from .._errors import DeepDenoiseError

log = logging.getLogger(__name__)

Reply = dict[str, Any]
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
            return _error(
                f"expected a msgpack map like {{'cmd': 'status'}}, got undecodable bytes: {exc}"
            )
        if not isinstance(message, dict) or not isinstance(message.get("cmd"), str):
            return _error(f"expected a map with a string 'cmd', got {message!r:.200}")
        handler = self._commands.get(message["cmd"])
        if handler is None:
            known = ", ".join(sorted(self._commands))
            return _error(f"unknown cmd {message['cmd']!r}; expected one of {known}")
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
        if not isinstance(path, str) or not path:
            return _error(f"load_model needs 'path' (a string), got {path!r}")
        try:
            engine = self._service.load_model(path)
        except (DeepDenoiseError, OSError, TimeoutError) as exc:
            return _error(f"cannot load model {path!r}: {exc}")
        return {"ok": True, "model": engine.model_id, "provider": engine.provider}


def _error(message: str) -> Reply:
    return {"ok": False, "error": message}
