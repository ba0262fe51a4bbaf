"""In which light a temporal model beats its spatial start, measured on generated data.

A *young* window has one previous frame up to K - 2 of them (a young series, or one just
after a gap): the engine stands in for the missing frames by repeating the oldest one
there is, and a temporal network reads the repeated frame's noise as signal seen several
times. Whether the frames it does have make up for that depends on the light: in very
little, their noise swamps them; in plenty, the spatial model alone is already close to
the truth and the repeated noise is what is left. A *full* window can lose too, in
plenty of light, where a small network's own error floor is above the spatial model's.
The band of peak SNR (:func:`stream.engine.peak_snr`) where the temporal network wins is
measured here for either kind of window on the training generator's data (never the
evaluation's; a young window is cut at a series start as the engine fills it,
``synth.fill``); :func:`exporter.compose.with_spatial_start` writes the bands into the
model, and the engine answers frames outside them with the spatial start.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stream.engine import ModelMetadata, peak_snr

from .onnx_init import load_proto
from .synth import PairGenerator, SynthConfig

#: Candidate band edges: log-spaced peak SNRs, and 0 and 1e6 for an open end.
EDGES = (0.0, *(float(v) for v in np.geomspace(0.5, 200.0, 60)), 1e6)
WINDOWS = ("young", "full")
#: Seed-stream tag of the measured windows: apart from training (0) and validation (1).
_MEASURE = 2


@dataclass(frozen=True)
class LightBand:
    """The measured band for one kind of window and what it is worth.

    ``table``: per tenth of the samples by peak SNR: ``(low, high, share where the
    temporal network is better, its mean dB over the spatial model)``.
    """

    window: str  # "young" or "full"
    low: float
    high: float
    windows: int
    gain_db: float  # mean dB per window over always answering spatially
    temporal_db: float  # the same for always answering temporally (no band)
    table: tuple[tuple[float, float, float, float], ...]


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def leading_repeats(frames: np.ndarray) -> int:
    """How many frames at the start of a window equal the one after them: the missing
    previous frames the engine stood in for (K - 1: an empty ring)."""
    m = 0
    while m < len(frames) - 1 and np.array_equal(frames[m], frames[m + 1]):
        m += 1
    return m


def camera_in_model_units(current: np.ndarray, noise: np.ndarray) -> tuple[float, float]:
    """Gain and read noise over the frame scale, from the noise map, which is exactly
    ``sqrt(gain * max(x, 0) + read**2)`` in model units: a straight line in ``noise**2``."""
    x = np.maximum(current, 0.0).ravel().astype(np.float64)
    y = (noise.astype(np.float64) ** 2).ravel()
    if np.ptp(x) == 0:
        return 0.0, float(math.sqrt(max(y.mean(), 0.0)))
    slope, intercept = np.polyfit(x, y, 1)
    return max(float(slope), 0.0), float(math.sqrt(max(intercept, 0.0)))


def _best_band(snr: np.ndarray, gain_db: np.ndarray) -> tuple[float, float]:
    """The band of EDGES whose windows, answered temporally, add the most dB; (0, 0)
    when no band adds any (the spatial model is better everywhere)."""
    order = np.argsort(snr)
    snr, cumulative = snr[order], np.concatenate([[0.0], np.cumsum(gain_db[order])])
    cuts = np.searchsorted(snr, EDGES)
    best, band = 0.0, (EDGES[0], EDGES[0])
    for i, lo in enumerate(cuts):
        for j in range(i + 1, len(EDGES)):
            total = cumulative[cuts[j]] - cumulative[lo]
            if total > best:
                best, band = total, (EDGES[i], EDGES[j])
    return band


def measure_band(
    temporal: Path,
    spatial: Path,
    window: str,
    *,
    samples: int = 1500,
    seed: int = 7,
    patch: int = 96,
    history: int = 32,
    resamples: int = 30,
) -> LightBand:
    """Run both models on ``samples`` generated windows of the kind ``window`` and find
    the peak-SNR band where the temporal one wins (the median over ``resamples``
    bootstrap resamplings, so a few windows do not move it)."""
    if window not in WINDOWS:
        raise ValueError(f"expected a window in {WINDOWS}, got {window!r}")
    meta = ModelMetadata.from_props({p.key: p.value for p in load_proto(temporal).metadata_props})
    k = meta.frames
    cfg = SynthConfig(
        patch=patch,
        frames=k,
        noise_map=meta.noise_map,
        running_mean=meta.running_mean,
        history=history if meta.running_mean > 0 else 0,
        fill=1.0 if window == "young" else 0.0,
        samples_per_movie=2,
    )
    t_session, s_session = _session(temporal), _session(spatial)
    rows = []
    for inputs, target in itertools.islice(PairGenerator(cfg).stream((seed, _MEASURE, 0)), samples):
        repeats = leading_repeats(inputs[:k])
        if (window == "young") != (0 < repeats < k - 1):
            continue  # not this kind (an empty window: the spatial start answers it anyway)
        gain, read = camera_in_model_units(inputs[k - 1], inputs[k])
        level = peak_snr(inputs[k - 1], gain, read)
        t_out = t_session.run(None, {"x": inputs[None]})[0][0, 0]
        s_out = s_session.run(None, {"x": inputs[None, k - 1 : k + 1]})[0][0, 0]
        t_err = float(np.mean((t_out - target[0]) ** 2))
        s_err = float(np.mean((s_out - target[0]) ** 2))
        rows.append((level, 10.0 * math.log10(max(s_err, 1e-20) / max(t_err, 1e-20))))
    if len(rows) < 20:
        raise ValueError(f"expected at least 20 {window} windows to measure, got {len(rows)}")
    data = np.array(rows)
    snr, gain_db = data[:, 0], data[:, 1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(snr), (resamples, len(snr)))
    bands = [_best_band(snr[i], gain_db[i]) for i in draws]
    low, high = (float(np.median([b[n] for b in bands])) for n in (0, 1))
    inside = (snr >= low) & (snr <= high)
    tenths = np.array_split(np.argsort(snr), 10)
    table = tuple(
        (
            float(snr[c].min()),
            float(snr[c].max()),
            float(np.mean(gain_db[c] > 0)),
            float(gain_db[c].mean()),
        )
        for c in tenths
    )
    return LightBand(
        window=window,
        low=round(low, 2),
        high=round(high, 2),
        windows=len(snr),
        gain_db=float(gain_db[inside].sum() / len(snr)),
        temporal_db=float(gain_db.mean()),
        table=table,
    )


def describe(band: LightBand) -> str:
    """A Markdown table of the measurement, for a model card."""
    lines = [
        f"{band.window.capitalize()} windows measured: {band.windows}; band {band.low:g} to "
        f"{band.high:g} "
        f"(peak SNR): {band.gain_db:+.2f} dB per window over always the spatial model, "
        f"{band.temporal_db:+.2f} dB for always the temporal one.",
        "",
        "| peak SNR | temporal better | temporal vs spatial, mean dB |",
        "|---|---|---|",
    ]
    for lo, hi, share, db in band.table:
        lines.append(f"| {lo:.2f} to {hi:.2f} | {share:.0%} | {db:+.2f} |")
    return "\n".join(lines)
