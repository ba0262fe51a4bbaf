"""The simulated microscope over real loopback sockets (tcp port 0 and ipc)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from pydantic import ValidationError

from stream import ConfigError, ServiceTimeoutError
from stream.protocol import Frame, Limits, SeriesMark, decode_input
from stream.sim import Simulator, SimulatorConfig, SimulatorReport
from stream.sim import _simulator as simulator_module

ANY_PORT = "tcp://127.0.0.1:0"
SHAPE = (24, 40)


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)  # closes what a failed test left open


def _config(**kw: Any) -> SimulatorConfig:
    base: dict[str, Any] = {"endpoint": ANY_PORT, "shape": SHAPE, "fps": 0, "frames": 12}
    return SimulatorConfig.model_validate({**base, **kw})


def _receiver(ctx: zmq.Context[Any], endpoint: str, kind: int, *, bind: bool = False) -> Any:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"frame")
    sock.bind(endpoint) if bind else sock.connect(endpoint)
    return sock


def _drain(sock: Any, delay_s: float = 0.0) -> list[Frame | SeriesMark]:
    """Decode messages until ``end`` (or a 5 s silence, which fails the caller's checks)."""
    out: list[Frame | SeriesMark] = []
    while True:
        try:
            parts = sock.recv_multipart(copy=False)
        except zmq.Again:
            return out
        message = decode_input([p.buffer for p in parts], Limits())
        out.append(message)
        if isinstance(message, SeriesMark) and message.kind == "end":
            return out
        time.sleep(delay_s)


def _frames(messages: list[Frame | SeriesMark]) -> list[Frame]:
    return [m for m in messages if isinstance(m, Frame)]


class _Sender(threading.Thread):
    """Runs ``sim.run`` in the background and keeps its report or error."""

    def __init__(self, sim: Simulator, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.sim, self.kw = sim, kw
        self.report: SimulatorReport | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.report = self.sim.run(**self.kw)
        except BaseException as exc:
            self.error = exc

    def result(self) -> SimulatorReport:
        self.join(10)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def _check_stream(messages: list[Frame | SeriesMark], sim: Simulator, n: int) -> None:
    assert isinstance(messages[0], SeriesMark)
    assert messages[0].kind == "start"
    assert isinstance(messages[-1], SeriesMark)
    assert messages[-1].kind == "end"
    frames = _frames(messages)
    assert [f.index for f in frames] == list(range(n))  # every frame, once, in order
    for f in frames:
        assert f.topic == b"frame"
        assert f.series == sim.config.series
        np.testing.assert_array_equal(f.pixels, sim.frame(f.index))
    stamps = [f.t_ns for f in frames]
    assert all(t is not None for t in stamps)
    assert stamps == sorted(stamps)  # type: ignore[type-var]


# -- PUB -> SUB ---------------------------------------------------------------------------


def test_pub_waits_for_a_subscriber_connected_before_run(ctx):
    with Simulator(_config(frames=30), context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        report = sim.run()  # blocks until the subscription arrives, so nothing is lost
        messages = _drain(sub)
        sub.close()
    assert report.frames == 30
    assert not report.stopped
    assert report.endpoint == sim.endpoint != ANY_PORT
    _check_stream(messages, sim, 30)


def test_pub_subscriber_joining_late_still_gets_every_frame(ctx):
    with Simulator(_config(frames=25, fps=500), context=ctx) as sim:
        sender = _Sender(sim)
        sender.start()
        time.sleep(0.3)  # the simulator is waiting, not sending into the void
        assert sender.is_alive()
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        messages = _drain(sub)
        report = sender.result()
        sub.close()
    assert report.frames == 25
    _check_stream(messages, sim, 25)


@pytest.mark.skipif(sys.platform == "win32", reason="ipc transport")
def test_pub_subscriber_connected_before_the_bind(ctx, tmp_path: Path):
    endpoint = f"ipc://{tmp_path / 'sim.ipc'}"
    sub = _receiver(ctx, endpoint, zmq.SUB)  # connects first; ZeroMQ retries until the bind
    with Simulator(_config(endpoint=endpoint, frames=10), context=ctx) as sim:
        sim.run()
        messages = _drain(sub)
    sub.close()
    _check_stream(messages, sim, 10)


def test_pub_without_subscriber_times_out_clearly(ctx):
    with Simulator(_config(wait_subscriber_s=0.3), context=ctx) as sim:
        other = ctx.socket(zmq.SUB)
        other.setsockopt(zmq.SUBSCRIBE, b"status")  # a subscription that matches nothing sent
        other.connect(sim.endpoint)
        with pytest.raises(ServiceTimeoutError, match="no subscriber for topic 'frame'") as err:
            sim.run()
        other.close()
    assert isinstance(err.value, TimeoutError)
    assert sim.endpoint in str(err.value)
    assert "within 0.3 s" in str(err.value)


def test_pub_nodrop_back_pressures_a_slow_subscriber(ctx):
    shape = (128, 256)  # 64 KiB of uint16: sent zero-copy
    cfg = _config(shape=shape, frames=40, pool=4, sndhwm=2, nodrop=True, send_timeout_s=5)
    with Simulator(cfg, context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 2)
        sender = _Sender(sim)
        sender.start()
        messages = _drain(sub, delay_s=0.002)
        sender.result()
        sub.close()
    _check_stream(messages, sim, 40)


# -- PUSH -> PULL -------------------------------------------------------------------------


@pytest.mark.parametrize("bind", [True, False])
def test_push_to_pull_delivers_every_frame(ctx, bind):
    endpoint = ANY_PORT
    pull = None
    if not bind:  # the receiver binds, the simulator connects (the service's default)
        pull = _receiver(ctx, ANY_PORT, zmq.PULL, bind=True)
        endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
    cfg = _config(mode="push", bind=bind, endpoint=endpoint, frames=20, pool=5)
    with Simulator(cfg, context=ctx) as sim:
        if pull is None:
            pull = _receiver(ctx, sim.endpoint, zmq.PULL)
        sender = _Sender(sim)
        sender.start()
        messages = _drain(pull)
        report = sender.result()
        pull.close()
    assert report.frames == 20
    _check_stream(messages, sim, 20)


def test_push_without_peer_times_out_clearly(ctx):
    with (
        Simulator(_config(mode="push", wait_subscriber_s=0.3), context=ctx) as sim,
        pytest.raises(ServiceTimeoutError, match=r"sending start to tcp://127\.0\.0\.1:\d+"),
    ):
        sim.run()


# -- content, pacing, control -------------------------------------------------------------


def test_pool_cycles_frames_and_headers_carry_the_ground_truth_index(ctx):
    with Simulator(_config(frames=11, pool=4, start_index=3), context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        sim.run()
        frames = _frames(_drain(sub))
        sub.close()
    assert [f.index for f in frames] == list(range(3, 14))
    by_index = {f.index: f for f in frames}
    np.testing.assert_array_equal(by_index[9].pixels, by_index[5].pixels)  # 9 % 4 == 5 % 4
    assert not np.array_equal(by_index[5].pixels, by_index[6].pixels)
    for f in frames:
        assert f.header["meta"] == {"sim": True, "truth": f.index % 4}
        assert f.header["dtype"] == "<u2"
        assert f.header["shape"] == list(SHAPE)
    np.testing.assert_array_equal(sim.ground_truth(9), sim.phantom.expected_camera(1))
    residual = by_index[9].pixels - sim.ground_truth(9)  # camera noise around the truth
    assert abs(float(residual.mean())) < 3 * float(residual.std()) / np.sqrt(residual.size)


@pytest.mark.parametrize(
    ("dtype", "wire"), [("uint8", "|u1"), ("int16", "<i2"), ("float32", "<f4")]
)
def test_live_frames_in_other_dtypes(ctx, dtype, wire):
    noise = {"gain": 0.5, "offset": 10.0} if dtype == "uint8" else {}
    cfg = _config(frames=4, dtype=dtype, phantom={"noise": noise})
    with Simulator(cfg, context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        sim.run()
        frames = _frames(_drain(sub))
        sub.close()
    assert [f.header["dtype"] for f in frames] == [wire] * 4
    np.testing.assert_array_equal(frames[2].pixels, sim.frame(2))  # live noise is reproducible
    np.testing.assert_array_equal(
        Simulator(cfg).frame(2), sim.frame(2)
    )  # a pure function of (config, index)


def test_frames_are_paced_on_deadlines_one_period_apart(ctx, monkeypatch: pytest.MonkeyPatch):
    deadlines: list[float] = []

    def record(deadline: float, stop: threading.Event | None) -> bool:
        deadlines.append(deadline)  # no sleeping: the schedule, not the clock, is tested
        return False

    monkeypatch.setattr(simulator_module, "_sleep_until", record)
    with Simulator(_config(frames=20, fps=100, pool=2), context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        report = sim.run()
        frames = _frames(_drain(sub))
        sub.close()
    assert report.frames == len(frames) == 20
    # deadline i is i periods after the first, whatever time sending took
    assert np.allclose(np.diff(deadlines), 0.01) and len(deadlines) == 20


def test_stop_event_ends_an_endless_run_with_an_end_message(ctx):
    stop = threading.Event()
    seen: list[int] = []

    def progress(n: int) -> None:
        seen.append(n)
        if n == 15:
            stop.set()

    with Simulator(_config(frames=0, fps=1000, pool=3), context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        report = sim.run(progress=progress, stop=stop)
        messages = _drain(sub)
        sub.close()
    assert report.stopped
    assert report.frames == 15
    assert seen == list(range(1, 16))
    _check_stream(messages, sim, 15)


def test_live_noise_drawn_ahead_in_threads_keeps_order_and_stops_cleanly(ctx):
    with Simulator(_config(frames=9, workers=3), context=ctx) as sim:
        pull = _receiver(ctx, sim.endpoint, zmq.SUB)
        sim.run()
        _check_stream(_drain(pull), sim, 9)  # pixels equal sim.frame(i), in index order
        stop = threading.Event()
        endless = Simulator(_config(frames=0, workers=3, fps=0), context=ctx)
        with endless:
            sub = _receiver(ctx, endless.endpoint, zmq.SUB)
            report = endless.run(progress=lambda n: n == 7 and stop.set(), stop=stop)
            messages = _drain(sub)
        pull.close()
        sub.close()
    assert report.stopped
    assert report.frames == 7
    _check_stream(messages, endless, 7)


def test_stop_while_waiting_for_a_subscriber_returns_quietly(ctx):
    stop = threading.Event()
    stop.set()
    with Simulator(_config(), context=ctx) as sim:
        report = sim.run(stop=stop)
    assert report.stopped
    assert report.frames == 0


def test_send_frames_sends_exact_pixels_of_any_protocol_dtype(ctx):
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 255, (5, 7), dtype=np.uint8),
        rng.integers(-999, 999, (5, 7), dtype=np.int16),
        rng.standard_normal((3, 9)).astype(np.float32),
        rng.integers(0, 60000, (6, 4)).astype(">u2"),  # big-endian: sent little-endian
        np.asfortranarray(rng.integers(0, 60000, (6, 4)).astype(np.uint16)),
    ]
    with Simulator(_config(send_start_end=False), context=ctx) as sim:
        sub = _receiver(ctx, sim.endpoint, zmq.SUB)
        report = sim.send_frames(arrays, start_index=5)
        sub.setsockopt(zmq.RCVTIMEO, 500)
        messages = _drain(sub)
        with pytest.raises(ConfigError, match=r"expected 2-D frames .* got shape \(2, 2, 2\)"):
            sim.send_frames([np.zeros((2, 2, 2), np.uint16)])
        with pytest.raises(ConfigError, match="dtype int64"):
            sim.send_frames([np.zeros((2, 2), np.int64)])
        sub.close()
    assert report.frames == 5
    assert all(isinstance(m, Frame) for m in messages)  # no start/end asked for
    assert [m.index for m in _frames(messages)] == [5, 6, 7, 8, 9]
    for sent, got in zip(arrays, _frames(messages), strict=True):
        np.testing.assert_array_equal(got.pixels, sent)
        assert got.header["meta"] == {"sim": True}
    assert _frames(messages)[3].header["dtype"] == "<u2"


def test_sending_needs_an_open_simulator_and_a_free_endpoint(ctx):
    sim = Simulator(_config(), context=ctx)
    with pytest.raises(ConfigError, match="not open"):
        sim.run()
    with sim, pytest.raises(ConfigError, match="cannot bind"):
        Simulator(_config(endpoint=sim.endpoint), context=ctx).open()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("endpoint", "127.0.0.1:5555", r"expected a ZeroMQ endpoint .* got '127\.0\.0\.1:5555'"),
        ("series", "has space", r"expected a series name of 1-64 chars .* got 'has space'"),
        ("shape", (0, 10), r"each 1\.\.16384, got \(0, 10\)"),
        ("pool", 40_000, r"expected a pool of at most 8 GiB, got 40000 frames of 512x512"),
        ("mode", "pair", r"'pub' or 'push'"),
        ("fps", -1, r"greater than or equal to 0"),
    ],
)
def test_config_errors_say_what_was_expected_and_what_came(field, value, message):
    with pytest.raises(ValidationError, match=message):
        SimulatorConfig.model_validate({field: value})


def test_simulator_shape_and_seed_override_the_phantom_config():
    cfg = SimulatorConfig(shape=(33, 17), seed=9, frames=5, phantom={"shape": (64, 64), "seed": 1})
    sim = Simulator(cfg)
    assert sim.phantom.shape == (33, 17)
    assert sim.phantom.config.seed == 9
    assert sim.phantom.n_frames == 5  # live: the movie is as long as the run (capped)
    assert sim.truth_index(7) == 2
    assert Simulator(cfg.model_copy(update={"pool": 3})).truth_index(7) == 1
