"""Shared fixtures.

ONNX models are built once per test session with ``exporter.simple_models`` (onnx +
numpy only) into a session temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def identity_model(model_dir: Path) -> Path:
    """``y = x``, receptive field 1."""
    from exporter.simple_models import make_identity

    return make_identity(model_dir / "identity.onnx")


@pytest.fixture(scope="session")
def box_model(model_dir: Path) -> Path:
    """3x3 mean filter, zero padding inside the graph, receptive field 3."""
    from exporter.simple_models import make_box_filter

    return make_box_filter(model_dir / "box3.onnx", 3)


@pytest.fixture(scope="session")
def conv_model(model_dir: Path) -> Path:
    """Two 3x3 conv layers (8 channels, ReLU, fixed random weights), receptive field 5."""
    from exporter.simple_models import make_conv_stack

    return make_conv_stack(model_dir / "conv5.onnx", layers=2, channels=8, seed=1234)


@pytest.fixture(scope="session")
def slow_model(model_dir: Path) -> Path:
    """A deliberately heavy conv stack (6 layers x 32 channels) to overload the service."""
    from exporter.simple_models import make_conv_stack

    return make_conv_stack(model_dir / "slow.onnx", layers=6, channels=32, seed=7)


def _adaptive_conv_stack(path: Path, seed: int, **contract: float) -> Path:
    """Two 3x3 conv layers (receptive field 5) taking 2 frames + noise map (+ what
    ``contract`` adds), adaptive normalisation, alignment 2 (tiles on the even grid)."""
    from exporter.simple_models import make_conv_stack

    return make_conv_stack(
        path, layers=2, channels=8, seed=seed, architecture="adaptive", frames=2,
        noise_map=True, normalization="adaptive", alignment=2, **contract,
    )  # fmt: skip


@pytest.fixture(scope="session")
def conv_model_adaptive(model_dir: Path) -> Path:
    """A noise-adaptive temporal stand-in (see ``_adaptive_conv_stack``)."""
    return _adaptive_conv_stack(model_dir / "adaptive.onnx", seed=42)


@pytest.fixture(scope="session")
def conv_model_running_mean(model_dir: Path) -> Path:
    """As ``conv_model_adaptive``, plus the running-mean channel (decay 0.25)."""
    return _adaptive_conv_stack(model_dir / "running_mean.onnx", seed=43, running_mean=0.25)


@pytest.fixture(scope="session")
def nan_model(model_dir: Path) -> Path:
    """The input, but NaN wherever a pixel exceeds 30000: passes a warm-up, fails later."""
    from exporter.simple_models import make_nan_above

    return make_nan_above(model_dir / "nan30000.onnx", 30000.0)


@pytest.fixture(scope="session")
def trace_model(model_dir: Path) -> Path:
    """A causal trace denoiser (window 8), briefly trained: the contract, not the quality."""
    pytest.importorskip("torch")
    from exporter.traces import export_trace_model, train_trace_model

    model, _ = train_trace_model("mlp", 8, steps=5, batch=16)
    return export_trace_model(model, 8, model_dir / "trace.onnx", {})
