"""The optional causal 1-D trace denoiser: an ONNX model over each ROI's recent ΔF/F.

Contract (written by ``exporter``'s trace training, checked here): input ``[N, 1, L]``
float32, the last ``L`` ΔF/F samples of N ROIs, oldest first; output ``[N, 1, K]``
(K >= 1), of which only the last sample is used: nothing after the current frame.
Metadata ``deepdenoise.kind = "trace"`` and ``deepdenoise.trace_window = L``. Each
window is divided by its own noise level (the median absolute first difference / 0.954,
the sigma of white noise) before the model and multiplied back after, so one model serves
bright and dim ROIs alike. Until L frames have come, the window is padded with the
first sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .._errors import ModelError

#: The shipped trace model (``deepdenoise train-traces --ship``): ``traces.denoise = true``.
SHIPPED_TRACE_MODEL = Path(__file__).resolve().parent / "models" / "trace-denoiser.onnx"
#: For white Gaussian noise of sigma, the median of |x[t] - x[t-1]| is 0.6745*sqrt(2)*sigma.
MAD_DIFF_TO_SIGMA = 1.0 / (0.6745 * np.sqrt(2.0))
#: Windows whose noise level is below this are passed through unscaled (flat traces).
MIN_SCALE = 1e-6


def noise_scale(windows: np.ndarray) -> np.ndarray:
    """Per-window noise sigma ``[N, 1, 1]`` from the median absolute first difference."""
    diffs = np.abs(np.diff(windows, axis=-1))
    sigma = np.median(diffs, axis=-1, keepdims=True) * MAD_DIFF_TO_SIGMA
    result: np.ndarray = np.maximum(sigma, MIN_SCALE).astype(np.float32)
    return result


class TraceDenoiser:
    """Runs a trace model on CPU; :meth:`bind` gives per-series state."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a small model: threads cost more than they give
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own types for unreadable files
            raise ModelError(f"cannot load trace model {self.path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get("deepdenoise.kind") != "trace":
            raise ModelError(
                f"{self.path} is not a trace model (expected metadata deepdenoise.kind = "
                f"'trace', got {meta.get('deepdenoise.kind')!r})"
            )
        try:
            self.window = int(meta["deepdenoise.trace_window"])
        except (KeyError, ValueError):
            raise ModelError(f"{self.path} lacks a valid deepdenoise.trace_window") from None
        if not 2 <= self.window <= 4096:
            raise ModelError(f"{self.path}: trace_window {self.window} is outside 2..4096")
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def run(self, windows: np.ndarray) -> np.ndarray:
        """Denoise ``[N, 1, L]`` windows; returns the last sample of each, ``[N]``."""
        scale = noise_scale(windows)
        out = self._session.run([self._output], {self._input: windows / scale})[0]
        result: np.ndarray = out[:, 0, -1] * scale[:, 0, 0]
        return result

    def bind(self, rois: int) -> TraceHistory:
        return TraceHistory(self, rois)


class TraceHistory:
    """The last L ΔF/F samples of each ROI of one series."""

    def __init__(self, model: TraceDenoiser, rois: int) -> None:
        self._model = model
        self._windows = np.zeros((rois, 1, model.window), dtype=np.float32)
        #: Rows with no sample yet: their first fills the whole window.
        self._fresh: np.ndarray | None = np.ones(rois, dtype=bool)

    def carry(self, old: TraceHistory, rows: np.ndarray, old_rows: np.ndarray) -> None:
        """After a ROI change: the same ROIs (``old_rows`` of ``old``, ``rows`` here)
        keep their recent ΔF/F, so their denoised ΔF/F goes on; the others start anew."""
        self._windows[rows] = old._windows[old_rows]
        fresh = np.ones(len(self._windows), dtype=bool)
        fresh[rows] = False if old._fresh is None else old._fresh[old_rows]
        self._fresh = fresh if fresh.any() else None

    def update(self, dff: np.ndarray) -> np.ndarray:
        """Add this frame's ΔF/F; return its denoised value per ROI (NaN stays NaN)."""
        finite = np.nan_to_num(dff, nan=0.0, posinf=0.0, neginf=0.0)
        self._windows[:, 0, :-1] = self._windows[:, 0, 1:]
        self._windows[:, 0, -1] = finite
        if self._fresh is not None:
            self._windows[self._fresh, 0, :] = finite[self._fresh, None]
            self._fresh = None
        out = self._model.run(self._windows)
        result: np.ndarray = np.where(np.isfinite(dff), out, np.nan)
        return result
