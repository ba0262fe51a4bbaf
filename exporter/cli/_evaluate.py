"""``deepdenoise evaluate`` (offline: needs the ``train`` extra).

The evaluation (scipy, matplotlib, bm3d) is imported only inside the command body, so
``deepdenoise --help`` and the online commands never load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from stream import DeepDenoiseError, ModelError
from stream.cli import console, err_console, fail, parse_shape
from stream.engine import check_passes, model_file

from ._hints import EXTRA_HINT


def _parse_numbers(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated numbers such as 1,3,10, got {text!r}"
        ) from None
    if not values or any(not 0 < v < float("inf") for v in values):
        raise typer.BadParameter(f"expected one or more positive, finite {what}, got {text!r}")
    return values


def _model_file(model: Path) -> Path:
    """A model argument as a file: the path given, or the shipped model of that name."""
    try:
        path = model_file(model)
    except ModelError as exc:
        raise typer.BadParameter(str(exc), param_hint="MODELS") from None
    if not path.is_file():
        raise typer.BadParameter(
            f"expected an ONNX model file or a shipped model's name, got {str(model)!r}",
            param_hint="MODELS",
        )
    return path


def evaluate(
    models: Annotated[
        list[Path],
        typer.Argument(
            help="ONNX models to evaluate: files, or shipped models' names (na-lite, "
            "na-temporal, na-large)."
        ),
    ],
    photons: Annotated[
        str, typer.Option(help="Photon budgets: resting signal of the cells, photons per pixel.")
    ] = "1,3,10,30,100",
    generators: Annotated[
        str,
        typer.Option(
            help="Test-movie generators: independent (held out), phantom, textures, "
            "fields (a new independent scene every frame)."
        ),
    ] = "independent,phantom,textures",
    out: Annotated[
        Path, typer.Option(help="Output folder: report.md, figures, metrics.json.")
    ] = Path("evaluation"),
    frames: Annotated[int, typer.Option(min=4, help="Test movie length per budget.")] = 48,
    shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "128x128",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the test movies (+1: validation).")] = 0,
    bm3d_frames: Annotated[
        int, typer.Option(min=0, help="Frames per budget BM3D runs on (slow; 0: skip).")
    ] = 2,
    provider: Annotated[
        str, typer.Option(help="ONNX Runtime provider for the models: cpu, cuda, auto.")
    ] = "cpu",
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Skip the PNGs.")] = False,
    adapt_minutes: Annotated[
        float,
        typer.Option(
            min=0,
            help="Also adapt each model to every test movie (as the user's recording) for "
            "this many minutes, and train Noise2Void from scratch for as long (0: off); "
            "the models are kept in OUT/adapted/.",
        ),
    ] = 0.0,
    adapt_scratch: Annotated[
        bool,
        typer.Option(
            "--adapt-scratch/--no-adapt-scratch",
            help="With --adapt-minutes, also train Noise2Void from scratch for comparison.",
        ),
    ] = True,
    cameras: Annotated[
        str,
        typer.Option(
            help="Also read every generator's movies out again by these cameras, "
            "GAIN:OFFSET:READ[:F2[:HOT[:NOISY[:ROWS[:COLUMNS]]]]] (ADU per e-, ADU, e-; for "
            "an EMCCD or photomultiplier the square of its excess noise factor, F2 (about "
            "2), else 1; the fractions of hot pixels and of noisy ones, read at 5-20 e-; "
            "each row's offset per frame, and each column's fixed offset, e- rms), "
            "comma-separated, e.g. 0.25:0:6,4:1000:0.5,20:500:0.5:2,1:100:3:1:0.001,"
            "0.5:100:1.5:1:0:0.01,0.5:100:1.5:1:0:0:1.5,0.5:100:1.5:1:0:0:0:0.7.",
        ),
    ] = "",
    ensemble: Annotated[
        int,
        typer.Option(
            help="Also score every model with this many self-ensemble passes per frame "
            "(2 or 4: mirrored copies averaged, as `serve --ensemble`); 1: off.",
        ),
    ] = 1,
    blend: Annotated[
        Literal["spatial", "spatiotemporal", "off"],
        typer.Option(
            help="The models' outputs blended with smoothing as `serve --blend` does "
            "(Stein's unbiased risk estimate on each movie's own frames); spatial, as "
            "served by default; off: as they come.",
        ),
    ] = "spatial",
    snapshots: Annotated[
        bool,
        typer.Option(
            help="Also score every model on each frame sent as a series of its own "
            "(single images: the camera estimated from that frame alone, blended on its "
            "own measurement only).",
        ),
    ] = False,
) -> None:
    """Score models against tuned classical baselines over photon budgets and generators."""
    budgets = tuple(_parse_numbers(photons, "photon budgets"))
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"expected a folder for the report, got the file {out}")
    try:
        check_passes(ensemble)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ensemble") from None
    names = tuple(g.strip() for g in generators.split(",") if g.strip())
    if not names:
        raise typer.BadParameter(
            f"expected one or more generators, got {generators!r}", param_hint="--generators"
        )
    size = parse_shape(shape, minimum=16)
    try:
        from exporter.evaluation import evaluate as run_evaluation
        from exporter.evaluation import parse_cameras
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    try:
        readouts = parse_cameras(cameras)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cameras") from None
    files = [_model_file(model) for model in models]
    try:
        result = run_evaluation(
            files,
            out,
            photons=budgets,
            generators=names,
            frames=frames,
            shape=size,
            seed=seed,
            bm3d_frames=bm3d_frames,
            provider=provider,
            figures=not no_figures,
            adapt_minutes=adapt_minutes,
            adapt_scratch=adapt_scratch,
            cameras=readouts,
            ensemble=ensemble,
            blend=blend,
            snapshots=snapshots,
        )
    except (DeepDenoiseError, ValueError, OSError) as exc:
        raise fail(exc) from exc
    for movie in result.settings.get("saturated", []):  # also in the report
        err_console.print(
            f"[bold yellow]warning:[/] {escape(movie['warning'])}", highlight=False, soft_wrap=True
        )
    console.print(f"wrote {result.report} and {result.metrics}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""
    app.command()(evaluate)
