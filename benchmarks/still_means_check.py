"""What a temporal model's still-pixel means cost (:mod:`stream.engine._still_means`),
measured: ``python -m benchmarks.still_means_check``.

For each frame size: the time per frame of ``na-temporal`` through the engine (the
baseline: the frame, its four previous frames and the running mean), and the time to mix
its output with the still pixels' raw means, on a still scene under bright light (1000
photons per pixel: nearly every pixel is mixed) and under dim light (10 photons: no pixel
is bright enough, the frame returns at once); all interleaved frame by frame in one run,
each as a ratio to the baseline. Writes ``still_means_check.md`` (and ``.json``) beside
the suites' results.
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
LIGHTS = {"bright (1000 photons)": 1000.0, "dim (10 photons)": 10.0}
#: Each light's columns in the table: a row's key and its heading.
FIELDS = (("ms", "ms"), ("over_engine", "x engine"), ("mixed_share", "share mixed"))


def still_scene(side: int, photons: float, count: int, seed: int = 0) -> np.ndarray:
    """``count`` uint16 readouts (gain 1, offset 100, read noise 3 e-) of one still scene
    with smooth structure around ``photons`` per pixel."""
    yy, xx = np.mgrid[0:side, 0:side]
    level = photons * (1.0 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0))
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(level, (count, side, side)) + rng.normal(100.0, 3.0, (count, side, side))
    return np.clip(noisy.round(), 0, 65535).astype(np.uint16)


def measure(side: int, frames: int = FRAMES) -> dict[str, Any]:
    from stream.engine import CameraModel, Engine, StillMeans, shipped_model_path

    camera = CameraModel(gain=1.0, offset=100.0, read_noise=3.0)
    scenes = {name: still_scene(side, photons, frames) for name, photons in LIGHTS.items()}
    means = {name: StillMeans() for name in LIGHTS}
    times: dict[str, list[float]] = {"engine": [], **{name: [] for name in LIGHTS}}
    with Engine(shipped_model_path(MODEL), provider="cpu", warmup_shape=(side, side)) as engine:
        for t in range(frames):
            for name, scene in scenes.items():
                frame = scene[t]
                history = [scene[max(t - k, 0)] for k in range(4, 0, -1)]
                t0 = time.perf_counter()
                out = engine.denoise(
                    frame, camera=camera, history=history, running_mean=scene[0].astype("f4")
                )
                if name == next(iter(LIGHTS)):
                    times["engine"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                means[name].mixed(frame, out, camera)
                times[name].append(time.perf_counter() - t0)
    median = {k: float(np.median(v[2:])) * 1e3 for k, v in times.items()}  # past the start
    return {
        "side": side,
        "ms": {k: round(v, 3) for k, v in median.items()},
        "over_engine": {k: round(v / median["engine"], 4) for k, v in median.items()},
        "mixed_share": {k: round(m.share, 3) for k, m in means.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(side) for side in SIZES]
    columns = [("side", "frame side px"), ("ms.engine", "engine ms")] + [
        (f"{field}.{name}", f"{name} {label}") for name in LIGHTS for field, label in FIELDS
    ]
    lines = [
        "# A temporal model's still-pixel means: what mixing them costs",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, `{MODEL}`; {FRAMES} frames of a still "
        "scene per size and light (camera configured), engine and mix interleaved frame by "
        "frame; median ms per frame (x the engine's time per frame, on the bright frames), "
        "and the share of the last frame's pixels mixed.",
        "",
        markdown_table(rows, columns),
    ]
    write_check(args.out, "still_means_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
