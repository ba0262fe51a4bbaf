"""The model on the frame binned 2 x 2, its output brought back to the frame's pixels: a
candidate of the blend by risk (:mod:`stream.engine._blend`) for the lowest light.

At about a photon per pixel a small network cannot average over enough pixels; binned,
the same frame holds four times the photons per pixel, a light it denoises better, and
at that light the finest detail is lost to the noise anyway. The binned readout is the
sum of four: the same gain, four times the offset, twice the read noise -- a
Poisson-Gaussian camera still. Why (one-off probe, ``na-lite`` told the true camera,
8-frame 128x128 movies, truth-scored): at 1 photon the binned pass alone was 0.58 dB
(held-out ``independent`` generator) and 2.2 dB (``phantom``) ahead of the plain output;
at 10 photons, and on fine ``textures`` at every light, it was behind -- a choice the
series' own risk makes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..camera import CameraModel
from ._engine import Engine

#: What serving a blend with the binned pass adds to a frame, in frames' time: the pass
#: runs on a quarter of the pixels, and its upsampling and mixing take the rest
#: (0.35-0.5 x a frame, ``stream/engine/models/README.md``, "Blend by risk").
BINNED_PASS_SHARE = 0.5


def bin2(image: np.ndarray) -> np.ndarray:
    """The sums of 2 x 2 blocks (float32); an odd last row or column counts twice."""
    h, w = image.shape
    padded = np.pad(image, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.float32, copy=False)
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).sum(axis=(1, 3))


def upsample2(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` linearly interpolated to twice its size, pixel centres aligned (each
    pixel of the binned frame centred on the 2 x 2 block it came from), cut to
    ``shape``."""
    out = image
    for axis in (0, 1):
        n = out.shape[axis]
        before = np.take(out, np.maximum(np.arange(n) - 1, 0), axis)  # the edge repeated
        after = np.take(out, np.minimum(np.arange(n) + 1, n - 1), axis)
        halves = (0.75 * out + 0.25 * before, 0.75 * out + 0.25 * after)
        size = list(out.shape)
        size[axis] *= 2
        out = np.stack(halves, axis=axis + 1).reshape(size)
    return np.ascontiguousarray(out[: shape[0], : shape[1]], dtype=np.float32)


def binned_camera(camera: CameraModel) -> CameraModel:
    """The camera of a 2 x 2 binned readout (the sum of four)."""
    update: dict[str, float | None] = {
        "offset": 4.0 * camera.offset,
        "read_noise": 2.0 * camera.read_noise,
        "floor": None if camera.floor is None else 4.0 * camera.floor,
    }
    return camera.model_copy(update=update)


def binned_output(
    engine: Engine,
    scene: np.ndarray,
    camera: CameraModel,
    history: Sequence[np.ndarray],
    running_mean: np.ndarray | None,
    bands: bool = True,
) -> np.ndarray:
    """The model's estimate of ``scene`` (float32, finite, spikes filled) from its 2 x 2
    binned readout, per pixel of the frame, in raw units. ``history``,
    ``running_mean`` and ``bands``: as the engine was given them for the frame."""
    out = engine.denoise(
        bin2(scene),
        camera=binned_camera(camera),
        history=[bin2(frame) for frame in history],
        running_mean=None if running_mean is None else bin2(running_mean),
        bands=bands,
    )
    out *= np.float32(0.25)
    return upsample2(out, (scene.shape[0], scene.shape[1]))
