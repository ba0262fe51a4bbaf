"""An independent calcium-imaging generator: the evaluation's held-out data.

Written apart from the training generators and sharing no code with them
(``stream.sim``, ``exporter.synth``), and never used for training. It differs on
purpose in every modelling choice the training data makes:

- somata are star-shaped (a radius with random 2nd-4th harmonics), not ellipses; about
  half show nuclear exclusion; some carry one to three thin processes;
- activity is an AR(2) calcium response to Poisson spikes (rise 20-80 ms, decay
  0.3-1.5 s), processes following their soma at half the amplitude;
- neuropil is exp-transformed smoothed noise that follows the population's activity,
  over a radial vignette and a dim background;
- the camera is an sCMOS at gain 1 ADU/e-, offset 100, read noise 2-5 e-, uint16.

The photon budget is the resting signal of the somata, in photons per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

F32 = np.float32


@dataclass
class EvalMovie:
    """A noisy movie and everything known about its truth (ADU unless said otherwise)."""

    noisy: np.ndarray  # (T, H, W) uint16, as the camera sent it
    clean: np.ndarray  # (T, H, W) float32: the expected camera image
    footprints: np.ndarray  # (n_cells, H, W) bool
    traces: np.ndarray  # (n_cells, T) dF/F of each soma
    spikes: list[np.ndarray]  # per soma: frame indices of spikes
    fps: float
    photons: float  # resting signal of the somata, photons per pixel
    gain: float
    offset: float
    read_noise: float
    generator: str = "independent"


def _star_mask(h: int, w: int, cy: float, cx: float, radius: float, rng: np.random.Generator):
    yy, xx = np.mgrid[0:h, 0:w]
    theta = np.arctan2(yy - cy, xx - cx)
    wobble = 1.0 + sum(
        rng.uniform(0.0, 0.15) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4)
    )
    dist = np.hypot(yy - cy, xx - cx) / (radius * wobble)
    return np.clip((1.0 - dist) * radius / 1.2 + 0.5, 0.0, 1.0), dist  # ~1 px soft edge


def _process(h: int, w: int, cy: float, cx: float, radius: float, rng: np.random.Generator):
    canvas = np.zeros((h, w), F32)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = cy + radius * math.sin(angle), cx + radius * math.cos(angle)
    for _ in range(int(rng.integers(10, 40))):
        angle += rng.normal(0, 0.15)
        y, x = y + math.sin(angle), x + math.cos(angle)
        if 0 <= y < h - 1 and 0 <= x < w - 1:
            iy, ix = int(y), int(x)
            fy, fx = y - iy, x - ix  # bilinear splat: a sub-pixel line
            canvas[iy, ix] += (1 - fy) * (1 - fx)
            canvas[iy + 1, ix] += fy * (1 - fx)
            canvas[iy, ix + 1] += (1 - fy) * fx
            canvas[iy + 1, ix + 1] += fy * fx
    return np.clip(ndimage.gaussian_filter(canvas, 0.6) * 2.0, 0.0, 1.0)


def _ar2(drive: np.ndarray, c1: float, c2: float) -> np.ndarray:
    out = np.zeros(drive.size + 2)
    for t in range(drive.size):
        out[t + 2] = c1 * out[t + 1] + c2 * out[t] + drive[t]
    return out[2:]


def _activity(n: int, frames: int, fps: float, rng: np.random.Generator):
    """(dF/F traces, spike frames): AR(2) responses to Poisson spikes."""
    traces = np.zeros((n, frames), F32)
    spikes: list[np.ndarray] = []
    dt = 1.0 / fps
    for k in range(n):
        rate = rng.uniform(0.05, 0.5)
        train = rng.random(frames) < rate * dt
        amplitude = rng.uniform(0.3, 1.5)
        rise, decay = rng.uniform(0.02, 0.08), rng.uniform(0.3, 1.5)
        d, r = math.exp(-dt / decay), math.exp(-dt / rise)
        c1, c2 = d + r, -d * r  # AR(2) with poles at d and r
        drive = train.astype(np.float64)
        impulse = np.zeros(max(frames, int(10 * decay * fps) + 3))
        impulse[0] = 1.0
        peak = float(np.max(_ar2(impulse, c1, c2)))  # a spike's peak is `amplitude`
        traces[k] = _ar2(drive, c1, c2) * (amplitude / peak)
        spikes.append(np.flatnonzero(train))
    return traces, spikes


def make_movie(
    photons: float,
    *,
    shape: tuple[int, int] = (128, 128),
    frames: int = 60,
    fps: float = 20.0,
    seed: int = 0,
) -> EvalMovie:
    """A test movie with somata resting at ``photons`` photons per pixel."""
    rng = np.random.default_rng([seed, 20_261_130])
    h, w = shape
    n = max(1, int(rng.poisson(h * w / 1500)))
    bodies = np.zeros((n, h, w), F32)
    branches = np.zeros((n, h, w), F32)
    footprints = np.zeros((n, h, w), bool)
    brightness = rng.uniform(0.7, 1.3, n)
    for k in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        radius = rng.uniform(4.0, 10.0)
        body, dist = _star_mask(h, w, cy, cx, radius, rng)
        if rng.random() < 0.5:  # nuclear exclusion
            body = body * (1.0 - 0.6 * np.clip(1.5 - 3.0 * dist, 0.0, 1.0))
        bodies[k] = body * brightness[k]
        footprints[k] = body >= 0.5
        for _ in range(int(rng.integers(0, 4))):
            branches[k] += _process(h, w, cy, cx, radius, rng) * brightness[k] * 0.6
    traces, spikes = _activity(n, frames, fps, rng)
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1.0 - 0.4 * ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    texture = ndimage.gaussian_filter(rng.standard_normal((h, w)), 6.0)
    neuropil = np.exp(texture / (texture.std() + 1e-9) * 0.4).astype(F32) * 0.3
    population = traces.mean(axis=0)
    gain, offset = 1.0, 100.0
    read = float(rng.uniform(2.0, 5.0))
    clean = np.empty((frames, h, w), F32)
    noisy = np.empty((frames, h, w), np.uint16)
    for t in range(frames):
        level = np.tensordot(1.0 + traces[:, t], bodies, axes=1)
        level += np.tensordot(1.0 + 0.5 * traces[:, t], branches, axes=1)
        level += neuropil * (1.0 + 0.3 * population[t]) + 0.1
        expected = (photons * vignette * level).astype(F32)
        clean[t] = gain * expected + offset
        counts = rng.poisson(np.maximum(expected, 0)).astype(np.float64)
        adu = gain * counts + offset + rng.normal(0.0, read, (h, w))
        noisy[t] = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
    return EvalMovie(
        noisy=noisy,
        clean=clean,
        footprints=footprints,
        traces=traces,
        spikes=spikes,
        fps=fps,
        photons=float(photons),
        gain=gain,
        offset=offset,
        read_noise=read,
    )
