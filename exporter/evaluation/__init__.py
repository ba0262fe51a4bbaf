"""Evaluation: denoisers against tuned classical baselines on movies with known truth.

``evaluate`` runs models through the real streaming engine and the baselines, scores
them (``_metrics``), and writes ``report.md``, figures and ``metrics.json``
(``_report``); the result types live in the leaf ``_results``. ``psnr`` and ``mse``
need only numpy (the demo uses them); everything else loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._metrics import (
    MovieScorer,
    OnsetDetector,
    data_range_of,
    extract_traces,
    mse,
    onset_errors,
    pearson,
    psnr,
    ssim,
    trace_correlation,
)
from ._results import BudgetResult, EvaluationResult, MethodScore, ModelInfo

if TYPE_CHECKING:
    from ._cameras import EvalCamera, parse_cameras, recamera
    from ._evaluate import evaluate, metrics_dict
    from ._fields import make_fields_movie
    from ._independent import EvalMovie, make_movie
    from ._independent_traces import TraceSet, make_traces
    from ._textures import make_texture_movie

_LAZY = {
    "EvalCamera": "._cameras",
    "parse_cameras": "._cameras",
    "recamera": "._cameras",
    "evaluate": "._evaluate",
    "metrics_dict": "._evaluate",
    "EvalMovie": "._independent",
    "make_movie": "._independent",
    "TraceSet": "._independent_traces",
    "make_traces": "._independent_traces",
    "make_fields_movie": "._fields",
    "make_texture_movie": "._textures",
}

__all__ = [
    "BudgetResult",
    "EvalCamera",
    "EvalMovie",
    "EvaluationResult",
    "MethodScore",
    "ModelInfo",
    "MovieScorer",
    "OnsetDetector",
    "TraceSet",
    "data_range_of",
    "evaluate",
    "extract_traces",
    "make_fields_movie",
    "make_movie",
    "make_texture_movie",
    "make_traces",
    "metrics_dict",
    "mse",
    "onset_errors",
    "parse_cameras",
    "pearson",
    "psnr",
    "recamera",
    "ssim",
    "trace_correlation",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'exporter.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
