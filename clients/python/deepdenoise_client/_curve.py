"""CURVE keys for a service with ``[security]``: it answers only clients whose public key
it allows, over encrypted connections.

``deepdenoise keys NAME`` makes a key pair (``NAME.key`` public, ``NAME.key_secret``
secret); the service's public key is ``service.key``. A refused client gets no reply at
all (ZeroMQ drops the handshake), so a wrong key looks like a timeout.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

Z85_CHARS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

#: Added to a timeout's message with keys: a refused key's handshake is dropped unsaid.
CURVE_HINT = " Is this client's public key in the service's security.clients folder?"
#: The same for an end that binds: the service is a CURVE client of its key.
CURVE_SERVER_HINT = " Is this end's public key the service's security.input_server_key?"


@dataclass(frozen=True)
class CurveKeys:
    """This end's key pair and, when it connects, the service's public key."""

    public: bytes
    secret: bytes = field(repr=False)  # kept out of logs and tracebacks
    server: bytes | None = None

    @classmethod
    def from_files(
        cls, secret_file: str | Path, server_file: str | Path | None = None
    ) -> CurveKeys:
        """Read ``NAME.key_secret`` (this end) and ``service.key`` (the service's).

        A leading ``~`` is the home folder. A file that cannot be read, holds no key or
        one that is not 40 Z85 characters of a key raises ValueError naming it. A secret
        file other users may read is loaded with a warning (``chmod 600`` it).
        """
        public, secret = _read(secret_file)
        if secret is None:
            raise ValueError(
                f"{secret_file} holds no secret key: give the NAME.key_secret file, "
                "not the public NAME.key"
            )
        if os.name == "posix" and Path(secret_file).expanduser().stat().st_mode & 0o077:
            # said, not refused, as the service says of its own secret key
            warnings.warn(
                f"the secret key file {secret_file} is readable by other users: chmod 600 it",
                stacklevel=2,
            )
        server = None if server_file is None else _read(server_file)[0]
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


def _read(file: str | Path) -> tuple[bytes, bytes | None]:
    """The public and (None in a public file) secret key of a ZPL certificate."""
    try:
        text = Path(file).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the CURVE key file {file}: {exc.strerror or exc}") from exc
    keys: dict[bytes, bytes] = {}
    for name, value in re.findall(rb"(?m)^[ \t]*(public|secret)-key[ \t]*=(.*)$", text):
        # unquoted, the value runs to the end of the line: '#' is a Z85 character
        keys.setdefault(name, value.strip(b" \t\r").strip(b"\"'"))
    if b"public" not in keys:
        raise ValueError(
            f"{file} holds no public-key: expected a CURVE certificate made by "
            "`deepdenoise keys NAME`"
        )
    secret = keys.get(b"secret")
    _check(keys[b"public"], "public-key", file)
    if secret is not None:
        _check(secret, "secret-key", file)
    return keys[b"public"], secret


def _check(key: bytes, name: str, file: str | Path) -> None:
    """40 Z85 characters that decode to a key, else ValueError naming ``file``."""
    expected = f"{file}: expected the {name} as 40 Z85 characters, got"
    if len(key) != 40:
        raise ValueError(f"{expected} {len(key)} characters")
    if any(c not in Z85_CHARS for c in key):
        raise ValueError(f"{expected} a character outside Z85")
    # each group of 5 is a base-85 number that must fit 32 bits (40 '#' do not): said
    # here, not by libzmq at connect as a bare "Invalid argument"
    for group in range(0, 40, 5):
        value = 0
        for c in key[group : group + 5]:
            value = value * 85 + Z85_CHARS.index(c)
        if value > 0xFFFFFFFF:
            raise ValueError(f"{file}: the {name} is not a valid Z85 key")
