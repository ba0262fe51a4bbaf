"""Export a training checkpoint to an ONNX model that follows the engine's contract.

The export is only trusted after it has run where it will be used: the written file is
loaded by the real :class:`stream.engine.Engine` (CPU provider) and its output on
random frames in raw camera units — whole frames of odd sizes, one frame cut into
tiles, and one direct batch — is compared with the torch model on the same input.
The torch reference reproduces the engine's canonical output exactly as defined in
:mod:`stream.engine`: normalise, reflect-pad (`stream.engine.pad_canonical`), run,
crop, denormalise. An export whose error exceeds the bound raises instead of being
shipped.

The content hash is the SHA-256 of the serialised model *without* ``metadata_props``:
it names the computation, so re-exporting the same checkpoint gives the same id.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from exporter.model import DnCNN, receptive_field
from exporter.train import load_checkpoint
from stream import ConfigError, ModelError
from stream.engine import (
    CameraModel,
    Engine,
    ModelMetadata,
    border_for,
    graph_hash,
    model_input,
    pad_canonical,
)

log = logging.getLogger(__name__)

OPSET = 17
#: Whole-frame parity shapes (odd, non-square, smaller and larger than a patch); cycled.
PARITY_SHAPES: tuple[tuple[int, int], ...] = ((37, 53), (64, 29), (17, 96), (90, 71))
#: Default bounds on the max abs error, in model units (raw error / input_scale).
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2


class ParityError(ModelError):
    """The exported model's output in the engine disagrees with torch beyond the bound."""


@dataclass(frozen=True)
class ParityRow:
    """One parity case: max abs error of engine output vs torch."""

    variant: str  # "fp32" or "fp16"
    case: str  # e.g. "whole 37x53", "tiled 131x115 (4 tiles)", "batch 3x40x44 (ORT)"
    max_abs_model: float  # model units
    max_abs_raw: float  # raw camera units (ADU)


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how closely it matches torch."""

    path: Path
    metadata: ModelMetadata
    size_bytes: int
    tolerance: float
    rows: list[ParityRow] = field(default_factory=list)
    fp16_path: Path | None = None
    fp16_metadata: ModelMetadata | None = None
    fp16_tolerance: float | None = None
    seconds: float = 0.0

    def max_error(self, variant: str = "fp32") -> float:
        """Largest error over the variant's cases, model units."""
        return max((r.max_abs_model for r in self.rows if r.variant == variant), default=0.0)


def _torch_to_onnx(model: DnCNN) -> onnx.ModelProto:
    """TorchScript-based export (eval mode: BatchNorm folded into the convolutions).

    The dynamo exporter needs onnxscript and gives nothing for a plain conv stack; the
    TorchScript path and its helpers emit DeprecationWarnings, silenced for this call only.
    """
    axes = {0: "N", 2: "H", 3: "W"}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, model.spec.in_channels, 64, 64),),
            path,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": axes},
            opset_version=OPSET,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
            dynamo=False,
        )
        proto = onnx.load(str(path))
    if any(node.op_type == "BatchNormalization" for node in proto.graph.node):
        raise ModelError("export left BatchNormalization nodes in the graph (not folded)")
    return proto


def content_hash(proto: onnx.ModelProto) -> str:
    """SHA-256 of the model serialised without its metadata_props: the engine's
    ``graph_hash``, whose first 12 characters are the model id."""
    return graph_hash(proto.SerializeToString())


def finish_model(proto: onnx.ModelProto, fields: dict[str, Any], out: Path) -> ModelMetadata:
    """Attach metadata (with the content hash), check the model and write it."""
    del proto.metadata_props[:]
    props = ModelMetadata(**fields, content_hash=content_hash(proto)).to_props()
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    meta = ModelMetadata.from_props(props)  # exactly what the engine will read
    onnx.checker.check_model(proto, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    return meta


def training_data(info: dict[str, Any]) -> dict[str, Any]:
    """What a generated-data model was trained on (JSON-ready, for the metadata)."""
    cfg = info.get("config", {})
    synth = dict(cfg.get("synth", {}))
    if synth.get("recorded"):
        synth["recorded"] = Path(synth["recorded"]).name
    return {
        "generator": "exporter.synth",
        **synth,
        "steps": info.get("step"),
        "seed": cfg.get("seed"),
    }


def training_noise(info: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's noise description as stored in the metadata (JSON-ready)."""
    cfg = info.get("config", {})
    if cfg.get("data_source") == "synth":
        synth = cfg.get("synth", {})
        recorded = synth.get("recorded")
        read_noise_e = synth.get("read_noise_e")
        if recorded:  # the recording's noise replaced the modelled read noise
            read_noise_e = _recorded_read_noise_e(Path(recorded), synth.get("gain"))
        return {
            "source": "recorded" if recorded else "model",
            "recorded": Path(recorded).name if recorded else None,
            "photons": synth.get("photons"),
            "gain": synth.get("gain"),
            "read_noise_e": read_noise_e,
            "steps": info.get("step"),
            "seed": cfg.get("seed"),
        }
    noise = cfg.get("data", {}).get("noise", {})
    recorded = noise.get("recorded")
    return {
        "source": noise.get("source"),
        "level": noise.get("level"),
        "camera": noise.get("camera"),
        "recorded": Path(recorded).name if recorded else None,
        "steps": info.get("step"),
        "seed": cfg.get("seed"),
    }


def _recorded_read_noise_e(recording: Path, gain: Any) -> list[float] | None:
    """The read noise (e-) a synth run on a dark recording trained with: the recording's
    rms (ADU) over the gains it drew, most to least (:class:`exporter.synth.PairGenerator`).
    None, with a warning, when the recording cannot be read now: the engine then tells
    the model the camera's own read noise, with no least (``least_read_noise_e``)."""
    from exporter.noise import RecordedNoise, load_noise_stack

    try:
        rms = RecordedNoise(load_noise_stack(recording)).std
        low, high = (float(g) for g in gain)
    except (ConfigError, OSError, TypeError, ValueError) as exc:
        log.warning("training_noise: the read noise of %s is left out: %s", recording, exc)
        return None
    return [float(f"{rms / high:.3g}"), float(f"{rms / low:.3g}")]


#: The camera parity cases of a noise-adaptive model are read out with.
PARITY_CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=2.0)


@dataclass(frozen=True)
class ParityCase:
    """One input and its torch reference; ``tile`` set: run through a tiling engine.

    ``frames`` are raw-unit frames (K, H, W), oldest first (the last is the one
    denoised), or model units (N, C, H, W) for a direct batch.
    """

    name: str
    frames: np.ndarray
    reference: np.ndarray
    tile: tuple[int, int] | None = None  # (tile, overlap)


def _running_mean(frames: np.ndarray, meta: ModelMetadata) -> np.ndarray | None:
    """A running mean for a parity case: any frame-like image will do; the frames' mean."""
    return frames.mean(axis=0, dtype=np.float32) if meta.running_mean > 0 else None


def _told_camera(meta: ModelMetadata) -> CameraModel:
    """:data:`PARITY_CAMERA` as the engine tells it to ``meta``'s model: with no less read
    noise than the model was trained with (:meth:`ModelMetadata.told_read_noise`). A
    model trained on a dark recording of more than the parity camera's 1 e- failed every
    export before the reference did the same (a new user's trial, 2026-12-07)."""
    read = meta.told_read_noise(PARITY_CAMERA.gain, PARITY_CAMERA.read_noise)
    return PARITY_CAMERA.model_copy(update={"read_noise": read})


def _model_units(frames: np.ndarray, meta: ModelMetadata) -> tuple[np.ndarray, float, float]:
    """(C, H, W) model input, scale and offset, as the engine builds them."""
    if meta.normalization == "adaptive":
        inputs = np.empty((meta.in_channels, *frames.shape[1:]), np.float32)
        scale = model_input(
            frames, _told_camera(meta), meta.noise_map, out=inputs,
            running_mean=_running_mean(frames, meta),
        )  # fmt: skip
        return inputs, scale, PARITY_CAMERA.offset
    norm = (frames.astype(np.float32) - np.float32(meta.input_offset)) / np.float32(
        meta.input_scale
    )
    return norm, meta.input_scale, meta.input_offset


def _reference(model: torch.nn.Module, frames: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """The engine's canonical output computed with torch (see module docstring)."""
    inputs, scale, offset = _model_units(frames, meta)
    padded = pad_canonical(inputs, meta.radius, meta.alignment)
    with torch.inference_mode():
        out = model(torch.from_numpy(np.ascontiguousarray(padded))[None])[0, 0].numpy()
    h, w = frames.shape[1:]
    b = border_for(meta.radius, meta.alignment)
    crop = out[b : b + h, b : b + w]
    return crop * np.float32(scale) + np.float32(offset)


def _random_frames(
    rng: np.random.Generator, shape: tuple[int, int], meta: ModelMetadata
) -> np.ndarray:
    """Raw-unit frames (K, H, W) spanning the model's working range."""
    unit = rng.uniform(-0.1, 1.2, size=(meta.frames, *shape))
    if meta.normalization == "adaptive":  # a few hundred photons at the parity camera
        cam = PARITY_CAMERA
        return (cam.offset + cam.gain * 300.0 * unit).astype(np.float32)
    return (meta.input_offset + meta.input_scale * unit).astype(np.float32)


def parity_cases(
    model: torch.nn.Module, meta: ModelMetadata, inputs: int, seed: int = 0
) -> list[ParityCase]:
    """Whole frames of odd shapes, one tiled frame and one batch, with torch references.

    Computed once per export and shared by the fp32 and fp16 checks (the torch
    reference of a deep model is the slow part).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(inputs):
        shape = PARITY_SHAPES[i % len(PARITY_SHAPES)]
        frames = _random_frames(rng, shape, meta)
        name = f"whole {shape[0]}x{shape[1]}"
        cases.append(ParityCase(name, frames, _reference(model, frames, meta)))
    # A small tile forces the engine to cut, batch and blend: tiled must equal whole.
    overlap = 2 * meta.radius + 8
    tile = overlap + 24
    shape = (tile + 29, tile + 13)
    frames = _random_frames(rng, shape, meta)
    name = f"tiled {shape[0]}x{shape[1]} (tile {tile})"
    cases.append(ParityCase(name, frames, _reference(model, frames, meta), (tile, overlap)))
    # Dynamic N straight through ONNX Runtime (the engine batches only tiles).
    batch = rng.uniform(-0.1, 1.2, size=(3, meta.in_channels, 40, 44)).astype(np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(batch)).numpy()
    cases.append(ParityCase("batch 3x1x40x44 (ORT)", batch, want))
    return cases


def check_parity(
    path: Path, cases: list[ParityCase], *, variant: str = "fp32", threads: int | None = None
) -> list[ParityRow]:
    """Run each case through the real engine (or ORT for a batch) and compare with torch."""
    import onnxruntime as ort

    rows: list[ParityRow] = []
    engines: dict[tuple[int, int] | None, Engine] = {}
    try:
        for case in cases:
            if case.frames.ndim == 4:
                options = ort.SessionOptions()
                if threads is not None:
                    options.intra_op_num_threads = threads
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                err = float(
                    np.max(np.abs(session.run(None, {"x": case.frames})[0] - case.reference))
                )
                meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
                rows.append(ParityRow(variant, case.name, err, err * meta.input_scale))
                continue
            engine = engines.get(case.tile)
            if engine is None:
                tile, overlap = case.tile if case.tile is not None else (None, None)
                engine = engines[case.tile] = Engine(
                    path,
                    provider="cpu",
                    warmup_shape=None,
                    tile=tile,
                    overlap=overlap,
                    intra_op_threads=threads,
                    spikes="off",  # the graph's parity: random frames hold spikes
                    follow_lag=False,  # and change from frame to frame
                )
            current = case.frames[-1]
            if case.tile is not None and engine.plan_for(current.shape).n_tiles < 2:
                raise RuntimeError(f"parity case {case.name!r} was meant to be tiled")
            got = engine.denoise(
                current,
                camera=PARITY_CAMERA,
                history=list(case.frames[:-1]),
                running_mean=_running_mean(case.frames, engine.metadata),
            )
            err = float(np.max(np.abs(got - case.reference)))
            _, scale, _ = _model_units(case.frames, engine.metadata)
            rows.append(ParityRow(variant, case.name, err / scale, err))
    finally:
        for engine in engines.values():
            engine.close()
    return rows


def check_output(checkpoint: Path, out: Path) -> None:
    """Refuse, before any work, an output that cannot take the model: a folder, the
    checkpoint itself (writing there would destroy what is being exported), or a name
    that is no .onnx file (``info`` and ``serve`` would refuse what was written)."""
    if out.is_dir():
        raise ConfigError(
            f"expected the ONNX file to write, got the folder {out} (-o {out / 'model.onnx'}?)"
        )
    if out.resolve() == checkpoint.resolve():
        raise ConfigError(
            f"the output {out} is the checkpoint being exported, which the ONNX model would "
            f"replace; expected another file, e.g. {out.with_suffix('.onnx')}"
        )
    if out.suffix.lower() != ".onnx":  # info, serve and load-model take .onnx files only
        raise ConfigError(f"expected an output ending in .onnx, got {out}")


def export_onnx(
    checkpoint: Path,
    out: Path,
    *,
    fp16: bool = False,
    parity_inputs: int = 4,
    tolerance: float = FP32_TOLERANCE,
    fp16_tolerance: float = FP16_TOLERANCE,
    threads: int | None = None,
) -> ExportReport:
    """Export ``checkpoint`` to ``out`` (and ``<stem>-fp16.onnx`` with ``fp16``), verified.

    Parameters
    ----------
    checkpoint
        A ``last.pt`` / ``best.pt`` written by :func:`exporter.train.train`.
    out
        Where the fp32 model goes.
    fp16
        Also write a float16 variant (float32 input and output, ``keep_io_types``), which
        halves the file and runs faster on GPUs with fp16 units.
    parity_inputs
        Whole-frame parity cases (odd shapes); a tiled and a batched case always run.
    tolerance, fp16_tolerance
        Bounds on the max abs error vs torch, in model units.
    threads
        ONNX Runtime threads for the parity runs (None: its default).

    Raises
    ------
    ParityError
        A variant's error exceeds its bound: nothing is written to ``out`` (an earlier
        file there stays); the failed files are kept as ``<name>.parity-failed``.
    ModelError
        The checkpoint cannot be read, or the exported graph fails the ONNX checker.
    ConfigError
        ``out`` is a folder, the checkpoint itself, or no .onnx file.
    """
    t0 = time.perf_counter()
    checkpoint, out = Path(checkpoint), Path(out)
    check_output(checkpoint, out)
    model, info = load_checkpoint(checkpoint)
    norm = info["normalization"]
    spec = model.spec
    fields: dict[str, Any] = {
        "architecture": info.get("architecture", "dncnn"),
        "receptive_field": receptive_field(model),
        "frames": spec.frames,
        "noise_map": spec.noise_map,
        "running_mean": spec.running_mean,
        "alignment": spec.unshuffle,
        "training_noise": training_noise(info),
    }
    if norm.get("normalization") == "adaptive":
        fields["normalization"] = "adaptive"
        fields["training_data"] = training_data(info)
    else:
        fields["input_offset"] = float(norm["input_offset"])
        fields["input_scale"] = float(norm["input_scale"])
    proto = _torch_to_onnx(model)
    finals = [out, *([fp16_path_of(out)] if fp16 else [])]
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = {final: _staged(final) for final in finals}  # this run's own, each
    try:
        report = _export_staged(
            proto, fields, model, out, staged, parity_inputs, threads, tolerance,
            fp16_tolerance,
        )  # fmt: skip
    except ParityError as exc:  # kept for inspection, under names serve and info refuse
        kept = [
            _keep_failed(path, final)
            for final, path in staged.items()
            if path.exists() and path.stat().st_size > 0
        ]
        for path in staged.values():
            path.unlink(missing_ok=True)  # made, never written
        raise ParityError(
            f"{exc}; nothing was written to {out}"
            + (f" (the failed export is kept for inspection as {', '.join(kept)})" if kept else "")
        ) from None
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    for final, path in staged.items():  # through a symlink at -o, as a plain save wrote
        path.replace(final.resolve() if final.is_symlink() else final)
    meta = report.metadata
    report.seconds = time.perf_counter() - t0
    log.info(
        "exported %s (%s, receptive field %d, hash %s): max error %.2g model units",
        out,
        meta.architecture,
        meta.receptive_field,
        (meta.content_hash or "")[:12],
        report.max_error(),
    )
    return report


def fp16_path_of(out: Path) -> Path:
    """Where ``export --fp16`` writes the float16 variant of the model at ``out``."""
    return out.with_name(out.stem + "-fp16.onnx")


def _staged(path: Path) -> Path:
    """A new hidden file beside ``path`` (beside its target, for a symlink) that an export
    is written to until its parity holds; its name ends in .onnx, as the engine that
    checks it wants, and is this run's alone (not a killed run's, whose PID came again)."""
    target = path.resolve() if path.is_symlink() else path
    handle, name = tempfile.mkstemp(
        prefix=f".{target.stem}.export-", suffix=".onnx", dir=target.parent
    )
    os.close(handle)
    return Path(name)


def _keep_failed(staged: Path, final: Path) -> str:
    """Move a failed export to ``<final>.parity-failed``; its new name."""
    kept = final.with_name(final.name + ".parity-failed")
    staged.replace(kept)
    return str(kept)


def _export_staged(
    proto: onnx.ModelProto,
    fields: dict[str, Any],
    model: DnCNN,
    out: Path,
    staged: dict[Path, Path],
    parity_inputs: int,
    threads: int | None,
    tolerance: float,
    fp16_tolerance: float,
) -> ExportReport:
    """Write the model (and its fp16 variant, where ``staged`` has a path for it) under
    the ``staged`` names and check their parity there; the report names the final paths.
    Raises ParityError beyond a bound."""
    meta = finish_model(proto, fields, staged[out])
    report = ExportReport(out, meta, staged[out].stat().st_size, tolerance)
    cases = parity_cases(model, meta, parity_inputs)
    report.rows += check_parity(staged[out], cases, threads=threads)
    half = None
    fp16_path = fp16_path_of(out)
    if fp16_path in staged:
        from onnxconverter_common import float16

        half = onnx.ModelProto()
        half.CopyFrom(proto)  # the converter edits its argument in place
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            half = float16.convert_float_to_float16(half, keep_io_types=True)
        if caught:  # weights below fp16's normal range are rounded to +-1e-7: a note only
            log.info("fp16 conversion: %d weights clamped to the fp16 range", len(caught))
        report.fp16_path = fp16_path
        report.fp16_metadata = finish_model(half, fields, staged[report.fp16_path])
        report.fp16_tolerance = fp16_tolerance
        report.rows += check_parity(
            staged[report.fp16_path], cases, variant="fp16", threads=threads
        )
    for variant, bound in (("fp32", tolerance), ("fp16", fp16_tolerance)):
        worst = report.max_error(variant)
        if worst > bound:
            raise ParityError(
                f"exported {variant} model {out if variant == 'fp32' else report.fp16_path} "
                f"differs from torch by up to {worst:.3g} model units, expected <= {bound:.3g}"
            )
    if report.fp16_path is not None and half is not None:
        # checked in fp16: TensorRT may build either in fp16 (gpu.fp16 = "auto"); the
        # metadata only, hashes unchanged
        fields = {**fields, "fp16": True}
        report.metadata = finish_model(proto, fields, staged[out])
        report.fp16_metadata = finish_model(half, fields, staged[report.fp16_path])
        report.size_bytes = staged[out].stat().st_size
    return report
