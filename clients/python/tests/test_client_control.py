"""Control against a tiny REP responder running in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import zmq
from deepdenoise_client import Control, ControlError

Handler = Callable[[dict[str, Any]], Any]


class Responder:
    """Answers each request with ``handler(request)``, packed; records the requests."""

    def __init__(self, ctx: zmq.Context[Any], handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self._sock = ctx.socket(zmq.REP)
        port = self._sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(20):
                continue
            request = msgpack.unpackb(self._sock.recv())
            self.requests.append(request)
            reply = self.handler(request)
            self._sock.send(reply if isinstance(reply, bytes) else msgpack.packb(reply))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close(linger=0)


def service(request: dict[str, Any]) -> Any:
    cmd = request.get("cmd")
    if cmd == "status":
        return {"ok": True, "v": 1, "frames_in": 3, "paused": False}
    if cmd in ("pause", "resume", "flush", "stop"):
        return {"ok": True}
    if cmd == "load_model":
        return {"ok": True, "model": "5d41402abc4b", "path": request["path"]}
    if cmd == "slow":
        time.sleep(0.5)
        return {"ok": True}
    if cmd == "garbage":
        return b"\xc1"
    if cmd == "no_ok":
        return {"status": "fine"}
    return {"ok": False, "error": f"unknown command {cmd!r}"}


@pytest.fixture
def responder(ctx: zmq.Context[Any]) -> Iterator[Responder]:
    r = Responder(ctx, service)
    yield r
    r.close()


def test_commands(ctx: zmq.Context[Any], responder: Responder) -> None:
    with Control(responder.endpoint, timeout=5, context=ctx) as control:
        assert control.status() == {"ok": True, "v": 1, "frames_in": 3, "paused": False}
        assert control.pause() == {"ok": True}
        assert control.resume() == {"ok": True}
        assert control.flush() == {"ok": True}
        reply = control.load_model("/models/dncnn.onnx")
        assert reply["model"] == "5d41402abc4b"
        assert control.stop() == {"ok": True}
    assert [r["cmd"] for r in responder.requests] == [
        "status", "pause", "resume", "flush", "load_model", "stop",
    ]  # fmt: skip
    assert responder.requests[4] == {"cmd": "load_model", "path": "/models/dncnn.onnx"}


def test_request_sends_cmd_first_then_arguments(
    ctx: zmq.Context[Any], responder: Responder
) -> None:
    with Control(responder.endpoint, context=ctx) as control:
        control.request("load_model", path="m.onnx")
    assert list(responder.requests[0]) == ["cmd", "path"]


def test_refusal_raises_control_error_with_service_message(
    ctx: zmq.Context[Any], responder: Responder
) -> None:
    with Control(responder.endpoint, context=ctx) as control:
        with pytest.raises(ControlError, match="unknown command 'frobnicate'") as info:
            control.request("frobnicate")
        assert isinstance(info.value, RuntimeError)
        assert info.value.reply == {"ok": False, "error": "unknown command 'frobnicate'"}
        assert control.status()["ok"]  # still usable


@pytest.mark.parametrize("cmd", ["garbage", "no_ok"])
def test_malformed_reply_raises_control_error(
    ctx: zmq.Context[Any], responder: Responder, cmd: str
) -> None:
    with Control(responder.endpoint, context=ctx) as control:
        with pytest.raises(ControlError, match=cmd):
            control.request(cmd)
        assert control.status()["ok"]


def test_no_service_times_out_and_stays_usable(ctx: zmq.Context[Any]) -> None:
    probe = ctx.socket(zmq.REP)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)  # a port nobody listens on
    with Control(f"tcp://127.0.0.1:{port}", timeout=0.1, context=ctx) as control:
        for _ in range(2):  # a second request is no EFSM error: the socket was replaced
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="no reply to 'status'"):
                control.status()
            assert time.monotonic() - t0 >= 0.09


def test_late_reply_is_discarded_and_next_request_succeeds(
    ctx: zmq.Context[Any], responder: Responder
) -> None:
    with Control(responder.endpoint, timeout=0.1, context=ctx) as control:
        with pytest.raises(TimeoutError):
            control.request("slow")
        control.timeout = 5
        assert control.status()["frames_in"] == 3


def test_closed_control_refuses(ctx: zmq.Context[Any], responder: Responder) -> None:
    control = Control(responder.endpoint, context=ctx)
    control.close()
    assert control.closed
    with pytest.raises(RuntimeError, match="closed"):
        control.status()


@pytest.mark.parametrize(
    "endpoint", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:65536", "tcp://127.0.0.1"]
)
def test_a_tcp_port_libzmq_would_remap_is_refused_by_every_socket(endpoint: str) -> None:
    """libzmq takes tcp://127.0.0.1:99999 as port 34463 (99999 mod 65536): a connect
    then waits on another port, a bind serves on one nobody asked for."""
    from deepdenoise_client import Publisher, Subscriber

    makers: list[Callable[[], Any]] = [
        lambda: Control(endpoint),
        lambda: Subscriber(endpoint),
        lambda: Publisher(endpoint, bind=True),
        lambda: Publisher(endpoint, mode="push"),
    ]
    for make in makers:
        with pytest.raises(ValueError, match=r"port of 0-65535 \(or \*\), got 'tcp://127"):
            make()
