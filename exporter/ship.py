"""Ship a trained checkpoint as package data: ``stream/engine/models/<name>.onnx`` + card.

``deepdenoise ship RUN_DIR --name dncnn-lite --recipe exporter/recipes/lite.toml
[--metrics benchmarks/results/evaluation/metrics.json]``

The card is generated from what was measured, never typed in: the run's summary
(budget, validation PSNR), the export's parity table, the engine's CPU frame rate and,
when given, this model's rows of an evaluation report.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from exporter.export import ExportReport, export_onnx
from stream.engine import Engine

MODELS_DIR = Path(__file__).resolve().parent.parent / "stream" / "engine" / "models"
METHOD_ORDER = ("noisy", "gaussian", "boxcar", "wiener", "bm3d")


def cpu_fps(path: Path, shape: tuple[int, int] = (256, 256), frames: int = 40) -> float:
    """Median frames per second of the real engine on the CPU (one thread per core)."""
    rng = np.random.default_rng(0)
    frame = rng.integers(100, 1000, shape, dtype=np.uint16)
    with Engine(path, provider="cpu", warmup_shape=shape) as engine:
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            engine.denoise(frame)
            times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def ship(
    run_dir: Path, name: str, recipe: Path, metrics: Path | None, out_dir: Path = MODELS_DIR
) -> Path:
    """Export ``run_dir/best.pt`` as ``out_dir/<name>.onnx`` and write its card."""
    checkpoint = run_dir / "best.pt"
    out = out_dir / f"{name}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(checkpoint, Path(tmp) / out.name, fp16=True)
        out.write_bytes(report.path.read_bytes())  # the fp16 file only feeds the card
    summary = json.loads((run_dir / "summary.json").read_text())
    fps = cpu_fps(out)
    card = render_card(name, recipe, report, summary, fps, metrics)
    out.with_suffix(".md").write_text(card, encoding="utf-8")
    return out


def render_card(
    name: str,
    recipe: Path,
    report: ExportReport,
    summary: dict[str, Any],
    fps: float,
    metrics: Path | None,
) -> str:
    meta = report.metadata
    noise = meta.training_noise
    lines = [
        f"# {name}",
        "",
        f"A DnCNN (Zhang et al. 2017) trained by this project on generated pairs; "
        f"architecture `{meta.architecture}`, receptive field {meta.receptive_field} px, "
        f"{report.size_bytes / 1e6:.2f} MB, content hash `{meta.content_hash}`.",
        "",
        "## Recipe",
        "",
        f"`deepdenoise train --config {recipe.as_posix()}` then "
        f"`deepdenoise ship runs/... --name {name} --recipe {recipe.as_posix()}`.",
        "",
        "```toml",
        recipe.read_text().strip(),
        "```",
        "",
        "## Data",
        "",
        "Generated on the fly (no fixed training set): calcium-imaging fields from "
        "`stream/_phantom.py` with per-draw randomised cell density, size, brightness, "
        "neuropil, background, drift and bleaching (`exporter/data.py`), and noise "
        f"`{json.dumps(noise, sort_keys=True)}`. Model units: "
        f"(raw - {meta.input_offset:g}) / {meta.input_scale:.6g}.",
        "",
        "## Training budget and result",
        "",
        "| steps | time | device | val PSNR (noisy input → model) |",
        "|---|---|---|---|",
        f"| {_steps(summary)} | {summary['seconds'] / 60:.1f} min "
        f"({summary['steps_per_s']:.2f} steps/s) | {summary['device']} "
        f"({platform.processor() or platform.machine()}) | "
        f"{summary['noisy_psnr']:.2f} → {summary['best_val_psnr']:.2f} dB "
        f"(best at step {summary['best_step']}) |",
        "",
        "## Export parity (engine vs torch, max |error|)",
        "",
        "| variant | case | model units | ADU |",
        "|---|---|---|---|",
        *(
            f"| {r.variant} | {r.case} | {r.max_abs_model:.3g} | {r.max_abs_raw:.3g} |"
            for r in report.rows
        ),
        "",
        f"Shipped file: fp32. Speed in the engine on this CPU (2 vCPUs, CPU provider): "
        f"{fps:.1f} fps at 256x256 (median).",
        "",
    ]
    if metrics is not None:
        lines += metrics_section(name, metrics)
    return "\n".join(lines) + "\n"


def metrics_section(name: str, metrics: Path) -> list[str]:
    """This model's rows of an evaluation report, with the baselines for context."""
    data = json.loads(metrics.read_text())
    settings = data["settings"]
    lines = [
        "## Metrics (from the evaluation report)",
        "",
        f"`{metrics.as_posix()}`: generated test movie {settings.get('shape')} x "
        f"{settings.get('frames')} frames, seed {settings.get('seed')}; baselines tuned on "
        "a separate validation movie. PSNR/SSIM against the noise-free movie, trace r = "
        "Pearson correlation of footprint traces, onset = transient-onset timing error.",
        "",
        "| level | method | PSNR dB | SSIM | trace r | onset MAE ms |",
        "|---|---|---|---|---|---|",
    ]
    for level in data["levels"]:
        methods = level["methods"]
        mine = [m for m in methods if Path(m).stem == name]
        for method in [m for m in METHOD_ORDER if m in methods] + mine:
            s = methods[method]
            label = f"**{name}**" if method in mine else method
            lines.append(
                f"| {level['level']:g} | {label} | {s['psnr']:.2f} | {s['ssim']:.3f} | "
                f"{_fmt(s['trace_r'], '.3f')} | {_fmt(s['onset_mae_ms'], '.0f')} |"
            )
    return [*lines, ""]


def _steps(summary: dict[str, Any]) -> str:
    """Total steps; a resumed run's summary times only the steps after the resume."""
    start = int(summary.get("start_step", 0))
    if start:
        return f"{summary['steps']} (time: steps {start}-{summary['steps']}, after a resume)"
    return str(summary["steps"])


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
