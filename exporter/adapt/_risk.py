"""How good a model is on the user's recording, from the noisy frames alone.

Monte-Carlo SURE (Stein's unbiased risk estimate; Ramani, Blu and Unser 2008) with the
camera's per-pixel variance ``gain * (y - offset) + read**2`` as a heteroscedastic
Gaussian: for a denoiser ``f`` and noisy frame ``y`` with variance map ``v``,

    MSE(f) ~ mean((f(y) - y)**2) - mean(v) + 2 mean(v * b * (f(y + e*b) - f(y))) / e

with ``b`` a standard normal probe. The Gaussian approximation of shot noise biases the
estimate the same way for every model on the same frames, so it serves to *compare*
models: measured on the independent generator it ranked start, adapted and
Noise2Void-from-scratch models as their true MSE does at 1 and at 10 photons
(``python -m benchmarks.adapt_risk_check``). The model runs in the real engine, noise map
and scaling included, so their dependence on the frame is part of the divergence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.camera import CameraModel
from stream.engine import Engine

from ._recording import Recording

#: Probe step relative to the median noise std (a ReLU network is piecewise linear).
PROBE_SCALE = 0.05


def estimated_mse(
    engine: Engine,
    frames: np.ndarray,
    camera: CameraModel,
    histories: list[list[np.ndarray]] | None = None,
    seed: int = 0,
) -> float:
    """Mean over ``frames`` of the SURE estimate of the per-pixel MSE (ADU²).

    ``histories``: each frame's previous frames, oldest first (temporal models).
    """
    rng = np.random.default_rng(seed)
    total = 0.0
    for i, raw in enumerate(frames):
        history = histories[i] if histories is not None else []
        y = raw.astype(np.float32)
        var = camera.gain * np.maximum(y - camera.offset, 0.0) + camera.read_noise**2
        f = engine.denoise(y, camera=camera, history=history)
        eps = PROBE_SCALE * float(np.sqrt(np.median(var)))
        probe = rng.standard_normal(y.shape).astype(np.float32)
        moved = engine.denoise(y + eps * probe, camera=camera, history=history)
        divergence = float(np.sum(var * probe * (moved - f))) / eps
        total += (float(np.sum((f - y) ** 2)) - float(np.sum(var)) + 2.0 * divergence) / y.size
    return total / max(len(frames), 1)


def recording_risk(model: Path, recording: Recording, camera: CameraModel, count: int = 8) -> float:
    """:func:`estimated_mse` of ``model`` on ``count`` valid frames spread over the
    recording (with their previous frames for a temporal model)."""
    with Engine(model, provider="cpu", warmup_shape=None) as engine:
        k = engine.metadata.frames
        windows = recording.windows(k)
        picks = windows[np.linspace(0, windows.size - 1, min(count, windows.size)).astype(int)]
        frames = recording.frames[picks]
        histories = [[recording.frames[t - j] for j in range(k - 1, 0, -1)] for t in picks]
        return estimated_mse(engine, frames, camera, histories)
