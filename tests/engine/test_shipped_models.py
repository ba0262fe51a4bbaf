"""The shipped DnCNN models load in the real engine and beat tuned Gaussian smoothing:
the phantom-trained ones on their phantom, the noise-adaptive default on a movie from the
independent evaluation generator (code it was never trained on), with the camera
estimated live as the service does."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.data import DataConfig, make_test_movie, normalization
from exporter.evaluation import psnr
from exporter.evaluation._baselines import GAUSSIAN_SIGMAS, gaussian_smooth, tune
from exporter.evaluation._evaluate import movie, run_model
from stream import Engine, default_model_path
from stream.engine import shipped_model_path

SHIPPED = {"dncnn-lite": 17, "dncnn20": 41}


@pytest.fixture(scope="module")
def movies():
    """A validation movie (tunes the baseline) and a test movie, different seeds."""
    cfg = DataConfig()
    validation = make_test_movie(cfg, level=1.0, n_frames=6, shape=(96, 96), seed=11)
    test = make_test_movie(cfg, level=1.0, n_frames=6, shape=(96, 96), seed=12345)
    return cfg, validation, test


@pytest.mark.parametrize(("name", "receptive_field"), SHIPPED.items())
def test_shipped_model_loads_with_its_contract(name: str, receptive_field: int):
    path = shipped_model_path(name)
    assert path.stat().st_size < 5e6
    with Engine(path, provider="cpu", warmup_shape=None) as engine:
        meta = engine.metadata
        assert meta.from_model and meta.architecture == name
        assert meta.receptive_field == receptive_field
        offset, scale = normalization(DataConfig())
        assert meta.input_offset == pytest.approx(offset)
        assert meta.input_scale == pytest.approx(scale)
        assert meta.training_noise["source"] == "model"
        assert engine.model_id == meta.content_hash[:12]  # type: ignore[index]


def test_default_model_is_the_noise_adaptive_one_on_every_provider():
    for provider in ("cpu", "cuda"):
        assert default_model_path(provider).name == "na-lite.onnx"


def test_noise_adaptive_default_carries_its_contract():
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        meta = engine.metadata
        assert meta.architecture == "dncnn-na-lite" and meta.receptive_field == 51
        assert meta.noise_map and meta.normalization == "adaptive" and meta.frames == 1
        assert meta.alignment == 2  # pixel-unshuffled body: tiles start on even pixels
        assert meta.training_data["generator"] == "exporter.synth"
        assert engine.model_id == meta.content_hash[:12]  # type: ignore[index]


@pytest.mark.parametrize("photons", [10.0, 1000.0])
def test_default_beats_tuned_gaussian_and_its_input_off_the_training_generator(photons):
    """Measured at 16 frames of 128x128 (README): +0.2 dB at 10, +1.2 dB at 1000 photons;
    here a smaller movie, so only the direction is asserted."""
    validation = movie("independent", photons, (96, 96), 6, seed=11)
    test = movie("independent", photons, (96, 96), 6, seed=12345)
    sigma = tune(
        "gaussian", "sigma", gaussian_smooth, GAUSSIAN_SIGMAS, validation.noisy, validation.clean
    ).value
    gaussian_db = psnr(gaussian_smooth(test.noisy, sigma), test.clean)
    noisy_db = psnr(test.noisy, test.clean)
    with Engine(default_model_path(), provider="cpu", warmup_shape=None) as engine:
        denoised, _, estimate = run_model(engine, test.noisy)  # no camera: estimated live
    model_db = psnr(denoised, test.clean)
    assert estimate, "the camera was estimated from the stream"
    assert model_db > max(gaussian_db, noisy_db), (photons, noisy_db, gaussian_db, model_db)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_tuned_gaussian_smoothing(name: str, movies):
    _, validation, test = movies
    sigma = tune(
        "gaussian", "sigma", gaussian_smooth, GAUSSIAN_SIGMAS, validation.noisy, validation.clean
    ).value
    gaussian_db = psnr(gaussian_smooth(test.noisy, sigma), test.clean)
    with Engine(shipped_model_path(name), provider="cpu", warmup_shape=None) as engine:
        denoised = np.stack([engine.denoise(frame) for frame in test.noisy])
    model_db = psnr(denoised, test.clean)
    noisy_db = psnr(test.noisy, test.clean)
    assert model_db > gaussian_db + 0.5, (name, noisy_db, gaussian_db, model_db)
    assert gaussian_db > noisy_db  # the baseline itself is a fair, working competitor
