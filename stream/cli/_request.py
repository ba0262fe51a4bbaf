"""A minimal control-socket client for the CLI (the full client lives in clients/python)."""

from __future__ import annotations

from typing import Any

import msgpack
import zmq

from .._errors import ProtocolError, ServiceTimeoutError


def request(endpoint: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one control request and return the reply map."""
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(msgpack.packb(message, use_bin_type=True))
        if not sock.poll(int(timeout * 1000)):
            raise ServiceTimeoutError(
                f"no reply from {endpoint} within {timeout} s: "
                "is `deepdenoise serve` running there?"
            )
        reply = msgpack.unpackb(sock.recv(), raw=False)
    if not isinstance(reply, dict):
        raise ProtocolError("control", f"expected a reply map from {endpoint}, got {reply!r:.200}")
    return reply
