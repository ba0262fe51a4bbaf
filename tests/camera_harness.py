"""Streams for camera tests: readouts of one calcium-phantom scene by a known camera."""

from __future__ import annotations

import numpy as np

from stream.camera import CameraModel
from stream.sim import CalciumPhantom, PhantomConfig, apply_camera_noise, frame_rng


def phantom_readouts(
    photons: float, frames: int, seed: int, camera: CameraModel, shape=(128, 128)
) -> list[np.ndarray]:
    """``frames`` consecutive readouts by ``camera`` of one phantom scene (its cells fire
    as they do), resting at ``photons`` per pixel over neuropil and background."""
    config = PhantomConfig(
        shape=shape, brightness=photons, neuropil=0.3 * photons, background=0.2 * photons,
        seed=seed, noise=camera,
    )  # fmt: skip
    scene = CalciumPhantom(config, frames)
    return [apply_camera_noise(scene.clean(t), camera, frame_rng(seed, t)) for t in range(frames)]
