"""The streaming service: receive, infer, publish and store, one thread per stage.

:class:`Service` wires the stages together and owns their lifecycle; a service is
configured by one :class:`ServiceConfig` (TOML file plus overrides, ``load_config``).
"""

from ._config import (
    InputMode,
    OutputDtype,
    OverflowPolicy,
    Provider,
    QueueConfig,
    ServiceConfig,
    is_loopback,
    load_config,
)
from ._security import SecurityConfig, load_key_file
from ._service import Service

__all__ = [
    "InputMode",
    "OutputDtype",
    "OverflowPolicy",
    "Provider",
    "QueueConfig",
    "SecurityConfig",
    "Service",
    "ServiceConfig",
    "is_loopback",
    "load_config",
    "load_key_file",
]
