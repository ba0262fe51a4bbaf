"""Very bright frames: a model with a pass-through band gives way to its input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stream import ModelError
from stream.engine import CameraModel, Engine, ModelMetadata, peak_snr

CAMERA = CameraModel(gain=1.0, offset=100.0, read_noise=2.0)


def test_the_blend_is_linear_in_log_snr_between_the_band_edges() -> None:
    meta = ModelMetadata(normalization="adaptive", pass_through_snr=[50.0, 200.0])
    assert meta.pass_through(0.0) == 0.0 and meta.pass_through(50.0) == 0.0
    assert meta.pass_through(100.0) == pytest.approx(0.5)  # half way in log SNR
    assert meta.pass_through(200.0) == 1.0 and meta.pass_through(1e6) == 1.0
    assert meta.pass_through(math.nan) == 0.0
    assert ModelMetadata.from_props(meta.to_props()).pass_through_snr == [50.0, 200.0]
    assert ModelMetadata().pass_through(1e6) == 0.0  # no band: the output as it is


@pytest.mark.parametrize(
    ("band", "normalization", "match"),
    [
        ([200.0, 50.0], "adaptive", r"\[low, high\] with 0 < low < high, got \[200.0, 50.0\]"),
        ([50.0], "adaptive", r"\[low, high\]"),
        ([50.0, 200.0], "fixed", r"needs normalization 'adaptive'.*got 'fixed'"),
    ],
)
def test_a_bad_band_is_refused_with_what_was_expected(band, normalization, match) -> None:
    props = ModelMetadata(normalization="adaptive").to_props()
    props["deepdenoise.pass_through_snr"] = str(band)
    props["deepdenoise.normalization"] = normalization
    with pytest.raises(ModelError, match=match):
        ModelMetadata.from_props(props)


def banded(model: Path, out: Path, band: tuple[float, float]) -> Path:
    from exporter.pass_through import with_pass_through

    with_pass_through(model, out, band)
    return out


def test_bright_frames_give_way_to_the_input_and_dim_ones_do_not(
    conv_model_adaptive: Path, tmp_path: Path
) -> None:
    path = banded(conv_model_adaptive, tmp_path / "banded.onnx", (20.0, 60.0))
    rng = np.random.default_rng(0)
    bright = (CAMERA.offset + rng.poisson(10_000.0, (32, 40))).astype(np.uint16)  # SNR ~100
    dim = (CAMERA.offset + rng.poisson(50.0, (32, 40))).astype(np.uint16)  # SNR ~7
    assert peak_snr(bright - CAMERA.offset, CAMERA.gain, CAMERA.read_noise) > 60
    assert peak_snr(dim - CAMERA.offset, CAMERA.gain, CAMERA.read_noise) < 20
    with (
        Engine(path, provider="cpu", warmup_shape=None) as with_band,
        Engine(conv_model_adaptive, provider="cpu", warmup_shape=None) as without,
    ):
        np.testing.assert_allclose(with_band.denoise(bright, camera=CAMERA), bright, rtol=1e-6)
        np.testing.assert_array_equal(
            with_band.denoise(dim, camera=CAMERA), without.denoise(dim, camera=CAMERA)
        )
        assert with_band.model_id != without.model_id  # the band is part of what it does


def test_the_shipped_models_carry_the_measured_band() -> None:
    from stream.engine import shipped_model_path

    for name in ("na-lite", "na-temporal"):
        with Engine(shipped_model_path(name), provider="cpu", warmup_shape=None) as engine:
            assert engine.metadata.pass_through_snr == [71.0, 224.4]
