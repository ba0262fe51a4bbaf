"""``deepdenoise adapt``: fine-tune a model on a recording (blind-spot, self-supervised)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream import DeepDenoiseError
from stream.cli import console, fail, kv_table

from ._hints import EXTRA_HINT

#: Exit status when the adapted model is estimated worse than the starting one.
EXIT_WORSE = 3


def adapt_command(
    source: Annotated[
        Path, typer.Argument(help="The recording: a series store (.zarr), .npy or TIFF.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The adapted ONNX model to write.")],
    start: Annotated[
        Path | None,
        typer.Option("--from", help="Model to start from. [default: the CPU default model]"),
    ] = None,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget (resumed runs count).")] = 10.0,
    steps: Annotated[int, typer.Option(help="Optimiser steps at most.", min=1)] = 3000,
    batch: Annotated[int, typer.Option(help="Patches per step.", min=1)] = 8,
    patch: Annotated[int, typer.Option(help="Patch side, px.", min=16)] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    max_frames: Annotated[
        int | None, typer.Option(help="Read only the first frames of the recording.")
    ] = None,
    gain: Annotated[
        float | None, typer.Option(help="Camera gain, ADU/e- (with offset, read noise).")
    ] = None,
    offset: Annotated[float | None, typer.Option(help="Camera offset, ADU.")] = None,
    read_noise: Annotated[float | None, typer.Option(help="Camera read noise, ADU rms.")] = None,
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Fresh weights: Noise2Void from scratch.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the checkpoint next to --out.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the blind-spot sampling.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Adapt a model to your own recording (Noise2Void-style, no clean data); load the
    result into a running service with `deepdenoise load-model`. Exits with status 3
    (the model still written) when the result is estimated worse than the start."""
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from exporter.adapt import AdaptConfig, adapt
        from stream.camera import CameraModel
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    given = (gain, offset, read_noise)
    if any(v is not None for v in given) and not all(v is not None for v in given):
        raise fail("expected --gain, --offset and --read-noise together, or none of them")
    camera = (
        CameraModel(gain=gain, offset=offset, read_noise=read_noise)
        if gain is not None and offset is not None and read_noise is not None
        else None
    )
    try:
        config = AdaptConfig(
            steps=steps, minutes=minutes, batch=batch, patch=patch, lr=lr,
            max_frames=max_frames, from_scratch=from_scratch, seed=seed,
        )  # fmt: skip
        with Progress(
            TextColumn("adapting"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4g}"), TimeElapsedColumn(),
            console=console, disable=quiet,
        ) as bar:  # fmt: skip
            task = bar.add_task("adapt", total=steps, loss=float("nan"))
            report = adapt(
                source, out, start=start, config=config, camera=camera, resume=resume,
                progress=lambda step, _total, loss: bar.update(task, completed=step, loss=loss),
            )  # fmt: skip
    except (DeepDenoiseError, OSError, ValueError) as exc:
        raise fail(exc) from exc
    cam = report.camera
    rows = (
        ("from", f"{report.start} ({report.metadata.adaptation['start_model']})"),
        ("recording", f"{source} ({report.metadata.adaptation['frames']} valid frames)"),
        ("steps", f"{report.steps} in {report.seconds:.0f} s"),
        ("blind-spot loss", f"{report.loss_first:.4g} -> {report.loss_last:.4g}"),
        ("camera", f"gain {cam.gain:.4g}, offset {cam.offset:.4g}, read {cam.read_noise:.4g}"),
        ("parity vs torch", f"{report.parity_error:.2g} model units (engine on CPU)"),
        ("MSE estimate, start -> adapted", f"{report.risk_start:.4g} -> "
         f"{report.risk_adapted:.4g} ADU² (SURE, from the noisy frames)"),
        ("wrote", f"{report.out} (hash {(report.metadata.content_hash or '')[:12]})"),
    )  # fmt: skip
    console.print(kv_table("adapted", rows))
    if not report.helped:
        console.print(
            "[bold yellow]warning:[/] the adapted model is estimated worse than "
            f"{report.start.name} on this recording: keep using the starting model "
            "(README, adapt).",
            highlight=False,
        )
        # written for inspection, but `adapt ... && load-model ...` must not swap it in
        raise typer.Exit(EXIT_WORSE)


def register(app: typer.Typer) -> None:
    app.command("adapt")(adapt_command)
