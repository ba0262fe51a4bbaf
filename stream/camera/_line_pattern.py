"""A fixed pattern of whole columns (or rows): each column offset by its own amount, the
same in every frame (a CMOS sensor's column amplifiers, where the camera does not take
it out on board and no offset map is given: :mod:`stream.camera._pattern`).

Frame differences cancel it, so the live estimate leaves it out of the read noise, and
the curvature kernel of the pixels' fixed pattern (:mod:`stream.camera._fixed_pattern`)
cancels any offset constant along a column; the model keeps it as lines of the scene,
and a Gaussian barely averages it out. Unlike a pixel's pattern it can be taken out: a
whole column of pixels shows its offset.

Finding it: each frame's column profile is the offset of each column found the way row
noise finds a row's (:func:`stream.camera._rows.row_offsets` across: the mean over the
column of its pixels less the columns around, clipped where the scene stands out, the
detail finer than 16 columns), over the central :data:`BAND` rows at most, apart in its
top and its bottom half. The product of one half's profile by the other half's of the
frame before keeps what is the same in every frame and all along the columns -- the
pattern, or the scene's own lines -- and neither the pixels' noise nor a cell's
structure, in one half only; the same product of whole profiles keeps the cells too,
and they are the correction's error, with the profiles' noise over the frames averaged.
The mean of the profiles over a series' still frames is the pattern taken out.

Telling it from light: light brings its shot noise and a pattern none (as for the
pixels' pattern). A pair's variance profile (its half squared difference's, found the
same way) follows the light's profile by the gain and not a pattern's, so each half's
variance profile by the other half's profile of the pair's newer frame (other pixels,
whose noise is independent of theirs), over the gain, is the light's share of what the
frames share along the lines. It is taken out where it stands :data:`SIGNIFICANCE`
standard errors above zero, is :data:`WORTH` times the correction's error and no more
than :data:`LARGEST` times the read noise, and is no light: light less than
:data:`MOST_LIGHT` of it by the gain, and none evident by :data:`LIGHT_SIGMAS`
standard errors whatever the gain (:data:`FIRST_LIGHT_SIGMAS` on a series' first pair,
whose gain is a single frame's estimate). So a series' second frame is the first one
served without it: where the pattern is strong, a series of 12 frames whose second
came with it lost as much as 2.9 dB (``independent`` at 1 photon per pixel, columns of
1.5 e-). When it is first taken out, the live estimate starts again from the frame
before without it, and comes back as it was should the searches undo that while they
learn (:class:`stream.engine.SeriesContext`). The stored raw frame keeps it.

Telling it from smooth light: a column's offset owes nothing to its neighbours', while
light from uneven illumination or a large cell is smooth across the lines, and its
detail finer than 16 lines, the same in every frame, is what the search keeps. Its shot
noise is too faint for the light test in a few pairs: a still field lit unevenly (a
Gaussian spot of 25-40 px sigma on 128 x 128, 20-100 photons per pixel, 10 frames) read
as a pattern of columns and rows, ``na-lite`` 8 dB under a tuned Gaussian after its
first frame (a user's trial). So what the frames share must not correlate
:data:`SMOOTHEST` or more from one line to the next (:attr:`LinePattern.smoothness`).

What a first pair cannot tell: a reviewer's flat scenes of columns of light 5-10 %
apart at 10-30 photons per pixel (the size of a 0.5 e- pattern) read as a pattern on
their second frame (0.1-0.3 dB lost there) and on none after; one at 5 % and 1.5 e-
of read noise, on its third and fourth (0.1 dB each).

Measured (one-off probe, ``na-lite``, 12-frame 128 x 128 movies, 0.5 ADU per e-, 1.5
e- of read noise, columns offset by 0.3 / 0.7 / 1.5 e- rms; margin over a truth-tuned
Gaussian, live estimate): see the README's section on the camera. On the evaluation's
four generators at 1-1000 photons per pixel without a pattern (3 seeds, 16 frames),
none was taken out, at any pair, by the true gain or none; nor were stripes of light
the frame's height 6 px apart, or columns of random brightness, at 1-1000 photons.
Not taken out where a pattern hides in the shot noise (the cells' structure is then
more than a quarter of it: ``independent`` at 10 photons and more with columns of 0.7
e-), in frames at a floor (as row noise), nor in a series whose pairs all moved (a
stage or tile scan, whose pairs give no light test).
"""

from __future__ import annotations

import math

import numpy as np

from ._rows import at_a_floor, fine_profile, row_offsets, takes_pair

#: Still pairs it learns from; then what it found stands.
LEARN_PAIRS = 32
#: The pattern's variance must stand this many standard errors above none ...
SIGNIFICANCE = 6.0
#: ... and be this many times the variance of the mean profile's own error.
WORTH = 4.0
#: What is the same in every frame and whose variance follows it by this many standard
#: errors is light.
LIGHT_SIGMAS = 3.0
#: ... and this many on a series' first pair, whose gain is the first frame's estimate
#: (1.1-2.0 for 0.5 on a reviewer's flat scenes of columns of light 5-10 % apart at
#: 10-30 photons per pixel: read as a pattern by it, with their light 1.6-3.4 standard
#: errors above none, 8 of 12 at 2 or more; columns of 0.7 e- on the generators'
#: scenes at 1-10 photons, -2.5 to +1.8 over 24 movies).
FIRST_LIGHT_SIGMAS = 2.0
#: ... as it is where light's share of it is this much or more, by the gain.
MOST_LIGHT = 0.5
#: A pattern of the camera's electronics offsets each line by its own amount, nearly
#: independent of its neighbours': what the frames share correlated -0.2 to +0.27 from
#: one line to the next at every pair (columns of 0.3-1.5 e- on the evaluation's three
#: generators at 1-30 photons per pixel, 2 seeds); the smooth light the other tests let
#: through (a Gaussian spot of 10-60 px sigma, 10-80 photons over 20), 0.66 to 1.1.
#: From this on, what the frames share is the scene's.
SMOOTHEST = 0.45
#: A pattern of the camera's electronics is no more than this many times its read noise
#: (a sensor's column offsets are a fraction of it, or about it). Larger, what the frames
#: share along the lines is the scene's: a bright scene's lines of low contrast, whose
#: shot noise the light test cannot yet tell from none (a still scene at 3000 photons
#: per pixel, 48 x 48, whose columns' light differed by 2 %: 64 ADU rms for 3 ADU of
#: read noise, read as a pattern with a light share of 0.2 by the true gain).
LARGEST = 2.0
#: A profile is found over the central this many rows at most: the cost of a 128-row
#: band for frames of any height, and a column's offset is plain over 128 of its pixels
#: and a few frames (the probes in the module doc were of 128 x 128 frames). Both line
#: searches together took 2.9 ms a frame at 256 x 256 and 4.5 at 512 x 512 on a 2-vCPU
#: VM (3.8 and 6.3 over 256 rows), for a series' first :data:`LEARN_PAIRS` still pairs.
BAND = 128
#: Frames narrower or shorter than this are not searched.
SMALLEST = 32


class LinePattern:
    """A series' fixed pattern of columns (``axis=1``) or of rows (``axis=0``), from its
    still pairs of consecutive frames (see the module doc)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis
        self._reset()

    def _reset(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.pairs = 0
        self._sum: np.ndarray | None = None  # the frames' profiles, summed
        self._frames = 0
        self._spread = 0.0  # the profiles' variances, summed
        #: The last frame's profiles of the band's two halves.
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._same = _Products()  # consecutive frames' profiles, one half's by the other's
        self._whole = _Products()  # consecutive frames' whole profiles
        self._shifted = _Products()  # as _same, each line by the next one's
        self._light = _Products()  # a pair's variance profile by its newer frame's
        self._floored = False

    @property
    def done(self) -> bool:
        return self.pairs >= LEARN_PAIRS

    @property
    def variance(self) -> float:
        """The variance over the lines of what is the same in every frame and all along
        its lines (counts squared; 0 before a pair)."""
        return max(self._same.mean, 0.0)

    @property
    def rms(self) -> float:
        return math.sqrt(self.variance)

    @property
    def smoothness(self) -> float:
        """The correlation of what is the same in every frame from one line to the next
        (about 0 for a camera's pattern, near 1 for smooth light; 0 before a pair)."""
        same = self._same.mean
        return self._shifted.mean / same if same > 0 else 0.0

    @property
    def error(self) -> float:
        """The variance of the mean profile's own error: the scene's structure that is
        the same in every frame but not all along the lines (a cell's), and what a
        frame's profile varies by beyond it (the pixels' noise, a scene's change), over
        the frames averaged."""
        if not self._whole.count:
            return float("inf")
        fixed = self._whole.mean
        changing = max(self._spread / self._frames - fixed, 0.0) / self._frames
        return max(fixed - self.variance, 0.0) + changing

    def light_share(self, gain: float) -> float:
        """Light's share of what is the same in every frame along the lines (0 to 1), by
        the camera's ``gain``; 1 where its variance evidently follows it, 0 where the
        gain is not above 0 and nothing is evident."""
        light, same = self._light, self._same
        if not light.count or not same.mean > 0:
            return 1.0
        evident = LIGHT_SIGMAS if self.pairs > 1 else FIRST_LIGHT_SIGMAS
        if light.mean > evident * light.standard_error:
            return 1.0
        return min(max(light.mean / (gain * same.mean), 0.0), 1.0) if gain > 0 else 0.0

    def correcting(self, gain: float, read_noise: float) -> bool:
        """Whether frames of this shape get the pattern taken out (see the module doc);
        ``gain``: the camera's (frame units per photo-electron; 0 if not known), and its
        ``read_noise`` (frame units)."""
        if not self._light.count or self._floored:
            return False
        variance = self.variance
        return (
            variance > SIGNIFICANCE * self._same.standard_error
            and variance > WORTH * self.error
            and variance <= (LARGEST * read_noise) ** 2
            and self.light_share(gain) < MOST_LIGHT
            and self.smoothness < SMOOTHEST
        )

    def profile(self) -> np.ndarray:
        """The pattern's mean profile (one offset per line; float64)."""
        assert self._sum is not None and self._frames
        return self._sum / self._frames

    def subtracted(self, frame: np.ndarray) -> np.ndarray:
        """A float32 copy of ``frame`` with the pattern taken out."""
        out = np.array(frame, dtype=np.float32)
        offsets = self.profile().astype(np.float32)
        out -= offsets[None, :] if self.axis == 1 else offsets[:, None]
        return out

    def add(self, frame: np.ndarray, previous: np.ndarray) -> None:
        """Take a still pair: ``frame`` and the one just before it (same shape, finite)."""
        if not takes_pair(self, frame, SMALLEST):
            return
        now, before = self._band(frame), self._band(previous)
        if self._last is None:
            self._take(_half_profiles(before))
        assert self._last is not None
        (top, bottom), (last_top, last_bottom) = _half_profiles(now), self._last
        for now_half, last_half in ((top, last_bottom), (bottom, last_top)):
            self._same.add(now_half * last_half)
            self._shifted.add(now_half[1:] * last_half[:-1])
            self._shifted.add(now_half[:-1] * last_half[1:])
        self._whole.add((top + bottom) * (last_top + last_bottom) / 4.0)
        self._take((top, bottom))
        difference = np.subtract(now, before, dtype=np.float32)
        np.square(difference, out=difference)
        difference *= np.float32(0.5)
        half = difference.shape[0] // 2
        # each half's variance by the other half's profile: other pixels, whose noise is
        # independent of theirs
        self._light.add(fine_profile(difference[:half].mean(axis=0, dtype=np.float64)) * bottom)
        self._light.add(fine_profile(difference[half:].mean(axis=0, dtype=np.float64)) * top)
        self._floored |= at_a_floor(frame) or (self.pairs == 0 and at_a_floor(previous))
        self.pairs += 1

    def _band(self, frame: np.ndarray) -> np.ndarray:
        """The central :data:`BAND` lines across the pattern's, as rows of the pattern's
        lines (columns: the frame's rows; rows: the frame transposed)."""
        image = frame if self.axis == 1 else frame.T
        start = max(0, (image.shape[0] - BAND) // 2)
        return np.asarray(image[start : start + BAND], dtype=np.float32)

    def _take(self, halves: tuple[np.ndarray, np.ndarray]) -> None:
        profile = (halves[0] + halves[1]) / 2.0
        self._sum = profile if self._sum is None else self._sum + profile
        self._frames += 1
        self._spread += float(np.var(profile))
        self._last = halves


class _Products:
    """Running mean and standard error of products over lines and pairs (taken as
    independent)."""

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0.0
        self._squares = 0.0

    def add(self, products: np.ndarray) -> None:
        self.count += products.size
        self._sum += float(products.sum())
        self._squares += float(np.square(products).sum())

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else 0.0

    @property
    def standard_error(self) -> float:
        if self.count < 2:
            return float("inf")
        spread = max(self._squares / self.count - self.mean**2, 0.0)
        return math.sqrt(spread / self.count)


def _half_profiles(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each line's offset in the top and the bottom half of a band whose columns are the
    lines (float64)."""
    half = band.shape[0] // 2
    top, bottom = (row_offsets(np.ascontiguousarray(part.T)) for part in (band[:half], band[half:]))
    return top, bottom
