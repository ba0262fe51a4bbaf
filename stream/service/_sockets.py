"""The service's three sockets, configured for their jobs."""

from __future__ import annotations

from typing import Any

import zmq

from .._errors import ConfigError
from .._types import is_ipv6_endpoint
from ._config import ServiceConfig
from ._input_link import InputLink
from ._security import CurveGuard


def open_sockets(
    ctx: zmq.Context[Any],
    cfg: ServiceConfig,
    endpoints: dict[str, str],
    curve: CurveGuard | None = None,
    link: InputLink | None = None,
) -> dict[str, zmq.Socket[Any]]:
    """Create, configure and bind/connect the input, output and control sockets.

    ``endpoints`` receives the concrete endpoints (ports resolved). Sockets are created
    here, on the caller's thread, so bind errors surface at start; each is then handed
    to the one stage thread that uses it. ``curve``: every socket is encrypted (bound
    ones as CURVE servers, a connecting input as a client of the acquisition).
    ``link``: the connecting input's monitor is made (``input_monitor``), for the
    receiver to keep it connected.
    """
    limits = cfg.limits
    kind = zmq.SUB if cfg.input_mode == "sub" else zmq.PULL
    sockets: dict[str, zmq.Socket[Any]] = {}
    try:
        inp = sockets["input"] = ctx.socket(kind)
        inp.setsockopt(zmq.RCVHWM, cfg.receive_hwm)
        # libzmq drops a connection that sends a part larger than this, before
        # buffering it: the memory guard for hostile or broken senders.
        inp.setsockopt(
            zmq.MAXMSGSIZE, max(limits.max_payload_bytes, limits.max_header_bytes) + 1024
        )
        inp.setsockopt(zmq.LINGER, 0)
        if kind == zmq.SUB:
            inp.setsockopt(zmq.SUBSCRIBE, cfg.subscribe.encode())
        if curve is not None:
            if cfg.input_bind:
                curve.server(inp, "input")
            else:
                curve.client(inp)
        if link is not None:  # watched from its first connection on
            sockets["input_monitor"] = link.open(inp)
        endpoints["input"] = _attach(inp, cfg.input, bind=cfg.input_bind, role="input")
        out = sockets["output"] = ctx.socket(zmq.PUB)
        out.setsockopt(zmq.SNDHWM, cfg.pub_hwm)
        if curve is not None:
            curve.server(out, "output")
        out.setsockopt(zmq.LINGER, 2000)
        endpoints["output"] = _attach(out, cfg.output, bind=True, role="output")
        # ROUTER, which REQ clients see as REP: slow commands answer later, out of order
        ctl = sockets["control"] = ctx.socket(zmq.ROUTER)
        if curve is not None:
            curve.server(ctl, "control")
        ctl.setsockopt(zmq.LINGER, 0)
        # set_rois carries a label image: the same bound as an input frame
        ctl.setsockopt(
            zmq.MAXMSGSIZE, max(limits.max_payload_bytes, limits.max_header_bytes) + 1024
        )
        endpoints["control"] = _attach(ctl, cfg.control, bind=True, role="control")
        if curve is not None:
            curve.watch_handshakes()
    except BaseException:
        for sock in sockets.values():
            sock.close(0)
        raise
    return sockets


def _attach(sock: zmq.Socket[Any], endpoint: str, bind: bool, role: str) -> str:
    """Bind or connect; returns the concrete endpoint (port 0 or * resolved).

    A failure becomes one line naming the socket, the address and the setting to change.
    """
    concrete = endpoint
    if is_ipv6_endpoint(endpoint):
        sock.setsockopt(zmq.IPV6, 1)
    if bind and endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        concrete = endpoint[:-2] + ":*"
    try:
        if not bind:
            sock.connect(endpoint)
            return endpoint
        sock.bind(concrete)
    except zmq.ZMQError as exc:
        verb = "bind" if bind else "connect"
        raise ConfigError(
            f"cannot {verb} the {role} socket to {endpoint}: {exc.strerror}; choose another "
            f"address with --{role} (or `{role} = ...` in the config file)"
        ) from None
    last = sock.getsockopt(zmq.LAST_ENDPOINT)
    return last.decode() if isinstance(last, bytes) else str(last)
