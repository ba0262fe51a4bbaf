"""The risk estimate behind the blend: Stein's unbiased risk estimate of each candidate,
and the choice it makes, against the true error on frames whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from stream.camera import CameraModel
from stream.engine._binned import bin2, upsample2
from stream.engine._blend import (
    BLENDS,
    CANDIDATES,
    FINE_FUSE,
    IDENTITY,
    INPUT_MIN_COUNTS,
    MEASURE_EVERY,
    MEASURE_WARMUP,
    NOISE_MAP_SCALES,
    PROBE_STEP,
    BlendChoice,
    RiskBlend,
    apply_blend,
    block_sums,
    bright,
    candidate_risks,
    described_pixels,
    mean_with,
    noise_variance,
    risk_blocks,
)
from stream.engine._gaussian import kernel_centre, smooth

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=4.0)
SHAPE = (256, 256)
RISK_BLOCKS_PER_FRAME = len(risk_blocks(SHAPE)[0]) * len(risk_blocks(SHAPE)[1])


def scene(photons: float) -> np.ndarray:
    """Clean ADU: blobs and stripes over a dim floor."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]].astype(np.float64)
    pattern = 0.2 + 0.5 * (np.sin(xx / 5.0) * np.sin(yy / 9.0) > 0.3)
    pattern += np.exp(-((yy - 80) ** 2 + (xx - 150) ** 2) / 300.0)
    return CAMERA.offset + CAMERA.gain * photons * pattern


def readout(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    electrons = rng.poisson((clean - CAMERA.offset) / CAMERA.gain)
    noise = rng.normal(0.0, CAMERA.read_noise, clean.shape)
    return (CAMERA.gain * electrons + CAMERA.offset + noise).astype(np.float32)


def a_model(frame: np.ndarray) -> np.ndarray:
    """A stand-in denoiser whose divergence is not a candidate's: a median, then a blur."""
    return smooth(ndimage.median_filter(frame, 3).astype(np.float32), 0.6)


def a_binned_model(frame: np.ndarray) -> np.ndarray:
    """The stand-in on the frame binned 2 x 2, back at the frame's pixels."""
    return upsample2(a_model(bin2(frame)) / 4.0, frame.shape)


def risks_and_truth(photons: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate's summed risk (with the shared ``- sum sigma^2`` put back) and its
    true squared error, over ``frames`` noisy readouts of one scene, a running mean of
    them (a quarter for each new frame) mixed in by the candidates that take it."""
    rng = np.random.default_rng(3)
    clean = scene(photons).astype(np.float32)
    risks, truth = np.zeros(len(BLENDS)), np.zeros(len(BLENDS))
    mean = None
    for _ in range(frames):
        y = readout(clean, rng)
        share = 1.0 if mean is None else 0.25
        mean = y if mean is None else mean_with(mean, y, share)
        out = a_model(y)
        variance = noise_variance(y, CAMERA)
        probe = rng.standard_normal(SHAPE).astype(np.float32) * np.sqrt(variance)
        near = y + np.float32(PROBE_STEP) * probe
        probed = a_model(near)
        binned = a_binned_model(y), a_binned_model(near)
        keep = described_pixels(y, CAMERA, None, None, variance)
        blocks = candidate_risks(
            y, out, probed, probe, variance, keep, mean, share, binned=binned, offer_input=True
        )
        risks += blocks.sum(axis=0)
        risks -= variance.sum()
        truth += [((apply_blend(out, y, c, mean, binned[0]) - clean) ** 2).sum() for c in BLENDS]
    return risks, truth


@pytest.mark.parametrize(("photons", "gain"), [(3.0, 0.9), (30.0, 1.0)])
def test_each_candidates_risk_is_its_true_error_without_the_truth(
    photons: float, gain: float
) -> None:
    risks, truth = risks_and_truth(photons, frames=6)
    np.testing.assert_allclose(risks, truth, rtol=0.08)
    # the least risk picks a candidate within a few percent of the truly best one
    assert truth[int(np.argmin(risks))] <= 1.03 * truth.min()
    assert truth.min() <= gain * truth[0]  # at 3 photons the grid has 10 % to win


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.4, 2.8])
def test_the_numpy_gaussian_is_scipys(sigma: float) -> None:
    image = np.random.default_rng(4).random((37, 50), dtype=np.float32) * 100
    want = ndimage.gaussian_filter(image, sigma, mode="reflect", truncate=3.0)
    np.testing.assert_allclose(smooth(image, sigma), want, rtol=1e-5, atol=1e-4)


def test_the_kernel_centre_is_the_gaussians_divergence() -> None:
    for sigma in (0.5, 1.0, 2.0):
        delta = np.zeros((41, 41), np.float32)
        delta[20, 20] = 1.0
        assert kernel_centre(sigma) == pytest.approx(float(smooth(delta, sigma)[20, 20]), rel=1e-5)


def test_blends_are_linear_mixes_of_a_blurred_output_and_a_blurred_input() -> None:
    rng = np.random.default_rng(0)
    out, frame, mean = rng.random((3, 40, 50), dtype=np.float32)
    assert apply_blend(out, frame, IDENTITY) is out
    choice = BlendChoice(post=1.0, fuse=2.0, weight=0.3)
    expected = 0.7 * smooth(out, 1.0) + 0.3 * smooth(frame, 2.0)
    np.testing.assert_allclose(apply_blend(out, frame, choice), expected, rtol=1e-5)
    temporal = BlendChoice(post=0.0, fuse=1.0, weight=0.4, source="mean")
    expected = 0.6 * out + 0.4 * smooth(mean, 1.0)
    np.testing.assert_allclose(apply_blend(out, frame, temporal, mean), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="mean source needs it"):
        apply_blend(out, frame, temporal)


def test_a_model_without_a_running_mean_is_never_given_a_mix_of_it() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(200.0, 10.0, (64, 64)).astype(np.float32)
    variance = np.full(y.shape, 100.0, np.float32)
    risks = candidate_risks(y, y, y, y, variance, np.ones(y.shape, bool)).sum(axis=0)
    temporal = np.array([c.source == "mean" for c in BLENDS])
    binned = np.array([c.source == "binned" for c in BLENDS])  # no binned pass given
    given = np.array([c.source == "input" for c in BLENDS])  # not offered (a dim frame)
    assert np.isinf(risks[temporal | binned | given]).all()
    assert np.isfinite(risks[~temporal & ~binned & ~given]).all()
    blend = RiskBlend()
    every_scale = np.tile(risks, len(CANDIDATES) // len(BLENDS))
    blend.add(("m", 0), every_scale)
    blend.add(("m", 0), every_scale)
    assert blend.choice(("m", 0)).source == "frame"


def test_the_wider_mixes_of_the_input_are_offered_only_where_asked() -> None:
    """A Gaussian of the input taking more than half of the output's place, and a blur
    of the output of 4 px or more, are offered where the series' noise is the camera
    model's (``offer_wide``), and a candidate's risk is then the risk of what it serves."""
    rng = np.random.default_rng(2)
    clean = np.full((64, 64), 200.0, np.float32)
    y = (clean + rng.normal(0.0, 10.0, clean.shape)).astype(np.float32)
    variance = np.full(y.shape, 100.0, np.float32)
    keep = np.ones(y.shape, bool)
    wide = np.array(
        [
            c.source == "frame" and (c.weight > 0.5 or c.post >= 4.0 or c.fuse == FINE_FUSE)
            for c in BLENDS
        ]
    )
    assert wide.any() and BlendChoice(0.0, 1.0, 1.0) in BLENDS and BlendChoice(5.6) in BLENDS
    # a "model" that returns its input: its output for the probed frame is that frame
    probe = rng.normal(0.0, 10.0, clean.shape).astype(np.float32)
    probed = y + np.float32(PROBE_STEP) * probe
    offered = candidate_risks(y, y, probed, probe, variance, keep).sum(axis=0)
    narrow = candidate_risks(y, y, probed, probe, variance, keep, offer_wide=False).sum(axis=0)
    assert np.isfinite(offered[wide]).all() and np.isinf(narrow[wide]).all()
    np.testing.assert_array_equal(offered[~wide], narrow[~wide])
    # all of a 1 px Gaussian is the better answer, and its risk (up to the frame's
    # constant, the noise's summed variance) is its squared error
    full = BLENDS.index(BlendChoice(0.0, 1.0, 1.0))
    squared_error = float(((smooth(y, 1.0) - clean) ** 2).sum())
    assert offered[full] < offered[BLENDS.index(IDENTITY)]
    assert abs(offered[full] - float(variance.sum()) - squared_error) < 0.05 * variance.sum()


def test_the_lightest_gaussian_of_the_input_is_offered_only_where_asked() -> None:
    """The mixes of a 0.7 px Gaussian of the input are offered with ``offer_fine`` (and
    ``offer_wide``), and only they change with it; on fine texture at moderate light, the
    better answer, their risk says so."""
    rng = np.random.default_rng(4)
    clean = (200.0 + 60.0 * smooth(rng.normal(size=(64, 64)).astype(np.float32), 1.0)).astype(
        np.float32
    )
    y = (clean + rng.normal(0.0, 10.0, clean.shape)).astype(np.float32)
    variance = np.full(y.shape, 100.0, np.float32)
    keep = np.ones(y.shape, bool)
    fine = np.array([c.source == "frame" and c.fuse == FINE_FUSE for c in BLENDS])
    assert fine.any() and BlendChoice(0.0, FINE_FUSE, 1.0) in BLENDS
    probe = rng.normal(0.0, 10.0, clean.shape).astype(np.float32)
    probed = y + np.float32(PROBE_STEP) * probe
    smoothed, smoothed_probed = smooth(y, 2.0), smooth(probed, 2.0)  # a "model" that blurs
    offered = candidate_risks(y, smoothed, smoothed_probed, probe, variance, keep).sum(axis=0)
    without = candidate_risks(
        y, smoothed, smoothed_probed, probe, variance, keep, offer_fine=False
    ).sum(axis=0)
    not_wide = candidate_risks(
        y, smoothed, smoothed_probed, probe, variance, keep, offer_wide=False
    ).sum(axis=0)
    assert np.isfinite(offered[fine]).all() and np.isinf(without[fine]).all()
    assert np.isinf(not_wide[fine]).all()
    np.testing.assert_array_equal(offered[~fine], without[~fine])
    # the texture's best answer among them all is a mix of the lightest Gaussian
    of_frame = [i for i, c in enumerate(BLENDS) if c.source == "frame"]
    errors = [float(((apply_blend(smoothed, y, BLENDS[i]) - clean) ** 2).sum()) for i in of_frame]
    assert BLENDS[of_frame[int(np.argmin(errors))]].fuse == FINE_FUSE
    assert BLENDS[int(np.argmin(offered))].fuse == FINE_FUSE


def test_pixels_the_noise_model_does_not_describe_are_left_out() -> None:
    frame = np.full((32, 32), 200.0, np.float32)
    frame[:, :8] = 0.0  # clipped at a floor
    bad = np.zeros(frame.shape, bool)
    bad[5, 20] = True
    spikes = (np.array([10]), np.array([25]))
    camera = CAMERA.model_copy(update={"floor": 0.0})
    keep = described_pixels(frame, camera, spikes, bad, noise_variance(frame, camera))
    assert not keep[5, 20] and not keep[10, 25] and not keep[:, :6].any()
    assert keep[20:, 12:].all()


def test_counts_too_few_for_gaussian_noise_are_left_out() -> None:
    """An electron-multiplying camera with no read noise: a pixel of half a
    photo-electron reads 0 or a multiple of the gain, far from Gaussian; five are."""
    emccd = CameraModel(gain=40.0, offset=500.0, read_noise=0.02)
    frame = np.full((32, 32), 500.0 + 40.0 * 0.5, np.float32)
    frame[:, 16:] = 500.0 + 40.0 * 5.0
    keep = described_pixels(frame, emccd, None, None, noise_variance(frame, emccd))
    assert not keep[:, :12].any() and keep[:, 20:].all()
    quiet = CameraModel(gain=1.0, offset=100.0, read_noise=2.0)  # read noise: Gaussian
    dark = np.full((32, 32), 100.0, np.float32)
    assert described_pixels(dark, quiet, None, None, noise_variance(dark, quiet)).all()


def test_the_choice_follows_the_least_risk_per_regime_and_model() -> None:
    blend = RiskBlend()
    key = ("model-a", 0)
    assert blend.choice(key) is IDENTITY  # nothing measured: the output as it is
    risks = np.ones(len(CANDIDATES))
    risks[7] = 0.5
    assert blend.due(key)
    blend.add(key, risks)
    assert blend.choice(key) is IDENTITY  # one frame: no spread to judge it by yet
    blend.add(key, risks)
    assert blend.choice(key) == CANDIDATES[7]
    assert blend.choice(("model-a", 2)) is IDENTITY  # a full window is its own regime
    blend.due(("model-b", 0))  # another model: the first one's risks are no guide
    assert blend.measured(key) == 0 and blend.choice(key) is IDENTITY


def test_a_gain_smaller_than_its_spread_between_frames_changes_nothing() -> None:
    blend, key = RiskBlend(), ("m", 0)
    rng = np.random.default_rng(0)
    for _ in range(8):  # candidate 7 is better on average by 0.1, give or take 1
        risks = np.ones(len(CANDIDATES))
        risks[7] = 0.9 + rng.normal(0.0, 1.0)
        blend.add(key, risks)
    assert blend.choice(key).is_identity
    for _ in range(40):  # now clearly better, frame after frame
        risks = np.ones(len(CANDIDATES))
        risks[7] = 0.5 + rng.normal(0.0, 0.01)
        blend.add(key, risks)
    assert blend.choice(key) == CANDIDATES[7]


def test_newer_measurements_outweigh_older_ones() -> None:
    blend, key = RiskBlend(), ("m", 0)
    old, new = np.ones(len(CANDIDATES)), np.ones(len(CANDIDATES))
    old[3], new[9] = 0.0, 0.0
    for _ in range(4):
        blend.add(key, old)
    for _ in range(40):
        blend.add(key, new)
    assert blend.choice(key) == CANDIDATES[9]


def test_the_first_frames_are_measured_then_one_in_so_many() -> None:
    blend, key = RiskBlend(), ("m", 0)
    due = []
    for _ in range(MEASURE_WARMUP + 2 * MEASURE_EVERY):
        due.append(blend.due(key))
        if due[-1]:
            blend.add(key, np.ones(len(CANDIDATES)))
    assert all(due[:MEASURE_WARMUP])
    assert sum(due[MEASURE_WARMUP:]) == 2


def test_readouts_clipped_at_a_floor_are_only_ever_blurred() -> None:
    """A Gaussian of clipped readouts keeps the clipping's bias, which the engine takes
    out of the model's output: no mix with them is offered."""
    rng = np.random.default_rng(2)
    y = rng.normal(200.0, 10.0, (64, 64)).astype(np.float32)
    variance = np.full(y.shape, 100.0, np.float32)
    mean = y.copy()
    risks = candidate_risks(
        y, y, y, y, variance, np.ones(y.shape, bool), mean, 1.0, fuse=False
    ).sum(axis=0)
    mixes = np.array([c.weight > 0 for c in BLENDS])
    assert np.isinf(risks[mixes]).all() and np.isfinite(risks[~mixes]).all()


def test_a_frame_the_noise_model_mostly_does_not_describe_is_skipped_not_measured() -> None:
    blend, key = RiskBlend(), ("m", 0)
    for _ in range(MEASURE_WARMUP):
        assert blend.due(key)
        blend.skip(key)
    assert not blend.due(key)  # tried: the warm-up is over, one in so many after
    assert blend.measured(key) == 0 and blend.choice(key) is IDENTITY


def test_every_blend_is_offered_on_each_noise_map_scale_and_the_frame_runs_with_one() -> None:
    assert len(CANDIDATES) == len(NOISE_MAP_SCALES) * len(BLENDS)
    assert CANDIDATES[0] is not None and CANDIDATES[0].is_identity
    assert {c.map_scale for c in CANDIDATES} == set(NOISE_MAP_SCALES)
    blend, key = RiskBlend(), ("m", 0)
    risks = np.ones(len(CANDIDATES))
    less_map_blurred = CANDIDATES.index(BlendChoice(post=1.0, map_scale=0.8))
    less_map = CANDIDATES.index(BlendChoice(map_scale=0.8))
    plain_blurred = CANDIDATES.index(BlendChoice(post=1.0))
    risks[[less_map_blurred, less_map, plain_blurred]] = 0.2, 0.4, 0.6
    blend.add(key, risks)
    blend.add(key, risks)
    assert blend.choice(key) == BlendChoice(post=1.0, map_scale=0.8)
    assert blend.choice(key).blends and not BlendChoice(map_scale=0.8).blends
    # a frame run with another noise map gets the best blend of that map's output
    assert blend.choice(key, map_scale=1.0) == BlendChoice(post=1.0)
    assert blend.choice(key, map_scale=1.2) == BlendChoice(map_scale=1.2)  # no blend wins there
    # a regime not yet measured: the output as it is, of the noise map it was run with
    assert blend.choice(("m", 2), map_scale=0.8) == BlendChoice(map_scale=0.8)
    assert blend.choice(("m", 2)) is IDENTITY


def test_the_risks_of_each_block_add_up_to_the_frames() -> None:
    rng = np.random.default_rng(5)
    clean = scene(10.0).astype(np.float32)
    y = readout(clean, rng)
    variance = noise_variance(y, CAMERA)
    probe = rng.standard_normal(SHAPE).astype(np.float32) * np.sqrt(variance)
    out, probed = a_model(y), a_model(y + np.float32(PROBE_STEP) * probe)
    keep = described_pixels(y, CAMERA, None, None, variance)
    keep[:40, :] = False  # a masked part: its pixels count in no block
    blocks = candidate_risks(y, out, probed, probe, variance, keep, by_block=True)
    frame = candidate_risks(y, out, probed, probe, variance, keep)
    assert blocks.shape == (16, len(BLENDS)) and frame.shape == (1, len(BLENDS))
    np.testing.assert_allclose(blocks.sum(axis=0), frame[0], rtol=1e-4)
    whole = frame[0, :7]
    step = float(PROBE_STEP)
    kept = keep.astype(np.float64)
    for i, c in enumerate(BLENDS[:7]):  # the blurs alone: the risk written out
        h = smooth(out, c.post).astype(np.float64)
        div = np.sum(kept * probe * (smooth(probed, c.post) - h)) / step
        assert whole[i] == pytest.approx(np.sum(kept * (h - y) ** 2) + 2.0 * div, rel=1e-4)


def test_risk_blocks_cover_any_frame_without_empty_blocks() -> None:
    rows, columns = risk_blocks((10, 3))
    assert rows.tolist() == [0, 2, 5, 7] and columns.tolist() == [0, 1, 2]
    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    sums = block_sums(values, (rows, columns))
    assert sums.shape == (12,) and sums.sum() == values.sum()
    assert sums[0] == values[:2, 0].sum()


def block_risks(gains: np.ndarray, candidate: int) -> np.ndarray:
    """Per-block risks: every candidate at 1 but ``candidate``, at 1 + ``gains``."""
    risks = np.ones((len(gains), len(CANDIDATES)))
    risks[:, candidate] += gains
    return risks


def test_one_frame_chooses_what_its_blocks_agree_on() -> None:
    """A series' first measured frame: the spread between its blocks bounds the choice."""
    rng = np.random.default_rng(6)
    agreed = RiskBlend()
    agreed.add(("m", 0), block_risks(-0.5 + rng.normal(0.0, 0.1, 16), 7))
    assert agreed.choice(("m", 0)) == CANDIDATES[7]
    # the same total gain from one block alone: not shown with confidence
    lone = np.zeros(16)
    lone[3] = -8.0
    one_block = RiskBlend()
    one_block.add(("m", 0), block_risks(lone, 7))
    assert one_block.choice(("m", 0)).is_identity
    # the frame's camera too uncertain to trust one frame's risks alone
    unsure = RiskBlend()
    unsure.add(("m", 0), block_risks(-0.5 + rng.normal(0.0, 0.1, 16), 7), alone=False)
    assert unsure.choice(("m", 0)).is_identity
    unsure.add(("m", 0), block_risks(-0.5 + rng.normal(0.0, 0.1, 16), 7))
    assert unsure.measured(("m", 0)) == 2  # from the second frame on: their spread


def test_a_first_measurement_in_part_is_chosen_from_until_it_is_whole() -> None:
    """A regime's first measurement taken a step at a time: the candidates of the noise
    maps measured so far are chosen from (as the whole would choose among them) until
    the whole is added, and the part counts as no measured frame; a part dropped, or
    offered once a frame is measured, is no choice."""
    rng = np.random.default_rng(7)
    key = ("m", 0)
    first_scale = [i for i, c in enumerate(CANDIDATES) if c.map_scale == 1.0]
    blurred = CANDIDATES.index(BlendChoice(post=1.0))
    other = CANDIDATES.index(BlendChoice(post=1.0, map_scale=0.8))
    whole = block_risks(-0.5 + rng.normal(0.0, 0.1, 16), blurred)
    whole[:, other] -= 1.0  # the other map's: better, once measured
    part = np.full_like(whole, np.inf)
    part[:, first_scale] = whole[:, first_scale]

    blend = RiskBlend()
    blend.add_provisional(key, part)
    assert blend.choice(key) == CANDIDATES[blurred] and blend.measured(key) == 0
    assert blend.choice(key, map_scale=0.8) == BlendChoice(map_scale=0.8)  # not measured
    assert blend.choice(("m", 2)).is_identity  # its own regime only
    blend.add(key, whole)
    assert blend.choice(key) == CANDIDATES[other] and blend.measured(key) == 1

    dropped = RiskBlend()  # a young window's measurement publishes two regimes' parts
    dropped.add_provisional(key, part)
    dropped.add_provisional(("m", 1), part)
    dropped.forget_provisional()
    assert dropped.choice(key).is_identity and dropped.choice(("m", 1)).is_identity
    unsure = RiskBlend()  # the camera too uncertain for one frame's risks alone
    unsure.add_provisional(key, part, alone=False)
    assert unsure.choice(key).is_identity
    later = RiskBlend()  # a regime measured: its choice rests on whole measurements only
    later.add(key, block_risks(np.zeros(16), 0))
    later.add_provisional(key, part)
    assert later.choice(key).is_identity


def test_a_choice_without_the_binned_pass_is_the_best_of_the_rest() -> None:
    blend, key = RiskBlend(), ("m", 0)
    risks = np.ones(len(CANDIDATES))
    binned = CANDIDATES.index(BlendChoice(0.0, 0.0, 0.5, "binned"))
    blurred = CANDIDATES.index(BlendChoice(post=1.0))
    risks[[binned, blurred]] = 0.2, 0.6
    blend.add(key, risks)
    blend.add(key, risks)
    assert blend.choice(key) == CANDIDATES[binned]
    assert blend.choice(key, binned=False) == CANDIDATES[blurred]


def test_the_input_itself_has_the_noise_as_its_risk_and_is_offered_in_bright_frames() -> None:
    """The input as it is (weight 1) errs by its noise alone: its risk is the sum of the
    noise variance, exactly. It is offered only where counts are Gaussian enough for the
    network's risk to be trusted against it."""
    rng = np.random.default_rng(5)
    clean = scene(200.0).astype(np.float32)  # its floor: 40 e-
    y = readout(clean, rng)
    out = a_model(y)
    variance = noise_variance(y, CAMERA)
    keep = described_pixels(y, CAMERA, None, None, variance)
    probe = rng.standard_normal(SHAPE).astype(np.float32) * np.sqrt(variance)
    probed = a_model(y + np.float32(PROBE_STEP) * probe)
    risks = candidate_risks(y, out, probed, probe, variance, keep, offer_input=True)[0]
    whole = BLENDS.index(BlendChoice(0.0, 0.0, 1.0, "input"))
    assert risks[whole] - variance[keep].sum() == pytest.approx(variance[keep].sum(), rel=1e-4)
    half = BLENDS.index(BlendChoice(0.0, 0.0, 0.5, "input"))
    np.testing.assert_allclose(
        apply_blend(out, y, BLENDS[half]), 0.5 * out + 0.5 * y, rtol=1e-5, atol=1e-3
    )
    # the median described pixel's count decides (here the floor's)
    assert bright(variance, keep, CAMERA)
    dim = readout(scene(INPUT_MIN_COUNTS / 4).astype(np.float32), rng)
    dim_variance = noise_variance(dim, CAMERA)
    dim_keep = described_pixels(dim, CAMERA, None, None, dim_variance)
    assert not bright(dim_variance, dim_keep, CAMERA)
    assert not bright(dim_variance, np.zeros(SHAPE, bool), CAMERA)


def test_a_candidate_is_judged_on_the_frames_it_was_offered_on_in_a_row() -> None:
    """The input is offered only in bright frames: its risks are summed over the bright
    frames since the last dim one, and a dim frame starts them again (summed with the
    others' over different frames, they gave inf - inf, a NaN, in the faded sums)."""
    blend = RiskBlend()
    key = ("m", 0)
    input_whole = CANDIDATES.index(BlendChoice(0.0, 0.0, 1.0, "input"))

    def frame(offered: bool) -> np.ndarray:
        risks = np.ones(len(CANDIDATES))
        risks[input_whole] = 0.5 if offered else np.inf
        return risks

    blend.add(key, frame(offered=False))
    blend.add(key, frame(offered=True))
    assert blend.choice(key) == IDENTITY  # one frame offered: no spread to judge it by
    blend.add(key, frame(offered=True))
    assert blend.choice(key) == CANDIDATES[input_whole]
    blend.add(key, frame(offered=False))
    assert blend.choice(key) == IDENTITY  # dim again: not chosen on old frames' risks
    blend.add(key, frame(offered=True))
    blend.add(key, frame(offered=True))
    assert blend.choice(key) == CANDIDATES[input_whole]


#: A photon-counting camera: no read noise to speak of, so that at a photon per pixel
#: (counts of 0, 1 or 2) no pixel is noisy enough for Stein's Gaussian estimate.
COUNTING = CameraModel(gain=1.0, offset=100.0, read_noise=0.05)


def counts(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.poisson(clean - COUNTING.offset) + COUNTING.offset).astype(np.float32)


def test_against_another_look_at_a_still_scene_each_risk_is_its_true_error() -> None:
    """The risk from the frame before (SeriesBlend._pair): a candidate's squared distance
    to another readout of the same still scene is its own squared error plus that
    readout's noise, whatever the noise -- here Poisson counts at a photon per pixel,
    where Stein's estimate has no pixel to go on."""
    rng = np.random.default_rng(5)
    pattern = (scene(1.0) - CAMERA.offset) / CAMERA.gain  # photons per pixel, about 1
    clean = (COUNTING.offset + pattern).astype(np.float32)
    variance = noise_variance(clean, COUNTING)
    assert described_pixels(clean, COUNTING, None, None, variance).mean() < 0.01
    risks, truth = np.zeros(len(BLENDS)), np.zeros(len(BLENDS))
    for _ in range(4):
        y, before = counts(clean, rng), counts(clean, rng)
        out, binned = a_model(y), (a_binned_model(y), None)
        keep = np.ones(SHAPE, bool)
        by_block = candidate_risks(
            y, out, None, None, variance, keep, binned=binned, by_block=True, offer_input=True,
            target=before,
        )  # fmt: skip
        assert by_block.shape == (RISK_BLOCKS_PER_FRAME, len(BLENDS))
        risks += by_block.sum(axis=0) - ((before - clean) ** 2).sum()
        truth += [
            ((apply_blend(out, y, c, y, binned[0]) - clean) ** 2).sum()
            if c.source != "mean"
            else np.inf
            for c in BLENDS
        ]
    offered = np.isfinite(risks)
    assert offered[0] and not offered.all()  # no running mean: its mixes not offered
    np.testing.assert_allclose(risks[offered], truth[offered], rtol=0.05)
    assert truth[int(np.argmin(risks))] <= 1.03 * truth[offered].min()
    assert truth[offered].min() <= 0.9 * truth[0]  # the stand-in leaves much to gain


def test_a_risk_on_the_frame_itself_needs_its_probed_outputs() -> None:
    y = np.full((32, 32), 110.0, np.float32)
    keep = np.ones(y.shape, bool)
    with pytest.raises(ValueError, match="probed outputs"):
        candidate_risks(y, y, None, None, y, keep)
