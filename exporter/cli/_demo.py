"""``deepdenoise demo``: simulator -> service -> subscriber, a summary and a preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream import DeepDenoiseError
from stream.cli import console, err_console, fail, parse_shape


def demo(
    seconds: Annotated[float, typer.Option(help="How long to stream.")] = 5.0,
    fps: Annotated[float, typer.Option(help="Simulated acquisition rate.")] = 30.0,
    shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "256x256",
    out: Annotated[Path, typer.Option(help="Where the Zarr store goes.")] = Path("demo-output"),
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX model.", show_default="the shipped default for the provider"),
    ] = None,
) -> None:
    """Simulator -> service -> subscriber for a few seconds, then a summary table."""
    try:
        from exporter.demo import DemoConfig, run_demo
    except ImportError as exc:
        raise fail(f"demo needs the demo extra: pip install 'deepdenoise[demo]' ({exc})") from exc
    try:
        result = run_demo(
            DemoConfig(seconds=seconds, fps=fps, shape=parse_shape(shape), out=out, model=model),
            console=err_console,
        )
    except (DeepDenoiseError, OSError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(result.table())


def register(app: typer.Typer) -> None:
    app.command()(demo)
