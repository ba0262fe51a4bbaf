"""A temporal model's lag behind its frame, taken back where the frame shows it
(stream.engine._lag): corrected where the output stands off the frame and the frame off
the previous ones; left alone where only noise, or only the network's bias on a still
scene, is there; and, through the real engine, a movie of cells firing within a frame
comes out closer to the truth with it than without."""

from __future__ import annotations

import numpy as np
import pytest

import stream.engine._engine as engine_module
from stream.engine import CameraModel, Engine, SeriesContext, shipped_model_path
from stream.engine._gaussian import box_mean
from stream.engine._lag import LAG_BOX, box_spread, follow_frame
from stream.engine._pixels import finite_copy
from stream.engine._series_blend import as_given

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.5)
SHAPE = (48, 56)


def readout(photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = CAMERA.gain * rng.poisson(photons) + rng.normal(0.0, CAMERA.read_noise, photons.shape)
    return (CAMERA.offset + noisy).astype(np.float32)


def expected(photons: np.ndarray) -> np.ndarray:
    return (CAMERA.offset + CAMERA.gain * photons).astype(np.float32)


def smooth_scene(level: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return level * (1.0 + 0.3 * np.sin(yy / 6.0) * np.cos(xx / 8.0))


def test_box_mean_is_the_mean_over_the_box_with_mirrored_borders() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(9, 11)).astype(np.float32)
    padded = np.pad(image.astype(np.float64), 2, mode="symmetric")
    want = np.array([[padded[r : r + 5, c : c + 5].mean() for c in range(11)] for r in range(9)])
    np.testing.assert_allclose(box_mean(image, 5), want, atol=1e-5)


def test_box_spread_is_the_box_means_standard_error_borders_included() -> None:
    spread = box_spread((20, 30), 5)
    assert spread[10, 15] == pytest.approx(0.2)  # 25 pixels, each once
    assert spread[0, 15] == pytest.approx(np.sqrt((4 + 4 + 1) / 25) * np.sqrt(5) / 5)
    assert box_spread((1, 1), 5)[0, 0] == pytest.approx(1.0)  # one pixel, 25 times
    rng = np.random.default_rng(7)
    means = np.array(
        [box_mean(rng.normal(size=(20, 30)).astype(np.float32), 5) for _ in range(2000)]
    )
    np.testing.assert_allclose(means.std(axis=0), spread, rtol=0.12)


def test_a_lag_where_the_scene_changed_is_taken_back() -> None:
    rng = np.random.default_rng(1)
    before = smooth_scene(20.0)
    now = before.copy()
    now[10:30, 15:40] += 40.0  # a patch that lit up in this frame
    previous = [readout(before, rng) for _ in range(4)]
    frame = readout(now, rng)
    truth = expected(now)
    lagging = truth.copy()
    lagging[10:30, 15:40] -= 0.6 * 40.0 * CAMERA.gain  # the output kept 60 % of before
    result = lagging.copy()
    follow_frame(result, frame, previous, CAMERA)
    inner = (slice(13, 27), slice(18, 37))  # away from the patch's edges
    before_error = np.abs(lagging[inner] - truth[inner]).mean()
    after_error = np.abs(result[inner] - truth[inner]).mean()
    assert after_error < 0.2 * before_error
    far = (slice(38, 48), slice(0, 56))  # no change, no lag: all but a few untouched
    assert (result[far] != lagging[far]).mean() < 0.01


def test_following_events_takes_back_a_faint_change_at_a_price_in_noise() -> None:
    """A patch 4 photons brighter over 3 (a transient at low light): ``balanced`` leaves
    a third to half of the lag, and ``events`` nearly none; on noise alone, ``events``
    moves some pixels a little (its PSNR cost), ``balanced`` next to none."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        before = smooth_scene(3.0)
        now = before.copy()
        now[10:30, 15:40] += 4.0
        previous = [readout(before, rng) for _ in range(4)]
        frame = readout(now, rng)
        truth = expected(now)
        lag = 0.6 * 4.0 * CAMERA.gain
        lagging = truth.copy()
        lagging[10:30, 15:40] -= lag
        inner = (slice(13, 27), slice(18, 37))
        left = {}
        for follow in ("balanced", "events"):
            result = lagging.copy()
            follow_frame(result, frame, previous, CAMERA, follow=follow)
            left[follow] = float(np.mean(truth[inner] - result[inner])) / lag
        assert left["events"] < 0.2 and left["balanced"] > 0.25, left
        scene = smooth_scene(3.0)
        previous = [readout(scene, rng) for _ in range(4)]
        frame = readout(scene, rng)
        touched = {}
        for follow in ("balanced", "events"):
            result = expected(scene)
            follow_frame(result, frame, previous, CAMERA, follow=follow)
            touched[follow] = float((result != expected(scene)).mean())
        assert touched["balanced"] < 0.01 and touched["events"] < 0.15, touched


def test_an_unknown_follow_is_refused() -> None:
    from stream import ConfigError

    with pytest.raises(ConfigError, match="expected follow of balanced or events, got 'fast'"):
        Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None, follow="fast")  # type: ignore[arg-type]


def test_noise_alone_is_left_alone() -> None:
    rng = np.random.default_rng(2)
    scene = smooth_scene(10.0)
    previous = [readout(scene, rng) for _ in range(4)]
    frame = readout(scene, rng)
    result = expected(scene)  # a perfect output: the residual is the frame's noise
    follow_frame(result, frame, previous, CAMERA)
    changed = result != expected(scene)
    assert changed.mean() < 0.01


def test_noise_alone_is_left_alone_at_the_borders_of_a_thin_frame() -> None:
    """Every box of a one-row frame repeats its pixels (mirrored): judged as 25
    independent pixels, its noise would read as lags."""
    rng = np.random.default_rng(8)
    scene = np.full((1, 4096), 10.0)
    previous = [readout(scene, rng) for _ in range(4)]
    frame = readout(scene, rng)
    result = expected(scene)
    follow_frame(result, frame, previous, CAMERA)
    assert (result != expected(scene)).mean() < 0.01


def test_too_few_photo_electrons_are_not_judged() -> None:
    """A photon counter (no read noise) at 0.4 photons per pixel (10 in a box): its
    counts are too skewed for the Gaussian's errors, and a patch lit that dimly is left
    to the network; a brighter one is followed."""
    counter = CameraModel(gain=1.0, offset=100.0, read_noise=0.0)
    rng = np.random.default_rng(9)
    for photons, followed in ((0.4, False), (6.0, True)):
        now = np.zeros(SHAPE)
        now[10:30, 15:40] = photons
        previous = [
            (counter.offset + rng.poisson(np.zeros(SHAPE))).astype(np.float32) for _ in range(4)
        ]
        frame = (counter.offset + rng.poisson(now)).astype(np.float32)
        lagging = np.full(SHAPE, counter.offset, np.float32)  # the patch not followed at all
        result = lagging.copy()
        follow_frame(result, frame, previous, counter)
        assert (result[12:28, 17:38] != lagging[12:28, 17:38]).any() == followed


def test_a_bias_on_a_still_scene_is_the_networks_to_keep() -> None:
    """The output stands off the frame, but the frame does not stand off the previous
    frames: no change, so no lag (a network's smoothing of still detail stays)."""
    rng = np.random.default_rng(3)
    scene = smooth_scene(30.0)
    previous = [readout(scene, rng) for _ in range(4)]
    frame = readout(scene, rng)
    biased = expected(scene) - 20.0  # far beyond the box mean's error
    result = biased.copy()
    follow_frame(result, frame, previous, CAMERA)
    assert (result != biased).mean() < 0.01


def test_spikes_and_non_finite_pixels_count_as_neither_residual_nor_change() -> None:
    rng = np.random.default_rng(4)
    scene = smooth_scene(10.0)
    previous = [readout(scene, rng) for _ in range(4)]
    frame = readout(scene, rng)
    spikes = np.zeros(SHAPE, dtype=bool)
    spikes[20, 20] = True
    frame[20, 20] = 60_000.0  # a hot pixel
    frame[30:33, 40:43] = np.nan  # the output has them filled
    result = expected(scene)
    follow_frame(result, frame, previous, CAMERA, (spikes,))
    for r, c in ((20, 20), (31, 41)):
        window = (slice(r - LAG_BOX, r + LAG_BOX + 1), slice(c - LAG_BOX, c + LAG_BOX + 1))
        assert np.abs(result[window] - expected(scene)[window]).max() < 1.0
    assert np.isfinite(result).all()


def firing_movie(rng: np.random.Generator, frames: int = 14) -> np.ndarray:
    """Photons of sparse cells on a dim field, each firing within a frame (20-60
    photons) and decaying over about 3 frames -- a held-out probe's hard case."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    field = 0.3 + 0.2 * np.sin(xx / 9.0)
    movie = np.repeat(field[None], frames, axis=0)
    for _ in range(4):
        cy, cx, r = rng.uniform(6, SHAPE[0] - 6), rng.uniform(6, SHAPE[1] - 6), rng.uniform(3, 5)
        cell = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)
        level = 0.0
        for t in range(frames):
            level *= np.exp(-1.0 / 3.0)
            if rng.random() < 0.25:
                level += rng.uniform(20.0, 60.0)
            movie[t] += (0.5 + level) * cell
    return movie


@pytest.fixture(scope="module")
def na_temporal() -> Engine:
    with Engine(shipped_model_path("na-temporal"), provider="cpu", warmup_shape=None) as engine:
        yield engine


def served(engine: Engine, movie: np.ndarray, frames: list[np.ndarray]) -> float:
    series = SeriesContext(CAMERA, blend="off")
    outputs = [series.denoise(engine, frame) for frame in frames]
    assert series.scene_changes == 0  # the temporal branch had its full window
    truth = np.array([expected(m) for m in movie])
    return float(np.mean((np.array(outputs)[1:] - truth[1:]) ** 2))


def test_cells_firing_within_a_frame_come_out_nearer_the_truth(na_temporal: Engine) -> None:
    rng = np.random.default_rng(5)
    movie = firing_movie(rng)
    frames = [readout(m, rng) for m in movie]
    followed = served(na_temporal, movie, frames)
    path = shipped_model_path("na-temporal")
    with Engine(path, provider="cpu", warmup_shape=None, follow_lag=False) as lagging_engine:
        lagging = served(lagging_engine, movie, frames)
    assert followed < 0.8 * lagging


def test_a_spatial_model_is_not_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(engine_module, "follow_frame", lambda *args, **kwargs: calls.append(1))
    rng = np.random.default_rng(6)
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        series = SeriesContext(CAMERA, blend="off")
        for _ in range(3):
            series.denoise(engine, readout(smooth_scene(5.0), rng))
    assert calls == []


def test_the_engine_judges_the_previous_frames_the_network_was_given(na_temporal: Engine) -> None:
    """Given more previous frames than its window, the network takes the latest; so does
    the lag step (an older scene in the frames it did not take changes nothing)."""
    rng = np.random.default_rng(10)
    movie = firing_movie(rng)
    frames = [readout(m, rng) for m in movie]
    older = [readout(smooth_scene(40.0), rng) for _ in range(4)]
    window = frames[6:10]
    got = na_temporal.denoise(frames[10], camera=CAMERA, history=older + window, bands=False)
    want = na_temporal.denoise(frames[10], camera=CAMERA, history=window, bands=False)
    np.testing.assert_array_equal(got, want)


def test_a_young_window_of_three_frames_is_given_all_three(na_temporal: Engine) -> None:
    rng = np.random.default_rng(11)
    frames = [readout(smooth_scene(10.0), rng) for _ in range(4)]
    for previous in (1, 2, 3):
        _, report = na_temporal.denoise_with_report(
            frames[previous], camera=CAMERA, history=frames[:previous], bands=False
        )
        assert report.history == previous


@pytest.fixture(scope="module")
def na_temporal_as_is() -> Engine:
    path = shipped_model_path("na-temporal")
    with Engine(path, provider="cpu", warmup_shape=None, follow_lag=False) as engine:
        yield engine


def test_a_spike_in_the_frame_is_neither_residual_nor_change(
    na_temporal: Engine, na_temporal_as_is: Engine
) -> None:
    rng = np.random.default_rng(12)
    scene = smooth_scene(10.0)
    previous = [readout(scene, rng) for _ in range(4)]
    frame = readout(scene, rng)
    frame[24, 28] = 60_000.0  # a cosmic ray, this frame only
    near = (slice(24 - LAG_BOX, 25 + LAG_BOX), slice(28 - LAG_BOX, 29 + LAG_BOX))
    got = na_temporal.denoise(frame, camera=CAMERA, history=previous, bands=False)
    as_is = na_temporal_as_is.denoise(frame, camera=CAMERA, history=previous, bands=False)
    assert np.abs(got[near] - as_is[near]).max() < 2.0  # not moved by the spike's residual


def test_saturated_pixels_are_neither_residual_nor_change(
    na_temporal: Engine, na_temporal_as_is: Engine
) -> None:
    rng = np.random.default_rng(13)
    scene = smooth_scene(20.0)
    previous = [np.round(readout(scene, rng)).astype(np.uint16) for _ in range(4)]
    frame = np.round(readout(scene, rng)).astype(np.uint16)
    frame[20:28, 24:32] = 65_535  # saturated in this frame
    ring = np.ones(SHAPE, dtype=bool)
    ring[20:28, 24:32] = False
    ring[: 20 - LAG_BOX] = ring[28 + LAG_BOX :] = False
    ring[:, : 24 - LAG_BOX] = ring[:, 32 + LAG_BOX :] = False
    got = na_temporal.denoise(frame, camera=CAMERA, history=previous, bands=False)
    as_is = na_temporal_as_is.denoise(frame, camera=CAMERA, history=previous, bands=False)
    assert np.abs(got[ring] - as_is[ring]).max() < 2.0


def test_readouts_clipped_at_a_floor_are_left_as_the_network_made_them(
    na_temporal: Engine, na_temporal_as_is: Engine
) -> None:
    floored = CameraModel(gain=2.0, offset=0.0, read_noise=1.5, floor=0.0)
    rng = np.random.default_rng(14)
    movie = firing_movie(rng) * 0.3
    frames = [np.maximum(readout(m, rng) - CAMERA.offset, 0.0) for m in movie]
    got = na_temporal.denoise(frames[10], camera=floored, history=frames[6:10], bands=False)
    as_is = na_temporal_as_is.denoise(frames[10], camera=floored, history=frames[6:10], bands=False)
    np.testing.assert_array_equal(got, as_is)


def test_the_blend_measures_what_is_served_beside_non_finite_pixels(na_temporal: Engine) -> None:
    """The blend measures on the frame with its non-finite pixels filled; given back to
    the engine as they came (NaN), the engine's answer is the one served -- filled, they
    would count in the lag step's boxes (here on a cell that went dark in this frame,
    where the step moves the output)."""
    rng = np.random.default_rng(15)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    cell = np.exp(-((yy - 24) ** 2 + (xx - 28) ** 2) / 6.0**2)
    scene = smooth_scene(3.0)
    previous = [readout(scene + 100.0 * cell * np.exp(-(3 - i) / 3), rng) for i in range(4)]
    frame = readout(scene, rng)
    frame[22:26, 26:30] = np.nan
    bad = ~np.isfinite(frame)
    served = na_temporal.denoise(frame, camera=CAMERA, history=previous, bands=False)
    filled = finite_copy(frame, CAMERA)
    measured = na_temporal.denoise(
        as_given(filled, None, None, bad), camera=CAMERA, history=previous, bands=False
    )
    np.testing.assert_array_equal(measured[~bad], served[~bad])
    as_filled = na_temporal.denoise(filled, camera=CAMERA, history=previous, bands=False)
    assert not np.array_equal(as_filled[~bad], served[~bad])  # what it would measure filled
