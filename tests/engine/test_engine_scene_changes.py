"""A scene that moved since the previous frame empties a temporal model's history, as a
gap does: the previous frames belong to another scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from stream.camera import scene_moved
from stream.engine import CameraModel, Engine, SeriesContext

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=3.0)


def readouts(n: int, shape: tuple[int, int], scene_seed: int, seed: int) -> np.ndarray:
    """``n`` readouts of one still scene with structure a few pixels wide (as optics
    make it: a scene white at the pixel scale cannot be told from noise)."""
    field = ndimage.gaussian_filter(np.random.default_rng(scene_seed).random(shape), 2.0)
    photons = 100.0 * (field - field.min()) / np.ptp(field)
    rng = np.random.default_rng(seed)
    return (CAMERA.offset + CAMERA.gain * rng.poisson(photons, (n, *shape))).astype(np.uint16)


def test_scene_moved_on_a_still_pair_a_new_scene_and_a_large_frame() -> None:
    a = readouts(2, (64, 64), scene_seed=1, seed=1)
    b = readouts(1, (64, 64), scene_seed=2, seed=2)
    assert not scene_moved(a[1], a[0])
    assert scene_moved(b[0], a[0])
    big_a = readouts(2, (512, 512), scene_seed=3, seed=3)  # judged on a sample of rows
    big_b = readouts(1, (512, 512), scene_seed=4, seed=4)
    assert not scene_moved(big_a[1], big_a[0]) and scene_moved(big_b[0], big_a[0])
    assert not scene_moved(a[0][:3, :3], b[0][:3, :3])  # smaller than a block: cannot tell
    assert not scene_moved(a[0], big_a[0])  # another frame size: not a pair


def test_a_moved_scene_empties_the_ring_and_the_mean(conv_model_running_mean: Path) -> None:
    a = readouts(2, (48, 48), scene_seed=5, seed=5)
    b = readouts(2, (48, 48), scene_seed=6, seed=6)
    with Engine(conv_model_running_mean, provider="cpu", warmup_shape=None) as engine:

        def alone(frame: np.ndarray, history: list[np.ndarray], mean: np.ndarray) -> np.ndarray:
            return engine.denoise(frame, camera=CAMERA, history=history, running_mean=mean)

        context = SeriesContext(CAMERA, blend="off")
        context.denoise(engine, a[0], 0)
        still = context.denoise(engine, a[1], 1)
        np.testing.assert_array_equal(still, alone(a[1], [a[0]], a[0].astype(np.float32)))
        assert context.scene_changes == 0
        moved = context.denoise(engine, b[0], 2)  # consecutive index, another scene
        np.testing.assert_array_equal(moved, alone(b[0], [], b[0].astype(np.float32)))
        assert context.scene_changes == 1
        after = context.denoise(engine, b[1], 3)  # the new scene's history starts
        np.testing.assert_array_equal(after, alone(b[1], [b[0]], b[0].astype(np.float32)))
        assert context.scene_changes == 1
        assert context.history_bytes == 2 * b[0].size * 4  # one frame and the mean


def test_a_spatial_model_does_not_pay_for_the_test(box_model: Path) -> None:
    a = readouts(1, (32, 32), scene_seed=7, seed=7)
    b = readouts(1, (32, 32), scene_seed=8, seed=8)
    with Engine(box_model, provider="cpu", warmup_shape=None) as engine:
        context = SeriesContext(blend="off")
        context.denoise(engine, a[0], 0)
        context.denoise(engine, b[0], 1)
        assert context.scene_changes == 0 and context.history_bytes == 0
