"""Precise BN: BatchNorm running statistics replaced by the average over given batches."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from exporter.precise_bn import recalibrate_batchnorm  # noqa: E402


def _batches(count: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, 5, 5, generator=gen) * (i + 1) + i for i in range(count)]


def test_statistics_are_the_plain_average_of_the_batch_statistics() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3))
    bn = model[1]
    bn.running_mean.fill_(1e6)  # as a few unusual batches can leave them
    bn.running_var.fill_(1e-6)
    model.eval()
    batches = _batches(5)
    assert recalibrate_batchnorm(model, batches) == 5
    with torch.no_grad():
        features = [model[0](x) for x in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features])
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, variances.mean(0), rtol=1e-5, atol=1e-5)
    assert not model.training and bn.momentum == 0.1  # mode and momentum restored


def test_no_batchnorm_is_left_alone_and_no_batches_is_refused() -> None:
    plain = torch.nn.Conv2d(3, 3, 1)
    assert recalibrate_batchnorm(plain, _batches(2)) == 0
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3)).train()
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batchnorm(model, [])
    assert model.training and model[1].momentum == 0.1
