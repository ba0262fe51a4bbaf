"""The offline commands, plugged into ``deepdenoise`` through ``deepdenoise.commands``.

``register`` is the entry point: it adds ``demo`` always (it needs only the demo extra)
and ``train``, ``export``, ``calibrate``, ``evaluate``, ``train-traces``, ``adapt``,
``compose`` and ``pass-through`` when torch is installed; without it, ``deepdenoise
--help`` says how to get them.
Nothing heavy is imported here: each command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib.util

import typer
from rich.markup import escape

from . import _adapt, _demo, _evaluate, _ship, _traces, _train
from ._hints import EXTRA_HINT

#: The commands that need the train extra (torch).
OFFLINE_COMMANDS = (
    "train",
    "export",
    "calibrate",
    "evaluate",
    "train-traces",
    "adapt",
    "compose",
    "pass-through",
)


def register(app: typer.Typer) -> None:
    """Add the offline commands to ``app`` (the ``deepdenoise`` root)."""
    _demo.register(app)
    if importlib.util.find_spec("torch") is None:
        install = escape(EXTRA_HINT.split(": ", 1)[1])  # the help is rich markup
        app.info.epilog = (
            f"More commands ({', '.join(OFFLINE_COMMANDS)}) come with the train extra: {install}"
        )
        return
    _train.register(app)
    _evaluate.register(app)
    _ship.register(app)
    _traces.register(app)
    _adapt.register(app)
