"""A temporal model composed with a spatial one: the spatial branch answers exactly when
the engine has no previous frame to give (series start, after a gap), the temporal
branch otherwise, tiled as whole, through the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
from model_harness import randomised  # noqa: E402

from exporter.compose import with_spatial_start  # noqa: E402
from exporter.export import _torch_to_onnx, finish_model  # noqa: E402
from exporter.light_bands import EDGES, describe, measure_band  # noqa: E402
from exporter.model import ModelSpec, receptive_field  # noqa: E402
from stream import ModelError  # noqa: E402
from stream.camera import CameraModel  # noqa: E402
from stream.engine import Engine, ModelMetadata, SeriesContext, peak_snr  # noqa: E402

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=3.0)


def _model(path: Path, spec: ModelSpec, seed: int, **meta: object) -> Path:
    model = randomised(spec, seed)
    fields = {
        "architecture": "dncnn",
        "receptive_field": receptive_field(model),
        "normalization": "adaptive",
        "frames": spec.frames,
        "noise_map": spec.noise_map,
        "running_mean": spec.running_mean,
        "alignment": spec.unshuffle,
        **meta,
    }
    finish_model(_torch_to_onnx(model.eval()), fields, path)
    return path


def _meta(path: Path) -> ModelMetadata:
    return ModelMetadata.from_props({p.key: p.value for p in onnx.load(path).metadata_props})


@pytest.fixture(scope="module", params=[0.0, 0.25], ids=["frames", "running-mean"])
def models(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Path]:
    """Temporal models with and without the running-mean channel (the last input, which
    the spatial branch does not read)."""
    d = tmp_path_factory.mktemp("compose")
    spec = ModelSpec(3, 8, frames=3, noise_map=True, unshuffle=2, running_mean=request.param)
    temporal = _model(d / "t.onnx", spec, 1)
    spatial = _model(d / "s.onnx", ModelSpec(3, 8, frames=1, noise_map=True, unshuffle=2), 2)
    composed = d / "ts.onnx"
    with_spatial_start(temporal, spatial, composed)
    return {"temporal": temporal, "spatial": spatial, "composed": composed}


def _frames(n: int, shape: tuple[int, int] = (40, 52)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    scene = rng.uniform(5, 60, shape)
    return [(rng.poisson(scene) * 2.0 + 100).astype(np.uint16) for _ in range(n)]


@pytest.mark.parametrize("tile", [None, 32])
def test_the_spatial_model_answers_only_when_there_is_no_previous_frame(
    models: dict[str, Path], tile: int | None
):
    frames = _frames(4)
    engines = {
        k: Engine(p, provider="cpu", tile=tile, warmup_shape=None) for k, p in models.items()
    }
    try:
        ctx = SeriesContext(CAMERA, blend="off")
        outs = [ctx.denoise(engines["composed"], f, i) for i, f in enumerate(frames)]
        # frame 0: nothing before it; frames 1-3: the temporal model with its ring
        first = engines["spatial"].denoise(frames[0], camera=CAMERA)
        np.testing.assert_allclose(outs[0], first, atol=1e-3)
        ref = SeriesContext(CAMERA, blend="off")
        expected = [ref.denoise(engines["temporal"], f, i) for i, f in enumerate(frames)]
        for got, want in zip(outs[1:], expected[1:], strict=True):
            np.testing.assert_allclose(got, want, atol=1e-3)
        assert not np.allclose(expected[0], first, atol=1.0)  # the branches differ
        # after a gap the ring is empty again: the spatial branch
        gap = ctx.denoise(engines["composed"], frames[3], 10)
        np.testing.assert_allclose(gap, engines["spatial"].denoise(frames[3], camera=CAMERA),
                                   atol=1e-3)  # fmt: skip
    finally:
        for engine in engines.values():
            engine.close()


IN_BAND, OUT_OF_BAND = (1.0, 100.0), (0.1, 1.0)  # the frames' peak SNR is about 8


@pytest.mark.parametrize(
    ("bands", "young_is_temporal", "full_is_temporal"),
    [
        ({"young": OUT_OF_BAND}, False, True),
        ({"young": IN_BAND}, True, True),
        ({"full": OUT_OF_BAND}, True, False),
        ({"young": IN_BAND, "full": IN_BAND}, True, True),
    ],
)
def test_frames_outside_their_windows_band_are_answered_spatially(
    models: dict[str, Path],
    tmp_path: Path,
    bands: dict[str, tuple[float, float]],
    young_is_temporal: bool,
    full_is_temporal: bool,
):
    """Frame 1 has one previous frame of the two the window holds (young), frame 2 a full
    window: the temporal branch answers each only when the frame's peak SNR is in the
    band for its kind of window (or there is none); the ring is kept either way."""
    frames = _frames(4)
    for frame in frames[1:]:
        centred = frame.astype(np.float32) - CAMERA.offset
        assert 1.0 < peak_snr(centred, CAMERA.gain, CAMERA.read_noise) < 100.0
    composed = with_spatial_start(models["temporal"], models["spatial"], tmp_path / "b.onnx", bands)
    for window in ("young", "full"):
        assert composed.temporal_band(window) == bands.get(window)
    assert composed.content_hash != _meta(models["composed"]).content_hash  # another model id
    paths = {**models, "composed": tmp_path / "b.onnx"}
    engines = {k: Engine(paths[k], provider="cpu", warmup_shape=None) for k in paths}
    try:
        ctx, ref = SeriesContext(CAMERA, blend="off"), SeriesContext(CAMERA, blend="off")
        outs = [ctx.denoise(engines["composed"], f, i) for i, f in enumerate(frames)]
        temporal = [ref.denoise(engines["temporal"], f, i) for i, f in enumerate(frames)]
        spatial = [engines["spatial"].denoise(f, camera=CAMERA) for f in frames]
        expected = {1: young_is_temporal, 2: full_is_temporal, 3: full_is_temporal}
        for i, is_temporal in expected.items():
            assert not np.allclose(temporal[i], spatial[i], atol=1.0)  # the branches differ
            want = temporal[i] if is_temporal else spatial[i]
            np.testing.assert_allclose(outs[i], want, atol=1e-3, err_msg=f"frame {i}")
    finally:
        for engine in engines.values():
            engine.close()


@pytest.mark.parametrize("key", ["young_temporal_snr", "temporal_snr"])
@pytest.mark.parametrize("band", [[2.0], [3.0, 1.0], [-1.0, 2.0], ["a", 2.0], True])
def test_a_malformed_band_is_refused(models: dict[str, Path], key: str, band: object):
    props = {p.key: p.value for p in onnx.load(models["composed"]).metadata_props}
    start = json.loads(props["deepdenoise.spatial_start"])
    props["deepdenoise.spatial_start"] = json.dumps({**start, key: band})
    with pytest.raises(ModelError, match=rf"{key} must be \[low, high\]"):
        ModelMetadata.from_props(props)


def test_the_band_holds_the_windows_where_the_temporal_model_wins():
    from exporter.light_bands import _best_band

    snr = np.geomspace(0.1, 1000.0, 400)
    gain = np.where((snr > 2.0) & (snr < 20.0), 1.0, -1.0)  # wins between 2 and 20
    low, high = _best_band(snr, gain)
    assert 1.8 < low < 2.1 and 19.0 < high < 21.5  # the nearest edges (EDGES) around 2, 20
    assert _best_band(snr, -np.ones_like(snr)) == (0.0, 0.0)  # never: an empty band


@pytest.mark.parametrize("window", ["young", "full"])
def test_a_band_is_measured_on_generated_windows_of_its_kind(models: dict[str, Path], window: str):
    measured = measure_band(
        models["temporal"], models["spatial"], window, samples=100, patch=32, resamples=5
    )
    assert measured.window == window and measured.windows >= 20 and len(measured.table) == 10
    assert EDGES[0] <= measured.low <= measured.high <= EDGES[-1]
    lows = [row[0] for row in measured.table]
    assert lows == sorted(lows)  # tenths by peak SNR
    assert "| peak SNR |" in describe(measured)
    with pytest.raises(ValueError, match="expected a window in"):
        measure_band(models["temporal"], models["spatial"], "old", samples=1)


def test_the_composed_file_keeps_the_temporal_metadata_and_names_its_spatial_start(
    models: dict[str, Path],
):
    with Engine(models["composed"], provider="cpu", warmup_shape=None) as engine:
        meta = engine.metadata
    with Engine(models["temporal"], provider="cpu", warmup_shape=None) as engine:
        temporal = engine.metadata
    assert (meta.frames, meta.noise_map, meta.alignment) == (3, True, 2)
    assert meta.receptive_field == temporal.receptive_field
    assert meta.spatial_start["model"] == "s"
    assert meta.spatial_start["temporal_content_hash"] == temporal.content_hash
    assert "spatial_start" not in {
        p.key.split(".")[-1] for p in onnx.load(models["temporal"]).metadata_props
    }


def test_models_that_do_not_fit_together_are_refused(models: dict[str, Path], tmp_path: Path):
    with pytest.raises(ModelError, match="expected a temporal and a spatial model"):
        with_spatial_start(models["spatial"], models["temporal"], tmp_path / "x.onnx")
    fixed = _model(tmp_path / "f.onnx", ModelSpec(3, 8, noise_map=False, unshuffle=2), 3,
                   normalization="fixed")  # fmt: skip
    with pytest.raises(ModelError, match="normalization is 'adaptive'"):
        with_spatial_start(models["temporal"], fixed, tmp_path / "x.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        with_spatial_start(models["temporal"], garbage, tmp_path / "x.onnx")
    # composed twice, the graph's names would clash: the file written would not load
    with pytest.raises(ModelError, match="already composed with 's'"):
        with_spatial_start(models["composed"], models["spatial"], tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_compose(models: dict[str, Path], tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from exporter.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "cli.onnx"
    ok = runner.invoke(
        app, ["compose", str(models["temporal"]), str(models["spatial"]), "-o", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert out.read_bytes() == models["composed"].read_bytes()  # deterministic
    bad = runner.invoke(
        app, ["compose", str(models["spatial"]), str(models["spatial"]), "-o", str(out)]
    )
    assert bad.exit_code != 0 and "expected a temporal and a spatial model" in bad.output
    young = runner.invoke(
        app,
        [
            "compose",
            str(models["temporal"]),
            str(models["spatial"]),
            "-o",
            str(out),
            "--bands",
            "100",
        ],
    )
    assert young.exit_code == 0, young.output
    text = " ".join(young.output.split())  # the console wraps lines
    assert "Young windows measured" in text and "Full windows measured" in text
    assert "for young windows" in text and "for full windows" in text
    assert all(_meta(out).temporal_band(w) is not None for w in ("young", "full"))
    too_few = runner.invoke(
        app, ["compose", str(models["temporal"]), str(models["spatial"]), "-o", str(out),
              "--bands", "20"],
    )  # fmt: skip
    assert too_few.exit_code == 2 and "expected 0 or at least 50 windows, got 20" in " ".join(
        too_few.output.replace("│", " ").split()
    )
    shipped = runner.invoke(app, ["compose", "na-temporal", "na-lite", "-o", str(out)])
    assert shipped.exit_code != 0  # the name is found: the shipped na-temporal is composed
    assert "already composed with 'na-lite'" in " ".join(shipped.output.split())


def test_adapt_trains_through_a_composed_model_and_writes_both_branches_back(
    models: dict[str, Path], tmp_path: Path
):
    """``deepdenoise adapt`` runs the graph in torch: the If picks the same branch as
    ONNX Runtime, and trained weights land in the branch that holds them."""
    ort = pytest.importorskip("onnxruntime")
    from exporter.adapt._onnx_weights import load_trainable, with_trained_weights

    model = load_trainable(models["composed"])
    assert len(model.module.convs) == 6  # three per branch
    channels = _meta(models["composed"]).in_channels
    x = np.random.default_rng(0).standard_normal((1, channels, 24, 30)).astype(np.float32)
    start = x.copy()
    start[:, :2] = start[:, 2:3]  # no previous frame: the spatial branch
    session = ort.InferenceSession(str(models["composed"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for inputs in (x, start):
            got = model.module(torch.from_numpy(inputs)).numpy()
            np.testing.assert_allclose(
                got, session.run(None, {"x": inputs})[0], atol=1e-5, rtol=1e-5
            )
        for _, params in model.module.convs:
            params[0].mul_(1.1)  # stands in for a training step
        expected = [model.module(torch.from_numpy(v)).numpy() for v in (x, start)]
    path = tmp_path / "adapted.onnx"
    onnx.save(with_trained_weights(model), str(path))
    adapted = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for inputs, want in zip((x, start), expected, strict=True):
        got = adapted.run(None, {"x": inputs})[0]
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert not np.allclose(got, session.run(None, {"x": inputs})[0], atol=1e-3)


def test_an_adapted_composed_model_no_longer_names_the_composed_networks_hashes(
    models: dict[str, Path], tmp_path: Path
):
    from exporter.adapt import AdaptConfig, adapt

    np.save(tmp_path / "rec.npy", np.stack(_frames(4)))
    config = AdaptConfig(steps=2, batch=2, patch=32, minutes=5.0)
    adapt(tmp_path / "rec.npy", tmp_path / "a.onnx", start=models["composed"], config=config,
          camera=CAMERA)  # fmt: skip
    before, after = (
        _meta(models["composed"]).spatial_start,
        _meta(tmp_path / "a.onnx").spatial_start,
    )
    assert before["content_hash"] and before["temporal_content_hash"]
    assert "content_hash" not in after and "temporal_content_hash" not in after
    assert after["model"] == "s, adapted" and after["when"] == before["when"]


def test_a_training_stage_can_start_from_a_composed_model(models: dict[str, Path]):
    """``init = composed.onnx`` takes the temporal network (exporter.onnx_init)."""
    from exporter.onnx_init import model_from_onnx

    ort = pytest.importorskip("onnxruntime")
    meta = _meta(models["composed"])
    spec = ModelSpec(3, 8, frames=3, noise_map=True, unshuffle=2, running_mean=meta.running_mean)
    shape = (2, meta.in_channels, 20, 24)
    x = torch.from_numpy(np.random.default_rng(2).standard_normal(shape).astype("f4"))
    model = model_from_onnx(models["composed"], spec, [x])
    session = ort.InferenceSession(str(models["temporal"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = model.eval()(x).numpy()
    np.testing.assert_allclose(got, session.run(None, {"x": x.numpy()})[0], atol=1e-4)
