"""Small hand-built ONNX models (onnx + numpy only, no torch).

They follow the model contract exactly (input ``x`` and output ``y``, ``[N, 1, H, W]``
float32 with symbolic ``N``, ``H``, ``W``; opset 17) and have a known receptive field,
so tests can check tiling and the engine against closed-form answers. One of them, a
Gaussian smoother, ships as the default model until a trained DnCNN replaces it.

``deepdenoise ship --reference`` regenerates the shipped smoothing reference and its
model card in ``stream/engine/models/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream.engine import ModelMetadata, graph_hash

OPSET = 17
#: IR version matching opset 17, readable by every onnxruntime this project supports.
IR_VERSION = 8

DEFAULT_MODEL_NAME = "gaussian-smooth"
DEFAULT_SIGMA = 1.5


def _input_channels(meta: dict[str, Any]) -> int:
    """Channels of the contract ``meta`` declares: frames, noise map, running mean."""
    frames = int(meta.get("frames", 1))
    return frames + int(bool(meta.get("noise_map"))) + int(float(meta.get("running_mean", 0)) > 0)


def _save(
    path: str | Path,
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    *,
    architecture: str,
    receptive_field: int,
    metadata: bool,
    meta: dict[str, Any],
) -> Path:
    """Assemble, check and write a model; metadata carries a hash of the graph."""
    channels = _input_channels(meta)
    dims_in: list[str | int] = ["N", channels, "H", "W"]
    dims: list[str | int] = ["N", 1, "H", "W"]
    graph = helper.make_graph(
        nodes,
        architecture,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="deepdenoise.exporter.simple_models",
    )
    if metadata:
        fields: dict[str, Any] = {
            "architecture": architecture,
            "receptive_field": receptive_field,
            "content_hash": graph_hash(model.SerializeToString()),
        }
        fields.update(meta)
        helper.set_model_props(model, ModelMetadata(**fields).to_props())
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def _conv(
    name: str, x: str, y: str, weight: np.ndarray, bias: np.ndarray | None = None
) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """A same-size convolution, zero-padded inside the graph."""
    r = weight.shape[-1] // 2
    inits = [numpy_helper.from_array(weight.astype(np.float32), f"{name}.weight")]
    inputs = [x, f"{name}.weight"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.astype(np.float32), f"{name}.bias"))
        inputs.append(f"{name}.bias")
    node = helper.make_node(
        "Conv", inputs, [y], name=name, kernel_shape=list(weight.shape[-2:]), pads=[r, r, r, r]
    )
    return node, inits


def make_identity(path: str | Path, *, metadata: bool = True, **meta: Any) -> Path:
    """``y = x``; receptive field 1. ``meta`` overrides ModelMetadata fields."""
    node = helper.make_node("Identity", ["x"], ["y"], name="identity")
    return _save(
        path, [node], [], architecture="identity", receptive_field=1, metadata=metadata, meta=meta
    )


def make_nan_above(path: str | Path, limit: float, *, metadata: bool = True, **meta: Any) -> Path:
    """``y = x + 0 * sqrt(limit - x)``: the input, but NaN wherever ``x > limit``.

    A broken model for the service's checks: finite on small inputs (a warm-up frame),
    NaN on bright ones; ``limit`` below any input makes it NaN everywhere.
    """
    nodes = [
        helper.make_node("Sub", ["limit", "x"], ["room"], name="room"),
        helper.make_node("Sqrt", ["room"], ["root"], name="root"),
        helper.make_node("Mul", ["root", "zero"], ["nothing"], name="nothing"),
        helper.make_node("Add", ["x", "nothing"], ["y"], name="y"),
    ]
    inits = [
        numpy_helper.from_array(np.array(limit, np.float32), "limit"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    return _save(
        path, nodes, inits, architecture="nan-above", receptive_field=1, metadata=metadata,
        meta=meta,
    )  # fmt: skip


def make_kernel_filter(
    path: str | Path, kernel: np.ndarray, architecture: str, *, metadata: bool = True, **meta: Any
) -> Path:
    """Convolution with one fixed odd-sized square ``kernel``."""
    size = kernel.shape[0]
    if kernel.shape != (size, size) or size % 2 == 0:
        raise ValueError(f"kernel must be square with an odd side, got shape {kernel.shape}")
    node, inits = _conv("filter", "x", "y", kernel[None, None])
    return _save(
        path,
        [node],
        inits,
        architecture=architecture,
        receptive_field=size,
        metadata=metadata,
        meta=meta,
    )


def make_box_filter(path: str | Path, size: int = 3, *, metadata: bool = True, **meta: Any) -> Path:
    """``size`` x ``size`` mean filter (zero padding inside the graph)."""
    kernel = np.full((size, size), 1.0 / (size * size))
    return make_kernel_filter(path, kernel, f"box{size}", metadata=metadata, **meta)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian, truncated at ``ceil(3 sigma)`` pixels from the centre."""
    r = max(1, math.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def make_gaussian(
    path: str | Path, sigma: float = 1.0, *, metadata: bool = True, **meta: Any
) -> Path:
    """Gaussian smoothing, receptive field ``2 * ceil(3 sigma) + 1``."""
    meta.setdefault("architecture", "gaussian")
    return make_kernel_filter(
        path, gaussian_kernel(sigma), meta.pop("architecture"), metadata=metadata, **meta
    )


def make_conv_stack(
    path: str | Path,
    layers: int = 2,
    channels: int = 8,
    seed: int = 0,
    *,
    metadata: bool = True,
    **meta: Any,
) -> Path:
    """``layers`` 3x3 convolutions (ReLU between) with seeded random weights.

    A stand-in for a small CNN: nonlinear, multi-channel, receptive field ``2 * layers + 1``.
    ``meta`` may declare a noise-adaptive or temporal contract (``frames``, ``noise_map``,
    ``normalization="adaptive"``, ``running_mean``): the first layer then reads that many
    input channels.
    """
    if layers < 1 or channels < 1:
        raise ValueError(f"layers and channels must be >= 1, got {layers} and {channels}")
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = "x"
    for i in range(layers):
        c_in = _input_channels(meta) if i == 0 else channels
        c_out = 1 if i == layers - 1 else channels
        weight = rng.normal(0.0, math.sqrt(2.0 / (9 * c_in)), size=(c_out, c_in, 3, 3))
        bias = rng.normal(0.0, 0.1, size=c_out)
        last = i == layers - 1
        out = "y" if last else f"conv{i}.out"
        node, node_inits = _conv(f"conv{i}", current, out, weight, bias)
        nodes.append(node)
        inits += node_inits
        current = out
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"relu{i}.out"], name=f"relu{i}"))
            current = f"relu{i}.out"
    return _save(
        path,
        nodes,
        inits,
        architecture=meta.pop("architecture", f"conv{2 * layers + 1}"),
        receptive_field=2 * layers + 1,
        metadata=metadata,
        meta=meta,
    )


_MODEL_CARD = """\
# {name}

**What it is.** A fixed {size}x{size} Gaussian smoothing filter (sigma {sigma} px),
exported as a one-layer ONNX convolution: the classical smoothing reference, so a trained
model can be compared with it in the same engine (`deepdenoise serve --model
gaussian-smooth.onnx`). It is not a trained denoiser and not shipped in the package: at
high photon counts its output is worse than its input (one fixed sigma cannot suit every
budget; `deepdenoise evaluate` tunes its Gaussian baselines per movie instead).

| field | value |
|---|---|
| architecture | `{name}` |
| receptive field | {size} (radius {radius}) |
| input normalisation | offset 0, scale 1 (works in raw camera units) |
| training | none (closed-form weights) |
| content hash | `{content_hash}` |

**Recipe.** `deepdenoise ship --reference --out DIR` (closed-form weights, no training).
The output is deterministic, so the content hash above identifies this exact graph.
"""


def write_default_model(out_dir: str | Path) -> Path:
    """Write the smoothing reference model and its model card into ``out_dir``."""
    out_dir = Path(out_dir)
    path = make_gaussian(
        out_dir / f"{DEFAULT_MODEL_NAME}.onnx",
        DEFAULT_SIGMA,
        architecture=DEFAULT_MODEL_NAME,
        input_offset=0.0,
        input_scale=1.0,
    )
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    meta = ModelMetadata.from_props(props)
    card = _MODEL_CARD.format(
        name=DEFAULT_MODEL_NAME,
        sigma=DEFAULT_SIGMA,
        size=meta.receptive_field,
        radius=meta.radius,
        content_hash=meta.content_hash,
    )
    (out_dir / f"{DEFAULT_MODEL_NAME}.md").write_text(card, encoding="utf-8")
    return path
