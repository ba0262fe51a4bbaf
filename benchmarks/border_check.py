"""What the engine's reflected border costs, measured: ``python -m benchmarks.border_check``.

The engine reflects a border of ``MAX_BORDER`` pixels around a frame (the model's
receptive-field radius if less; :mod:`stream.engine._tiling`); until 2026-12-03 it
reflected the whole radius (25 px for the shipped models). For each shipped model and
frame size this times both through the real engine on the phantom's frames with its
camera, frame by frame alternately in one run so that a burst of load hits both; the
ratio of the whole-radius border to today's is the speed-up. Writes ``border_check.md``
(and ``.json``) beside the suites' results.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, phantom_frames, write_check

SIZES = (128, 256, 512)
MODELS = ("na-lite", "na-temporal")
FRAMES = 40


def measure(model: str, side: int) -> dict[str, Any]:
    from stream.engine import Engine, TilePlan, plan_tiles, shipped_model_path
    from stream.sim import PhantomConfig

    def whole_radius(engine: Engine, shape: tuple[int, int]) -> TilePlan:
        meta = engine.metadata
        return plan_tiles(
            (int(shape[0]), int(shape[1])),
            engine.tile,
            engine.overlap,
            meta.radius,
            meta.alignment,
            meta.radius,
        )

    frames = phantom_frames((side, side), FRAMES)
    camera = PhantomConfig.model_validate({}).noise  # the phantom's own
    path = shipped_model_path(model)
    shape = (side, side)
    with (
        Engine(path, provider="cpu", warmup_shape=shape) as today,
        Engine(path, provider="cpu", warmup_shape=None) as before,
    ):
        before.plan_for = types.MethodType(whole_radius, before)  # type: ignore[method-assign]
        engines = {"border": today, "radius": before}
        plans = {name: e.plan_for(shape) for name, e in engines.items()}
        k, mean_decay = today.metadata.frames, today.metadata.running_mean
        times: dict[str, list[float]] = {name: [] for name in engines}
        for t, frame in enumerate(frames):
            # consecutive frames (a repeated one would start a series: exporter.compose)
            history = [frames[(t - j) % FRAMES] for j in range(k - 1, 0, -1)]
            mean = frame.astype(np.float32) if mean_decay > 0 else None
            order = list(engines.items()) if t % 2 else list(engines.items())[::-1]
            for name, engine in order:
                t0 = time.perf_counter()
                engine.denoise(frame, camera=camera, history=history, running_mean=mean)
                times[name].append((time.perf_counter() - t0) * 1e3)
    median = {name: float(np.median(ms[2:])) for name, ms in times.items()}  # past warm-up
    return {
        "model": model,
        "side": side,
        "border": {name: plan.border for name, plan in plans.items()},
        "padded": {name: plan.padded_shape[0] for name, plan in plans.items()},
        "ms": {name: round(m, 2) for name, m in median.items()},
        "speed_up": round(median["radius"] / median["border"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    from stream.engine import MAX_BORDER

    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(model, side) for model in MODELS for side in SIZES]
    lines = [
        "# The reflected border: what it costs",
        "",
        f"{machine_info()['cpu_model']}, CPU provider; {FRAMES} phantom frames per model and "
        f"size through the engine (camera configured), the engine's border (`MAX_BORDER` "
        f"{MAX_BORDER} px, kept on the model's alignment grid) and the whole receptive-field "
        "radius alternating frame by frame; median ms per frame.",
        "",
        "| model | frame | border px | padded | ms | radius px | padded | ms | speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {r['model']} | {r['side']}x{r['side']} | {r['border']['border']} | "
          f"{r['padded']['border']} | {r['ms']['border']} | {r['border']['radius']} | "
          f"{r['padded']['radius']} | {r['ms']['radius']} | {r['speed_up']} |" for r in rows),
    ]  # fmt: skip
    write_check(args.out, "border_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
