"""What the self-ensemble costs and when the service's ``auto`` uses it, measured:
``python -m benchmarks.ensemble_check``.

For each shipped model and frame size: the time per frame through ``SeriesContext`` at
1, 2 and 4 passes (:mod:`stream.engine._ensemble`), the three alternating frame by frame
in one run so that a burst of load hits all of them; the ratio of each to one pass (the
baseline); and, from the measured time per pass, the highest frame rate at which the
service's ``ensemble = "auto"`` (``ensemble_budget`` 0.5 of the frame interval) gives a
frame 2 and 4 passes on this machine. Writes ``ensemble_check.md`` (and ``.json``)
beside the suites' results.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, phantom_frames, write_check

SIZES = (128, 256, 512)
MODELS = ("na-lite", "na-temporal")
FRAMES = 24
#: The share of the frame interval ``auto`` lets the passes take (the config default).
BUDGET = 0.5


def measure(model: str, side: int) -> dict[str, Any]:
    from stream.engine import ENSEMBLE_PASSES, Engine, SeriesContext, shipped_model_path
    from stream.sim import PhantomConfig

    frames = phantom_frames((side, side), FRAMES)
    camera = PhantomConfig.model_validate({}).noise  # the phantom's own
    times: dict[int, list[float]] = {p: [] for p in ENSEMBLE_PASSES}
    with Engine(shipped_model_path(model), provider="cpu", warmup_shape=(side, side)) as engine:
        contexts = {p: SeriesContext(camera, "off") for p in ENSEMBLE_PASSES}
        for t, frame in enumerate(frames):
            for passes, context in contexts.items():
                t0 = time.perf_counter()
                context.denoise(engine, frame, t, passes)
                times[passes].append((time.perf_counter() - t0) * 1e3)
    median = {p: float(np.median(ms[1:])) for p, ms in times.items()}  # past the first
    per_pass = median[1]
    return {
        "model": model,
        "side": side,
        "ms": {str(p): round(m, 2) for p, m in median.items()},
        "over_one_pass": {str(p): round(m / median[1], 2) for p, m in median.items()},
        # auto gives p passes when p x (time per pass) <= BUDGET x frame interval
        "auto_up_to_fps": {
            str(p): round(BUDGET * 1000.0 / (p * per_pass), 1) for p in ENSEMBLE_PASSES if p > 1
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(model, side) for model in MODELS for side in SIZES]
    lines = [
        "# Self-ensemble: its cost, and the frame rates at which `auto` uses it",
        "",
        f"{machine_info()['cpu_model']}, CPU provider; {FRAMES} phantom frames per model and "
        "size through `SeriesContext` (camera configured), 1, 2 and 4 passes alternating "
        "frame by frame; median ms per frame. `auto` gives 4 (2) passes up to the frame "
        f"rate at which they take {BUDGET:g} of the frame interval, with no frame waiting.",
        "",
        "| model | frame | 1 pass ms | 2 passes ms (x one) | 4 passes ms (x one) "
        "| auto: 2 passes up to | 4 passes up to |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['model']} | {r['side']}x{r['side']} | {r['ms']['1']} | {r['ms']['2']} "
          f"({r['over_one_pass']['2']}) | {r['ms']['4']} ({r['over_one_pass']['4']}) | "
          f"{r['auto_up_to_fps']['2']} fps | {r['auto_up_to_fps']['4']} fps |" for r in rows),
    ]  # fmt: skip
    write_check(args.out, "ensemble_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
