"""Gaussian smoothing of 2-D float32 frames in numpy, for the blend
(:mod:`stream.engine._blend`): separable, borders mirrored, and the divergence of the
kernel; and box means the same way (a temporal model's still pixels and its lag). The
online half does without scipy; this matches
``scipy.ndimage.gaussian_filter(mode="reflect", truncate=3.0)`` to float32 rounding.
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: Kernels reach this many sigmas (scipy's default is 4).
TRUNCATE = 3.0


@cache
def gaussian_taps(sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian kernel, ``TRUNCATE`` sigmas each side (float32)."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian of a 2-D float32 image, borders mirrored (the edge pixel repeated); the
    image itself at 0. In numpy, separable, the kernel's symmetry halving the products:
    the online half does without scipy."""
    if sigma <= 0.0:
        return image
    taps = gaussian_taps(sigma)
    radius = len(taps) // 2
    h, w = image.shape
    padded = np.pad(image, radius, mode="symmetric")
    across = _taps_along(padded, taps, axis=1, length=w)  # (h + 2r, w)
    return _taps_along(across, taps, axis=0, length=h)


def box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """The mean of a 2-D float32 ``image`` over a ``size`` x ``size`` box about each pixel
    (``size`` odd), borders mirrored (the edge pixel repeated), as :func:`smooth` takes
    its Gaussians."""
    h, w = image.shape
    taps = np.full(size, 1.0 / size, dtype=np.float32)
    padded = np.pad(image, size // 2, mode="symmetric")
    across = _taps_along(padded, taps, axis=1, length=w)
    return _taps_along(across, taps, axis=0, length=h)


def _taps_along(padded: np.ndarray, taps: np.ndarray, axis: int, length: int) -> np.ndarray:
    radius = len(taps) // 2

    def shifted(k: int) -> np.ndarray:
        return padded[:, k : k + length] if axis == 1 else padded[k : k + length]

    out = shifted(radius) * taps[radius]
    pair = np.empty_like(out)
    for k in range(radius):
        np.add(shifted(k), shifted(2 * radius - k), out=pair)
        pair *= taps[k]
        out += pair
    return out


@cache
def kernel_centre(sigma: float) -> float:
    """The centre weight of :func:`smooth`'s 2-D kernel: its divergence per unit variance."""
    return float(gaussian_taps(sigma)[len(gaussian_taps(sigma)) // 2]) ** 2
