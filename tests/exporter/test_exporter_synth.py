"""Generated training pairs: temporal samples at a series start look exactly like what
the engine builds there (the oldest frame repeated), in the share the config asks for."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("torch")

from exporter.light_bands import leading_repeats
from exporter.synth import PairGenerator, SynthConfig

K = 4


def _samples(fill: float, n: int) -> list[np.ndarray]:
    cfg = SynthConfig(patch=16, frames=K, fill=fill, samples_per_movie=2)
    return [a for a, _ in itertools.islice(PairGenerator(cfg).stream((3, 0, 0)), n)]


def test_series_start_samples_repeat_the_oldest_frame_there_is():
    counts = {m: 0 for m in range(K)}
    for inputs in _samples(fill=1.0, n=60):
        m = leading_repeats(inputs[:K])
        counts[m] += 1
        later = inputs[m:K]  # the frames there are: independent noise, never equal
        assert not any(np.array_equal(a, b) for a, b in itertools.combinations(later, 2))
    assert counts[0] == 0  # every sample starts a series inside its window
    assert all(counts[m] > 5 for m in range(1, K))  # 1 .. K-1 frames missing, all drawn


@pytest.mark.parametrize(("fill", "low", "high"), [(0.0, 0, 0), (0.25, 8, 28)])
def test_the_share_of_series_start_samples_follows_the_config(fill: float, low: int, high: int):
    starts = sum(leading_repeats(a[:K]) > 0 for a in _samples(fill=fill, n=72))
    assert low <= starts <= high  # binomial(72, 0.25): mean 18, sd 3.7


def test_a_spatial_sample_is_untouched_by_fill():
    cfg = SynthConfig(patch=16, frames=1, fill=1.0)
    plain = SynthConfig(patch=16, frames=1, fill=0.0)
    a = next(PairGenerator(cfg).stream((1, 0, 0)))
    b = next(PairGenerator(plain).stream((1, 0, 0)))
    np.testing.assert_array_equal(a[0], b[0])


def test_the_running_mean_channel_follows_the_contract_at_a_series_start():
    # fill 1 with two frames: every sample's series starts at its current frame, whose
    # running mean of previous frames is, by the contract, the frame itself
    cfg = SynthConfig(patch=16, frames=2, running_mean=0.125, history=8, fill=1.0)
    assert cfg.channels == 4 and cfg.movie_frames == 10
    for inputs, _ in itertools.islice(PairGenerator(cfg).stream((5, 0, 0)), 6):
        assert inputs.shape == (4, 16, 16)
        np.testing.assert_array_equal(inputs[3], inputs[1])


def test_the_running_mean_averages_the_frames_before_the_window():
    """A static scene: the mean of up to 32 earlier frames is far closer to the truth
    than one frame (noise variance 1/n of a frame's for n <= 8 frames, then down to
    about 1/15 in steady state)."""
    cfg = SynthConfig(patch=48, frames=2, running_mean=0.125, history=32)
    gen = PairGenerator(cfg)
    rng = np.random.default_rng(2)
    scene = np.random.default_rng(1).uniform(0.2, 1.0, (48, 48)).astype(np.float32)
    ratios = []
    for _ in range(21):
        inputs, target = gen.pair(np.repeat(scene[None], cfg.movie_frames, axis=0), rng)
        current, mean = inputs[1], inputs[3]
        ratios.append(np.mean((mean - target[0]) ** 2) / np.mean((current - target[0]) ** 2))
    assert np.median(ratios) < 0.2
    assert min(ratios) < 0.1  # 1/15 in steady state
    assert max(ratios) > 0.25  # some samples start their series just before the window


def test_a_model_and_its_training_data_must_agree_on_the_running_mean(tmp_path):
    from model_harness import tiny_temporal_config

    with pytest.raises(ValueError, match=r"synth\.running_mean to match"):
        tiny_temporal_config(tmp_path, running_mean=0.125)  # the data has no such channel
    cfg = tiny_temporal_config(
        tmp_path,
        running_mean=0.125,
        synth={"patch": 32, "frames": 2, "running_mean": 0.125, "history": 8},
    )
    assert cfg.model_spec().in_channels == 4 == cfg.synth.channels


@pytest.mark.parametrize(("skew_offset", "negative"), [(1.0, False), (0.0, True)])
def test_the_offset_the_model_is_told_is_the_cameras_when_the_skew_finds_it(
    skew_offset: float, negative: bool
):
    """Targets are the noise-free signal over the told offset: with the skew's offset
    (here without error) zero is the camera's and no target is below it; with the darkest
    blocks' reading, part of the background is taken as offset and dark targets go below."""
    cfg = SynthConfig(
        patch=32, offset_error=0.0, skew_offset=skew_offset, samples_per_movie=2, zero_offset=0.0
    )
    targets = [b for _, b in itertools.islice(PairGenerator(cfg).stream((5, 0, 0)), 24)]
    lowest = min(float(t.min()) for t in targets)
    assert (lowest < -1e-3) == negative, lowest


@pytest.mark.parametrize("clip", [True, False])
def test_clipped_readouts_pile_up_at_zero_like_an_unsigned_camera(clip: bool):
    """An integer camera at offset 0 cannot send negative counts: with ``clip`` its read
    noise's lower tail sits at zero, as the model will see it; without, as trained before."""
    cfg = SynthConfig(
        patch=32, frames=1, noise_map=False, photons=(0.5, 2.0), zero_offset=1.0, integer=1.0,
        offset_error=0.0, skew_offset=1.0, samples_per_movie=2, clip=clip,
    )  # fmt: skip
    frames = [a[0] for a, _ in itertools.islice(PairGenerator(cfg).stream((7, 0, 0)), 12)]
    lowest = min(float(f.min()) for f in frames)
    zeros = np.mean([np.mean(f == 0) for f in frames])
    if clip:
        assert lowest == 0.0 and zeros > 0.2  # the told offset is the camera's: 0
    else:
        assert lowest < 0.0 and zeros < 0.2


@pytest.mark.parametrize("seed", range(4))
def test_outlines_are_thin_bright_lines_around_dimmer_cells(seed: int):
    from exporter.synth import GENERIC

    scene = GENERIC["outlines"](np.random.default_rng(seed), 96)
    assert scene.dtype == np.float32 and scene.shape == (96, 96)
    assert np.isfinite(scene).all() and scene.min() >= 0
    # Lines cover a minority of the field and stand well above the cells they enclose.
    assert np.percentile(scene, 99) > 2 * np.median(scene)
    assert (scene > 0.5 * np.percentile(scene, 99)).mean() < 0.5


def test_the_generic_kinds_are_chosen_by_the_config_and_checked():
    from exporter.synth._scenes import FIRST_KINDS

    assert SynthConfig().kinds == FIRST_KINDS  # the shipped recipes' data stay as trained
    assert SynthConfig(kinds=("outlines",)).kinds == ("outlines",)
    with pytest.raises(ValueError, match=r"expected kinds among .* got \['leaves'\]"):
        SynthConfig(kinds=("outlines", "leaves"))


def test_a_single_generic_kind_makes_every_generic_scene():
    from exporter.synth import generic_movie

    # One or two layers are drawn; with one kind that is one layer, never an error.
    for seed in range(8):
        movie = generic_movie(np.random.default_rng(seed), 64, 2, kinds=("outlines",))
        assert movie.shape == (2, 64, 64) and np.isfinite(movie).all() and movie.min() >= 0


@pytest.mark.parametrize("factor", [1.25, 2.0])
def test_electron_multiplying_cameras_add_excess_noise_and_tell_the_effective_gain(factor):
    """An EMCCD (F^2 = 2) or a photomultiplier (F^2 ~ 1.25): the shot noise's variance
    grows by F^2, and the noise map the model is told says so, as the live estimate
    measures the effective gain; without ``excess`` the same camera is Poisson."""
    flat = np.ones((1, 64, 64), np.float32)

    def snr_noise_and_map(excess: float) -> tuple[float, float, float]:
        cfg = SynthConfig(
            patch=64, frames=1, photons=(50.0, 50.0), gain=(2.0, 2.0), read_noise_e=(0.5, 0.5),
            zero_offset=1.0, integer=0.0, gain_error=0.0, read_error=0.0, offset_error=0.0,
            skew_offset=1.0, excess=excess, excess_factor=(factor, factor),
        )  # fmt: skip
        inputs, _ = PairGenerator(cfg).pair(flat, np.random.default_rng(3))
        frame, noise_map = inputs[0], inputs[1]  # in the model's units, offset removed
        return float(frame.mean() / frame.std()), float(frame.std()), float(noise_map.mean())

    poisson_snr, poisson_std, poisson_map = snr_noise_and_map(0.0)
    excess_snr, excess_std, excess_map = snr_noise_and_map(1.0)
    assert poisson_std == pytest.approx(poisson_map, rel=0.05)
    assert excess_std == pytest.approx(excess_map, rel=0.05)
    assert poisson_snr / excess_snr == pytest.approx(np.sqrt(factor), rel=0.05)


def test_the_excess_noise_factor_range_is_checked():
    with pytest.raises(ValueError, match="excess_factor"):
        SynthConfig(excess=0.5, excess_factor=(0.9, 2.0))


def test_recorded_dark_frames_are_the_read_noise_of_every_frame(tmp_path):
    """With ``recorded`` dark frames (your camera's), each frame of a sample gets a 2-D
    crop of a dark frame of its own: white where the recording is white, independent
    between the window's frames, and told to the model in its noise map. (A first
    version added one row of a crop to every row: the same noise down each column.)"""
    rng = np.random.default_rng(5)
    dark = 100.0 + 3.0 * rng.standard_normal((12, 80, 80))
    path = tmp_path / "dark.npy"
    np.save(path, dark.astype(np.float32))
    cfg = SynthConfig(
        patch=64, frames=3, recorded=path, zero_offset=1.0, integer=0.0, gain_error=0.0,
        read_error=0.0, offset_error=0.0, skew_offset=1.0,
    )  # fmt: skip
    dark_scene = np.zeros((3, 64, 64), np.float32)  # no photons: only the read noise
    inputs, _ = PairGenerator(cfg).pair(dark_scene, np.random.default_rng(6))
    frames, noise_map = inputs[:3], inputs[3]
    std = float(frames.std())
    for frame in frames:
        # means of 64 independent pixels spread by std / 8, down columns as along rows
        assert frame.mean(axis=0).std() == pytest.approx(std / 8, rel=0.3)
        assert frame.mean(axis=1).std() == pytest.approx(std / 8, rel=0.3)
    assert abs(np.corrcoef(frames[0].ravel(), frames[1].ravel())[0, 1]) < 0.1
    # where a readout is below the offset the map is the read noise alone
    assert float(noise_map[frames[-1] < 0].mean()) == pytest.approx(std, rel=0.05)
