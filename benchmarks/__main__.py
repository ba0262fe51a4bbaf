"""Run the benchmark suites: ``python -m benchmarks [--quick] [--suite NAME ...] [--out DIR]``.

Each suite measures against a baseline in the same run, prints its table, and writes
``<suite>.json``, ``<suite>.md`` and figures into ``<out>/<machine tag>/``; this
entry point then writes ``summary.md`` there: the machine, the headline table (every
target: measured, wanted, met or missed) and links to each suite. ``--quick`` is
a small sweep of every suite, about 4 minutes on an idle 2-core machine (211 s on the
development VM); the default (full) sweep is for a quiet machine and takes about 26
minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import (
    TARGET_COLUMNS,
    Level,
    SuiteResult,
    machine_info,
    machine_tag,
    markdown_table,
    print_result,
    verdict,
    write_result,
)
from ._models import REFERENCE_DIR

SUITES = ("transport", "end_to_end", "inference", "storage", "closed_loop")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _suite(name: str) -> Callable[..., SuiteResult]:
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    runner: Callable[..., SuiteResult] = module.run
    return runner


def usable_providers(requested: str) -> list[str]:
    """Providers to measure: ``all`` usable ones (auto order), or just the one named."""
    from stream.engine import usable_providers as usable

    found = usable()
    if requested == "all":
        return found
    if requested not in found:
        raise SystemExit(f"provider {requested!r} is not usable here; usable: {', '.join(found)}")
    return [requested]


def run_suites(
    names: list[str],
    level: Level,
    out: Path,
    providers: list[str],
    overrides: dict[str, Path] | None = None,
) -> tuple[list[SuiteResult], dict[str, str]]:
    """Run, print and write each suite; a failing suite is recorded and the rest go on."""
    out_dir = out / machine_tag()
    results: list[SuiteResult] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="deepdenoise-bench-") as tmp:
        for name in names:
            work = Path(tmp) / name
            work.mkdir()
            t0 = time.perf_counter()
            try:
                result = _suite(name)(
                    level=level,
                    out_dir=out_dir,
                    work=work,
                    providers=providers,
                    overrides=overrides,
                )
            except Exception:
                failures[name] = traceback.format_exc()
                print(f"\n== {name} FAILED\n{failures[name]}", file=sys.stderr)
                continue
            result.seconds = time.perf_counter() - t0
            print_result(result)
            write_result(result, out_dir)
            results.append(result)
    write_summary(out_dir, failures)
    return results, failures


def write_summary(out_dir: Path, failures: dict[str, str] | None = None) -> Path:
    """``summary.md`` from every ``<suite>.json`` in ``out_dir`` (so a rerun of one suite
    updates the index without dropping the others): the machine, each target's verdict,
    links to the suites, and this run's failures."""
    info = machine_info()
    gpu = ", ".join(g["name"] for g in info["gpus"]) or "none"
    usable = [p for p, problem in info["providers"].items() if problem is None]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    lines = [
        f"# Benchmarks on `{machine_tag()}`",
        "",
        f"CPU {info['cpu_model']} ({info['cpu_count']} cores), memory {info['memory_gib']} GiB, "
        f"GPU {gpu}; usable providers {', '.join(usable)}.",
        f"Versions: {versions}.",
        "",
        "## Headline",
        "",
    ]
    found = []
    for name in SUITES:
        path = out_dir / f"{name}.json"
        if path.is_file():
            found.append(json.loads(path.read_text()))
    targets = [{**t, "verdict": verdict(t["met"])} for r in found for t in r["targets"]]
    lines.append(markdown_table(targets, TARGET_COLUMNS) if targets else "No targets measured.")
    lines += ["", "## Suites", ""]
    for r in found:
        skipped = f", {len(r['skipped'])} skipped" if r["skipped"] else ""
        lines.append(
            f"- [{r['suite']}]({r['suite']}.md): level `{r['level']}`, {r['created']}, "
            f"{r['seconds']:.0f} s, {len(r['rows'])} rows{skipped}"
        )
    for name, trace in (failures or {}).items():
        lines.append(f"- {name}: FAILED in the last run ({trace.strip().splitlines()[-1]})")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _overrides(values: list[str]) -> dict[str, Path]:
    """``--model NAME=PATH`` values; a NAME no suite measures is refused (it was ignored,
    so a misspelled one measured the default model in silence)."""
    from stream import ModelError
    from stream.engine import shipped_model_path

    found = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            raise SystemExit(f"--model expects NAME=PATH, got {value!r}")
        if name != "identity" and not (REFERENCE_DIR / f"{name}.onnx").is_file():
            try:
                shipped_model_path(name)
            except ModelError as exc:
                others = ", ".join(
                    ["identity", *sorted(p.stem for p in REFERENCE_DIR.glob("*.onnx"))]
                )
                raise SystemExit(
                    f"--model {value}: no suite measures a model named {name!r}: expected "
                    f"{others} or a shipped model ({exc})"
                ) from exc
        found[name] = Path(path)
    return found


def _check_out(out: Path) -> None:
    """Refuse an --out that cannot take results before any suite runs (it failed after
    the whole sweep, keeping nothing)."""
    folder = out / machine_tag()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SystemExit(f"--out {out}: cannot write results in {folder} ({exc})") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sweep, ~4 min on 2 cores")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests
    parser.add_argument("--suite", action="append", choices=SUITES, help="repeatable; default all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results root")
    parser.add_argument("--provider", default="all", help="all (usable ones), cpu, cuda, tensorrt")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this ONNX file for a model name (e.g. dncnn20=run/x.onnx)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    level: Level = "tiny" if args.tiny else "quick" if args.quick else "full"
    names = list(dict.fromkeys(args.suite or SUITES))
    overrides = _overrides(args.model)
    _check_out(args.out)
    providers = usable_providers(args.provider)
    t0 = time.perf_counter()
    results, failures = run_suites(names, level, args.out, providers, overrides)
    out_dir = args.out / machine_tag()
    print(f"\n{len(results)} suites in {time.perf_counter() - t0:.0f} s; results in {out_dir}")
    summary: list[Any] = [t for r in results for t in r.targets]
    missed = [t.name for t in summary if t.met is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
