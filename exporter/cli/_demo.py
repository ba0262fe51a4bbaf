"""``deepdenoise demo``: simulator -> service -> subscriber, a summary and a preview."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from stream import DeepDenoiseError
from stream.cli import console, err_console, fail, parse_shape

if TYPE_CHECKING:
    from pydantic import ValidationError

#: Exit status after Ctrl-C (128 + SIGINT), as the shell gives.
EXIT_INTERRUPTED = 130


def demo(
    seconds: Annotated[float, typer.Option(help="How long to stream.")] = 5.0,
    # the default: exporter.demo.DEMO_FPS (imported lazily)
    fps: Annotated[float, typer.Option(help="Simulated acquisition rate.")] = 20.0,
    shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "256x256",
    out: Annotated[Path, typer.Option(help="Where the Zarr store goes.")] = Path("demo-output"),
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX model.", show_default="the shipped default for the provider"),
    ] = None,
    blend: Annotated[
        Literal["spatial", "spatiotemporal", "off"],
        typer.Option(help="The service's blend with smoothing (as `serve --blend`)."),
    ] = "spatial",
) -> None:
    """Simulator -> service -> subscriber for a few seconds, then a summary table
    (Ctrl-C: the summary so far, exit status 130)."""
    try:
        from pydantic import ValidationError

        from exporter.demo import DemoConfig, run_demo
    except ImportError as exc:
        raise fail(f"demo needs the demo extra: pip install 'deepdenoise[demo]' ({exc})") from exc
    try:  # pydantic checks the values; its errors become one line naming the option
        config = DemoConfig(
            seconds=seconds, fps=fps, shape=parse_shape(shape), out=out, model=model, blend=blend
        )
    except ValidationError as exc:
        raise fail(_option_error(exc)) from exc
    try:
        result = run_demo(config, console=err_console)
    except (DeepDenoiseError, OSError, ValueError) as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:  # before or after the streaming (during it: a summary)
        console.print("interrupted", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console.print(result.table())
    if result.interrupted:
        stored = (
            f"; the store {result.store} is closed"
            if result.store is not None and result.store.exists()
            else ""
        )
        console.print(
            f"interrupted: {result.frames_sent} frames sent, {result.frames_received} "
            f"denoised{stored}",
            highlight=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED)


def _option_error(exc: ValidationError) -> str:
    """Pydantic's multi-line dump as one line: the option, what was expected, what came."""
    said = []
    for err in exc.errors():
        option = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "options"
        expected = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        said.append(f"{option}: expected {expected}, got {err.get('input')!r}")
    return "; ".join(said)


def register(app: typer.Typer) -> None:
    app.command()(demo)
