"""CURVE keys for a service with ``[security]``: it answers only clients whose public key
it allows, over encrypted connections.

``deepdenoise keys NAME`` makes a key pair (``NAME.key`` public, ``NAME.key_secret``
secret); the service's public key is ``service.key``. A refused client gets no reply at
all (ZeroMQ drops the handshake), so a wrong key looks like a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq


@dataclass(frozen=True)
class CurveKeys:
    """This end's key pair and, when it connects, the service's public key."""

    public: bytes
    secret: bytes
    server: bytes | None = None

    @classmethod
    def from_files(
        cls, secret_file: str | Path, server_file: str | Path | None = None
    ) -> CurveKeys:
        """Read ``NAME.key_secret`` (this end) and ``service.key`` (the service's)."""
        from zmq.auth import load_certificate

        public, secret = load_certificate(str(Path(secret_file).expanduser()))
        if secret is None:
            raise ValueError(f"{secret_file} holds no secret key: give the NAME.key_secret file")
        server = None
        if server_file is not None:
            server, _ = load_certificate(str(Path(server_file).expanduser()))
        return cls(public, secret, server)

    def apply(self, sock: zmq.Socket[Any], *, bind: bool) -> None:
        """Set the keys on ``sock`` before it binds (a CURVE server: the service
        connects to it with ``security.input_server_key``) or connects (a client)."""
        sock.curve_publickey, sock.curve_secretkey = self.public, self.secret
        if bind:
            sock.curve_server = True
            return
        if self.server is None:
            raise ValueError(
                "expected the service's public key (service.key) to connect: "
                "CurveKeys.from_files(secret_file, server_file)"
            )
        sock.curve_serverkey = self.server
