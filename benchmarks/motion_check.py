"""What following a shifting scene costs a temporal model (:mod:`stream.engine._motion`),
measured: ``python -m benchmarks.motion_check``.

For each frame size: the time per frame of ``na-temporal`` through the engine (the
baseline: the frame, its four previous frames and the running mean), and the time of the
search for the scene's shift against the running mean (``scene_shift``), on a still
scene (no shift found: what every frame of a still recording pays) and on one that
jitters by up to 3 px (the shift found), and of moving the ring's four frames and the
mean by it (``lined_up``); all interleaved frame by frame in one run, each as a ratio
to the baseline. Writes ``motion_check.md`` (and ``.json``) beside the suites' results.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, markdown_table, write_check

SIZES = (128, 256, 512)
MODEL = "na-temporal"
FRAMES = 24
PHOTONS = 10.0
JITTER = 3
STEPS = ("engine", "still", "jittering", "move")


def scene(side: int) -> np.ndarray:
    """Smooth structure a few pixels wide around ``PHOTONS`` per pixel, ``2 * JITTER`` px
    wider than the frame each way."""
    canvas = side + 2 * JITTER
    yy, xx = np.mgrid[0:canvas, 0:canvas]
    return PHOTONS * (1.0 + 0.6 * np.sin(yy / 3.0) * np.cos(xx / 4.0) ** 2)


def readout(field: np.ndarray, side: int, dy: int, dx: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 readout (gain 1, offset 100, read noise 2 e-) of ``field``'s window moved
    by ``(dy, dx)``."""
    window = field[JITTER + dy : JITTER + dy + side, JITTER + dx : JITTER + dx + side]
    return (rng.poisson(window) + rng.normal(100.0, 2.0, window.shape)).astype(np.float32)


def measure(side: int, frames: int = FRAMES) -> dict[str, Any]:
    from stream.engine import CameraModel, Engine, lined_up, scene_shift, shipped_model_path

    camera = CameraModel(gain=1.0, offset=100.0, read_noise=2.0)
    rng = np.random.default_rng(side)
    field = scene(side)
    mean = readout(field, side, 0, 0, rng)
    history = [readout(field, side, 0, 0, rng) for _ in range(4)]
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    found = 0
    with Engine(shipped_model_path(MODEL), provider="cpu", warmup_shape=(side, side)) as engine:
        for _ in range(frames):
            still = readout(field, side, 0, 0, rng)
            dy, dx = (int(v) for v in rng.integers(-JITTER, JITTER + 1, 2))
            jittered = readout(field, side, dy, dx, rng)
            t0 = time.perf_counter()
            engine.denoise(still, camera=camera, history=history, running_mean=mean)
            times["engine"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scene_shift(still, mean)
            times["still"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            moved = scene_shift(jittered, mean)
            times["jittering"].append(time.perf_counter() - t0)
            found += moved is not None
            step = (round(moved[0]), round(moved[1])) if moved is not None else (1, 1)
            t0 = time.perf_counter()
            for frame in (*history, mean):
                lined_up(frame, step)
            times["move"].append(time.perf_counter() - t0)
    median = {k: float(np.median(v[2:])) * 1e3 for k, v in times.items()}  # past the start
    return {
        "side": side,
        "ms": {k: round(v, 3) for k, v in median.items()},
        "over_engine": {k: round(v / median["engine"], 4) for k, v in median.items()},
        "shifts_found": f"{found} / {frames}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(side) for side in SIZES]
    columns = [("side", "frame side px"), ("ms.engine", "engine ms")] + [
        (f"{field}.{step}", f"{step} {label}")
        for step in STEPS[1:]
        for field, label in (("ms", "ms"), ("over_engine", "x engine"))
    ]
    columns.append(("shifts_found", "jitter followed"))
    lines = [
        "# A temporal model following a shifting scene: what the search and the move cost",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, `{MODEL}`; {FRAMES} frames per size "
        f"at {PHOTONS:g} photons per pixel (camera configured), engine, search and move "
        "interleaved frame by frame; median ms per frame (x the engine's time per frame): "
        "the search against the running mean on a still frame and on one moved by up to "
        f"{JITTER} px, and moving the four previous frames and the mean; and how many of "
        "the moved frames' shifts were found.",
        "",
        markdown_table(rows, columns),
    ]
    write_check(args.out, "motion_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
