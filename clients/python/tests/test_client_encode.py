"""Client-side validation: what the service would reject fails at the call site."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
from deepdenoise_client import (
    Limits,
    ProtocolError,
    canonical,
    decode_message,
    encode_frame,
    encode_header,
    encode_start,
)

FRAME = np.zeros((3, 5), dtype="<u2")


@pytest.mark.parametrize("dtype", ["|u1", "<u2", "<i2", "<f4", np.uint8, np.uint16, np.int16])
def test_accepted_dtypes(dtype: Any) -> None:
    parts = encode_frame(np.ones((2, 3), dtype=dtype), "s", 0)
    assert decode_message(parts, strict=True).header["dtype"] == np.dtype(dtype).str


@pytest.mark.parametrize(
    ("array", "reason", "words"),
    [
        (np.zeros((2, 2), ">u2"), "dtype", "astype('<u2')"),
        (np.zeros((2, 2), "<f8"), "dtype", "astype('<f4')"),
        (np.zeros((2, 2), bool), "dtype", "uint8"),
        (np.zeros((2, 2), np.int32), "dtype", "<i2"),
        (np.zeros((1, 2, 2), np.uint8), "shape", "squeeze"),
        (np.zeros(4, np.uint8), "shape", "2-D"),
        (np.zeros((0, 4), np.uint8), "shape", "1..16384"),
        (np.zeros((16385, 1), np.uint8), "shape", "1..16384"),
    ],
)
def test_bad_arrays_raise_value_errors_that_say_what_to_do(
    array: np.ndarray, reason: str, words: str
) -> None:
    with pytest.raises(ValueError, match="expected") as info:
        encode_frame(array, "s", 0)
    assert isinstance(info.value, ProtocolError)
    assert info.value.reason == reason
    assert words in str(info.value)


@pytest.mark.parametrize("series", ["", "a/b", "x" * 65, "zelle-\u00e4", "a b", None, b"s"])
def test_bad_series(series: Any) -> None:
    with pytest.raises(ProtocolError, match="series") as info:
        encode_frame(FRAME, series, 0)
    assert info.value.reason == "series"
    with pytest.raises(ProtocolError):
        encode_start(series)


@pytest.mark.parametrize("index", [-1, 2**63, 1.0, True, "1", None])
def test_bad_index(index: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        encode_frame(FRAME, "s", index)
    assert info.value.reason == "index"


def test_numpy_integers_are_plain_ints_on_the_wire() -> None:
    parts = encode_frame(FRAME, "s", np.int64(7), t_ns=np.uint64(9), meta={"gain": np.float32(2)})
    header = msgpack.unpackb(parts[1])
    assert header["index"] == 7
    assert type(header["index"]) is int
    assert header["t_ns"] == 9
    assert header["meta"] == {"gain": 2.0}


@pytest.mark.parametrize("t_ns", [-1, 1.7e18, "1", True, 2**64])
def test_bad_t_ns(t_ns: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        encode_frame(FRAME, "s", 0, t_ns=t_ns)
    assert info.value.reason == "t_ns"


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ([1, 2], "meta"),
        # a key that is no str makes the header invalid, as the service says (the client
        # said meta: a trial)
        ({1: "int key"}, "header_decode"),
        ({"nested": {2: "int key"}}, "header_decode"),
        ({b"k": "bin key"}, "header_decode"),
        ({"x": object()}, "meta"),
        ({"text": "m" * 8200}, "meta"),
    ],
)
def test_bad_meta(meta: Any, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        encode_frame(FRAME, "s", 0, meta=meta)
    assert info.value.reason == reason


def test_meta_nested_past_the_header_limit_is_refused_before_sending() -> None:
    def nested(lists: int) -> dict:
        value: Any = 0
        for _ in range(lists):
            value = [value]
        return {"a": value}

    encode_frame(FRAME, "s", 0, meta=nested(14))  # header, meta, 14 lists: 16 levels
    with pytest.raises(ProtocolError, match="at most 16 levels deep, meta makes it 17") as info:
        encode_frame(FRAME, "s", 0, meta=nested(15))
    assert info.value.reason == "header_decode"  # what the service would reject it for


def test_limits_are_checked_before_sending() -> None:
    with pytest.raises(ProtocolError) as info:
        encode_frame(np.zeros((64, 64), np.uint8), "s", 0, limits=Limits(max_payload_bytes=4095))
    assert info.value.reason == "payload_size"
    with pytest.raises(ProtocolError) as info:
        encode_frame(FRAME, "s", 0, meta={"t": "x" * 300}, limits=Limits(max_header_bytes=256))
    assert info.value.reason == "header_size"


def test_non_contiguous_frame_is_sent_in_c_order() -> None:
    base = np.arange(24, dtype="<u2").reshape(4, 6)
    view = base[::2, ::3]
    parts = encode_frame(view, "s", 0)
    assert bytes(parts[2]) == np.ascontiguousarray(view).tobytes()
    transposed = base.T
    msg = decode_message(encode_frame(transposed, "s", 0), strict=True)
    np.testing.assert_array_equal(msg.array, transposed)


def test_contiguous_frame_is_not_copied() -> None:
    frame = np.arange(12, dtype="<f4").reshape(3, 4)
    payload = encode_frame(frame, "s", 0)[2]
    assert isinstance(payload, memoryview)
    assert np.shares_memory(np.frombuffer(payload, dtype="<f4"), frame)


def test_canonical_order_puts_known_keys_first() -> None:
    header = {"x": 1, "meta": {}, "t_done_ns": 3, "v": 1, "model": "m", "series": "s"}
    assert list(canonical(header)) == ["v", "series", "meta", "model", "t_done_ns", "x"]
    assert encode_header(header) == msgpack.packb(canonical(header))


def test_smallest_integer_encodings() -> None:
    def packed_index(i: int) -> bytes:
        raw = encode_header({"index": i})
        return raw[len(b"\x81\xa5index") :]

    assert packed_index(5) == b"\x05"
    assert packed_index(200) == b"\xcc\xc8"
    assert packed_index(300) == b"\xcd\x01\x2c"
    assert packed_index(70000) == b"\xce\x00\x01\x11\x70"
    assert packed_index(2**32) == b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"
