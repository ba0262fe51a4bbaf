"""Evaluation: metrics on known inputs, baselines' defining properties, and one small
end-to-end run (real phantom, real ONNX engine, real figures) checked for sane numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("matplotlib")
pytest.importorskip("torch")  # exporter.data (the test movies) is part of the train extra

from exporter.evaluation import (
    OnsetDetector,
    extract_traces,
    onset_errors,
    pearson,
    psnr,
    ssim,
    trace_correlation,
)
from exporter.evaluation import _baselines as bl
from stream.sim import calcium_kernel

FPS = 30.0

# -- metrics ----------------------------------------------------------------------------


def test_psnr_of_a_known_error() -> None:
    truth = np.linspace(0.0, 10.0, 64 * 64, dtype=np.float32).reshape(1, 64, 64)
    est = truth + np.float32(1.0)  # MSE 1, range 10 -> 10 log10(100) = 20 dB
    assert psnr(est, truth) == pytest.approx(20.0, abs=1e-4)
    assert psnr(est, truth, data_range=100.0) == pytest.approx(40.0, abs=1e-4)
    assert psnr(truth, truth) == math.inf


def test_ssim_is_one_for_identical_images_and_drops_with_noise() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 100, (3, 48, 40)).astype(np.float32)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    noisy = img + rng.normal(0, 10, img.shape).astype(np.float32)
    noisier = img + rng.normal(0, 30, img.shape).astype(np.float32)
    s1, s2 = ssim(noisy, img), ssim(noisier, img)
    assert 0 < s2 < s1 < 1
    # SSIM is a property of each frame: a (T, H, W) stack averages the frames' SSIMs.
    per_frame = [ssim(noisy[i], img[i], data_range=float(img.max() - img.min())) for i in range(3)]
    assert s1 == pytest.approx(np.mean(per_frame))


def test_pearson_matches_numpy_and_handles_constant_rows() -> None:
    assert pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(1.0)
    assert pearson(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert math.isnan(pearson(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])))
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 50)), rng.normal(size=(4, 50))
    b[2] += 2 * a[2]
    expected = [np.corrcoef(a[i], b[i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(pearson(a, b), expected, rtol=1e-12)


def test_extract_traces_is_the_footprint_mean_and_self_correlation_is_one() -> None:
    rng = np.random.default_rng(2)
    movie = rng.uniform(0, 10, (20, 16, 16)).astype(np.float32)
    fp = np.zeros((2, 16, 16), bool)
    fp[0, 2:5, 3:7] = True
    fp[1, 10:12, 10:15] = True
    traces = extract_traces(movie, fp)
    np.testing.assert_allclose(traces[0], movie[:, 2:5, 3:7].mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(traces[1], movie[:, 10:12, 10:15].mean(axis=(1, 2)), rtol=1e-6)
    assert trace_correlation(traces, traces) == pytest.approx(1.0)
    shuffled = traces[:, rng.permutation(20)]
    assert trace_correlation(shuffled, traces) < 0.9


def _calcium_trace(spikes: list[int], n: int = 300) -> np.ndarray:
    """Baseline 100 plus a unit-peak GCaMP transient (rise 50 ms, decay 0.3 s) per spike."""
    kernel = calcium_kernel(0.05, 0.3, FPS, n)
    trace = np.full(n, 100.0)
    for s in spikes:
        trace[s:] += 20.0 * kernel[: n - s]
    return trace


def test_onset_detector_finds_synthetic_onsets_exactly() -> None:
    det = OnsetDetector.for_fps(FPS)
    # A linear ramp from 0 to 4 over frames 40..44: half of the amplitude is reached
    # exactly at frame 42.
    ramp = np.zeros(100)
    ramp[40:45] = [0.0, 1.0, 2.0, 3.0, 4.0]
    ramp[45:] = 4.0
    t, amp = det.crossing(ramp, 40)
    assert t == pytest.approx(42.0, abs=1e-12) and amp == pytest.approx(4.0)
    # A step at frame 60: the half crossing lies halfway between frames 59 and 60.
    step = np.where(np.arange(100) >= 60, 10.0, 2.0)
    assert det.crossing(step, 60)[0] == pytest.approx(59.5, abs=1e-12)
    # No rise at all: no onset.
    assert math.isnan(det.crossing(np.ones(100), 50)[0])


def test_onset_errors_are_zero_against_itself_and_measure_a_shift() -> None:
    spikes = [40, 120, 200]
    ref = _calcium_trace(spikes)[None]
    stats = onset_errors(ref, ref, [np.array(spikes)], FPS)
    assert stats.n_reference == 3 and stats.detection_rate == 1.0
    assert stats.mae_ms == 0.0 and stats.bias_ms == 0.0
    late = np.roll(ref, 2, axis=1)  # the same transients two frames later
    shifted = onset_errors(late, ref, [np.array(spikes)], FPS)
    assert shifted.detection_rate == 1.0
    assert shifted.bias_ms == pytest.approx(2000.0 / FPS, abs=0.5)
    flat = np.full_like(ref, 100.0) + np.random.default_rng(3).normal(0, 1.0, ref.shape)
    assert onset_errors(flat, ref, [np.array(spikes)], FPS).detection_rate == 0.0


def test_isolated_spikes_skip_edges_and_overlaps() -> None:
    det = OnsetDetector(pre=3, post=5)
    s = det.isolated(np.array([1, 20, 22, 40, 60, 98]), 100)
    assert s.tolist() == [40, 60]


# -- baselines -------------------------------------------------------------------------


def test_causal_boxcar_never_sees_the_future_and_delays_onsets() -> None:
    step = np.zeros((30, 2, 2), np.float32)
    step[10:] = 1.0
    out = bl.boxcar_causal(step, 4)
    assert np.all(out[:10] == 0.0)  # nothing before the step moves
    np.testing.assert_allclose(out[10:14, 0, 0], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(bl.boxcar_causal(step, 1), step)
    spikes = [40, 120, 200]
    ref = _calcium_trace(spikes)
    movie = np.broadcast_to(ref[:, None, None], (len(ref), 1, 1)).astype(np.float32)
    smooth = bl.boxcar_causal(movie, 7)[:, 0, 0][None]
    stats = onset_errors(smooth, ref[None], [np.array(spikes)], FPS)
    assert stats.detection_rate == 1.0
    assert stats.bias_ms > 2 * 1000 / FPS  # a 7-frame mean shifts the half-rise by ~3 frames


def test_tuned_gaussian_sigma_grows_with_noise_and_wiener_keeps_flat_images() -> None:
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:48, :48]
    clean = np.broadcast_to(100 + 50 * np.sin(xx / 6.0) * np.cos(yy / 9.0), (6, 48, 48))
    clean = clean.astype(np.float32)
    low, high = (
        bl.tune(
            "g",
            "sigma",
            bl.gaussian_smooth,
            bl.GAUSSIAN_SIGMAS,
            clean + rng.normal(0, std, clean.shape).astype(np.float32),
            clean,
        )
        for std in (2.0, 40.0)
    )
    assert high.value > low.value
    assert min(high.scores) == high.scores[bl.GAUSSIAN_SIGMAS.index(high.value)]
    flat = np.full((2, 20, 20), 7.0, np.float32)
    np.testing.assert_allclose(bl.wiener_filter(flat, 5, 1.0), flat, rtol=1e-6)


# -- independent generator and baselines ---------------------------------------------


def test_independent_movies_are_reproducible_and_scale_with_the_budget() -> None:
    from exporter.evaluation import make_movie

    a = make_movie(10.0, shape=(48, 40), frames=6, seed=2)
    b = make_movie(10.0, shape=(48, 40), frames=6, seed=2)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    assert a.noisy.dtype == np.uint16 and a.noisy.shape == (6, 48, 40)
    assert a.footprints.shape[1:] == (48, 40) and len(a.spikes) == len(a.traces)
    bright = make_movie(100.0, shape=(48, 40), frames=6, seed=2)
    signal = (a.clean - a.offset).mean()
    assert (bright.clean - bright.offset).mean() == pytest.approx(10 * signal, rel=1e-4)
    noise = (a.noisy - a.clean).std()
    assert noise**2 == pytest.approx(a.gain * signal + a.read_noise**2, rel=0.2)


def test_texture_movies_are_still_reproducible_and_peak_at_the_budget() -> None:
    from exporter.evaluation import make_texture_movie

    a = make_texture_movie(10.0, shape=(64, 48), frames=5, seed=2)
    b = make_texture_movie(10.0, shape=(64, 48), frames=5, seed=2)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    assert a.noisy.dtype == np.uint16 and a.noisy.shape == (5, 64, 48)
    assert a.generator == "textures" and len(a.footprints) == 0 and a.spikes == []
    assert np.all(a.clean == a.clean[0])  # a still scene: only the noise changes
    photons = (a.clean[0] - a.offset) / a.gain
    assert np.percentile(photons, 99.9) == pytest.approx(10.0, rel=1e-4)
    noise = (a.noisy - a.clean).astype(np.float64)
    expected = a.gain**2 * photons.mean() + a.read_noise**2
    assert np.mean(noise**2) == pytest.approx(expected, rel=0.1)
    other = make_texture_movie(10.0, shape=(64, 48), frames=5, seed=3)
    assert not np.array_equal(other.clean[0], a.clean[0])


def test_fields_are_a_new_scene_every_frame_read_by_one_camera() -> None:
    from exporter.evaluation import make_fields_movie, make_movie

    a = make_fields_movie(20.0, shape=(64, 48), frames=6, seed=2)
    np.testing.assert_array_equal(
        a.noisy, make_fields_movie(20.0, shape=(64, 48), frames=6, seed=2).noisy
    )
    assert a.noisy.dtype == np.uint16 and a.noisy.shape == (6, 64, 48)
    assert a.generator == "fields" and len(a.footprints) == 0 and a.spikes == []
    photons = (a.clean.astype(np.float64) - a.offset) / a.gain
    for t in range(1, 6):  # consecutive scenes are unrelated
        r = np.corrcoef(photons[t].ravel(), photons[t - 1].ravel())[0, 1]
        assert abs(r) < 0.5, (t, r)
    # each frame is an independent-generator scene at rest, read out by the first's camera
    scene = make_movie(20.0, shape=(64, 48), frames=1, seed=3 * 1_000_003 + 1)
    np.testing.assert_allclose(photons[1], (scene.clean[0] - scene.offset) / scene.gain, atol=1e-3)
    noise = a.noisy - a.clean.astype(np.float64)
    expected = a.gain * (a.clean - a.offset).mean() + a.read_noise**2 + 1 / 12  # + rounding
    assert np.mean(noise**2) == pytest.approx(expected, rel=0.1)
    other = make_fields_movie(20.0, shape=(64, 48), frames=6, seed=3)  # validation: others
    assert not np.array_equal(other.clean[0], a.clean[0])


@pytest.mark.parametrize("module", ["_independent.py", "_textures.py", "_fields.py"])
def test_the_evaluation_generators_share_no_code_with_the_training_data(module: str) -> None:
    import ast

    source = Path(__file__).resolve().parents[2] / "exporter" / "evaluation" / module
    modules = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add("." * node.level + (node.module or ""))
    allowed = {"__future__", "math", "dataclasses", "numpy", "scipy", "._independent"}
    assert modules <= allowed, modules


def test_a_movie_read_out_by_another_camera_keeps_its_scene_and_gets_that_noise() -> None:
    from exporter.evaluation import EvalCamera, make_movie, recamera

    movie = make_movie(20.0, shape=(96, 96), frames=6, seed=2)
    camera = EvalCamera(gain=4.0, offset=1000.0, read_noise=2.0)
    other = recamera(movie, camera, seed=2)
    photons = (movie.clean - movie.offset) / movie.gain
    np.testing.assert_allclose(other.clean, 4.0 * photons + 1000.0, rtol=1e-6)
    assert (other.gain, other.offset, other.read_noise) == (4.0, 1000.0, 8.0)  # read in ADU
    assert other.generator == "independent (gain 4, offset 1000, read 2 e-)"
    assert other.photons == movie.photons and other.noisy.dtype == np.uint16
    # Poisson-Gaussian in ADU: mean = clean, variance = gain * (clean - offset) + read**2
    noise = other.noisy.astype(np.float64) - other.clean
    assert abs(noise.mean()) < 0.05 * noise.std()
    expected = 4.0 * (other.clean - 1000.0).mean() + 8.0**2 + 1 / 12  # + rounding
    assert np.mean(noise**2) == pytest.approx(expected, rel=0.05)
    np.testing.assert_array_equal(recamera(movie, camera, seed=2).noisy, other.noisy)
    assert not np.array_equal(recamera(movie, camera, seed=3).noisy, other.noisy)


def test_cameras_are_parsed_and_bad_ones_say_what_was_expected() -> None:
    from exporter.evaluation import EvalCamera, parse_cameras

    assert parse_cameras("") == ()
    assert parse_cameras("0.25:0:6, 4:1000:0.5, 20:500:0.5:2") == (
        EvalCamera(0.25, 0.0, 6.0), EvalCamera(4.0, 1000.0, 0.5), EvalCamera(20, 500, 0.5, 2),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"GAIN:OFFSET:READ.*got '4:1000'"):
        parse_cameras("4:1000")
    with pytest.raises(ValueError, match=r"gain > 0.*got gain 0"):
        parse_cameras("0:100:2")
    with pytest.raises(ValueError, match=r"excess noise factor >= 1.*excess 0.5"):
        parse_cameras("1:100:2:0.5")
    assert parse_cameras("1:100:3:1:0.001") == (EvalCamera(1, 100, 3, 1, hot=0.001),)
    with pytest.raises(ValueError, match=r"noisy-pixel fractions in \[0, 1\).*hot 2"):
        parse_cameras("1:100:3:1:2")
    assert parse_cameras("0.5:100:1.5:1:0:0.01") == (EvalCamera(0.5, 100, 1.5, noisy=0.01),)
    with pytest.raises(ValueError, match=r"noisy 1\.5"):
        parse_cameras("0.5:100:1.5:1:0:1.5")
    assert parse_cameras("0.5:100:1.5:1:0:0:1.5") == (EvalCamera(0.5, 100, 1.5, rows=1.5),)
    with pytest.raises(ValueError, match=r"row and column offsets >= 0.*rows -1"):
        parse_cameras("0.5:100:1.5:1:0:0:-1")
    assert parse_cameras("0.5:100:1.5:1:0:0:0:0.7") == (EvalCamera(0.5, 100, 1.5, columns=0.7),)
    with pytest.raises(ValueError, match=r"COLUMNS"):
        parse_cameras("0.5:100:1.5:1:0:0:1:0.7:2")


def test_a_camera_with_noisy_pixels_reads_them_out_noisier_at_fixed_places() -> None:
    from exporter.evaluation import EvalCamera, make_movie, recamera
    from exporter.evaluation._cameras import NOISY_ELECTRONS

    movie = make_movie(0.5, shape=(96, 96), frames=24, seed=2)  # dim: read noise rules
    camera = EvalCamera(gain=0.5, offset=100.0, read_noise=1.5, noisy=0.02)
    a, b = recamera(movie, camera, seed=1), recamera(movie, camera, seed=2)
    assert a.generator.endswith("read 1.5 e-, 2.00% noisy pixels)")
    assert a.read_noise == 0.75  # the camera's, not the tail's
    spread = [np.std(m.noisy.astype(np.float64) - m.clean, axis=0) / 0.5 for m in (a, b)]
    noisy = spread[0] > 4.0  # e-: the tail's least is 5, the rest read 2 or less here
    assert noisy.mean() == pytest.approx(0.02, abs=0.006)
    np.testing.assert_array_equal(noisy, spread[1] > 4.0)  # the same places, every movie
    assert spread[0][noisy].max() < NOISY_ELECTRONS[1] * 1.5


def test_a_camera_with_hot_pixels_adds_their_dark_signal_at_fixed_places() -> None:
    from exporter.evaluation import EvalCamera, make_movie, recamera
    from exporter.evaluation._cameras import HOT_ELECTRONS

    camera = EvalCamera(1.0, 100.0, 3.0, hot=0.002)
    plain = recamera(make_movie(3.0, shape=(96, 96), frames=4, seed=4), EvalCamera(1, 100, 3), 4)
    movies = [
        recamera(make_movie(3.0, shape=(96, 96), frames=4, seed=s), camera, s) for s in (4, 5)
    ]
    np.testing.assert_array_equal(movies[0].clean, plain.clean)  # the scene has none
    excess = movies[0].noisy.astype(np.float64) - plain.noisy
    hot = excess.min(axis=0) > HOT_ELECTRONS / 2  # in every frame
    assert 0.0005 < hot.mean() < 0.004 and movies[0].generator.endswith("0.20% hot pixels)")
    other = movies[1].noisy.astype(np.float64) - movies[1].clean
    assert np.all(other[:, hot] > HOT_ELECTRONS / 2)  # the same places in another movie


def test_an_electron_multiplying_camera_doubles_the_shot_noise_variance() -> None:
    """An EMCCD (F^2 = 2): mean unchanged, shot-noise variance twice a plain camera's,
    and a longer upper tail (positive skew beyond the Poisson's); the movie reports the
    effective gain a Poisson-Gaussian fit sees."""
    from exporter.evaluation import EvalCamera, make_movie, recamera

    movie = make_movie(30.0, shape=(96, 96), frames=6, seed=4)
    plain = recamera(movie, EvalCamera(gain=20.0, offset=500.0, read_noise=0.5), seed=4)
    emccd = recamera(movie, EvalCamera(20.0, 500.0, 0.5, excess=2.0), seed=4)
    np.testing.assert_array_equal(plain.clean, emccd.clean)
    assert emccd.gain == 40.0 and emccd.generator.endswith("F2 2)")
    shot = (emccd.clean - 500.0).mean() * 20.0  # gain * signal in ADU: Poisson's variance
    third = []
    for readout, factor in ((plain, 1.0), (emccd, 2.0)):
        noise = readout.noisy.astype(np.float64) - readout.clean
        assert abs(noise.mean()) < 0.05 * noise.std()
        assert np.mean(noise**2) == pytest.approx(factor * shot + 10.0**2, rel=0.05)
        third.append(np.mean(noise**3))
    # compound Poisson: the third cumulant is lambda E[Y^3], 6 for Y ~ Exp(1), 1 for Y = 1
    assert 4.0 < third[1] / third[0] < 8.0


def test_anscombe_round_trip_is_unbiased_at_moderate_counts() -> None:
    rng = np.random.default_rng(0)
    gain, read = 1.0, 2.0
    for mean in (5.0, 50.0):
        z = gain * rng.poisson(mean, 200_000) + rng.normal(0, read, 200_000)
        d = bl.anscombe(z, gain, read)
        assert d.std() == pytest.approx(1.0, abs=0.08)  # stabilised
        back = bl.inverse_anscombe(np.full(1, d.mean()), gain, read)[0]
        assert back == pytest.approx(mean, rel=0.03)


def test_causal_filters_never_look_ahead() -> None:
    step = np.zeros((10, 4, 4), np.float32)
    step[6:] = 1.0
    for out in (bl.causal_exponential(step, 0.3), bl.spatiotemporal(step, 1.0, 0.3)):
        assert np.all(out[:6] == 0) and np.all(out[6:] > 0)


# -- end to end --------------------------------------------------------------------------

BUDGETS = (2.0, 50.0)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory, conv_model_adaptive: Path):
    from exporter.evaluation import evaluate
    from exporter.simple_models import make_gaussian, make_identity

    d = tmp_path_factory.mktemp("evaluate")
    models = [make_identity(d / "identity.onnx"), make_gaussian(d / "gauss1.onnx", 1.0)]
    models.append(conv_model_adaptive)
    return evaluate(
        models,
        d / "report",
        photons=BUDGETS,
        generators=("independent", "phantom", "textures", "fields"),
        frames=12,
        shape=(48, 48),
        seed=3,
        bm3d_frames=1,
    )


def test_evaluate_writes_report_metrics_and_figures(evaluation) -> None:
    out: Path = evaluation.out_dir
    report = (out / "report.md").read_text()
    for name in ("gain.png", "example_independent_2.png", "example_textures_50.png"):
        assert (out / name).stat().st_size > 5000, name
        assert f"]({name})" in report
    for text in ("identity", "gauss1", "## Targets", "`independent`", "spatiotemporal"):
        assert text in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["generator"], r["photons"]) for r in metrics["results"]] == [
        ("independent", 2.0), ("independent", 50.0), ("phantom", 2.0), ("phantom", 50.0),
        ("textures", 2.0), ("textures", 50.0), ("fields", 2.0), ("fields", 50.0),
    ]  # fmt: skip
    assert {m["name"] for m in metrics["models"]} == {"identity", "gauss1", "adaptive"}
    first = metrics["results"][0]
    assert set(first["scores"]) >= {"noisy", "gaussian", "gaussian-val", "temporal-mean"}
    assert first["cameras"]["adaptive"]["source"] in ("spatial", "temporal")


def test_evaluate_numbers_are_sane(evaluation) -> None:
    for r in evaluation.results:
        noisy, ident = r.scores["noisy"], r.scores["identity"]
        # The identity model through the real engine reproduces the input exactly.
        assert ident.psnr == pytest.approx(noisy.psnr, abs=1e-6)
        assert r.scores["gaussian"].psnr >= r.scores["gaussian-val"].psnr - 1e-9  # the oracle
        assert r.scores["gaussian"].psnr > noisy.psnr
        assert r.scores["temporal-mean"].params["causal"] is True
        if "bm3d-vst" in r.scores:
            assert r.scores["bm3d-vst"].frames_scored == 1
    low = evaluation.result("independent", 2.0).scores["noisy"]
    high = evaluation.result("independent", 50.0).scores["noisy"]
    assert high.psnr > low.psnr + 6  # 25x the photons: far less relative noise


def test_cli_evaluate(tmp_path: Path, identity_model: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from exporter.cli import register

    app = typer.Typer()
    register(app)

    runner = CliRunner()
    bad = runner.invoke(app, ["evaluate", str(identity_model), "--photons", "1,x"])
    assert bad.exit_code != 0 and "comma-separated" in bad.output
    out = tmp_path / "cli"
    args = ["evaluate", str(identity_model), "--photons", "5", "--out", str(out), "--frames", "6"]
    args += ["--shape", "32x32", "--generators", "independent", "--bm3d-frames", "0"]
    ok = runner.invoke(app, [*args, "--no-figures", "--cameras", "2:500:1", "--snapshots"])
    assert ok.exit_code == 0, ok.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["snapshots"] is True
    assert "identity@snapshot" in metrics["results"][0]["scores"]
    assert [r["generator"] for r in metrics["results"]] == [
        "independent", "independent (gain 2, offset 500, read 1 e-)",
    ]  # fmt: skip
    assert metrics["results"][0]["photons"] == 5.0
    assert metrics["settings"]["cameras"] == ["gain 2, offset 500, read 1 e-"]
    assert "bm3d-vst" not in metrics["results"][0]["scores"]
    report = (out / "report.md").read_text()
    assert "`independent (gain 2, offset 500, read 1 e-)`" in report
    bad_camera = runner.invoke(app, [*args, "--cameras", "2:500"])
    assert bad_camera.exit_code != 0 and "GAIN:OFFSET:READ" in bad_camera.output
    unknown = runner.invoke(app, ["evaluate", "na-nothing", "--photons", "5"])
    assert unknown.exit_code != 0 and "no shipped model named 'na-nothing'" in unknown.output
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "gone.onnx"), "--photons", "5"])
    assert missing.exit_code != 0 and "expected an ONNX model file" in missing.output
    (tmp_path / "a-file").write_text("")
    onto_file = runner.invoke(app, ["evaluate", "na-lite", "--out", str(tmp_path / "a-file")])
    assert onto_file.exit_code != 0 and "expected a folder" in onto_file.output


def test_evaluate_takes_a_shipped_model_by_name(tmp_path: Path) -> None:
    """``deepdenoise evaluate my-rig.onnx na-lite``: a name with no file behind it is the
    shipped model (a file of that name in the working folder wins)."""
    from exporter.cli._evaluate import _model_file
    from stream.engine import shipped_model_path

    assert _model_file(Path("na-lite")) == shipped_model_path("na-lite")
    mine = tmp_path / "na-lite"
    mine.write_bytes(b"")
    assert _model_file(mine) == mine


def test_evaluate_adapts_each_model_to_the_test_movie(tmp_path: Path, conv_model: Path) -> None:
    """--adapt-minutes: the adapted model and Noise2Void from scratch are scored beside it."""
    from exporter.evaluation import evaluate

    result = evaluate(
        [conv_model], tmp_path / "report", photons=(20.0,), generators=("independent",),
        frames=6, shape=(40, 40), bm3d_frames=0, figures=False, adapt_minutes=0.02,
    )  # fmt: skip
    scores = result.results[0].scores
    for name in ("conv5", "conv5+adapted", "conv5+n2v-scratch"):
        assert np.isfinite(scores[name].psnr), name
    assert scores["conv5+adapted"].params == {"adapt_minutes": 0.02}
    assert scores["conv5+adapted"].psnr != scores["conv5"].psnr  # the weights did change
    kept = tmp_path / "report" / "adapted" / "independent-20"
    assert {p.name for p in kept.glob("*.onnx")} == {"conv5+adapted.onnx", "conv5+n2v-scratch.onnx"}


def test_adapting_a_model_longer_than_the_movies_is_refused_before_any_work(
    tmp_path: Path, conv_model: Path
) -> None:
    from exporter.evaluation import evaluate
    from stream import ConfigError
    from stream.engine import shipped_model_path

    with pytest.raises(ConfigError, match="at least 5 frames to adapt na-temporal"):
        evaluate(
            [conv_model, shipped_model_path("na-temporal")], tmp_path / "report",
            photons=(20.0,), generators=("independent",), frames=4, shape=(40, 40),
            bm3d_frames=0, figures=False, adapt_minutes=0.02,
        )  # fmt: skip
    assert not (tmp_path / "report" / "adapted").exists()  # conv5 was not adapted first


def test_a_temporal_model_is_also_scored_on_the_series_start(evaluation) -> None:
    """The 2-frame stand-in's window is not full on frame 0: every method is scored there
    too, on the same frame, and the report has the table."""
    for r in evaluation.results:
        start = r.scores["adaptive@series-start"]
        assert start.frames_scored == 1
        assert r.scores["gaussian@series-start"].frames_scored == 1
        assert "noisy@series-start" not in r.scores
        assert r.scores["identity@series-start"].psnr != pytest.approx(r.scores["identity"].psnr)
    report = (evaluation.out_dir / "report.md").read_text()
    assert "The first 1 frame(s) of the movie" in report


def test_snapshots_send_every_frame_as_a_series_of_its_own(
    tmp_path: Path, conv_model_adaptive: Path
) -> None:
    """--snapshots: each frame alone (its own camera estimate, no frame before it), as a
    single image is served; a movie's first frame is one, its later frames are not."""
    from exporter.evaluation import evaluate, make_movie
    from exporter.evaluation._evaluate import run_model, run_snapshots
    from stream.engine import Engine

    test = make_movie(5.0, shape=(32, 32), frames=4, seed=2)
    with Engine(conv_model_adaptive, warmup_shape=None) as engine:
        snapshots, _ = run_snapshots(engine, test.noisy)
        series, _, _ = run_model(engine, test.noisy)
        for t, frame in enumerate(test.noisy):
            alone, _, _ = run_model(engine, frame[None])
            np.testing.assert_array_equal(snapshots[t], alone[0])
    np.testing.assert_array_equal(snapshots[0], series[0])
    assert not np.allclose(snapshots[1:], series[1:])  # the series had frames before them
    result = evaluate(
        [conv_model_adaptive], tmp_path / "report", photons=(5.0,),
        generators=("independent",), frames=4, shape=(32, 32), bm3d_frames=0,
        figures=False, snapshots=True,
    )  # fmt: skip
    score = result.results[0].scores["adaptive@snapshot"]
    assert score.frames_scored == 4 and score.psnr != result.results[0].scores["adaptive"].psnr
    report = result.report.read_text() if result.report else ""
    assert "Each frame sent as a series of its own" in report
    assert "**adaptive**, each frame as its own series (snapshots), on `independent`" in report


def test_evaluate_scores_each_model_again_with_ensemble_passes(
    tmp_path: Path, conv_model: Path
) -> None:
    from exporter.evaluation import evaluate

    result = evaluate(
        [conv_model], tmp_path / "report", photons=(20.0,), generators=("independent",),
        frames=4, shape=(32, 40), bm3d_frames=0, figures=False, ensemble=2,
    )  # fmt: skip
    assert [m.name for m in result.models] == ["conv5", "conv5-x2"]
    assert [m.passes for m in result.models] == [1, 2]
    scores = result.results[0].scores
    assert scores["conv5-x2"].psnr != scores["conv5"].psnr  # the mirrored passes differ
    assert result.settings["ensemble"] == 2
    report = result.report.read_text() if result.report else ""
    assert "Rows `<model>-x2`: the same model with 2 self-ensemble passes" in report
    with pytest.raises(ValueError, match="expected ensemble passes"):
        evaluate([conv_model], tmp_path / "bad", photons=(20.0,), ensemble=3)


def _evaluate_app():  # the offline commands only, as test_cli_evaluate runs them
    import typer

    from exporter.cli import register

    app = typer.Typer()
    register(app)
    return app


def _small(model: Path, out: Path, *more: str) -> list[str]:
    return ["evaluate", str(model), "--out", str(out), "--frames", "4", "--shape", "32x32",
            "--generators", "independent", "--bm3d-frames", "0", *more]  # fmt: skip


def test_a_failed_check_leaves_no_output_folder(tmp_path: Path, identity_model: Path) -> None:
    """A bad generator, provider or model left an empty --out folder behind."""
    from typer.testing import CliRunner

    runner, out = CliRunner(), tmp_path / "ev" / "out"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"junk")
    for model, more, says in (
        (identity_model, ["--generators", "bogus"], "expected generators among"),
        (identity_model, ["--provider", "bogus"], "provider must be one of"),
        (broken, [], "is not an ONNX model"),
    ):
        result = runner.invoke(_evaluate_app(), [*_small(model, out), *more])
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and says in text, text
        assert not (tmp_path / "ev").exists()


def test_saturating_movies_are_warned_of_in_the_report_and_on_the_console(
    tmp_path: Path, identity_model: Path
) -> None:
    """At 100,000 photons a quarter of the pixels clip at 65535, scored without a word."""
    from typer.testing import CliRunner

    out = tmp_path / "sat"
    result = CliRunner().invoke(
        _evaluate_app(), [*_small(identity_model, out, "--photons", "5,1e5"), "--no-figures"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: independent at 100000 photons per pixel:" in text
    assert "are at 65535" in text and "independent at 5 photons" not in text
    saturated = json.loads((out / "metrics.json").read_text())["settings"]["saturated"]
    assert [(m["generator"], m["photons"]) for m in saturated] == [("independent", 1e5)]
    assert saturated[0]["share"] > 0.001
    report = (out / "report.md").read_text()
    assert "Warning: saturated movies" in report and "100000 photons per pixel" in report


def test_a_rerun_removes_its_own_earlier_figures(tmp_path: Path, identity_model: Path) -> None:
    """Figures of an earlier run stayed beside a report that does not show them."""
    from typer.testing import CliRunner

    out = tmp_path / "ev"
    out.mkdir()
    for name in ("gain.png", "example_phantom_1.png", "notes.txt"):
        (out / name).write_bytes(b"earlier")
    result = CliRunner().invoke(_evaluate_app(), [*_small(identity_model, out), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt", "report.md"]
