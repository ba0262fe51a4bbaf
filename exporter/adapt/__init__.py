"""Self-supervised adaptation: fine-tune a model on the user's own recording.

``adapt`` loads any deepdenoise ONNX model as a trainable torch module, trains it
blind-spot style (Noise2Void) on the raw frames of a stored series, TIFF or ``.npy``,
and writes the same graph with the adapted weights, checked in the real engine.
"""

from ._adapt import AdaptConfig, AdaptReport, adapt, estimate_camera
from ._recording import Recording, load_recording
from ._risk import estimated_mse, recording_risk

__all__ = [
    "AdaptConfig",
    "AdaptReport",
    "Recording",
    "adapt",
    "estimate_camera",
    "estimated_mse",
    "load_recording",
    "recording_risk",
]
