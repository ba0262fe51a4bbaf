"""The service's three sockets, configured for their jobs."""

from __future__ import annotations

from typing import Any

import zmq

from ._config import ServiceConfig


def open_sockets(
    ctx: zmq.Context[Any], cfg: ServiceConfig, endpoints: dict[str, str]
) -> dict[str, zmq.Socket[Any]]:
    """Create, configure and bind/connect the input, output and control sockets.

    ``endpoints`` receives the concrete endpoints (ports resolved). Sockets are created
    here, on the caller's thread, so bind errors surface at start; each is then handed
    to the one stage thread that uses it.
    """
    limits = cfg.limits
    kind = zmq.SUB if cfg.input_mode == "sub" else zmq.PULL
    sockets: dict[str, zmq.Socket[Any]] = {}
    try:
        inp = sockets["input"] = ctx.socket(kind)
        inp.setsockopt(zmq.RCVHWM, cfg.queues.receive_hwm)
        # libzmq drops a connection that sends a part larger than this, before
        # buffering it: the memory guard for hostile or broken senders.
        inp.setsockopt(
            zmq.MAXMSGSIZE, max(limits.max_payload_bytes, limits.max_header_bytes) + 1024
        )
        inp.setsockopt(zmq.LINGER, 0)
        if kind == zmq.SUB:
            inp.setsockopt(zmq.SUBSCRIBE, cfg.subscribe.encode())
        endpoints["input"] = _attach(inp, cfg.input, bind=cfg.input_bind)
        out = sockets["output"] = ctx.socket(zmq.PUB)
        out.setsockopt(zmq.SNDHWM, cfg.queues.send_hwm)
        out.setsockopt(zmq.LINGER, 2000)
        endpoints["output"] = _attach(out, cfg.output, bind=True)
        ctl = sockets["control"] = ctx.socket(zmq.REP)
        ctl.setsockopt(zmq.LINGER, 0)
        endpoints["control"] = _attach(ctl, cfg.control, bind=True)
    except zmq.ZMQError:
        for sock in sockets.values():
            sock.close(0)
        raise
    return sockets


def _attach(sock: zmq.Socket[Any], endpoint: str, bind: bool) -> str:
    """Bind or connect; returns the concrete endpoint (port 0 or * resolved)."""
    if not bind:
        sock.connect(endpoint)
        return endpoint
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    sock.bind(endpoint)
    last = sock.getsockopt(zmq.LAST_ENDPOINT)
    return last.decode() if isinstance(last, bytes) else str(last)
