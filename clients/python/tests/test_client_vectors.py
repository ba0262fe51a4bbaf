"""The client's codec against the golden vectors of clients/vectors/."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import struct
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from deepdenoise_client import (
    Limits,
    ProtocolError,
    decode_message,
    encode_end,
    encode_frame,
    encode_message,
    encode_request,
    encode_set_rois,
    encode_start,
    parse_traces,
    parse_trigger,
)

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"
VECTORS: list[dict[str, Any]] = json.loads(
    (VECTORS_DIR / "vectors.json").read_text(encoding="utf-8")
)["vectors"]
VALID = [v for v in VECTORS if v["valid"] and v["direction"] != "control"]
CONTROL = [v for v in VECTORS if v["direction"] == "control"]
BY_NAME = {v["name"]: v for v in VECTORS}
INVALID = [v for v in VECTORS if not v["valid"]]
STANDARD_FRAME_KEYS = {"v", "kind", "series", "index", "dtype", "shape", "t_ns", "meta"}

#: Reasons the lenient decoder (strict=False, for the service's output) also checks.
LENIENT_REASONS = {
    "parts", "header_size", "header_decode", "version",
    "dtype", "shape", "payload_size", "payload_length",
}  # fmt: skip


def read_parts(vector: dict[str, Any]) -> list[bytes]:
    """Split a .bin file: each part is a uint32 little-endian length, then the bytes."""
    blob = (VECTORS_DIR / vector["file"]).read_bytes()
    parts, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        parts.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert pos == len(blob)
    return parts


def expected_pixels(vector: dict[str, Any]) -> np.ndarray:
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    values = [special.get(x, x) if isinstance(x, str) else x for x in vector["pixels"]]
    return np.array(values, dtype=vector["dtype"]).reshape(vector["shape"])


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def test_vectors_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS_DIR / "make_vectors.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check", "--out", str(VECTORS_DIR)]) == 0


def test_every_stateless_reason_code_has_an_invalid_vector() -> None:
    reasons = {v["reject_reason"] for v in INVALID}
    assert reasons == {
        "parts", "header_size", "header_decode", "version", "kind", "series", "index",
        "dtype", "shape", "payload_size", "payload_length", "payload_unexpected", "t_ns",
        "meta", "resend",
    }  # fmt: skip


@pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
def test_valid_vector_decodes_to_its_description(vector: dict[str, Any]) -> None:
    parts = read_parts(vector)
    assert len(parts) == vector["parts"]
    msg = decode_message(parts, strict=vector["direction"] == "input")
    assert msg.topic == vector["topic"].encode()
    assert msg.header == vector["header"]
    assert list(msg.header) == list(vector["header"])  # wire order
    if vector["payload_sha256"] is None:
        assert msg.array is None
        return
    assert msg.array is not None
    assert msg.array.dtype.str == vector["dtype"]
    assert list(msg.array.shape) == vector["shape"]
    assert not msg.array.flags.writeable
    assert hashlib.sha256(msg.array.tobytes()).hexdigest() == vector["payload_sha256"]
    if vector["pixels"] is not None:
        np.testing.assert_array_equal(msg.array, expected_pixels(vector))


@pytest.mark.parametrize("vector", [v for v in VALID if v["canonical"]],
                         ids=ids([v for v in VALID if v["canonical"]]))  # fmt: skip
def test_canonical_vector_reencodes_byte_for_byte(vector: dict[str, Any]) -> None:
    parts = read_parts(vector)
    msg = decode_message(parts)
    again = encode_message(msg.topic, msg.header, msg.array)
    assert [bytes(p) for p in again] == parts
    # From the JSON description alone, too (what an implementer in another language does).
    array = None if vector["pixels"] is None else expected_pixels(vector)
    if array is not None or vector["payload_sha256"] is None:
        again = encode_message(vector["topic"], vector["header"], array)
        assert [bytes(p) for p in again] == parts


PLAIN = [
    v for v in VALID
    if v["direction"] == "input" and v["canonical"]
    and set(v["header"]) <= STANDARD_FRAME_KEYS and "kind" in v["header"]
]  # fmt: skip


@pytest.mark.parametrize("vector", PLAIN, ids=ids(PLAIN))
def test_frame_and_series_encoders_reproduce_vector(vector: dict[str, Any]) -> None:
    parts = read_parts(vector)
    h = vector["header"]
    topic = vector["topic"]
    if h["kind"] == "frame":
        msg = decode_message(parts, strict=True)
        assert msg.array is not None
        again = encode_frame(
            msg.array, h["series"], h["index"], t_ns=h.get("t_ns"), meta=h.get("meta"), topic=topic
        )
    else:
        encode = encode_start if h["kind"] == "start" else encode_end
        again = encode(h["series"], t_ns=h.get("t_ns"), topic=topic)
    assert [bytes(p) for p in again] == parts


@pytest.mark.parametrize("vector", INVALID, ids=ids(INVALID))
def test_invalid_vector_rejected_with_its_reason(vector: dict[str, Any]) -> None:
    parts = read_parts(vector)
    limits = Limits(**vector.get("limits", {}))
    with pytest.raises(ProtocolError) as info:
        decode_message(parts, strict=True, limits=limits)
    assert info.value.reason == vector["reject_reason"], str(info.value)
    assert isinstance(info.value, ValueError)


#: Over an input limit but within the output bounds (PROTOCOL.md, 7): the service
#: may send a traces header or payload this large.
WITHIN_OUTPUT_BOUNDS = {"invalid_header_size", "invalid_shape_16385", "invalid_payload_size"}
LENIENT = [
    v for v in INVALID
    if v["reject_reason"] in LENIENT_REASONS
    and v["name"] not in {"invalid_parts_frame_without_payload", *WITHIN_OUTPUT_BOUNDS}
]  # fmt: skip


@pytest.mark.parametrize("vector", LENIENT, ids=ids(LENIENT))
def test_lenient_decoder_rejects_what_it_checks(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(read_parts(vector))
    assert info.value.reason == vector["reject_reason"]


@pytest.mark.parametrize("name", sorted(WITHIN_OUTPUT_BOUNDS - {"invalid_payload_size"}))
def test_lenient_decoder_reads_what_is_within_the_output_bounds(name: str) -> None:
    assert decode_message(read_parts(BY_NAME[name])).header["v"] == 1


def test_lenient_decoder_lets_the_length_decide_a_1_gib_payload() -> None:
    # 16384 x 16384 <f4 is the float32 output of the largest |u1 input: within bounds,
    # so the (short) payload's length is what is wrong.
    with pytest.raises(ProtocolError) as info:
        decode_message(read_parts(BY_NAME["invalid_payload_size"]))
    assert info.value.reason == "payload_length"


def test_lenient_decoder_reads_frame_header_without_payload_as_header_only() -> None:
    (vector,) = [v for v in INVALID if v["name"] == "invalid_parts_frame_without_payload"]
    msg = decode_message(read_parts(vector))
    assert msg.array is None
    assert msg.header["kind"] == "frame"


def test_decode_accepts_memoryview_and_bytearray_parts() -> None:
    (vector,) = [v for v in VALID if v["name"] == "frame_u2_3x5"]
    parts = read_parts(vector)
    msg = decode_message([parts[0], memoryview(parts[1]), bytearray(parts[2])], strict=True)
    assert msg.array is not None
    assert not msg.array.flags.writeable  # read-only even over a writable buffer
    np.testing.assert_array_equal(msg.array, expected_pixels(vector))


def test_protocol_md_shows_the_bytes_of_the_smallest_frame() -> None:
    (vector,) = [v for v in VALID if v["name"] == "frame_u1_1x1"]
    header_hex = read_parts(vector)[1].hex(" ")
    text = (VECTORS_DIR.parent / "PROTOCOL.md").read_text(encoding="utf-8")
    assert header_hex in " ".join(text.split()), "update the byte-level example in PROTOCOL.md"


@pytest.mark.parametrize("vector", CONTROL, ids=ids(CONTROL))
def test_control_requests_encode_byte_for_byte(vector: dict[str, Any]) -> None:
    (request,) = read_parts(vector)
    arguments = dict(vector["header"])
    cmd = arguments.pop("cmd")
    if cmd == "set_rois":
        labels = None if vector["pixels"] is None else expected_pixels(vector)
        options = arguments.get("fit", False), arguments.get("source")
        assert encode_set_rois(labels, arguments.get("series"), *options) == request
    else:
        assert encode_request(cmd, **arguments) == request


def test_set_rois_appends_fit_then_source_after_the_labels() -> None:
    labels = np.ones((2, 3), np.uint16)
    plain = msgpack.unpackb(encode_set_rois(labels, "s1"))
    fitted = msgpack.unpackb(encode_set_rois(labels, "s1", fit=True))
    assert list(fitted) == [*plain, "fit"] and fitted["fit"] is True
    named = msgpack.unpackb(encode_set_rois(labels, "s1", fit=True, source="/data/rois.npy"))
    assert list(named) == [*fitted, "source"] and named["source"] == "/data/rois.npy"


@pytest.mark.parametrize("source", ["", "a" * 1025, "rois\tcells", "rois\x85", 7])
def test_set_rois_refuses_a_source_the_service_would_refuse(source: object) -> None:
    with pytest.raises(ValueError, match="1 to 1024 characters, none a control character"):
        encode_set_rois(np.ones((2, 3), np.uint16), source=source)  # type: ignore[arg-type]
    for taken in ("\U0001f52c" * 1024, "rois\u00a0cells\u2028"):  # not control characters
        assert msgpack.unpackb(encode_set_rois(None, source=taken))["source"] == taken


def test_set_rois_refuses_uint64_labels_that_would_wrap_negative() -> None:
    labels = np.zeros((2, 3), np.uint64)
    labels[0, 0] = 2**63 - 1  # the largest that fits <i8: sent as it is
    sent = msgpack.unpackb(encode_set_rois(labels))
    assert np.frombuffer(sent["labels"], "<i8")[0] == 2**63 - 1
    labels[0, 0] = 2**63 + 5
    with pytest.raises(ValueError, match=r"below 2\*\*63 \(sent as <i8\), got 9223372036854775813"):
        encode_set_rois(labels)


def test_set_rois_takes_one_plane_as_its_image_and_refuses_a_stack() -> None:
    """A 1 x H x W label image (a one-page TIFF, as the CLI takes it) is its plane;
    more planes, or an image that is not integer, are refused naming what came."""
    plane = np.arange(6, dtype=np.uint16).reshape(2, 3)
    assert encode_set_rois(plane[np.newaxis]) == encode_set_rois(plane)
    with pytest.raises(
        ValueError, match=r"\(or one plane, 1 x H x W\), got uint16 of shape \(2, 2, 3\)"
    ):
        encode_set_rois(np.stack([plane, plane]))
    with pytest.raises(ValueError, match=r"got float32 of shape \(2, 3\)"):
        encode_set_rois(plane.astype(np.float32))


@pytest.mark.parametrize("name", ["traces", "traces_dff_denoised"])
def test_traces_vectors_parse(name: str) -> None:
    vector = BY_NAME[name]
    traces = parse_traces(decode_message(read_parts(vector)))
    assert traces.labels.tolist() == vector["header"]["labels"]
    assert traces.columns == tuple(vector["header"]["columns"])
    np.testing.assert_array_equal(traces.values, expected_pixels(vector))
    assert traces.column("dff").shape == (len(traces.labels),)
    first = int(traces.labels[0])
    assert traces.roi(first)["raw"] == float(expected_pixels(vector)[0, 0])


def test_trigger_vector_parses() -> None:
    trigger = parse_trigger(decode_message(read_parts(BY_NAME["trigger"])))
    assert (trigger.rule, trigger.index, trigger.rois) == ("cell7", 300, [7])
    assert trigger.value == 0.75 and trigger.threshold == 0.5
