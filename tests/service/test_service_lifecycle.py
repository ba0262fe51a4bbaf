"""Process-level lifecycle: SIGTERM flushes, a restart resumes the series."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from deepdenoise_client import Publisher, Subscriber
from service_harness import (
    ServeProcess,
    collect,
    events,
    listening,
    running_service,
    series_ended,
    wait_until,
)

from stream.store import ARRAY_PATHS

pytestmark = pytest.mark.slow

SHAPE = (64, 80)


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 4000, SHAPE, dtype="<u2") for _ in range(n)]


def test_sigterm_mid_stream_flushes_then_restart_resumes(tmp_path: Path, identity_model):
    frames = _frames(60)
    first = ServeProcess(tmp_path, identity_model)
    stop_sending = threading.Event()
    try:
        with Publisher(first.input, mode="push", bind=False, timeout=1.0) as pub:
            for i in range(30):
                pub.send_frame(frames[i], "long", i)
            wait_until(lambda: first.status()["frames_in"] == 30, timeout=30)

            def keep_sending() -> None:  # still streaming when SIGTERM lands
                for i in range(30, 40):
                    if stop_sending.is_set():
                        return
                    try:
                        pub.send_frame(frames[i], "long", i)
                    except TimeoutError:
                        return
                    time.sleep(0.01)

            sender = threading.Thread(target=keep_sending)
            sender.start()
            time.sleep(0.03)
            code = first.terminate()
            stop_sending.set()
            sender.join()
    finally:
        first.terminate()
    assert code == 0, first.log.read_text()

    group = zarr.open_group(tmp_path / "data" / "long.zarr", mode="r")
    valid = group["valid"][:]
    assert valid[:30].all()
    assert (
        group[ARRAY_PATHS["raw"]].shape[0] == int(np.flatnonzero(valid)[-1]) + 1
    )  # trimmed on close
    for i in np.flatnonzero(valid):
        np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][i], frames[i])
    clean = group[ARRAY_PATHS["clean"]][:30]
    np.testing.assert_array_equal(clean, np.stack(frames[:30]).astype(np.float32))

    second = ServeProcess(tmp_path, identity_model)
    try:
        with Subscriber(second.output, topics=(b"event", b"status")) as sub:
            while sub.recv(timeout=5).topic != b"status":
                pass
            with Publisher(second.input, mode="push", bind=False) as pub:
                pub.start("long")
                for i in range(40, 60):
                    pub.send_frame(frames[i], "long", i)
                pub.end("long")
            start = None
            while start is None:
                message = sub.recv(timeout=10)
                if message.header.get("event") == "series_start":
                    start = message.header
            wait_until(lambda: second.status()["frames_out"] == 20, timeout=30)
    finally:
        assert second.terminate() == 0, second.log.read_text()
    assert start["resumed"] is True
    group = zarr.open_group(tmp_path / "data" / "long.zarr", mode="r")
    valid = group["valid"][:]
    assert group[ARRAY_PATHS["raw"]].shape[0] == 60
    assert valid[:30].all() and valid[40:60].all()
    for i in range(40, 60):
        np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][i], frames[i])


@pytest.mark.parametrize("zarr_on", [True, False], ids=["store", "no-store"])
def test_a_series_ended_before_any_frame_still_reports_its_end(
    tmp_path: Path, identity_model, zarr_on: bool
):
    overrides = {} if zarr_on else {"zarr": None}
    with (
        running_service(tmp_path, identity_model, **overrides) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        pub.start("empty")
        pub.end("empty")  # it used to leave a series_start and no series_end with a store
        end = series_ended(sub, "empty")
    assert end["frames"] == 0 and end["missing"] == 0
    if zarr_on:
        assert end["stored"] == 0 and not (tmp_path / "data" / "empty.zarr").exists()
        assert end["lost"] == {"raw": 0, "clean": 0}  # the keys of every series_end (was {})


@pytest.mark.parametrize("zarr_on", [True, False], ids=["store", "no-store"])
def test_series_start_says_resumed_when_the_series_already_has_frames(
    tmp_path: Path, identity_model, zarr_on: bool
):
    frame = np.zeros((16, 16), "<u2")
    overrides = {} if zarr_on else {"zarr": None}
    with (
        running_service(tmp_path, identity_model, **overrides) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        pub.start("s")  # new
        pub.send_frame(frame, "s", 0)
        pub.start("s")  # again, while open: it has a frame
        pub.end("s")
        pub.send_frame(frame, "s", 1)  # after its end: continued by its next frame
        _, seen = collect(sub, 2)
        starts = events(seen, "series_start")
        while len(starts) < 3:
            starts += events([sub.recv(timeout=10)], "series_start")
    assert [(e["resumed"], e["implicit"]) for e in starts] == [
        (False, False),
        (True, False),
        (True, True),
    ]


def test_a_resumed_store_with_many_holes_leaves_live_gaps_their_events(
    tmp_path: Path, identity_model
):
    """The stored holes of a resumed series were reported as `gap` events under the live
    gaps' rate limit: with many of them, the live gaps that followed were never published
    (and the log had a line per hole)."""
    frame = np.zeros((16, 16), "<u2")
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i in range(0, 120, 2):  # 59 holes: 1, 3, ..., 117
            pub.send_frame(frame, "holes", i)
        pub.end("holes")
        _, seen = collect(sub, 60)
        series_ended(sub, "holes", seen)
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        pub.send_frame(frame, "holes", 200)  # live gaps: 119..199, then 201..299
        pub.send_frame(frame, "holes", 300)
        _, seen = collect(sub, 2)
        wanted = {(119, 81), (201, 99)}
        deadline = time.monotonic() + 30
        while not wanted <= {(g["first_missing"], g["count"]) for g in events(seen, "gap")}:
            assert time.monotonic() < deadline, events(seen, "gap")
            seen.append(sub.recv(timeout=10))
        status = svc.status()["series"]["holes"]
    stored = [g for g in events(seen, "gap") if g["first_missing"] < 119]
    assert stored and all(g["count"] == 1 for g in stored)  # rate-limited apart
    assert status["gaps"] == 59 + 2


@contextlib.contextmanager
def _connecting(
    tmp_path: Path, model: Path, endpoint: str, mode: str, **overrides: Any
) -> Iterator[tuple[Any, Any]]:
    """A service whose input connects to ``endpoint`` in ``mode``, and a subscriber."""
    with (
        running_service(
            tmp_path,
            model,
            zarr=None,
            input=endpoint,
            input_mode=mode,
            input_bind=False,
            **overrides,
        ) as svc,
        listening(svc) as sub,
    ):
        yield svc, sub


def _bound_anew(make: Any) -> Any:
    """``make()`` binding a port a socket just closed on: libzmq closes a listener after
    its context's end returns, and a bind may still race the kernel for a moment."""
    import zmq

    deadline = time.monotonic() + 10
    while True:
        try:
            return make()
        except zmq.ZMQError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("mode", "wrong", "right"), [("sub", "PUSH", "pub"), ("pull", "PUB", "push")]
)
def test_a_sender_of_the_wrong_socket_type_is_told_and_the_input_comes_back(
    tmp_path: Path, identity_model: Path, caplog: pytest.LogCaptureFixture, mode, wrong, right
):
    """A connecting input whose handshake failed (a PUSH sender for a sub input, say)
    was never connected again by libzmq: deaf for good, with nothing in the log (a
    user's trial). It is told, and the right sender on that endpoint is heard."""
    import logging

    import zmq

    wrong_ctx = zmq.Context()
    wrong_sender = wrong_ctx.socket(getattr(zmq, wrong))
    wrong_sender.setsockopt(zmq.LINGER, 0)
    endpoint = f"tcp://127.0.0.1:{wrong_sender.bind_to_random_port('tcp://127.0.0.1')}"
    frame = np.arange(64, dtype=np.uint16).reshape(8, 8)
    with (
        caplog.at_level(logging.WARNING, logger="stream.service._input_link"),
        _connecting(tmp_path, identity_model, endpoint, mode) as (_, sub),
    ):
        wait_until(lambda: "failed its ZeroMQ handshake" in caplog.text, 30)
        assert f"to {endpoint} failed" in caplog.text and f"not a {right.upper()}" in caplog.text
        wrong_ctx.destroy(linger=0)  # returns once its listener is closed
        with _bound_anew(lambda: Publisher(endpoint, mode=right, timeout=30)) as pub:
            if right == "pub":
                pub.wait_for_subscriber(30)
            pub.send_frame(frame, "heard", 0)
            (denoised,), _ = collect(sub, 1)
        np.testing.assert_array_equal(denoised.array, frame)


def test_an_acquisition_that_restarts_is_no_failed_handshake(
    tmp_path: Path, identity_model: Path, caplog: pytest.LogCaptureFixture
):
    """A sender that stops and comes back on its endpoint (a normal restart) is heard
    again as libzmq reconnects by itself: no warning, and no reconnect of ours (which
    would cut the new connection: a review)."""
    import logging

    import zmq

    probe = zmq.Context()
    free = probe.socket(zmq.PUB)
    port = free.bind_to_random_port("tcp://127.0.0.1")  # a free port, for the sender
    free.close(0)
    probe.term()
    endpoint = f"tcp://127.0.0.1:{port}"
    frame = np.arange(64, dtype=np.uint16).reshape(8, 8)
    with (
        caplog.at_level(logging.WARNING, logger="stream.service._input_link"),
        _connecting(tmp_path, identity_model, endpoint, "sub") as (svc, sub),
    ):
        for run in range(3):
            with _bound_anew(lambda: Publisher(endpoint, mode="pub")) as pub:
                pub.wait_for_subscriber(30)
                pub.send_frame(frame, f"run{run}", 0)
                collect(sub, 1)
        link = svc._receiver._link
        assert link is not None and link.reconnects == 0
    assert "failed its ZeroMQ handshake" not in caplog.text


@pytest.mark.parametrize("mode", ["sub", "pull"])
def test_an_oversized_message_does_not_leave_the_input_deaf(
    tmp_path: Path, identity_model: Path, caplog: pytest.LogCaptureFixture, mode: str
):
    """A message over the input's size limit makes libzmq end that connection, and
    never connect it again: the input stayed deaf, with nothing said (two users'
    trials; a frame of the largest shape the spec allows is over the default limit).
    It is told (log and an ``error`` event), and the sender's next frames are heard."""
    import logging

    sender = Publisher("tcp://127.0.0.1:0", mode="pub" if mode == "sub" else "push", timeout=30)
    small = np.arange(64, dtype=np.uint16).reshape(8, 8)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="stream.service._input_link"),
            _connecting(
                tmp_path, identity_model, sender.endpoint, mode,
                limits={"max_payload_bytes": 100_000},
            ) as (_, sub),
        ):  # fmt: skip
            if mode == "sub":
                sender.wait_for_subscriber(30)
            sender.send_frame(small, "before", 0)
            collect(sub, 1)
            sender.send_frame(np.zeros((256, 256), np.uint16), "over", 0)  # 128 KiB
            seen: list[Any] = []
            deadline = time.monotonic() + 30
            index = 0
            while not any(m.topic == b"denoised" for m in seen):  # a PUB sender's frames
                assert time.monotonic() < deadline, "the input stayed deaf"  # until then
                sender.send_frame(small + index, "after", index)  # are lost
                index += 1
                seen += _received(sub, 0.3)
            seen += _received(sub, 1.0)
    finally:
        sender.close(linger=0)
    heard = [m.header["series"] for m in seen if m.topic == b"denoised"]
    told = [e for e in events(seen, "error") if e.get("kind") == "input_dropped"]
    assert heard and set(heard) == {"after"}
    assert "was ended by ZeroMQ, which does not connect it again" in caplog.text
    assert "size limit (101024 bytes" in caplog.text
    assert told and sender.endpoint in told[0]["message"]


def _received(sub: Subscriber, seconds: float) -> list[Any]:
    """What ``sub`` receives in ``seconds``."""
    messages = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            messages.append(sub.recv(timeout=remaining))
        except TimeoutError:
            break
    return messages


def test_a_connection_to_no_zeromq_at_all_is_told(
    tmp_path: Path, identity_model: Path, caplog: pytest.LogCaptureFixture
):
    """An endpoint where something other than ZeroMQ answers (a web server on the port,
    say) fails every handshake, and libzmq retries it by itself: still told, where a
    first version of the oversized-message mend told only the failures it reconnected
    (a review; a wrong CURVE server key is retried alike)."""
    import logging
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def answer_in_http() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    answering = threading.Thread(target=answer_in_http)
    answering.start()
    endpoint = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        with (
            caplog.at_level(logging.WARNING, logger="stream.service._input_link"),
            _connecting(tmp_path, identity_model, endpoint, "sub"),
        ):
            wait_until(lambda: "failed its ZeroMQ handshake" in caplog.text, 30)
    finally:
        stop.set()
        answering.join()
        server.close()
    assert f"to {endpoint} failed" in caplog.text and "or no ZeroMQ at all" in caplog.text
