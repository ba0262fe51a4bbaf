"""What the live camera estimate costs the thread that serves frames, measured:
``python -m benchmarks.camera_estimate_check``.

With no camera configured, a noise-adaptive model's series estimates the camera from
its own frames (``stream.engine.SeriesContext``): every frame of the first 32, then every
8th, refitted after estimates 2, 3, 5, 9 and 17, then every 8th. Measured in one run, on
phantom frames at 256 x 256 and 512 x 512: the mean time per frame of a whole series
through ``SeriesContext`` and the default model with the camera estimated live, against
the baseline of the same series with the camera configured (the two alternate frame by
frame); the median and slowest (a refit) time of one estimator update; and the median
time of the engine's test for hot pixels on each frame, of the searches for noisy
pixels and for row noise (a series' first 64 pairs), of the searches for fixed patterns
of columns and rows (both axes, a series' first 32 still pairs) and of taking rows'
offsets out (every frame of a series that has them), against the configured ms per
frame. Writes
``camera_estimate_check.md`` (and ``.json``) beside the suites' results.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, write_check

SIZES = (256, 512)
#: Frames per series: the 32-frame warm-up, then 16 estimates and 2 refits.
SERIES_FRAMES = 160


def _frames(side: int, count: int) -> list[np.ndarray]:
    from stream.sim import CalciumPhantom, PhantomConfig, apply_camera_noise, frame_rng

    config = PhantomConfig(shape=(side, side), brightness=30.0, seed=5)
    phantom = CalciumPhantom(config, count)
    return [apply_camera_noise(phantom.clean(t), config.noise, frame_rng(5, t))
            for t in range(count)]  # fmt: skip


def _series_ms(engine: Any, frames: list[np.ndarray], camera: Any) -> tuple[float, float]:
    """Mean ms per frame of one series through ``SeriesContext`` (model included) with
    ``camera`` configured, and of the same series with the camera estimated live; the
    two alternate frame by frame, so a burst of load hits both."""
    from stream.engine import SeriesContext

    contexts = (SeriesContext(camera, "off"), SeriesContext(None, "off"))
    totals = [0.0, 0.0]
    for t in range(SERIES_FRAMES):
        for i, context in enumerate(contexts):
            t0 = time.perf_counter()
            context.denoise(engine, frames[t % len(frames)], t)
            totals[i] += time.perf_counter() - t0
    return totals[0] * 1e3 / SERIES_FRAMES, totals[1] * 1e3 / SERIES_FRAMES


def measure(side: int) -> dict[str, Any]:
    from stream.camera import CameraEstimator
    from stream.engine import Engine, default_model_path
    from stream.sim import PhantomConfig

    frames = _frames(side, 64)
    camera = PhantomConfig.model_validate({}).noise
    estimator, update_ms = CameraEstimator(), []
    for frame in frames:
        t0 = time.perf_counter()
        estimator.update(frame)
        update_ms.append((time.perf_counter() - t0) * 1e3)
    steady = update_ms[1:]  # past the first frame's one-off spatial estimate
    with Engine(default_model_path("cpu"), provider="cpu") as engine:
        configured, live = _series_ms(engine, frames, camera)  # configured: the baseline
    spike_ms = _spike_test_ms(frames, camera)
    noisy_ms = _noisy_search_ms(frames)
    row_search_ms, row_correction_ms = _row_noise_ms(frames)
    line_search_ms = _line_search_ms(frames)
    return {
        "side": side,
        "configured_ms_per_frame": round(configured, 2),
        "live_ms_per_frame": round(live, 2),
        "live_over_configured": round(live / configured, 3),
        "update_median_ms": round(float(np.median(steady)), 2),
        "update_max_ms": round(float(np.max(steady)), 2),
        "spike_test_median_ms": round(spike_ms, 2),
        "spike_test_over_configured": round(spike_ms / configured, 4),
        "noisy_search_median_ms": round(float(np.median(noisy_ms)), 2),
        "noisy_search_max_ms": round(float(np.max(noisy_ms)), 2),
        "noisy_search_over_configured": round(float(np.median(noisy_ms)) / configured, 4),
        "row_search_median_ms": round(float(np.median(row_search_ms)), 2),
        "row_search_over_configured": round(float(np.median(row_search_ms)) / configured, 4),
        "line_search_median_ms": round(float(np.median(line_search_ms)), 2),
        "line_search_over_configured": round(float(np.median(line_search_ms)) / configured, 4),
        "row_correction_median_ms": round(row_correction_ms, 2),
        "row_correction_over_configured": round(row_correction_ms / configured, 4),
    }


def _row_noise_ms(frames: list[np.ndarray]) -> tuple[list[float], float]:
    """Per frame, ms of a series' search for row noise over its first 64 pairs, as
    ``SeriesCamera`` runs it (these frames have none, so none is taken out); and the
    median ms of taking rows' offsets out of a frame, as a series with row noise does
    every frame."""
    from stream.camera import remove_row_offsets
    from stream.engine import SeriesCamera

    context, search = SeriesCamera(None), []
    for t in range(65):
        t0 = time.perf_counter()
        context._without_row_noise(frames[t % len(frames)])
        search.append((time.perf_counter() - t0) * 1e3)
    correction = []
    for frame in frames:
        t0 = time.perf_counter()
        remove_row_offsets(frame)
        correction.append((time.perf_counter() - t0) * 1e3)
    return search[1:], float(np.median(correction))


def _line_search_ms(frames: list[np.ndarray]) -> list[float]:
    """Per frame, ms of a series' searches for fixed patterns of columns and of rows
    (:mod:`stream.camera._line_pattern`) over their first 32 still pairs, as
    ``SeriesCamera`` runs them (these frames have none, so none is taken out)."""
    from stream.engine import SeriesCamera

    context, times = SeriesCamera(None), []
    for t in range(33):
        t0 = time.perf_counter()
        context._without_line_patterns(frames[t % len(frames)])
        times.append((time.perf_counter() - t0) * 1e3)
    return times[1:]  # the first frame only keeps a copy


def _noisy_search_ms(frames: list[np.ndarray]) -> list[float]:
    """Per frame, ms of a series' search for noisy pixels (the still test, the sums, the
    searches after 2, 4, 8, ... pairs) as ``SeriesCamera`` runs it, over its first 64
    pairs."""
    from stream.engine import SeriesCamera
    from stream.sim import PhantomConfig

    camera = PhantomConfig.model_validate({}).noise
    context, times = SeriesCamera(camera), []
    for t in range(65):
        t0 = time.perf_counter()
        context._look_for_noisy_pixels(frames[t % len(frames)], camera)
        times.append((time.perf_counter() - t0) * 1e3)
    return times[1:]  # the first frame only keeps a copy


def _spike_test_ms(frames: list[np.ndarray], camera: Any) -> float:
    """Median ms of the engine's hot-pixel test (:func:`stream.engine.defect_spikes`, with
    the frame's block levels given, as the engine has them) on each frame."""
    from stream.engine import block_levels, defect_spikes

    times = []
    for frame in frames:
        centred = np.subtract(frame, camera.offset, dtype=np.float32)
        blocks = block_levels(centred)
        t0 = time.perf_counter()
        defect_spikes(centred, camera.gain, camera.read_noise, blocks)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(side) for side in SIZES]
    lines = [
        "# Live camera estimate: its cost on the serving thread",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, `na-lite`; {SERIES_FRAMES}-frame "
        "series through `SeriesContext`, mean ms per frame, the camera configured (the "
        "baseline) or estimated live (every frame of the first 32, then every 8th).",
        "",
        "| frame | configured ms/frame | live ms/frame | live / configured "
        "| one update ms (median) | slowest update ms (a refit) "
        "| engine's hot-pixel test ms (median; / configured) "
        "| noisy-pixel search ms, first 64 pairs (median; / configured; slowest) "
        "| row-noise search ms, first 64 pairs (median; / configured) "
        "| column and row pattern searches ms, first 32 pairs (median; / configured) "
        "| rows' offsets taken out ms, every frame once found (median; / configured) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(f"| {r['side']}x{r['side']} | {r['configured_ms_per_frame']} | "
          f"{r['live_ms_per_frame']} | {r['live_over_configured']} | "
          f"{r['update_median_ms']} | {r['update_max_ms']} | "
          f"{r['spike_test_median_ms']} ({r['spike_test_over_configured']}) | "
          f"{r['noisy_search_median_ms']} ({r['noisy_search_over_configured']}; "
          f"{r['noisy_search_max_ms']}) | "
          f"{r['row_search_median_ms']} ({r['row_search_over_configured']}) | "
          f"{r['line_search_median_ms']} ({r['line_search_over_configured']}) | "
          f"{r['row_correction_median_ms']} ({r['row_correction_over_configured']}) |"
          for r in rows),
    ]  # fmt: skip
    write_check(args.out, "camera_estimate_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
