"""One error hierarchy for the package.

Every error derives from :class:`DeepDenoiseError` and from the builtin a caller
would naturally catch (``ValueError``, ``TimeoutError``, ``OSError``), so code that
knows nothing about deepdenoise still handles them sensibly.
"""

from __future__ import annotations

import reprlib
from typing import Any


class _Shown(reprlib.Repr):
    """Values as msgpack names them where Python's names mean nothing to the sender: a
    C, JavaScript or MATLAB client reads "nil", "true" and "bin", not "None", "True"
    and b'\\x86...' (a client trial)."""

    def repr_NoneType(self, value: None, level: int) -> str:  # reprlib's name for it
        return "nil"

    def repr_bool(self, value: bool, level: int) -> str:
        return "true" if value else "false"

    def repr_bytes(self, value: bytes, level: int) -> str:
        return f"bin of {len(value)} byte{'' if len(value) == 1 else 's'}"


#: What came, as an error message shows it: a header field may be a 64 KiB string or a
#: list nested a thousand deep, whose plain repr is unreadable or exceeds Python's
#: recursion limit (a RecursionError that once took the receiver down).
_SHOWN = _Shown()
_SHOWN.maxlevel = 3
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = 8

#: msgpack's names of the types a decoded header holds.
_WIRE_TYPES = {
    type(None): "nil", bool: "bool", int: "int", float: "float", str: "str",
    bytes: "bin", list: "array", tuple: "array", dict: "map",
}  # fmt: skip


def shown(value: object) -> str:
    """``repr(value)``, cut to a readable size however large or deeply nested it is,
    with msgpack's words for nil, booleans and bin."""
    return _SHOWN.repr(value)


def wire_type(value: object) -> str:
    """The msgpack type of a decoded value ("nil", "map", "bin", ...)."""
    return _WIRE_TYPES.get(type(value), type(value).__name__)


class DeepDenoiseError(Exception):
    """Root of every error raised by deepdenoise."""


class ConfigError(DeepDenoiseError, ValueError):
    """A configuration value is invalid or inconsistent."""


class ModelError(DeepDenoiseError, ValueError):
    """An ONNX model cannot be used: unreadable, wrong signature or bad metadata."""


class ProviderUnavailableError(ModelError):
    """The requested ONNX Runtime execution provider is not available here."""


class ProtocolError(DeepDenoiseError, ValueError):
    """A wire message violates protocol v1.

    Attributes
    ----------
    reason
        Stable machine-readable reason code (counted in ``status.rejected``).
    where
        What the message said of itself before the fault: ``series`` and ``index``,
        once each was read and valid (the ``rejected`` event names them).
    """

    def __init__(self, reason: str, message: str, where: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.where = where or {}


class StoreError(DeepDenoiseError, OSError):
    """A Zarr series store cannot be opened, resumed or written."""


class StoreHeldError(StoreError):
    """A store another live process (or another open store) is writing."""


class StoreUnlockableError(StoreError):
    """A store that cannot be locked here (no ``flock``), opened only if locked."""


class StoreWriteError(StoreError):
    """Frames did not reach the disk (a full disk, an IO error).

    Attributes
    ----------
    lost
        Frames lost by kind: ``{"raw": n, "clean": m}``; each is a hole in the store.
    kind
        What failed: ``store_write`` (pixels), ``store_flags`` (their validity flags),
        ``store_removed`` (the store was removed or moved while written; made again).
    """

    def __init__(self, message: str, lost: dict[str, int], kind: str) -> None:
        super().__init__(message)
        self.lost = lost
        self.kind = kind


class RoiError(DeepDenoiseError, ValueError):
    """ROIs cannot be used: an unreadable file, a wrong shape or dtype, no ROI at all."""


class SeriesNotOpenError(DeepDenoiseError, ValueError):
    """A request names a series that is not open (never seen, or ended)."""


class ServiceTimeoutError(DeepDenoiseError, TimeoutError):
    """A service operation did not complete in time."""
