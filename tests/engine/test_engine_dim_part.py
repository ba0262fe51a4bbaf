"""A frame whose dim part lies far below its bright part: the dim part is denoised again
at its own scale (``stream.engine.dim_part_level``), as a frame of that light alone is."""

from __future__ import annotations

import numpy as np
import pytest

import stream.engine._inputs as inputs
from stream.engine import (
    HDR_RATIO,
    CameraModel,
    Engine,
    block_levels,
    default_model_path,
    dim_part_level,
)

CAMERA = CameraModel(gain=1.0, offset=100.0, read_noise=3.0)
SHAPE = (128, 128)


def _scene(bright_over_dim: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Photons: a textured background of about 10 photons, and blurred discs over about
    2 % of the frame at ``bright_over_dim`` times its bright level; and the pixels more
    than 8 px from every disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    background = 10.0 * (1.0 + 0.5 * np.sin(yy / 7.0) * np.cos(xx / 11.0))
    discs = np.zeros(SHAPE)
    for cy, cx in rng.uniform(10, 118, (7, 2)):
        discs = np.maximum(discs, ((yy - cy) ** 2 + (xx - cx) ** 2 < 16).astype(float))
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 1.2) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):  # an optical blur: no scene steps from dim to bright in one pixel
        discs = np.apply_along_axis(np.convolve, axis, discs, kernel, mode="same")
    near = discs > 0.01
    far = np.ones(SHAPE, bool)
    for dy in range(-8, 9):
        for dx in range(-8, 9):
            far &= ~np.roll(np.roll(near, dy, 0), dx, 1)
    level = np.percentile(background, 99.5) * bright_over_dim
    return background + discs * (level - background), far


def _read_out(photons: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, CAMERA.read_noise, photons.shape)
    return (rng.poisson(photons) + CAMERA.offset + noise).astype(np.float32)


def test_a_frame_of_ordinary_range_has_no_dim_part() -> None:
    photons, _ = _scene(3.0)
    blocks = block_levels(_read_out(photons) - np.float32(CAMERA.offset))
    top = float(np.percentile(blocks, 99.5))
    assert dim_part_level(blocks, top, CAMERA.gain, CAMERA.read_noise) is None


def test_a_dark_background_beside_bright_structure_is_no_dim_part() -> None:
    """Read noise alone beside the bright part: as the training scenes had it."""
    photons, _ = _scene(1000.0)
    photons = np.where(photons > 100.0, photons, 0.0)
    blocks = block_levels(_read_out(photons) - np.float32(CAMERA.offset))
    top = float(np.percentile(blocks, 99.5))
    assert dim_part_level(blocks, top, CAMERA.gain, CAMERA.read_noise) is None


def test_the_dim_part_level_follows_the_dim_blocks() -> None:
    blocks = np.full((32, 32), 10.0)
    blocks[:2] = 10.0 * (HDR_RATIO + 5)  # 6 % of the blocks far brighter
    level = dim_part_level(blocks, float(np.percentile(blocks, 99.5)), 1.0, 3.0)
    assert level == pytest.approx(inputs.HDR_DIM_TOP * 10.0)


@pytest.mark.parametrize("bright_over_dim", [100.0, 1000.0])
def test_the_dim_part_is_denoised_as_well_as_without_the_bright_part(
    bright_over_dim: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    photons, far = _scene(bright_over_dim)
    frame = _read_out(photons)
    alone = _read_out(np.where(far, photons, 10.0))  # the same light, no bright part
    truth = photons + CAMERA.offset

    def far_error(out: np.ndarray) -> float:
        return float(np.sqrt(np.mean((out - truth)[far] ** 2)))

    with Engine(default_model_path(), provider="cpu", warmup_shape=None) as engine:
        two, report = engine.denoise_with_report(frame, camera=CAMERA)
        reference = far_error(engine.denoise(alone, camera=CAMERA))
        monkeypatch.setattr(inputs, "HDR_RATIO", np.inf)  # one scale, as before
        one, single = engine.denoise_with_report(frame, camera=CAMERA)
    noisy = far_error(frame)
    assert report.two_scales and not single.two_scales
    assert far_error(two) < 1.25 * reference < 0.5 * noisy  # as if alone
    assert far_error(one) > 1.5 * far_error(two)  # one scale: the dim part left noisier
    bright = ~far & (photons > 0.5 * photons.max())
    np.testing.assert_allclose(two[bright], one[bright], rtol=0.02)  # the bright part kept
