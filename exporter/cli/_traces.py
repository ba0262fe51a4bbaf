"""``deepdenoise train-traces``: train the causal trace-denoiser candidates, score them on
held-out traces against causal filters, and export the one the measurement chooses."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from stream import ConfigError
from stream.cli import console, fail

from ._hints import EXTRA_HINT

#: A candidate must run a frame of this many ROIs within --budget-ms to be chosen.
ROIS = 1000
#: Exit status of a finished run in which no candidate met --budget-ms (its report and
#: metrics are written; no model is chosen).
EXIT_OVER_BUDGET = 3


def train_traces(
    out: Annotated[
        Path, typer.Option(help="Output folder: models, report.md, metrics.json.")
    ] = Path("runs/traces"),
    steps: Annotated[int, typer.Option(min=1, help="Training steps per candidate.")] = 4000,
    window: Annotated[int, typer.Option(min=4, max=256, help="Samples each model sees.")] = 32,
    architectures: Annotated[str, typer.Option(help="Candidates: mlp, cnn, gru.")] = "mlp,cnn,gru",
    seed: Annotated[int, typer.Option(min=0)] = 0,
    budget_ms: Annotated[
        float,
        typer.Option(
            min=0.01,
            help=f"Milliseconds a candidate may take for a frame of {ROIS} ROIs on this "
            "machine to be chosen.",
        ),
    ] = 1.0,
    ship: Annotated[
        bool, typer.Option("--ship", help="Copy the chosen model into stream/traces/models.")
    ] = False,
) -> None:
    """Train causal 1-D trace denoisers; choose by held-out measurement; export to ONNX.
    Exits with status 3 (report.md and metrics.json written, nothing chosen) when no
    candidate meets --budget-ms."""
    try:
        from exporter.traces import (
            ARCHITECTURES,
            check_output_folder,
            evaluate_traces,
            export_trace_model,
            report,
            train_trace_model,
        )
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    names = [a.strip() for a in architectures.split(",") if a.strip()]
    unknown = [name for name in names if name not in ARCHITECTURES]
    if unknown or not names:  # before any training: a typo must not cost the others' run
        raise typer.BadParameter(
            f"expected one or more of {', '.join(ARCHITECTURES)}, comma-separated, got "
            f"{architectures!r}",
            param_hint="--architectures",
        )
    try:  # before any training: a file in the way would cost the whole run
        check_output_folder(out)
    except ConfigError as exc:
        raise fail(exc) from exc
    paths, budgets = {}, {}
    for arch in names:
        model, budget = train_trace_model(arch, window, steps, seed=seed, log=console.print)
        paths[arch] = export_trace_model(
            model,
            window,
            out / f"trace-{arch}.onnx",
            {
                "deepdenoise.architecture": f"trace-{arch}",
                "deepdenoise.training_data": "exporter.traces generated dF/F windows",
                "deepdenoise.budget": json.dumps(budget),
            },
        )
        budgets[arch] = budget
    result = evaluate_traces(paths, window, seed=seed)
    fast = [a for a in names if result.runtime_ms.get(a, 1e9) <= budget_ms]
    chosen = max(fast, key=lambda a: result.mean(a, "correlation")) if fast else None
    text = report(result, budgets, chosen or "")
    if chosen is not None:
        text += (
            f"\nChosen: `{chosen}`, the best mean correlation among the candidates that run "
            f"{ROIS} ROIs within {budget_ms} ms per frame on this machine.\n"
        )
    else:  # the run is kept: its scores tell which budget would choose what
        text += (
            f"\nNo model met the budget: no candidate runs {ROIS} ROIs within {budget_ms} "
            "ms per frame on this machine (ms per frame: "
            + ", ".join(f"{a} {result.runtime_ms.get(a, float('nan')):.3g}" for a in names)
            + "), so none is chosen and trace-denoiser.onnx is not written.\n"
        )
    (out / "report.md").write_text(text, encoding="utf-8")
    metrics = {"scores": [asdict(s) for s in result.scores], "runtime_ms": result.runtime_ms,
               "budgets": budgets, "chosen": chosen, "window": window,
               "budget_ms": budget_ms}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    console.print(text, highlight=False)
    if chosen is None:
        fail(
            f"no candidate runs {ROIS} ROIs within {budget_ms} ms on this machine: "
            f"{result.runtime_ms}; nothing chosen or shipped. The candidates, report.md and "
            f"metrics.json are in {out}; choose a budget from them (--budget-ms)"
        )
        raise typer.Exit(EXIT_OVER_BUDGET)
    shutil.copyfile(paths[chosen], out / "trace-denoiser.onnx")
    if ship:
        from stream.traces import SHIPPED_TRACE_MODEL

        SHIPPED_TRACE_MODEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[chosen], SHIPPED_TRACE_MODEL)
        SHIPPED_TRACE_MODEL.with_suffix(".md").write_text(text, encoding="utf-8")
        console.print(f"shipped {SHIPPED_TRACE_MODEL}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train-traces")(train_traces)
