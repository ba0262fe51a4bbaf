"""What an evaluation produces: scores per method, photon budget and generator.

A leaf module: the evaluation fills these, the report reads them, neither imports the
other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# What a result's photon budget counts, by generator: the resting signal of the cells,
# or the peak (99.9th percentile) of a still scene.
BUDGET_SIGNAL = {
    "independent": "resting",
    "phantom": "resting",
    "textures": "peak",
    "fields": "resting",
}


def with_camera(generator: str, camera: str) -> str:
    """The name of ``generator``'s movies read out by another camera (``_cameras``)."""
    return f"{generator} ({camera})"


def budget_signal(generator: str) -> str:
    """What ``generator``'s photon budget counts, for a name from :func:`with_camera` too."""
    return BUDGET_SIGNAL.get(generator.split(" (", 1)[0], "resting")


@dataclass(frozen=True)
class MethodScore:
    """One method on one test movie. NaN where a metric does not apply."""

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
    frames: int
    noise_map: bool
    normalization: str
    has_metadata: bool
    #: Self-ensemble passes per frame (:meth:`stream.engine.Engine.denoise`).
    passes: int = 1
    #: The blend with smoothing (``stream.engine._blend``): "spatial" as served by
    #: default, "spatiotemporal", or "off".
    blend: str = "spatial"


@dataclass
class BudgetResult:
    """Every method on one test movie: one generator at one photon budget."""

    generator: str
    photons: float
    read_noise: float
    scores: dict[str, MethodScore]
    cameras: dict[str, dict[str, Any]]  # model -> the live camera estimate at the end
    example: dict[str, np.ndarray]  # method -> one frame; "clean" is the truth
    example_frame: int

    def gain_over(self, method: str, baseline: str) -> float:
        return self.scores[method].psnr - self.scores[baseline].psnr


@dataclass
class EvaluationResult:
    """The outcome of :func:`evaluate`; ``report``/``metrics`` are the written files."""

    out_dir: Path
    settings: dict[str, Any]
    models: list[ModelInfo]
    results: list[BudgetResult]
    report: Path | None = None
    metrics: Path | None = None
    figures: list[Path] = field(default_factory=list)

    def result(self, generator: str, photons: float) -> BudgetResult:
        for r in self.results:
            if r.generator == generator and np.isclose(r.photons, photons):
                return r
        raise KeyError(f"no result for {generator} at {photons} photons")

    @property
    def generators(self) -> list[str]:
        return list(dict.fromkeys(r.generator for r in self.results))

    @property
    def methods(self) -> list[str]:
        return list(self.results[0].scores) if self.results else []
