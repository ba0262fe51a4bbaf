"""One-pixel spikes (hot pixels, cosmic rays): found, filled, kept out of the live
estimate, and kept from the model."""

from __future__ import annotations

import numpy as np
import pytest

from stream.camera import CameraEstimator, CameraModel, fill_spikes, find_spikes
from stream.engine import Engine, SeriesContext, shipped_model_path
from stream.sim import CalciumPhantom, PhantomConfig, apply_camera_noise, frame_rng

CAMERA = CameraModel(gain=1.0, offset=100.0, read_noise=3.0)
SHAPE = (128, 128)


def phantom_stream(photons: float, frames: int, hot: np.ndarray | None, excess: float = 0.0):
    """(clean in ADU, readout) pairs of the phantom; ``hot`` pixels read ``excess`` more."""
    config = PhantomConfig(
        shape=SHAPE, brightness=photons, neuropil=0.3 * photons, background=0.2 * photons,
        seed=4, noise=CAMERA,
    )  # fmt: skip
    phantom = CalciumPhantom(config, frames)
    for t in range(frames):
        frame = apply_camera_noise(phantom.clean(t), CAMERA, frame_rng(4, t)).astype(np.float32)
        if hot is not None:
            frame[hot] += excess
        yield CAMERA.gain * phantom.clean(t) + CAMERA.offset, frame.astype(np.uint16)


def hot_pixels(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, bool)
    mask[rng.integers(2, SHAPE[0] - 2, count), rng.integers(2, SHAPE[1] - 2, count)] = True
    return mask


def test_a_hot_pixel_and_a_pair_are_spikes_and_an_optical_spot_is_not() -> None:
    rng = np.random.default_rng(1)
    frame = rng.normal(0, 3, (32, 32)).astype(np.float32)
    frame[5, 5] = 400  # a hot pixel
    frame[20, 20:22] = 300  # two hot pixels side by side: each has one bright neighbour
    yy, xx = np.mgrid[0:32, 0:32]
    frame += 2000 * np.exp(-((yy - 12) ** 2 + (xx - 26) ** 2) / (2 * 0.85**2))  # FWHM 2 px
    spikes = find_spikes(frame, CAMERA.gain, CAMERA.read_noise)
    assert spikes is not None
    assert sorted(zip(*spikes, strict=True)) == [(5, 5), (20, 20), (20, 21)]
    fill_spikes(frame, spikes)
    assert abs(frame[5, 5]) < 12 and abs(frame[20, 20]) < 12  # their neighbours' median


def test_noise_and_structure_alone_hold_no_spike() -> None:
    for photons in (0.3, 3.0, 100.0, 3000.0):
        for _, frame in phantom_stream(photons, 3, None):
            centred = frame.astype(np.float32) - CAMERA.offset
            assert find_spikes(centred, CAMERA.gain, CAMERA.read_noise) is None, photons


@pytest.mark.parametrize("excess", [300.0, 3000.0])
def test_hot_pixels_do_not_pull_the_live_estimate(excess: float) -> None:
    """A tenth of a percent of hot pixels raise their blocks' level but not their noise:
    without leaving them out, the fitted gain fell to 0.48-0.49 here (0.87 without them)."""
    without, with_hot = CameraEstimator(), CameraEstimator()
    for (_, frame), (_, hot_frame) in zip(
        phantom_stream(3.0, 24, None), phantom_stream(3.0, 24, hot_pixels(16), excess), strict=True
    ):
        reference, estimate = without.update(frame), with_hot.update(hot_frame)
    assert estimate.source == "temporal"
    assert estimate.camera.gain == pytest.approx(reference.camera.gain, rel=0.05), estimate
    assert estimate.camera.offset == pytest.approx(reference.camera.offset, abs=1.0)


@pytest.fixture(scope="module")
def na_lite() -> Engine:
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        yield engine


def test_the_model_denoises_around_hot_pixels(na_lite: Engine) -> None:
    """The model read hot pixels hundreds of sigmas above a dim scene as structure and
    smeared them over its receptive field. (The blend is off: frames with spikes filled
    are offered fewer of its candidates, and this is about the model.)"""
    hot = hot_pixels(16)
    away = np.ones(SHAPE, bool)
    for y, x in zip(*np.nonzero(hot), strict=True):
        away[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = False

    def error(policy: str, with_hot: bool) -> tuple[float, np.ndarray, np.ndarray]:
        na_lite.spikes = policy
        context = SeriesContext(CAMERA, blend="off")
        errors = []
        for truth, frame in phantom_stream(1.0, 3, hot if with_hot else None, 500.0):
            out = context.denoise(na_lite, frame)
            errors.append(np.mean((out - truth)[away] ** 2))
        return float(np.mean(errors)), out, frame

    try:
        clean, _, _ = error("correct", False)
        off, _, _ = error("off", True)
        corrected, out, frame = error("correct", True)
        assert corrected < 1.2 * clean < 0.1 * off  # as if there were none; 10x worse without
        assert np.all(out[hot] < 150)  # the model's estimate of the scene there
        _, passed, frame = error("pass", True)
        np.testing.assert_array_equal(passed[hot], frame[hot])  # the spikes as they came
        _, report = na_lite.denoise_with_report(frame, camera=CAMERA)
        assert report.spike_count == int(hot.sum())
        assert set(zip(*report.spikes, strict=True)) == set(zip(*np.nonzero(hot), strict=True))
    finally:
        na_lite.spikes = "correct"


def test_a_point_of_the_scene_is_left_to_the_model(na_lite: Engine) -> None:
    """A one-pixel star within a few times the scene's level: the model was trained on
    points and keeps them; only spikes far above the scene are defects."""
    rng = np.random.default_rng(2)
    sky = 100.0 + rng.poisson(20.0, SHAPE) + rng.normal(0, 3, SHAPE)
    sky[40, 40] += 60.0  # about 3x the sky: a star
    frame = sky.astype(np.uint16)
    _, report = na_lite.denoise_with_report(frame, camera=CAMERA)
    assert report.spike_count == 0 and report.spikes is None


def test_an_undersampled_star_far_above_the_scene_is_left_to_the_model(na_lite: Engine) -> None:
    """Stars 0.45 px wide (a sigma; each pixel their integral over it), 30-150 times a
    dim sky: their nearest neighbours hold a tenth of their light, which no hot pixel
    spills. Filled away as hot pixels, the output was worse than the input (one-off
    probe: 35.0 dB out for 43.4 in at 10 photons per pixel; 53.0 left to the model)."""
    from scipy.special import erf

    rng = np.random.default_rng(3)
    sky = np.full(SHAPE, 10.0)
    edges = np.arange(SHAPE[0] + 1) - 0.5
    for _ in range(8):
        y, x = rng.uniform(6, SHAPE[0] - 6, 2)
        light = [np.diff(0.5 * (1 + erf((edges - c) / (0.45 * np.sqrt(2))))) for c in (y, x)]
        sky += 10.0 * rng.uniform(30, 150) * np.outer(*light)
    truth = CAMERA.gain * sky + CAMERA.offset
    context = SeriesContext(None)
    for t in range(4):
        frame = apply_camera_noise(sky, CAMERA, frame_rng(7, t))
        out = context.denoise(na_lite, frame, t)
        assert context.spikes == 0  # the latest frame's, as status shows them
    assert np.mean((out - truth) ** 2) < np.mean((frame - truth) ** 2)
    hot = frame.astype(np.float32)
    defects = [(64, 20), (0, 0), (0, 70), (0, 71)]  # beside them, one; a corner; a pair
    for y, x in defects:
        hot[y, x] += 1000.0
    _, report = na_lite.denoise_with_report(hot.astype(np.uint16), camera=CAMERA)
    assert report.spikes is not None
    assert set(defects) <= set(zip(*report.spikes, strict=True))  # all still filled


def test_a_field_of_beads_is_no_field_of_hot_pixels() -> None:
    """2 x 2 px beads 6 px apart over a dark frame (100 photons): the first frame's
    estimate read their edges as a camera of almost no noise, 7 % of the pixels then
    passed for spikes, their blocks left the fit too few samples to mend it, and the
    beads were filled away frame after frame (5.3 dB worse than the input). So many
    spikes are no camera's defects: none are taken."""
    from scipy import ndimage

    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    beads = 0.3 + ((yy % 6 < 2) & (xx % 6 < 2)).astype(float)
    light = ndimage.gaussian_filter(beads, 0.5)
    light -= light.min()  # a dark background of read noise
    light *= 100.0 / np.quantile(light, 0.99)
    truth = CAMERA.gain * light + CAMERA.offset
    centred = apply_camera_noise(light, CAMERA, frame_rng(9, 0)) - CAMERA.offset
    assert find_spikes(centred, 0.004, 0.3) is None  # even by a camera gone wrong
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        context = SeriesContext(None)
        for t in range(6):
            frame = apply_camera_noise(light, CAMERA, frame_rng(9, t))
            out = context.denoise(engine, frame, t)
    assert np.mean((out - truth) ** 2) < np.mean((frame - truth) ** 2)
    assert context.estimate is not None and 0.7 < context.estimate.camera.gain < 1.3


def test_pixels_far_below_the_offset_are_holes_filled_as_spikes() -> None:
    """Read noise is the only noise that takes a pixel below its offset: one six of its
    sigmas under is a defect (a noisy pixel's swing, a dead pixel). The read noise as the
    pixels below the offset show it when the one told is less (a live estimate whose gain
    took it in), so an EMCCD's dark pixels are no holes; noise alone holds none."""
    from stream.engine._inputs import MOST_HOLES, holes

    rng = np.random.default_rng(5)
    frame = rng.normal(0.0, 3.0, SHAPE).astype(np.float32) + rng.poisson(1.0, SHAPE)
    assert holes(frame, 3.0) is None
    frame[10, 10], frame[50, 70], frame[90, 3] = -40.0, -25.0, -19.5
    found = holes(frame, 3.0)
    assert found is not None
    assert sorted(zip(*found, strict=True)) == [(10, 10), (50, 70), (90, 3)]
    assert holes(frame, 0.3) is not None  # told too little: the frame's own 3 is taken
    emccd = rng.normal(0.0, 10.0, SHAPE).astype(np.float32)
    assert holes(emccd, 0.3) is None
    many = frame.copy()  # more than MOST_HOLES: an offset read too high, not defects
    many.ravel()[: int(MOST_HOLES * many.size) + 1] = -100.0
    assert holes(many, 3.0) is None
    # a bright field whose offset was read at its dim part: the pixels below it are that
    # part's and the scene's black points, a large share of them (MOST_HOLES_BELOW)
    bright = rng.normal(200.0, 3.0, SHAPE).astype(np.float32)
    bright[:8, :60] = rng.normal(1.0, 3.0, (8, 60))  # about 200 of them below the offset
    bright.ravel()[::400] = -60.0  # 41 black points, a fifth of the pixels below
    assert holes(bright, 3.0) is None


def test_the_model_denoises_around_a_noisy_pixels_swings(na_lite: Engine) -> None:
    """An sCMOS's noisy pixels swing far below the offset between frames; filled, the
    frame around them comes out as without them (the search for noisy pixels needs pairs
    of frames: a series' first frame has none to go on)."""
    rng = np.random.default_rng(6)
    truth = np.full(SHAPE, CAMERA.offset + 1.0)
    frame = truth + rng.poisson(1.0, SHAPE) - 1.0 + rng.normal(0, CAMERA.read_noise, SHAPE)
    swings = hot_pixels(40, seed=3)
    frame[swings] = CAMERA.offset - 60.0
    away = np.ones(SHAPE, bool)
    for y, x in zip(*np.nonzero(swings), strict=True):
        away[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = False
    out, report = na_lite.denoise_with_report(frame.astype(np.float32), camera=CAMERA)
    assert report.spike_count == int(swings.sum())
    na_lite.spikes = "off"
    try:
        unfilled = na_lite.denoise(frame.astype(np.float32), camera=CAMERA)
    finally:
        na_lite.spikes = "correct"
    error = float(np.mean((out - truth)[away] ** 2))
    assert error < 0.5 * float(np.mean((unfilled - truth)[away] ** 2))
    assert np.all(out[swings] > CAMERA.offset - 5.0)  # the model's estimate there
