"""The ``deepdenoise evaluate`` command (offline: needs the ``train`` extra).

Registered onto the main typer app by :func:`register`; the exporter (scipy, matplotlib,
bm3d) is imported only inside the command body, so ``deepdenoise --help`` and the online
commands never load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


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


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH such as 256x256, got {text!r}") from None
    if height < 8 or width < 8:
        raise typer.BadParameter(f"expected a shape of at least 8x8, got {text!r}")
    return height, width


def _load_data_config(path: Path) -> Any:
    """An ``exporter.data.DataConfig`` from JSON or TOML (a training config's ``data``
    table works too)."""
    import json
    import tomllib

    from pydantic import ValidationError

    from exporter.data import DataConfig

    from ._config import describe_validation_error
    from ._errors import ConfigError

    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}") from exc
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
        raw = raw["data"]
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from exc


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
        from rich.console import Console

        from ._errors import DeepDenoiseError

        err = Console(stderr=True)
        levels = _parse_levels(noise)
        size = _parse_shape(shape)
        try:
            from exporter.evaluate import evaluate as run_evaluation

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
            err.print(f"[bold red]error:[/] evaluate needs the offline extra ({exc})")
            raise typer.Exit(2) from exc
        except (DeepDenoiseError, ValueError, OSError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        Console().print(f"wrote {result.report} and {result.metrics}")
