"""Who answers a composed temporal model's young window -- its temporal branch or its
spatial start -- as the series' own risks say: the engine's override of the model's
band of light, the vote with its confidence bound, and a series through the real
engine on a movie of the held-out ``textures`` scenes, where the band's answer is the
worse one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from exporter.evaluation._evaluate import movie
from stream.engine import CameraModel, Engine, SeriesContext, peak_snr, shipped_model_path
from stream.engine._series_blend import _YoungVotes

CAMERA = CameraModel(gain=1.0, offset=100.0, read_noise=4.0)


@pytest.fixture(scope="module")
def na_temporal() -> Iterator[Engine]:
    path = shipped_model_path("na-temporal")
    with Engine(path, provider="cpu", warmup_shape=None) as engine:
        yield engine


def dim_frames(count: int, photons: float = 2.0) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    scene = photons * (1.0 + np.sin(np.arange(64) / 5.0))[None, :] * np.ones((64, 1))
    return [
        (CAMERA.offset + rng.poisson(scene) + rng.normal(0.0, CAMERA.read_noise, scene.shape))
        .round()
        .astype(np.uint16)
        for _ in range(count)
    ]


def test_without_its_bands_a_young_window_goes_to_the_temporal_branch(
    na_temporal: Engine,
) -> None:
    previous, frame = dim_frames(2)
    low, _ = na_temporal.metadata.temporal_band("young") or (0.0, 0.0)
    level = peak_snr(frame.astype(np.float32) - CAMERA.offset, CAMERA.gain, CAMERA.read_noise)
    assert level < low  # below the young window's band: the spatial start answers
    spatial = na_temporal.denoise(frame, camera=CAMERA)
    banded, report = na_temporal.denoise_with_report(frame, camera=CAMERA, history=[previous])
    assert report.history == 0
    np.testing.assert_array_equal(banded, spatial)
    temporal, report = na_temporal.denoise_with_report(
        frame, camera=CAMERA, history=[previous], bands=False
    )
    assert report.history == 1
    assert not np.array_equal(temporal, spatial)


def test_the_vote_answers_only_with_confidence() -> None:
    votes = _YoungVotes()
    assert not votes.temporal("m")  # nothing measured: the band decides
    votes.add("m", np.array([-10.0, -12.0, -9.0, -11.0]))  # temporal the less, clearly
    assert votes.temporal("m") and not votes.temporal("other")
    votes.add("other", np.array([-10.0, -12.0, -9.0, -11.0]))  # another model starts over
    assert votes.temporal("other") and not votes.temporal("m")
    votes.add("other", np.array([40.0, 0.0, 30.0, 20.0]))  # now within the spread
    assert not votes.temporal("other")
    votes.add("other", np.array([40.0, 50.0, 30.0, 40.0]))  # the spatial start the less
    assert not votes.temporal("other")


def psnr(out: np.ndarray, truth: np.ndarray, peak: float) -> float:
    return float(10.0 * np.log10(peak**2 / np.mean((out - truth) ** 2)))


def test_a_series_answers_its_young_windows_as_its_risks_say(na_temporal: Engine) -> None:
    """``textures`` at 10 photons peak: peak SNR about 1.9, below the young band measured
    on the training generator, yet the temporal branch, blended, is the better answer
    (one-off probe: 1-2 dB on frames 2 and 3). Each young frame the spatial start
    answered is measured with the temporal branch too (counted once); after a gap, the
    next young frames go to the temporal branch."""
    k = na_temporal.metadata.frames
    m = movie("textures", 10.0, (96, 96), 2 * k, seed=0)
    peak = float(m.clean.max() - m.clean.min())
    voted, banded = SeriesContext(blend="spatial"), SeriesContext(blend="spatial")
    for t in range(k - 1):  # frame 0 and the young window's frames
        voted.denoise(na_temporal, m.noisy[t], t)
        assert voted.blend_frames_measured == t + 1  # both ways, counted once
    assert voted.young_window == "temporal"
    # a gap: the ring starts over, and its young frames are answered as voted; a series
    # that starts at the same frame has nothing measured yet for its first young frame
    gap = 100
    for t in (k - 1, k):
        out_voted = voted.denoise(na_temporal, m.noisy[t], gap + t)
        out_banded = banded.denoise(na_temporal, m.noisy[t], t)
    assert voted.young_window == "temporal"
    gained = psnr(out_voted, m.clean[k], peak) - psnr(out_banded, m.clean[k], peak)
    assert gained > 0.5, gained


def test_where_the_spatial_start_is_the_better_the_band_stays(na_temporal: Engine) -> None:
    """The project's phantom at 1 photon: the temporal branch's young window, blended,
    is behind (one-off probe: up to 4 dB), and the risks leave the band's answer."""
    k = na_temporal.metadata.frames
    m = movie("phantom", 1.0, (128, 128), k, seed=0)
    context = SeriesContext(blend="spatial")
    for t in range(k - 1):
        context.denoise(na_temporal, m.noisy[t], t)
    assert context.blend_frames_measured == k - 1
    assert context.young_window == "band"
