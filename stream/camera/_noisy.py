"""Noisy pixels: a camera's pixels whose noise stands far above their neighbours'.

An sCMOS reads every pixel through its own amplifier: most pixels' read noise is near the
median (1-2 e-), but a tail is several times that (random telegraph noise; 5-20 e- in a
percent of pixels or fewer). At a photon per pixel such a pixel jumps by tens of photons'
worth up and down from frame to frame: nothing the model was trained on, which keeps it
as a point of the scene and spreads it over its receptive field, and too small for the
spike test (:mod:`stream.camera._spikes`), which looks for what stands far above the
scene. Measured (one-off probe): ``na-lite`` on the independent generator read out at
0.5 ADU per e- with 1 % of pixels at 5-20 e-, served with the live estimate, 4.19 dB
below the truth-tuned Gaussian at 1 photon per pixel and 0.96 at 3 (+0.37 and +0.61
without that tail); with 0.1 % of them, 0.65 dB below at 1 photon.

A series' still pairs of consecutive frames show each pixel's noise: the mean square of
its differences is twice its variance, whatever its level. A pixel is noisy when that
is more than ``RATIOS`` times the median of its eight neighbours' and than the noise the
camera gives its own level (a pixel brighter than its neighbours has more shot noise,
and at a photon or two per pixel a Poisson tail is long: where read noise is near zero,
3-29 pixels of a 16-frame movie were taken for noisy without this), its values vary no
more than noise does (their variance about their mean at most ``NOISE_SHARE`` times
half the mean square difference: a calcium transient rises in a frame or two and decays
over many, so its values vary far more than its consecutive differences) and its mean
is its neighbours' (``LEVEL_SIGMAS``: a thin process lighting up at 1000 photons, its
neighbours dark, stands out of the mean; read noise does not), and its differences do
not go with its neighbours' where one of them is noisy too (``SHARED``, ``NEAR_SHARE``:
a process a pixel wide, lit at rest and flashing with activity, passed every other test
-- six pixels of an active axon at 100 photons per pixel were filled from the dark
around them, its transients erased -- but its neighbours along it change with it; a
camera pixel's noise is its own). The service
fills noisy pixels from their neighbours, as it fills spikes, before the model and the
blend see the frame (:class:`stream.engine.SeriesContext`); the stored raw frame keeps
them.

The same pairs find a camera's warm pixels (:mod:`stream.camera._warm`), filled and left
out of the live estimate as noisy pixels are.
"""

from __future__ import annotations

import numpy as np

from ._floor import readout_step
from ._model import CameraModel
from ._spikes import _NEIGHBOURS, Spikes
from ._warm import ConstantSpikes, clipped_at, median_around, still_pixels, union, warm_pixels

#: A noisy pixel's mean square difference is more than this many times its neighbours'
#: median, by the pairs it rests on (a 5-e- pixel among 1.4-e- ones: about 8.7 at 1
#: photon per pixel, 5.6 at 3; a 15-e- one: 75 and 45). Consecutive pairs share frames,
#: so the ratio's tail is heavier than a chi-square's: on flat Poisson-Gaussian frames
#: (384 x 384, 1 and 100 e-) one still pixel in 10,000 passed 48 after 2 pairs, 17
#: after 4, 8 after 8 and 4.7 after 16. The first searches find only the worst pixels,
#: which cost the most.
RATIOS = {2: 50.0, 4: 17.0, 8: 8.0, 16: 5.0, 32: 4.0, 64: 4.0}
#: The searches (pairs), the last of which keeps the map and lets the sums go.
SEARCH_AT = tuple(RATIOS)
#: A noisy pixel's values vary about their mean by at most this many times what its
#: consecutive differences say (about 1 for noise; a transient over the pairs: 5-10).
NOISE_SHARE = 2.0
#: ... and its mean is within this many standard errors of its neighbours' median mean:
#: read noise has none, and a structure that stands out of the mean (a thin process
#: lighting up at 1000 photons, whose neighbours stay dark) is the scene's.
LEVEL_SIGMAS = 4.0
#: ... and the correlation of its differences with the mean of its eight neighbours'
#: (about the origin, over the pairs) is at most this, by the pairs it rests on. A pixel
#: of an active process a pixel wide: 0.9-1 (one or two of its neighbours change with
#: it). Independent noise: the correlation's spread is about sqrt(1.5 / pairs)
#: (consecutive pairs share frames), so about 14 % of a camera's noisy pixels pass as
#: shared after 2 pairs, 5 % after 16 and 0.5 % after 64, when the map is final.
SHARED = {2: 0.9, 4: 0.75, 8: 0.6, 16: 0.5, 32: 0.4, 64: 0.4}
#: ... where a neighbour is at least this share as noisy as the pixel: a process's
#: pixels beside it change as it does, while a camera's noisy pixel stands alone, and
#: one far noisier than its neighbours (the costliest) is never let through by chance.
#: Without this, 1 % of pixels 15 e- noisy on the independent generator at 10 photons per
#: pixel (16-frame movies: the last search at 8 pairs) cost ``na-lite`` 0.45 dB, left
#: unfilled where their correlation passed by chance.
NEAR_SHARE = 0.25
#: More noisy pixels than this share of the frame is no camera's tail (a scene that
#: flickers pixel by pixel): none are taken.
MOST = 0.1
#: Whole-count readouts vary by their rounding at least (variance 1/12 of a step squared;
#: a step is a count, or :func:`stream.camera.readout_step`), though a
#: coarse camera's dark pixel may read one value pair after pair: no pixel's noise is
#: taken for less. Before this floor, coarse counts (0.1 ADU per e-, 2 e-) at 1 photon
#: per pixel, whose median pixel showed no variance at all, had every pixel that moved
#: at all taken for noisy (na-temporal 0.46 dB down, na-lite 0.19).
ROUNDING_VARIANCE = 1.0 / 12.0


class NoisyPixels:
    """Finds a series' noisy pixels from its still pairs of consecutive frames."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # float32 sums (28 bytes a pixel with the first frame, a scratch plane and the
        # neighbours' two, for a series' first 64 pairs): exact enough for a ratio of 4
        self._square: np.ndarray | None = None  # sums of squared differences
        self._sum: np.ndarray | None = None  # sums of values, about the first frame's
        self._sum_sq: np.ndarray | None = None  # sums of their squares
        self._first: np.ndarray | None = None
        self._cross: np.ndarray | None = None  # sums of difference x neighbours' difference
        self._near: np.ndarray | None = None  # sums of the neighbours' difference squared
        self._scratch: np.ndarray | None = None  # each pair's terms (no allocation per pair)
        self.shape: tuple[int, ...] | None = None  # of the frames the map is for
        self._step = 0.0  # the readout's step (stream.camera.readout_step)
        self._clipped_at = -np.inf  # the highest value a pair's frame was clipped at
        self._type_top = np.inf  # the readout type's largest value
        self._least = 0.0  # the least variance a pixel's noise is taken for
        self.pairs = 0
        #: The noisy and warm pixels found (rows, columns); None: none (yet).
        self.pixels: Spikes | None = None
        #: The warm pixels among them (:mod:`stream.camera._warm`).
        self.warm: Spikes | None = None
        self._unread: np.ndarray | None = None  # pixels some pair did not read (a mask)
        self._still = ConstantSpikes()  # whether the spikes hold still, as a population
        self._noisy_found: Spikes | None = None  # at the latest search
        self._tail: Spikes | None = None  # warm pixels by light's tail, at the latest search

    @property
    def count(self) -> int:
        return 0 if self.pixels is None else len(self.pixels[0])

    @property
    def nbytes(self) -> int:
        """Memory held: the sums until the map is final, then the pixels' indices."""
        sums = (
            self._square, self._sum, self._sum_sq, self._first, self._scratch, self._unread,
            self._cross, self._near,
        )  # fmt: skip
        found = (self.pixels, self.warm, self._noisy_found, self._tail)
        arrays = (*sums, *(a for pixels in found for a in (pixels or ())))
        held = {id(a): a for a in arrays if a is not None}  # the maps share their arrays
        return sum(a.nbytes for a in held.values())

    @property
    def done(self) -> bool:
        """Whether the map is final (its sums let go)."""
        return self.pairs >= SEARCH_AT[-1]

    def add(
        self,
        frame: np.ndarray,
        previous: np.ndarray,
        camera: CameraModel | None = None,
        unread: np.ndarray | None = None,
    ) -> None:
        """Take a still pair: ``frame`` and the one just before it (same shape); the
        camera so far, if known, says what noise each pixel's own level has.
        ``unread``: the pixels either frame did not read (NaN, a mask: filled in the
        frames given), never taken for noisy -- a mask's edge that moves between frames
        (a motion-corrected border) steps from the fill to the scene and back."""
        if self.shape is not None and frame.shape != self.shape:
            self._reset()  # a new frame size: another region of the sensor
        if self.done:
            return
        if unread is not None:
            self._unread = unread.copy() if self._unread is None else self._unread | unread
        if self._first is None:
            self.shape = frame.shape
            self._step = readout_step(frame)
            self._least = ROUNDING_VARIANCE * self._step**2
            self._first = frame.astype(np.float32)
            self._square = np.zeros(frame.shape, np.float32)
            self._sum = np.zeros(frame.shape, np.float32)
            self._sum_sq = np.zeros(frame.shape, np.float32)
            self._scratch = np.empty(frame.shape, np.float32)
            self._cross = np.zeros(frame.shape, np.float32)
            self._near = np.zeros(frame.shape, np.float32)
        assert self._square is not None and self._sum is not None and self._sum_sq is not None
        assert self._cross is not None and self._near is not None
        term = self._scratch
        assert term is not None
        np.subtract(frame, previous, out=term, dtype=np.float32, casting="unsafe")
        near = _neighbour_sum(term)
        self._cross += term * near
        np.square(near, out=near)
        self._near += near
        np.square(term, out=term)
        self._square += term
        np.subtract(frame, self._first, out=term, dtype=np.float32, casting="unsafe")
        self._sum += term  # values about the first frame: small numbers
        np.square(term, out=term)
        self._sum_sq += term
        self.pairs += 1
        if camera is not None:  # the warm pixels' tests (stream.camera._warm)
            clipped = clipped_at(frame)
            if clipped is not None:
                self._clipped_at = max(self._clipped_at, clipped)
            if frame.dtype.kind in "ui":
                self._type_top = float(np.iinfo(frame.dtype).max)
            self._still.add(frame, previous, camera, self._step)
        if self.pairs in SEARCH_AT:
            self._noisy_found, self._tail = self._search(camera)
        if self.pairs in SEARCH_AT or (camera is not None and self._still.holding_still):
            self._gather(camera)
            if self.done:
                self._square = self._sum = self._sum_sq = self._first = self._scratch = None
                self._unread = self._cross = self._near = None

    def _gather(self, camera: CameraModel | None) -> None:
        """The map from the latest search's noisy pixels and its warm ones by light's
        tail, and, where the series' spikes hold still as a population, the warm ones
        by this pair's sums (:func:`stream.camera._warm.still_pixels`)."""
        assert self.shape is not None
        width = self.shape[1]
        warm = self._tail
        if camera is not None and self._still.holding_still:
            assert self._square is not None and self._sum is not None and self._first is not None
            still = still_pixels(
                self._square, self._sum, self._first, self.pairs, self._still.candidates,
                camera, self._least, self._top,
            )  # fmt: skip
            if still is not None and self._unread is not None:
                read = ~self._unread[still]
                still = (still[0][read], still[1][read])
            warm = union(warm, still, width)
        pixels = union(self._noisy_found, warm, width)
        if pixels is None or pixels[0].size > MOST * self.shape[0] * width:
            self.pixels = self.warm = None
        else:
            self.pixels, self.warm = pixels, warm

    def _planes(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Each pixel's variance and mean over the pairs so far, and the frame's median
        variance (None: no pixel moved -- a fill, or a mask)."""
        assert self._square is not None and self._sum is not None and self._first is not None
        n = self.pairs
        noise = self._square.astype(np.float64) / (2.0 * n)
        sample = noise[::3, ::3]
        moving = sample[sample > 0]
        if moving.size == 0:
            return None
        typical = max(float(np.median(moving)), self._least)
        mean = self._sum.astype(np.float64) / n + self._first  # the first frame's noise is no step
        return noise, mean, typical

    @property
    def _top(self) -> float:
        """The ceiling the series' frames were clipped at (:func:`_warm.clipped_at`), or
        their readout type's largest value."""
        return self._clipped_at if self._clipped_at > -np.inf else self._type_top

    def filled(self, warm: bool = True) -> Spikes | None:
        """The pixels to fill: the noisy ones, and the warm ones too where ``warm``."""
        return self.pixels if warm or self.pixels is None else self._noisy_found

    def _search(self, camera: CameraModel | None) -> tuple[Spikes | None, Spikes | None]:
        """The noisy pixels, and the warm ones by light's tail."""
        assert self._square is not None and self._sum is not None and self._sum_sq is not None
        n = self.pairs
        ratio = RATIOS[n]
        # first test, on every pixel: against the frame's median variance (cheap); then
        # the exact tests on the candidates only, against their eight neighbours (no less
        # than a quarter of that median: in a dark place of coarse counts they may show
        # none); a fill or a mask (no variance) is no pixel's noise
        planes = self._planes()
        if planes is None:
            return None, None
        noise, mean, typical = planes
        candidates = noise > ratio * typical
        index = np.flatnonzero(candidates)
        ys, xs = np.divmod(index, noise.shape[1])
        here = noise[ys, xs]
        assert self._first is not None
        mean_here = mean[ys, xs] - self._first[ys, xs]  # the mean about the first frame
        spread = self._sum_sq[ys, xs].astype(np.float64) / n - mean_here * mean_here
        around = np.maximum(median_around(noise, ys, xs), max(typical / 4.0, self._least))
        if camera is not None:  # a pixel brighter than its neighbours has more shot noise
            level = np.maximum(mean[ys, xs] - camera.offset, 0.0)
            np.maximum(around, camera.gain * level + camera.read_noise**2, out=around)
        noisy = (here > ratio * around) & (spread <= NOISE_SHARE * here)
        assert self._cross is not None and self._near is not None
        together = self._square[ys, xs].astype(np.float64) * self._near[ys, xs]
        shared = self._cross[ys, xs] > SHARED[n] * np.sqrt(together)
        noisy &= ~(shared & (_most_around(noise, ys, xs) >= NEAR_SHARE * here))
        if self._unread is not None:
            noisy &= ~self._unread[ys, xs]
        step = np.abs(mean[ys, xs] - median_around(mean, ys, xs))
        noisy &= step <= LEVEL_SIGMAS * np.sqrt(here / n)
        tail = (
            None
            if camera is None
            else warm_pixels(noise, mean, typical, camera, n, self._unread, self._top)
        )
        return ((ys[noisy], xs[noisy]) if noisy.any() else None), tail


def _most_around(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The largest of the eight neighbours of each pixel ``(ys, xs)`` (none beyond the
    frame's edge: 0 there)."""
    return np.max(_neighbours(np.pad(image, 1), ys, xs), 0)


def _neighbours(padded: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in _NEIGHBOURS])


def _neighbour_sum(image: np.ndarray) -> np.ndarray:
    """The sum of each pixel's eight neighbours (none beyond the frame's edge), float32."""
    rows = image.copy()
    rows[1:] += image[:-1]
    rows[:-1] += image[1:]
    total = rows.copy()
    total[:, 1:] += rows[:, :-1]
    total[:, :-1] += rows[:, 1:]
    total -= image
    return total
