"""Warm pixels: a camera's pixels whose offset stands above their neighbours' by a
constant (dark-signal non-uniformity: a few ADU to hundreds).

In any one frame a warm pixel looks like a point of the scene a pixel wide. Where they
are many (a percent of the pixels) the spike test takes none of them
(:data:`stream.camera._spikes.MOST_SPIKES`: so many spikes may be a field of points),
and frame differences cancel them, so the search for noisy pixels does not see them
either: the model kept them. Measured (one-off probe: ``textures`` fibres at 5 photons
peak, gain 1, read noise 3 e-, 1 % of pixels offset by an exponential of mean 30 ADU,
12 frames, live estimate): ``na-lite`` 3.8 dB where the truth-tuned Gaussian gives 17.9
(21.4 without the warm pixels).

A series' still pairs tell them from light, which brings its shot noise (the camera's
gain times its level) where a constant brings none:

- **as a population, from the first pair** (:func:`constant_spikes`): the spikes of a
  pair's mean frame (many allowed, ``MOST_SHARED``) change between its two frames by
  their neighbours' noise, not by the shot noise of their excess;
- **one by one, over the pairs** (:func:`warm_pixels`): a pixel whose mean stands alone
  above its neighbours' while its noise is far below what light that bright would
  bring, by the chance a pixel of light reads so little (few with few pairs).

Found, they are filled as noisy pixels are (:mod:`stream.camera._noisy`), and the live
estimate leaves their blocks out. A series' first frame has no pair: there a percent of
warm pixels still goes to the model.
"""

from __future__ import annotations

import math

import numpy as np

from ._model import CameraModel
from ._spikes import _NEIGHBOURS, Spikes, find_spikes, spike_fills

#: The spikes a pair's mean frame may hold for the population test (the spike test's
#: own limit is 0.5 %): more is no camera.
MOST_SHARED = 0.05
#: ... each standing this many of the readout's steps above its neighbours ...
COUNTS_ABOVE = 4.0
#: ... and at least this many make a population.
FEWEST_SHARED = 16
#: The population is judged only where the sum of its squared changes, at the geometric
#: midpoint of what a constant and what light would give, stands this many of its
#: standard errors from each: faint points a pixel wide on a camera of high read noise
#: (8 e-) add less shot noise than that noise, and would be judged by chance.
DECIDED_SIGMAS = 2.0
#: The median of a chi-square of one degree of freedom (a squared normal's).
CHI2_1_MEDIAN = 0.45494
#: A warm pixel's mean stands more than this many of its neighbours' noise sigmas (per
#: frame) above their median mean: plain to see in every frame, and far above what the
#: mean's own error is after two pairs (a third of that sigma or less).
OFFSET_SIGMAS = 4.0
#: ... and stands alone: its neighbours' median mean (offset subtracted) is below this
#: share of its own, as a spike's is (:data:`stream.camera._spikes.RATIO`): a point the
#: optics drew leaves its neighbours a third or more of its peak, and a fibre's core has
#: its neighbours along the fibre.
STANDS_ALONE = 0.25
#: ... and its noise is below what light that bright would bring (its neighbours' and
#: the camera's shot noise of the step) by more than the chance this is that a pixel of
#: light reads so little: a scene's bright points are many, and with few pairs a
#: variance is often read far low (on the ``textures`` generator at 1000 photons, two
#: points read 0.14-0.48 of their noise after 8 pairs and passed a test at the midpoint
#: of the two noises: -0.35 dB). By this, a warm pixel is found once light would bring
#: 50 times its noise after 8 pairs, 10 after 16, 4.3 after 32 and 2.6 after 64.
LIGHT_READ_SO_LOW = 1e-4
#: ... and its noise is at least this share of its neighbours': a pixel that reads the
#: same value pair after pair is clipped (a saturated star's core), not offset.
READS_NOISE = 0.25


def constant_spikes(
    frame: np.ndarray, previous: np.ndarray, camera: CameraModel, step: float = 0.0
) -> Spikes | None:
    """The spikes of a still pair's mean frame, when as a population they changed between
    the two by their neighbours' noise rather than by the shot noise of their excess (the
    geometric midpoint of the two, pooled, where the two stand apart:
    :data:`DECIDED_SIGMAS`); None otherwise. ``step``: the readout's step
    (:func:`stream.camera.readout_step`; 0: none), by which whole counts vary.

    Spikes of the mean, not of each frame: a pair's sum and difference are independent,
    so picking the pixels by their sum leaves their differences as they are, where
    picking those that are spikes in both frames picks pixels high in both, whose
    difference is small (a grid of beads 2 px wide, whose pixels pass the spike test
    only now and then, was read as warm)."""
    mean = np.add(frame, previous, dtype=np.float32)
    mean *= 0.5
    mean -= np.float32(camera.offset)
    # the mean of two frames: half the variance (half the gain, the read noise / sqrt 2)
    pixels = find_spikes(mean, camera.gain / 2.0, camera.read_noise / np.sqrt(2.0), MOST_SHARED)
    if pixels is None:
        return None
    ys, xs = pixels
    # a pixel at the top of both frames is clipped (a saturated star's core): no change;
    # one a count or two above dark neighbours is picked by its mean only where both
    # frames read high (whole counts: its change is then 0), so a spike stands some
    # counts above them (a coarse camera, 0.1 ADU per e-, read pixels of 1 count among
    # 0s at 10 photons, their change 0 in nearly every pair: 103 taken for warm)
    clipped = (frame[ys, xs] >= frame.max()) & (previous[ys, xs] >= previous.max())
    coarse = mean[ys, xs] - spike_fills(mean, pixels) < COUNTS_ABOVE * step
    ys, xs = ys[~(clipped | coarse)], xs[~(clipped | coarse)]
    if ys.size < FEWEST_SHARED:
        return None
    pixels = (ys, xs)
    change = np.subtract(frame, previous, dtype=np.float32)
    square = np.square(change[ys, xs], dtype=np.float64)
    # the neighbours' noise by the median of their squared changes (a point's bright
    # neighbours -- a bead 2 px wide -- are its light, not the camera's noise)
    around = _around(np.square(change), ys, xs) / CHI2_1_MEDIAN
    np.maximum(around, 2.0 * step * step / 12.0, out=around)  # counts vary by their rounding
    excess = 2.0 * (mean[ys, xs] - spike_fills(mean, pixels))  # over both frames
    # expected squared changes: twice the neighbours' variance for a constant; for light,
    # twice its shot noise more
    each = around + camera.gain * np.maximum(excess, 0.0)
    noise, light = float(np.sum(around)), float(np.sum(each))
    # a sum of squared normals' relative error is sqrt(2 / n), n the sum's effective count
    count = light * light / float(np.sum(each * each))
    if noise <= 0 or math.log(light / noise) < 2.0 * DECIDED_SIGMAS * math.sqrt(2.0 / count):
        return None  # the two too close to tell apart (a camera of high read noise)
    if float(np.sum(square)) >= math.sqrt(noise * light):
        return None
    return pixels


def warm_pixels(
    noise: np.ndarray,
    mean: np.ndarray,
    typical: float,
    camera: CameraModel,
    pairs: int,
    unread: np.ndarray | None,
) -> Spikes | None:
    """The warm pixels by each pixel's variance ``noise`` and ``mean`` over ``pairs``
    still pairs; ``typical``: the frame's median variance."""
    # first test, on every pixel: its mean over the mean of its four nearest neighbours
    padded = np.pad(mean, 1, mode="edge")
    level = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 4
    index = np.flatnonzero(mean - level > OFFSET_SIGMAS * np.sqrt(typical))
    if index.size == 0:
        return None
    ys, xs = np.divmod(index, noise.shape[1])
    around = np.maximum(_around(noise, ys, xs), typical / 4.0)
    base = _around(mean, ys, xs)
    step = mean[ys, xs] - base
    here = noise[ys, xs]
    warm = step > OFFSET_SIGMAS * np.sqrt(around)
    warm &= np.maximum(base - camera.offset, 0.0) < STANDS_ALONE * (mean[ys, xs] - camera.offset)
    warm &= here >= READS_NOISE * around
    warm &= here < (around + camera.gain * step) * _low_read(pairs)
    if unread is not None:
        warm &= ~unread[ys, xs]
    return (ys[warm], xs[warm]) if warm.any() else None


def _low_read(pairs: int) -> float:
    """The share of a pixel's variance its estimate from ``pairs`` consecutive pairs falls
    below by the chance :data:`LIGHT_READ_SO_LOW`. The estimate's relative variance is
    about 3 / pairs (consecutive pairs share frames): a chi-square's of 2 pairs / 3
    degrees of freedom."""
    from scipy import special  # here: the command line starts without scipy

    dof = 2.0 * pairs / 3.0
    return float(2.0 * special.gammaincinv(dof / 2.0, LIGHT_READ_SO_LOW) / dof)


def _around(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The median of the eight neighbours of each pixel ``(ys, xs)`` (edges repeated)."""
    padded = np.pad(image, 1, mode="edge")
    return np.median([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in _NEIGHBOURS], axis=0)


def union(a: Spikes | None, b: Spikes | None, width: int) -> Spikes | None:
    """The pixels of ``a`` and ``b`` (each once, in raster order)."""
    if a is None or b is None:
        return b if a is None else a
    flat = np.union1d(a[0].astype(np.int64) * width + a[1], b[0].astype(np.int64) * width + b[1])
    return np.divmod(flat, width)
