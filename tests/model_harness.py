"""Helpers for exporter tests that need a DnCNN with trained-looking weights, or a tiny
noise-adaptive temporal training run (torch is imported by the caller's importorskip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from exporter.model import DnCNN, ModelSpec
from exporter.train import TrainConfig, load_train_config


def randomised(spec: ModelSpec, seed: int = 0) -> DnCNN:
    """A model in eval mode with every weight (the zero-initialised last conv too) and
    every BatchNorm statistic random, as after training: distinct folded biases, too."""
    torch.manual_seed(seed)
    model = DnCNN(spec).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.0, 0.3)
            elif isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model


def tiny_temporal_config(out_dir: Path, **changes: Any) -> TrainConfig:
    """A few steps of a depth-3, width-8, 2-frame noise-adaptive model on 32 px patches."""
    base: dict[str, Any] = {
        "preset": "na-temporal",
        "depth": 3,
        "width": 8,
        "frames": 2,
        "data_source": "synth",
        "synth": {"patch": 32, "frames": 2, "samples_per_movie": 2},
        "batch": 4,
        "val_size": 4,
        "threads": 1,
        "out_dir": out_dir,
    }
    return load_train_config(None, **{**base, **changes})
