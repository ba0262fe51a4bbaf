"""What the blend with smoothing costs (:mod:`stream.engine._blend`), measured:
``python -m benchmarks.blend_check``.

For the CPU default and each frame size: the time per frame through the engine (the
baseline), the time to apply a light, a typical and the heaviest blend of the grid to
its output (and one with the model's output on the frame binned 2 x 2: that pass
included), the time of one deferred measurement (the model on the frame plus a probe
at each noise-map scale -- five passes, the frame's own output reused -- both binned, and
every candidate's risk), the time of one measurement of a dark frame against the frame
before (photon counts at about a photon per pixel, where Stein's estimate does not hold:
the model at the other two noise-map scales and binned, no probe), and a series' first
frame served with its measurement taken first, all interleaved frame by frame in one run;
each as a ratio to the baseline. Writes ``blend_check.md`` (and ``.json``) beside the suites'
results.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, markdown_table, phantom_frames, write_check

SIZES = (128, 256, 512)
MODEL = "na-lite"
FRAMES = 16
#: A series' first frame, its measurement taken before it is served (the camera known).
FIRST = "first frame (engine + measurement + blend)"
#: The measurement's longest step (``SeriesContext.measure_step``): what a frame that
#: comes during it waits at most.
LONGEST = "measurement's longest step"
#: A dark frame measured against the frame before (``SeriesBlend._pair``).
PAIRED = "dark frame's measurement against the frame before"


def measure(side: int) -> dict[str, Any]:
    from stream.engine import (
        BlendChoice,
        CameraModel,
        Engine,
        SeriesContext,
        apply_blend,
        binned_output,
        shipped_model_path,
    )
    from stream.sim import PhantomConfig

    choices = {
        "light (output blur 0.5 px)": BlendChoice(0.5),
        "typical (0.3 x 1 px input)": BlendChoice(0.0, 1.0, 0.3),
        "heaviest (2.8 px blur + 0.5 x 2 px input)": BlendChoice(2.8, 2.0, 0.5),
        "binned (0.5 x the binned pass)": BlendChoice(0.0, 0.0, 0.5, "binned"),
    }
    frames = phantom_frames((side, side), FRAMES)
    camera = PhantomConfig.model_validate({}).noise  # the phantom's own
    # a photon counter's readouts of the same scenes at about a photon per pixel
    counter = CameraModel(gain=1.0, offset=100.0, read_noise=0.05)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {
        "engine": [],
        "measurement": [],
        LONGEST: [],
        PAIRED: [],
        FIRST: [],
        **{k: [] for k in choices},
    }
    with Engine(shipped_model_path(MODEL), provider="cpu", warmup_shape=(side, side)) as engine:
        for frame in frames:
            t0 = time.perf_counter()
            out = engine.denoise(frame, camera=camera)
            times["engine"].append(time.perf_counter() - t0)
            context = SeriesContext(camera)
            t0 = time.perf_counter()  # a series' first frame: measured before it is served
            context.denoise(engine, frame, 0, measure=False)
            times[FIRST].append(time.perf_counter() - t0)
            context.denoise(engine, frame, 1, measure=False)  # the next: measured later
            if not context.measurement_pending:
                raise RuntimeError("expected the series' second frame to be due a measurement")
            steps = []  # as the service takes it: a step at a time, in spare time
            while context.measurement_pending:
                t0 = time.perf_counter()
                context.measure_step(engine)
                steps.append(time.perf_counter() - t0)
            times["measurement"].append(sum(steps))
            times[LONGEST].append(max(steps))
            photons = np.maximum(frame - camera.offset, 0.0) / camera.gain
            photons *= 1.0 / max(float(photons.mean()), 1e-6)
            dark = SeriesContext(counter)
            for index in (0, 1):  # the first: measured at once, with no frame before it
                readout = (rng.poisson(photons) + counter.offset).astype(np.uint16)
                dark.denoise(engine, readout, index, measure=False)
            t0 = time.perf_counter()
            if not dark.measure_pending(engine) or dark.blend_frames_paired != 1:
                raise RuntimeError("expected the dark series' second frame measured on its pair")
            times[PAIRED].append(time.perf_counter() - t0)
            scene = frame.astype(np.float32)
            for name, choice in choices.items():
                t0 = time.perf_counter()
                binned = None
                if choice.source == "binned":  # the model once more, on a quarter of the pixels
                    binned = binned_output(engine, scene, camera, (), None)
                apply_blend(out, scene, choice, binned=binned)
                times[name].append(time.perf_counter() - t0)
    median = {k: float(np.median(v[1:])) * 1e3 for k, v in times.items()}  # past the first
    return {
        "side": side,
        "ms": {k: round(v, 2) for k, v in median.items()},
        "over_engine": {k: round(v / median["engine"], 3) for k, v in median.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    args = parser.parse_args(argv)
    rows = [measure(side) for side in SIZES]
    names = [k for k in rows[0]["ms"] if k != "engine"]
    columns = [("side", "frame side px"), ("ms.engine", "engine ms")] + [
        (f"{field}.{name}", f"{name} {label}")
        for name in names
        for field, label in (("ms", "ms"), ("over_engine", "x engine"))
    ]
    lines = [
        "# The blend with smoothing: what applying it and measuring it cost",
        "",
        f"{machine_info()['cpu_model']}, CPU provider, `{MODEL}`; {FRAMES} phantom frames per "
        "size (camera configured), engine, measurement and blends interleaved frame by "
        "frame; median ms per frame (x the engine's time per frame). A frame pays for "
        "the blend its series chose; a measurement runs on a few frames of a series, in "
        "its spare time (`stream.service._spare`), a step at a time (a frame that comes "
        "meanwhile waits for one step at most: the longest), but a series' first frame "
        "waits for its own when the camera's gain is known.",
        "",
        markdown_table(rows, columns),
    ]
    write_check(args.out, "blend_check", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
