"""ONNX export: the exported model runs in the real engine like the torch model, carries
correct metadata and a stable content hash, and the CLI drives train + export."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import typer
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from model_harness import tiny_temporal_config  # noqa: E402

from exporter.cli import register  # noqa: E402
from exporter.cli._train import parse_level  # noqa: E402
from exporter.data import normalization  # noqa: E402
from exporter.export import ExportReport, ParityError, content_hash, export_onnx  # noqa: E402
from exporter.model import ModelSpec  # noqa: E402
from exporter.train import TrainConfig, load_checkpoint, load_train_config, train  # noqa: E402
from stream.engine import Engine, ModelMetadata  # noqa: E402
from stream.sim import CalciumPhantom, PhantomConfig  # noqa: E402

DEPTH, WIDTH = 4, 8  # a tiny DnCNN: receptive field 2 * 4 + 1 = 9
TINY: dict[str, Any] = {
    "preset": "lite",
    "depth": DEPTH,
    "width": WIDTH,
    "steps": 12,
    "batch": 8,
    "patch": 32,
    "lr": 3e-3,
    "threads": 1,
    "val_every": 6,
    "ckpt_every": 6,
    "val_size": 8,
    "data__field": 64,
    "noise_level": (0.5, 2.0),
    "seed": 5,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_train_config(None, **TINY, out_dir=tmp_path_factory.mktemp("run"))
    return train(cfg, progress=False).last_checkpoint


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx", fp16=True)


def metadata_of(path: Path) -> ModelMetadata:
    return ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props})


def torch_reference(model: torch.nn.Module, frame: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """Normalise, reflect-pad by the radius, run, crop, denormalise (float64 throughout)."""
    m = meta.radius
    x = (frame.astype(np.float64) - meta.input_offset) / meta.input_scale
    padded = torch.from_numpy(np.pad(x, m, mode="reflect"))[None, None]
    with torch.no_grad():
        y = model.double()(padded)[0, 0].numpy()
    model.float()
    return y[m:-m, m:-m] * meta.input_scale + meta.input_offset


def test_export_reports_parity_in_the_real_engine(exported: ExportReport):
    cases = [r.case for r in exported.rows if r.variant == "fp32"]
    assert any(c.startswith("tiled") for c in cases) and any(c.startswith("batch") for c in cases)
    assert len(cases) == 6  # 4 whole frames, one tiled, one batch
    assert exported.max_error("fp32") < 1e-4
    assert 0 < exported.max_error("fp16") < 1e-2  # fp16 is close, but not exact
    for row in exported.rows:
        scale = exported.metadata.input_scale
        assert row.max_abs_raw == pytest.approx(row.max_abs_model * scale, rel=1e-6)


def test_engine_output_matches_torch_on_a_phantom_frame(exported: ExportReport, checkpoint: Path):
    # Independent of the exporter's own check: a uint16 camera frame, a float64 reference.
    model, _ = load_checkpoint(checkpoint)
    phantom = CalciumPhantom(PhantomConfig(shape=(70, 93), seed=2), n_frames=1)
    frame = phantom.noisy(0, rng=1)
    for path, bound in ((exported.path, 1e-3), (exported.fp16_path, 0.1)):
        assert path is not None
        with Engine(path, provider="cpu", warmup_shape=None, tile=48, overlap=24) as engine:
            assert engine.plan_for(frame.shape).n_tiles > 1
            got = engine.denoise(frame)
        want = torch_reference(model, frame, engine.metadata)
        assert np.max(np.abs(got - want)) < bound  # ADU, on values of a few hundred
        # and denoising did something: the output is not the input
        assert np.max(np.abs(got - frame)) > 1.0


def test_metadata_follows_the_contract(exported: ExportReport, checkpoint: Path):
    meta = metadata_of(exported.path)
    _, info = load_checkpoint(checkpoint)
    cfg = TrainConfig.model_validate(info["config"])
    offset, scale = normalization(cfg.data)
    assert meta.from_model and meta.format_version == 1
    assert meta.architecture == "dncnn"  # a customised lite spec
    assert meta.receptive_field == 2 * DEPTH + 1 == 9
    assert (meta.input_offset, meta.input_scale) == pytest.approx((offset, scale))
    assert meta.input_offset == cfg.data.noise.camera.offset
    noise = meta.training_noise
    assert noise["source"] == "model" and noise["level"] == [0.5, 2.0]
    assert noise["camera"] == cfg.data.noise.camera.model_dump()
    assert noise["steps"] == 12 and noise["seed"] == 5
    assert meta == exported.metadata


def test_a_synth_run_on_a_dark_recording_states_the_read_noise_it_trained_with(tmp_path: Path):
    # it stated the synth default range (0.3 to 12 e-), which the recording's noise had
    # replaced: the engine told the model a read noise floor it never saw (a new user's
    # trial, 2026-12-07)
    from exporter.export import training_noise

    rng = np.random.default_rng(1)
    dark = 100.0 + rng.normal(0.0, 3.0, (8, 32, 32))
    np.save(tmp_path / "dark.npy", dark.astype(np.float32))
    rms = float(np.sqrt(np.mean(np.square(dark - dark.mean(axis=0)) * 8 / 7)))
    synth = {"recorded": str(tmp_path / "dark.npy"), "gain": [0.5, 2.0], "read_noise_e": [0.3, 12]}
    info = {"config": {"data_source": "synth", "synth": synth, "seed": 3}, "step": 7}
    noise = training_noise(info)
    assert noise["source"] == "recorded" and noise["recorded"] == "dark.npy"
    assert noise["read_noise_e"] == pytest.approx([rms / 2.0, rms / 0.5], rel=3e-3)  # 3 digits
    told = ModelMetadata(noise_map=True, normalization="adaptive", training_noise=noise)
    assert told.least_read_noise_e() == noise["read_noise_e"][0]
    (tmp_path / "dark.npy").unlink()  # exported elsewhere: no floor rather than a wrong one
    assert training_noise(info)["read_noise_e"] is None
    modelled = training_noise(
        {"config": {"data_source": "synth", "synth": {**synth, "recorded": None}}}
    )
    assert modelled["source"] == "model" and modelled["read_noise_e"] == [0.3, 12]


def test_a_one_frame_dark_recording_is_asked_for_more_frames(tmp_path: Path):
    from exporter.data import NoiseConfig, recorded_noise
    from exporter.synth import PairGenerator, SynthConfig
    from stream import ConfigError

    np.save(tmp_path / "dark.npy", np.full((16, 16), 100, np.uint16))
    with pytest.raises(ConfigError, match=r"at least 2 frames of noise.*got 1.*record more") as got:
        PairGenerator(SynthConfig(recorded=tmp_path / "dark.npy"))
    assert "remove_pixel_mean" not in str(got.value)  # no such setting in [synth]
    noise = NoiseConfig(source="recorded", recorded=tmp_path / "dark.npy")
    with pytest.raises(ConfigError, match="remove_pixel_mean = false"):
        recorded_noise(noise)


def test_graph_is_opset_17_with_dynamic_axes_and_folded_batchnorm(exported: ExportReport):
    proto = onnx.load(str(exported.path))
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in dims] == ["N", 1, "H", "W"]
    assert [v.name for v in proto.graph.input] == ["x"]
    assert [v.name for v in proto.graph.output] == ["y"]
    assert exported.size_bytes == exported.path.stat().st_size < 100_000


def test_dynamic_batch_and_sizes_through_onnxruntime(exported: ExportReport, checkpoint: Path):
    import onnxruntime as ort

    model, _ = load_checkpoint(checkpoint)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in ((1, 1, 33, 47), (3, 1, 64, 20), (2, 1, 9, 130)):
        x = rng.uniform(0, 1, shape).astype(np.float32)
        (y,) = session.run(None, {"x": x})
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert y.shape == shape
        assert np.max(np.abs(y - want)) < 1e-5


def test_content_hash_is_stable_and_names_the_graph(
    exported: ExportReport, checkpoint: Path, tmp_path: Path
):
    again = export_onnx(checkpoint, tmp_path / "again.onnx", parity_inputs=1)
    assert again.metadata.content_hash == exported.metadata.content_hash
    proto = onnx.load(str(exported.path))
    assert content_hash(proto) == exported.metadata.content_hash
    del proto.metadata_props[:]
    assert hashlib.sha256(proto.SerializeToString()).hexdigest() == exported.metadata.content_hash
    # the fp16 graph is another computation, hence another hash; same metadata otherwise
    assert exported.fp16_path is not None and exported.fp16_path.name == "tiny-fp16.onnx"
    half = metadata_of(exported.fp16_path)
    assert half.content_hash != exported.metadata.content_hash
    assert half.model_copy(update={"content_hash": None}) == exported.metadata.model_copy(
        update={"content_hash": None}
    )
    assert exported.fp16_path.stat().st_size < exported.path.stat().st_size
    # checked in fp16, both files say TensorRT may build them in fp16; they said it did
    # not (a new user's trial, 2026-12-07), so gpu.fp16 = "auto" never used it
    assert metadata_of(exported.path).fp16 and half.fp16 and exported.metadata.fp16
    assert not again.metadata.fp16 and not metadata_of(tmp_path / "again.onnx").fp16


def test_parity_beyond_the_bound_raises_and_writes_nothing_in_place(
    checkpoint: Path, tmp_path: Path
):
    """A failed export leaves an earlier model at ``-o`` as it was, and none where there
    was none: ``info`` called a failed file "contract fits" and ``serve`` ran it (a new
    user's trial, 2026-12-07). The failed files are kept under names serve refuses."""
    earlier = tmp_path / "strict.onnx"
    earlier.write_bytes(b"an earlier model")
    with pytest.raises(ParityError, match="differs from torch by up to") as caught:
        export_onnx(checkpoint, earlier, parity_inputs=1, tolerance=1e-12, fp16=True)
    assert earlier.read_bytes() == b"an earlier model"
    assert not (tmp_path / "strict-fp16.onnx").exists()
    assert f"nothing was written to {earlier}" in str(caught.value)
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert kept == ["strict-fp16.onnx.parity-failed", "strict.onnx", "strict.onnx.parity-failed"]
    assert metadata_of(tmp_path / "strict.onnx.parity-failed").content_hash is not None
    with pytest.raises(ParityError, match=r"nothing was written to .*fresh\.onnx"):
        export_onnx(checkpoint, tmp_path / "fresh.onnx", parity_inputs=1, tolerance=1e-12)
    assert not (tmp_path / "fresh.onnx").exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_an_export_moves_only_its_own_files_into_place(checkpoint: Path, tmp_path: Path):
    """A killed run's hidden file (its PID come again) was moved into place as the fp16
    model of an export that made none (a reviewer's probe); a symlink at -o is written
    through, as a plain save wrote it."""
    stale = tmp_path / f".m-fp16.export-{os.getpid()}.onnx"
    stale.write_bytes(b"a killed run's")
    export_onnx(checkpoint, tmp_path / "m.onnx", parity_inputs=1)
    assert not (tmp_path / "m-fp16.onnx").exists() and stale.read_bytes() == b"a killed run's"
    (tmp_path / "models").mkdir()
    (tmp_path / "link.onnx").symlink_to(tmp_path / "models" / "real.onnx")
    export_onnx(checkpoint, tmp_path / "link.onnx", parity_inputs=1)
    assert (tmp_path / "link.onnx").is_symlink()
    assert metadata_of(tmp_path / "models" / "real.onnx").content_hash is not None


@pytest.mark.parametrize("noise", ["modelled", "recorded"])
def test_a_model_trained_on_more_read_noise_than_the_parity_camera_exports(
    tmp_path: Path, noise: str
):
    """The engine tells a model no less read noise than it was trained with; the torch
    reference now does too. Before, a model trained on a dark recording of 2.3 e- (or a
    modelled 3-8 e-) failed every export by ~3e-3 model units (a new user's trial)."""
    if noise == "recorded":
        dark = tmp_path / "dark.npy"
        rng = np.random.default_rng(3)
        np.save(dark, rng.normal(100.0, 6.0, (8, 48, 48)).astype(np.float32))
        synth: dict[str, Any] = {"recorded": dark, "gain": (0.5, 1.0)}  # 6-12 e-
    else:
        synth = {"read_noise_e": (3.0, 8.0)}
    synth |= {"patch": 32, "frames": 2, "samples_per_movie": 2}
    cfg = tiny_temporal_config(tmp_path / "run", steps=2, val_every=2, ckpt_every=2, synth=synth)
    summary = train(cfg, progress=False)
    report = export_onnx(summary.last_checkpoint, tmp_path / "rig.onnx", parity_inputs=1)
    assert report.metadata.least_read_noise_e() >= 3.0
    assert report.max_error() <= 1e-4


def test_cli_trains_and_exports(tmp_path: Path):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    config = tmp_path / "train.toml"
    config.write_text("val_size = 8\nval_every = 3\n[data]\nfield = 64\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    args = ["train", "--config", str(config), "--preset", "lite", "--steps", "4", "--batch", "4"]
    args += ["--patch", "32", "--lr", "0.002", "--noise-level", "0.5:2", "--out", str(run_dir)]
    args += ["--seed", "7", "--device", "cpu", "--threads", "1"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "best val PSNR" in result.output and "noisy input PSNR" in result.output
    _, info = load_checkpoint(run_dir / "last.pt")
    assert info["step"] == 4 and info["config"]["data"]["noise"]["level"] == [0.5, 2.0]
    assert info["config"]["lr"] == 0.002 and info["config"]["val_every"] == 3

    more = ["train", "--resume", str(run_dir / "last.pt"), "--steps", "6", "--quiet"]
    result = runner.invoke(app, more, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "4 -> 6" in result.output  # the checkpoint's config is the base

    model = tmp_path / "lite.onnx"
    args = ["export", str(run_dir / "last.pt"), "-o", str(model), "--fp16", "--inputs", "1"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "parity vs torch" in result.output and "fp16" in result.output
    assert model.is_file() and (tmp_path / "lite-fp16.onnx").is_file()
    assert metadata_of(model).architecture == "dncnn-lite"


def test_cli_trains_a_synth_run_whose_patch_is_the_synth_patch(tmp_path: Path):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    run_dir = tmp_path / "run"
    args = [
        "train", "--preset", "na-lite", "--data-source", "synth", "--steps", "1",
        "--batch", "2", "--patch", "32", "--threads", "1", "--quiet",
    ]  # fmt: skip
    result = runner.invoke(app, [*args, "--out", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _, info = load_checkpoint(run_dir / "last.pt")
    assert info["config"]["synth"]["patch"] == 32 and info["config"]["data_source"] == "synth"
    noisy = runner.invoke(app, [*args, "--noise-level", "2", "--out", str(tmp_path / "x")])
    text = " ".join(noisy.output.split())
    assert noisy.exit_code != 0 and "--noise-level set the phantom source's noise" in text
    phantom = runner.invoke(app, ["train", "--preset", "na-lite", "--out", str(tmp_path / "y")])
    assert phantom.exit_code != 0 and "--data-source synth" in " ".join(phantom.output.split())


def test_an_interrupted_training_says_how_to_continue(tmp_path: Path):
    import subprocess
    import sys

    from service_harness import interrupt_when, sigint_as_in_a_terminal

    config = tmp_path / "train.toml"
    config.write_text(
        'preset = "na-lite"\ndata_source = "synth"\nsteps = 100000\nbatch = 2\n'
        "ckpt_every = 2\nval_every = 2\nval_size = 2\nthreads = 1\n[synth]\npatch = 32\n",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    args = ["-m", "stream", "train", "--config", str(config), "--out", str(run_dir), "--quiet"]
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )  # fmt: skip
    output, _ = interrupt_when(
        process, lambda: (run_dir / "last.pt").exists() or process.poll() is not None
    )
    text = " ".join(output.split())
    assert process.returncode == 130, output
    assert f"deepdenoise train --resume {run_dir / 'last.pt'}" in text
    assert "Traceback" not in output


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    bad = runner.invoke(app, ["train", "--noise-level", "a:b", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "expected a noise level" in bad.output
    bad = runner.invoke(app, ["train", "--steps", "0", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "greater than or equal to 1" in bad.output
    assert "(got 0)" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.pt"), "-o", "x.onnx"])
    assert missing.exit_code == 2 and "cannot read checkpoint" in missing.output
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    other = runner.invoke(app, ["export", str(tmp_path / "config.json"), "-o", "x.onnx"])
    text = " ".join(other.output.split())
    assert other.exit_code == 2 and "expected a deepdenoise training checkpoint" in text
    assert "weights_only" not in text


def test_parse_level():
    assert parse_level("1.5") == 1.5
    assert parse_level("0.5:3") == (0.5, 3.0)
    assert parse_level(None) is None
    with pytest.raises(typer.BadParameter):
        parse_level("1:2:3")


def test_registering_the_commands_does_not_import_torch():
    script = textwrap.dedent(
        """
        import sys, typer
        import exporter.cli as m
        m.register(typer.Typer())
        heavy = {"torch", "scipy", "matplotlib", "onnx"}
        heavy = sorted(k for k in sys.modules if k.split(".")[0] in heavy)
        assert not heavy, heavy
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_checkpoint_spec_round_trip(checkpoint: Path):
    model, info = load_checkpoint(checkpoint)
    assert model.spec == ModelSpec(DEPTH, WIDTH) == ModelSpec(**info["spec"])


@pytest.mark.parametrize("running_mean", [0.0, 0.25])
def test_a_noise_adaptive_temporal_model_trains_exports_and_matches_torch(
    tmp_path: Path, running_mean: float
):
    synth = {"patch": 32, "frames": 2, "samples_per_movie": 2}
    if running_mean:
        synth |= {"running_mean": running_mean, "history": 4}
    cfg = tiny_temporal_config(
        tmp_path / "run", loss="relative", steps=4, val_every=4, ckpt_every=4,
        running_mean=running_mean, synth=synth,
    )  # fmt: skip
    summary = train(cfg, progress=False)
    report = export_onnx(summary.last_checkpoint, tmp_path / "na.onnx", parity_inputs=2)
    meta = report.metadata
    assert (meta.frames, meta.noise_map, meta.normalization, meta.alignment) == (
        2, True, "adaptive", 2
    )  # fmt: skip
    assert meta.running_mean == running_mean and meta.in_channels == 3 + (running_mean > 0)
    assert meta.training_data["generator"] == "exporter.synth"
    assert {row.case.split()[0] for row in report.rows} == {"whole", "tiled", "batch"}
    assert report.max_error() <= 1e-4  # tiled on the even grid == whole == torch
