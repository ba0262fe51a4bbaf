"""``deepdenoise train``, ``export`` and ``calibrate``.

They need the ``train`` extra, so everything heavy is imported inside the command
bodies: registering them stays torch-free and instant, and a missing extra is reported
as a one-line error instead of a traceback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from rich.table import Table

from stream import DeepDenoiseError
from stream.cli import console, err_console, fail, kv_table

from ._hints import EXTRA_HINT


def parse_level(text: str | None) -> float | tuple[float, float] | None:
    """``"1.5"`` -> 1.5, ``"0.5:3"`` -> (0.5, 3.0) (a range drawn uniformly per patch)."""
    if text is None:
        return None
    try:
        if ":" in text:
            lo, hi = (float(v) for v in text.split(":"))
            return (lo, hi)
        return float(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected a noise level such as 1.5 or a range LO:HI such as 0.5:3, got {text!r}"
        ) from None


def _fmt(value: float, unit: str = "") -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2f}{unit}"


#: The setting each of ``train``'s options sets -> the option, named in its errors.
_OPTIONS = {
    **{
        key: "--" + key.replace("_", "-")
        for key in ("preset", "data_source", "steps", "batch", "lr", "seed", "device",
                    "threads", "patch", "noise_level", "noise_source", "noise_stack")
    },
    "out_dir": "--out",
    "num_workers": "--workers",
    "synth__patch": "--patch",
}  # fmt: skip


def train_command(
    config: Annotated[
        Path | None, typer.Option(help="TOML training config; options below override it.")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Model preset: lite, dncnn20, na-lite, na-temporal or na-large."),
    ] = None,
    data_source: Annotated[
        Literal["phantom", "synth"] | None,
        typer.Option(
            help="synth: generated scenes read out by random cameras (the na-* presets); "
            "phantom: the seed's calcium phantom (one-channel presets only)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps in total.")] = None,
    batch: Annotated[int | None, typer.Option(help="Patches per step.")] = None,
    patch: Annotated[int | None, typer.Option(help="Patch side in pixels.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW).")] = None,
    noise_level: Annotated[
        str | None,
        typer.Option(
            help="Phantom source: noise level (1 = reference acquisition) or a range LO:HI."
        ),
    ] = None,
    noise_source: Annotated[
        Literal["model", "recorded"] | None,
        typer.Option(
            help="Phantom source: model: Poisson-Gaussian camera; recorded: noise from "
            "--noise-stack."
        ),
    ] = None,
    noise_stack: Annotated[
        Path | None,
        typer.Option(help="Phantom source: dark/flat recording (.npy, .zarr, .tif)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (checkpoints, history).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, data and validation.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue from a checkpoint (its config is the base), in its own folder "
            "unless --out names another."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Start a fresh run in a folder holding another run's checkpoints, replacing them.",
        ),
    ] = False,
    device: Annotated[
        Literal["auto", "cpu", "cuda"] | None,
        typer.Option(help="Training device; auto: CUDA when present."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a DnCNN on generated calcium-imaging patches (needs torch)."""
    try:
        from exporter.train import (
            load_train_config,
            newest_checkpoint,
            read_checkpoint,
            run_checkpoints,
            train,
        )
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    try:
        base: dict[str, Any] | None = None
        if resume is not None:  # continues in the checkpoint's folder, wherever run from
            base = {**read_checkpoint(resume)["config"], "out_dir": resume.parent}
        common: dict[str, Any] = {
            "preset": preset, "data_source": data_source, "steps": steps, "batch": batch,
            "lr": lr, "out_dir": out, "seed": seed, "device": device, "threads": threads,
            "num_workers": workers,
        }  # fmt: skip
        # stored absolute in the checkpoints, as a config file's paths are: a resumed run
        # finds the recording wherever it is run from
        stack = None if noise_stack is None else noise_stack.absolute()
        phantom = {"patch": patch, "noise_level": parse_level(noise_level),
                   "noise_source": noise_source, "noise_stack": stack}  # fmt: skip
        # --patch and the noise options address the phantom source's [data] by default;
        # a synth run's patch is synth.patch, and its noise comes from [synth].
        first = load_train_config(config, base=base, options=_OPTIONS, **common)
        merged = first.model_dump(mode="json")  # the file read once; options added on it
        if first.data_source == "synth":
            given = [
                f"--{k.replace('_', '-')}"
                for k, v in phantom.items()
                if v is not None and k != "patch"
            ]
            if given:
                raise fail(
                    f"{', '.join(given)} set the phantom source's noise; a synth run "
                    "takes its camera and noise from [synth] in the config (gain, "
                    "read_noise, recorded dark frames: README, Training your own)"
                )
            cfg = load_train_config(None, base=merged, options=_OPTIONS, synth__patch=patch)
        else:
            cfg = load_train_config(None, base=merged, options=_OPTIONS, **phantom)
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    if resume is None and not force and run_checkpoints(cfg.out_dir):
        raise fail(
            f"{cfg.out_dir} already holds a run's checkpoints; continue it with "
            f"--resume {newest_checkpoint(cfg.out_dir)}, replace it with --force, or "
            "choose another --out"
        )
    try:
        summary = train(cfg, resume=resume, progress=not quiet)
    except (DeepDenoiseError, OSError, FloatingPointError) as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        newest = newest_checkpoint(cfg.out_dir)
        where = (
            f"continue from its newest checkpoint: deepdenoise train --resume {newest}"
            if newest is not None
            else f"no checkpoint yet (best.pt at each validation, every {cfg.val_every} "
            f"steps; last.pt every {cfg.ckpt_every})"
        )
        console.print(f"interrupted; {where}", highlight=False)
        raise typer.Exit(130) from None
    rows = (
        ("steps", f"{summary.start_step} -> {summary.steps} of {cfg.steps}"),
        (
            "time",
            f"{summary.seconds:.1f} s ({summary.steps_per_s:.2f} steps/s on {summary.device})",
        ),
        ("final loss", f"{summary.final_loss:.4g}"),
        ("val PSNR", _fmt(summary.final_val_psnr, " dB")),
        ("best val PSNR", f"{_fmt(summary.best_val_psnr, ' dB')} (step {summary.best_step})"),
        ("noisy input PSNR", _fmt(summary.noisy_psnr, " dB")),
        ("checkpoints", f"{summary.last_checkpoint.name}, {summary.best_checkpoint.name}"),
        ("history", str(summary.history)),
    )
    console.print(kv_table(f"training: {cfg.architecture} in {summary.out_dir}", rows))


def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A last.pt or best.pt from `train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The ONNX model to write.")],
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Also write <name>-fp16.onnx (fp32 input/output).")
    ] = False,
    inputs: Annotated[int, typer.Option(help="Whole-frame parity cases.", min=1)] = 4,
) -> None:
    """Export a checkpoint to ONNX and verify it in the real engine (needs torch)."""
    try:
        from exporter.export import export_onnx
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    try:
        report = export_onnx(checkpoint, out, fp16=fp16, parity_inputs=inputs)
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    meta = report.metadata
    bounds = f"fp32 {report.tolerance:g}" + (
        f", fp16 {report.fp16_tolerance:g}" if report.fp16_tolerance is not None else ""
    )
    table = Table(
        title=f"parity vs torch: {report.path.name}",
        caption=f"bounds (model units): {bounds}; engine on CPU",
    )
    for column in ("variant", "case", "max|err| model", "max|err| ADU"):
        table.add_column(column, justify="left" if column in ("variant", "case") else "right")
    for row in report.rows:
        table.add_row(row.variant, row.case, f"{row.max_abs_model:.3g}", f"{row.max_abs_raw:.3g}")
    console.print(table)
    console.print(
        f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, {meta.architecture}, "
        f"receptive field {meta.receptive_field}, hash {(meta.content_hash or '')[:12]})"
    )
    if report.fp16_path is not None:
        console.print(f"wrote {report.fp16_path}")


#: Which of the tables ``calibrate`` prints (``--for``).
CameraTable = Literal["all", "serve", "synth", "phantom"]


def calibrate_command(
    stack: Annotated[
        Path, typer.Argument(help="Frames for the gain fit (.npy/.tif/.zarr): a flat-field series.")
    ],
    dark: Annotated[
        Path | None, typer.Option(help="Dark frames (shutter closed): offset and read noise.")
    ] = None,
    gain: Annotated[
        float | None, typer.Option(help="Known gain (ADU per e-): STACK is then dark frames.")
    ] = None,
    offset: Annotated[float | None, typer.Option(help="Known camera offset, ADU.")] = None,
    max_frames: Annotated[int, typer.Option(help="Read at most this many frames.", min=1)] = 500,
    offset_map: Annotated[
        Path | None,
        typer.Option(
            help="Also write the dark frames' average, one value a pixel, to this .npy "
            "(the name must end in .npy): "
            "`serve --offset-map` subtracts its pattern (a sensor's offset differing pixel "
            "by pixel) from every frame.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an --offset-map file already there (never STACK or --dark).",
        ),
    ] = False,
    target: Annotated[
        CameraTable,
        typer.Option(
            "--for",
            help="Which TOML table to print: all three, or only the one for serve (a "
            "config of its own: --for serve > camera.toml), for train's synth source or "
            "for its phantom source.",
        ),
    ] = "all",
) -> None:
    """Fit the Poisson-Gaussian camera model to recordings; prints it as TOML for `serve`
    and `train` on stdout (the fit and its notes go to stderr)."""
    try:
        from exporter.noise import (
            dark_pattern,
            estimate_camera_noise,
            light_in,
            load_noise_stack,
            scene_changes,
        )
    except ImportError as exc:
        raise fail(f"{EXTRA_HINT} ({exc})") from exc
    if gain is not None and not (math.isfinite(gain) and gain > 0):
        raise fail(f"expected --gain > 0 (ADU per photo-electron), got {gain}")
    if offset is not None and not math.isfinite(offset):
        raise fail(f"expected a finite --offset (ADU), got {offset}")
    if offset_map is not None and dark is None and gain is None:
        raise fail(
            "--offset-map needs dark frames: give them with --dark (or give --gain, and "
            "STACK is taken to be dark frames)"
        )
    if offset_map is not None and offset_map.suffix.lower() != ".npy":
        # np.save adds .npy to any other name: the file would not be where it was reported
        raise fail(f"expected --offset-map to name a .npy file, got {offset_map}")
    if offset_map is not None and offset_map.is_dir():
        raise fail(f"expected --offset-map to name a .npy file, got the folder {offset_map}")
    if offset_map is not None:
        _check_offset_map_apart(offset_map, [stack, dark], force)
    try:
        frames = load_noise_stack(stack, max_frames=max_frames)
        dark_frames = load_noise_stack(dark, max_frames=max_frames) if dark else None
        if dark_frames is not None and len(dark_frames) < 2:  # their differences: the noise
            raise DeepDenoiseError(
                f"expected at least 2 dark frames in {dark} (their offset and read noise "
                f"come from frame differences), got {len(dark_frames)}"
            )
        if dark_frames is not None and dark_frames.shape[1:] != frames.shape[1:]:
            # one camera's frames: an offset and read noise of other frames fit nothing here
            raise DeepDenoiseError(
                f"expected dark frames of STACK's frame shape {_shape(frames)}, got "
                f"{_shape(dark_frames)} in {dark}"
            )
        if gain is not None and dark_frames is None:
            _check_dark(frames, stack)
        if gain is None and (moving := scene_changes(frames)):  # STACK gives the gain
            err_console.print(f"[bold yellow]warning:[/] {stack}: {moving}", highlight=False)
        fit = estimate_camera_noise(frames, dark=dark_frames, gain=gain, offset=offset)
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    # the dark frames: given with --dark, or STACK itself where the gain is given
    darks = dark_frames if dark_frames is not None else frames if gain is not None else None
    if darks is not None and (lit := light_in(darks)):
        err_console.print(
            f"[bold yellow]warning:[/] {dark if dark_frames is not None else stack}: {lit}",
            highlight=False,
        )
    pattern = dark_pattern(darks, fit.read_noise) if darks is not None else 0.0
    if offset_map is not None:
        assert darks is not None  # refused above without either
        average = darks.astype(np.float64).mean(axis=0).astype(np.float32)
        offset_map.parent.mkdir(parents=True, exist_ok=True)
        np.save(offset_map, average)
        # the table's "fixed pattern" figure, and the plain spread beside it: two numbers
        # for one map, unexplained, read as a contradiction (a new user's trial)
        err_console.print(
            f"wrote {offset_map}: the average of {len(darks)} dark frames, "
            f"{average.shape[0]}x{average.shape[1]}; its fixed pattern {pattern:.3g} ADU "
            f"rms pixel to pixel (the table's), its plain spread {float(np.std(average)):.3g} "
            f"(hot pixels, shading and the read noise's {fit.read_noise / np.sqrt(len(darks)):.2g} "
            f"included); serve --offset-map {offset_map}"
        )
    # Without the map, the pattern is noise to the model: the tables count it (the live
    # estimate does too, stream.camera._fixed_pattern); told only the read noise, the
    # blend with smoothing trusted the model's output and kept the pattern.
    counted = offset_map is None and pattern >= COUNTED_PATTERN * fit.read_noise
    served_read = math.hypot(fit.read_noise, pattern) if counted else fit.read_noise
    stderr = f" ± {fit.gain_stderr:.3g}" if fit.gain_stderr is not None else ""
    rows = [
        ("gain", f"{fit.gain:.4g}{stderr} ADU/e-"),
        ("offset", f"{fit.offset:.4g} ADU"),
        ("read noise", f"{fit.read_noise:.4g} ADU rms"),
        ("estimated from data", ", ".join(fit.estimated) or "nothing (all given)"),
    ]
    if darks is not None:
        rows.append(("fixed pattern", f"{pattern:.4g} ADU rms (the dark frames' average)"))
    if fit.r2 is not None:
        rows.append(("photon-transfer fit", f"r2 {fit.r2:.4f} over {fit.n_points} points"))
    rows += [("note", note) for note in fit.notes]
    if counted:
        rows.append(
            (
                "note",
                f"read_noise below counts the fixed pattern ({served_read:.4g} ADU rms): "
                "--offset-map OFFSET.npy writes a map that serve --offset-map takes it "
                "out with instead",
            )
        )
    err_console.print(kv_table(f"camera noise fit: {stack.name}", rows))
    # plain stdout: TOML a file can take whole (rich would wrap and colour it)
    print(camera_tables(fit.gain, fit.offset, served_read, target))


def _shape(frames: np.ndarray) -> str:
    return "x".join(str(n) for n in frames.shape[1:])


def _check_offset_map_apart(offset_map: Path, recordings: list[Path | None], force: bool) -> None:
    """Writing the offset map must never touch a recording calibrate reads (refused even
    with --force), nor replace a file there unasked."""
    target = offset_map.resolve()
    for recording in recordings:
        if recording is not None and recording.resolve().is_relative_to(target):
            raise fail(
                f"--offset-map {offset_map} would overwrite {recording}, which calibrate "
                "reads; expected another name (--force does not change this)"
            )
    if offset_map.exists() and not force:
        raise fail(f"--offset-map {offset_map} is already there: give --force to replace it")


def _check_dark(frames: np.ndarray, path: Path) -> None:
    """With ``--gain``, STACK is taken for dark frames: a flat-field series, whose frame
    means step through its light levels, would give its light as offset and its shot
    noise as read noise (a flat series read so: offset 302 and read noise 20 for 100
    and 3), so it is refused."""
    means = frames.mean(axis=(1, 2), dtype=np.float64)
    noise = float(np.median(frames.std(axis=(1, 2), dtype=np.float64)))
    if len(means) > 1 and means.max() - means.min() > 3.0 * max(noise, 1e-12):
        raise DeepDenoiseError(
            f"with --gain, STACK is taken for dark frames, but the means of {path.name}'s "
            f"frames span {means.min():.4g}..{means.max():.4g} ADU, over 3 times a "
            f"frame's noise ({noise:.3g}): a flat-field series? Give dark frames as STACK, "
            "or the flat series with --dark and no --gain"
        )


#: A dark frames' fixed pattern this share of the read noise or more is counted in the
#: read noise of the tables ``calibrate`` prints, where no offset map takes it out (a
#: quarter adds 3 % to the noise).
COUNTED_PATTERN = 0.25


def camera_tables(
    gain: float, offset: float, read_noise: float, target: CameraTable = "all"
) -> str:
    """The fitted camera as TOML for each place it goes: a ``serve`` config's ``[camera]``
    and a training config's ``[synth]`` (or, for the phantom source, ``[data.noise.camera]``),
    or the one ``target`` names."""
    values = f"gain = {gain:.6g}\noffset = {offset:.6g}\nread_noise = {read_noise:.6g}"
    serve = "# deepdenoise serve --config: the camera, not estimated live"
    synth = '# deepdenoise train, data_source = "synth" (your dark frames: synth.recorded)'
    phantom = '# deepdenoise train, data_source = "phantom"'
    tables = {
        "serve": f"{serve}\n[camera]\n{values}\n",
        "synth": f"{synth}\n[synth]\ngain = [{gain:.6g}, {gain:.6g}]\n",
        "phantom": f"{phantom}\n[data.noise.camera]\n{values}\n",
    }
    return "\n".join(tables.values() if target == "all" else [tables[target]])


def register(app: typer.Typer) -> None:
    """Add ``train``, ``export`` and ``calibrate`` to ``app``."""
    app.command("train")(train_command)
    app.command("export")(export_command)
    app.command("calibrate")(calibrate_command)
