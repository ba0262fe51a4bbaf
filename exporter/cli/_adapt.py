"""``deepdenoise adapt``: fine-tune a model on a recording (self-supervised: SURE or N2V)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stream import DeepDenoiseError
from stream.cli import console, fail, kv_table

from ._hints import EXTRA_HINT

if TYPE_CHECKING:
    from pydantic import ValidationError

#: Exit status when no adapted weights are estimated better than the starting ones.
EXIT_WORSE = 3


def adapt_command(
    source: Annotated[
        Path, typer.Argument(help="The recording: a series store (.zarr), .npy or TIFF.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The adapted ONNX model to write.")],
    start: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Model to start from (.onnx, or a shipped model's name). "
            "[default: the CPU default model]",
        ),
    ] = None,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget (resumed runs count).")] = 10.0,
    steps: Annotated[int, typer.Option(help="Optimiser steps at most.", min=1)] = 3000,
    batch: Annotated[int, typer.Option(help="Patches per step.", min=1)] = 8,
    patch: Annotated[int, typer.Option(help="Patch side, px.", min=16)] = 64,
    lr: Annotated[
        float, typer.Option(help="Adam learning rate at the start, cosine-decayed to 0.")
    ] = 3e-5,
    max_frames: Annotated[
        int | None, typer.Option(help="Read only the first frames of the recording.")
    ] = None,
    gain: Annotated[
        float | None, typer.Option(help="Camera gain, ADU/e- (with offset, read noise).")
    ] = None,
    offset: Annotated[float | None, typer.Option(help="Camera offset, ADU.")] = None,
    read_noise: Annotated[float | None, typer.Option(help="Camera read noise, ADU rms.")] = None,
    loss: Annotated[
        str,
        typer.Option(
            help="sure: Stein's unbiased risk estimate with the camera's variance (the model "
            "keeps seeing every pixel); n2v: Noise2Void's blind spot."
        ),
    ] = "sure",
    from_scratch: Annotated[
        bool,
        typer.Option(
            "--from-scratch", help="Fresh weights (with --loss n2v: Noise2Void from scratch)."
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the checkpoint next to --out.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the patch, probe and mask sampling.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Adapt a model to your own recording (self-supervised, no clean data); load the
    result into a running service with `deepdenoise load-model`. Exits with status 3
    (the starting weights written) when no adapted weights are estimated better."""
    try:
        from pydantic import ValidationError
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from exporter.adapt import SHOWN_BY, AdaptConfig, adapt
        from stream.camera import CameraModel
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    given = (gain, offset, read_noise)
    if any(v is not None for v in given) and not all(v is not None for v in given):
        raise fail("expected --gain, --offset and --read-noise together, or none of them")
    try:  # pydantic checks the values; its errors become one line naming the option
        camera = (
            CameraModel(gain=gain, offset=offset, read_noise=read_noise)
            if gain is not None and offset is not None and read_noise is not None
            else None
        )
        config = AdaptConfig(
            steps=steps, minutes=minutes, batch=batch, patch=patch, lr=lr,
            max_frames=max_frames, from_scratch=from_scratch, seed=seed, loss=loss,
        )  # fmt: skip
    except ValidationError as exc:
        raise fail(_option_error(exc)) from exc
    try:
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
    except (DeepDenoiseError, OSError, ValueError, ArithmeticError) as exc:
        raise fail(exc) from exc  # ArithmeticError: the loss became NaN or infinite
    except KeyboardInterrupt:
        console.print(
            "interrupted; continue with the same command and --resume (its checkpoint is "
            f"kept in {out.name}.adapt/)",
            highlight=False,
        )
        raise typer.Exit(130) from None
    cam = report.camera
    rows = (
        ("from", f"{report.start} ({report.metadata.adaptation['start_model']})"),
        ("recording", f"{source} ({report.metadata.adaptation['frames']} valid frames)"),
        ("steps", f"{report.steps} in {report.seconds:.0f} s"),
        (f"{report.metadata.adaptation['loss']} loss",
         f"{report.loss_first:.4g} -> {report.loss_last:.4g}"),
        ("camera", f"gain {cam.gain:.4g}, offset {cam.offset:.4g}, read {cam.read_noise:.4g}"),
        *_row_noise_rows(report.metadata.adaptation),
        ("parity vs torch", f"{report.parity_error:.2g} model units (engine on CPU)"),
        ("MSE estimate by step", ", ".join(f"{k}: {v:.4g}" for k, v in report.risks.items())
         + " ADU² (PG-URE, from the noisy frames; 0 = start)"),
        ("MSE below the start's", ", ".join(
            f"{k}: {gain:.3g} ± {se:.2g}" for k, (gain, se) in report.margins.items())
         + f" ADU² by step (> 0: better than the start, < 0: worse; ± a standard error; "
           f"a step is chosen only {SHOWN_BY:g} standard errors or more better)"),
        ("chosen", f"step {report.chosen_step}" if report.chosen_step else "the starting weights"),
        ("wrote", f"{report.out} (hash {(report.metadata.content_hash or '')[:12]})"),
    )  # fmt: skip
    console.print(kv_table("adapted", rows))
    if any(v < 0 for v in report.risks.values()):
        # A mean squared error is never negative: the camera's variance is too large.
        console.print(
            "[bold yellow]warning:[/] negative MSE estimates: the noise variance of the "
            f"camera {'given' if camera else 'estimated from the recording'} is larger than "
            "the recording's, so the estimates, and the step chosen by them, are unreliable; "
            "give --gain, --offset and --read-noise from `deepdenoise calibrate` on dark "
            "frames of this camera.",
            highlight=False,
        )
    if not report.helped:
        console.print(
            "[bold yellow]warning:[/] no adapted weights are estimated better than "
            f"{report.start.name} on this recording by {SHOWN_BY:g} standard errors: "
            f"{report.out} holds the starting weights (README, adapt).",
            highlight=False,
        )
        # `adapt ... && load-model ...` must not swap in a model that gains nothing
        raise typer.Exit(EXIT_WORSE)


def _row_noise_rows(adaptation: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's row on the recording's row noise (CMOS banding), if it had any."""
    if levelled := adaptation.get("rows_levelled"):
        return [("row noise", f"{levelled:.3g} counts rms: rows levelled, as the service does")]
    if left := adaptation.get("row_noise_left"):
        return [
            (
                "row noise",
                f"{left:.3g} counts rms, not levelled (nor live): in the MSE estimate",
            )
        ]
    return []


def _option_error(exc: ValidationError) -> str:
    """Pydantic's multi-line dump as one line: the option, what was expected, what came."""
    said = []
    for err in exc.errors():
        option = "--" + str(err["loc"][-1]).replace("_", "-") if err["loc"] else "options"
        expected = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        said.append(f"{option}: expected {expected}, got {err.get('input')!r}")
    return "; ".join(said)


def register(app: typer.Typer) -> None:
    app.command("adapt")(adapt_command)
