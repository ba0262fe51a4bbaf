"""The service's codec (stream.protocol) against the golden vectors of clients/vectors/.

The same vectors test the Python client (clients/python/tests) and are meant for the
C, MATLAB and JavaScript clients: passing them is what "speaks protocol v1" means.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from stream import ProtocolError
from stream.protocol import (
    Frame,
    Limits,
    Reject,
    SeriesMark,
    decode_input,
    pack_header,
    raw_header,
    traces_header,
    trigger_header,
)
from stream.service._control import ControlHandler

VECTORS_DIR = Path(__file__).resolve().parents[2] / "clients" / "vectors"
VECTORS: list[dict[str, Any]] = json.loads(
    (VECTORS_DIR / "vectors.json").read_text(encoding="utf-8")
)["vectors"]
VALID_INPUT = [v for v in VECTORS if v["valid"] and v["direction"] == "input"]
CANONICAL = [v for v in VECTORS if v["valid"] and v["canonical"] and v["direction"] != "control"]
CONTROL = [v for v in VECTORS if v["direction"] == "control"]
BY_NAME = {v["name"]: v for v in VECTORS}
INVALID = [v for v in VECTORS if not v["valid"]]


#: Where stream._protocol disagrees with clients/PROTOCOL.md (strict xfail: fixing the
#: decoder turns the entry into an XPASS failure that asks for its removal here).


def read_parts(vector: dict[str, Any]) -> list[bytes]:
    blob = (VECTORS_DIR / vector["file"]).read_bytes()
    parts, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        parts.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return parts


def expected_pixels(vector: dict[str, Any]) -> np.ndarray:
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    values = [special.get(x, x) if isinstance(x, str) else x for x in vector["pixels"]]
    return np.array(values, dtype=vector["dtype"]).reshape(vector["shape"])


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def test_reason_codes_match_the_spec() -> None:
    covered = {v["reject_reason"] for v in INVALID}
    stateful = {"series_mismatch", "duplicate"}  # need earlier frames of the series
    assert covered == {r.value for r in Reject} - stateful


@pytest.mark.parametrize("vector", VALID_INPUT, ids=ids(VALID_INPUT))
def test_service_decodes_valid_input(vector: dict[str, Any]) -> None:
    parts = [memoryview(p) for p in read_parts(vector)]
    decoded = decode_input(parts, Limits())
    assert decoded.topic == vector["topic"].encode()
    assert decoded.header == vector["header"]
    if vector["payload_sha256"] is None:
        assert isinstance(decoded, SeriesMark)
        assert decoded.kind == vector["header"]["kind"]
        return
    assert isinstance(decoded, Frame)
    assert decoded.series == vector["header"]["series"]
    assert decoded.index == vector["header"]["index"]
    assert decoded.t_ns == vector["header"].get("t_ns")
    assert decoded.pixels.dtype.str == vector["dtype"]
    assert list(decoded.pixels.shape) == vector["shape"]
    assert hashlib.sha256(decoded.pixels.tobytes()).hexdigest() == vector["payload_sha256"]
    if vector["pixels"] is not None:
        np.testing.assert_array_equal(decoded.pixels, expected_pixels(vector))


@pytest.mark.parametrize("vector", CANONICAL, ids=ids(CANONICAL))
def test_service_encodes_headers_byte_for_byte(vector: dict[str, Any]) -> None:
    assert pack_header(vector["header"]) == read_parts(vector)[1]


@pytest.mark.parametrize(
    "vector",
    [v for v in INVALID],
    ids=ids(INVALID),
)
def test_service_rejects_invalid_input_with_its_reason(vector: dict[str, Any]) -> None:
    limits = Limits(**vector.get("limits", {}))
    with pytest.raises(ProtocolError) as info:
        decode_input([memoryview(p) for p in read_parts(vector)], limits)
    assert info.value.reason == vector["reject_reason"], info.value.message


def _frame(header: dict[str, Any]) -> Frame:
    return Frame(b"frame", header, header["series"], header["index"], np.zeros((1, 1)),
                 header.get("t_ns"))  # fmt: skip


@pytest.mark.parametrize("name", ["traces", "traces_dff_denoised"])
def test_service_writes_the_traces_vectors(name: str) -> None:
    vector = BY_NAME[name]
    h = vector["header"]
    header = traces_header(
        _frame(h),
        h["labels"],
        h["columns"],
        h["model"],
        h["t_recv_ns"],
        h["t_done_ns"],
        h["t_traces_ns"],
    )
    assert pack_header(header) == read_parts(vector)[1]


def test_service_writes_the_raw_vector() -> None:
    vector = BY_NAME["raw_u2"]
    h = vector["header"]
    received = {k: v for k, v in h.items() if k != "t_recv_ns"}  # the input frame's header
    assert pack_header(raw_header(_frame(received), h["t_recv_ns"])) == read_parts(vector)[1]


def test_service_writes_the_trigger_vector() -> None:
    vector = BY_NAME["trigger"]
    h = vector["header"]
    header = trigger_header(_frame(h), h["rule"], h["column"], h["value"], h["threshold"],
                            h["rois"], h["t_recv_ns"], h["t_done_ns"])  # fmt: skip
    assert pack_header(header) == read_parts(vector)[1]


class _Recorder:
    """Stands in for the service behind the control handler: records set_rois and
    end_series."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, dict[str, Any]]] = []

    def set_rois(
        self, labels: Any, series: str | None = None, **options: Any
    ) -> tuple[int, list[str]]:
        self.calls.append((labels, series, options))
        return (0 if labels is None else len(np.unique(labels[labels > 0]))), []

    def end_series(self, series: str, timeout: float = 10.0) -> int:
        self.calls.append((None, series, {}))
        return 41


@pytest.mark.parametrize("vector", CONTROL, ids=ids(CONTROL))
def test_service_reads_the_control_vectors(vector: dict[str, Any]) -> None:
    (request,) = read_parts(vector)
    recorder = _Recorder()
    reply = msgpack.unpackb(ControlHandler(recorder).handle(request))  # type: ignore[arg-type]
    if vector["header"]["cmd"] == "end_series":
        assert reply == {"ok": True, "series": "cell-01", "last_index": 41}
        assert recorder.calls == [(None, "cell-01", {})]
        return
    if vector["header"]["cmd"] != "set_rois":
        return  # status and load_model need a real service (tests/service)
    assert reply["ok"] is True, reply
    labels, series, options = recorder.calls[0]
    assert series == vector["header"].get("series")
    header = vector["header"]
    assert options == {"fit": header.get("fit", False), "source": header.get("source")}
    if vector["pixels"] is None:
        assert labels is None
    else:
        np.testing.assert_array_equal(labels, expected_pixels(vector))
