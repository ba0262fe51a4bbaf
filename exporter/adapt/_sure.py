"""SURE training batches and loss: fine-tuning that keeps the model's view of each pixel.

A blind-spot model must guess every pixel from its neighbours alone. A supervised model
that is already close to its domain loses by that (measured: na-lite at 10 photons,
-0.28 dB after ten minutes of Noise2Void). Stein's unbiased risk estimate trains the
*unmasked* model on noisy frames alone (Soltanayev and Chun 2018; Metzler et al. 2018):
with the camera's per-pixel variance ``v = gain * (y - offset) + read**2``,

    loss = mean((f(y) - y)**2 - v + 2 v * b * (f(y + e*b) - f(y)) / e)

whose expectation is the MSE against the unseen clean frame (first order in the
Poisson-Gaussian case: the PG-URE of Luisier, Blu and Unser 2011 reduces to it). ``b``
is a standard normal probe; only the *current* frame is probed, a temporal model's
previous frames carry independent noise and stay as they are. Both inputs are built as
the engine builds them (offset, frame scale, noise map of the probed frame), so the
divergence is that of the function the service runs. Values are in the unprobed
patch's model units, the scale a per-patch constant that does not depend on the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stream.camera import CameraModel
from stream.engine import ModelMetadata

from ._blindspot import model_units
from ._recording import Recording

#: Probe step relative to the patch's median noise std (a ReLU network is piecewise
#: linear, so the finite difference is its divergence along the probe).
PROBE_SCALE = 0.05


@dataclass(frozen=True)
class SureBatch:
    inputs: np.ndarray  # (N, C, P, P) the patches as the model sees them
    probed: np.ndarray  # (N, C, P, P) the same with the current frame moved by eps * probe
    noisy: np.ndarray  # (N, P, P) the current frame, model units
    variance: np.ndarray  # (N, P, P) its noise variance, model units²
    probe: np.ndarray  # (N, P, P) standard normal
    eps: np.ndarray  # (N,) probe step, model units
    rescale: np.ndarray  # (N,) probed scale / unprobed scale (outputs to common units)


def sure_batch(
    recording: Recording,
    windows: np.ndarray,
    meta: ModelMetadata,
    camera: CameraModel,
    rng: np.random.Generator,
    batch: int,
    patch: int,
) -> SureBatch:
    """``batch`` random patches of valid windows with their probes."""
    shape = (batch, meta.in_channels, patch, patch)
    inputs, probed = np.empty(shape, np.float32), np.empty(shape, np.float32)
    noisy = np.empty((batch, patch, patch), np.float32)
    variance = np.empty_like(noisy)
    probe = rng.standard_normal((batch, patch, patch)).astype(np.float32)
    eps, rescale = np.empty(batch, np.float32), np.empty(batch, np.float32)
    for b in range(batch):
        frames, mean = recording.random_patch(windows, meta.frames, patch, rng, meta.running_mean)
        centred = frames[-1] - np.float32(camera.offset)
        # Not clipped at zero: E[gain * c + read**2] is the variance, a clipped value
        # overstates it in dark pixels (a bias of the whole estimate at low counts).
        var = camera.gain * centred + np.float32(camera.read_noise**2)
        step = PROBE_SCALE * float(np.sqrt(max(float(np.median(var)), camera.read_noise**2)))
        scale, offset = model_units(frames, meta, camera, inputs[b], mean)
        frames[-1] += np.float32(step) * probe[b]
        moved_scale, _ = model_units(frames, meta, camera, probed[b], mean)
        noisy[b] = (centred + np.float32(camera.offset - offset)) / np.float32(scale)
        variance[b] = var / np.float32(scale * scale)
        eps[b], rescale[b] = step / scale, moved_scale / scale
    return SureBatch(inputs, probed, noisy, variance, probe, eps, rescale)


def sure_loss(module: torch.nn.Module, batch: SureBatch) -> torch.Tensor:
    """The SURE estimate of the per-pixel MSE of ``module`` on ``batch`` (model units²),
    differentiable in the module's parameters."""
    both = module(torch.from_numpy(np.concatenate([batch.inputs, batch.probed])))[:, 0]
    n = len(batch.noisy)
    out, moved = both[:n], both[n:] * torch.from_numpy(batch.rescale)[:, None, None]
    y, v = torch.from_numpy(batch.noisy), torch.from_numpy(batch.variance)
    probe, eps = torch.from_numpy(batch.probe), torch.from_numpy(batch.eps)[:, None, None]
    divergence = v * probe * (moved - out) / eps
    return ((out - y) ** 2 - v + 2.0 * divergence).mean()
