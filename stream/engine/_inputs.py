"""What a noise-adaptive model sees: frames in model units and a noise map.

One definition, used by the engine on every live frame and by the exporter on every
training patch, so a model is trained on exactly what it will be given:

- ``offset`` is subtracted (the camera's bias, configured or estimated live);
- the frames are divided by a *frame scale*: the 99.5th percentile of the current frame's
  4 x 4 block means (block means, so the scale follows the signal, not the noise), never
  below ``max(3 read, gain)`` so a dark frame does not blow its noise up;
- the noise map is the Poisson-Gaussian standard deviation of each pixel of the current
  frame, ``sqrt(gain * max(x - offset, 0) + read**2)``, divided by the same scale.

The scale is recomputed per frame: a model that sees images around [0, 1] with noise
levels from about 0.01 to 1 serves a photon budget from 1 to 1000 photons per pixel
and any camera gain alike.
"""

from __future__ import annotations

import math

import numpy as np

from ..camera import CameraModel, Spikes, find_spikes, spike_fills

#: Side of the blocks whose means set the frame scale.
SCALE_BLOCK = 4
#: Percentile of the block means taken as the frame scale.
SCALE_PERCENTILE = 99.5
#: A pixel more than this many read-noise sigmas below the camera's offset is a defect
#: (:func:`holes`). Why (the evaluation's camera with 1 % of its pixels read at 5-20 e-,
#: the rest at 1.5 e-, 0.5 ADU per e-; with the true camera, 4 frames of independent,
#: textures and phantom at 1-1000 photons): 5 sigmas took 15-197 pixels, all of them
#: those noisy pixels; on six cameras without them (0.05-3 e-, an EMCCD among them), none.
HOLE_SIGMAS = 6.0
#: The read noise is read from the frame's pixels below the offset only where there are
#: at least this many ...
HOLE_MIN_BELOW = 64
#: ... and more holes than this share of the frame's pixels are no camera's defects (an
#: offset read too high: the scene's own dark pixels): none are taken; ...
MOST_HOLES = 0.01
#: ... nor more than this share of the pixels below the offset: where it is right, read
#: noise puts half of the dark pixels below it, and the defects are a few of them. Why (a
#: reviewer's probe, 2026-12-06: a bright field with 0.5 % of its pixels single black
#: points, 80-500 photons, no camera configured): the first frames' estimate put the
#: offset at the dim parts of the field (241 ADU for 100), the black points read as
#: holes, 31 % of the 266 pixels below it, and were filled from their bright neighbours
#: (the movie 0.1-4.4 dB under the code before); on the noisy-pixel camera at 1-100
#: photons, holes were at most 6 % of them.
MOST_HOLES_BELOW = 0.1
#: A one-pixel spike more than this many times the frame's bright level (without its
#: spikes) is a defect the model must not see; below it, a point of the scene.
DEFECT_OVER_SCENE = 4.0


def block_levels(centred: np.ndarray) -> np.ndarray:
    """The 4 x 4 block means of an offset-subtracted frame (its pixels when smaller than
    a block): what :func:`bright_level` takes a percentile of."""
    h, w = centred.shape
    b = SCALE_BLOCK
    hb, wb = h // b, w // b
    if hb and wb:
        return centred[: hb * b, : wb * b].reshape(hb, b, wb, b).mean(axis=(1, 3))
    return centred


def level_of(blocks: np.ndarray) -> float:
    """The ``SCALE_PERCENTILE`` of :func:`block_levels`; NaN if non-finite."""
    flat = blocks.ravel()
    k = min(flat.size - 1, round(SCALE_PERCENTILE / 100 * (flat.size - 1)))
    return float(np.partition(flat, k)[k])


def bright_level(centred: np.ndarray) -> float:
    """The bright structure of an offset-subtracted frame: the 99.5th percentile of its
    4 x 4 block means (of its pixels when smaller than a block); NaN if non-finite."""
    return level_of(block_levels(centred))


#: A frame's *dim part* is denoised at its own scale (a second pass of the model) when its
#: bright level is more than this many times the 90th percentile of its block means: on
#: the generated training scenes that ratio is 2.1 at the median and over 30 in about 1 %
#: (with signal in the 90th-percentile blocks); the evaluation's generators 1.7-2.6.
HDR_RATIO = 30.0
#: The dim part's scale, in 90th percentiles of the block means (a training scene's
#: bright level is 2.1 of them at the median).
HDR_DIM_TOP = 2.5
#: The dim pass sees the frame clipped here, in its own scale: within the light a scale
#: of 1 stands for, not the bright part's hundreds.
HDR_CLIP = 3.0
#: Its output is taken whole where the scene (the first output) is below this, in its
#: scale, and not at all from HDR_CLIP up, linearly between.
HDR_TAKE_BELOW = 1.5


def dim_part_level(blocks: np.ndarray, top: float, gain: float, read_noise: float) -> float | None:
    """The level to denoise a high-dynamic-range frame's dim part at (None: one scale
    serves the frame): :data:`HDR_DIM_TOP` times its blocks' 90th percentile, when the
    bright level ``top`` is over :data:`HDR_RATIO` times that percentile and the
    percentile stands out of a block mean's noise (a dark background of read noise
    alone is what the training scenes had beside their bright structure).

    Why: the model sees the frame divided by its bright level, and a dim part hundreds of
    times below it sits at a light the model was hardly trained at; it was left noisy
    (one-off probe, ``na-lite``, blurred discs over 2 % of a 256 x 256 calcium frame at
    100 x its 99.5th percentile: the background away from them 23.2 / 24.6 / 27.2 dB at 3
    / 10 / 30 photons with one scale, 26.8 / 30.9 / 35.0 with its own; README, "A dim part
    far below a bright one").
    """
    flat = blocks.ravel()
    k = round(0.9 * (flat.size - 1))
    p90 = float(np.partition(flat, k)[k])  # a partial sort, as level_of takes the top
    if not (np.isfinite(top) and np.isfinite(p90)) or p90 <= 0 or top <= HDR_RATIO * p90:
        return None
    block_noise = float(np.sqrt(gain * p90 + read_noise * read_noise)) / SCALE_BLOCK
    if p90 < 2.0 * block_noise:
        return None
    return HDR_DIM_TOP * p90


def dim_part_weight(scene: np.ndarray, dim_scale: float) -> np.ndarray:
    """How much of the dim pass to take at each pixel of an offset-subtracted ``scene``
    (the first pass's output): 1 below :data:`HDR_TAKE_BELOW` times ``dim_scale``, 0
    from :data:`HDR_CLIP` times it, where the dim pass saw its input clipped."""
    top = np.float32(HDR_CLIP * dim_scale)
    weight = (top - scene) / np.float32((HDR_CLIP - HDR_TAKE_BELOW) * dim_scale)
    np.clip(weight, 0.0, 1.0, out=weight)
    return weight


def defect_spikes(
    centred: np.ndarray, gain: float, read_noise: float, blocks: np.ndarray | None = None
) -> Spikes | None:
    """The one-pixel spikes of an offset-subtracted frame (:func:`stream.camera.find_spikes`)
    that are defects: brighter than ``DEFECT_OVER_SCENE`` times the frame's bright level
    without them (None: none). ``blocks``: the frame's :func:`block_levels`, if computed.

    A hot pixel hundreds of noise sigmas above a dim scene is far outside anything the
    model was trained on and it smears it over its receptive field; a point of the
    scene (a star, a punctum: within a few times the scene's bright level, as the
    ``textures`` generator's single-pixel stars are, at 0.3-2x) it was trained on, and
    it keeps. Measured (one-off): hot pixels of 100 photons stand 26-39x above a calcium
    movie's bright level at 1 photon per pixel, 3.7-5.9x at 10, 1.6-2.2x at 30.
    """
    spikes = find_spikes(centred, gain, read_noise)
    if spikes is None:
        return None
    ys, xs = spikes
    value = centred[ys, xs]
    excess = value - spike_fills(centred, spikes)
    # the bright level without the spikes: their excess taken out of their blocks
    levels = (block_levels(centred) if blocks is None else blocks).astype(np.float64)
    if levels.shape == centred.shape:  # smaller than a block: the pixels themselves
        levels[ys, xs] -= excess
    else:
        inside = (ys < levels.shape[0] * SCALE_BLOCK) & (xs < levels.shape[1] * SCALE_BLOCK)
        where = (ys[inside] // SCALE_BLOCK, xs[inside] // SCALE_BLOCK)
        np.subtract.at(levels, where, excess[inside] / SCALE_BLOCK**2)
    defect = value > DEFECT_OVER_SCENE * max(level_of(levels), 0.0)
    if defect.any():  # a point the optics drew spills light into its four neighbours
        defect &= ~_spilled(centred, spikes, excess, gain, read_noise)
    return (ys[defect], xs[defect]) if defect.any() else None


def holes(centred: np.ndarray, read_noise: float) -> Spikes | None:
    """The pixels of an offset-subtracted frame more than :data:`HOLE_SIGMAS` of the
    read noise below the offset (None: none): light only adds to a pixel and read noise
    is the only noise that takes one below its offset, so such a pixel is a defect -- a
    noisy pixel's swing (an sCMOS pixel whose own read noise is 5-20 e-: the search for
    them needs pairs of frames, and finds the worst first), telegraph noise, a dead
    pixel. Filled as the spikes are (:func:`defect_spikes`). The read noise is the one
    told, or where more, the one the frame's pixels below the offset show (their median
    depth is 0.674 sigma for Gaussian read noise): a live estimate whose gain took the
    read noise in (an EMCCD's, at a floor of 0.3 ADU for 10) would take every dark
    pixel for a hole. None too where holes are many (:data:`MOST_HOLES`,
    :data:`MOST_HOLES_BELOW`): the offset is read too high. ``read_noise``: in the
    frame's units."""
    bar = -HOLE_SIGMAS * read_noise
    if not float(np.min(centred)) < bar:  # the usual frame: no pass beyond the minimum
        return None
    below = centred[centred < 0]
    if below.size < HOLE_MIN_BELOW:
        return None
    sigma = max(read_noise, float(np.median(below)) / -0.6745)
    ys, xs = np.nonzero(centred < np.float32(-HOLE_SIGMAS * sigma))
    if ys.size == 0 or ys.size > min(MOST_HOLES * centred.size, MOST_HOLES_BELOW * below.size):
        return None
    return ys, xs


def joined(spikes: Spikes | None, more: Spikes | None) -> Spikes | None:
    """Two sets of pixels as one (the sets apart: spikes stand above their neighbours,
    holes below the offset)."""
    if spikes is None or more is None:
        return spikes if more is None else more
    return np.concatenate((spikes[0], more[0])), np.concatenate((spikes[1], more[1]))


#: A spike whose four nearest neighbours (their median) stand above the ring two pixels
#: out by this share of its excess, and by this many sigmas of that median's noise, is
#: a point the optics drew (an undersampled star or bead), not a camera's defect: a hot
#: pixel's or a cosmic ray's neighbours hold the scene alone. A Gaussian spot of 0.47
#: px sigma leaves its nearest neighbours a tenth of its peak.
SPILL_SHARE = 0.05
SPILL_SIGMAS = 4.0


def _spilled(
    centred: np.ndarray, spikes: Spikes, excess: np.ndarray, gain: float, read_noise: float
) -> np.ndarray:
    """Per spike: whether its light spills into its four nearest neighbours
    (:data:`SPILL_SHARE`; pixels off the frame do not count, and a spike with fewer than
    two neighbours on it is a defect). One hot pixel beside another does not move the
    median; a row of three, or a 2 x 2 cluster, does: their inner pixels are left to the
    model (a known limit). Why: a field of stars 0.35-0.45 px wide (a sigma), 30-150
    times a dim scene's light, had every star filled away as a hot pixel; the output
    was 3-23 dB worse than its input, and 8-10 dB better with the stars left to the
    model (one-off probe, ``na-lite``, 128 x 128, 3-100 photons per pixel)."""
    ys, xs = spikes
    h, w = centred.shape

    def at(dy: int, dx: int) -> np.ndarray:
        y, x = ys + dy, xs + dx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        values = centred[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].astype(np.float64)
        return np.where(inside, values, np.nan)

    near = np.stack([at(-1, 0), at(1, 0), at(0, -1), at(0, 1)])
    ring = np.stack(
        [at(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]
    )
    counted = (np.count_nonzero(np.isfinite(near), axis=0) >= 2) & (
        np.count_nonzero(np.isfinite(ring), axis=0) >= 4
    )
    spilled = np.zeros(ys.shape, bool)
    if not counted.any():
        return spilled
    spill = np.nanmedian(near[:, counted], axis=0)
    background = np.nanmedian(ring[:, counted], axis=0)
    spill -= background
    # the median of a few values has about 0.6 of one value's noise
    noise = 0.6 * np.sqrt(gain * np.maximum(background, 0.0) + read_noise * read_noise)
    spilled[counted] = (spill > SPILL_SHARE * excess[counted]) & (spill > SPILL_SIGMAS * noise)
    return spilled


def scale_from(top: float, gain: float, read_noise: float) -> float:
    """The frame scale from a frame's :func:`bright_level`: it, or the floor (in the
    frame's own unit, whatever it is: an absolute floor of 1e-6 took over for frames in
    units of 1e-10 of a count, and the model saw them 100 times too dark)."""
    floor = max(3.0 * read_noise, gain)
    if not floor > 0.0:  # no noise at all: any positive scale will do
        floor = 1.0
    return top if np.isfinite(top) and top > floor else floor


def frame_scale(centred: np.ndarray, gain: float, read_noise: float) -> float:
    """The frame scale of an offset-subtracted frame (see the module doc).

    Cost at 256 x 256: one block-mean pass and a partial sort of 4096 values, about 0.1 ms.
    """
    return scale_from(bright_level(centred), gain, read_noise)


def snr_at(top: float, gain: float, read_noise: float) -> float:
    """Poisson-Gaussian signal-to-noise ratio of one pixel at level ``top`` (0 if dark)."""
    if not np.isfinite(top) or top <= 0:
        return 0.0
    noise = float(np.sqrt(gain * top + read_noise * read_noise))
    return top / noise if noise > 0.0 else math.inf


def peak_snr(centred: np.ndarray, gain: float, read_noise: float) -> float:
    """Signal-to-noise ratio of one pixel at the frame's bright level: how much light
    there is, whatever the camera (0 for a dark frame)."""
    return snr_at(bright_level(centred), gain, read_noise)


def fill_noise_map(
    centred: np.ndarray, gain: float, read_noise: float, scale: float, out: np.ndarray
) -> None:
    """``out = sqrt(gain * max(centred, 0) + read**2) / scale``, in place (no allocation)."""
    np.maximum(centred, 0.0, out=out)
    out *= np.float32(gain)
    out += np.float32(read_noise * read_noise)
    np.sqrt(out, out=out)
    out *= np.float32(1.0 / scale)


def update_running_mean(mean: np.ndarray, frame: np.ndarray, decay: float, count: int) -> None:
    """Take ``frame`` into ``mean`` in place, in float32, as the ``count``-th frame
    (counting from 1, the frame that started the mean): ``mean += w * (frame - mean)``
    with ``w = max(decay, 1 / count)``. The plain mean of the frames so far until it
    holds ``1 / decay`` of them, exponential after that: a young series' mean is then
    as clean as its frames allow, not dominated by its first frame. One definition for
    the engine and the training data (the model contract's running mean)."""
    weight = max(decay, 1.0 / count)
    mean *= np.float32(1.0 - weight)
    mean += np.float32(weight) * frame.astype(np.float32, copy=False)


def model_input(
    frames: np.ndarray,
    camera: CameraModel,
    noise_map: bool,
    out: np.ndarray | None = None,
    running_mean: np.ndarray | None = None,
) -> float:
    """Fill ``out`` (C, H, W) with a model's input for ``frames`` (K, H, W), oldest first.

    Channels: the K frames in model units, then the noise map of the current (last)
    frame when ``noise_map``, then ``running_mean`` (H, W; raw units, like the frames)
    in model units when given. Returns the scale (model units -> ADU above the
    offset). The engine builds the same values in its tile buffers with the same
    operations.
    """
    k = frames.shape[0]
    if out is None:
        channels = k + int(noise_map) + int(running_mean is not None)
        out = np.empty((channels, *frames.shape[1:]), np.float32)
    offset = np.float32(camera.offset)
    for i in range(k):
        np.subtract(frames[i], offset, out=out[i], dtype=np.float32, casting="unsafe")
    scale = frame_scale(out[k - 1], camera.gain, camera.read_noise)
    if noise_map:
        fill_noise_map(out[k - 1], camera.gain, camera.read_noise, scale, out[k])
    inverse = np.float32(1.0 / scale)
    out[:k] *= inverse
    if running_mean is not None:
        mean = out[k + int(noise_map)]
        np.subtract(running_mean, offset, out=mean, dtype=np.float32, casting="unsafe")
        mean *= inverse
    return scale
