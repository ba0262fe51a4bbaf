"""deepdenoise online half: ZeroMQ frames in, ONNX Runtime denoising, ZeroMQ + Zarr out.

This package never imports torch (nor matplotlib): it installs small and starts fast
on an acquisition PC. Heavy submodules load on first use of the name that needs them.
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
    ServiceTimeoutError,
    StoreError,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._config import ServiceConfig, load_config
    from ._engine import Engine, default_model_path
    from ._model_meta import ModelMetadata
    from ._phantom import CalciumPhantom, PhantomConfig
    from ._service import Service
    from ._simulator import Simulator, SimulatorConfig
    from ._store import SeriesStore, summarize_store
    from ._tiling import TilePlan, plan_tiles

_LAZY = {
    "ServiceConfig": "_config",
    "load_config": "_config",
    "Engine": "_engine",
    "default_model_path": "_engine",
    "ModelMetadata": "_model_meta",
    "CalciumPhantom": "_phantom",
    "PhantomConfig": "_phantom",
    "Service": "_service",
    "Simulator": "_simulator",
    "SimulatorConfig": "_simulator",
    "SeriesStore": "_store",
    "summarize_store": "_store",
    "TilePlan": "_tiling",
    "plan_tiles": "_tiling",
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
    "SeriesStore",
    "Service",
    "ServiceConfig",
    "ServiceTimeoutError",
    "Simulator",
    "SimulatorConfig",
    "StoreError",
    "TilePlan",
    "__version__",
    "default_model_path",
    "load_config",
    "plan_tiles",
    "summarize_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stream' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
