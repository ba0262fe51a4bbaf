"""What a live stream's latency is with the blend measured in its spare time, measured:
``python -m benchmarks.live_latency_check``.

The demo's pipeline (simulator -> service -> subscriber, the store on, in one process:
``exporter.demo``) at a live rate, the blend on (``spatial``, the default: measurements
in the series' spare time, a step at a time) and off (the baseline: the same pipeline
with no measurement and no blend), alternated round by round in one run. For each: the
latency from the simulator's acquisition stamp to the subscriber holding the denoised
frame, p50 / p90 / p99 over the series and the median of its last tenth (once the
series' start is behind it), each as a ratio to the baseline's; the frames measured and
the PSNR gain against the simulator's ground truth. Writes ``live_latency_check.md``
(and ``.json``) beside the suites' results.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, markdown_table, write_check

SETTINGS = ("off", "spatial")  # the baseline first in each round


def run(setting: str, fps: float, seconds: float, side: int) -> dict[str, float]:
    from exporter.demo import DemoConfig, late_wait_ms, run_demo

    with tempfile.TemporaryDirectory() as out:
        config = DemoConfig.model_validate(
            {"seconds": seconds, "fps": fps, "shape": (side, side), "out": Path(out)}
            | {"blend": setting, "provider": "cpu"}
        )
        result = run_demo(config)
    p50, p90, p99 = np.percentile(result.e2e_ms, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "last_tenth": late_wait_ms(result.e2e_ms),
        "measured": float(result.blend.get("frames_measured", 0) or 0),  # type: ignore[arg-type]
        "gain_db": result.psnr_denoised_db - result.psnr_raw_db,
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            runs[setting].append(run(setting, args.fps, args.seconds, args.side))
    fields = ("p50", "p90", "p99", "last_tenth", "measured", "gain_db")
    median = {
        setting: {f: float(np.median([r[f] for r in rounds])) for f in fields}
        for setting, rounds in runs.items()
    }
    base = median["off"]
    rows: list[dict[str, Any]] = []
    for setting in SETTINGS:
        row: dict[str, Any] = {"blend": setting}
        row.update({f: round(median[setting][f], 2) for f in fields})
        row["over_off"] = {
            f: round(median[setting][f] / base[f], 2) for f in ("p50", "p90", "p99", "last_tenth")
        }
        row["rounds"] = runs[setting]
        rows.append(row)
    columns = [
        ("blend", "blend"),
        ("p50", "p50 ms"),
        ("over_off.p50", "p50 x off"),
        ("p90", "p90 ms"),
        ("over_off.p90", "p90 x off"),
        ("p99", "p99 ms"),
        ("over_off.p99", "p99 x off"),
        ("last_tenth", "last tenth ms"),
        ("over_off.last_tenth", "last tenth x off"),
        ("measured", "frames measured"),
        ("gain_db", "PSNR gain dB"),
    ]
    lines = [
        "# A live stream's latency with the blend measured in its spare time",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, the shipped default model; the demo's "
        f"pipeline (simulator, service with the store on, subscriber: one process) at "
        f"{args.fps:g} fps, {args.side} x {args.side}, {args.seconds:g} s a run, "
        f"{args.rounds} rounds of each setting alternated; medians over the rounds of the "
        "acquisition -> subscriber latency (ms) and its ratio to the blend off.",
        "",
        markdown_table(rows, columns),
    ]
    write_check(args.out, "live_latency_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
