"""The blend in the service: measured in the series' spare time, never ahead of a frame
that waits, and reported in ``status``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deepdenoise_client import Publisher
from pydantic import ValidationError
from service_harness import collect, listening, running_service, served

from stream import ServiceConfig
from stream.engine import shipped_model_path
from stream.engine._series_blend import OUTPACED_AT_ONCE
from stream.service._ensemble import EnsemblePolicy
from stream.service._spare import CAP_S, FIRST_GUESS, REFUSED_TO_REPORT, SpareTime

KIND = ("model", (64, 64))


def test_spare_time_is_what_the_frames_leave_of_their_interval() -> None:
    spare = SpareTime()
    spare.frame_done("s", None, 0.01)  # a series' first frame: no interval yet
    assert not spare.allows("s", KIND, 0, 0.01)
    spare.frame_done("s", 0.1, 0.04)  # 60 ms left
    assert FIRST_GUESS == 2.0
    assert spare.allows("s", KIND, 0, 0.03)  # a step's first guess: 2 x 30 ms
    assert not spare.allows("s", KIND, 0, 0.031)  # 2 x 31 ms > 60
    assert not spare.allows("s", KIND, 1, 0.001)  # a frame waits: never
    spare.spent("s", KIND, 0.05)  # 10 ms left; a step costs 50 ms from now on
    assert not spare.allows("s", KIND, 0, 0.001)
    for _ in range(3):
        spare.frame_done("s", 0.1, 0.09)  # 10 ms a frame
    assert not spare.allows("s", KIND, 0, 0.09)  # 40 ms saved
    spare.frame_done("s", 0.1, 0.09)
    assert spare.allows("s", KIND, 0, 0.09)  # 50 ms: it fits


def test_a_step_costs_the_dearest_of_its_kind_fading() -> None:
    """Steps differ (a model pass, the risks): the next is taken only where the dearest
    seen would fit, and that bar fades, so one slow step does not hold the work back."""
    spare = SpareTime()
    for _ in range(10):
        spare.frame_done("s", 0.1, 0.09)  # 100 ms saved
    spare.spent("s", KIND, 0.05)  # 50 ms left
    spare.spent("s", KIND, 0.01)  # a cheap step: 40 ms left, the bar 0.9 x 50 = 45 ms
    assert not spare.allows("s", KIND, 0, 0.001)
    spare.frame_done("s", 0.1, 0.09)  # 50 ms
    assert spare.allows("s", KIND, 0, 0.001)
    for _ in range(30):  # cheap steps, each paid by a frame: the bar fades to theirs
        spare.spent("s", KIND, 0.01)
        spare.frame_done("s", 0.1, 0.09)
    spare.spent("s", KIND, 0.0)  # the bar: 0.9 x 10 ms
    spare.frame_done("t", None, 0.01)
    spare.frame_done("t", 0.1, 0.08)  # another series of the same kind: 20 ms saved
    assert spare.allows("t", KIND, 0, 0.001)  # 45 ms before the cheap steps


def test_a_slow_frame_takes_spare_time_away_and_the_balance_is_capped() -> None:
    spare = SpareTime()
    for _ in range(100):
        spare.frame_done("s", 0.1, 0.0)
    spare.spent("s", KIND, 0.0)
    assert spare.allows("s", KIND, 0, CAP_S / FIRST_GUESS)
    spare.spent("s", KIND, CAP_S)  # the work costs the whole cap
    spare.frame_done("s", 0.1, 0.5)  # slower than its interval: nothing left
    assert not spare.allows("s", KIND, 0, 0.0)
    spare.frame_done("other", 0.1, 0.0)
    spare.end_series("s")
    assert not spare.allows("s", KIND, 0, 0.0)


def test_a_step_dearer_than_the_balance_can_hold_runs_when_it_is_full() -> None:
    """The balance is capped: a step that once took longer than the cap (a slow
    machine moment, a big frame) must not hold the work back for good."""
    spare = SpareTime()
    for _ in range(100):
        spare.frame_done("s", 0.1, 0.0)
    spare.spent("s", KIND, 1.5 * CAP_S)
    assert not spare.allows("s", KIND, 0, 0.001)  # emptied
    for _ in range(20):  # 2 s saved, held at the cap
        spare.frame_done("s", 0.1, 0.0)
    assert spare.allows("s", KIND, 0, 0.001)  # full again: the step may run
    assert not SpareTime().allows("t", KIND, 0, CAP_S)  # nothing saved yet
    big = SpareTime()
    for _ in range(20):
        big.frame_done("b", 0.1, 0.0)
    assert big.allows("b", KIND, 0, CAP_S)  # a first guess of 2 x 1 s: the cap


def test_work_refused_in_a_row_is_reported_once_a_run() -> None:
    spare = SpareTime()
    counts = [spare.count_refused("s") for _ in range(2 * REFUSED_TO_REPORT)]
    assert counts == [None] * (REFUSED_TO_REPORT - 1) + [REFUSED_TO_REPORT] + [None] * (
        REFUSED_TO_REPORT
    )
    spare.spent("s", KIND, 0.01)  # work ran: a new run
    assert [spare.count_refused("s") for _ in range(REFUSED_TO_REPORT)][-1] == REFUSED_TO_REPORT
    spare.end_series("s")
    assert spare.count_refused("s") is None  # counted from 1 again


def test_a_stream_faster_than_its_measurements_is_told_so(tmp_path: Path) -> None:
    """Frames pushed as fast as they go (a recording replayed) always have frames behind
    them: the blend's measurements never find spare time, and the service says so
    once, with an event and a log line naming `deepdenoise denoise`. (256 x 256: a
    frame's inference takes a hundred times a send, so the frames stay behind even
    on a busy machine.)"""
    rng = np.random.default_rng(2)
    frames = [
        (100 + rng.poisson(5.0, (256, 256)) + rng.normal(0.0, 2.0, (256, 256))).astype(np.uint16)
        for _ in range(2 * REFUSED_TO_REPORT + 8)
    ]
    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 2.0}
    with (
        running_service(
            tmp_path, shipped_model_path("na-lite"), zarr=None, blend="spatial", camera=camera
        ) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "replay", i)
        _, others = collect(sub, len(frames))
        status = svc.status()
    told = [m.header for m in others if m.header.get("event") == "blend_deferred"]
    assert len(told) == 1 and told[0]["series"] == "replay"
    assert told[0]["deferred"] == REFUSED_TO_REPORT
    # the first few, measured before their frames were served (the frames come faster
    # than they are denoised: no spare time will come); then none found the time
    blend = status["series"]["replay"]["blend"]
    assert OUTPACED_AT_ONCE <= told[0]["measured"] <= blend["frames_measured"]
    assert blend["frames_outpaced"] >= OUTPACED_AT_ONCE - 1  # the first was measured anyway


def test_a_stream_that_only_waits_is_not_outpaced() -> None:
    """Frames waiting behind a measurement, but arriving no faster than one is denoised,
    drain: the service waits for spare time. Frames arriving many times faster never
    catch up, and stay so while frames wait (their intervals then are the service's own
    pace: a full queue holds them back)."""
    shape = (64, 64)
    live = EnsemblePolicy()
    assert not live.outpaced("s", 3, "m", shape)  # nothing measured yet
    live.passes("s", 0, 0, "m", shape)
    live.took("m", shape, 1, 0.040)  # a slow first frame: 40 ms
    live.passes("s", 33_000_000, 3, "m", shape)  # 33 ms after the first
    assert not live.outpaced("s", 3, "m", shape)
    flood = EnsemblePolicy()
    flood.passes("f", 0, 0, "m", shape)
    flood.took("m", shape, 1, 0.020)  # 20 ms a frame
    flood.passes("f", 1_000_000, 3, "m", shape)  # 1 ms after the first
    assert not flood.outpaced("f", 3, "m", shape)  # one frame timed: not judged yet
    flood.took("m", shape, 1, 0.020)
    flood.passes("f", 2_000_000, 3, "m", shape)
    assert flood.outpaced("f", 3, "m", shape)
    for t in range(2, 12):  # held back by the queue: one every 200 ms
        flood.passes("f", t * 200_000_000, 3, "m", shape)
    assert flood.outpaced("f", 3, "m", shape)
    assert flood.frames_outpaced("f") == 2 and live.frames_outpaced("s") == 0
    assert not flood.outpaced("f", 0, "m", shape)  # caught up
    assert not flood.outpaced("f", 3, "m", shape)


def test_a_slow_first_frame_does_not_make_a_live_stream_outpaced() -> None:
    """A series' first frame carries one-off work: the stream is judged on its fastest
    recent frame, once two were timed (the demo at 30 fps, its first frame at 120 ms and
    the next at 50, is not outpaced; it was, and never caught up)."""
    shape = (256, 256)
    live = EnsemblePolicy()
    live.passes("s", 0, 0, "m", shape)
    live.took("m", shape, 1, 0.120)
    live.passes("s", 33_000_000, 3, "m", shape)
    assert not live.outpaced("s", 3, "m", shape)  # one frame timed
    live.took("m", shape, 1, 0.050)
    live.passes("s", 66_000_000, 3, "m", shape)
    assert not live.outpaced("s", 3, "m", shape)  # 50 ms < 2 x 33 ms
    for t in range(3, 40):  # slower frames: the fastest drifts up to them
        live.took("m", shape, 1, 0.080)
        live.passes("s", t * 33_000_000, 3, "m", shape)
    assert live.outpaced("s", 3, "m", shape)  # 80 ms > 2 x 33 ms


def test_the_config_takes_spatial_spatiotemporal_or_off() -> None:
    assert ServiceConfig().blend == "spatial"
    assert ServiceConfig(blend="spatiotemporal").blend == "spatiotemporal"
    assert ServiceConfig(blend="off").blend == "off"
    with pytest.raises(ValidationError, match="blend"):
        ServiceConfig(blend="yes")


def test_the_service_measures_a_paced_stream_in_its_spare_time(tmp_path: Path) -> None:
    """Frames 100 ms apart that take a few ms each: the measurements fit between them."""
    rng = np.random.default_rng(0)
    # counts the risk describes (read noise 2 e-: near Gaussian), see MIN_COUNT_VARIANCE
    frames = [
        (100 + rng.poisson(3.0, (64, 64)) + rng.normal(0.0, 2.0, (64, 64))).astype(np.uint16)
        for _ in range(12)
    ]
    model = shipped_model_path("na-lite")
    got, status = served(tmp_path, model, frames, "paced", pace_s=0.1, blend="spatial")
    assert [m.header["index"] for m in got] == list(range(len(frames)))  # every frame out
    assert status["blend"] == "spatial"
    blend = status["series"]["paced"]["blend"]
    assert 1 <= blend["frames_measured"] <= len(frames)
    assert blend["frames_outpaced"] == 0
    assert set(blend) >= {"noise_map_scale", "post_sigma", "fuse_sigma", "fuse_weight", "measured"}
    assert blend["young_window"] == "band"  # a spatial model has no young window


def test_a_dark_series_is_measured_against_its_frames_before(tmp_path: Path) -> None:
    """Photon counts at about a photon per pixel (read noise 0.05 e-): Stein's estimate
    has no pixel to go on, and the service measures a spatial model's frames against
    the frame before; status counts them."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:64, :64]
    scene = 0.5 + 1.5 * (np.sin(xx / 5.0) * np.sin(yy / 7.0) > 0.2)
    frames = [(100 + rng.poisson(scene)).astype(np.uint16) for _ in range(8)]
    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 0.05}
    model = shipped_model_path("na-lite")
    got, status = served(
        tmp_path, model, frames, "dark", pace_s=0.1, blend="spatial", camera=camera
    )
    assert [m.header["index"] for m in got] == list(range(len(frames)))
    blend = status["series"]["dark"]["blend"]
    assert 1 <= blend["frames_paired"] == blend["frames_measured"] < len(frames)


def test_off_measures_nothing(tmp_path: Path) -> None:
    frames = [np.full((32, 32), 150, np.uint16) + i for i in range(3)]
    with (
        running_service(tmp_path, shipped_model_path("na-lite"), zarr=None) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "still", i)
        collect(sub, len(frames))
        status = svc.status()
    assert status["blend"] == "off"  # the test harness's setting
    assert status["series"]["still"]["blend"]["frames_measured"] == 0
    assert status["series"]["still"]["blend"]["frames_paired"] == 0


def test_a_step_taken_while_a_frame_was_held_sets_the_next_steps_cost() -> None:
    """Steps of a series' first measurement taken while its first frame was held (paid
    from no balance) tell what the next step costs: it is not guessed at FIRST_GUESS x
    the frame's time, so the next frame's spare time may take one."""
    spare = SpareTime()
    spare.frame_done("s", 0.1, 0.08)  # 20 ms saved
    assert not spare.allows("s", KIND, 0, 0.015)  # guessed: 2 x 15 ms
    spare.seen(KIND, 0.012)
    assert spare.allows("s", KIND, 0, 0.015)  # 12 ms, and the balance is still 20
    spare.seen(KIND, 0.001)  # a cheaper one: the dearer one's cost fades (0.9 x 12 ms)
    spare.frame_done("t", 0.1, 0.089)  # 11 ms saved
    assert spare.allows("t", KIND, 0, 0.015)


def test_a_snapshots_only_frame_is_measured_before_it_is_served(tmp_path: Path) -> None:
    """A series' first frame has no interval to take spare time from (before, a single
    image was never measured); with the camera configured (its gain known) it is
    measured at once, so a single image is blended as its own measurement says."""
    rng = np.random.default_rng(1)
    frame = (100 + rng.poisson(20.0, (64, 64)) + rng.normal(0.0, 2.0, (64, 64))).astype(np.uint16)
    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 2.0}
    model = shipped_model_path("na-lite")
    got, status = served(tmp_path, model, [frame], series="snap", blend="spatial", camera=camera)
    assert len(got) == 1
    assert status["series"]["snap"]["blend"]["frames_measured"] == 1


def test_frames_waiting_behind_a_live_series_start_are_not_reported_as_too_fast() -> None:
    """A live series' start (its first measurement taken before its first frame is
    served) leaves frames waiting, which it drains: measurements refused then are not
    the frames' pace, and the service does not say they leave too little time. While
    outpaced, or with no frame waiting and too little spare time, it does (once)."""
    from stream.engine import CameraModel, Engine, SeriesContext
    from stream.service._events import EventEmitter
    from stream.service._infer import InferenceStage
    from stream.service._messages import SeriesEnd
    from stream.service._queues import StageQueue
    from stream.service._stats import ServiceStats

    rng = np.random.default_rng(4)
    camera = CameraModel(gain=1.0, offset=100.0, read_noise=2.0)
    sent: list[dict[str, object]] = []
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        jobs: StageQueue[object] = StageQueue(4)
        stage = InferenceStage(
            jobs,
            StageQueue(4),
            None,
            engine,
            ServiceStats(),
            EventEmitter(sent.append),  # type: ignore[arg-type]
        )
        context = SeriesContext(camera, "spatial")
        for t in range(2):  # the first measured at once, the second deferred
            frame = 100 + rng.poisson(5.0, (64, 64)) + rng.normal(0.0, 2.0, (64, 64))
            context.denoise(engine, frame.astype(np.float32), t, measure=False)
        assert context.measurement_pending

        def refuse(times: int, outpaced: bool) -> list[dict[str, object]]:
            for _ in range(times):  # no spare time saved: every step is refused
                stage._measure(context, engine, "s", KIND, 0.01, outpaced)
            return [e for e in sent if e["event"] == "blend_deferred"]

        jobs.put(SeriesEnd("other"), droppable=False)  # something waits behind the frame
        assert refuse(2 * REFUSED_TO_REPORT, outpaced=False) == []
        assert len(refuse(REFUSED_TO_REPORT, outpaced=True)) == 1
        jobs.get()
        sent.clear()
        stage._spare.end_series("s")  # counted from 1 again
        assert len(refuse(REFUSED_TO_REPORT, outpaced=False)) == 1  # nothing waits


def test_a_series_first_frame_is_held_for_its_measurement_only_where_nothing_drops(
    tmp_path: Path,
) -> None:
    """A lossless input (the queue blocks: PULL) holds a series' first frame for its
    blend measurement, so a snapshot is blended too; a live one whose queue drops the
    oldest frame (SUB) serves it as it is and measures it in spare time, which a single
    frame never leaves."""
    rng = np.random.default_rng(6)
    frame = (100 + rng.poisson(5.0, (64, 64)) + rng.normal(0.0, 2.0, (64, 64))).astype(np.uint16)
    camera = {"gain": 1.0, "offset": 100.0, "read_noise": 2.0}
    measured = {}
    for policy in ("block", "drop_oldest"):
        _, status = served(
            tmp_path / policy,
            shipped_model_path("na-lite"),
            [frame],
            blend="spatial",
            camera=camera,
            queues={"inference_overflow": policy, "publish_depth": 512},
        )
        measured[policy] = status["series"]["run"]["blend"]["frames_measured"]
    assert measured == {"block": 1, "drop_oldest": 0}


def test_a_series_first_frame_is_not_held_while_its_next_frame_waits() -> None:
    """With a lossless input, a series' first frame is held for its blend measurement
    only while no frame of the same series waits behind it: a frame of another series
    waiting (snapshots sent one after another) still lets it be blended at once, a
    frame of its own serves it as it is and leaves the measurement to spare time."""
    from stream.engine import CameraModel, Engine
    from stream.protocol import Frame
    from stream.service._events import EventEmitter
    from stream.service._infer import InferenceStage
    from stream.service._messages import Job
    from stream.service._queues import StageQueue
    from stream.service._stats import ServiceStats

    rng = np.random.default_rng(8)
    camera = CameraModel(gain=1.0, offset=100.0, read_noise=2.0)

    def job(series: str, index: int) -> Job:
        pixels = (100 + rng.poisson(5.0, (64, 64)) + rng.normal(0.0, 2.0, (64, 64))).astype(
            np.float32
        )
        return Job(Frame(b"frame", {}, series, index, pixels, None), 0)

    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        jobs: StageQueue[object] = StageQueue(4, policy="block")
        stage = InferenceStage(
            jobs,  # type: ignore[arg-type]
            StageQueue(4),
            None,
            engine,
            ServiceStats(),
            EventEmitter(lambda _: None),
            camera=camera,
            blend="spatial",
        )
        jobs.put(job("b", 0))  # another series' frame waits
        stage._denoise(job("a", 0))
        assert stage.contexts["a"].blend_frames_measured == 1
        jobs.put(job("c", 1))  # its own next frame waits
        stage._denoise(job("c", 0))
        context = stage.contexts["c"]
        assert context.blend_frames_measured == 0 and context.measurement_pending
        assert context.blend_choice.is_identity
