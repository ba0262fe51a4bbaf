"""A scene that moves between frames (the stage, the focus, a new field) is not read as
noise by the live camera estimate."""

from __future__ import annotations

import numpy as np
import pytest
from camera_harness import phantom_readouts, star_frames
from scipy import ndimage

from stream.camera import CameraEstimator, CameraModel, scene_moved, still_ratio
from stream.camera._samples import _aligned_by_shift, _cell_power, blockwise_means
from stream.sim import CalciumPhantom, PhantomConfig

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.5)


def scene(photons: float, seed: int, frames: int = 1, shape=(128, 128)) -> list[np.ndarray]:
    """``frames`` consecutive readouts of one calcium scene (its cells fire as they do)."""
    return phantom_readouts(photons, frames, seed, CAMERA, shape)


def ratio_of(frame: np.ndarray, previous: np.ndarray) -> tuple[float, float]:
    difference = np.subtract(frame, previous, dtype=np.float32)
    cells = _cell_power(difference)
    return still_ratio(blockwise_means(difference * difference).ravel(), cells)


def test_white_noise_is_still_and_a_moved_scene_is_not() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 3.0, (2, 256, 256)).astype(np.float32)
    ratio, limit = ratio_of(noise[0], noise[1])
    assert abs(ratio - 1.0) < 0.03 and limit == pytest.approx(1.1)
    a, b = scene(100.0, seed=1)[0], scene(100.0, seed=2)[0]
    ratio, limit = ratio_of(a, b)
    assert ratio > 2 * limit, ratio


def test_the_limit_widens_for_small_frames() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 3.0, (2, 32, 32)).astype(np.float32)  # 64 blocks
    ratio, limit = ratio_of(noise[0], noise[1])
    assert limit == pytest.approx(1.45) and ratio < limit
    assert still_ratio(np.ones(8), np.ones(8)) == (1.0, np.inf)  # too few blocks to tell


@pytest.mark.parametrize("photons", [10.0, 100.0])
def test_a_new_scene_every_frame_is_not_read_as_noise(photons: float) -> None:
    """Before the still test, the differences of unrelated scenes were read as noise:
    gain 3.5 for a true 2 at 100 photons here (and 10x on the evaluation's ``fields``,
    where a noise-adaptive model oversmoothed below its input)."""
    estimator = CameraEstimator()
    for seed in range(24):
        estimate = estimator.update(scene(photons, seed=100 + seed)[0])
    # at 10 photons a pair of dim scenes can differ by less than its noise: it passes
    assert 20 <= estimate.moved <= 23 and estimate.as_dict()["moved"] == estimate.moved
    assert estimate.camera.gain == pytest.approx(CAMERA.gain, rel=0.3), estimate


@pytest.mark.parametrize("photons", [3.0, 30.0, 300.0])
def test_a_still_calcium_series_moves_no_pair(photons: float) -> None:
    estimator = CameraEstimator()
    for frame in scene(photons, seed=7, frames=40):
        estimate = estimator.update(frame)
    assert estimate.moved == 0


def test_a_stage_move_mid_series_costs_one_pair_not_the_estimate() -> None:
    estimator = CameraEstimator()
    frames = scene(30.0, seed=11, frames=24) + scene(30.0, seed=12, frames=24)
    for frame in frames:
        estimate = estimator.update(frame)
    assert estimate.moved == 1
    assert estimate.camera.gain == pytest.approx(CAMERA.gain, rel=0.1)
    assert estimate.offset_source == "skew"  # triples resume after the move


@pytest.mark.parametrize("kernel", [(0.25, 0.5, 0.25), (0.25, 0.25, 0.25, 0.25)])
def test_noise_shared_along_rows_is_not_a_moved_scene(kernel) -> None:
    """A two-photon amplifier's low-pass along the scan line: counts filtered along rows.
    The cells' residuals lose most of such noise, so every still pair read as moved and
    the gain came from those residuals (0.08 for a per-pixel 0.375 here). The
    differences across rows keep it whole: no pair moved, and the gain is the filtered
    shot noise's per pixel (the kernel's sum of squares times the camera's)."""
    config = PhantomConfig(
        shape=(192, 192), brightness=100.0, neuropil=30.0, background=20.0, seed=3, noise=CAMERA
    )
    phantom = CalciumPhantom(config, 16)
    rng = np.random.default_rng(5)
    weights = np.asarray(kernel)
    estimator = CameraEstimator()
    for t in range(16):
        counts = rng.poisson(phantom.clean(t)).astype(np.float64)
        shared = sum(w * np.roll(counts, i, axis=1) for i, w in enumerate(weights))
        adu = CAMERA.gain * shared + CAMERA.offset
        adu += rng.normal(0.0, CAMERA.read_noise, counts.shape)
        estimate = estimator.update(np.rint(adu).astype(np.uint16))
    assert estimate.moved == 0
    per_pixel = CAMERA.gain * float(np.sum(weights**2))
    assert estimate.camera.gain == pytest.approx(per_pixel, rel=0.2), estimate


def registered(photons: float, frames: int, seed: int = 4) -> list[np.ndarray]:
    """A still scene whose sample jitters by up to half a pixel, each frame shifted back
    (bilinear) before it is sent, as online motion correction does: every pixel's noise
    is mixed with its neighbours', both ways, a little differently each frame."""
    config = PhantomConfig(
        shape=(192, 192), brightness=photons, neuropil=0.3 * photons,
        background=0.2 * photons, seed=seed, noise=CAMERA,
    )  # fmt: skip
    still = CalciumPhantom(config, 1).clean(0)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        jitter = rng.uniform(-0.5, 0.5, 2)
        photons_seen = np.maximum(ndimage.shift(still, -jitter, order=1, mode="nearest"), 0)
        raw = CAMERA.gain * rng.poisson(photons_seen) + CAMERA.offset
        raw += rng.normal(0.0, CAMERA.read_noise, raw.shape)
        back = ndimage.shift(raw, jitter, order=1, mode="nearest")
        out.append(np.rint(back).astype(np.uint16))
    return out


def test_registered_frames_are_still_with_noise_shared_both_ways() -> None:
    """The cells' residuals and the lines both lose such noise: every pair read as moved,
    and the gain came from the cells (0.25-0.30 for a true 1 on the evaluation's
    generator). Two pixels apart the noise is independent: the pairs are still, most of
    them with noise shared both ways, and the gain is the interpolated noise's per pixel
    (4/9 of the camera's for a uniform jitter of up to half a pixel)."""
    estimator = CameraEstimator()
    for frame in registered(100.0, 16):
        estimate = estimator.update(frame)
    assert estimate.moved <= 1 and estimate.pairs == 15
    assert estimate.noise_shared and estimate.as_dict()["shared"] == estimate.shared
    assert 0.3 * CAMERA.gain < estimate.camera.gain < 0.65 * CAMERA.gain, estimate


def test_white_noise_is_not_shared() -> None:
    estimator = CameraEstimator()
    for frame in scene(100.0, seed=7, frames=16, shape=(192, 192)):
        estimate = estimator.update(frame)
    assert estimate.shared == 0 and not estimate.noise_shared
    assert "shared" not in estimate.as_dict()


@pytest.mark.parametrize("stars", [150, 400])
def test_a_star_field_drifting_a_pixel_a_frame_has_moved(stars: int) -> None:
    """A moving scene's difference is its gradient; a sparse field's kept its power in
    the lines, as noise shared along rows does: its pairs read "lined", their stars
    counted as noise (gain 1.6 and 4.9 for 0.3). The whole-pixel shift aligns them."""
    frames, _ = star_frames(drift=1, stars=stars)
    estimator = CameraEstimator()
    for frame in frames:
        estimate = estimator.update(frame)
    assert estimate.moved == estimate.pairs == 5
    # what the model is told: the noise at the sky's level (18 ADU over the offset) and
    # at a bright star's (900 over it)
    camera = estimate.camera
    for level, truth in ((118.0, 0.3 * 18.0), (1000.0, 0.3 * 900.0)):
        told = camera.gain * max(level - camera.offset, 0.0) + camera.read_noise**2
        assert told == pytest.approx(truth, rel=0.5), (level, estimate)
    assert scene_moved(frames[1], frames[0])


@pytest.mark.parametrize("hole", ["pixel", "corner"])
def test_a_drift_is_seen_beside_non_finite_pixels(hole: str) -> None:
    """The temporal ring's test gets frames with their NaN pixels and masked regions in:
    one NaN pixel turned the shift test off, and the drift went unseen."""
    frames, _ = star_frames(drift=1, frames=2)
    pair = [f.astype(np.float32) for f in frames]
    for frame in pair:
        if hole == "pixel":
            frame[40, 50] = np.nan
        else:
            frame[:16, :16] = np.nan
    assert scene_moved(pair[1], pair[0])


def test_a_still_star_field_holds_still() -> None:
    estimator = CameraEstimator()
    frames, _ = star_frames(drift=0)
    for frame in frames:
        estimate = estimator.update(frame)
    assert estimate.moved == 0 and not scene_moved(frames[1], frames[0])
    assert estimate.camera.gain == pytest.approx(0.3, rel=0.15), estimate


def test_a_fine_texture_drifting_a_pixel_a_frame_has_moved() -> None:
    """A texture blurred over 0.8 px, drifting a pixel a frame: its difference read as
    noise shared both ways ("shared"); the best whole-pixel shift leaves 0.78 of its
    power, under the 0.9 that tells a move (which pins that share from below too)."""
    rng = np.random.default_rng(1)
    field = 60.0 + ndimage.gaussian_filter(rng.normal(0.0, 20.0, (128, 140)), 0.8)
    frames = [
        np.rint(0.3 * rng.poisson(np.maximum(field[:, 2 + t : 130 + t], 0)) + 100) for t in range(2)
    ]
    assert scene_moved(frames[1], frames[0])
    assert _aligned_by_shift(frames[1], frames[0])


def test_row_noise_on_a_still_scene_is_no_shift() -> None:
    """Row offsets fresh every frame make a still pair's difference a set of rows; some
    shift pairs rows whose offsets agree (17 of 45 pairs left under 0.9 of the power
    unlevelled). Levelled by rows and columns first, none is."""
    camera = CameraModel(gain=0.5, offset=100.0, read_noise=0.75)
    called = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        frames = [
            f + rng.normal(0.0, 1.5, (96, 1))
            for f in phantom_readouts(1.0, 16, seed, camera, (96, 96))
        ]
        called += sum(_aligned_by_shift(a, b) for a, b in zip(frames[1:], frames[:-1], strict=True))
    assert called == 0


@pytest.mark.parametrize("shared", ["rows", "both"])
def test_small_flat_frames_with_shared_noise_hold_still(shared: str) -> None:
    """Noise alone: the best of the shifts about a random peak leaves the power as it was
    within its spread, which is wide on small frames (at a fixed 0.9, 16-48 px still
    pairs were called moved in 11-57 of 100)."""
    rng = np.random.default_rng(0)
    called = 0
    for size in (16, 24, 32, 48):
        for _ in range(50):
            pair = []
            for _ in range(2):
                counts = rng.poisson(30.0, (size, size)).astype(np.float64)
                if shared == "rows":  # an amplifier's low-pass along the line
                    counts = (
                        0.25 * counts + 0.5 * np.roll(counts, 1, 1) + 0.25 * np.roll(counts, 2, 1)
                    )
                else:  # a resampling's
                    counts = ndimage.uniform_filter(counts, 2)
                pair.append(np.rint(2.0 * counts + 100 + rng.normal(0.0, 1.0, counts.shape)))
            called += _aligned_by_shift(pair[1], pair[0])
    assert called <= 2
