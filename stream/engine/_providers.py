"""Choosing an ONNX Runtime execution provider that will actually work here.

``onnxruntime-gpu`` lists ``TensorrtExecutionProvider`` and ``CUDAExecutionProvider``
in ``get_available_providers()`` even on a machine with no GPU, and a session created
with them there logs errors before falling back to the CPU. So availability is checked
first, without torch: a CUDA device is usable when the driver library loads, ``cuInit``
succeeds and it reports at least one device; TensorRT additionally needs ``libnvinfer``.
A CPU-only acquisition PC therefore starts quietly on the CPU.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .._errors import ConfigError, ProviderUnavailableError

log = logging.getLogger(__name__)

#: Short name -> ONNX Runtime provider name.
ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: Order tried by ``auto``.
AUTO_ORDER = ("tensorrt", "cuda", "cpu")

_CUDA_LIBS = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
_NVINFER_LIBS = (
    ("nvinfer_10.dll", "nvinfer.dll")
    if sys.platform == "win32"
    else ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so")
)


@dataclass(frozen=True)
class ProviderChoice:
    """The provider list to give ONNX Runtime and the short name of the first one."""

    name: str
    providers: tuple[str, ...]


def short_name(ort_name: str) -> str:
    """``CUDAExecutionProvider`` -> ``cuda`` (unknown providers: lower-cased stem)."""
    for short, full in ORT_NAMES.items():
        if full == ort_name:
            return short
    return ort_name.removesuffix("ExecutionProvider").lower()


def _cuda_device_problem() -> str | None:
    """None when a CUDA device is usable, else why not."""
    lib = None
    for name in _CUDA_LIBS:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return f"no NVIDIA driver library ({' / '.join(_CUDA_LIBS)} not loadable)"
    try:
        rc = lib.cuInit(0)
        if rc != 0:
            return f"cuInit failed (CUresult {rc}; 100 means no CUDA device)"
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
    except (AttributeError, OSError) as exc:  # a broken or foreign libcuda
        return f"NVIDIA driver library unusable: {exc}"
    if rc != 0 or count.value < 1:
        return f"no CUDA device (cuDeviceGetCount -> {count.value}, CUresult {rc})"
    return None


def _tensorrt_problem() -> str | None:
    """None when libnvinfer loads (from the loader path or the tensorrt_libs wheel)."""
    candidates: list[str] = list(_NVINFER_LIBS)
    spec = importlib.util.find_spec("tensorrt_libs")  # pip install tensorrt puts libs here
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidates += [
                str(p) for p in sorted(Path(folder).glob("*nvinfer*")) if "plugin" not in p.name
            ]
    for name in candidates:
        try:
            ctypes.CDLL(name, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            return None
        except OSError:
            continue
    return f"TensorRT runtime not found ({' / '.join(_NVINFER_LIBS)} not loadable)"


@cache
def probe_providers() -> dict[str, str | None]:
    """Short provider name -> None if usable here, else the reason it is not.

    Cached for the process: the answer does not change while it runs.
    """
    import onnxruntime as ort

    listed = set(ort.get_available_providers())
    result: dict[str, str | None] = {}
    for short in AUTO_ORDER:
        if ORT_NAMES[short] not in listed:
            result[short] = f"this onnxruntime build has no {ORT_NAMES[short]}"
    if "cpu" not in result:
        result["cpu"] = None
    if "cuda" not in result or "tensorrt" not in result:
        device = _cuda_device_problem()
        for short in ("cuda", "tensorrt"):
            result.setdefault(short, device)
    if result["tensorrt"] is None:
        result["tensorrt"] = _tensorrt_problem()
    return {short: result[short] for short in AUTO_ORDER}


def usable_providers() -> list[str]:
    """Short names of the providers usable here, in ``auto`` preference order."""
    return [name for name, problem in probe_providers().items() if problem is None]


def _preload_cuda_libraries() -> None:
    """Let onnxruntime find CUDA/cuDNN from the nvidia-* wheels (1.21+); best effort."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # never fatal: the libraries may be on the loader path
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def select_providers(requested: str = "auto") -> ProviderChoice:
    """Provider list for ``requested`` (``auto``, ``tensorrt``, ``cuda`` or ``cpu``).

    ``auto`` takes the first usable of TensorRT, CUDA, CPU. The list always ends with
    the CPU provider so ONNX Runtime can place operators a GPU provider lacks.

    Raises
    ------
    ProviderUnavailableError
        An explicitly requested provider is not usable here.
    ConfigError
        ``requested`` is not a known provider name.
    """
    problems = probe_providers()
    if requested == "auto":
        name = next(n for n in AUTO_ORDER if problems[n] is None)
    elif requested in ORT_NAMES:
        problem = problems[requested]
        if problem is not None:
            raise ProviderUnavailableError(
                f"provider {requested!r} was requested but is not usable here: {problem}; "
                f"usable: {', '.join(usable_providers())}"
            )
        name = requested
    else:
        raise ConfigError(
            f"provider must be one of auto, {', '.join(ORT_NAMES)}; got {requested!r}"
        )
    chain = AUTO_ORDER[AUTO_ORDER.index(name) :]
    providers = tuple(ORT_NAMES[n] for n in chain if problems[n] is None)
    if name in ("tensorrt", "cuda"):
        _preload_cuda_libraries()
    return ProviderChoice(name=name, providers=providers)
