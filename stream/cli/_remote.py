"""Commands that talk to a running service over its control socket.

``status``, ``pause``, ``resume``, ``flush``, ``stop``, ``load-model``, ``set-rois`` and
``end-series``: one command per control request, so nothing the socket can do needs a
script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .._errors import DeepDenoiseError
from .._types import DEFAULT_CONTROL
from ._common import (
    blend_choice,
    blend_in_part,
    console,
    counted,
    counts,
    fail,
    frames_by_passes,
    given_path,
    kv_table,
    print_json,
)
from ._request import request

Control = Annotated[str, typer.Option(help="The service's control endpoint.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the reply.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the reply as JSON.")]


def _ask(control: str, message: dict[str, Any], timeout: float, json_out: bool) -> dict[str, Any]:
    """The reply map, or exit 2 with the service's error (or why none came); with
    ``--json``, that is also printed as JSON on stdout, ``{"ok": false, "error": ...}``,
    for a script that parses it (it found plain text: a trial)."""
    try:
        reply = request(control, message, timeout)
    except (DeepDenoiseError, OSError) as exc:
        if json_out:
            print_json({"ok": False, "error": str(exc)})
        raise fail(exc) from exc
    if not reply.get("ok", False):
        if json_out:
            print_json(reply)
        error = str(reply.get("error", reply))
        error = error.removeprefix(f"{message['cmd']}: ")  # said once, before "refused"
        raise fail(f"{message['cmd']} refused by {control}: {error}")
    return reply


def _print(reply: dict[str, Any], json_out: bool, text: str) -> None:
    if json_out:
        print_json(reply)
    else:
        console.print(text, highlight=False, soft_wrap=True)  # one line in a log file too


def status(
    control: Control = DEFAULT_CONTROL, timeout: Timeout = 3.0, json_out: JsonOut = False
) -> None:
    """Ask a running service for its status and print it."""
    reply = _ask(control, {"cmd": "status"}, timeout, json_out)
    if json_out:
        print_json(reply)
        return
    console.print(status_table(reply))


def pause(
    control: Control = DEFAULT_CONTROL, timeout: Timeout = 3.0, json_out: JsonOut = False
) -> None:
    """Stop denoising (raw frames are still stored; skipped frames are counted)."""
    _print(_ask(control, {"cmd": "pause"}, timeout, json_out), json_out, f"paused {control}")


def resume(
    control: Control = DEFAULT_CONTROL, timeout: Timeout = 3.0, json_out: JsonOut = False
) -> None:
    """Denoise again after `pause`."""
    _print(_ask(control, {"cmd": "resume"}, timeout, json_out), json_out, f"resumed {control}")


def flush(
    control: Control = DEFAULT_CONTROL, timeout: Timeout = 60.0, json_out: JsonOut = False
) -> None:
    """Write every frame received so far to disk; returns once it is there."""
    _print(
        _ask(control, {"cmd": "flush"}, timeout, json_out),
        json_out,
        "flushed: every frame received is on disk",
    )


def stop(
    control: Control = DEFAULT_CONTROL, timeout: Timeout = 3.0, json_out: JsonOut = False
) -> None:
    """Stop the service in order: drain the stages, flush and close the stores; sent
    again while it drains, cut the drain short."""
    reply = _ask(control, {"cmd": "stop"}, timeout, json_out)
    said = (
        f"stopping {control}: the drain is cut short (frames still waiting are stored raw)"
        if reply.get("drain_cut")
        else f"stopping {control} (frames received are denoised first; `stop` again: at once)"
    )
    _print(reply, json_out, said)


def load_model(
    model: Annotated[  # a str: typer makes "" Path("."), the working folder, unsaid
        str,
        typer.Argument(
            help="The ONNX model to switch to, or a shipped model's name (na-temporal, na-large).",
        ),
    ],
    control: Control = DEFAULT_CONTROL,
    timeout: Timeout = 120.0,
    json_out: JsonOut = False,
) -> None:
    """Switch the running service to another model between two frames (none is lost)."""
    path = Path(given_path(model, "MODEL")).expanduser()
    if path.exists() or len(path.parts) > 1:
        path = path.absolute()  # a file: the service may run in another folder
    # else a bare name (na-temporal, rig.onnx): the service looks in its model folders
    reply = _ask(control, {"cmd": "load_model", "path": str(path)}, timeout, json_out)
    _print(
        reply,
        json_out,
        f"model {reply.get('model')} now active on {reply.get('provider')} "
        f"({reply.get('path', path)})",
    )


def set_rois(
    rois: Annotated[  # a str: see load_model
        str | None,
        typer.Argument(
            help="Label image (.npy, .tif, Zarr array) or suite2p stat.npy; omit with --clear.",
            show_default=False,
        ),
    ] = None,
    series: Annotated[
        str | None,
        typer.Option(help="Only this series (default: every series).", show_default=False),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the ROIs: no traces.")] = False,
    control: Control = DEFAULT_CONTROL,
    timeout: Timeout = 10.0,
    json_out: JsonOut = False,
) -> None:
    """Replace the ROIs of a running service between two frames (no frame is lost)."""
    from ..traces import load_rois

    if (rois is None) == (not clear):
        raise fail("give a ROI file, or --clear to remove the ROIs (not both)")
    message: dict[str, Any] = {"cmd": "set_rois", "labels": None}
    if rois is not None:
        path = Path(given_path(rois, "ROIS"))
        try:
            loaded = load_rois(path)
        except DeepDenoiseError as exc:
            raise fail(exc) from exc
        labels = loaded.to_labels()
        message.update(labels=labels.tobytes(), dtype=labels.dtype.str, shape=list(labels.shape))
        if loaded.shape is None:  # suite2p with no ops.npy: only the ROIs' extent is known
            message["fit"] = True
        message["source"] = str(path.resolve())  # status and the stored traces name it
    if series is not None:
        message["series"] = series
    reply = _ask(control, message, timeout, json_out)
    _print(reply, json_out, rois_set_message(reply, series))


def end_series(
    series: Annotated[str, typer.Argument(help="The open series to end.", show_default=False)],
    control: Control = DEFAULT_CONTROL,
    timeout: Timeout = 15.0,
    json_out: JsonOut = False,
) -> None:
    """End an open series as its sender's `end` would (a sender that crashed with it
    open): its store is closed once its frames are denoised; a later frame resumes it."""
    reply = _ask(control, {"cmd": "end_series", "series": series}, timeout, json_out)
    last = reply.get("last_index", -1)
    if last < 0:
        said = f"series {series!r} ended (it took no frame)"
    else:
        said = (
            f"series {series!r} ended at frame {last}: its store closes once its frames "
            "still queued are denoised (a series_end event tells)"
        )
    _print(reply, json_out, said)


def rois_set_message(reply: dict[str, Any], series: str | None) -> str:
    """What a set_rois reply means: where the ROIs apply, and whether a streaming series
    has checked them against its frames yet (else the next series start does)."""
    where = f"series {series!r}" if series else "every series"
    count = reply.get("rois")
    if not count:
        return f"ROIs removed from {where}: no traces"
    checked = reply.get("checked") or []
    if checked:
        names = ", ".join(repr(name) for name in checked)
        return f"{count} ROIs now traced on {where} (they fit the frames of {names})"
    idle = f"series {series!r} is not streaming" if series else "no series is streaming"
    return (
        f"{count} ROIs set on {where}; {idle}, so their shape is checked against a "
        "series' frames when it starts (a mismatch is a rois_shape error in status and no "
        "traces for that series)"
    )


def _latency_row(lat: dict[str, Any]) -> str:
    """p50 / p99, and which frames they are of: the window counts frames, not time."""
    text = f"{lat.get('p50', 0):.2f} / {lat.get('p99', 0):.2f} ms"
    frames, since = lat.get("frames"), lat.get("since_last_s")
    if frames and since is not None:
        text += f" (the last {counted(frames, 'frame')}; the latest {since:.1f} s ago)"
    return text


def status_table(reply: dict[str, Any]) -> Table:
    lat = reply.get("latency_ms", {})
    rows = [
        ("state", f"{reply.get('state')}{' (paused)' if reply.get('paused') else ''}"),
        ("uptime", f"{reply.get('uptime_s', 0):.1f} s"),
        ("model / provider", f"{reply.get('model')} / {reply.get('provider')}"),
        *_loading_rows(reply.get("loading")),
        ("frames in / out", f"{reply.get('frames_in')} / {reply.get('frames_out')}"),
        ("fps (recent)", f"{reply.get('fps')}"),
        ("latency p50 / p99", _latency_row(lat)),
        ("ensemble passes", _ensemble_row(reply.get("ensemble") or {})),
        ("blend", str(reply.get("blend", "n/a"))),
        ("dropped", counts(reply.get("dropped"))),
        ("rejected", counts(reply.get("rejected"))),
        ("non-finite frames", counts(reply.get("sanitized"))),
        ("queues", counts(reply.get("queues"))),
        ("zarr", str(reply.get("zarr") or "off (--no-zarr)")),
    ]
    store = reply.get("store") or {}
    if store.get("errors"):  # frames not on disk are counted in dropped; say why here
        last = store.get("last_error")
        rows.append(
            (
                "store",
                f"{store.get('health')}, errors {counts(store.get('errors'))}"
                + (
                    f"; last ({store.get('last_error_age_s', 0):.0f} s ago): {last}" if last else ""
                ),
            )
        )
    traces = reply.get("traces") or {}
    # a series whose frames the ROIs do not fit has no traces: said here too (rois_shape)
    trace_errors = f", errors {counts(traces['errors'])}" if traces.get("errors") else ""
    if traces.get("rois"):
        rows.append(
            (
                "traces",
                f"{traces.get('rois')} ROIs ({traces.get('source')}), {traces.get('frames')} "
                f"frames, triggers {counts(traces.get('triggers'))}{trace_errors}",
            )
        )
    elif traces.get("series") or trace_errors:  # ROIs set for some series only, or none
        per_series = {name: n for name, n in (traces.get("series") or {}).items() if n}
        rows.append(
            (
                "traces",
                f"ROIs per series {counts(per_series)}, {counted(traces.get('frames'), 'frame')}, "
                f"triggers {counts(traces.get('triggers'))}{trace_errors}"
                if per_series
                else f"no ROIs{trace_errors}",
            )
        )
    for name, c in (reply.get("series") or {}).items():
        rows.append(
            (
                f"series {name}",
                f"in {c.get('frames_in')}, out {c.get('frames_out')}, "
                f"last index {c.get('last_index')}, missing {c.get('missing')}"
                f"{_camera_text(c.get('camera'))}{_camera_faults_text(c)}{_blend_text(c.get('blend'))}"
                f"{_still_means_text(c.get('still_means'))}",
            )
        )
    return kv_table("deepdenoise status", rows)


def _camera_text(camera: dict[str, Any] | None) -> str:
    """A series' camera, for its status line: ``; camera (live, frame pairs) gain 1.02 ±
    0.041 ADU/e-, offset 100 ± 0.38 ADU, read noise 2.1 ADU``."""
    if not camera or "gain" not in camera:
        return ""
    sources = {"spatial": "live, one frame", "temporal": "live, frame pairs"}
    source = sources.get(camera.get("source", ""), camera.get("source", "?"))

    def value(key: str) -> str:
        error = camera.get(f"{key}_stderr")
        return f"{camera[key]:.3g}" + (f" ± {error:.2g}" if error else "")

    pattern = camera.get("pattern")  # a fixed pattern of offsets, in the read noise
    return (
        f"; camera ({source}) gain {value('gain')} ADU/e-, "
        f"offset {value('offset')} ADU, read noise {camera.get('read_noise', 0):.3g} ADU"
        + (f" (a fixed pattern of {pattern:.3g} in it)" if pattern else "")
    )


def _camera_faults_text(series: dict[str, Any]) -> str:
    """What the service corrects of a series' camera before the model, for its status
    line: ``; 12 noisy pixels filled; rows levelled (0.75 rms); fixed columns pattern
    taken out (0.35 rms)``."""
    text = ""
    if series.get("noisy_pixels"):
        text += f"; {series['noisy_pixels']} noisy or warm pixels filled"
    rows = series.get("row_noise") or {}
    if rows.get("corrected"):
        text += f"; rows levelled ({rows.get('rms', 0):.2f} rms)"
    for lines, pattern in (series.get("line_patterns") or {}).items():
        if pattern.get("corrected"):
            text += f"; fixed {lines} pattern taken out ({pattern.get('rms', 0):.2f} rms)"
    return text


def _blend_text(blend: dict[str, Any] | None) -> str:
    """A series' blend, for its status line: ``; blend noise map x 0.8 + ... (8
    measured)``, and ``; young windows to the temporal branch`` where the series'
    risks sent them there."""
    if not blend:
        return ""
    basis = (
        "the first measurement in part"
        if blend_in_part(blend)
        else f"{blend.get('measured', 0)} measured"
    )
    text = f"; blend {blend_choice(blend)} ({basis})"
    if blend.get("young_window") == "temporal":
        text += "; young windows to the temporal branch"
    return text


def _still_means_text(still: dict[str, Any] | None) -> str:
    """A temporal model's still, bright pixels averaged over time, for a series' status
    line: ``; still pixels averaged 62 % (5.8 frames)``; nothing when none are."""
    if not still or not still.get("share"):
        return ""
    share, frames = 100 * still["share"], still.get("frames", 0)
    return f"; still pixels averaged {share:.0f} % ({frames:.1f} frames)"


def _loading_rows(loading: Any) -> list[tuple[str, str]]:
    """A row while load_model loads and warms up a model (none otherwise)."""
    if not isinstance(loading, dict):
        return []
    return [("loading model", f"{loading.get('path')} (for {loading.get('for_s', 0):.0f} s)")]


def _ensemble_row(ensemble: dict[str, Any]) -> str:
    return f"{ensemble.get('setting', 'n/a')}; frames by passes: {frames_by_passes(ensemble)}"


def register(app: typer.Typer) -> None:
    for command in (status, pause, resume, flush, stop):
        app.command()(command)
    app.command("load-model")(load_model)
    app.command("set-rois")(set_rois)
    app.command("end-series")(end_series)
