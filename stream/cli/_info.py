"""``deepdenoise info``: describe a model file or a series store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._errors import DeepDenoiseError, ModelError, StoreError
from ._common import console, counted, fail, kv_table

if TYPE_CHECKING:
    from ..engine import ModelMetadata


def describe(path: Path) -> tuple[str, list[tuple[str, str]], str | None]:
    """A title and (field, value) rows for a model (.onnx, or a shipped model's name) or
    a store (.zarr folder), and a series store's damage (None: none, or not a store)."""
    from ..engine import model_file

    path = model_file(path)  # a shipped model's name: its file (ModelError when none)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".onnx":
        return f"model {path}", _model_rows(path), None
    from ..store import (
        is_rejected_store,
        is_series_store,
        rejected_path,
        rejected_with_meta,
        summarize_rejected,
        summarize_store,
    )

    if path.is_dir() and is_rejected_store(path):
        blocks, with_meta = summarize_rejected(path), rejected_with_meta(path)
        rows = [
            (
                block,
                counted(n, "frame")
                + (f", {with_meta[block]} with meta" if with_meta[block] else ""),
            )
            for block, n in blocks.items()
        ] or [("frames", "0")]
        return f"rejected frames {path}", rows, None
    if path.is_dir() and is_series_store(path):
        summary = summarize_store(path)
        # "frames" is the time axis, holes included: shown so, beside the frames on disk
        axis = (
            f"{summary['frames']} (allocated ahead while the store is open: being written, "
            "or left open by a service that was killed; frames on disk: valid)"
            if not summary["closed"]
            else f"{summary['frames']} slots (frames on disk: valid; holes: missing)"
        )
        rows = [
            ("time axis", axis)
            if k == "frames"
            else ("damaged", v or "no (every raw frame flagged valid has its pixels on disk)")
            if k == "damaged"
            else ("denoised damaged", v or "no")
            if k == "damaged_clean"
            else (k, _text(v))
            for k, v in summary.items()
        ]
        rejected = rejected_path(path.parent, path.name.removesuffix(".zarr"))
        if rejected.is_dir():  # frames sent under this name, refused, kept apart
            kept = sum(summarize_rejected(rejected).values())
            rows.append(("rejected frames", f"{kept} kept in rejected/{path.name} beside it"))
        clean = summary["damaged_clean"] and f"its denoised frames: {summary['damaged_clean']}"
        return f"store {path}", rows, summary["damaged"] or clean
    if path.is_dir() and (path / "zarr.json").is_file():
        try:  # metadata it cannot read: a damaged store, said so
            node = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path}/zarr.json: {exc}") from exc
        raise StoreError(_not_a_series_store(path, node))
    raise StoreError(
        f"expected an .onnx model, a <series>.zarr store or rejected/<series>.zarr, got {path}"
    )


def _not_a_series_store(path: Path, node: Any) -> str:
    """What a Zarr node is that no service wrote, and what to do with it."""
    expected = "expected an .onnx model, a <series>.zarr store or rejected/<series>.zarr"
    if isinstance(node, dict) and node.get("node_type") == "array":
        shape = "x".join(str(n) for n in node.get("shape", []))
        return (
            f"{expected}, got a plain Zarr array ({shape} {node.get('data_type', '?')}) at "
            f"{path}: no service wrote it (no 'raw' array); to denoise it: "
            f"deepdenoise denoise {path} -o OUT.zarr"
        )
    return f"{expected}, got a Zarr group with no 'raw' array at {path}: no service wrote it"


def _model_rows(path: Path) -> list[tuple[str, str]]:
    import onnxruntime as ort

    from ..engine import ModelMetadata, model_id_for, not_an_onnx_model

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unreadable models
        if "INVALID_PROTOBUF" in str(exc):  # not an ONNX file at all: as serve says it
            raise ModelError(not_an_onnx_model(path)) from None
        raise ModelError(f"cannot load {path} with ONNX Runtime: {exc}") from exc
    props = session.get_modelmeta().custom_metadata_map
    if props.get("deepdenoise.kind") == "trace":  # the 1-D ROI trace denoiser
        return _trace_model_rows(path, props, session)
    meta = ModelMetadata.from_props(props)
    rows = [
        ("model id", model_id_for(path, meta)),
        ("metadata", "deepdenoise" if meta.from_model else "none (defaults apply)"),
        ("architecture", meta.architecture),
        ("receptive field", f"{meta.receptive_field} px (radius {meta.radius})"),
        ("normalisation", _normalisation(meta)),
        ("training noise", _text(meta.training_noise) if meta.training_noise else "-"),
        ("frames", f"{meta.frames}" + (" + noise map" if meta.noise_map else "")),
    ]
    if meta.running_mean > 0:
        rows.append(("running mean", f"decay {meta.running_mean:g} (previous frames)"))
    if meta.spatial_start:
        rows.append(("series start", _text(meta.spatial_start)))
    if meta.pass_through_snr is not None:
        low, high = meta.pass_through_snr
        rows.append(("pass-through", f"toward the input from peak SNR {low:g} to {high:g}"))
    if meta.adaptation:
        rows.append(("adapted", _adaptation(meta.adaptation)))
    rows.append(("content hash", meta.content_hash or "-"))
    rows.append(("contract", _verdict(path)))
    return rows + _files_rows(path, session)


def _verdict(path: Path) -> str:
    """Whether serve and load-model would take the model: what they check at load (the
    signature, a batch of tiles, a warm-up frame), on the CPU."""
    from ..engine import Engine

    h, w = _VERDICT_SHAPE
    try:
        Engine(path, provider="cpu", warmup_shape=_VERDICT_SHAPE).close()
    except ModelError as exc:
        return f"refused: {exc}"
    return f"fits (a {h}x{w} frame and a batch of 2 tiles ran on the CPU)"


#: A small non-square frame: the verdict costs little even for a large model.
_VERDICT_SHAPE = (96, 128)


def _files_rows(path: Path, session: Any) -> list[tuple[str, str]]:
    rows = [("size", f"{path.stat().st_size / 1e6:.2f} MB")]
    for kind, args in (("input", session.get_inputs()), ("output", session.get_outputs())):
        rows += [(kind, f"{a.name} {a.type} {a.shape}") for a in args]
    return rows


def _trace_model_rows(path: Path, props: dict[str, str], session: Any) -> list[tuple[str, str]]:
    """A trace model's rows: its metadata is not the frame models' (stream.traces)."""
    rows = [
        ("kind", "ROI trace denoiser ([traces] denoiser = this file)"),
        ("architecture", props.get("deepdenoise.architecture", "-")),
        ("window", f"{props.get('deepdenoise.trace_window', '-')} dF/F samples, causal"),
        ("training data", props.get("deepdenoise.training_data", "-")),
        ("budget", props.get("deepdenoise.budget", "-")),
    ]
    return rows + _files_rows(path, session)


def _adaptation(record: dict[str, Any]) -> str:
    """What ``deepdenoise adapt`` recorded, in one line (all of it is the model's
    ``deepdenoise.adaptation`` metadata)."""
    step = record.get("chosen_step")
    chosen = f"step {step} chosen" if step else "the starting weights kept"
    return (
        f"from {record.get('start_path', '?')} on {record.get('source', '?')} "
        f"({record.get('frames', '?')} frames), {record.get('loss', '?')} loss, "
        f"{record.get('steps', '?')} steps in {record.get('seconds', '?')} s, {chosen}"
    )


def _normalisation(meta: ModelMetadata) -> str:
    if meta.normalization == "adaptive":
        return "adaptive: (raw - camera offset) / per-frame scale"
    return f"(raw - {meta.input_offset}) / {meta.input_scale}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def shipped_rows() -> list[tuple[str, str]]:
    """One row per shipped model: what it takes, its size, and which provider's default
    it is."""
    import onnxruntime as ort

    from ..engine import (
        CPU_DEFAULT,
        GPU_DEFAULT,
        ModelMetadata,
        shipped_model_names,
        shipped_model_path,
    )

    rows = []
    for name in shipped_model_names():
        file = shipped_model_path(name)
        session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
        kind = "spatial: one frame" if meta.frames == 1 else f"temporal: {meta.frames} frames"
        defaults = [p for p, d in (("CPU", CPU_DEFAULT), ("GPU", GPU_DEFAULT)) if d == name]
        default = f"; the default on {' and '.join(defaults)}" if defaults else ""
        size = file.stat().st_size / 1e6
        rows.append((name, f"{kind}, receptive field {meta.receptive_field} px, "
                           f"{size:.2f} MB{default}"))  # fmt: skip
    return rows


def info(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="An .onnx model, a shipped model's name, a <series>.zarr store, or "
            "rejected/<series>.zarr (frames the service refused for their series). "
            "None: the shipped models."
        ),
    ] = None,
) -> None:
    """Show a model's metadata or a store's summary (exit status 2 after the summary of
    a damaged store: frames flagged valid whose pixels are gone); with no path, list
    the shipped models."""
    if path is None:
        console.print(kv_table("shipped models (deepdenoise info NAME for one)", shipped_rows()))
        return
    try:
        title, rows, damaged = describe(path)
    except (DeepDenoiseError, OSError) as exc:
        raise fail(exc) from exc
    console.print(kv_table(title, rows))
    if damaged:  # shown, then refused as every reader refuses it
        raise fail(StoreError(f"{path}: the store is damaged: {damaged}"))


def register(app: typer.Typer) -> None:
    app.command()(info)
