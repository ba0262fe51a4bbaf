"""Samples of a camera's noise in a frame or a pair of frames, and the tests a pair
passes before its difference counts as noise (:mod:`._estimate` fits the camera to them).

A sample is a 4 x 4 block's level and noise power: from one frame, the power of its
pixels' curvature residuals (:func:`curvature_power`, which smooth structure barely
touches); from a pair, the power of the frames' difference over sqrt 2 (from a pair
whose scene moved, the difference's curvature residuals). Blocks whose noise the
camera model does not describe -- flat fills, saturated pixels, hot pixels and their
neighbours -- give none. A pair whose scene moved shows its structure in the difference;
:func:`still_ratio` and the line and wide-cell tests (:data:`LINE_MARGIN`) tell it from a
still pair, and from noise that neighbours share.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._floor import readout_step
from ._model import CameraModel
from ._spikes import find_spikes

BLOCK = 4
#: The offset comes from this percentile of a frame's block means (median over frames).
DARK_PERCENTILE = 0.5
#: For white noise, the median over 4 x 4 blocks of (power of the 16 values) / (power of
#: the 4 cells' residuals), measured over a million simulated blocks: a still pair's
#: :func:`still_ratio` is near 1 after dividing by it.
STILL_NULL_MEDIAN = 1.0922
#: A pair is still when its ratio is at most 1 + this, or 1 + 3.6 / sqrt(blocks) for
#: frames of fewer than 1296 blocks (its null spread is 0.9 / sqrt(blocks)). Measured
#: (128 x 128, one-off): still pairs of calcium movies 0.95-1.09 up to 300 photons (a
#: few bright transients reach 1.18 at 3,000), a new scene 1.4 at 10 photons, 6 at 100.
STILL_MARGIN = 0.1
#: A pair that fails that test is still after all when its blocks' power over the power
#: of their pixels' differences with the next one down, or with the next one across
#: (whichever is less; its median near 1 for white noise) is at most 1 + this: noise
#: that neighbours share along rows -- a two-photon amplifier's low-pass along the scan
#: line -- keeps its full power in the differences across rows, where the cells'
#: residuals lose most of it. Why (one-off probe, 128 x 128 pairs of the independent
#: generator, counts filtered along rows by 1-2-1 or a 4-pixel box): still pairs gave
#: the cell test 1.50-1.60 at 100 photons, so every pair read as moved and the gain came
#: out 0.079 for a true 1 at 30 photons; this test gives them 0.99-1.03, a new scene 1.08
#: at 10 photons (the cell test: 1.12) and 2.34 at 100. The same margin for the cells two
#: pixels wide (:func:`_wide_cell_power`): frames registered by bilinear sub-pixel shifts
#: gave the cells 1.56-3.59 and the lines 1.11-1.77 on still pairs, the wide cells
#: 1.01-1.03; a new scene 1.07-1.15 at 10 photons, 2.4-2.7 at 100.
LINE_MARGIN = 0.05
#: The frame's maximum is a saturation level when at least this fraction of its pixels
#: (and at least ``SATURATED_MIN_PIXELS``) hold it -- and, for readouts on steps (whole
#: counts: :func:`stream.camera.readout_step`), more than the step below it: readouts
#: pile up at a saturation level, while a dim frame of coarse counts (0.1 ADU per e-,
#: three values in all at 3 photons per pixel) repeats its maximum too, as the thinning
#: tail of its counts. Read as saturation, 8 % of such a
#: frame's pixels, the brightest, were left out of the fit.
SATURATED_FRACTION = 0.002
SATURATED_MIN_PIXELS = 8

#: chi-square with 4 degrees of freedom (a 4 x 4 block holds 4 cells of one residual
#: each, or 16 pixels of one difference each): median / mean, per samples averaged.
MEDIAN_OVER_MEAN = {4: 0.8392, 16: 0.9583}
#: The same for a 4 x 4 block's :func:`curvature_power` (16 overlapping residuals;
#: measured over 1.0 M simulated blocks of white noise).
CURVATURE_MEDIAN_OVER_MEAN = 0.8645


def _blocks(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    hb, wb = h // BLOCK, w // BLOCK
    return image[: hb * BLOCK, : wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK)


def blockwise_means(image: np.ndarray) -> np.ndarray:
    """Means over 4 x 4 blocks (float64), added from strided slices: numpy reduces a
    length-4 axis slowly (with that, the estimator's median update at 512 x 512 was 9.2 ms
    in ``benchmarks.camera_estimate_check``; 2.3-3.0 ms with this)."""
    h, w = image.shape
    return _group_sums(image[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK], BLOCK, BLOCK) / BLOCK**2


def _group_sums(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Sums over ``rows`` x ``columns`` groups of pixels (float64; the image's size a
    multiple of them), added from strided slices (see :func:`blockwise_means`)."""
    across = image[:, 0::columns].astype(np.float64)
    for j in range(1, columns):
        across += image[:, j::columns]
    total = across[0::rows].copy()
    for i in range(1, rows):
        total += across[i::rows]
    return total


def is_blank(blocks: np.ndarray) -> bool:
    """A frame of one level, or of no finite pixel, by its block means."""
    if blocks.size == 0:  # smaller than a block: nothing to tell
        return False
    finite = blocks[np.isfinite(blocks)]
    return finite.size == 0 or bool(finite.min() == finite.max())


def darkest_level(image: np.ndarray, block_means: np.ndarray | None = None) -> float:
    """The darkest 4 x 4 block means' level (their ``DARK_PERCENTILE``), which bounds the
    offset from above: one definition for the live estimate and for the training data
    that imitates it (``exporter.synth``). ``block_means``: the image's, if computed."""
    blocks = blockwise_means(image) if block_means is None else block_means
    values = blocks if blocks.size else np.asarray(image, dtype=np.float64)
    return float(np.percentile(values, DARK_PERCENTILE))


def neighbourhood(block_means: np.ndarray) -> np.ndarray:
    """Each block's mean over its 3 x 3 blocks: a level to bin by whose own noise is a
    third of one block's, so binning by it barely flattens the fitted slope."""
    if block_means.size == 0:  # a frame narrower than a block: no samples
        return block_means.astype(np.float64)
    padded = np.pad(block_means, 1, mode="edge")
    h, w = block_means.shape
    total = np.zeros((h, w))
    for i in range(3):
        for j in range(3):
            total += padded[i : i + h, j : j + w]
    return total / 9.0


def data_unit(frame: np.ndarray, power: np.ndarray) -> float:
    """A unit for the frame's values that puts its noise near 1: the fit works in it, so
    its floors mean the same for frames in ADU, in electrons or scaled to [0, 1] (in
    ADU, a gain floor of 1e-3 would be most of the noise of a frame scaled to [0, 1]).
    ``power``: the frame's :func:`spatial_samples` powers."""
    usable = power[np.isfinite(power) & (power > 0)]
    unit = math.sqrt(float(np.median(usable))) if usable.size else 0.0
    if not (math.isfinite(unit) and unit > 0):  # flat, or too small for a block
        values = np.asarray(frame, dtype=np.float64)
        values = values[np.isfinite(values)]
        unit = float(np.ptp(values)) if values.size else 0.0
    return unit if math.isfinite(unit) and unit > 0 else 1.0


def flat_blocks(frame: np.ndarray, floor: float | None = None) -> np.ndarray | None:
    """Per 4 x 4 block (raveled, in the frame's order), whether its 16 pixels hold one
    value (a masked, padded or zero-filled region) or it borders such a block (the
    region's edge runs through it: its pixels mix the fill with data); None when no
    block holds one value. Blocks all at ``floor`` (readouts clipped there, see
    :func:`stream.camera.floor_pixels`) are clipped noise, not a fill: the fit of a
    clipped camera needs them."""
    extremes = block_extremes(frame)
    if extremes is None:
        return None
    block_low, block_high = extremes
    flat = block_high == block_low
    if floor is not None:
        flat &= block_low != floor
    return _with_neighbours(flat) if flat.any() else None


def block_extremes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Each whole 4 x 4 block's least and greatest value (blocks by blocks); None for a
    frame smaller than a block. From strided slices: a length-4 axis reduces slowly
    (0.4 ms at 512 x 512, against 3.3 for ``reshape(...).min(axis=(1, 3))``)."""
    h, w = frame.shape
    cropped = frame[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    if cropped.size == 0:
        return None
    high, low = cropped[:, 0::BLOCK].copy(), cropped[:, 0::BLOCK].copy()
    for j in range(1, BLOCK):
        np.maximum(high, cropped[:, j::BLOCK], out=high)
        np.minimum(low, cropped[:, j::BLOCK], out=low)
    block_high, block_low = high[0::BLOCK].copy(), low[0::BLOCK].copy()
    for i in range(1, BLOCK):
        np.maximum(block_high, high[i::BLOCK], out=block_high)
        np.minimum(block_low, low[i::BLOCK], out=block_low)
    return block_low, block_high


def unread_blocks(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A frame's non-finite pixels (NaN: a masked field, dead or cut pixels) filled flat
    with the finite ones' mean (float32; the frame itself when all are finite), and per
    4 x 4 block (raveled), whether it or a block beside it holds one (None: none). A
    block only partly filled is not flat, but its fill has no noise: it would read as
    less noise than the camera's (3 NaN columns and a NaN row of 128 x 128: read noise
    1.6 ADU for 3.3, gain 1.86 +- 0.19 for 1.95 +- 0.04)."""
    if frame.dtype.kind != "f" or np.isfinite(frame.sum(dtype=np.float64)):
        return frame, None
    bad = ~np.isfinite(frame)
    filled = frame.astype(np.float32, copy=True)
    filled[bad] = float(frame[~bad].mean(dtype=np.float64)) if not bad.all() else 0.0
    extremes = block_extremes(bad.view(np.uint8))
    if extremes is None:
        return filled, None
    touched = extremes[1] > 0
    return filled, _with_neighbours(touched) if touched.any() else None


def _with_neighbours(blocks: np.ndarray) -> np.ndarray:
    """A 2-D block mask grown by one block each way, raveled: the blocks whose levels
    (3 x 3 block means) a marked block enters."""
    rows, columns = blocks.shape
    padded = np.pad(blocks, 1)
    near = np.zeros_like(blocks)
    for i in range(3):
        for j in range(3):
            near |= padded[i : i + rows, j : j + columns]
    return near.ravel()


def spike_blocks(frame: np.ndarray, camera: CameraModel) -> np.ndarray | None:
    """Per 4 x 4 block (raveled), whether it or a block beside it holds a spike (a hot
    pixel, a cosmic ray: :func:`stream.camera.find_spikes`, by ``camera``); None when
    the frame has none. A spike raises its block's level but not its noise."""
    h, w = frame.shape
    if h < BLOCK or w < BLOCK:
        return None
    centred = np.subtract(frame, camera.offset, dtype=np.float32)
    spikes = find_spikes(centred, camera.gain, camera.read_noise)
    if spikes is None:
        return None
    ys, xs = spikes
    rows, columns = h // BLOCK, w // BLOCK
    inside = (ys < rows * BLOCK) & (xs < columns * BLOCK)
    blocks = np.zeros((rows, columns), dtype=bool)
    blocks[ys[inside] // BLOCK, xs[inside] // BLOCK] = True
    return _with_neighbours(blocks)


def either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return b if a is None else a if b is None else a | b


def saturated_pixels(frame: np.ndarray, step: float | None = None) -> np.ndarray | None:
    """The pixels at the frame's saturation level; None when it shows none. A frame of
    one value is all at it (the engine gives such a frame back as it came).
    ``step``: the frame's :func:`stream.camera.readout_step`, if known."""
    top = frame.max()
    at_top = frame == top
    count = int(np.count_nonzero(at_top))
    if count < max(SATURATED_MIN_PIXELS, SATURATED_FRACTION * frame.size):
        return None
    if count == frame.size:
        return at_top
    step = readout_step(frame) if step is None else step
    if step > 0:  # readouts on steps: a thinning tail holds the step below at least as often
        high = float(top)
        below = (frame > high - 1.5 * step) & (frame < high - 0.5 * step)
        if np.count_nonzero(below) >= count:
            return None
    return at_top


def _drop_saturated(
    levels: np.ndarray, power: np.ndarray, saturated: np.ndarray | None
) -> np.ndarray:
    """``power`` (one value per block, raveled) NaN at blocks touching ``saturated`` and
    at every level from where such blocks begin (their 2nd percentile level: one outlier
    block must not take all): blocks near saturation that escaped it did so by drawing
    low noise, and would bias the power low; the level binned by does not select so."""
    if saturated is not None:
        touched = _blocks(saturated).any(axis=(1, 3)).ravel()
        if touched.any():
            power[touched | (levels >= np.percentile(levels[touched], 2))] = np.nan
    return power


def spatial_samples(
    frame: np.ndarray, saturated: np.ndarray | None = None, flat: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(local mean, noise-power estimate) pairs from one frame (float64); blocks at or
    above the level of saturation (``saturated`` pixels) and ``flat`` blocks
    (:func:`flat_blocks`) get a NaN power (dropped by the fit)."""
    means = neighbourhood(blockwise_means(np.asarray(frame, dtype=np.float64))).ravel()
    power = curvature_power(frame) / CURVATURE_MEDIAN_OVER_MEAN
    if flat is not None:
        power[flat] = np.nan
    return means, _drop_saturated(means, power, saturated)


def curvature_residuals(image: np.ndarray) -> np.ndarray:
    """Each pixel's curvature residual times 6 (float32; the pixels with all eight
    neighbours in the image: two rows and two columns fewer): the second difference
    down of the second difference across (:func:`curvature_power`)."""
    x = np.asarray(image, dtype=np.float32)
    down = x[1:-1] * np.float32(-2.0)  # in place from here: fewer frame-sized temporaries
    down += x[:-2]
    down += x[2:]
    r = down[:, 1:-1] * np.float32(-2.0)
    r += down[:, :-2]
    r += down[:, 2:]
    return r


def curvature_power(image: np.ndarray) -> np.ndarray:
    """Per 4 x 4 block (in the frame's order), the mean square of its pixels' curvature
    residuals: the second difference down of the second difference across, the kernel
    ``[1, -2, 1]`` by ``[1, -2, 1]`` over 36 (Immerkaer 1996), whose square has the
    noise's own variance for white noise. Only pixels with all eight neighbours in the
    frame have one (a block at the frame's edge takes 9 or 12).

    Why not the 2 x 2 cells' residuals (:func:`_cell_power`), as before 2026-12-05: they
    cancel a linear gradient only, and a scene's fine structure at high light read as
    noise (a held-out probe, a dense neuropil field blurred over 2 px at 1000 photons
    per pixel: gain 8.7 for a true 1.5, and ``na-lite``'s first frame 2.4 dB under its
    input); this kernel also cancels curvature along either axis, and its response to
    smooth structure is a few percent of theirs (gain 4.3 there, see the README)."""
    height, width = image.shape
    rows, columns = height // BLOCK * BLOCK, width // BLOCK * BLOCK
    r = curvature_residuals(image)
    np.square(r, out=r)
    squares = np.zeros((rows, columns), np.float32)
    last_row, last_column = min(height - 1, rows), min(width - 1, columns)
    squares[1:last_row, 1:last_column] = r[: last_row - 1, : last_column - 1]
    # residuals per block: 4 x 4, less the frame's outermost rows and columns
    per_row = np.diff(np.clip(np.arange(0, rows + 1, BLOCK), 1, last_row))
    per_column = np.diff(np.clip(np.arange(0, columns + 1, BLOCK), 1, last_column))
    counts = np.outer(per_row, per_column).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # a block with none: NaN, dropped
        return (_group_sums(squares, BLOCK, BLOCK) / (36.0 * counts)).ravel()


def _moved_power(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Per block, the :func:`curvature_power` of a moved pair's difference, ``previous``
    first moved by the whole pixels that best align it with ``frame``
    (:func:`_whole_pixel_shift`) where that leaves less power (NaN on blocks it does not
    cover), else as it came.

    Why: unaligned, the difference holds both frames' structure, read as noise: frames
    jittered 1-5 px every frame at 1000 photons per pixel (a held-out probe) were told
    gain 6 for 1.5 and came out 1.3 dB under their input. Structure moved by less than
    a pixel leaves an aligned difference little curvature. Either way the power is noise
    plus what structure is left, so the smaller one is nearer the noise."""
    plain = curvature_power(np.subtract(frame, previous, dtype=np.float32))
    height, width = frame.shape
    shift = _whole_pixel_shift(frame, previous)
    if shift is None:
        return plain
    here, there = _overlap(frame.shape, shift, BLOCK)  # the frame's whole blocks covered
    top, bottom, left, right = here[0].start, here[0].stop, here[1].start, here[1].stop
    if bottom - top < 2 * BLOCK or right - left < 2 * BLOCK:
        return plain
    difference = np.subtract(frame[here], previous[there], dtype=np.float32)
    aligned = np.full((height // BLOCK, width // BLOCK), np.nan)
    rows, columns = slice(top // BLOCK, bottom // BLOCK), slice(left // BLOCK, right // BLOCK)
    aligned[rows, columns] = curvature_power(difference).reshape(aligned[rows, columns].shape)
    covered = aligned[rows, columns]
    if np.nanmedian(covered) < np.nanmedian(plain.reshape(aligned.shape)[rows, columns]):
        return aligned.ravel()
    return plain


#: The shift between a moved pair's frames is looked for in their central part, this
#: many pixels a side at most: its phase correlation's cost stays that of a 256 x 256
#: frame (a few ms) whatever the frame's size, for shifts up to a quarter of it.
SHIFT_WINDOW = 256


def _whole_pixel_shift(
    frame: np.ndarray, previous: np.ndarray, side: int = SHIFT_WINDOW
) -> tuple[int, int] | None:
    """The shift (rows, columns) that moves ``previous`` onto ``frame`` best, by phase
    correlation over their central ``side`` pixels a side (tapered by a Hann
    window: untapered, the frames' edges, which wrap around in a Fourier transform, took
    the peak in most of 6 jittered calcium scenes at 1000 photons per pixel), then the
    least difference about its peak, within a quarter of the window either way; None for
    frames too small to say (under 16 px a side), with a non-finite pixel, or for no
    shift."""
    if min(frame.shape) < 16:
        return None
    window = _central(frame.shape, side)
    a = np.asarray(frame[window], dtype=np.float64)
    b = np.asarray(previous[window], dtype=np.float64)
    if not (np.isfinite(a.sum()) and np.isfinite(b.sum())):  # the service fills them first
        return None
    height, width = a.shape
    taper = np.outer(np.hanning(height), np.hanning(width))  # no edges' wrap-around
    cross = np.fft.rfft2((a - a.mean()) * taper) * np.conj(np.fft.rfft2((b - b.mean()) * taper))
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.fft.irfft2(cross, s=(height, width))
    peak_y, peak_x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy = int(peak_y) - height if peak_y > height // 2 else int(peak_y)
    dx = int(peak_x) - width if peak_x > width // 2 else int(peak_x)
    if abs(dy) > height // 4 or abs(dx) > width // 4:
        return None
    # the peak may sit a pixel off where noise rules the high frequencies: the shift is
    # the one of it and its eight neighbours that leaves the least difference
    dy, dx = min(
        ((dy + i, dx + j) for i in (-1, 0, 1) for j in (-1, 0, 1)),
        key=lambda shift: _mean_square_difference(a, b, *shift),
    )
    return None if (dy, dx) == (0, 0) else (dy, dx)


def _central(shape: tuple[int, ...], side: int) -> tuple[slice, ...]:
    """A frame's central ``side`` pixels a side (all of a smaller side)."""
    return tuple(
        slice((size - min(size, side)) // 2, (size + min(size, side)) // 2) for size in shape
    )


def _mean_square_difference(frame: np.ndarray, previous: np.ndarray, dy: int, dx: int) -> float:
    """The mean square of ``frame`` less ``previous`` moved by ``(dy, dx)``, where they
    overlap."""
    here, there = _overlap(frame.shape, (dy, dx))
    return float(np.mean(np.square(frame[here] - previous[there])))


_Window = tuple[slice, slice]


def _overlap(
    shape: tuple[int, ...], shift: tuple[int, int], step: int = 1
) -> tuple[_Window, _Window]:
    """Where a frame of ``shape`` and the one before it, moved by ``shift`` (rows,
    columns: ``frame[y, x]`` is ``previous[y - dy, x - dx]``), overlap: the frame's part
    (rounded inward to whole ``step`` s from its origin) and the previous frame's."""
    here, there = [], []
    for size, move in zip(shape, shift, strict=True):
        start = -(-max(move, 0) // step) * step
        stop = max(min(size, size + move) // step * step, start)
        here.append(slice(start, stop))
        there.append(slice(start - move, stop - move))
    return (here[0], here[1]), (there[0], there[1])


def _cell_power(difference: np.ndarray) -> np.ndarray:
    """Per 4 x 4 block, the mean square of its four 2 x 2 cells' residuals
    ``(a - b - c + d) / 2``: for white noise, the noise's own variance; a linear gradient
    does not touch it. float64, one value per block (blocks in the frame's order)."""
    h, w = difference.shape
    d = difference[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    rows = d[0::2] - d[1::2]  # whole rows: a - c beside b - d
    residual = rows[:, 0::2] - rows[:, 1::2]  # a - b - c + d
    np.square(residual, out=residual)
    cells = residual[0::2].astype(np.float64)
    cells += residual[1::2]
    return (cells[:, 0::2] + cells[:, 1::2]).ravel() / 16.0  # 4 cells, each halved


def _wide_cell_power(difference: np.ndarray) -> np.ndarray:
    """:func:`_cell_power` with the cells' corners two pixels apart: each 4 x 4 block
    holds four such interleaved cells. Noise that neighbours share over a pixel (a
    bilinear resampling) is independent two pixels apart."""
    h, w = difference.shape
    d = difference[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    total = np.zeros((h // BLOCK, w // BLOCK))
    for top in (0, 1):
        rows = d[top::BLOCK] - d[top + 2 :: BLOCK]  # rows two apart
        for left in (0, 1):
            residual = rows[:, left::BLOCK] - rows[:, left + 2 :: BLOCK]
            total += np.square(residual, dtype=np.float64)
    return total.ravel() / 16.0


def still_ratio(block_power: np.ndarray, cell_power: np.ndarray) -> tuple[float, float]:
    """(ratio, limit): the median over blocks of their power over their cells' residual
    power, divided by its median for white noise, and the largest ratio of a pair whose
    scene held still (see the module doc). Blocks without a finite, positive pair of
    powers (saturated, or flat) are left out; with fewer than 16 the ratio is 1."""
    usable = np.isfinite(block_power) & np.isfinite(cell_power) & (cell_power > 0)
    count = int(np.count_nonzero(usable))
    if count < 16:
        return 1.0, math.inf
    ratio = float(np.median(block_power[usable] / cell_power[usable])) / STILL_NULL_MEDIAN
    return ratio, 1.0 + max(STILL_MARGIN, 3.6 / math.sqrt(count))


def _line_ratio(difference: np.ndarray, block_power: np.ndarray) -> float:
    """The median over 4 x 4 blocks of ``block_power`` (the mean square of each block of
    ``difference``) over the mean square of the block's pixel differences with the next
    one down, halved, and the same with the next one across: the smaller of the two
    medians (:data:`LINE_MARGIN`)."""
    h, w = difference.shape
    d = difference[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    down = np.square(d[0::2] - d[1::2])  # pairs of rows: a block's 2 x 4 of them
    across = np.square(d[:, 0::2] - d[:, 1::2])  # pairs of columns: 4 x 2
    down_power = _group_sums(down, 2, BLOCK).ravel() / 16.0  # halved, over 8
    across_power = _group_sums(across, BLOCK, 2).ravel() / 16.0
    ratios = []
    for line_power in (down_power, across_power):
        usable = np.isfinite(block_power) & (line_power > 0)
        if np.count_nonzero(usable) < 16:
            return math.inf  # too few blocks to tell: the cell test decides
        ratios.append(float(np.median(block_power[usable] / line_power[usable])))
    return min(ratios)


def _pair_change(
    block_power: np.ndarray,
    cells: np.ndarray,
    difference: Callable[[], np.ndarray],
    frame: np.ndarray,
    previous: np.ndarray,
) -> str:
    """What a pair's difference shows: "still" by its cells' residuals
    (:func:`still_ratio`); "moved" where they say otherwise and so do its lines
    (:func:`_line_ratio`) and its wide cells (:func:`_wide_cell_power`); still with noise
    that neighbours share (:data:`LINE_MARGIN`) where either of those finds it still:
    "lined" along rows or columns (the lines), "shared" both ways (the wide cells) --
    unless a whole-pixel shift aligns the two frames (:func:`_aligned_by_shift`): then
    "moved". ``difference`` makes the difference again, for those tests only: the usual
    pair is still by its cells, and its caller squares its difference in place."""
    ratio, limit = still_ratio(block_power, cells)
    if ratio <= limit:
        return "still"
    again = difference()
    if _line_ratio(again, block_power) <= 1.0 + LINE_MARGIN:
        change = "lined"
    else:
        wide, _ = still_ratio(block_power, _wide_cell_power(again))
        change = "shared" if wide <= 1.0 + LINE_MARGIN else "moved"
    if change != "moved" and _aligned_by_shift(frame, previous):
        return "moved"
    return change


#: A pair whose whole-pixel shift (:func:`_whole_pixel_shift`) leaves at most this share
#: of its plain difference's mean square has moved, whatever its residuals' ratios say
#: (less still on small frames: :func:`_aligned_by_shift`).
#: Why (held-out probe, 2026-12-05: real images drifting a pixel a frame, 128 x 128, no
#: camera configured): a moving scene's difference is its gradient, smooth along the
#: motion's normal, and fine texture's gradient kept its power in the lines or the wide
#: cells as noise that neighbours share does -- a star field and gravel read "lined" and
#: "shared", their structure counted as noise (gain 15 for 2.2), and the output came out
#: 6-8 dB under its input. A still pair's best shift is none, or, where no structure
#: shows it, one that leaves the noise's power as it was, within its spread.
ALIGNED_SHARE = 0.9
#: That test looks at the frames' central pixels, this many a side at most: a stream
#: whose noise neighbours share takes it on every pair (a temporal model's every frame),
#: and over 128 x 128 pixels it costs a quarter of the full window's Fourier transforms,
#: for shifts up to 32 px.
ALIGN_WINDOW = 128
#: Standard deviations of a still pair's mean-square ratio (the best of nine shifts of
#: noise alone) the aligned difference must be under it by, where that is more than
#: ``1 - ALIGNED_SHARE``. Why (a reviewer's probe): flat still frames of 16-48 px with
#: noise shared along rows or both ways were called moved in up to 3 of 4 pairs at 0.9.
SPREAD_MARGIN = 5.0


def _aligned_by_shift(frame: np.ndarray, previous: np.ndarray) -> bool:
    """Whether moving ``previous`` by the whole pixels that best align it with ``frame``
    leaves at most :data:`ALIGNED_SHARE` of the mean square difference, over their
    central :data:`ALIGN_WINDOW` pixels (where they overlap), and is under it by
    :data:`SPREAD_MARGIN` times the ratio's spread for noise alone, ``sqrt(2 / n)`` for
    ``n`` pixels.

    Each difference is levelled first, its rows' and then its columns' medians taken
    out: a CMOS camera's row offsets, fresh every frame, make a still pair's difference
    a set of rows, and among a few hundred rows some shift finds ones whose offsets
    agree (a reviewer's probe: row noise at 1 photon per pixel, still pairs called
    moved twice as often as before, the estimate's gain 0.127 for 0.5).

    Non-finite pixels (NaN, a masked region) take their window's median first: the
    temporal ring's test gets the frame with them (a reviewer's probe: one NaN pixel
    turned the test off there, and a drifting star field came out under its input)."""
    window = _central(frame.shape, ALIGN_WINDOW)
    a, b = _finite_window(frame[window]), _finite_window(previous[window])
    shift = _whole_pixel_shift(a, b, ALIGN_WINDOW)
    if shift is None:
        return False
    here, there = _overlap(a.shape, shift)
    aligned = _levelled_mean_square(a[here] - b[there])
    plain = _levelled_mean_square(a[here] - b[here])
    pixels = a[here].size
    share = min(ALIGNED_SHARE, 1.0 - SPREAD_MARGIN * math.sqrt(2.0 / pixels))
    return aligned <= share * plain


def _finite_window(pixels: np.ndarray) -> np.ndarray:
    """A float64 copy of ``pixels``, its non-finite ones set to the finite ones' median
    (0 when none is finite)."""
    out = np.array(pixels, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = np.median(out[~bad]) if not bad.all() else 0.0
    return out


def _levelled_mean_square(difference: np.ndarray) -> float:
    """The mean square of ``difference`` less its rows' medians, then its columns'."""
    levelled = difference - np.median(difference, axis=1, keepdims=True)
    levelled -= np.median(levelled, axis=0, keepdims=True)
    return float(np.mean(np.square(levelled)))


def scene_moved(frame: np.ndarray, previous: np.ndarray, max_blocks: int = 4096) -> bool:
    """Whether the scene moved between two consecutive frames (:func:`still_ratio`),
    judged on at most about ``max_blocks`` blocks (evenly spaced rows of them, so the
    test costs a fraction of a frame at 512 x 512): a temporal model's ring of previous
    frames must not mix another scene into this one."""
    h, w = frame.shape
    rows, columns = h // BLOCK, w // BLOCK
    if rows == 0 or columns == 0 or previous.shape != frame.shape:
        return False
    step = max(1, math.ceil(rows * columns / max_blocks))

    def sampled(image: np.ndarray) -> np.ndarray:
        return image[: rows * BLOCK].reshape(rows, BLOCK, w)[::step].reshape(-1, w)

    def difference() -> np.ndarray:
        return np.subtract(sampled(frame), sampled(previous), dtype=np.float32)

    squared = difference()
    cells = _cell_power(squared)
    np.square(squared, out=squared)
    change = _pair_change(blockwise_means(squared).ravel(), cells, difference, frame, previous)
    return change == "moved"


def temporal_samples(
    frame: np.ndarray,
    previous: np.ndarray,
    level: np.ndarray | None = None,
    saturated: np.ndarray | None = None,
    flat: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(level, noise-power estimate, change) samples from two consecutive frames.

    ``level``: block means of an average of earlier frames to bin by (its noise is
    independent of this difference's); default: the two frames' own block means.
    ``saturated``: pixels saturated in either frame; blocks at or above their level get a
    NaN power, as do ``flat`` blocks (:func:`flat_blocks`). ``change``
    (:func:`_pair_change`): "moved" when the scene did not hold still between the frames
    -- the samples are then the cells' residual power of the difference at the two
    frames' own block means, whatever ``level`` says --, or "still", "lined" or "shared"
    when it held still.
    """

    def difference() -> np.ndarray:
        return np.subtract(frame, previous, dtype=np.float32)  # exact for counts

    squared = difference()
    cells = _cell_power(squared)
    np.square(squared, out=squared)
    power = blockwise_means(squared).ravel()
    change = _pair_change(power, cells, difference, frame, previous)
    moved = change == "moved"
    if moved or level is None:
        level = (blockwise_means(frame) + blockwise_means(previous)) / 2.0
    if moved:
        power = _moved_power(frame, previous) / (2.0 * CURVATURE_MEDIAN_OVER_MEAN)
    else:
        power /= 2.0 * MEDIAN_OVER_MEAN[16]
    if flat is not None:
        power[flat] = np.nan
    levels = np.array(level, dtype=np.float64).ravel()  # a copy: the caller's average moves on
    return levels, _drop_saturated(levels, power, saturated), change
