"""Pixel checks and conversions shared by the receive and inference stages."""

from __future__ import annotations

import numpy as np


def count_non_finite(frame: np.ndarray) -> int:
    """NaN/Inf pixels in a frame; integer frames have none.

    The common all-finite case costs one float64 sum and no allocation: a non-finite
    pixel makes the sum non-finite, and finite float32 pixels cannot overflow it.
    """
    if frame.dtype.kind != "f" or np.isfinite(frame.sum(dtype=np.float64)):
        return 0
    return int(frame.size - np.count_nonzero(np.isfinite(frame)))


def to_dtype(clean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer input dtype (float32 input passes through)."""
    if dtype.kind == "f":
        return clean.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.rint(clean), info.min, info.max).astype(dtype)


def finite_copy(frame: np.ndarray) -> np.ndarray:
    """A float32 copy whose non-finite pixels hold the mean of the finite ones."""
    copy = np.array(frame, dtype=np.float32)
    if count_non_finite(copy):
        bad = ~np.isfinite(copy)
        copy[bad] = copy[~bad].mean() if not bad.all() else 0.0
    return copy
