"""Publisher and Subscriber over real loopback sockets."""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np
import pytest
import zmq
from deepdenoise_client import Message, Publisher, Subscriber, decode_message, encode_message

ANY_PORT = "tcp://127.0.0.1:*"
DTYPES = ["|u1", "<u2", "<i2", "<f4"]
SHAPES = [(1, 1), (3, 5), (64, 48), (256, 300)]  # the last is over 64 KiB: zero-copy send


def frames(dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    info = np.finfo(dtype) if dtype == "<f4" else np.iinfo(dtype)
    out = []
    for shape in SHAPES:
        if dtype == "<f4":
            out.append(rng.normal(0, 1e3, size=shape).astype(dtype))
        else:
            out.append(rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype))
    return out


def expect(msg: Message, frame: np.ndarray, series: str, index: int) -> None:
    assert msg.array is not None
    assert msg.header["series"] == series
    assert msg.header["index"] == index
    assert msg.array.dtype == frame.dtype
    np.testing.assert_array_equal(msg.array, frame)
    assert not msg.array.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
def test_pub_sub_round_trip_loses_nothing(ctx: zmq.Context[Any], dtype: str) -> None:
    sent = frames(dtype) * 5
    with (
        Publisher(ANY_PORT, context=ctx) as pub,
        Subscriber(pub.endpoint, topics=(b"frame",), timeout=5, context=ctx) as sub,
    ):
        pub.wait_for_subscriber(timeout=5)
        pub.start("run-1", t_ns=1)
        for i, frame in enumerate(sent):
            pub.send_frame(frame, "run-1", i, t_ns=time.time_ns(), meta={"i": i})
        pub.end("run-1")

        start = sub.recv()
        assert start.header == {"v": 1, "kind": "start", "series": "run-1", "t_ns": 1}
        assert start.array is None
        for i, frame in enumerate(sent):
            msg = sub.recv()
            expect(msg, frame, "run-1", i)
            assert msg.header["meta"] == {"i": i}
        assert sub.recv().header["kind"] == "end"


@pytest.mark.parametrize("dtype", DTYPES)
def test_push_pull_round_trip(ctx: zmq.Context[Any], dtype: str) -> None:
    pull = ctx.socket(zmq.PULL)
    with Publisher(ANY_PORT, mode="push", timeout=5, context=ctx) as push:
        pull.connect(push.endpoint)
        for i, frame in enumerate(frames(dtype)):
            push.send_frame(frame, "p", i)
        for i, frame in enumerate(frames(dtype)):
            assert pull.poll(5000)
            expect(decode_message(pull.recv_multipart(copy=False), strict=True), frame, "p", i)
    pull.close(linger=0)


def test_push_connects_to_a_binding_pull(ctx: zmq.Context[Any]) -> None:
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    frame = np.arange(6, dtype="<u2").reshape(2, 3)
    with Publisher(f"tcp://127.0.0.1:{port}", mode="push", bind=False, context=ctx) as push:
        push.send_frame(frame, "p", 3)
        assert pull.poll(5000)
        expect(decode_message(pull.recv_multipart(), strict=True), frame, "p", 3)
    pull.close(linger=0)


def test_push_without_a_peer_times_out(ctx: zmq.Context[Any]) -> None:
    with Publisher(ANY_PORT, mode="push", timeout=0.2, context=ctx) as push:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="not keeping up"):
            push.send_frame(np.zeros((2, 2), np.uint8), "p", 0)
        assert time.monotonic() - t0 >= 0.15
        push.close(linger=0)


def test_a_connecting_push_with_no_service_there_times_out(ctx: zmq.Context[Any]) -> None:
    # Frames are queued only on a live connection: none wait for a service that is not
    # there, to be discarded at close without a word.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    endpoint = f"tcp://127.0.0.1:{port}"
    with Publisher(endpoint, mode="push", bind=False, timeout=0.2, context=ctx) as push:
        with pytest.raises(TimeoutError, match="no PULL peer connected"):
            push.send_frame(np.zeros((2, 2), np.uint8), "p", 0)
        pull = ctx.socket(zmq.PULL)  # the service comes: the same frame goes through
        pull.bind(endpoint)
        push.send_frame(np.ones((2, 2), np.uint8), "p", 0)
        assert pull.poll(5000)
        expect(
            decode_message(pull.recv_multipart(), strict=True), np.ones((2, 2), np.uint8), "p", 0
        )
        pull.close(linger=0)


def test_wait_for_subscriber_times_out_clearly(ctx: zmq.Context[Any]) -> None:
    with Publisher(ANY_PORT, context=ctx) as pub:
        with pytest.raises(TimeoutError, match="no subscriber to topic b'frame'"):
            pub.wait_for_subscriber(timeout=0.1)
        assert pub.subscribers == 0


def test_wait_for_subscriber_ignores_other_topics(ctx: zmq.Context[Any]) -> None:
    with (
        Publisher(ANY_PORT, context=ctx) as pub,
        Subscriber(pub.endpoint, topics=(b"denoised",), context=ctx),
    ):
        with pytest.raises(TimeoutError):
            pub.wait_for_subscriber(timeout=0.3)
        with Subscriber(pub.endpoint, topics=(b"fr",), context=ctx):  # a prefix matches
            pub.wait_for_subscriber(timeout=5)
            assert pub.subscribers == 1
            pub.wait_for_subscriber(timeout=0)  # already attached: returns at once


def test_wait_for_subscriber_needs_pub_mode(ctx: zmq.Context[Any]) -> None:
    with (
        Publisher(ANY_PORT, mode="push", context=ctx) as push,
        pytest.raises(RuntimeError, match="mode='pub'"),
    ):
        push.wait_for_subscriber(1)


def test_subscriber_timeout_and_iteration_end(ctx: zmq.Context[Any]) -> None:
    with (
        Publisher(ANY_PORT, context=ctx) as pub,
        Subscriber(pub.endpoint, topics=(b"status", b"denoised"), timeout=0.3, context=ctx) as sub,
    ):
        with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
            sub.recv(timeout=0.05)
        pub.topic = b"status"
        pub.wait_for_subscriber(timeout=5)
        status = encode_message(b"status", {"v": 1, "frames_in": 3, "paused": False})
        pub.socket.send_multipart(status)
        out = np.ones((2, 2), "<f4")
        pub.socket.send_multipart(
            encode_message(
                b"denoised",
                {"v": 1, "series": "s", "index": 0, "dtype": "<f4", "shape": [2, 2]},
                out,
            )
        )
        received = list(sub)  # ends after 0.3 s of silence
    assert [h.get("frames_in") for h, _ in received] == [3, None]
    assert received[0][1] is None
    np.testing.assert_array_equal(received[1][1], out)


def test_received_arrays_are_read_only_views(ctx: zmq.Context[Any]) -> None:
    big = np.arange(300 * 300, dtype="<f4").reshape(300, 300)
    with (
        Publisher(ANY_PORT, context=ctx) as pub,
        Subscriber(pub.endpoint, topics=(b"frame",), timeout=5, context=ctx) as sub,
    ):
        pub.wait_for_subscriber(5)
        pub.send_frame(big, "s", 0, copy=True)
        msg = sub.recv()
    assert msg.array is not None
    with pytest.raises(ValueError, match="read-only"):
        msg.array[0, 0] = 1
    assert msg.array.base is not None  # a view, not a copy
    np.testing.assert_array_equal(msg.array, big)


def test_subscriber_rejects_a_single_topic_string(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(TypeError, match="sequence of topics"):
        Subscriber(topics=b"denoised", context=ctx)  # type: ignore[arg-type]


def test_subscriber_needs_a_topic_and_refuses_a_typo(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(ValueError, match="at least one topic"):
        Subscriber("tcp://127.0.0.1:5556", topics=(), context=ctx)
    with pytest.raises(ValueError, match="no topic starts with b'triggers'"):
        Subscriber("tcp://127.0.0.1:5556", topics=(b"triggers",), context=ctx)
    Subscriber("tcp://127.0.0.1:5556", topics=(b"trace", b""), context=ctx).close()  # prefixes


def test_publisher_rejects_unknown_mode(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(ValueError, match="'pub' or 'push'"):
        Publisher(ANY_PORT, mode="pair", context=ctx)  # type: ignore[arg-type]


SEND_AND_EXIT = """
import sys
import numpy as np
from deepdenoise_client import Publisher

push = Publisher(sys.argv[1], mode="push", bind=False, linger=60)
for i in range(int(sys.argv[2])):
    push.send_frame(np.full((1024, 1024), i, np.uint16), "last", i)
push.end("last")
"""


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "left-open"])
def test_a_script_that_exits_right_after_sending_loses_no_frame(
    ctx: zmq.Context[Any], closed: bool
) -> None:
    """A sender that exits right after its last send: close, or the exit for a publisher
    left open, waits for the queued frames. close returned at once, and the frames and
    the end still queued died with the process (an operator's trial: 2 runs in 10); a
    publisher left open aborted the process ("Bad address": pyzmq's exit freed the
    buffers of frames sent without a copy while ZeroMQ still sent them)."""
    import subprocess
    import sys

    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    frames_sent = 20
    script = SEND_AND_EXIT + ("push.close()\n" if closed else "")
    sender = subprocess.Popen(
        [sys.executable, "-c", script, f"tcp://127.0.0.1:{port}", str(frames_sent)]
    )
    try:
        indices = []
        while True:
            assert pull.poll(30_000), f"the sender's messages stopped after {indices}"
            msg = decode_message(pull.recv_multipart(), strict=True)
            if msg.header["kind"] == "end":
                break
            indices.append(msg.header["index"])
            time.sleep(0.02)  # a reader slower than the sender: its queue is full at exit
        assert indices == list(range(frames_sent))
        assert sender.wait(60) == 0
    finally:
        sender.kill()
        sender.wait()
        pull.close(linger=0)


DROP_UNCLOSED = """
import gc
import sys
import numpy as np
from deepdenoise_client import Publisher

def send_and_forget():
    push = Publisher(sys.argv[1], mode="push", bind=False, timeout=0.5, linger=float(sys.argv[2]))
    try:
        for i in range(100):
            push.send_frame(np.zeros((1024, 1024), np.uint16), "left", i)
    except TimeoutError:
        pass  # the service stopped reading: frames are queued

send_and_forget()
gc.collect()
print("collected", flush=True)
"""


@pytest.mark.parametrize("linger", ["0.5", "None"])
def test_a_publisher_dropped_unclosed_does_not_hang_behind_a_stalled_service(
    ctx: zmq.Context[Any], linger: str
) -> None:
    """A publisher collected without close(), frames queued for a service that stopped
    reading: its own context's end waited for ever (libzmq's default linger)."""
    import subprocess
    import sys

    stalled = ctx.socket(zmq.PULL)  # connected, never read
    stalled.setsockopt(zmq.RCVHWM, 1)
    port = stalled.bind_to_random_port("tcp://127.0.0.1")
    script = DROP_UNCLOSED.replace("float(sys.argv[2])", linger)
    sender = subprocess.Popen(
        [sys.executable, "-c", script, f"tcp://127.0.0.1:{port}"], stdout=subprocess.PIPE
    )
    try:
        out, _ = sender.communicate(timeout=60)  # a liveness bound: it hung for ever
        assert sender.returncode == 0 and out.strip() == b"collected"
    finally:
        sender.kill()
        sender.wait()
        stalled.close(linger=0)
