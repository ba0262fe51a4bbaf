"""pymmcore-plus: an MDA run through the real service with DenoiseHandler, a Python
camera device in a real UniMMCore (no Micro-Manager binaries), frames checked on disk."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from clients_harness import Secured, make_keys
from service_harness import (
    ServeProcess,
    free_tcp_endpoint,
    listening,
    running_service,
    series_ended,
    wait_until,
)

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from deepdenoise_client import ClientTimeoutError, ProtocolError, Subscriber  # noqa: E402
from deepdenoise_client.mmcore import (  # noqa: E402
    DenoiseHandler,
    channels_repeat,
    series_for,
    split_axes,
)
from dropped_finish import run_dropping_the_finish  # noqa: E402
from pymmcore_plus.experimental.unicore import SimpleCameraDevice, UniMMCore  # noqa: E402

from stream import Service  # noqa: E402
from stream.store import ARRAY_PATHS  # noqa: E402

SHAPE = (24, 40)


class RecordingCamera(SimpleCameraDevice):
    """Noise-like uint16 frames, each kept so the test knows what the camera produced."""

    def __init__(self) -> None:
        super().__init__()
        self._exposure = 10.0
        self._rng = np.random.default_rng(7)
        self.produced: list[np.ndarray] = []

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = exposure

    def sensor_shape(self) -> tuple[int, int]:
        return SHAPE

    def dtype(self) -> type:
        return np.uint16

    def snap(self, buffer: np.ndarray) -> dict:
        buffer[:] = self._rng.integers(0, 65535, SHAPE, dtype=np.uint16, endpoint=True)
        self.produced.append(buffer.copy())
        return {}


def _make_core(camera: SimpleCameraDevice, cls: type[UniMMCore] = UniMMCore) -> UniMMCore:
    mmc = cls()
    mmc.loadPyDevice("Camera", camera)
    mmc.initializeDevice("Camera")
    mmc.setCameraDevice("Camera")
    mmc.setAutoShutter(False)
    for name, exposure in (("GFP", "10"), ("mCherry", "20")):
        mmc.defineConfig("Channel", name, "Camera", "Exposure", exposure)
    return mmc


@pytest.fixture
def core() -> tuple[UniMMCore, RecordingCamera]:
    camera = RecordingCamera()
    return _make_core(camera), camera


def _stored(root: Path, series: str) -> np.ndarray:
    group = zarr.open_group(root / f"{series}.zarr", mode="r")
    assert group["valid"][:].all()
    return group[ARRAY_PATHS["raw"]][:]


def _frames_in(svc: Service, series: str) -> int:
    return int(svc.status()["series"].get(series, {}).get("frames_in", 0))


def _all_in(svc: Service, counts: dict[str, int]) -> bool:
    return all(_frames_in(svc, name) == n for name, n in counts.items())


def test_a_time_lapse_lands_on_disk_bit_for_bit(tmp_path: Path, identity_model, core) -> None:
    mmc, camera = core
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 6})
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="timelapse")
        mmc.mda.run(sequence, output=handler)
        wait_until(lambda: _frames_in(svc, handler.run_name) == 6)
        assert svc.flush()
    assert handler.run_name.startswith("timelapse-")
    assert handler.frames_sent == {handler.run_name: 6}
    np.testing.assert_array_equal(
        _stored(tmp_path / "data", handler.run_name), np.stack(camera.produced)
    )


def test_two_channels_become_two_series(tmp_path: Path, identity_model, core) -> None:
    mmc, camera = core
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 3}, channels=["GFP", "mCherry"], axis_order="tc"
    )
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="run")
        mmc.mda.run(sequence, output=handler)
        names = [f"{handler.run_name}-p0-cGFP", f"{handler.run_name}-p0-cmCherry"]
        wait_until(lambda: _all_in(svc, dict.fromkeys(names, 3)))
        assert svc.flush()
    produced = np.stack(camera.produced)  # t0 GFP, t0 mCherry, t1 GFP, ...
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[0]), produced[0::2])
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[1]), produced[1::2])
    group = zarr.open_group(tmp_path / "data" / f"{names[1]}.zarr", mode="r")
    assert group[ARRAY_PATHS["raw"]].shape == (3, *SHAPE)


def test_grid_tiles_become_series_of_their_own(tmp_path: Path, identity_model, core) -> None:
    """Two fields of view interleaved in one series would show a temporal model the
    other tile as the previous frame."""
    mmc, camera = core
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 2}, grid_plan={"rows": 1, "columns": 2}
    )
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="grid")
        mmc.mda.run(sequence, output=handler)
        names = [f"{handler.run_name}-p0-g0-c0", f"{handler.run_name}-p0-g1-c0"]
        wait_until(lambda: _all_in(svc, dict.fromkeys(names, 2)))
        assert svc.flush()
    assert handler.frames_sent == dict.fromkeys(names, 2)
    produced = np.stack(camera.produced)  # t0 g0, t0 g1, t1 g0, t1 g1
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[0]), produced[0::2])
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[1]), produced[1::2])


def test_positions_and_their_sub_sequence_grids_split_by_tile(
    tmp_path: Path, identity_model, core
) -> None:
    mmc, _ = core
    grid = {"rows": 1, "columns": 2, "fov_width": 10, "fov_height": 10}
    position_x_grid = useq.MDASequence(stage_positions=[(0, 0), (100, 0)], grid_plan=grid)
    sub_sequence_grid = useq.MDASequence(
        time_plan={"interval": 0, "loops": 2},
        stage_positions=[(0, 0), useq.Position(x=100, y=0, sequence={"grid_plan": grid})],
    )
    with running_service(tmp_path, identity_model, zarr=None) as svc:
        first = DenoiseHandler(svc.endpoints["input"], series="pg")
        mmc.mda.run(position_x_grid, output=first)
        second = DenoiseHandler(svc.endpoints["input"], series="sub")
        mmc.mda.run(sub_sequence_grid, output=second)
        expected = {
            **{f"{first.run_name}-p{p}-g{g}-c0": 1 for p in (0, 1) for g in (0, 1)},
            **{f"{second.run_name}-{part}-c0": 2 for part in ("p0-g0", "p1-g0", "p1-g1")},
        }
        wait_until(lambda: _all_in(svc, expected))
    assert {**first.frames_sent, **second.frames_sent} == expected


def test_a_second_run_never_lands_in_the_first_runs_series(
    tmp_path: Path, identity_model, core
) -> None:
    """Each run's indices start at 0: in the first run's series the service would reject
    every frame of the second as a duplicate."""
    mmc, _ = core
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    with running_service(tmp_path, identity_model, zarr=None) as svc:
        runs = []
        for _ in range(2):  # the same series name, given to two handlers
            handler = DenoiseHandler(svc.endpoints["input"], series="rerun")
            mmc.mda.run(sequence, output=handler)
            runs.append(handler.frames_sent)
        default = DenoiseHandler(svc.endpoints["input"])
        for _ in range(2):  # the same sequence (same uid), the default name
            mmc.mda.run(sequence, output=default)
            runs.append(default.frames_sent)
        assert [list(sent.values()) for sent in runs] == [[3]] * 4  # one series a run
        names = [name for sent in runs for name in sent]
        assert len(set(names)) == 4
        assert all(name.startswith("rerun-") for name in names[:2])
        assert all(name.startswith("mda-") for name in names[2:])
        wait_until(lambda: _all_in(svc, dict.fromkeys(names, 3)))
        assert "duplicate" not in svc.status()["rejected"]


def test_a_run_whose_finish_the_relay_drops_is_still_ended_and_closed(
    tmp_path: Path, identity_model
) -> None:
    """pymmcore-plus's relay thread can end without passing on ``sequenceFinished`` (it
    may see its stop flag before that event is queued). Here the relay is stopped with
    the event never queued, as the race leaves it: the run's series must still end, and
    its socket close (it stayed open, and the series never ended)."""
    with running_service(tmp_path, identity_model, zarr=None) as svc, listening(svc) as sub:
        handler = DenoiseHandler(svc.endpoints["input"], series="dropped")
        run_dropping_the_finish(handler, 3, SHAPE)
        end = series_ended(sub, handler.run_name)
        wait_until(lambda: handler._run is None)
    assert (end["frames"], end["missing"]) == (3, 0)
    assert handler.frames_sent == {handler.run_name: 3} and handler.error is None


def test_a_script_ending_right_after_a_run_whose_finish_was_dropped_sends_its_ends() -> None:
    """The watcher must not be a daemon thread of a non-daemon relay: Python does not
    wait for daemon threads at exit, so a script's last run lost its ``end``."""
    import subprocess

    import zmq
    from deepdenoise_client._protocol import decode_message

    pull = zmq.Context.instance().socket(zmq.PULL)
    try:
        endpoint = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
        child = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("dropped_finish.py")), endpoint],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
        kinds = []
        while pull.poll(2000):
            kinds.append(decode_message(pull.recv_multipart()).header.get("kind", "frame"))
    finally:
        pull.close(linger=0)
    assert kinds == ["start", "frame", "frame", "end"]
    assert "without sequenceFinished" in child.stderr


EXIT_AFTER_RUN = """
import sys
import numpy as np
import useq
from deepdenoise_client.mmcore import DenoiseHandler

handler = DenoiseHandler(sys.argv[1], series="last", linger=30)
sequence = useq.MDASequence(time_plan={"interval": 0, "loops": int(sys.argv[2])})
handler.sequenceStarted(sequence)
for event in sequence:
    handler.frameReady(np.full((1024, 1024), event.index["t"], np.uint16), event, {})
handler.sequenceFinished(sequence)
assert handler.error is None, handler.error
"""


def test_a_script_that_exits_right_after_a_run_loses_no_frame() -> None:
    """A script that ends right after ``mda.run``: its exit waits (at most ``linger``)
    for the frames still queued. They went out in the background of the process-wide
    context, which nothing ended, and died with the process: the docs asked the user to
    call ``zmq.Context.instance().term()`` first."""
    import subprocess
    import time

    import zmq
    from deepdenoise_client._protocol import decode_message

    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1)
    frames_sent = 20
    endpoint = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    script = subprocess.Popen([sys.executable, "-c", EXIT_AFTER_RUN, endpoint, str(frames_sent)])
    try:
        kinds, values = [], []
        while True:
            assert pull.poll(30_000), f"the script's messages stopped after {kinds}"
            msg = decode_message(pull.recv_multipart())
            kinds.append(msg.header.get("kind", "frame"))
            if kinds[-1] == "end":
                break
            if kinds[-1] == "frame":
                values.append(int(msg.array[0, 0]))
            time.sleep(0.02)  # a service slower than the script: frames are queued at exit
        assert script.wait(60) == 0
    finally:
        script.kill()
        script.wait()
        pull.close(linger=0)
    assert kinds == ["start", *["frame"] * frames_sent, "end"]
    assert values == list(range(frames_sent))


def test_a_script_with_no_linger_limit_exits_though_its_service_never_reads() -> None:
    """``linger=None``: the exit does not wait for frames a stalled service may never
    read (the close's thread is a daemon), as a script's exit never did."""
    import subprocess

    import zmq

    stalled = zmq.Context.instance().socket(zmq.PULL)  # a service that never reads
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    script = EXIT_AFTER_RUN.replace("linger=30", "linger=None, timeout=0.2").replace(
        "assert handler.error is None, handler.error", "assert handler.error is not None"
    )
    try:
        endpoint = f"tcp://127.0.0.1:{stalled.bind_to_random_port('tcp://127.0.0.1')}"
        child = subprocess.run(
            [sys.executable, "-c", script, endpoint, "200"], capture_output=True, timeout=120
        )
        assert child.returncode == 0, child.stderr
    finally:
        stalled.close(linger=0)


def test_pub_mode_binds_for_a_default_serve(tmp_path: Path, identity_model, core) -> None:
    """A default `deepdenoise serve` connects its SUB input: the handler must bind."""
    from deepdenoise_client import ClientTimeoutError

    mmc, _ = core
    endpoint = free_tcp_endpoint()
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 2})
    with running_service(
        tmp_path, identity_model, zarr=None, input=endpoint, input_mode="sub", input_bind=False
    ) as svc:
        both_connect = DenoiseHandler(endpoint, mode="pub", subscriber_timeout=0.3)
        mmc.mda.run(sequence, output=both_connect)
        assert isinstance(both_connect.error, ClientTimeoutError)
        assert "bind=True" in str(both_connect.error)
        assert both_connect.frames_unsent == 2
        binding = DenoiseHandler(endpoint, mode="pub", bind=True)
        mmc.mda.run(sequence, output=binding)
        assert binding.error is None
        wait_until(lambda: _frames_in(svc, binding.run_name) == 2)


def test_long_names_never_merge_tiles_planes_or_channels() -> None:
    from deepdenoise_client.mmcore import series_for

    run = f"mda-{'0' * 36}"  # a long run name
    names = {
        series_for(run, useq.MDAEvent(index={"p": 0, "g": g, "c": c, "z": z}, channel=ch), "pgcz")
        for g in range(2)
        for z in range(3)
        for c, ch in enumerate(("Cy5-FarRed-Emission-700", "Cy5-FarRed-Emission-710"))
    }
    assert len(names) == 12 and all(len(name) <= 64 for name in names)
    event = useq.MDAEvent(index={"p": 1, "g": 3, "z": 2}, channel="GFP")
    assert series_for("run", event, "pcz") == "run-p1-cGFP-z2"  # names that fit are kept
    assert series_for("run", event, "pgcz") == "run-p1-g3-cGFP-z2"
    assert len(series_for("x" * 70, event, "")) == 64  # a long run name alone is cut too


def test_a_missing_service_stops_the_streaming_not_the_acquisition(core) -> None:
    import socket

    from deepdenoise_client import ClientTimeoutError

    mmc, camera = core
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    handler = DenoiseHandler(f"tcp://127.0.0.1:{port}", series="nobody", timeout=0.3)
    mmc.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}), output=handler)
    assert len(camera.produced) == 3  # the acquisition went on
    assert isinstance(handler.error, ClientTimeoutError)
    assert handler.frames_unsent == 3 and handler.frames_sent == {}


class TwoCameraCore(UniMMCore):
    """What a Multi Camera device looks like to pymmcore-plus's engine: two images per
    snap, each with ``index["cam"]``; the second camera's are half as high (another
    sensor), so one series for both would reject them as ``series_mismatch``."""

    def getNumberOfCameraChannels(self) -> int:
        return 2

    def getPhysicalCameraDevice(self, channel: int = 0) -> str:
        return f"Cam{channel}"

    def getImage(self, numChannel: int | None = None, *, fix: bool = True) -> np.ndarray:
        image = super().getImage(fix=fix)
        return np.ascontiguousarray(image[: SHAPE[0] // 2] // 2) if numChannel else image


def test_each_camera_of_a_multi_camera_gets_a_series_of_its_own(
    tmp_path: Path, identity_model
) -> None:
    camera = RecordingCamera()
    mmc = _make_core(camera, TwoCameraCore)
    mmc.mda.engine.use_hardware_sequencing = False
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="cams")
        mmc.mda.run(sequence, output=handler)
        names = [f"{handler.run_name}-p0-c0-cam{cam}" for cam in (0, 1)]
        assert handler.error is None and handler.frames_sent == dict.fromkeys(names, 3)
        wait_until(lambda: _all_in(svc, dict.fromkeys(names, 3)))
        assert svc.flush()
        assert svc.status()["rejected"] == {}
    produced = np.stack(camera.produced)
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[0]), produced)
    np.testing.assert_array_equal(
        _stored(tmp_path / "data", names[1]), produced[:, : SHAPE[0] // 2] // 2
    )


def test_a_handler_with_keys_streams_to_a_secured_service(tmp_path: Path, identity_model, core):
    mmc, camera = core
    keys = tmp_path / "keys"
    make_keys(keys)
    security = {"secret_key": keys / "service.key_secret", "clients": keys / "clients"}
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    with running_service(tmp_path, identity_model, security=security) as svc:
        secured = Secured(svc, keys)
        keyless = DenoiseHandler(svc.endpoints["input"], series="plain", timeout=0.3)
        mmc.mda.run(sequence, output=keyless)  # refused: its handshake is dropped unsaid
        assert isinstance(keyless.error, ClientTimeoutError) and keyless.frames_sent == {}
        handler = DenoiseHandler(
            svc.endpoints["input"], series="secure", curve=secured.curve("rig")
        )
        mmc.mda.run(sequence, output=handler)
        assert handler.error is None and handler.frames_sent == {handler.run_name: 3}
        wait_until(lambda: _frames_in(svc, handler.run_name) == 3)
        assert svc.flush()
    np.testing.assert_array_equal(
        _stored(tmp_path / "data", handler.run_name), np.stack(camera.produced[3:])
    )


class GatedCamera(SimpleCameraDevice):
    """Frames of a constant value (cheap to store), held at frame ``HOLD`` until
    ``gate`` is set: the test stops the service in between."""

    HOLD = 5

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.snapped = 0

    def get_exposure(self) -> float:
        return 1.0

    def set_exposure(self, exposure: float) -> None:
        pass

    def sensor_shape(self) -> tuple[int, int]:
        return (64, 64)

    def dtype(self) -> type:
        return np.uint16

    def snap(self, buffer: np.ndarray) -> dict:
        if self.snapped == self.HOLD:
            self.gate.wait(60)
        buffer[:] = self.snapped % 1000
        self.snapped += 1
        return {}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP: POSIX only")
def test_frames_queued_before_a_send_timeout_still_reach_a_stalled_service(
    tmp_path: Path, identity_model
) -> None:
    """A service stopped (SIGSTOP) mid-run: the handler's queue fills, a send times out
    and the streaming stops; the frames queued before (counted sent) are not discarded
    but go out once the service runs again, each series' end behind them."""
    camera = GatedCamera()
    mmc = _make_core(camera)
    loops = 6000  # several times what the socket's queue and the kernel's buffers hold
    proc = ServeProcess(tmp_path, identity_model)
    try:
        with Subscriber(proc.output, topics=(b"event", b"status")) as sub:
            while sub.recv(timeout=10).topic != b"status":
                pass  # subscribed: the series_end event will not be missed
            handler = DenoiseHandler(proc.input, series="stall", timeout=0.5)
            acquisition = mmc.run_mda(
                useq.MDASequence(time_plan={"interval": 0, "loops": loops}), output=handler
            )
            wait_until(lambda: proc.status()["frames_in"] == GatedCamera.HOLD, timeout=60)
            os.kill(proc.proc.pid, signal.SIGSTOP)
            try:
                camera.gate.set()
                wait_until(lambda: handler.error is not None, timeout=120)
            finally:
                os.kill(proc.proc.pid, signal.SIGCONT)
            acquisition.join(120)
            assert not acquisition.is_alive()
            name = handler.run_name
            sent = handler.frames_sent[name]
            # none discarded: every frame counted sent arrives once the service runs again
            wait_until(lambda: proc.status()["series"][name]["frames_in"] == sent, timeout=60)
            end = series_ended(sub, name, timeout=60)  # then its end
            rejected = proc.status()["rejected"]
    finally:
        if proc.proc.poll() is None:
            os.kill(proc.proc.pid, signal.SIGCONT)
        code = proc.terminate()
    assert code == 0, proc.log.read_text()
    assert isinstance(handler.error, ClientTimeoutError)
    assert sent + handler.frames_unsent == loops and handler.frames_unsent > 0
    assert (end["frames"], end["missing"], rejected) == (sent, 0, {})


def test_channel_names_apart_only_in_unsafe_characters_stay_apart(
    tmp_path: Path, identity_model, core
) -> None:
    mmc, camera = core
    for name in ("GFP 488", "GFP_488"):
        mmc.defineConfig("Channel", name, "Camera", "Exposure", "10")
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 2}, channels=["GFP 488", "GFP_488"], axis_order="tc"
    )
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="ch")
        mmc.mda.run(sequence, output=handler)
        names = list(handler.frames_sent)
        assert len(names) == 2 and handler.frames_sent == dict.fromkeys(names, 2)
        assert names[1] == f"{handler.run_name}-p0-cGFP_488"  # a safe name is kept
        assert names[0].startswith(f"{handler.run_name}-p0-cGFP_488_")  # + its hash
        wait_until(lambda: _all_in(svc, dict.fromkeys(names, 2)))
        assert svc.flush()
    produced = np.stack(camera.produced)
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[0]), produced[0::2])
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[1]), produced[1::2])
    event = useq.MDAEvent(index={"c": 0}, channel="GFP 488")  # the same name every time
    assert series_for("run", event, "c") == names[0].replace(handler.run_name, "run")


def test_two_channels_of_one_config_name_stay_two_series(
    tmp_path: Path, identity_model, core
) -> None:
    """Two exposures of DAPI were merged into one series, frames alternating (a user's
    trial): a name the sequence lists twice gets the channel's index."""
    mmc, camera = core
    mmc.defineConfig("Channel", "DAPI", "Camera", "Exposure", "10")
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 2},
        channels=[{"config": "DAPI", "exposure": 10}, {"config": "DAPI", "exposure": 50}],
        axis_order="tc",
    )
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="dup")
        mmc.mda.run(sequence, output=handler)
        names = list(handler.frames_sent)
        assert names == [f"{handler.run_name}-p0-cDAPI.0", f"{handler.run_name}-p0-cDAPI.1"]
        assert handler.frames_sent == dict.fromkeys(names, 2)
        wait_until(lambda: _all_in(svc, dict.fromkeys(names, 2)))
        assert svc.flush()
    produced = np.stack(camera.produced)
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[0]), produced[0::2])
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[1]), produced[1::2])
    # every channel gets its index then: a channel named DAPI.1 stays apart (a review)
    channels = [useq.Channel(config=c) for c in ("DAPI", "DAPI", "DAPI.1")]
    contrived = useq.MDASequence(channels=channels)
    assert channels_repeat(contrived)
    names = {series_for("r", event, split_axes(contrived), True) for event in contrived}
    assert names == {"r-p0-cDAPI.0", "r-p0-cDAPI.1", "r-p0-cDAPI.1.2"}


def test_a_series_prefix_the_protocol_cannot_carry_is_refused_when_the_handler_is_made() -> None:
    for bad in ("mouse 1", "mouse/1", ".hidden", "süß"):
        with pytest.raises(ValueError, match=f"series={bad!r}: expected letters, digits"):
            DenoiseHandler(series=bad)
    with pytest.raises(ValueError, match="series='mouse_1'"):  # what to give instead
        DenoiseHandler(series="mouse 1")
    for good in ("mouse_1", "m.1-a", None, "x" * 44):
        assert DenoiseHandler(series=good).series == good
    # longer, the run's start time was cut out of its name (a user's trial)
    with pytest.raises(ValueError, match="at most 44 characters, got 45"):
        DenoiseHandler(series="x" * 45)


def test_an_endpoint_libzmq_would_not_take_as_written_is_refused_when_the_handler_is_made():
    """Found out only once the acquisition ran, unstreamed (a user's trial)."""
    with pytest.raises(ValueError, match="port of 0-65535"):
        DenoiseHandler("tcp://127.0.0.1:99999")
    with pytest.raises(ValueError, match=r"a transport, ://"):
        DenoiseHandler("127.0.0.1:5555")
    # a run's bare ZMQError at its start (a user's trial)
    for port in ("*", "0", "00"):
        for bind in (False, True):
            with pytest.raises(ValueError, match="expected a fixed port"):
                DenoiseHandler(f"tcp://127.0.0.1:{port}", bind=bind)


def test_a_camera_of_an_unsupported_pixel_type_is_refused_before_anything_is_sent(
    tmp_path: Path, identity_model
) -> None:
    class Camera32(RecordingCamera):
        def dtype(self) -> type:
            return np.uint32

        def snap(self, buffer: np.ndarray) -> dict:
            buffer[:] = 70_000
            return {}

    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    with running_service(tmp_path, identity_model, zarr=None) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="u32")
        _make_core(Camera32()).mda.run(sequence, output=handler)
        refused = handler.run_name
        assert isinstance(handler.error, ProtocolError)
        assert "uint8, uint16, int16, float32" in str(handler.error)
        assert (handler.frames_sent, handler.frames_unsent) == ({}, 3)
        # then a supported camera through the same handler: once its frames are in, the
        # refused run's start would have been too, had it been sent
        _make_core(RecordingCamera()).mda.run(sequence, output=handler)
        assert handler.error is None and handler.frames_sent == {handler.run_name: 3}
        wait_until(lambda: _frames_in(svc, handler.run_name) == 3)
        assert refused not in svc.status()["series"]
    from deepdenoise_client.mmcore import check_image

    with pytest.raises(ProtocolError, match=r"pixel type uint32 is not streamed; supported: "):
        check_image(np.zeros(SHAPE, np.uint32))
    for dtype in (np.uint8, np.uint16, np.int16, np.float32):
        check_image(np.zeros(SHAPE, dtype))
    with pytest.raises(ProtocolError, match=r"\(a colour camera: RGB\)"):
        check_image(np.zeros((*SHAPE, 4), np.uint8))
    with pytest.raises(ProtocolError, match="pixel type int32"):
        check_image(np.zeros(SHAPE, np.int32))


def test_a_send_timeout_with_no_linger_limit_finishes_and_closes() -> None:
    """``linger=None`` (no limit, as in ZeroMQ): after a send timeout against a peer
    that never reads, the sequence still finishes and the socket closes (it raised a
    TypeError and kept the socket open)."""
    import zmq

    context = zmq.Context.instance()
    stalled = context.socket(zmq.PULL)  # a service that never reads
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    port = stalled.bind_to_random_port("tcp://127.0.0.1")
    try:
        sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 4000})
        handler = DenoiseHandler(f"tcp://127.0.0.1:{port}", timeout=0.2, linger=None)
        handler.sequenceStarted(sequence)
        for event in sequence:
            if handler.error is not None:
                break
            handler.frameReady(np.zeros((256, 256), np.uint16), event, {})
        assert handler.error is not None
        stopped = handler._stopped
        handler.sequenceFinished(sequence)
        assert stopped is not None and stopped.closed
    finally:
        stalled.close(linger=0)
