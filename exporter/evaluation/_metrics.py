"""Image and trace metrics for scoring a denoiser against a known ground truth.

Image fidelity alone (PSNR, SSIM) can reward a method that a calcium-imaging experiment
cannot use: averaging frames in time raises PSNR on a mostly static field of view while
delaying and blurring the transients the experiment is about. So the evaluation also
extracts cell traces (mean over each footprint) and scores their correlation with the
ground-truth traces and the timing of transient onsets.

Conventions
-----------
- ``data_range`` is the ground truth's dynamic range (``max - min`` of the clean movie),
  the same for every method, so PSNR and SSIM compare methods on one scale.
- Movies are ``(T, H, W)``; reductions run in float64 over chunks of frames so a long
  movie never needs a float64 copy of itself.
- The onset detector is deliberately simple and applied identically to the estimated
  trace and to the reference trace; the *difference* of its two answers is the error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._results import MethodScore

log = logging.getLogger(__name__)

#: Frames per chunk for float64 reductions (bounded memory on long movies).
_CHUNK = 16
#: SSIM constants of Wang et al. (2004) and its Gaussian window.
K1, K2, SSIM_SIGMA, SSIM_TRUNCATE = 0.01, 0.03, 1.5, 3.5


def data_range_of(truth: np.ndarray) -> float:
    """The ground truth's dynamic range; 1.0 for a constant image (avoids 0/0)."""
    lo, hi = float(np.min(truth)), float(np.max(truth))
    return hi - lo if hi > lo else 1.0


def mse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error over all pixels (and frames), accumulated in float64."""
    if estimate.shape != truth.shape:
        raise ValueError(f"expected equal shapes, got {estimate.shape} and {truth.shape}")
    est = estimate.reshape(-1, *estimate.shape[-2:]) if estimate.ndim >= 2 else estimate[None]
    tru = truth.reshape(est.shape)
    total = 0.0
    for i in range(0, len(est), _CHUNK):
        diff = est[i : i + _CHUNK].astype(np.float64) - tru[i : i + _CHUNK]
        total += float(np.sum(diff * diff))
    return total / max(1, est.size)


def psnr(estimate: np.ndarray, truth: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range**2 / MSE)``; inf when exact.

    Over a movie the MSE pools all frames (one number per movie, not a mean of per-frame
    PSNRs, which would overweight the easiest frames).
    """
    rng = data_range_of(truth) if data_range is None else float(data_range)
    err = mse(estimate, truth)
    return math.inf if err == 0 else 10.0 * math.log10(rng * rng / err)


def ssim_frames(estimate: np.ndarray, truth: np.ndarray, data_range: float) -> np.ndarray:
    """Per-frame mean SSIM (Gaussian window, sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``).

    This follows Wang et al. (2004) as skimage's ``structural_similarity`` does with
    ``gaussian_weights=True, use_sample_covariance=False``: local statistics from a
    Gaussian filter (reflect borders), the SSIM map averaged after cropping the border
    the window cannot fill. Accepts ``(H, W)`` or ``(T, H, W)``.
    """
    from scipy import ndimage  # the train extra; psnr/mse (used by the demo) need only numpy

    if estimate.shape != truth.shape:
        raise ValueError(f"expected equal shapes, got {estimate.shape} and {truth.shape}")
    if estimate.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (T, H, W), got shape {estimate.shape}")
    est = estimate[None] if estimate.ndim == 2 else estimate
    tru = truth[None] if truth.ndim == 2 else truth
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    h, w = est.shape[1:]
    rows = slice(pad, h - pad) if h > 2 * pad else slice(None)
    cols = slice(pad, w - pad) if w > 2 * pad else slice(None)
    out = np.empty(len(est))
    for i in range(0, len(est), _CHUNK):
        x = est[i : i + _CHUNK].astype(np.float64)
        y = tru[i : i + _CHUNK].astype(np.float64)

        def blur(a: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(
                a, (0, SSIM_SIGMA, SSIM_SIGMA), mode="reflect", truncate=SSIM_TRUNCATE
            )

        mx, my = blur(x), blur(y)
        vx = blur(x * x) - mx * mx
        vy = blur(y * y) - my * my
        cxy = blur(x * y) - mx * my
        smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out[i : i + len(x)] = smap[:, rows, cols].mean(axis=(1, 2))
    return out


def ssim(estimate: np.ndarray, truth: np.ndarray, data_range: float | None = None) -> float:
    """Mean SSIM over pixels and frames; 1 for identical images."""
    rng = data_range_of(truth) if data_range is None else float(data_range)
    return float(np.mean(ssim_frames(estimate, truth, rng)))


def extract_traces(movie: np.ndarray, footprints: np.ndarray) -> np.ndarray:
    """Mean of each footprint over time: ``(n_cells, T)`` float64 from ``(T, H, W)``.

    A footprint is a boolean (or weight) mask; an empty footprint gives a NaN trace.
    """
    n = len(footprints)
    if n == 0:
        return np.zeros((0, len(movie)))
    weights = footprints.reshape(n, -1).astype(np.float64)
    counts = weights.sum(axis=1)
    flat = movie.reshape(len(movie), -1)
    traces = np.empty((n, len(movie)))
    for i in range(0, len(movie), _CHUNK):
        traces[:, i : i + _CHUNK] = weights @ flat[i : i + _CHUNK].astype(np.float64).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return traces / counts[:, None]


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``(n, T)`` arrays (1-D inputs give a 0-d array).

    A constant row has no defined correlation and gives NaN rather than a warning.
    """
    x = np.atleast_2d(np.asarray(a, np.float64))
    y = np.atleast_2d(np.asarray(b, np.float64))
    if x.shape != y.shape:
        raise ValueError(f"expected equal shapes, got {x.shape} and {y.shape}")
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    num = (x * y).sum(axis=1)
    r = np.full(len(x), np.nan)
    ok = den > 0
    r[ok] = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return r if np.ndim(a) > 1 else r[0]


def trace_correlation(
    estimate: np.ndarray, reference: np.ndarray, cells: np.ndarray | None = None
) -> float:
    """Mean Pearson r over ``cells`` (default all) whose correlation is defined; NaN if none."""
    r = pearson(estimate, reference)
    r = np.atleast_1d(r)
    if cells is not None:
        r = r[cells]
    r = r[np.isfinite(r)]
    return float(r.mean()) if len(r) else math.nan


# -- transient onsets ------------------------------------------------------------------


@dataclass(frozen=True)
class OnsetDetector:
    """Half-amplitude onset detector around a known spike frame.

    For spike frame ``s``: baseline = median of the ``pre`` frames before ``s``; peak = max
    over ``s .. s + post``; the onset is where the trace first reaches
    ``baseline + (peak - baseline) / 2``, linearly interpolated between frames (fractional
    frames, so a delay shorter than a frame is still visible). A crossing already reached
    in frame ``s - 1`` is clamped to ``s - 1``.

    ``min_snr``: an estimated transient counts as detected only if its amplitude is at
    least ``min_snr`` times the trace's noise (robust std of frame-to-frame differences
    / sqrt 2) and at least ``min_ratio`` of the reference amplitude, so pure noise in the
    window is not scored as an onset.
    """

    pre: int
    post: int
    min_snr: float = 3.0
    min_ratio: float = 0.5

    @classmethod
    def for_fps(cls, fps: float) -> OnsetDetector:
        """Windows in time: 0.15 s of baseline, 0.5 s to find the peak (>= 3 frames each)."""
        return cls(pre=max(3, round(0.15 * fps)), post=max(3, round(0.5 * fps)))

    def crossing(self, trace: np.ndarray, spike: int) -> tuple[float, float]:
        """``(onset in fractional frames, amplitude)`` of the transient at ``spike``.

        The onset is NaN when the trace does not rise above its baseline in the window.
        """
        s = int(spike)
        if not 1 <= s < len(trace):
            raise ValueError(f"expected a spike frame in 1..{len(trace) - 1}, got {s}")
        base = float(np.median(trace[max(0, s - self.pre) : s]))
        window = trace[s : s + self.post + 1]
        peak_at = int(np.argmax(window))
        amp = float(window[peak_at]) - base
        if not amp > 0:
            return math.nan, amp
        thr = base + 0.5 * amp
        j = s + int(np.argmax(window[: peak_at + 1] >= thr))  # first frame at/above threshold
        prev = float(trace[j - 1])
        if prev >= thr:  # only possible for j == s: the crossing precedes the window
            return float(j - 1), amp
        return (j - 1) + (thr - prev) / (float(trace[j]) - prev), amp

    def isolated(self, spikes: np.ndarray, n_frames: int) -> np.ndarray:
        """Spike frames that have a full window and no other spike in ``[s - pre, s + post]``.

        Overlapping transients have no single well-defined onset, and edge spikes no
        baseline; both are left out rather than scored with a biased detector.
        """
        s = np.unique(np.asarray(spikes, dtype=np.int64))
        if len(s) == 0:
            return s
        ok = (s >= self.pre) & (s + self.post < n_frames)
        gap_before = np.diff(s, prepend=-(10**9))
        gap_after = np.diff(s, append=10**9)
        ok &= (gap_before > self.pre) & (gap_after > self.post)
        return s[ok]


def noise_sigma(trace: np.ndarray) -> float:
    """Robust white-noise std of a trace: MAD of first differences / (0.6745 sqrt 2)."""
    d = np.diff(np.asarray(trace, np.float64))
    if len(d) == 0:
        return 0.0
    return float(np.median(np.abs(d - np.median(d))) / (0.6745 * math.sqrt(2.0)))


@dataclass(frozen=True)
class OnsetStats:
    """Onset timing of an estimated movie's traces against the reference traces.

    ``errors_ms`` holds ``estimate - reference`` for detected onsets: positive = late.
    """

    n_reference: int
    errors_ms: np.ndarray

    @property
    def n_detected(self) -> int:
        return len(self.errors_ms)

    @property
    def detection_rate(self) -> float:
        return self.n_detected / self.n_reference if self.n_reference else math.nan

    @property
    def mae_ms(self) -> float:
        return float(np.mean(np.abs(self.errors_ms))) if self.n_detected else math.nan

    @property
    def bias_ms(self) -> float:
        return float(np.mean(self.errors_ms)) if self.n_detected else math.nan


def onset_errors(
    estimate: np.ndarray,
    reference: np.ndarray,
    spikes: list[np.ndarray],
    fps: float,
    detector: OnsetDetector | None = None,
) -> OnsetStats:
    """Compare onsets of ``estimate`` traces with those of ``reference`` traces.

    Parameters
    ----------
    estimate, reference
        ``(n_cells, T)`` traces: a method's extracted traces and the ground truth's.
    spikes
        Per cell, the true spike frames; only isolated spikes are scored.
    fps
        Frame rate, to turn frames into milliseconds.
    """
    det = detector or OnsetDetector.for_fps(fps)
    n_frames = reference.shape[1]
    errors: list[float] = []
    n_ref = 0
    for k, cell_spikes in enumerate(spikes):
        sigma = noise_sigma(estimate[k])
        for s in det.isolated(cell_spikes, n_frames):
            t_ref, a_ref = det.crossing(reference[k], int(s))
            if not math.isfinite(t_ref):
                continue  # no visible transient in the ground truth: nothing to find
            n_ref += 1
            t_est, a_est = det.crossing(estimate[k], int(s))
            if (
                math.isfinite(t_est)
                and a_est >= det.min_ratio * a_ref
                and a_est >= det.min_snr * sigma
            ):
                errors.append((t_est - t_ref) * 1000.0 / fps)
    return OnsetStats(n_ref, np.asarray(errors))


# -- scoring a whole method output -------------------------------------------------------


class MovieScorer:
    """Scores method outputs against one ground-truth movie.

    The reference traces (footprint means of the clean movie) are computed once. Trace
    correlation averages over cells that spike in the movie (all cells if none does):
    a silent cell's trace is flat but for drift, and its correlation says nothing about
    transients.
    """

    def __init__(
        self, clean: np.ndarray, footprints: np.ndarray, spikes: list[np.ndarray], fps: float
    ) -> None:
        self.clean, self.footprints, self.spikes, self.fps = clean, footprints, spikes, fps
        self.range = data_range_of(clean)
        self.reference = extract_traces(clean, footprints)
        active = np.array([len(s) > 0 for s in spikes], dtype=bool)
        self.cells = active if active.any() else None
        self.detector = OnsetDetector.for_fps(fps)

    def score(
        self,
        method: str,
        kind: str,
        out: np.ndarray,
        runtime_ms: float,
        frames: np.ndarray | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[MethodScore, np.ndarray | None]:
        """Score ``out``: the whole movie, or only ``frames`` (then no trace metrics).

        Returns the score and the extracted traces (None for a frame subset).
        """
        clean = self.clean if frames is None else self.clean[frames]
        traces, r, onsets = None, math.nan, OnsetStats(0, np.zeros(0))
        if frames is None and len(self.reference):
            traces = extract_traces(out, self.footprints)
            r = trace_correlation(traces, self.reference, self.cells)
            onsets = onset_errors(traces, self.reference, self.spikes, self.fps, self.detector)
        score = MethodScore(
            method=method,
            kind=kind,
            psnr=psnr(out, clean, self.range),
            ssim=ssim(out, clean, self.range),
            trace_r=r,
            onset_mae_ms=onsets.mae_ms,
            onset_bias_ms=onsets.bias_ms,
            onset_detection_rate=onsets.detection_rate,
            onsets_detected=onsets.n_detected,
            onsets_reference=onsets.n_reference,
            runtime_ms_per_frame=runtime_ms,
            frames_scored=len(clean),
            params=params or {},
        )
        log.info(
            "  %-12s PSNR %6.2f dB  SSIM %.3f  trace r %.3f  onset MAE %.0f ms  %.2f ms/frame",
            *(method, score.psnr, score.ssim, r, score.onset_mae_ms, runtime_ms),
        )
        return score, traces
