"""The step between readout values, in any unit: coarse counts must read the same
shifted into the top bits of a word or scaled to [0, 1] as they do as counts."""

from __future__ import annotations

import numpy as np
import pytest

from stream.camera import CameraEstimator, floor_pixels, readout_step

RNG = np.random.default_rng(7)
COUNTS = (RNG.poisson(40.0, (128, 128)) + 100).astype(np.uint16)


@pytest.mark.parametrize(
    ("frame", "step"),
    [
        (COUNTS, 1.0),
        (COUNTS << 4, 16.0),  # 12-bit counts aligned to the top of 16-bit words
        (COUNTS.astype(np.float32), 1.0),  # whole numbers in a float frame
        ((COUNTS / 4095).astype(np.float32), 1 / 4095),
        (np.maximum(COUNTS - 130.012, 0).astype(np.float32), 1.0),  # less a background
        (RNG.normal(100.0, 3.0, (128, 128)).astype(np.float32), 0.0),  # no steps
        (RNG.normal(0.01, 0.003, (128, 128)), 0.0),
        (np.full((16, 16), 7, np.uint8), 1.0),
        (RNG.normal(1000.0, 0.1, (128, 128)).astype(np.float32), 0.0),  # float32's spacing
        (RNG.uniform(0.5, 1.0, (64, 64)).astype(np.float16), 0.0),  # float16's
        (np.array([[0.1, 0.7, 0.3]], np.float32), 0.0),  # too few values to tell
    ],
)
def test_the_step_is_found_in_any_unit(frame: np.ndarray, step: float) -> None:
    assert readout_step(frame) == pytest.approx(step, rel=1e-4)


def coarse_counts(frames: int) -> list[np.ndarray]:
    """A still scene at 3 photons per pixel, 0.1 ADU per e-, 2 e- of read noise: three
    values a frame."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :96]
    light = 3.0 * (1.0 + np.sin(xx / 9.0) * np.cos(yy / 13.0))
    return [
        np.rint(0.1 * (rng.poisson(light) + rng.normal(0.0, 2.0, light.shape)) + 100.0).astype(
            np.uint16
        )
        for _ in range(frames)
    ]


@pytest.mark.parametrize(("unit", "scale"), [("<< 4", 16.0), ("/ 4095", 1 / 4095)])
def test_coarse_counts_in_other_units_get_the_same_camera_scaled(unit: str, scale: float) -> None:
    """Before, the repeated maximum of shifted or scaled coarse counts was taken for
    saturation (a step of 1 was assumed), the fit lost every level above the darkest,
    and the model returned its input."""
    counts, other = CameraEstimator(), CameraEstimator()
    for frame in coarse_counts(12):
        expected = counts.update(frame)
        shifted = frame << 4 if unit == "<< 4" else (frame / 4095).astype(np.float32)
        got = other.update(shifted)
    assert got.saturated == expected.saturated == 0.0
    assert got.camera.gain == pytest.approx(expected.camera.gain * scale, rel=0.02)
    assert got.camera.read_noise == pytest.approx(expected.camera.read_noise * scale, rel=0.02)
    assert got.camera.offset == pytest.approx(expected.camera.offset * scale, rel=0.02)


def test_a_floor_is_found_in_scaled_and_background_subtracted_readouts() -> None:
    """Clipped readouts read the same scaled to [0, 1], or less a fractional background
    then clipped at 0: before, a float lattice was taken for readouts of any value and
    no floor was found (the model lost 4 dB it keeps on the counts)."""
    rng = np.random.default_rng(2)
    clipped = np.maximum(np.rint(rng.normal(0.5, 3.0, (128, 128))), 0).astype(np.uint16)
    assert floor_pixels(clipped) is not None
    scaled = floor_pixels((clipped / 4095).astype(np.float32))
    assert scaled is not None and scaled[0] == 0.0
    counts = np.rint(rng.normal(101.5, 3.0, (128, 128)))
    subtracted = np.maximum(counts - 101.012, 0.0).astype(np.float32)
    found = floor_pixels(subtracted)
    assert found is not None and found[0] == 0.0 and found[1].mean() > 0.3
