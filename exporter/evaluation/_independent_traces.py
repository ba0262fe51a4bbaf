"""An independent ΔF/F trace generator: the trace denoiser's held-out data.

Shares no code with the training generator (``exporter.traces``) and differs on
purpose: spikes come in bursts (a two-state Markov process), the calcium response
is a difference of exponentials (rise 20-80 ms, decay 0.3-1.5 s) applied by
convolution, amplitudes are gamma-distributed, and the noise is white plus a
coloured (AR(1), rho 0.5) part plus rare heavy-tailed outliers (Student t, 3 dof),
at 30 Hz. ``onsets`` are the first spike of each burst, the events a closed loop
wants to catch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class TraceSet:
    noisy: np.ndarray  # (N, T)
    clean: np.ndarray  # (N, T)
    onsets: list[np.ndarray]  # per trace: frames where a burst starts
    fps: float
    sigma: float


def make_traces(n: int, frames: int, sigma: float, seed: int, fps: float = 30.0) -> TraceSet:
    rng = np.random.default_rng(seed)
    clean = np.zeros((n, frames))
    onsets = []
    for i in range(n):
        in_burst = False
        spikes = np.zeros(frames)
        starts = []
        for t in range(frames):
            if in_burst:
                in_burst = rng.random() > 0.35  # bursts of ~3 frames
            elif rng.random() < 0.15 / fps:  # a burst every ~7 s
                in_burst = True
                starts.append(t)
            if in_burst and rng.random() < 0.6:
                spikes[t] = rng.gamma(3.0, 0.12)
        rise, decay = rng.uniform(0.02, 0.08), rng.uniform(0.3, 1.5)
        k = np.arange(int(6 * decay * fps)) / fps
        kernel = np.exp(-k / decay) - np.exp(-k / rise)
        kernel /= kernel.max()
        clean[i] = np.convolve(spikes, kernel)[:frames]
        onsets.append(np.asarray(starts, dtype=int))
    white = rng.standard_normal((n, frames))
    coloured = signal.lfilter([np.sqrt(1 - 0.25)], [1.0, -0.5], rng.standard_normal((n, frames)))
    outliers = (rng.random((n, frames)) < 0.002) * rng.standard_t(3, (n, frames)) * 3
    noise = sigma * (0.8 * white + 0.6 * coloured + outliers)
    return TraceSet(clean + noise, clean, onsets, fps, sigma)
