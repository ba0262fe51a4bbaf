"""An ONNX model as a trainable torch module, and its weights written back.

Any deepdenoise model can be the starting point, shipped or exported, without its
training checkpoint: the graph runs in torch (``_onnx_torch``) with its convolutions'
weights as parameters (batch norm is already folded into them). After fine-tuning, the
new weights replace the initializers of the *original* graph, so the adapted model is
the same computation with other numbers: same operators, same speed, same contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from stream import ModelError

from ._onnx_torch import OnnxModule, _graphs


@dataclass
class TrainableModel:
    module: OnnxModule
    proto: onnx.ModelProto

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.module.parameters())

    def reinitialise(self, seed: int) -> None:
        """Fresh weights (training from scratch with the same architecture), drawn as
        torch initialises a new convolution."""
        torch.manual_seed(seed)
        with torch.no_grad():
            for _, params in self.module.convs:
                weight = params[0]
                torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
                if len(params) > 1:
                    bound = 1 / math.sqrt(weight[0].numel())
                    torch.nn.init.uniform_(params[1], -bound, bound)


def load_trainable(path: Path) -> TrainableModel:
    """The model at ``path`` as a torch module; its Conv weights are the trainable part."""
    proto = _read_onnx(Path(path))
    halves = [
        init.name
        for graph in _graphs(proto.graph)
        for init in graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT16
    ]
    if halves:  # trained in float32, its weights written back as float32: a type clash
        raise ModelError(
            f"{path}: expected a float32 model, got float16 weights ({halves[0]}, ...): "
            "adapt the float32 model it was exported from (the same name without -fp16)"
        )
    try:
        module = OnnxModule(proto)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    if not module.convs:
        raise ModelError(f"{path}: the model has no convolution to adapt")
    module.train()
    return TrainableModel(module, proto)


def _read_onnx(path: Path) -> onnx.ModelProto:
    """The ONNX graph at ``path``; a one-line ModelError for anything else (a training
    checkpoint, a truncated file), not protobuf's traceback."""
    from google.protobuf.message import DecodeError

    expected = "expected an .onnx model; export a checkpoint first with deepdenoise export"
    if path.suffix.lower() != ".onnx":
        raise ModelError(f"{path}: {expected}")
    if not path.is_file():  # a missing model is no checkpoint to export
        raise ModelError(f"{path}: no such model file; expected an .onnx model")
    try:
        return onnx.load(str(path))
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: cannot read it as ONNX ({exc}); {expected}") from exc


def with_trained_weights(model: TrainableModel) -> onnx.ModelProto:
    """A copy of the original graph holding the module's current Conv weights."""
    values: dict[str, np.ndarray] = {}
    for node, params in model.module.convs:
        names = [n for n in node.input[1:3] if n]
        for name, param in zip(names, params, strict=True):
            values[name] = param.detach().cpu().numpy().astype(np.float32)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    for graph in _graphs(proto.graph):  # a composed model's branches hold convs too
        for init in graph.initializer:
            if init.name in values:
                init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return proto
