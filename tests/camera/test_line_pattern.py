"""A fixed pattern of whole columns or rows (a CMOS sensor's column amplifiers) is found
from a series' still pairs and taken out of each frame before the model; a scene's
own lines -- light, whose variance follows it -- and a camera without one are left
alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from camera_harness import served_live

from exporter.evaluation import psnr
from exporter.evaluation._cameras import EvalCamera, parse_cameras, recamera
from exporter.evaluation._evaluate import movie
from stream.camera import LinePattern
from stream.camera._line_pattern import MOST_LIGHT, SMOOTHEST
from stream.engine import Engine, SeriesCamera, SeriesContext, shipped_model_path

COLUMNS = EvalCamera(0.5, 100, 1.5, columns=0.7)  # 0.35 ADU rms
READ = 0.75  # its read noise, ADU


def searched(frames: list[np.ndarray], axis: int) -> LinePattern:
    search = LinePattern(axis)
    for previous, frame in itertools.pairwise(frames):
        search.add(frame.astype(np.float32), previous.astype(np.float32))
    return search


def fine(profile: np.ndarray) -> np.ndarray:
    """A profile less its smooth part (what the search keeps of a pattern)."""
    kernel = np.ones(17) / 17.0
    return profile - np.convolve(np.pad(profile, 8, mode="reflect"), kernel, mode="valid")


@pytest.mark.parametrize("generator", ["independent", "phantom", "textures"])
@pytest.mark.parametrize("photons", [1.0, 3.0])
def test_a_column_pattern_is_found_and_taken_out(generator: str, photons: float) -> None:
    """Columns offset by 0.7 e- rms at 0.5 ADU per e- and 1.5 e- of read noise: found at
    their size, taken out to a third or less of it, and no row pattern seen."""
    test = movie(generator, photons, (128, 128), 12, 0)
    frames = list(recamera(test, COLUMNS, 0).noisy)
    plain = recamera(test, EvalCamera(0.5, 100, 1.5), 0).noisy[0]
    truth = fine((frames[0].astype(np.float64) - plain).mean(0))
    columns = searched(frames, axis=1)
    assert columns.rms == pytest.approx(0.35, rel=0.2)
    assert columns.correcting(0.5, READ) and columns.smoothness < SMOOTHEST
    left = fine(columns.profile()) - truth
    assert np.std(left) < np.std(truth) / 3.0
    assert not searched(frames, axis=0).correcting(0.5, READ)


def test_a_row_pattern_is_found_as_columns_are() -> None:
    """The same movie turned a quarter: its pattern is of rows."""
    test = movie("phantom", 3.0, (128, 96), 12, 0)
    frames = [f.T.copy() for f in recamera(test, COLUMNS, 0).noisy]
    rows = searched(frames, axis=0)
    assert rows.rms == pytest.approx(0.35, rel=0.2) and rows.correcting(0.5, READ)
    assert not searched(frames, axis=1).correcting(0.5, READ)
    out = rows.subtracted(frames[0])
    assert out.dtype == np.float32 and out.shape == frames[0].shape
    assert np.std(fine(out.mean(1))) < np.std(fine(frames[0].mean(1))) / 2.0


@pytest.mark.parametrize("generator", ["independent", "phantom", "textures"])
@pytest.mark.parametrize("photons", [1.0, 3.0, 10.0, 30.0, 100.0, 1000.0])
def test_scenes_without_one_have_none(generator: str, photons: float) -> None:
    """Cells (their structure the same in every frame, but not all along a column: it
    is not what the pattern's measure keeps, and would be the correction's error),
    processes and textures read out by the generators' own cameras."""
    test = movie(generator, photons, (128, 128), 16, 0)
    for axis in (0, 1):
        assert not searched(list(test.noisy), axis).correcting(test.gain, test.read_noise)


@pytest.mark.parametrize("photons", [1.0, 10.0, 1000.0])
def test_light_along_whole_columns_is_no_pattern(photons: float) -> None:
    """A grating of stripes the frame's height, 6 px apart, and columns of random
    brightness: light, whose variance follows it, even without a gain to weigh it by."""
    rng = np.random.default_rng(0)
    x = np.arange(128)
    for stripes in (1 + 0.5 * np.cos(2 * np.pi * x / 6), rng.uniform(0.5, 1.5, 128)):
        light = photons * np.tile(stripes, (128, 1))
        frames = [0.5 * rng.poisson(light) + rng.normal(100, 0.75, light.shape) for _ in range(16)]
        search = searched(frames, axis=1)
        assert search.light_share(0.0) == 1.0
        assert not search.correcting(0.5, READ) and not search.correcting(0.0, READ)


@pytest.mark.parametrize("sigma", [14.0, 25.0, 40.0])
@pytest.mark.parametrize("amplitude", [20.0, 80.0])
def test_uneven_illumination_is_no_pattern(sigma: float, amplitude: float) -> None:
    """A still field lit by a Gaussian spot over 20 photons per pixel, 10 frames: its
    detail is the same in every frame and along the columns, and its shot noise too
    faint for the light test; it read as columns and rows (na-lite 8 dB under a tuned
    Gaussian in a user's trial). Smooth across the lines, it is the scene's."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    light = 20.0 + amplitude * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / (2 * sigma**2))
    frames = [2.0 * rng.poisson(light) + rng.normal(100, 3.0, light.shape) for _ in range(10)]
    for axis in (0, 1):
        search = searched(frames, axis)
        assert not search.correcting(2.0, 3.0)
        if amplitude == 80.0:  # what tells it: smooth across the lines
            assert search.smoothness > SMOOTHEST


def test_a_bright_scenes_faint_lines_are_no_pattern() -> None:
    """A still scene at 3000 photons per pixel whose columns' light differs by about 2 %:
    its shot noise does not yet show in 11 pairs, but a pattern of the camera's is not
    many times its read noise (3 ADU here)."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:48, 0:48]
    light = 3000.0 * (1.0 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0))
    frames = [rng.poisson(light) + rng.normal(100, 3.0, light.shape) for _ in range(12)]
    search = searched(frames, axis=1)
    assert search.rms > 20 * 3.0 and search.light_share(1.0) < MOST_LIGHT  # not told so
    assert not search.correcting(1.0, 3.0)


def test_counts_clipped_at_a_floor_are_left_alone() -> None:
    """Offset 0: levelled, the floor would no longer be one value."""
    test = movie("independent", 1.0, (128, 128), 12, 0)
    frames = list(recamera(test, EvalCamera(0.5, 0, 1.5, columns=0.7), 0).noisy)
    assert not searched(frames, axis=1).correcting(0.5, READ)


def test_a_new_frame_size_starts_again_and_small_frames_are_not_searched() -> None:
    rng = np.random.default_rng(1)
    search = LinePattern(axis=1)
    for shape in ((64, 64), (64, 80)):
        frames = [rng.normal(100, 1, shape) + rng.normal(0, 1, shape[1]) for _ in range(3)]
        for previous, frame in itertools.pairwise(frames):
            search.add(frame, previous)
        assert search.shape == shape and search.pairs == 2
    tiny = LinePattern(axis=1)
    tiny.add(rng.normal(100, 1, (16, 64)), rng.normal(100, 1, (16, 64)))
    assert tiny.shape is None and not tiny.correcting(1.0, 1.0)


def test_a_camera_with_a_column_pattern_offsets_its_columns_alike_in_every_movie() -> None:
    first, second = (movie("independent", 10.0, (64, 64), 4, seed) for seed in (0, 1))
    shifts = []
    for test in (first, second):
        plain = recamera(test, EvalCamera(0.5, 100, 1.5), 0)
        patterned = recamera(test, COLUMNS, 0)
        shifts.append((patterned.noisy.astype(np.float64) - plain.noisy).mean((0, 1)))
        assert "columns 0.7 e-" in patterned.generator
    assert np.std(shifts[0]) == pytest.approx(0.35, rel=0.2)
    assert np.corrcoef(shifts[0], shifts[1])[0, 1] > 0.9
    assert parse_cameras("0.5:100:1.5:1:0:0:0:0.7") == (COLUMNS,)
    with pytest.raises(ValueError, match="column offsets >= 0"):
        EvalCamera(0.5, 100, 1.5, columns=-1.0)


@pytest.fixture(scope="module")
def na_lite() -> Engine:
    return Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None)


@pytest.mark.parametrize("generator", ["independent", "phantom"])
def test_taking_it_out_serves_the_scene_better(
    na_lite: Engine, generator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 photons per pixel, columns of 0.7 e-: served live with the correction and
    without; the frames given are not changed (the raw frame is what is stored), and
    the series reports the pattern taken out."""
    test = recamera(movie(generator, 3.0, (96, 96), 12, 0), COLUMNS, 0)
    frames = list(test.noisy)
    copies = [f.copy() for f in frames]

    corrected, context = served_live(na_lite, frames)
    assert context.camera_side.line_patterns["columns"]["corrected"] is True
    assert context.camera_side.line_patterns["rows"]["corrected"] is False
    estimate = context.estimate  # started again without the pattern: its gain is the camera's
    assert estimate is not None and estimate.camera.gain == pytest.approx(0.5, rel=0.25)
    assert all(np.array_equal(a, b) for a, b in zip(frames, copies, strict=True))
    monkeypatch.setattr(
        SeriesCamera, "_without_line_patterns", lambda self, frame, learn=True: frame
    )
    patterned, _ = served_live(na_lite, frames)
    assert psnr(corrected, test.clean) > psnr(patterned, test.clean) + 1.0


def test_columns_of_light_told_on_a_first_pair_do_not_stay(
    na_lite: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flat scene whose columns' light differs by 5-10 % (the size of a pattern of
    0.5 e-) at 10-30 photons per pixel, 4 e- of read noise: a first pair may read it as
    a pattern (its gain is a single frame's estimate), but by the series' later pairs it
    is light, and the live estimate is the one from before the restart it caused, near
    the one a series without the search gets (a flat scene pins its gain poorly)."""
    for contrast, photons in ((0.05, 30.0), (0.1, 10.0)):
        columns = 1.0 + contrast * np.random.default_rng(7).normal(size=128)
        light = photons * np.tile(columns, (128, 1))
        rng = np.random.default_rng(3)
        frames = [
            np.rint(0.5 * rng.poisson(light) + rng.normal(100, 2.0, light.shape)).astype(np.uint16)
            for _ in range(8)
        ]
        gains = []
        for search in (True, False):
            if not search:
                monkeypatch.setattr(
                    SeriesCamera, "_without_line_patterns", lambda self, frame, learn=True: frame
                )
            context = SeriesContext()
            for t, frame in enumerate(frames):
                context.denoise(na_lite, frame, t)
            assert not any(
                pattern["corrected"] for pattern in context.camera_side.line_patterns.values()
            )
            assert context._camera_side._estimator_before_lines is None
            assert context.estimate is not None
            gains.append(context.estimate.camera.gain)
        monkeypatch.undo()
        assert 0.5 < gains[0] / gains[1] < 2.0, gains


def test_another_region_searches_and_restarts_again(na_lite: Engine) -> None:
    """Frames cropped to another region mid-series (an ROI change): the estimate from
    before the first region's restart is not brought back, and the new region's
    pattern restarts the estimate again."""
    test = recamera(movie("independent", 3.0, (128, 128), 7, 0), COLUMNS, 0)
    context = SeriesContext()
    for t, frame in enumerate(test.noisy[:4]):
        context.denoise(na_lite, frame, t)
    assert context.camera_side.line_patterns["columns"]["corrected"]
    restarted = context._camera_side._estimator
    context.denoise(na_lite, test.noisy[4][16:112], 4)
    side = context._camera_side
    assert side._estimator is restarted and side._estimator_before_lines is None
    for t in (5, 6):
        context.denoise(na_lite, test.noisy[t][16:112], t)
    assert context.camera_side.line_patterns["columns"]["corrected"]
    assert context._camera_side._estimator_before_lines is restarted
