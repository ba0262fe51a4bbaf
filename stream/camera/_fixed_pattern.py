"""The fixed pattern's variance: offsets that differ from pixel to pixel by a pattern the
same in every frame (dark-signal non-uniformity, where the camera does not subtract it
on board and no offset map is given: :mod:`stream.camera._pattern`).

Frame differences cancel the pattern, so the live estimate's temporal fit leaves it out
of the read noise; yet to the model it is noise like any other, and told a camera
without it, the model keeps it as fine structure. Measured (one-off probe, ``na-lite``,
12-frame 128 x 128 movies of the independent generator read out at 0.5 ADU per e-, 1.5
e- of read noise and a pattern of 1.2 e- rms, live estimate): 8.5 dB below the
truth-tuned Gaussian at 1 photon per pixel, where the same camera told with the pattern
in its read noise gives 0.6 dB above it.

Each frame's curvature residuals (:func:`stream.camera._samples.curvature_residuals`,
which smooth structure barely touches) hold the pattern's, the scene's fine structure's
and the frame's own noise. The mean product of a still pair's residuals keeps the first
two and not the noise, independent between the frames. Over the darkest quarter of the
blocks, where the scene has least structure, the median of those products over a
series' first :data:`PATTERN_PAIRS` still pairs, over the median's share of the mean for
a white pattern, is the static structure's variance; it is counted where it stands
:data:`PATTERN_SIGMAS` standard errors above zero, and is no light. Light brings its
shot noise, a pattern none (as warm pixels, :mod:`stream.camera._warm`): a pixel's
variance (a pair's half squared difference) less its neighbours' follows its light
less its neighbours' (the Laplacian residual of its mean) by the gain where the
structure is light, and not at all where it is a pattern. So from the series' third
frame on, the product of each pair's variances' residuals by the next pair's newer
frame's own (whose noise is independent of theirs), over the gain, is the light's
share of the static structure's (the product of the pair's mean's residuals by that
frame's); at :data:`MOST_LIGHT` of it or more, or where its variance follows its light
plainly (:data:`LIGHT_SIGMAS`), the structure is light. The gain is one fitted
against levels over 3 x 3 blocks, which a pattern barely makes noisy (see
:meth:`stream.camera.CameraEstimator._pattern_variance`).

Why the light test: a grid of beads 2 px wide and 6 apart, dense in every block, read
as a pattern of 0.1-1300 read noise variances at 10-1000 photons, and the model, told
so, smoothed them away (``tests/camera/test_spikes.py``); a second kernel of another
frequency response (the Laplacian's) measured them alike, 1.2-1.3 times (1 for white
noise), so no test of whiteness told them. Structure the light test does not tell from
a pattern reads as one, the noise map raised by it, and the model smooths a little
more: a reviewer's flat scenes of pixels of uniform random light (3-6 photons at 2 e-
of read noise, 30-40 photons) did so in 2 of 5 seeds each (their light's variance
near the noise's: unchanged, and -0.2 dB). On the evaluation's four generators at
1-1000 photons per pixel, without a pattern, none was counted; with one of 0.4 or 1.2
e- rms, it came out within 0.05 read noise variances of the truth up to 30 photons
(above, the shot noise hides it, and it matters the less). A series' second frame,
before the light test, is served without it.

A pattern of whole columns or rows (a CMOS sensor's column amplifiers), which the
curvature kernel cancels as it does any offset constant along a column or a row, is
found and taken out apart (:mod:`stream.camera._line_pattern`). Not seen (a reviewer's
probes): a pattern in a series whose pairs all moved (a stage or tile scan: ``fields``
at 3 photons with 0.5-1 e- of read noise and 1 e- of pattern, 1.4-3.0 dB under a tuned
Gaussian, as before), whose pairs give no product of a still scene.
"""

from __future__ import annotations

import math

import numpy as np

from ._samples import BLOCK, CURVATURE_MEDIAN_OVER_MEAN, blockwise_means, curvature_residuals

#: The still pairs a series' pattern is measured over (a pattern does not change; the
#: light test's error falls with their number).
PATTERN_PAIRS = 16
#: The darkest share of the blocks it is measured in.
DARK_SHARE = 0.25
#: It counts where it stands this many standard errors above zero.
PATTERN_SIGMAS = 3.0
#: It is measured over the frame's central pixels, this many a side at most: the cost
#: of a 512 x 512 frame's for frames of any size (five residual images a pair, 4-5 ms
#: at 512 x 512 and 2048 x 2048 on a 2-vCPU VM busy with other work, for a series'
#: first :data:`PATTERN_PAIRS` still pairs only).
PATTERN_SIDE = 512
#: The fewest blocks it is measured in, the darkest quarter of four times as many:
#: frames of 48 x 48 pixels and more (64 left a reviewer's 64 x 64 frames, with their
#: 196 blocks inside the edge ones, without).
FEWEST_BLOCKS = 24
#: Static structure whose variance follows it by this many standard errors is light.
LIGHT_SIGMAS = 3.0
#: Static structure with this share of light or more is taken for light; below, for a
#: pattern (where light is half or less, a pattern matters little next to its noise:
#: the share's own error early in a series, a tenth to a third, would cost more).
MOST_LIGHT = 0.5


class FixedPattern:
    """A series' fixed pattern's variance, from its still pairs (see the module doc)."""

    def __init__(self) -> None:
        self.pairs = 0
        self._products: np.ndarray | None = None  # per block of the window: mean products
        self._counts: np.ndarray | None = None  # ... and the pairs that gave each
        self._window: tuple[slice, slice] | None = None  # in blocks of the frame
        #: The latest pair's Laplacian residuals of its mean and of its half squared
        #: difference (its pixels' variance), kept until the next pair.
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        #: Per block, summed over each pair and the next pair's newer frame: the mean
        #: product of the pair's mean's residuals by the frame's (the static structure's
        #: variance, light's and pattern's alike), and of the pair's variance's by the
        #: frame's (the gain times light's alone).
        self._static: np.ndarray | None = None
        self._light: np.ndarray | None = None

    def add(self, frame: np.ndarray, previous: np.ndarray, usable: np.ndarray) -> None:
        """Take a still pair; ``usable``: per block of the frame (raveled), whether its
        noise is the camera's (not flat, saturated or spiking)."""
        if self.pairs >= PATTERN_PAIRS:
            return
        rows, columns = frame.shape[0] // BLOCK, frame.shape[1] // BLOCK
        window = tuple(_central(n, PATTERN_SIDE // BLOCK) for n in (rows, columns))
        if self._window is not None and self._window != window:
            return  # frames of another size: the first size's pattern stands
        down, across = window
        if down.stop - down.start < 3 or across.stop - across.start < 3:
            return  # no block inside the window's edge blocks
        pixels = (
            slice(down.start * BLOCK, down.stop * BLOCK),
            slice(across.start * BLOCK, across.stop * BLOCK),
        )
        now, before = frame[pixels], previous[pixels]
        product = curvature_residuals(now)
        product *= curvature_residuals(before)
        product /= np.float32(36.0)  # the kernel's squared sum: a white pattern's variance
        good = usable.reshape(rows, columns)[down, across].copy()
        good[[0, -1], :] = False  # edge blocks lack residuals of their outer pixels
        good[:, [0, -1]] = False
        if self._products is None or self._counts is None:
            self._products, self._counts = np.zeros(good.shape), np.zeros(good.shape)
            self._window = (down, across)
        self._products[good] += _block_means(product)[good]
        self._counts[good] += 1
        if self._last is not None:
            # the next pair's newer frame: none of the last pair's, so its noise is
            # independent of theirs (the shot noise's skew ties a frame's value to the
            # squared differences it enters)
            mean, variance, last_good = self._last
            later = laplacian_residuals(now)
            static, light = _block_means(mean * later), _block_means(variance * later)
            if self._static is None or self._light is None:
                self._static, self._light = np.zeros(good.shape), np.zeros(good.shape)
            both = good & last_good & np.isfinite(static) & np.isfinite(light)
            self._static[both] += static[both]
            self._light[both] += light[both]
            self._static[~both] = np.nan  # a block the test cannot use every time
        self.pairs += 1
        self._last = None
        if self.pairs < PATTERN_PAIRS:
            self._last = (*_mean_and_variance(now, before), good)

    def variance(self, levels: np.ndarray) -> float:
        """The static structure's variance in the darkest blocks (the frame's units
        squared; 0 where it is not told from zero): a pattern's, unless it is light
        (:meth:`light_share`). ``levels``: the frame's block means (2-D)."""
        darkest = self._darkest(levels)
        if darkest is None or self._products is None or self._counts is None:
            return 0.0
        seen = self._seen()
        products = (self._products[seen] / self._counts[seen])[darkest]
        variance = float(np.median(products)) / CURVATURE_MEDIAN_OVER_MEAN
        # the median's standard error: sqrt(pi / 2) of the mean's, for a normal spread
        stderr = math.sqrt(math.pi / 2.0) * float(np.std(products)) / math.sqrt(products.size)
        stderr /= CURVATURE_MEDIAN_OVER_MEAN
        return variance if variance > PATTERN_SIGMAS * stderr else 0.0

    def light_share(self, levels: np.ndarray, gain: float) -> float:
        """The share of the static structure in the darkest blocks that is light (0 to
        1; 1 where it is not told), by the camera's ``gain`` (the frame's units per
        photo-electron): light's variance follows it. A structure whose variance
        evidently follows it (by :data:`LIGHT_SIGMAS` standard errors) is taken for
        light whatever the gain (a flat scene's gain is poorly fitted: 2-5 for 1 on
        pixels of uniform random light, and shares by it read 0.2-0.5); where the gain
        is not above 0 (not pinned down: a dark, sparse scene), any other is none."""
        darkest = self._darkest(levels)
        if darkest is None or self._static is None or self._light is None:
            return 1.0
        seen = self._seen()
        static = float(np.sum(self._static[seen][darkest]))
        each = self._light[seen][darkest]
        light = float(np.sum(each))
        if not static > 0:
            return 1.0
        if light > LIGHT_SIGMAS * float(np.std(each)) * math.sqrt(each.size):
            return 1.0  # evidently light, whatever the gain says
        return min(max(light / (gain * static), 0.0), 1.0) if gain > 0 else 0.0

    def _seen(self) -> np.ndarray:
        assert self._counts is not None and self._static is not None and self._light is not None
        return (self._counts > 0) & np.isfinite(self._static) & np.isfinite(self._light)

    def _darkest(self, levels: np.ndarray) -> np.ndarray | None:
        """The indices among :meth:`_seen` blocks of the darkest :data:`DARK_SHARE` of
        them, by ``levels``; None before the light test's pairs, or too few."""
        if self._window is None or self._static is None:
            return None
        if levels.shape[0] < self._window[0].stop or levels.shape[1] < self._window[1].stop:
            return None
        seen = self._seen()
        if np.count_nonzero(seen) < FEWEST_BLOCKS / DARK_SHARE:
            return None
        return np.argsort(levels[self._window][seen])[: int(DARK_SHARE * seen.sum())]


def laplacian_residuals(image: np.ndarray) -> np.ndarray:
    """Each pixel's residual from its four nearest neighbours' mean, times 4 (float32; the
    pixels with all four in the image: two rows and two columns fewer, as
    :func:`stream.camera._samples.curvature_residuals`)."""
    x = np.asarray(image, dtype=np.float32)
    r = x[1:-1, 1:-1] * np.float32(4.0)
    r -= x[:-2, 1:-1]
    r -= x[2:, 1:-1]
    r -= x[1:-1, :-2]
    r -= x[1:-1, 2:]
    return r


def _block_means(residuals: np.ndarray) -> np.ndarray:
    """Per 4 x 4 block of the image the ``residuals`` (two rows and columns fewer) are
    of, their mean (the outer pixels' taken as 0: edge blocks are not used)."""
    padded = np.zeros((residuals.shape[0] + 2, residuals.shape[1] + 2), np.float32)
    padded[1:-1, 1:-1] = residuals
    return blockwise_means(padded)


def _mean_and_variance(frame: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Laplacian residuals of a pair's mean and of its half squared difference (each
    pixel's noise variance: the camera's gain times its light, and the read noise's)."""
    mean = np.add(frame, previous, dtype=np.float32)
    mean *= np.float32(0.5)
    variance = np.subtract(frame, previous, dtype=np.float32)
    np.square(variance, out=variance)
    variance *= np.float32(0.5)
    return laplacian_residuals(mean), laplacian_residuals(variance)


def _central(n: int, most: int) -> slice:
    """The central ``most`` of ``n`` (all of them, if fewer)."""
    start = max(0, (n - most) // 2)
    return slice(start, min(n, start + most))
