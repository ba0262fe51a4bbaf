"""Training data: noise statistics, recorded noise, camera fits, stacks, datasets, movies."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exporter.data import (  # noqa: E402
    DataConfig,
    NoiseConfig,
    PairDataset,
    add_noise,
    make_test_movie,
    normalization,
    random_phantom,
    validation_set,
)
from exporter.noise import (  # noqa: E402
    NoiseFitError,
    RecordedNoise,
    estimate_camera_noise,
    load_noise_stack,
)
from stream import ConfigError  # noqa: E402
from stream.sim import NoiseModel, PhantomConfig, apply_camera_noise, noise_std  # noqa: E402

CAMERA = NoiseModel(gain=2.5, offset=100.0, read_noise=1.8)
SMALL = DataConfig(patch=16, field=32, frames_per_field=2, patches_per_field=4, movie_s=2.0)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _noise_stack(
    rng: np.random.Generator, t: int = 8, shape: tuple[int, int] = (48, 64)
) -> np.ndarray:
    """Gaussian noise (std 3) on an offset with a fixed column pattern, as from a camera."""
    pattern = 100.0 + rng.normal(0.0, 5.0, shape[1])[None, :]
    return (pattern + rng.normal(0.0, 3.0, (t, *shape))).astype(np.float32)


# -- noise level ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.5, 1.0, 2.0, 3.0])
def test_model_noise_variance_matches_level(level: float) -> None:
    rng = np.random.default_rng(1)
    photons = np.full((256, 256), 40.0, np.float32)
    noisy = add_noise(photons, NoiseConfig(camera=CAMERA), level, rng)
    expected_var = level**2 * (CAMERA.gain**2 * 40.0 + CAMERA.read_noise**2)
    assert noisy.var() == pytest.approx(expected_var, rel=0.03)
    tolerance = 5 * np.sqrt(expected_var / noisy.size)  # 5 standard errors of the mean
    assert noisy.mean() == pytest.approx(CAMERA.gain * 40.0 + CAMERA.offset, abs=tolerance)


def test_model_noise_matches_camera_std_per_pixel() -> None:
    rng = np.random.default_rng(2)
    photons = rng.uniform(0.0, 200.0, (256, 256)).astype(np.float32)
    clean = CAMERA.gain * photons + CAMERA.offset
    for level in (1.0, 2.5):
        noisy = add_noise(photons, NoiseConfig(camera=CAMERA), level, rng)
        z = (noisy - clean) / (level * noise_std(photons, CAMERA, quantised=False))
        assert np.mean(z**2) == pytest.approx(1.0, rel=0.03)
        assert abs(np.mean(z)) < 0.02


@pytest.mark.parametrize("shot", [False, True])
def test_recorded_noise_variance_matches_level(tmp_path: Path, shot: bool) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "dark.npy"
    np.save(path, _noise_stack(rng, t=16, shape=(128, 128)))
    cfg = NoiseConfig(source="recorded", recorded=path, camera=CAMERA, shot_noise=shot)
    recorded = RecordedNoise(load_noise_stack(path))
    photons = np.full((128, 128), 30.0, np.float32)
    for level in (1.0, 2.0):
        residuals = [
            add_noise(photons, cfg, level, rng, recorded) - (CAMERA.gain * 30 + CAMERA.offset)
            for _ in range(8)
        ]
        shot_var = CAMERA.gain**2 * 30.0 if shot else 0.0
        expected = level**2 * (shot_var + 9.0)
        assert np.var(residuals) == pytest.approx(expected, rel=0.04)
    rescaled = cfg.model_copy(update={"recorded_std": 6.0, "shot_noise": False})
    res = np.stack([add_noise(photons, rescaled, 1.5, rng, recorded) for _ in range(8)])
    assert np.std(res) == pytest.approx(1.5 * 6.0, rel=0.04)


# -- recorded noise ------------------------------------------------------------------------


def test_recorded_noise_is_zero_mean_with_the_noise_std() -> None:
    rng = np.random.default_rng(4)
    rec = RecordedNoise(_noise_stack(rng))
    # the fixed column pattern and offset are gone, the temporal noise (std 3) kept
    assert np.abs(rec.frames.mean(axis=0)).max() < 1e-4
    assert rec.std == pytest.approx(3.0, rel=0.03)
    samples = np.stack([rec.sample((32, 32), rng) for _ in range(200)])
    assert abs(samples.mean()) < 0.05
    assert samples.std() == pytest.approx(3.0, rel=0.04)
    keep = RecordedNoise(_noise_stack(rng), remove_pixel_mean=False)
    assert abs(keep.frames.mean()) < 1e-3
    assert keep.std == pytest.approx(np.hypot(3.0, 5.0), rel=0.25)  # pattern kept


def test_recorded_noise_scale_multiplies() -> None:
    rec = RecordedNoise(_noise_stack(np.random.default_rng(5)))
    a = rec.sample((16, 24), np.random.default_rng(9), scale=1.0)
    b = rec.sample((16, 24), np.random.default_rng(9), scale=2.5)
    np.testing.assert_allclose(b, 2.5 * a, rtol=1e-6)
    assert a.dtype == np.float32
    assert a.shape == (16, 24)


def test_recorded_noise_crops_come_from_the_stack_flipped() -> None:
    stack = np.arange(5 * 20 * 30, dtype=np.float32).reshape(5, 20, 30)  # every value unique
    rec = RecordedNoise(stack, remove_pixel_mean=False)
    mean = float(stack.mean())
    rng = np.random.default_rng(6)
    flips = set()
    for _ in range(100):
        crop = rec.sample((7, 9), rng) + np.float32(mean)
        # values grow along y and x, so the smallest is the window's origin in the stack
        t, y, x = np.unravel_index(int(np.rint(crop.min())), stack.shape)
        window = stack[t, y : y + 7, x : x + 9]
        found = [
            (fy, fx)
            for fy in (False, True)
            for fx in (False, True)
            if np.allclose(window[:: -1 if fy else 1, :: -1 if fx else 1], crop, atol=0.01)
        ]
        assert len(found) == 1
        flips.add(found[0])
    assert len(flips) == 4  # both axes get flipped, independently
    with pytest.raises(ConfigError, match="at most the recorded frame size"):
        rec.sample((21, 9), rng)


def test_recorded_noise_needs_two_frames_to_remove_the_pixel_mean() -> None:
    with pytest.raises(ConfigError, match="at least 2 frames"):
        RecordedNoise(np.zeros((1, 8, 8), np.float32))


# -- camera fit ------------------------------------------------------------------------------


def _photon_transfer(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A flat-field series (vignetted, 8 intensities x 6 frames) and 8 dark frames, uint16."""
    yy, xx = np.mgrid[:64, :64]
    illumination = 1.0 - 0.3 * ((yy - 32) ** 2 + (xx - 32) ** 2) / 32**2
    levels = [0, 5, 20, 50, 100, 200, 400, 800]
    flats = np.stack(
        [apply_camera_noise(lv * illumination, CAMERA, rng) for lv in levels for _ in range(6)]
    )
    dark = np.stack([apply_camera_noise(np.zeros((64, 64)), CAMERA, rng) for _ in range(8)])
    return flats, dark


def test_estimate_camera_noise_recovers_gain_offset_read_noise() -> None:
    flats, dark = _photon_transfer(np.random.default_rng(7))
    fit = estimate_camera_noise(flats, dark=dark)
    assert fit.gain == pytest.approx(CAMERA.gain, rel=0.03)
    assert fit.offset == pytest.approx(CAMERA.offset, abs=0.2)
    # integer frames add the rounding variance 1/12 ADU^2 to the read noise
    assert fit.read_noise == pytest.approx(np.hypot(CAMERA.read_noise, 12**-0.5), rel=0.05)
    assert set(fit.estimated) == {"gain", "offset", "read_noise"}
    assert fit.gain_stderr is not None and fit.gain_stderr < 0.02 * fit.gain
    assert fit.to_noise_model().gain == fit.gain
    # with a known offset instead of dark frames the line gives the read noise
    known = estimate_camera_noise(flats, offset=CAMERA.offset)
    assert known.gain == pytest.approx(CAMERA.gain, rel=0.03)
    assert known.read_noise == pytest.approx(np.hypot(CAMERA.read_noise, 12**-0.5), rel=0.3)


def test_estimate_camera_noise_dark_only() -> None:
    _, dark = _photon_transfer(np.random.default_rng(8))
    with pytest.raises(NoiseFitError, match="gain is not identifiable"):
        estimate_camera_noise(dark)
    fit = estimate_camera_noise(dark, gain=2.0)  # a known gain: dark gives the rest
    assert fit.gain == 2.0
    assert fit.offset == pytest.approx(CAMERA.offset, abs=0.2)
    assert fit.read_noise == pytest.approx(np.hypot(CAMERA.read_noise, 12**-0.5), rel=0.05)
    assert "gain" not in fit.estimated


def test_estimate_camera_noise_needs_dark_or_offset() -> None:
    flats, _ = _photon_transfer(np.random.default_rng(9))
    with pytest.raises(NoiseFitError, match="dark="):
        estimate_camera_noise(flats)


# -- loading -------------------------------------------------------------------------------


def test_load_noise_stack_formats(tmp_path: Path) -> None:
    import tifffile
    import zarr

    stack = np.random.default_rng(10).integers(90, 110, (4, 12, 10)).astype(np.uint16)
    np.save(tmp_path / "a.npy", stack)
    np.save(tmp_path / "one.npy", stack[0])
    tifffile.imwrite(tmp_path / "a.tif", stack, photometric="minisblack")
    zarr.create_array(str(tmp_path / "a.zarr"), data=stack)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("frames", data=stack)
    for name in ("a.npy", "a.tif", "a.zarr", "g.zarr"):
        out = load_noise_stack(tmp_path / name)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, stack)
    assert load_noise_stack(tmp_path / "one.npy").shape == (1, 12, 10)
    np.save(tmp_path / "tczyx.npy", stack[:, None, None])  # singleton axes are dropped
    np.testing.assert_array_equal(load_noise_stack(tmp_path / "tczyx.npy"), stack)
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 12, 10)))
    with pytest.raises(ConfigError, match=r"expected frames \(T, H, W\)"):
        load_noise_stack(tmp_path / "rgb.npy")
    assert load_noise_stack(tmp_path / "a.npy", max_frames=2).shape == (2, 12, 10)
    with pytest.raises(ConfigError, match=r"\.npy"):
        load_noise_stack(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="does not exist"):
        load_noise_stack(tmp_path / "missing.npy")


def test_load_noise_stack_from_a_series_store_skips_holes(tmp_path: Path) -> None:
    from stream.store import SeriesStore

    with SeriesStore(tmp_path, "dark", (8, 6), "uint16") as store:
        for i in (0, 1, 3):  # frame 2 was dropped
            store.write_raw(i, np.full((8, 6), 100 + i, np.uint16), None)
    out = load_noise_stack(tmp_path / "dark.zarr")
    assert out.shape == (3, 8, 6)
    assert out[:, 0, 0].tolist() == [100, 101, 103]


# -- configs, normalisation, phantoms --------------------------------------------------------


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="recorded"):
        NoiseConfig(source="recorded")
    with pytest.raises(ValueError, match="level"):
        NoiseConfig(level=(2.0, 1.0))
    with pytest.raises(ValueError, match="patch <= field"):
        DataConfig(patch=64, field=32)
    with pytest.raises(ValueError, match="density"):
        DataConfig(density=(5.0, 1.0))
    assert NoiseConfig(level=(0.5, 2.0)).level_range == (0.5, 2.0)


def test_normalization_is_a_fixed_function_of_the_config() -> None:
    cfg = DataConfig(noise=NoiseConfig(camera=CAMERA))
    offset, scale = normalization(cfg)
    assert offset == CAMERA.offset
    assert normalization(DataConfig(noise=NoiseConfig(camera=CAMERA))) == (offset, scale)
    brighter = cfg.model_copy(update={"phantom": PhantomConfig(brightness=60.0)})
    assert normalization(brighter)[1] > 1.3 * scale
    # the scale is in ADU: the configured camera's gain, not the phantom's own noise model
    double = NoiseConfig(camera=CAMERA.model_copy(update={"gain": 2 * CAMERA.gain}))
    assert normalization(cfg.model_copy(update={"noise": double}))[1] == pytest.approx(2 * scale)
    # the reference acquisition itself maps to about [0, 1]
    fixed = DataConfig(
        patch=64,
        field=128,
        noise=NoiseConfig(camera=CAMERA),
        **{k: (1.0, 1.0) for k in ("radius_scale", "brightness_scale", "neuropil_scale")},
        background_scale=(1.0, 1.0),
        density=(3.0, 3.0),
    )
    _, clean = validation_set(fixed, 48, seed=0)
    assert 0.6 < float(torch.quantile(clean, 0.99)) < 1.6
    assert float(clean.min()) > 0.0


def test_random_phantom_draws_within_ranges() -> None:
    cfg = DataConfig(
        patch=16, field=48, brightness_scale=(0.5, 2.0), density=(2.0, 4.0), movie_s=1.0
    )
    ref = cfg.phantom
    rng = np.random.default_rng(11)
    draws = [random_phantom(cfg, rng).config for _ in range(12)]
    bright = [d.brightness / ref.brightness for d in draws]
    assert all(0.5 <= b <= 2.0 for b in bright)
    assert max(bright) / min(bright) > 1.5  # it does vary
    assert all(2.0 <= d.density <= 4.0 and d.shape == (48, 48) for d in draws)
    assert len({d.seed for d in draws}) == 12


# -- datasets --------------------------------------------------------------------------------


def _take(ds: PairDataset, n: int) -> list[tuple[Any, Any]]:
    return list(islice(iter(ds), n))


def test_dataset_shapes_and_reproducibility() -> None:
    pairs = _take(PairDataset(SMALL, seed=7), 10)
    for noisy, clean in pairs:
        assert noisy.shape == clean.shape == (1, 16, 16)
        assert noisy.dtype == clean.dtype == torch.float32
        assert not torch.equal(noisy, clean)
    again = _take(PairDataset(SMALL, seed=7), 10)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(pairs, again, strict=True)
    )
    ds = PairDataset(SMALL, seed=7)
    assert torch.equal(_take(ds, 1)[0][0], _take(ds, 1)[0][0])  # iterating restarts
    other = _take(PairDataset(SMALL, seed=8), 10)
    assert not any(torch.equal(a[1], b[1]) for a, b in zip(pairs, other, strict=True))


def test_dataset_workers_get_distinct_streams() -> None:
    from torch.utils.data import DataLoader

    ds = PairDataset(SMALL, seed=3)
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    items = list(islice(iter(loader), 4))  # alternates worker 0, worker 1, ...
    single = _take(ds, 2)
    assert torch.equal(items[0][1], single[0][1])  # worker 0 is the single-process stream
    assert torch.equal(items[2][1], single[1][1])
    assert not torch.equal(items[1][1], items[0][1])
    assert not any(torch.equal(items[1][1], s[1]) for s in _take(ds, 8))


def test_validation_set_is_fixed_by_seed_and_apart_from_training() -> None:
    noisy, clean = validation_set(SMALL, 6, seed=1)
    assert noisy.shape == clean.shape == (6, 1, 16, 16)
    n2, c2 = validation_set(SMALL, 6, seed=1)
    assert torch.equal(noisy, n2) and torch.equal(clean, c2)
    n3, _ = validation_set(SMALL, 6, seed=2)
    assert not torch.equal(noisy, n3)
    train = torch.stack([c for _, c in _take(PairDataset(SMALL, seed=1), 6)])
    assert not torch.equal(train, clean)


def test_recorded_dataset_runs(tmp_path: Path) -> None:
    path = tmp_path / "dark.npy"
    np.save(path, _noise_stack(np.random.default_rng(12), shape=(40, 40)))
    cfg = SMALL.model_copy(
        update={"noise": NoiseConfig(source="recorded", recorded=path, level=(0.5, 2.0))}
    )
    noisy, clean = validation_set(cfg, 8, seed=0)
    assert torch.isfinite(noisy).all()
    assert float((noisy - clean).std()) > 0
    with pytest.raises(ConfigError, match="smaller than the 48 px training patch"):
        PairDataset(cfg.model_copy(update={"patch": 48, "field": 64}), seed=0)


# -- evaluation movie ------------------------------------------------------------------------


def test_make_test_movie() -> None:
    cfg = DataConfig(noise=NoiseConfig(camera=CAMERA))
    movie = make_test_movie(cfg, 1.0, 12, (48, 40), seed=5)
    assert movie.noisy.shape == movie.clean.shape == (12, 48, 40)
    n = len(movie.footprints)
    assert n > 0
    assert movie.traces.shape == (n, 12) and len(movie.spikes) == n
    assert movie.footprints.shape == (n, 48, 40) and movie.footprints.dtype == bool
    assert all(((s >= 0) & (s < 12)).all() for s in movie.spikes)
    assert movie.fps == cfg.phantom.fps
    assert movie.clean.min() >= CAMERA.offset
    # each frame's noise depends on (seed, frame) only: a shorter movie shares frames
    short = make_test_movie(cfg, 1.0, 5, (48, 40), seed=5)
    np.testing.assert_array_equal(short.noisy, movie.noisy[:5])
    np.testing.assert_array_equal(short.clean, movie.clean[:5])
    # level 2 has four times the noise variance, on the same clean movie
    loud = make_test_movie(cfg, 2.0, 12, (48, 40), seed=5)
    np.testing.assert_array_equal(loud.clean, movie.clean)
    ratio = np.var(loud.noisy - loud.clean) / np.var(movie.noisy - movie.clean)
    assert ratio == pytest.approx(4.0, rel=0.08)
