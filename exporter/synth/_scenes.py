"""Clean scenes for training: calcium imaging and generic microscopic structure.

Every generator returns a ``(frames, P, P)`` float32 movie of non-negative relative
intensities (bright structure around 1), drawn from a numpy generator only, so a
sample is reproducible from its seed. Movies change over time the way specimens do:
calcium transients, blinking puncta, slow drift of intensity, sub-pixel motion jitter.

Why so many kinds: a model trained on one phantom learns that phantom. Generic
structure (occluding shapes with texture, point sources, filaments, 1/f textures) covers
what a microscope, or a telescope, shows besides cell bodies, at every scale.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from stream.sim import CalciumPhantom, PhantomConfig

F32 = np.float32


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def smooth_field(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    """A smooth random field in [0, 1] varying over about ``scale_px`` pixels."""
    coarse = max(2, int(size / max(scale_px, 1.0)) + 2)
    small = rng.random((coarse, coarse)).astype(F32)
    field = ndimage.zoom(small, size / (coarse - 1), order=3, mode="nearest")[:size, :size]
    lo, hi = float(field.min()), float(field.max())
    return ((field - lo) / (hi - lo + 1e-6)).astype(F32)


def texture_1f(rng: np.random.Generator, size: int) -> np.ndarray:
    """1/f^beta noise mapped to positive intensities (tissue, neuropil, nebulae)."""
    beta = rng.uniform(1.0, 3.2)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum = (rng.standard_normal(radius.shape) + 1j * rng.standard_normal(radius.shape)) / (
        radius ** (beta / 2)
    )
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(size, size))
    field = (field - field.mean()) / (field.std() + 1e-9)
    contrast = rng.uniform(0.2, 1.5)
    return np.exp(contrast * field - contrast * contrast / 2).astype(F32) * F32(0.5)


def dead_leaves(rng: np.random.Generator, size: int) -> np.ndarray:
    """Occluding discs and ellipses with a power-law size distribution, some textured."""
    out = np.full((size, size), rng.uniform(0.0, 0.5), F32)
    yy, xx = np.mgrid[:size, :size].astype(F32)
    r_min, r_max = 1.0, size / rng.uniform(1.5, 6.0)
    for _ in range(int(rng.integers(20, 120))):
        r = (r_min**-2 + rng.random() * (r_max**-2 - r_min**-2)) ** -0.5  # ~ r^-3
        cy, cx = rng.uniform(-r, size + r, 2)
        aspect, angle = rng.uniform(0.4, 1.0), rng.uniform(0, math.pi)
        ca, sa = math.cos(angle), math.sin(angle)
        dy, dx = yy - cy, xx - cx
        u, v = (dx * ca + dy * sa) / r, (-dx * sa + dy * ca) / (r * aspect)
        inside = u * u + v * v <= 1.0
        if inside.any():
            value = rng.uniform(0.0, 1.0)
            if rng.random() < 0.3:  # a gradient across the leaf
                value = value * (1 + 0.5 * u[inside]) if inside.any() else value
            out[inside] = value
    if rng.random() < 0.5:
        out = ndimage.gaussian_filter(out, rng.uniform(0.3, 1.2))
    return out


def puncta(rng: np.random.Generator, size: int) -> np.ndarray:
    """Point sources: vesicles, synapses, stars; sparse to crowded, dim to saturated."""
    n = int(_log_uniform(rng, 3, size * size / 12))
    out = np.zeros((size, size), F32)
    ys = rng.integers(0, size, n)
    xs = rng.integers(0, size, n)
    np.add.at(out, (ys, xs), rng.lognormal(0.0, 1.0, n).astype(F32))
    sigma = rng.uniform(0.5, 2.5)
    out = ndimage.gaussian_filter(out, sigma) * F32(2 * math.pi * sigma * sigma)
    return out / F32(max(float(np.percentile(out, 99.9)), 1e-6))


def filaments(rng: np.random.Generator, size: int) -> np.ndarray:
    """Curved filaments (cytoskeleton, axons, dendrites) with a Gaussian profile."""
    out = np.zeros((size, size), F32)
    for _ in range(int(rng.integers(2, 30))):
        steps = int(rng.integers(size // 2, 3 * size))
        pos = rng.uniform(0, size, 2)
        heading = rng.uniform(0, 2 * math.pi)
        turn = rng.uniform(0.0, 0.3)
        amplitude = F32(rng.uniform(0.2, 1.0))
        for _ in range(steps):
            heading += rng.normal(0, turn)
            pos += (math.sin(heading), math.cos(heading))
            y, x = int(pos[0]), int(pos[1])
            if 0 <= y < size and 0 <= x < size:
                out[y, x] = max(out[y, x], amplitude)
    width = rng.uniform(0.5, 2.0)
    out = ndimage.gaussian_filter(out, width) * F32(2.5 * width)
    return np.clip(out, 0, None)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow, unlike 1 / (1 + exp(-x))


def cells(rng: np.random.Generator, size: int) -> np.ndarray:
    """Generic cell bodies: soft ellipses, some hollow (nuclear exclusion), some processes."""
    out = np.zeros((size, size), F32)
    yy, xx = np.mgrid[:size, :size].astype(F32)
    for _ in range(int(rng.integers(1, max(2, size * size // 150)))):
        r = rng.uniform(2.0, 14.0)
        cy, cx = rng.uniform(0, size, 2)
        aspect, angle = rng.uniform(0.5, 1.0), rng.uniform(0, math.pi)
        ca, sa = math.cos(angle), math.sin(angle)
        dy, dx = yy - cy, xx - cx
        d = np.sqrt(((dx * ca + dy * sa) / r) ** 2 + ((-dx * sa + dy * ca) / (r * aspect)) ** 2)
        edge = rng.uniform(0.05, 0.3)
        body = _sigmoid((1.0 - d) / edge)
        if rng.random() < 0.5:  # nucleus excluded: a darker core
            body *= 1.0 - rng.uniform(0.3, 0.9) * _sigmoid((rng.uniform(0.3, 0.7) - d) / edge)
        out += F32(rng.lognormal(0, 0.5)) * body.astype(F32)
    if rng.random() < 0.5:
        out += filaments(rng, size) * F32(rng.uniform(0.2, 0.8))
    return out


def outlines(rng: np.random.Generator, size: int) -> np.ndarray:
    """Membrane-labelled tissue: thin bright outlines of packed, occluding cells (a
    membrane dye, epithelia, neuropil in cross-section), with a dim interior or none."""
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size].astype(F32)
    r_lo = rng.uniform(3.0, 8.0)
    r_hi = r_lo * rng.uniform(1.2, 4.0)
    # Enough cells to cover the field two to four times over: packed, as tissue is.
    count = int(rng.uniform(2.0, 4.0) * size * size / (math.pi * (r_lo + r_hi) ** 2 / 4))
    for label in range(1, count + 1):
        r = rng.uniform(r_lo, r_hi)
        cy, cx = rng.uniform(-r, size + r, 2)
        aspect, angle = rng.uniform(0.5, 1.0), rng.uniform(0, math.pi)
        ca, sa = math.cos(angle), math.sin(angle)
        dy, dx = yy - cy, xx - cx
        u, v = (dx * ca + dy * sa) / r, (-dx * sa + dy * ca) / (r * aspect)
        labels[u * u + v * v <= 1.0] = label
    edge = np.zeros((size, size), bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    brightness = rng.lognormal(0.0, 0.4, count + 1).astype(F32)
    out = edge * brightness[labels]
    width = rng.uniform(0.4, 1.5)
    out = ndimage.gaussian_filter(out, width) * F32(2.0 * width)
    interior = rng.uniform(0.0, 0.3) * (rng.random() < 0.6)
    if interior:
        out += F32(interior) * brightness[labels] * (labels > 0)
    return np.clip(out, 0, None).astype(F32)


GENERIC = {
    "dead_leaves": dead_leaves,
    "puncta": puncta,
    "filaments": filaments,
    "texture": texture_1f,
    "cells": cells,
    "outlines": outlines,
}
# The kinds the shipped recipes were trained on (their data stay as trained).
FIRST_KINDS = ("dead_leaves", "puncta", "filaments", "texture", "cells")


def calcium_movie(rng: np.random.Generator, size: int, frames: int) -> np.ndarray:
    """Consecutive frames of a randomised calcium-imaging phantom (``stream.sim``)."""
    fps = _log_uniform(rng, 5.0, 60.0)
    config = PhantomConfig(
        shape=(size, size),
        fps=fps,
        density=rng.uniform(0.5, 12.0),
        radius_px=(rng.uniform(2.0, 5.0), rng.uniform(5.0, 14.0)),
        brightness=1.0,
        brightness_jitter=rng.uniform(0.1, 0.8),
        nucleus_fraction=rng.uniform(0.0, 0.6),
        neuropil=_log_uniform(rng, 0.02, 0.6),
        background=_log_uniform(rng, 0.005, 0.5),
        drift_amplitude=rng.uniform(0.0, 0.1),
        seed=int(rng.integers(2**31)),
    )
    length = max(frames, int(rng.integers(frames, frames + int(10 * fps))))
    phantom = CalciumPhantom(config, length)
    start = int(rng.integers(0, length - frames + 1))
    movie = np.stack([phantom.clean(start + t) for t in range(frames)]).astype(F32)
    return movie


def generic_movie(
    rng: np.random.Generator, size: int, frames: int, kinds: tuple[str, ...] = FIRST_KINDS
) -> np.ndarray:
    """A mixture of generic structure that lives a little over ``frames`` frames."""
    count = min(int(rng.integers(1, 3)), len(kinds))
    chosen = rng.choice(list(kinds), size=count, replace=False)
    layers = [GENERIC[str(k)](rng, size) * F32(_log_uniform(rng, 0.2, 1.0)) for k in chosen]
    base = np.sum(layers, axis=0).astype(F32)
    if frames == 1:
        return base[None]
    movie = np.empty((frames, size, size), F32)
    flicker = rng.uniform(0.0, 0.3) * (rng.random() < 0.5)
    blink_field = smooth_field(rng, size, rng.uniform(2, 12)) if flicker else None
    jitter = rng.uniform(0.0, 0.6) * (rng.random() < 0.5)
    for t in range(frames):
        frame = base
        if jitter:
            frame = ndimage.shift(base, rng.normal(0, jitter, 2), order=1, mode="reflect")
        gain = 1.0 + rng.normal(0, 0.02)
        if blink_field is not None:
            modulation = 1.0 + flicker * (rng.random() - 0.5) * 2 * blink_field
            frame = frame * modulation
        movie[t] = np.maximum(frame * F32(gain), 0)
    return movie


def scene_movie(
    rng: np.random.Generator,
    size: int,
    frames: int,
    calcium: float,
    kinds: tuple[str, ...] = FIRST_KINDS,
) -> np.ndarray:
    """A clean movie: calcium imaging with probability ``calcium``, else generic, then
    an uneven illumination and a background level, normalised so bright ~ 1."""
    if rng.random() < calcium:
        movie = calcium_movie(rng, size, frames)
    else:
        movie = generic_movie(rng, size, frames, kinds)
    if rng.random() < 0.5:  # vignetting / uneven excitation
        shade = smooth_field(rng, size, rng.uniform(size / 2, 4 * size))
        movie = movie * (F32(1.0) - F32(rng.uniform(0.2, 0.8)) * shade)[None]
    top = float(np.percentile(movie, 99.5))
    movie = movie / F32(max(top, 1e-6))
    if rng.random() < 0.7:
        movie = movie + F32(_log_uniform(rng, 1e-3, 0.5))  # background (dark to bright)
    return np.maximum(movie, 0).astype(F32)
