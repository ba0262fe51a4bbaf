"""The ``deepdenoise`` command line: online commands and the plug-in group for others.

``app`` is the typer application (``main`` runs it). Plug-ins register commands through
the ``deepdenoise.commands`` entry-point group and may use the helpers here, so every
command prints, parses and fails the same way.
"""

from typing import TYPE_CHECKING, Any

# Only the helpers are imported here. The app is built on first use (``__getattr__``),
# after this package has finished importing: its plug-ins import these helpers, so a
# plug-in imported first (``import exporter.cli``) would otherwise find itself
# half-initialised when the app loads it.
from ._common import (
    blend_choice,
    blend_in_part,
    console,
    counts,
    err_console,
    fail,
    frames_by_passes,
    kv_table,
    parse_shape,
    print_json,
)
from ._request import request

if TYPE_CHECKING:
    from ._app import PLUGIN_GROUP, app, main


def __getattr__(name: str) -> Any:
    if name in ("PLUGIN_GROUP", "app", "main"):
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PLUGIN_GROUP",
    "app",
    "blend_choice",
    "blend_in_part",
    "console",
    "counts",
    "err_console",
    "fail",
    "frames_by_passes",
    "kv_table",
    "main",
    "parse_shape",
    "print_json",
    "request",
]
