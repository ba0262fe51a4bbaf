"""Control commands: ``{"cmd": ...}`` in, ``{"ok": ...}`` out, over a ROUTER socket that
REQ clients talk to as to a REP one.

Every request gets a reply, whatever it contains: the control channel is how an
operator recovers a service. Commands that can take long (``load_model`` warms a model
up, for minutes with a TensorRT build; ``flush``, ``set_rois``, ``end_series`` wait for
other threads)
run on a worker thread, one after the other, while the control thread goes on answering
``status``, ``pause`` or ``stop``: a watchdog polling ``status`` never sees a service
that went quiet. Only the control thread touches the socket (ZeroMQ sockets are not
thread-safe); the worker hands its replies back through a queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msgpack
import numpy as np
import zmq

from .._errors import DeepDenoiseError, RoiError, shown, wire_type
from .._types import CONTROL_CHARACTER, MAX_SIDE, SERIES_RULE, is_series_name

log = logging.getLogger(__name__)

Reply = dict[str, Any]
#: Label image dtypes ``set_rois`` takes (little-endian, as every payload).
LABEL_DTYPES = ("|u1", "<u2", "<i2", "<u4", "<i4", "<i8")
#: Longest ``source`` of a set_rois request (a file path, say).
SOURCE_MAX = 1024
#: How long the control loop waits for a request before it checks for a stop (and, while
#: a slow command runs, for its reply).
POLL_MS, POLL_BUSY_MS = 100, 5
#: Commands run on the worker thread: they wait on a model's warm-up or other threads.
SLOW_COMMANDS = frozenset({"load_model", "flush", "set_rois", "end_series"})
#: How long end_series waits for the receiver to take it: within the clients' default
#: reply timeout (5 s), so that they get the reason and not a timeout of their own.
END_SERIES_S = 4.0
#: How long a stopping service waits for the slow command under way (a model's warm-up)
#: to end, so that it is answered and no thread is left inside ONNX Runtime as the
#: process exits (it aborted: "terminate called without an active exception").
WORKER_STOP_S = 300.0
#: How long the socket, closing, still tries to send those last replies.
REPLY_LINGER_MS = 1000


class Controllable(Protocol):
    """What the control socket can ask of a service."""

    def status(self) -> dict[str, Any]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def flush(self, timeout: float = ...) -> bool: ...
    def request_stop(self) -> None: ...
    def cut_drain(self) -> None: ...
    @property
    def stopping(self) -> bool: ...
    def load_model(self, path: str | Path, timeout: float = ...) -> Any: ...
    def set_rois(
        self,
        labels: Any,
        series: str | None = ...,
        timeout: float = ...,
        fit: bool = ...,
        source: str | None = ...,
    ) -> tuple[int, list[str]]: ...
    def end_series(self, series: str, timeout: float = ...) -> int: ...


def _log_reply(cmd: str, reply: Reply) -> None:
    if reply.get("ok"):
        model = f": model {reply['model']} ({reply.get('path')})" if "model" in reply else ""
        log.info("control: %s done%s", cmd, model)
    else:
        log.warning("control: %s refused: %s", cmd, reply.get("error"))


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
            "end_series": self._end_series,
        }
        # store losses as the last flush reply told them: a flush reports every loss
        # since (one before it, too, as a full disk when a series began: a fault trial)
        self._told_losses: dict[str, int] = {}

    def run(self, sock: zmq.Socket[Any], closing: threading.Event) -> None:
        """The control thread: answer every request until ``closing`` is set.

        ``sock`` is a ROUTER: a request comes as its envelope (the peer's identity, and
        from REQ an empty delimiter), then the body, which must be one part (else an
        error reply, as for any malformed request); the reply goes back under the same
        envelope.
        """
        slow: queue.Queue[tuple[list[bytes], bytes] | None] = queue.Queue()
        done: queue.Queue[tuple[list[bytes], bytes]] = queue.Queue()
        worker = threading.Thread(
            target=self._work, args=(slow, done, closing), name="control-worker", daemon=True
        )
        worker.start()
        pending = 0
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not closing.is_set():
                while not done.empty():
                    envelope, reply = done.get()
                    sock.send_multipart([*envelope, reply])
                    pending -= 1
                if not poller.poll(POLL_BUSY_MS if pending else POLL_MS):
                    continue
                envelope, body = _split_envelope(sock.recv_multipart())
                if len(body) != 1:
                    error = _error(f"expected a request of 1 message part, got {len(body)}")
                    log.warning("control: request refused: %s", error["error"])
                    sock.send_multipart([*envelope, msgpack.packb(error, use_bin_type=True)])
                elif _command_of(body[0]) in SLOW_COMMANDS:
                    slow.put((envelope, body[0]))
                    pending += 1
                else:
                    sock.send_multipart([*envelope, self.handle(body[0])])
        finally:
            # every request gets its reply, also while the service stops: the one under
            # way when it ends, those not begun refused (_work)
            slow.put(None)
            worker.join(WORKER_STOP_S)
            if worker.is_alive():
                log.error("a control command still runs after %.0f s; not answered", WORKER_STOP_S)
            try:
                while not done.empty():
                    envelope, reply = done.get()
                    sock.send_multipart([*envelope, reply])
            except zmq.ZMQError as exc:  # the context ends under it: closed all the same
                log.error("control replies not sent as the service stopped: %s", exc)
            finally:
                sock.close(REPLY_LINGER_MS)

    def _work(
        self,
        slow: queue.Queue[tuple[list[bytes], bytes] | None],
        done: queue.Queue[tuple[list[bytes], bytes]],
        closing: threading.Event,
    ) -> None:
        """The worker thread: slow commands in the order they came; once the service is
        stopping, those not begun are refused."""
        while (job := slow.get()) is not None:
            envelope, request = job
            if closing.is_set():
                command = _command_of(request)
                reply = _error(f"the service is stopping: {command} was not run")
                log.warning("control: %s refused: %s", command, reply["error"])
                done.put((envelope, msgpack.packb(reply, use_bin_type=True)))
            else:
                done.put((envelope, self.handle(request)))

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
            message = _request_of(request, self._commands)
        except _Unreadable as exc:
            log.warning("control: request refused: %s", exc)
            return _error(str(exc))
        reply = self._commands[message["cmd"]](message)
        if message["cmd"] != "status":  # an operator's actions, in the run's log
            _log_reply(message["cmd"], reply)
        return reply

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
        losses = self._store_losses()
        lost = {k: n - self._told_losses.get(k, 0) for k, n in losses.items()}
        lost = {k: n for k, n in lost.items() if n > 0}
        self._told_losses = losses
        if lost:  # done, but not "every frame received so far is on disk"
            told = ", ".join(f"{n} {k}" for k, n in sorted(lost.items()))
            return {
                **_error(
                    f"flushed, but frames could not be written ({told}) since the last "
                    "flush (or the start): counted in status dropped; the store_* error "
                    "events say why"
                ),
                "lost": lost,
            }
        return {"ok": True}

    def _store_losses(self) -> dict[str, int]:
        dropped = self._service.status().get("dropped", {})
        return {k: int(v) for k, v in dropped.items() if k.startswith("store_")}

    def _stop(self, _: dict[str, Any]) -> Reply:
        if self._service.stopping:  # asked again, as a second Ctrl-C: no more draining
            self._service.cut_drain()
            return {"ok": True, "stopping": True, "drain_cut": True}
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
            isinstance(source, str)
            and 0 < len(source) <= SOURCE_MAX
            and CONTROL_CHARACTER.search(source) is None
        ):
            return _error(
                f"set_rois: expected 'source' a str of 1 to {SOURCE_MAX} characters, none a "
                "control character (U+0000-U+001F, U+007F-U+009F), where the labels came from, "
                f"or nil, got {shown(source)}"
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

    def _end_series(self, message: dict[str, Any]) -> Reply:
        series = message.get("series")
        if not is_series_name(series):
            return _error(f"end_series: expected 'series' of {SERIES_RULE}, got {shown(series)}")
        try:
            last_index = self._service.end_series(series, END_SERIES_S)
        except (DeepDenoiseError, TimeoutError) as exc:
            return _error(f"end_series: {exc}")
        return {"ok": True, "series": series, "last_index": last_index}


def _label_image(labels: Any, dtype: Any, shape: Any) -> np.ndarray | str:
    """The label image of a set_rois request, or what is wrong with it."""
    if not isinstance(labels, bytes):
        return f"expected 'labels' as bin (the image's bytes, C order), got {wire_type(labels)}"
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


def _split_envelope(parts: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """A ROUTER message's envelope (up to its empty delimiter) and body. A peer without
    the delimiter (a DEALER) has just its identity as the envelope."""
    for i, part in enumerate(parts[1:], start=1):
        if not part:
            return parts[: i + 1], parts[i + 1 :]
    return parts[:1], parts[1:]


class _Unreadable(ValueError):
    """A request that is not a msgpack map naming a known command (the message says
    what was expected and what came)."""


def _request_of(request: bytes, commands: Mapping[str, Any]) -> dict[str, Any]:
    """The request's map, with a ``cmd`` among ``commands``; else _Unreadable."""
    try:
        message = msgpack.unpackb(request, raw=False, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise _Unreadable(f"expected each key once in a request, got {exc} twice") from None
    except msgpack.ExtraData as exc:
        raise _Unreadable(
            f"expected one msgpack map like {{'cmd': 'status'}}, got {len(request)} bytes "
            f"holding more than one msgpack value (the first: {shown(exc.unpacked)}): "
            f"{request[:32]!r}"
        ) from None
    except Exception as exc:
        why = str(exc) or type(exc).__name__
        raise _Unreadable(
            f"expected a msgpack map like {{'cmd': 'status'}}, got {len(request)} bytes "
            f"that do not decode ({why}): {request[:32]!r}"
        ) from None
    if not isinstance(message, dict) or not isinstance(message.get("cmd"), str):
        raise _Unreadable(f"expected a map with a string 'cmd', got {shown(message)}")
    if message["cmd"] not in commands:
        known = ", ".join(sorted(commands))
        raise _Unreadable(f"unknown cmd {shown(message['cmd'])}; expected one of {known}")
    return message


def _command_of(request: bytes) -> str | None:
    """The request's ``cmd``, read without decoding the rest (a set_rois label image may
    be large), or None when it has none or more than one (a request that also names
    ``load_model`` must not run it on the control thread): its error reply is quick, so
    it is answered on the control thread."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(request), 1))
    unpacker.feed(request)
    found: str | None = None
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() != "cmd":
                unpacker.skip()
                continue
            cmd = unpacker.unpack()
            if found is not None or not isinstance(cmd, str):
                return None  # handle refuses it
            found = cmd
    except Exception:  # not a map, or broken: handle says why
        return None
    return found


class _DuplicateKey(ValueError):
    """A request's map names a key twice (msgpack would keep the last silently)."""


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _DuplicateKey(shown(key))
        mapping[key] = value
    return mapping


def _error(message: str) -> Reply:
    return {"ok": False, "error": message}
