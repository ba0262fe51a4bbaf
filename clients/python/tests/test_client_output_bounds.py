"""Output messages are decoded against the output bounds, not the input limits.

A ``traces`` message has a row per ROI and lists every ROI's label in its header, and a
``denoised`` frame is float32 whatever came in: the service's output can exceed the
limits it applies to its input (PROTOCOL.md, section 7).
"""

from __future__ import annotations

import numpy as np
import pytest
from deepdenoise_client import Limits, ProtocolError, decode_message, encode_message

SMALL = Limits(max_header_bytes=1024, max_side=64, max_payload_bytes=4096)


def _traces(rois: int) -> list[bytes | memoryview]:
    header = {
        "v": 1, "series": "s", "index": 0, "dtype": "<f4", "shape": [rois, 3],
        "rois": rois, "columns": ["raw", "denoised", "dff"],
        "labels": list(range(70_000, 70_000 + rois)),
    }  # fmt: skip
    return encode_message("traces", header, np.zeros((rois, 3), np.float32))


def test_thirty_thousand_rois_decode_with_the_default_limits() -> None:
    parts = _traces(30_000)
    assert len(parts[1]) > Limits().max_header_bytes  # 5 bytes a label
    msg = decode_message(parts)
    assert msg.array is not None
    assert msg.array.shape == (30_000, 3)
    with pytest.raises(ProtocolError) as info:  # as input it would be refused
        decode_message(parts, strict=True)
    assert info.value.reason == "header_size"


def test_output_header_over_sixteen_times_the_input_limit_is_refused() -> None:
    rois = 16 * SMALL.max_header_bytes // 5  # the labels alone fill the bound
    with pytest.raises(ProtocolError) as info:
        decode_message(_traces(rois), limits=SMALL)
    assert info.value.reason == "header_size"
    decode_message(_traces(rois // 2), limits=Limits(max_header_bytes=1024))


def test_float32_output_of_the_largest_u1_input_decodes() -> None:
    side = 64  # 64 x 64 |u1 is exactly SMALL's input payload limit
    out = np.ones((side, side), np.float32)
    header = {"v": 1, "series": "s", "index": 0, "dtype": "<f4", "shape": [side, side]}
    msg = decode_message(encode_message("denoised", header, out), limits=SMALL)
    assert msg.array is not None
    np.testing.assert_array_equal(msg.array, out)


def test_output_payload_over_four_times_the_input_limit_is_refused() -> None:
    header = {"v": 1, "series": "s", "index": 0, "dtype": "<f4", "shape": [65, 64]}
    with pytest.raises(ProtocolError) as info:
        decode_message(encode_message("denoised", header, np.ones((65, 64), np.float32)),
                       limits=SMALL)  # fmt: skip
    assert info.value.reason == "payload_size"
    assert str(4 * SMALL.max_payload_bytes) in str(info.value)
