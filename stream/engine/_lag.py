"""A temporal model's lag behind its frame, taken back where the frame shows it.

A temporal network weighs the previous frames against the current one; where the scene
changed faster than it learned to follow (a cell that lights up within a frame, its
decay), its output keeps part of what was there before. The frame shows such a lag:
averaged over a small box, the frame less the output is the camera's noise alone (mean
0, its spread known from the camera) where the output is right, and stands off where it
lags. Where it stands off by more than :data:`LAG_Z` standard errors, and the frame also
stands off as far from the mean of the previous frames the model was given (the scene
changed there: a network's bias on a still scene is left alone), the box's mean
residual is added back, in full from :data:`LAG_Z` + :data:`LAG_RAMP`; elsewhere
nothing changes.

Where a box holds fewer than :data:`LAG_MIN_COUNT` photo-electrons, nothing is
judged: such counts are too skewed for the Gaussian's standard errors.

Why (2026-12-05, ``na-temporal``, live estimate, blend on): a held-out probe's movies of
sparse cells firing within a frame at low light, 128 x 128, two seeds, came out 0.5-2.6
dB under a truth-tuned Gaussian (bright transients 46.66 / 48.28 dB for 49.21 / 49.17,
dimmer ones 38.09 / 39.85 for 38.54 / 40.49); with the lag taken back 48.51 / 49.29 and
38.65 / 40.39. The evaluation's generators and its camera sweep moved -0.02 to +0.05 dB.
What was tried, and the figures: ``stream/engine/models/README.md``, "A temporal
model's lag".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Literal

import numpy as np

from ..camera import CameraModel, Spikes
from ._gaussian import box_mean

#: Pixels to leave out: a mask, or spikes' index arrays.
Excluded = Sequence[np.ndarray | Spikes | None]

#: The box (px) the residual and the change are averaged over.
LAG_BOX = 5
#: Standard errors of those means beyond which the output is taken to lag ...
LAG_Z = 3.0
#: ... and how many more before the lag is taken back in full.
LAG_RAMP = 2.0
#: How closely the output follows the frame: ``balanced`` (the thresholds above, the
#: best PSNR) or ``events``, for fast events at low light, at a cost in PSNR. Measured
#: (2026-12-07, ``deepdenoise evaluate na-temporal``, 48 frames of 128 x 128, live
#: estimate; ``events`` against ``balanced``): on the independent generator at 1 / 3 /
#: 10 photons per pixel, transient onsets 21 / 25 / 3.4 ms off the truth for 89 / 48 /
#: 7.2, traces correlating 0.80 / 0.87 / 0.98 for 0.75 / 0.82 / 0.97, PSNR 0.42 / 0.45 /
#: 0.28 dB lower; on the phantom 0.4-0.8 dB lower at 1-30 photons, textures 0.1-0.45 (1000
#: photons unchanged). On a user's trial movie (cells rising within a frame, 1 photon),
#: onset amplitudes 0.65-0.95 of the truth for 0.35-0.69.
Follow = Literal["balanced", "events"]
#: The (z, ramp) of each: see :data:`LAG_Z` and :data:`LAG_RAMP`.
THRESHOLDS: dict[str, tuple[float, float]] = {"balanced": (LAG_Z, LAG_RAMP), "events": (1.5, 1.0)}
#: Photo-electrons a box must hold (by the camera's gain) for its mean to be judged by
#: the Gaussian's standard errors: fewer, and the counts' skewed tail (an EMCCD's
#: multiplied electrons most of all) would read as a lag.
LAG_MIN_COUNT = 25.0


@cache
def _spread_along(length: int, size: int) -> np.ndarray:
    """Along an axis of ``length`` px: the standard error of :func:`box_mean`'s mean of
    ``size`` independent unit-variance pixels, per position (float32). Inside,
    1/sqrt(size); near a border the mirrored box counts some pixels twice, and its mean
    spreads wider (at the edge of a 5 px box, 0.6 for 0.45)."""
    r = size // 2
    sources = np.pad(np.arange(length), r, mode="symmetric")
    spread = np.empty(length, dtype=np.float32)
    for i in range(length):
        counts = np.bincount(sources[i : i + size], minlength=length)
        spread[i] = np.sqrt(np.sum(counts.astype(np.float64) ** 2)) / size
    return spread


@lru_cache(maxsize=8)  # a few frame shapes per service
def box_spread(shape: tuple[int, int], size: int) -> np.ndarray:
    """The standard error of :func:`box_mean` over independent unit-variance pixels,
    per pixel of a frame of ``shape``: 1/size inside, wider near the borders."""
    return np.outer(_spread_along(shape[0], size), _spread_along(shape[1], size))


def follow_frame(
    result: np.ndarray,
    frame: np.ndarray,
    previous: Sequence[np.ndarray],
    camera: CameraModel,
    excluded: Excluded = (),
    read_noise: float | None = None,
    follow: Follow = "balanced",
) -> None:
    """Add back to ``result`` (a temporal model's output for ``frame`` given the
    ``previous`` frames, raw units; in place) the frame's mean residual where the
    frame shows the output lagging a change. ``excluded``: masks of pixels that count
    as neither residual nor change (spikes, saturated pixels; non-finite ones always).
    ``read_noise``: the camera's, or what the model is told it is (no less than it was
    trained with: a photon counter's near 0 would make any residual in the dark look
    significant). ``follow``: the thresholds (:data:`THRESHOLDS`)."""
    z, ramp = THRESHOLDS[follow]
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        excluded = (*excluded, ~np.isfinite(frame))  # the output has them filled
    offset, gain = np.float32(camera.offset), np.float32(camera.gain)
    read = camera.read_noise if read_noise is None else read_noise
    # the box means of the frame, the output and the previous frames above the offset;
    # an excluded pixel is 0 in each, so it adds neither residual nor change
    now = box_mean(_finite(frame - offset, excluded), LAG_BOX)
    out = box_mean(_finite(result - offset, excluded), LAG_BOX)
    mean = now - out  # the frame's mean residual
    # the noise's variance from the frame's own level, not the output's (a lag biases it)
    noise_now = _variance(now.copy(), gain, read)
    spread = box_spread((int(frame.shape[0]), int(frame.shape[1])), LAG_BOX)
    weight = _beyond(mean, np.sqrt(noise_now) * spread, z, ramp)
    weight[now < np.float32(LAG_MIN_COUNT / LAG_BOX**2) * gain] = 0.0
    if previous:
        before = np.array(previous[0], dtype=np.float32)  # their mean, added in place
        for earlier in previous[1:]:
            before += earlier
        before *= np.float32(1.0 / len(previous))
        before -= offset
        then = box_mean(_finite(before, excluded), LAG_BOX)
        # the previous frames' mean is noisy too
        noise = noise_now + _variance(then.copy(), gain, read) / np.float32(len(previous))
        np.minimum(weight, _beyond(now - then, np.sqrt(noise) * spread, z, ramp), out=weight)
    result += weight * mean


def _finite(values: np.ndarray, excluded: Excluded) -> np.ndarray:
    """``values`` (in place) with the excluded and non-finite pixels at 0."""
    np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    for where in excluded:
        if where is not None:
            values[where] = 0.0
    return values


def _variance(level: np.ndarray, gain: np.float32, read: float) -> np.ndarray:
    """The camera's noise variance at ``level`` above its offset (in place)."""
    np.maximum(level, 0.0, out=level)
    level *= gain
    level += np.float32(read**2)
    return level


def _beyond(mean: np.ndarray, error: np.ndarray, z: float, ramp: float) -> np.ndarray:
    """0 where ``mean`` is within ``z`` standard ``error`` of 0, rising to 1 at
    ``z + ramp``."""
    weight = np.abs(mean) / np.maximum(error, np.float32(1e-6))
    weight -= np.float32(z)
    weight /= np.float32(ramp)
    return np.clip(weight, 0.0, 1.0, out=weight)
