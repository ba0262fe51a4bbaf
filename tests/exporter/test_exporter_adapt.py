"""``deepdenoise adapt``: blind-spot batches, the ONNX <-> torch round trip, a real run on a
series store written by the real service (holes skipped), resume, the CLI, and the live
swap of the adapted model into a running service."""

# ruff: noqa: E402  (imports after the importorskip guards)
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from adapt_harness import CAMERA, blob_movie
from deepdenoise_client import Publisher
from service_harness import running_service, swap_mid_stream
from typer.testing import CliRunner

from exporter.adapt import AdaptConfig, Recording, adapt, better_than, load_recording, pixel_risks
from exporter.adapt._adapt import choose
from exporter.adapt._blindspot import blind_spot_batch
from exporter.adapt._onnx_weights import load_trainable, with_trained_weights
from exporter.adapt._recording import level_rows
from exporter.adapt._sure import SureBatch, sure_batch, sure_loss
from exporter.export import _torch_to_onnx
from exporter.model import ModelSpec, build_model
from stream import ConfigError, ModelError
from stream.camera import CameraModel
from stream.cli import app
from stream.engine import Engine, ModelMetadata, shipped_model_path

#: The retired plain DnCNNs, kept as the inference benchmark's speed references.
REFERENCE_MODELS = Path(__file__).resolve().parents[2] / "benchmarks" / "models"

SHAPE = (48, 56)


def _meta(model: Path) -> ModelMetadata:
    with Engine(model, provider="cpu", warmup_shape=None) as engine:
        return engine.metadata


def test_the_blind_spot_never_sees_its_own_pixel(conv_model_adaptive: Path) -> None:
    """Changing a masked pixel's value changes the target and nothing the model sees
    (the frame channels and the noise map alike); the previous frame is untouched."""
    meta = _meta(conv_model_adaptive)
    assert meta.frames == 2 and meta.noise_map
    frames = blob_movie(2)[:, :32, :32]
    windows = np.array([1])
    one_pixel = 1.0 / (32 * 32)  # exactly one blind spot per patch
    first = blind_spot_batch(
        Recording(frames, np.ones(2, bool), "a"), windows, meta, CAMERA,
        np.random.default_rng(5), 1, 32, one_pixel,
    )  # fmt: skip
    (y,), (x,) = np.nonzero(first[2][0])
    changed = frames.copy()
    changed[1, y, x] += 777
    second = blind_spot_batch(
        Recording(changed, np.ones(2, bool), "b"), windows, meta, CAMERA,
        np.random.default_rng(5), 1, 32, one_pixel,
    )  # fmt: skip
    np.testing.assert_array_equal(second[2], first[2])
    np.testing.assert_array_equal(second[0], first[0])  # the inputs: identical
    assert second[1][0, y, x] != first[1][0, y, x]  # the target: the pixel's own value
    # The previous frame (channel 0) is the original, in the same units as the target.
    unmasked = ~first[2][0]
    scale = (frames[1][unmasked] - CAMERA.offset) / first[1][0][unmasked]
    np.testing.assert_allclose(
        first[0][0, 0], (frames[0] - CAMERA.offset) / np.median(scale), rtol=1e-5
    )


def test_blind_spot_batches_come_from_valid_windows_only(conv_model_adaptive: Path) -> None:
    meta = _meta(conv_model_adaptive)
    valid = np.array([True, True, False, True, True, True])
    recording = Recording(blob_movie(6), valid, "r")
    assert recording.windows(2).tolist() == [1, 4, 5]
    assert recording.windows(1).tolist() == [0, 1, 3, 4, 5]
    inputs, targets, mask = blind_spot_batch(
        recording, recording.windows(2), meta, CAMERA, np.random.default_rng(0), 4, 32, 0.05
    )
    assert inputs.shape == (4, 3, 32, 32) and targets.shape == mask.shape == (4, 32, 32)
    assert (mask.sum(axis=(1, 2)) == round(0.05 * 32 * 32)).all()


@pytest.mark.parametrize("kind", ["n2v", "sure"])
def test_a_tiny_adapt_run_lowers_the_self_supervised_loss(
    tmp_path: Path, conv_model: Path, kind: str
) -> None:
    """Fixed random weights, a generated series: 60 steps bring the run's own loss
    (blind-spot or SURE) down on held-out batches (the same batches before and after)."""
    np.save(tmp_path / "rec.npy", blob_movie(8))
    recording = load_recording(tmp_path / "rec.npy")
    meta = _meta(conv_model)
    rngs = [np.random.default_rng(100 + i) for i in range(4)]
    windows = recording.windows(1)

    def loss(model: Path) -> float:
        module = load_trainable(model).module.eval()
        total = 0.0
        with torch.no_grad():
            for batch in held_out:
                if isinstance(batch, SureBatch):
                    total += float(sure_loss(module, batch))
                    continue
                inputs, targets, mask = batch
                out = module(torch.from_numpy(inputs))[:, 0].numpy()
                total += float(np.mean((out - targets)[mask] ** 2))
        return total

    held_out: list = [
        sure_batch(recording, windows, meta, CAMERA, rng, 4, 32)
        if kind == "sure"
        else blind_spot_batch(recording, windows, meta, CAMERA, rng, 4, 32, 0.02)
        for rng in rngs
    ]
    report = adapt(
        tmp_path / "rec.npy", tmp_path / "a.onnx", start=conv_model, camera=CAMERA,
        config=AdaptConfig(steps=60, batch=4, patch=32, lr=1e-3, loss=kind),  # type: ignore[arg-type]
    )  # fmt: skip
    assert report.metadata.adaptation["loss"] == kind and report.chosen_step > 0
    before, after = loss(conv_model), loss(tmp_path / "a.onnx")
    assert after < 0.7 * before, (before, after)


def test_sure_probes_only_the_current_frame_and_estimates_the_identity_right(
    conv_model_adaptive: Path,
) -> None:
    """A temporal, noise-adaptive model: the probe moves the current frame (and so its
    noise map), never the previous frame. For the identity, whose MSE is the noise
    variance, the SURE loss is that variance (within the probe's sampling noise)."""
    meta = _meta(conv_model_adaptive)
    assert meta.frames == 2 and meta.noise_map
    recording = Recording(blob_movie(6), np.ones(6, bool), "movie")
    batch = sure_batch(recording, recording.windows(2), meta, CAMERA,
                       np.random.default_rng(0), 8, 48)  # fmt: skip
    # The previous frame is the same in ADU (the frame scale follows the probed frame).
    rescale = batch.rescale[:, None, None]
    np.testing.assert_allclose(batch.probed[:, 0] * rescale, batch.inputs[:, 0], rtol=1e-5)
    assert not np.allclose(batch.probed[:, 1], batch.inputs[:, 1])  # current frame
    assert not np.allclose(batch.probed[:, 2], batch.inputs[:, 2])  # its noise map

    class CurrentFrame(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, meta.frames - 1 : meta.frames]

    estimate = float(sure_loss(CurrentFrame(), batch))
    variance = float(batch.variance.mean())
    assert estimate == pytest.approx(variance, rel=0.05), (estimate, variance)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(depth=3, width=8),
        ModelSpec(depth=3, width=8, noise_map=True, unshuffle=2),
        ModelSpec(depth=3, width=8, frames=3, noise_map=True, unshuffle=2),
    ],
    ids=["plain", "noise-adaptive", "temporal"],
)
@pytest.mark.parametrize("shape", [(32, 40), (21, 26), (24, 31), (17, 33)])
def test_the_graph_in_torch_computes_what_onnx_runtime_does(spec, shape, tmp_path) -> None:
    """Every architecture the exporter writes; odd heights, widths or both take the
    reflect-pad branch."""
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():  # the last conv starts at zero: give it weights to check
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "m.onnx"
    onnx.save(_torch_to_onnx(model), str(path))
    x = np.random.default_rng(1).uniform(0, 1, (2, spec.in_channels, *shape)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    with torch.no_grad():
        got = load_trainable(path).module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", ["na-lite", "dncnn-lite", "dncnn20", "gaussian-smooth"])
def test_models_run_in_torch_as_in_onnx_runtime(name: str, tmp_path: Path) -> None:
    """The shipped default, the retired plain DnCNNs (kept as benchmark references) and
    the smoothing reference."""
    from exporter.simple_models import write_default_model

    if name == "na-lite":
        path = shipped_model_path(name)
    elif name == "gaussian-smooth":
        path = write_default_model(tmp_path)
    else:
        path = REFERENCE_MODELS / f"{name}.onnx"
    session = ort.InferenceSession(str(path))
    channels = session.get_inputs()[0].shape[1]
    x = np.random.default_rng(2).uniform(0, 1, (1, channels, 38, 30)).astype(np.float32)
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = load_trainable(path).module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_graph_with_an_unsupported_operator_is_refused_by_name(tmp_path: Path) -> None:
    node = onnx.helper.make_node("Softmax", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
    )  # fmt: skip
    path = tmp_path / "softmax.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match="Softmax"):
        load_trainable(path)


def test_weights_written_back_unchanged_give_the_same_model(conv_model_adaptive: Path) -> None:
    trainable = load_trainable(conv_model_adaptive)
    proto = with_trained_weights(trainable)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 20, 24)).astype(np.float32)
    want = ort.InferenceSession(str(conv_model_adaptive)).run(None, {"x": x})[0]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, want)


def _store_with_a_hole(tmp_path: Path, model: Path, frames: np.ndarray, hole: int) -> Path:
    """The frames through the real service (index ``hole`` never sent): its series store."""
    with (
        running_service(tmp_path, model, camera=CAMERA.model_dump()) as svc,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            if i != hole:
                pub.send_frame(frame, "rec", i)
        pub.end("rec")
        deadline = time.monotonic() + 60
        while svc.status()["series"].get("rec", {}).get("frames_in") != len(frames) - 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert svc.flush()
    return tmp_path / "data" / "rec.zarr"


def test_the_risk_estimate_ranks_models_as_their_true_error_does(
    identity_model: Path, tmp_path: Path
) -> None:
    """SURE from the noisy frames and the camera only: the identity (the noisy frames),
    a mild and a strong Gaussian, and the shipped default, on a movie from the
    independent generator; the estimate must order them as the true MSE does."""
    from exporter.adapt import estimated_mse
    from exporter.evaluation import make_movie
    from exporter.simple_models import make_gaussian

    test = make_movie(30.0, shape=(64, 64), frames=6, seed=4)
    camera = CameraModel(gain=test.gain, offset=test.offset, read_noise=test.read_noise)
    models = [identity_model, shipped_model_path("na-lite")]
    for sigma in (0.7, 3.0):
        path = tmp_path / f"gauss{sigma}.onnx"
        make_gaussian(path, sigma)
        models.append(path)
    estimated, true = [], []
    for path in models:
        with Engine(path, provider="cpu", warmup_shape=None) as engine:
            estimated.append(estimated_mse(engine, test.noisy, camera))
            out = [engine.denoise(y.astype(np.float32), camera=camera) for y in test.noisy]
        true.append(float(np.mean((np.stack(out) - test.clean) ** 2)))
    assert np.argsort(estimated).tolist() == np.argsort(true).tolist(), (estimated, true)


def test_the_risk_estimate_counts_row_noise_the_pixels_share(tmp_path: Path) -> None:
    """Rows offset anew each frame make the pixels of a row share noise: a filter that
    averages along rows keeps it, one that averages across rows removes it, and an
    estimate that takes the pixels' noise as independent cannot tell them apart (it
    rated the one along rows better). With the row variance it follows the truth."""
    from exporter.evaluation import make_movie
    from exporter.simple_models import make_kernel_filter

    test = make_movie(30.0, shape=(64, 64), frames=6, seed=4)
    row_sd = 2.0 * test.read_noise
    rows = np.random.default_rng(2).normal(0.0, row_sd, (6, 64, 1))
    noisy = (test.noisy + rows).astype(np.float32)
    # as a live estimate or dark frames see it: the rows' variance in each pixel's noise
    camera = CameraModel(
        gain=test.gain, offset=test.offset, read_noise=float(np.hypot(test.read_noise, row_sd))
    )
    true, plain, counted = {}, {}, {}
    for name, axis in (("along rows", 0), ("across rows", 1)):
        kernel = np.zeros((7, 7))
        kernel[(3, slice(None)) if axis == 0 else (slice(None), 3)] = 1 / 7
        path = make_kernel_filter(tmp_path / f"{axis}.onnx", kernel, "box")
        with Engine(path, provider="cpu", warmup_shape=None) as engine:
            out = np.stack([engine.denoise(y, camera=camera) for y in noisy])
            true[name] = float(np.mean((out - test.clean) ** 2))
            plain[name] = pixel_risks(engine, noisy, camera)
            counted[name] = pixel_risks(engine, noisy, camera, row_variance=row_sd**2)
    assert true["along rows"] > 2 * true["across rows"]
    gain, se = better_than(plain["along rows"], plain["across rows"])
    assert gain > 3 * se  # without the rows: "along rows" wrongly rated better
    gain, se = better_than(counted["along rows"], counted["across rows"])
    truth = true["across rows"] - true["along rows"]
    assert gain < -3 * se and abs(gain - truth) < 3 * se + 0.1 * abs(truth)
    for name in true:
        assert abs(counted[name].mean() - true[name]) < 0.15 * true[name]


class _ReluRowFilter:
    """An engine stand-in: max(0, mean of (a row's 7 pixels and the pixel itself) - offset),
    nonlinear, so its derivatives differ from point to point (a real network's do)."""

    def __init__(self, offset: float) -> None:
        from types import SimpleNamespace

        self.metadata = SimpleNamespace(receptive_field=9)
        self.offset = offset

    def denoise(self, y: np.ndarray, **_: object) -> np.ndarray:
        from scipy.ndimage import uniform_filter1d

        c = y.astype(np.float64) - self.offset
        out = np.maximum(0.5 * uniform_filter1d(c, 7, axis=1, mode="reflect") + 0.5 * c, 0.0)
        return (out + self.offset).astype(np.float32)


def test_the_row_term_is_taken_where_the_other_derivatives_are() -> None:
    """Stein's terms are derivatives at the point the Poisson identity moves to (y less one
    photon in the pixel): the row term taken at y left a ReLU network's own-pixel slopes
    uncancelled (a reviewer's probe: 4.69 for a true 3.08)."""
    rng = np.random.default_rng(0)
    gain, offset, read, rows = 2.0, 100.0, 1.0, 2.0
    camera = CameraModel(gain=gain, offset=offset, read_noise=float(np.hypot(read, rows)))
    y, x = np.mgrid[0:64, 0:64]
    scene = 1.0 + 0.8 * np.sin(x / 5.0) * np.cos(y / 7.0)  # a photon or so: the ReLU bends
    noisy = (
        offset + gain * rng.poisson(np.broadcast_to(scene, (60, 64, 64)))
        + rng.normal(0, read, (60, 64, 64)) + rng.normal(0, rows, (60, 64, 1))
    ).astype(np.float32)  # fmt: skip
    engine = _ReluRowFilter(offset)
    out = np.stack([engine.denoise(frame) for frame in noisy])
    true = float(np.mean((out - (offset + gain * scene)) ** 2))
    estimate = pixel_risks(engine, noisy, camera, row_variance=rows**2)  # type: ignore[arg-type]
    se = float(estimate.std() / np.sqrt(estimate.size))
    assert abs(float(estimate.mean()) - true) < 4 * se + 0.03 * true, (estimate.mean(), se, true)


def test_a_candidate_is_handed_back_only_when_shown_better_than_the_start() -> None:
    """Lower on average is not enough: the pixels' estimates are noisy, and on a new
    user's recording the lowest mean was 0.6-1.3 dB worse than the start."""
    rng = np.random.default_rng(0)
    start = rng.normal(1.0, 1.0, 400)
    noise = rng.normal(0.0, 1.0, 400)  # a difference of 1.0 / 20 = 0.05 standard error
    slightly = start - 0.02 + noise  # lower mean, well within the error
    clearly = start - 0.5 + 0.2 * noise
    assert choose({0: start, 10: slightly}, start)[0] == 0
    chosen, margins = choose({0: start, 10: slightly, 20: clearly}, start)
    assert chosen == 20 and set(margins) == {10, 20}
    gain, se = margins[20]
    assert gain == pytest.approx(0.5, abs=0.05) and se == pytest.approx(0.01, rel=0.2)


def test_adapt_a_stored_series_resume_and_swap_it_in_live(
    tmp_path: Path, conv_model_adaptive: Path
) -> None:
    frames = blob_movie(12)
    store = _store_with_a_hole(tmp_path, conv_model_adaptive, frames, hole=5)
    recording = load_recording(store)
    assert recording.valid.tolist() == [i != 5 for i in range(12)]
    # Temporal windows never straddle the hole.
    assert 5 not in recording.windows(2) and 6 not in recording.windows(2)

    out = tmp_path / "adapted.onnx"
    small = {"batch": 2, "patch": 32, "lr": 1e-3}
    first = adapt(
        store,
        out,
        start=conv_model_adaptive,
        config=AdaptConfig(steps=4, checkpoint_every=2, **small),
    )
    assert first.steps == 4 and first.parity_error <= 1e-4
    resumed = adapt(
        store, out, start=conv_model_adaptive, resume=True, config=AdaptConfig(steps=7, **small)
    )
    assert resumed.steps == 7  # continued from 4, not restarted

    meta = resumed.metadata
    record = meta.adaptation
    assert record["source"] == str(store) and record["frames"] == 11 and record["steps"] == 7
    with Engine(conv_model_adaptive, provider="cpu", warmup_shape=None) as start:
        start_id = start.model_id
    assert record["start_model"] == start_id
    # the verdict from the noisy frames alone is in the report and in the model
    assert np.isfinite(resumed.risk_start) and np.isfinite(resumed.risk_adapted)
    assert record["risk_start"] == resumed.risk_start
    assert record["risk_adapted"] == resumed.risk_adapted
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert ModelMetadata.from_props(props).adaptation == record
    with Engine(out, provider="cpu", warmup_shape=None) as adapted:
        assert adapted.model_id != start_id
        assert adapted.metadata.frames == 2 and adapted.metadata.noise_map

    # The live swap: stream through `load_model`; nothing lost, one switch index.
    n, hold_at = 80, 60
    with running_service(
        tmp_path / "live", conv_model_adaptive, zarr=None, model_dirs=[tmp_path]
    ) as svc:
        stream = [frames[i % len(frames)] for i in range(n)]
        got, reply, status = swap_mid_stream(svc, stream, out, 20, hold_at)
    assert [m.header["index"] for m in got] == list(range(n))
    models = [m.header["model"] for m in got]
    switch = models.index(reply["model"])
    assert 20 <= switch <= hold_at
    assert models[:switch] == [start_id] * switch
    assert models[switch:] == [reply["model"]] * (n - switch)
    assert status["dropped"] == {} and status["frames_out"] == n


def test_adapt_hands_back_the_starting_weights_when_training_ruined_them(
    tmp_path: Path,
) -> None:
    """A Gaussian smoother ruined by a huge learning rate: every candidate is estimated
    worse, so the written model holds the starting weights (same output), says so, and
    the CLI exits with status 3 so `adapt ... && deepdenoise load-model ...` swaps
    nothing in."""
    from exporter.simple_models import make_gaussian

    start = make_gaussian(tmp_path / "smooth.onnx", 1.0)
    movie = blob_movie(6)
    np.save(tmp_path / "rec.npy", movie)
    result = CliRunner().invoke(
        app,
        ["adapt", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "a.onnx"), "--from",
         str(start), "--steps", "5", "--batch", "2", "--patch", "32", "--lr", "10",
         "--quiet", "--gain", "2", "--offset", "100", "--read-noise", "3"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "starting weights" in result.output
    # which way the margins point, said (a user read "below the start's: -0.199" as
    # unclear: a negative number "below")
    text = " ".join(result.output.replace("│", " ").split())
    assert "> 0: better than the start, < 0: worse" in text, text
    camera = CameraModel(gain=2.0, offset=100.0, read_noise=3.0)
    outputs = []
    for path in (start, tmp_path / "a.onnx"):
        with Engine(path, provider="cpu", warmup_shape=None) as engine:
            outputs.append(engine.denoise(movie[0].astype(np.float32), camera=camera))
            record = engine.metadata.adaptation
    assert record["chosen_step"] == 0 and record["risk_adapted"] == record["risk_start"]
    ruined = [v for step, v in record["risks"].items() if step != "0"]
    assert ruined and min(ruined) > record["risk_start"]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-3)


def test_adapt_cli_on_a_npy_recording(tmp_path: Path, conv_model: Path) -> None:
    np.save(tmp_path / "rec.npy", blob_movie(4))
    result = CliRunner().invoke(
        app,
        ["adapt", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "a.onnx"), "--from",
         str(conv_model), "--steps", "3", "--batch", "2", "--patch", "32", "--quiet",
         "--gain", "2", "--offset", "100", "--read-noise", "3"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "adapted" in result.output and "3 in" in result.output
    assert "MSE estimate" in result.output
    with Engine(tmp_path / "a.onnx", provider="cpu", warmup_shape=None) as engine:
        assert engine.metadata.adaptation["steps"] == 3
        assert engine.metadata.adaptation["camera"]["gain"] == 2.0
    described = " ".join(CliRunner().invoke(app, ["info", str(tmp_path / "a.onnx")]).output.split())
    assert "adapted" in described and "sure loss, 3 steps" in described
    bad = CliRunner().invoke(
        app, ["adapt", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "b.onnx"), "--gain", "2"]
    )
    assert bad.exit_code != 0 and "together" in bad.output


def test_row_noise_is_levelled_before_adapting_as_the_service_levels_it(
    tmp_path: Path, conv_model: Path
) -> None:
    """Rows offset anew each frame (CMOS banding) break the risk estimate's independent
    pixels: on a new user's recording it chose weights 0.75 dB worse than the start as
    22 % better. The frames are levelled first, as the service levels them live, so the
    model is adapted to and judged on what it will be given."""
    frames, rng = 12, np.random.default_rng(1)
    y, x = np.mgrid[0:64, 0:64]
    scene = 30.0 + 30.0 * np.exp(-((y - 30) ** 2 + (x - 34) ** 2) / 800.0)  # smooth rows
    photons = rng.poisson(np.broadcast_to(scene, (frames, 64, 64)))
    movie = CAMERA.offset + CAMERA.gain * photons + rng.normal(0, CAMERA.read_noise, photons.shape)
    offsets = rng.normal(0.0, 6.0, (frames, 64, 1))
    banded = np.clip(np.rint(movie + offsets), 0, 65535).astype(np.uint16)
    movie = np.rint(movie).astype(np.uint16)
    levelled, rms, left = level_rows(Recording(banded, np.ones(frames, bool), "banded"))
    assert 4.5 < rms < 7.5 and left == 0.0  # 6 counts rms, all taken out
    assert levelled.frames.dtype == np.float32

    def row_offsets_left(frames: np.ndarray) -> float:  # per row and frame, the scene out
        left = (frames - movie.astype(np.float32)).mean(axis=2)
        return float(np.std(left - left.mean(axis=1, keepdims=True)))

    # what is left: each row's mean of the pixels' noise (~1.7) and the offsets' profile
    # coarser than 16 rows, which a scene's gradient may be (stream.camera._rows)
    assert row_offsets_left(levelled.frames) < 0.55 * row_offsets_left(banded)
    plain = Recording(movie, np.ones(frames, bool), "plain")
    assert level_rows(plain) == (plain, 0.0, 0.0)  # no row noise: the frames as they came
    np.save(tmp_path / "banded.npy", banded)
    result = CliRunner().invoke(
        app,
        ["adapt", str(tmp_path / "banded.npy"), "-o", str(tmp_path / "a.onnx"), "--from",
         str(conv_model), "--steps", "2", "--batch", "2", "--patch", "32", "--quiet"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    assert "rows levelled, as the service does" in " ".join(result.output.split())
    with Engine(tmp_path / "a.onnx", provider="cpu", warmup_shape=None) as engine:
        assert 4.5 < engine.metadata.adaptation["rows_levelled"] < 7.5


def test_adapt_starts_from_a_shipped_name_and_flags_a_camera_noisier_than_the_recording(
    tmp_path: Path,
) -> None:
    np.save(tmp_path / "rec.npy", blob_movie(4))
    result = CliRunner().invoke(
        app,
        ["adapt", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "a.onnx"), "--from",
         "na-lite", "--steps", "2", "--batch", "2", "--patch", "32", "--quiet",
         "--gain", "2", "--offset", "100", "--read-noise", "30"],  # the movie's read: 3
        catch_exceptions=False,
    )  # fmt: skip
    text = " ".join(result.output.split())
    with Engine(tmp_path / "a.onnx", provider="cpu", warmup_shape=None) as engine:
        assert engine.metadata.adaptation["start_path"] == "na-lite.onnx"
    assert "negative MSE estimates" in text and "deepdenoise calibrate" in text


def test_resume_without_a_checkpoint_is_refused(tmp_path: Path, conv_model: Path) -> None:
    np.save(tmp_path / "rec.npy", blob_movie(4))
    with pytest.raises(ConfigError, match="--resume: expected a checkpoint to continue"):
        adapt(tmp_path / "rec.npy", tmp_path / "a.onnx", start=conv_model, resume=True)
    assert not (tmp_path / "a.onnx").exists()


def test_an_fp16_model_is_refused_with_the_model_to_adapt_instead(
    conv_model_adaptive: Path, tmp_path: Path
) -> None:
    proto = onnx.load(str(conv_model_adaptive))
    for init in proto.graph.initializer:  # what an fp16 export holds
        half = onnx.numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(onnx.numpy_helper.from_array(half, init.name))
    path = tmp_path / "m-fp16.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="expected a float32 model, got float16 weights"):
        load_trainable(path)


def test_the_recordings_running_mean_is_the_engines_over_the_valid_run() -> None:
    frames = blob_movie(7, seed=3)
    valid = np.array([True, True, False, True, True, True, True])
    recording = Recording(frames, valid, "r")
    f = frames.astype(np.float32)
    np.testing.assert_array_equal(recording.running_mean(3, 0.25), f[3])  # a series start
    np.testing.assert_array_equal(recording.running_mean(4, 0.25), f[3])
    np.testing.assert_allclose(recording.running_mean(6, 0.25), (f[3] + f[4] + f[5]) / 3,
                               rtol=1e-6)  # fmt: skip
    region = (slice(5, 9), slice(2, 4))
    np.testing.assert_array_equal(
        recording.running_mean(6, 0.25, region), recording.running_mean(6, 0.25)[region]
    )


@pytest.mark.parametrize("kind", ["n2v", "sure"])
def test_a_running_mean_model_adapts_with_its_mean_as_context(
    tmp_path: Path, conv_model_running_mean: Path, kind: str
) -> None:
    meta = _meta(conv_model_running_mean)
    recording = Recording(blob_movie(6, seed=4), np.ones(6, bool), "r")
    rng = np.random.default_rng(0)
    frames, mean = recording.random_patch(recording.windows(2), 2, 32, rng, meta.running_mean)
    assert frames.shape == (2, 32, 32) and mean is not None and mean.shape == (32, 32)
    if kind == "n2v":
        inputs = blind_spot_batch(recording, recording.windows(2), meta, CAMERA, rng, 2, 32, 0.05)[
            0
        ]
    else:
        batch = sure_batch(recording, recording.windows(2), meta, CAMERA, rng, 2, 32)
        inputs = batch.inputs
        # the probe moves the current frame, never the mean of the frames before it
        np.testing.assert_allclose(batch.probed[:, 3] * batch.rescale[:, None, None],
                                   inputs[:, 3], rtol=1e-5)  # fmt: skip
    assert inputs.shape == (2, 4, 32, 32)
    np.save(tmp_path / "rec.npy", recording.frames)
    report = adapt(
        tmp_path / "rec.npy", tmp_path / "a.onnx", start=conv_model_running_mean, camera=CAMERA,
        config=AdaptConfig(steps=4, batch=2, patch=32, loss=kind),  # type: ignore[arg-type]
    )  # fmt: skip
    assert report.metadata.running_mean == 0.25 and np.isfinite(report.risk_adapted)


def test_adaptation_tells_a_quiet_camera_what_the_engine_tells_it() -> None:
    """A photon counter's read noise is raised to the least the model was trained with
    by the engine; adapting on its recording builds the same input, or the model would
    be tuned on a noise map it is never served."""
    from exporter.adapt._blindspot import model_units
    from stream.engine import ModelMetadata

    meta = ModelMetadata(
        normalization="adaptive", frames=1, noise_map=True,
        training_noise={"read_noise_e": [0.3, 12.0]},
    )  # fmt: skip
    frames = np.random.default_rng(2).poisson(3.0, (1, 16, 16)).astype(np.float32) + 100
    quiet, least = (CameraModel(gain=2.0, offset=100.0, read_noise=r) for r in (0.0, 0.6))
    got, want = (np.empty((2, 16, 16), np.float32) for _ in range(2))
    assert model_units(frames, meta, quiet, got) == model_units(frames, meta, least, want)
    np.testing.assert_array_equal(got, want)
