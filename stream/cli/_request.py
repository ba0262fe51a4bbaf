"""A minimal control-socket client for the CLI (the full client lives in clients/python).

A service with ``[security]`` answers only CURVE clients whose public key it allows:
the CLI is one when ``DEEPDENOISE_CLIENT_KEY`` names the client's secret certificate
(``NAME.key_secret`` from ``deepdenoise keys NAME``) and ``DEEPDENOISE_SERVER_KEY`` the
service's public one (``service.key``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from .._errors import ConfigError, ProtocolError, ServiceTimeoutError
from .._types import check_endpoint, is_ipv6_endpoint
from ._common import err_console

CLIENT_KEY_ENV, SERVER_KEY_ENV = "DEEPDENOISE_CLIENT_KEY", "DEEPDENOISE_SERVER_KEY"


#: Seconds a request waits for its connection to be taken before it says that nothing
#: is there: a load-model waits up to 2 minutes for its reply (a warm-up), which a
#: service that is not running made it wait out in full (a new user's trial).
CONNECT_WAIT_S = 5.0


def request(endpoint: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one control request and return the reply map; ConfigError for an endpoint
    it cannot connect to (``127.0.0.1:5557``, without ``tcp://``: a traceback before)."""
    try:
        check_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError(f"cannot connect to {endpoint}: {exc}") from None
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        secured = _curve_client(sock)
        monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED)
        try:
            if is_ipv6_endpoint(endpoint):
                sock.setsockopt(zmq.IPV6, 1)
            try:
                sock.connect(endpoint)
            except zmq.ZMQError as exc:  # an ipc path too long, a host that is no address
                raise ConfigError(f"cannot connect to {endpoint}: {exc}") from None
            sock.send(msgpack.packb(message, use_bin_type=True))
            _wait_for_reply(sock, monitor, endpoint, timeout, secured)
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)
        reply = msgpack.unpackb(sock.recv(), raw=False)
    if not isinstance(reply, dict):
        raise ProtocolError("control", f"expected a reply map from {endpoint}, got {reply!r:.200}")
    return reply


def _wait_for_reply(
    sock: zmq.Socket[Any], monitor: zmq.Socket[Any], endpoint: str, timeout: float, secured: bool
) -> None:
    """Return once a reply waits on ``sock``; raise ServiceTimeoutError when none came
    within ``timeout``, or sooner when no connection was taken within CONNECT_WAIT_S."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    start = time.monotonic()
    connected = False
    while True:
        limit = timeout if connected else min(timeout, CONNECT_WAIT_S)
        waited = time.monotonic() - start
        if waited >= limit:
            break
        events = dict(poller.poll(max(1, int((limit - waited) * 1000))))
        if sock in events:
            return
        if monitor in events:
            monitor.recv_multipart()  # the only event asked for: connected
            connected = True
    if not connected:
        raise ServiceTimeoutError(
            f"no service at {endpoint}: nothing took the connection within {limit:g} s; "
            "is `deepdenoise serve` running there (its --control endpoint)?"
        )
    hint = (
        " Is this client's public key in the service's security.clients folder?"
        if secured
        else f" (A service with [security] answers only clients with an allowed key: "
        f"set {CLIENT_KEY_ENV} and {SERVER_KEY_ENV}.)"
    )
    raise ServiceTimeoutError(
        f"no reply from {endpoint} within {timeout} s: is `deepdenoise serve` running there?{hint}"
    )


def _curve_client(sock: zmq.Socket[Any]) -> bool:
    """Make ``sock`` a CURVE client when the key variables are set; True if it is."""
    client, server = os.environ.get(CLIENT_KEY_ENV), os.environ.get(SERVER_KEY_ENV)
    if not client and not server:
        return False
    if not (client and server):
        missing = SERVER_KEY_ENV if client else CLIENT_KEY_ENV
        raise ConfigError(
            f"{missing} is not set: expected both {CLIENT_KEY_ENV} (this client's "
            f"NAME.key_secret) and {SERVER_KEY_ENV} (the service's service.key), or neither"
        )
    from ..service import load_key_file

    public, secret = load_key_file(client, secret=True)
    if os.name == "posix" and Path(client).expanduser().stat().st_mode & 0o077:
        err_console.print(  # as the clients and the service say of theirs
            f"warning: the secret key file {client} is readable by other users: chmod 600 it",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = load_key_file(server, secret=False)[0]
    return True
