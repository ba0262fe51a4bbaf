"""Ten thousand fuzzed input messages against a running service: it never falls over,
and every message is taken or rejected with the reason the spec gives.

The oracle is the Python client's decoder (``deepdenoise_client.decode_message``),
written separately from the service from the same specification, plus the two
stateful rules (a series' fixed layout, no index twice without ``resend``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from deepdenoise_client import ProtocolError, decode_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_harness import running_service, wait_until

pytestmark = pytest.mark.slow

MESSAGES_PER_EXAMPLE = 50
EXAMPLES = 200  # 10,000 messages in all

SERIES = st.sampled_from(["a", "b", "c.1", "", ".", "..", ".hidden", "x" * 65, "s/t", 7, None])
DTYPES = st.sampled_from(["|u1", "<u2", "<i2", "<f4", ">u2", "u2", "<f8", 3, None])
SHAPES = st.one_of(
    st.sampled_from([[2, 3], [3, 2], [1, 1], [0, 3], [16385, 1], [2, 3, 1], [2], "2x3", None]),
    st.lists(st.integers(-2, 5), min_size=2, max_size=2),
)
INTS = st.one_of(
    st.integers(0, 6), st.sampled_from([-1, 2**40 - 1, 2**40, 2**63, 2**64 - 1, 1.5, "3", True])
)


@st.composite
def headers(draw: Any) -> Any:
    header: dict[str, Any] = {}
    for key, values in (
        ("v", st.sampled_from([1, 1, 1, 2, "1", True, 1.0, None])),
        ("kind", st.sampled_from(["frame", "frame", "frame", "start", "end", "frames", None])),
        ("series", SERIES),
        ("index", INTS),
        ("dtype", DTYPES),
        ("shape", SHAPES),
        ("t_ns", st.one_of(st.none(), INTS)),
        ("meta", st.sampled_from([None, {"z": 1.5}, {"blob": "x" * 9000}, [1], {1: 2}])),
        ("resend", st.sampled_from([None, None, True, False, 1])),
    ):
        value = draw(values)
        if value is not None:
            header[key] = value
    if draw(st.integers(0, 20)) == 0:
        return draw(st.binary(max_size=40))  # not msgpack at all, mostly
    try:
        return msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return b"\xc1"


@st.composite
def messages(draw: Any) -> list[bytes]:
    header = draw(headers())
    parts = [draw(st.sampled_from([b"frame", b"frame", b"framex"])), header]
    size = draw(st.sampled_from([0, 1, 6, 12, 24, 48]))
    if draw(st.integers(0, 8)) > 0:
        parts.append(bytes(size))
    if draw(st.integers(0, 30)) == 0:
        parts.append(b"extra")
    if draw(st.integers(0, 30)) == 0:
        parts = parts[:1]
    return parts


class Oracle:
    """What the spec says should happen to each message."""

    def __init__(self) -> None:
        self.layout: dict[str, tuple[Any, Any]] = {}
        self.seen: dict[str, set[int]] = {}
        self.rejected: Counter[str] = Counter()
        self.frames = 0

    def expect(self, parts: list[bytes]) -> None:
        try:
            message = decode_message(parts, strict=True)
        except ProtocolError as exc:
            self.rejected[exc.reason] += 1
            return
        header = message.header
        if header.get("kind", "frame") != "frame":
            return
        series, index = header["series"], header["index"]
        layout = (header["dtype"], tuple(header["shape"]))
        if self.layout.setdefault(series, layout) != layout:
            self.rejected["series_mismatch"] += 1
        elif index in self.seen.setdefault(series, set()) and header.get("resend") is not True:
            self.rejected["duplicate"] += 1
        else:
            self.seen[series].add(index)
            self.frames += 1


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, identity_model: Path):
    tmp = tmp_path_factory.mktemp("fuzz")
    with running_service(tmp, identity_model) as svc, zmq.Context() as ctx:
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(svc.endpoints["input"])
        yield svc, push, Oracle()
        push.close(0)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(batch=st.lists(messages(), min_size=MESSAGES_PER_EXAMPLE, max_size=MESSAGES_PER_EXAMPLE))
def test_fuzzed_input_is_taken_or_rejected_for_the_spec_s_reason(service, batch) -> None:
    svc, push, oracle = service
    for parts in batch:
        oracle.expect(parts)
        push.send_multipart(parts)
    total = oracle.frames + sum(oracle.rejected.values())

    def settled() -> bool:
        status = svc.status()
        return status["frames_in"] + sum(status["rejected"].values()) >= total

    wait_until(settled, timeout=60)
    status = svc.status()
    assert status["state"] == "running"  # nothing took it down
    assert status["frames_in"] == oracle.frames
    assert {k: v for k, v in status["rejected"].items() if v} == dict(oracle.rejected)
    assert np.isfinite(status["uptime_s"])
