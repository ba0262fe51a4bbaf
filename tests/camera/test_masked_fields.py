"""A field of view masked outside its circle, frames padded to a size, borders
zero-filled: blocks holding one value are no camera's noise, and the live estimate
leaves them out (and a stream masked with NaN still gets one)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.camera import CameraEstimator, CameraModel, flat_blocks
from stream.sim import CalciumPhantom, PhantomConfig, apply_camera_noise, frame_rng

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.5)
SHAPE = (192, 192)
yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
OUTSIDE = (yy - 96) ** 2 + (xx - 96) ** 2 >= 84**2  # about a quarter of the frame


def masked_stream(fill: float, frames: int, dtype: type = np.uint16):
    """(photons, masked readout) pairs of the phantom at 30 photons."""
    config = PhantomConfig(
        shape=SHAPE, brightness=30.0, neuropil=9.0, background=6.0, seed=3, noise=CAMERA
    )
    phantom = CalciumPhantom(config, frames)
    for t in range(frames):
        frame = apply_camera_noise(phantom.clean(t), CAMERA, frame_rng(3, t)).astype(dtype)
        frame[OUTSIDE] = fill
        yield phantom.clean(t), frame


def noise_error(camera: CameraModel, photons: np.ndarray) -> float:
    """Median relative error of the noise std the camera gives inside the field of view:
    what the model is told (offset and read noise trade off in the intercept)."""
    level = CAMERA.gain * photons[~OUTSIDE] + CAMERA.offset
    true = np.sqrt(CAMERA.gain * (level - CAMERA.offset) + CAMERA.read_noise**2)
    told = np.sqrt(np.maximum(camera.gain * (level - camera.offset), 0) + camera.read_noise**2)
    return float(np.median(np.abs(told / true - 1)))


def test_flat_blocks_are_one_valued_blocks_and_the_blocks_around_them() -> None:
    frame = np.random.default_rng(0).normal(100, 3, (32, 32)).astype(np.float32)
    assert flat_blocks(frame) is None
    frame[:8, :9] = 0.0  # blocks (0, 0) to (1, 1) are one-valued, (0, 2) and (1, 2) not
    grid = flat_blocks(frame).reshape(8, 8)
    expected = np.zeros((8, 8), bool)
    expected[:3, :3] = True  # the four and the ring of blocks the edge runs through
    np.testing.assert_array_equal(grid, expected)
    # readouts clipped at a floor of 0 hold it in dark blocks: clipped noise, not a fill
    assert flat_blocks(frame, floor=0.0) is None


@pytest.mark.parametrize("fill", [0.0, 100.0])
def test_a_masked_field_of_view_keeps_the_cameras_estimate(fill: float) -> None:
    """Masked to 0 or to the offset, the flat samples (noise power 0) pinned the fit to
    a camera without noise: gain 0.00-0.05 and read noise 0 for a true 2 and 1.5."""
    estimator = CameraEstimator()
    for photons, frame in masked_stream(fill, 24):
        estimate = estimator.update(frame)
        assert noise_error(estimate.camera, photons) < 0.1, estimate
    assert estimate.source == "temporal"
    assert estimate.camera.gain == pytest.approx(CAMERA.gain, rel=0.1)


def test_a_stream_masked_with_nan_gets_a_live_estimate(conv_model_adaptive) -> None:
    """NaN outside the field of view in every frame: such frames were kept from the
    estimate, so a series' camera stayed the first frame's, estimated with 0 in the
    NaNs' place (a camera without noise). Now the NaNs are a flat fill it leaves out."""
    from stream.engine import Engine, SeriesContext

    context = SeriesContext(None)
    with Engine(conv_model_adaptive, provider="cpu", warmup_shape=None) as engine:
        for t, (photons, frame) in enumerate(masked_stream(np.nan, 12, np.float32)):  # noqa: B007 (the last is used)
            out = context.denoise(engine, frame, t)
            assert np.isnan(out[OUTSIDE]).all() and np.isfinite(out[~OUTSIDE]).all()
    estimate = context.estimate
    assert estimate is not None and estimate.source == "temporal" and estimate.frames == 12
    assert estimate.camera.gain == pytest.approx(CAMERA.gain, rel=0.1)
    assert noise_error(estimate.camera, photons) < 0.1
