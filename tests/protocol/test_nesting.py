"""Headers nest at most 16 levels (their own map the first), in the service's decoder
and the Python client's: ``meta`` and vendor keys reach every subscriber, and decoders
in C stop at a fixed stack."""

from __future__ import annotations

import msgpack
import pytest
from deepdenoise_client import ProtocolError as ClientProtocolError
from deepdenoise_client._protocol import decode_header

from stream import ProtocolError
from stream.protocol import decode_input
from stream.protocol._limits import Limits
from stream.protocol._wire import MAX_HEADER_LEVELS, nesting_levels

FRAME = {"v": 1, "series": "s", "index": 0, "dtype": "|u1", "shape": [1, 1]}


def _header(field: str, lists: int, in_map: bool = False) -> bytes:
    """FRAME with ``field`` a list nested ``lists`` deep (in a map ``{"a": ...}`` when
    ``in_map``: ``meta`` is one), written raw: msgpack's packer stops a few hundred deep."""
    head = bytes([0x80 | (len(FRAME) + 1)])
    head += b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in FRAME.items())
    wrap = b"\x81" + msgpack.packb("a") if in_map else b""
    return head + msgpack.packb(field) + wrap + b"\x91" * lists + b"\x00"


def test_levels_are_counted_without_recursion() -> None:
    assert nesting_levels(1) == 0 and nesting_levels({}) == 1
    assert nesting_levels({"a": [1, {"b": []}], "c": 2}) == 4
    deep: list = []
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    assert nesting_levels(deep) == 5001


@pytest.mark.parametrize("field", ["meta", "x_vendor"])
def test_a_header_of_16_levels_is_taken_and_one_of_17_is_not(field: str) -> None:
    in_map = field == "meta"
    lists = MAX_HEADER_LEVELS - 1 - in_map  # the header's own map is level 1
    at_limit, over = _header(field, lists, in_map), _header(field, lists + 1, in_map)
    frame = decode_input([b"frame", at_limit, b"\x07"], Limits())
    assert nesting_levels(frame.header) == MAX_HEADER_LEVELS
    assert nesting_levels(decode_header(at_limit)) == MAX_HEADER_LEVELS
    with pytest.raises(ProtocolError) as service:
        decode_input([b"frame", over, b"\x07"], Limits())
    assert service.value.reason == "header_decode"
    assert f"at most {MAX_HEADER_LEVELS} levels deep" in service.value.message
    with pytest.raises(ClientProtocolError) as client:
        decode_header(over)
    assert client.value.reason == "header_decode"
