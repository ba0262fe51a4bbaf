"""Pixel checks shared by the receive and inference stages."""

from __future__ import annotations

import numpy as np
import pytest

from stream.engine import LARGEST_PIXEL, beyond_range


def test_a_float_frame_within_range_passes() -> None:
    frame = np.random.default_rng(0).normal(100.0, 10.0, (16, 16)).astype(np.float32)
    assert beyond_range(frame) is None
    assert beyond_range(np.zeros((0, 4), np.float32)) is None


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_largest_absolute_value_beyond_range_is_given(sign: float) -> None:
    frame = np.ones((8, 8), np.float64)
    frame[3, 5] = sign * 3e13
    assert beyond_range(frame) == pytest.approx(3e13)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_do_not_hide_or_fake_a_value_beyond_range(bad: float) -> None:
    frame = np.ones((8, 8), np.float32)
    frame[0, 0] = bad
    assert beyond_range(frame) is None  # Inf is counted as non-finite, not as too large
    frame[7, 7] = -2 * LARGEST_PIXEL
    assert beyond_range(frame) == pytest.approx(2 * LARGEST_PIXEL)
    assert beyond_range(np.full((4, 4), bad, np.float32)) is None


def test_integer_frames_are_never_beyond_range() -> None:
    assert beyond_range(np.full((4, 4), 2**62, np.int64)) is None
