"""Row noise (a CMOS sensor's banding) is found from a series' still pairs and taken out
of each frame before the model; a camera or scene without it is left alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from camera_harness import phantom_readouts, served_live

from exporter.evaluation import psnr
from exporter.evaluation._cameras import EvalCamera, recamera
from exporter.evaluation._evaluate import movie
from stream.camera import CameraModel, RowNoise, remove_row_offsets
from stream.camera._rows import SIGNIFICANCE
from stream.engine import Engine, SeriesCamera, shipped_model_path

CAMERA = CameraModel(gain=0.5, offset=100.0, read_noise=0.75)  # 1.5 e-


def with_rows(frames: list[np.ndarray], sigma: float, seed: int = 1) -> list[np.ndarray]:
    """``frames`` with each row of each offset by ``sigma`` ADU rms (rounded counts)."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        banded = frame.astype(np.float64) + rng.normal(0.0, sigma, (frame.shape[0], 1))
        out.append(np.clip(np.rint(banded), 0, 65535).astype(np.uint16))
    return out


def searched(frames: list[np.ndarray]) -> RowNoise:
    search = RowNoise()
    for previous, frame in itertools.pairwise(frames):
        search.add(frame.astype(np.float32), previous.astype(np.float32))
    return search


@pytest.mark.parametrize("photons", [1.0, 10.0])
def test_row_offsets_are_found_and_measured(photons: float) -> None:
    """Rows offset by 0.25 ADU (0.5 e-) and 0.75 ADU (1.5 e-) rms at 0.5 ADU per e-."""
    for sigma in (0.25, 0.75):
        search = searched(with_rows(phantom_readouts(photons, 12, 3, CAMERA), sigma))
        assert search.rms == pytest.approx(sigma, rel=0.2)
        assert search.correcting == (sigma == 0.75 or photons == 1.0), (sigma, search.rms)


@pytest.mark.parametrize("photons", [1.0, 10.0, 100.0, 1000.0])
def test_a_calcium_series_without_them_has_none(photons: float) -> None:
    """Cells firing (the phantom; the independent generator's somata and processes): the
    scene's changing light is not row noise."""
    assert not searched(phantom_readouts(photons, 40, 3, CAMERA)).correcting
    assert not searched(list(movie("independent", photons, (128, 128), 40, 0).noisy)).correcting


def test_coarse_or_clipped_counts_are_left_alone() -> None:
    """Coarse counts (0.1 ADU per e-, 2 e-) and readouts clipped at 0 (offset 0): their row
    offsets are found but not taken out (levelled, they are no longer whole counts or
    no longer held at their floor, which the live estimate and the engine rely on)."""
    test = movie("independent", 3.0, (128, 128), 12, 0)
    for camera, coarse in (
        (EvalCamera(0.1, 100, 2, rows=1.5), True),
        (EvalCamera(0.5, 0, 1.5, rows=1.5), False),
    ):
        search = searched(list(recamera(test, camera, 0).noisy))
        assert search.variance > SIGNIFICANCE * search.standard_error
        assert search.coarse == coarse and not search.correcting
    assert searched(list(recamera(test, EvalCamera(0.5, 100, 1.5, rows=1.5), 0).noisy)).correcting


def test_noise_shared_along_a_row_by_neighbours_is_not_row_noise() -> None:
    """An amplifier's low-pass: each pixel shares noise with the next few along its row,
    but the row's halves do not share it."""
    rng = np.random.default_rng(4)
    frames = []
    for _ in range(30):
        white = rng.normal(0.0, 3.0, (128, 136))
        frames.append(100.0 + np.stack([white[:, k : k + 128] for k in range(8)]).mean(0))
    assert not searched(frames).correcting


def test_taking_them_out_leaves_a_fraction() -> None:
    """The phantom at 3 photons per pixel, rows offset by 0.75 ADU: what is left of the
    offsets (the row means of the error, less the pixels' own noise) is under a third."""
    frames = phantom_readouts(3.0, 8, 3, CAMERA)
    rng = np.random.default_rng(2)
    for frame in frames:
        rows = rng.normal(0.0, 0.75, (128, 1))
        banded = frame + rows
        before = (banded - frame).mean(1)
        after = (remove_row_offsets(banded) - frame).mean(1)
        assert np.std(after) < np.std(before) / 3.0
    scene = movie("independent", 3.0, (128, 128), 1, 0).clean[0]  # no noise: as it was
    assert np.std((remove_row_offsets(scene) - scene).mean(1)) < 0.15  # 0.11 (e- = ADU)


def test_masked_pixels_stay_masked_and_the_rest_is_corrected() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(0.0, 2.0, (64, 1))
    frame = (100.0 + rng.normal(0.0, 0.5, (64, 64)) + rows).astype(np.float32)
    frame[:, :8] = np.nan  # a field of view masked on its left
    out = remove_row_offsets(frame)
    assert np.isnan(out[:, :8]).all() and np.isfinite(out[:, 8:]).all()
    assert np.std(np.nanmean(out, 1)) < np.std(rows) / 4.0


@pytest.fixture(scope="module")
def na_lite() -> Engine:
    return Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None)


def test_taking_them_out_serves_the_scene_better(na_lite: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The independent generator at 1 photon per pixel read out at 0.5 ADU per e-, 1.5 e-,
    rows offset by 1.5 e-: served with the correction and without; the frames given
    are not changed (the raw frame is what the service stores); the camera's gain is
    read near the truth only with it."""
    banded_camera = EvalCamera(0.5, 100, 1.5, rows=1.5)
    test = recamera(movie("independent", 1.0, (96, 96), 16, 0), banded_camera, 0)
    frames = list(test.noisy)
    copies = [f.copy() for f in frames]

    corrected, context = served_live(na_lite, frames)
    assert (
        context.camera_side.row_noise_corrected
        and context.camera_side.row_noise == pytest.approx(0.75, rel=0.2)
    )
    assert all(np.array_equal(a, b) for a, b in zip(frames, copies, strict=True))
    monkeypatch.setattr(SeriesCamera, "_without_row_noise", lambda self, frame, learn=True: frame)
    banded, _ = served_live(na_lite, frames)
    assert psnr(corrected, test.clean) > psnr(banded, test.clean) + 2.0


def test_a_camera_with_row_noise_offsets_its_rows() -> None:
    test = movie("independent", 10.0, (64, 64), 4, 0)
    plain = recamera(test, EvalCamera(0.5, 100, 1.5), 0)
    banded = recamera(test, EvalCamera(0.5, 100, 1.5, rows=2.0), 0)
    shift = (banded.noisy.astype(np.float64) - plain.noisy).mean(2)  # a row's offset, ADU
    assert np.std(shift) == pytest.approx(1.0, rel=0.15)
    assert "rows 2 e-" in banded.generator
