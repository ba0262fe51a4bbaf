"""The model id: a hash of what the model computes, taken from the file itself.

The id names a model in stores' provenance, in published headers, in the blend's and
the ensemble's measurements and in the TensorRT engine cache, so it must change
whenever the computation does and must not be taken on trust from the metadata: a
``content_hash`` copied from another model would otherwise lend it that model's id (and
its cached engine). It is the SHA-256 of the ONNX file with its ``metadata_props`` left
out (what the exporter writes as ``content_hash``, so an exported model's id is the
first 12 characters of that) and of every external-data file its weights are in.

The file is read at the protobuf wire level, so the online half needs no ``onnx``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from .._errors import ModelError

log = logging.getLogger(__name__)

# Field numbers of onnx.proto3 that the id needs.
_MODEL_GRAPH, _MODEL_METADATA_PROPS = 7, 14
_GRAPH_INITIALIZER = 5
_TENSOR_EXTERNAL_DATA = 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


def graph_hash(data: bytes) -> str:
    """SHA-256 (hex) of a serialised ONNX model with its ``metadata_props`` left out:
    the exporter's ``content_hash``."""
    digest = hashlib.sha256()
    for field, start, end, _ in _fields(data):
        if field != _MODEL_METADATA_PROPS:
            digest.update(data[start:end])
    return digest.hexdigest()


def model_id(path: Path, content_hash: str | None = None) -> str:
    """The model's 12-character id (see the module docstring). A ``content_hash`` that
    disagrees with a self-contained file is logged (with external data it cannot: the
    exporter hashed the weights inside), and the file's own hash is the id."""
    data = path.read_bytes()
    own = graph_hash(data)
    graph = next((value for field, _, _, value in _fields(data) if field == _MODEL_GRAPH), b"")
    external = sorted(set(_external_locations(graph)))
    if not external:
        if content_hash and content_hash != own:
            log.warning(
                "%s: its metadata's content_hash %.12s... is not the hash of its graph; "
                "the model id is the graph's own",
                path.name,
                content_hash,
            )
        return own[:12]
    digest = hashlib.sha256(own.encode())
    for location in external:
        try:
            weights = (path.parent / location).read_bytes()
        except OSError as exc:
            raise ModelError(
                f"{path.name}: cannot read its external data {location}: {exc}"
            ) from exc
        digest.update(b"\0" + location.encode() + b"\0" + weights)
    return digest.hexdigest()[:12]


def _external_locations(graph: bytes) -> Iterator[str]:
    """The ``location`` of every initializer stored outside the file."""
    for field, _, _, tensor in _fields(graph):
        if field != _GRAPH_INITIALIZER:
            continue
        for tensor_field, _, _, entry in _fields(tensor):
            if tensor_field != _TENSOR_EXTERNAL_DATA:
                continue
            parts = {f: v for f, _, _, v in _fields(entry)}
            if parts.get(_ENTRY_KEY) == b"location":
                yield parts.get(_ENTRY_VALUE, b"").decode("utf-8", "replace")


def _fields(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """Top-level protobuf fields: (number, start, end, payload of a length-delimited one)."""
    at = 0
    while at < len(data):
        start = at
        tag, at = _varint(data, at)
        kind, value = tag & 7, b""
        if kind == 0:
            _, at = _varint(data, at)
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        elif kind == 2:
            size, at = _varint(data, at)
            value = data[at : at + size]
            at += size
        else:
            raise ModelError(f"not an ONNX model: protobuf wire type {kind} at byte {start}")
        if at > len(data):
            raise ModelError(f"not an ONNX model: a field runs past the end at byte {start}")
        yield tag >> 3, start, at, value


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ModelError(f"not an ONNX model: a broken varint at byte {at}")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
