"""The ``deepdenoise`` command line.

Commands import what they need inside their bodies so ``deepdenoise --help`` stays
instant and the online commands never pull in the offline (torch) half.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from ._cli_evaluate import register as register_evaluate
from ._cli_train import register as register_train
from ._config import DEFAULT_CONTROL, DEFAULT_INPUT, DEFAULT_OUTPUT
from ._errors import DeepDenoiseError
from ._version import __version__

app = typer.Typer(
    name="deepdenoise",
    help="Streaming real-time denoiser for live microscopy (ZeroMQ in, ONNX Runtime, "
    "ZeroMQ + Zarr out).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"deepdenoise {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        typer.Option("--log-level", help="Logging verbosity (to stderr)."),
    ] = "info",
) -> None:
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(2)


@app.command()
def serve(
    model: Annotated[
        Path | None, typer.Option(help="ONNX model. Default: the shipped default model.")
    ] = None,
    input: Annotated[
        str | None,
        typer.Option("--input", help=f"Acquisition endpoint. [default: {DEFAULT_INPUT}]"),
    ] = None,
    input_mode: Annotated[
        Literal["sub", "pull"] | None,
        typer.Option(help="sub: subscribe to the acquisition PUB (default); pull: lossless."),
    ] = None,
    input_bind: Annotated[
        bool | None,
        typer.Option(
            "--input-bind/--input-connect", help="Bind the input socket instead of connecting."
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help=f"PUB endpoint for denoised frames, status, events. [default: {DEFAULT_OUTPUT}]"
        ),
    ] = None,
    control: Annotated[
        str | None, typer.Option(help=f"REP control endpoint. [default: {DEFAULT_CONTROL}]")
    ] = None,
    zarr: Annotated[
        Path | None,
        typer.Option(help="Folder for <series>.zarr stores. [default: ./deepdenoise-data]"),
    ] = None,
    no_zarr: Annotated[bool, typer.Option("--no-zarr", help="Do not write to disk.")] = False,
    tile: Annotated[
        int | None, typer.Option(help="Largest tile side; frames that fit run whole.")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Tile overlap in pixels (>= 2 x receptive-field radius).")
    ] = None,
    provider: Annotated[
        Literal["auto", "cpu", "cuda", "tensorrt"] | None,
        typer.Option(help="ONNX Runtime provider; auto: TensorRT, CUDA, then CPU."),
    ] = None,
    output_dtype: Annotated[
        Literal["float32", "input"] | None,
        typer.Option(
            help="Denoised payload dtype: float32, or the input dtype (rounded, clipped)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config file; command-line options override it.")
    ] = None,
) -> None:
    """Denoise frames from an acquisition program until stopped (Ctrl-C, SIGTERM, `stop`)."""
    from ._config import load_config
    from ._service import Service

    try:
        cfg = load_config(
            config,
            model=model,
            input=input,
            input_mode=input_mode,
            input_bind=input_bind,
            output=output,
            control=control,
            zarr=zarr,
            tile=tile,
            overlap=overlap,
            provider=provider,
            output_dtype=output_dtype,
        )
        if no_zarr:
            cfg = cfg.model_copy(update={"zarr": None})
        service = Service(cfg)
        service.start()
    except (DeepDenoiseError, OSError) as exc:
        raise _fail(exc) from exc

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("deepdenoise").info("%s: stopping", signal.Signals(signum).name)
        service.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    assert service.engine is not None
    err_console.print(
        f"[bold green]deepdenoise serving[/] model {service.engine.model_id} on "
        f"{service.engine.provider}; input {service.endpoints['input']}, output "
        f"{service.endpoints['output']}, control {service.endpoints['control']}"
    )
    while not service.wait(0.5):
        pass
    try:
        service.stop()
    except Exception as exc:
        raise _fail(exc) from exc


@app.command()
def simulate(
    endpoint: Annotated[str, typer.Option(help="Where frames go.")] = DEFAULT_INPUT,
    mode: Annotated[
        Literal["pub", "push"], typer.Option(help="pub (waits for a subscriber) or push.")
    ] = "pub",
    connect: Annotated[bool, typer.Option("--connect", help="Connect instead of binding.")] = False,
    shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "512x512",
    fps: Annotated[float, typer.Option(help="Frames per second; 0 = as fast as possible.")] = 30.0,
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 300,
    series: Annotated[str, typer.Option(help="Series name (also the store name).")] = "sim",
    dtype: Annotated[
        Literal["uint8", "uint16", "int16", "float32"], typer.Option(help="Pixel type.")
    ] = "uint16",
    pool: Annotated[
        int, typer.Option(help="Pre-generate this many noisy frames and cycle them (0: live).")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Random seed of the phantom.")] = 0,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a subscriber (pub).")] = 30.0,
) -> None:
    """A simulated microscope: a calcium-imaging phantom with camera noise, over ZeroMQ."""
    from rich.progress import Progress

    from ._simulator import Simulator, SimulatorConfig

    try:
        cfg = SimulatorConfig(
            endpoint=endpoint,
            mode=mode,
            bind=not connect,
            shape=_parse_shape(shape),
            fps=fps,
            frames=frames,
            series=series,
            dtype=dtype,
            pool=pool,
            seed=seed,
            wait_subscriber_s=wait,
        )
        with Simulator(cfg) as sim, Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(f"{series}: sending", total=frames)
            report = sim.run(progress=lambda n: progress.update(task, completed=n))
    except (DeepDenoiseError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(
        f"sent {report.frames} frames in {report.seconds:.2f} s "
        f"({report.fps:.1f} fps) to {endpoint}"
    )


@app.command()
def status(
    control: Annotated[str, typer.Option(help="The service's control endpoint.")] = DEFAULT_CONTROL,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a reply.")] = 3.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print raw JSON.")] = False,
) -> None:
    """Ask a running service for its status and print it."""
    import json

    from ._status_client import request

    try:
        reply = request(control, {"cmd": "status"}, timeout)
    except (DeepDenoiseError, OSError) as exc:
        raise _fail(exc) from exc
    if json_out:
        console.print_json(json.dumps(reply))
        return
    console.print(status_table(reply))


def status_table(reply: dict[str, Any]) -> Table:
    table = Table(title="deepdenoise status", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    lat = reply.get("latency_ms", {})
    rows = [
        ("state", f"{reply.get('state')}{' (paused)' if reply.get('paused') else ''}"),
        ("uptime", f"{reply.get('uptime_s', 0):.1f} s"),
        ("model / provider", f"{reply.get('model')} / {reply.get('provider')}"),
        ("frames in / out", f"{reply.get('frames_in')} / {reply.get('frames_out')}"),
        ("fps (recent)", f"{reply.get('fps')}"),
        ("latency p50 / p99", f"{lat.get('p50', 0):.2f} / {lat.get('p99', 0):.2f} ms"),
        ("dropped", _counts(reply.get("dropped"))),
        ("rejected", _counts(reply.get("rejected"))),
        ("non-finite frames", _counts(reply.get("sanitized"))),
        ("queues", _counts(reply.get("queues"))),
        ("zarr", str(reply.get("zarr"))),
    ]
    for name, counters in (reply.get("series") or {}).items():
        rows.append(
            (
                f"series {name}",
                f"in {counters.get('frames_in')}, out {counters.get('frames_out')}, "
                f"last index {counters.get('last_index')}, missing {counters.get('missing')}",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    return table


def _counts(mapping: dict[str, int] | None) -> str:
    return ", ".join(f"{k}: {v}" for k, v in (mapping or {}).items()) or "none"


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="An .onnx model or a <series>.zarr store.")],
) -> None:
    """Show a model's metadata or a store's summary."""
    from ._info import describe

    try:
        title, rows = describe(path)
    except (DeepDenoiseError, OSError) as exc:
        raise _fail(exc) from exc
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long to stream.")] = 5.0,
    fps: Annotated[float, typer.Option(help="Simulated acquisition rate.")] = 30.0,
    shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "256x256",
    out: Annotated[Path, typer.Option(help="Where the Zarr store goes.")] = Path("demo-output"),
    model: Annotated[Path | None, typer.Option(help="Model (default: the shipped one).")] = None,
) -> None:
    """Simulator → service → subscriber for a few seconds, then a summary table."""
    from exporter.demo import DemoConfig, run_demo

    try:
        result = run_demo(
            DemoConfig(seconds=seconds, fps=fps, shape=_parse_shape(shape), out=out, model=model),
            console=err_console,
        )
    except (DeepDenoiseError, OSError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(result.table())


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH such as 512x512, got {text!r}") from None
    return height, width


# The offline commands (train, export, evaluate) import torch inside their bodies only.
register_train(app)
register_evaluate(app)


def main() -> None:
    app()
