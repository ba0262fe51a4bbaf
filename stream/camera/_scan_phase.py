"""A bidirectional scan's phase: every other line displaced along the line.

A resonant two-photon microscope scans its lines both ways. When the line clock's phase
is off, the lines scanned one way land a pixel or more away from the lines scanned the
other way: every object comes out with a comb on its edges. To a model the comb is a
fine structure or noise; it smooths it, and bright frames came out worse than they went
in (`na-lite`, one-off probe, 10-frame 128 x 128 calcium movies, odd lines 3 px behind:
37.15 / 37.75 dB out at 300 / 1000 photons per pixel for 42.56 / 47.95 in).

Finding it: each odd line, moved by ``k`` px along itself, against the mean of the even
lines above and below it (each less its mean, after the best gain between them, on lines
median-filtered over 3 px). A scene's own structure (a diagonal edge, a fibre) fits the
odd line moved either way alike; only a displacement between the two scan directions
fits one way: the lag is the ``k`` that fits best, by :data:`LAG_Z` standard errors over
the series' lines against ``k = 0``, ``-k`` and ``k +- 1``. On the same movies it is
found from the first frame or two at 10 photons and above, after 9-11 frames at 3; none
was found on 15 other scene kinds and the evaluation's generators at 1 to 10,000
photons, nor on odd lines 1-10 % brighter across a gradient, nor with a hot pixel in a
combed frame (a fresh-eyes review's probes).

Serving it: the engine is shown the frame with its odd lines moved back (a frame |k| px
wider, the pixels no line reaches as NaN), and its output is moved the same way back:
the denoised frame keeps the comb where it came. The same movies: 46.77 / 50.70 dB at
300 / 1000 photons with a 3 px lag, 46.75 / 50.79 with 2 px (41.59 / 44.23 before).
"""

from __future__ import annotations

import math

import numpy as np

#: Lags looked at: -MAX_LAG to MAX_LAG px.
MAX_LAG = 4
#: A lag is taken when it fits better than no lag and than the opposite lag by this many
#: standard errors (lines taken as independent).
LAG_Z = 5.0
#: Frames of a series looked at; then what was found stands.
SEARCH_FRAMES = 16
#: Frames with fewer lines, or lines shorter than this, are not searched.
SMALLEST = 16


class ScanPhase:
    """Finds a series' scan phase lag from its first frames (:data:`SEARCH_FRAMES`)."""

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, shape: tuple[int, ...] | None) -> None:
        self.shape = shape
        self.lag = 0  # px the odd lines lie behind the even ones (+: further along)
        self.frames = 0
        self._errors: np.ndarray | None = None  # lags x odd lines, summed over frames

    @property
    def done(self) -> bool:
        return self.lag != 0 or self.frames >= SEARCH_FRAMES

    def add(self, frame: np.ndarray) -> None:
        """Look at a series' next frame (finite), until a lag is found or the search ends."""
        if frame.shape != self.shape:  # a new frame size: another scan
            self._reset(frame.shape)
        if self.done or frame.ndim != 2 or min(frame.shape) < SMALLEST:
            return
        errors = _line_errors(np.asarray(frame, dtype=np.float32))
        self._errors = errors if self._errors is None else self._errors + errors
        self.frames += 1
        # each line's errors averaged over the frames, tested over the lines: a still
        # scene's own slight asymmetry repeats in every frame and is no new evidence
        # (pooled as separate samples, short diagonal dashes read as a lag by frame 5)
        self.lag = _lag(self._errors / self.frames)
        if self.done:
            self._errors = None


def _line_errors(frame: np.ndarray) -> np.ndarray:
    """(lags, odd lines): how far each interior odd line, moved by each lag, is from the
    mean of the even lines either side of it, each less its mean and after the best gain
    between them (so an offset or a gain between the two scan directions does not read as
    a lag: across a gradient, odd lines 3 % brighter read as 3 px), on the lines
    median-filtered over 3 px (a hot pixel decided the lag alone)."""
    left, middle, right = frame[:, :-2], frame[:, 1:-1], frame[:, 2:]
    lines3 = np.maximum(np.minimum(left, middle), np.minimum(np.maximum(left, middle), right))
    height, width = lines3.shape
    odd = lines3[1 : height - 1 : 2]
    count = odd.shape[0]
    between = 0.5 * (lines3[0 : 2 * count : 2] + lines3[2 : 2 * count + 1 : 2])
    inner = between[:, MAX_LAG : width - MAX_LAG].astype(np.float64)
    inner -= inner.mean(axis=1, keepdims=True)
    power = np.einsum("ij,ij->i", inner, inner)
    errors = np.empty((2 * MAX_LAG + 1, count), dtype=np.float64)
    for i, lag in enumerate(range(-MAX_LAG, MAX_LAG + 1)):
        moved = odd[:, MAX_LAG + lag : width - MAX_LAG + lag].astype(np.float64)
        moved -= moved.mean(axis=1, keepdims=True)
        shared = np.einsum("ij,ij->i", moved, inner)
        own = np.einsum("ij,ij->i", moved, moved)
        fitted = np.divide(shared * shared, power, out=np.zeros(count), where=power > 0)
        errors[i] = (own - fitted) / inner.shape[1]
    return errors


def _lag(errors: np.ndarray) -> int:
    """The lag the lines' errors show (0: none, or not clearly): the best fit, better by
    :data:`LAG_Z` standard errors than no lag, than the opposite lag and than the lags
    beside it (noise picked a lag 1 px off in half of 3-photon series)."""
    means = errors.mean(axis=1)
    best = int(np.argmin(means)) - MAX_LAG
    if best == 0 or errors.shape[1] < 3:
        return 0
    fitted = errors[best + MAX_LAG]
    rivals = {0, -best, best - 1, best + 1} - {best}
    for other in sorted(r for r in rivals if abs(r) <= MAX_LAG):
        gain = errors[other + MAX_LAG] - fitted
        spread = float(gain.std(ddof=1))
        if not (spread > 0 and gain.mean() > LAG_Z * spread / math.sqrt(gain.size)):
            return 0
    return best


def aligned(frame: np.ndarray, lag: int) -> np.ndarray:
    """The frame with its odd lines moved back by ``lag`` px: a float32 frame ``|lag|``
    px wider, NaN where no line reaches."""
    height, width = frame.shape
    out = np.full((height, width + abs(lag)), np.nan, dtype=np.float32)
    even_at, odd_at = (lag, 0) if lag >= 0 else (0, -lag)
    out[0::2, even_at : even_at + width] = frame[0::2]
    out[1::2, odd_at : odd_at + width] = frame[1::2]
    return out


def unaligned(frame: np.ndarray, lag: int, width: int) -> np.ndarray:
    """:func:`aligned` undone: the lines moved to where they came, ``width`` px wide."""
    out = np.empty((frame.shape[0], width), dtype=frame.dtype)
    even_at, odd_at = (lag, 0) if lag >= 0 else (0, -lag)
    out[0::2] = frame[0::2, even_at : even_at + width]
    out[1::2] = frame[1::2, odd_at : odd_at + width]
    return out


def unaligned_pixels(
    pixels: tuple[np.ndarray, np.ndarray], lag: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (rows, columns) of an :func:`aligned` frame, where they lie in the frame
    ``width`` px wide it came from (those no line reaches left out)."""
    ys, xs = pixels
    even_at, odd_at = (lag, 0) if lag >= 0 else (0, -lag)
    raw = xs - np.where(ys % 2 == 0, even_at, odd_at)
    inside = (raw >= 0) & (raw < width)
    return ys[inside], raw[inside]
