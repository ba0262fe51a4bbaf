"""The ``deepdenoise`` command line: online commands and the plug-in group for others.

``app`` is the typer application (``main`` runs it). Plug-ins register commands through
the ``deepdenoise.commands`` entry-point group and may use the helpers here, so every
command prints, parses and fails the same way.
"""

# The helpers first: plug-ins loaded by ``_app`` import them from this package.
from ._common import (
    blend_choice,
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

from ._app import PLUGIN_GROUP, app, main  # isort: skip

__all__ = [
    "PLUGIN_GROUP",
    "app",
    "blend_choice",
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
