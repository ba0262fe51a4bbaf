"""A temporal model that denoises like a spatial one when it has no previous frame.

At a series start, and after a gap, the engine stands in for the missing previous
frames by repeating the oldest frame there is: on the very first frame, every frame
channel holds the current frame. A temporal model reads the repeated frame's noise as
signal seen K times and hardly denoises (``na-temporal``'s first stage, independent
generator, frame 0 of a series: 10 dB at 1 photon where the spatial default gives 18).
That frame has no temporal context at all, so the right tool for it is a spatial model.

:func:`with_spatial_start` writes one ONNX file holding both networks behind an ``If``
node: when every frame channel equals the current one (the ring is empty), the spatial
model's graph runs on the current frame and noise map; otherwise the temporal graph
runs. Only one branch runs per call, so a frame costs what its branch costs plus one
comparison of the input channels. Both models must share the input normalisation and
tile alignment, which the adaptive ``na-*`` models do. The engine needs no change: to it
this is a temporal model with the temporal model's metadata, plus ``spatial_start``
saying which spatial model answers at an empty ring.

Previous frames help in some light and not in other: a young series' partial window
(some previous frames, fewer than the window holds) and even a full window
(:mod:`exporter.light_bands` measures where). Given such bands, ``spatial_start``
records them and the engine gives frames outside them no history, so the spatial branch
answers them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream import ModelError
from stream.engine import BAND_KEYS, ModelMetadata

from .export import finish_model
from .onnx_init import load_proto

INPUT, OUTPUT = "x", "y"


def _load(path: Path) -> tuple[onnx.ModelProto, ModelMetadata]:
    proto = load_proto(path)
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    if names != ([INPUT], [OUTPUT]):
        raise ModelError(
            f"{path}: expected one input {INPUT!r} and one output {OUTPUT!r}, got {names}"
        )
    return proto, meta


def _branch(proto: onnx.ModelProto, prefix: str, source: str, name: str) -> onnx.GraphProto:
    """The model's graph as an ``If`` branch: names prefixed, input read from ``source``
    (an outer-scope value), output renamed to ``<prefix>y``."""
    graph = proto.graph

    def rename(value: str) -> str:
        if value == "":
            return value  # an omitted optional input
        return source if value == INPUT else prefix + value

    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or node.op_type)
        copy.input[:] = [rename(v) for v in node.input]
        copy.output[:] = [rename(v) for v in node.output]
        nodes.append(copy)
    initializers = []
    for init in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = prefix + init.name
        initializers.append(copy)
    output = helper.make_tensor_value_info(prefix + OUTPUT, TensorProto.FLOAT, None)
    return helper.make_graph(nodes, name, [], [output], initializers)


def with_spatial_start(
    temporal: Path,
    spatial: Path,
    out: Path,
    bands: Mapping[str, tuple[float, float]] | None = None,
) -> ModelMetadata:
    """Write ``out``: ``temporal``, answered by ``spatial`` when it has no previous frame.

    ``bands``: by kind of window (``"young"``, ``"full"``), the peak SNRs where the
    temporal network helps (:func:`exporter.light_bands.measure_band`); the engine
    gives frames outside them no history, so ``spatial`` answers them too.

    Raises ModelError when ``temporal`` is not temporal, ``spatial`` not spatial, or
    their inputs are not read the same way (normalisation, noise map, alignment).
    """
    t_proto, t_meta = _load(temporal)
    s_proto, s_meta = _load(spatial)
    k = t_meta.frames
    if k < 2 or s_meta.frames != 1:
        raise ModelError(
            f"expected a temporal and a spatial model, got {temporal.name} with {k} frame(s) "
            f"and {spatial.name} with {s_meta.frames}"
        )
    for field in ("normalization", "noise_map", "alignment", "input_offset", "input_scale"):
        a, b = getattr(t_meta, field), getattr(s_meta, field)
        if a != b:
            raise ModelError(
                f"expected both models to read their input alike: {field} is {a!r} for "
                f"{temporal.name} and {b!r} for {spatial.name}"
            )
    if s_meta.receptive_field > t_meta.receptive_field:
        raise ModelError(
            f"expected the spatial model's receptive field ({s_meta.receptive_field}) within "
            f"the temporal one's ({t_meta.receptive_field}): the engine tiles by the latter"
        )
    if t_meta.spatial_start:  # its graph is already an If: a second one clashes by name
        raise ModelError(
            f"expected a temporal model not yet composed, got {temporal.name}, already "
            f"composed with {t_meta.spatial_start.get('model')!r} at a series start; compose "
            "the temporal network alone (`deepdenoise export` of its checkpoint)"
        )
    channels = k + int(t_meta.noise_map)

    def ints(name: str, values: list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, np.int64), name)

    consts = [
        ints("history_start", [0]),
        ints("current_start", [k - 1]),
        ints("current_end", [k]),
        ints("spatial_end", [channels]),
        ints("channel_axis", [1]),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node(
            "Slice", [INPUT, "history_start", "current_start", "channel_axis"], ["history"]
        ),
        helper.make_node(
            "Slice", [INPUT, "current_start", "current_end", "channel_axis"], ["current"]
        ),
        helper.make_node("Sub", ["history", "current"], ["change"]),
        helper.make_node("Abs", ["change"], ["abs_change"]),
        helper.make_node("ReduceMax", ["abs_change"], ["largest_change"], keepdims=0),
        helper.make_node("Equal", ["largest_change", "zero"], ["no_history"]),
        # the spatial model reads the current frame and the noise map
        helper.make_node(
            "Slice", [INPUT, "current_start", "spatial_end", "channel_axis"], ["spatial_x"]
        ),
        helper.make_node(
            "If",
            ["no_history"],
            [OUTPUT],
            then_branch=_branch(s_proto, "spatial/", "spatial_x", "spatial"),
            else_branch=_branch(t_proto, "temporal/", INPUT, "temporal"),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "temporal_with_spatial_start",
        [t_proto.graph.input[0]],
        [t_proto.graph.output[0]],
        consts,
    )
    opsets = {o.domain: o.version for o in t_proto.opset_import}
    for o in s_proto.opset_import:
        opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="deepdenoise.exporter.compose",
    )
    proto.ir_version = max(t_proto.ir_version, s_proto.ir_version)
    fields = t_meta.model_dump(exclude={"content_hash", "from_model"})
    fields["spatial_start"] = {
        "model": spatial.stem,
        "content_hash": s_meta.content_hash,
        "temporal_content_hash": t_meta.content_hash,
        "when": "every frame channel equals the current frame (series start, after a gap)",
    }
    written = []
    for window, (low, high) in sorted((bands or {}).items()):
        fields["spatial_start"][BAND_KEYS[window]] = [float(low), float(high)]
        written.append(f"{window} windows within peak SNR {low:g}-{high:g}")
    if written:
        # The bands change what the file does, so they are in the graph too: the content
        # hash (the model id in status and stores) tells the compositions apart.
        proto.graph.doc_string = "temporal branch for " + "; ".join(written)
    return finish_model(proto, fields, out)
