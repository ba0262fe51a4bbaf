"""What every command shares: consoles, one-line failures, option parsing, tables.

Also used by the commands that other packages plug in (``deepdenoise.commands``), so
every command looks and fails the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def fail(exc: BaseException | str) -> typer.Exit:
    """Print ``error: <message>`` on stderr; raise the result to exit with status 2."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(2)


def parse_shape(text: str, minimum: int = 1) -> tuple[int, int]:
    """``"512x256"`` -> ``(512, 256)``; a typer.BadParameter saying what was expected."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH such as 512x512, got {text!r}") from None
    if min(height, width) < minimum:
        raise typer.BadParameter(f"expected a shape of at least {minimum}x{minimum}, got {text!r}")
    return height, width


def kv_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column field/value table whose values wrap instead of being cut."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, value if isinstance(value, str) else str(value))
    return table


def counts(mapping: dict[str, int] | None) -> str:
    """``{"a": 1, "b": 2}`` -> ``"a: 1, b: 2"`` (``none`` when empty)."""
    return ", ".join(f"{k}: {v}" for k, v in (mapping or {}).items()) or "none"
