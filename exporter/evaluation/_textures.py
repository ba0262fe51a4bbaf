"""Generic textures for the evaluation: what a microscope or a telescope shows besides
calcium imaging.

Written apart from the training generators (no code shared with ``exporter.synth`` or
``stream.sim``) and never trained on. A movie is a still scene -- its frames differ by
their noise only, as a texture image read out again and again would -- made of four
quadrants, one of each kind:

- a star field: Moffat point spread functions (FWHM 1.5-3 px), power-law fluxes, on a
  faint sky;
- cell membranes: the edges of a Voronoi tessellation, each cell a little lit inside;
- a fibre network: cubic Bezier curves with a Lorentzian cross-section;
- grain: a lognormal field of band-limited noise.

The photon budget is the scene's peak (its 99.9th percentile), in photons per pixel; the
camera is drawn per movie (gain 0.5-2.5 ADU/e-, offset 90-500 ADU, read noise 1-4 e-).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ._independent import EvalMovie

F64 = np.float64


def star_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(F64)
    image = np.zeros((h, w))
    n = int(rng.integers(20, 80))
    fluxes = (1.0 - rng.random(n)) ** (-1.0 / 1.3)  # Pareto tail: few bright, many faint
    for flux in fluxes:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        beta = rng.uniform(2.5, 4.5)
        fwhm = rng.uniform(1.5, 3.0)
        alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / alpha**2
        image += flux * (1.0 + r2) ** -beta
    return image + 0.01 * np.percentile(image, 99.9)


def membranes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    seeds = rng.uniform(0, 1, (int(rng.integers(12, 40)), 2)) * (h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(F64)
    dist = np.sqrt((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2)
    nearest = np.sort(dist, axis=-1)
    width = rng.uniform(0.6, 1.4)
    edge = np.exp(-((nearest[..., 1] - nearest[..., 0]) ** 2) / (2.0 * width**2))
    inside = rng.uniform(0.05, 0.3, len(seeds))[np.argmin(dist, axis=-1)]
    return edge + inside


def fibres(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    sticks = np.zeros((h, w))
    t = np.linspace(0.0, 1.0, 4 * (h + w))[:, None]
    for _ in range(int(rng.integers(6, 18))):
        p0, p1, p2, p3 = rng.uniform(-0.2, 1.2, (4, 2)) * (h, w)
        curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        y, x = np.rint(curve).astype(np.int64).T
        keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        np.maximum.at(sticks, (y[keep], x[keep]), rng.uniform(0.3, 1.0))
    gamma = rng.uniform(0.5, 1.2)
    k = np.arange(-8, 9, dtype=F64)
    kernel = 1.0 / (1.0 + (k[:, None] ** 2 + k[None, :] ** 2) / gamma**2)
    return np.maximum(signal.fftconvolve(sticks, kernel, mode="same"), 0.0) + 0.02


def grain(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    low, high = rng.uniform(0.01, 0.05), rng.uniform(0.08, 0.3)
    band = (radius >= low) & (radius <= high)
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((h, w))) * band))
    field /= field.std() + 1e-12
    return np.exp(rng.uniform(0.5, 1.5) * field)


KINDS = (star_field, membranes, fibres, grain)


def make_texture_movie(
    photons: float,
    *,
    shape: tuple[int, int] = (128, 128),
    frames: int = 48,
    fps: float = 20.0,
    seed: int = 0,
) -> EvalMovie:
    """A still texture scene peaking at ``photons`` photons per pixel, ``frames`` reads."""
    rng = np.random.default_rng([seed, 20_261_201])
    h, w = shape
    top, left = h // 2, w // 2
    scene = np.zeros((h, w))
    boxes = [(0, top, 0, left), (0, top, left, w), (top, h, 0, left), (top, h, left, w)]
    for kind, (y0, y1, x0, x1) in zip(rng.permutation(len(KINDS)), boxes, strict=True):
        if y1 > y0 and x1 > x0:
            part = KINDS[kind](rng, y1 - y0, x1 - x0)
            scene[y0:y1, x0:x1] = part / np.percentile(part, 99.9) * rng.uniform(0.5, 1.0)
    expected = photons * scene / max(float(np.percentile(scene, 99.9)), 1e-12)
    gain, offset = float(rng.uniform(0.5, 2.5)), float(rng.uniform(90.0, 500.0))
    read = float(rng.uniform(1.0, 4.0)) * gain  # e- to ADU
    clean = np.repeat((gain * expected + offset).astype(np.float32)[None], frames, axis=0)
    noisy = np.empty((frames, h, w), np.uint16)
    for t in range(frames):
        adu = gain * rng.poisson(expected) + offset + rng.normal(0.0, read, (h, w))
        noisy[t] = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
    return EvalMovie(
        noisy=noisy,
        clean=clean,
        footprints=np.zeros((0, h, w), bool),
        traces=np.zeros((0, frames)),
        spikes=[],
        fps=fps,
        photons=float(photons),
        gain=gain,
        offset=offset,
        read_noise=read,
        generator="textures",
    )
