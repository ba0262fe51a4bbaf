"""Ship a trained checkpoint as package data: ``stream/engine/models/<name>.onnx`` + card.

``deepdenoise ship RUN_DIR --name na-lite --recipe exporter/recipes/na-lite.toml
[--metrics benchmarks/results/evaluation/metrics.json]``

The card is generated from what was measured, never typed in: the run's summary
(budget, validation PSNR), the export's parity table, the engine's CPU frame rate and,
when given, this model's rows of an evaluation report.
"""

from __future__ import annotations

import json
import platform
import re
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from exporter.export import ExportReport, export_onnx
from stream import ConfigError
from stream.engine import Engine, ModelMetadata
from stream.sim import Simulator, SimulatorConfig

MODELS_DIR = Path(__file__).resolve().parent.parent / "stream" / "engine" / "models"
METHOD_ORDER = (
    "noisy",
    "gaussian",
    "gaussian-val",
    "temporal-mean",
    "spatiotemporal",
    "wiener",
)
SUBSET = "@bm3d-frames"  # scores of the frame subset BM3D ran on (it is slow)


def cpu_fps(path: Path, shape: tuple[int, int] = (256, 256), frames: int = 40) -> float:
    """Median frames per second of the real engine on the CPU (one thread per core), on
    the simulator's calcium-imaging frames with its camera.

    A microscope's frames, not uniform random counts: on those, one pixel in a hundred
    passes the engine's spike test (:mod:`stream.camera._spikes`) and filling them costs
    time a microscope's frames do not (four interleaved rounds, 2-vCPU Intel Xeon VM:
    ``na-lite`` 19.7-24.4 fps on random counts, 23.0-30.2 on these).
    """
    simulator = Simulator(SimulatorConfig(shape=shape))
    with Engine(path, provider="cpu", warmup_shape=shape) as engine:
        adaptive = engine.metadata.normalization == "adaptive"
        camera = simulator.config.phantom.noise if adaptive else None  # as the bench
        k = engine.metadata.frames
        # consecutive frames of a series: a repeated one would be a series start, which
        # a composed temporal model answers with its spatial branch (exporter.compose)
        history = [simulator.frame(i) for i in range(k - 1)]
        frame = simulator.frame(k - 1)
        mean = frame.astype(np.float32) if engine.metadata.running_mean > 0 else None
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            engine.denoise(frame, camera=camera, history=history, running_mean=mean)
            times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def ship(
    run_dir: Path,
    name: str,
    recipe: Path,
    metrics: Path | None,
    out_dir: Path = MODELS_DIR,
    wall_hours: float | None = None,
) -> Path:
    """Export ``run_dir/best.pt`` as ``out_dir/<name>.onnx`` and write its card.

    A run still training (no ``summary.json`` yet) ships its best checkpoint so far;
    its card says so, with ``wall_hours`` (from the run's logs) as the budget spent.
    """
    if not _SHIP_NAME.fullmatch(name):
        raise ConfigError(
            f"expected --name of lowercase letters, digits, '.', '_' and '-' (a file name "
            f"like na-lite), got {name!r}"
        )
    checkpoint = run_dir / "best.pt"
    out = out_dir / f"{name}.onnx"
    # everything is made and read first: a failure (a recipe or metrics file missing)
    # leaves the package's model and card as they were
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(checkpoint, Path(tmp) / out.name, fp16=True)
        model = report.path.read_bytes()  # the fp16 file only feeds the card
        summary = run_summary(run_dir, wall_hours)
        fps = cpu_fps(report.path)
        card = render_card(name, recipe, report, summary, fps, metrics)
    out.write_bytes(model)
    out.with_suffix(".md").write_text(card, encoding="utf-8")
    return out


#: What ``ship --name`` may be: it names a file in the package.
_SHIP_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def run_summary(run_dir: Path, wall_hours: float | None = None) -> dict[str, Any]:
    """The finished run's summary.json, or one read from the best checkpoint so far.

    ``wall_hours`` replaces the summary's time: a resumed run's summary counts only its
    last session.
    """
    path = run_dir / "summary.json"
    if path.exists():
        summary: dict[str, Any] = json.loads(path.read_text())
        if wall_hours is not None:
            summary.update(seconds=wall_hours * 3600.0, steps_per_s=None, start_step=0)
        return summary
    import torch  # the train extra, as for export

    ckpt = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    history = ckpt["history"]
    return {
        "steps": int(ckpt["step"]),
        "planned_steps": int(ckpt["config"]["steps"]),
        "seconds": None if wall_hours is None else wall_hours * 3600.0,
        "steps_per_s": None,
        "device": "not recorded",  # checkpoints do not say where they trained
        "noisy_psnr": history["noisy_psnr"],
        "best_val_psnr": history["best_val_psnr"],
        "best_step": history["best_step"],
    }


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
        *_continuation(recipe),
        "",
        "```toml",
        recipe.read_text().strip(),
        "```",
        "",
        "## Data",
        "",
        *data_section(meta.training_data, noise),
        _units(meta),
        "",
        "## Training budget and result",
        "",
        "| steps | time | device | val PSNR (noisy input → model) |",
        "|---|---|---|---|",
        f"| {_steps(summary)} | {_budget(summary)} | {summary['device']} "
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
    """This model's rows of an evaluation report (``deepdenoise evaluate``'s
    metrics.json), with the baselines for context."""
    data = json.loads(metrics.read_text())
    settings = data["settings"]
    shape = "x".join(str(v) for v in settings["shape"])
    lines = [
        "## Metrics (from the evaluation report)",
        "",
        f"`{metrics.as_posix()}`: {shape} x {settings['frames']} frames per generator and "
        f"photon budget, seed {settings['seed']}; the model estimates the camera live (no "
        f"camera configured), its output blended with smoothing `{settings.get('blend', 'off')}` "
        "(`serve --blend`). `gaussian` is tuned on the truth (an oracle bar), "
        "`gaussian-val` on a separate validation movie. PSNR/SSIM against the noise-free "
        "movie, trace r = Pearson correlation of footprint traces, onset = transient-onset "
        "timing error.",
        "",
        "| generator | photons | method | PSNR dB | SSIM | trace r | onset MAE ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["results"]:
        scores = row["scores"]
        rows = [(m, f"**{name}**" if m == name else m) for m in (*METHOD_ORDER, name)]
        if "bm3d-vst" in scores:  # BM3D next to the model on the same few frames
            n = scores["bm3d-vst"]["frames_scored"]
            rows += [("bm3d-vst", f"bm3d-vst ({n} frames)")]
            rows += [(name + SUBSET, f"**{name}** (the same {n} frames)")]
        for method, label in rows:
            s = scores.get(method)
            if s is None:
                continue
            lines.append(
                f"| {row['generator']} | {row['photons']:g} | {label} | {s['psnr']:.2f} | "
                f"{s['ssim']:.3f} | {_fmt(s['trace_r'], '.3f')} | "
                f"{_fmt(s['onset_mae_ms'], '.0f')} |"
            )
    return [*lines, ""]


def data_section(data: dict[str, Any], noise: dict[str, Any]) -> list[str]:
    if data.get("generator") == "exporter.synth":
        return [
            "Generated on the fly, never a real image collection: clean scenes from "
            "`exporter/synth` (calcium imaging with nuclear exclusion, dendrites, neuropil, "
            "uneven illumination and motion jitter, plus dead-leaves shapes, puncta, "
            "filaments and 1/f textures), read out by a random Poisson-Gaussian camera: "
            f"`{json.dumps(noise, sort_keys=True)}`; generator settings "
            f"`{json.dumps(data, sort_keys=True)}`.",
        ]
    return [
        "Generated on the fly (no fixed training set): calcium-imaging fields from "
        "`stream/_phantom.py` with per-draw randomised cell density, size, brightness, "
        "neuropil, background, drift and bleaching (`exporter/data.py`), and noise "
        f"`{json.dumps(noise, sort_keys=True)}`.",
    ]


def _units(meta: ModelMetadata) -> str:
    if meta.normalization == "adaptive":
        channels = [f"{meta.frames} frame(s)"] + ["a noise map"] * meta.noise_map
        if meta.running_mean > 0:
            decay = f"{meta.running_mean:g}"
            channels.append(f"the running mean of the previous frames (decay {decay})")
        return (
            "Model units: raw minus the camera's offset, over a per-frame scale; input "
            f"channels: {', '.join(channels[:-1]) + ' and ' if len(channels) > 1 else ''}"
            f"{channels[-1]}."
        )
    return f"Model units: (raw - {meta.input_offset:g}) / {meta.input_scale:.6g}."


def _continuation(recipe: Path) -> list[str]:
    """For a recipe that starts from another run's weights (``init``): which run, and
    at which step, so that the card's steps and time are read as the second stage's."""
    init = tomllib.loads(recipe.read_text()).get("init")
    if init is None:
        return []
    path = (recipe.parent / init).resolve()
    if path.suffix == ".onnx":  # an exported model: no run, no step (exporter.onnx_init)
        return [
            "",
            f"This recipe continues from the weights of the exported model `{init}` (the "
            "header says which shipped file it copies). The budget table counts this stage "
            "only; the header gives the earlier stages' budget.",
        ]
    step = "its last step"
    if path.exists():
        import torch  # the train extra, as for export

        step = f"step {int(torch.load(path, map_location='cpu', weights_only=True)['step'])}"
    return [
        "",
        f"This recipe continues from the weights of `{init}` ({step}): train that run "
        "first (its recipe is named in the header below). The budget table counts this "
        "stage only; the header gives the first stage's budget.",
    ]


def _budget(summary: dict[str, Any]) -> str:
    seconds, rate = summary.get("seconds"), summary.get("steps_per_s")
    if seconds is None:
        return "not recorded"
    text = f"{seconds / 60:.1f} min"
    return f"{text} ({rate:.2f} steps/s)" if rate is not None else f"{text} (wall, all sessions)"


def _steps(summary: dict[str, Any]) -> str:
    """Total steps; a resumed run's summary times only the steps after the resume."""
    if "planned_steps" in summary:
        return f"{summary['steps']} of {summary['planned_steps']} (run in progress)"
    start = int(summary.get("start_step", 0))
    if start:
        return f"{summary['steps']} (time: steps {start}-{summary['steps']}, after a resume)"
    return str(summary["steps"])


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
