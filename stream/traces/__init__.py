"""Closed-loop traces: ROI means of each frame, causal ΔF/F, trigger rules.

- :func:`load_rois` / :func:`rois_from_labels` / :func:`rois_from_suite2p` build a
  :class:`RoiSet` (a label image, or suite2p's ``stat.npy``);
- :class:`SeriesTraces` turns one series' raw and denoised frames into a trace row per
  ROI (``raw``, ``denoised``, ``dff`` and, with a trace model, ``dff_denoised``) and
  checks the :class:`TriggerRule` s;
- :class:`TraceDenoiser` runs the optional causal 1-D ONNX trace model.

numpy and onnxruntime only: computed in the inference thread right after each frame.
"""

from ._baseline import BaselineConfig, RunningBaseline, delta_f_over_f
from ._config import TraceConfig
from ._denoiser import (
    MAD_DIFF_TO_SIGMA,
    SHIPPED_TRACE_MODEL,
    TraceDenoiser,
    TraceHistory,
    noise_scale,
)
from ._rois import BoundRois, RoiSet, load_rois, rois_from_labels, rois_from_suite2p
from ._series import COLUMNS, COLUMNS_DENOISED, SeriesTraces, trace_columns
from ._triggers import Fired, TriggerBank, TriggerRule

__all__ = [
    "COLUMNS",
    "COLUMNS_DENOISED",
    "MAD_DIFF_TO_SIGMA",
    "SHIPPED_TRACE_MODEL",
    "BaselineConfig",
    "BoundRois",
    "Fired",
    "RoiSet",
    "RunningBaseline",
    "SeriesTraces",
    "TraceConfig",
    "TraceDenoiser",
    "TraceHistory",
    "TriggerBank",
    "TriggerRule",
    "delta_f_over_f",
    "load_rois",
    "noise_scale",
    "rois_from_labels",
    "rois_from_suite2p",
    "trace_columns",
]
