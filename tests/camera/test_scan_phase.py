"""A bidirectional scan's phase: odd lines displaced along the line. Found from a
series' first frames (and not from a scene's own diagonal structure), served to the
model moved back, and given back where it came."""

from __future__ import annotations

import numpy as np
import pytest

from stream.camera import ScanPhase, aligned, unaligned, unaligned_pixels


def _scene(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Blurred blobs: cells' worth of structure on a background, in photons."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    spots = np.zeros(shape)
    spots[rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)] = 1.0
    return 20.0 + 4000.0 * ndimage.gaussian_filter(spots, 3.0)


def _combed(scene: np.ndarray, lag: int) -> np.ndarray:
    out = scene.copy()
    out[1::2] = np.roll(scene[1::2], lag, axis=1)
    return out


def _frames(scene: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (100 + rng.poisson(scene) + rng.normal(0, 3, scene.shape)).round() for _ in range(count)
    ]


@pytest.mark.parametrize("lag", [2, -3, 1])
def test_a_lag_between_the_scan_directions_is_found(lag: int) -> None:
    phase = ScanPhase()
    for frame in _frames(_combed(_scene((96, 96), 1), lag), 3, 2):
        phase.add(frame)
    assert phase.lag == lag and phase.done


def test_a_scene_without_one_has_none_diagonals_included() -> None:
    """A diagonal edge fits an odd line moved either way alike: no lag."""
    yy, xx = np.mgrid[0:96, 0:96]
    stripes = 20.0 + 200.0 * (np.sin((xx + yy) / 2.0) > 0)  # 45-degree stripes
    for scene in (_scene((96, 96), 3), stripes):
        phase = ScanPhase()
        for frame in _frames(scene, 16, 4):
            phase.add(frame)
        assert phase.lag == 0 and phase.done  # the search ends after its frames


def test_a_still_scenes_own_asymmetry_is_counted_once_not_every_frame() -> None:
    """Short sharp diagonal dashes ending on odd lines fit a lag slightly; pooled over
    the frames as new lines each time, that slight fit passed 5 standard errors by the
    fifth frame of a still series."""
    rng = np.random.default_rng(2)
    dashes = np.zeros((96, 96))
    for _ in range(25):
        y0, x0 = rng.integers(0, 88), rng.integers(0, 80)
        for k in range(6):
            dashes[y0 + k, x0 + 2 * k : x0 + 2 * k + 2] = 1.0
    for seed in range(4):
        phase = ScanPhase()
        for frame in _frames(5.0 + 100.0 * dashes, 16, seed):
            phase.add(frame)
        assert phase.lag == 0 and phase.done


def test_aligned_moves_the_odd_lines_back_and_unaligned_undoes_it() -> None:
    frame = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    for lag in (2, -3):
        wide = aligned(frame, lag)
        assert wide.shape == (6, 8 + abs(lag)) and np.isnan(wide).sum() == 3 * 2 * abs(lag)
        np.testing.assert_array_equal(unaligned(wide, lag, 8), frame)
    combed = _combed(np.tile(np.arange(20, dtype=np.float32), (4, 1)), 2)
    wide = aligned(combed, 2)
    np.testing.assert_array_equal(wide[1, 2:18], wide[0, 2:18])  # the lines agree again


def test_pixels_found_in_the_lines_moved_back_map_to_the_raw_frame() -> None:
    """Noisy pixels are searched for in the aligned frame; the live estimate, fed the
    raw frames, is told where they lie there."""
    frame = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)  # each value once
    for lag in (2, -3):
        wide = aligned(frame, lag)
        ys, xs = np.nonzero(np.ones(wide.shape, bool))
        raw_ys, raw_xs = unaligned_pixels((ys, xs), lag, 8)
        assert raw_ys.size == 6 * 8  # the NaN ends left out
        inside = np.isfinite(wide[ys, xs])
        np.testing.assert_array_equal(frame[raw_ys, raw_xs], wide[ys, xs][inside])


def test_a_hot_pixel_or_brighter_odd_lines_make_no_lag() -> None:
    """One hot pixel decided the lag alone; odd lines 3 % brighter across a gradient
    read as a 3 px lag."""
    rng = np.random.default_rng(7)
    combed = _combed(_scene((96, 96), 8), 3)
    for hot in (20000.0, 65535.0):
        phase = ScanPhase()
        for frame in _frames(combed, 3, 9):
            frame[41, 60] = hot
            phase.add(frame)
        assert phase.lag == 3
    ramp = np.tile(np.linspace(200.0, 1000.0, 96), (96, 1))
    ramp[1::2] *= 1.03
    phase = ScanPhase()
    for _ in range(16):
        phase.add(rng.poisson(ramp).astype(np.float32))
    assert phase.lag == 0


def test_a_combed_series_is_denoised_better_than_it_came_and_keeps_its_comb() -> None:
    """Odd lines 3 px behind at high light: the shipped default smoothed the comb as
    noise, and came out barely better than its input here (worse than it in brighter
    frames)."""
    from stream.engine import Engine, SeriesContext, default_model_path

    truth = 100 + _combed(_scene((96, 96), 5), 3)
    frames = _frames(truth - 100, 4, 6)
    context = SeriesContext(None)
    error_in = error_out = 0.0
    with Engine(default_model_path("cpu"), provider="cpu", warmup_shape=None) as engine:
        for t, frame in enumerate(frames):
            out = context.denoise(engine, frame.astype(np.uint16), t)
            assert out.shape == frame.shape
            error_in += float(np.mean((frame - truth) ** 2))
            error_out += float(np.mean((out - truth) ** 2))
    assert context.camera_side.scan_lag == 3
    assert error_out < 0.3 * error_in, (error_out, error_in)  # 0.13 now, 0.81 before
