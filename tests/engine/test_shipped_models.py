"""The shipped DnCNN models load in the real engine and beat tuned Gaussian smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.data import DataConfig, make_test_movie, normalization
from exporter.evaluation import psnr
from exporter.evaluation._baselines import GAUSSIAN_SIGMAS, gaussian_smooth, tune
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


def test_default_model_is_lite_on_cpu():
    assert default_model_path().name == "dncnn-lite.onnx"


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
