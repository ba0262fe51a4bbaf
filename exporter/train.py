"""Train a DnCNN on generated (noisy, clean) patch pairs, with exact resume.

A run is fully determined by its :class:`TrainConfig`: weights are initialised from
``seed``, the training stream and the validation set are seeded from it, and the stream
is cut into segments of ``ckpt_every`` steps, each drawn from its own seeded
:class:`PairDataset`. A checkpoint therefore needs only the step to find its place in the
data: resuming re-creates the current segment and skips the batches already consumed
(none when the checkpoint fell on a segment boundary, as periodic ones do). Together with
the model, optimizer and scheduler state this makes an interrupted run continue exactly
as the uninterrupted one would have (bit for bit on CPU with the same thread count).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.utils.data import DataLoader, IterableDataset

from exporter.data import PairDataset, normalization, validation_set
from exporter.evaluation import psnr
from exporter.model import DnCNN, ModelSpec, build_model
from exporter.onnx_init import model_from_onnx, with_zero_inputs
from exporter.precise_bn import recalibrate_batchnorm
from exporter.synth import SynthDataset, synth_validation_set
from exporter.train_config import TrainConfig, load_train_config
from stream import ConfigError, ModelError
from stream.engine import model_file

__all__ = [
    "TrainConfig",
    "TrainSummary",
    "load_checkpoint",
    "load_train_config",
    "newest_checkpoint",
    "read_checkpoint",
    "run_checkpoints",
    "train",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# seed-sequence tags: training stream, validation set, BatchNorm statistics batches
_STREAM_TAG, _VAL_TAG, _BN_TAG = 1, 2, 3
#: What a run writes into its folder; a fresh run clears the previous run's first.
CHECKPOINT_NAMES = ("last.pt", "best.pt")
RUN_FILES = (*CHECKPOINT_NAMES, "history.json", "history.csv", "summary.json")


@dataclass
class TrainSummary:
    """What a call to :func:`train` did (this invocation only for timings)."""

    out_dir: Path
    device: str
    start_step: int
    steps: int
    seconds: float
    steps_per_s: float
    final_loss: float
    final_val_psnr: float
    best_val_psnr: float
    best_step: int
    noisy_psnr: float
    last_checkpoint: Path
    best_checkpoint: Path
    history: Path
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass
class _History:
    train: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    noisy_psnr: float = math.nan
    best_val_psnr: float = -math.inf
    best_step: int = 0


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU; an explicit ``cuda`` without one raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no CUDA GPU")
    return torch.device(name)


def derive_seed(seed: int, *tags: int) -> int:
    """An independent 32-bit seed per (seed, tags): streams that never overlap."""
    return int(np.random.SeedSequence([seed, *tags]).generate_state(1)[0])


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Multiplier of ``cfg.lr`` for optimizer step ``step`` (0-based)."""
    warm = round(cfg.warmup * cfg.steps)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, cfg.steps - warm)
    progress = min(1.0, (step - warm) / span)
    return cfg.min_lr + (1.0 - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _loader(cfg: TrainConfig, seed: int, pin: bool) -> DataLoader[Any]:
    dataset: IterableDataset[tuple[torch.Tensor, torch.Tensor]] = (
        SynthDataset(cfg.synth, seed)
        if cfg.data_source == "synth"
        else PairDataset(cfg.data, seed=seed)
    )
    return DataLoader(dataset, batch_size=cfg.batch, num_workers=cfg.num_workers, pin_memory=pin)


def _batches(
    cfg: TrainConfig, segment: int, start_step: int, device: torch.device
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    """Training batches from ``start_step`` on; see the module docstring for segments."""
    k, skip = divmod(start_step, segment)
    pin = device.type == "cuda"
    while True:
        it = iter(_loader(cfg, derive_seed(cfg.seed, _STREAM_TAG, k), pin))
        for i in range(segment):
            noisy, clean = next(it)
            if i >= skip:
                yield noisy.to(device, non_blocking=pin), clean.to(device, non_blocking=pin)
        del it  # shuts the segment's workers down
        skip, k = 0, k + 1


def bn_inputs(cfg: TrainConfig, device: torch.device) -> Generator[torch.Tensor, None, None]:
    """The same ``cfg.bn_batches`` noisy batches every time (their own seeded stream),
    generated afresh rather than held: a GPU recipe's batches would take GBs."""
    with torch.random.fork_rng(devices=[]):  # the loader draws a seed: keep resume exact
        it = iter(_loader(cfg, derive_seed(cfg.seed, _BN_TAG), pin=False))
        for _ in range(cfg.bn_batches):
            noisy, _clean = next(it)
            yield noisy.to(device)
        del it


@torch.inference_mode()
def _validate(
    model: DnCNN, noisy: torch.Tensor, clean: np.ndarray, batch: int, device: torch.device
) -> tuple[float, float]:
    """(PSNR in dB, MSE in model units) of the model on the fixed validation set."""
    model.eval()
    out = np.empty(clean.shape, dtype=np.float32)
    for i in range(0, len(noisy), batch):
        out[i : i + batch] = model(noisy[i : i + batch].to(device)).float().cpu().numpy()
    model.train()
    mse = float(np.mean((out.astype(np.float64) - clean) ** 2))
    return mean_psnr(out, clean), mse


def mean_psnr(out: np.ndarray, clean: np.ndarray) -> float:
    """Mean over patches of each patch's PSNR (its own data range): every photon budget
    in a mixed validation set counts alike, unlike one PSNR over all patches."""
    return float(np.mean([psnr(o, c) for o, c in zip(out[:, 0], clean[:, 0], strict=True)]))


def _save(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def run_checkpoints(out_dir: Path) -> list[Path]:
    """The checkpoints a run left in ``out_dir`` (none when it holds no run)."""
    return [path for name in CHECKPOINT_NAMES if (path := Path(out_dir) / name).is_file()]


def newest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint written last in ``out_dir``: ``best.pt`` is newer than ``last.pt``
    when a validation improved after the last periodic checkpoint (on a tie, last.pt)."""
    found = run_checkpoints(out_dir)
    if not found:
        return None
    return max(found, key=lambda path: (path.stat().st_mtime_ns, path.name == "last.pt"))


def _prepare_out_dir(out_dir: Path, fresh: bool) -> None:
    """Create the run folder; a fresh run first removes a previous run's files, so the
    folder never mixes two runs (the CLI refuses this without ``--force``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)


def _write_history(out_dir: Path, hist: _History) -> Path:
    """history.json (everything) and history.csv (one row per logged or validated step)."""
    path = out_dir / "history.json"
    path.write_text(json.dumps(asdict(hist), indent=1, allow_nan=True), encoding="utf-8")
    rows: dict[int, dict[str, float]] = {}
    for rec in (*hist.train, *hist.val):
        rows.setdefault(int(rec["step"]), {}).update(rec)
    columns = ["step", "lr", "loss", "input_loss", "val_loss", "val_psnr"]
    with (out_dir / "history.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for step in sorted(rows):
            writer.writerow(rows[step])
    return path


def _init_file(path: Path) -> Path:
    """``init`` as a file: a checkpoint, an exported ``.onnx``, or, given a shipped model's
    name (``init = "na-lite"``), that model's file wherever the package is installed."""
    try:
        return model_file(path)
    except ModelError as exc:
        raise ConfigError(
            f"init: expected a checkpoint (.pt), an ONNX model or a shipped model's name, "
            f"got {str(path)!r}, which is none of these ({exc})"
        ) from exc


def _with_zero_mean_columns(
    state: dict[str, torch.Tensor], model: torch.nn.Module, columns: int
) -> dict[str, torch.Tensor]:
    """A checkpoint's weights for ``model``, which adds the running-mean channel: the
    first convolution gets zero input columns for it, as a start from an ONNX file
    does, so step 0 computes what the checkpoint does; BatchNorm keeps its statistics."""
    name = next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))
    weight = state[f"{name}.weight"].numpy()
    return {**state, f"{name}.weight": torch.from_numpy(with_zero_inputs(weight, columns))}


def _check_same_model(
    cfg: TrainConfig, ckpt: dict[str, Any], path: Path, action: str
) -> TrainConfig:
    """The checkpoint's config, once its model is known to be the one ``cfg`` builds."""
    old = TrainConfig.model_validate(ckpt["config"])
    if old.model_spec() != cfg.model_spec():
        raise ConfigError(
            f"cannot {action} {path}: it holds a {old.model_spec()} model, the config asks "
            f"for {cfg.model_spec()}"
        )
    return old


def _check_resume(cfg: TrainConfig, ckpt: dict[str, Any], path: Path) -> None:
    old = _check_same_model(cfg, ckpt, path, "resume")
    if ckpt["step"] >= cfg.steps:
        raise ConfigError(
            f"cannot resume {path}: it is already at step {ckpt['step']}, expected steps > "
            f"{ckpt['step']} (got steps={cfg.steps}); pass a larger --steps to continue"
        )
    # Settings that change neither the data stream nor the optimisation path.
    # (bn_batches: train-mode BatchNorm never reads the statistics it re-estimates)
    harmless = {
        "out_dir", "device", "threads", "val_every", "ckpt_every", "log_every", "bn_batches"
    }  # fmt: skip
    changed = [
        f"{name} {getattr(old, name)!r} -> {getattr(cfg, name)!r}"
        for name in TrainConfig.model_fields
        if name not in harmless and getattr(old, name) != getattr(cfg, name)
    ]
    if changed:
        log.warning(
            "resuming %s with changed settings (%s): the run continues, but not as the "
            "uninterrupted run would have",
            path,
            "; ".join(changed),
        )


def train(
    cfg: TrainConfig,
    resume: Path | None = None,
    progress: bool = True,
    *,
    stop_at: int | None = None,
) -> TrainSummary:
    """Train (or continue training) a DnCNN; checkpoints and history go to ``cfg.out_dir``.

    Parameters
    ----------
    cfg
        The run. On resume, the checkpoint's model must match; other changed settings
        are logged as a warning. ``cfg.out_dir`` is created only once the run is set
        up; a fresh run (no ``resume``) replaces the checkpoints and history of any
        run already there.
    resume
        A ``last.pt`` or ``best.pt`` to continue from (into ``cfg.out_dir``).
    progress
        Show a progress bar (rich, on stderr).
    stop_at
        Stop after this global step (checkpointing it) as an interrupted job would;
        a later call with ``resume`` continues to ``cfg.steps``.

    Returns
    -------
    TrainSummary
        Timings of this invocation, best and final validation PSNR and where things went.
    """
    device = resolve_device(cfg.device)
    old_threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        run = _Run(cfg, device, Path(resume) if resume is not None else None)
        return run.loop(stop_at, progress)
    finally:
        torch.set_num_threads(old_threads)


class _Run:
    """One invocation of :func:`train`: model, optimizer, data and bookkeeping."""

    def __init__(self, cfg: TrainConfig, device: torch.device, resume: Path | None) -> None:
        self.cfg, self.device = cfg, device
        self.out_dir = Path(cfg.out_dir)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch size: pick the fastest conv
        torch.manual_seed(cfg.seed)
        self.spec = cfg.model_spec()
        self.model = build_model(self.spec).to(device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(cfg, s))
        self.hist, self.step, self.segment = _History(), 0, cfg.ckpt_every
        #: (loss, input_loss) per step since the last history record
        self.window: list[tuple[float, float]] = []
        if resume is not None:
            self._restore(resume)
        elif cfg.init is not None:
            self._start_from(Path(cfg.init))
        val_seed = derive_seed(cfg.seed, _VAL_TAG)
        if cfg.data_source == "synth":
            self.normalization: dict[str, Any] = {"normalization": "adaptive"}
            self.val_noisy, val_clean = synth_validation_set(cfg.synth, cfg.val_size, val_seed)
        else:
            offset, scale = normalization(cfg.data)
            self.normalization = {"input_offset": offset, "input_scale": scale}
            self.val_noisy, val_clean = validation_set(cfg.data, cfg.val_size, val_seed)
        self.val_clean = val_clean.numpy()
        current = self.val_noisy.numpy()[:, self.spec.frames - 1]
        self.hist.noisy_psnr = mean_psnr(current[:, None], self.val_clean)
        # Only now: a config error above must not leave an empty (or emptied) folder.
        _prepare_out_dir(self.out_dir, fresh=resume is None)

    def _restore(self, path: Path) -> None:
        # CPU first: RNG states must stay CPU tensors; the loaders below move the rest.
        ckpt = read_checkpoint(path)
        _check_resume(self.cfg, ckpt, path)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
        self.hist = _History(**ckpt["history"])
        self.step, self.segment = int(ckpt["step"]), int(ckpt["data_segment"])
        self.window = [(float(a), float(b)) for a, b in ckpt.get("loss_window", [])]
        log.info("resuming %s at step %d of %d", path, self.step, self.cfg.steps)

    def _start_from(self, path: Path) -> None:
        path = _init_file(path)
        if path.suffix == ".onnx":  # a shipped model: its BatchNorm rebuilt from data
            if not self.cfg.bn_batches:
                raise ConfigError(
                    f"cannot start from {path}: rebuilding its BatchNorm layers needs "
                    "calibration batches, expected bn_batches > 0, got 0"
                )
            cpu = torch.device("cpu")
            source = model_from_onnx(path, self.spec, bn_inputs(self.cfg, cpu))
            self.model.load_state_dict(source.state_dict())
            log.info("starting from the weights of %s", path)
            return
        ckpt = read_checkpoint(path)
        state = ckpt["model"]
        old = TrainConfig.model_validate(ckpt["config"]).model_spec()
        if old.running_mean == 0 < self.spec.running_mean and self.spec == replace(
            old, running_mean=self.spec.running_mean
        ):  # a stage that adds the running mean (na-temporal -> na-temporal-mean)
            state = _with_zero_mean_columns(state, self.model, self.spec.unshuffle**2)
        else:
            _check_same_model(self.cfg, ckpt, path, "start from")
        self.model.load_state_dict(state)
        log.info("starting from the weights of %s (its step %d)", path, ckpt["step"])

    def payload(self) -> dict[str, Any]:
        """The checkpoint: everything needed to export, or to continue exactly."""
        cuda = self.device.type == "cuda"
        return {
            "format": CHECKPOINT_FORMAT,
            "spec": asdict(self.spec),
            "architecture": self.cfg.architecture,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "data_segment": self.segment,
            "config": self.cfg.model_dump(mode="json"),
            "normalization": self.normalization,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state() if cuda else None,
            },
            "history": asdict(self.hist),
            "loss_window": [list(pair) for pair in self.window],
        }

    def _train_mode(self) -> None:
        self.model.train()
        if self.cfg.freeze_bn:
            for module in self.model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()

    def train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
        """One optimizer step; returns the loss and the noisy input's own loss (the MSE
        of doing nothing), whose ratio shows learning through the batch-to-batch spread
        of noise levels and brightness."""
        with torch.no_grad():
            current = noisy[:, self.spec.frames - 1 : self.spec.frames]
            per_patch_input = ((current - clean) ** 2).mean(dim=(1, 2, 3))
            input_loss = per_patch_input.mean()
        self._train_mode()
        self.opt.zero_grad(set_to_none=True)
        per_patch = ((self.model(noisy) - clean) ** 2).mean(dim=(1, 2, 3))
        ratio = per_patch / (per_patch_input + 1e-12)  # the input's error as the yardstick
        if self.cfg.loss == "relative":
            loss, input_loss = ratio.mean(), torch.ones(())
        elif self.cfg.loss == "log":  # mean dB gain (x 10 / ln 10): scale-free at every budget
            loss, input_loss = torch.log(ratio + 1e-6).mean(), torch.zeros(())
        else:
            loss = per_patch.mean()
        loss.backward()
        if self.cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        value = float(loss.detach())  # syncs the device: honest step timings
        if not math.isfinite(value):
            raise FloatingPointError(
                f"training loss became {value} at step {self.step}; expected a finite loss: "
                f"lower lr (got {self.cfg.lr}) or set grad_clip (got {self.cfg.grad_clip})"
            )
        return value, float(input_loss)

    def loop(self, stop_at: int | None, progress: bool) -> TrainSummary:
        cfg, hist = self.cfg, self.hist
        start, end = self.step, min(cfg.steps, cfg.steps if stop_at is None else stop_at)
        last_path, best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not progress,
        )
        task = bar.add_task("train", total=cfg.steps, completed=start, info="")
        val_psnr, loss = math.nan, math.nan
        t0, train_seconds = time.perf_counter(), 0.0
        batches = _batches(cfg, self.segment, start, self.device)
        recalibrate = cfg.bn_batches > 0 and not cfg.freeze_bn  # frozen: stats kept
        try:
            with bar:
                while self.step < end:
                    t_step = time.perf_counter()
                    loss, input_loss = self.train_step(*next(batches))
                    train_seconds += time.perf_counter() - t_step
                    self.window.append((loss, input_loss))
                    step = self.step
                    if step % cfg.log_every == 0 or step == cfg.steps:
                        lr = self.opt.param_groups[0]["lr"]
                        mean, inp = (float(v) for v in np.mean(self.window, axis=0))
                        hist.train.append({"step": step, "lr": lr, "loss": mean, "input_loss": inp})
                        self.window.clear()
                    validate = step % cfg.val_every == 0 or step == end
                    if recalibrate and (validate or step % cfg.ckpt_every == 0):
                        recalibrate_batchnorm(self.model, bn_inputs(cfg, self.device))
                    if validate:
                        val_psnr, val_loss = _validate(
                            self.model, self.val_noisy, self.val_clean, cfg.batch, self.device
                        )
                        hist.val.append({"step": step, "val_loss": val_loss, "val_psnr": val_psnr})
                        if val_psnr > hist.best_val_psnr:
                            hist.best_val_psnr, hist.best_step = val_psnr, step
                            _save(best_path, self.payload())
                    if step % cfg.ckpt_every == 0 or step == end:
                        _save(last_path, self.payload())
                    info = f"loss {loss:.3g}  val {val_psnr:.2f} dB (noisy {hist.noisy_psnr:.2f})"
                    bar.update(task, completed=step, info=info)
        finally:
            batches.close()
        seconds = time.perf_counter() - t0
        done = self.step - start
        summary = TrainSummary(
            out_dir=self.out_dir,
            device=str(self.device),
            start_step=start,
            steps=self.step,
            seconds=seconds,
            steps_per_s=done / train_seconds if train_seconds > 0 else math.nan,
            final_loss=loss,
            final_val_psnr=val_psnr,
            best_val_psnr=hist.best_val_psnr,
            best_step=hist.best_step,
            noisy_psnr=hist.noisy_psnr,
            last_checkpoint=last_path,
            best_checkpoint=best_path,
            history=_write_history(self.out_dir, hist),
            stopped_early=self.step < cfg.steps,
        )
        text = json.dumps(summary.as_dict(), indent=1)
        (self.out_dir / "summary.json").write_text(text, encoding="utf-8")
        log.info(
            "trained %d steps in %.1f s (%.2f steps/s on %s); val PSNR %.2f dB, best %.2f dB "
            "at step %d, noisy input %.2f dB",
            done,
            seconds,
            summary.steps_per_s,
            self.device,
            val_psnr,
            hist.best_val_psnr,
            hist.best_step,
            hist.noisy_psnr,
        )
        return summary


def load_checkpoint(path: Path) -> tuple[DnCNN, dict[str, Any]]:
    """A checkpoint's model on CPU in eval mode, and the checkpoint's other contents.

    Raises
    ------
    ModelError
        The file is not a deepdenoise training checkpoint of a known format.
    """
    ckpt = read_checkpoint(path)
    model = build_model(ModelSpec(**ckpt["spec"]))
    model.load_state_dict(ckpt.pop("model"))
    model.eval()
    return model, ckpt


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's raw contents (CPU tensors), checked to be ours and of a known format.

    Raises
    ------
    ModelError
        The file cannot be read or is not a deepdenoise training checkpoint.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from exc
    except (RuntimeError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        # not torch's text: it advises weights_only=False, which is not the user's fix
        raise ModelError(
            f"cannot read checkpoint {path}: expected a deepdenoise training checkpoint "
            "(last.pt or best.pt of a run folder), got a file torch cannot load as one"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(f"{path}: expected checkpoint format {CHECKPOINT_FORMAT}, got {got!r}")
    return ckpt
