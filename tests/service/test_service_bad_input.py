"""A stream that mixes valid frames with every malformed kind: the service survives it."""

from __future__ import annotations

import re
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from service_harness import collect, events, listening, running_service, wait_until

from stream.store import ARRAY_PATHS


def _header(**fields) -> dict:
    base = {"v": 1, "kind": "frame", "series": "mix", "index": 0, "dtype": "<u2", "shape": [4, 6]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def _msg(header, payload: bytes | None = b"\0" * 48, topic: bytes = b"frame") -> list[bytes]:
    head = header if isinstance(header, bytes) else msgpack.packb(header, use_bin_type=True)
    return [topic, head] if payload is None else [topic, head, payload]


def _nested(field: str, depth: int = 1000) -> bytes:
    """A valid msgpack header whose ``field`` is a list nested ``depth`` deep."""
    header = _header(**{field: None})
    head = bytes([0x80 | (len(header) + 1)])
    head += b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in header.items())
    return head + msgpack.packb(field) + b"\x91" * depth + b"\x00"


# (reason, message) for every rejection decidable from one message
MALFORMED = [
    ("parts", [b"frame"]),
    ("parts", [b"frame", msgpack.packb(_header()), b"\0" * 48, b"extra"]),
    ("parts", _msg(_header(), payload=None)),
    ("header_size", _msg(b"\x80" + b"\0" * (70 * 1024))),
    ("header_decode", _msg(b"\xc1garbage")),
    ("header_decode", _msg(msgpack.packb([1, 2, 3]))),
    ("header_decode", _msg(b"\x91" * 60000)),  # nested too deep for the decoder
    ("version", _msg(_header(v=2))),
    ("version", _msg(_header(v=None))),
    ("kind", _msg(_header(kind="frames"))),
    ("series", _msg(_header(series="bad/name"))),
    ("series", _msg(_header(series="x" * 65))),
    ("index", _msg(_header(index=-1))),
    ("index", _msg(_header(index="7"))),
    ("dtype", _msg(_header(dtype=">u2"))),
    ("dtype", _msg(_header(dtype="<f8"), payload=b"\0" * 192)),
    ("shape", _msg(_header(shape=[4, 6, 1]))),
    ("shape", _msg(_header(shape=[0, 6]))),
    ("shape", _msg(_header(shape=[16385, 1]))),
    ("payload_length", _msg(_header(), payload=b"\0" * 47)),
    ("payload_size", _msg(_header(shape=[16384, 16384], dtype="<f4"), payload=b"\0")),
    ("payload_unexpected", _msg(_header(kind="end", index=None, dtype=None, shape=None))),
    ("t_ns", _msg(_header(t_ns=-5))),
    ("meta", _msg(_header(meta={"blob": "x" * 9000}))),
    ("meta", _msg(_header(meta=[1, 2]))),
    # nested past the protocol's 16 levels; a list 1,000 deep in a checked field once
    # stopped the service (its plain repr in the error exceeded the recursion limit)
    *[("header_decode", _msg(_nested(f))) for f in ("v", "series", "index", "shape", "x_v")],
    ("header_decode", _msg(_nested("meta", depth=16))),  # 17 levels with the header
    ("series", _msg(_header(series="x" * 10_000))),  # shown cut short in the error
    # an ext type would be passed on in meta to every subscriber (PROTOCOL.md: MUST NOT)
    ("header_decode", _msg(_header(meta={"x": msgpack.ExtType(5, b"ab")}))),
]


def test_valid_frames_survive_a_stream_of_malformed_ones(tmp_path: Path, identity_model):
    good = [np.full((4, 6), i, dtype="<u2") for i in range(len(MALFORMED) + 1)]
    with (
        running_service(tmp_path, identity_model, limits={"max_payload_bytes": 1 << 20}) as svc,
        listening(svc) as sub,
        zmq.Context() as ctx,
        ctx.socket(zmq.PUSH) as push,
    ):
        push.connect(svc.endpoints["input"])
        for i, (_, bad) in enumerate(MALFORMED):
            push.send_multipart(_msg(_header(index=i), good[i].tobytes()))
            push.send_multipart(bad)
        last = len(MALFORMED)
        push.send_multipart(_msg(_header(index=last), good[last].tobytes()))
        # a frame whose shape differs from the series' earlier frames
        push.send_multipart(_msg(_header(index=last + 1, shape=[6, 4]), good[0].tobytes()))
        got, others = collect(sub, len(good))
        wait_until(lambda: sum(svc.stats.snapshot()["rejected"].values()) == len(MALFORMED) + 1)
        # the PUB thread counts a frame once its send returned: the subscriber may hold the
        # last frame a moment before that
        wait_until(lambda: svc.status()["frames_out"] == len(good))
        status = svc.status()

    assert [m.header["index"] for m in got] == list(range(len(good)))
    for frame, message in zip(good, got, strict=True):
        np.testing.assert_array_equal(message.array, frame)
    expected: dict[str, int] = {"series_mismatch": 1}
    for reason, _ in MALFORMED:
        expected[reason] = expected.get(reason, 0) + 1
    assert status["rejected"] == expected
    assert status["frames_in"] == len(good) and status["frames_out"] == len(good)
    rejected = events(others, "rejected")
    assert {e["reason"] for e in rejected} <= set(expected)
    assert all(e["message"] for e in rejected)
    assert max(len(e["message"]) for e in rejected) < 300  # what came is shown cut short
    # what the message said of itself before its fault is named (PROTOCOL.md §7.3)
    by_reason = {e["reason"]: e for e in rejected}
    assert (by_reason["payload_length"]["series"], by_reason["payload_length"]["index"]) == (
        "mix",
        0,
    )
    assert by_reason["t_ns"]["series"] == "mix" and "index" not in by_reason["t_ns"]
    assert "series" not in by_reason["kind"]


def test_a_timestamp_ext_is_read_as_integer_nanoseconds() -> None:
    """The timestamp ext (-1), as JavaScript encoders write a Date, is taken as integer
    ns since 1970 and so passed on; any other ext type is refused (header_decode)."""
    import pytest

    from stream import ProtocolError
    from stream.protocol import Limits, decode_input, pack_header

    stamp = msgpack.Timestamp(1_700_000_000, 5)
    frame = decode_input(_msg(_header(meta={"when": stamp})), Limits())
    assert frame.header["meta"] == {"when": 1_700_000_000_000_000_005}
    assert b"\xd7\xff" not in pack_header(frame.header)  # no ext type goes out
    far = msgpack.packb({**_header(), "meta": {"when": msgpack.Timestamp(2**40, 0)}})
    with pytest.raises(ProtocolError, match="integers of at most 64 bits"):
        decode_input([b"frame", far, b"\0" * 48], Limits())  # ns beyond uint64: no encoding
    with pytest.raises(ProtocolError, match=r"an ext type \(5, 2 bytes\)") as caught:
        decode_input(_msg(_header(x_v=msgpack.ExtType(5, b"ab"))), Limits())
    assert caught.value.reason == "header_decode"


def test_non_finite_pixels_are_denoised_counted_and_flagged(tmp_path: Path, identity_model):
    frame = np.arange(30, dtype="<f4").reshape(5, 6)
    frame[1, 2] = np.nan
    frame[3, 4] = np.inf
    with running_service(tmp_path, identity_model) as svc, listening(svc) as sub:
        with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as push:
            push.connect(svc.endpoints["input"])
            header = _header(dtype="<f4", shape=[5, 6], series="nf")
            push.send_multipart(_msg(header, frame.tobytes()))
            (message,), _ = collect(sub, 1)
        assert svc.flush()
        status = svc.status()
    out = message.array
    assert message.header["non_finite"] == 2
    assert np.isnan(out[1, 2]) and np.isnan(out[3, 4])
    finite = np.isfinite(frame)
    np.testing.assert_array_equal(out[finite], frame[finite])
    assert status["sanitized"] == {"non_finite": 1}
    import zarr

    raw = zarr.open_group(tmp_path / "data" / "nf.zarr", mode="r")[ARRAY_PATHS["raw"]][0]
    np.testing.assert_array_equal(raw, frame)  # NaN/inf kept bit for bit on disk


def test_float_values_too_large_to_compute_with_are_stored_counted_and_told(
    tmp_path: Path, identity_model
):
    """A float frame in a unit of 1e-20 of a count (values about 1e22): the camera
    estimate's float32 squares and cubes overflowed and the output was NaN, blamed on the
    model. Now its raw frame is stored, it is counted as dropped with the reason and an
    error event says what was expected; the series' next frame is denoised."""
    huge = np.full((5, 6), 3e22, "<f4")
    good = np.arange(30, dtype="<f4").reshape(5, 6)
    with running_service(tmp_path, identity_model) as svc, listening(svc) as sub:
        with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as push:
            push.connect(svc.endpoints["input"])
            push.send_multipart(
                _msg(_header(dtype="<f4", shape=[5, 6], series="u"), huge.tobytes())
            )
            head = _header(dtype="<f4", shape=[5, 6], series="u", index=1)
            push.send_multipart(_msg(head, good.tobytes()))
            (message,), others = collect(sub, 1)
        assert svc.flush()
        status = svc.status()
    assert message.header["index"] == 1
    np.testing.assert_array_equal(message.array, good)
    assert status["dropped"] == {"out_of_range": 1} and status["frames_in"] == 2
    told = [e for e in events(others, "error") if e.get("kind") == "out_of_range"]
    assert len(told) == 1 and "up to 3e+22, over 1e+12" in told[0]["message"], told
    import zarr

    raw = zarr.open_group(tmp_path / "data" / "u.zarr", mode="r")[ARRAY_PATHS["raw"]]
    np.testing.assert_array_equal(raw[0], huge)  # what came, on disk
    np.testing.assert_array_equal(raw[1], good)


def test_oversized_message_drops_only_that_connection(tmp_path: Path, identity_model):
    limit = 64 * 1024
    with (
        running_service(
            tmp_path, identity_model, zarr=None, limits={"max_payload_bytes": limit}
        ) as svc,
        listening(svc) as sub,
        zmq.Context() as ctx,
    ):
        with ctx.socket(zmq.PUSH) as hostile:
            hostile.setsockopt(zmq.LINGER, 0)
            hostile.connect(svc.endpoints["input"])
            hostile.send_multipart(_msg(_header(shape=[1024, 1024]), b"\0" * (4 << 20)))
        with ctx.socket(zmq.PUSH) as honest:
            honest.connect(svc.endpoints["input"])
            honest.send_multipart(_msg(_header(), b"\1" * 48))
            (message,), _ = collect(sub, 1)
        # frames_out is counted just after the send: the subscriber can be first
        wait_until(lambda: svc.status()["frames_out"] == 1)
        assert svc.status()["frames_in"] == 1  # the oversized frame never got in
    assert message.header["index"] == 0


def test_an_undecodable_header_says_what_came():
    import pytest

    from stream import ProtocolError
    from stream.protocol import Limits, decode_input

    for header, why in ((b"\x91" * 60000, "StackError"), (b"\xc1garbage", "garbage")):
        with pytest.raises(ProtocolError) as caught:
            decode_input(_msg(header), Limits())
        message = caught.value.message
        assert "expected the header as one msgpack map" in message and why in message
        assert f"got {len(header)} bytes" in message


@pytest.mark.parametrize(
    ("header", "said"),
    [({"series": "s"}, "got no v key"), ({"v": None, "series": "s"}, "got v=nil")],
)
def test_a_missing_version_is_told_as_missing(header: dict, said: str) -> None:
    """A header without ``v`` said "got v=None", as if nil had been sent (a trial)."""
    from stream import ProtocolError
    from stream.protocol import decode_input
    from stream.protocol._limits import Limits

    with pytest.raises(ProtocolError, match=f"expected protocol version v=1, {said}"):
        decode_input([b"frame", msgpack.packb(header)], Limits())


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("kind", None, "got nil"),
        ("resend", None, "got nil"),
        ("meta", None, "got nil"),
        ("meta", b"\x86\xa1v", "got bin"),
        ("series", b"s1", "got bin of 2 bytes"),
        ("shape", [True, 2], "got [true, 2]"),
    ],
)
def test_what_came_is_told_in_msgpack_words(field: str, value: object, said: str) -> None:
    """C, JavaScript and MATLAB senders read nil, true and bin: the messages said None,
    NoneType, True and b'\\x86...' (a client trial)."""
    from stream import ProtocolError
    from stream.protocol import decode_input
    from stream.protocol._limits import Limits

    header = {"v": 1, "series": "s", "index": 0, "dtype": "|u1", "shape": [1, 1], field: value}
    with pytest.raises(ProtocolError, match=re.escape(said)):
        decode_input([b"frame", msgpack.packb(header, use_bin_type=True), b"\x00"], Limits())
