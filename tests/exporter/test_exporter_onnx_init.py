"""A shipped ONNX model (BatchNorm folded into its convolutions) rebuilds into a
trainable DnCNN that computes the same function, and training can start from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
import onnx  # noqa: E402
from model_harness import randomised, tiny_temporal_config  # noqa: E402
from torch import nn  # noqa: E402

from exporter.export import _torch_to_onnx  # noqa: E402
from exporter.model import DnCNN, ModelSpec  # noqa: E402
from exporter.onnx_init import model_from_onnx  # noqa: E402
from exporter.train import load_checkpoint, train  # noqa: E402
from exporter.train_config import load_train_config  # noqa: E402
from stream import ConfigError, ModelError  # noqa: E402
from stream.engine import shipped_model_path  # noqa: E402

SPEC = ModelSpec(depth=5, width=8, frames=2, noise_map=True, unshuffle=2)


def _shipped(model: DnCNN, path: Path) -> Path:
    proto = _torch_to_onnx(model)
    spec = model.spec
    for key, value in (
        ("frames", spec.frames),
        ("noise_map", spec.noise_map),
        ("running_mean", spec.running_mean),
        ("normalization", "adaptive"),  # as every noise-adaptive model has
    ):
        proto.metadata_props.add(key=f"deepdenoise.{key}", value=str(value))
    onnx.save(proto, str(path))
    return path


def test_the_rebuilt_model_computes_what_the_onnx_file_computes(tmp_path: Path):
    original = randomised(SPEC)
    path = _shipped(original, tmp_path / "m.onnx")
    x = torch.rand(4, SPEC.in_channels, 36, 40)
    rebuilt = model_from_onnx(path, SPEC, [x])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    from_ort = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        expected = original(x)
        got = rebuilt.eval()(x)
        # calibrated on this very batch, train mode normalises with the same statistics
        in_train_mode = rebuilt.train()(x)
    tol = 1e-5 * float(expected.abs().max())  # float32 rounding, summed differently
    torch.testing.assert_close(got, expected, atol=tol, rtol=0)
    np.testing.assert_allclose(got.numpy(), from_ort, atol=tol, rtol=0)
    torch.testing.assert_close(in_train_mode, expected, atol=10 * tol, rtol=0)
    assert not torch.allclose(original(x), x, atol=1e-2)  # a function, not the identity


def test_a_model_without_a_running_mean_starts_one_that_ignores_it_at_first(tmp_path: Path):
    original = randomised(SPEC)
    path = _shipped(original, tmp_path / "m.onnx")
    wider = ModelSpec(depth=5, width=8, frames=2, noise_map=True, unshuffle=2, running_mean=0.125)
    x = torch.rand(4, wider.in_channels, 36, 40)
    rebuilt = model_from_onnx(path, wider, [x])
    with torch.no_grad():
        expected = original(x[:, : SPEC.in_channels])
        got = rebuilt.eval()(x)
        moved = x.clone()
        moved[:, -1] += 1.0  # the running-mean channel: zero weights, no effect yet
        unchanged = rebuilt(moved)
    tol = 1e-5 * float(expected.abs().max())
    torch.testing.assert_close(got, expected, atol=tol, rtol=0)
    torch.testing.assert_close(unchanged, got, atol=0, rtol=0)
    first = next(m for m in rebuilt.body if isinstance(m, nn.Conv2d))
    assert first.weight.shape[1] == wider.in_channels * 4 and first.weight[:, -4:].abs().max() == 0


def test_a_running_mean_may_change_its_decay_but_not_be_dropped(tmp_path: Path):
    with_mean = ModelSpec(
        depth=5, width=8, frames=2, noise_map=True, unshuffle=2, running_mean=0.125
    )
    original = randomised(with_mean)
    path = _shipped(original, tmp_path / "m.onnx")
    longer = dataclasses.replace(with_mean, running_mean=0.0625)
    x = torch.rand(4, with_mean.in_channels, 36, 40)
    rebuilt = model_from_onnx(path, longer, [x])  # a fine-tune to a longer mean starts here
    with torch.no_grad():
        expected, got = original(x), rebuilt.eval()(x)
    torch.testing.assert_close(got, expected, atol=1e-5 * float(expected.abs().max()), rtol=0)
    with pytest.raises(ModelError, match="expected no running-mean channel"):
        model_from_onnx(path, SPEC, [torch.rand(1, SPEC.in_channels, 16, 16)])


@pytest.mark.parametrize("depth", [6, 9])
def test_a_deeper_model_starts_from_a_shallower_one_computing_the_same(tmp_path: Path, depth: int):
    original = randomised(SPEC)
    path = _shipped(original, tmp_path / "m.onnx")
    deeper = dataclasses.replace(SPEC, depth=depth)
    x = torch.rand(4, SPEC.in_channels, 36, 40)
    rebuilt = model_from_onnx(path, deeper, [x])
    convs = [m for m in rebuilt.body if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth
    with torch.no_grad():
        expected = original(x)
        got = rebuilt.eval()(x)
        in_train_mode = rebuilt.train()(x)  # calibrated on this batch: the same statistics
    tol = 1e-5 * float(expected.abs().max())
    torch.testing.assert_close(got, expected, atol=tol, rtol=0)
    torch.testing.assert_close(in_train_mode, expected, atol=10 * tol, rtol=0)
    # the file's middle layers are all there, in order, with identities between them
    file_convs = [m for m in original.body if isinstance(m, nn.Conv2d)]
    kept = [c for c in convs if not _is_identity(c)]
    assert len(kept) == len(file_convs)
    for mine, theirs in zip(kept[1:-1], file_convs[1:-1], strict=True):
        assert mine.weight.shape == theirs.weight.shape
    assert sum(_is_identity(c) for c in convs) == depth - SPEC.depth
    assert not _is_identity(convs[1]) and not _is_identity(convs[-2])  # spread, not piled


def _is_identity(conv: nn.Conv2d) -> bool:
    w = conv.weight.detach()
    if w.shape[0] != w.shape[1]:
        return False
    eye = torch.zeros_like(w)
    k = w.shape[-1] // 2
    eye[range(w.shape[0]), range(w.shape[0]), k, k] = 1.0
    return bool(torch.equal(w, eye))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ModelSpec(depth=4, width=8, frames=2, noise_map=True, unshuffle=2), "convolutions"),
        (ModelSpec(depth=5, width=16, frames=2, noise_map=True, unshuffle=2), "conv 0 expected"),
        (ModelSpec(depth=5, width=8, frames=3, noise_map=False, unshuffle=2), "expected frames 3"),
    ],
)
def test_another_architecture_is_refused_with_what_differs(
    tmp_path: Path, spec: ModelSpec, message: str
):
    path = _shipped(randomised(SPEC), tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=message):
        model_from_onnx(path, spec, [torch.rand(1, spec.in_channels, 16, 16)])


def test_a_training_stage_starts_from_a_shipped_onnx_model(tmp_path: Path):
    cfg = tiny_temporal_config(
        tmp_path / "run",
        depth=4,
        steps=2,
        lr=1e-12,  # the weights must still be the file's after the steps
        val_every=2,
        ckpt_every=2,
        bn_batches=2,
    )
    source = randomised(cfg.model_spec(), seed=5)
    path = _shipped(source, tmp_path / "shipped.onnx")
    summary = train(cfg.model_copy(update={"init": path}), progress=False)
    model, _ = load_checkpoint(summary.last_checkpoint)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    file_weights = [onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer]
    for conv in convs:
        w = conv.weight.detach().numpy()
        assert any(f.shape == w.shape and np.allclose(f, w, atol=1e-6) for f in file_weights)

    no_calibration = cfg.model_copy(update={"init": path, "bn_batches": 0})
    with pytest.raises(Exception, match="bn_batches > 0"):
        train(no_calibration, progress=False)


def test_a_training_stage_adds_the_running_mean_to_a_checkpoint_it_starts_from(tmp_path: Path):
    # na-temporal-mean.toml starts from the first stage's best.pt, which has no mean channel
    first = tiny_temporal_config(tmp_path / "first", steps=2, val_every=2, ckpt_every=2)
    before, _ = load_checkpoint(train(first, progress=False).last_checkpoint)
    second = tiny_temporal_config(
        tmp_path / "second",
        steps=2,
        lr=1e-12,  # the weights must still be the checkpoint's after the steps
        val_every=2,
        ckpt_every=2,
        running_mean=0.125,
        synth={
            "patch": 32,
            "frames": 2,
            "samples_per_movie": 2,
            "running_mean": 0.125,
            "history": 8,
        },
        init=tmp_path / "first" / "last.pt",
    )
    after, _ = load_checkpoint(train(second, progress=False).last_checkpoint)
    old = [m.weight for m in before.modules() if isinstance(m, nn.Conv2d)]
    new = [m.weight for m in after.modules() if isinstance(m, nn.Conv2d)]
    columns = old[0].shape[1]
    assert new[0].shape[1] == columns + second.model_spec().unshuffle ** 2
    torch.testing.assert_close(new[0][:, :columns], old[0], atol=1e-6, rtol=0)
    assert new[0][:, columns:].abs().max() < 1e-6  # the mean's columns start at zero
    for a, b in zip(old[1:], new[1:], strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)

    dropped = tiny_temporal_config(
        tmp_path / "third", steps=1, init=tmp_path / "second" / "last.pt"
    )
    with pytest.raises(ConfigError, match="cannot start from"):  # a mean is never dropped
        train(dropped, progress=False)


@pytest.mark.parametrize("freeze_bn", [True, False])
def test_a_frozen_batchnorm_keeps_the_files_statistics_while_training(
    tmp_path: Path, freeze_bn: bool
):
    cfg = tiny_temporal_config(
        tmp_path / "run", depth=4, steps=3, val_every=3, ckpt_every=3, bn_batches=2
    )
    path = _shipped(randomised(cfg.model_spec(), seed=5), tmp_path / "shipped.onnx")
    start = cfg.model_copy(update={"init": path, "freeze_bn": freeze_bn, "steps": 1})
    first, _ = load_checkpoint(train(start, progress=False).last_checkpoint)
    trained = cfg.model_copy(update={"init": path, "freeze_bn": freeze_bn})
    model, _ = load_checkpoint(train(trained, progress=False).last_checkpoint)
    before = [m for m in first.modules() if isinstance(m, nn.BatchNorm2d)]
    after = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert before and len(before) == len(after)
    kept = all(
        torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
        for a, b in zip(after, before, strict=True)
    )
    assert kept == freeze_bn  # frozen: no momentum update and no re-estimate
    moved = any(not torch.equal(a.weight, b.weight) for a, b in zip(after, before, strict=True))
    assert moved  # the scale and shift still learn


def test_the_readmes_own_camera_recipe_fine_tunes_the_shipped_default(tmp_path: Path):
    """README, "Training your own model from a noise recording": ``init = "na-lite"``
    names the shipped file wherever the package is, ``synth.recorded`` (relative to the
    config's folder) reads the dark frames, and the run starts from the file's weights."""
    rng = np.random.default_rng(9)
    np.save(tmp_path / "dark.npy", (100 + 2 * rng.standard_normal((6, 72, 72))).astype(np.float32))
    config = tmp_path / "my-rig.toml"
    config.write_text(
        'preset = "na-lite"\ndata_source = "synth"\ninit = "na-lite"\nfreeze_bn = true\n'
        'steps = 2\nlr = 1e-12\nmin_lr = 0.1\nloss = "log"\nbatch = 2\nval_size = 2\n'
        "val_every = 2\n"
        'ckpt_every = 2\nbn_batches = 2\nthreads = 1\nout_dir = "runs/my-rig"\n\n'
        '[synth]\npatch = 64\nnoise_map = true\nrecorded = "dark.npy"\ngain = [0.46, 0.46]\n'
        "skew_offset = 0.7\nclip = true\n"
    )
    cfg = load_train_config(config)
    assert cfg.synth.recorded == tmp_path / "dark.npy"
    summary = train(cfg, progress=False)
    assert summary.last_checkpoint.parent == tmp_path / "runs" / "my-rig"
    model, _ = load_checkpoint(summary.last_checkpoint)
    shipped = onnx.load(str(shipped_model_path("na-lite")))
    file_weights = [onnx.numpy_helper.to_array(i) for i in shipped.graph.initializer]
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    w = first.weight.detach().numpy()  # the first convolution has no BatchNorm folded in
    assert any(f.shape == w.shape and np.allclose(f, w, atol=1e-6) for f in file_weights)

    with pytest.raises(ConfigError, match="shipped model's name"):
        train(cfg.model_copy(update={"init": tmp_path / "na-nothing"}), progress=False)
