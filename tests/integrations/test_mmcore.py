"""pymmcore-plus: an MDA run through the real service with DenoiseHandler, a Python
camera device in a real UniMMCore (no Micro-Manager binaries), frames checked on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from service_harness import free_tcp_endpoint, running_service, wait_until

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from deepdenoise_client.mmcore import DenoiseHandler  # noqa: E402
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


@pytest.fixture
def core() -> tuple[UniMMCore, RecordingCamera]:
    mmc = UniMMCore()
    camera = RecordingCamera()
    mmc.loadPyDevice("Camera", camera)
    mmc.initializeDevice("Camera")
    mmc.setCameraDevice("Camera")
    mmc.setAutoShutter(False)
    for name, exposure in (("GFP", "10"), ("mCherry", "20")):
        mmc.defineConfig("Channel", name, "Camera", "Exposure", exposure)
    return mmc, camera


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
