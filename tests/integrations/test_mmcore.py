"""pymmcore-plus: an MDA run through the real service with DenoiseHandler, a Python
camera device in a real UniMMCore (no Micro-Manager binaries), frames checked on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from service_harness import running_service, wait_until

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from deepdenoise_client.mmcore import DenoiseHandler  # noqa: E402
from pymmcore_plus.experimental.unicore import SimpleCameraDevice, UniMMCore  # noqa: E402

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


def test_a_time_lapse_lands_on_disk_bit_for_bit(tmp_path: Path, identity_model, core) -> None:
    mmc, camera = core
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 6})
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="timelapse")
        mmc.mda.run(sequence, output=handler)
        wait_until(lambda: svc.status()["series"].get("timelapse", {}).get("frames_in") == 6)
        assert svc.flush()
    assert handler.frames_sent == {"timelapse": 6}
    np.testing.assert_array_equal(
        _stored(tmp_path / "data", "timelapse"), np.stack(camera.produced)
    )


def test_two_channels_become_two_series(tmp_path: Path, identity_model, core) -> None:
    mmc, camera = core
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 3}, channels=["GFP", "mCherry"], axis_order="tc"
    )
    with running_service(tmp_path, identity_model) as svc:
        handler = DenoiseHandler(svc.endpoints["input"], series="run")
        mmc.mda.run(sequence, output=handler)
        names = ["run-p0-cGFP", "run-p0-cmCherry"]
        wait_until(
            lambda: all(svc.status()["series"].get(n, {}).get("frames_in") == 3 for n in names)
        )
        assert svc.flush()
    produced = np.stack(camera.produced)  # t0 GFP, t0 mCherry, t1 GFP, ...
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[0]), produced[0::2])
    np.testing.assert_array_equal(_stored(tmp_path / "data", names[1]), produced[1::2])
    group = zarr.open_group(tmp_path / "data" / f"{names[1]}.zarr", mode="r")
    assert group[ARRAY_PATHS["raw"]].shape == (3, *SHAPE)


def test_series_default_to_the_sequence_uid(tmp_path: Path, identity_model, core) -> None:
    mmc, _ = core
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 2})
    with running_service(tmp_path, identity_model, zarr=None) as svc:
        mmc.mda.run(sequence, output=DenoiseHandler(svc.endpoints["input"]))
        name = f"mda-{sequence.uid}"
        wait_until(lambda: svc.status()["series"].get(name, {}).get("frames_in") == 2)


def test_long_names_never_merge_planes_or_channels() -> None:
    from deepdenoise_client.mmcore import series_for

    base = f"mda-{'0' * 36}"  # a sequence uid's length
    names = {
        series_for(base, useq.MDAEvent(index={"p": 0, "c": c, "z": z}, channel=channel), True, True)
        for z in range(3)
        for c, channel in enumerate(("Cy5-FarRed-Emission-700", "Cy5-FarRed-Emission-710"))
    }
    assert len(names) == 6 and all(len(name) <= 64 for name in names)
    short = series_for("run", useq.MDAEvent(index={"p": 1, "z": 2}, channel="GFP"), True, True)
    assert short == "run-p1-cGFP-z2"  # names that fit are left as they are


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
