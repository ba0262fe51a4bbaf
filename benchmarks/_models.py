"""The models the suites run: where they come from, their fp16 variant, and torch twins.

``identity`` is built on the fly (onnx + numpy); ``na-lite`` is the shipped file
(``stream.engine.shipped_model_path``); ``dncnn-lite`` and ``dncnn20``, retired from the
package, are kept in ``benchmarks/models`` as plain-DnCNN speed references. A missing
one is skipped with its reason rather than failing the run. ``--model NAME=PATH``
replaces a file.

The torch baseline must run the *same weights*. The package ships no checkpoint, so
:func:`torch_from_onnx` rebuilds a torch module from the ONNX graph itself: the
exporter folded BatchNorm into the convolutions (eval mode), which leaves a chain of
``Conv`` and ``Relu`` and a final ``Sub(x, noise)`` for the residual, i.e. a plain
conv stack that torch runs as eagerly as any DnCNN.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Retired models kept as speed references (plain conv stacks the torch twin can mirror).
REFERENCE_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path


def resolve_models(
    names: list[str], work: Path, overrides: dict[str, Path] | None = None
) -> tuple[list[ModelFile], list[tuple[str, str]]]:
    """The models that exist here, and ``(name, reason)`` for the ones that do not."""
    from stream import ModelError
    from stream.engine import shipped_model_path

    found, missing = [], []
    overrides = overrides or {}
    for name in names:
        if name in overrides:
            path = Path(overrides[name])
            if path.is_file():
                found.append(ModelFile(name, path))
            else:
                missing.append((name, f"--model file {path} does not exist"))
        elif name == "identity":
            from exporter.simple_models import make_identity

            found.append(ModelFile(name, make_identity(work / "identity.onnx")))
        elif (REFERENCE_DIR / f"{name}.onnx").is_file():
            found.append(ModelFile(name, REFERENCE_DIR / f"{name}.onnx"))
        else:
            try:
                found.append(ModelFile(name, shipped_model_path(name)))
            except ModelError as exc:
                missing.append((name, f"not shipped in this checkout ({exc})"))
    return found, missing


def fp16_variant(model: ModelFile, work: Path) -> ModelFile:
    """The float16 twin (float32 input/output, ``keep_io_types``), as the exporter makes it.

    The shipped fp32 file is converted with onnxconverter-common: the same call
    ``exporter.export`` uses for its ``-fp16`` file, so this is the file users get.
    """
    import onnx
    from onnxconverter_common import float16

    out = work / f"{model.name}-fp16.onnx"
    if not out.exists():
        proto = onnx.load(str(model.path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny weights clamped to fp16's range: expected
            half = float16.convert_float_to_float16(proto, keep_io_types=True)
        onnx.save(half, str(out))
    return ModelFile(f"{model.name}", out)


# ------------------------------------------------------------------ graph reading
@dataclass(frozen=True)
class ConvLayer:
    weight: np.ndarray  # (out, in, kh, kw) float32
    bias: np.ndarray | None
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    relu: bool  # a Relu follows


@dataclass(frozen=True)
class ConvStack:
    """An ONNX graph read as ``y = x - body(x)`` (residual) or ``y = body(x)``."""

    layers: tuple[ConvLayer, ...]
    residual: bool

    def flops_per_pixel(self) -> int:
        """Multiply-adds x 2 per output pixel of the whole stack (same-size convs)."""
        return sum(2 * int(np.prod(layer.weight.shape)) for layer in self.layers)


def read_conv_stack(path: Path) -> ConvStack:
    """Parse a chain of Conv/Relu (optionally ending in ``Sub(x, chain)``, or Identity).

    Raises ValueError for any other graph: the torch twin would not be the same model.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    x = graph.input[0].name
    layers: list[ConvLayer] = []
    current, residual = x, False
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] == current:
            current = node.output[0]
        elif node.op_type == "Conv" and node.input[0] == current:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("group", 1) != 1 or any(s != 1 for s in attrs.get("strides", [1, 1])):
                raise ValueError(f"{path.name}: grouped or strided Conv {node.name}")
            if any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise ValueError(f"{path.name}: dilated Conv {node.name}")
            weight = inits[node.input[1]].astype(np.float32)
            bias = inits[node.input[2]].astype(np.float32) if len(node.input) > 2 else None
            pads = tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
            order = (pads[0], pads[1], pads[2], pads[3])
            layers.append(ConvLayer(weight, bias, order, relu=False))
            current = node.output[0]
        elif node.op_type == "Relu" and node.input[0] == current and layers:
            layers[-1] = ConvLayer(layers[-1].weight, layers[-1].bias, layers[-1].pads, True)
            current = node.output[0]
        elif node.op_type == "Sub" and list(node.input) == [x, current] and not residual:
            residual = True
            current = node.output[0]
        else:
            raise ValueError(f"{path.name}: cannot read node {node.op_type} {node.name!r}")
    if current != graph.output[0].name:
        raise ValueError(f"{path.name}: the chain does not end at the graph output")
    return ConvStack(tuple(layers), residual)


def torch_from_onnx(path: Path) -> Any:
    """A torch ``nn.Module`` (eval mode, float32, CPU) computing what the ONNX file does."""
    import torch
    from torch import nn

    stack = read_conv_stack(path)

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            body: list[nn.Module] = []
            for layer in stack.layers:
                top, left, bottom, right = layer.pads
                if top != bottom or left != right:
                    raise ValueError(f"{path.name}: asymmetric padding {layer.pads}")
                out_c, in_c, kh, kw = layer.weight.shape
                conv = nn.Conv2d(
                    in_c, out_c, (kh, kw), padding=(top, left), bias=layer.bias is not None
                )
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(layer.weight))
                    if layer.bias is not None and conv.bias is not None:
                        conv.bias.copy_(torch.from_numpy(layer.bias))
                body.append(conv)
                if layer.relu:
                    body.append(nn.ReLU(inplace=True))
            self.body = nn.Sequential(*body)
            self.residual = stack.residual

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not len(self.body):
                return x
            y: torch.Tensor = self.body(x)
            return x - y if self.residual else y

    return Twin().eval()
