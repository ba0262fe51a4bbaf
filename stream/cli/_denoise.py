"""``deepdenoise denoise``: a recording on disk, denoised as the service serves it.

The service measures the blend only in a stream's spare time, so a recording replayed
through it as fast as it goes (never caught up) gets a regime's first few; here every frame
due one is measured, as ``deepdenoise evaluate`` does, with the same engine and series
context (camera estimate, row levelling, hot pixels, temporal ring) as the service. One
difference, since the whole recording is there: the live camera estimate first looks at
its first frames (``--look-ahead``, :meth:`SeriesContext.look_ahead`), so its first frame
is not denoised with what that frame alone says of the camera. ``--look-ahead 0`` keeps
the estimate causal, as the service's is (and as ``evaluate`` scores).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import typer

from .._errors import ConfigError, DeepDenoiseError, ModelError
from ._common import (
    FollowOption,
    ModelOption,
    ProviderOption,
    blend_choice,
    console,
    counted,
    err_console,
    fail,
    handling_signals,
    kv_table,
)

#: Frames the live camera estimate looks at before the first is denoised: its first
#: temporal fits come after 2, 3, 5, 9, 17 and 25 frames (stream.camera._estimate).
LOOK_AHEAD = 32

if TYPE_CHECKING:
    from ..engine import Engine, SeriesContext
    from ..store import Recording, RecordingWriter


def denoise(
    recording: Annotated[
        Path,
        typer.Argument(
            help="Frames to denoise: .npy, .tif/.tiff, a Zarr array or a deepdenoise series "
            "store (<series>.zarr: its raw frames).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where the denoised frames go: .npy, .tif/.tiff or .zarr."
        ),
    ],
    model: ModelOption = None,
    provider: ProviderOption = None,
    blend: Annotated[
        Literal["spatial", "spatiotemporal", "off"] | None,
        typer.Option(
            help="As `serve --blend`, every frame due a measurement measured.",
            show_default="spatial",
        ),
    ] = None,
    passes: Annotated[
        Literal["1", "2", "4"],
        typer.Option("--ensemble", help="Self-ensemble passes per frame (mirrored copies)."),
    ] = "1",
    output_dtype: Annotated[
        Literal["float32", "input"] | None,
        typer.Option(
            help="float32, or the recording's dtype (rounded, clipped).", show_default="float32"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="A `serve` TOML config: its model, provider, camera, spikes, tiles, offset "
            "map, blend and follow apply; options here override it."
        ),
    ] = None,
    look_ahead: Annotated[
        int,
        typer.Option(
            "--look-ahead",
            min=0,
            help="With the camera estimated live: warm the estimate on this many of the "
            "recording's first frames before denoising the first (one frame cannot tell "
            "fine structure from noise; the service, live, cannot look ahead). 0 (or 1): "
            "causal, as the service's estimate.",
        ),
    ] = LOOK_AHEAD,
    follow: FollowOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an output already there (a file or a Zarr array; never the "
            "recording, a folder holding it, or another kind of folder).",
        ),
    ] = False,
) -> None:
    """Denoise a recording on disk (every frame, in order, as one series)."""
    from ..camera import load_offset_pattern
    from ..engine import Engine, SeriesContext, default_model_path, select_providers
    from ..service import load_config
    from ..store import RecordingWriter, open_recording

    try:
        cfg = load_config(
            config,
            options={"model": "--model", "provider": "--provider", "blend": "--blend",
                     "output_dtype": "--output-dtype", "follow": "--follow"},
            model=model, provider=provider, blend=blend, output_dtype=output_dtype,
            follow=follow,
        )  # fmt: skip
        _check_apart(recording, output)
        RecordingWriter.check_path(output, replace=force)  # before the work, not after
        frames = open_recording(recording)
        _check_not_too_sparse(frames)
        offset = None if cfg.offset_map is None else load_offset_pattern(cfg.offset_map)
        if offset is not None and offset.pattern.shape != frames.frame_shape:
            # a stream may mix regions of the sensor; one recording has one shape
            raise DeepDenoiseError(
                f"the offset map {cfg.offset_map} is {offset.pattern.shape}, the recording's "
                f"frames are {frames.frame_shape}: expected a map of the frames' shape "
                "(the same region of the sensor and binning)"
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        path = cfg.model or default_model_path(select_providers(cfg.provider).name)
        # warmed up on the recording's frames, as `serve` does: a model that breaks the
        # contract on them (non-finite, another size) is refused before anything is written
        engine = Engine(
            path, provider=cfg.provider, tile=cfg.tile, overlap=cfg.overlap, spikes=cfg.spikes,
            follow=cfg.follow, warmup_shape=frames.frame_shape,
        )  # fmt: skip
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    if frames.planes:  # ImageJ's CYX / ZYX: not frames in time (a user's trial)
        err_console.print(
            f"warning: {recording} stacks {frames.planes}, not frames in time: they are "
            "denoised as one series all the same (the camera estimate and the blend take "
            f"them as consecutive frames); to denoise {frames.planes} apart, save each as "
            "its own stack",
            highlight=False,
            soft_wrap=True,
        )
    if frames.unclosed:  # a snapshot, said: not the whole series (a user's trial)
        err_console.print(
            f"warning: {recording} is not closed (still being written, or left so by a "
            f"service that was killed): denoising its {len(frames)} frames so far",
            highlight=False,
            soft_wrap=True,
        )
    height, width = frames.frame_shape
    if width <= 16 and min(height, len(frames)) >= 4 * width:
        # (H, W, N) read as H frames of W x N: a time or channel axis saved last
        err_console.print(
            f"warning: {len(frames)} frames of {height}x{width}: if the recording's last "
            "axis is time or channels, save it as (T, H, W)", highlight=False, soft_wrap=True
        )  # fmt: skip
    dtype = frames.dtype if cfg.output_dtype == "input" else np.dtype(np.float32)
    context = SeriesContext(cfg.camera, cfg.blend, offset)
    started = time.perf_counter()
    try:
        ahead = _look_ahead(frames, context, look_ahead) if engine.needs_camera else 0
        with (
            _terminate_as_interrupt(),
            RecordingWriter(
                output, frames.rows, frames.frame_shape, dtype, single=frames.single, replace=force
            ) as writer,
        ):
            tally = _denoise_frames(frames, writer, dtype, engine, context, int(passes))
            broken = tally.broken
            if len(broken) == len(frames):  # nothing usable: no output at all
                raise ModelError(
                    f"model {engine.path.name} gave NaN/Inf pixels in every frame "
                    f"({len(frames)}) where the recording's were finite: no output written"
                )
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    finally:
        engine.close()
    seconds = time.perf_counter() - started
    summary = _summary(frames, output, engine, context, seconds, dtype, tally, ahead)
    console.print(kv_table("deepdenoise denoise", summary))


def _look_ahead(frames: Recording, context: SeriesContext, count: int) -> int:
    """Warm the live camera estimate on the recording's first ``count`` frames
    (:meth:`SeriesContext.look_ahead`); how many it took (0: none, or a configured
    camera). A single frame has nothing ahead of it."""
    count = min(count, len(frames))
    if count < 2:
        return 0

    def checked() -> Iterator[tuple[int, np.ndarray]]:
        for position in range(count):
            index, raw = int(frames.indices[position]), frames.frame(position)
            _refuse_out_of_range(raw, index, frames.source)  # as when it is denoised
            yield index, raw

    return context.look_ahead(checked())


def _terminate_as_interrupt() -> AbstractContextManager[None]:
    """SIGTERM (``kill``, a job scheduler's time limit) ends the run as Ctrl-C does, so
    the partial output is discarded rather than left beside the output."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    return handling_signals(interrupt, signal.SIGTERM)


def _check_apart(recording: Path, output: Path) -> None:
    """Writing (or replacing) the output must never touch the recording: refused even
    with --force, as is an output that holds the recording (a folder of series stores)
    or lies inside it (a file among a store's arrays)."""
    rec, out = recording.resolve(), output.resolve()
    if out == rec:
        raise ConfigError(f"the output {output} would overwrite the recording")
    if rec.is_relative_to(out):
        raise ConfigError(
            f"the output {output} holds the recording {recording}: writing it would destroy "
            "the recording; expected an output outside it (--force does not change this)"
        )
    if out.is_relative_to(rec):
        raise ConfigError(
            f"the output {output} is inside the recording {recording}: expected an output "
            "outside it (--force does not change this)"
        )


@dataclass
class _Tally:
    """What the frames held that the summary tells."""

    #: Indices of the frames whose output has NaN/Inf pixels where the input was finite
    #: (the model failed there).
    broken: list[int] = field(default_factory=list)
    #: Frames with NaN/Inf pixels of their own, and those pixels in all.
    unread_frames: int = 0
    unread_pixels: int = 0


def _denoise_frames(
    frames: Recording,
    writer: RecordingWriter,
    dtype: np.dtype[Any],
    engine: Engine,
    context: SeriesContext,
    passes: int,
) -> _Tally:
    """Denoise every frame in order and write it as ``dtype``."""
    from rich.progress import track

    from ..engine import count_non_finite, to_dtype

    # a stored series' missing frames stay holes on its time axis: NaN, or 0 in an
    # integer output (the summary lists them)
    hole = np.full(frames.frame_shape, 0 if dtype.kind in "iu" else np.nan, dtype=dtype)
    row, warned, tally = 0, False, _Tally()
    steps = enumerate(frames.indices)
    for position, index in track(
        steps, "denoising", len(frames), console=err_console, transient=True
    ):
        while row < index:  # only a stored series' indices have holes
            writer.write(hole)
            row += 1
        raw = frames.frame(position)
        _refuse_out_of_range(raw, int(index), frames.source)
        if not warned and (warning := _float32_rounding(raw, int(index))):
            err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
            warned = True
        unread = count_non_finite(raw)
        tally.unread_frames += unread > 0
        tally.unread_pixels += unread
        clean = context.denoise(engine, raw, int(index), passes)
        if _made_non_finite(raw, clean):
            tally.broken.append(int(index))
        writer.write(to_dtype(clean, dtype))  # float32 passes through
        row += 1
    return tally


def _made_non_finite(raw: np.ndarray, clean: np.ndarray) -> bool:
    """Whether the model put NaN/Inf where the frame's pixel was finite (a NaN pixel
    that came in may go out: that is not the model's failure)."""
    from ..engine import count_non_finite

    return bool(count_non_finite(clean)) and bool(np.any(~np.isfinite(clean) & np.isfinite(raw)))


def _refuse_out_of_range(raw: np.ndarray, index: int, source: str) -> None:
    """The model and the camera estimate compute in float32 (``LARGEST_PIXEL``)."""
    from ..engine import LARGEST_PIXEL, beyond_range

    top = beyond_range(raw)
    if top is not None:
        raise DeepDenoiseError(
            f"{source}: frame {index} holds values up to {top:.3g}, over "
            f"{LARGEST_PIXEL:.0e}, beyond which the camera estimate's float32 arithmetic "
            "overflows: expected pixels in a smaller unit (scale the recording, e.g. to "
            "ADU or photons)"
        )


def _float32_rounding(raw: np.ndarray, index: int) -> str | None:
    """What an integer frame loses in float32, which holds whole numbers exactly only up
    to 2**24: noise riding on a large offset (a 64-bit count) would be rounded away."""
    if raw.dtype.kind not in "iu" or raw.dtype.itemsize <= 2 or not raw.size:
        return None
    top = max(abs(int(raw.max())), abs(int(raw.min())))
    if top <= 2**24:
        return None
    step = float(np.spacing(np.float32(top)))
    return (
        f"frame {index} holds integers up to {top}; the model computes in float32, which "
        f"holds them only to steps of {step:g} there: subtract the offset first to keep "
        "the lowest bits"
    )


def _summary(
    frames: Recording,
    output: Path,
    engine: Engine,
    context: SeriesContext,
    seconds: float,
    dtype: np.dtype[Any],
    tally: _Tally,
    ahead: int,
) -> list[tuple[str, Any]]:
    estimate, broken = context.estimate, tally.broken
    if context.configured is not None:
        camera = f"configured: {context.configured}"
    elif estimate is None:
        camera = "none (the model takes no noise map)"
    elif estimate.frames == 0:  # every frame one value: nothing of a camera to estimate
        camera = "none: every frame is blank (one value each: a closed shutter, no signal?)"
    else:
        c = estimate.camera
        camera = (
            f"estimated live: gain {c.gain:.4g} ± {estimate.gain_stderr:.2g}, offset "
            f"{c.offset:.4g}, read noise {c.read_noise:.3g}"
        )
        if estimate.pattern:
            camera += f" (a fixed pattern of {estimate.pattern:.3g} in it)"
        if ahead:
            camera += f" (looked ahead: warmed on the first {counted(ahead, 'frame')})"
    missing = frames.missing()
    notes = []  # what the output's rows lack: holes, frames the model failed on
    if missing.size:
        fill = "NaN" if dtype.kind == "f" else "0"  # as the hole rows were written
        notes = [("holes", f"{counted(missing.size, 'frame')} not in the store (indices "
                           f"{_first(missing)}): their rows are {fill}, so row i is the "
                           "series' frame i")]  # fmt: skip
    if broken:
        notes.append(("non-finite", f"{counted(len(broken), 'frame')} (indices {_first(broken)}) "
                                    "came out with NaN/Inf pixels where the recording's were "
                                    "finite: the model failed on them"))  # fmt: skip
    return [
        ("recording", f"{frames.source}: {counted(len(frames), 'frame')} of {frames.frame_shape}"),
        *notes,
        ("output", f"{output}: {counted(frames.rows, 'row')}"),
        ("model", f"{engine.path.name} (id {engine.model_id}) on {engine.provider}"
                  + _follows(engine)),
        ("camera", camera),
        ("found", _findings(context, tally)),
        ("blend", f"{blend_choice(context.blend_choice.as_dict())} (last frame; "
                  f"{counted(context.blend_frames_measured, 'frame')} measured"
                  f"{_paired(context.blend_frames_paired)})"),
        ("time", f"{seconds:.1f} s, {1000 * seconds / len(frames):.1f} ms a frame"),
    ]  # fmt: skip


def _paired(frames: int) -> str:
    """The frames measured against the frame before, when any: a dark series, where
    Stein's estimate does not hold."""
    return f", {frames} of them against the frame before" if frames else ""


def _follows(engine: Engine) -> str:
    """How a temporal model follows fast events, and the other choice."""
    if engine.metadata.frames == 1:  # nothing to follow: --follow events is no-op, said
        return (
            "; --follow events does nothing here (a spatial model)"
            if engine.follow == "events"
            else ""
        )
    if engine.follow == "events":
        return "; follows fast events closely (--follow events: less PSNR)"
    return (
        "; temporal: below about 10 photons per pixel, fast events come out lower and "
        "later (--follow events keeps them closer, for less PSNR; na-lite has no lag)"
    )


def _findings(context: SeriesContext, tally: _Tally) -> str:
    """What the series' frames held beyond the camera's plain noise, and what was done
    about it (as ``status.series`` reports it live): a user judging the output sees
    which of the camera room's corrections touched it."""
    estimate = context.estimate
    if context.configured is None and estimate is not None and estimate.frames == 0:
        return "blank frames only, each one value (given back as they came)"
    side = context.camera_side
    counts = (  # (how many, of what, said how)
        (side.noisy_pixels, "noisy or warm pixel", "{} filled from their neighbours"),
        (context.frames_with_spikes, "frame", "one-pixel spikes or holes filled in {}"),
        (context.frames_masked, "frame", "a masked region (kept as it came) in {}"),
        (context.scene_changes, "time", "the scene moved {}: history dropped"),
        (context.scene_shifts, "frame", "the scene shifted in {}: history moved with it"),
    )
    found = [said.format(counted(n, unit)) for n, unit, said in counts if n]
    if tally.unread_pixels:  # NaN/Inf: filled for the model, given back as they came
        found.append(
            f"{counted(tally.unread_pixels, 'NaN/Inf pixel')} in "
            f"{counted(tally.unread_frames, 'frame')} (NaN in the output there; the model "
            "saw them filled from the pixels around)"
        )
    if side.row_noise_corrected:
        found.append(f"row offsets (rms {side.row_noise:.3g}) taken out")
    for lines, pattern in side.line_patterns.items():
        if pattern["corrected"]:
            found.append(f"a fixed pattern of {lines} (rms {pattern['rms']:.3g}) taken out")
    if side.scan_lag:
        found.append(f"odd lines {side.scan_lag} px off the even ones (a scan's phase), aligned")
    if estimate is not None and estimate.moved:
        moved = f"{estimate.moved} of the {counted(estimate.pairs, 'frame pair')} compared moved"
        if 2 * estimate.moved > estimate.pairs:  # the estimate rests mostly on them
            moved += (
                " (most: the camera was estimated mostly from their differences' residuals, "
                "which fine structure inflates; configure the camera for such recordings)"
            )
        found.append(moved)
    return "; ".join(found) if found else "nothing but the camera's noise"


#: Holes a stored series' time axis may have beyond 10 per frame before it is refused.
MAX_HOLES = 100_000


def _check_not_too_sparse(frames: Any) -> None:
    """A stored series whose indices jumped far (a sender's counter reset, 2**40 - 1) has
    a time axis of holes the output cannot hold row by row (row i is frame i)."""
    holes = frames.rows - len(frames)
    if holes > MAX_HOLES and holes > 10 * len(frames):
        raise DeepDenoiseError(
            f"{frames.source}: its {counted(len(frames), 'frame')} have indices up to "
            f"{frames.rows - 1}, so the output's time axis would be {frames.rows} rows, "
            f"{holes} of them holes (row i is the series' frame i): too sparse to write; "
            "expected a series whose indices count its frames"
        )


def _first(indices: Any, shown: int = 10) -> str:
    """The first few of ``indices``, comma-separated, with an ellipsis if there are more."""
    return ", ".join(str(i) for i in indices[:shown]) + (", …" if len(indices) > shown else "")


def register(app: typer.Typer) -> None:
    app.command()(denoise)
