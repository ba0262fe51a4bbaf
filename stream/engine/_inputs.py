"""What a noise-adaptive model sees: frames in model units and a noise map.

One definition, used by the engine on every live frame and by the exporter on every
training patch, so a model is trained on exactly what it will be given:

- ``offset`` is subtracted (the camera's bias, configured or estimated live);
- the frames are divided by a *frame scale*: the 99.5th percentile of the current frame's
  4 x 4 block means (block means, so the scale follows the signal, not the noise), never
  below ``max(3 read, gain)`` so a dark frame does not blow its noise up;
- the noise map is the Poisson-Gaussian standard deviation of each pixel of the current
  frame, ``sqrt(gain * max(x - offset, 0) + read**2)``, divided by the same scale.

The scale is recomputed per frame: a model that sees images around [0, 1] with noise
levels from about 0.01 to 1 serves a photon budget from 1 to 1000 photons per pixel
and any camera gain alike.
"""

from __future__ import annotations

import numpy as np

from ..camera import CameraModel

#: Side of the blocks whose means set the frame scale.
SCALE_BLOCK = 4
#: Percentile of the block means taken as the frame scale.
SCALE_PERCENTILE = 99.5


def bright_level(centred: np.ndarray) -> float:
    """The bright structure of an offset-subtracted frame: the 99.5th percentile of its
    4 x 4 block means (of its pixels when smaller than a block); NaN if non-finite."""
    h, w = centred.shape
    b = SCALE_BLOCK
    hb, wb = h // b, w // b
    if hb and wb:
        blocks = centred[: hb * b, : wb * b].reshape(hb, b, wb, b).mean(axis=(1, 3))
    else:
        blocks = centred
    flat = blocks.ravel()
    k = min(flat.size - 1, round(SCALE_PERCENTILE / 100 * (flat.size - 1)))
    return float(np.partition(flat, k)[k])


def scale_from(top: float, gain: float, read_noise: float) -> float:
    """The frame scale from a frame's :func:`bright_level`: it, or the floor."""
    floor = max(3.0 * read_noise, gain, 1e-6)
    return top if np.isfinite(top) and top > floor else floor


def frame_scale(centred: np.ndarray, gain: float, read_noise: float) -> float:
    """The frame scale of an offset-subtracted frame (see the module doc).

    Cost at 256 x 256: one block-mean pass and a partial sort of 4096 values, about 0.1 ms.
    """
    return scale_from(bright_level(centred), gain, read_noise)


def snr_at(top: float, gain: float, read_noise: float) -> float:
    """Poisson-Gaussian signal-to-noise ratio of one pixel at level ``top`` (0 if dark)."""
    if not np.isfinite(top) or top <= 0:
        return 0.0
    return top / float(np.sqrt(gain * top + read_noise * read_noise) + 1e-12)


def peak_snr(centred: np.ndarray, gain: float, read_noise: float) -> float:
    """Signal-to-noise ratio of one pixel at the frame's bright level: how much light
    there is, whatever the camera (0 for a dark frame)."""
    return snr_at(bright_level(centred), gain, read_noise)


def fill_noise_map(
    centred: np.ndarray, gain: float, read_noise: float, scale: float, out: np.ndarray
) -> None:
    """``out = sqrt(gain * max(centred, 0) + read**2) / scale``, in place (no allocation)."""
    np.maximum(centred, 0.0, out=out)
    out *= np.float32(gain)
    out += np.float32(read_noise * read_noise)
    np.sqrt(out, out=out)
    out *= np.float32(1.0 / scale)


def update_running_mean(mean: np.ndarray, frame: np.ndarray, decay: float, count: int) -> None:
    """Take ``frame`` into ``mean`` in place, in float32, as the ``count``-th frame
    (counting from 1, the frame that started the mean): ``mean += w * (frame - mean)``
    with ``w = max(decay, 1 / count)``. The plain mean of the frames so far until it
    holds ``1 / decay`` of them, exponential after that: a young series' mean is then
    as clean as its frames allow, not dominated by its first frame. One definition for
    the engine and the training data (the model contract's running mean)."""
    weight = max(decay, 1.0 / count)
    mean *= np.float32(1.0 - weight)
    mean += np.float32(weight) * frame.astype(np.float32, copy=False)


def model_input(
    frames: np.ndarray,
    camera: CameraModel,
    noise_map: bool,
    out: np.ndarray | None = None,
    running_mean: np.ndarray | None = None,
) -> float:
    """Fill ``out`` (C, H, W) with a model's input for ``frames`` (K, H, W), oldest first.

    Channels: the K frames in model units, then the noise map of the current (last)
    frame when ``noise_map``, then ``running_mean`` (H, W; raw units, like the frames)
    in model units when given. Returns the scale (model units -> ADU above the
    offset). The engine builds the same values in its tile buffers with the same
    operations.
    """
    k = frames.shape[0]
    if out is None:
        channels = k + int(noise_map) + int(running_mean is not None)
        out = np.empty((channels, *frames.shape[1:]), np.float32)
    offset = np.float32(camera.offset)
    for i in range(k):
        np.subtract(frames[i], offset, out=out[i], dtype=np.float32, casting="unsafe")
    scale = frame_scale(out[k - 1], camera.gain, camera.read_noise)
    if noise_map:
        fill_noise_map(out[k - 1], camera.gain, camera.read_noise, scale, out[k])
    inverse = np.float32(1.0 / scale)
    out[:k] *= inverse
    if running_mean is not None:
        mean = out[k + int(noise_map)]
        np.subtract(running_mean, offset, out=mean, dtype=np.float32, casting="unsafe")
        mean *= inverse
    return scale
