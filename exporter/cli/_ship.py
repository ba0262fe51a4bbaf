"""``deepdenoise ship``: a maintainer's command that turns a training run into package data
(and ``deepdenoise compose``, which gives a temporal model a spatial series start).

Exports the run's best checkpoint into the engine's ``models/`` folder and writes its
model card from what was measured; ``--reference`` writes the closed-form smoothing
reference (not package data) into ``--out`` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream import DeepDenoiseError
from stream.cli import console, fail
from stream.engine import model_file

from ._hints import EXTRA_HINT

#: ``compose --bands`` below this: too few windows of a kind (about 3 in 4 generated
#: windows are a young series', and a band needs 20 of each) for a measured band.
MIN_BAND_SAMPLES = 50


def ship_command(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A training run folder (best.pt, summary.json).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Shipped model name, e.g. na-lite.")] = None,
    recipe: Annotated[
        Path | None, typer.Option(help="The recipe the run was trained with.")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="An evaluation's metrics.json for the card.")
    ] = None,
    wall_hours: Annotated[
        float | None,
        typer.Option(
            help="Wall time the run has spent in all sessions (from its logs): for a run "
            "still training, or one resumed (its summary.json counts the last session).",
        ),
    ] = None,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference",
            help="Write the gaussian-smooth reference (a fixed Gaussian) into --out.",
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder for --reference.")] = Path("."),
) -> None:
    """Ship a trained run as a packaged model with its card (or write the smoothing reference)."""
    try:
        from exporter.ship import ship
        from exporter.simple_models import write_default_model
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    try:
        if reference:
            out.mkdir(parents=True, exist_ok=True)
            path = write_default_model(out)
        elif run_dir is None or name is None or recipe is None:
            raise fail("give RUN_DIR, --name and --recipe (or --reference)")
        else:
            path = ship(run_dir, name, recipe, metrics, wall_hours=wall_hours)
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    console.print(f"wrote {path} and {path.with_suffix('.md')}", highlight=False)


def compose_command(
    temporal: Annotated[
        Path, typer.Argument(help="A temporal model (.onnx, K > 1 frames, or a shipped name).")
    ],
    spatial: Annotated[
        Path, typer.Argument(help="A spatial model read the same way (or a shipped name).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The composed model.")],
    bands: Annotated[
        int,
        typer.Option(
            "--bands",
            help="Generated windows (of each kind: a young series' partial window, a full "
            "window) on which to measure in which light the temporal model beats the "
            "spatial one; the spatial one then answers outside those bands. 0: never; "
            f"else at least {MIN_BAND_SAMPLES} (the shipped model: 1500).",
            min=0,
        ),
    ] = 0,
) -> None:
    """Compose a temporal model with a spatial one that answers when it has no previous
    frame (a series start, after a gap): one ONNX file, both graphs behind an If."""
    if 0 < bands < MIN_BAND_SAMPLES:  # fewer windows leave too few of a kind to measure
        raise typer.BadParameter(
            f"expected 0 or at least {MIN_BAND_SAMPLES} windows, got {bands}",
            param_hint="--bands",
        )
    try:
        from exporter.compose import with_spatial_start
        from exporter.light_bands import WINDOWS, describe, measure_band
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    try:
        temporal, spatial = model_file(temporal), model_file(spatial)
        measured = {}
        for window in WINDOWS if bands else ():
            band = measure_band(temporal, spatial, window, samples=bands)
            console.print(describe(band) + "\n", highlight=False)
            measured[window] = (band.low, band.high)
        meta = with_spatial_start(temporal, spatial, out, measured)
    except (DeepDenoiseError, OSError, ValueError) as exc:
        raise fail(exc) from exc
    band_text = "".join(
        f"; outside peak SNR {lo:g}-{hi:g} for {window} windows"
        for window, (lo, hi) in measured.items()
    )
    console.print(
        f"wrote {out}: {temporal.name} ({meta.frames} frames), {spatial.name} at a series "
        f"start{band_text}",
        highlight=False,
    )


def _band(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    try:
        band = (float(low), float(high))
    except ValueError:
        raise fail(f"expected --band LOW:HIGH (two peak SNRs), got {text!r}") from None
    if not 0 < band[0] < band[1]:
        raise fail(f"expected --band LOW:HIGH with 0 < LOW < HIGH, got {text!r}")
    return band


def pass_through_command(
    model: Annotated[
        Path, typer.Argument(help="A noise-adaptive model (.onnx, or a shipped model's name).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The model with the band.")],
    samples: Annotated[
        int,
        typer.Option(
            help="Generated scenes (300 to 100,000 photons) on which to measure where the "
            "model's output should give way to its input.",
            min=50,
        ),
    ] = 1200,
    band: Annotated[
        str | None,
        typer.Option(
            help="LOW:HIGH peak SNRs to write instead of measuring (e.g. the band measured "
            "on a composed model's spatial start, which answers its bright frames)."
        ),
    ] = None,
) -> None:
    """Blend a model's output toward its input in more light than it was trained for:
    measure the band of peak SNR on generated scenes (or take --band) and write it in."""
    try:
        from exporter.pass_through import check_output, describe, measure, with_pass_through
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    try:
        model = model_file(model)  # a shipped model's name: its file
        check_output(model, out)  # before measuring: the input itself, a folder
        if band is None:
            found = measure(model, samples=samples)
            console.print(describe(found) + "\n", highlight=False)
            chosen = (found.low, found.high)
        else:
            chosen = _band(band)
        meta = with_pass_through(model, out, chosen)
    except (DeepDenoiseError, OSError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(
        f"wrote {out}: output blended toward the input over peak SNR {chosen[0]:g}-"
        f"{chosen[1]:g} (content hash {meta.content_hash})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("ship")(ship_command)
    app.command("compose")(compose_command)
    app.command("pass-through")(pass_through_command)
