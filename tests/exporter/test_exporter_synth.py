"""Generated training pairs: temporal samples at a series start look exactly like what
the engine builds there (the oldest frame repeated), in the share the config asks for."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("torch")

from exporter.synth import PairGenerator, SynthConfig

K = 4


def _leading_repeats(inputs: np.ndarray) -> int:
    """How many frame channels at the start equal the one after them."""
    frames = inputs[:K]
    m = 0
    while m < K - 1 and np.array_equal(frames[m], frames[m + 1]):
        m += 1
    return m


def _samples(fill: float, n: int) -> list[np.ndarray]:
    cfg = SynthConfig(patch=16, frames=K, fill=fill, samples_per_movie=2)
    return [a for a, _ in itertools.islice(PairGenerator(cfg).stream((3, 0, 0)), n)]


def test_series_start_samples_repeat_the_oldest_frame_there_is():
    counts = {m: 0 for m in range(K)}
    for inputs in _samples(fill=1.0, n=60):
        m = _leading_repeats(inputs)
        counts[m] += 1
        later = inputs[m:K]  # the frames there are: independent noise, never equal
        assert not any(np.array_equal(a, b) for a, b in itertools.combinations(later, 2))
    assert counts[0] == 0  # every sample starts a series inside its window
    assert all(counts[m] > 5 for m in range(1, K))  # 1 .. K-1 frames missing, all drawn


@pytest.mark.parametrize(("fill", "low", "high"), [(0.0, 0, 0), (0.25, 8, 28)])
def test_the_share_of_series_start_samples_follows_the_config(fill: float, low: int, high: int):
    starts = sum(_leading_repeats(a) > 0 for a in _samples(fill=fill, n=72))
    assert low <= starts <= high  # binomial(72, 0.25): mean 18, sd 3.7


def test_a_spatial_sample_is_untouched_by_fill():
    cfg = SynthConfig(patch=16, frames=1, fill=1.0)
    plain = SynthConfig(patch=16, frames=1, fill=0.0)
    a = next(PairGenerator(cfg).stream((1, 0, 0)))
    b = next(PairGenerator(plain).stream((1, 0, 0)))
    np.testing.assert_array_equal(a[0], b[0])
