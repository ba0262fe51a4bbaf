"""Self-supervised adaptation: fine-tune a model on the user's own recording.

``adapt`` loads any deepdenoise ONNX model as a trainable torch module, trains it on the
raw frames of a stored series, TIFF or ``.npy`` with a loss that needs no clean data
(SURE with the camera's variance, or Noise2Void's blind spot), keeps the weights an
unbiased estimate of the error on the recording rates best -- and better than the
starting ones by two standard errors, else the starting ones -- and writes the same graph
with them, checked in the real engine.
"""

from ._adapt import SHOWN_BY, AdaptConfig, AdaptReport, adapt, estimate_camera
from ._recording import Recording, load_recording
from ._risk import better_than, estimated_mse, pixel_risks, recording_risk

__all__ = [
    "SHOWN_BY",
    "AdaptConfig",
    "AdaptReport",
    "Recording",
    "adapt",
    "better_than",
    "estimate_camera",
    "estimated_mse",
    "load_recording",
    "pixel_risks",
    "recording_risk",
]
