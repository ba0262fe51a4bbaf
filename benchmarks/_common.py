"""What every suite shares: machine facts, percentiles, timing, tables, result files, figures.

A result is only worth keeping with the machine it ran on, so every JSON file carries
:func:`machine_info` (CPU model, cores, GPU, usable ONNX Runtime providers, library
versions) beside the settings and the raw percentiles, and every suite writes into
``<out>/<machine tag>/``: results from different machines never overwrite each other.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Percentiles reported everywhere, with ``max``; ``p99.9`` needs >= 1000 samples to
#: mean anything, and below that it sits between p99 and max (linear interpolation).
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
PERCENTILE_KEYS = ("p50", "p90", "p99", "p99.9", "max")
#: Libraries whose versions go into every result file.
VERSIONED = (
    "numpy",
    "onnxruntime-gpu",
    "onnxruntime",
    "pyzmq",
    "zarr",
    "numcodecs",
    "torch",
    "onnx",
    "tensorstore",
    "acquire-zarr",
    "deepdenoise",
)
Level = Literal["tiny", "quick", "full"]


def percentiles(samples: Iterable[float] | np.ndarray) -> dict[str, float]:
    """``{"n", "p50", "p90", "p99", "p99.9", "max", "mean"}`` of the samples (NaNs ignored).

    Linear interpolation between order statistics (numpy's default), so the values of
    a known sample are predictable; an empty sample gives ``{"n": 0}``.
    """
    values = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples)
    values = values[~np.isnan(values)].astype(np.float64)
    if values.size == 0:
        return {"n": 0}
    qs = np.percentile(values, PERCENTILES)
    out: dict[str, float] = {"n": int(values.size)}
    for key, value in zip(PERCENTILE_KEYS, [*qs, values.max()], strict=True):
        out[key] = round(float(value), 4)
    out["mean"] = round(float(values.mean()), 4)
    return out


def time_calls(
    fn: Callable[[], Any],
    *,
    min_reps: int = 3,
    max_reps: int = 50,
    budget_s: float = 5.0,
    warmup: int = 1,
    period_s: float = 0.0,
) -> np.ndarray:
    """Milliseconds per call: ``warmup`` untimed calls, then at least ``min_reps`` timed
    ones and more until ``max_reps`` or ``budget_s`` of timed calls, whichever first.

    The budget keeps a slow model (dncnn20 on a CPU: ~0.6 s per 256x256 frame) from
    holding a whole run hostage while fast ones still get a stable median.

    ``period_s`` > 0 starts calls on that period (sleeping between them), as frames
    arrive at a fixed rate: a call after an idle gap finds cold caches and sleeping
    cores, and on a shared virtual machine costs several times a back-to-back call.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (
        len(times) < min_reps or time.perf_counter() - start < budget_s
    ):
        if period_s > 0:
            time.sleep(max(0.0, start + len(times) * period_s - time.perf_counter()))
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


# ------------------------------------------------------------------ the machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _gpus() -> list[dict[str, str]]:
    """GPUs nvidia-smi reports (name, memory, driver); empty without a working one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        out = subprocess.run(
            [exe, query, "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the numbers (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


@cache
def machine_info() -> dict[str, Any]:
    """Everything about this machine that a reader needs to trust or compare a number."""
    from stream.engine import probe_providers

    gpus = _gpus()
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "gpus": gpus,
        "providers": probe_providers(),
        "versions": versions(),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_tag(info: dict[str, Any] | None = None) -> str:
    """``gpu-<name>`` on a GPU machine, else ``cpu-<cores>c-<cpu model short>``."""
    info = info or machine_info()
    if info["gpus"]:
        return "gpu-" + _slug(info["gpus"][0]["name"].removeprefix("NVIDIA "))[:40]
    model = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@.*$", " ", info["cpu_model"])
    return f"cpu-{info['cpu_count']}c-{_slug(model)[:32] or 'unknown'}"


# ------------------------------------------------------------------ results
@dataclass
class Target:
    """One performance target: what was measured against what was promised."""

    name: str
    measured: float | None  # None: could not be measured here (see detail)
    target: str  # e.g. ">= 1.2x", "< 1 ms"
    unit: str
    met: bool | None
    detail: str = ""

    @classmethod
    def at_least(cls, name: str, measured: float | None, bound: float, unit: str, detail: str):
        met = None if measured is None else measured >= bound
        return cls(name, measured, f">= {bound:g}{unit}", unit, met, detail)

    @classmethod
    def below(cls, name: str, measured: float | None, bound: float, unit: str, detail: str):
        met = None if measured is None else measured < bound
        return cls(name, measured, f"< {bound:g} {unit}".rstrip(), unit, met, detail)


@dataclass
class SuiteResult:
    """What one suite hands back: rows for the table and JSON, targets, skips, notes."""

    suite: str
    level: Level
    settings: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (row key, header)
    targets: list[Target] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, what: str, reason: str) -> None:
        log.info("%s: skipping %s: %s", self.suite, what, reason)
        self.skipped.append({"what": what, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "schema": SCHEMA_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "level": self.level,
            "machine": machine_info(),
            "machine_tag": machine_tag(),
            "settings": self.settings,
            "rows": self.rows,
            "targets": [asdict(t) for t in self.targets],
            "skipped": self.skipped,
            "notes": self.notes,
            "figures": self.figures,
            "seconds": round(self.seconds, 2),
        }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        magnitude = abs(value)
        if 0 < magnitude < 1e-3:
            return f"{value:.1e}"
        if magnitude >= 100:
            return f"{value:.0f}"
        return f"{value:.2f}" if magnitude >= 1 else f"{value:.3f}"
    return str(value)


def get_path(row: dict[str, Any], key: str) -> Any:
    """``row["a"]["b"]`` for key ``"a.b"``: one level into a percentile dict (``p99.9``)."""
    value: Any = row
    for part in key.split(".", 1) if key not in row else [key]:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def table_lines(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    """A fixed-width text table of the given row keys (dotted keys allowed)."""
    cells = [[_cell(get_path(r, key)) for key, _ in columns] for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, (_, h) in enumerate(columns)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, ((_, h), w) in enumerate(zip(columns, widths, strict=True))
        )
    ]
    for row in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return lines


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(get_path(r, k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


TARGET_COLUMNS = [
    ("name", "target"),
    ("measured", "measured"),
    ("target", "wanted"),
    ("verdict", "verdict"),
    ("detail", "how"),
]


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "MISSED")


def target_rows(targets: Iterable[Target]) -> list[dict[str, Any]]:
    return [{**asdict(t), "verdict": verdict(t.met)} for t in targets]


def print_result(result: SuiteResult) -> None:
    """The suite's table, targets and skips on stdout (benchmarks print; libraries don't)."""
    info = machine_info()
    print(
        f"\n== {result.suite} ({result.level}) on {machine_tag()}: {info['cpu_model']}, "
        f"{info['cpu_count']} cores{', ' + info['gpus'][0]['name'] if info['gpus'] else ''}"
    )
    for line in table_lines(result.rows, result.columns):
        print(line)
    if result.targets:
        print("targets:")
        for line in table_lines(target_rows(result.targets), TARGET_COLUMNS[:4]):
            print("  " + line)
    for s in result.skipped:
        print(f"skipped {s['what']}: {s['reason']}")
    for note in result.notes:
        print(f"note: {note}")


def write_result(result: SuiteResult, out_dir: Path) -> tuple[Path, Path]:
    """``<suite>.json`` and ``<suite>.md`` in ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{result.suite}.json"
    json_path.write_text(json.dumps(result.to_json(), indent=1, default=_json_default) + "\n")
    md = [
        f"# {result.suite}",
        "",
        f"Level `{result.level}`, machine `{machine_tag()}`, "
        f"{result.seconds:.0f} s. Raw numbers: `{json_path.name}`.",
        "",
    ]
    if result.targets:
        md += ["## Targets", "", markdown_table(target_rows(result.targets), TARGET_COLUMNS), ""]
    md += ["## Results", "", markdown_table(result.rows, result.columns), ""]
    md += [f"![{name}]({name})" for name in result.figures]
    if result.skipped:
        md += ["", "## Skipped", ""] + [f"- {s['what']}: {s['reason']}" for s in result.skipped]
    if result.notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    md += ["", "## Settings", "", "```json", json.dumps(result.settings, indent=1), "```", ""]
    md_path = out_dir / f"{result.suite}.md"
    md_path.write_text("\n".join(md))
    return json_path, md_path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# ------------------------------------------------------------------ figures
def new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib figure on the Agg backend (no display needed); axes as an array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def save_figure(fig: Any, result: SuiteResult, out_dir: Path, name: str) -> None:
    """Save as ``<out_dir>/<name>.png``, close it, and list it in the result."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig.suptitle(f"{result.suite} — {machine_tag()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=110)
    plt.close(fig)
    result.figures.append(f"{name}.png")


def shape_label(shape: Sequence[int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def megabytes(nbytes: float) -> float:
    return nbytes / 1e6


# ------------------------------------------------------------------ frames
_FRAMES: dict[tuple[tuple[int, int], int], np.ndarray] = {}


def check_parser(doc: str | None) -> argparse.ArgumentParser:
    """An exploratory check's command line: ``--out`` (the results folder), described by
    the first line of the check's docstring; a check adds its own options to it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else "")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    return parser


def write_check(out: Path, name: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """An exploratory check's results: ``<name>.md`` (``lines``) and ``<name>.json`` (its
    rows, with the machine and the package versions) in the machine's results folder;
    the table is printed too."""
    folder = Path(out) / machine_tag()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
    record = {"machine": machine_info(), "versions": versions(), "provider": "cpu", "rows": rows}
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
    print("\n".join(lines))


def phantom_frames(shape: tuple[int, int], count: int) -> np.ndarray:
    """``count`` noisy uint16 phantom frames ``(count, H, W)``, read-only, cached.

    Realistic content matters for the Zarr codecs (random noise would not compress)
    and costs nothing for inference or transport. Cycled by every suite, so a run
    never pays for noise generation while it is being timed.
    """
    key = (shape, count)
    if key not in _FRAMES:
        from stream.sim import CalciumPhantom, FramePool, PhantomConfig

        phantom = CalciumPhantom(PhantomConfig(shape=shape), count)
        frames = FramePool(phantom, count, seed=0).frames
        _FRAMES.clear()  # one shape at a time: 2048x2048 pools are not small
        _FRAMES[key] = frames
    return _FRAMES[key]


def plain_log_axis(ax: Any) -> None:
    """Log x axis labelled 1, 2, 5, 10, ... (not 2x10^0) with unlabelled minor ticks."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
