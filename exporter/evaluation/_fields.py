"""Fields: a new scene every frame, as a stage scan, a tile scan or a z-stack sends them.

Frame ``t`` is the first frame of its own scene from the independent generator
(:func:`make_movie`: written apart from the training data and never trained on), all
read out by one camera, the first scene's. Nothing is still from one frame to the next:
a temporal method has nothing to average, and a live camera estimate must not read the
scenes' differences as noise (``stream.camera``, "moved scenes"; before it did, `na-lite`
ended 2-4 dB below its own input at 100 photons on such a stream).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._independent import EvalMovie, make_movie

#: Seed-stream tag of the fields' noise (apart from the scenes' own).
_NOISE_TAG = 20_261_201


def make_fields_movie(
    photons: float,
    *,
    shape: tuple[int, int] = (128, 128),
    frames: int = 48,
    fps: float = 20.0,
    seed: int = 0,
) -> EvalMovie:
    """``frames`` unrelated scenes with somata resting at ``photons`` photons per pixel."""
    scenes = [
        make_movie(photons, shape=shape, frames=1, fps=fps, seed=(seed + 1) * 1_000_003 + t)
        for t in range(frames)
    ]
    first = scenes[0]
    expected = np.stack(
        [np.maximum((s.clean[0].astype(np.float64) - s.offset) / s.gain, 0.0) for s in scenes]
    )
    rng = np.random.default_rng([seed, _NOISE_TAG])
    read_electrons = first.read_noise / first.gain
    electrons = rng.poisson(expected) + rng.normal(0.0, read_electrons, expected.shape)
    adu = np.rint(first.gain * electrons + first.offset)
    return dataclasses.replace(
        first,
        noisy=np.clip(adu, 0, 65535).astype(np.uint16),
        clean=(first.gain * expected + first.offset).astype(np.float32),
        footprints=np.zeros((0, *shape), bool),  # no cell lives longer than a frame
        traces=np.zeros((0, frames)),
        spikes=[],
        generator="fields",
    )
