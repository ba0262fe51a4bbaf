"""DnCNN: shapes, residual output, receptive field (against gradient support), presets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

from model_harness import randomised  # noqa: E402
from torch import nn  # noqa: E402

from exporter.model import (  # noqa: E402
    PRESETS,
    DnCNN,
    ModelSpec,
    build_model,
    parameter_count,
    receptive_field,
)
from stream.engine import DEFAULT_RECEPTIVE_FIELD  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomised(spec: ModelSpec, seed: int = 0) -> DnCNN:
    """A model in eval mode, every weight random, in float64 (exact gradient support)."""
    return randomised(spec, seed).double()


def _support(model: nn.Module, size: int = 63) -> tuple[int, int]:
    """Height and width of the input region that the centre output pixel depends on."""
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    model(x)[0, 0, size // 2, size // 2].backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1) > 0)
    cols = torch.nonzero(x.grad[0, 0].abs().sum(dim=0) > 0)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(
    "spec", [ModelSpec(2, 4), ModelSpec(3, 4), ModelSpec(5, 6), ModelSpec(4, 4, 5)]
)
def test_receptive_field_equals_gradient_support(spec: ModelSpec) -> None:
    model = _randomised(spec)
    field = receptive_field(model)
    assert _support(model) == (field, field)
    assert field == spec.depth * (spec.kernel - 1) + 1


def test_receptive_field_counts_dilation_and_stride() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, dilation=2),  # +4
        nn.Conv2d(2, 2, 3, stride=2),  # +2, then every pixel further is 2 input pixels
        nn.Conv2d(2, 1, 5),  # +4 * 2
    )
    assert receptive_field(net) == 1 + 4 + 2 + 8
    assert receptive_field(nn.Identity()) == 1


def test_presets() -> None:
    dncnn = build_model("dncnn20")
    assert dncnn.spec == ModelSpec(20, 64)
    # the engine's default for models without metadata is the deepest shipped model
    assert receptive_field(dncnn) == DEFAULT_RECEPTIVE_FIELD == 41
    # first conv 1*64*9+64, 18 x (64*64*9 + BN 2*64), last 64*9+1
    assert parameter_count(dncnn) == 640 + 18 * (36864 + 128) + 577 == 667_073
    lite = build_model("lite")
    assert lite.spec == PRESETS["lite"] == ModelSpec(8, 16)
    assert parameter_count(lite) == 160 + 6 * (2304 + 32) + 145 == 14_321
    assert receptive_field(lite) == 17


def test_architecture_follows_the_paper() -> None:
    spec = ModelSpec(6, 8)
    layers = list(build_model(spec).body)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == 4
    assert sum(isinstance(m, nn.ReLU) for m in layers) == 5
    assert isinstance(layers[1], nn.ReLU)  # conv + ReLU, no BN, first
    assert isinstance(layers[-1], nn.Conv2d)  # plain conv last: the noise can be negative
    assert (convs[0].in_channels, convs[-1].out_channels) == (1, 1)
    assert all(c.bias is None for c in convs[1:-1])  # BN's shift replaces the conv bias


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (3, 1, 37, 50), (2, 1, 64, 17)])
def test_output_shape_matches_input(shape: tuple[int, int, int, int]) -> None:
    model = _randomised(ModelSpec(4, 4)).float()
    x = torch.randn(*shape)
    assert model(x).shape == x.shape
    assert model.predict_noise(x).shape == x.shape


def test_forward_is_input_minus_predicted_noise() -> None:
    model = _randomised(ModelSpec(5, 8), seed=3)
    x = torch.rand(2, 1, 24, 24, dtype=torch.float64)
    noise = model.predict_noise(x)
    assert noise.abs().max() > 1e-3  # a real residual, not a trivial zero
    torch.testing.assert_close(model(x), x - noise)


def test_untrained_model_is_identity() -> None:
    model = build_model("lite").train()
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(model(x), x)
    # ... yet trainable: the zero last layer still receives a gradient
    ((model(x) - 0.5) ** 2).mean().backward()
    last = model.body[-1]
    assert isinstance(last, nn.Conv2d)
    assert last.weight.grad is not None
    assert last.weight.grad.abs().sum() > 0


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="odd kernel"):
        ModelSpec(5, 8, kernel=4)
    with pytest.raises(ValueError, match="depth"):
        ModelSpec(1, 8)
    with pytest.raises(ValueError, match="width"):
        ModelSpec(5, 0)
    with pytest.raises(ValueError, match="dncnn20"):
        build_model("nope")
    assert build_model(ModelSpec(3, 2)).spec == ModelSpec(3, 2)
