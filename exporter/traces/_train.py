"""Train a causal trace denoiser on generated windows and export it to ONNX.

The windows are scaled as the service scales them (``stream.traces.noise_scale``: each
window divided by its own noise level), so one model serves every ROI brightness and
the exported graph needs no normalisation of its own.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from stream import ConfigError
from stream.traces import noise_scale

from ._generate import trace_batch
from ._models import build

OPSET = 17


def scaled(noisy: np.ndarray, clean: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    scale = noise_scale(noisy)
    out = [torch.from_numpy(noisy / scale)]
    if clean is not None:
        out.append(torch.from_numpy(clean[:, :, -1:] / scale))
    return tuple(out)


def train_trace_model(
    architecture: str,
    window: int,
    steps: int,
    batch: int = 256,
    seed: int = 0,
    lr: float = 2e-3,
    log: Callable[[str], None] | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    """Train one candidate; returns it (eval mode) and its budget."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build(architecture, window)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    running = 0.0
    for step in range(steps):
        for group in optimizer.param_groups:  # cosine decay to 2 % of lr
            group["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        data = trace_batch(rng, batch, window)
        x, y = scaled(data.noisy, data.clean)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if log is not None and (step + 1) % max(1, steps // 10) == 0:
            log(f"{architecture}: step {step + 1}/{steps} loss {running:.4f}")
    budget = {"steps": steps, "batch": batch, "seconds": round(time.perf_counter() - t0, 1)}
    return model.eval(), budget


def check_output_folder(out: Path) -> None:
    """Refuse an output folder that is a file before any candidate trains: otherwise the
    first export fails only after the first training."""
    existing = next(path for path in (out, *out.parents) if path.exists())
    if not existing.is_dir():
        raise ConfigError(
            f"expected a folder for the models, report.md and metrics.json, got {out}, "
            f"where {existing} is a file (choose another --out)"
        )


def export_trace_model(model: nn.Module, window: int, path: Path, metadata: dict[str, str]) -> Path:
    """ONNX with a dynamic batch (ROIs) axis and the trace-model metadata."""
    check_output_folder(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = Path(tmp) / "trace.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(4, 1, window),),
            raw,
            input_names=["traces"],
            output_names=["denoised"],
            dynamic_axes={"traces": {0: "rois"}, "denoised": {0: "rois"}},
            opset_version=OPSET,
            dynamo=False,
        )
        proto = onnx.load(str(raw))
    del proto.metadata_props[:]
    for key, value in {
        "deepdenoise.kind": "trace",
        "deepdenoise.trace_window": str(window),
        **metadata,
    }.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path
