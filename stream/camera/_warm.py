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
gain times its level) where a constant brings none. Each pixel is judged on the sums of
its still pairs: its mean stands alone above its neighbours' while its noise is below
what light that bright would bring --

- by more than the chance that a pixel of light reads so little (``LIGHT_READ_SO_LOW``:
  a scene's bright points are many), which takes many pairs (:func:`warm_pixels`);
- or, where the series' first pairs have shown that its spikes as a population hold
  still (:class:`ConstantSpikes`: the camera has warm pixels), nearer the noise a
  constant has than the noise light has (the geometric midpoint), from the first pair
  on (:func:`still_pixels`). One pair tells a pixel poorly (a point of light passes that
  midpoint by chance in two pairs of five), so each pixel is judged again on every
  pair's sums: a point of light among warm pixels drops out as its pairs add up,
  instead of staying filled.

Found, they are filled as noisy pixels are (:mod:`stream.camera._noisy`), and the live
estimate leaves their blocks out. A series' first frame has no pair: there a percent of
warm pixels still goes to the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._model import CameraModel
from ._spikes import _NEIGHBOURS, Spikes, find_spikes

#: The spikes a pair's mean frame may hold for the population test (the spike test's
#: own limit is 0.5 %): more is no camera.
MOST_IN_POPULATION = 0.05
#: ... each standing this many of the readout's steps above its neighbours: a pixel a
#: count or two above dark ones is picked by the mean only where both frames read high
#: (whole counts: its change is then 0; a coarse camera, 0.1 ADU per e-, read pixels of
#: 1 count among 0s at 10 photons, their change 0 in nearly every pair) ...
COUNTS_ABOVE = 4.0
#: ... and at least this many make a population.
FEWEST_IN_POPULATION = 16
#: The pairs the population test pools (it costs a spike test a pair, 5-7 ms at 512 x
#: 512 and 80-200 at 2048 x 2048 on a 2-vCPU VM; the decision is kept after them).
POPULATION_PAIRS = 8
#: The population holds still where the sum of its squared changes, pooled over the
#: pairs, is below the geometric midpoint of what a constant and what light would give,
#: and stands this many of the sum's standard errors from each: a reviewer's fields of
#: stars a pixel wide (no warm pixels) passed in 1-12 % of single pairs at two of them,
#: with a biased neighbours' noise, and any such pair was kept for the series.
DECIDED_SIGMAS = 3.0
#: The mean of the median of eight chi-squares of one degree of freedom (numpy's median
#: of eight: the mean of the middle two): the neighbours' squared changes' median over
#: this is their variance, unbiased (a chi-square's own median, 0.455, read it 1.26
#: times too high).
MEDIAN_OF_8_CHI2_1 = 0.5736
#: A warm pixel's mean stands more than this many of its neighbours' noise sigmas (per
#: frame) above their median mean: plain to see in every frame, and far above what the
#: mean's own error is after two pairs (a third of that sigma or less).
OFFSET_SIGMAS = 4.0
#: ... and stands alone: its neighbours' median mean (offset subtracted) is below this
#: share of its own, as a spike's is (:data:`stream.camera._spikes.RATIO`): a point the
#: optics drew leaves its neighbours a third or more of its peak, and a fibre's core has
#: its neighbours along the fibre.
STANDS_ALONE = 0.25
#: A frame's maximum read by this many pixels or more is a ceiling it was clipped at.
CLIPPED_PIXELS = 3
#: ... and its noise is below what light that bright would bring (its neighbours' and
#: the camera's shot noise of the step) by more than the chance this is that a pixel of
#: light reads so little: a scene's bright points are many, and with few pairs a
#: variance is often read far low (on the ``textures`` generator at 1000 photons, two
#: points read 0.14-0.48 of their noise after 8 pairs and passed a test at the midpoint
#: of the two noises: -0.35 dB). By this, a warm pixel is found once light would bring
#: 50 times its noise after 8 pairs, 10 after 16, 4.3 after 32 and 2.6 after 64.
LIGHT_READ_SO_LOW = 1e-4


class ConstantSpikes:
    """Whether a series' still pairs show its spikes, as a population, holding still:
    the spikes of each pair's mean frame, their squared changes between its two frames
    against their neighbours' noise (a constant) and that plus the camera's gain times
    their excess (light), pooled over the series' first :data:`POPULATION_PAIRS` pairs.

    Spikes of the mean, not of each frame: a pair's sum and difference are independent,
    so picking the pixels by their sum leaves their differences as they are, where
    picking those that are spikes in both frames picks pixels high in both, whose
    difference is small (a grid of beads 2 px wide, whose pixels pass the spike test
    only now and then, was read as warm)."""

    def __init__(self) -> None:
        self.pairs = 0
        # pooled: the squared changes, what a constant and what light would give, and
        # the sum of light's terms squared (the sum's effective count)
        self._sums = np.zeros(4)
        #: The pixels (flat indices) any pair's mean showed as spikes: the warm pixels'
        #: candidates (:func:`still_pixels`).
        self.candidates = np.zeros(0, np.int64)

    @property
    def holding_still(self) -> bool:
        changed, noise, light, light_sq = self._sums
        if noise <= 0 or light_sq <= 0:
            return False
        count = light * light / light_sq  # a sum of squared normals: rel. error sqrt(2/n)
        if math.log(light / noise) < 2.0 * DECIDED_SIGMAS * math.sqrt(2.0 / count):
            return False  # the two too close to tell (faint points, high read noise)
        return bool(changed < math.sqrt(noise * light))

    def add(
        self, frame: np.ndarray, previous: np.ndarray, camera: CameraModel, step: float = 0.0
    ) -> None:
        """Take a still pair (its first :data:`POPULATION_PAIRS`), by ``camera``;
        ``step``: the readout's step (:func:`stream.camera.readout_step`; 0: none)."""
        if self.pairs >= POPULATION_PAIRS:
            return
        self.pairs += 1
        mean = np.add(frame, previous, dtype=np.float32)
        mean *= 0.5
        mean -= np.float32(camera.offset)
        # the mean of two frames: half the variance (half the gain, the read noise / sqrt 2)
        pixels = find_spikes(
            mean, camera.gain / 2.0, camera.read_noise / np.sqrt(2.0), MOST_IN_POPULATION
        )
        if pixels is None:
            return
        ys, xs = pixels
        excess = mean[ys, xs] - median_around(mean, ys, xs)
        # a pixel at the top of both frames is clipped (a saturated star's core)
        clipped = (frame[ys, xs] >= frame.max()) & (previous[ys, xs] >= previous.max())
        keep = ~clipped & (excess >= COUNTS_ABOVE * step)
        if np.count_nonzero(keep) < FEWEST_IN_POPULATION:
            return
        ys, xs, excess = ys[keep], xs[keep], excess[keep]
        self.candidates = np.union1d(self.candidates, ys.astype(np.int64) * frame.shape[1] + xs)

        def square(y: np.ndarray, x: np.ndarray) -> np.ndarray:  # of the change, where read
            return np.square(frame[y, x].astype(np.float64) - previous[y, x])

        # the neighbours' noise by the median of their squared changes (a point's bright
        # neighbours -- a bead 2 px wide -- are its light, not the camera's noise)
        around = _neighbours_median(square, ys, xs, frame.shape) / MEDIAN_OF_8_CHI2_1
        np.maximum(around, 2.0 * step * step / 12.0, out=around)  # counts' rounding
        # expected squared changes: twice the neighbours' variance for a constant; for
        # light, twice its shot noise more (the excess is the mean's: once per frame)
        light = around + 2.0 * camera.gain * np.maximum(excess, 0.0)
        changed = float(np.sum(square(ys, xs)))
        self._sums += (changed, float(np.sum(around)), float(np.sum(light)), float(light @ light))


def still_pixels(
    squares: np.ndarray,
    values: np.ndarray,
    first: np.ndarray,
    pairs: int,
    candidates: np.ndarray,
    camera: CameraModel,
    least: float = 0.0,
    top: float = math.inf,
) -> Spikes | None:
    """The warm pixels among ``candidates`` (flat indices) of a series whose spikes hold
    still as a population (:class:`ConstantSpikes`): each stands alone above its
    neighbours (as in :func:`warm_pixels`) with a noise nearer a constant's (its
    neighbours') than light's (the geometric midpoint), by the sums of ``pairs`` still
    pairs: ``squares`` of their changes, ``values`` of their second frames about
    ``first``, the series' first frame; ``top``: the ceiling the pairs were clipped at
    (:func:`clipped_at`). Only the candidates and their neighbours are read: this runs
    on every pair while the population holds still."""
    if candidates.size == 0:
        return None
    ys, xs = np.divmod(candidates, squares.shape[1])

    def noise_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return squares[y, x].astype(np.float64) / (2.0 * pairs)

    def mean_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return values[y, x].astype(np.float64) / pairs + first[y, x]

    here, mean = noise_at(ys, xs), mean_at(ys, xs)
    around = np.maximum(_neighbours_median(noise_at, ys, xs, squares.shape), least)
    base = _neighbours_median(mean_at, ys, xs, squares.shape)
    warm, light = _standing_alone(here, around, mean, base, camera, top)
    warm &= here * here < around * light
    return (ys[warm], xs[warm]) if warm.any() else None


def warm_pixels(
    noise: np.ndarray,
    mean: np.ndarray,
    typical: float,
    camera: CameraModel,
    pairs: int,
    unread: np.ndarray | None,
    top: float = math.inf,
) -> Spikes | None:
    """The warm pixels by each pixel's variance ``noise`` and ``mean`` over ``pairs``
    still pairs, their noise far below light's (:data:`LIGHT_READ_SO_LOW`);
    ``typical``: the frame's median variance; ``top``: the ceiling the pairs were
    clipped at (:func:`clipped_at`)."""
    # first test, on every pixel: its mean over the mean of its four nearest neighbours
    padded = np.pad(mean, 1, mode="edge")
    level = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 4
    index = np.flatnonzero(mean - level > OFFSET_SIGMAS * np.sqrt(typical))
    if index.size == 0:
        return None
    ys, xs = np.divmod(index, noise.shape[1])
    around = np.maximum(median_around(noise, ys, xs), typical / 4.0)
    here = noise[ys, xs]
    warm, light = _standing_alone(
        here, around, mean[ys, xs], median_around(mean, ys, xs), camera, top
    )
    warm &= here < light * _low_read(pairs)
    if unread is not None:
        warm &= ~unread[ys, xs]
    return (ys[warm], xs[warm]) if warm.any() else None


def clipped_at(frame: np.ndarray) -> float | None:
    """The value ``frame`` was clipped at: its maximum where :data:`CLIPPED_PIXELS` or
    more pixels read it exactly (clipping repeats a value; noise seldom repeats the top
    one); None where it shows none."""
    top = frame.max()
    return float(top) if np.count_nonzero(frame == top) >= CLIPPED_PIXELS else None


def _standing_alone(
    here: np.ndarray,
    around: np.ndarray,
    mean: np.ndarray,
    base: np.ndarray,
    camera: CameraModel,
    top: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each pixel of ``mean`` and variance ``here`` stands alone above its
    neighbours' median mean ``base`` (:data:`OFFSET_SIGMAS` of their noise ``around``,
    :data:`STANDS_ALONE`) and clear of the ceiling (:func:`unclipped`); and the variance
    light that bright would have (their noise and the camera's shot noise of the step):
    what both tests of a warm pixel ask before its noise."""
    step = mean - base
    light = around + camera.gain * step
    alone = step > OFFSET_SIGMAS * np.sqrt(around)
    alone &= np.maximum(base - camera.offset, 0.0) < STANDS_ALONE * (mean - camera.offset)
    alone &= unclipped(mean, here, light, top)
    return alone, light


def unclipped(mean: np.ndarray, here: np.ndarray, light: np.ndarray, top: float) -> np.ndarray:
    """Whether a pixel of ``mean`` reads noise (``here``, its variance), and light of
    variance ``light`` at that mean would stay clear of ``top``, a ceiling the frames
    were clipped at (:func:`clipped_at`, else the readout type's largest value), by
    :data:`OFFSET_SIGMAS` of its noise: a point near a camera's ceiling reads it in most
    frames and has little noise left, as a warm pixel has (a reviewer's stars a pixel
    wide at 65,000 e-, 16-bit, configured: 24 of 200 taken for warm after 4 pairs, 66.2
    -> 38.4 dB; at 3,900-4,300 e- on a 12-bit camera, 14 of 163)."""
    return (here > 0) & (mean + OFFSET_SIGMAS * np.sqrt(np.maximum(light, 0.0)) < top)


def _low_read(pairs: int) -> float:
    """The share of a pixel's variance its estimate from ``pairs`` consecutive pairs falls
    below by the chance :data:`LIGHT_READ_SO_LOW`. The estimate's relative variance is
    about 3 / pairs (consecutive pairs share frames): a chi-square's of 2 pairs / 3
    degrees of freedom."""
    from scipy import special  # here: the command line starts without scipy

    dof = 2.0 * pairs / 3.0
    return float(2.0 * special.gammaincinv(dof / 2.0, LIGHT_READ_SO_LOW) / dof)


def median_around(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The median of the eight neighbours of each pixel ``(ys, xs)`` (edges repeated)."""
    return _neighbours_median(lambda y, x: image[y, x], ys, xs, image.shape)


def _neighbours_median(
    read: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ys: np.ndarray,
    xs: np.ndarray,
    shape: tuple[int, ...],
) -> np.ndarray:
    """The median of ``read(rows, columns)`` over the eight neighbours of each pixel
    ``(ys, xs)``, the frame's edge repeated (gathered: no pass over the frame)."""
    h, w = shape[0], shape[1]
    return np.median(
        [read(np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)) for dy, dx in _NEIGHBOURS],
        axis=0,
    )


def union(a: Spikes | None, b: Spikes | None, width: int) -> Spikes | None:
    """The pixels of ``a`` and ``b`` (each once, in raster order)."""
    if a is None or b is None:
        return b if a is None else a
    flat = np.union1d(a[0].astype(np.int64) * width + a[1], b[0].astype(np.int64) * width + b[1])
    return np.divmod(flat, width)
