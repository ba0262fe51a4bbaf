"""An offline caller's look ahead: the live camera estimate warmed on a recording's first
frames before its first is denoised (:meth:`SeriesContext.look_ahead`)."""

from __future__ import annotations

import numpy as np
import pytest
from camera_harness import star_frames

from stream.camera import CameraEstimator, CameraModel, OffsetPattern
from stream.engine import Engine, SeriesContext, shipped_model_path


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None)


def error(out: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.square(out - truth)))


def test_the_first_frame_gets_the_camera_its_followers_show(engine: Engine) -> None:
    """One frame of a star field over a fine texture reads both as noise (gain over three
    times 0.3) and its first frame came out worse than its input; warmed on the eight
    frames, the first frame is told the camera the pairs show, and comes out better."""
    frames, truths = star_frames(drift=0, frames=8, texture=8.0)
    assert CameraEstimator().update(frames[0]).camera.gain > 0.9  # the first frame alone
    live = SeriesContext()
    served = live.denoise(engine, frames[0], 0)
    ahead = SeriesContext()
    assert ahead.look_ahead(enumerate(frames)) == 8
    assert ahead.camera is not None and ahead.camera.gain == pytest.approx(0.3, rel=0.25)
    first = ahead.denoise(engine, frames[0], 0)
    raw = error(frames[0].astype(np.float64), truths[0])
    assert error(first, truths[0]) < raw < error(served, truths[0])


@pytest.mark.parametrize("pattern", [False, True])
def test_frames_looked_at_teach_nothing_again_and_the_next_goes_on_as_live(
    engine: Engine, pattern: bool
) -> None:
    """Served, the frames looked at ahead feed no search again (a pair counted twice
    would narrow the gain's error bar on no new evidence); the next frame pairs with the
    last of them, and from there the camera side is the live one's -- an offset map's
    pattern taken out of the frames looked at too."""
    frames, _ = star_frames(drift=0, frames=7, texture=8.0)
    offset = None
    if pattern:  # a dark-frame average, its pattern in every frame
        dark = np.random.default_rng(9).normal(100.0, 3.0, frames[0].shape)
        frames = [np.rint(f + dark - 100.0).astype(np.uint16) for f in frames]
        offset = OffsetPattern(dark)
    ahead = SeriesContext(blend="off", offset_pattern=offset)  # the camera side only
    live = SeriesContext(blend="off", offset_pattern=offset)
    assert ahead.look_ahead(enumerate(frames[:5])) == 5
    assert ahead.estimate is not None and ahead.estimate.pairs == 4
    learned = ahead.estimate
    for i, frame in enumerate(frames[:5]):
        ahead.denoise(engine, frame, i)
        live.denoise(engine, frame, i)
    assert ahead.estimate == learned == live.estimate
    sides = [c._camera_side for c in (ahead, live)]
    searches = [(c._rows.pairs, c._noisy.pairs, c._scan.frames, c._seen) for c in sides]
    assert searches[0] == searches[1] == (4, 4, 5, 5), searches
    for i, frame in enumerate(frames[5:], 5):
        np.testing.assert_array_equal(
            ahead.denoise(engine, frame, i), live.denoise(engine, frame, i)
        )
        assert ahead.estimate == live.estimate
        pairs = [(c._rows.pairs, c._noisy.pairs) for c in sides]
        assert pairs[0] == pairs[1] == (i, i), pairs  # the searches pair on, as live
    assert ahead.estimate.pairs == 6


def test_the_look_ahead_hands_over_what_was_learned_not_the_engines_setting(
    engine: Engine,
) -> None:
    """The camera side learned on frames looked at ahead replaces the series' own, but
    whether warm pixels are filled stays the engine's spikes setting the series has."""
    frames, _ = star_frames(drift=0, frames=4)
    context = SeriesContext(blend="off")
    spikes, engine.spikes = engine.spikes, "pass"  # type: ignore[assignment]
    try:
        context.denoise(engine, frames[0], 0)
    finally:
        engine.spikes = spikes
    assert context.camera_side.fill_warm is False
    assert context.look_ahead(zip([1, 2, 3], frames[1:], strict=True)) == 3
    assert context.camera_side.fill_warm is False
    assert context.estimate is not None and context.estimate.pairs >= 2


def test_a_configured_camera_takes_no_look(engine: Engine) -> None:
    frames, _ = star_frames(drift=0, frames=3)
    camera = CameraModel(gain=0.3, offset=100.0, read_noise=0.15)
    context = SeriesContext(camera)
    assert context.look_ahead(enumerate(frames)) == 0
    assert context.camera is camera and context.estimate is None


def test_a_hole_in_the_indices_makes_no_pair(engine: Engine) -> None:
    """A stored series' dropped frame: the frames either side of it are no pair, looked
    at ahead or served; served, the hole inside the looked-at frames leaves what the
    look ahead learned as it was, and the next frame pairs on as live."""
    frames, _ = star_frames(drift=0, frames=5)
    indices = [0, 1, 3, 4, 5]
    context, live = SeriesContext(blend="off"), SeriesContext(blend="off")
    assert context.look_ahead(zip(indices[:4], frames, strict=False)) == 4
    assert context.estimate is not None and context.estimate.pairs == 2
    side = context._camera_side
    assert (side._rows.pairs, side._noisy.pairs) == (2, 2)  # nor for the searches
    for index, frame in zip(indices, frames, strict=True):
        context.denoise(engine, frame, index)
        live.denoise(engine, frame, index)
    sides = [c._camera_side for c in (context, live)]
    searches = [(c.estimate.pairs, c._rows.pairs, c._noisy.pairs) for c in sides]
    assert searches[0] == searches[1] == (3, 3, 3), searches


def test_a_series_looked_at_needs_its_indices(engine: Engine) -> None:
    frames, _ = star_frames(drift=0, frames=3)
    context = SeriesContext()
    context.look_ahead(enumerate(frames))
    with pytest.raises(ValueError, match="needs each frame's index"):
        context.denoise(engine, frames[0])
