"""The ``deepdenoise`` command: the root app, its online commands and its plug-ins.

Commands import what they need inside their bodies so ``deepdenoise --help`` stays
instant. Other packages add commands through the entry-point group
``deepdenoise.commands`` (a callable that receives the app): the offline half
registers train, export, calibrate, evaluate and demo that way, so this package never
names it.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal

import typer

from .._version import __version__
from . import _denoise, _info, _keys, _remote, _serve, _simulate
from ._common import console

log = logging.getLogger(__name__)

#: Entry-point group of command plug-ins: each names a ``register(app)`` callable.
PLUGIN_GROUP = "deepdenoise.commands"


def _flags_show_no_type() -> None:
    """Recent typer releases print ``<bool>`` beside every flag (``--no-zarr <bool>``),
    which reads as if the flag took a value; show no type for flags, as click does."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_flags_untyped", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._flags_untyped = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()

app = typer.Typer(
    name="deepdenoise",
    help="Streaming real-time denoiser for live microscopy (ZeroMQ in, ONNX Runtime, "
    "ZeroMQ + Zarr out).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"deepdenoise {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        typer.Option("--log-level", help="Logging verbosity (to stderr)."),
    ] = "info",
) -> None:
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for module in (_serve, _denoise, _simulate, _remote, _info, _keys):
    module.register(app)


def _load_plugins() -> None:
    """Let installed packages add their commands; a broken plug-in costs only itself."""
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()(app)
        except Exception as exc:  # a plug-in's import or registration failed
            log.warning("command plug-in %s (%s) not loaded: %s", entry.name, entry.value, exc)


_load_plugins()


def main() -> None:
    app()
