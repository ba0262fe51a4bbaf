"""``deepdenoise evaluate`` (offline: needs the ``train`` extra).

The evaluation (scipy, matplotlib, bm3d) is imported only inside the command body, so
``deepdenoise --help`` and the online commands never load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stream import DeepDenoiseError
from stream.cli import console, fail, parse_shape

from ._hints import EXTRA_HINT


def _parse_levels(text: str) -> list[float]:
    try:
        levels = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated numbers such as 0.5,1,2, got {text!r}"
        ) from None
    if not levels or any(not lv > 0 for lv in levels):
        raise typer.BadParameter(f"expected one or more positive noise levels, got {text!r}")
    return levels


def _load_data_config(path: Path) -> Any:
    """An ``exporter.data.DataConfig`` from JSON or TOML (a training config's ``data``
    table works too)."""
    from exporter.data import DataConfig
    from stream import load_settings

    return load_settings(DataConfig, path, section="data", path_fields=("noise.recorded",))


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command()
    def evaluate(
        models: Annotated[
            list[Path], typer.Argument(help="ONNX models to evaluate.", exists=True, dir_okay=False)
        ],
        noise: Annotated[
            str, typer.Option(help="Test noise levels, comma-separated (1 = reference).")
        ] = "0.5,1,2",
        out: Annotated[
            Path, typer.Option(help="Output folder: report.md, figures, metrics.json.")
        ] = Path("evaluation"),
        frames: Annotated[int, typer.Option(min=2, help="Test movie length per level.")] = 200,
        shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "256x256",
        seed: Annotated[int, typer.Option(min=0, help="Seed of the test movie.")] = 0,
        validation_frames: Annotated[
            int, typer.Option(min=2, help="Validation movie length (baseline tuning).")
        ] = 64,
        bm3d_frames: Annotated[
            int, typer.Option(min=0, help="Frames per level BM3D runs on (slow; 0: skip).")
        ] = 8,
        provider: Annotated[
            str, typer.Option(help="ONNX Runtime provider for the models: cpu, cuda, auto.")
        ] = "cpu",
        data: Annotated[
            Path | None,
            typer.Option(help="DataConfig as JSON or TOML (phantom, camera noise).", exists=True),
        ] = None,
        no_figures: Annotated[bool, typer.Option("--no-figures", help="Skip the PNGs.")] = False,
    ) -> None:
        """Score models against tuned classical baselines at several noise levels."""
        levels = _parse_levels(noise)
        size = parse_shape(shape, minimum=8)
        try:
            from exporter.evaluation import evaluate as run_evaluation

            result = run_evaluation(
                list(models),
                levels,
                out,
                frames=frames,
                shape=size,
                seed=seed,
                data=_load_data_config(data) if data is not None else None,
                validation_frames=validation_frames,
                bm3d_frames=bm3d_frames,
                provider=provider,
                figures=not no_figures,
            )
        except ImportError as exc:
            raise fail(f"{EXTRA_HINT} ({exc})") from exc
        except (DeepDenoiseError, ValueError, OSError) as exc:
            raise fail(exc) from exc
        console.print(f"wrote {result.report} and {result.metrics}", highlight=False)
