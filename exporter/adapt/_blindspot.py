"""Blind-spot training batches (Noise2Void) from the recording itself.

A few pixels of the *current* frame of each patch are replaced by a random neighbour
within a 5 x 5 window (never themselves), and the model is asked for their original
noisy values. Camera noise is independent from pixel to pixel, so the best it can do
from the neighbours is the clean value: the expected loss is the clean loss plus the
noise variance. A temporal model keeps its previous frames untouched -- their noise is
independent of the current frame's, so they are context, not a leak.

The noise map is computed from the *masked* frame, as the engine would: a map built
from the original pixel would hand the model that pixel's value.
"""

from __future__ import annotations

import numpy as np

from stream.camera import CameraModel
from stream.engine import ModelMetadata, model_input

from ._recording import Recording

#: Neighbour offsets within a 5 x 5 window, the centre excluded.
_OFFSETS = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy or dx])


def model_units(
    frames: np.ndarray,
    meta: ModelMetadata,
    camera: CameraModel,
    out: np.ndarray,
    running_mean: np.ndarray | None = None,
) -> tuple[float, float]:
    """Fill ``out`` with the model's input for raw ``frames`` (K, H, W) (and the running
    mean of the frames before them, for a model that takes it); (scale, offset) such
    that raw = model * scale + offset."""
    if meta.normalization == "adaptive" or meta.noise_map:
        told = meta.told_read_noise(camera.gain, camera.read_noise)  # as the engine tells it
        if told != camera.read_noise:
            camera = camera.model_copy(update={"read_noise": told})
        scale = model_input(frames, camera, meta.noise_map, out=out, running_mean=running_mean)
        return scale, camera.offset
    np.subtract(frames, np.float32(meta.input_offset), out=out[: meta.frames], dtype=np.float32)
    out[: meta.frames] /= np.float32(meta.input_scale)
    return meta.input_scale, meta.input_offset


def blind_spot_batch(
    recording: Recording,
    windows: np.ndarray,
    meta: ModelMetadata,
    camera: CameraModel,
    rng: np.random.Generator,
    batch: int,
    patch: int,
    fraction: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs [N, C, P, P], targets [N, P, P], mask [N, P, P]) in model units."""
    inputs = np.empty((batch, meta.in_channels, patch, patch), np.float32)
    targets = np.zeros((batch, patch, patch), np.float32)
    mask = np.zeros((batch, patch, patch), bool)
    n_masked = max(1, round(fraction * patch * patch))
    for b in range(batch):
        frames, mean = recording.random_patch(windows, meta.frames, patch, rng, meta.running_mean)
        original = frames[-1].copy()
        ys, xs = np.divmod(rng.choice(patch * patch, n_masked, replace=False), patch)
        offsets = _OFFSETS[rng.integers(0, len(_OFFSETS), n_masked)]
        ny = np.clip(ys + offsets[:, 0], 0, patch - 1)
        nx = np.clip(xs + offsets[:, 1], 0, patch - 1)
        # A clipped neighbour can land on the pixel itself at a border: step inwards.
        same = (ny == ys) & (nx == xs)
        ny[same] = np.where(ys[same] > 0, ys[same] - 1, ys[same] + 1)
        frames[-1, ys, xs] = original[ny, nx]
        scale, offset = model_units(frames, meta, camera, inputs[b], mean)
        targets[b] = (original - np.float32(offset)) / np.float32(scale)
        mask[b, ys, xs] = True
    return inputs, targets, mask
