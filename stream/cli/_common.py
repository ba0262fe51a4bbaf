"""What every command shares: consoles, one-line failures, option parsing, tables.

Also used by the commands that other packages plug in (``deepdenoise.commands``), so
every command looks and fails the same way.
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .._types import check_given_path

console = Console()
err_console = Console(stderr=True)

#: Options ``serve`` and ``denoise`` share.
ModelOption = Annotated[  # a str, as the path options the config checks: typer would
    str | None,  # make "" Path("."), the working folder, unsaid
    typer.Option(
        metavar="PATH",
        help="ONNX model, or a shipped model by name (na-lite, na-temporal, na-large).",
        show_default="the shipped default for the active provider",
    ),
]
FollowOption = Annotated[
    Literal["balanced", "events"] | None,
    typer.Option(
        help="A temporal model (na-temporal) near fast events: balanced (the best PSNR) or "
        "events (their height and onset kept closer at low light, at a cost in PSNR: "
        "README, Models).",
        show_default="balanced",
    ),
]
ProviderOption = Annotated[
    Literal["auto", "cpu", "cuda", "tensorrt"] | None,
    typer.Option(
        help="ONNX Runtime provider; auto: TensorRT, CUDA, then CPU.", show_default="auto"
    ),
]


def fail(exc: BaseException | str) -> typer.Exit:
    """Print ``error: <message>`` on stderr; raise the result to exit with status 2."""
    # soft_wrap: one line even when stderr is a pipe (rich would wrap at 80 columns)
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def given_path(value: str, name: str) -> str:
    """``value``, or exit 2 if it is empty (a script's unset variable): as a Path it
    would be the working folder."""
    try:
        check_given_path(value)  # the config's rule, told as a usage error
    except ValueError as exc:
        raise fail(f"invalid {name}: {exc}") from None
    return value


def print_json(value: Any) -> None:
    """``value`` as strict JSON on stdout: a non-finite number (an estimate's infinite
    uncertainty, say) becomes null, since JSON has no Infinity or NaN."""
    console.print_json(json.dumps(_finite_or_none(value), allow_nan=False, default=str))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def parse_shape(text: str, minimum: int = 1) -> tuple[int, int]:
    """``"512x256"`` -> ``(512, 256)``; a typer.BadParameter saying what was expected."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH such as 512x512, got {text!r}") from None
    if min(height, width) < minimum:
        raise typer.BadParameter(f"expected a shape of at least {minimum}x{minimum}, got {text!r}")
    return height, width


def counted(n: int | None, noun: str) -> str:
    """``counted(1, "frame")`` -> "1 frame", ``counted(3, "frame")`` -> "3 frames"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def kv_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column field/value table whose values wrap instead of being cut."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in rows:
        # values are data (paths, errors, "[traces]"), never rich markup
        table.add_row(name, Text(value if isinstance(value, str) else str(value)))
    return table


def counts(mapping: dict[str, int] | None) -> str:
    """``{"a": 1, "b": 2}`` -> ``"a: 1, b: 2"`` (``none`` when empty)."""
    return ", ".join(f"{k}: {v}" for k, v in (mapping or {}).items()) or "none"


def blend_choice(blend: dict[str, Any]) -> str:
    """A series' blend (``status`` per series, ``blend``) in words: ``noise map x 0.8 +
    blur 1.0 px + 0.2 x 2.0 px Gaussian of the input``; ``the output as it is``;
    ``0.5 x the input itself``."""
    parts = []
    if blend.get("noise_map_scale", 1.0) != 1.0:
        parts.append(f"noise map x {blend['noise_map_scale']}")
    if blend.get("post_sigma"):
        parts.append(f"blur {blend['post_sigma']} px")
    if blend.get("fuse_weight") and blend.get("fuse_source") == "binned":
        parts.append(f"{blend['fuse_weight']} x the model on the frame binned 2 x 2")
    elif blend.get("fuse_weight") and blend.get("fuse_source") == "input":
        parts.append(f"{blend['fuse_weight']} x the input itself")
    elif blend.get("fuse_weight"):
        source = "running mean" if blend.get("fuse_source") == "mean" else "input"
        parts.append(f"{blend['fuse_weight']} x {blend['fuse_sigma']} px Gaussian of the {source}")
    return " + ".join(parts) or "the output as it is"


def blend_in_part(blend: dict[str, Any]) -> bool:
    """Whether a series' blend rests on its first measurement in part (a live series'
    first, taken in spare time: ``measured`` 0 with a choice made)."""
    return not blend.get("measured") and blend_choice(blend) != "the output as it is"


def frames_by_passes(ensemble: dict[str, Any]) -> str:
    """``status.ensemble``'s frames by self-ensemble passes: ``1: 6, 4: 3`` (``none yet``)."""
    by_passes = ensemble.get("frames_by_passes") or {}
    return ", ".join(f"{n}: {count}" for n, count in by_passes.items() if count) or "none yet"


@contextmanager
def handling_signals(
    handler: Callable[[int, Any], None], *signums: signal.Signals
) -> Iterator[None]:
    """``handler`` for ``signums`` while the block runs, the previous handlers after."""
    previous = {sig: signal.getsignal(sig) for sig in signums}
    for sig in signums:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
