"""A live estimate of the camera's noise from the stream itself.

When no camera is configured the service still has to tell a noise-adaptive model how
noisy each pixel is. A Poisson-Gaussian camera has a linear mean-variance relation,
``var = gain * (mean - offset) + read**2``, so:

- **First frame (spatial).** Each 2 x 2 cell gives a residual ``(a - b - c + d) / 2``
  whose variance is the noise variance and which a linear gradient does not touch;
  4 x 4 blocks give (mean, residual power) samples.
- **Later frames (temporal).** The difference of two consecutive frames, divided by
  sqrt 2, has the noise variance wherever the scene did not change; its 4 x 4 blocks
  give (mean of the two frames, power) samples, pooled over the frames seen so far
  (up to a reservoir of recent samples), far more than one frame gives. They replace the
  first frame's estimate as soon as there are enough (usually with the second frame):
  sharp structure (stars, puncta) makes one frame's residuals look noisier where it is
  brighter (gain 2.2-2.5 for a true 1 in ``tests/camera``); a difference does not see it.
- **Moved scenes.** A difference is noise only where the scene held still. When it did
  not -- the stage or the focus moved, a new field, a z-stack, frames of unrelated
  scenes -- the difference holds the scenes' structure, read as noise: gain 13 for a true
  1.3 at 100 photons with a new scene every frame, and ``na-lite`` told so ended 6.4 dB
  below its input at 1000 photons (``deepdenoise evaluate --generators fields``). So
  each pair is tested first (:func:`still_ratio`): a difference of noise has the same
  power over a 4 x 4 block as over its 2 x 2 cells' residuals, which cancel smooth
  structure; a moved scene makes the first larger -- as does noise that neighbours
  share (a two-photon amplifier's low-pass along the scan line), which the cells'
  residuals cancel, so a pair they call moved must also show it against its pixels'
  differences across rows and across columns, and against cells two pixels wide, where
  noise mixed over a pixel both ways (frames registered by sub-pixel shifts) is
  independent (:data:`LINE_MARGIN`; the estimate counts the latter pairs as ``shared``,
  and a series whose pairs are mostly so is served without the blend). A moved pair gives
  samples of its cells' residual power at its own level (like a first frame's, whose
  structure it mostly cancels), adds nothing to the offset's skew, and restarts the
  average its successors are binned by.
- **Fit.** Samples are binned by mean (equal counts per bin); the median power per bin,
  corrected for the median of a chi-square, resists edges and calcium transients; a
  weighted least-squares line through the bins gives slope (gain) and intercept.
- **Regression dilution.** The levels binned by are themselves noisy (an average of the
  frames so far), which flattens the fitted slope by the reliability ``var(true level) /
  var(level)`` -- at one photon per pixel, to a quarter of the gain. Each sample keeps its
  level's noise factor (sum of squared frame weights / 16 pixels), so the level noise is
  known from the fitted line itself; the slope is divided by the reliability (iterated,
  the line turned about its weighted centroid).
- **Offset.** Mean and variance cannot tell offset from read noise (both sit in the
  intercept, which is kept exactly, so the noise map is right either way). The darkest
  4 x 4 block means (0.5th percentile) bound the offset from above; once three
  consecutive frames have come, the skew of the shot noise places it within that bound
  (``stream.camera._offset``: Poisson counts are skewed, read noise is not), bounded
  below so the read noise stays real -- where the gain is known (3 standard errors above
  zero): the skew is gain**2 times the signal, and in a dark, sparse scene (stars at 10
  photons) an undetermined gain sent the offset to -66 ADU. Where zero is matters to a
  noise-adaptive model: the darkest blocks alone read background photons as offset (2-3
  ADU at 10 photons per pixel), which cost one 0.5 dB.

- **Units.** The fit works in a unit that puts the first frame's noise near 1, so the
  same stream in ADU, in electrons or scaled to [0, 1] gets the same camera, scaled.
- **Saturation.** A frame's maximum held by many pixels is a saturation level (a
  Poisson-Gaussian readout almost never repeats its maximum): blocks touching it have no
  noise left and would flatten the fit to a camera without noise, so their samples, and
  those from the level where such blocks begin up, are dropped.
- **Flat blocks.** A 4 x 4 block whose 16 pixels hold one value carries no camera's
  noise: a field of view masked outside its circle, frames padded to a size, borders
  zero-filled by motion correction. Such samples (noise power 0) pinned the fit to a
  camera without noise (a circular field of view, its outside masked to 100: gain 0.00,
  read noise 0 for a true 1 and 2-5 ADU, and the model returned its input), so their
  samples are dropped, with those of the blocks around them (the edge runs through
  them), and their levels are left out of the darkest blocks' bound -- except blocks
  all at a floor of clipped readouts (below), which the clipped fit needs. A fill
  narrower than a block (a zero-filled strip of 1-3 px) is not found.
- **Hot pixels.** A pixel far above all eight neighbours (:func:`stream.camera.find_spikes`,
  by the camera estimated so far; on a series' first frame, by that frame's own
  estimate, then estimated again) raises its block's level but not its noise: a tenth of
  a percent of them pulled the fitted gain to half the truth at 3 photons per pixel.
  Their blocks and the blocks around them are left out, as flat blocks are.
- **Clipped readouts.** An unsigned camera at offset 0 clips its read noise at 0: the
  noise at dim levels looks narrower and the levels higher, which read as a steep gain
  and no read noise (at 3 photons, gain 3.6 and read 0.4 ADU for a true 1 and 4). A
  frame's minimum held by many pixels is such a floor when the noise continues right
  above it (:func:`stream.camera._floor.floor_pixels`: not a photon counter's zeros, nor
  a masked region). Each sample then also keeps its share of pixels at the floor, and
  the fit goes through each bin's unclipped mean and variance, which that share and the
  bin's clipped noise power give (:func:`censored_fit`); the offset is the floor, and
  the camera says so (``floor``), so the engine undoes the clipping's bias in the output.
  A fit of integer readouts that finds less read noise than clipped noise is told from
  counts by (:data:`CLIPPED_LEAST_READ`) was a photon counter's zeros after all, and is
  dropped for the plain fit.
- **Coarse counts.** Whole-count readouts differ from their light by their rounding
  too, which frame differences cannot see where the noise is under a count (a dark
  pixel reads one value frame after frame): their read noise is at least the rounding's
  (:data:`ROUNDING_VARIANCE`), and where a photo-electron is under half a count
  (:data:`COARSE_GAIN`) the skew's offset is bounded below by it too.
- **Noisy pixels.** An sCMOS pixel whose read noise is several times its neighbours'
  (found by :mod:`stream.camera._noisy`, given by :meth:`CameraEstimator.leave_out`):
  their blocks are left out.

Cost (``python -m benchmarks.camera_estimate_check``, 2-vCPU EPYC VM): a median 2.3-4.6
ms per update at 512 x 512 (4.6 with the test for moved scenes), 13-25 ms when the fit
runs (after updates 2, 3, 5, 9 and 17, then every ``refit_every``, on at most
``FIT_SAMPLES`` samples); the service estimates every
frame of a series' first 32, then every 8th (``stream.engine._series``), and not at all
when the camera is configured. Tested on simulated streams of known cameras (``tests/camera``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._floor import floor_pixels, half_step, latent_from_clipped
from ._model import CameraModel
from ._offset import offset_from_skew, second_difference
from ._spikes import Spikes, find_spikes

#: chi-square with 4 degrees of freedom (a 4 x 4 block holds 4 cells of one residual
#: each, or 16 pixels of one difference each): median / mean, per samples averaged.
_MEDIAN_OVER_MEAN = {4: 0.8392, 16: 0.9583}
BLOCK = 4
BINS = 24
#: The offset comes from this percentile of a frame's block means (median over frames).
DARK_PERCENTILE = 0.5
DARK_SIGMAS = 2.58
DARK_FRAMES = 64
#: Weight of each new frame in the running mean image (about 20 frames' memory); the
#: first frames are averaged with equal weights (a plain mean) until the weight gets there.
AVERAGE_WEIGHT = 0.05
#: The dilution correction is trusted down to this reliability (below, the slope is
#: mostly level noise: the correction is capped and the stderr says so).
MIN_RELIABILITY = 0.2
#: A block's squared second difference above this many times its expected value (six
#: times the noise variance, by the current estimate) holds a change of the scene: its
#: cube is left out of the offset's skew.
SCENE_CHANGE = 4.0
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
#: The offset is taken from the skew only where the gain is this many standard errors
#: above zero.
GAIN_KNOWN = 3.0
#: The least read noise variance of integer readouts, in counts^2: a count's rounding
#: (uniform over one count, variance 1/12; Sheppard 1898, Widrow 1956). Noise well
#: under a count is not seen by the fit -- a pixel whose light and read noise stay within
#: one count reads the same value frame after frame -- yet each readout still differs
#: from its light by its rounding. Why (one-off probe, ``na-lite``, 16-frame movies of
#: the independent generator read out at 0.1 ADU per e- and 2 e- of read noise, 0.2
#: ADU): the estimate came out at 0.0004-0.002 ADU of read noise at 1-10 photons per
#: pixel, and the model, told so, left the noise in (8.3 dB at 1 photon, 16.1 at 10,
#: against 14.6 and 26.0 with this floor).
ROUNDING_VARIANCE = 1.0 / 12.0
#: Whole counts are coarse where a photo-electron moves the readout by less than this
#: share of a count: the rounding then reshapes the shot noise's skew, and the offset it
#: gives is bounded below where the read noise would fall under the rounding's.
COARSE_GAIN = 0.5
#: A floor of integer readouts whose clipped fit finds less read noise than this (ADU)
#: was a photon counter's zeros, not clipped noise: the fit is dropped. Why: a gain-1
#: photon counter (read noise 0.05 e-) at 3 photons per pixel on the independent
#: generator, its dark blocks' pixels a mixture of lights, passed the floor test; the
#: clipped fit said gain 0.78, read noise 0.72 ADU, and ``na-lite`` lost 0.45 dB.
CLIPPED_LEAST_READ = 1.0
#: Most samples one fit sorts (taken evenly from the reservoir): 48,000 give each of the
#: 24 bins 2,000, and bound the time a refit holds the thread that serves frames.
FIT_SAMPLES = 48_000
#: The frame's maximum is a saturation level when at least this fraction of its pixels
#: (and at least ``SATURATED_MIN_PIXELS``) hold it -- and, in whole counts, more than the
#: count below it: readouts pile up at a saturation level, while a dim frame of coarse
#: counts (0.1 ADU per e-, three values in all at 3 photons per pixel) repeats its
#: maximum too, as the thinning tail of its counts. Read as saturation, 8 % of such a
#: frame's pixels, the brightest, were left out of the fit.
SATURATED_FRACTION = 0.002
SATURATED_MIN_PIXELS = 8


@dataclass(frozen=True)
class CameraEstimate:
    """The camera as estimated so far, with how well the gain is known."""

    camera: CameraModel
    gain_stderr: float
    frames: int
    source: str  # "spatial" (one frame) or "temporal" (frame differences)
    saturated: float = 0.0  # fraction of the latest frame's pixels at saturation
    offset_source: str = "darkest"  # the darkest blocks' bound, or the shot noise's "skew"
    offset_stderr: float | None = None  # of the skew's offset (a cautious one, see _offset)
    moved: int = 0  # pairs of consecutive frames whose scene moved (see the module doc)
    shared: int = 0  # still pairs whose noise neighbours share both ways (_pair_change)
    pairs: int = 0  # pairs of consecutive frames compared

    @property
    def noise_shared(self) -> bool:
        """Whether most pairs show noise that neighbours share both ways (frames
        registered by sub-pixel shifts): not the white noise the blend's risk assumes."""
        return self.shared >= 2 and 2 * self.shared > self.pairs

    def as_dict(self) -> dict[str, object]:
        # significant digits, not decimals: frames scaled to [0, 1] have a gain near 1e-5
        return {
            "gain": _significant(self.camera.gain),
            "gain_stderr": _significant(self.gain_stderr),
            "offset": _significant(self.camera.offset),
            "read_noise": _significant(self.camera.read_noise),
            "frames": self.frames,
            "source": self.source,
            "saturated": round(self.saturated, 4),
            "offset_source": self.offset_source,
            "moved": self.moved,
            **({"shared": self.shared} if self.shared else {}),
            **({"floor": self.camera.floor} if self.camera.floor is not None else {}),
            **(
                {"offset_stderr": _significant(self.offset_stderr)}
                if self.offset_stderr is not None
                else {}
            ),
        }


def _significant(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def _blocks(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    hb, wb = h // BLOCK, w // BLOCK
    return image[: hb * BLOCK, : wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK)


def _block_means(image: np.ndarray) -> np.ndarray:
    """Means over 4 x 4 blocks (float64), added from strided slices: numpy reduces a
    length-4 axis slowly (with that, the estimator's median update at 512 x 512 was 9.2 ms
    in ``benchmarks.camera_estimate_check``; 2.3-3.0 ms with this)."""
    h, w = image.shape
    return _group_sums(image[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK], BLOCK, BLOCK) / BLOCK**2


def _group_sums(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Sums over ``rows`` x ``columns`` groups of pixels (float64; the image's size a
    multiple of them), added from strided slices (see :func:`_block_means`)."""
    across = image[:, 0::columns].astype(np.float64)
    for j in range(1, columns):
        across += image[:, j::columns]
    total = across[0::rows].copy()
    for i in range(1, rows):
        total += across[i::rows]
    return total


def _is_blank(blocks: np.ndarray) -> bool:
    """A frame of one level, or of no finite pixel, by its block means."""
    if blocks.size == 0:  # smaller than a block: nothing to tell
        return False
    finite = blocks[np.isfinite(blocks)]
    return finite.size == 0 or bool(finite.min() == finite.max())


def darkest_level(image: np.ndarray, block_means: np.ndarray | None = None) -> float:
    """The darkest 4 x 4 block means' level (their ``DARK_PERCENTILE``), which bounds the
    offset from above: one definition for the live estimate and for the training data
    that imitates it (``exporter.synth``). ``block_means``: the image's, if computed."""
    blocks = _block_means(image) if block_means is None else block_means
    values = blocks if blocks.size else np.asarray(image, dtype=np.float64)
    return float(np.percentile(values, DARK_PERCENTILE))


def _neighbourhood(block_means: np.ndarray) -> np.ndarray:
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
    h, w = frame.shape
    cropped = frame[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    if cropped.size == 0:
        return None
    # max and min over each block from strided slices (a length-4 axis reduces slowly)
    high, low = cropped[:, 0::BLOCK].copy(), cropped[:, 0::BLOCK].copy()
    for j in range(1, BLOCK):
        np.maximum(high, cropped[:, j::BLOCK], out=high)
        np.minimum(low, cropped[:, j::BLOCK], out=low)
    block_high, block_low = high[0::BLOCK].copy(), low[0::BLOCK].copy()
    for i in range(1, BLOCK):
        np.maximum(block_high, high[i::BLOCK], out=block_high)
        np.minimum(block_low, low[i::BLOCK], out=block_low)
    flat = block_high == block_low
    if floor is not None:
        flat &= block_low != floor
    return _with_neighbours(flat) if flat.any() else None


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


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return b if a is None else a if b is None else a | b


def saturated_pixels(frame: np.ndarray) -> np.ndarray | None:
    """The pixels at the frame's saturation level; None when it shows none."""
    top = frame.max()
    at_top = frame == top
    count = int(np.count_nonzero(at_top))
    if count < max(SATURATED_MIN_PIXELS, SATURATED_FRACTION * frame.size):
        return None
    below = int(top) - 1 if frame.dtype.kind in "ui" else float(top) - 1.0  # no wrap at 0
    if half_step(frame) > 0 and np.count_nonzero(frame == below) >= count:
        return None  # a tail of whole counts, not a pile-up
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
    blocks = _blocks(np.asarray(frame, dtype=np.float64))
    means = _neighbourhood(blocks.mean(axis=(1, 3))).ravel()
    cells = blocks.reshape(blocks.shape[0], 2, 2, blocks.shape[2], 2, 2)
    a, b = cells[:, :, 0, :, :, 0], cells[:, :, 0, :, :, 1]
    c, d = cells[:, :, 1, :, :, 0], cells[:, :, 1, :, :, 1]
    residual = (a - b - c + d) / 2.0
    power = (residual**2).mean(axis=(1, 3)).ravel() / _MEDIAN_OVER_MEAN[4]
    if flat is not None:
        power[flat] = np.nan
    return means, _drop_saturated(means, power, saturated)


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
    block_power: np.ndarray, cells: np.ndarray, difference: Callable[[], np.ndarray]
) -> str:
    """What a pair's difference shows: "still" by its cells' residuals
    (:func:`still_ratio`); "moved" where they say otherwise and so do its lines
    (:func:`_line_ratio`) and its wide cells (:func:`_wide_cell_power`); still with noise
    that neighbours share (:data:`LINE_MARGIN`) where either of those finds it still:
    "lined" along rows or columns (the lines), "shared" both ways (the wide cells).
    ``difference`` makes the difference again, for those two only: the usual pair is
    still by its cells, and its caller squares its difference in place."""
    ratio, limit = still_ratio(block_power, cells)
    if ratio <= limit:
        return "still"
    again = difference()
    if _line_ratio(again, block_power) <= 1.0 + LINE_MARGIN:
        return "lined"
    wide, _ = still_ratio(block_power, _wide_cell_power(again))
    return "shared" if wide <= 1.0 + LINE_MARGIN else "moved"


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
    return _pair_change(_block_means(squared).ravel(), cells, difference) == "moved"


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
    power = _block_means(squared).ravel()
    change = _pair_change(power, cells, difference)
    moved = change == "moved"
    if moved or level is None:
        level = (_block_means(frame) + _block_means(previous)) / 2.0
    if moved:
        power = cells / (2.0 * _MEDIAN_OVER_MEAN[4])
    else:
        power /= 2.0 * _MEDIAN_OVER_MEAN[16]
    if flat is not None:
        power[flat] = np.nan
    levels = np.array(level, dtype=np.float64).ravel()  # a copy: the caller's average moves on
    return levels, _drop_saturated(levels, power, saturated), change


def fit_line(means: np.ndarray, power: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, slope stderr) of median power against mean, by bins."""
    finite = np.isfinite(means) & np.isfinite(power)
    means, power = means[finite], power[finite]
    if means.size < 2 * BINS:
        return 0.0, float(np.median(power)) if power.size else 0.0, math.inf
    _, x, y, counts = _bins(means, power)
    return _weighted_line(x, y, counts)


def _bins(
    means: np.ndarray, power: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Samples in ``BINS`` equal-count bins by mean: (each bin's sample indices, its
    median mean, its median power, its sample count)."""
    groups = np.array_split(np.argsort(means), BINS)
    x = np.array([np.median(means[g]) for g in groups])
    y = np.array([np.median(power[g]) for g in groups])
    return groups, x, y, np.array([len(g) for g in groups], dtype=np.float64)


def _weighted_line(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, slope stderr) of a line through bins of ``counts`` samples,
    each weighted by its count over its variance squared (a power's spread scales so)."""
    weight = counts / np.maximum(y, 1e-12) ** 2
    if np.ptp(x) <= 0:
        return 0.0, float(np.median(y)), math.inf
    design = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(weight)[:, None]
    target = y * np.sqrt(weight)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    slope, intercept = float(coef[0]), float(coef[1])
    fitted = design @ coef
    dof = max(1, len(x) - 2)
    sigma2 = float(np.sum((target - fitted) ** 2)) / dof
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    return slope, intercept, float(math.sqrt(max(cov[0, 0], 0.0)))


#: A bin of samples counts as clipped when this share of its pixels sits at the floor.
CLIPPED_SHARE = 0.001


def censored_fit(
    means: np.ndarray,
    power: np.ndarray,
    share: np.ndarray,
    floor: float,
    half: float = 0.0,
    median_over_mean: np.ndarray | float = _MEDIAN_OVER_MEAN[16],
) -> tuple[float, float, float] | None:
    """:func:`fit_line` for readouts clipped at ``floor``: each bin's share of pixels at
    the floor and its (clipped) noise power give the unclipped mean and variance
    (:func:`stream.camera._floor.latent_from_clipped`), and the line goes through those.
    None when the floor is not a clipping: too few samples, or the bins that never reach
    it show a camera without read noise (a photon counter, whose zeros are counts).
    ``median_over_mean``: each power's median correction (per sample, or one for all:
    16 differences or 4 cell residuals averaged): a clipped bin's noise power is its
    samples' mean with that correction undone, since the median of clipped noise powers
    sits low (many all-clipped cells are 0)."""
    finite = np.isfinite(means) & np.isfinite(power) & np.isfinite(share)
    means, power, share = means[finite], power[finite], share[finite]
    unbiased = power * np.broadcast_to(median_over_mean, finite.shape)[finite]
    if means.size < 2 * BINS:
        return None
    groups, x, y, counts = _bins(means, power)
    p = np.array([np.mean(share[g]) for g in groups])
    clipped = p > CLIPPED_SHARE
    if not clipped.any():
        return None
    clear = ~clipped
    if np.count_nonzero(clear) >= 6:
        slope, intercept, _ = _weighted_line(x[clear], y[clear], counts[clear])
        if slope > 0 and intercept + slope * floor < (0.5 * slope) ** 2:
            return None  # under half an electron of read noise: zeros are real counts
    mean_power = np.array([np.mean(unbiased[g]) for g in groups])
    latent, variance = latent_from_clipped(p[clipped], mean_power[clipped], floor, half)
    lx, ly = x.copy(), y.copy()
    lx[clipped], ly[clipped] = latent, variance
    keep = np.isfinite(lx) & np.isfinite(ly)
    if np.count_nonzero(keep) < 3:
        return None
    slope, intercept, stderr = _weighted_line(lx[keep], ly[keep], counts[keep])
    if not (math.isfinite(slope) and slope > 0):  # read noise only, as far as one can tell
        return 0.0, float(np.median(ly[keep])), math.inf
    return slope, intercept, stderr


def undiluted_fit(
    means: np.ndarray, power: np.ndarray, level_factor: np.ndarray
) -> tuple[float, float, float]:
    """:func:`fit_line`, corrected for the noise of the levels binned by.

    ``level_factor``: each sample's level noise variance per unit of pixel noise variance.
    """
    slope, intercept, stderr = fit_line(means, power)
    finite = np.isfinite(means) & np.isfinite(power)
    x, factor = means[finite], level_factor[finite]
    spread = float(np.var(x)) if x.size > 1 else 0.0
    if not (math.isfinite(slope) and slope > 0 and spread > 0):
        return slope, intercept, stderr
    pivot = float(np.median(x))  # the line turns about the middle of the samples
    at_pivot = slope * pivot + intercept
    corrected, reliability = slope, 1.0
    for _ in range(4):
        level_noise = float(np.mean(factor * np.maximum(corrected * (x - pivot) + at_pivot, 0)))
        reliability = max(1.0 - level_noise / spread, MIN_RELIABILITY)
        corrected = slope / reliability
    return corrected, at_pivot - corrected * pivot, stderr / reliability


def _floor_share(
    at_floor: np.ndarray | None, previous: np.ndarray | None, blocks: int
) -> np.ndarray:
    """Per block, the share of its pixels at the floor (over both frames of a pair)."""
    masks = [m for m in (at_floor, previous) if m is not None]
    if not masks:
        return np.zeros(blocks, np.float32)
    share = sum(_block_means(m).ravel() for m in masks) / len(masks)
    return np.asarray(share, dtype=np.float32)


class CameraEstimator:
    """Estimates a stream's camera as frames arrive; one per series.

    Parameters
    ----------
    reservoir
        Most (mean, power) samples kept from frame differences (the oldest go first).
    refit_every
        Frames between fits once the series is ``2 * refit_every`` frames old (until then,
        a fit each time the frames seen double).
    """

    def __init__(self, reservoir: int = 200_000, refit_every: int = 8) -> None:
        self._reservoir = reservoir
        self._refit_every = refit_every
        self._means: list[np.ndarray] = []
        self._power: list[np.ndarray] = []
        self._factors: list[float] = []  # per batch: its levels' noise per pixel variance
        self._corrections: list[float] = []  # per batch: its powers' median correction
        self._smooth: list[np.ndarray] = []  # per batch: levels over 3 x 3 blocks (float32)
        self._third: list[np.ndarray] = []  # per batch: mean cubed second differences
        self._share: list[np.ndarray] = []  # per batch: share of pixels at a floor
        self._floor: float | None = None  # the latest frame's floor, if it piles up there
        self._half = 0.0  # half a count, for integer readouts (see _floor.half_step)
        self._integer = False  # the latest frame holds whole counts
        self._kept = 0
        self._previous: np.ndarray | None = None
        self._previous_saturated: np.ndarray | None = None
        self._before: np.ndarray | None = None  # the frame before the previous one, when
        self._before_saturated: np.ndarray | None = None  # the two were consecutive
        self._previous_floor: np.ndarray | None = None  # its pixels at a floor, if any
        self._unit: float | None = None  # the fit works in it (see :func:`data_unit`)
        self._saturated = 0.0
        # running mean of the frames' block means: the levels to bin by
        self._average: np.ndarray | None = None
        self._averaged = 0  # frames in the running mean
        self._weight_sq = 0.0  # sum of the squared frame weights in the running mean
        self._dark: list[float] = []
        self._frames = 0
        # The latest frame was blank (one level, or no finite pixel: a closed shutter, a
        # dropped readout). Such a frame says nothing of the noise: it starts no pair and
        # is not counted in _frames, so an estimate of 0 frames is from blank ones only.
        self._previous_blank = False
        self._moved = 0  # pairs whose scene moved
        self._shared = 0  # still pairs whose noise neighbours share both ways
        self._pairs = 0  # pairs compared
        self._noisy: Spikes | None = None  # pixels whose noise is not the camera's
        self._noisy_shape: tuple[int, ...] | None = None
        self._since_fit = 0
        self.estimate: CameraEstimate | None = None

    def remember(self, frame: np.ndarray, follows: bool = False) -> None:
        """Keep ``frame`` as the one the next :meth:`update` pairs with, without estimating
        from it (one copy): a caller that estimates every Nth frame gives the one or two
        frames before it here, so its differences are still of consecutive frames.

        ``follows``: the frame comes right after the last one given (then the two make a
        triple with the next, for the offset's skew).
        """
        frame = np.asarray(frame)
        floor = floor_pixels(frame)
        self._keep_previous(
            frame, saturated_pixels(frame), floor[1] if floor is not None else None, follows
        )

    def _keep_previous(
        self,
        frame: np.ndarray,
        saturated: np.ndarray | None,
        at_floor: np.ndarray | None,
        follows: bool,
    ) -> None:
        chained = follows and self._previous is not None and self._previous.shape == frame.shape
        self._before = self._previous if chained else None
        self._before_saturated = self._previous_saturated if chained else None
        self._previous = frame.astype(np.float32, copy=True)
        self._previous_saturated = saturated
        self._previous_floor = at_floor

    def update(self, frame: np.ndarray, follows: bool = True) -> CameraEstimate:
        """Take one frame and return the current estimate.

        ``follows``: the frame comes right after the last one given (to :meth:`update` or
        :meth:`remember`); False: no frame difference is taken from the pair (the scene
        may have moved on in between), the frame still counts otherwise.
        """
        frame = np.asarray(frame)
        blocks = _block_means(frame)
        blank = _is_blank(blocks)
        self._frames += not blank  # the frames the estimate is from (and refits count)
        floor = floor_pixels(frame)
        flat = flat_blocks(frame, floor[0] if floor is not None else None)
        if self.estimate is not None:  # hot pixels, by the camera so far
            flat = _either(flat, spike_blocks(frame, self.estimate.camera))
        flat = _either(flat, self._noisy_blocks(frame.shape))
        lit = blocks.ravel()[~flat] if flat is not None else blocks  # no fill's level
        if not blank:  # a blank frame's one level is no dark region of the scene
            self._dark.append(darkest_level(frame, lit))
            del self._dark[:-DARK_FRAMES]
        saturated = saturated_pixels(frame)
        self._saturated = float(np.mean(saturated)) if saturated is not None else 0.0
        self._floor = floor[0] if floor is not None else None
        self._integer = half_step(frame) > 0
        self._half = 0.5 if floor is not None and self._integer else 0.0
        at_floor = floor[1] if floor is not None else None
        paired = self._previous is not None and self._previous.shape == frame.shape
        moved = False
        same_shape = self._average is not None and self._average.shape == blocks.shape
        if follows and paired and same_shape and not (blank or self._previous_blank):
            moved = self._add_temporal(frame, saturated, at_floor, flat)
        if moved or not same_shape or self._previous_blank:
            # a moved scene, or the first after a blank frame: the levels start again
            self._average = blocks
            self._averaged, self._weight_sq = 1, 1.0
        elif not blank:  # a blank frame's one level is not the scene's
            self._averaged += 1
            weight = max(1.0 / self._averaged, AVERAGE_WEIGHT)
            self._average += weight * (blocks - self._average)
            self._weight_sq = (1.0 - weight) ** 2 * self._weight_sq + weight**2
        # no skew across a move, nor from a triple with a blank frame in it
        self._keep_previous(
            frame, saturated, at_floor, follows and not moved and not self._previous_blank
        )
        self._previous_blank = blank
        self._since_fit += 1
        if self.estimate is None or self.estimate.frames == 0:
            # one frame's samples give the unit and the estimate (anew after a blank start)
            means, power = spatial_samples(frame, saturated, flat)
            if self._unit is None and not blank:
                self._unit = data_unit(frame, power)
            share = _floor_share(at_floor, None, means.size)
            spatial_correction = np.full(means.size, _MEDIAN_OVER_MEAN[4])
            self.estimate = self._from(
                means, power, "spatial", clipping=(share, spatial_correction)
            )
            spiky = spike_blocks(frame, self.estimate.camera)
            if spiky is not None:  # the first frame's hot pixels, by its own estimate
                means, power = spatial_samples(frame, saturated, _either(flat, spiky))
                self.estimate = self._from(
                    means, power, "spatial", clipping=(share, spatial_correction)
                )
        elif self._kept >= 2 * BINS * 8 and (
            self._since_fit >= self._refit_interval() or self.estimate.source == "spatial"
        ):
            means, power = np.concatenate(self._means), np.concatenate(self._power)
            sizes = [m.size for m in self._means]
            factors = np.repeat(self._factors, sizes)
            corrections = np.repeat(self._corrections, sizes)
            smooth, third = np.concatenate(self._smooth), np.concatenate(self._third)
            share = np.concatenate(self._share)
            if means.size > FIT_SAMPLES:  # evenly over the reservoir: a fit in ~10 ms
                take = np.linspace(0, means.size - 1, FIT_SAMPLES).astype(np.int64)
                means, power, factors = means[take], power[take], factors[take]
                smooth, third = smooth[take], third[take]
                share, corrections = share[take], corrections[take]
            if self._since_fit >= self._refit_interval():  # the first temporal fit comes early
                self._since_fit = 0
            self.estimate = self._from(
                means, power, "temporal", factors, (smooth, third), (share, corrections)
            )
        else:
            self.estimate = dataclasses.replace(self.estimate, frames=self._frames)
        counts = (self._saturated, self._moved, self._shared, self._pairs)
        estimate = self.estimate
        if (estimate.saturated, estimate.moved, estimate.shared, estimate.pairs) != counts:
            self.estimate = dataclasses.replace(
                estimate,
                saturated=self._saturated,
                moved=self._moved,
                shared=self._shared,
                pairs=self._pairs,
            )
        return self.estimate

    def leave_out(self, pixels: Spikes | None, shape: tuple[int, ...]) -> None:
        """Pixels of frames of ``shape`` whose noise is not the camera's (noisy pixels,
        :mod:`stream.camera._noisy`): from now on their blocks give the fit no samples
        (1 % of pixels 7.5 ADU noisier read a gain of 0.29 for 0.5 at 1 photon per pixel;
        left out, 0.45)."""
        self._noisy, self._noisy_shape = pixels, shape

    def _noisy_blocks(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Per 4 x 4 block (raveled), whether it holds a pixel left out (:meth:`leave_out`):
        its noise is not the camera's (its neighbours' levels are the scene's)."""
        if self._noisy is None or self._noisy_shape != shape:
            return None
        rows, columns = shape[0] // BLOCK, shape[1] // BLOCK
        ys, xs = self._noisy
        inside = (ys < rows * BLOCK) & (xs < columns * BLOCK)
        blocks = np.zeros((rows, columns), dtype=bool)
        blocks[ys[inside] // BLOCK, xs[inside] // BLOCK] = True
        return blocks.ravel()

    def _refit_interval(self) -> int:
        """Frames between fits: half the frames so far, up to ``refit_every``. A young
        series' estimate is refitted as its samples double (after frames 2, 3, 5, 9, 17,
        then every ``refit_every``): the third frame brings the offset's first skew, and
        until it the offset is the darkest blocks' bound, background photons read as
        offset (2.6 ADU at 10 photons per pixel: 0.5 dB of the model's output)."""
        return max(1, min(self._refit_every, self._frames // 2))

    def _add_temporal(
        self,
        frame: np.ndarray,
        saturated: np.ndarray | None,
        at_floor: np.ndarray | None,
        flat: np.ndarray | None,
    ) -> bool:
        """Samples from the frame and the one before it (and, for the offset's skew, the
        one before that, when the three are consecutive and the scene held still); True
        when the scene moved between the two."""
        assert self._previous is not None and self._average is not None
        triple = self._before is not None
        masks = [saturated, self._previous_saturated, self._before_saturated if triple else None]
        present = [m for m in masks if m is not None]
        touched = np.logical_or.reduce(present) if present else None
        means, power, change = temporal_samples(frame, self._previous, self._average, touched, flat)
        moved = change == "moved"
        self._moved += moved
        self._shared += change == "shared"
        self._pairs += 1
        if triple and not moved and self.estimate is not None:
            assert self._before is not None
            r = second_difference(frame, self._previous, self._before)
            square = r * r
            square_means = _block_means(square).ravel()
            r *= square  # the cube, in place: no third frame-sized buffer per update
            third = _block_means(r).ravel()
            camera = self.estimate.camera
            noise = np.maximum(camera.gain * (means - camera.offset), 0.0) + camera.read_noise**2
            # E[r**2] = 6 var where the scene held still; a step or a flash is far above
            changed = square_means > SCENE_CHANGE * 6.0 * noise
            third[np.isnan(power) | changed] = np.nan
        else:
            third = np.full(means.shape, np.nan)
        self._means.append(means)
        self._power.append(power)
        # the levels' noise: the running mean's, or for a moved pair its own two frames'
        self._factors.append((0.5 if moved else self._weight_sq) / BLOCK**2)
        self._corrections.append(_MEDIAN_OVER_MEAN[4 if moved else 16])
        self._smooth.append(_neighbourhood(self._average).ravel().astype(np.float32))
        self._third.append(third.astype(np.float32))
        previous_floor = self._previous_floor if at_floor is not None else None
        self._share.append(_floor_share(at_floor, previous_floor, means.size))
        self._kept += means.size
        while self._kept - self._means[0].size >= self._reservoir:
            self._kept -= self._means.pop(0).size
            for batches in (
                self._power, self._factors, self._corrections, self._smooth, self._third,
                self._share,
            ):  # fmt: skip
                batches.pop(0)
        return moved

    def _coarse(self, gain: float) -> bool:
        """Whether readouts are coarse counts: whole counts, a photo-electron under
        :data:`COARSE_GAIN` of one (``gain`` in ADU per e-)."""
        return self._integer and gain < COARSE_GAIN

    def _least_read2(self, unit: float) -> float:
        """The least read noise variance in the fit's ``unit``: a count's rounding for
        integer readouts (:data:`ROUNDING_VARIANCE`), a token one for others."""
        return max(ROUNDING_VARIANCE / unit**2 if self._integer else 0.0, 1e-6)

    def _clipped(
        self,
        means: np.ndarray,
        power: np.ndarray,
        clipping: tuple[np.ndarray, np.ndarray],
        source: str,
    ) -> CameraEstimate | None:
        """The camera of readouts clipped at the latest frame's floor, or None when they
        are not (see :func:`censored_fit`). The offset is taken to be the floor: a camera
        clips where its zero is (the darkest blocks and the skew both read clipped noise
        wrong: it is narrower and skewed)."""
        assert self._floor is not None
        unit = self._unit or 1.0
        floor = self._floor / unit
        share, corrections = clipping
        fitted = censored_fit(
            means / unit, power / unit**2, share, floor, self._half / unit, corrections
        )
        if fitted is None:
            return None
        gain, intercept, stderr = fitted
        read2 = max(intercept + gain * floor, self._least_read2(unit))
        if self._integer and read2 * unit**2 < CLIPPED_LEAST_READ**2:
            # clipped integer noise was told from counts by its width (at least 1.5
            # ADU, :func:`stream.camera._floor._clipped_counts`); narrower, it was counts
            return None
        camera = CameraModel(
            gain=max(gain, 1e-3) * unit,
            offset=self._floor,
            read_noise=math.sqrt(read2) * unit,
            floor=self._floor,
        )
        return CameraEstimate(
            camera, stderr * unit, self._frames, source, 0.0, "floor", None, self._moved
        )

    def _from(
        self,
        means: np.ndarray,
        power: np.ndarray,
        source: str,
        level_factor: np.ndarray | None = None,
        skew: tuple[np.ndarray, np.ndarray] | None = None,
        clipping: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> CameraEstimate:
        """The camera from (level, power) samples; ``skew``: each sample's smoothed level
        and mean cubed second difference (NaN where none), for the offset; ``clipping``:
        each sample's share of pixels at the latest frame's floor, if it has one, and its
        power's median correction (see :func:`censored_fit`)."""
        if self._floor is not None and clipping is not None:
            clipped = self._clipped(means, power, clipping, source)
            if clipped is not None:
                return clipped
        if level_factor is None:  # one frame's own neighbourhood means: 9 blocks of 16
            level_factor = np.full(means.shape, 1.0 / (9 * BLOCK**2))
        unit = self._unit or 1.0  # the fit works in it; the camera is scaled back below
        means, power = means / unit, power / unit**2
        slope, intercept, stderr = undiluted_fit(means, power, level_factor)
        dark = float(np.median(self._dark)) / unit if self._dark else float(np.min(means))
        offset_source, offset_stderr = "darkest", None
        # The darkest block means sit below the darkest signal by their own noise (about
        # 2.6 sigma at the 0.5th percentile): both branches add it back, so a frame whose
        # slope comes out a hair either side of zero gets the same offset.
        if not math.isfinite(slope) or slope <= 0:
            # No usable mean-variance slope (a flat field, or read noise only): the noise
            # is then the same everywhere, all of it read noise.
            usable = power[np.isfinite(power)]  # none: every block saturated
            least = self._least_read2(unit)
            gain, read2 = 1e-3, max(float(np.median(usable)) if usable.size else 0.0, least)
            offset = dark + DARK_SIGMAS * math.sqrt(read2) / BLOCK
        else:
            gain = slope
            # The offset is no lower than -intercept / gain, where the read noise would
            # vanish -- for coarse counts (:data:`COARSE_GAIN`), where it would fall under
            # a count's rounding, up to the darkest blocks' bound.
            spread = math.sqrt(max(slope * dark + intercept, 0.0)) / BLOCK
            bound = dark + DARK_SIGMAS * spread
            lowest = -intercept / gain
            if self._coarse(gain * unit):
                rounded = (self._least_read2(unit) - intercept) / gain
                lowest = max(lowest, min(rounded, bound))
            offset = max(bound, lowest)
            # The skew gives gain**2 * (level - offset): divided by a gain the data do not
            # pin down (a dark, sparse scene), its errors grow without bound.
            if skew is not None and gain > GAIN_KNOWN * stderr:
                smooth, third = skew
                found = offset_from_skew(means, smooth / unit, third / unit**3, gain, intercept)
                if found is not None:  # within [read noise vanishes, darkest blocks' bound]
                    bounded = max(found[0], lowest)
                    if bounded < offset:
                        offset, offset_source, offset_stderr = bounded, "skew", found[1] * unit
            read2 = max(intercept + gain * offset, self._least_read2(unit))
        # In the data's own unit, unbounded: float32 frames may come in any scale.
        camera = CameraModel(
            gain=max(gain, 1e-3) * unit, offset=offset * unit, read_noise=math.sqrt(read2) * unit
        )
        return CameraEstimate(
            camera,
            stderr * unit,
            self._frames,
            source,
            0.0,
            offset_source,
            offset_stderr,
            self._moved,
        )
