"""A field of view masked outside its circle, frames padded to a size, borders
zero-filled: blocks holding one value are no camera's noise, and the live estimate
leaves them out (and a stream masked with NaN still gets one); a region masked with a
value below anything the camera reads is kept from the model as NaN pixels are, and
given back as it came."""

from __future__ import annotations

import numpy as np
import pytest

from stream.camera import CameraEstimator, CameraModel, flat_blocks, masked_pixels
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


def test_nan_lines_thinner_than_a_block_are_left_out_of_the_estimate() -> None:
    """Three NaN columns and a NaN row (cut or dead lines) in a float recording: filled
    flat, the blocks they cross were only partly flat, and their fill's missing noise
    read as a quieter camera (read noise about half the true one in a user's trial).
    The estimate from the frames with them equals the one from the frames without,
    and is the camera's."""
    plain, cut = CameraEstimator(), CameraEstimator()
    config = PhantomConfig(
        shape=SHAPE, brightness=30.0, neuropil=9.0, background=6.0, seed=5, noise=CAMERA
    )
    phantom = CalciumPhantom(config, 16)
    for t in range(16):
        photons = phantom.clean(t)
        frame = apply_camera_noise(photons, CAMERA, frame_rng(5, t)).astype(np.float32)
        expected = plain.update(frame)
        frame[:, 41:44] = np.nan
        frame[90, :] = np.nan
        got = cut.update(frame)
    assert got.source == expected.source == "temporal"
    assert got.camera.gain == pytest.approx(expected.camera.gain, rel=0.05)
    assert got.camera.read_noise == pytest.approx(expected.camera.read_noise, rel=0.15)
    assert noise_error(got.camera, photons) < 0.1
    assert got.camera.gain == pytest.approx(CAMERA.gain, rel=0.1)


def test_masked_pixels_are_the_region_set_below_the_camera_to_its_edge() -> None:
    """Found from its whole 4 x 4 blocks, then to its edge between the blocks."""
    frame = np.random.default_rng(0).normal(100, 1.5, (32, 40)).round().astype(np.uint16)
    assert masked_pixels(frame, CAMERA) is None
    frame[:6] = 0  # a motion-corrected frame's filled border: 6 rows and 9 columns
    frame[:, -9:] = 0
    frame[20, 5] = 0  # a dead pixel: one, not a region
    expected = np.zeros(frame.shape, bool)
    expected[:6], expected[:, -9:] = True, True
    np.testing.assert_array_equal(masked_pixels(frame, CAMERA), expected)
    floats = frame.astype(np.float32)
    floats[30, 0] = np.nan  # a NaN pixel is not the mask's value
    np.testing.assert_array_equal(masked_pixels(floats, CAMERA), expected)


def test_what_a_camera_reads_is_no_mask() -> None:
    """A photon counter's dark pixels read the offset itself; an unsigned camera's
    dark pixels pile up at the floor it clips at; a frame of one value has nothing to
    keep apart from."""
    rng = np.random.default_rng(1)
    counter = CameraModel(gain=1.0, offset=100.0, read_noise=0.0)
    dark = (100 + rng.poisson(0.02, (32, 32))).astype(np.uint16)  # most blocks all 100
    assert flat_blocks(dark) is not None and masked_pixels(dark, counter) is None
    clipped = CameraModel(gain=1.0, offset=0.0, read_noise=2.0, floor=0.0)
    readout = np.clip(rng.normal(0.0, 2.0, (32, 32)).round(), 0, None).astype(np.uint16)
    readout[:8] = 0
    assert masked_pixels(readout, clipped) is None
    assert masked_pixels(np.zeros((32, 32), np.uint16), CAMERA) is None


def test_where_the_read_noise_rules_out_equal_readouts_a_mask_may_lie_at_any_level() -> None:
    """Frames less their offset, masked with 0: 0 is the offset's level, read by dark
    pixels; but not 16 times in a row with 3 ADU of read noise. The saturation level
    (the frame's maximum) is not a mask."""
    rng = np.random.default_rng(2)
    frame = (CAMERA.gain * rng.poisson(5.0, (32, 32)) + rng.normal(0, 3.0, (32, 32))).round()
    frame = frame.astype(np.float32)
    less_offset = CameraModel(gain=CAMERA.gain, offset=0.0, read_noise=3.0)
    assert masked_pixels(frame, less_offset) is None
    frame[:, :8] = 0.0
    frame[24:, 20:] = frame.max() + 50  # saturated, in whole blocks
    masked = masked_pixels(frame, less_offset)
    assert masked is not None and masked[:, :8].all() and not masked[24:, 20:].any()
    # a pixel of the field beside it that reads 0 joins it (and goes back as it read)
    assert np.count_nonzero(masked[:, 8:]) <= 2
    counter = CameraModel(gain=1.0, offset=0.0, read_noise=1.5)  # under 2 steps: counts
    assert masked_pixels(frame, counter) is None


def test_a_photon_counters_dark_part_is_no_mask_even_told_read_noise() -> None:
    """A live estimate of a photon counter whose frames hold a bright part can report
    read noise of several counts (the offset and the read noise trade off in its fit);
    its dark part still reads the offset, with the few pixels that caught a photon."""
    rng = np.random.default_rng(6)
    photons = np.full((64, 64), 200.0)
    photons[:, :24] = 0.002  # a dark band
    frame = (100 + rng.poisson(photons)).astype(np.uint16)
    assert (frame[:, :24] != 100).sum() >= 2  # a few caught a photon
    told = CameraModel(gain=1.0, offset=170.0, read_noise=8.0)
    assert masked_pixels(frame, told) is None
    frame[:, :24] = 100  # the same band filled: a mask, at the offset
    assert masked_pixels(frame, told) is not None


def test_a_photon_counters_dark_edge_is_no_mask_either() -> None:
    """A 2 px dark edge (blanking, vignetting) reads the offset in runs along the edge;
    the few pixels that caught a photon lie on the frame's outermost lines, where the
    frame's edge encloses them."""
    rng = np.random.default_rng(9)
    photons = np.full((64, 64), 200.0)
    photons[:, :2], photons[:2, :] = 0.05, 0.05
    told = CameraModel(gain=1.0, offset=0.0, read_noise=8.0)  # as a live estimate says
    masked = 0
    for _ in range(10):
        frame = rng.poisson(photons).astype(np.uint16)
        masked += masked_pixels(frame, told) is not None
    assert masked == 0  # (an edge that caught no photon at all cannot be told from a fill)


def test_non_finite_blocks_are_no_mask() -> None:
    """A 4 x 4 block of -inf was a block of one value below the offset: given back as
    -inf instead of NaN like every other non-finite pixel."""
    frame = np.random.default_rng(0).normal(100, 1.5, (32, 32)).astype(np.float32)
    frame[8:12, 8:12] = -np.inf
    assert masked_pixels(frame, CAMERA) is None


def test_a_border_thinner_than_a_block_is_found_from_its_runs_along_the_edge() -> None:
    """A motion-corrected frame's border of 1-3 px holds no whole 4 x 4 block."""
    frame = np.random.default_rng(3).normal(100, 1.5, (40, 48)).round().astype(np.uint16)
    frame[:2] = 0  # two rows
    frame[:, -1] = 0  # one column
    frame[20, 3:18] = 0  # 15 in a row inside the field: neither a block nor an edge run
    expected = np.zeros(frame.shape, bool)
    expected[:2], expected[:, -1] = True, True
    np.testing.assert_array_equal(masked_pixels(frame, CAMERA), expected)
    frame[:2], frame[:, -1] = 100, 100  # at the offset, read noise under 2 steps: data
    assert masked_pixels(frame, CAMERA) is None


def test_a_border_that_moves_is_no_camera_pixels_noise(conv_model_adaptive) -> None:
    """A motion-corrected border changes width from frame to frame: a column that is
    border in one frame and scene in the next stepped from the fill to the scene, and
    the search for noisy pixels took it for noisy and filled it from its neighbours
    (one-off probe at 1000 photons: 112 pixels, 9634 against 607 squared error)."""
    from stream.engine import Engine, SeriesContext

    rng = np.random.default_rng(8)
    scene = 2000.0 + 1000.0 * rng.random((64, 64))
    context = SeriesContext(None)
    with Engine(conv_model_adaptive, provider="cpu", warmup_shape=None) as engine:
        for t in range(12):
            frame = (100 + rng.poisson(scene)).astype(np.uint16)
            frame[:, 64 - (2 + t % 2) :] = 0  # 2 or 3 columns
            out = context.denoise(engine, frame, t)
            assert (out[:, 64 - (2 + t % 2) :] == 0).all()
    assert context.masked in (128, 192) and context.camera_side.noisy_pixels == 0


@pytest.mark.parametrize("brightness", [3.0, 10.0, 30.0])
def test_a_border_that_moves_keeps_the_cameras_estimate(brightness: float) -> None:
    """A zero border 0-8 px wide on three sides, anew each frame (suite2p's and CaImAn's
    motion correction): a block masked in one frame of a pair and lit in the other, or
    in one frame the levels are averaged over, gave a fill-to-scene step as noise (a
    user's trial: gain 0.08 +- 0.14 for 2 at 3 photons per pixel, 0.43 +- 0.1 at 10)."""
    config = PhantomConfig(
        shape=(128, 128), brightness=brightness, neuropil=brightness / 3, background=1.0,
        seed=9, noise=CAMERA,
    )  # fmt: skip
    phantom = CalciumPhantom(config, 24)
    rng = np.random.default_rng(41)
    estimator = CameraEstimator()
    for t in range(24):
        frame = apply_camera_noise(phantom.clean(t), CAMERA, frame_rng(9, t)).astype(np.uint16)
        top, left, right = rng.integers(0, 9, 3)
        frame[:top] = 0
        frame[:, :left] = 0
        frame[:, frame.shape[1] - right :] = 0
        estimate = estimator.update(frame)
    assert estimate.source == "temporal"
    assert estimate.camera.gain == pytest.approx(CAMERA.gain, rel=0.1), estimate


def test_scattered_nan_pixels_do_not_starve_the_estimate() -> None:
    """Five NaN pixels at random each frame: every block they touched stayed out of the
    samples for the rest of the series (a review of the moving-border change: 19
    samples a pair by frame 100, none by 200, the gain 2.85 for 2). Only blocks of one
    value (a mask, a border) are remembered, and for FILL_MEMORY frames."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    scene = 20 + 10 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / 800)
    estimator = CameraEstimator()
    for _ in range(150):
        frame = (rng.poisson(scene) * 2.0 + 100 + rng.normal(0, 3, scene.shape)).astype(np.float32)
        frame[rng.integers(0, 128, 5), rng.integers(0, 128, 5)] = np.nan
        estimate = estimator.update(frame)
    assert np.isfinite(estimator._power[-1]).sum() > 800  # of 1024 blocks
    assert estimate.camera.gain == pytest.approx(2.0, rel=0.1), estimate


def _edge_ring() -> np.ndarray:
    """The 3 px just inside the field of view's edge."""
    inside = ~OUTSIDE
    return inside & ((yy - 96) ** 2 + (xx - 96) ** 2 >= 81**2)


def test_a_field_masked_with_0_is_denoised_as_if_masked_with_nan() -> None:
    """Masked with 0 at an offset of 100, the shipped default smoothed the mask's edge
    into the field: the 3 px inside the edge came out worse than they went in, and the
    mask itself came out nonzero."""
    from stream.engine import Engine, SeriesContext, default_model_path

    context = SeriesContext(None)
    ring = _edge_ring()
    errors = {"in": 0.0, "out": 0.0, "inside": 0.0, "inside_in": 0.0}
    with Engine(default_model_path("cpu"), provider="cpu", warmup_shape=None) as engine:
        for t, (photons, frame) in enumerate(masked_stream(0.0, 6)):
            out = context.denoise(engine, frame, t)
            assert (out[OUTSIDE] == 0).all()  # given back as it came
            truth = CAMERA.offset + CAMERA.gain * photons
            errors["in"] += float(np.mean((frame[ring] - truth[ring]) ** 2))
            errors["out"] += float(np.mean((out[ring] - truth[ring]) ** 2))
            errors["inside_in"] += float(np.mean((frame[~OUTSIDE] - truth[~OUTSIDE]) ** 2))
            errors["inside"] += float(np.mean((out[~OUTSIDE] - truth[~OUTSIDE]) ** 2))
    assert context.masked == int(OUTSIDE.sum()) and context.frames_masked == 6
    # now 0.05 and 0.05 of their input's error; before, 1.8 and 0.19
    assert errors["out"] < 0.15 * errors["in"], errors
    assert errors["inside"] < 0.1 * errors["inside_in"], errors
