"""What taking a temporal model's lag back costs (:mod:`stream.engine._lag`), measured:
``python -m benchmarks.lag_check``.

For each frame size: ``na-temporal`` through the engine on a movie of sparse cells
firing within a frame on a dim field (the case the step is for), with the step
(``follow_lag=True``, as served) and without it (the baseline), interleaved frame by
frame in one run on the same frames and full windows; the step's median extra time per
frame, as ms and as a ratio to the baseline, and the share of the pixels it moved.
Writes ``lag_check.md`` (and ``.json``) beside the suites' results.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, markdown_table, write_check

SIZES = (256, 512)
MODEL = "na-temporal"
FRAMES = 24
WINDOW = 4  # previous frames the model takes


def firing_movie(side: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` uint16 readouts (gain 2, offset 100, read noise 1.5 ADU) of sparse cells
    on a dim field, each firing within a frame (20-60 photons) and decaying over about
    3 frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    photons = np.repeat((0.3 + 0.2 * np.sin(xx / 9.0))[None], count, axis=0)
    for _ in range(side * side // 700):  # about 4 cells in 48 x 56 px
        cy, cx, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(3, 5)
        cell = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)
        level = 0.0
        for t in range(count):
            level = level * np.exp(-1.0 / 3.0) + (rng.random() < 0.25) * rng.uniform(20, 60)
            photons[t] += (0.5 + level) * cell
    noisy = 100.0 + 2.0 * rng.poisson(photons) + rng.normal(0.0, 1.5, photons.shape)
    return np.clip(noisy.round(), 0, 65535).astype(np.uint16)


def measure(side: int, frames: int = FRAMES) -> dict[str, Any]:
    from stream.engine import CameraModel, Engine, shipped_model_path

    camera = CameraModel(gain=2.0, offset=100.0, read_noise=1.5)
    movie = firing_movie(side, frames + WINDOW)
    path = shipped_model_path(MODEL)
    times: dict[str, list[float]] = {"without": [], "with": []}
    moved = []
    with (
        Engine(path, provider="cpu", warmup_shape=(side, side), follow_lag=False) as without,
        Engine(path, provider="cpu", warmup_shape=(side, side)) as served,
    ):
        for t in range(WINDOW, WINDOW + frames):
            frame, history = movie[t], list(movie[t - WINDOW : t])
            outputs = {}
            for name, engine in (("without", without), ("with", served)):
                t0 = time.perf_counter()
                outputs[name] = engine.denoise(frame, camera=camera, history=history, bands=False)
                times[name].append(time.perf_counter() - t0)
            moved.append(float(np.mean(outputs["with"] != outputs["without"])))
    median = {k: float(np.median(v[2:])) * 1e3 for k, v in times.items()}  # past the start
    step = median["with"] - median["without"]
    return {
        "side": side,
        "engine_ms": round(median["without"], 3),
        "with_step_ms": round(median["with"], 3),
        "step_ms": round(step, 3),
        "step_over_engine": round(step / median["without"], 4),
        "moved_share": round(float(np.mean(moved)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(side) for side in SIZES]
    columns = [
        ("side", "frame side px"),
        ("engine_ms", "engine ms (no step)"),
        ("with_step_ms", "engine ms (with it)"),
        ("step_ms", "step ms"),
        ("step_over_engine", "step x engine"),
        ("moved_share", "share of pixels moved"),
    ]
    lines = [
        "# A temporal model's lag taken back: what it costs",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, `{MODEL}`; {FRAMES} frames per size "
        "of sparse cells firing on a dim field (camera configured, full windows), the "
        "engine with and without the step interleaved frame by frame; median ms per frame, "
        "the step's share of the engine's time, and the mean share of pixels it moved.",
        "",
        markdown_table(rows, columns),
    ]
    write_check(args.out, "lag_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
