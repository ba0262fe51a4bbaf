"""A recording for the adapt tests: a static blob scene read out by a known camera."""

from __future__ import annotations

import numpy as np

from stream.camera import CameraModel

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=3.0)


def blob_movie(n: int, shape: tuple[int, int] = (48, 56), seed: int = 0) -> np.ndarray:
    """``n`` uint16 frames of a static blob scene read out by CAMERA (shot + read noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    scene = 20 + 200 * np.exp(-((y - 20) ** 2 + (x - 30) ** 2) / 60.0)
    photons = rng.poisson(np.broadcast_to(scene, (n, *shape)))
    adu = CAMERA.offset + CAMERA.gain * photons + rng.normal(0, CAMERA.read_noise, photons.shape)
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
