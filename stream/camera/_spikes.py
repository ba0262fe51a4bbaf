"""Isolated spikes: hot pixels, cosmic rays and other one-pixel defects of a camera.

A pixel far above every one of its neighbours is nothing a microscope's optics make at
or near Nyquist sampling (they leave a point's neighbours a third or more of its peak).
Two users of the test here:

- the engine, before a noise-adaptive model: a spike far above the scene (a hot pixel
  hundreds of noise sigmas above a dim calcium movie) is nothing the model was trained
  on, and it smeared it over its receptive field. With a tenth of a percent of hot
  pixels (a few hundred ADU each, Poisson like dark current) on the independent
  generator at 1 photon per pixel, ``na-lite`` gave 4.7 dB, scored 3 px away from every
  hot pixel, where the same movie without them gives 18.4. The engine fills such spikes
  with the median of their neighbours in every input plane (``stream.engine``, which
  also decides which spikes are far above the scene);
- the live camera estimate, which leaves their blocks out: a hot pixel raises its
  block's level but not its noise, and a tenth of a percent of them pulled the fitted
  gain to half the truth at 3 photons per pixel.

A spike is a pixel whose excess over the median of its eight neighbours is more than
``SIGMAS`` noise sigmas at that median's level (by the camera model) and more than
``MIN_PHOTONS`` photons' worth, while that median is below ``1 / RATIO`` of the pixel
(offset subtracted); a frame with more of them than ``MOST_SPIKES`` of its pixels (and
than ``FEW_SPIKES``) has none. Two or three hot pixels side by side still are (the median of
eight neighbours ignores them). A point source smaller than a pixel (undersampled
optics, a star field) is one too, which is why the engine fills only spikes far above
the scene's own bright level.

Spikes are given as index arrays ``(rows, columns)``, ready for fancy indexing: a frame
holds a handful at most, and a full mask would cost a pass over the frame to make and
another to read. The first test runs over the frame, the exact test on its few
candidates only: the engine's whole test took a median 1.41 ms at 512 x 512 and 0.59 ms
at 256 x 256 on a 2-vCPU VM (``python -m benchmarks.camera_estimate_check``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: A spike stands this many noise sigmas above its neighbours' median ...
SIGMAS = 6.0
#: ... and at least this many photons' worth (at low counts a few photons are many sigmas).
MIN_PHOTONS = 10.0
#: ... and that median is below this fraction of the spike's level.
RATIO = 4.0

#: More spikes than this share of the frame's pixels are no camera's defects (a camera's
#: hot pixels are a tenth of a percent or so) but the scene's own points, or a camera
#: estimate gone wrong: none are taken. Why (reviewer's probe, 128 x 128, a grid of 2 x 2
#: px beads 6 px apart at 100 photons): a first frame's estimate read the beads' edges
#: as a camera of almost no noise, 7 % of the pixels then passed for spikes, their blocks
#: left the fit with too few samples to mend the estimate, and the beads were filled away
#: frame after frame (5.3 dB worse than the input). One frame cannot tell a camera with
#: more (a percent of warm pixels) from a field of points a pixel wide: a series' pairs
#: can (:mod:`stream.camera._warm`).
MOST_SPIKES = 0.005
#: ... but a frame may always hold this many (a small frame, or region, with a few).
FEW_SPIKES = 16

SpikePolicy = Literal["correct", "pass", "off"]
SPIKE_POLICIES: tuple[SpikePolicy, ...] = ("correct", "pass", "off")

#: Spikes: (rows, columns) index arrays.
Spikes = tuple[np.ndarray, np.ndarray]

_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def find_spikes(
    centred: np.ndarray, gain: float, read_noise: float, most: float = MOST_SPIKES
) -> Spikes | None:
    """The spikes of an offset-subtracted frame, None when it has none (or more than
    ``most`` of its pixels).

    ``gain`` and ``read_noise``: the camera in the frame's units (ADU per photon, ADU).
    """
    padded = np.pad(np.asarray(centred, dtype=np.float32), 1, mode="edge")
    # first test, on every pixel: its excess over the mean of its four nearest
    # neighbours (a spike's neighbours are dark, so it passes this one too), squared
    # against the threshold squared (no square root over the frame)
    level = np.add(padded[:-2, 1:-1], padded[2:, 1:-1])
    level += padded[1:-1, :-2]
    level += padded[1:-1, 2:]
    level *= 0.25
    excess = padded[1:-1, 1:-1] - level
    candidates = excess > MIN_PHOTONS * gain
    if not candidates.any():
        return None
    np.maximum(level, 0, out=level)
    level *= SIGMAS * SIGMAS * gain
    level += (SIGMAS * read_noise) ** 2
    np.square(excess, out=excess)
    candidates &= excess > level
    index = np.flatnonzero(candidates)
    if index.size == 0:
        return None
    # the exact test on the few candidates: over the median of all eight neighbours
    ys, xs = np.divmod(index, centred.shape[1])
    around = np.sort(np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in _NEIGHBOURS]), 0)
    median = (around[3] + around[4]) / 2
    value = padded[ys + 1, xs + 1]
    sigma = np.sqrt(gain * np.maximum(median, 0) + read_noise * read_noise)
    spike = value - median > np.maximum(SIGMAS * sigma, MIN_PHOTONS * gain)
    spike &= value > RATIO * np.maximum(median, 0)
    found = int(np.count_nonzero(spike))
    if found == 0 or found > max(most * centred.size, FEW_SPIKES):
        return None
    return ys[spike], xs[spike]


def spike_fills(plane: np.ndarray, spikes: Spikes) -> np.ndarray:
    """For each spike of ``plane``: the median of its neighbours that are not spikes
    (its own value when all eight are). Float64, in the spikes' order."""
    ys, xs = spikes
    h, w = plane.shape
    rows = [np.clip(ys + dy, 0, h - 1) for dy, _ in _NEIGHBOURS]  # edges repeat, as
    cols = [np.clip(xs + dx, 0, w - 1) for _, dx in _NEIGHBOURS]  # the engine pads
    values = np.stack([plane[r, c] for r, c in zip(rows, cols, strict=True)]).astype(np.float64)
    flat = ys.astype(np.int64) * w + xs
    others = np.stack(
        [np.isin(r.astype(np.int64) * w + c, flat) for r, c in zip(rows, cols, strict=True)]
    )
    values[others] = np.inf
    values.sort(axis=0)  # the spikes among the neighbours last
    count = np.count_nonzero(np.isfinite(values), axis=0)
    low = np.take_along_axis(values, (np.maximum(count, 1) - 1)[None] // 2, axis=0)[0]
    high = np.take_along_axis(values, np.maximum(count, 1)[None] // 2, axis=0)[0]
    fill = plane[ys, xs].astype(np.float64)
    usable = count > 0
    fill[usable] = (low[usable] + high[usable]) / 2
    return fill


def fill_spikes(plane: np.ndarray, spikes: Spikes) -> None:
    """Replace each spike of ``plane`` (in place) by :func:`spike_fills`."""
    plane[spikes] = spike_fills(plane, spikes)
