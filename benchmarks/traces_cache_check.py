"""Why the closed loop's traces stage misses its target: the cost of one frame's traces
update with the denoised frame in cache and out of it.

``python -m benchmarks.traces_cache_check [--size 512] [--rois 1000] [--repeats 300]``

Times :meth:`stream.traces.SeriesTraces.update` (denoised ROI means, baseline, ΔF/F) on
the closed-loop suite's frame and ROIs: once with the same frame every call (warm), once
with 64 MiB read between calls so the frame comes from memory (cold), as a frame that
has waited in the service does. Prints p50 and p99 of each in ms. An exploratory
measurement, not a suite.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: Read between two cold calls: larger than this VM's last-level cache.
FLUSH_BYTES = 64 * 2**20


def update_ms(size: int, rois: int, repeats: int, cold: bool) -> np.ndarray:
    """Milliseconds per update call."""
    from stream.traces import BaselineConfig, SeriesTraces, rois_from_labels

    from .closed_loop import roi_labels

    shape = (size, size)
    traces = SeriesTraces(rois_from_labels(roi_labels(shape, rois)), shape, BaselineConfig(), [])
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4000, shape).astype(np.uint16)
    denoised = raw.astype(np.float32)
    raw_means = traces.bound.means(raw)  # the service takes these in the receive thread
    flush = np.ones(FLUSH_BYTES // 8)
    times = np.empty(repeats)
    for i in range(repeats):
        if cold:
            flush.sum()
        t0 = time.perf_counter()
        traces.update(raw, denoised, 100.0, raw_means)
        times[i] = (time.perf_counter() - t0) * 1e3
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rois", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)
    for cold in (False, True):
        ms = update_ms(args.size, args.rois, args.repeats, cold)
        p50, p99 = np.percentile(ms, [50, 99])
        label = "cold (frame from memory)" if cold else "warm (frame in cache)"
        print(f"{label:26s} p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
