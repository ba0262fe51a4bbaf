"""The service end to end with a real engine, real sockets and real Zarr stores."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from deepdenoise_client import Control, ControlError, Publisher
from service_harness import (
    collect,
    events,
    listening,
    running_service,
    served,
    service_config,
    swap_mid_stream,
    wait_until,
)

from stream import ConfigError
from stream.store import ARRAY_PATHS


def _frames(n: int, shape: tuple[int, int], dtype: str = "<u2", seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return [rng.normal(100, 10, shape).astype(dtype) for _ in range(n)]
    info = np.iinfo(np.dtype(dtype))
    return [rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype) for _ in range(n)]


def _wait_series_closed(svc, sub, series: str) -> list:
    """Wait for series_end, then flush (which queues behind the store's close)."""
    seen = []
    while not events(seen, "series_end"):
        seen.append(sub.recv(timeout=10))
    assert svc.flush()
    return seen


@pytest.mark.parametrize("dtype", ["|u1", "<u2", "<i2", "<f4"])
def test_every_frame_comes_back_denoised_and_lands_on_disk(tmp_path: Path, identity_model, dtype):
    frames = _frames(12, (37, 53), dtype)
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        pub.start("run1")
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "run1", i, t_ns=1_000 + i, meta={"stage_z": i * 0.5})
        pub.end("run1")
        got, others = collect(sub, len(frames))
        others += _wait_series_closed(svc, sub, "run1")

    assert [m.header["index"] for m in got] == list(range(len(frames)))
    for sent, message in zip(frames, got, strict=True):
        assert message.array.dtype == np.float32
        np.testing.assert_array_equal(message.array, sent.astype(np.float32))
        h = message.header
        assert h["series"] == "run1" and h["dtype"] == "<f4" and h["shape"] == [37, 53]
        assert h["meta"] == {"stage_z": h["index"] * 0.5}
        assert h["t_ns"] == 1_000 + h["index"]
        assert h["t_recv_ns"] <= h["t_done_ns"]
        assert len(h["model"]) == 12
    assert events(others, "series_start")[0]["series"] == "run1"
    end = events(others, "series_end")[0]
    assert end["frames"] == len(frames) and end["missing"] == 0

    group = zarr.open_group(tmp_path / "data" / "run1.zarr", mode="r")
    raw, clean = group[ARRAY_PATHS["raw"]][:], group[ARRAY_PATHS["clean"]][:]
    assert raw.shape == (len(frames), 37, 53) and raw.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(raw, np.stack(frames))  # bit for bit
    np.testing.assert_array_equal(clean, np.stack([m.array for m in got]))
    assert group["valid"][:].all()
    np.testing.assert_array_equal(group["t_ns"][:], 1_000 + np.arange(len(frames)))


def test_gap_lines_in_the_log_are_rate_limited_as_their_events(
    tmp_path: Path,
    identity_model,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """A camera skipping every other index wrote 1,499 gap lines in 5 s while their
    events were rate-limited (an operator's trial): a gap whose event is suppressed is
    counted, not logged."""
    from stream.service._events import EventEmitter

    allow = EventEmitter._allow
    monkeypatch.setattr(
        EventEmitter, "_allow", lambda self, key: not key.startswith("gap:") and allow(self, key)
    )
    with (
        running_service(tmp_path, identity_model) as svc,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i in (0, 2, 4):
            pub.send_frame(_frames(1, (16, 16))[0], "skips", i)
        wait_until(lambda: svc.status()["series"].get("skips", {}).get("missing") == 2)
    assert "missing from index" not in caplog.text


@pytest.mark.parametrize(
    ("sent", "hole"),
    [([0, 1, 2, 3, 4, 8, 9], (5, 3)), ([3, 4, 5, 6, 7, 8, 9], (0, 3))],
    ids=["middle", "first-frame-past-0"],
)
def test_gaps_are_reported_and_left_as_holes(
    tmp_path: Path, identity_model, sent: list[int], hole: tuple[int, int]
):
    """A series whose first frame came past index 0 said missing, but no gap (a client
    developer's trial; so did a store a kill left empty, its series sent on)."""
    frames = _frames(10, (16, 16))
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i in sent:
            pub.send_frame(frames[i], "gappy", i)
        pub.end("gappy")
        got, others = collect(sub, len(sent))
        others += _wait_series_closed(svc, sub, "gappy")
        status = svc.status()

    assert [m.header["index"] for m in got] == sent
    gap = events(others, "gap")
    assert gap == [gap[0]] and (gap[0]["first_missing"], gap[0]["count"]) == hole
    assert status["series"]["gappy"]["missing"] == 3 and status["series"]["gappy"]["gaps"] == 1
    group = zarr.open_group(tmp_path / "data" / "gappy.zarr", mode="r")
    valid = group["valid"][:]
    assert valid.tolist() == [i in sent for i in range(10)]
    first, count = hole
    assert np.isnan(group[ARRAY_PATHS["clean"]][first : first + count]).all()
    np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][8], frames[8])


def test_output_in_input_dtype_is_rounded_and_clipped(tmp_path: Path, identity_model):
    frames = _frames(4, (20, 30), "<u2")
    with (
        running_service(tmp_path, identity_model, output_dtype="input", zarr=None) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "s", i)
        got, _ = collect(sub, len(frames))
    for sent, message in zip(frames, got, strict=True):
        assert message.header["dtype"] == "<u2"
        np.testing.assert_array_equal(message.array, sent)


@pytest.mark.parametrize("publish_raw", [False, True])
def test_raw_frames_are_published_only_when_asked(tmp_path: Path, box_model, publish_raw):
    frames = _frames(6, (12, 20), "<u2")
    with (
        running_service(tmp_path, box_model, zarr=None, publish_raw=publish_raw) as svc,
        listening(svc, (b"denoised", b"raw")) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=5) as ctl,
    ):
        for i in range(3):
            pub.send_frame(frames[i], "r", i, t_ns=5 + i, meta={"z": i})
        # a frame's raw message leaves (same queue, FIFO) before its denoised one
        denoised, others = collect(sub, 3)
        raw = [m for m in others if m.topic == b"raw"]
        if publish_raw:
            ctl.pause()  # raw frames are what came in: published while paused too
            for i in range(3, 6):
                pub.send_frame(frames[i], "r", i, t_ns=5 + i, meta={"z": i})
            raw += collect(sub, 6 - len(raw), b"raw")[0]
    if not publish_raw:
        assert raw == []
        return
    assert [m.header["index"] for m in raw] == list(range(6))
    for sent, message in zip(frames, raw, strict=True):
        np.testing.assert_array_equal(message.array, sent)  # exactly as received
        h = message.header
        assert h["dtype"] == "<u2" and h["t_ns"] == 5 + h["index"]
        assert h["meta"] == {"z": h["index"]} and "model" not in h and h["t_recv_ns"] > 0
    for message in denoised:  # the box model changed these: raw is not the denoised stream
        assert not np.array_equal(message.array, frames[message.header["index"]])


def test_the_follow_setting_reaches_every_engine_the_service_loads(
    tmp_path: Path, identity_model, caplog: pytest.LogCaptureFixture
):
    """And it is seen: in status, and in the log where a spatial model ignores it (a
    closed-loop user's trial: only denoise's summary said which was in effect)."""
    from stream.engine import shipped_model_path

    with running_service(tmp_path, identity_model, follow="events") as svc:
        assert svc.engine is not None and svc.engine.follow == "events"
        assert svc.status()["follow"] == "none"  # a spatial model: nothing to follow
        assert f"follow = 'events' does nothing for {identity_model.name}" in caplog.text
        svc.load_model(str(shipped_model_path("na-temporal")))
        assert svc.engine.follow == "events"  # a model loaded later follows the same
        assert svc.status()["follow"] == "events"


def test_control_pause_resume_flush_and_errors(
    tmp_path: Path, identity_model, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("INFO", logger="stream.service")
    frames = _frames(10, (8, 8))
    with running_service(tmp_path, identity_model) as svc, listening(svc) as sub:
        ctl = Control(svc.endpoints["control"], timeout=5)
        with ctl, Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
            assert ctl.pause()["paused"] is True
            for i in range(5):
                pub.send_frame(frames[i], "p", i)
            wait_until(lambda: svc.stats.snapshot()["frames_in"] == 5)
            assert ctl.status()["paused"] is True
            assert ctl.resume()["paused"] is False
            for i in range(5, 10):
                pub.send_frame(frames[i], "p", i)
            got, _ = collect(sub, 5)
            ctl.flush()
            # a frame is counted out once sent: the subscriber may hold it a moment earlier
            wait_until(lambda: ctl.status()["frames_out"] == 5)
            status = ctl.status()
            with pytest.raises(ControlError, match="unknown cmd"):
                ctl.request("explode")
            with pytest.raises(ControlError, match="path"):
                ctl.request("load_model")
            with pytest.raises(ControlError, match="cannot load model"):
                ctl.load_model(str(tmp_path / "missing.onnx"))
            for reply in _nested_requests(svc.endpoints["control"]):
                # what came is shown cut short, not a RecursionError
                assert reply["ok"] is False and "Recursion" not in reply["error"]
                assert reply["error"].startswith(("expected a map", "set_rois: expected"))
                assert len(reply["error"]) < 400
            assert ctl.status()["ok"] is True  # still serving after every error

    assert [m.header["index"] for m in got] == [5, 6, 7, 8, 9]
    assert status["dropped"] == {"paused": 5}
    assert status["frames_in"] == 10 and status["frames_out"] == 5
    for key in ("uptime_s", "rejected", "queues", "fps", "latency_ms", "provider", "model"):
        assert key in status
    assert status["provider"] == "cpu"
    # an operator's actions and a series' frames not denoised are in the log, the run's
    # record (they were in status only: an operator's trial)
    for line in ("control: pause done", "control: resume done", "control: flush done",
                 "control: load_model refused: cannot load model",
                 "control: request refused: unknown cmd 'explode'"):  # fmt: skip
        assert line in caplog.text, caplog.text
    assert caplog.text.count("unknown cmd 'explode'") == 1  # logged once
    ended = [r for r in caplog.records if "series 'p' ended" in r.getMessage()]
    assert ended and ended[0].levelname == "WARNING"
    said = ended[0].getMessage()
    assert "10 frames received, 10 raw on disk, 5 denoised on disk (5 without their" in said
    # paused frames are still recorded raw, never denoised
    group = zarr.open_group(tmp_path / "data" / "p.zarr", mode="r")
    assert group["valid"][:10].all()
    assert (
        np.isnan(group[ARRAY_PATHS["clean"]][:5]).all()
        and not np.isnan(group[ARRAY_PATHS["clean"]][5:10]).any()
    )


def _nested_requests(endpoint: str) -> list[dict]:
    """Replies to requests with a value nested 1000 deep: valid msgpack, but its plain
    repr exceeds Python's recursion limit."""
    import msgpack
    import zmq

    deep = b"\x91" * 1000 + b"\x00"
    requests = [
        b"\x81" + msgpack.packb("cmd") + deep,
        b"\x82" + msgpack.packb("cmd") + msgpack.packb("set_rois") + msgpack.packb("series") + deep,
    ]
    replies = []
    with zmq.Context() as ctx:
        for request in requests:
            with ctx.socket(zmq.REQ) as req:
                req.setsockopt(zmq.RCVTIMEO, 5000)
                req.connect(endpoint)
                req.send(request)
                replies.append(msgpack.unpackb(req.recv()))
    return replies


def test_load_model_mid_stream_loses_nothing(tmp_path: Path, identity_model, box_model):
    n, hold_at = 150, 100
    with running_service(tmp_path, identity_model, zarr=None) as svc:
        identity_id = svc.engine.model_id
        got, reply, status = swap_mid_stream(svc, _frames(n, (32, 32)), box_model, 30, hold_at)

    assert [m.header["index"] for m in got] == list(range(n))
    models = [m.header["model"] for m in got]
    assert reply["model"] != identity_id
    switch = models.index(reply["model"])
    assert 30 <= switch <= hold_at
    assert models[:switch] == [identity_id] * switch
    assert models[switch:] == [reply["model"]] * (n - switch)
    assert status["dropped"] == {} and status["frames_out"] == n
    assert status["model"] == reply["model"]


def _blocks16_model(path: Path) -> Path:
    """y = x, but only for sides in multiples of 16 (SpaceToDepth and back): it passes a
    64x64 warm-up and the engine's batch of 48x80 tiles, and fails on a 24x40 frame."""
    import onnx
    from onnx import TensorProto, helper

    from stream.engine import ModelMetadata

    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1, "H", "W"])
             for n in ("x", "y")]  # fmt: skip
    nodes = [
        helper.make_node("SpaceToDepth", ["x"], ["d"], blocksize=16),
        helper.make_node("DepthToSpace", ["d"], ["y"], blocksize=16),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "blocks16", [value[0]], [value[1]]),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    helper.set_model_props(model, ModelMetadata(receptive_field=1).to_props())
    onnx.save(model, path)
    return path


def test_load_model_refuses_a_model_that_fails_on_the_streaming_frames(
    tmp_path: Path, identity_model
):
    """The new model is warmed up on the shapes of the series streaming now before the
    swap: one that fails on them is refused, and the old one goes on, nothing lost."""
    blocks16 = _blocks16_model(tmp_path / "blocks16.onnx")
    frames = _frames(20, (24, 40))
    with (
        running_service(
            tmp_path, identity_model, zarr=None, warmup_shape=(64, 64), model_dirs=[tmp_path]
        ) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=60) as ctl,
    ):
        for i in range(10):
            pub.send_frame(frames[i], "s", i)
        got, _ = collect(sub, 10)
        with pytest.raises(ControlError, match="failed its 24x40 warm-up run"):
            ctl.load_model(str(blocks16))
        for i in range(10, 20):
            pub.send_frame(frames[i], "s", i)
        got += collect(sub, 10)[0]
        wait_until(lambda: svc.status()["frames_out"] == 20)
        status = svc.status()
    assert [m.header["index"] for m in got] == list(range(20))
    assert {m.header["model"] for m in got} == {status["model"]}
    assert status["dropped"] == {}


def test_status_is_answered_while_a_slow_command_runs(tmp_path: Path, identity_model, box_model):
    """load_model (a TensorRT build can take minutes), flush and set_rois run beside the
    control loop: another client's status is answered meanwhile, and the slow command's
    reply still reaches its own client; status says what is loading. The model's load
    is held (in the service's engine factory) until status was answered."""
    import threading

    release = threading.Event()
    with running_service(tmp_path, identity_model, zarr=None) as svc:
        real_load = svc._load_engine

        def held_load(model, provider=None):  # type: ignore[no-untyped-def]
            assert release.wait(30), "status was not answered while the load was held"
            return real_load(model, provider)

        svc._load_engine = held_load  # type: ignore[method-assign]
        replies: dict[str, dict] = {}  # type: ignore[type-arg]

        def load() -> None:
            with Control(svc.endpoints["control"], timeout=60) as slow:
                replies["load"] = slow.load_model(str(box_model))

        loader = threading.Thread(target=load)
        loader.start()
        with Control(svc.endpoints["control"], timeout=10) as ctl:
            wait_until(lambda: (ctl.status()["loading"] or {}).get("path") == str(box_model))
            assert replies.get("load") is None  # still held
            replies["status"] = ctl.pause()  # another quick command, while held
            release.set()
            loader.join(60)
            status = ctl.status()
    assert status["model"] == replies["load"]["model"] and status["loading"] is None
    assert replies["status"] == {"ok": True, "paused": True}
    assert replies["load"]["ok"] is True


def test_a_slow_command_under_way_when_the_service_stops_is_answered(
    tmp_path: Path, identity_model, box_model
):
    """A stop while load_model warmed a model up: its client waited for a reply that
    never came, and the process sometimes aborted as it exited with a thread inside
    ONNX Runtime (a new user's trial). Now the stop waits for the command, whose reply
    says the model was not taken. The load is held (in the service's engine factory)
    until the inference stage has stopped."""
    import threading

    from stream.service import Service

    release = threading.Event()
    svc = Service(service_config(tmp_path, identity_model, zarr=None))
    svc.start()
    real_load = svc._load_engine

    def held_load(model, provider=None):  # type: ignore[no-untyped-def]
        assert release.wait(30), "the stop never reached the inference stage"
        return real_load(model, provider)

    svc._load_engine = held_load  # type: ignore[method-assign]
    replies: dict[str, object] = {}

    def load() -> None:
        with Control(svc.endpoints["control"], timeout=60) as slow:
            try:
                replies["load"] = slow.load_model(str(box_model))
            except ControlError as exc:
                replies["load"] = exc

    loader = threading.Thread(target=load)
    loader.start()
    with Control(svc.endpoints["control"], timeout=10) as ctl:
        wait_until(lambda: (ctl.status()["loading"] or {}).get("path") == str(box_model))
    stopper = threading.Thread(target=svc.stop, kwargs={"timeout": 2.0})
    stopper.start()
    wait_until(lambda: not svc._threads["inference"].is_alive())
    # held past the stop's own timeout for each stage: a stop that gave up on the
    # control thread terminated the ZeroMQ context under its last reply, and hung
    time.sleep(3.0)
    release.set()
    loader.join(60)
    stopper.join(60)
    assert not loader.is_alive() and not stopper.is_alive()
    refused = replies["load"]
    assert isinstance(refused, ControlError), refused
    assert "stopped" in str(refused) and "did not take the model" in str(refused)


def test_a_slow_command_not_begun_when_the_service_stops_is_refused() -> None:
    """Queued behind one under way, it got no reply at all."""
    import queue
    import threading

    import msgpack

    from stream.service._control import ControlHandler

    slow: queue.Queue[tuple[list[bytes], bytes] | None] = queue.Queue()
    done: queue.Queue[tuple[list[bytes], bytes]] = queue.Queue()
    closing = threading.Event()
    closing.set()
    slow.put(([b"peer", b""], msgpack.packb({"cmd": "flush"})))
    slow.put(None)
    ControlHandler(None)._work(slow, done, closing)  # type: ignore[arg-type]
    envelope, reply = done.get_nowait()
    assert envelope == [b"peer", b""]
    assert msgpack.unpackb(reply) == {
        "ok": False,
        "error": "the service is stopping: flush was not run",
    }


def test_drop_oldest_counts_every_frame(tmp_path: Path, slow_model):
    """Under overload the live queue drops the oldest frames: counted, raw still on disk."""
    n = 40
    frames = _frames(n, (128, 128))
    with running_service(
        tmp_path,
        slow_model,
        queues={"inference_overflow": "drop_oldest", "inference_depth": 1},
    ) as svc:
        with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
            for i, frame in enumerate(frames):
                pub.send_frame(frame, "burst", i)
            pub.end("burst")
        wait_until(lambda: svc.stats.snapshot()["frames_in"] == n)
        wait_until(
            lambda: (
                (s := svc.stats.snapshot())["frames_out"]
                + s["dropped"].get("inference_queue_full", 0)
                == n
            ),
            timeout=60,
        )
        svc.flush()
    group = zarr.open_group(tmp_path / "data" / "burst.zarr", mode="r")
    assert group["valid"][:].all()
    np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][:], np.stack(frames))


def test_a_noise_adaptive_model_is_served_with_a_live_camera_estimate(
    tmp_path: Path, conv_model_adaptive
):
    rng = np.random.default_rng(2)
    frames = [(100 + 2 * rng.poisson(50.0, (48, 48))).astype("<u2") for _ in range(10)]
    with (
        running_service(tmp_path, conv_model_adaptive, zarr=None) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "live", i)
        got, _ = collect(sub, len(frames))
        series = svc.status()["series"]["live"]
    assert all(np.isfinite(m.array).all() for m in got)
    camera = series["camera"]
    assert camera["source"] in ("spatial", "temporal") and camera["frames"] == len(frames)
    assert camera["gain"] > 0 and camera["read_noise"] > 0
    assert series["history_bytes"] == 48 * 48 * 4  # the model takes 2 frames: 1 kept
    assert series["scene_changes"] == 0 and series["camera"]["moved"] == 0
    assert series["scene_shifts"] == 0  # a still scene: the ring is never moved


def test_a_temporal_model_follows_a_jittering_scene_and_status_says_so(
    tmp_path: Path, conv_model_adaptive
):
    """Beads jittering 2-4 px between frames, served live: the previous frame the model
    takes is moved with the scene, every move is counted in status, none dropped."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:160, :160]
    field = np.zeros((160, 160))
    for cy, cx in rng.uniform(0, 160, (32, 2)):
        field += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    path = [(0, 0), (3, -2), (0, 2), (-3, 0), (2, 3), (-2, -3)]
    frames = [
        (100 + rng.poisson(60.0 * field[16 - dy : 144 - dy, 16 - dx : 144 - dx])).astype("<u2")
        for dy, dx in path
    ]
    got, status = served(tmp_path, conv_model_adaptive, frames, "moving")
    series = status["series"]["moving"]
    assert len(got) == len(frames) and all(np.isfinite(m.array).all() for m in got)
    assert series["scene_shifts"] == len(frames) - 1 and series["scene_changes"] == 0


def test_a_configured_camera_is_used_as_is(tmp_path: Path, conv_model_adaptive):
    camera = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}
    frame = (100 + 2 * np.random.default_rng(3).poisson(50.0, (32, 32))).astype("<u2")
    with (
        running_service(tmp_path, conv_model_adaptive, zarr=None, camera=camera) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        pub.send_frame(frame, "cfg", 0)
        collect(sub, 1)
        reported = svc.status()["series"]["cfg"]["camera"]
    assert reported == {**camera, "source": "configured"}


def test_noisy_pixels_are_counted(tmp_path: Path, conv_model_adaptive):
    """A pixel far noisier than its neighbours (an sCMOS's read-noise tail) is counted in
    the series' status."""
    rng = np.random.default_rng(5)
    frames = [(100 + rng.poisson(4.0, (32, 32))).astype("<u2") for _ in range(6)]
    for frame in frames:
        frame[7, 9] = np.clip(np.rint(104 + rng.normal(0.0, 40.0)), 0, None)
    got, status = served(tmp_path, conv_model_adaptive, frames, "noisy")
    assert len(got) == 6 and status["series"]["noisy"]["noisy_pixels"] == 1


def test_row_noise_is_reported(tmp_path: Path, conv_model_adaptive):
    """Rows offset anew every frame (a CMOS's banding) far above what the pixels' noise
    would give them are reported, and taken out; a series without them reports none."""
    rng = np.random.default_rng(6)
    flat = [100 + rng.poisson(4.0, (48, 48)) for _ in range(6)]
    banded = [np.rint(f + rng.normal(0.0, 3.0, (48, 1))).astype("<u2") for f in flat]
    got, status = served(tmp_path, conv_model_adaptive, banded, "banded")
    rows = status["series"]["banded"]["row_noise"]
    assert len(got) == 6 and rows["corrected"] and rows["rms"] == pytest.approx(3.0, rel=0.3)
    plain = [f.astype("<u2") for f in flat]
    _, status = served(tmp_path / "plain", conv_model_adaptive, plain, "plain")
    assert status["series"]["plain"]["row_noise"]["corrected"] is False


def test_a_fixed_column_pattern_is_reported(tmp_path: Path, conv_model_adaptive):
    """Columns offset alike in every frame (a CMOS's column amplifiers) far above what
    the pixels' noise gives a column's mean are reported, and taken out; rows are not."""
    rng = np.random.default_rng(7)
    columns = rng.normal(0.0, 3.0, 64)
    frames = [
        np.rint(100 + rng.poisson(4.0, (64, 64)) + rng.normal(0, 2, (64, 64)) + columns)
        for _ in range(6)
    ]
    got, status = served(
        tmp_path, conv_model_adaptive, [f.astype("<u2") for f in frames], "columns"
    )
    patterns = status["series"]["columns"]["line_patterns"]
    assert len(got) == 6 and patterns["columns"]["corrected"] and not patterns["rows"]["corrected"]
    assert patterns["columns"]["rms"] == pytest.approx(3.0, rel=0.3)


def test_an_offset_map_is_subtracted_and_reported(tmp_path: Path, conv_model_adaptive):
    """``offset_map``: a dark-frame average whose pattern leaves every frame of its shape
    before the model (frames of another shape are counted and left alone: see
    tests/camera/test_offset_pattern.py); a bad file stops the start with what was
    expected."""
    rng = np.random.default_rng(7)
    average = 100 + rng.normal(0.0, 2.0, (32, 32))
    np.save(tmp_path / "offset.npy", average)
    frames = [(100 + rng.poisson(4.0, (32, 32))).astype("<u2") for _ in range(3)]
    got, status = served(
        tmp_path, conv_model_adaptive, frames, "dsnu", offset_map=tmp_path / "offset.npy"
    )
    assert len(got) == 3
    report = status["offset_map"]
    assert report["frames"] == 3 and report["other_shape"] == 0 and report["shape"] == [32, 32]
    assert report["rms"] == pytest.approx(np.std(average), rel=1e-3)
    (tmp_path / "bad.npy").write_text("no")
    with pytest.raises(ConfigError, match=r"offset map .*bad\.npy"):
        served(tmp_path, conv_model_adaptive, frames, "bad", offset_map=tmp_path / "bad.npy")


def test_a_region_masked_with_0_is_given_back_as_it_came_and_counted(
    tmp_path: Path, conv_model_adaptive
):
    camera = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}
    rng = np.random.default_rng(5)
    frames = [(100 + 2 * rng.poisson(20.0, (32, 32))).astype("<u2") for _ in range(3)]
    for frame in frames:
        frame[:, 24:] = 0  # a zero-filled border, 8 columns
    got, status = served(tmp_path, conv_model_adaptive, frames, "fov", camera=camera)
    series = status["series"]["fov"]
    assert series["masked"] == 32 * 8 and series["frames_masked"] == 3
    for message in got:
        assert (message.array[:, 24:] == 0).all()
        assert message.header.get("non_finite", 0) == 0


def test_a_bidirectional_scans_lag_is_reported_and_frames_keep_their_shape(
    tmp_path: Path, conv_model_adaptive
):
    from scipy import ndimage

    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 3.0}
    rng = np.random.default_rng(6)
    spots = np.zeros((64, 64))
    spots[rng.integers(0, 64, 20), rng.integers(0, 64, 20)] = 1.0
    scene = 20.0 + 4000.0 * ndimage.gaussian_filter(spots, 3.0)
    scene[1::2] = np.roll(scene[1::2], 2, axis=1)  # odd lines 2 px behind
    frames = [(100 + rng.poisson(scene)).astype("<u2") for _ in range(3)]
    got, status = served(tmp_path, conv_model_adaptive, frames, "scan", camera=camera)
    assert status["series"]["scan"]["scan_lag"] == 2
    assert [m.array.shape for m in got] == [(64, 64)] * 3
    assert all(np.isfinite(m.array).all() for m in got)


@pytest.mark.parametrize("spikes", ["correct", "pass"])
def test_hot_pixels_are_kept_from_the_model_and_counted(
    tmp_path: Path, conv_model_adaptive, spikes: str
):
    camera = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}
    rng = np.random.default_rng(4)
    frames = [(100 + 2 * rng.poisson(50.0, (32, 32))).astype("<u2") for _ in range(3)]
    for frame in frames:
        frame[10, 12] = 9000  # a hot pixel, 45x the scene
    got, status = served(tmp_path, conv_model_adaptive, frames, "hot", camera=camera, spikes=spikes)
    series = status["series"]["hot"]
    assert series["spikes"] == 1 and series["frames_with_spikes"] == 3
    assert series["noisy_pixels"] == 0  # hot, not noisy: the same every frame
    for message in got:
        if spikes == "pass":
            assert message.array[10, 12] == 9000.0
        else:  # the model's estimate of the scene there, like its neighbours'
            assert abs(message.array[10, 12] - np.median(message.array)) < 100


def test_a_running_mean_model_is_served_with_its_series_mean(
    tmp_path: Path, conv_model_running_mean
):
    """The service keeps each series' running mean (counted in status) and denoises
    exactly as a SeriesContext does, across a gap."""
    from stream.camera import CameraModel
    from stream.engine import Engine, SeriesContext

    camera = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}
    rng = np.random.default_rng(4)
    frames = [(100 + 2 * rng.poisson(50.0, (40, 40))).astype("<u2") for _ in range(8)]
    indices = [0, 1, 2, 3, 5, 6, 7, 8]  # a gap after 3: the mean restarts
    with (
        running_service(tmp_path, conv_model_running_mean, zarr=None, camera=camera) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in zip(indices, frames, strict=True):
            pub.send_frame(frame, "mean", i)
        got, _ = collect(sub, len(frames))
        series = svc.status()["series"]["mean"]
    assert series["history_bytes"] == 2 * 40 * 40 * 4  # one previous frame and the mean
    context = SeriesContext(CameraModel(**camera), blend="off")  # as the harness serves
    with Engine(conv_model_running_mean, provider="cpu", warmup_shape=None) as engine:
        expected = [context.denoise(engine, f, i) for i, f in zip(indices, frames, strict=True)]
    by_index = {m.header["index"]: m.array for m in got}
    for i, want in zip(indices, expected, strict=True):
        np.testing.assert_allclose(by_index[i], want, rtol=1e-5, atol=1e-3)


def test_frames_whose_dim_part_is_denoised_apart_are_counted(tmp_path: Path, conv_model_adaptive):
    """A frame 200x brighter on 4 % of its pixels than elsewhere: its dim part gets its
    own pass (stream.engine.dim_part_level), counted per series; an even frame not."""
    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 2.0}
    rng = np.random.default_rng(6)
    level = np.full((32, 32), 20.0)
    level[4:10, 4:10] = 4000.0
    frames = [(100 + rng.poisson(level)).astype("<u2") for _ in range(3)]
    _, status = served(tmp_path, conv_model_adaptive, frames, "hdr", camera=camera)
    assert status["series"]["hdr"]["frames_two_scales"] == 3
    even = [(100 + rng.poisson(20.0, (32, 32))).astype("<u2") for _ in range(2)]
    _, status = served(tmp_path, conv_model_adaptive, even, "even", camera=camera)
    assert status["series"]["even"]["frames_two_scales"] == 0


def test_a_temporal_models_still_bright_pixels_are_reported(tmp_path: Path):
    """na-temporal with the blend on, a still scene at 3000 photons: most pixels are mixed
    with their raw mean (stream.engine._still_means) and status says how many; the same
    stream with the blend off is served as the network gives it."""
    from stream.engine import shipped_model_path

    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 3.0}
    rng = np.random.default_rng(7)
    frames = [(100 + rng.poisson(3000.0, (32, 32))).astype("<u2") for _ in range(4)]
    model = shipped_model_path("na-temporal")
    _, status = served(tmp_path, model, frames, "bright", camera=camera, blend="spatial")
    still = status["series"]["bright"]["still_means"]
    assert still["share"] > 0.5 and still["frames"] >= 2 and still["model_error"] > 0
    _, status = served(tmp_path, model, frames, "plain", camera=camera)
    assert status["series"]["plain"]["still_means"] == {
        "share": 0.0, "frames": 0.0, "model_error": None,
    }  # fmt: skip
