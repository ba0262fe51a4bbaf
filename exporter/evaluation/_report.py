"""The evaluation report: ``report.md`` with tables, targets, figures and where each model
wins and loses, all generated from the numbers (the text cannot drift from them).

Figures use matplotlib's Agg backend: no display needed, and ``stream`` never imports
this module.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from ._results import BudgetResult, EvaluationResult, ModelInfo, budget_signal

log = logging.getLogger(__name__)

#: Baselines shown in the tables, in order (models follow).
BASELINES = ("noisy", "gaussian", "gaussian-val", "temporal-mean", "spatiotemporal", "wiener")
TEMPORAL_BASELINES = ("temporal-mean", "spatiotemporal")
#: The targets: dB over the bar, for spatial (1 frame) and temporal models.
TARGET_DB = 1.0
BM3D_NOTE = (
    "BM3D with a variance-stabilising transform (true camera), on a frame subset, "
    "against the tuned Gaussian and the models on the same frames:"
)
SERIES_START_NOTE = (
    "The first {n} frame(s) of the movie, where a temporal model's window is not yet full "
    "(the engine repeats the oldest frame there is), every method on the same frames:"
)

SNAPSHOT_NOTE = (
    "Each frame sent as a series of its own (single images: the camera estimated from "
    "that frame alone, no earlier frame, blended only on its own measurement when its "
    "noise variance is known within 25 %), beside the movie as one series:"
)


def _num(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def bar_for(info: ModelInfo, r: BudgetResult) -> tuple[str, float]:
    """(name, PSNR) of the baseline a model's target is measured against."""
    if info.frames > 1:
        name = max(TEMPORAL_BASELINES, key=lambda n: r.scores[n].psnr)
        return name, r.scores[name].psnr
    return "gaussian", r.scores["gaussian"].psnr


def target_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """One row per model x generator x budget: the margin over its bar and the input."""
    rows = []
    for info in result.models:
        for r in result.results:
            bar, bar_psnr = bar_for(info, r)
            score = r.scores[info.name]
            rows.append(
                {
                    "model": info.name,
                    "generator": r.generator,
                    "photons": r.photons,
                    "bar": bar,
                    "margin_db": score.psnr - bar_psnr,
                    "over_input_db": score.psnr - r.scores["noisy"].psnr,
                }
            )
    return rows


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def gain_figure(result: EvaluationResult, path: Path) -> Path:
    """PSNR gain over the ground-truth-tuned Gaussian against photons per pixel."""
    plt = _plt()
    generators = result.generators
    fig, axes = plt.subplots(
        1, len(generators), figsize=(5.5 * len(generators), 4.2), squeeze=False
    )
    methods = [m for m in result.methods if "@" not in m and m not in ("gaussian", "bm3d-vst")]
    for ax, generator in zip(axes[0], generators, strict=True):
        rows = [r for r in result.results if r.generator == generator]
        photons = [r.photons for r in rows]
        for method in methods:
            gains = [r.gain_over(method, "gaussian") for r in rows]
            model = rows[0].scores[method].kind == "model"
            ax.plot(photons, gains, "o-" if model else ".--", lw=2 if model else 1, label=method)
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(TARGET_DB, color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(f"{budget_signal(generator)} signal, photons per pixel")
        ax.set_ylabel("PSNR gain over tuned Gaussian, dB")
        ax.set_title(f"generator: {generator}")
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def example_figure(result: EvaluationResult, r: BudgetResult, path: Path) -> Path:
    """Truth, input, tuned Gaussian and each model on one frame."""
    plt = _plt()
    shown = ["clean", "noisy", "gaussian", *[m.name for m in result.models]]
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 2.9))
    clean = r.example["clean"]
    lo, hi = float(clean.min()), float(clean.max())
    for ax, name in zip(axes, shown, strict=True):
        ax.imshow(r.example[name], cmap="gray", vmin=lo, vmax=hi)
        psnr = "" if name == "clean" else f"\n{r.scores[name].psnr:.2f} dB"
        ax.set_title(f"{name}{psnr}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{r.generator}, {r.photons:g} photons/px, frame {r.example_frame}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _table(result: EvaluationResult, generator: str) -> list[str]:
    rows = [r for r in result.results if r.generator == generator]
    models = [m.name for m in result.models]
    head = ["photons", *BASELINES, *models]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r.photons:g}"] + [_num(r.scores[name].psnr) for name in (*BASELINES, *models)]
        lines.append("| " + " | ".join(cells) + " |")
    if any("bm3d-vst" in r.scores for r in rows):
        lines += ["", BM3D_NOTE, ""]
        sub = ["photons", "bm3d-vst", "gaussian", *models]
        lines += ["| " + " | ".join(sub) + " |", "|" + "---|" * len(sub)]
        for r in rows:
            if "bm3d-vst" in r.scores:
                cells = [f"{r.photons:g}", _num(r.scores["bm3d-vst"].psnr)]
                cells += [_num(r.scores[f"{n}@bm3d-frames"].psnr) for n in ("gaussian", *models)]
                lines.append("| " + " | ".join(cells) + " |")
    starts = [r for r in rows if "gaussian@series-start" in r.scores]
    if starts:
        n = starts[0].scores["gaussian@series-start"].frames_scored
        names = [m for m in ("gaussian", "spatiotemporal", *models) if m in starts[0].scores]
        lines += ["", SERIES_START_NOTE.format(n=n), ""]
        lines += ["| " + " | ".join(["photons", *names]) + " |", "|" + "---|" * (len(names) + 1)]
        for r in starts:
            cells = [f"{r.photons:g}"]
            cells += [_num(r.scores[f"{name}@series-start"].psnr) for name in names]
            lines.append("| " + " | ".join(cells) + " |")
    snapped = [m for m in models if rows and f"{m}@snapshot" in rows[0].scores]
    if snapped:
        names = ["gaussian"] + [n for m in snapped for n in (m, f"{m}@snapshot")]
        lines += ["", SNAPSHOT_NOTE, ""]
        lines += ["| " + " | ".join(["photons", *names]) + " |", "|" + "---|" * (len(names) + 1)]
        for r in rows:
            cells = [f"{r.photons:g}"] + [_num(r.scores[name].psnr) for name in names]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _detail_table(result: EvaluationResult, generator: str) -> list[str]:
    head = ["photons", "method", "PSNR", "SSIM", "trace r", "onset MAE ms", "ms/frame"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in (x for x in result.results if x.generator == generator):
        for name, s in r.scores.items():
            if "@" in name:
                continue
            cells = [f"{r.photons:g}", name, _num(s.psnr), f"{s.ssim:.3f}", _num(s.trace_r)]
            cells += [_num(s.onset_mae_ms), _num(s.runtime_ms_per_frame)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def observations(result: EvaluationResult) -> list[str]:
    """Where each model wins and where it loses, by how much."""
    notes = []
    rows = target_rows(result)
    for info in result.models:
        kind = "temporal" if info.frames > 1 else "spatial"
        for generator in result.generators:
            mine = [r for r in rows if r["model"] == info.name and r["generator"] == generator]
            wins = [r for r in mine if r["margin_db"] >= TARGET_DB]
            worse = [r for r in mine if r["over_input_db"] < 0]
            margins = ", ".join(f"{r['photons']:g}: {r['margin_db']:+.2f}" for r in mine)
            bar = "best causal temporal baseline" if kind == "temporal" else "tuned Gaussian"
            if len(wins) == len(mine):
                verdict = f"meets the +{TARGET_DB:g} dB target at every budget"
            else:
                verdict = (
                    f"meets the +{TARGET_DB:g} dB target at {len(wins)} of {len(mine)} "
                    f"budgets, misses it at {len(mine) - len(wins)}"
                )
            notes.append(
                f"**{info.name}** ({kind}, vs {bar}) on `{generator}`: {verdict} "
                f"(margin in dB by photons: {margins})"
                + (f"; worse than its input at {len(worse)} budget(s)" if worse else "")
                + "."
            )
            notes += _snapshot_note(result, info.name, generator)
    return notes


def _snapshot_note(result: EvaluationResult, model: str, generator: str) -> list[str]:
    """Where ``model``'s frames were also sent one by one: its margin over the tuned
    Gaussian that way, and whether it fell below its input."""
    rows = [r for r in result.results if r.generator == generator]
    name = f"{model}@snapshot"
    if not rows or name not in rows[0].scores:
        return []
    margins = ", ".join(
        f"{r.photons:g}: {r.scores[name].psnr - r.scores['gaussian'].psnr:+.2f}" for r in rows
    )
    worse = [r for r in rows if r.scores[name].psnr < r.scores["noisy"].psnr]
    return [
        f"**{model}**, each frame as its own series (snapshots), on `{generator}`: margin "
        f"over the tuned Gaussian in dB by photons: {margins}"
        + (f"; worse than its input at {len(worse)} budget(s)" if worse else "")
        + "."
    ]


def _camera_note(cameras: list[str]) -> list[str]:
    if not cameras:
        return []
    return [
        "",
        "Each generator's movies are also read out again by other cameras (same scenes and "
        "photons; Poisson, then read noise, rounded to 16-bit counts): "
        + "; ".join(f"`{c}`" for c in cameras)
        + ". Those movies are named after their generator and camera.",
    ]


def _ensemble_note(passes: int) -> list[str]:
    if passes <= 1:
        return []
    return [
        "",
        f"Rows `<model>-x{passes}`: the same model with {passes} self-ensemble passes per "
        f"frame (its outputs on mirrored copies of the input, mirrored back and averaged; "
        f"`deepdenoise serve --ensemble {passes}`, and what the service's default `auto` "
        f"runs when the frame rate leaves the time), at {passes} times the compute.",
    ]


def _blend_note(blend: str) -> list[str]:
    if blend != "off":
        text = (
            f"The noise-adaptive models' outputs are blended with smoothing as the service "
            f"does (`serve --blend {blend}`; `spatial` is the default): a blur of the output "
            f"and a share of a Gaussian of the input"
            + (" or of the series' running mean" if blend == "spatiotemporal" else "")
            + ", chosen per movie by Stein's unbiased risk estimate on its own noisy frames "
            "(no ground truth); every frame due for a measurement gets one, as in a "
            "service with time to spare."
        )
    else:
        text = "The models' outputs are scored as they come, not blended (`--blend off`)."
    return ["", text]


def _saturation_note(saturated: list[dict[str, Any]]) -> list[str]:
    if not saturated:
        return []
    return ["", "**Warning: saturated movies.**", ""] + [f"- {m['warning']}" for m in saturated]


def render(result: EvaluationResult, figures: list[tuple[str, Path]]) -> str:
    s = result.settings
    lines = [
        "# Evaluation",
        "",
        f"Models run through the real engine, frames in order, with **no camera configured**: "
        f"each estimates the camera live from the stream, as `deepdenoise serve` does. "
        f"Movies {s['shape'][0]}x{s['shape'][1]} x {s['frames']} frames per generator and "
        f"photon budget (resting signal of the cells, photons per pixel); test seed "
        f"{s['seed']}, validation seed {s['seed'] + 1}. Baselines marked *tuned on the truth* "
        "are oracles: the bar, not something a user could tune.",
        "",
        "Generators: `independent` is the held-out generator (written apart from the training "
        "data and never trained on: star-shaped somata, processes, AR(2) calcium, gain 1, "
        "read noise 2-5 e-); `phantom` is the project's own calcium phantom; `textures` "
        "(also written apart and never trained on) are still scenes of stars, membranes, "
        "fibres and grain, one per quadrant, with a camera drawn per movie -- for them the "
        "photon budget is the scene's peak (99.9th percentile), not a resting signal; "
        "`fields` shows a new scene of the independent generator every frame (a stage "
        "scan, a tile scan, a z-stack), all read out by one camera.",
        *_camera_note(s.get("cameras", [])),
        *_ensemble_note(int(s.get("ensemble", 1))),
        *_blend_note(str(s.get("blend", "off"))),
        *_saturation_note(s.get("saturated", [])),
        "",
        "Methods: `gaussian` (sigma tuned on the truth), `gaussian-val` (tuned on the "
        "validation movie), `temporal-mean` (causal running mean, K tuned on the truth), "
        "`spatiotemporal` (causal spatial Gaussian + exponential mean, tuned on the truth), "
        "`wiener` (window tuned on the truth), `bm3d-vst` (BM3D after a generalised Anscombe "
        "transform with the true camera, frame subset).",
        "",
        "## Targets",
        "",
    ]
    lines += [f"- {note}" for note in observations(result)]
    for generator in result.generators:
        lines += ["", f"## PSNR (dB), generator `{generator}`", ""]
        lines += _table(result, generator)
    for title, path in figures:
        lines += ["", f"![{title}]({path.name})"]
    for generator in result.generators:
        lines += ["", f"## All metrics, generator `{generator}`", ""]
        lines += _detail_table(result, generator)
    lines += ["", "## Live camera estimates (end of each movie)", ""]
    lines += [
        "| generator | photons | true read noise | model | estimate |",
        "|---|---|---|---|---|",
    ]
    for r in result.results:
        for name, cam in r.cameras.items():
            text = ", ".join(f"{k} {v}" for k, v in cam.items())
            lines.append(
                f"| {r.generator} | {r.photons:g} | {r.read_noise:.2f} | {name} | {text} |"
            )
    return "\n".join(lines) + "\n"


def write_report(result: EvaluationResult, figures: bool = True) -> Path:
    out = result.out_dir
    made: list[tuple[str, Path]] = []
    if figures:
        made.append(("PSNR gain over the tuned Gaussian", gain_figure(result, out / "gain.png")))
        for r in result.results:
            if r.photons in (
                min(x.photons for x in result.results),
                max(x.photons for x in result.results),
            ):
                slug = re.sub(r"[^A-Za-z0-9.]+", "-", r.generator).strip("-")
                name = f"example_{slug}_{r.photons:g}.png"
                made.append(
                    (
                        f"{r.generator} at {r.photons:g} photons",
                        example_figure(result, r, out / name),
                    )
                )
    result.figures = [p for _, p in made]
    path = out / "report.md"
    path.write_text(render(result, made), encoding="utf-8")
    return path
