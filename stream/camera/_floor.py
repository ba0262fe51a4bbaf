"""Readouts clipped at a floor: what clipping does to a pixel's mean and variance.

An unsigned camera whose offset is near 0 clips the lower tail of its read noise at 0
(and so does a pipeline that subtracts a background and clips at zero). A dim pixel's
readouts then average above its signal -- at 1 photon and 4 e- of read noise,
``E[max(X, 0)]`` is 2.2 for a mean of 1 -- and their spread is narrower. A denoiser
averages readouts, so it keeps the bias (the model as much as a Gaussian: on the
independent generator read out at offset 0, gain 1, 4 e-, 5.7 and 5.2 dB at 1 photon,
against 18.7 for the same scene unclipped; one-off probe).

For a Gaussian readout ``X ~ N(L, s**2)`` clipped at ``c`` (``a = (c - L) / s``):
``P(X <= c) = Phi(a)``, ``E[max(X, c)] = c Phi(a) + L (1 - Phi(a)) + s phi(a)`` and
the variance ``s**2 h(a)`` with ``h`` a function of ``a`` alone. So the share of pixels
at the floor gives ``a``, and the clipped variance (from frame differences) then ``s``
and ``L``: what :mod:`._estimate` fits the camera from where a floor shows; and the mean
is an increasing function of ``L``, which :func:`uncensor` inverts for the output.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._model import CameraModel

#: The table of the standard normal's clipped moments spans a = -8 .. 8.
_A = np.linspace(-8.0, 8.0, 4001)
_PHI = np.exp(-0.5 * _A * _A) / math.sqrt(2.0 * math.pi)
_CDF = 0.5 * (1.0 + np.array([math.erf(a / math.sqrt(2.0)) for a in _A]))
#: For L = 0, s = 1, clipped at a: the mean and the variance of max(X, a).
_MEAN = _A * _CDF + _PHI
_VAR = _A * _A * _CDF + (1.0 - _CDF) + _A * _PHI - _MEAN * _MEAN
#: A pixel is at the floor when the frame's minimum is held by at least this share of
#: its pixels (and ``FLOOR_MIN_PIXELS``): a Gaussian readout almost never repeats its
#: minimum; a clipped one piles up there.
FLOOR_FRACTION = 0.002
FLOOR_MIN_PIXELS = 8
#: Clipped noise, not counts, where the second count above the floor is held at least
#: this often against the first (see :func:`_clipped_counts`).
CLIPPED_NEXT_RATIO = 0.4


def floor_pixels(frame: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(floor, the pixels at it) when the frame's minimum is a pile-up of clipped noise;
    else None. Clipped noise continues right above the floor (the next count is held
    too, or for float readouts the nearest value is close); a masked region set to 0
    beside data far above it (a round field of view, a stitched border) is not a
    clipping and is left alone."""
    bottom = float(frame.min())
    at_floor = frame == bottom
    count = int(np.count_nonzero(at_floor))
    if count < max(FLOOR_MIN_PIXELS, FLOOR_FRACTION * frame.size) or count == frame.size:
        return None
    if half_step(frame):
        if not _clipped_counts(frame, at_floor, bottom):
            return None
    else:
        above = frame[~at_floor]
        if above.size == 0 or above.min() - bottom > 0.01 * (np.median(above) - bottom):
            return None
    return bottom, at_floor


def half_step(frame: np.ndarray) -> float:
    """Half a count for integer readouts (a readout below ``floor + 0.5`` rounds to the
    floor), 0 for others; floats holding whole numbers count as integer readouts."""
    if frame.dtype.kind in "ui":
        return 0.5
    sample = np.asarray(frame).ravel()[:: max(1, frame.size // 4096)]
    return 0.5 if bool(np.all(sample == np.round(sample))) else 0.0


def _clipped_counts(frame: np.ndarray, at_floor: np.ndarray, bottom: float) -> bool:
    """Whether integer readouts piled up at ``bottom`` are clipped noise, not counts.

    Where most pixels sit at the floor (4 x 4 blocks with half or more there), clipped
    Gaussian noise of 1.5 ADU or more holds the next two counts almost alike (their ratio
    is at least exp(-3 / (2 s**2)): 0.51 at 1.5 ADU, 0.91 at 4), while a photon counter's
    zeros are counts of a dim Poisson light, whose next two counts fall off as lambda / 2
    (at most 0.35 there; none at all in between for a gain of 2 ADU or more). A clipped
    noise narrower than 1.5 ADU is taken for counts; its bias is small."""
    h, w = frame.shape
    rows, columns = h // 4, w // 4
    if rows == 0 or columns == 0:
        return False
    blocks = at_floor[: rows * 4, : columns * 4].reshape(rows, 4, columns, 4)
    dark = np.repeat(np.repeat(blocks.mean(axis=(1, 3)) >= 0.5, 4, axis=0), 4, axis=1)
    if np.count_nonzero(dark) < 16 * 16:
        return False
    values = frame[: rows * 4, : columns * 4][dark]
    first = np.count_nonzero(values == bottom + 1.0)
    second = np.count_nonzero(values == bottom + 2.0)
    return bool(first >= FLOOR_MIN_PIXELS and second >= CLIPPED_NEXT_RATIO * first)


def latent_from_clipped(
    share: np.ndarray, variance: np.ndarray, floor: float, half: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) of the unclipped readouts from the share of pixels at the floor
    and the variance of the clipped ones (arrays of bins); NaN where the share is 0 or 1
    (nothing to tell the clipping by). ``half``: :func:`half_step` (in the same unit): an
    integer readout is at the floor when it was below ``floor + half`` (rounding; left
    out, the read noise came out 9-17 % high at 1 photon, one-off probe)."""
    share = np.asarray(share, dtype=np.float64)
    usable = (share > 0) & (share < 1)
    a = np.interp(np.where(usable, share, 0.5), _CDF, _A)
    below = np.where(usable, share, 0.5)
    # Y = max(X, t) - half [X < t], t = floor + half: var Y = s**2 h(a) + 2 half P s (m(a)
    # - a) + half**2 P (1 - P), P = Phi(a); solved for s (a quadratic's positive root)
    h = np.maximum(np.interp(a, _A, _VAR), 1e-12)
    b = 2.0 * half * below * (np.interp(a, _A, _MEAN) - a)
    c = half * half * below * (1.0 - below) - np.asarray(variance, dtype=np.float64)
    s = (-b + np.sqrt(np.maximum(b * b - 4.0 * h * c, 0.0))) / (2.0 * h)
    mean = floor + half - a * s
    return np.where(usable, mean, np.nan), np.where(usable, s * s, np.nan)


@functools.lru_cache(maxsize=16)
def _table(
    gain: float, offset: float, read: float, floor: float, half: float
) -> tuple[np.ndarray, np.ndarray]:
    """(clipped means, levels) on a grid of levels up to where clipping no longer moves
    the mean, extended by the identity beyond (below the grid: its bottom level). A
    camera that clips its own dark noise (offset within 8 read-noise deviations of the
    floor) has the grid start at its offset: below it the inverse is steep (the clipped
    mean hardly moves) and would blow a model's residual noise up, and no signal is
    darker than the offset (measured at 1 photon, one-off: 0.26 dB better than inverting
    below it). Otherwise the grid starts 8 deviations below the floor, and nothing near
    the offset changes."""
    base = max(floor, offset)  # an offset far above the floor: clipping starts below it
    top = base + 8.0 * read
    for _ in range(8):  # 8 standard deviations above the floor (or offset) at that signal
        top = base + 8.0 * math.sqrt(gain * max(top - offset, 0.0) + read * read)
    bottom = offset if offset - floor <= 8.0 * read else floor - 8.0 * read
    level = np.linspace(bottom, max(top, bottom + 1e-6), 4096)
    s = np.sqrt(gain * np.maximum(level - offset, 0.0) + read * read)
    a = (floor + half - level) / np.maximum(s, 1e-12)
    # E[max(X, t)] = L + s m(a), m(a) = E[max(Z, a)] (a beyond the table: m(a) = a); the
    # readouts below t = floor + half hold the floor, half a count below t
    below = np.interp(a, _A, _CDF)
    clipped = level + s * np.where(a > _A[-1], a, np.interp(a, _A, _MEAN)) - half * below
    # Beyond the top the identity (a far point: numpy's slope to it is exactly 1). Below
    # the bottom np.interp holds the bottom level: a far point there made the line start
    # at -1e30, and every value below the grid came out 0 whatever the floor.
    far = 1e30
    return np.append(clipped, far), np.append(level, far)


def uncensor(values: np.ndarray, camera: CameraModel, half: float = 0.0) -> None:
    """Map denoised means of clipped readouts to the level they came from, in place
    (``camera.floor`` set). ``half``: :func:`half_step` of the frames."""
    if camera.floor is None:
        return
    gain, offset, read = float(camera.gain), float(camera.offset), float(camera.read_noise)
    clipped, level = _table(gain, offset, read, float(camera.floor), half)
    values[...] = np.interp(values, clipped, level)
