"""A trainable DnCNN from a shipped ONNX model, to continue training it.

The exported graph has its BatchNorm layers folded into the convolutions (eval mode),
so the shipped file holds each middle layer's ``conv + BN`` as one convolution with a
bias: the weights are all there, but not in the form training needs. This module puts
them back: every convolution takes the folded weights, and each BatchNorm layer is given
the statistics of its convolution's output over calibration batches of training data
(mean ``m``, variance ``v``) with ``weight = sqrt(v + eps)`` and ``bias = m + b``. In
eval mode that BatchNorm is then ``y + b`` exactly, so the model computes what the ONNX
file computes; in train mode it normalises with the batch's statistics, which are close
to ``m`` and ``v`` on batches like the calibration ones, so training starts from the
shipped model rather than from a shifted copy of it.

Why: a shipped model can be fine-tuned from a clean checkout (``init`` in a training
config may name the ``.onnx`` file), without the training run's checkpoints.

A model without a running-mean channel can start a model with one: the channel is the
last input, so its first-layer weights are appended as zeros and the new model computes
exactly what the file does until training teaches it to read the mean.

A shallower model can start a deeper one of the same width (Net2DeeperNet; Chen,
Goodfellow and Shlens 2016): the missing middle layers are inserted, spread evenly, as
identity convolutions. Each follows a ReLU, so its input is never negative; its
BatchNorm is given its input's statistics like every other, so in eval mode the layer,
its BatchNorm and its ReLU pass the input through unchanged and the deeper model computes
what the file does, with more layers for training to use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from torch import Tensor, nn

from stream import ModelError
from stream.engine import ModelMetadata

from .model import DnCNN, ModelSpec


def load_proto(path: Path) -> onnx.ModelProto:
    """The ONNX model at ``path``; ModelError when it cannot be read or parsed."""
    try:
        return onnx.load(str(path))
    except (OSError, ValueError, DecodeError) as exc:
        raise ModelError(f"cannot read ONNX model {path}: {exc}") from exc


def folded_convolutions(proto: onnx.ModelProto) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``(weight, bias)`` of every Conv node of the ONNX model, in graph order; of a
    composed model (:mod:`exporter.compose`), its temporal network's."""
    graph = proto.graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "If":  # composed: the temporal network is the else branch
            graph = next(
                onnx.helper.get_attribute_value(a)
                for a in node.attribute
                if a.name == "else_branch"
            )
            weights |= {init.name: numpy_helper.to_array(init) for init in graph.initializer}
            break
    convs: list[tuple[np.ndarray, np.ndarray | None]] = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        if node.input[1] not in weights:
            raise ModelError(f"conv {node.name!r} has no constant weight")
        bias = weights.get(node.input[2]) if len(node.input) > 2 else None
        convs.append((weights[node.input[1]], bias))
    return convs


@torch.no_grad()
def model_from_onnx(path: Path, spec: ModelSpec, calibration: Iterable[Tensor]) -> DnCNN:
    """The DnCNN ``spec`` with the weights of the ONNX model at ``path``.

    ``calibration``: model-input batches (``[N, C, P, P]``) from the training data, for
    the BatchNorm statistics. Raises ModelError when the file's convolutions do not
    match ``spec`` (another depth, width, kernel or input channels).
    """
    model = DnCNN(spec)
    layers = [m for m in model.body if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.body if isinstance(m, nn.BatchNorm2d)]
    proto = load_proto(path)
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    for key, want in (("frames", spec.frames), ("noise_map", spec.noise_map)):
        got = getattr(meta, key)
        if meta.from_model and got != want:
            raise ModelError(f"{path}: expected {key} {want} for {spec}, the model has {got}")
    if meta.running_mean > 0 and spec.running_mean == 0:
        raise ModelError(
            f"{path}: expected no running-mean channel for {spec}, the model has one "
            f"(decay {meta.running_mean}; a model may gain the channel or change its "
            "decay, not lose it)"
        )
    convs = folded_convolutions(proto)
    if len(convs) > len(layers) or len(convs) < min(3, len(layers)):
        raise ModelError(
            f"{path}: expected {len(layers)} convolutions for {spec} (or fewer, with middle "
            f"layers to deepen), the file has {len(convs)}"
        )
    if len(convs) < len(layers):
        convs = _deepened(convs, len(layers))
    biases: list[Tensor] = []
    if spec.running_mean > 0 and meta.running_mean == 0:
        convs[0] = (with_zero_inputs(convs[0][0], spec.unshuffle**2), convs[0][1])
    for i, (layer, (weight, folded)) in enumerate(zip(layers, convs, strict=True)):
        if tuple(weight.shape) != tuple(layer.weight.shape):
            raise ModelError(
                f"{path}: conv {i} expected weights {tuple(layer.weight.shape)} for {spec}, "
                f"the file has {tuple(weight.shape)}"
            )
        layer.weight.copy_(torch.tensor(weight))
        biases.append(torch.zeros(weight.shape[0]) if folded is None else torch.tensor(folded))
    for layer, kept in ((layers[0], biases[0]), (layers[-1], biases[-1])):
        assert layer.bias is not None  # the first and last convs keep their bias
        layer.bias.copy_(kept)
    # First an exact copy of the ONNX function: each BatchNorm adds its folded bias only.
    for norm, bias in zip(norms, biases[1:-1], strict=True):
        _set_norm(norm, torch.zeros_like(bias), torch.full_like(bias, 1.0 - norm.eps), bias)
    stats = _conv_output_statistics(model, layers[1:-1], calibration)
    for norm, bias, (mean, var) in zip(norms, biases[1:-1], stats, strict=True):
        _set_norm(norm, mean, var, mean + bias)
    return model.eval()


def _deepened(
    convs: list[tuple[np.ndarray, np.ndarray | None]], depth: int
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``convs`` with identity middle layers inserted, spread evenly among the file's
    middle layers, up to ``depth`` convolutions in all."""
    middle = convs[1:-1]
    extra = depth - len(convs)
    width, _, k, _ = middle[0][0].shape
    identity = np.zeros((width, width, k, k), np.float32)
    identity[np.arange(width), np.arange(width), k // 2, k // 2] = 1.0
    # after middle layer number round((i + 1) * m / (extra + 1)), i = 0 .. extra - 1
    after = [round((i + 1) * len(middle) / (extra + 1)) for i in range(extra)]
    deeper: list[tuple[np.ndarray, np.ndarray | None]] = [convs[0]]
    for n in range(len(middle) + 1):
        if n > 0:
            deeper.append(middle[n - 1])
        deeper += [(identity, None)] * after.count(n)
    return [*deeper, convs[-1]]


def with_zero_inputs(weight: np.ndarray, columns: int) -> np.ndarray:
    """The first conv's ``weight`` with ``columns`` zero input columns appended: the
    running-mean channel (last, and ``unshuffle**2`` columns after the pixel unshuffle)."""
    zeros = np.zeros((weight.shape[0], columns, *weight.shape[2:]), weight.dtype)
    return np.concatenate([weight, zeros], axis=1)


def _set_norm(norm: nn.BatchNorm2d, mean: Tensor, var: Tensor, bias: Tensor) -> None:
    """Statistics ``mean``, ``var`` and the affine part that undoes them, plus ``bias``:
    in eval mode the layer computes ``y + bias``."""
    assert norm.running_mean is not None and norm.running_var is not None
    norm.running_mean.copy_(mean)
    norm.running_var.copy_(var)
    norm.weight.copy_(torch.sqrt(var + norm.eps))
    norm.bias.copy_(bias)


def _conv_output_statistics(
    model: DnCNN, convs: list[nn.Conv2d], calibration: Iterable[Tensor]
) -> list[tuple[Tensor, Tensor]]:
    """Per-channel mean and (biased) variance of each conv's output, pooled over batches."""
    sums = [torch.zeros(c.out_channels, dtype=torch.float64) for c in convs]
    squares = [torch.zeros(c.out_channels, dtype=torch.float64) for c in convs]
    counts = [0] * len(convs)

    def hook(i: int) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def record(_: nn.Module, __: tuple[Tensor, ...], out: Tensor) -> None:
            y = out.double().transpose(0, 1).reshape(out.shape[1], -1)
            sums[i] += y.sum(1)
            squares[i] += (y * y).sum(1)
            counts[i] += y.shape[1]

        return record

    handles = [conv.register_forward_hook(hook(i)) for i, conv in enumerate(convs)]
    model.eval()
    try:
        for batch in calibration:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    if not counts or counts[0] == 0:
        raise ValueError("expected calibration batches for the BatchNorm statistics, got none")
    stats = []
    for s, q, n in zip(sums, squares, counts, strict=True):
        mean = s / n
        var = (q / n - mean * mean).clamp_min(0.0)
        stats.append((mean.float(), var.float()))
    return stats
