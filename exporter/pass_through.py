"""Where a model's output should give way to its input: more light than it was trained for.

A small network's own error does not shrink with the noise: beyond the photon budgets it
was trained on, the input's noise falls below that error and the output gets worse than
the input (``na-lite`` on the training generator's scenes: +0.64 dB over its input at a
peak SNR of 85-115, -0.28 dB at 115-153, -0.56 at 153-205 and -2.21 above; it was
trained up to 3,000 photons, a peak SNR of about 55). Per scene, the blend toward the
input that minimises the error, ``w* = <t - y, x - y> / |x - y|**2`` (output ``y``, input
``x``, truth ``t``), rises from 0 to 1 over a band of peak SNR; :func:`measure` finds the
band ``[low, high]`` (``w`` linear in log SNR across it) that fits those ``w*`` best,
weighted by what a wrong blend costs, ``|x - y|**2``, on the training generator's data
at budgets up to 100,000 photons (never the evaluation's). :func:`with_pass_through`
writes it into the model (``pass_through_snr``), and the engine blends accordingly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stream import ConfigError, ModelError
from stream.engine import ModelMetadata, peak_snr

from .export import finish_model
from .light_bands import camera_in_model_units
from .onnx_init import load_proto
from .synth import PairGenerator, SynthConfig

#: Candidate band edges, peak SNR.
EDGES = tuple(float(v) for v in np.geomspace(20.0, 2000.0, 41))
#: Seed-stream tag of the measured scenes: apart from training (0), validation (1) and
#: the light bands (2).
_MEASURE = 3


@dataclass(frozen=True)
class PassThrough:
    """The measured band and, per tenth of the scenes by peak SNR, ``(low, high, mean dB
    of the output over the input, median w*)``."""

    low: float
    high: float
    scenes: int
    table: tuple[tuple[float, float, float, float], ...]


def blend(snr: np.ndarray, low: float, high: float) -> np.ndarray:
    """The engine's blend toward the input (:meth:`ModelMetadata.pass_through`)."""
    return np.clip(np.log(np.maximum(snr, 1e-12) / low) / math.log(high / low), 0.0, 1.0)


def measure(model: Path, *, samples: int = 1200, seed: int = 7, patch: int = 96) -> PassThrough:
    """Run ``model`` on ``samples`` generated scenes from 300 to 100,000 photons per pixel
    (gains that keep them within 16 bits) and fit the band (see the module doc)."""
    meta = ModelMetadata.from_props({p.key: p.value for p in load_proto(model).metadata_props})
    if meta.normalization != "adaptive" or meta.frames != 1 or not meta.noise_map:
        raise ModelError(
            f"expected a spatial noise-adaptive model (1 frame, a noise map, adaptive "
            f"normalisation), got {model.name} with {meta.frames} frame(s), noise_map "
            f"{meta.noise_map}, normalization {meta.normalization!r}"
        )
    cfg = SynthConfig(
        patch=patch, frames=1, noise_map=True, photons=(300.0, 100_000.0), gain=(0.3, 0.6),
        samples_per_movie=2,
    )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    rows = []
    for inputs, target in itertools.islice(PairGenerator(cfg).stream((seed, _MEASURE, 0)), samples):
        gain, read = camera_in_model_units(inputs[0], inputs[1])
        output = session.run(None, {"x": inputs[None]})[0][0, 0]
        x, truth = inputs[0], target[0]
        difference = (x - output).astype(np.float64)
        energy = float(np.sum(difference * difference))
        best = float(np.sum((truth - output) * difference)) / max(energy, 1e-30)
        db = 10.0 * math.log10(
            max(float(np.mean((x - truth) ** 2)), 1e-30)
            / max(float(np.mean((output - truth) ** 2)), 1e-30)
        )
        rows.append((peak_snr(x, gain, read), best, energy, db))
    if len(rows) < 50:
        raise ValueError(f"expected at least 50 scenes to measure, got {len(rows)}")
    data = np.array(rows)
    snr, best, energy, db = data.T
    target_w = np.clip(best, 0.0, 1.0)
    low, high, cost = EDGES[0], EDGES[-1], math.inf
    for i, lo in enumerate(EDGES):
        for hi in EDGES[i + 1 :]:
            c = float(np.sum(energy * (blend(snr, lo, hi) - target_w) ** 2))
            if c < cost:
                low, high, cost = lo, hi, c
    table = tuple(
        (float(snr[c].min()), float(snr[c].max()), float(db[c].mean()), float(np.median(best[c])))
        for c in np.array_split(np.argsort(snr), 10)
    )
    return PassThrough(round(low, 1), round(high, 1), len(rows), table)


def describe(found: PassThrough) -> str:
    """A Markdown table of the measurement, for a model card."""
    lines = [
        f"Scenes measured: {found.scenes}; blended toward the input from a peak SNR of "
        f"{found.low:g}, all the way from {found.high:g}.",
        "",
        "| peak SNR | output over input, mean dB | best blend toward the input (median) |",
        "|---|---|---|",
    ]
    for lo, hi, db, w in found.table:
        lines.append(f"| {lo:.0f} to {hi:.0f} | {db:+.2f} | {w:+.2f} |")
    return "\n".join(lines)


def check_output(model: Path, out: Path) -> None:
    """Refuse, before any measuring, an output that cannot take the banded model: the
    input model itself (a shipped one included: writing there replaces it in place), a
    folder, a name that is no .onnx file, a folder that does not exist."""
    if not model.is_file():
        raise ConfigError(f"expected an ONNX model file or a shipped model's name, got {model}")
    same = out.resolve() == model.resolve()
    if not same and out.exists():
        try:
            same = out.samefile(model)  # a hard link, or a path the resolve above missed
        except OSError:
            same = False
    if same:
        raise ConfigError(
            f"the output {out} is the input model, which writing the band would replace; "
            f"expected a new path, e.g. {out.with_name(out.stem + '-banded.onnx')}"
        )
    if out.is_dir():
        raise ConfigError(
            f"expected the ONNX file to write, got the folder {out} (-o {out / model.name}?)"
        )
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"expected an output ending in .onnx, got {out}")
    if not out.parent.is_dir():
        raise ConfigError(f"the output's folder {out.parent} does not exist")


def with_pass_through(model: Path, out: Path, band: tuple[float, float]) -> ModelMetadata:
    """Write ``out``: ``model`` with ``pass_through_snr`` set to ``band``. The band changes
    what the file does, so it is in the graph's doc string too: the content hash (the
    model id in status and stores) tells the two files apart."""
    check_output(model, out)
    proto = load_proto(model)
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    if meta.normalization != "adaptive":
        raise ModelError(
            f"expected a model with adaptive normalisation (the peak SNR comes from the "
            f"camera behind its noise map), got {model.name} with normalization "
            f"{meta.normalization!r}"
        )
    fields = meta.model_dump(exclude={"content_hash", "from_model"})
    fields["pass_through_snr"] = [float(band[0]), float(band[1])]
    note = f"output blended toward the input over peak SNR {band[0]:g}-{band[1]:g}"
    kept = [part for part in proto.graph.doc_string.split("; ") if part and "blended" not in part]
    proto.graph.doc_string = "; ".join([*kept, note])
    return finish_model(proto, fields, out)
