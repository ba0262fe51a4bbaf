"""Camera noise for training: a user's recorded noise, and fitting the camera model to it.

Two sources of noise train a denoiser here. The Poisson-Gaussian camera model
(:class:`CameraNoise`, the same model the simulator streams) is exact for an ideal
camera; a *recorded* stack of noise-only frames carries what a real camera adds beyond
it (row/column patterns, hot pixels, non-Gaussian read noise), so sampling crops of it
teaches the model the noise the user will actually see.

What can be identified from what (:func:`estimate_camera_noise`)
------------------------------------------------------------------
- Dark frames (no light) give the **offset** (their mean) and the **read noise** (the
  std of frame-to-frame differences over sqrt 2, which cancels fixed-pattern offsets).
  They carry no shot noise, so they say nothing about the **gain**.
- A stack with varying illumination (a flat-field series at several intensities, or a
  static non-uniform scene) gives the **gain** as the slope of the photon-transfer
  line ``var = gain * (mean - offset) + read_noise**2``. The line alone only gives
  ``read_noise**2 - gain * offset``, so offset and read noise still need dark frames
  (``dark=``) or a known ``offset``.
- Gain is reported only when the variance grows significantly with the mean; a dark
  stack (or one with too little spread of intensity) raises :class:`NoiseFitError`.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream import ConfigError
from stream.sim import NoiseModel
from stream.store import open_recording

log = logging.getLogger(__name__)

#: The camera model is the phantom's, reused so training and simulation agree exactly.
CameraNoise = NoiseModel

#: Smallest slope / standard error accepted as an identified gain.
MIN_GAIN_SIGNIFICANCE = 10.0


class NoiseFitError(ConfigError):
    """Camera noise parameters cannot be identified from the data given."""


# -- loading ---------------------------------------------------------------------------


def load_noise_stack(path: Path, max_frames: int | None = None) -> np.ndarray:
    """Read a stack of frames as (T, H, W) float32.

    Accepts what :func:`stream.store.open_recording` reads: ``.npy``, ``.tif``/``.tiff``
    and ``.zarr`` (a bare array, a group holding exactly one array, or a deepdenoise
    series store: its ``raw`` frames flagged ``valid``, so holes of a dropped stream are
    not read as zeros). A single 2-D image becomes a stack of one frame. ``max_frames``
    keeps the first frames only, which bounds memory for long recordings.
    """
    recording = open_recording(Path(path))
    count = len(recording) if max_frames is None else min(len(recording), max_frames)
    frames = np.stack([recording.frame(i) for i in range(count)])
    return _as_stack(frames, str(path))


def _as_stack(data: np.ndarray, what: str, max_frames: int | None = None) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim > 3 and sum(s != 1 for s in arr.shape[:-2]) <= 1:
        arr = arr.reshape((-1, *arr.shape[-2:]))  # e.g. TIFF (T, 1, H, W): singleton axes
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ConfigError(f"{what}: expected frames (T, H, W) or one image (H, W), got {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise ConfigError(f"{what}: expected integer or float pixels, got dtype {arr.dtype}")
    if arr.shape[0] == 0 or min(arr.shape[1:]) < 1:
        raise ConfigError(f"{what}: the stack is empty, shape {arr.shape}")
    if max_frames is not None:
        arr = arr[:max_frames]
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out.sum(dtype=np.float64)):
        raise ConfigError(f"{what}: the stack contains NaN or infinite pixels")
    return out


# -- recorded noise --------------------------------------------------------------------


class RecordedNoise:
    """Random crops of a recorded noise stack, as zero-mean float32 noise in ADU.

    Parameters
    ----------
    stack
        Noise-only frames (T, H, W), e.g. dark frames, in camera ADU.
    remove_pixel_mean
        Subtract each pixel's temporal mean (the offset and the fixed-pattern offsets,
        which a live frame's normalisation does not remove either way) and rescale by
        ``sqrt(T / (T - 1))`` so the noise keeps its variance. False subtracts only the
        global mean, keeping the fixed pattern as part of the noise to learn.

    Crops are flipped at random, but never transposed or rotated: camera noise is
    often structured along rows or columns (sCMOS column amplifiers, row readout), and
    a rotation would teach the model patterns the camera never produces.
    """

    def __init__(self, stack: np.ndarray, *, remove_pixel_mean: bool = True) -> None:
        frames = _as_stack(stack, "recorded noise").copy()
        if remove_pixel_mean:
            t = frames.shape[0]
            if t < 2:
                raise ConfigError(
                    "expected at least 2 frames of noise, to tell it from each pixel's "
                    "fixed offset, got 1 (a 2-D array is one frame): record more dark frames"
                )
            frames -= frames.mean(axis=0, dtype=np.float64).astype(np.float32)
            frames *= np.float32(math.sqrt(t / (t - 1)))
        else:
            frames -= np.float32(frames.mean(dtype=np.float64))
        frames.setflags(write=False)
        self.frames = frames
        #: rms of the noise (ADU), what ``scale=1`` samples have on average
        self.std = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64))))

    @property
    def shape(self) -> tuple[int, int]:
        """Frame size (H, W): the largest crop available."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def sample(
        self, shape: tuple[int, int], rng: np.random.Generator, scale: float = 1.0
    ) -> np.ndarray:
        """A random frame's random ``shape`` crop, randomly flipped, times ``scale``."""
        h, w = int(shape[0]), int(shape[1])
        big_h, big_w = self.shape
        if not (0 < h <= big_h and 0 < w <= big_w):
            raise ConfigError(
                f"expected a crop of at most the recorded frame size {big_h}x{big_w}, "
                f"got {h}x{w}; record larger frames or use smaller patches"
            )
        t = int(rng.integers(len(self)))
        y, x = int(rng.integers(big_h - h + 1)), int(rng.integers(big_w - w + 1))
        crop = self.frames[t, y : y + h, x : x + w]
        flip_y, flip_x = rng.random(2) < 0.5
        if flip_y:
            crop = crop[::-1]
        if flip_x:
            crop = crop[:, ::-1]
        return np.multiply(crop, np.float32(scale), dtype=np.float32)


# -- camera model fit ------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseFit:
    """Estimated camera parameters and how well the data determined them.

    ``estimated`` names the parameters that came from the data (the others were
    given). ``gain_stderr``, ``r2`` and ``n_points`` describe the photon-transfer fit
    and are None / 0 when the gain was given rather than fitted.
    """

    gain: float
    offset: float
    read_noise: float
    estimated: tuple[str, ...]
    gain_stderr: float | None = None
    intercept: float | None = None  # read_noise**2 - gain * offset, ADU^2
    r2: float | None = None
    n_points: int = 0
    mean_range: tuple[float, float] | None = None  # span of the fitted means, ADU
    notes: list[str] = field(default_factory=list)

    def to_noise_model(self) -> NoiseModel:
        return NoiseModel(gain=self.gain, offset=self.offset, read_noise=self.read_noise)


def dark_statistics(dark: np.ndarray) -> tuple[float, float]:
    """``(offset, read_noise)`` of dark frames, in ADU.

    The read noise is the rms of consecutive-frame differences over sqrt 2 (each
    difference image's mean removed), so fixed-pattern offsets and slow offset drift
    do not count as noise. It includes the 1/12 ADU^2 of integer rounding, as the
    camera's frames do.
    """
    stack = _as_stack(dark, "dark frames")
    _check_not_saturated(stack)
    if stack.shape[0] < 2:
        raise NoiseFitError(f"expected at least 2 dark frames for the read noise, got {len(stack)}")
    offset = float(stack.mean(dtype=np.float64))
    var = 0.0
    for a, b in itertools.pairwise(stack):
        d = b.astype(np.float64) - a
        var += float(np.var(d, ddof=1))
    if var == 0.0:  # every camera's dark frames carry read noise
        raise NoiseFitError(
            f"the dark frames do not vary from frame to frame (all {stack.shape[0]} read "
            f"{offset:.6g} on average, read noise 0): expected dark frames of a camera, "
            "which always carry read noise; these look clipped or synthetic"
        )
    return offset, math.sqrt(var / (len(stack) - 1) / 2.0)


def light_in(frames: np.ndarray, block: int = 16) -> str | None:
    """Why frames meant to be dark look lit, or None: their noise grows with their level,
    region by region, as light's shot noise does (the photon-transfer slope at
    :data:`MIN_GAIN_SIGNIFICANCE` standard errors), hot pixels left out. Dark frames'
    regions barely differ in level and their slope is noise (z 1-3 on a new user's darks
    with a fixed pattern, 2026-12-07); a scene at 2-20 photons gave z 180, and was taken
    for dark frames without a word: its offset and read noise were the scene's. Dark
    current that varies over the sensor (amp glow) grows so too, which is why this warns."""
    stack = _without_hot_pixels(_as_stack(frames, "dark frames"))
    try:
        x, y = _transfer_points(stack, block)
        slope, _, se, _, _ = _fit_line(x, y, block * block)
    except NoiseFitError:  # too small, or one level throughout: nothing to tell
        return None
    if not (slope > 0 and slope > MIN_GAIN_SIGNIFICANCE * se):
        return None
    return (
        f"their noise grows with their level as light's does (slope {slope:.3g} ± {se:.2g} "
        f"ADU² per ADU over levels {float(x.min()):.4g}-{float(x.max()):.4g} ADU): are they "
        "lit (shutter open)? Dark frames' offset and read noise are taken from them; "
        "expected frames taken with the shutter closed (dark current that varies over "
        "the sensor, amp glow, shows so too)"
    )


#: Share of (frame pair, region) points whose level changed by more than 3 standard
#: errors beyond which a gain stack is not still: by chance 0.27 %; still flat fields
#: 0.1-0.3 %, a user's recordings of firing cells 4.8-42 % (their gain fitted 7-30 %
#: high, its standard error far smaller than that).
MOVING_SHARE = 0.02


def scene_changes(frames: np.ndarray, block: int = 16) -> str | None:
    """Why frames meant for the gain fit are not still, or None. The fit leaves out a
    region whose level stepped by 5 standard errors, but activity or motion smaller than
    that adds its change to the region's noise, and the gain comes out high, its
    standard error blind to it."""
    stack = _as_stack(frames, "frames")
    t, h, w = stack.shape
    bh, bw = h // block, w // block
    if t < 2 or bh == 0 or bw == 0:
        return None
    changed = total = 0
    rows, columns = slice(0, bh * block), slice(0, bw * block)
    for a, b in itertools.pairwise(stack):
        d = np.subtract(b[rows, columns], a[rows, columns], dtype=np.float64)
        d = d.reshape(bh, block, bw, block).transpose(0, 2, 1, 3).reshape(bh * bw, -1)
        spread = np.sqrt(d.var(axis=1, ddof=1) / (block * block))
        stepped = int(np.count_nonzero(np.abs(d.mean(axis=1)) > 3 * spread))
        if 2 * stepped > bh * bw:  # most regions: the light stepped (a flat-field series)
            continue
        changed += stepped
        total += bh * bw
    if total == 0:
        return None
    share = changed / total
    if share <= MOVING_SHARE:
        return None
    return (
        f"{100 * share:.1f} % of its {block}x{block} regions changed level between frames "
        f"beyond 3 standard errors (by chance 0.3 %): activity, motion or flicker; their "
        "change counts as noise and the gain comes out high (its ± does not show it). "
        "Expected a still flat field (or a still scene): frames whose light changes only "
        "by its shot noise"
    )


#: Pixels whose mean over the frames stands this many robust standard deviations above
#: the median pixel's are hot (:func:`_without_hot_pixels`).
HOT_SIGMAS = 8.0


def _without_hot_pixels(stack: np.ndarray) -> np.ndarray:
    """``stack`` with each hot pixel's frames replaced by its left neighbour's. Dark
    current's shot noise makes a hot pixel's noise grow with its level as light's does:
    60 hot pixels of 20 e- in 512² dark frames gave a transfer slope at 10 standard
    errors (a reviewer's probe), as a lit scene does. A scene's light is spread over
    many pixels whose means the robust spread takes in; a hot pixel stands alone."""
    means = stack.mean(axis=0, dtype=np.float64)
    median = float(np.median(means))
    spread = 1.4826 * float(np.median(np.abs(means - median)))
    hot = means > median + HOT_SIGMAS * max(spread, 1e-12)
    if not hot.any():
        return stack
    cleaned = stack.astype(np.float32)
    left = hot.copy()
    for shift in (1, -1, 2, -2, 3, -3):  # the nearest neighbour along the row not hot itself
        source = left & ~np.roll(hot, shift, axis=1)  # hot, its neighbour `shift` left not
        cleaned[:, source] = np.roll(cleaned, shift, axis=2)[:, source]
        left &= ~source
    cleaned[:, left] = np.float32(median)  # in a cluster: the dark level, noiseless
    return cleaned


#: The median of a chi-square of one degree of freedom: a normal's squares' median over
#: their mean.
CHI2_1_MEDIAN = 0.45494


def dark_pattern(dark: np.ndarray, read_noise: float) -> float:
    """The rms, in ADU, of the fixed pattern of offsets in dark frames, pixel to pixel:
    what frame differences, and so ``read_noise``, leave out. From their average's
    residuals from each pixel's eight neighbours' mean (which a linear shading does not
    reach, and a pattern of whole columns or rows does, at three quarters of its
    variance) by the median of their squares (which a few hot pixels do not move), less
    what the frames' read noise leaves in the average. (Their plain spread read 3 hot
    pixels of 2,304 as a pattern of 10.8 ADU, and a gradient of 0.1 ADU a pixel as 1.4;
    curvature residuals, which cancel whole columns, read a column pattern of 2.6 ADU
    as 0.07.)"""
    stack = _as_stack(dark, "dark frames")
    if min(stack.shape[1:]) < 3:
        return 0.0  # no pixel with all eight neighbours
    average = stack.astype(np.float64).mean(axis=0)
    around = sum(
        average[1 + dy : average.shape[0] - 1 + dy, 1 + dx : average.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dy, dx) != (0, 0)
    )
    residuals = average[1:-1, 1:-1] - around / 8.0
    # white noise's residual variance is 1 + 1/8 of its own
    spread = float(np.median(np.square(residuals))) / CHI2_1_MEDIAN / (1.0 + 1.0 / 8.0)
    return math.sqrt(max(spread - read_noise**2 / len(stack), 0.0))


#: Share of dark pixels at an ADC's top reading above which they are refused.
SATURATED_SHARE = 0.01


def _check_not_saturated(stack: np.ndarray) -> None:
    """Dark frames read at the top of an ADC (2**k - 1: 255, 4095, 65535) are clipped:
    their mean and spread are not the offset and read noise (65535 everywhere read as
    offset 65535, read noise 0)."""
    top = float(stack.max())
    if top < 255 or not float(top + 1).is_integer() or int(top + 1) & int(top) != 0:
        return  # not 2**k - 1 of an 8-bit or wider ADC
    share = float(np.count_nonzero(stack == top)) / stack.size
    if share > SATURATED_SHARE:
        raise NoiseFitError(
            f"{share:.0%} of the dark frames' pixels read {top:.0f}, the top of a "
            f"{int(top).bit_length()}-bit camera: saturated, so they cannot give the offset "
            "and read noise; expected frames taken with the shutter closed"
        )


def _transfer_points(stack: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Photon-transfer points, one per (consecutive frame pair, block x block region).

    ``mean`` is the region's mean of the pair and ``var`` the region's variance of the
    pair's difference over 2. Both are linear in the per-pixel expectation, so the
    points lie on the transfer line whatever the structure inside a region. Regions
    whose level changed between the two frames (the mean difference exceeds 5 standard
    errors: a flat-field series stepping to its next intensity) are left out, because
    a change that is not uniform over the region would add to the variance.
    """
    t, h, w = stack.shape
    bh, bw = h // block, w // block
    if t < 2 or bh == 0 or bw == 0:
        raise NoiseFitError(
            f"expected at least 2 frames of at least {block}x{block} px for a "
            f"photon-transfer fit, got {stack.shape}"
        )
    n_px = block * block
    means, variances = [], []
    for a, b in itertools.pairwise(stack):
        a64 = a[: bh * block, : bw * block].astype(np.float64)
        b64 = b[: bh * block, : bw * block].astype(np.float64)
        m = ((a64 + b64) / 2).reshape(bh, block, bw, block).mean(axis=(1, 3)).ravel()
        d = (b64 - a64).reshape(bh, block, bw, block).transpose(0, 2, 1, 3).reshape(bh * bw, -1)
        v = d.var(axis=1, ddof=1)
        stable = np.abs(d.mean(axis=1)) <= 5 * np.sqrt(v / n_px)
        means.append(m[stable])
        variances.append(v[stable] / 2)
    return np.concatenate(means), np.concatenate(variances)


def _fit_line(x: np.ndarray, y: np.ndarray, n_px: int) -> tuple[float, float, float, float, int]:
    """Weighted, outlier-trimmed fit of ``y = a x + b``: (a, b, stderr of a, R^2, n used).

    A sample variance of ``n_px`` pixels has std ``var * sqrt(2 / (n_px - 1))``, so
    points are weighted by ``1 / predicted**2``; points off by more than 5 of those
    stds (pairs straddling a change of illumination) are dropped and the fit repeated.
    """
    keep = np.ones(len(x), bool)
    a = b = se = 0.0
    for _ in range(4):
        xs, ys = x[keep], y[keep]
        if len(xs) < 3 or np.ptp(xs) <= 0:
            raise NoiseFitError("too few distinct intensity levels for a photon-transfer fit")
        pred = np.maximum(a * xs + b, 1e-12) if a or b else np.maximum(ys.mean(), 1e-12)
        wts = 1.0 / np.square(pred) * np.ones_like(xs)
        design = np.stack([xs, np.ones_like(xs)], axis=1)
        cov = np.linalg.pinv(design.T @ (design * wts[:, None]))
        a, b = cov @ (design.T @ (wts * ys))
        resid = ys - (a * xs + b)
        chi2 = float(np.sum(wts * resid**2)) / max(len(xs) - 2, 1)
        se = math.sqrt(max(cov[0, 0] * chi2, 0.0))
        sigma = np.maximum(a * x + b, 1e-12) * math.sqrt(2.0 / (n_px - 1))
        new_keep = np.abs(y - (a * x + b)) <= 5 * sigma
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    xs, ys = x[keep], y[keep]
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ys - (a * xs + b)) ** 2)) / ss_tot if ss_tot > 0 else 0.0
    return float(a), float(b), se, r2, int(keep.sum())


def estimate_camera_noise(
    stack: np.ndarray,
    *,
    dark: np.ndarray | None = None,
    gain: float | None = None,
    offset: float | None = None,
    block: int = 16,
) -> NoiseFit:
    """Fit the Poisson-Gaussian camera model to recorded frames (see the module doc).

    Parameters
    ----------
    stack
        (T, H, W) frames in ADU. For the gain: varying illumination (a flat-field series,
        or a static non-uniform scene) that stays put between consecutive frames. If
        ``gain`` is given and ``dark`` is not, ``stack`` is taken to be dark frames.
    dark
        Dark frames: offset and read noise come from them.
    gain, offset
        Known values (datasheet, earlier fit): used as given instead of estimated.
    block
        Side of the square regions that give one photon-transfer point per frame pair.

    Raises
    ------
    NoiseFitError
        Gain requested but the variance does not grow significantly with the mean
        (e.g. a dark-only stack), or offset and read noise not separable (no dark
        frames and no offset given).
    """
    frames = _as_stack(stack, "noise stack")
    estimated: list[str] = []
    a = b = se = r2 = None
    n_points, span = 0, None
    notes: list[str] = []
    if gain is None:
        x, y = _transfer_points(frames, block)
        if dark is not None:
            dx, dy = _transfer_points(_as_stack(dark, "dark frames"), block)
            x, y = np.concatenate([x, dx]), np.concatenate([y, dy])
        span = (float(x.min()), float(x.max()))
        try:
            a, b, se, r2, n_points = _fit_line(x, y, block * block)
        except NoiseFitError as exc:
            raise NoiseFitError(_gain_message(span, str(exc))) from exc
        if not (a > 0 and a > MIN_GAIN_SIGNIFICANCE * se):
            raise NoiseFitError(
                _gain_message(
                    span,
                    f"the variance does not grow with the mean (slope {a:.4g}"
                    f" +- {se:.2g} ADU per ADU)",
                )
            )
        gain = a
        estimated.append("gain")
    if dark is not None:
        dark_offset, read = dark_statistics(dark)
        estimated.append("read_noise")
        if offset is None:
            offset = dark_offset
            estimated.append("offset")
        if b is not None:
            implied = b + gain * offset
            notes.append(f"transfer-line read noise^2 {implied:.3g} vs dark {read**2:.3g} ADU^2")
    elif b is not None:
        if offset is None:
            raise NoiseFitError(
                "offset and read noise cannot be separated from a photon-transfer line "
                f"(it gives only read_noise^2 - gain*offset = {b:.4g} ADU^2): pass dark "
                "frames (dark=, --dark) or a known offset (offset=, --offset)"
            )
        read2 = b + gain * offset
        if read2 < 0:
            notes.append(f"read noise^2 from the line is {read2:.3g} < 0: offset too low? set 0")
            log.warning("camera fit: %s", notes[-1])
        read = math.sqrt(max(read2, 0.0))
        estimated.append("read_noise")
    else:  # gain given, no dark: the stack itself is the dark stack
        dark_offset, read = dark_statistics(frames)
        estimated.append("read_noise")
        if offset is None:
            offset = dark_offset
            estimated.append("offset")
    return NoiseFit(
        gain=float(gain),
        offset=float(offset),
        read_noise=float(read),
        estimated=tuple(estimated),
        gain_stderr=se,
        intercept=b,
        r2=r2,
        n_points=n_points,
        mean_range=span,
        notes=notes,
    )


def _gain_message(span: tuple[float, float], why: str) -> str:
    return (
        f"gain is not identifiable: {why}; the frames' mean spans only "
        f"{span[0]:.1f}..{span[1]:.1f} ADU. Dark frames give offset and read noise only: "
        "record frames at several illumination levels (a flat-field series) for the gain, "
        "or pass a known gain (gain=, --gain)"
    )
