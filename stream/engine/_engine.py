"""The ONNX Runtime engine: one frame in, one denoised float32 frame out.

Per frame the hot path is: normalise the raw frame into a preallocated padded buffer,
reflect-pad it, gather tiles (or use the padded frame itself as a batch of one), run
the model once through an IO binding to preallocated input/output buffers, blend or
crop into the result and denormalise it in place. The result array is the only
per-frame allocation; its ownership passes to the caller.

Thread-safety: an Engine is used by one thread at a time (the service's inference
thread). Its buffers are reused across frames, so concurrent ``denoise`` calls on one
engine would corrupt each other; give each thread its own engine.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

from .._errors import ConfigError, DeepDenoiseError, ModelError, ProviderUnavailableError
from ..camera import (
    CameraModel,
    SpikePolicy,
    Spikes,
    fill_spikes,
    half_step,
    saturated_pixels,
    uncensor,
)
from ._ensemble import check_passes, mirror_in_place, mirrors
from ._gpu import GpuConfig, cuda_options, tensorrt_options, trt_profile
from ._inputs import (
    HDR_CLIP,
    SCALE_BLOCK,
    block_levels,
    defect_spikes,
    dim_part_level,
    dim_part_weight,
    fill_noise_map,
    holes,
    joined,
    level_of,
    scale_from,
    snr_at,
)
from ._lag import THRESHOLDS, Follow, follow_frame
from ._model_meta import ModelMetadata
from ._pinned import pin, unpin
from ._pixels import count_non_finite, fill_region
from ._providers import AUTO_ORDER, ORT_NAMES, ProviderChoice, select_providers, short_name
from ._shipped import CPU_DEFAULT, RETIRED, model_id_for
from ._tiling import TilePlan, TileWorkspace, check_tiling, default_tile_overlap, plan_tiles

log = logging.getLogger(__name__)

#: Frame shapes whose buffers an engine keeps (a live stream rarely changes shape).
_MAX_WORKSPACES = 4
_ORT_WARNING, _ORT_ERROR, _ORT_FATAL = 2, 3, 4
#: The camera a noise-adaptive model is warmed up with (any will do: zeros in).
WARMUP_CAMERA = CameraModel(gain=1.0, offset=0.0, read_noise=1.0)


def _unsaturated(
    frame: np.ndarray, centred: np.ndarray, levels: np.ndarray, spikes: Spikes | None = None
) -> tuple[np.ndarray | None, np.ndarray]:
    """The frame's saturated pixels (None: none) and its block levels with those pixels
    left out: a block they touch has the mean of its other pixels, and a block of them
    alone none. So the bright level, the scale and the peak SNR are the unsaturated
    scene's. ``centred``: the frame less its offset, as ``levels`` are of.

    ``spikes``, the frame's defects (:func:`stream.engine.defect_spikes`), are none of
    them: light that saturates a pixel spills into its neighbours, and a pixel stuck at
    the top alone is a defect, filled as the others are. Why (a new user's probe,
    2026-12-06: 0.24 % of a 128 x 128 movie's pixels stuck at 65535, 30 photons per
    pixel): read as saturated, they came back at 65535, -39 dB, while 0.18 % of them,
    too few for a saturation level, were filled (37 dB).

    Why: a tenth of a frame at 65535 set its peak SNR into the pass-through band, and
    the frame came out as it went in (one-off probe, the independent generator at 10
    photons with 13 of 128 columns saturated: rmse 3.20 in, 3.20 out, against 3.16 in,
    0.99 out without them). Leaving out every block they touched did not do either:
    where cell bodies saturate (an 8-bit camera, 4 ADU per e-, 150 photons at the peak;
    14 % of pixels at 255), their blocks held the brightest light that was read, and the
    scale fell to 182 ADU for light up to 245; the rest came out 32.4 dB, under a tuned
    Gaussian's 35.8 (reviewer's probe, 128 x 128, 12 frames)."""
    saturated = saturated_pixels(frame)
    if saturated is not None and spikes is not None:
        saturated[spikes] = False
        if not saturated.any():
            saturated = None
    if saturated is None or levels.shape == frame.shape:  # no blocks: too small a frame
        return saturated, levels
    hb, wb = levels.shape
    b = SCALE_BLOCK
    hit = saturated[: hb * b, : wb * b].reshape(hb, b, wb, b).sum(axis=(1, 3))
    whole = hit == b * b
    if not hit.any() or whole.all():
        return saturated, levels
    part = (hit > 0) & ~whole
    kept = levels.astype(np.float64)  # a copy: the caller's levels stay as they were
    # the touched blocks' other pixels, as they are in ``centred`` (a saturated pixel the
    # spike filler filled holds its fill there, not the top)
    cells = centred[: hb * b, : wb * b].reshape(hb, b, wb, b)
    others = np.where(saturated[: hb * b, : wb * b].reshape(hb, b, wb, b), 0.0, cells)
    kept[part] = others.sum(axis=(1, 3), dtype=np.float64)[part] / (b * b - hit[part])
    return saturated, kept[~whole]


def quiet_run_options() -> Any:
    """Run options that keep ONNX Runtime from printing a failed run's error itself: it
    comes back as the exception, which the engine words for the user."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = _ORT_FATAL
    return options


class _FrameBuffers:
    """A TileWorkspace plus the ORT IO binding bound to its batch buffers (host memory:
    on a GPU provider ONNX Runtime copies them to and from the device inside ``run``)."""

    def __init__(self, session: Any, plan: TilePlan, names: tuple[str, str], channels: int) -> None:
        self.ws = TileWorkspace(plan, channels)
        self.binding = session.io_binding()
        self.run_options: Any = quiet_run_options()
        for bind, name, arr in (
            (self.binding.bind_input, names[0], self.ws.batch_in),
            (self.binding.bind_output, names[1], self.ws.batch_out),
        ):
            bind(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)

    def before_run(self) -> None:
        """Nothing to stage: the binding reads the host batch directly."""

    def after_run(self) -> None:
        """Nothing to fetch: the binding wrote the host batch directly."""

    def release(self) -> None:
        """Nothing held beyond the arrays."""


class _DeviceBuffers(_FrameBuffers):
    """Model input and output live on the GPU (OrtValues) at fixed addresses, which CUDA
    graphs need; the host batches are page-locked staging for the two copies a frame."""

    def __init__(
        self,
        session: Any,
        plan: TilePlan,
        names: tuple[str, str],
        channels: int,
        device_id: int,
        pinned: bool,
        graph_id: int | None,
    ) -> None:
        import onnxruntime as ort

        self.ws = TileWorkspace(plan, channels)
        self.pinned = [a for a in (self.ws.batch_in, self.ws.batch_out) if pinned and pin(a)]
        new = ort.OrtValue.ortvalue_from_shape_and_type
        self.input = new(list(self.ws.batch_in.shape), np.float32, "cuda", device_id)
        self.output = new(list(self.ws.batch_out.shape), np.float32, "cuda", device_id)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(names[0], self.input)
        self.binding.bind_ortvalue_output(names[1], self.output)
        self.run_options = quiet_run_options()
        if graph_id is not None:  # one captured graph per frame shape
            self.run_options.add_run_config_entry("gpu_graph_id", str(graph_id))

    def before_run(self) -> None:
        self.input.update_inplace(self.ws.batch_in)

    def after_run(self) -> None:
        np.copyto(self.ws.batch_out, self.output.numpy())

    def release(self) -> None:
        for array in self.pinned:
            unpin(array)
        self.pinned = []


class _Filled(NamedTuple):
    """What :meth:`Engine._adaptive_input` filled the planes with, and found."""

    scale: np.float32
    offset: np.float32
    snr: float  # the frame's peak SNR (0 when nothing needs it)
    spikes: Spikes | None
    used: int  # the previous frames the model was given
    dim: float | None  # the level of a dim part to denoise apart (dim_part_level)
    saturated: np.ndarray | None = None  # pixels at the frame's saturation level


@dataclass(frozen=True)
class FrameReport:
    """What the engine found in one frame it denoised, and what it gave the model."""

    #: The one-pixel spikes it filled before the model (None: none, or not looked for).
    spikes: Spikes | None = None
    #: The previous frames the model was given: a temporal model's window, none for a
    #: frame outside its bands of light.
    history: int = 0
    #: Whether its dim part was denoised again at its own scale (:func:`dim_part_level`).
    two_scales: bool = False

    @property
    def spike_count(self) -> int:
        return 0 if self.spikes is None else len(self.spikes[0])


class Engine:
    """Runs one ONNX denoising model on 2-D frames of any size.

    Parameters
    ----------
    model_path
        ONNX model following the model contract (``[N, 1, H, W]`` float32 in and out).
    provider
        ``auto`` (TensorRT, then CUDA, then CPU, whichever is usable), or one of
        ``tensorrt``, ``cuda``, ``cpu``; an explicit provider that is not usable raises
        :class:`ProviderUnavailableError`.
    tile, overlap
        Tiling; defaults from :func:`stream._tiling.default_tile_overlap` for the
        model's receptive field.
    intra_op_threads
        ONNX Runtime CPU threads (None: its default, one per physical core).
    warmup_shape
        Run one frame of this shape at load, so the first real frame does not pay for
        memory planning (and, with TensorRT, engine building). None skips it.
    gpu
        How the CUDA and TensorRT providers run (:class:`GpuConfig`; defaults if None).
    spikes
        Isolated one-pixel spikes (hot pixels, cosmic rays; :mod:`stream.camera._spikes`)
        far above the scene (:func:`stream.engine.defect_spikes`), and holes far below
        the offset (:func:`stream.engine._inputs.holes`), before a
        noise-adaptive model: replaced by their neighbours' median for inference, and
        the output holds the model's estimate there (``correct``) or the spike as it came
        (``pass``); ``off``: not looked for.
    follow_lag
        A temporal window's output moved toward its frame where the frame shows the
        network lagging a change (:mod:`stream.engine._lag`); False: the network's
        answer as it is (a graph's parity with torch).
    follow
        How closely: ``balanced`` (the best PSNR) or ``events`` (fast events at low
        light nearer their height and onset, at a cost in PSNR; :data:`._lag.THRESHOLDS`).

    Attributes
    ----------
    fallback
        When a GPU provider failed at load and the next one took over: ``from``, ``to``,
        ``reason``. None otherwise.

    Raises
    ------
    ModelError
        The file cannot be loaded or violates the model contract.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        provider: str = "auto",
        tile: int | None = None,
        overlap: int | None = None,
        intra_op_threads: int | None = None,
        warmup_shape: tuple[int, int] | None = (512, 512),
        gpu: GpuConfig | None = None,
        spikes: SpikePolicy = "correct",
        follow_lag: bool = True,
        follow: Follow = "balanced",
    ) -> None:
        self.path = Path(model_path)
        if not self.path.exists():
            retired = RETIRED.get(self.path.stem)
            why = f" (a model no longer shipped: {retired}; use {CPU_DEFAULT!r})" if retired else ""
            raise ModelError(f"model {self.path} does not exist{why}; expected an .onnx file")
        if not self.path.is_file():
            raise ModelError(f"model {self.path} is a directory; expected an .onnx file")
        self.gpu = gpu or GpuConfig()
        self.spikes = spikes
        self.follow_lag = follow_lag
        if follow not in THRESHOLDS:
            raise ConfigError(f"expected follow of {' or '.join(THRESHOLDS)}, got {follow!r}")
        self.follow: Follow = follow
        self._requested = provider
        self._intra_op_threads = intra_op_threads
        self._warmup_shape = warmup_shape
        self.fallback: dict[str, str] | None = None
        choice = select_providers(provider)
        # The model's metadata first (a CPU session): tiling, and TensorRT's profile, need it.
        probe = self._open_session([ORT_NAMES["cpu"]])
        self.metadata = ModelMetadata.from_props(probe.get_modelmeta().custom_metadata_map)
        self._session: Any = probe
        self._names = self._check_signature()
        if warmup_shape is not None:
            self._check_batches()
        self.model_id = model_id_for(self.path, self.metadata)
        default_tile, default_overlap = default_tile_overlap(self.metadata.radius)
        self.tile = default_tile if tile is None else tile
        self.overlap = default_overlap if overlap is None else overlap
        check_tiling(self.tile, self.overlap, self.metadata.radius)
        self._chain = [short_name(p) for p in choice.providers]
        if choice.name != "cpu":
            self._session = self._start_gpu_session(choice, strict=provider != "auto")
        self.provider = short_name(self._session.get_providers()[0])

        self._offset = np.float32(self.metadata.input_offset)
        self._scale = np.float32(self.metadata.input_scale)
        self._buffers: OrderedDict[tuple[int, int], _FrameBuffers] = OrderedDict()
        log.info(
            "model %s (%s, id %s, receptive field %d%s) on %s",
            self.path.name,
            self.metadata.architecture,
            self.model_id,
            self.metadata.receptive_field,
            "" if self.metadata.from_model else ", defaults: no deepdenoise metadata",
            self.provider,
        )
        if warmup_shape is not None:
            for shape in self.planned_shapes():
                t0 = time.perf_counter()
                self._warm_up(shape)
                if self.provider != "cpu":
                    log.info(
                        "%s warm-up %dx%d: %.1f s (engine build or cache load, cuDNN search)",
                        self.provider, shape[0], shape[1], time.perf_counter() - t0,
                    )  # fmt: skip

    # -- sessions and providers -------------------------------------------------------

    def _open_session(self, providers: list[Any]) -> Any:
        import onnxruntime as ort  # deferred: only the engine needs it

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = _ORT_ERROR
        if self._intra_op_threads is not None:
            options.intra_op_num_threads = self._intra_op_threads
        # ORT's worker threads spin for a while after each run, holding the cores the
        # service's own stages (traces, publish, the next receive) need right then.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own untyped errors for every failure
            if "INVALID_PROTOBUF" in str(exc):  # not an ONNX file at all: say so, not ORT's dump
                raise ModelError(not_an_onnx_model(self.path)) from None
            raise ModelError(f"cannot load ONNX model {self.path}: {exc}") from exc

    def planned_shapes(self) -> list[tuple[int, int]]:
        """Frame shapes prepared at load: the warm-up shape, then ``gpu.frame_shapes``."""
        shapes = [] if self._warmup_shape is None else [tuple(self._warmup_shape)]
        shapes += [tuple(s) for s in self.gpu.frame_shapes if tuple(s) not in shapes]
        return [(int(h), int(w)) for h, w in shapes]

    def provider_options(self, name: str) -> dict[str, Any]:
        """The options ``name`` (``tensorrt``, ``cuda``) gets for this model and config."""
        if name == "cuda":
            return cuda_options(self.gpu)
        if name == "tensorrt":
            batches = [self.plan_for(s).batch_shape(self.metadata.in_channels)
                       for s in self.planned_shapes() or [(512, 512)]]  # fmt: skip
            profile = trt_profile(self._names[0], batches)
            log.info(
                "TensorRT profile for %s: min %s, opt %s, max %s (frames %s)",
                self.path.name, profile.min, profile.opt, profile.max,
                ", ".join(f"{h}x{w}" for h, w in self.planned_shapes()) or "512x512",
            )  # fmt: skip
            return tensorrt_options(self.gpu, self.model_id, profile, self.metadata.fp16)
        return {}

    def _start_gpu_session(self, choice: ProviderChoice, strict: bool) -> Any:
        """A session on the first GPU provider that starts; the next one if it fails."""
        chain = self._chain
        for i, name in enumerate(chain[:-1]):
            providers: list[Any] = [(ORT_NAMES[n], self.provider_options(n)) for n in chain[i:-1]]
            providers.append(ORT_NAMES["cpu"])
            try:
                session = self._open_session(providers)
                active = short_name(session.get_providers()[0])
                if active == name:
                    return session
                reason = f"ONNX Runtime started {active} instead (see its log)"
            except ModelError as exc:
                reason = str(exc)
            if strict:
                raise ProviderUnavailableError(
                    f"provider {name!r} was requested but could not start: {reason}"
                )
            nxt = chain[i + 1]
            self.fallback = {"from": name, "to": nxt, "reason": reason, "when": "load"}
            log.warning("%s provider failed to start (%s); trying %s", name, reason, nxt)
        return self._open_session([ORT_NAMES["cpu"]])

    def next_provider(self) -> str | None:
        """The provider after the active one in the ``auto`` order (None after the CPU)."""
        order = list(AUTO_ORDER)
        after = order[order.index(self.provider) + 1 :] if self.provider in order else []
        usable = [p for p in after if p in self._chain or p == "cpu"]
        return usable[0] if usable else None

    def warm_up(self, shapes: Sequence[tuple[int, int]]) -> None:
        """Run a frame of each shape now; ModelError (and the engine closed) if the model
        fails on one or gives non-finite pixels. For a model about to serve frames of
        these shapes (``load_model`` while series stream)."""
        for shape in dict.fromkeys((int(h), int(w)) for h, w in shapes):
            self._warm_up(shape)

    def _check_batches(self) -> None:
        """Run a batch of two non-square tiles on the CPU session: a large frame's tiles
        go through as one batch, and a frame need not be square, so a model that cannot
        (a batch of 1 or square frames built into its graph) is refused now rather than
        failing on the first such frame."""
        a = self.metadata.alignment
        h, w = a * -(-48 // a), a * -(-80 // a)  # multiples of 16: most U-Nets' strides
        ramp = (np.add.outer(np.arange(h), np.arange(w)) % 50).astype(np.float32) / 25.0
        batch = np.broadcast_to(ramp, (2, self.metadata.in_channels, h, w)).copy()
        batch[1] *= np.float32(0.5)  # two different tiles
        try:
            (out,) = self._session.run(
                [self._names[1]], {self._names[0]: batch}, quiet_run_options()
            )
        except Exception as exc:  # ONNX Runtime's own text: say whose model, and the rule
            raise ModelError(
                f"model {self.path.name} failed on a batch of 2 tiles of {h}x{w}; expected "
                "dynamic N, H and W (the model contract: a large frame's tiles run as one "
                f"batch); ONNX Runtime said: {str(exc).strip()[:600]}"
            ) from exc
        if out.shape != (2, 1, h, w):
            raise ModelError(
                f"model {self.path.name} gave an output of shape {list(out.shape)} for a "
                f"batch of 2 tiles of {h}x{w}; expected [2, 1, {h}, {w}] (the model contract)"
            )

    def _warm_up(self, shape: tuple[int, int]) -> None:
        """Run one frame now (memory planning, engine builds) and refuse a model whose
        output on it is not finite: it would publish NaN frames as if denoised."""
        h, w = shape
        ramp = np.add.outer(np.arange(h), np.arange(w)).astype(np.float32) % 200.0 + 100.0
        try:
            out = self.denoise(ramp, camera=WARMUP_CAMERA)
        except DeepDenoiseError:
            self.close()
            raise
        except Exception as exc:  # ONNX Runtime's own text: say whose model, and the rule
            self.close()
            raise ModelError(
                f"model {self.path.name} failed its {h}x{w} warm-up run on {self.provider}; "
                "expected one output image of the input's height and width (the model "
                f"contract); ONNX Runtime said: {str(exc).strip()[:600]}"
            ) from exc
        bad = count_non_finite(out)
        if bad:
            self.close()
            raise ModelError(
                f"model {self.path.name} gave {bad} non-finite pixels (NaN/Inf) on a finite "
                f"{h}x{w} warm-up frame; expected a finite image: refusing it"
            )

    # -- signature --------------------------------------------------------------------

    def _check_signature(self) -> tuple[str, str]:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{self.path.name}: expected exactly one input and one output, got "
                f"{len(inputs)} inputs {[i.name for i in inputs]} and "
                f"{len(outputs)} outputs {[o.name for o in outputs]}"
            )
        for role, arg in (("input", inputs[0]), ("output", outputs[0])):
            shape = list(arg.shape)
            problems = []
            if arg.type != "tensor(float)":
                problems.append(f"type {arg.type} (expected tensor(float), i.e. float32)")
            if len(shape) != 4:
                problems.append(f"rank {len(shape)} (expected 4: [N, C, H, W])")
            else:
                channels = self.metadata.in_channels if role == "input" else 1
                if isinstance(shape[1], int) and shape[1] != channels:
                    problems.append(f"{shape[1]} channels (expected {channels})")
                fixed = [
                    d
                    for d, v in zip("NHW", shape[:1] + shape[2:], strict=True)
                    if isinstance(v, int)
                ]
                if fixed:
                    problems.append(f"fixed {'/'.join(fixed)} (expected dynamic N, H, W)")
            if problems:
                raise ModelError(
                    f"{self.path.name}: {role} {arg.name!r} with shape {shape} has "
                    + "; ".join(problems)
                )
        return inputs[0].name, outputs[0].name

    # -- frames -------------------------------------------------------------------------

    def plan_for(self, shape: tuple[int, int]) -> TilePlan:
        """The tile plan used for frames of ``shape``."""
        meta = self.metadata
        return plan_tiles(
            (int(shape[0]), int(shape[1])), self.tile, self.overlap, meta.radius, meta.alignment
        )

    @property
    def needs_camera(self) -> bool:
        """True when the model's input depends on the camera (offset, gain, read noise)."""
        return self.metadata.normalization == "adaptive" or self.metadata.noise_map

    def _buffers_for(self, shape: tuple[int, int]) -> _FrameBuffers:
        buffers = self._buffers.get(shape)
        if buffers is None:
            buffers = self._new_buffers(shape)
            self._buffers[shape] = buffers
            if len(self._buffers) > _MAX_WORKSPACES:
                self._buffers.popitem(last=False)[1].release()
        else:
            self._buffers.move_to_end(shape)
        return buffers

    def _new_buffers(self, shape: tuple[int, int]) -> _FrameBuffers:
        plan, channels = self.plan_for(shape), self.metadata.in_channels
        if self.provider != "cpu" and self.gpu.device_buffers:
            graph = len(self._buffers) if self.gpu.cuda_graph and self.provider == "cuda" else None
            try:
                return _DeviceBuffers(
                    self._session, plan, self._names, channels, self.gpu.device_id,
                    self.gpu.pinned, graph,
                )  # fmt: skip
            except Exception as exc:  # an older ORT, no device memory: host buffers work
                log.warning("GPU buffers unavailable (%s); binding host buffers", exc)
        return _FrameBuffers(self._session, plan, self._names, channels)

    def denoise(
        self,
        frame: np.ndarray,
        *,
        camera: CameraModel | None = None,
        history: Sequence[np.ndarray] = (),
        running_mean: np.ndarray | None = None,
        passes: int = 1,
        noise_map_scale: float = 1.0,
        bands: bool = True,
    ) -> np.ndarray:
        """Denoise one 2-D frame into a new float32 array: :meth:`denoise_with_report`'s
        output, without its report."""
        out, _ = self.denoise_with_report(
            frame,
            camera=camera,
            history=history,
            running_mean=running_mean,
            passes=passes,
            noise_map_scale=noise_map_scale,
            bands=bands,
        )
        return out

    def denoise_with_report(
        self,
        frame: np.ndarray,
        *,
        camera: CameraModel | None = None,
        history: Sequence[np.ndarray] = (),
        running_mean: np.ndarray | None = None,
        passes: int = 1,
        noise_map_scale: float = 1.0,
        bands: bool = True,
    ) -> tuple[np.ndarray, FrameReport]:
        """Denoise one 2-D frame (any integer or float dtype) into a new float32 array,
        with what the engine found in it and gave the model (:class:`FrameReport`).

        The result is in raw units (model output denormalised). Non-finite input pixels
        are filled from the finite ones for inference (:func:`.fill_region`: for a
        noise-adaptive model the field mirrored across the region's edge, or in dim frames
        its mean; other models, the mean), so they neither smear over the receptive field
        nor read as an edge, and are NaN in the result.

        ``camera``: needed by noise-adaptive models (``needs_camera``): the offset, gain
        and read noise of the frame's camera. ``history``: for a temporal model, the
        previous frames of the series, oldest first; fewer than it takes (a series
        start) are made up by repeating the oldest one given, or the frame itself; a
        composed model with bands of light (``ModelMetadata.temporal_band``) gets none
        for frames outside them, so its spatial start answers (``bands`` False: the
        previous frames given are used in any light -- the series' risks chose them).
        ``running_mean``: for a model with a running-mean channel, the running mean of
        the series' previous frames, in raw units (:class:`SeriesContext` keeps it);
        None (a series start): the frame itself stands in for it.
        ``passes``: 1, or 2 or 4 for the self-ensemble (:mod:`stream.engine._ensemble`):
        the model also runs on mirrored copies of its input and the outputs, mirrored
        back, are averaged; each pass costs one inference.
        ``noise_map_scale``: a noise-adaptive model is told a noise map this many times
        the camera's (FFDNet's trade-off: below 1 keeps more detail, above 1 removes more
        noise; the blend by risk chooses it per series, :mod:`stream.engine._blend`).
        """
        check_passes(passes)
        if not noise_map_scale > 0:
            raise ValueError(f"expected a noise map scale > 0, got {noise_map_scale}")
        if self._session is None:
            raise DeepDenoiseError(f"engine for {self.path.name} is closed")
        if frame.ndim != 2:
            raise ValueError(f"expected a 2-D frame (H, W), got shape {frame.shape}")
        if frame.dtype.kind not in "uif":
            raise TypeError(f"expected an integer or float frame, got dtype {frame.dtype}")
        shape = (int(frame.shape[0]), int(frame.shape[1]))
        buffers = self._buffers_for(shape)
        ws = buffers.ws
        bad = None
        if count_non_finite(frame):
            bad = ~np.isfinite(frame)  # rare path: allocating here is fine
            if bad.all():
                return np.full(shape, np.nan, dtype=np.float32), FrameReport()
        if self.needs_camera:
            if camera is None:
                raise ValueError(
                    f"model {self.path.name} is noise-adaptive: expected the camera "
                    "(offset, gain, read noise) of the frame, got none"
                )
            filled = self._adaptive_input(
                ws, frame, bad, camera, history, running_mean, noise_map_scale, bands
            )
        else:
            scale, offset = self._fixed_input(ws, frame, bad)
            filled = _Filled(scale, offset, 0.0, None, 0, None)
        scale, offset, spikes = filled.scale, filled.offset, filled.spikes
        result = self._pass(buffers, frame, shape, passes, scale, offset, filled.snr)
        if filled.dim is not None and camera is not None:
            # a dim part far below the bright one: denoised again at its own scale, and
            # taken where the first output says the scene is that dim
            dim = self._adaptive_input(
                ws, frame, bad, camera, history, running_mean, noise_map_scale, bands,
                own_level=filled.dim, clip=HDR_CLIP,
            )  # fmt: skip
            dim_out = self._pass(buffers, frame, shape, passes, dim.scale, offset, dim.snr)
            result += dim_part_weight(result - offset, float(dim.scale)) * (dim_out - result)
        if self.follow_lag and filled.used and camera is not None and camera.floor is None:
            # a temporal window: taken back where the frame shows the network lagging a
            # change (not for clipped readouts: their residual at the floor is biased)
            previous = list(history)[-filled.used :]
            read = self.metadata.told_read_noise(camera.gain, camera.read_noise)
            excluded = (spikes, filled.saturated)
            follow_frame(result, frame, previous, camera, excluded, read, self.follow)
        if camera is not None and camera.floor is not None and self.needs_camera:
            # clipped readouts: the signal, not their biased mean
            uncensor(result, camera, half_step(frame))
        if spikes is not None and self.spikes == "pass":
            result[spikes] = frame[spikes]
        if filled.saturated is not None:  # their light is above what the camera reads
            result[filled.saturated] = frame[filled.saturated]
        if bad is not None:
            result[bad] = np.nan
        return result, FrameReport(spikes, filled.used, filled.dim is not None)

    def _pass(
        self,
        buffers: _FrameBuffers,
        frame: np.ndarray,
        shape: tuple[int, int],
        passes: int,
        scale: np.float32,
        offset: np.float32,
        snr: float,
    ) -> np.ndarray:
        """The model on the filled input planes (and their mirrors, ``passes``), in raw
        units, blended toward ``frame`` as far as its peak SNR asks (``pass_through``)."""
        result = np.empty(shape, dtype=np.float32)
        self._run(buffers, result)
        if passes > 1:
            self._more_passes(buffers, result, passes)
        if scale != 1:
            result *= scale
        if offset != 0:
            result += offset
        blend = self.metadata.pass_through(snr)
        if blend > 0:  # brighter than the model knows: toward its input (see ModelMetadata)
            result += np.float32(blend) * (frame.astype(np.float32) - result)
        return result

    def _run(self, buffers: _FrameBuffers, out: np.ndarray) -> None:
        """The model on the filled input planes, its output into ``out`` (model units)."""
        buffers.ws.prepare()
        buffers.before_run()
        self._session.run_with_iobinding(buffers.binding, buffers.run_options)
        buffers.after_run()
        buffers.ws.blend(out)

    def _more_passes(self, buffers: _FrameBuffers, result: np.ndarray, passes: int) -> None:
        """The self-ensemble's further passes, averaged into ``result`` (model units)."""
        ws, out = buffers.ws, np.empty_like(result)
        for axis, back in mirrors(passes):
            mirror_in_place(ws.interiors, axis)  # every channel: frames, noise map, mean
            self._run(buffers, out)
            result += np.flip(out, back)
        result *= np.float32(1.0 / passes)

    def _fixed_input(
        self, ws: TileWorkspace, frame: np.ndarray, bad: np.ndarray | None
    ) -> tuple[np.float32, np.float32]:
        interior = ws.interior
        if self._offset != 0:
            np.subtract(frame, self._offset, out=interior, dtype=np.float32, casting="unsafe")
        else:
            np.copyto(interior, frame, casting="unsafe")
        if self._scale != 1:
            np.divide(interior, self._scale, out=interior)
        if bad is not None:
            fill_region(interior, bad, None)
        return self._scale, self._offset

    def _adaptive_input(
        self,
        ws: TileWorkspace,
        frame: np.ndarray,
        bad: np.ndarray | None,
        camera: CameraModel,
        history: Sequence[np.ndarray],
        running_mean: np.ndarray | None,
        noise_map_scale: float = 1.0,
        bands: bool = True,
        own_level: float | None = None,
        clip: float | None = None,
    ) -> _Filled:
        """The channels :func:`stream.engine.model_input` builds, in the tile buffers,
        and what was found filling them (:class:`_Filled`; spikes are filled in every
        plane).

        ``own_level``: a dim part's level (:func:`dim_part_level`): the channels for its
        pass instead, at its own scale, the frames clipped at ``clip`` times it (None: not
        clipped)."""
        meta, planes = self.metadata, ws.interiors
        k = meta.frames
        # told no less read noise than the model was trained with (see least_read_noise_e):
        # photon counters at 0.3 photons, 17.0 -> 21.8 dB (na-lite, told the true camera)
        read = meta.told_read_noise(camera.gain, camera.read_noise)
        history = list(history)[max(0, len(history) - (k - 1)) :] if k > 1 else ()
        offset = np.float32(camera.offset)
        current = planes[k - 1]
        np.subtract(frame, offset, out=current, dtype=np.float32, casting="unsafe")
        if bad is not None:
            fill_region(current, bad, camera, centred=True)
        spikes, blocks = None, None
        if self.spikes != "off":  # before the scale, which a hot pixel would set
            blocks = block_levels(current)
            spikes = joined(defect_spikes(current, camera.gain, read, blocks), holes(current, read))
            if spikes is not None:
                fill_spikes(current, spikes)
                blocks = None  # the scale comes from the filled frame
        window = "full" if len(history) == k - 1 else "young"
        band = meta.temporal_band(window) if history and bands else None
        # the frame's bright level, only when the scale, a band or the pass-through needs
        # it (one block pass)
        adaptive = meta.normalization == "adaptive"
        wanted = adaptive or band is not None or meta.pass_through_snr is not None
        dim_level = None
        saturated = None
        if wanted:
            levels = blocks if blocks is not None else block_levels(current)
            if own_level is None:  # non-finite pixels: the frame's least value stands in
                readout = frame if bad is None else np.where(bad, frame[~bad].min(), frame)
                saturated, levels = _unsaturated(readout, current, levels, spikes)
            top = level_of(levels)
            if adaptive and own_level is None:
                dim_level = dim_part_level(levels, top, camera.gain, read)
        else:
            top = float("nan")
        snr = snr_at(top, camera.gain, read) if wanted else 0.0
        if band is not None and not band[0] <= snr <= band[1]:
            history = ()  # a window that would not help in this light: the spatial start
        for i in range(k - 1):
            missing = k - 1 - len(history)  # a series start: repeat what there is
            source = frame if not history else history[max(0, i - missing)]
            if source is frame:
                np.copyto(planes[i], current)
            else:
                np.subtract(source, offset, out=planes[i], dtype=np.float32, casting="unsafe")
                if spikes is not None:  # a hot pixel is in the earlier frames too
                    fill_spikes(planes[i], spikes)
        scale = scale_from(top, camera.gain, read) if adaptive else float(meta.input_scale)
        clip_at = None
        if own_level is not None:  # the dim part's pass: its light, what is above clipped
            scale = scale_from(own_level, camera.gain, read)
            snr = snr_at(own_level, camera.gain, read)
            if clip is not None:
                clip_at = np.float32(clip * scale)
        elif saturated is not None and adaptive:
            # the scale is the unsaturated scene's; saturated pixels, whose light is not
            # known, stand at a plateau the model knows rather than hundreds of it
            clip_at = np.float32(HDR_CLIP * scale)
        if clip_at is not None:
            for i in range(k):
                np.minimum(planes[i], clip_at, out=planes[i])
        if meta.noise_map:
            fill_noise_map(current, camera.gain, read, scale / noise_map_scale, planes[k])
        inverse = np.float32(1.0 / scale)
        for i in range(k):
            planes[i] *= inverse
        if meta.running_mean > 0:
            mean = planes[k + int(meta.noise_map)]
            if running_mean is None:
                np.copyto(mean, current)
            else:
                if running_mean.shape != frame.shape:
                    raise ValueError(
                        f"expected the running mean in the frame's shape {frame.shape}, "
                        f"got {running_mean.shape}"
                    )
                np.subtract(running_mean, offset, out=mean, dtype=np.float32, casting="unsafe")
                if spikes is not None:
                    fill_spikes(mean, spikes)
                if clip_at is not None:
                    np.minimum(mean, clip_at, out=mean)
                mean *= inverse
        return _Filled(np.float32(scale), offset, snr, spikes, len(history), dim_level, saturated)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the ONNX Runtime session and all frame buffers (idempotent)."""
        for buffers in self._buffers.values():
            buffers.release()
        self._buffers.clear()
        self._session = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Engine({self.path.name!r}, provider={self.provider!r}, id={self.model_id!r}, "
            f"tile={self.tile}, overlap={self.overlap})"
        )


def not_an_onnx_model(path: Path) -> str:
    """What to say of a file whose bytes are no ONNX model (ORT's "Protobuf parsing
    failed"): a torch checkpoint (a zip, as ``train`` writes ``best.pt``) is exported
    first; anything else is not a model."""
    with open(path, "rb") as file:
        zipped = file.read(4) == b"PK\x03\x04"
    if zipped or path.suffix.lower() in (".pt", ".pth", ".ckpt"):
        # beside it, and never its own name (export refuses to write over the checkpoint)
        onnx = path.with_name(
            path.stem + ("-exported.onnx" if path.suffix.lower() == ".onnx" else ".onnx")
        )
        return (
            f"{path} is a torch checkpoint, not an ONNX model; export it first: "
            f"deepdenoise export {path} -o {onnx}"
        )
    return f"{path} is not an ONNX model (its bytes do not parse as one); expected an .onnx file"
