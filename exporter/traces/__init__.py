"""The causal 1-D trace denoiser: generated training traces, candidate models, training,
ONNX export and the evaluation that chooses among them (``deepdenoise train-traces``)."""

from ._evaluate import TraceEvaluation, evaluate_traces, fit_wiener, report
from ._generate import TraceBatch, trace_batch
from ._models import ARCHITECTURES, build
from ._train import check_output_folder, export_trace_model, train_trace_model

__all__ = [
    "ARCHITECTURES",
    "TraceBatch",
    "TraceEvaluation",
    "build",
    "check_output_folder",
    "evaluate_traces",
    "export_trace_model",
    "fit_wiener",
    "report",
    "trace_batch",
    "train_trace_model",
]
