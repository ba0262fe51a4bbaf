"""``deepdenoise simulate``: a simulated microscope streaming a phantom over ZeroMQ."""

from __future__ import annotations

import signal
import threading
from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError

from .._errors import DeepDenoiseError
from .._settings import describe_validation_error
from .._types import DEFAULT_INPUT
from ._common import console, counted, err_console, fail, handling_signals, parse_shape


def simulate(
    endpoint: Annotated[str, typer.Option(help="Where frames go.")] = DEFAULT_INPUT,
    mode: Annotated[
        Literal["pub", "push"], typer.Option(help="pub (waits for a subscriber) or push.")
    ] = "pub",
    connect: Annotated[bool, typer.Option("--connect", help="Connect instead of binding.")] = False,
    shape: Annotated[str, typer.Option(help="Frame size HEIGHTxWIDTH.")] = "256x256",
    fps: Annotated[float, typer.Option(help="Frames per second; 0 = as fast as possible.")] = 30.0,
    frames: Annotated[
        int, typer.Option(help="Number of frames; 0 = until stopped (Ctrl-C).")
    ] = 300,
    series: Annotated[str, typer.Option(help="Series name (also the store name).")] = "sim",
    dtype: Annotated[
        Literal["uint8", "uint16", "int16", "float32"], typer.Option(help="Pixel type.")
    ] = "uint16",
    pool: Annotated[
        int, typer.Option(help="Pre-generate this many noisy frames and cycle them (0: live).")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Random seed of the phantom.")] = 0,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for a subscriber (pub) or a receiver (push)."),
    ] = 30.0,
) -> None:
    """A simulated microscope: a calcium-imaging phantom with camera noise, over ZeroMQ."""
    from rich.progress import Progress

    from ..sim import Simulator, SimulatorConfig

    try:
        cfg = SimulatorConfig(
            endpoint=endpoint,
            mode=mode,
            bind=not connect,
            shape=parse_shape(shape),
            fps=fps,
            frames=frames,
            series=series,
            dtype=dtype,
            pool=pool,
            seed=seed,
            wait_subscriber_s=wait,
        )
    except ValidationError as exc:
        raise fail(describe_validation_error(exc, "options")) from exc
    stop = threading.Event()
    try:
        with (
            _stopped_by_signals(stop),
            Simulator(cfg) as sim,
            Progress(console=err_console, transient=True) as progress,
        ):
            peer = "a subscriber" if mode == "pub" else "a receiver (the service's PULL)"
            task = progress.add_task(
                f"{series}: waiting up to {wait:g} s for {peer} on {sim.endpoint}, then sending",
                total=frames or None,
            )
            report = sim.run(progress=lambda n: progress.update(task, completed=n), stop=stop)
    except (DeepDenoiseError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(
        f"sent {counted(report.frames, 'frame')} in {report.seconds:.2f} s "
        f"({report.fps:.1f} fps) to {report.endpoint}"
        + (", stopped early (the series' end was sent)" if report.stopped else ""),
        highlight=False,
    )
    if report.late:
        err_console.print(
            f"[yellow]warning:[/] the simulator fell behind {fps:g} fps: {report.late} of "
            f"{report.frames} frames left more than one frame period late (drawing live noise "
            "costs CPU; --pool N pre-generates frames, a smaller --shape or --fps keeps up)",
            highlight=False,
        )


def _stopped_by_signals(stop: threading.Event) -> AbstractContextManager[None]:
    """Ctrl-C or SIGTERM ends the run between frames, so the series' ``end`` still goes
    out (the service would hold the series open until its idle end) and the summary is
    printed; a second Ctrl-C interrupts at once."""

    def on_signal(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    return handling_signals(on_signal, signal.SIGINT, signal.SIGTERM)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
