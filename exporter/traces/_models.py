"""Candidate causal trace denoisers: each maps ``[N, 1, L]`` windows to ``[N, 1, 1]``,
the denoised last sample, from that sample and the ones before it only.

- ``mlp``: a small dense network over the window (a learned nonlinear causal filter);
- ``cnn``: a 1-D DnCNN-style residual stack of dilated causal convolutions;
- ``gru``: a recurrent network reading the window oldest first.

All are residual: they predict the noise of the last sample and subtract it.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("mlp", "cnn", "gru")


class WindowMLP(nn.Module):
    def __init__(self, window: int, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(window, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, -1:] - self.net(x)[:, :, None]


class CausalCNN(nn.Module):
    """Dilations 1, 2, 4, ...: the receptive field covers the window."""

    def __init__(self, window: int, width: int = 16, kernel: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, dilation, reach = 1, 1, 1
        while reach < window:
            layers += [nn.ConstantPad1d(((kernel - 1) * dilation, 0), 0.0)]
            layers += [nn.Conv1d(channels, width, kernel, dilation=dilation), nn.ReLU()]
            reach += (kernel - 1) * dilation
            channels, dilation = width, dilation * 2
        layers.append(nn.Conv1d(channels, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, -1:] - self.net(x)[:, :, -1:]


class WindowGRU(nn.Module):
    def __init__(self, window: int, hidden: int = 32) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.transpose(1, 2))
        return x[:, :, -1:] - self.head(out[:, -1])[:, :, None]


def build(architecture: str, window: int) -> nn.Module:
    if architecture == "mlp":
        return WindowMLP(window)
    if architecture == "cnn":
        return CausalCNN(window)
    if architecture == "gru":
        return WindowGRU(window)
    raise ValueError(f"expected an architecture of {ARCHITECTURES}, got {architecture!r}")
