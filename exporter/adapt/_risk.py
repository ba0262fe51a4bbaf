"""How good a model is on the user's recording, from the noisy frames alone.

An unbiased estimate of the per-pixel MSE under the Poisson-Gaussian camera
(PG-URE; Luisier, Blu and Unser 2011, here without their first-order approximation).
With ``c = y - offset = gain * k + r``, ``k`` Poisson with mean ``x / gain`` and ``r``
Gaussian with variance ``read**2``, Poisson's identity ``E[x h(k)] = E[gain k h(k - 1)]``
and Stein's ``E[r h(r)] = read**2 E[h'(r)]`` give, for pixel ``i`` of a denoiser ``f``:

    E[(f_i - x_i)**2] = E[ f_i(y)**2 - 2 c_i f_i(y - gain e_i) + 2 read**2 d_i
                          + c_i**2 - gain c_i - read**2 ]

with ``d_i`` the derivative of ``f_i`` in ``y_i`` at ``y - gain e_i``. Moving one pixel
needs its own forward pass, but pixels further apart than the model's receptive field do
not see each other: each pass moves a whole lattice of them (about 25 per pass at 256²
for a 51-pixel field). The first-order version (Monte-Carlo SURE with the variance
``gain * c + read**2``) fails where it matters most: at one photon per pixel it rated a
model 7.8 dB *worse* than its start as better. ``adapt`` still trains with that cheap
version (:mod:`._sure`: every pixel in every step) but judges what it trained with this one.

The model runs in the real engine (frame scale and noise map included), so their
dependence on the frame is part of what is estimated. Estimates of several models on
the same frames with the same ``seed`` move the same pixels: their differences are
precise even where each estimate carries the sampling noise of a few hundred pixels.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from stream.camera import CameraModel
from stream.engine import Engine

from ._recording import Recording

#: Step of the finite-difference derivative, relative to the read noise (a ReLU network
#: is piecewise linear: a small step measures the slope it has there).
DERIVATIVE_STEP = 0.05
#: Pixels sampled per frame (rounded up to whole lattices).
SAMPLES_PER_FRAME = 384
#: Frames a model is judged on: on a new user's 128² recording, 8 left the margins
#: between candidates with errors as large as the margins (0.03-0.07 ADU²); 24 brought
#: them within 0.015 ADU² of the truth's (2026-12-07), at three times the time.
JUDGED_FRAMES = 24


def pixel_risks(
    engine: Engine,
    frames: np.ndarray,
    camera: CameraModel,
    histories: list[list[np.ndarray]] | None = None,
    seed: int = 0,
    running_means: list[np.ndarray] | None = None,
    row_variance: float = 0.0,
) -> np.ndarray:
    """The PG-URE estimate of the squared error (ADU²) of each pixel sampled from
    ``frames``: their mean estimates the per-pixel MSE (:func:`estimated_mse`), and two
    models' estimates on the same ``seed`` are of the same pixels, to be compared pair by
    pair (:func:`better_than`).

    ``histories``: each frame's previous frames, oldest first (temporal models);
    ``running_means``: each frame's running mean (models with that channel). The
    lattice pitch is the model's receptive field. ``row_variance``: the variance of an
    offset each row of a frame shares (CMOS row noise, counts², part of the camera's
    ``read_noise`` as a pixel's own noise): Stein's identity for noise so correlated adds
    ``2 row_variance`` times the pixel's derivative in the *other* pixels of its row,
    taken by moving the lattice's whole rows (one more pass of the model per lattice).
    """
    rng = np.random.default_rng(seed)
    pitch = engine.metadata.receptive_field
    g, read2 = camera.gain, camera.read_noise**2
    step = np.float32(DERIVATIVE_STEP * max(camera.read_noise, math.sqrt(g)))
    estimates: list[np.ndarray] = []
    for i, raw in enumerate(frames):
        history = histories[i] if histories is not None else []
        mean = running_means[i] if running_means is not None else None
        denoise = partial(engine.denoise, camera=camera, history=history, running_mean=mean)
        y = raw.astype(np.float32)
        h, w = y.shape
        offset = np.float32(camera.offset)
        c = y - offset  # the engine's output is in ADU, offset included, like its input
        f = denoise(y) - offset
        origins = min(pitch * pitch, h * w)
        per_lattice = max(1, math.ceil(h / pitch) * math.ceil(w / pitch))
        picks = rng.choice(origins, min(origins, math.ceil(SAMPLES_PER_FRAME / per_lattice)), False)
        for origin in picks:
            oy, ox = divmod(int(origin), pitch)
            grid = np.meshgrid(np.arange(oy, h, pitch), np.arange(ox, w, pitch), indexing="ij")
            ys, xs = grid[0].ravel(), grid[1].ravel()
            if ys.size == 0:
                continue
            moved = y.copy()
            moved[ys, xs] -= np.float32(g)
            below = denoise(moved)[ys, xs] - offset
            moved[ys, xs] += step
            above = denoise(moved)[ys, xs] - offset
            slope = (above - below) / step
            ci = c[ys, xs].astype(np.float64)
            terms = f[ys, xs].astype(np.float64) ** 2 - 2.0 * ci * below + 2.0 * read2 * slope
            terms += ci * ci - g * ci - read2
            if row_variance > 0:  # rows of the lattice: a pitch apart, unseen by each other
                # at the point the other terms take their derivative, y - gain e_i (taken
                # at y, a ReLU network's own-pixel slopes did not cancel: 4.69 for 3.08)
                moved[ys, xs] -= step
                moved[np.unique(ys)] += step
                along = (denoise(moved)[ys, xs] - offset - below) / step
                terms += 2.0 * row_variance * (along - slope)
            estimates.append(terms)
    return np.concatenate(estimates) if estimates else np.zeros(0)


def estimated_mse(engine: Engine, frames: np.ndarray, camera: CameraModel, **kwargs: Any) -> float:
    """Mean over ``frames`` of the PG-URE estimate of the per-pixel MSE (ADU²); the
    arguments of :func:`pixel_risks`."""
    return float(np.mean(pixel_risks(engine, frames, camera, **kwargs)))


def recording_risk(
    model: Path,
    recording: Recording,
    camera: CameraModel,
    count: int = JUDGED_FRAMES,
    row_variance: float = 0.0,
) -> np.ndarray:
    """:func:`pixel_risks` of ``model`` on ``count`` valid frames spread over the
    recording (with their previous frames for a temporal model)."""
    with Engine(model, provider="cpu", warmup_shape=None) as engine:
        k = engine.metadata.frames
        windows = recording.windows(k)
        picks = windows[np.linspace(0, windows.size - 1, min(count, windows.size)).astype(int)]
        frames = recording.frames[picks]
        histories = [[recording.frames[t - j] for j in range(k - 1, 0, -1)] for t in picks]
        decay = engine.metadata.running_mean
        means = [recording.running_mean(int(t), decay) for t in picks] if decay > 0 else None
        return pixel_risks(
            engine, frames, camera, histories, running_means=means, row_variance=row_variance
        )


def better_than(candidate: np.ndarray, start: np.ndarray) -> tuple[float, float]:
    """How much lower ``candidate``'s estimated MSE is than ``start``'s on the same pixels
    (:func:`pixel_risks` with one seed), and the standard error of that difference: the
    pixels' estimates are noisy (on 8 frames of 128², a few hundredths of an ADU², as
    much as adapting changes the error), so a lower mean alone shows nothing."""
    gain = start - candidate
    return float(np.mean(gain)), float(np.std(gain) / math.sqrt(max(gain.size, 1)))
