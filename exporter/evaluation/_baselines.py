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


@dataclass(frozen=True)
class BaselineParams:
    """Everything tuned or measured on the validation movie of one noise level."""

    gaussian: Tuned
    boxcar: Tuned
    wiener: Tuned
    noise_std_adu: float  # rms of (noisy - clean) on validation: the "known" noise level
    bm3d: Tuned | None = None  # sigma factor; None when BM3D is not run

    def to_dict(self) -> dict[str, object]:
        return {
            "gaussian": self.gaussian.to_dict(),
            "boxcar_causal": self.boxcar.to_dict(),
            "wiener": self.wiener.to_dict(),
            "bm3d": None if self.bm3d is None else self.bm3d.to_dict(),
            "noise_std_adu": self.noise_std_adu,
        }


def _boxcar(movie: np.ndarray, window: float) -> np.ndarray:
    return boxcar_causal(movie, int(window))


def tune_baselines(
    noisy: np.ndarray,
    clean: np.ndarray,
    bm3d_normalization: tuple[float, float] | None = None,
    bm3d_frames: int = 1,
) -> BaselineParams:
    """Tune all baselines on one validation movie ``(T, H, W)`` of one noise level.

    BM3D is tuned only given ``bm3d_normalization`` (``(offset, scale)``), on
    ``bm3d_frames`` evenly spread validation frames (it is slow).
    """
    sigma_adu = math.sqrt(mse(noisy, clean))  # rms of the (zero-mean) noise
    noise_var = sigma_adu**2
    bm3d = None
    if bm3d_normalization is not None:
        offset, scale = bm3d_normalization
        idx = np.unique(np.linspace(0, len(noisy) - 1, max(1, bm3d_frames) + 2)[1:-1].round())
        idx = idx.astype(np.int64)
        bm3d = tune(
            "bm3d",
            "sigma_factor",
            lambda m, f: bm3d_denoise(m, sigma_adu * f, offset, scale),
            BM3D_SIGMA_FACTORS,
            noisy[idx],
            clean[idx],
        )
    return BaselineParams(
        gaussian=tune("gaussian", "sigma_px", gaussian_smooth, GAUSSIAN_SIGMAS, noisy, clean),
        boxcar=tune("boxcar", "window_frames", _boxcar, BOXCAR_WINDOWS, noisy, clean),
        wiener=tune(
            "wiener",
            "window_px",
            lambda m, w: wiener_filter(m, int(w), noise_var),
            WIENER_WINDOWS,
            noisy,
            clean,
        ),
        noise_std_adu=sigma_adu,
        bm3d=bm3d,
    )
