"""``deepdenoise adapt``: fine-tune a model on the user's own recording, no clean data.

The loop: draw batches from the recording, step Adam on a self-supervised loss -- SURE
(:mod:`._sure`, the default: the model keeps seeing every pixel) or Noise2Void's
blind-spot loss (:mod:`._blindspot`, the masked pixels' squared error) -- with the
learning rate cosine-decayed over the run, save a checkpoint every ``checkpoint_every``
steps (weights, optimiser, step, seconds spent, the data RNG, the candidates), stop at
``steps`` or at the wall-clock budget, whichever comes first. Weights are kept at a
quarter, half and three quarters of the run and at its end; each, and the starting
weights, is judged on the recording by an unbiased estimate of its MSE from the noisy
frames (:mod:`._risk`), and the best is written -- the starting weights when nothing
beat them, so adapting never hands back a model it has no evidence for. The written ONNX
model is the starting graph with the chosen weights and an ``adaptation`` record in its
metadata, checked in the real engine against the torch module it came from.
"""

from __future__ import annotations

import logging
import math
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from stream import ConfigError, ModelError
from stream.camera import CameraEstimator, CameraModel
from stream.engine import Engine, ModelMetadata, default_model_path, model_file

from ..export import ParityError, check_parity, finish_model, parity_cases
from ._blindspot import blind_spot_batch
from ._onnx_weights import TrainableModel, load_trainable, with_trained_weights
from ._recording import Recording, level_rows, load_recording
from ._risk import better_than, recording_risk
from ._sure import sure_batch, sure_loss

log = logging.getLogger(__name__)

#: Fractions of the run (steps or budget, whichever is further) at which weights are kept
#: as candidates, besides the end.
SNAPSHOTS = (0.25, 0.5, 0.75)
#: Frames the camera estimate sees (as many as the service would in its first seconds).
CAMERA_FRAMES = 64
TOLERANCE = 1e-4
#: A candidate is handed back only where its estimated MSE is below the start's by this
#: many standard errors of the difference (one-sided, for each candidate; the error takes
#: the pixels as independent, which those of one frame are not quite: clustered by
#: frame, a reviewer found it 1.1 times as large, 2026-12-07): on a new
#: user's 128² recording, 8 frames judged, the errors were 0.03-0.07 ADU² and the
#: lowest mean picked weights 0.6-1.3 dB worse than the start (2026-12-07).
SHOWN_BY = 2.0
#: The least patch side trained on: frames must hold one.
LEAST_PATCH = 16


class AdaptConfig(BaseModel):
    """How long and how hard to adapt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(3000, ge=1, description="optimiser steps at most")
    minutes: float = Field(10.0, gt=0, description="wall-clock budget, resumed runs included")
    batch: int = Field(8, ge=1, le=512)
    patch: int = Field(64, ge=LEAST_PATCH, le=1024)
    mask_fraction: float = Field(0.015, gt=0, lt=0.5, description="blind-spot pixels per patch")
    lr: float = Field(
        3e-5,
        gt=0,
        description="Adam learning rate at the start, cosine-decayed to 0 (fine-tuning: small)",
    )
    loss: Literal["sure", "n2v"] = Field(
        "sure", description="SURE with the camera's variance, or Noise2Void's blind spot"
    )
    from_scratch: bool = Field(False, description="fresh weights (n2v: N2V from scratch)")
    max_frames: int | None = Field(None, ge=1, description="read only the first frames")
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch CPU threads")


@dataclass
class AdaptReport:
    out: Path
    start: Path
    steps: int
    seconds: float
    loss_first: float
    loss_last: float
    camera: CameraModel
    parity_error: float
    metadata: ModelMetadata
    history: list[tuple[int, float]] = field(default_factory=list)
    #: Estimates of the per-pixel MSE (ADU²) on the recording, from its noisy frames and
    #: the camera (:mod:`._risk`): of the starting model, and of every candidate by its
    #: step (0: the starting weights; ``chosen_step`` was written).
    risk_start: float = float("nan")
    risks: dict[int, float] = field(default_factory=dict)
    chosen_step: int = 0
    #: Each candidate's estimated MSE below the start's, and that difference's standard
    #: error (:func:`._risk.better_than`): it is chosen only ``SHOWN_BY`` of them below.
    margins: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def risk_adapted(self) -> float:
        """The written weights' estimate."""
        return self.risks[self.chosen_step]

    @property
    def helped(self) -> bool:
        """The written model is adapted weights estimated better than the start's."""
        return self.chosen_step > 0 and self.risk_adapted < self.risk_start


def estimate_camera(recording: Recording) -> CameraModel:
    """The camera as the service would estimate it from the recording's first frames;
    a ConfigError where the estimate says it cannot tell the gain (an infinite standard
    error: too few blocks with noise in them), rather than a made-up camera."""
    estimator = CameraEstimator()
    estimate = None
    for frame in recording.frames[recording.valid][:CAMERA_FRAMES]:
        estimate = estimator.update(frame)
    assert estimate is not None
    if not math.isfinite(estimate.gain_stderr):
        height, width = recording.frames.shape[1:]
        raise ConfigError(
            f"{recording.source}: the camera's noise cannot be estimated from this "
            f"recording (its gain is undetermined by {estimate.frames} frame(s) of "
            f"{height}x{width} px: too few unsaturated blocks with noise in them); give "
            "--gain, --offset and --read-noise (deepdenoise calibrate on dark frames)"
        )
    return estimate.camera


_NO_NOISE = (
    "{}: every valid frame holds one value (constant, or saturated): such frames "
    "carry no noise to learn from"
)


def check_learnable(recording: Recording) -> None:
    """Refuse a recording adapting cannot learn from, whatever the camera: frames
    smaller than the least patch, or frames without noise (one value each)."""
    _, height, width = recording.frames.shape
    if min(height, width) < LEAST_PATCH:
        raise ConfigError(
            f"{recording.source}: expected frames of at least {LEAST_PATCH}x{LEAST_PATCH} "
            f"px (the least patch adapt trains on), got {height}x{width}"
        )
    # the frames the camera estimate would see: a recording starts as it goes on
    valid = recording.frames[np.flatnonzero(recording.valid)[:CAMERA_FRAMES]]
    if all(frame.min() == frame.max() for frame in valid):
        raise ConfigError(_NO_NOISE.format(recording.source))


def check_output(out: Path, source: Path, start: Path) -> None:
    """Refuse, before any work, an output whose writing would destroy data or fail at
    the end: the recording (or a path inside it, or a folder holding it), the starting
    model, a folder, a name that is no .onnx file. An existing .onnx file is replaced
    (a rerun, or ``--resume``, writes its result there)."""
    target, recording, model = (Path(p).resolve() for p in (out, source, start))
    if recording.is_relative_to(target):  # the recording itself, or a folder holding it
        raise ConfigError(f"the output {out} is the recording or holds it: expected a new path")
    if target.is_relative_to(recording):
        raise ConfigError(f"the output {out} is inside the recording {source}: expected a new path")
    if target == model:
        raise ConfigError(f"the output {out} is the starting model: expected a new path")
    if target.is_dir():
        raise ConfigError(f"the output {out} is a folder: expected an .onnx file to write")
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"expected an output ending in .onnx, got {out}")
    if not target.parent.is_dir():
        raise ConfigError(f"the output's folder {out.parent} does not exist")


def _checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".adapt") / "last.pt"


def adapt(
    source: Path,
    out: Path,
    *,
    start: Path | None = None,
    config: AdaptConfig | None = None,
    camera: CameraModel | None = None,
    resume: bool = False,
    progress: Any = None,
) -> AdaptReport:
    """Adapt ``start`` (default: the CPU default model) to the recording at ``source``.

    ``camera``: the configured camera; None estimates it from the recording. ``resume``
    continues from the checkpoint next to ``out``. ``progress(step, steps, loss)`` is
    called after every step.
    """
    cfg = config or AdaptConfig()
    start = model_file(start) if start is not None else default_model_path("cpu")
    check_output(Path(out), Path(source), start)
    recording = load_recording(Path(source), cfg.max_frames)
    check_learnable(recording)
    recording, row_noise, rows_left = level_rows(recording)  # as the service levels them
    if row_noise:
        log.info("row noise of %.3g counts rms: the frames' rows are levelled", row_noise)
    elif rows_left:
        log.info("row noise of %.3g counts rms, not levelled (as the service would not): "
                 "counted by the risk estimate", math.sqrt(rows_left))  # fmt: skip
    trainable = load_trainable(start)
    with Engine(start, provider="cpu", warmup_shape=None) as engine:
        meta, start_id = engine.metadata, engine.model_id
    windows = recording.windows(meta.frames)
    if windows.size == 0:
        raise ConfigError(
            f"{source}: no {meta.frames} consecutive valid frames for a {meta.frames}-frame model"
        )
    camera = camera or estimate_camera(recording)
    # Frames smaller than the patch: the whole frame (on the model's alignment grid).
    patch = min(cfg.patch, *recording.frames.shape[1:]) // meta.alignment * meta.alignment
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.from_scratch:
        trainable.reinitialise(cfg.seed)
    optimiser = torch.optim.Adam(trainable.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step, spent, history = 0, 0.0, []
    snapshots = {} if cfg.from_scratch else {0: _weights(trainable)}
    ckpt = _checkpoint_path(Path(out))
    if resume and not ckpt.exists():
        raise ConfigError(
            f"--resume: expected a checkpoint to continue at {ckpt} (written every "
            f"{cfg.checkpoint_every} steps and at the end of a run), found none"
        )
    if resume:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["start_model"] != start_id or state["source"] != recording.source:
            raise ConfigError(f"{ckpt} belongs to another model or recording: not resuming")
        trainable.module.load_state_dict(state["module"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = pickle.loads(state["rng"])
        step, spent, history = state["step"], state["seconds"], state["history"]
        snapshots.update(state["snapshots"])
        log.info("resuming %s at step %d (%.0f s spent)", ckpt, step, spent)
    budget_s = cfg.minutes * 60.0
    t0 = time.perf_counter() - spent
    window: list[float] = []
    while step < cfg.steps and time.perf_counter() - t0 < budget_s:
        loss = _step_loss(trainable, recording, windows, meta, camera, rng, cfg, patch)
        value = loss.item()
        if not math.isfinite(value):  # before the step: the weights stay finite
            raise FloatingPointError(
                f"the {cfg.loss} loss became {value} at step {step + 1}; expected a finite "
                f"loss: lower --lr (got {cfg.lr:g}), or check the camera"
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        window.append(value)
        if step % 25 == 0 or step == 1:
            history.append((step, float(np.mean(window))))
            window.clear()
        if progress is not None:
            progress(step, cfg.steps, value)
        done = max(step / cfg.steps, (time.perf_counter() - t0) / budget_s)
        for group in optimiser.param_groups:  # cosine decay over the run: settle at the end
            group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
        if sum(f <= done for f in SNAPSHOTS) > sum(s > 0 for s in snapshots):
            snapshots[step] = _weights(trainable)
        if step % cfg.checkpoint_every == 0:
            _save(ckpt, trainable, optimiser, rng, step, time.perf_counter() - t0, history,
                  start_id, recording.source, snapshots)  # fmt: skip
    seconds = time.perf_counter() - t0
    snapshots[step] = _weights(trainable)
    if window:  # before the save: a resumed run reports the same last loss
        history.append((step, float(np.mean(window))))
    _save(ckpt, trainable, optimiser, rng, step, seconds, history, start_id, recording.source,
          snapshots)  # fmt: skip
    record = {
        "source": recording.source,
        "frames": int(recording.valid.sum()),
        "shape": list(recording.frames.shape[1:]),
        "start_model": start_id,
        "start_path": start.name,
        "from_scratch": cfg.from_scratch,
        "steps": step,
        "seconds": round(seconds, 1),
        "camera": camera.model_dump(),
        "rows_levelled": round(row_noise, 4) if row_noise else None,
        "row_noise_left": round(math.sqrt(rows_left), 4) if rows_left else None,
        "loss": cfg.loss,
        "mask_fraction": cfg.mask_fraction if cfg.loss == "n2v" else None,
        "batch": cfg.batch,
        "patch": patch,
    }
    # Judge every candidate without clean data against the start, on the same pixels;
    # write the best of those shown better, with the verdict (the start where none is).
    terms = _candidate_risks(trainable, meta, record, snapshots, recording, camera, rows_left)
    start_terms = (
        terms[0] if 0 in terms else recording_risk(start, recording, camera, row_variance=rows_left)
    )
    risks = {0: float(np.mean(start_terms))} | {k: float(np.mean(v)) for k, v in terms.items()}
    chosen, margins = choose(terms, start_terms)
    trainable.module.load_state_dict(
        snapshots[chosen] if chosen in snapshots else load_trainable(start).module.state_dict()
    )
    risk_start = risks[0]
    record |= {
        "risk_start": risk_start,
        "risk_adapted": risks[chosen],
        "risks": {str(k): v for k, v in risks.items()},
        "risk_margins": {str(k): [gain, se] for k, (gain, se) in margins.items()},
        "chosen_step": chosen,
    }
    new_meta = _write(trainable, meta, record, Path(out))
    error = _parity(trainable, new_meta, Path(out))
    if chosen == 0:
        log.warning(
            "no adapted weights are estimated better than %s on this recording by %g "
            "standard errors (MSE estimate %.4g ADU^2 vs at best %.4g): %s holds the "
            "starting weights",
            start.name, SHOWN_BY, risk_start, min(v for k, v in risks.items() if k), out,
        )  # fmt: skip
    return AdaptReport(
        Path(out), start, step, seconds, history[0][1] if history else float("nan"),
        history[-1][1] if history else float("nan"), camera, error, new_meta, history,
        risk_start, risks, chosen, margins,
    )  # fmt: skip


def _weights(model: TrainableModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def choose(
    terms: dict[int, np.ndarray], start: np.ndarray
) -> tuple[int, dict[int, tuple[float, float]]]:
    """The step whose weights to hand back (0: the start's), of the candidates' pixels'
    estimated errors ``terms`` by step, against the start's on the same pixels: the
    lowest mean of those below the start's by :data:`SHOWN_BY` standard errors; and each
    candidate's margin (:func:`._risk.better_than`)."""
    margins = {k: better_than(v, start) for k, v in terms.items() if k}
    shown = [k for k, (gain, se) in margins.items() if gain > max(SHOWN_BY * se, 0.0)]
    return (min(shown, key=lambda k: float(np.mean(terms[k]))) if shown else 0), margins


def _candidate_risks(
    model: TrainableModel,
    meta: ModelMetadata,
    record: dict[str, Any],
    snapshots: dict[int, dict[str, torch.Tensor]],
    recording: Recording,
    camera: CameraModel,
    row_variance: float,
) -> dict[int, np.ndarray]:
    """Each candidate's estimated squared error of each sampled pixel of the recording,
    in the real engine (the same frames and pixels for all, compared pair by pair)."""
    risks = {}
    with tempfile.TemporaryDirectory(prefix="deepdenoise-adapt-") as tmp:
        for step, weights in sorted(snapshots.items()):
            model.module.load_state_dict(weights)
            path = Path(tmp) / f"step{step}.onnx"
            _write(model, meta, record, path)
            risks[step] = recording_risk(path, recording, camera, row_variance=row_variance)
            log.info("candidate at step %d: estimated MSE %.4g ADU^2", step, np.mean(risks[step]))
    return risks


def _step_loss(
    model: TrainableModel,
    recording: Recording,
    windows: np.ndarray,
    meta: ModelMetadata,
    camera: CameraModel,
    rng: np.random.Generator,
    cfg: AdaptConfig,
    patch: int,
) -> torch.Tensor:
    """One batch's self-supervised loss, differentiable in the model's weights."""
    if cfg.loss == "sure":
        batch = sure_batch(recording, windows, meta, camera, rng, cfg.batch, patch)
        return sure_loss(model.module, batch)
    inputs, targets, mask = blind_spot_batch(
        recording, windows, meta, camera, rng, cfg.batch, patch, cfg.mask_fraction
    )
    out = model.module(torch.from_numpy(inputs))[:, 0]
    return ((out - torch.from_numpy(targets))[torch.from_numpy(mask)] ** 2).mean()


def _save(
    path: Path,
    model: TrainableModel,
    optimiser: torch.optim.Optimizer,
    rng: np.random.Generator,
    step: int,
    seconds: float,
    history: list[tuple[int, float]],
    start_id: str,
    source: str,
    snapshots: dict[int, dict[str, torch.Tensor]],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "module": model.module.state_dict(),
            "optimiser": optimiser.state_dict(),
            "rng": pickle.dumps(rng.bit_generator.state),
            "step": step,
            "seconds": seconds,
            "history": history,
            "start_model": start_id,
            "source": source,
            "snapshots": snapshots,
        },
        tmp,
    )
    tmp.replace(path)  # a crash mid-write keeps the previous checkpoint


def _write(
    model: TrainableModel, meta: ModelMetadata, record: dict[str, Any], out: Path
) -> ModelMetadata:
    fields = meta.model_dump(exclude={"content_hash", "from_model", "format_version"})
    fields["adaptation"] = record
    fields["fp16"] = False  # not checked in fp16 after adaptation
    if meta.spatial_start:  # both branches were adapted: the composed networks' hashes are
        # not theirs any more (their light bands, measured before, are kept)
        fields["spatial_start"] = {
            key: value
            for key, value in meta.spatial_start.items()
            if key not in ("content_hash", "temporal_content_hash")
        } | {"model": f"{meta.spatial_start.get('model')}, adapted"}
    return finish_model(with_trained_weights(model), fields, out)


def _parity(model: TrainableModel, meta: ModelMetadata, out: Path) -> float:
    """The written model in the real engine against the torch module, as export does."""
    model.module.eval()
    try:
        cases = parity_cases(model.module, meta, 2)
        rows = check_parity(out, cases)
    finally:
        model.module.train()
    worst = max(row.max_abs_model for row in rows)
    if worst > TOLERANCE:
        raise ParityError(
            f"adapted model {out} differs from torch by up to {worst:.3g} model units, "
            f"expected <= {TOLERANCE:.3g}"
        )
    if not np.isfinite(worst):
        raise ModelError(f"adapted model {out} gives non-finite output")
    return worst
