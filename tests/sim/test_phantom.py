"""The ground-truth phantom and the Poisson-Gaussian camera model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from stream import ConfigError
from stream.sim import (
    CalciumPhantom,
    FramePool,
    NoiseModel,
    PhantomConfig,
    apply_camera_noise,
    calcium_kernel,
    expected_camera,
    frame_rng,
    noise_std,
)

SMALL = {"shape": (64, 80), "n_cells": 12}


def _phantom(n_frames: int = 50, **kw: object) -> CalciumPhantom:
    return CalciumPhantom(PhantomConfig.model_validate({**SMALL, **kw}), n_frames)


# -- cells --------------------------------------------------------------------------------


def test_cell_count_from_n_cells_or_density():
    assert _phantom(n_cells=7).n_cells == 7
    dense = CalciumPhantom(PhantomConfig(shape=(200, 300), density=2.5), 5)
    assert dense.n_cells == round(2.5 * 6) == 15
    assert CalciumPhantom(PhantomConfig(shape=(64, 64), n_cells=0), 5).traces.shape == (0, 5)


def test_footprint_radii_lie_in_the_configured_range():
    cfg = PhantomConfig(shape=(256, 256), n_cells=60, texture=0, radius_px=(3, 9), aspect_max=1.6)
    ph = CalciumPhantom(cfg, 5)
    radii = ph.cells.radius_px
    assert radii.min() >= 3
    assert radii.max() <= 9
    a, b = ph.cells.semi_axes_px.T
    np.testing.assert_allclose(np.sqrt(a * b), radii)  # elongated, same area
    assert (a / b).max() <= 1.6 + 1e-9
    assert (a / b).max() > 1.2
    inside = 0
    for fp, radius in zip(ph.footprints, radii, strict=True):
        (ys, xs), (h, w) = fp.slices, cfg.shape
        if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
            continue  # clipped by the frame edge
        inside += 1
        assert fp.patch.max() == pytest.approx(1.0)
        equivalent = math.sqrt((fp.patch >= 0.5).sum() / math.pi)  # soft edge is 0.5 at r
        assert equivalent == pytest.approx(radius, abs=0.5)
    assert inside > 30


def test_dense_labels_agree_with_sparse_footprints():
    ph = _phantom(texture=0.2, nucleus_fraction=0.4)
    labels = ph.labels()
    assert labels.dtype == np.int32
    assert labels.shape == ph.shape
    assert set(np.unique(labels)) <= set(range(ph.n_cells + 1))
    stack = np.stack([fp.dense(ph.shape) for fp in ph.footprints])
    best = stack.argmax(axis=0) + 1
    covered = stack.max(axis=0) >= 0.5
    np.testing.assert_array_equal(labels > 0, covered)
    np.testing.assert_array_equal(labels[covered], best[covered])
    np.testing.assert_array_equal(ph.mask(), covered)


def test_nucleus_dims_the_centre():
    ph = CalciumPhantom(
        PhantomConfig(
            shape=(64, 64),
            n_cells=1,
            radius_px=(8, 8),
            aspect_max=1,
            texture=0,
            nucleus_fraction=0.5,
            nucleus_level=0.2,
        ),
        3,
    )
    fp = ph.footprints[0]
    cy, cx = (round(v) for v in ph.cells.center_yx[0])
    centre = fp.dense(ph.shape)[cy, cx]
    assert centre < 0.35
    assert fp.patch.max() == pytest.approx(1.0)


# -- traces -------------------------------------------------------------------------------


def _fit_transient(y: np.ndarray, t: np.ndarray, rise: float, decay: float) -> tuple[float, ...]:
    """Least-squares (rise, decay, amplitude) of ``A (exp(-t/d) - exp(-t/r))`` on grids
    spanning +-30 % around the true values."""
    best = (np.inf, 0.0, 0.0, 0.0)
    rises = rise * np.geomspace(0.7, 1.3, 81)
    for d in decay * np.geomspace(0.7, 1.3, 81):
        m = np.exp(-t / d)[None, :] - np.exp(-t[None, :] / rises[:, None])
        my, mm = m @ y, (m * m).sum(axis=1)
        resid = y @ y - my**2 / mm
        i = int(resid.argmin())
        if resid[i] < best[0]:
            best = (resid[i], rises[i], d, my[i] / mm[i])
    return best[1:]


def test_isolated_transients_have_the_configured_kinetics():
    fps = 1000.0
    cfg = PhantomConfig(
        shape=(32, 32),
        n_cells=4,
        fps=fps,
        spike_rate_hz=(0.1, 0.1),
        amplitude_jitter=0,
        rise_tau_s=0.05,
        decay_tau_s=0.5,
        tau_jitter=0.2,
        seed=3,
    )
    ph = CalciumPhantom(cfg, 40_000)
    c = ph.cells
    # per-cell jitter stays near the configured taus
    assert np.all(np.abs(np.log(c.rise_tau_s / 0.05)) < 4 * 0.2)
    assert np.all(np.abs(np.log(c.decay_tau_s / 0.5)) < 4 * 0.2)
    assert len(np.unique(c.decay_tau_s)) == 4
    fitted = 0
    for k in range(ph.n_cells):
        times = ph.spike_times[k]
        gap = 8 * c.decay_tau_s[k]
        for i, s in enumerate(times):
            before = times[i - 1] if i else -np.inf
            after = times[i + 1] if i + 1 < len(times) else np.inf
            if s - before < gap or after - s < gap or s + gap > ph.n_frames / fps:
                continue
            j0 = math.floor(s * fps) + 1  # first frame wholly after the spike
            j = np.arange(j0, j0 + round(5 * c.decay_tau_s[k] * fps))
            t = (j + 0.5) / fps - s  # frame mid-points relative to the spike
            y = ph.traces[k, j].astype(np.float64)
            rise, decay, amp = _fit_transient(y, t, c.rise_tau_s[k], c.decay_tau_s[k])
            assert decay == pytest.approx(c.decay_tau_s[k], rel=0.03)
            assert rise == pytest.approx(c.rise_tau_s[k], rel=0.06)
            r, d = c.rise_tau_s[k], c.decay_tau_s[k]
            t_peak = d * r / (d - r) * math.log(d / r)
            peak = math.exp(-t_peak / d) - math.exp(-t_peak / r)
            assert amp * peak == pytest.approx(ph.spike_amplitudes[k][i], rel=0.03)
            assert ph.traces[k, j0 - 100 : j0 - 1].max() < 1e-3  # quiet before
            fitted += 1
    assert fitted >= 3


def test_calcium_kernel_is_the_exposure_average_of_the_continuous_transient():
    rise, decay, fps, offset = 0.04, 0.4, 20.0, 0.3
    kernel = calcium_kernel(rise, decay, fps, 40, offset=offset)
    t_peak = decay * rise / (decay - rise) * math.log(decay / rise)
    norm = math.exp(-t_peak / decay) - math.exp(-t_peak / rise)
    fine = np.linspace(0, 40 / fps, 40 * 4000, endpoint=False) + 0.5 / (fps * 4000)
    rel = fine - offset / fps
    h = np.where(rel > 0, np.exp(-rel / decay) - np.exp(-rel / rise), 0.0) / norm
    np.testing.assert_allclose(kernel, h.reshape(40, -1).mean(axis=1), atol=2e-4)
    assert calcium_kernel(rise, decay, 10_000.0, 10_000).max() == pytest.approx(1.0, abs=1e-3)


def test_traces_spikes_and_neuropil_are_consistent():
    ph = _phantom(500, n_cells=20, spike_rate_hz=(0.5, 2.0), neuropil_fluctuation=0.0)
    assert ph.traces.shape == ph.spikes.shape == (20, 500)
    assert ph.traces.dtype == np.float32
    assert ph.traces.min() >= 0
    assert ph.spikes.sum() == sum(len(t) for t in ph.spike_times)
    for k in range(20):
        rates = ph.cells.rate_hz[k]
        assert 0.5 <= rates <= 2.0
        first = ph.spikes[k].nonzero()[0]
        if len(first):
            assert not ph.traces[k, : first[0]].any()  # exactly zero before the first spike
    # neuropil dF/F = coupling x population dF/F low-passed with neuropil_tau_s
    pop = ph.traces.mean(axis=0, dtype=np.float64)
    r = math.exp(-1 / (ph.config.neuropil_tau_s * ph.config.fps))
    smooth, acc = np.empty_like(pop), 0.0
    for j, p in enumerate(pop):
        acc = r * acc + (1 - r) * p
        smooth[j] = acc
    assert smooth.max() > 0.05
    np.testing.assert_allclose(
        ph.neuropil_trace, 1 + ph.config.neuropil_coupling * smooth, atol=1e-5
    )


def test_bleaching_and_drift_scale_the_fluorescence():
    ph = _phantom(300, bleach_tau_s=5.0, drift_amplitude=0.0)
    t = np.arange(300) / ph.config.fps
    np.testing.assert_allclose(ph.excitation, np.exp(-t / 5.0), rtol=1e-6)
    assert ph.clean(299).mean() < ph.clean(0).mean()
    drift = _phantom(300, drift_amplitude=0.1, drift_period_s=5.0).excitation
    assert 0.89 < drift.min() < 0.95
    assert 1.05 < drift.max() < 1.11


# -- frames -------------------------------------------------------------------------------


def test_clean_frame_is_the_sum_of_its_parts():
    ph = _phantom(60, n_cells=15, spike_rate_hz=(1.0, 2.0), vignetting=0.3)
    c = ph.cells
    for t in (0, 31, 59):
        ref = ph.neuropil_image.astype(np.float64) * ph.neuropil_trace[t]
        for k, fp in enumerate(ph.footprints):
            ref += fp.dense(ph.shape) * ph.illumination * c.brightness[k] * (1 + ph.traces[k, t])
        ref = ref * ph.excitation[t] + ph.config.background
        frame = ph.clean(t)
        assert frame.dtype == np.float32
        assert frame.shape == ph.shape
        np.testing.assert_allclose(frame, ref, rtol=1e-5, atol=1e-4)
    movie = ph.clean_movie(10, 13)
    np.testing.assert_array_equal(movie[2], ph.clean(12))
    noise = ph.config.noise
    np.testing.assert_allclose(ph.expected_camera(5), ph.clean(5) * noise.gain + noise.offset)
    with pytest.raises(IndexError, match=r"expected frame 0\.\.59, got 60"):
        ph.clean(60)


def test_same_seed_same_movie_other_seed_other_movie():
    a, b, other = _phantom(80, seed=5), _phantom(80, seed=5), _phantom(80, seed=6)
    np.testing.assert_array_equal(a.traces, b.traces)
    np.testing.assert_array_equal(a.clean(40), b.clean(40))
    np.testing.assert_array_equal(a.noisy(40, frame_rng(1, 40)), b.noisy(40, frame_rng(1, 40)))
    assert not np.array_equal(a.noisy(40, frame_rng(1, 40)), a.noisy(40, frame_rng(1, 41)))
    assert not np.array_equal(a.clean(40), other.clean(40))
    longer = _phantom(400, seed=5)  # a longer movie starts with the same cells and spikes
    np.testing.assert_array_equal(longer.spikes[:, :80], a.spikes)
    np.testing.assert_allclose(longer.traces[:, :80], a.traces, atol=1e-5)
    np.testing.assert_allclose(longer.clean(40), a.clean(40), rtol=1e-4)


# -- camera noise -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "gain", "read", "dtype"),
    [
        (50.0, 2.0, 3.0, "uint16"),
        (4.0, 1.0, 1.5, "uint16"),
        (20.0, 0.5, 2.0, "float32"),
        (200.0, 3.0, 0.0, "float32"),
    ],
)
def test_noise_variance_is_poisson_gaussian(lam, gain, read, dtype):
    noise = NoiseModel(gain=gain, offset=100.0, read_noise=read)
    photons = np.full((1000, 1000), lam, np.float32)
    adu = apply_camera_noise(photons, noise, np.random.default_rng(0), dtype)
    assert adu.dtype == np.dtype(dtype)
    quantised = dtype != "float32"
    var = gain**2 * lam + read**2 + (1 / 12 if quantised else 0)
    sample = adu.astype(np.float64)
    assert sample.var() == pytest.approx(var, rel=0.02)
    assert sample.mean() == pytest.approx(gain * lam + 100.0, abs=0.02 * math.sqrt(var))
    assert float(noise_std(photons, noise, quantised)[0, 0]) == pytest.approx(math.sqrt(var))


def test_noisy_phantom_frames_match_the_noise_model():
    ph = _phantom(10, shape=(256, 256), n_cells=30, noise={"gain": 1.5, "read_noise": 2.0})
    rng = np.random.default_rng(1)
    photons = ph.clean(3)
    z = (ph.noisy(3, rng).astype(np.float64) - ph.expected_camera(3)) / noise_std(
        photons, ph.config.noise
    )
    assert z.mean() == pytest.approx(0.0, abs=0.02)
    assert z.var() == pytest.approx(1.0, rel=0.03)
    np.testing.assert_array_equal(expected_camera(photons, ph.config.noise), ph.expected_camera(3))


def test_integer_readout_is_rounded_and_clipped_to_the_dtype():
    noise = NoiseModel(gain=4.0, offset=10.0, read_noise=20.0)
    photons = np.array([[0.0, 1.0, 100.0, 1e6]], np.float32)
    u8 = apply_camera_noise(photons, noise, np.random.default_rng(0), "uint8")
    u16 = apply_camera_noise(photons, noise, np.random.default_rng(0), "uint16")
    i16 = apply_camera_noise(photons, noise, np.random.default_rng(0), "int16")
    assert u8[0, 3] == 255
    assert u16[0, 3] == 65535
    assert i16[0, 3] == 32767
    many = apply_camera_noise(np.zeros((100, 100), np.float32), noise, np.random.default_rng(0))
    assert many.min() == 0  # offset 10 with read noise 20: negative readouts clip at 0
    with pytest.raises(ConfigError, match="expected dtype"):
        apply_camera_noise(photons, noise, np.random.default_rng(0), "int32")


def test_frame_pool_cycles_reproducible_read_only_frames():
    ph = _phantom(5)
    pool = FramePool(ph, 8, seed=2, dtype="uint16")
    assert len(pool) == 8
    assert not pool.frames.flags.writeable
    np.testing.assert_array_equal(pool[11], pool[3])
    assert [pool.truth_index(i) for i in (0, 4, 6, 9)] == [0, 4, 1, 1]
    np.testing.assert_array_equal(pool[6], ph.noisy(1, frame_rng(2, 6)))
    with pytest.raises(ConfigError, match="pool size >= 1, got 0"):
        FramePool(ph, 0)


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("radius_px", (9, 3), r"expected radius_px as \(min, max\) .* got \(9\.0, 3\.0\)"),
        ("spike_rate_hz", (-1, 2), r"expected spike_rate_hz .* got \(-1\.0, 2\.0\)"),
        ("amplitude_dff", (0.2, 50), r"<= 20 dF/F, got \(0\.2, 50\.0\)"),
        ("shape", (0, 64), r"expected \(height, width\), each 1\.\.16384, got \(0, 64\)"),
        ("decay_tau_s", 0.02, r"expected decay_tau_s > rise_tau_s, got decay 0\.02 s <= rise"),
        ("fps", 0, r"greater than 0"),
        ("bogus", 1, r"Extra inputs are not permitted"),
    ],
)
def test_config_errors_say_what_was_expected_and_what_came(field, value, message):
    with pytest.raises(ValidationError, match=message):
        PhantomConfig.model_validate({field: value})


def test_noise_config_is_validated_and_phantom_length_checked():
    with pytest.raises(ValidationError, match="gain"):
        NoiseModel(gain=0)
    with pytest.raises(ConfigError, match="expected n_frames >= 1, got 0"):
        CalciumPhantom(PhantomConfig(**SMALL), 0)
