"""Wire protocol v1 as pure functions: encode and decode messages, no sockets.

Written from ``clients/PROTOCOL.md`` alone, independently of the service's own
codec, so that the golden vectors test two implementations of one spec rather than
one implementation against itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

import msgpack
import numpy as np

from ._errors import ProtocolError

#: C0, DEL and C1: the characters PROTOCOL.md refuses in free text (set_rois' source).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

PROTOCOL_VERSION = 1

#: Pixel types a frame may have, as numpy type strings with their byte order.
DTYPES = ("|u1", "<u2", "<i2", "<f4")

#: Canonical key order of every header; keys not listed follow in the given order.
CANONICAL_KEYS = (
    "v", "kind", "series", "index", "dtype", "shape", "t_ns", "meta", "resend",
    "model", "t_recv_ns", "t_done_ns",
)  # fmt: skip

KINDS = ("frame", "start", "end")

TOPIC_FRAME = b"frame"
TOPIC_DENOISED = b"denoised"
#: Received frames as they came, when the service runs with ``publish_raw``.
TOPIC_RAW = b"raw"
TOPIC_STATUS = b"status"
TOPIC_EVENT = b"event"
TOPIC_TRACES = b"traces"
TOPIC_TRIGGER = b"trigger"
#: Label image dtypes ``set_rois`` accepts.
LABEL_DTYPES = ("|u1", "<u2", "<i2", "<u4", "<i4", "<i8")

_SERIES = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,64}")
_MAX_INDEX = 2**40 - 1
_MAX_T_NS = 2**63 - 1

#: A message part: bytes, bytearray, memoryview or ``zmq.Frame`` (any buffer).
Part = Any


@dataclass(frozen=True)
class Limits:
    """The receiving service's limits; these defaults are the reference service's.

    A client checks them before sending so that a frame the service would reject
    fails loudly at the call site instead of being counted in ``status.rejected``.
    """

    max_header_bytes: int = 64 * 1024
    max_meta_bytes: int = 8 * 1024
    max_side: int = 16384
    max_payload_bytes: int = 256 * 1024 * 1024

    @property
    def max_output_header_bytes(self) -> int:
        """Largest output header: a ``traces`` header lists every ROI's label."""
        return OUTPUT_HEADER_FACTOR * self.max_header_bytes

    @property
    def max_output_payload_bytes(self) -> int:
        """Largest output payload: the float32 output of the largest ``|u1`` frame."""
        return OUTPUT_PAYLOAD_FACTOR * self.max_payload_bytes


#: The service's output is bounded by the input limits times these (PROTOCOL.md, 7).
OUTPUT_HEADER_FACTOR = 16
OUTPUT_PAYLOAD_FACTOR = 4

DEFAULT_LIMITS = Limits()


class Message(NamedTuple):
    """One decoded message.

    ``array`` is ``None`` for header-only messages (``start``, ``end``, ``status``,
    ``event``); otherwise a read-only, zero-copy view of the received payload.
    """

    topic: bytes
    header: dict[str, Any]
    array: np.ndarray | None


# --------------------------------------------------------------------------- encode


def canonical(header: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``header`` with its keys in the canonical order of the spec."""
    ordered = {key: header[key] for key in CANONICAL_KEYS if key in header}
    for key, value in header.items():
        if key not in ordered:
            ordered[key] = value
    return ordered


def _default(obj: Any) -> Any:
    # numpy scalars in meta (a frame's exposure read from a numpy array, say) are
    # written as the plain msgpack int/float/bool they stand for.
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__} in a msgpack header")


def encode_header(header: Mapping[str, Any]) -> bytes:
    """Encode a header map canonically: keys in canonical order, str as msgpack str,
    integers in their smallest encoding, floats as float64."""
    _check_keys(header, "header")
    try:
        return msgpack.packb(canonical(header), use_bin_type=True, default=_default)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("header_decode", f"header cannot be encoded: {exc}") from exc


def encode_message(
    topic: bytes | str, header: Mapping[str, Any], payload: np.ndarray | Part | None = None
) -> list[bytes | memoryview]:
    """Encode any message as its parts ``[topic, header]`` or ``[topic, header, payload]``.

    No protocol checks beyond encodability: use :func:`encode_frame` to build frames.
    An array payload is sent as its C-order bytes without copying when it is already
    C-contiguous.
    """
    parts: list[bytes | memoryview] = [_topic(topic), encode_header(header)]
    if payload is not None:
        parts.append(_payload_view(payload))
    return parts


def encode_request(cmd: str, **arguments: Any) -> bytes:
    """A control request: the msgpack map ``{"cmd": cmd, **arguments}`` in that order."""
    return bytes(msgpack.packb({"cmd": cmd, **arguments}, use_bin_type=True))


def encode_set_rois(
    labels: Any, series: str | None = None, fit: bool = False, source: str | None = None
) -> bytes:
    """The ``set_rois`` request: ``labels`` an integer (H, W) label image (a single
    plane, 1 x H x W, is taken as it), or None.

    ``fit``: the image covers the ROIs' extent from the frame's top-left corner, not the
    whole frame (suite2p ROIs with no ``ops.npy``): any frame that holds it fits.
    ``source``: where the labels came from (a file path, say), which the service keeps
    as the ROIs' source in ``status`` and in the stored traces.
    Keys in the spec's order: ``cmd``, ``series`` (when given), ``dtype``, ``shape``,
    ``labels`` (bin, C order), ``fit`` (when true), ``source`` (when given).
    """
    arguments: dict[str, Any] = {} if series is None else {"series": check_series(series)}
    if source is not None and not (
        isinstance(source, str) and 1 <= len(source) <= 1024 and not _CONTROL.search(source)
    ):  # as the service checks it: refused here, before anything is sent
        raise ValueError(
            "expected source as 1 to 1024 characters, none a control character "
            f"(U+0000-U+001F, U+007F-U+009F), got {source!r:.80}"
        )
    fitted = {"fit": True} if fit else {}
    named = {} if source is None else {"source": source}
    if labels is None:
        return encode_request("set_rois", **arguments, labels=None, **fitted, **named)
    image = np.asarray(labels)
    if image.ndim == 3 and image.shape[0] == 1:  # one plane, as a 1 x H x W TIFF reads
        image = image[0]
    if image.ndim != 2 or image.dtype.kind not in "iu":
        raise ValueError(
            "expected an integer (H, W) label image (or one plane, 1 x H x W), got "
            f"{image.dtype} of shape {image.shape}"
        )
    if image.dtype == np.uint64 and image.size and image.max() >= 2**63:
        # as <i8 it would wrap to a negative label, which the service would name instead
        raise ValueError(f"expected labels below 2**63 (sent as <i8), got {int(image.max())}")
    if image.dtype.kind == "u" and image.dtype.itemsize <= 4:
        dtype = {1: "|u1", 2: "<u2", 4: "<u4"}[image.dtype.itemsize]
    else:
        dtype = {2: "<i2", 4: "<i4"}.get(image.dtype.itemsize, "<i8")
    data = np.ascontiguousarray(image, dtype=np.dtype(dtype))
    return encode_request(
        "set_rois", **arguments, dtype=dtype, shape=list(data.shape), labels=data.tobytes(),
        **fitted, **named,
    )  # fmt: skip


def encode_frame(
    array: np.ndarray,
    series: str,
    index: int,
    *,
    t_ns: int | None = None,
    meta: Mapping[str, Any] | None = None,
    resend: bool = False,
    topic: bytes | str = TOPIC_FRAME,
    limits: Limits = DEFAULT_LIMITS,
) -> list[bytes | memoryview]:
    """Validate and encode one input frame as ``[topic, header, payload]``.

    ``resend``: this index was sent before and should overwrite it (without it the
    service rejects a second frame of an index as ``duplicate``).

    Raises :class:`ProtocolError` (a ``ValueError``) with the reason code the service
    would reject the frame with, and a message saying what was expected.
    """
    array = np.asarray(array)
    header: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "kind": "frame",
        "series": check_series(series),
        "index": _check_index(index),
        "dtype": _check_array_dtype(array),
        "shape": _check_array_shape(array, limits),
    }
    if t_ns is not None:
        header["t_ns"] = _check_t_ns(t_ns)
    if meta is not None:
        header["meta"] = _check_meta_to_send(meta, limits)
    if resend:
        header["resend"] = True
    nbytes = array.size * array.itemsize
    if nbytes > limits.max_payload_bytes:
        raise ProtocolError(
            "payload_size",
            f"frame of {nbytes} bytes exceeds the payload limit {limits.max_payload_bytes}",
        )
    parts = encode_message(topic, header, array)
    _check_header_size(len(parts[1]), limits.max_header_bytes)
    return parts


def encode_start(
    series: str, *, t_ns: int | None = None, topic: bytes | str = TOPIC_FRAME
) -> list[bytes | memoryview]:
    """Encode the ``start`` message of a series (header only)."""
    return _encode_mark("start", series, t_ns, topic)


def encode_end(
    series: str, *, t_ns: int | None = None, topic: bytes | str = TOPIC_FRAME
) -> list[bytes | memoryview]:
    """Encode the ``end`` message of a series (header only)."""
    return _encode_mark("end", series, t_ns, topic)


def _encode_mark(
    kind: str, series: str, t_ns: int | None, topic: bytes | str
) -> list[bytes | memoryview]:
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "kind": kind, "series": check_series(series)}
    if t_ns is not None:
        header["t_ns"] = _check_t_ns(t_ns)
    return encode_message(topic, header)


def _topic(topic: bytes | str) -> bytes:
    return topic.encode() if isinstance(topic, str) else bytes(topic)


def _payload_view(payload: np.ndarray | Part) -> memoryview:
    if isinstance(payload, np.ndarray):
        flat = np.ascontiguousarray(payload).reshape(-1)
        return flat.view(np.uint8).data
    view = _view(payload)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _view(part: Part) -> memoryview:
    # A zmq.Frame exposes its bytes as .buffer; everything else is a buffer itself.
    inner: Any = getattr(part, "buffer", part)
    return memoryview(inner)


# ------------------------------------------------------------------ client-side checks


def check_series(series: str) -> str:
    """Return ``series`` if it is a valid series id, else raise ``ProtocolError``."""
    if not isinstance(series, str) or not _SERIES.fullmatch(series):
        raise ProtocolError(
            "series",
            f"expected a series id of 1-64 characters from [A-Za-z0-9._-], not starting with "
            f"'.', got {series!r}",
        )
    return series


def check_endpoint(endpoint: str) -> str:
    """Return ``endpoint``, or raise ValueError for a tcp one whose port libzmq would not
    take as written (it reads tcp://127.0.0.1:99999 as port 34463, 99999 mod 65536)."""
    scheme, sep, address = str(endpoint).partition("://")
    if not sep:
        raise ValueError(
            f"expected an endpoint like tcp://127.0.0.1:5555 (a transport, ://), got {endpoint!r}"
        )
    if scheme == "tcp":
        host, colon, port = address.rpartition(":")
        digits = port.isascii() and port.isdigit() and len(port) <= 5
        if not (colon and host) or not (port == "*" or (digits and int(port) <= 65535)):
            raise ValueError(
                f"expected a TCP endpoint tcp://host:port with a port of 0-65535 (or *), "
                f"got {endpoint!r}"
            )
    return endpoint


def is_ipv6_endpoint(endpoint: str) -> bool:
    """Whether a tcp endpoint names an IPv6 address, in brackets (``tcp://[::1]:5555``):
    a ZeroMQ socket takes one only with its IPV6 option set."""
    scheme, _, address = str(endpoint).partition("://")
    return scheme == "tcp" and "[" in address


def _check_index(index: Any) -> int:
    if isinstance(index, np.integer):
        index = int(index)
    if not (_is_int(index) and 0 <= index <= _MAX_INDEX):
        raise ProtocolError("index", f"expected index as an integer 0..2**40-1, got {index!r}")
    return int(index)


def _check_t_ns(t_ns: Any) -> int:
    if isinstance(t_ns, np.integer):
        t_ns = int(t_ns)
    if not (_is_int(t_ns) and 0 <= t_ns <= _MAX_T_NS):
        raise ProtocolError(
            "t_ns", f"expected t_ns as an integer of Unix nanoseconds >= 0, got {t_ns!r}"
        )
    return int(t_ns)


def _check_array_dtype(array: np.ndarray) -> str:
    dtype = array.dtype.str
    if dtype not in DTYPES:
        hint = ""
        if array.dtype.byteorder == ">":
            hint = f"; convert with array.astype('{dtype.replace('>', '<')}')"
        elif array.dtype.kind == "f":
            hint = "; convert with array.astype('<f4')"
        raise ProtocolError(
            "dtype",
            f"expected a frame of dtype uint8, <u2, <i2 or <f4 ({', '.join(DTYPES)}), "
            f"got {array.dtype} ({dtype}){hint}",
        )
    return dtype


def _check_array_shape(array: np.ndarray, limits: Limits) -> list[int]:
    if array.ndim != 2 or not all(1 <= s <= limits.max_side for s in array.shape):
        hint = "; squeeze the extra axes" if array.ndim > 2 and array.squeeze().ndim == 2 else ""
        raise ProtocolError(
            "shape",
            f"expected a 2-D frame (height, width), each 1..{limits.max_side}, "
            f"got shape {array.shape}{hint}",
        )
    return [int(array.shape[0]), int(array.shape[1])]


def _check_meta_to_send(meta: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    if not isinstance(meta, Mapping):
        raise ProtocolError("meta", f"expected meta as a mapping, got {type(meta).__name__}")
    meta = dict(meta)
    _check_keys(meta, "meta")  # header_decode, as the service rejects such a header
    try:
        size = len(msgpack.packb(meta, use_bin_type=True, default=_default))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("meta", f"meta cannot be encoded as msgpack: {exc}") from exc
    if size > limits.max_meta_bytes:
        raise ProtocolError("meta", f"meta is {size} bytes encoded, limit {limits.max_meta_bytes}")
    levels = 1 + _nesting_levels(meta)  # the header's own map is the first
    if levels > MAX_HEADER_LEVELS:
        raise ProtocolError(
            "header_decode",
            f"expected a header nested at most {MAX_HEADER_LEVELS} levels deep, meta makes it "
            f"{levels}",
        )
    return meta


def _check_keys(obj: Any, where: str) -> None:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ProtocolError("header_decode", f"{where}: map keys must be str, got {key!r}")
            _check_keys(value, f"{where}.{key}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_keys(value, f"{where}[{i}]")


def _check_header_size(size: int, limit: int) -> None:
    if size > limit:
        raise ProtocolError("header_size", f"header is {size} bytes, limit {limit}")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- decode


#: Levels of maps and arrays a header may nest, its own map the first (PROTOCOL.md).
MAX_HEADER_LEVELS = 16


def _pairs_hook(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    for key, _ in pairs:
        if type(key) is not str:
            raise ValueError(f"map key {key!r} is not a msgpack str")
    return dict(pairs)


def decode_header(buf: Part) -> dict[str, Any]:
    """Decode one header part: exactly one msgpack map, str keys at every depth,
    valid UTF-8 in every str; raises ``ProtocolError("header_decode")`` otherwise."""
    try:
        header = msgpack.unpackb(
            _view(buf),
            raw=False,
            strict_map_key=False,
            object_pairs_hook=_pairs_hook,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ProtocolError("header_decode", f"header is not a valid msgpack map: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(
            "header_decode", f"expected the header as a msgpack map, got {type(header).__name__}"
        )
    levels = _nesting_levels(header)
    if levels > MAX_HEADER_LEVELS:
        raise ProtocolError(
            "header_decode",
            f"expected a header nested at most {MAX_HEADER_LEVELS} levels deep, got {levels}",
        )
    return header


def _nesting_levels(value: object) -> int:
    """Levels of maps and arrays in ``value`` (a scalar: 0), one layer at a time (no
    recursion, so a list nested thousands deep is measured too)."""
    levels, layer = 0, [value]
    while True:
        containers = [item for item in layer if isinstance(item, dict | list)]
        if not containers:
            return levels
        levels += 1
        layer = [
            child
            for item in containers
            for child in (item.values() if isinstance(item, dict) else item)
        ]


def decode_message(
    parts: Sequence[Part], *, strict: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Message:
    """Decode one message (a list of parts as received from ZeroMQ).

    With ``strict=False`` (for the service's output: ``denoised``, ``status``,
    ``event``) the checks are those needed to read it safely: part count, header size
    and decoding, ``v``, and for a message with a payload its ``dtype``, ``shape`` and
    length, against the output bounds (``Limits.max_output_header_bytes`` and
    ``max_output_payload_bytes``). With ``strict=True`` every rule for *input*
    messages is applied, in the order of the spec, so the reason code is the one the
    service would report.

    The array is a read-only view of the payload part: it keeps that buffer (a
    ``zmq.Frame`` included) alive and copies nothing.
    """
    if len(parts) not in (2, 3):
        raise ProtocolError("parts", f"expected 2 or 3 message parts, got {len(parts)}")
    topic = bytes(_view(parts[0]))
    header_view = _view(parts[1])
    _check_header_size(
        header_view.nbytes,
        limits.max_header_bytes if strict else limits.max_output_header_bytes,
    )
    header = decode_header(header_view)
    version = header.get("v")
    if not (_is_int(version) and version == PROTOCOL_VERSION):
        got = f"v={version!r}" if "v" in header else "no v key"
        raise ProtocolError("version", f"expected protocol version v=1, got {got}")
    has_payload = len(parts) == 3

    if strict:
        kind = header.get("kind", "frame")
        if not isinstance(kind, str) or kind not in KINDS:
            raise ProtocolError("kind", f"expected kind 'frame', 'start' or 'end', got {kind!r}")
        series = header.get("series")
        if not isinstance(series, str) or not _SERIES.fullmatch(series):
            raise ProtocolError(
                "series",
                f"expected series of 1-64 characters from [A-Za-z0-9._-], not starting with '.', "
                f"got {series!r}",
            )
        t_ns = header.get("t_ns")
        if t_ns is not None and not (_is_int(t_ns) and 0 <= t_ns <= _MAX_T_NS):
            raise ProtocolError("t_ns", f"expected t_ns as an integer 0..2**63-1, got {t_ns!r}")
        if "meta" in header:
            _check_received_meta(header["meta"], limits)
        if not isinstance(header.get("resend", False), bool):
            raise ProtocolError("resend", f"expected resend as a bool, got {header['resend']!r}")
        if kind != "frame":
            if has_payload:
                raise ProtocolError("payload_unexpected", f"a '{kind}' message has no payload")
            return Message(topic, header, None)
        if not has_payload:
            raise ProtocolError("parts", "a frame needs 3 parts [topic, header, payload], got 2")
        index = header.get("index")
        if not (_is_int(index) and 0 <= index <= _MAX_INDEX):
            raise ProtocolError("index", f"expected index as an integer 0..2**40-1, got {index!r}")

    if not has_payload:
        return Message(topic, header, None)
    return Message(topic, header, _decode_payload(header, parts[2], limits, strict))


def _check_received_meta(meta: Any, limits: Limits) -> None:
    if not isinstance(meta, dict):
        raise ProtocolError("meta", f"expected meta as a map, got {type(meta).__name__}")
    # The size is that of meta in canonical encoding: equal to its span on the wire
    # whenever the sender encoded canonically (smallest ints, float64 floats).
    size = len(msgpack.packb(meta, use_bin_type=True))
    if size > limits.max_meta_bytes:
        raise ProtocolError("meta", f"meta is {size} bytes encoded, limit {limits.max_meta_bytes}")


def _decode_payload(
    header: Mapping[str, Any], part: Part, limits: Limits, strict: bool
) -> np.ndarray:
    dtype_str = header.get("dtype")
    if not (isinstance(dtype_str, str) and dtype_str in DTYPES):
        raise ProtocolError(
            "dtype", f"expected dtype one of {', '.join(DTYPES)}, got {dtype_str!r}"
        )
    # Output sides have no max_side: a traces payload has a row per ROI.
    max_bytes = limits.max_payload_bytes if strict else limits.max_output_payload_bytes
    max_side = limits.max_side if strict else max_bytes
    shape = header.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(_is_int(s) and 1 <= s <= max_side for s in shape)
    ):
        raise ProtocolError(
            "shape", f"expected shape [height, width], each 1..{max_side}, got {shape!r}"
        )
    dtype = np.dtype(dtype_str)
    expected = shape[0] * shape[1] * dtype.itemsize
    if expected > max_bytes:
        raise ProtocolError(
            "payload_size",
            f"a {shape[0]}x{shape[1]} {dtype_str} array needs {expected} bytes, "
            f"over the payload limit {max_bytes}",
        )
    view = _view(part)
    if view.nbytes != expected:
        raise ProtocolError(
            "payload_length",
            f"shape {shape} dtype {dtype_str} needs {expected} payload bytes, got {view.nbytes}",
        )
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    array = np.frombuffer(view, dtype=dtype).reshape(shape[0], shape[1])
    array.flags.writeable = False
    return array
