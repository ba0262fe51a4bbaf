"""Classical denoisers a trained model has to beat, with parameters tuned fairly.

Every tunable baseline gets its parameter chosen on a *validation* movie (a different
seed: other cells, other spikes, other noise) at the same noise level, by the lowest
mean squared error against that movie's ground truth. Tuning on the test movie would
flatter the baselines; not tuning them at all would flatter the model.

- Gaussian smoothing: spatial only, per frame (what a live viewer's "smooth" does).
- Box-car average in time, **causal** (frame ``t`` averages ``t - w + 1 .. t``): a live
  display or a closed-loop trigger cannot wait for future frames, so this is the
  temporal filter an experimenter could actually use online. It delays transients by
  about ``(w - 1) / 2`` frames, which the onset metric exposes.
- Wiener (``scipy.signal.wiener``): locally adaptive, spatial, per frame, with the
  noise power known from the validation movie; borders are reflect-padded first
  (scipy zero-pads, which darkens the frame edge).
- BM3D (``bm3d`` package) with ``sigma_psd`` the validation noise rms in the model's
  normalised units times a factor tuned on validation frames (BM3D assumes stationary
  Gaussian noise; camera noise is Poisson-Gaussian, brighter where the cells are). A
  strong classical reference, but ~1 s per frame on CPU, so the evaluation runs it on a
  subset of frames only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from ._metrics import mse

log = logging.getLogger(__name__)

GAUSSIAN_SIGMAS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
BOXCAR_WINDOWS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24)
WIENER_WINDOWS: tuple[int, ...] = (3, 5, 7, 9, 11)
#: Multipliers of the rms noise for BM3D's sigma: the rms understates the noise where the
#: signal is (Poisson), and MSE is dominated there, so the best sigma is larger. On the
#: reference phantom (levels 0.5-4) the factor 1.0 never won and 1.5-2.0 usually did.
BM3D_SIGMA_FACTORS: tuple[float, ...] = (1.5, 2.0, 2.5)


def gaussian_smooth(movie: np.ndarray, sigma: float) -> np.ndarray:
    """Spatial Gaussian smoothing of each frame (reflect borders), float32."""
    return ndimage.gaussian_filter(
        movie.astype(np.float32, copy=False), (0, sigma, sigma), mode="reflect"
    )


def boxcar_causal(movie: np.ndarray, window: int) -> np.ndarray:
    """Causal running mean over ``window`` frames, float32.

    Frame ``t`` of the output averages input frames ``t - window + 1 .. t``; before the
    window fills, frame 0 stands in for the missing past (as a live filter started on
    frame 0 would). No output frame depends on a later input frame.
    """
    if window < 1:
        raise ValueError(f"expected a window of >= 1 frames, got {window}")
    data = movie.astype(np.float32, copy=False)
    if window == 1:
        return data.copy()
    # uniform_filter1d centres its window on [t - w // 2, t + (w - 1) // 2]; an origin of
    # (w - 1) // 2 shifts it left to end at t (checked by a test with a step input).
    return ndimage.uniform_filter1d(data, window, axis=0, mode="nearest", origin=(window - 1) // 2)


def wiener_filter(movie: np.ndarray, window: int, noise_var: float | None) -> np.ndarray:
    """``scipy.signal.wiener`` on each frame with a ``window`` x ``window`` neighbourhood.

    ``noise_var`` is the noise power in squared input units (None: scipy's estimate, the
    mean local variance). Frames are reflect-padded so borders see real neighbours.
    """
    r = window // 2
    out = np.empty(movie.shape, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # flat patches: lVar == 0
        for t, frame in enumerate(movie):
            padded = np.pad(frame.astype(np.float64), r, mode="reflect")
            filt = signal.wiener(padded, window, noise_var)
            out[t] = filt[r : r + frame.shape[0], r : r + frame.shape[1]]
    return out


def bm3d_import_error() -> str | None:
    """None if the ``bm3d`` package imports, else why not (for the report)."""
    try:
        import bm3d  # noqa: F401
    except Exception as exc:  # ImportError, or a broken binary dependency
        return f"{type(exc).__name__}: {exc}"
    return None


def bm3d_denoise(frames: np.ndarray, sigma_adu: float, offset: float, scale: float) -> np.ndarray:
    """BM3D on each frame, in normalised units ``(x - offset) / scale``; float32 ADU out.

    ``sigma_psd = sigma_adu / scale``: BM3D assumes stationary Gaussian noise of known
    std; camera noise is Poisson-Gaussian, so one std (the frame's average) is an
    approximation that favours neither bright nor dim regions.
    """
    import bm3d

    sigma = float(sigma_adu) / float(scale)
    out = np.empty(frames.shape, np.float32)
    for t, frame in enumerate(frames):
        z = (frame.astype(np.float64) - offset) / scale
        out[t] = np.asarray(bm3d.bm3d(z, sigma), np.float64) * scale + offset
    return out


@dataclass(frozen=True)
class Tuned:
    """One baseline parameter chosen on validation data; ``scores`` are validation MSEs."""

    name: str
    parameter: str
    value: float
    grid: tuple[float, ...]
    scores: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "parameter": self.parameter,
            "value": self.value,
            "grid": list(self.grid),
            "validation_mse": list(self.scores),
        }


def tune(
    name: str,
    parameter: str,
    apply: Callable[[np.ndarray, float], np.ndarray],
    grid: Sequence[float],
    noisy: np.ndarray,
    clean: np.ndarray,
) -> Tuned:
    """Pick the grid value with the lowest validation MSE (ties: the smaller value)."""
    scores = tuple(mse(apply(noisy, v), clean) for v in grid)
    best = int(np.argmin(scores))
    if best in (0, len(grid) - 1) and len(grid) > 1:
        log.info("%s: best %s %s is at the edge of the grid %s", name, parameter, grid[best], grid)
    return Tuned(name, parameter, float(grid[best]), tuple(float(g) for g in grid), scores)


def causal_exponential(movie: np.ndarray, weight: float) -> np.ndarray:
    """Causal exponential running mean: ``y_t = w x_t + (1 - w) y_(t-1)``, ``y_0 = x_0``."""
    data = movie.astype(np.float32, copy=False)
    out = np.empty_like(data)
    out[0] = data[0]
    w = np.float32(weight)
    for t in range(1, len(data)):
        out[t] = out[t - 1] + w * (data[t] - out[t - 1])
    return out


def spatiotemporal(movie: np.ndarray, sigma: float, weight: float) -> np.ndarray:
    """Causal spatio-temporal Gaussian: spatial Gaussian, then a causal exponential mean."""
    spatial = gaussian_smooth(movie, sigma) if sigma > 0 else movie.astype(np.float32)
    return causal_exponential(spatial, weight) if weight < 1 else spatial


def anscombe(z: np.ndarray, gain: float, read: float) -> np.ndarray:
    """Generalised Anscombe transform of ``z`` ADU above the offset: noise std ~ 1."""
    inner = gain * z + 0.375 * gain * gain + read * read
    return (2.0 / gain) * np.sqrt(np.maximum(inner, 0.0))


def inverse_anscombe(d: np.ndarray, gain: float, read: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi 2011/13)."""
    d = np.maximum(d, 0.8)  # the approximation holds for D >~ 1
    s = math.sqrt(1.5)
    poisson = 0.25 * d**2 + 0.25 * s / d - 11 / 8 / d**2 + 0.625 * s / d**3 - 0.125
    return gain * poisson - read * read / gain


def bm3d_vst(frames: np.ndarray, gain: float, offset: float, read: float) -> np.ndarray:
    """BM3D in the variance-stabilised domain (noise std 1), with the true camera."""
    import bm3d

    out = np.empty(frames.shape, np.float32)
    for t, frame in enumerate(frames):
        d = anscombe(frame.astype(np.float64) - offset, gain, read)
        lo, hi = float(d.min()), float(d.max())
        span = max(hi - lo, 1e-6)
        den = np.asarray(bm3d.bm3d((d - lo) / span, 1.0 / span), np.float64) * span + lo
        out[t] = inverse_anscombe(den, gain, read) + offset
    return out


def best_on_truth(
    apply: Callable[..., np.ndarray],
    grid: Sequence[tuple[float, ...]],
    noisy: np.ndarray,
    clean: np.ndarray,
) -> tuple[tuple[float, ...], np.ndarray]:
    """The grid point whose output is closest to ``clean`` (an oracle: the bar to beat)."""
    best, best_out, best_mse = grid[0], None, math.inf
    for point in grid:
        out = apply(noisy, *point)
        err = mse(out, clean)
        if err < best_mse:
            best, best_out, best_mse = point, out, err
    assert best_out is not None
    return best, best_out
