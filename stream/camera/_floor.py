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


def floor_pixels(frame: np.ndarray, step: float | None = None) -> tuple[float, np.ndarray] | None:
    """(floor, the pixels at it) when the frame's minimum is a pile-up of clipped noise;
    else None. Clipped noise continues right above the floor (the next count is held
    too, or for float readouts the nearest value is close); a masked region set to 0
    beside data far above it (a round field of view, a stitched border) is not a
    clipping and is left alone. ``step``: the frame's :func:`readout_step`, if known."""
    bottom = float(frame.min())
    at_floor = frame == bottom
    count = int(np.count_nonzero(at_floor))
    if count < max(FLOOR_MIN_PIXELS, FLOOR_FRACTION * frame.size) or count == frame.size:
        return None
    step = readout_step(frame) if step is None else step
    if step > 0:
        if not _clipped_counts(frame, at_floor, bottom, step):
            return None
    else:
        above = frame[~at_floor]
        if above.size == 0 or above.min() - bottom > 0.01 * (np.median(above) - bottom):
            return None
    return bottom, at_floor


def readout_step(frame: np.ndarray) -> float:
    """The step between the values the frame's readouts can take; 0 for readouts that
    take any value. 1 for integer counts; 16 for 12-bit counts aligned to the top of
    16-bit words; 1/4095 for 12-bit counts scaled to [0, 1]; 1 for counts less a
    fractional background (the lowest value, a floor it was clipped at, may be off the
    steps). Integer steps are powers of two (fewer bits than the word holds).

    Why: the live estimate reads whole counts' rounding, a saturation level and a
    clipping floor by this step. When it took one count for the step, 12-bit counts
    ``<< 4`` at 3 photons per pixel (three values a frame) had their repeated maximum
    taken for saturation and the model returned its input (4.5 dB, against 15.4 for
    the same counts unshifted; 12-frame 128 x 128 probe), and the same counts scaled to
    [0, 1] did the same.
    """
    values = np.asarray(frame)
    if values.dtype.kind in "ui":
        return _bits_step(values)
    flat = values.ravel()
    sample = flat[:: max(1, flat.size // _STEP_SAMPLE)]
    if values.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0
    if np.all(sample == np.round(sample)) and float(np.abs(sample).max()) < 2.0**52:
        return _bits_step(np.round(sample).astype(np.int64))
    return _lattice_step(sample)


def half_step(frame: np.ndarray) -> float:
    """Half the frame's :func:`readout_step`: a readout below ``floor + half`` rounds to
    the floor (0 for readouts that take any value)."""
    return readout_step(frame) / 2.0


#: Values on a lattice lie within this share of a step of it (float32 holds 12-bit
#: counts over 4095 to 2.4e-4 of a step, 16-bit ones over 65535 to 4e-3).
_STEP_TOLERANCE = 0.02
#: Values looked at for a frame's step (evenly spaced), and of those the distinct ones
#: for a float lattice's: at 512 x 512 the step costs 0.1 ms for integers, and about
#: 2 ms for floats.
_STEP_SAMPLE = 65536
_LEVEL_SAMPLE = 8192
#: A float lattice spans at most this many steps (a 16-bit readout's), each more than 16
#: of the float type's own spacing: float32 itself is a lattice of its spacing within
#: each power of two, and that is no readout's step.
_MOST_STEPS = 65536


def _bits_step(values: np.ndarray) -> float:
    """The largest power of two that every difference of the integers is a multiple of
    (the low bits all pixels share with the lowest); 1 when they are all one value."""
    low = values.min()
    shared = int(np.bitwise_or.reduce(np.bitwise_xor(values, low), axis=None))
    return float(shared & -shared) if shared else 1.0


def _lattice_step(sample: np.ndarray) -> float:
    """The step of a float lattice that holds every value of the sample but perhaps the
    lowest (a floor clipped at, off the lattice), from the smallest gap between the
    distinct values of a part of it; 0 when the values are on none."""
    levels = np.unique(sample[:: max(1, sample.size // _LEVEL_SAMPLE)])[1:]
    if levels.size < 2 or sample.size < 16:  # too few values to tell a lattice by
        return 0.0
    step = float(np.diff(levels).min())
    base = float(levels[0])
    top = float(sample.max())
    kind = sample.dtype if sample.dtype.kind == "f" else np.dtype(np.float64)
    spacing = float(np.spacing(np.asarray(max(abs(top), abs(base)), dtype=kind)))
    if not step > 16.0 * spacing or (top - base) / step > _MOST_STEPS:
        return 0.0  # the float type's own spacing, or finer than any readout's
    ratio = (sample[sample >= base].astype(np.float64) - base) / step
    if float(np.abs(ratio - np.round(ratio)).max()) > _STEP_TOLERANCE:
        return 0.0
    return step


def _clipped_counts(frame: np.ndarray, at_floor: np.ndarray, bottom: float, step: float) -> bool:
    """Whether readouts on steps of ``step`` piled up at ``bottom`` are clipped noise,
    not counts.

    Where most pixels sit at the floor (4 x 4 blocks with half or more there), clipped
    Gaussian noise of 1.5 steps or more holds the next two steps almost alike (their
    ratio is at least exp(-3 / (2 s**2)): 0.51 at 1.5 steps, 0.91 at 4), while a photon
    counter's zeros are counts of a dim Poisson light, whose next two counts fall off as
    lambda / 2 (at most 0.35 there; none at all in between for a gain of 2 steps or
    more). A clipped noise narrower than 1.5 steps is taken for counts; its bias is
    small. The first step above the floor may be nearer than a step (counts less a
    fractional background, then clipped at 0)."""
    h, w = frame.shape
    rows, columns = h // 4, w // 4
    if rows == 0 or columns == 0:
        return False
    blocks = at_floor[: rows * 4, : columns * 4].reshape(rows, 4, columns, 4)
    dark = np.repeat(np.repeat(blocks.mean(axis=(1, 3)) >= 0.5, 4, axis=0), 4, axis=1)
    if np.count_nonzero(dark) < 16 * 16:
        return False
    values = frame[: rows * 4, : columns * 4][dark]
    first_top, second_top = bottom + 1.5 * step, bottom + 2.5 * step
    first = np.count_nonzero((values > bottom) & (values < first_top))
    second = np.count_nonzero((values >= first_top) & (values < second_top))
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
