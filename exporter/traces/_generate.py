"""Training data for the trace denoiser: generated ΔF/F windows with known truth.

Spikes are Bernoulli per frame (0.02-3 Hz at 5-60 Hz sampling); each adds a
log-normal amplitude to an AR(1) calcium trace (decay 0.2-2 s); a small offset and a
linear drift stand for the running baseline's error, and are part of the truth (the
denoiser removes noise, not drift). Noise is Gaussian with a signal-dependent part
(shot noise grows with the calcium signal), 0.01-0.6 ΔF/F at rest. Only the last
sample of each window is a target: the model is causal by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Frames simulated before each window so the calcium state is not at rest.
LEAD_IN = 96


@dataclass(frozen=True)
class TraceBatch:
    noisy: np.ndarray  # (N, 1, L) float32
    clean: np.ndarray  # (N, 1, L) float32


def trace_batch(rng: np.random.Generator, n: int, window: int) -> TraceBatch:
    """``n`` windows of ``window`` samples, noisy and clean ΔF/F."""
    length = window + LEAD_IN
    fs = rng.uniform(5.0, 60.0, (n, 1))
    rate_hz = np.exp(rng.uniform(np.log(0.02), np.log(3.0), (n, 1)))
    decay_s = rng.uniform(0.2, 2.0, (n, 1))
    gamma = np.exp(-1.0 / (decay_s * fs))
    spikes = rng.random((n, length)) < rate_hz / fs
    amplitude = rng.lognormal(np.log(rng.uniform(0.05, 1.0, (n, 1))), 0.4, (n, length))
    drive = spikes * amplitude
    calcium = np.empty((n, length))
    state = np.zeros(n)
    for t in range(length):
        state = gamma[:, 0] * state + drive[:, t]
        calcium[:, t] = state
    calcium = calcium[:, LEAD_IN:]
    ramp = np.arange(window) / window
    drift = rng.normal(0, 0.05, (n, 1)) + rng.normal(0, 0.05, (n, 1)) * ramp
    clean = calcium + drift
    sigma = np.exp(rng.uniform(np.log(0.01), np.log(0.6), (n, 1)))
    shot = rng.uniform(0.0, 2.0, (n, 1))
    noise = (
        rng.standard_normal((n, window)) * sigma * np.sqrt(1.0 + shot * np.clip(calcium, 0, None))
    )
    noisy = clean + noise
    return TraceBatch(noisy[:, None, :].astype(np.float32), clean[:, None, :].astype(np.float32))
