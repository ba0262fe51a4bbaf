"""The evaluation report: ``report.md`` with tables, figures and observations.

Observations are generated from the numbers (which method wins where, what temporal
averaging costs in onset timing, how each model fares away from its training noise), so
the text cannot drift from the tables. Figures use matplotlib's Agg backend: no display
needed, and ``stream`` never imports this module.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._results import EvaluationResult, LevelResult, MethodScore

log = logging.getLogger(__name__)

#: Methods shown in the trace figure, besides the models (the brief's comparison set).
_TRACE_METHODS = ("noisy", "boxcar", "gaussian")
_LABELS = {
    "noisy": "noisy input",
    "gaussian": "Gaussian (spatial)",
    "boxcar": "box-car (causal, time)",
    "wiener": "Wiener (spatial)",
    "bm3d": "BM3D (subset)",
    "clean": "ground truth",
}


def _num(value: float, fmt: str = ".2f", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return format(value, ("+" if signed else "") + fmt)


def _lv(level: float) -> str:
    return f"{level:g}"


def _label(name: str) -> str:
    return _LABELS.get(name, name)


_FIXED = {"noisy": "gray", "gaussian": "tab:orange", "boxcar": "tab:green",
          "wiener": "tab:brown", "bm3d": "tab:purple"}  # fmt: skip
_MODEL_COLORS = ("tab:blue", "tab:red", "tab:pink", "tab:cyan", "tab:olive", "black")


def _color(result: EvaluationResult, name: str) -> str:
    """One colour per method across all figures (models cycle through their own set)."""
    if name in _FIXED:
        return _FIXED[name]
    names = [m.name for m in result.models]
    return _MODEL_COLORS[names.index(name) % len(_MODEL_COLORS)] if name in names else "black"


# -- figures ---------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def _example_figure(lv: LevelResult, path: Path) -> Path:
    plt = _plt()
    from matplotlib.patches import Rectangle

    names = [n for n in lv.example if n != "clean"] + ["clean"]
    clean = lv.example["clean"]
    lo, hi = np.percentile(clean, [0.5, 99.5])
    zy, zx = lv.zoom
    zlo, zhi = np.percentile(clean[zy, zx], [0.5, 99.5])
    fig, axes = plt.subplots(2, len(names), figsize=(2.1 * len(names), 4.6), squeeze=False)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.88, bottom=0.06, wspace=0.05, hspace=0.12)
    for j, name in enumerate(names):
        img = lv.example[name]
        axes[0, j].imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        axes[0, j].add_patch(
            Rectangle(
                (zx.start - 0.5, zy.start - 0.5),
                zx.stop - zx.start,
                zy.stop - zy.start,
                fill=False,
                edgecolor="tab:orange",
                linewidth=1,
            )
        )
        axes[0, j].set_title(_label(name), fontsize=8)
        axes[1, j].imshow(img[zy, zx], cmap="gray", vmin=zlo, vmax=zhi, interpolation="nearest")
        s = lv.scores.get(name)
        axes[1, j].set_xlabel(f"{s.psnr:.1f} dB" if s else "reference", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].set_ylabel("zoom", fontsize=8)
    fig.suptitle(
        f"noise level {_lv(lv.level)}: test frame {lv.example_frame} (PSNR over the whole movie;"
        " BM3D over its subset)",
        fontsize=9,
    )
    return _save(fig, path)


def _metrics_figure(result: EvaluationResult, path: Path) -> Path:
    plt = _plt()
    levels = [lv.level for lv in result.levels]
    panels = (
        ("psnr", "PSNR (dB)"),
        ("ssim", "SSIM"),
        ("trace_r", "trace correlation r"),
        ("onset_mae_ms", "onset error (ms, MAE)"),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    fig.subplots_adjust(left=0.07, right=0.98, top=0.95, bottom=0.08, wspace=0.2, hspace=0.35)
    for ax, (key, title) in zip(axes.ravel(), panels, strict=True):
        for name in result.methods:
            vals = [getattr(lv.scores[name], key) for lv in result.levels]
            if all(isinstance(v, float) and math.isnan(v) for v in vals):
                continue
            kind = result.levels[0].scores[name].kind
            style = "-o" if kind == "model" else ("--s" if name == "bm3d" else ":^")
            ax.plot(
                levels, vals, style, label=_label(name), color=_color(result, name), lw=1.5, ms=4
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("noise level (1 = reference)")
        ax.set_xscale("log")
        ax.set_xticks(levels, [_lv(v) for v in levels])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def _traces_figure(result: EvaluationResult, lv: LevelResult, path: Path) -> Path | None:
    if lv.trace_cell is None or "noisy" not in lv.traces:
        return None
    from ._metrics import OnsetDetector

    plt = _plt()
    k = lv.trace_cell
    names = [n for n in _TRACE_METHODS if n in lv.traces] + [m.name for m in result.models]
    ref = lv.traces["clean"][k]
    n_frames = len(ref)
    t_ms = np.arange(n_frames) * 1000.0 / lv.fps
    det = OnsetDetector.for_fps(lv.fps)
    spikes = np.unique(lv.spikes[k])
    iso = det.isolated(spikes, n_frames)
    focus = int(iso[0]) if len(iso) else (int(spikes[0]) if len(spikes) else n_frames // 2)
    z0, z1 = max(0, focus - 2 * det.pre), min(n_frames, focus + det.post + 1)
    fig, axes = plt.subplots(
        len(names),
        2,
        figsize=(11, 1.7 * len(names) + 0.3),
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 1]},
    )
    height = 1.7 * len(names)
    fig.subplots_adjust(
        left=0.08, right=0.98, top=1 - 0.35 / height, bottom=0.6 / height, wspace=0.12, hspace=0.3
    )
    for i, name in enumerate(names):
        est, color = lv.traces[name][k], _color(result, name)
        for j, sl in enumerate((slice(0, n_frames), slice(z0, z1))):
            ax = axes[i, j]
            ax.plot(t_ms[sl], ref[sl], color="black", linewidth=1.2, label="ground truth")
            ax.plot(t_ms[sl], est[sl], color=color, linewidth=1, label=_label(name))
            for s in spikes:
                if sl.start <= s < sl.stop:
                    ax.axvline(s * 1000.0 / lv.fps, color="gray", linestyle=":", linewidth=0.8)
            ax.tick_params(labelsize=7)
        if z0 <= focus < z1 and len(iso):
            for trace, c in ((ref, "black"), (est, color)):
                t_on, _ = det.crossing(trace, focus)
                if math.isfinite(t_on):
                    axes[i, 1].axvline(t_on * 1000.0 / lv.fps, color=c, linewidth=0.8)
        axes[i, 0].set_ylabel(_label(name), fontsize=8)
        axes[i, 0].legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("time (ms); dotted: true spikes")
    axes[-1, 1].set_xlabel("zoom; solid: detected half-rise onsets")
    fig.suptitle(
        f"noise level {_lv(lv.level)}: cell {k}, mean over its footprint (ADU)", fontsize=9
    )
    return _save(fig, path)


def make_figures(result: EvaluationResult) -> list[tuple[str, Path]]:
    """Draw every figure into ``result.out_dir``: ``(caption, path)`` in report order."""
    out = result.out_dir
    figs = [("Metrics against noise level", _metrics_figure(result, out / "metrics_vs_noise.png"))]
    for lv in result.levels:
        key = _lv(lv.level)
        example = _example_figure(lv, out / f"example_L{key}.png")
        figs.append((f"Level {key}: example test frame (top) and zoom (bottom)", example))
        traces = _traces_figure(result, lv, out / f"traces_L{key}.png")
        if traces is not None:
            figs.append((f"Level {key}: one cell's trace against ground truth", traces))
    return figs


# -- observations ----------------------------------------------------------------------


def _best(scores: dict[str, MethodScore], key: str, lowest: bool = False) -> MethodScore | None:
    """Best method on ``key`` among those scored on the whole movie (BM3D's subset is not
    comparable) with a finite value."""
    cands = [
        s
        for s in scores.values()
        if s.method != "bm3d"
        and isinstance(getattr(s, key), float)
        and math.isfinite(getattr(s, key))
    ]
    if not cands:
        return None
    pick = min if lowest else max
    return pick(cands, key=lambda s: getattr(s, key))


def observations(result: EvaluationResult) -> list[str]:
    """Short statements derived from the numbers, one per bullet."""
    notes: list[str] = []
    for lv in result.levels:
        sc, noisy = lv.scores, lv.scores["noisy"]
        parts = []
        for key, what, unit, lowest in (
            ("psnr", "PSNR", " dB", False),
            ("ssim", "SSIM", "", False),
            ("trace_r", "trace r", "", False),
            ("onset_mae_ms", "onset error", " ms", True),
        ):
            b = _best(sc, key, lowest)
            if b is not None:
                parts.append(
                    f"{what}: **{_label(b.method)}** ({_num(getattr(b, key), '.3g')}{unit})"
                )
        line = f"Level {_lv(lv.level)} — best " + "; ".join(parts) + "."
        model = _best({k: v for k, v in sc.items() if v.kind == "model"}, "psnr")
        base = _best({k: v for k, v in sc.items() if v.kind == "baseline"}, "psnr")
        if model is not None and base is not None:
            line += (
                f" Best model {model.method} vs best baseline {_label(base.method)}: "
                f"{_num(model.psnr - base.psnr, '.1f', True)} dB PSNR, "
                f"{_num(model.ssim - base.ssim, '.3f', True)} SSIM."
            )
        notes.append(line)
        box = sc.get("boxcar")
        if box is not None and math.isfinite(box.onset_bias_ms):
            w = int(box.params["window_frames"])
            models = [
                s for s in sc.values() if s.kind == "model" and math.isfinite(s.onset_bias_ms)
            ]
            cmp = ", ".join(f"{s.method} {_num(s.onset_bias_ms, '.0f', True)} ms" for s in models)
            notes.append(
                f"Level {_lv(lv.level)}: the causal box-car (window {w} frames, chosen for "
                f"validation PSNR: {_num(box.psnr - noisy.psnr, '.1f', True)} dB over noisy) "
                f"shifts onsets by {_num(box.onset_bias_ms, '.0f', True)} ms on average "
                f"(expected about {(w - 1) / 2 * 1000 / lv.fps:.0f} ms for a step)"
                + (f"; models: {cmp}." if cmp else ".")
            )
        if "bm3d" in sc and lv.bm3d.get("available"):
            b3, ref_psnr = sc["bm3d"], lv.bm3d.get("noisy_psnr_on_subset", math.nan)
            notes.append(
                f"Level {_lv(lv.level)}: BM3D reaches {_num(b3.psnr)} dB on its "
                f"{b3.frames_scored}-frame subset ({_num(b3.psnr - ref_psnr, '.1f', True)} dB "
                f"over noisy on the same frames) at {_num(b3.runtime_ms_per_frame, '.0f')} "
                "ms/frame."
            )
    for info in result.models:
        gains = [
            (lv.level, lv.scores[info.name].psnr - lv.scores["noisy"].psnr) for lv in result.levels
        ]
        text = ", ".join(f"{_num(g, '.1f', True)} dB at {_lv(x)}" for x, g in gains)
        trained = json.dumps(info.training_noise, sort_keys=True) if info.training_noise else "n/a"
        line = f"Model {info.name} (training noise {trained}): PSNR gain over noisy {text}"
        worse = [
            _lv(lv.level)
            for lv in result.levels
            if lv.scores[info.name].psnr < lv.scores["gaussian"].psnr
        ]
        if worse:
            line += f"; below the tuned Gaussian baseline at level(s) {', '.join(worse)}"
        if any(g < 0 for _, g in gains):
            line += "; **worse than doing nothing** where the gain is negative"
        notes.append(line + ".")
    rates = [
        s.onset_detection_rate
        for lv in result.levels
        for s in lv.scores.values()
        if math.isfinite(s.onset_detection_rate)
    ]
    if rates and min(rates) > 0.95:
        notes.append(
            "Onsets are detected almost everywhere (footprint averaging already removes most "
            "noise from traces), so onset *timing*, not detection, separates the methods."
        )
    return notes


# -- markdown --------------------------------------------------------------------------

_DEFINITIONS = [
    "## How the numbers are computed",
    "",
    "- PSNR: 10 log10(range² / MSE), MSE pooled over all frames, range = the ground truth's "
    "dynamic range (max - min of the clean movie) for every method.",
    "- SSIM: Wang et al. 2004 (Gaussian window sigma 1.5, K1 0.01, K2 0.03), same range, mean "
    "over pixels (border cropped) and frames.",
    "- Trace r: Pearson correlation of the mean over each cell footprint with the same mean on "
    "the ground-truth movie, averaged over cells that spike in the test movie (a perfect "
    "denoiser scores exactly 1; neuropil in the footprint is part of the reference).",
    "- Onsets: for each isolated true spike, the half-amplitude crossing (baseline = median "
    "before the spike, peak within 0.5 s, linear interpolation between frames) on the "
    "method's trace minus the same on the ground-truth trace. Detected = the transient keeps "
    "at least half the true amplitude and 3x the trace noise. Onset error = mean absolute "
    "difference, delay = mean signed difference (positive = late).",
    "- Runtime: wall time per frame on this machine (models through the streaming engine "
    "after one warm-up frame; baselines vectorised over the movie).",
    "",
]


def _score_table(lv: LevelResult) -> list[str]:
    rows = [
        "| method | PSNR (dB) | SSIM | trace r | onset error (ms) | onset delay (ms) "
        "| onsets detected | runtime (ms/frame) | frames |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in lv.scores.values():
        det = (
            f"{_num(s.onset_detection_rate, '.0%')} ({s.onsets_detected}/{s.onsets_reference})"
            if s.onsets_reference
            else "n/a"
        )
        rows.append(
            f"| {_label(s.method)} | {_num(s.psnr)} | {_num(s.ssim, '.4f')} | "
            f"{_num(s.trace_r, '.4f')} | {_num(s.onset_mae_ms, '.1f')} | "
            f"{_num(s.onset_bias_ms, '.1f', True)} | {det} | "
            f"{_num(s.runtime_ms_per_frame, '.2f') if s.kind != 'input' else '—'} | "
            f"{s.frames_scored} |"
        )
    return rows


def _trade_off_table(result: EvaluationResult) -> list[str]:
    head = "| model | " + " | ".join(f"level {_lv(lv.level)}" for lv in result.levels) + " |"
    rows = [head, "|---|" + "---:|" * len(result.levels)]
    for name in [m.name for m in result.models] + ["gaussian", "noisy"]:
        cells = []
        for lv in result.levels:
            s, noisy = lv.scores[name], lv.scores["noisy"]
            gain = f" ({_num(s.psnr - noisy.psnr, '.1f', True)})" if name != "noisy" else ""
            cells.append(
                f"{_num(s.psnr)} dB{gain} · SSIM {_num(s.ssim, '.3f')} · r {_num(s.trace_r, '.3f')}"
            )
        rows.append(f"| {_label(name)} | " + " | ".join(cells) + " |")
    return rows


def render(result: EvaluationResult, figures: list[tuple[str, Path]]) -> str:
    """The report's markdown text."""
    st = result.settings
    lv0 = result.levels[0]
    h, w = st["shape"]
    md = [
        "# deepdenoise evaluation",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| test movie | {st['frames']} frames, {h}x{w} px, {lv0.fps:g} Hz, seed {st['seed']} |",
        f"| validation movie (baseline tuning) | {st['validation_frames']} frames, seed "
        f"{st['validation_seed']} (other cells, spikes and noise) |",
        "| noise levels | "
        + ", ".join(_lv(v) for v in st["levels"])
        + " (multiplier of the reference relative noise; 1 = reference acquisition) |",
        f"| models run on | ONNX Runtime {st['versions']['onnxruntime']}, provider "
        f"{', '.join(st.get('provider_active', [])) or st['provider']}, via the streaming "
        "engine |",
        f"| machine | {st['machine']} |",
        "",
        "## Models",
        "",
        "| name | architecture | training noise | id | receptive field | normalisation "
        "(offset, scale) |",
        "|---|---|---|---|---:|---|",
    ]
    for m in result.models:
        noise = json.dumps(m.training_noise, sort_keys=True) if m.training_noise else "n/a"
        meta = "" if m.has_metadata else " (no deepdenoise metadata)"
        md.append(
            f"| {m.name} | {m.architecture}{meta} | `{noise}` | `{m.model_id}` | "
            f"{m.receptive_field} | {m.input_offset:g}, {m.input_scale:g} |"
        )
    md += [
        "",
        "## Baseline parameters",
        "",
        "Tuned per level on the validation movie by lowest MSE (never on the test movie). "
        "The box-car is **causal** (frame t averages frames t-w+1..t), as a live display "
        "or closed-loop trigger must be. Wiener uses the validation noise rms as the known "
        "noise power; BM3D's sigma is that rms times a factor tuned on validation frames "
        "(it assumes stationary Gaussian noise; shot noise is stronger where cells are).",
        "",
        "| level | noise rms (ADU, test) | Gaussian sigma (px) | box-car window (frames) "
        "| Wiener window (px) | BM3D sigma_psd, normalised (x rms) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in result.levels:
        b = lv.baselines
        md.append(
            f"| {_lv(lv.level)} | {lv.noise_std_adu:.2f} | {b.gaussian.value:g} | "
            f"{b.boxcar.value:g} | {b.wiener.value:g} | "
            f"{_num(lv.bm3d.get('sigma_psd', math.nan), '.4g')}"
            + (f" ({b.bm3d.value:g})" if b.bm3d is not None else "")
            + " |"
        )
    md += ["", "## Results per noise level", ""]
    for lv in result.levels:
        md += [f"### Level {_lv(lv.level)}", "", *_score_table(lv), ""]
        if lv.bm3d.get("note"):
            extra = ""
            if lv.bm3d.get("available"):
                extra = (
                    f" Noisy input on the same frames: "
                    f"{_num(lv.bm3d['noisy_psnr_on_subset'])} dB, SSIM "
                    f"{_num(lv.bm3d['noisy_ssim_on_subset'], '.4f')}."
                )
            md += [f"*{lv.bm3d['note']}{extra}*", ""]
    md += [
        "## Models across noise levels",
        "",
        "PSNR (gain over the noisy input) · SSIM · trace r, for every model at every test "
        "level, with the tuned Gaussian baseline and the noisy input for reference.",
        "",
        *_trade_off_table(result),
        "",
        "## Observations",
        "",
        *[f"- {note}" for note in observations(result)],
        "",
    ]
    if figures:
        md += ["## Figures", ""]
        for caption, path in figures:
            md += [f"{caption}:", "", f"![{caption}]({path.name})", ""]
    md += _DEFINITIONS
    return "\n".join(md)


def write_report(result: EvaluationResult, figures: bool = True) -> Path:
    """Write figures (optional) and ``report.md``; record their paths on ``result``."""
    figs = make_figures(result) if figures else []
    result.figures = [path for _, path in figs]
    result.report = result.out_dir / "report.md"
    result.report.write_text(render(result, figs), encoding="utf-8")
    log.info("report written to %s", result.report)
    return result.report
