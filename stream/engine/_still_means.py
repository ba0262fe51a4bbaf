"""Still, brightly lit pixels averaged over the frames they held still, for a temporal model.

A temporal network sees a few frames; a still scene under bright light holds many more.
Where the camera's noise is a few percent of the signal, a pixel's raw readouts over the
frames in which it held still average to an estimate that is unbiased and whose error
falls as 1/n, while the network's error there is mostly a bias -- fine structure it
smoothed away -- that no average of its outputs removes (``na-temporal`` on 16-frame
movies of the independent generator at 1000 photons per pixel: 3.0 dB below the causal
temporal mean, which averages the raw frames).

So for each pixel the series keeps the mean of its raw readouts since it last changed,
and their count n. A readout joins the mean when the 3 x 3 mean of
``(readout - mean)**2 / (var * (1 + 1/n))`` is under :data:`CHANGE_LIMIT` (``var``: the
camera's noise variance at the pixel's level; for a still pixel that mean is a
chi-square of 9 degrees over 9, above 3 with probability 0.15 %, while a change of
1.5-1.7 noise sigmas over the 3 x 3, by the mean's length, passes it) and the pixel is
bright: its noise under :data:`RELATIVE_NOISE` of its signal, so that a change of a few
percent (a calcium transient) stands out and restarts the mean; elsewhere -- dim pixels,
every pixel at low light -- the mean restarts every frame and the output is the
network's, exactly.

*Bright* is reckoned from the camera's noise variance alone, not from its offset, which a
live estimate knows least well (it trades off against the read noise: 244 ADU for a true
100 at 1000 photons per pixel, which made every pixel look dimmer than it was): counted
from where the variance line ``var = gain * (x - offset) + read**2`` reaches zero, the
noise is under 5 % of the signal where ``var`` exceeds ``(gain / 0.05)**2`` -- 400
photo-electrons' worth -- and the shot noise must also outweigh the read noise
(``var > 2 read**2``), or a camera with 20 e- of read noise would count its dark pixels
as bright. Where the gain is not known (a live estimate within 3 standard errors of
zero), nothing is mixed.

The output mixes the network's output ``y`` and the raw mean ``m`` by their error
variances: ``var / n`` for the mean, ``r * var`` for the network, where ``r`` -- the
network's mean squared error over the camera's noise -- is estimated blind from the
frame itself: over the pixels that held still, the mean before this frame is unbiased and
independent of this frame's noise, so ``E[(y - m_before)**2] = MSE(y) + var / n_before``.
No truth is looked at; the estimate follows the scene and the light.
"""

from __future__ import annotations

import math

import numpy as np

from ..camera import GAIN_KNOWN, CameraModel
from ._gaussian import box_mean

#: The camera's noise sigma must be under this share of a pixel's signal for the pixel to
#: be averaged (module doc): there a change of a few percent stands out of the 3 x 3
#: test. Why 5 % (one-off probe, ``na-temporal``, 48-frame movies): at 10 % the project's
#: phantom, whose cells fire often, lost trace correlation at 100 photons (0.986 ->
#: 0.955, onsets 8.2 -> 13.5 ms late); at 5 % it is untouched there.
RELATIVE_NOISE = 0.05
#: The 3 x 3 mean of the squared standardised change a still pixel stays under.
CHANGE_LIMIT = 3.0
#: Fewest still pixels (held still two frames or more) the network's error is estimated
#: from; with fewer, nothing is mixed.
MIN_PIXELS = 64
#: Most frames a pixel's mean weighs equally; beyond, each new readout gets one part in
#: this many (an exponential average), so a slow drift -- bleaching -- is followed. Why
#: 6 (one-off probe, 48-frame movies at 1000 photons bleaching 0.5 % a frame): with up to
#: 32 the phantom ended 0.59 dB below no averaging, with 6 above it on both generators.
MAX_FRAMES = 6
#: The least ratio of the network's error to the camera's noise the mix assumes (a
#: network's error is never nothing: at 0 the mean would get no weight at all anyway).
MIN_ERROR = 0.01


def bright_variance(camera: CameraModel) -> float:
    """The noise variance above which a pixel is bright (module doc): its noise under
    :data:`RELATIVE_NOISE` of its signal counted from where the variance line reaches
    zero, and its shot noise above its read noise."""
    return max((camera.gain / RELATIVE_NOISE) ** 2, 2.0 * camera.read_noise**2)


class StillMeans:
    """One series' still-pixel means (module doc); :meth:`reset` at a gap or moved scene."""

    def __init__(self) -> None:
        self._mean: np.ndarray | None = None  # raw readouts' mean since each pixel changed
        self._count: np.ndarray | None = None  # frames in that mean
        self.share = 0.0  # of the latest frame's pixels, those mixed with their mean
        self.frames = 0.0  # the mean count of frames in those pixels' means
        self.model_error: float | None = None  # the latest estimate of r (module doc)

    def reset(self) -> None:
        self._mean = self._count = None
        self.share, self.frames, self.model_error = 0.0, 0.0, None

    def arrays(self) -> list[np.ndarray]:
        """What it holds (for the series' memory accounting)."""
        return [a for a in (self._mean, self._count) if a is not None]

    def mixed(
        self, frame: np.ndarray, out: np.ndarray, camera: CameraModel, gain_stderr: float = 0.0
    ) -> np.ndarray:
        """``out`` (the network's output for ``frame``, in the frame's units) mixed with
        the still pixels' raw means; updates the means with ``frame``. ``gain_stderr``: a
        live estimate's (0 for a configured camera). Masks are applied as 0/1 factors, not
        ``where=``: numpy's masked copies and sums took over 1 ms each at 512 x 512."""
        raw = np.asarray(frame, dtype=np.float32)
        if not np.isfinite(raw).all():  # kept as 0: its neighbours then read as changed
            raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        if self._mean is None or self._count is None or self._mean.shape != raw.shape:
            self._start(raw)
            return out
        mean, count = self._mean, self._count
        threshold = bright_variance(camera)
        top = float(np.max(out)) - camera.offset if out.size else 0.0
        top_variance = camera.gain * max(top, 0.0) + camera.read_noise**2
        # known (stream.camera.GAIN_KNOWN): with an undetermined gain,
        # (gain / RELATIVE_NOISE)**2 says nothing about the light
        known = camera.gain > GAIN_KNOWN * gain_stderr
        if not known or (math.isfinite(top) and top_variance <= threshold):
            # low light: not even the brightest pixel is bright (the variance rises with
            # the level), or the gain is unknown: every mean restarts, the output is the
            # network's
            np.copyto(mean, raw)
            count.fill(1.0)
            self.share, self.frames, self.model_error = 0.0, 0.0, None
            return out
        work = out if math.isfinite(top) else np.nan_to_num(out, nan=0.0, posinf=0.0)
        level = np.subtract(work, np.float32(camera.offset), dtype=np.float32)
        np.maximum(level, np.float32(0.0), out=level)
        var = level * np.float32(camera.gain)
        var += np.float32(camera.read_noise**2)
        bright = var > np.float32(threshold)  # NaN (a failed output): never
        change = raw - mean
        np.square(change, out=change)
        var_of_mean = var / count
        spread = var + var_of_mean  # the change's variance where the pixel held still
        with np.errstate(divide="ignore", invalid="ignore"):
            change /= spread
            still = box_mean(change, 3) < CHANGE_LIMIT
        still &= bright
        held = still.astype(np.float32)  # 1 where the pixel held still
        # the network's error, from pixels whose mean before this frame had 2+ readouts
        error = self._model_error(work, mean, var_of_mean, var, held * (count >= 2))
        grown = np.minimum(count + np.float32(1.0), np.float32(MAX_FRAMES))
        kept = np.float32(1.0) - np.float32(1.0) / grown  # the old mean's share where still
        kept *= held
        mean -= raw  # the mean becomes raw + kept * (mean - raw): a restart where kept is 0
        mean *= kept
        mean += raw
        grown -= np.float32(1.0)  # the count becomes grown where still, 1 elsewhere
        grown *= held
        grown += np.float32(1.0)
        self._count = count = grown
        self.model_error = error
        fused = int(np.count_nonzero(still))
        if error is None or not fused:
            self.share, self.frames = 0.0, 0.0
            return out
        # inverse-variance weights in units of 1 / var: the mean's is its count
        mixed = count * mean
        mixed += work / np.float32(error)
        mixed /= count + np.float32(1.0 / error)
        mixed -= out  # the output becomes out + held * (mixed - out); NaN stays NaN
        mixed *= held
        mixed += out
        self.share = fused / still.size
        self.frames = float(np.dot(count.ravel(), held.ravel())) / fused
        return mixed.astype(out.dtype, copy=False)

    def _start(self, raw: np.ndarray) -> None:
        self._mean = raw.copy()
        self._count = np.ones(raw.shape, np.float32)
        self.share, self.frames, self.model_error = 0.0, 0.0, None

    @staticmethod
    def _model_error(
        out: np.ndarray,
        mean: np.ndarray,
        var_of_mean: np.ndarray,
        var: np.ndarray,
        known: np.ndarray,
    ) -> float | None:
        """The network's mean squared error over the camera's noise variance on the pixels
        where ``known`` is 1 (``out`` and ``mean`` finite everywhere): ``mean`` is the raw
        mean before this frame, unbiased and independent of this frame's noise."""
        if np.count_nonzero(known) < MIN_PIXELS:
            return None
        weights = known.ravel()
        difference = out - mean
        np.square(difference, out=difference)
        spread = float(np.dot(difference.ravel(), weights))
        excess = spread - float(np.dot(var_of_mean.ravel(), weights))
        total = float(np.dot(var.ravel(), weights))
        if not (total > 0 and math.isfinite(excess)):
            return None
        return max(excess / total, MIN_ERROR)
