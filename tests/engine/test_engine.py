"""The ONNX Runtime engine against models with closed-form answers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporter.simple_models import make_conv_stack, make_identity
from stream import ConfigError, DeepDenoiseError, ModelError, ProviderUnavailableError
from stream.engine import (
    DEFAULT_RECEPTIVE_FIELD,
    Engine,
    ModelMetadata,
    _providers,
    graph_hash,
    probe_providers,
    select_providers,
)

CUDA_PROBLEM = probe_providers()["cuda"]
needs_cuda = pytest.mark.skipif(CUDA_PROBLEM is not None, reason=f"no usable CUDA: {CUDA_PROBLEM}")

ODD_SHAPES = [(1, 1), (3, 200), (37, 53), (129, 65), (200, 3)]


def frame_u16(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, shape, endpoint=True).astype(np.uint16)


def frame_f32(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 1e3).astype(np.float32)


def box3_reference(frame: np.ndarray) -> np.ndarray:
    """3x3 mean of the reflect-padded frame: what the engine must compute for box3."""
    p = np.pad(frame.astype(np.float64), 1, mode="reflect")
    h, w = frame.shape
    return sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9


def save_graph(path: Path, inputs: list, outputs: list, nodes: list) -> Path:  # type: ignore[type-arg]
    graph = helper.make_graph(nodes, "bad", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


# -- exactness and tiling -------------------------------------------------------------


@pytest.mark.parametrize("make_frame", [frame_u16, frame_f32])
@pytest.mark.parametrize("tiled", [False, True])
def test_identity_is_exact(identity_model: Path, make_frame, tiled: bool) -> None:  # type: ignore[no-untyped-def]
    kwargs = {"tile": 40, "overlap": 8} if tiled else {}
    with Engine(identity_model, provider="cpu", warmup_shape=None, **kwargs) as engine:
        for shape in [*ODD_SHAPES, (300, 301)]:
            frame = make_frame(shape)
            out = engine.denoise(frame)
            assert out.dtype == np.float32
            assert out.shape == shape
            np.testing.assert_array_equal(out, frame.astype(np.float32))
        assert engine.plan_for((300, 301)).is_whole is not tiled


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_box_matches_reflect_padded_reference(box_model: Path, shape: tuple[int, int]) -> None:
    frame = frame_u16(shape)
    with Engine(box_model, provider="cpu", warmup_shape=None) as engine:
        assert engine.metadata.receptive_field == 3
        assert engine.plan_for(shape).is_whole
        np.testing.assert_allclose(engine.denoise(frame), box3_reference(frame), rtol=1e-5)


@pytest.mark.parametrize("model", ["box_model", "conv_model"])
def test_tiled_equals_whole(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    with (
        Engine(path, provider="cpu", warmup_shape=None) as whole,
        Engine(path, provider="cpu", warmup_shape=None, tile=24, overlap=12) as tiled,
    ):
        for shape in [*ODD_SHAPES, (97, 131)]:
            frame = frame_f32(shape, seed=shape[0])
            assert whole.plan_for(shape).is_whole
            expected = whole.denoise(frame)
            np.testing.assert_allclose(tiled.denoise(frame), expected, rtol=1e-5, atol=1e-3)
        assert tiled.plan_for((97, 131)).n_tiles > 4


def test_results_are_new_arrays(box_model: Path) -> None:
    with Engine(box_model, provider="cpu", warmup_shape=None) as engine:
        first_in, second_in = frame_u16((64, 64), 1), frame_u16((64, 64), 2)
        first = engine.denoise(first_in)
        kept = first.copy()
        second = engine.denoise(second_in)
        assert not np.shares_memory(first, second)
        np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_accepted_dtypes(identity_model: Path, dtype: type) -> None:
    frame = np.arange(12 * 13).reshape(12, 13).astype(dtype)
    with Engine(identity_model, provider="cpu", warmup_shape=None) as engine:
        np.testing.assert_array_equal(engine.denoise(frame), frame.astype(np.float32))
        # Non-contiguous input is fine too.
        np.testing.assert_array_equal(
            engine.denoise(frame[::2, ::3]), frame[::2, ::3].astype(np.float32)
        )


def test_rejects_bad_frames(identity_model: Path) -> None:
    with Engine(identity_model, provider="cpu", warmup_shape=None) as engine:
        with pytest.raises(ValueError, match="2-D"):
            engine.denoise(np.zeros((2, 3, 4), dtype=np.uint16))
        with pytest.raises(TypeError, match="complex64"):
            engine.denoise(np.zeros((3, 4), dtype=np.complex64))


# -- non-finite pixels ------------------------------------------------------------------


def test_non_finite_pixels_become_nan_and_do_not_smear(box_model: Path) -> None:
    frame = np.full((40, 50), 100.0, dtype=np.float32)
    frame[10, 10], frame[20, 30], frame[0, 49] = np.nan, np.inf, -np.inf
    with Engine(box_model, provider="cpu", warmup_shape=None) as engine:
        out = engine.denoise(frame)
    bad = ~np.isfinite(frame)
    assert np.isnan(out[bad]).all()
    # Filled from the finite pixels around them (all 100), so neighbours stay exactly 100.
    np.testing.assert_allclose(out[~bad], 100.0, rtol=1e-6)


def test_a_masked_region_is_filled_with_the_field_mirrored_across_its_edge() -> None:
    """As the engine reflects a frame beyond its edges; where the mirror falls outside
    the frame, the nearest pixel of the field. Each mask gets its own fill. In a field
    that does not stand out of its noise, the field's mean."""
    from stream.camera import CameraModel
    from stream.engine._pixels import finite_copy

    camera = CameraModel(gain=1.0, offset=0.0, read_noise=1.0)
    ramp = np.tile(np.arange(40, dtype=np.float32), (6, 1))  # each pixel holds its column
    right = ramp.copy()
    right[:, 35:] = np.nan  # columns 35-39 mirror 33-29 across column 34
    mirrored = np.tile(np.arange(33, 28, -1, dtype=np.float32), (6, 1))
    np.testing.assert_array_equal(finite_copy(right, camera)[:, 35:], mirrored)
    left = ramp.copy()
    left[:, :25] = np.nan  # column 24 mirrors 26 across 25; column 10's mirror (40) is out
    filled = finite_copy(left, camera)
    assert (filled[:, 24] == 26).all() and (filled[:, 11] == 39).all()
    assert (filled[:, 10] == 25).all() and (filled[:, 0] == 25).all()
    np.testing.assert_array_equal(finite_copy(right, camera)[:, 35:], mirrored)
    dim = CameraModel(gain=1.0, offset=17.0, read_noise=10.0)  # 0.1 of its noise
    np.testing.assert_allclose(finite_copy(right, dim)[:, 35:], 17.0)
    np.testing.assert_allclose(finite_copy(right)[:, 35:], 17.0)  # no camera: the mean


def test_all_non_finite_gives_all_nan(identity_model: Path) -> None:
    with Engine(identity_model, provider="cpu", warmup_shape=None) as engine:
        out = engine.denoise(np.full((5, 6), np.nan, dtype=np.float32))
    assert out.shape == (5, 6)
    assert np.isnan(out).all()


# -- metadata and normalisation ----------------------------------------------------------


def test_model_without_metadata_uses_defaults(tmp_path: Path) -> None:
    path = make_identity(tmp_path / "plain.onnx", metadata=False)
    with Engine(path, provider="cpu", warmup_shape=None) as engine:
        meta = engine.metadata
        assert not meta.from_model
        assert meta.receptive_field == DEFAULT_RECEPTIVE_FIELD == 41
        assert (meta.input_offset, meta.input_scale) == (0.0, 1.0)
        assert engine.model_id == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        assert engine.overlap >= 2 * meta.radius
        frame = frame_u16((33, 17))
        np.testing.assert_array_equal(engine.denoise(frame), frame.astype(np.float32))


def test_model_id_from_content_hash(identity_model: Path) -> None:
    with Engine(identity_model, provider="cpu", warmup_shape=None) as engine:
        assert engine.metadata.content_hash is not None
        assert engine.model_id == engine.metadata.content_hash[:12]


def test_a_copied_content_hash_does_not_lend_its_id(
    identity_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The id is the file's own: a model whose metadata claims another's content hash
    (copied metadata) keeps its own id, and the mismatch is logged."""
    theirs = ModelMetadata.from_props(
        {p.key: p.value for p in onnx.load(identity_model).metadata_props}
    ).content_hash
    assert theirs is not None
    copied = make_conv_stack(tmp_path / "copied.onnx", content_hash=theirs)
    with Engine(copied, provider="cpu", warmup_shape=None) as engine:
        assert engine.model_id != theirs[:12]
        assert engine.model_id == graph_hash(copied.read_bytes())[:12]
    assert "is not the hash of its graph" in caplog.text


def test_external_weights_are_part_of_the_model_id(tmp_path: Path) -> None:
    """Two models with the same .onnx file and different weights beside it differ."""
    conv = make_conv_stack(tmp_path / "conv.onnx", seed=3)
    ids, outputs = [], []
    for name, factor in (("a", 1.0), ("b", 0.5)):
        proto = onnx.load(conv)
        for tensor in proto.graph.initializer:
            weights = onnx.numpy_helper.to_array(tensor) * np.float32(factor)
            tensor.CopyFrom(onnx.numpy_helper.from_array(weights, tensor.name))
        (tmp_path / name).mkdir()
        onnx.save_model(
            proto, tmp_path / name / "m.onnx", save_as_external_data=True, location="w.bin",
            all_tensors_to_one_file=True, size_threshold=0,
        )  # fmt: skip
        with Engine(tmp_path / name / "m.onnx", provider="cpu", warmup_shape=None) as engine:
            ids.append(engine.model_id)
            outputs.append(engine.denoise(frame_u16((20, 20)) // 64))
    assert (tmp_path / "a" / "m.onnx").read_bytes() == (tmp_path / "b" / "m.onnx").read_bytes()
    assert not np.allclose(outputs[0], outputs[1])
    assert ids[0] != ids[1]


def test_an_unknown_metadata_key_is_told_with_the_likely_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    meta = ModelMetadata.from_props({"deepdenoise.normalisation": "adaptive"})
    assert meta.normalization == "fixed"  # ignored, as a newer exporter's key would be
    assert "deepdenoise.normalisation is not in this version's contract" in caplog.text
    assert "did you mean deepdenoise.normalization?" in caplog.text


def test_a_trace_model_is_not_taken_for_a_frame_model() -> None:
    from stream.traces import SHIPPED_TRACE_MODEL

    with pytest.raises(ModelError, match="a ROI trace denoiser, for \\[traces\\] denoiser"):
        Engine(SHIPPED_TRACE_MODEL, provider="cpu", warmup_shape=None)


@pytest.mark.parametrize("context", [{"frames": 3}, {"noise_map": True}])
def test_a_model_with_context_channels_needs_adaptive_normalisation(
    context: dict[str, object],
) -> None:
    """The engine fills previous frames and noise maps only in camera units: a fixed
    model that asks for them would be fed zeros (frames) or the wrong offset (map)."""
    with pytest.raises(ModelError, match="needs normalization 'adaptive'"):
        ModelMetadata.from_props({f"deepdenoise.{k}": str(v) for k, v in context.items()})
    ModelMetadata(normalization="adaptive", **context)  # type: ignore[arg-type]


def test_normalisation_round_trip(tmp_path: Path) -> None:
    path = make_identity(tmp_path / "scaled.onnx", input_offset=100.0, input_scale=2.5)
    frame = frame_u16((45, 67))
    with Engine(path, provider="cpu", warmup_shape=None) as engine:
        assert (engine.metadata.input_offset, engine.metadata.input_scale) == (100.0, 2.5)
        np.testing.assert_allclose(engine.denoise(frame), frame, rtol=1e-6, atol=1e-3)


def test_normalisation_is_applied(tmp_path: Path) -> None:
    """A nonlinear model sees (raw - offset) / scale and its output is mapped back."""
    offset, scale = 1000.0, 250.0
    plain = make_conv_stack(tmp_path / "plain.onnx", seed=7, receptive_field=5)
    scaled = make_conv_stack(
        tmp_path / "scaled.onnx", seed=7, input_offset=offset, input_scale=scale
    )
    frame = frame_u16((50, 40)) // 32
    with (
        Engine(plain, provider="cpu", warmup_shape=None) as raw_units,
        Engine(scaled, provider="cpu", warmup_shape=None) as model_units,
    ):
        expected = raw_units.denoise((frame - offset) / scale) * scale + offset
        np.testing.assert_allclose(model_units.denoise(frame), expected, rtol=1e-5, atol=1e-2)


def test_smoothing_reference_written_with_its_card_loads(tmp_path: Path) -> None:
    from exporter.simple_models import write_default_model

    path = write_default_model(tmp_path)
    assert path.name == "gaussian-smooth.onnx"
    assert path.with_suffix(".md").is_file()
    with Engine(path, provider="cpu") as engine:
        assert engine.metadata.from_model
        assert engine.metadata.architecture == "gaussian-smooth"
        frame = frame_u16((64, 80))
        out = engine.denoise(frame)
        assert out.shape == frame.shape
        assert out.std() < frame.std()  # it smooths


# -- bad models ------------------------------------------------------------------------


def _value(name: str, elem: int = TensorProto.FLOAT, dims: list | None = None):  # type: ignore[no-untyped-def,type-arg]
    return helper.make_tensor_value_info(name, elem, dims or ["N", 1, "H", "W"])


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("two_inputs", "exactly one input and one output, got 2 inputs"),
        ("int_input", r"tensor\(int32\) \(expected tensor\(float\)"),
        ("rank3", r"rank 3 \(expected 4"),
        ("channels", r"3 channels \(expected 1\)"),
        ("fixed_hw", "fixed H/W"),
        ("garbage", "is not an ONNX model"),
        (
            "checkpoint",
            r"a torch checkpoint, not an ONNX model; export it first: .*-o .*t-exported\.onnx$",
        ),
    ],
)
def test_bad_models_raise_model_error(tmp_path: Path, kind: str, match: str) -> None:
    path = tmp_path / f"{kind}.onnx"
    if kind == "two_inputs":
        save_graph(
            path,
            [_value("a"), _value("b")],
            [_value("y")],
            [helper.make_node("Add", ["a", "b"], ["y"])],
        )
    elif kind == "int_input":
        dims = ["N", 1, "H", "W"]
        save_graph(
            path,
            [_value("x", TensorProto.INT32, dims)],
            [_value("y", TensorProto.INT32, dims)],
            [helper.make_node("Identity", ["x"], ["y"])],
        )
    elif kind == "rank3":
        dims = ["N", "H", "W"]
        save_graph(
            path,
            [_value("x", dims=dims)],
            [_value("y", dims=dims)],
            [helper.make_node("Identity", ["x"], ["y"])],
        )
    elif kind == "channels":
        dims = ["N", 3, "H", "W"]
        save_graph(
            path,
            [_value("x", dims=dims)],
            [_value("y", dims=dims)],
            [helper.make_node("Identity", ["x"], ["y"])],
        )
    elif kind == "fixed_hw":
        dims = ["N", 1, 256, 256]
        save_graph(
            path,
            [_value("x", dims=dims)],
            [_value("y", dims=dims)],
            [helper.make_node("Identity", ["x"], ["y"])],
        )
    elif kind == "checkpoint":  # train's best.pt is a zip; named .onnx by mistake
        path.write_bytes(b"PK\x03\x04 a torch checkpoint")
    else:
        path.write_bytes(b"this is not an onnx model")
    with pytest.raises(ModelError, match=match) as raised:
        Engine(path, provider="cpu", warmup_shape=None)
    assert "INVALID_PROTOBUF" not in str(raised.value)  # ORT's own words, not the user's


def test_a_model_whose_output_is_not_the_input_size_is_refused_at_warm_up(tmp_path: Path):
    path = tmp_path / "half.onnx"  # passes the signature checks, halves every frame
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    save_graph(path, [_value("x")], [_value("y")], [pool])
    with pytest.raises(ModelError) as raised:
        Engine(path, provider="cpu", warmup_shape=(64, 64))
    assert str(raised.value) == (  # the batch of tiles, run first, finds it
        "model half.onnx gave an output of shape [2, 1, 24, 40] for a batch of 2 tiles of "
        "48x80; expected [2, 1, 48, 80] (the model contract)"
    )


def _shape_of_x(nodes: list) -> str:  # type: ignore[type-arg]
    """Nodes appending ``hw``: the input's height and width (a 1-D int64 tensor)."""
    nodes.append(helper.make_node("Shape", ["x"], ["hw"], start=2, end=4))
    return "hw"


@pytest.mark.parametrize("kind", ["square_only", "batch_of_one"])
def test_a_model_that_cannot_run_a_batch_of_non_square_tiles_is_refused(
    tmp_path: Path, kind: str
) -> None:
    """It passes a square whole-frame warm-up but would fail on the first non-square
    frame or tiled batch; the engine runs a batch of two 48x80 tiles at load."""
    nodes: list = []  # type: ignore[type-arg]
    if kind == "square_only":  # x + 0 * x^T: broadcasts only when H == W
        nodes += [
            helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2]),
            helper.make_node("Constant", [], ["zero"], value_float=0.0),
            helper.make_node("Mul", ["xt", "zero"], ["gone"]),
            helper.make_node("Add", ["x", "gone"], ["y"]),
        ]
    else:  # reshaped to [1, 1, H, W] inside: one image per run
        hw = _shape_of_x(nodes)
        nodes += [
            helper.make_node("Constant", [], ["ones"], value_ints=[1, 1]),
            helper.make_node("Concat", ["ones", hw], ["to"], axis=0),
            helper.make_node("Reshape", ["x", "to"], ["y"]),
        ]
    path = save_graph(tmp_path / f"{kind}.onnx", [_value("x")], [_value("y")], nodes)
    with pytest.raises(ModelError, match="failed on a batch of 2 tiles of 48x80; expected dynamic"):
        Engine(path, provider="cpu", warmup_shape=(64, 64))
    with Engine(path, provider="cpu", warmup_shape=None) as unchecked:  # no warm-up asked
        assert unchecked.denoise(np.ones((32, 32), np.float32)).shape == (32, 32)


def test_warm_up_on_given_shapes_refuses_a_model_that_fails_on_one(tmp_path: Path) -> None:
    """A model that needs sides in multiples of 16 runs 64x64 and the 48x80 tiles but
    not a 24x40 frame: warm_up (what load_model calls with the streaming series'
    shapes) says so and closes the engine."""
    path = save_graph(tmp_path / "blocks16.onnx", [_value("x")], [_value("y")], [
        helper.make_node("SpaceToDepth", ["x"], ["d"], blocksize=16),
        helper.make_node("DepthToSpace", ["d"], ["y"], blocksize=16),
    ])  # fmt: skip
    helper_meta = ModelMetadata(receptive_field=1, architecture="blocks16").to_props()
    proto = onnx.load(path)
    helper.set_model_props(proto, helper_meta)
    onnx.save(proto, path)
    engine = Engine(path, provider="cpu", warmup_shape=(64, 64))
    engine.warm_up([(64, 64), (32, 48)])
    with pytest.raises(ModelError, match="failed its 24x40 warm-up run"):
        engine.warm_up([(64, 64), (24, 40)])
    with pytest.raises(DeepDenoiseError, match="is closed"):
        engine.denoise(np.ones((64, 64), np.float32))


def test_missing_file_or_a_directory_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist; expected"):
        Engine(tmp_path / "nope.onnx", provider="cpu")
    with pytest.raises(ModelError, match="no longer shipped: trained on the project's phantom"):
        Engine(tmp_path / "dncnn-lite.onnx", provider="cpu")  # a config from before
    with pytest.raises(ModelError, match="is a directory"):
        Engine(tmp_path, provider="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="is not an ONNX model"):
        Engine(tmp_path / "junk.onnx", provider="cpu")


def test_bad_tiling_raises_config_error(box_model: Path) -> None:
    with pytest.raises(ConfigError, match="overlap"):
        Engine(box_model, provider="cpu", tile=64, overlap=1, warmup_shape=None)


def test_closed_engine_refuses_frames(identity_model: Path) -> None:
    engine = Engine(identity_model, provider="cpu", warmup_shape=None)
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(DeepDenoiseError, match="closed"):
        engine.denoise(np.zeros((4, 4), dtype=np.uint16))


# -- providers ------------------------------------------------------------------------


def test_cpu_provider_active(identity_model: Path) -> None:
    with Engine(identity_model, provider="cpu", warmup_shape=None) as engine:
        assert engine.provider == "cpu"


def test_auto_picks_the_best_usable_provider(identity_model: Path) -> None:
    best = _providers.usable_providers()[0]
    with Engine(identity_model, warmup_shape=(16, 16)) as engine:
        assert engine.provider == best


def test_requesting_unusable_cuda_raises(identity_model: Path) -> None:
    if CUDA_PROBLEM is None:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(
        ProviderUnavailableError, match="'cuda' was requested but is not usable"
    ) as info:
        Engine(identity_model, provider="cuda")
    assert "usable: " in str(info.value)
    assert "cpu" in str(info.value)


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="got 'rocm'"):
        select_providers("rocm")


def test_selection_order(monkeypatch: pytest.MonkeyPatch) -> None:
    preloads: list[bool] = []
    monkeypatch.setattr(_providers, "_preload_cuda_libraries", lambda: preloads.append(True))
    monkeypatch.setattr(
        _providers, "probe_providers", lambda: {"tensorrt": None, "cuda": None, "cpu": None}
    )
    choice = select_providers("auto")
    assert choice.name == "tensorrt"
    assert choice.providers == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    )
    assert select_providers("cuda").providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert preloads == [True, True]
    assert select_providers("cpu").providers == ("CPUExecutionProvider",)
    assert len(preloads) == 2

    monkeypatch.setattr(
        _providers,
        "probe_providers",
        lambda: {"tensorrt": "no TensorRT", "cuda": None, "cpu": None},
    )
    assert select_providers("auto").providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    with pytest.raises(ProviderUnavailableError, match="no TensorRT; usable: cuda, cpu"):
        select_providers("tensorrt")


def test_probe_explains_every_unusable_provider() -> None:
    problems = probe_providers()
    assert set(problems) == {"tensorrt", "cuda", "cpu"}
    assert problems["cpu"] is None
    assert all(p is None or len(p) > 10 for p in problems.values())


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("model", ["identity_model", "conv_model"])
def test_cuda_matches_cpu(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    frame = frame_f32((300, 257))
    with (
        Engine(path, provider="cuda", warmup_shape=None) as gpu,
        Engine(path, provider="cpu", warmup_shape=None) as cpu,
    ):
        assert gpu.provider == "cuda"
        # Loose: cuDNN may use TF32 for convolutions.
        np.testing.assert_allclose(gpu.denoise(frame), cpu.denoise(frame), rtol=1e-2, atol=1.0)


@pytest.mark.gpu
@needs_cuda
def test_cuda_tiled_equals_whole(conv_model: Path) -> None:
    frame = frame_f32((97, 131))
    with (
        Engine(conv_model, provider="cuda", warmup_shape=None) as whole,
        Engine(conv_model, provider="cuda", warmup_shape=None, tile=24, overlap=12) as tiled,
    ):
        np.testing.assert_allclose(tiled.denoise(frame), whole.denoise(frame), rtol=1e-3, atol=1e-1)


@pytest.mark.gpu
@needs_cuda
def test_cuda_device_buffers_match_host_buffers(conv_model: Path) -> None:
    from stream.engine import GpuConfig

    frame = frame_f32((256, 256))
    with (
        Engine(conv_model, provider="cuda", warmup_shape=None) as device,
        Engine(conv_model, provider="cuda", warmup_shape=None,
               gpu=GpuConfig(device_buffers=False, pinned=False)) as host,
    ):  # fmt: skip
        np.testing.assert_allclose(device.denoise(frame), host.denoise(frame), rtol=1e-5, atol=1e-3)
        assert type(device._buffers[(256, 256)]).__name__ == "_DeviceBuffers"


needs_tensorrt = pytest.mark.skipif(
    probe_providers()["tensorrt"] is not None,
    reason=f"no usable TensorRT: {probe_providers()['tensorrt']}",
)


@pytest.mark.gpu
@needs_tensorrt
def test_tensorrt_engine_is_cached_and_reused(conv_model: Path, tmp_path: Path) -> None:
    import time

    from stream.engine import GpuConfig

    gpu = GpuConfig(cache_dir=tmp_path, frame_shapes=[(256, 256)])
    t0 = time.perf_counter()
    with Engine(conv_model, provider="tensorrt", warmup_shape=(512, 512), gpu=gpu) as first:
        assert first.provider == "tensorrt"
        built = time.perf_counter() - t0
        reference = first.denoise(frame_f32((256, 256)))
    assert any(p.suffix == ".engine" for p in tmp_path.rglob("*")), list(tmp_path.rglob("*"))
    t0 = time.perf_counter()
    with Engine(conv_model, provider="tensorrt", warmup_shape=(512, 512), gpu=gpu) as second:
        loaded = time.perf_counter() - t0
        np.testing.assert_allclose(second.denoise(frame_f32((256, 256))), reference, atol=1e-3)
    print(f"TensorRT engine: built {built:.1f} s, loaded from cache {loaded:.1f} s")
