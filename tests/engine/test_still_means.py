"""A temporal model's still, bright pixels mixed with their raw readouts' mean over the
frames they held still (stream.engine._still_means): better where the light is bright and
the scene still, the network's output exactly where it is dim or changes."""

from __future__ import annotations

import numpy as np
import pytest

from stream.engine import CameraModel, Engine, SeriesContext, shipped_model_path
from stream.engine._gaussian import box_mean
from stream.engine._still_means import MAX_FRAMES, StillMeans

CAMERA = CameraModel(gain=1.0, offset=100.0, read_noise=3.0)
SHAPE = (48, 48)


def scene(photons: float) -> np.ndarray:
    """Expected readouts of a still scene with smooth structure (ADU)."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    pattern = 1.0 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
    return (CAMERA.offset + photons * pattern).astype(np.float32)


def readout(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    photons = (clean - CAMERA.offset) / CAMERA.gain
    noisy = CAMERA.gain * rng.poisson(photons) + rng.normal(0, CAMERA.read_noise, clean.shape)
    return (noisy + CAMERA.offset).astype(np.float32)


def network_output(clean: np.ndarray, rng: np.random.Generator, error: float) -> np.ndarray:
    """A stand-in for a network: the truth plus a fixed bias (structure it smoothed) and
    fresh noise, together ``error`` times the camera's noise variance."""
    var = (clean - CAMERA.offset) * CAMERA.gain + CAMERA.read_noise**2
    bias = np.sqrt(error * var / 2) * np.sign(np.sin(np.arange(clean.size))).reshape(clean.shape)
    fresh = rng.normal(0.0, 1.0, clean.shape) * np.sqrt(error * var / 2)
    return (clean + bias + fresh).astype(np.float32)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def test_box_mean_matches_a_direct_sum() -> None:
    image = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    padded = np.pad(image, 1, mode="edge")
    direct = sum(padded[i : i + 5, j : j + 7] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(box_mean(image, 3), direct, rtol=1e-6)


def test_a_bright_still_scene_is_averaged_and_the_network_error_estimated_blind() -> None:
    rng = np.random.default_rng(1)
    clean = scene(2000.0)  # noise about 2.2 % of the signal
    still = StillMeans()
    errors_in, errors_out = [], []
    for t in range(12):
        y = network_output(clean, rng, error=0.4)
        out = still.mixed(readout(clean, rng), y, CAMERA)
        if t == 0:
            np.testing.assert_array_equal(out, y)  # nothing to mix with yet
        errors_in.append(mse(y, clean))
        errors_out.append(mse(out, clean))
    assert still.share > 0.95
    assert still.frames == pytest.approx(MAX_FRAMES, rel=0.05)  # a few restart by chance
    assert still.model_error == pytest.approx(0.4, rel=0.2)
    assert np.mean(errors_out[MAX_FRAMES:]) < 0.5 * np.mean(errors_in[MAX_FRAMES:])
    still.reset()
    y = network_output(clean, rng, error=0.4)
    np.testing.assert_array_equal(still.mixed(readout(clean, rng), y, CAMERA), y)
    assert still.share == 0.0 and still.model_error is None


def test_dim_pixels_are_left_as_the_network_gave_them() -> None:
    rng = np.random.default_rng(2)
    clean = scene(20.0)  # noise about 25 % of the signal: a change of a few % would not show
    still = StillMeans()
    for _ in range(6):
        y = network_output(clean, rng, error=0.1)
        np.testing.assert_array_equal(still.mixed(readout(clean, rng), y, CAMERA), y)
    assert still.share == 0.0


def test_a_change_restarts_the_mean_where_it_happens() -> None:
    rng = np.random.default_rng(3)
    clean = scene(2000.0)
    still = StillMeans()
    for _ in range(6):
        still.mixed(readout(clean, rng), network_output(clean, rng, 0.4), CAMERA)
    brighter = clean.copy()
    brighter[10:20, 10:20] = CAMERA.offset + 1.2 * (brighter[10:20, 10:20] - CAMERA.offset)
    y = network_output(brighter, rng, 0.4)  # a transient of +20 % in a square
    out = still.mixed(readout(brighter, rng), y, CAMERA)
    np.testing.assert_array_equal(out[10:20, 10:20], y[10:20, 10:20])
    away = (slice(30, 45), slice(30, 45))
    assert not np.array_equal(out[away], y[away])  # still elsewhere: mixed


def test_non_finite_pixels_stay_as_they_were() -> None:
    rng = np.random.default_rng(4)
    clean = scene(2000.0)
    still = StillMeans()
    for _ in range(4):
        frame = readout(clean, rng)
        frame[5, 5] = np.nan
        y = network_output(clean, rng, 0.4)
        y[5, 5] = np.nan
        out = still.mixed(frame, y, CAMERA)
    assert np.isnan(out[5, 5])
    assert np.isfinite(np.delete(out.ravel(), 5 * SHAPE[1] + 5)).all()
    assert still.share > 0.9 and still.model_error is not None  # the rest is still mixed
    assert not np.array_equal(out[20:, 20:], y[20:, 20:])


def test_a_temporal_model_gets_it_and_a_spatial_one_or_blend_off_does_not() -> None:
    rng = np.random.default_rng(5)
    clean = scene(3000.0)
    frames = [readout(clean, rng).round().astype(np.uint16) for _ in range(5)]
    with Engine(shipped_model_path("na-temporal"), provider="cpu", warmup_shape=None) as engine:
        served = SeriesContext(CAMERA)
        plain = SeriesContext(CAMERA, blend="off")
        for t, frame in enumerate(frames):
            served.denoise(engine, frame, t)
            plain.denoise(engine, frame, t)
        assert served.still_means.share > 0.5 and served.still_means.model_error is not None
        assert plain.still_means.share == 0.0
        # the means held: 8 bytes a pixel more than the ring and the last frame
        assert served.history_bytes - plain.history_bytes == 8 * clean.size
        served.denoise(engine, frames[0], 10)  # a gap: the means start again
        assert served.still_means.share == 0.0
        better = [SeriesContext(CAMERA), SeriesContext(CAMERA, blend="off")]
        errors = np.zeros(2)
        for t in range(12):  # fresh frames: scored on the truth after the means fill
            frame = readout(clean, rng).round().astype(np.uint16)
            for k, context in enumerate(better):
                out = context.denoise(engine, frame, t)
                errors[k] += mse(out, clean) if t >= MAX_FRAMES else 0.0
        assert errors[0] < 0.7 * errors[1]
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        spatial = SeriesContext(CAMERA)
        for t, frame in enumerate(frames):
            spatial.denoise(engine, frame, t)
        assert spatial.still_means.share == 0.0


def test_bright_is_reckoned_from_the_noise_not_the_offset() -> None:
    """400 photo-electrons' worth of noise is bright whichever way offset and read noise
    share the variance line's intercept (a live estimate trades them off); dark pixels of
    a camera with 20 e- of read noise are not, and an unknown gain mixes nothing."""
    from stream.engine._still_means import bright_variance

    true = CameraModel(gain=1.0, offset=100.0, read_noise=4.0)
    traded = CameraModel(gain=1.0, offset=244.0, read_noise=float(np.sqrt(16.0 + 144.0)))
    assert bright_variance(true) == bright_variance(traded) == pytest.approx(400.0)
    noisy_camera = CameraModel(gain=1.0, offset=100.0, read_noise=20.0)
    assert bright_variance(noisy_camera) == pytest.approx(800.0)  # shot noise must outweigh
    rng = np.random.default_rng(6)
    clean = scene(2000.0)
    unknown = StillMeans()
    for _ in range(4):
        y = network_output(clean, rng, 0.4)
        np.testing.assert_array_equal(unknown.mixed(readout(clean, rng), y, CAMERA, 1.0), y)
    assert unknown.share == 0.0
