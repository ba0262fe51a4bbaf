"""GPU execution providers configured for a live stream.

Without options ONNX Runtime's TensorRT provider builds an engine when a session
starts and again for every new input shape (tens of seconds each, while frames queue),
caches nothing and runs fp32; its CUDA provider searches convolution algorithms
heuristically. This module turns a :class:`GpuConfig` and the tile plans the service
will run into provider options:

- TensorRT: the engine and timing caches in a per-user folder keyed by model, device
  and TensorRT version (a second start loads the engine in seconds); fp16 when the
  model card allows it (``deepdenoise.fp16 = ok``) or the config forces it; one
  optimisation profile covering every tile batch the planned frame shapes need
  (built at warm-up, never on a frame);
- CUDA: exhaustive cuDNN algorithm search (once, at warm-up), the default stream for
  copies, CUDA graphs when asked for (fixed shapes only).

Everything here is pure: it builds dictionaries and paths, and is tested on CPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._types import FrameShape


class GpuConfig(BaseModel):
    """The ``[gpu]`` table: how the CUDA and TensorRT providers run."""

    model_config = ConfigDict(extra="forbid")

    device_id: int = Field(0, ge=0, le=64, description="CUDA device")
    fp16: Literal["auto", "on", "off"] = Field(
        "auto", description="TensorRT fp16: auto follows the model card (deepdenoise.fp16)"
    )
    frame_shapes: list[FrameShape] = Field(
        default_factory=list,
        description="frame shapes to build TensorRT profiles for, besides warmup_shape",
    )
    cache_dir: Path | None = Field(
        None, description="TensorRT engine/timing caches; None: the per-user cache folder"
    )
    trt_workspace_mb: int = Field(2048, ge=64, le=1 << 20)
    cudnn_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "EXHAUSTIVE"
    cuda_graph: bool = Field(
        False, description="replay the model as a CUDA graph (CUDA provider, one frame shape)"
    )
    device_buffers: bool = Field(
        True, description="bind model input and output to GPU buffers (OrtValues)"
    )
    pinned: bool = Field(True, description="page-lock the host staging buffers (faster copies)")


def user_cache_dir() -> Path:
    """The per-user cache folder (XDG on Linux, LOCALAPPDATA on Windows, ~/Library/Caches)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "deepdenoise" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "deepdenoise"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deepdenoise"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "unknown"


@cache
def cuda_device_name(device_id: int = 0) -> str:
    """The CUDA device's name from the driver (``unknown`` when there is none)."""
    for name in ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if lib.cuInit(0) != 0:
                return "unknown"
            device = ctypes.c_int()
            if lib.cuDeviceGet(ctypes.byref(device), device_id) != 0:
                return "unknown"
            buffer = ctypes.create_string_buffer(256)
            if lib.cuDeviceGetName(buffer, 256, device) != 0:
                return "unknown"
            return buffer.value.decode(errors="replace")
        except (AttributeError, OSError):
            return "unknown"
    return "unknown"


@cache
def tensorrt_version() -> str:
    """The TensorRT runtime's version (``unknown`` when it cannot be read)."""
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            return str(tensorrt.__version__)
        except Exception:  # a broken install: fall through to the library
            pass
    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so", "nvinfer_10.dll"):
        try:
            lib = ctypes.CDLL(name)
            number = int(lib.getInferLibVersion())  # e.g. 100300 for 10.3.0
        except (OSError, AttributeError):
            continue
        major, rest = divmod(number, 10000) if number >= 10000 else divmod(number, 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    return "unknown"


@dataclass(frozen=True)
class TrtProfile:
    """One TensorRT optimisation profile: the box of batch shapes ``[N, C, H, W]``."""

    input_name: str
    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def option(self, which: str) -> str:
        dims = {"min": self.min, "opt": self.opt, "max": self.max}[which]
        return f"{self.input_name}:{'x'.join(str(d) for d in dims)}"

    def covers(self, shape: Iterable[int]) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))


def trt_profile(
    input_name: str, batch_shapes: list[tuple[int, int, int, int]], opt_index: int = 0
) -> TrtProfile:
    """The one profile covering every planned batch shape; optimised for ``opt_index``."""
    if not batch_shapes:
        raise ValueError("expected at least one planned batch shape")
    lows = tuple(min(s[i] for s in batch_shapes) for i in range(4))
    highs = tuple(max(s[i] for s in batch_shapes) for i in range(4))
    return TrtProfile(input_name, lows, batch_shapes[opt_index], highs)  # type: ignore[arg-type]


def trt_cache_key(model_id: str, device: str, trt: str, fp16: bool) -> str:
    """Folder name of a model's engine cache: a different GPU, TensorRT or precision
    never loads an engine built for another."""
    digest = hashlib.sha256(f"{model_id}|{device}|{trt}|{fp16}".encode()).hexdigest()[:8]
    return f"{model_id}-{_slug(device)}-trt{_slug(trt)}-{'fp16' if fp16 else 'fp32'}-{digest}"


def use_fp16(config: GpuConfig, model_allows: bool) -> bool:
    return config.fp16 == "on" or (config.fp16 == "auto" and model_allows)


def tensorrt_options(
    config: GpuConfig, model_id: str, profile: TrtProfile, model_allows_fp16: bool
) -> dict[str, Any]:
    """TensorRT provider options; the cache folder is created by ONNX Runtime."""
    fp16 = use_fp16(config, model_allows_fp16)
    root = config.cache_dir or user_cache_dir() / "tensorrt"
    folder = root / trt_cache_key(
        model_id, cuda_device_name(config.device_id), tensorrt_version(), fp16
    )
    return {
        "device_id": config.device_id,
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(root),
        "trt_max_workspace_size": config.trt_workspace_mb * 2**20,
        "trt_profile_min_shapes": profile.option("min"),
        "trt_profile_opt_shapes": profile.option("opt"),
        "trt_profile_max_shapes": profile.option("max"),
    }


def cuda_options(config: GpuConfig) -> dict[str, Any]:
    return {
        "device_id": config.device_id,
        "cudnn_conv_algo_search": config.cudnn_search,
        "cudnn_conv_use_max_workspace": "1",
        "do_copy_in_default_stream": True,
        "enable_cuda_graph": "1" if config.cuda_graph else "0",
        "arena_extend_strategy": "kSameAsRequested",
    }
