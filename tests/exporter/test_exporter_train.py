"""Training: a tiny real run learns, checkpoints hold what export and resume need, and an
interrupted run resumed from its checkpoint continues exactly as the uninterrupted one."""

from __future__ import annotations

import csv
import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exporter.data import normalization  # noqa: E402
from exporter.model import PRESETS, ModelSpec  # noqa: E402
from exporter.precise_bn import batchnorm_layers, recalibrate_batchnorm  # noqa: E402
from exporter.train import (  # noqa: E402
    TrainConfig,
    TrainSummary,
    bn_inputs,
    load_checkpoint,
    load_train_config,
    lr_factor,
    train,
)
from stream import ConfigError  # noqa: E402

STEPS = 30
#: Lite model on 32 x 32 patches cut from 64 x 64 fields, one thread: ~15 steps/s on CPU.
#: (One thread: on a busy shared machine two threads can be several times slower.)
TINY: dict[str, Any] = {
    "preset": "lite",
    "steps": STEPS,
    "batch": 8,
    "patch": 32,
    "lr": 3e-3,
    "warmup": 0.1,
    "threads": 1,
    "val_every": 10,
    "ckpt_every": 10,
    "log_every": 1,
    "val_size": 16,
    "data__field": 64,
    "seed": 3,
    "bn_batches": 3,
}


def tiny_config(out_dir: Path, **changes: Any) -> TrainConfig:
    return load_train_config(None, **{**TINY, "out_dir": out_dir, **changes})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> TrainSummary:
    return train(tiny_config(tmp_path_factory.mktemp("full")), progress=False)


def history(run: TrainSummary) -> dict[str, Any]:
    return json.loads(Path(run.history).read_text(encoding="utf-8"))


def test_training_lowers_the_loss_and_beats_the_noisy_input(full_run: TrainSummary):
    train_log = history(full_run)["train"]
    assert len(train_log) == STEPS
    # Loss relative to the noisy input's own loss on the same batch: batches differ a lot
    # in noise level and brightness, the ratio does not. It starts at 1 (identity model).
    ratio = [rec["loss"] / rec["input_loss"] for rec in train_log]
    first, last = np.mean(ratio[:5]), np.mean(ratio[-10:])
    assert first > 0.8 and last < 0.7 * first, (first, last)
    assert np.mean([r["loss"] for r in train_log[-10:]]) < np.mean(
        [r["input_loss"] for r in train_log[-10:]]
    )
    # The untrained DnCNN is the identity (zero last layer), so any gain is learned.
    assert full_run.best_val_psnr > full_run.noisy_psnr + 2.0, full_run
    assert full_run.final_val_psnr == pytest.approx(full_run.best_val_psnr, abs=1.5)
    assert full_run.steps == STEPS and full_run.start_step == 0 and not full_run.stopped_early
    assert full_run.steps_per_s > 0 and full_run.device == "cpu"


def test_history_files_and_learning_rate_schedule(full_run: TrainSummary):
    hist = history(full_run)
    assert [v["step"] for v in hist["val"]] == [10, 20, 30]
    assert hist["noisy_psnr"] == pytest.approx(full_run.noisy_psnr)
    lrs = [rec["lr"] for rec in hist["train"]]  # the rate for the *next* step
    peak = TINY["lr"]
    assert lrs[:3] == pytest.approx([peak * 2 / 3, peak, peak])  # 3 warm-up steps
    assert all(a >= b for a, b in pairwise(lrs[2:]))  # cosine decay
    assert lrs[-1] == pytest.approx(0.01 * peak)  # min_lr at the end
    with (full_run.out_dir / "history.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == STEPS
    assert float(rows[9]["val_psnr"]) == pytest.approx(hist["val"][0]["val_psnr"])
    assert rows[8]["val_psnr"] == ""
    summary = json.loads((full_run.out_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == STEPS and summary["best_step"] == full_run.best_step


def test_checkpoints_hold_model_state_config_and_normalisation(full_run: TrainSummary):
    model, info = load_checkpoint(full_run.last_checkpoint)
    assert not model.training  # eval mode: BatchNorm uses running statistics
    assert model.spec == PRESETS["lite"] == ModelSpec(**info["spec"])
    assert info["step"] == STEPS and info["architecture"] == "dncnn-lite"
    cfg = TrainConfig.model_validate(info["config"])
    assert cfg == tiny_config(full_run.out_dir)
    offset, scale = normalization(cfg.data)
    assert info["normalization"] == {"input_offset": offset, "input_scale": scale}
    assert {"optimizer", "scheduler", "rng", "history", "data_segment"} <= set(info)
    best_model, best = load_checkpoint(full_run.best_checkpoint)
    assert best["step"] == full_run.best_step == best["history"]["best_step"]
    # The checkpointed weights are the trained ones: not the identity any more.
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        assert float((model(x) - x).abs().max()) > 1e-3
        if best["step"] == STEPS:
            assert torch.equal(best_model(x), model(x))


def test_an_interrupted_run_resumes_exactly(full_run: TrainSummary, tmp_path: Path):
    # Stop mid-segment (segments are ckpt_every = 10 steps): resume must skip 2 batches.
    cut = train(tiny_config(tmp_path), progress=False, stop_at=12)
    assert cut.stopped_early and cut.steps == 12
    _, info = load_checkpoint(cut.last_checkpoint)
    assert info["step"] == 12
    resumed = train(tiny_config(tmp_path), resume=cut.last_checkpoint, progress=False)
    assert resumed.start_step == 12 and resumed.steps == STEPS
    full, again = history(full_run), history(resumed)
    # Same losses at every step, bit for bit (CPU, same threads), the 13th step included.
    assert again["train"] == full["train"]
    val_full = {v["step"]: v["val_psnr"] for v in full["val"]}
    val_again = {v["step"]: v["val_psnr"] for v in again["val"]}
    assert 12 in val_again  # validated where it stopped
    assert {s: val_again[s] for s in val_full} == val_full
    a, _ = load_checkpoint(full_run.last_checkpoint)
    b, _ = load_checkpoint(resumed.last_checkpoint)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_batchnorm_statistics_are_re_estimated_at_checkpoints_without_changing_training(
    tmp_path: Path,
):
    """Precise BN: the checkpoint's BatchNorm statistics are the average over the run's
    fixed BN batches; the weights and losses are those of a run that keeps the running
    averages (train mode never reads them, and the BN batches draw no training RNG)."""
    precise = train(tiny_config(tmp_path / "precise"), progress=False, stop_at=10)
    running = train(tiny_config(tmp_path / "running", bn_batches=0), progress=False, stop_at=10)
    assert history(precise)["train"] == history(running)["train"]
    a, info = load_checkpoint(precise.last_checkpoint)
    b, _ = load_checkpoint(running.last_checkpoint)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name
    layers = batchnorm_layers(a)
    assert layers
    stats = [(layer.running_mean.clone(), layer.running_var.clone()) for layer in layers]
    others = batchnorm_layers(b)
    same = [torch.equal(m, o.running_mean) for (m, _), o in zip(stats, others, strict=True)]
    assert not all(same)
    cfg = TrainConfig.model_validate(info["config"])
    assert recalibrate_batchnorm(a, bn_inputs(cfg, torch.device("cpu"))) == 3
    for (mean, var), layer in zip(stats, layers, strict=True):
        torch.testing.assert_close(layer.running_mean, mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(layer.running_var, var, rtol=1e-5, atol=1e-6)


def test_a_data_worker_process_feeds_the_same_stream(full_run: TrainSummary, tmp_path: Path):
    # One DataLoader worker generates in another process; the stream is the same pairs.
    run = train(tiny_config(tmp_path, num_workers=1), progress=False, stop_at=6)
    assert history(run)["train"] == history(full_run)["train"][:6]


def test_resume_refuses_another_model_or_a_finished_run(full_run: TrainSummary, tmp_path: Path):
    with pytest.raises(ConfigError, match="model"):
        train(tiny_config(tmp_path, depth=5), resume=full_run.last_checkpoint, progress=False)
    with pytest.raises(ConfigError, match=f"already at step {STEPS}"):
        train(tiny_config(tmp_path), resume=full_run.last_checkpoint, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_explicit_cuda_without_a_gpu_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(tiny_config(tmp_path, device="cuda"), progress=False)


def test_config_from_toml_with_overrides(tmp_path: Path):
    path = tmp_path / "train.toml"
    path.write_text(
        'preset = "dncnn20"\nsteps = 500\n[data]\npatch = 48\n[data.noise]\nlevel = [0.5, 2.0]\n',
        encoding="utf-8",
    )
    cfg = load_train_config(path, steps=7, noise_level=1.5, batch=None)
    assert (cfg.preset, cfg.steps, cfg.batch, cfg.data.patch) == ("dncnn20", 7, 16, 48)
    assert cfg.data.noise.level == 1.5 and cfg.architecture == "dncnn20"
    assert load_train_config(path).data.noise.level == (0.5, 2.0)
    custom = load_train_config(None, preset="lite", depth=4, width=8)
    assert custom.model_spec() == ModelSpec(4, 8) and custom.architecture == "dncnn"
    base = custom.model_dump(mode="json")
    assert load_train_config(None, base=base, steps=9).model_spec() == ModelSpec(4, 8)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"preset": "huge"},
            "expected a preset among ['dncnn20', 'lite', 'na-large', 'na-lite'",
        ),
        ({"steps": 0}, "steps: Input should be greater than or equal to 1 (got 0)"),
        ({"warmup": 1.5}, "warmup: Input should be less than 1 (got 1.5)"),
        ({"noise_level": -1.0}, "expected level > 0"),
        ({"device": "tpu"}, "device: Input should be 'auto', 'cpu' or 'cuda'"),
        (  # the phantom source's camera pasted into a synth config did nothing
            {
                "preset": "na-lite",
                "data_source": "synth",
                "synth": {"noise_map": True},
                "data": {"noise": {"camera": {"gain": 5.0, "offset": 0.0, "read_noise": 1.0}}},
            },
            "the phantom source's [data] settings do nothing there, got data.noise",
        ),
    ],
)
def test_config_errors_say_what_was_expected_and_given(override: dict[str, Any], expected: str):
    with pytest.raises(ConfigError) as info:
        load_train_config(None, **override)
    assert expected in str(info.value)


def test_config_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_train_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_train_config(bad)
    bad.write_text("stepz = 3", encoding="utf-8")
    with pytest.raises(ConfigError, match="stepz"):
        load_train_config(bad)


def test_lr_schedule_shapes():
    cfg = TrainConfig(steps=100, warmup=0.1, min_lr=0.05)
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 9) == pytest.approx(1.0)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 55) == pytest.approx(0.05 + 0.95 * 0.5)  # half-way down
    assert lr_factor(cfg, 100) == pytest.approx(0.05)
    flat = cfg.model_copy(update={"schedule": "constant", "warmup": 0.0})
    assert {lr_factor(flat, s) for s in (0, 50, 99)} == {1.0}
    assert not math.isnan(lr_factor(TrainConfig(steps=1), 0))


def test_a_second_stage_starts_from_the_first_stages_weights(
    full_run: TrainSummary, tmp_path: Path
):
    """``init``: the weights carry over; the step count, optimizer and schedule start
    afresh (a vanishing rate here, so the learned weights must still be there after)."""
    stage2 = tiny_config(tmp_path / "stage2", init=full_run.last_checkpoint, steps=10, lr=1e-12)
    run = train(stage2, progress=False)
    assert run.start_step == 0 and run.steps == 10
    first, _ = load_checkpoint(full_run.last_checkpoint)
    second, info = load_checkpoint(run.last_checkpoint)
    assert info["step"] == 10
    for (name, a), b in zip(first.named_parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
    assert run.final_val_psnr > run.noisy_psnr + 2.0  # trained weights, not the identity

    other = tiny_config(tmp_path / "other", init=full_run.last_checkpoint, preset="dncnn20")
    with pytest.raises(ConfigError, match=r"cannot start from .* the config asks for"):
        train(other, progress=False)
