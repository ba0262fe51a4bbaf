"""Row noise: every row of a frame offset anew each frame (a CMOS sensor's banding).

A CMOS sensor reads a row at a time through shared references; where their noise is not
corrected on board (cheap sensors, a miniscope's), each row of each frame is offset by
its own amount. The offsets are noise the camera model does not describe, shared by a
whole row: a model keeps them as lines of the scene, the live estimate takes them for
read noise, and a Gaussian cannot average them out. Measured (``deepdenoise evaluate``,
16 frames, this correction off): ``na-lite`` on the independent generator read out at
0.5 ADU per e- and 1.5 e- of read noise, rows offset by 1.5 e- rms, 3.17 and 1.04 dB
below the truth-tuned Gaussian at 1 and 3 photons per pixel (+0.41 and +0.64 above it
without the offsets); by 0.5 e-, 0.48 dB below at 1 photon.

Finding it: a still pair's difference holds each row's change of offset, twice the
offsets' variance, shared by the row's left and right halves, while the pixels' own
noise (even noise shared by neighbours along a row, an amplifier's low-pass) is not: the
mean over rows of the product of the two halves' row means is the offsets' variance
times two, whatever the scene (the pair's global change taken out first; the
differences clipped at ``CLIP`` robust standard deviations, so that a noisy pixel's or
a spike's jumps are no row's).

Removing it, frame by frame: each row's offset is the mean over the row of its pixels
less the mean of the ``REACH`` rows either side (the scene's rows change smoothly),
clipped where the scene stands out (a bright place is no row's), kept to the
profile's detail finer than ``SMOOTHER_ROWS`` (a scene's gradient from top to bottom
stays), taken out ``PASSES`` times, each on what the last left. The estimate has an
error of its own, from the pixels' noise and the scene, so it is made only where the
offsets are well above it: ``WORTH`` times that error, as the series' frames show it
(and not for coarse counts, ``COARSE_SD``, nor frames clipped at a floor). The stored
raw frame keeps the offsets.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ._floor import floor_pixels, readout_step
from ._samples import scene_moved

#: Still pairs the search takes; then what it found stands.
SEARCH_PAIRS = 64
#: Pairs before a decision.
MIN_PAIRS = 2
#: The offsets' variance must stand this many standard errors above none ...
SIGNIFICANCE = 6.0
#: ... and be this many times the correction's own error (:attr:`RowNoise.error`).
#: One-off probe, ``na-lite`` on the independent generator, the textures and the
#: phantom, 16 frames, 0.5 ADU per e-, 1.5 e-, rows offset by 0.5 or 1.5 e-: corrected
#: where this ratio was 6-99, 0.2-5.4 dB gained; at 2-3 (30 photons per pixel, 1.5 e-),
#: 0.2-0.7 dB lost.
WORTH = 4.0
#: Whole counts whose pixels' noise is under this much of a count (coarse counts: 0.1
#: ADU per e-, 2 e- of read noise) are left as they are: the rounding hides most of
#: the offsets, and levelled frames, no longer whole, cost the live estimate what it
#: knows of them (one-off probe, rows of 1.5 e-: 1.3-4.6 dB lost at 1 photon per pixel).
COARSE_SD = 0.5
#: Rows each side of a row that stand for the scene there.
REACH = 8
#: The offsets' profile keeps its detail finer than a Gaussian of this many rows.
SMOOTHER_ROWS = 16.0
#: Estimates taken out, each from what the previous left.
PASSES = 3
#: A pair's differences are clipped at this many robust standard deviations.
CLIP = 4.0
#: A frame of which this share holds its lowest value is taken to be at a floor.
PILED = 0.01
#: Frames narrower or shorter than this are not searched (too few pixels in a row).
SMALLEST = 16


class RowNoise:
    """Finds a series' row noise from its still pairs of consecutive frames."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.pairs = 0
        self._products = 0.0  # sums over rows and pairs of the halves' products
        self._products_sq = 0.0
        self._rows = 0
        self._profile_variance = 0.0  # sum over pairs of the variance of what is taken out
        self._pixel_sd = 0.0  # sum over pairs of the pixels' noise (robust sd)
        self._step = 0.0  # readout step (0: any value; see readout_step)
        self._floored = False  # a pair's frame clipped at a floor

    @property
    def done(self) -> bool:
        return self.pairs >= SEARCH_PAIRS

    @property
    def variance(self) -> float:
        """The rows' offset variance found (counts squared; 0 before a pair)."""
        return max(self._products / self._rows / 2.0, 0.0) if self._rows else 0.0

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.variance))

    @property
    def standard_error(self) -> float:
        """Of :attr:`variance` (rows and pairs taken as independent)."""
        if self._rows < 2:
            return float("inf")
        mean = self._products / self._rows
        spread = max(self._products_sq / self._rows - mean * mean, 0.0)
        return float(np.sqrt(spread / self._rows)) / 2.0

    @property
    def error(self) -> float:
        """The variance of the correction's own error, on average over the frames: what
        the profile it takes out varies by beyond the offsets (the scene's rows and the
        pixels' noise)."""
        if not self.pairs:
            return float("inf")
        return max(self._profile_variance / self.pairs - self.variance, 0.0)

    @property
    def coarse(self) -> bool:
        """Readouts on steps (whole counts) whose pixels' noise is under :data:`COARSE_SD`
        of a step."""
        return (
            self._step > 0
            and self.pairs > 0
            and self._pixel_sd / self.pairs < COARSE_SD * self._step
        )

    @property
    def correcting(self) -> bool:
        """Whether frames of this shape get their row offsets taken out. Not where a pair's
        frame was clipped at a floor (an unsigned camera at offset 0;
        :func:`stream.camera.floor_pixels`, :func:`at_a_floor`): levelled, the floor is
        no longer one value and the clipping's bias is no longer undone (one-off probe,
        offset 0, rows of 1.5 e-: ``na-temporal`` lost 1.5 and 0.8 dB at 3 and 10 photons
        per pixel). A brighter series whose noise's tail only is clipped (5-7 % of the
        pixels at 0, fewer than at 1: the phantom at 20-30 photons per pixel, offset 0),
        which the engine does not take for clipped either, is levelled: a reviewer's
        probe (2026-12-06) gained 0.3-2.5 dB by it."""
        if self.pairs < MIN_PAIRS or self.coarse or self._floored:
            return False
        variance = self.variance
        return variance > SIGNIFICANCE * self.standard_error and variance > WORTH * self.error

    def add(self, frame: np.ndarray, previous: np.ndarray) -> None:
        """Take a still pair: ``frame`` and the one just before it (same shape, finite)."""
        if not takes_pair(self, frame, SMALLEST):
            return
        difference = frame.astype(np.float32) - previous
        # clipped: a noisy pixel's or a spike's jumps are no row's (not medians: of whole
        # counts, they would move by whole counts only)
        spread = _robust_sd(difference)
        np.clip(difference, -CLIP * spread, CLIP * spread, out=difference)  # spread: of a pair
        half = frame.shape[1] // 2
        left = difference[:, :half].mean(1, dtype=np.float64)
        right = difference[:, -half:].mean(1, dtype=np.float64)
        left -= left.mean()
        right -= right.mean()
        products = left * right
        self._products += float(products.sum())
        self._products_sq += float(np.square(products).sum())
        self._rows += len(products)
        self._profile_variance += float(np.var(row_offsets(frame)))
        self._step = readout_step(frame)
        # the first pair's frame before too: the sooner a floor shows, the fewer frames
        # levelled before it (later pairs' were tested as the pair before's frame)
        self._floored |= at_a_floor(frame) or (self.pairs == 0 and at_a_floor(previous))
        self._pixel_sd += spread / np.sqrt(2.0)
        self.pairs += 1

    def add_if_still(self, frame: np.ndarray, previous: np.ndarray | None) -> None:
        """Take ``frame`` and the frame before it (finite; None: none) where the scene
        held still between them: what the service and ``adapt`` both learn from."""
        if (
            previous is not None
            and previous.shape == frame.shape
            and not scene_moved(frame, previous)
        ):
            self.add(frame, previous)


class _PairSearch(Protocol):
    """A search over a series' still pairs (row noise, a fixed pattern of lines)."""

    shape: tuple[int, ...] | None

    @property
    def done(self) -> bool: ...

    def _reset(self) -> None: ...


def takes_pair(search: _PairSearch, frame: np.ndarray, smallest: int) -> bool:
    """Whether ``search`` takes a pair whose newer frame is ``frame`` (2-D, no side under
    ``smallest``), its frame size then set: a new size (another region of the sensor)
    starts it again, and one done takes none."""
    if frame.ndim != 2 or min(frame.shape) < smallest:
        return False
    if search.shape is not None and frame.shape != search.shape:
        search._reset()
    if search.done:
        return False
    search.shape = frame.shape
    return True


def remove_row_offsets(frame: np.ndarray) -> np.ndarray:
    """A float32 copy of ``frame`` (2-D) with each row's offset taken out (see the module's
    docstring); non-finite pixels are left out of the estimate and stay as they are."""
    out = np.array(frame, dtype=np.float32)
    out -= row_offsets(out)[:, None].astype(np.float32)
    return out


def row_offsets(frame: np.ndarray, passes: int = PASSES) -> np.ndarray:
    """Each row's offset in ``frame`` (2-D; float64, one per row), found in ``passes``:
    each the mean over the row of its pixels less the rows around (clipped at ``CLIP``
    robust standard deviations: a bright place is the scene's, not the row's), its
    detail finer than ``SMOOTHER_ROWS`` only, of what the passes before left;
    non-finite pixels left out."""
    bad = ~np.isfinite(frame)
    masked = bool(bad.any())
    level = np.float32(frame[~bad].mean() if not bad.all() else 0.0)
    centred = (np.where(bad, level, frame) - level).astype(np.float32)
    residual = centred - _rows_around(centred, REACH)
    spread = CLIP * _robust_sd(residual[~bad] if masked else residual)
    counts = np.maximum((~bad).sum(axis=1), 1)
    clipped = np.empty_like(residual)
    taps = _SMOOTHER_TAPS
    total = np.zeros(frame.shape[0])
    profile = np.zeros(frame.shape[0])
    for done in range(passes):
        if done:  # the rows less their offsets so far: the residual moves by a row vector
            step = profile - _rows_around(profile[:, None], REACH)[:, 0]
            residual -= step[:, None].astype(np.float32)
        np.clip(residual, -spread, spread, out=clipped)
        if masked:
            clipped[bad] = 0.0
        profile = clipped.sum(axis=1, dtype=np.float64) / counts
        profile -= np.convolve(_reflected(profile, len(taps) // 2), taps, mode="valid")
        total += profile
    return total


def fine_profile(profile: np.ndarray) -> np.ndarray:
    """A profile's detail as :func:`row_offsets` keeps it (float64): less the mean of the
    ``REACH`` lines either side, then less its part smoother than ``SMOOTHER_ROWS``."""
    residual = profile - _rows_around(profile[:, None], REACH)[:, 0]
    padded = _reflected(residual, len(_SMOOTHER_TAPS) // 2)
    return residual - np.convolve(padded, _SMOOTHER_TAPS, mode="valid")


def _rows_around(image: np.ndarray, reach: int) -> np.ndarray:
    """Each pixel's mean over the ``reach`` rows above and below it, itself left out
    (rows mirrored at the edges)."""
    padded = _reflected(image, reach)
    height = image.shape[0]
    window = padded[:height].copy()
    for k in range(1, 2 * reach + 1):  # slices of whole rows: faster than a running sum
        window += padded[k : k + height]
    window -= image
    window /= 2 * reach
    return window


def _reflected(values: np.ndarray, reach: int) -> np.ndarray:
    """``values`` mirrored ``reach`` rows beyond each end (about the end rows, as
    ``np.pad``'s "reflect"), by slices: ``np.pad``'s own overhead was two thirds of the
    line searches' cost at 256 x 256 (their profiles are short)."""
    if values.shape[0] <= reach:  # mirrored more than once
        widths = ((reach, reach),) + ((0, 0),) * (values.ndim - 1)
        return np.pad(values, widths, mode="reflect")
    return np.concatenate((values[reach:0:-1], values, values[-2 : -reach - 2 : -1]))


def at_a_floor(frame: np.ndarray) -> bool:
    """Whether ``frame`` is clipped at a floor (:func:`stream.camera.floor_pixels`), or
    ``PILED`` of its pixels hold its lowest value, more than hold the next value up
    (which that test may take for counts of a dim light: at 1 photon per pixel, offset
    0, 0.5 ADU per e-, 1.5 e-, most frames of a series; the others were found clipped,
    and the series was levelled for a few frames, then not, 0.3 dB lost). A noise's own
    tail thins towards its lowest value; without that test, 117 pixels of a 96 x 96
    frame at 3 photons per pixel, offset 100, 1.5 e-, read 98 as their lowest, 1.3 %,
    and the series was taken for clipped."""
    lowest = frame.min()
    held = np.count_nonzero(frame == lowest)
    if held >= PILED * frame.size:
        above = frame[frame > lowest]
        if not above.size or held > np.count_nonzero(above == above.min()):
            return True
    return floor_pixels(frame) is not None


def _robust_sd(values: np.ndarray) -> float:
    """The standard deviation of normal values with ``values``' interquartile range (their
    plain one where that is 0: coarse counts, mostly one value)."""
    sample = values[::4, ::4] if values.ndim == 2 else values[::16]
    low, high = np.percentile(sample, [25, 75])
    return float(high - low) / 1.349 if high > low else float(np.std(values)) or 1.0


def _gaussian_taps(sigma: float) -> np.ndarray:
    """A normalised Gaussian, 3 sigmas each side (float64: the row profile's; the
    engine's float32 ``gaussian_taps`` is a room above this one)."""
    reach = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-reach, reach + 1) / sigma) ** 2)
    return taps / taps.sum()


#: The profile's smoother, made once (not per frame).
_SMOOTHER_TAPS = _gaussian_taps(SMOOTHER_ROWS)
