"""An ONNX graph run by torch, node by node, so that its Conv weights can be trained.

deepdenoise graphs use a small set of operators (convolutions, ReLU, arithmetic, and the
shape arithmetic that reflect padding and pixel (un)shuffle export to), so a short
interpreter covers them and keeps the project free of a converter that pulls torchvision
(and with it a torch build of its own choosing). Each Conv's weight and bias become
parameters; every other initializer and Constant stays a fixed tensor. An operator
outside the set is refused by name when the model is loaded, not halfway through
training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from stream import ModelError

Tensor = torch.Tensor
_Op = Callable[[list[Tensor | None], dict[str, Any]], list[Tensor]]

_TORCH_DTYPES: dict[int, torch.dtype] = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT8: torch.int8,
    onnx.TensorProto.UINT8: torch.uint8,
    onnx.TensorProto.BOOL: torch.bool,
}


def _ints(t: Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _conv(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x, weight, bias = args[0], args[1], args[2] if len(args) > 2 else None
    assert x is not None and weight is not None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError("Conv with auto_pad is not supported; export with explicit pads")
    spatial = weight.dim() - 2
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    begin, end = pads[:spatial], pads[spatial:]
    padding: Sequence[int] = begin
    if begin != end:  # asymmetric: pad explicitly (torch pads last dim first)
        flat = [p for b, e in zip(reversed(begin), reversed(end), strict=True) for p in (b, e)]
        x = F.pad(x, flat)
        padding = [0] * spatial
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spatial]
    return [
        conv(
            x,
            weight,
            bias,
            stride=list(attrs.get("strides", [1] * spatial)),
            padding=list(padding),
            dilation=list(attrs.get("dilations", [1] * spatial)),
            groups=int(attrs.get("group", 1)),
        )
    ]


def _gather(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    data, index = args[0], args[1]
    assert data is not None and index is not None
    axis = int(attrs.get("axis", 0)) % data.dim()
    index = torch.where(index < 0, index + data.shape[axis], index).long()
    picked = data.index_select(axis, index.reshape(-1))
    shape = list(data.shape[:axis]) + list(index.shape) + list(data.shape[axis + 1 :])
    return [picked.reshape(shape)]


def _slice(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    data = args[0]
    assert data is not None
    starts, ends = _ints(args[1]), _ints(args[2])
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
    steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    out = data
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= data.dim()
        picked = range(*slice(start, end, step).indices(data.shape[axis]))
        out = out.index_select(axis, torch.tensor(picked, dtype=torch.long))
    return [out]


def _reshape(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    data = args[0]
    assert data is not None
    shape = _ints(args[1])
    if not attrs.get("allowzero", 0):
        shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [data.reshape(shape)]


def _pad(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    data = args[0]
    assert data is not None
    pads = _ints(args[1])
    if len(args) > 3 and args[3] is not None:
        raise ModelError("Pad with an axes input is not supported")
    value = float(args[2].item()) if len(args) > 2 and args[2] is not None else 0.0
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    n = data.dim()
    begin, end = pads[:n], pads[n:]
    padded = [i for i in range(n) if begin[i] or end[i]]
    if not padded:
        return [data]
    if mode == "edge":
        mode = "replicate"
    if mode == "constant":
        first = padded[0]
        flat = [p for i in reversed(range(first, n)) for p in (begin[i], end[i])]
        return [F.pad(data, flat, mode="constant", value=value)]
    # torch's reflect/replicate pad the last k = 1..3 dims of an (N, C, *k dims) tensor,
    # with exactly 2k pad values: fold the leading dims into N (an unpadded dim among the
    # last two just gets zeros, so a frame padded in width alone works as well)
    k = max(n - padded[0], min(2, n))
    if k > 3:
        raise ModelError(f"Pad {mode} of more than the last 3 dimensions is not supported")
    flat = [p for i in reversed(range(n - k, n)) for p in (begin[i], end[i])]
    work = data.reshape((-1, 1, *data.shape[n - k :]))
    out = F.pad(work, flat, mode=mode)
    return [out.reshape((*data.shape[: n - k], *out.shape[2:]))]


def _depth_to_space(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    b, c, h, w = x.shape
    s = int(attrs["blocksize"])
    mode = attrs.get("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "CRD":
        y = x.reshape(b, c // (s * s), s, s, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(b, s, s, c // (s * s), h, w).permute(0, 3, 4, 1, 5, 2)
    return [y.reshape(b, c // (s * s), h * s, w * s)]


def _space_to_depth(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    b, c, h, w = x.shape
    s = int(attrs["blocksize"])
    y = x.reshape(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4)
    return [y.reshape(b, c * s * s, h // s, w // s)]


def _unsqueeze(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    axes = _ints(args[1]) if len(args) > 1 else list(attrs["axes"])
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return [x]


def _squeeze(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else attrs.get("axes")
    if axes is None:
        return [x.squeeze()]
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(axis)
    return [x]


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> _Op:
    def op(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
        a, b = args[0], args[1]
        assert a is not None and b is not None
        return [fn(a, b)]

    return op


def _unary(fn: Callable[[Tensor], Tensor]) -> _Op:
    def op(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
        x = args[0]
        assert x is not None
        return [fn(x)]

    return op


def _divide(a: Tensor, b: Tensor) -> Tensor:
    # integer Div truncates toward zero in ONNX
    return a / b if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc")


def _mod(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    a, b = args[0], args[1]
    assert a is not None and b is not None
    # fmod=0 takes the divisor's sign (Python's %), as torch.remainder does
    return [torch.fmod(a, b) if attrs.get("fmod", 0) else torch.remainder(a, b)]


def _shape(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    dims = list(x.shape)[attrs.get("start", 0) : attrs.get("end")]
    return [torch.tensor(dims, dtype=torch.int64)]


def _concat(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    return [torch.cat([a for a in args if a is not None], dim=int(attrs["axis"]))]


def _cast(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    return [x.to(_TORCH_DTYPES[int(attrs["to"])])]


def _constant_of_shape(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    value = attrs.get("value")
    fill = torch.zeros(1) if value is None else _tensor(numpy_helper.to_array(value))
    return [torch.full(_ints(args[0]), fill.reshape(-1)[0].item(), dtype=fill.dtype)]


def _transpose(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    perm = attrs.get("perm", list(reversed(range(x.dim()))))
    return [x.permute(*perm)]


def _reduce_max(args: list[Tensor | None], attrs: dict[str, Any]) -> list[Tensor]:
    x = args[0]
    assert x is not None
    axes = attrs.get("axes") or (_ints(args[1]) if len(args) > 1 else [])
    dims = [a % x.dim() for a in axes] or list(range(x.dim()))
    return [torch.amax(x, dim=dims, keepdim=bool(attrs.get("keepdims", 1)))]


_OPS: dict[str, _Op] = {
    "Conv": _conv,
    "Abs": _unary(torch.abs),
    "Equal": _binary(torch.eq),
    "ReduceMax": _reduce_max,
    "Relu": _unary(F.relu),
    "Identity": _unary(lambda x: x),
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _binary(_divide),
    "Mod": _mod,
    "Shape": _shape,
    "Gather": _gather,
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Pad": _pad,
    "Concat": _concat,
    "Cast": _cast,
    "ConstantOfShape": _constant_of_shape,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "DepthToSpace": _depth_to_space,
    "SpaceToDepth": _space_to_depth,
}


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(array, copy=True))


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """``graph`` and every branch of its ``If`` nodes, nested ones included."""
    found = [graph]
    for node in graph.node:
        if node.op_type == "If":
            for a in node.attribute:
                found += _graphs(onnx.helper.get_attribute_value(a))
    return found


class OnnxModule(torch.nn.Module):
    """Runs ``proto``'s graph in torch; ``convs`` pairs each Conv node with its parameters.

    ``If`` runs the branch its condition picks (a composed temporal model's spatial
    series start, :mod:`exporter.compose`); Conv weights inside branches train as well.
    """

    def __init__(self, proto: onnx.ModelProto) -> None:
        super().__init__()
        graph = proto.graph
        graphs = _graphs(graph)
        nodes = [n for g in graphs for n in g.node]
        unknown = sorted({n.op_type for n in nodes} - set(_OPS) - {"Constant", "If"})
        if unknown:
            raise ModelError(
                f"the model uses operators adapt cannot train through: {', '.join(unknown)}; "
                f"supported: Constant, If, {', '.join(sorted(_OPS))}"
            )
        initialized = {i.name for i in graph.initializer}
        self._inputs = [i.name for i in graph.input if i.name not in initialized]
        self._outputs = [o.name for o in graph.output]
        self._constants: dict[str, Tensor] = {
            i.name: _tensor(numpy_helper.to_array(i)) for g in graphs for i in g.initializer
        }
        for node in nodes:
            if node.op_type == "Constant":
                attrs = node.attribute[0]
                if attrs.name != "value":
                    value = torch.tensor(onnx.helper.get_attribute_value(attrs))
                else:
                    value = _tensor(numpy_helper.to_array(attrs.t))
                self._constants[node.output[0]] = value
        self.convs: list[tuple[onnx.NodeProto, torch.nn.ParameterList]] = []
        self._params = torch.nn.ModuleList()
        self._trained: dict[str, torch.nn.Parameter] = {}
        for node in nodes:
            if node.op_type != "Conv":
                continue
            names = [n for n in node.input[1:3] if n]
            if any(n not in self._constants for n in names):
                raise ModelError(f"Conv {node.name!r} takes weights that are not constants")
            params = torch.nn.ParameterList(
                [torch.nn.Parameter(self._constants[n].float().clone()) for n in names]
            )
            self._params.append(params)
            self.convs.append((node, params))
            for name, param in zip(names, params, strict=True):
                self._trained[name] = param
        self._steps = _compile(graph)

    def _run(self, steps: list[_Step], values: dict[str, Tensor]) -> None:
        for node, attrs, branches in steps:
            if node.op_type == "Constant":
                continue
            if branches is not None:  # If: the branch its condition picks
                steps_, outputs = branches[0 if bool(values[node.input[0]]) else 1]
                inner = dict(values)  # the branch sees the outer scope
                self._run(steps_, inner)
                for name, out in zip(node.output, outputs, strict=True):
                    values[name] = inner[out]
                continue
            args = [values[name] if name else None for name in node.input]
            for name, value in zip(node.output, _OPS[node.op_type](args, attrs), strict=False):
                values[name] = value

    def forward(self, *inputs: Tensor) -> Tensor:
        values: dict[str, Tensor] = {**self._constants, **self._trained}
        values.update(zip(self._inputs, inputs, strict=False))
        self._run(self._steps, values)
        return values[self._outputs[0]]


#: A node, its attributes, and for ``If`` its (then, else) branches: steps and outputs.
_Branch = tuple[list["_Step"], list[str]]
_Step = tuple[onnx.NodeProto, dict[str, Any], tuple[_Branch, _Branch] | None]


def _compile(graph: onnx.GraphProto) -> list[_Step]:
    steps: list[_Step] = []
    for node in graph.node:
        attrs = _attributes(node)
        branches = None
        if node.op_type == "If":
            then, other = attrs["then_branch"], attrs["else_branch"]
            branches = (
                (_compile(then), [o.name for o in then.output]),
                (_compile(other), [o.name for o in other.output]),
            )
        steps.append((node, attrs, branches))
    return steps
