"""Training configuration: one pydantic model, loadable from TOML, overridable from the CLI.

Kept apart from :mod:`exporter.train` so the checkpoint-free parts (validation, merging of
TOML + overrides) read on their own and the training loop stays short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from exporter.data import DataConfig
from exporter.model import PRESETS, ModelSpec
from exporter.synth import SynthConfig
from stream import load_settings

Device = Literal["auto", "cpu", "cuda"]

#: CLI-style shortcuts for nested fields (``patch=32`` sets ``data.patch``).
SHORTCUTS: dict[str, tuple[str, ...]] = {
    "patch": ("data", "patch"),
    "noise_level": ("data", "noise", "level"),
    "noise_source": ("data", "noise", "source"),
    "noise_stack": ("data", "noise", "recorded"),
}


class TrainConfig(BaseModel):
    """Everything one training run needs; stored in every checkpoint.

    The learning-rate schedule is a linear warm-up over ``warmup * steps`` steps followed
    by a cosine decay to ``min_lr * lr`` at ``steps`` (or a constant rate after warm-up).
    Because the schedule depends on ``steps``, extending ``steps`` on resume changes the
    rates from then on: it continues, but it is no longer the run a longer budget would
    have been.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("lite", description="model preset, a key of exporter.model.PRESETS")
    depth: int | None = Field(None, ge=2, le=128, description="override the preset's depth")
    width: int | None = Field(None, ge=1, le=1024, description="override the preset's width")
    frames: int | None = Field(None, ge=1, le=16, description="override the preset's frames")
    running_mean: float | None = Field(
        None, ge=0, lt=1, description="override the preset's running-mean decay (0: none)"
    )
    data_source: Literal["phantom", "synth"] = Field(
        "phantom",
        description="phantom: the calcium phantom at a fixed normalisation (data); synth: "
        "generated scenes, random cameras, adaptive normalisation (synth; na-* presets)",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    steps: int = Field(20_000, ge=1, le=100_000_000, description="optimizer steps in total")
    batch: int = Field(16, ge=1, le=4096, description="patches per step")
    lr: float = Field(1e-3, gt=0, le=1, description="peak AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="AdamW decoupled weight decay")
    warmup: float = Field(0.02, ge=0, lt=1, description="linear warm-up, fraction of steps")
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr: float = Field(0.01, ge=0, le=1, description="final rate as a fraction of lr")
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; None: off")
    loss: Literal["mse", "relative", "log"] = Field(
        "mse",
        description="mse: plain MSE; relative: each patch's MSE over its input's; log: the "
        "mean log of that ratio, i.e. the mean PSNR gain in dB: a halving of the error "
        "counts alike at 1 and at 1000 photons (a mix of photon budgets)",
    )
    val_every: int = Field(500, ge=1, description="validate every N steps (and at the end)")
    val_size: int = Field(64, ge=1, le=100_000, description="validation patches")
    ckpt_every: int = Field(1000, ge=1, description="write last.pt every N steps (and at end)")
    bn_batches: int = Field(
        64,
        ge=0,
        le=100_000,
        description="before each validation and checkpoint, re-estimate the BatchNorm "
        "statistics over this many seeded training batches (exporter.precise_bn); 0: keep "
        "the running averages",
    )
    freeze_bn: bool = Field(
        False,
        description="keep BatchNorm in eval mode while training: its statistics stay the "
        "start's (no re-estimate), its scale and shift still learn. For fine-tuning a "
        "shipped model: training then starts from exactly the function the file computes, "
        "not from its batch-statistics version (small mixed batches normalise differently)",
    )
    log_every: int = Field(10, ge=1, description="training-loss history resolution, steps")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="seeds weights, data and validation")
    device: Device = "auto"
    out_dir: Path = Path("runs/dncnn")
    init: Path | None = Field(
        None,
        description="start from this checkpoint's weights (same model), or a shipped .onnx "
        "model's (exporter.onnx_init); optimizer, schedule and data start afresh: a second "
        "training stage, e.g. on larger patches",
    )
    threads: int | None = Field(None, ge=1, le=1024, description="torch CPU threads")
    num_workers: int = Field(0, ge=0, le=256, description="DataLoader worker processes")

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"expected a preset among {sorted(PRESETS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _inputs_match(self) -> TrainConfig:
        spec = self.model_spec()
        if self.data_source == "synth":
            default = DataConfig()
            unused = [
                k for k in DataConfig.model_fields if getattr(self.data, k) != getattr(default, k)
            ]
            if unused:  # a pasted [data.noise.camera] would otherwise be silently ignored
                raise ValueError(
                    f"data_source = 'synth' takes its scenes and camera from [synth] (gain, "
                    f"recorded, patch, photons, ...); the phantom source's [data] settings "
                    f"do nothing there, got data.{', data.'.join(unused)}"
                )
            model = (spec.frames, spec.noise_map, spec.running_mean)
            data = (self.synth.frames, self.synth.noise_map, self.synth.running_mean)
            if model != data:
                raise ValueError(
                    f"the model takes {spec.frames} frame(s), noise map {spec.noise_map}, "
                    f"running mean {spec.running_mean}; expected synth.frames, "
                    f"synth.noise_map and synth.running_mean to match, got {data}"
                )
        elif spec.in_channels != 1:
            raise ValueError(
                f"preset {self.preset!r} takes {spec.in_channels} input channels; expected "
                "data_source = 'synth' (`--data-source synth`; the phantom source makes "
                "one-channel pairs)"
            )
        return self

    def model_spec(self) -> ModelSpec:
        """The preset with ``depth`` / ``width`` overrides applied."""
        base = PRESETS[self.preset]
        return replace(
            base,
            depth=base.depth if self.depth is None else self.depth,
            width=base.width if self.width is None else self.width,
            frames=base.frames if self.frames is None else self.frames,
            running_mean=base.running_mean if self.running_mean is None else self.running_mean,
        )

    @property
    def architecture(self) -> str:
        """``dncnn-<preset>`` for a stock preset, plain ``dncnn`` for a customised one."""
        if self.model_spec() != PRESETS[self.preset]:
            return "dncnn"
        return self.preset if self.preset.startswith("dncnn") else f"dncnn-{self.preset}"


#: Settings holding paths: relative ones in a config file are relative to its folder.
PATH_FIELDS = ("out_dir", "init", "data.noise.recorded", "synth.recorded")


def load_train_config(
    path: Path | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    options: Mapping[str, str] | None = None,
    **overrides: Any,
) -> TrainConfig:
    """Build a TrainConfig from ``base`` (e.g. a checkpoint's config), a TOML file and overrides.

    Later sources win. Overrides whose value is None are ignored (unset CLI options);
    ``patch``, ``noise_level``, ``noise_source`` and ``noise_stack`` address the nested
    data fields, and any ``a__b`` key addresses field ``b`` of table ``a``. Relative
    paths in the file are relative to its folder. ``options``: the command-line option
    each override came from (``out_dir`` -> ``--out``), named in its errors.

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, or a value is invalid (the message lists each
        field with what was expected and what was given).
    """
    return load_settings(
        TrainConfig,
        path,
        base=base,
        overrides=overrides,
        shortcuts=SHORTCUTS,
        path_fields=PATH_FIELDS,
        options=options,
    )
