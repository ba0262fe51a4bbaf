"""What an evaluation produces: scores per method and level, and the run's outcome.

A leaf module: the evaluation fills these, the report reads them, neither imports the
other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._baselines import BaselineParams


@dataclass(frozen=True)
class MethodScore:
    """One method at one noise level. NaN where a metric does not apply."""

    method: str
    kind: str  # "input", "baseline" or "model"
    psnr: float
    ssim: float
    trace_r: float
    onset_mae_ms: float
    onset_bias_ms: float  # mean signed error: positive = onsets detected late
    onset_detection_rate: float
    onsets_detected: int
    onsets_reference: int
    runtime_ms_per_frame: float
    frames_scored: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """An evaluated model as the engine sees it (metadata from the ONNX file)."""

    name: str
    path: str
    architecture: str
    model_id: str
    receptive_field: int
    training_noise: dict[str, Any]
    input_offset: float
    input_scale: float
    has_metadata: bool


@dataclass
class LevelResult:
    """Everything measured at one noise level, plus what the figures need."""

    level: float
    noise_std_adu: float  # rms of (noisy - clean) on the test movie
    data_range: float
    baselines: BaselineParams
    bm3d: dict[str, Any]
    scores: dict[str, MethodScore]
    fps: float
    example_frame: int
    example: dict[str, np.ndarray]  # method -> frame; "clean" is the ground truth
    zoom: tuple[slice, slice]
    trace_cell: int | None
    traces: dict[str, np.ndarray]  # method -> (n_cells, T); "clean" is the reference
    spikes: list[np.ndarray]


@dataclass
class EvaluationResult:
    """The outcome of :func:`evaluate`; ``report``/``metrics`` are the written files."""

    out_dir: Path
    settings: dict[str, Any]
    models: list[ModelInfo]
    levels: list[LevelResult]
    report: Path | None = None
    metrics: Path | None = None
    figures: list[Path] = field(default_factory=list)

    def score(self, level: float, method: str) -> MethodScore:
        for lv in self.levels:
            if math.isclose(lv.level, level):
                return lv.scores[method]
        raise KeyError(f"no results at level {level}; have {[lv.level for lv in self.levels]}")

    @property
    def methods(self) -> list[str]:
        return list(self.levels[0].scores) if self.levels else []
