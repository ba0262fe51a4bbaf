"""Streams for camera tests: readouts of one calcium-phantom scene by a known camera."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from stream.camera import CameraModel
from stream.engine import Engine, SeriesContext
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


def star_field(
    rng: np.random.Generator, shape=(128, 160), stars: int = 150, texture: float = 0.0
) -> np.ndarray:
    """Photons per pixel of a sparse star field: 60 of sky (with a texture of ``texture``
    photons rms at the scale of a pixel, as a compressed image's) and point sources of
    200-3,000 photons blurred over 0.7 px (undersampled, as a telescope's or a bead
    slide's). One frame of it cannot tell the stars' curvature from noise."""
    points = np.zeros(shape)
    ys, xs = rng.integers(0, shape[0], stars), rng.integers(0, shape[1], stars)
    points[ys, xs] = rng.uniform(200.0, 3000.0, stars)
    sky = 60.0 + rng.normal(0.0, texture, shape) if texture else 60.0
    return np.maximum(sky + ndimage.gaussian_filter(points, 0.7), 0.0)


def star_frames(
    drift: int, frames: int = 6, seed: int = 1, stars: int = 150, texture: float = 0.0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(readouts, truths): 128 x 128 frames of a star field moved ``drift`` px across
    each frame, gain 0.3 ADU per e-, offset 100 ADU, read noise 0.5 e-; uint16
    readouts, their expected ADU as the truth."""
    rng = np.random.default_rng(seed)
    sky = star_field(rng, stars=stars, texture=texture)
    readouts, truths = [], []
    for t in range(frames):
        photons = sky[:, 2 + t * drift : 130 + t * drift]
        raw = 0.3 * rng.poisson(photons) + 100 + rng.normal(0, 0.15, photons.shape)
        readouts.append(np.rint(raw).astype(np.uint16))
        truths.append(0.3 * photons + 100)
    return readouts, truths


def served_live(engine: Engine, frames: list[np.ndarray]) -> tuple[np.ndarray, SeriesContext]:
    """``frames`` through a new series, the camera estimated live: the outputs stacked,
    and the series."""
    context = SeriesContext()
    return np.stack([context.denoise(engine, f, t) for t, f in enumerate(frames)]), context
