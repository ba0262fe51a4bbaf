"""Errors of the client; each also derives from the builtin a caller would catch."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Root of every error raised by deepdenoise_client."""


class ProtocolError(ClientError, ValueError):
    """A message, or a value about to be sent, violates wire protocol v1.

    Attributes
    ----------
    reason
        The stable reason code of ``PROTOCOL.md`` (``"dtype"``, ``"shape"``, ...), the
        same code the service counts in ``status.rejected``, so a client-side refusal
        and a service-side rejection of the same mistake read alike.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ControlError(ClientError, RuntimeError):
    """The service answered a control request with ``{"ok": false, "error": ...}``.

    Attributes
    ----------
    reply
        The whole reply map, for services that add detail beside ``error``.
    """

    def __init__(self, message: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reply = reply if reply is not None else {}


class ClientTimeoutError(ClientError, TimeoutError):
    """Nothing arrived (or nothing could be sent) within the timeout."""
