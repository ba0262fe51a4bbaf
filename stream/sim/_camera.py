"""Poisson-Gaussian camera noise: how a scientific camera turns photons into counts.

``adu = gain * Poisson(photons) + offset + Normal(0, read_noise)``, rounded and clipped
to the camera's integer type. The simulator, the phantom and the exporter's training
data all draw noise here, so training and live data see the same physics.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .._errors import ConfigError
from ..camera import CameraModel

CameraDtype = Literal["uint8", "uint16", "int16", "float32"]
_INT_RANGE = {"uint8": (0, 255), "uint16": (0, 65535), "int16": (-32768, 32767)}


#: The simulator's camera model is the camera model (kept under its older name).
NoiseModel = CameraModel


def expected_camera(photons: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """The noise-free image in camera units (what a denoiser should output), float32."""
    out = np.multiply(photons, np.float32(noise.gain), dtype=np.float32)
    out += np.float32(noise.offset)
    return out


def noise_std(photons: np.ndarray, noise: NoiseModel, quantised: bool = True) -> np.ndarray:
    """Expected per-pixel std in ADU: ``sqrt(gain**2 * photons + read**2 [+ 1/12])``.

    The 1/12 ADU^2 term is the variance of rounding to integers (``quantised``).
    """
    lam = np.maximum(np.asarray(photons, dtype=np.float64), 0.0)
    var = noise.gain**2 * lam + noise.read_noise**2 + (1.0 / 12.0 if quantised else 0.0)
    return np.sqrt(var).astype(np.float32)


def apply_camera_noise(
    photons: np.ndarray,
    noise: NoiseModel,
    rng: np.random.Generator,
    dtype: CameraDtype = "uint16",
) -> np.ndarray:
    """Draw one camera readout of ``photons`` (any shape).

    Integer dtypes are rounded and clipped to their range (saturation, as a real camera
    does); ``float32`` keeps the unquantised readout.
    """
    counts = rng.poisson(np.maximum(photons, 0.0))
    adu = counts.astype(np.float32)
    adu *= np.float32(noise.gain)
    adu += np.float32(noise.offset)
    if noise.read_noise > 0:
        read = rng.standard_normal(adu.shape, dtype=np.float32)
        read *= np.float32(noise.read_noise)
        adu += read
    if dtype == "float32":
        return adu
    if dtype not in _INT_RANGE:
        raise ConfigError(f"expected dtype one of uint8, uint16, int16, float32, got {dtype!r}")
    lo, hi = _INT_RANGE[dtype]
    np.rint(adu, out=adu)
    np.clip(adu, lo, hi, out=adu)
    return adu.astype(dtype)


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The noise generator of frame ``index``: any frame's noise is reproducible alone."""
    return np.random.default_rng([seed, index])
