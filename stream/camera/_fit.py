"""The camera's mean-variance line through noise samples (:mod:`._samples`): binned
medians, a weighted line, the correction for noisy levels, and the fit of readouts
clipped at a floor."""

from __future__ import annotations

import math

import numpy as np

from ._floor import latent_from_clipped
from ._samples import MEDIAN_OVER_MEAN

BINS = 24
#: The dilution correction is trusted down to this reliability (below, the slope is
#: mostly level noise: the correction is capped and the stderr says so).
MIN_RELIABILITY = 0.2


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
    median_over_mean: np.ndarray | float = MEDIAN_OVER_MEAN[16],
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
    """:func:`fit_line`, corrected for the noise of the levels binned by (:func:`undilute`)."""
    return undilute(fit_line(means, power), means, power, level_factor)


def undilute(
    line: tuple[float, float, float],
    means: np.ndarray,
    power: np.ndarray,
    level_factor: np.ndarray,
    level_extra: float = 0.0,
) -> tuple[float, float, float]:
    """``line`` (:func:`fit_line` of ``means``, ``power``), corrected for the noise of the
    levels binned by: the same line corrected again for another level noise needs no
    second fit.

    ``level_factor``: each sample's level noise variance per unit of pixel noise variance;
    ``level_extra``: a level noise variance besides (a fixed pattern's over a block).
    """
    slope, intercept, stderr = line
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
        level_noise += level_extra
        reliability = max(1.0 - level_noise / spread, MIN_RELIABILITY)
        corrected = slope / reliability
    return corrected, at_pivot - corrected * pivot, stderr / reliability
