"""A live estimate of the camera's noise from the stream itself.

When no camera is configured the service still has to tell a noise-adaptive model how
noisy each pixel is. A Poisson-Gaussian camera has a linear mean-variance relation,
``var = gain * (mean - offset) + read**2``, so:

- **First frame (spatial).** Each pixel gives a curvature residual (the kernel ``[1, -2,
  1]`` by ``[1, -2, 1]`` over 6: :func:`stream.camera._samples.curvature_power`) whose
  variance is the noise variance and which smooth structure barely touches; 4 x 4
  blocks give (mean, residual power) samples. Structure at the scale of a pixel (sharp
  stars, a sensor's pixel-to-pixel gain differences at high light) still reads as
  noise in one frame.
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
  samples of its difference's curvature residual power at its own level (like a first
  frame's, whose structure they mostly cancel; the earlier frame first moved by the
  whole pixels that align the two best, where that leaves less power), adds nothing to
  the offset's skew, and restarts the average its successors are binned by.
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
  (:data:`COARSE_GAIN`) the skew's offset is bounded below by it too. A count is the
  frame's own step (:func:`stream.camera.readout_step`: 16 ADU for 12-bit counts in the
  top bits of 16-bit words, 1/4095 for them scaled to [0, 1]), and so are the saturation
  test's step below the top and the floor test's steps above the floor.
- **A fixed pattern.** Offsets that differ from pixel to pixel by a pattern the same in
  every frame (dark-signal non-uniformity) cancel in frame differences, yet to the model
  they are noise: their variance, measured from a series' first still pairs where the
  scene is darkest (:mod:`stream.camera._fixed_pattern`), is added to the read noise's
  and, over a block, to the noise of the levels binned by (its 16th part).
- **Noisy pixels.** An sCMOS pixel whose read noise is several times its neighbours'
  (found by :mod:`stream.camera._noisy`, given by :meth:`CameraEstimator.leave_out`):
  their blocks are left out.

Cost (``python -m benchmarks.camera_estimate_check``, 2-vCPU EPYC VM): a median 2.3-4.6
ms per update at 512 x 512 (4.6 with the test for moved scenes), 13-25 ms when the fit
runs (after updates 2, 3, 5, 9 and 17, then every ``refit_every``, on at most
``FIT_SAMPLES`` samples); the service estimates every
frame of a series' first 32, then every 8th (``stream.engine._series``), and not at all
when the camera is configured; a series' first 16 still pairs also measure a fixed
pattern (4-5 ms each, :mod:`stream.camera._fixed_pattern`). A pair whose difference
reads as noise that neighbours share also takes the test for a whole-pixel drift
(``_samples._aligned_by_shift``, over the central 128 x 128 pixels: 0.6-2.6 ms by
``timeit``, the VM busy), as does a temporal model's test for a moved scene on such a
stream, every frame. Tested on simulated
streams of known cameras (``tests/camera``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ._fit import BINS, censored_fit, fit_line, undilute, undiluted_fit
from ._fixed_pattern import MOST_LIGHT, FixedPattern
from ._floor import floor_pixels, readout_step
from ._model import CameraModel
from ._offset import offset_from_skew, second_difference
from ._samples import (
    BLOCK,
    CURVATURE_MEDIAN_OVER_MEAN,
    MEDIAN_OVER_MEAN,
    blockwise_means,
    darkest_level,
    data_unit,
    either,
    flat_blocks,
    is_blank,
    neighbourhood,
    saturated_pixels,
    spatial_samples,
    spike_blocks,
    temporal_samples,
    unread_blocks,
)
from ._spikes import Spikes

DARK_SIGMAS = 2.58
DARK_FRAMES = 64
#: Weight of each new frame in the running mean image (about 20 frames' memory); the
#: first frames are averaged with equal weights (a plain mean) until the weight gets there.
AVERAGE_WEIGHT = 0.05
#: Frames a block whose pixels were one value (a mask's fill, a border) stays out of the
#: samples after it: its level is in the running mean until the mean forgets it (its
#: weight 0.05 x 0.95**60, 0.2 %, then).
FILL_MEMORY = 60
#: A block's squared second difference above this many times its expected value (six
#: times the noise variance, by the current estimate) holds a change of the scene: its
#: cube is left out of the offset's skew.
SCENE_CHANGE = 4.0
#: A gain this many standard errors above zero is known: the offset is taken from the
#: skew only then (and the engine's uses of the estimate that rest on the gain ask the
#: same).
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
#: The frame differences' samples the first temporal fit waits for (16 a bin), or, for
#: frames of fewer blocks, as many as a frame has (one a bin at least: frames without a
#: whole block never get one; under 2 a bin, the fit takes read noise only): a pair's
#: differences tell the noise from the scene better than one frame's residuals. Why: a
#: 24 x 24 movie (36 blocks a frame) waited 11 frames for 384, served all that time by
#: its first frame's estimate, which its cells' edges had made 3 times too noisy at
#: 1000 photons per pixel: ``na-lite`` 7.3 dB under its input (a held-out probe).
FIRST_FIT_SAMPLES = 2 * BINS * 8
#: Most samples one fit sorts (taken evenly from the reservoir): 48,000 give each of the
#: 24 bins 2,000, and bound the time a refit holds the thread that serves frames.
FIT_SAMPLES = 48_000


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
    #: rms of a fixed pattern of offsets that frame differences do not see, included in
    #: the camera's read noise (:mod:`stream.camera._fixed_pattern`)
    pattern: float = 0.0

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
            **({"pattern": _significant(self.pattern)} if self.pattern else {}),
            **({"floor": self.camera.floor} if self.camera.floor is not None else {}),
            **(
                {"offset_stderr": _significant(self.offset_stderr)}
                if self.offset_stderr is not None
                else {}
            ),
        }


def _significant(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def _saturated_share(
    frame: np.ndarray,
    saturated: np.ndarray | None,
    blank: bool,
    estimate: CameraEstimate | None,
) -> float:
    """The share of the frame's pixels at saturation, for ``status``. A blank frame (one
    value) at the dark level of the camera so far (within five read-noise deviations of
    its offset: a closed shutter) is not saturated; at another level it is (all 4095)."""
    if saturated is None:
        return 0.0
    if blank and estimate is not None and estimate.frames > 0:
        camera = estimate.camera
        value = float(np.nanmax(frame)) if np.isfinite(frame).any() else math.nan
        if abs(value - camera.offset) <= 5.0 * camera.read_noise:
            return 0.0
    return float(np.mean(saturated))


def _floor_share(
    at_floor: np.ndarray | None, previous: np.ndarray | None, blocks: int
) -> np.ndarray:
    """Per block, the share of its pixels at the floor (over both frames of a pair)."""
    masks = [m for m in (at_floor, previous) if m is not None]
    if not masks:
        return np.zeros(blocks, np.float32)
    share = sum(blockwise_means(m).ravel() for m in masks) / len(masks)
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
        self._half = 0.0  # half a step, for readouts on steps at a floor
        self._step = 0.0  # the latest frame's readout step (0: any value; see readout_step)
        self._kept = 0
        self._previous: np.ndarray | None = None
        self._previous_saturated: np.ndarray | None = None
        self._before: np.ndarray | None = None  # the frame before the previous one, when
        self._before_saturated: np.ndarray | None = None  # the two were consecutive
        self._previous_floor: np.ndarray | None = None  # its pixels at a floor, if any
        self._previous_fill: np.ndarray | None = None  # its masked (filled) blocks, if any
        #: Per block, frames since it was a fill (one value) in the running mean (a border
        #: that moves with the motion correction's shifts): within FILL_MEMORY its level
        #: mixes the fill with the scene. None: no fill since the mean started.
        self._fill_age: np.ndarray | None = None
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
        self._pattern = FixedPattern()  # offsets that differ by a fixed pattern
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
        frame, unread = unread_blocks(np.asarray(frame))
        step = readout_step(frame)
        floor = floor_pixels(frame, step)
        fill = either(flat_blocks(frame, floor[0] if floor is not None else None), unread)
        self._keep_previous(
            frame,
            saturated_pixels(frame, step),
            floor[1] if floor is not None else None,
            follows,
            fill,
        )

    def _keep_previous(
        self,
        frame: np.ndarray,
        saturated: np.ndarray | None,
        at_floor: np.ndarray | None,
        follows: bool,
        fill: np.ndarray | None,
    ) -> None:
        chained = follows and self._previous is not None and self._previous.shape == frame.shape
        self._before = self._previous if chained else None
        self._before_saturated = self._previous_saturated if chained else None
        self._previous = frame.astype(np.float32, copy=True)
        self._previous_saturated = saturated
        self._previous_floor = at_floor
        self._previous_fill = fill

    def update(self, frame: np.ndarray, follows: bool = True) -> CameraEstimate:
        """Take one frame and return the current estimate.

        ``follows``: the frame comes right after the last one given (to :meth:`update` or
        :meth:`remember`); False: no frame difference is taken from the pair (the scene
        may have moved on in between), the frame still counts otherwise. Non-finite
        pixels are left out, with the blocks around them (:func:`unread_blocks`).
        """
        frame, unread = unread_blocks(np.asarray(frame))
        blocks = blockwise_means(frame)
        blank = is_blank(blocks)
        self._frames += not blank  # the frames the estimate is from (and refits count)
        self._step = readout_step(frame)
        floor = floor_pixels(frame, self._step)
        one_valued = flat_blocks(frame, floor[0] if floor is not None else None)
        fill = either(one_valued, unread)
        flat = either(fill, self._noisy_blocks(frame.shape))
        if self.estimate is not None:  # hot pixels, by the camera so far
            flat = either(flat, spike_blocks(frame, self.estimate.camera))
        lit = blocks.ravel()[~flat] if flat is not None else blocks  # no fill's level
        if not blank:  # a blank frame's one level is no dark region of the scene
            self._dark.append(darkest_level(frame, lit))
            del self._dark[:-DARK_FRAMES]
        saturated = saturated_pixels(frame, self._step)
        self._saturated = _saturated_share(frame, saturated, blank, self.estimate)
        self._floor = floor[0] if floor is not None else None
        self._half = self._step / 2.0 if floor is not None else 0.0
        at_floor = floor[1] if floor is not None else None
        paired = self._previous is not None and self._previous.shape == frame.shape
        moved = False
        same_shape = self._average is not None and self._average.shape == blocks.shape
        if follows and paired and same_shape and not (blank or self._previous_blank):
            # masked in either frame, or lately in the levels' mean, is no sample
            recent = None if self._fill_age is None else self._fill_age < FILL_MEMORY
            masked = either(either(flat, self._previous_fill), recent)
            moved = self._add_temporal(frame, saturated, at_floor, masked)
        if moved or not same_shape or self._previous_blank:
            # a moved scene, or the first after a blank frame: the levels start again
            self._average = blocks
            self._averaged, self._weight_sq = 1, 1.0
            self._fill_age = None
            self._age_fills(one_valued)
        elif not blank:  # a blank frame's one level is not the scene's
            self._age_fills(one_valued)
            self._averaged += 1
            weight = max(1.0 / self._averaged, AVERAGE_WEIGHT)
            self._average += weight * (blocks - self._average)
            self._weight_sq = (1.0 - weight) ** 2 * self._weight_sq + weight**2
        # no skew across a move, nor from a triple with a blank frame in it
        self._keep_previous(
            frame, saturated, at_floor, follows and not moved and not self._previous_blank, fill
        )
        self._previous_blank = blank
        self._since_fit += 1
        if self.estimate is None or self.estimate.frames == 0:
            # one frame's samples give the unit and the estimate (anew after a blank start)
            means, power = spatial_samples(frame, saturated, flat)
            if self._unit is None and not blank:
                self._unit = data_unit(frame, power)
            share = _floor_share(at_floor, None, means.size)
            spatial_correction = np.full(means.size, CURVATURE_MEDIAN_OVER_MEAN)
            self.estimate = self._from(
                means, power, "spatial", clipping=(share, spatial_correction)
            )
            spiky = spike_blocks(frame, self.estimate.camera)
            if spiky is not None:  # the first frame's hot pixels, by its own estimate
                means, power = spatial_samples(frame, saturated, either(flat, spiky))
                self.estimate = self._from(
                    means, power, "spatial", clipping=(share, spatial_correction)
                )
        elif self._kept >= min(FIRST_FIT_SAMPLES, max(BINS, blocks.size)) and (
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

    def _age_fills(self, one_valued: np.ndarray | None) -> None:
        """A frame more in the running mean: each block's frames since it was a fill."""
        if self._fill_age is not None:
            self._fill_age += 1
            np.minimum(self._fill_age, FILL_MEMORY, out=self._fill_age)  # no overflow
        if one_valued is not None:
            if self._fill_age is None:
                self._fill_age = np.full(one_valued.shape, FILL_MEMORY, dtype=np.int32)
            self._fill_age[one_valued] = 0

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
        if not moved:
            self._pattern.add(frame, self._previous, np.isfinite(power))
        self._moved += moved
        self._shared += change == "shared"
        self._pairs += 1
        if triple and not moved and self.estimate is not None:
            assert self._before is not None
            r = second_difference(frame, self._previous, self._before)
            square = r * r
            square_means = blockwise_means(square).ravel()
            r *= square  # the cube, in place: no third frame-sized buffer per update
            third = blockwise_means(r).ravel()
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
        self._corrections.append(CURVATURE_MEDIAN_OVER_MEAN if moved else MEDIAN_OVER_MEAN[16])
        self._smooth.append(neighbourhood(self._average).ravel().astype(np.float32))
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
        return self._step > 0 and gain < COARSE_GAIN * self._step

    def _least_read2(self, unit: float) -> float:
        """The least read noise variance in the fit's ``unit``: a count's rounding for
        integer readouts (:data:`ROUNDING_VARIANCE`), a token one for others."""
        return max(ROUNDING_VARIANCE * (self._step / unit) ** 2, 1e-6)

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
        if self._step > 0 and read2 * unit**2 < (CLIPPED_LEAST_READ * self._step) ** 2:
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

    def _pattern_variance(
        self,
        slope: float,
        power: np.ndarray,
        level_factor: np.ndarray,
        smooth: np.ndarray,
        unit: float,
    ) -> float:
        """A fixed pattern's variance in the fit's ``unit`` (:mod:`._fixed_pattern`); 0
        where there is none, or the static structure is mostly light. Light is told by
        a gain fitted against levels over 3 x 3 blocks (``smooth``), which a pattern
        barely makes noisy: a pattern's noise of the 4 x 4 blocks' levels pulled the gain
        fitted against them (``slope``, used where the other is not above 0) to
        0.03-0.06 for 0.5 (the phantom at 1 photon, a pattern of 1.2 e-), and light read
        so looked far brighter than it was."""
        if self._average is None:
            return 0.0
        variance = self._pattern.variance(self._average)
        if variance <= 0:
            return 0.0
        gain, _, _ = undiluted_fit(smooth, power, level_factor / 9.0)
        if not gain > 0:  # not pinned down by those levels: the 4 x 4 blocks' fit's
            gain = slope
        light = self._pattern.light_share(self._average, gain * unit)
        return 0.0 if light >= MOST_LIGHT else variance / unit**2

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
        line = fit_line(means, power)
        slope, intercept, stderr = undilute(line, means, power, level_factor)
        pattern = 0.0
        if source == "temporal" and skew is not None:
            pattern = self._pattern_variance(slope, power, level_factor, skew[0] / unit, unit)
        if pattern > 0:  # noise of each block's level too: the line corrected for it
            extra = pattern / BLOCK**2
            slope, intercept, stderr = undilute(line, means, power, level_factor, extra)
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
            spread = math.sqrt(max(slope * dark + intercept + pattern, 0.0)) / BLOCK
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
        read2 += pattern
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
            pattern=math.sqrt(pattern) * unit,
        )
