"""What masked, combed and jittered frames cost the served path, measured:
``python -m benchmarks.masks_check``.

The camera room finds regions the camera did not read (:func:`stream.camera.masked_pixels`:
a field of view masked with 0, the zero border motion correction leaves) and a
bidirectional scan's lag (:mod:`stream.camera._scan_phase`); the live estimate aligns a
pair whose scene moved before it takes its difference (``stream.camera._samples``); the
engine fills masked pixels with the field's mirror image
(:func:`stream.engine._pixels.mirror_fill`, its sources kept while the mask stays). For
each frame size this times ``SeriesContext.denoise`` (the live camera estimate and every
search, as the service serves a frame; the blend measurement deferred, as the service
defers it) on five streams of the same phantom frames: plain; 0 outside a circle (a
mask that stays); a zero border 0-8 px wide that moves every frame (a new mask each
frame); odd lines 2 px late (a comb); the field moved 3-5 px either way every frame
(pairs moved). Frames alternate between the streams so that a burst of load hits all;
each stream's median ms per frame past its first ``SEARCH_FRAMES`` (where the scan's
lag is looked for) is given against the plain stream's. Writes ``masks_check.md`` (and
``.json``) beside the suites' results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, phantom_frames, write_check

SIZES = (256, 512)
MODEL = "na-lite"
FRAMES = 64
SEARCH_FRAMES = 16  # the scan phase's search (stream.camera._scan_phase) runs this long
LAG = 2
JITTER = 5  # px, most a jittered frame moves either way


def _circle(frame: np.ndarray, t: int) -> np.ndarray:
    height, width = frame.shape
    y, x = np.ogrid[:height, :width]
    outside = (y - height / 2) ** 2 + (x - width / 2) ** 2 > (0.45 * min(height, width)) ** 2
    out = frame.copy()
    out[outside] = 0
    return out


def _moving_border(frame: np.ndarray, t: int) -> np.ndarray:
    rng = np.random.default_rng(t)
    dy, dx = (int(v) for v in rng.integers(-8, 9, size=2))
    out = frame.copy()
    for axis, shift in ((0, dy), (1, dx)):
        edge = [slice(None), slice(None)]
        edge[axis] = slice(None, shift) if shift > 0 else slice(shift, None)
        if shift:
            out[tuple(edge)] = 0
    return out


def _jittered(frame: np.ndarray, t: int) -> np.ndarray:
    rng = np.random.default_rng(t)
    dy, dx = (int(v) for v in rng.integers(3, JITTER + 1, size=2) * rng.choice([-1, 1], size=2))
    padded = np.pad(frame, JITTER, mode="reflect")
    height, width = frame.shape
    return padded[JITTER + dy : JITTER + dy + height, JITTER + dx : JITTER + dx + width].copy()


def _comb(frame: np.ndarray, t: int) -> np.ndarray:
    out = frame.copy()
    out[1::2, LAG:] = frame[1::2, :-LAG]
    return out


STREAMS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "plain": lambda frame, t: frame,
    "circle": _circle,
    "moving border": _moving_border,
    "comb": _comb,
    "jittered": _jittered,
}


def measure(side: int, count: int = FRAMES) -> dict[str, Any]:
    from stream.engine import Engine, SeriesContext, shipped_model_path

    frames = phantom_frames((side, side), count)
    shape = (side, side)
    series = {name: SeriesContext() for name in STREAMS}
    times: dict[str, list[float]] = {name: [] for name in STREAMS}
    found: dict[str, dict[str, int]] = {}
    with Engine(shipped_model_path(MODEL), provider="cpu", warmup_shape=shape) as engine:
        for t, frame in enumerate(frames):
            names = list(STREAMS) if t % 2 else list(STREAMS)[::-1]
            for name in names:
                given = STREAMS[name](np.asarray(frame), t)
                t0 = time.perf_counter()
                series[name].denoise(engine, given, index=t, measure=False)
                times[name].append((time.perf_counter() - t0) * 1e3)
                series[name].measure_pending(engine)  # the service's spare time, not timed
        for name, context in series.items():
            estimate = context.estimate
            found[name] = {
                "frames_masked": context.frames_masked,
                "scan_lag": context.camera_side.scan_lag,
                "pairs_moved": 0 if estimate is None else estimate.moved,
            }
    median = {name: float(np.median(ms[SEARCH_FRAMES:])) for name, ms in times.items()}
    return {
        "side": side,
        "ms": {name: round(m, 2) for name, m in median.items()},
        "vs_plain": {name: round(m / median["plain"], 3) for name, m in median.items()},
        "found": found,
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(side) for side in SIZES]
    names = list(STREAMS)
    lines = [
        "# Masked, combed and jittered frames: what they cost",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, `{MODEL}`, camera estimated live; "
        f"{FRAMES} phantom frames per stream, the streams alternating frame by frame; "
        f"median ms per frame of `SeriesContext.denoise` past the first {SEARCH_FRAMES}, "
        "and its ratio to the plain stream's. Found: frames masked, the scan lag, pairs "
        "moved.",
        "",
        "| frame | " + " | ".join(f"{n} ms | x plain" for n in names) + " | found |",
        "|---|" + "---|---|" * len(names) + "---|",
        *(
            f"| {r['side']}x{r['side']} | "
            + " | ".join(f"{r['ms'][n]} | {r['vs_plain'][n]}" for n in names)
            + " | "
            + "; ".join(
                f"{n}: {f['frames_masked']} masked, lag {f['scan_lag']}, {f['pairs_moved']} moved"
                for n, f in r["found"].items()
            )
            + " |"
            for r in rows
        ),
    ]
    write_check(args.out, "masks_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
