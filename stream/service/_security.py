"""CURVE encryption and client allow-lists for the service's sockets.

ZeroMQ's CURVE gives each socket end a key pair (``deepdenoise keys`` makes them, as
ZeroMQ certificate files). With ``[security]`` configured, every socket the service
binds is a CURVE server holding the service's secret key, and a ZAP authenticator lets
in only clients whose public key is in the ``clients`` folder. Letting in any client
with a key (encrypted, not authenticated) must be asked for: ``allow_any_client``. An
input socket that connects to the acquisition is a CURVE client of the acquisition's
server key. Without ``[security]`` nothing changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import zmq
from pydantic import BaseModel, ConfigDict, Field

from .._errors import ConfigError
from ._handshakes import HandshakeWatch
from ._tally import Tally

log = logging.getLogger(__name__)


class SecurityConfig(BaseModel):
    """The ``[security]`` table: the service's key and who may talk to it."""

    model_config = ConfigDict(extra="forbid")

    secret_key: Path = Field(description="the service's secret certificate (NAME.key_secret)")
    clients: Path | None = Field(
        None, description="folder of allowed clients' public certificates (*.key)"
    )
    allow_any_client: bool = Field(
        False, description="without clients: let in any client with a key (not authenticated)"
    )
    input_server_key: Path | None = Field(
        None, description="connecting input: the acquisition's public certificate"
    )


def load_key_file(file: str | Path, secret: bool) -> tuple[bytes, bytes | None]:
    """The keys of a certificate file (``NAME.key``, or ``NAME.key_secret`` when
    ``secret``), checked, in the words every client uses; ConfigError names the file."""
    import struct

    from zmq.auth import load_certificate
    from zmq.utils.z85 import Z85CHARS, decode

    path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(f"cannot read the CURVE key file {file}: no such file")
    try:
        keys = load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CURVE key file {file}: {exc}") from exc
    for name, key in zip(("public-key", "secret-key"), keys, strict=True):
        expected = f"{file}: expected the {name} as 40 Z85 characters, got"
        if key is None:
            continue
        if len(key) != 40:
            raise ConfigError(f"{expected} {len(key)} characters")
        if any(c not in Z85CHARS for c in key):
            raise ConfigError(f"{expected} a character outside Z85")
        try:
            decode(key)
        except struct.error as exc:  # a group of 5 above 2**32 - 1
            raise ConfigError(f"{file}: the {name} is not a valid Z85 key") from exc
    if secret and keys[1] is None:
        raise ConfigError(
            f"{file} holds no secret key: give the NAME.key_secret file, not the public NAME.key"
        )
    return keys


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    """The service's own keys; a secret readable by others is warned about."""
    public, private = load_key_file(path, secret)
    if secret and path.stat().st_mode & 0o077:
        log.warning(
            "the secret key %s is readable by other users (mode %o): chmod 600 it",
            path,
            path.stat().st_mode & 0o777,
        )
    return public, private


def _check_allow_list(folder: Path) -> None:
    """Every ``*.key`` in the allow-list must load, and there must be one: ZeroMQ's
    authenticator drops the whole folder on one bad file, so that no client gets in
    while the service runs as if all were well."""
    if not folder.is_dir():
        raise ConfigError(f"security.clients must be a folder of *.key files: {folder}")
    keys = sorted(folder.glob("*.key"))
    if not keys:
        raise ConfigError(
            f"security.clients: {folder} holds no *.key file, so no client could connect; "
            "copy the allowed clients' public keys (NAME.key) there"
        )
    for key in keys:
        _load(key, secret=False)


#: A refused client is told at most once this often in the log (with the count since).
DENIED_EVERY_S = 10.0


class DeniedLog(logging.LoggerAdapter[logging.Logger]):
    """zmq.auth's log, its ``DENIED`` lines (a client whose key is not allowed) raised to
    warnings, at most one per :data:`DENIED_EVERY_S`: CURVE tells a refused client
    nothing, so the service's log is where an operator finds why it gets no reply (at
    zmq.auth's debug level, among every codec's registration, it was lost)."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("zmq.auth"), {})
        # counted on the authenticator's thread, told from there and from the watch's
        self._refused: Tally[str] = Tally(DENIED_EVERY_S)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        if not text.startswith("DENIED (CURVE"):  # one line per refused CURVE handshake
            self.logger.debug(msg, *args, **kwargs)
            return
        self._refused.count("refused", text)
        self.tell_due()

    def tell_due(self) -> None:
        """Log the refusals not yet told, if one line is due (also from the handshake
        watch's thread, so that a burst's count is told without waiting for the next)."""
        for _, refused, last in self._refused.due():
            log.warning(
                "a client was refused (%s); %d refused since the last such line: its key "
                "is not among the allowed clients' (security.clients)",
                last,
                refused,
            )


class CurveGuard:
    """The authenticator thread and the key options for each socket; close() stops it."""

    def __init__(self, ctx: zmq.Context[Any], config: SecurityConfig) -> None:
        from zmq.auth import CURVE_ALLOW_ANY
        from zmq.auth.thread import ThreadAuthenticator

        self._public, secret = _load(config.secret_key, secret=True)
        assert secret is not None
        self._secret = secret
        self._server_key = (
            _load(config.input_server_key, secret=False)[0] if config.input_server_key else None
        )
        if config.clients is not None:
            _check_allow_list(config.clients)
        elif not config.allow_any_client:
            raise ConfigError(
                "security.clients: expected the folder of the allowed clients' public keys "
                "(deepdenoise keys NAME --dir FOLDER); to let in any client that has a key, "
                "encrypted but not authenticated, set security.allow_any_client = true"
            )
        denied = DeniedLog()
        self._auth = ThreadAuthenticator(ctx, log=denied)
        self._auth.start()
        self._handshakes = HandshakeWatch(ctx, ticks=(denied.tell_due,))
        where = str(config.clients) if config.clients is not None else CURVE_ALLOW_ANY
        self._auth.configure_curve(domain="*", location=where)
        if config.clients is None:
            log.warning("CURVE on; any client with a key is let in (allow_any_client)")
        else:
            log.info("CURVE on; clients allowed: the keys in %s", where)

    def server(self, sock: zmq.Socket[Any], role: str) -> None:
        """Make a socket that binds a CURVE server; its failed handshakes are logged."""
        sock.curve_secretkey = self._secret
        sock.curve_publickey = self._public
        sock.curve_server = True
        self._handshakes.watch(sock, role)

    def watch_handshakes(self) -> None:
        """Start logging failed handshakes, once every socket is made."""
        self._handshakes.start()

    def client(self, sock: zmq.Socket[Any]) -> None:
        """Make a socket that connects a CURVE client of the acquisition."""
        if self._server_key is None:
            raise ConfigError(
                "the input connects to the acquisition: set security.input_server_key to "
                "its public certificate (or bind the input with --input-bind)"
            )
        sock.curve_secretkey = self._secret
        sock.curve_publickey = self._public
        sock.curve_serverkey = self._server_key

    def close(self) -> None:
        self._handshakes.close()
        self._auth.stop()
