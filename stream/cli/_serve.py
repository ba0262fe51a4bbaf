"""``deepdenoise serve``: run the service until Ctrl-C, SIGTERM or the ``stop`` command."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .._errors import DeepDenoiseError
from .._types import DEFAULT_CONTROL, DEFAULT_INPUT, DEFAULT_OUTPUT
from ._common import FollowOption, ModelOption, ProviderOption, err_console, fail

log = logging.getLogger(__name__)


#: Settings given as options of the same name (``input_mode`` -> ``--input-mode``).
_SAME_NAMED = (
    "model", "input", "input_mode", "input_bind", "output", "control", "zarr", "tile",
    "overlap", "provider", "ensemble", "blend", "spikes", "follow", "output_dtype", "publish_raw",
    "offset_map",
)  # fmt: skip
#: The option each of the config's settings given here came from: an invalid value is
#: blamed on it, not on the --config file.
OPTIONS = {
    **{name: "--" + name.replace("_", "-") for name in _SAME_NAMED},
    "traces": "--rois",
    "model_dirs": "--model-dir",
}


def serve(
    model: ModelOption = None,
    input: Annotated[
        str | None,
        typer.Option("--input", help="Acquisition endpoint.", show_default=DEFAULT_INPUT),
    ] = None,
    input_mode: Annotated[
        Literal["sub", "pull"] | None,
        typer.Option(
            help="sub: subscribe to the acquisition's PUB (keeps the newest frame); "
            "pull: lossless, back-pressures the sender.",
            show_default="sub",
        ),
    ] = None,
    input_bind: Annotated[
        bool | None,
        typer.Option(
            "--input-bind/--input-connect",
            help="Bind the input socket instead of connecting to the acquisition.",
            show_default="--input-connect",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help="PUB endpoint for denoised frames, status and events.",
            show_default=DEFAULT_OUTPUT,
        ),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(help="REP control endpoint.", show_default=DEFAULT_CONTROL),
    ] = None,
    zarr: Annotated[  # a str: Path("") would be the working folder, unsaid
        str | None,
        typer.Option(help="Folder for <series>.zarr stores.", show_default="./deepdenoise-data"),
    ] = None,
    no_zarr: Annotated[bool, typer.Option("--no-zarr", help="Do not write to disk.")] = False,
    tile: Annotated[
        int | None,
        typer.Option(
            help="Largest tile side; frames that fit run whole.",
            show_default="1024 + overlap",
        ),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(
            help="Tile overlap in pixels (>= 2 x receptive-field radius).",
            show_default="2 x radius + 16",
        ),
    ] = None,
    provider: ProviderOption = None,
    spikes: Annotated[
        Literal["correct", "pass", "off"] | None,
        typer.Option(
            help="One-pixel spikes far above the scene (hot pixels, cosmic rays) and "
            "holes far below the offset (noisy or dead pixels): filled for the model; the "
            "output holds its estimate there (correct) or the pixel as it came (pass).",
            show_default="correct",
        ),
    ] = None,
    follow: FollowOption = None,
    ensemble: Annotated[
        Literal["auto", "1", "2", "4"] | None,
        typer.Option(
            help="Self-ensemble passes per frame (mirrored copies, averaged); auto: more "
            "than 1 only when the frame interval leaves the time; 1: least latency.",
            show_default="auto",
        ),
    ] = None,
    blend: Annotated[
        Literal["spatial", "spatiotemporal", "off"] | None,
        typer.Option(
            help="spatial: tell the model a lighter or heavier noise map and blend its "
            "output with spatial smoothing or its output on the frame binned 2 x 2 where "
            "Stein's unbiased risk estimate of the series' own frames says it helps (a few "
            "frames get five more passes and two binned ones, in spare time, but a "
            "series' first frame before it is served when its noise variance is known); "
            "spatiotemporal: also with the running mean (a temporal model; blurs fast "
            "events); off: the model's output as it is.",
            show_default="spatial",
        ),
    ] = None,
    output_dtype: Annotated[
        Literal["float32", "input"] | None,
        typer.Option(
            help="Denoised payload dtype: float32, or the input dtype (rounded, clipped).",
            show_default="float32",
        ),
    ] = None,
    publish_raw: Annotated[
        bool | None,
        typer.Option(
            "--publish-raw/--no-publish-raw",
            help="Also publish every received frame on topic raw (for live viewers).",
            show_default="--no-publish-raw",
        ),
    ] = None,
    rois: Annotated[  # a str: see ModelOption
        str | None,
        typer.Option(
            metavar="PATH",
            help="ROIs for traces, ΔF/F and triggers: a label image (.npy, .tif, Zarr array; "
            "0 = background) or suite2p stat.npy.",
            show_default="none",
        ),
    ] = None,
    offset_map: Annotated[  # a str: see ModelOption
        str | None,
        typer.Option(
            metavar="PATH",
            help="A dark-frame average (.npy, one value a pixel; `deepdenoise calibrate "
            "--offset-map` writes it): its pattern is subtracted from every frame of its "
            "shape before the model.",
            show_default="none",
        ),
    ] = None,
    model_dir: Annotated[  # strs: see ModelOption
        list[str] | None,
        typer.Option(
            "--model-dir",
            metavar="PATH",
            help="A folder `load-model` may load models from, besides the shipped models and "
            "the served model's folder (repeatable).",
            show_default="none",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config file; command-line options override it.")
    ] = None,
) -> None:
    """Denoise frames from an acquisition program until stopped (Ctrl-C, SIGTERM, `stop`)."""
    from ..service import Service, load_config

    if no_zarr and zarr is not None:
        raise fail(f"--zarr {zarr} and --no-zarr contradict each other: give one of them")
    try:
        cfg = load_config(
            config,
            options=OPTIONS,
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
            ensemble=int(ensemble) if ensemble not in (None, "auto") else ensemble,
            blend=blend,
            spikes=spikes,
            follow=follow,
            output_dtype=output_dtype,
            publish_raw=publish_raw,
            traces={"rois": rois} if rois is not None else None,
            offset_map=offset_map,
            model_dirs=model_dir or None,
        )
        if no_zarr:
            cfg = cfg.model_copy(update={"zarr": None})
        service = Service(cfg)
        service.start()
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc

    interrupts = [0]  # Ctrl-C and SIGTERM so far

    def on_signal(signum: int, _frame: Any) -> None:
        hurry = signum in (signal.SIGINT, signal.SIGTERM)
        interrupts[0] += hurry
        first = hurry and interrupts[0] == 1
        log.info(
            "%s: stopping%s",
            signal.Signals(signum).name,
            f" (what came is denoised for up to {cfg.drain_s:g} s: Ctrl-C or SIGTERM again "
            "cuts that short)"
            if first and cfg.drain_s
            else "",
        )
        if hurry and interrupts[0] > 1:
            service.cut_drain()  # the operator's second Ctrl-C or SIGTERM: hurry
        service.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # the terminal or SSH session closed: stop in order (a session's close may send it
    # twice, which hurries nothing); under nohup it stays ignored
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        signal.signal(signal.SIGHUP, on_signal)
    engine = service.engine
    assert engine is not None
    err_console.print(
        f"[bold green]deepdenoise serving[/] model {engine.model_id} on {engine.provider}; "
        f"input {service.endpoints['input']}, output {service.endpoints['output']}, "
        f"control {service.endpoints['control']}",
        highlight=False,
        soft_wrap=True,  # one line in a log file (rich wraps a pipe at 80 columns)
    )
    while not service.wait(0.5):
        pass
    try:
        service.stop()
    except Exception as exc:
        raise fail(exc) from exc
    unstored = service.raw_frames_not_on_disk()
    if unstored:  # a full disk, say: the log says why, a watchdog reads the exit status
        raise fail(
            f"{unstored} raw frame(s) are not on disk (dropped.store_raw; the store errors "
            "logged above say why)"
        )


def register(app: typer.Typer) -> None:
    app.command()(serve)
