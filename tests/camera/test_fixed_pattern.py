"""A fixed pattern of offsets (dark-signal non-uniformity) that frame differences cancel is
measured from a series' still pairs and counted in the live estimate's read noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from exporter.evaluation import psnr
from exporter.evaluation._evaluate import movie
from stream.camera import CameraEstimator, CameraModel
from stream.camera._fixed_pattern import FixedPattern
from stream.engine import Engine, SeriesContext, shipped_model_path
from stream.sim import CalciumPhantom, PhantomConfig


def phantom_photons(photons: float, frames: int, seed: int, size: int = 128) -> np.ndarray:
    config = PhantomConfig(
        shape=(size, size), brightness=photons, neuropil=0.3 * photons,
        background=0.2 * photons, seed=seed,
    )  # fmt: skip
    phantom = CalciumPhantom(config, frames)
    return np.stack([phantom.clean(t) for t in range(frames)])


def readout(photons: np.ndarray, pattern_e: float, seed: int) -> np.ndarray:
    """Gain 0.5 ADU per e-, offset 100, 1.5 e- of read noise, offsets differing pixel by
    pixel by ``pattern_e`` e- rms: float32 frames."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(0.0, 0.5 * pattern_e, photons.shape[1:])
    electrons = rng.poisson(photons) + rng.normal(0.0, 1.5, photons.shape)
    return (0.5 * electrons + 100.0 + pattern).astype(np.float32)


def estimate_of(frames: np.ndarray):
    estimator = CameraEstimator()
    for frame in frames:
        estimate = estimator.update(frame)
    return estimate


@pytest.mark.parametrize(("photons", "seed"), [(1.0, 1), (10.0, 2), (30.0, 3)])
def test_a_pattern_is_measured_and_counted_in_the_read_noise(photons: float, seed: int) -> None:
    """1.2 e- rms of pattern (0.6 ADU) under 1.5 e- of read noise: before, the estimate's
    read noise was the frame-to-frame one only, and the noise map left the pattern out."""
    scene = phantom_photons(photons, 12, seed)
    estimate = estimate_of(readout(scene, 1.2, seed))
    without = estimate_of(readout(scene, 0.0, seed))  # the same noise, no pattern
    assert estimate.source == "temporal"
    assert estimate.pattern == pytest.approx(0.6, rel=0.2)
    assert estimate.camera.read_noise == pytest.approx(
        np.hypot(without.camera.read_noise, estimate.pattern), rel=0.05
    )
    assert estimate.as_dict()["pattern"] == pytest.approx(estimate.pattern, rel=1e-5)


@pytest.mark.parametrize("size", [48, 64])
def test_a_small_region_of_interest_has_its_pattern_measured(size: int) -> None:
    """A reviewer's probe: frames of 64 x 64 never got one (they have 196 blocks inside
    their edge blocks, and 256 were asked for)."""
    scene = phantom_photons(3.0, 12, 5, size)
    assert estimate_of(readout(scene, 1.2, 5)).pattern == pytest.approx(0.6, rel=0.25)
    assert estimate_of(readout(scene, 0.0, 5)).pattern == 0.0


@pytest.mark.parametrize(("photons", "seed"), [(1.0, 1), (10.0, 2), (100.0, 3), (1000.0, 4)])
def test_frames_without_a_pattern_show_none(photons: float, seed: int) -> None:
    estimate = estimate_of(readout(phantom_photons(photons, 12, seed), 0.0, seed))
    assert estimate.pattern == 0.0
    assert "pattern" not in estimate.as_dict()


def test_fine_structure_brighter_than_the_darkest_quarter_is_no_pattern() -> None:
    """Points a pixel wide in every frame are structure the residuals keep, as a pattern's;
    lit in most blocks of the brighter three quarters, they stay out of the
    darkest quarter, and so out of the pattern."""
    rng = np.random.default_rng(5)
    photons = np.full((12, 128, 128), 3.0)
    photons[:, :, 32:] += 20.0
    points = rng.random((128, 128)) < 0.1
    points[:, :32] = False
    photons[:, points] += 200.0
    assert estimate_of(readout(photons, 0.0, 5)).pattern == 0.0


def test_the_pattern_is_measured_on_usable_blocks_of_still_pairs_only() -> None:
    rng = np.random.default_rng(3)
    pattern = rng.normal(0.0, 2.0, (128, 128))
    frames = [pattern + rng.normal(0.0, 1.0, (128, 128)) for _ in range(3)]
    usable, levels = np.ones(32 * 32, bool), np.zeros((32, 32))
    measured = FixedPattern()
    measured.add(frames[1], frames[0], usable)
    assert measured.variance(levels) == 0.0  # light not yet told from a pattern
    measured.add(frames[2], frames[1], usable)
    assert measured.pairs == 2
    assert measured.variance(levels) == pytest.approx(4.0, rel=0.2)
    assert measured.light_share(levels, gain=1.0) < 0.2
    assert measured.light_share(levels, gain=0.0) == 0.0  # no light to see, no gain needed
    none_usable = FixedPattern()
    for t in (1, 2):
        none_usable.add(frames[t], frames[t - 1], np.zeros_like(usable))
    assert none_usable.variance(levels) == 0.0


def test_non_finite_pixels_leave_the_pattern_measured_around_them() -> None:
    """A NaN region (a dropped readout's part, a masked field) breaks neither the
    measurement nor the frames: the pattern is measured around it, and it comes back
    as it came."""
    frames = readout(phantom_photons(3.0, 8, 4), 1.2, 4)
    frames[:, 40:60, 30:90] = np.nan
    context = SeriesContext(None, "off")
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        for t, frame in enumerate(frames):
            out = context.denoise(engine, frame, t)
    assert np.isnan(out[40:60, 30:90]).all() and np.isfinite(out[:40]).all()
    assert context.estimate is not None
    assert context.estimate.pattern == pytest.approx(0.6, rel=0.2)


def test_static_structure_whose_noise_follows_it_is_light() -> None:
    """A scene as fine as a pattern, each pixel its own light: what the residuals keep is
    the same, but here the pixels' noise follows their light, by the gain."""
    rng = np.random.default_rng(4)
    light = rng.uniform(0.0, 50.0, (128, 128))
    frames = [rng.poisson(light) + rng.normal(0.0, 2.0, light.shape) for _ in range(3)]
    usable, levels = np.ones(32 * 32, bool), np.zeros((32, 32))
    measured = FixedPattern()
    for t in (1, 2):
        measured.add(frames[t], frames[t - 1], usable)
    assert measured.variance(levels) > 100.0  # the texture: 50**2 / 12
    assert measured.light_share(levels, gain=1.0) > 0.8
    # its noise follows it plainly: light, whatever a gain poorly fitted says
    assert measured.light_share(levels, gain=10.0) == 1.0
    assert measured.light_share(levels, gain=0.0) == 1.0


def test_the_model_told_the_pattern_takes_it_out() -> None:
    """The independent generator at 1 photon per pixel with the pattern above, served as
    the service serves it (blended with smoothing by the series' measured risks, which
    rest on the noise variance): with the live estimate, 18.9 dB, over the truth-tuned
    Gaussian's 17.3; told the true camera without its pattern, as the estimate before
    did, 11.9 (the same camera with the pattern in its read noise: 19.4)."""
    test = movie("independent", 1.0, (96, 96), 10, 0)
    photons = np.maximum((test.clean.astype(np.float64) - test.offset) / test.gain, 0.0)
    frames = readout(photons, 1.2, 7)
    truth = (0.5 * photons + 100.0).astype(np.float32)
    engine = Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None)

    def served(camera: CameraModel | None) -> np.ndarray:
        context = SeriesContext(camera, "spatial")
        return np.stack([context.denoise(engine, f, t) for t, f in enumerate(frames)])

    live = psnr(served(None), truth)
    told = psnr(served(CameraModel(gain=0.5, offset=100.0, read_noise=0.75)), truth)
    gaussian = max(
        psnr(ndimage.gaussian_filter(frames, (0, s, s)), truth) for s in np.arange(0.5, 3.01, 0.25)
    )
    assert live > told + 3.0
    assert live > gaussian + 0.5
