"""deepdenoise online half: ZeroMQ frames in, ONNX Runtime denoising, ZeroMQ + Zarr out.

The rooms (each a sub-package with a small public face; see README "The house"):

- ``protocol``: wire format v1, limits, reject codes;
- ``engine``: ONNX Runtime engine, providers, tiling, model metadata, shipped models;
- ``camera``: the camera's noise model and its live estimate from the stream;
- ``store``: one Zarr store per series;
- ``service``: the stages, their queues and the lifecycle;
- ``sim``: phantom, camera noise and the simulated microscope;
- ``traces``: ROI traces, causal ΔF/F, trigger rules, the 1-D trace denoiser;
- ``cli``: the ``deepdenoise`` command.

This package never imports torch, matplotlib or the offline ``exporter``: it installs
small and starts fast on an acquisition PC. Heavy names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    ConfigError,
    DeepDenoiseError,
    ModelError,
    ProtocolError,
    ProviderUnavailableError,
    RoiError,
    ServiceTimeoutError,
    StoreError,
    StoreHeldError,
    StoreUnlockableError,
    StoreWriteError,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._settings import describe_validation_error, load_settings, merge, read_settings_file
    from .engine import Engine, ModelMetadata, TilePlan, default_model_path, plan_tiles
    from .service import Service, ServiceConfig, load_config
    from .sim import CalciumPhantom, PhantomConfig, Simulator, SimulatorConfig
    from .store import SeriesStore, summarize_store

_LAZY = {
    "describe_validation_error": "._settings",
    "load_settings": "._settings",
    "merge": "._settings",
    "read_settings_file": "._settings",
    "Engine": ".engine",
    "ModelMetadata": ".engine",
    "TilePlan": ".engine",
    "default_model_path": ".engine",
    "plan_tiles": ".engine",
    "Service": ".service",
    "ServiceConfig": ".service",
    "load_config": ".service",
    "CalciumPhantom": ".sim",
    "PhantomConfig": ".sim",
    "Simulator": ".sim",
    "SimulatorConfig": ".sim",
    "SeriesStore": ".store",
    "summarize_store": ".store",
}

__all__ = [
    "CalciumPhantom",
    "ConfigError",
    "DeepDenoiseError",
    "Engine",
    "ModelError",
    "ModelMetadata",
    "PhantomConfig",
    "ProtocolError",
    "ProviderUnavailableError",
    "RoiError",
    "SeriesStore",
    "Service",
    "ServiceConfig",
    "ServiceTimeoutError",
    "Simulator",
    "SimulatorConfig",
    "StoreError",
    "StoreHeldError",
    "StoreUnlockableError",
    "StoreWriteError",
    "TilePlan",
    "__version__",
    "default_model_path",
    "describe_validation_error",
    "load_config",
    "load_settings",
    "merge",
    "plan_tiles",
    "read_settings_file",
    "summarize_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
