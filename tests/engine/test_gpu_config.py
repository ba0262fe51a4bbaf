"""GPU provider configuration, checked without a GPU: options built from the config,
TensorRT cache keys and the profile the tile plans need, and the provider fallback
when a GPU provider does not start."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream import ProviderUnavailableError
from stream.engine import (
    Engine,
    GpuConfig,
    _providers,
    cuda_options,
    tensorrt_options,
    trt_cache_key,
    trt_profile,
    user_cache_dir,
)


def test_cuda_options_follow_the_config() -> None:
    options = cuda_options(GpuConfig(device_id=1, cudnn_search="HEURISTIC", cuda_graph=True))
    assert options["device_id"] == 1
    assert options["cudnn_conv_algo_search"] == "HEURISTIC"
    assert options["enable_cuda_graph"] == "1"
    assert cuda_options(GpuConfig())["cudnn_conv_algo_search"] == "EXHAUSTIVE"


def test_cache_keys_separate_models_devices_versions_and_precision() -> None:
    base = trt_cache_key("abc123", "NVIDIA H200", "10.3.0", False)
    assert base.startswith("abc123-nvidia-h200-trt10-3-0-fp32-")
    others = {
        trt_cache_key("abc124", "NVIDIA H200", "10.3.0", False),
        trt_cache_key("abc123", "NVIDIA A100", "10.3.0", False),
        trt_cache_key("abc123", "NVIDIA H200", "10.4.0", False),
        trt_cache_key("abc123", "NVIDIA H200", "10.3.0", True),
    }
    assert base not in others and len(others) == 4


def test_user_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "deepdenoise"


def test_profile_covers_every_planned_batch() -> None:
    shapes = [(4, 1, 544, 544), (1, 1, 300, 300), (9, 1, 544, 544)]
    profile = trt_profile("x", shapes)
    assert profile.min == (1, 1, 300, 300) and profile.max == (9, 1, 544, 544)
    assert profile.opt == shapes[0]
    assert all(profile.covers(s) for s in shapes)
    assert profile.option("max") == "x:9x1x544x544"


def test_tensorrt_options_from_the_engine_s_tile_plans(conv_model: Path, tmp_path: Path) -> None:
    gpu = GpuConfig(frame_shapes=[(2048, 2048), (256, 256)], cache_dir=tmp_path, fp16="auto")
    with Engine(conv_model, provider="cpu", warmup_shape=(512, 512), gpu=gpu) as engine:
        options = engine.provider_options("tensorrt")
        batches = [engine.plan_for(s).batch_shape(1) for s in engine.planned_shapes()]
    assert engine.planned_shapes() == [(512, 512), (2048, 2048), (256, 256)]
    name = options["trt_profile_opt_shapes"].split(":")[0]  # the model's input name
    profile = trt_profile(name, batches)
    for which in ("min", "opt", "max"):
        assert options[f"trt_profile_{which}_shapes"] == profile.option(which)
    assert options["trt_profile_opt_shapes"].endswith("x".join(map(str, batches[0])))
    assert options["trt_engine_cache_enable"] is True
    cache = Path(options["trt_engine_cache_path"])
    assert cache.parent == tmp_path and cache.name.startswith(engine.model_id)
    assert options["trt_timing_cache_path"] == str(tmp_path)
    assert options["trt_fp16_enable"] is False  # the model card does not allow fp16


def test_fp16_is_forced_or_refused_by_the_config(conv_model: Path) -> None:
    with Engine(conv_model, provider="cpu", warmup_shape=None, gpu=GpuConfig(fp16="on")) as engine:
        assert engine.provider_options("tensorrt")["trt_fp16_enable"] is True
    profile = trt_profile("x", [(1, 1, 64, 64)])
    assert tensorrt_options(GpuConfig(fp16="off"), "m", profile, True)["trt_fp16_enable"] is False
    assert tensorrt_options(GpuConfig(fp16="auto"), "m", profile, True)["trt_fp16_enable"] is True


@pytest.fixture
def cuda_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the driver reports a CUDA device: this onnxruntime build still has no CUDA
    provider, so a CUDA session cannot start, as on a machine whose GPU is broken."""
    claimed = {"tensorrt": "no TensorRT here", "cuda": None, "cpu": None}
    monkeypatch.setattr(_providers, "probe_providers", lambda: claimed)
    monkeypatch.setattr(_providers, "_preload_cuda_libraries", lambda: None)


def test_a_gpu_provider_that_does_not_start_falls_back_to_the_next(
    conv_model: Path, cuda_claimed: None
) -> None:
    with Engine(conv_model, provider="auto", warmup_shape=(64, 64)) as engine:
        assert engine.provider == "cpu"
        assert engine.fallback is not None
        assert engine.fallback["from"] == "cuda" and engine.fallback["to"] == "cpu"
        assert engine.fallback["when"] == "load"


def test_an_explicit_gpu_provider_that_does_not_start_is_an_error(
    conv_model: Path, cuda_claimed: None
) -> None:
    with pytest.raises(ProviderUnavailableError, match="'cuda' was requested but could not start"):
        Engine(conv_model, provider="cuda", warmup_shape=None)


def test_the_cpu_has_no_provider_after_it(conv_model: Path) -> None:
    with Engine(conv_model, provider="cpu", warmup_shape=None) as engine:
        assert engine.next_provider() is None
        assert engine.fallback is None
