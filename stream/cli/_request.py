"""A minimal control-socket client for the CLI (the full client lives in clients/python).

A service with ``[security]`` answers only CURVE clients whose public key it allows:
the CLI is one when ``DEEPDENOISE_CLIENT_KEY`` names the client's secret certificate
(``NAME.key_secret`` from ``deepdenoise keys NAME``) and ``DEEPDENOISE_SERVER_KEY`` the
service's public one (``service.key``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack
import zmq

from .._errors import ConfigError, ProtocolError, ServiceTimeoutError

CLIENT_KEY_ENV, SERVER_KEY_ENV = "DEEPDENOISE_CLIENT_KEY", "DEEPDENOISE_SERVER_KEY"


def request(endpoint: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one control request and return the reply map."""
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        secured = _curve_client(sock)
        sock.connect(endpoint)
        sock.send(msgpack.packb(message, use_bin_type=True))
        if not sock.poll(int(timeout * 1000)):
            hint = (
                "with keys: is its public key in the service's security.clients folder?"
                if secured
                else f"a service with [security] answers only clients with an allowed key: "
                f"set {CLIENT_KEY_ENV} and {SERVER_KEY_ENV}"
            )
            raise ServiceTimeoutError(
                f"no reply from {endpoint} within {timeout} s: "
                f"is `deepdenoise serve` running there? ({hint})"
            )
        reply = msgpack.unpackb(sock.recv(), raw=False)
    if not isinstance(reply, dict):
        raise ProtocolError("control", f"expected a reply map from {endpoint}, got {reply!r:.200}")
    return reply


def _curve_client(sock: zmq.Socket[Any]) -> bool:
    """Make ``sock`` a CURVE client when the key variables are set; True if it is."""
    from zmq.auth import load_certificate

    client, server = os.environ.get(CLIENT_KEY_ENV), os.environ.get(SERVER_KEY_ENV)
    if not client and not server:
        return False
    if not (client and server):
        raise ConfigError(
            f"expected both {CLIENT_KEY_ENV} (this client's NAME.key_secret) and "
            f"{SERVER_KEY_ENV} (the service's service.key), got only one"
        )
    try:
        public, secret = load_certificate(str(Path(client).expanduser()))
        server_public, _ = load_certificate(str(Path(server).expanduser()))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read a CURVE key ({CLIENT_KEY_ENV}/{SERVER_KEY_ENV}): {exc}"
        ) from exc
    if secret is None:
        raise ConfigError(f"{CLIENT_KEY_ENV}={client} holds no secret key: give NAME.key_secret")
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = server_public
    return True
