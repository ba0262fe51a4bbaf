"""An ONNX model as a trainable torch module, and its weights written back.

Any deepdenoise model can be the starting point, shipped or exported, without its
training checkpoint: onnx2torch turns the graph into a torch module whose convolutions
hold the ONNX weights (batch norm is already folded into them). After fine-tuning, the
new weights replace the initializers of the *original* graph, so the adapted model is
the same computation with other numbers: same operators, same speed, same contract.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from stream import ConfigError, ModelError


@dataclass
class TrainableModel:
    module: torch.nn.Module
    proto: onnx.ModelProto
    convs: list[tuple[onnx.NodeProto, torch.nn.Conv2d]]  # graph order

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for _, conv in self.convs for p in conv.parameters()]

    def reinitialise(self, seed: int) -> None:
        """Fresh weights (training from scratch with the same architecture)."""
        torch.manual_seed(seed)
        for _, conv in self.convs:
            conv.reset_parameters()


def load_trainable(path: Path) -> TrainableModel:
    """The model at ``path`` as a torch module; its Conv weights are the trainable part."""
    try:
        from onnx2torch import convert
    except ImportError as exc:
        raise ConfigError(
            "adapt needs onnx2torch and a torchvision that matches your torch: install "
            "torch and torchvision from the same index, then `pip install onnx2torch` "
            f"(the adapt extra); {exc}"
        ) from exc

    proto = onnx.load(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter's own deprecation chatter
        module = convert(proto)
    module.train()
    nodes = [n for n in proto.graph.node if n.op_type == "Conv"]
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not nodes or len(nodes) != len(convs):
        raise ModelError(
            f"{path}: expected one torch convolution per ONNX Conv node, got {len(convs)} "
            f"for {len(nodes)}"
        )
    inits = {i.name for i in proto.graph.initializer}
    for node, conv in zip(nodes, convs, strict=True):
        if node.input[1] not in inits or (len(node.input) > 2 and node.input[2] not in inits):
            raise ModelError(f"{path}: Conv {node.name!r} takes weights that are not constants")
        if tuple(conv.weight.shape) != tuple(_initializer(proto, node.input[1]).shape):
            raise ModelError(f"{path}: Conv {node.name!r} does not match its torch module")
    return TrainableModel(module, proto, list(zip(nodes, convs, strict=True)))


def _initializer(proto: onnx.ModelProto, name: str) -> np.ndarray:
    for init in proto.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def with_trained_weights(model: TrainableModel) -> onnx.ModelProto:
    """A copy of the original graph holding the module's current Conv weights."""
    values: dict[str, np.ndarray] = {}
    for node, conv in model.convs:
        values[node.input[1]] = conv.weight.detach().cpu().numpy().astype(np.float32)
        if len(node.input) > 2 and node.input[2]:
            if conv.bias is None:
                raise ModelError(f"Conv {node.name!r} has a bias in ONNX but none in torch")
            values[node.input[2]] = conv.bias.detach().cpu().numpy().astype(np.float32)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    for init in proto.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return proto
