"""Can ``adapt`` tell, without clean data, whether adaptation helped?

``python -m benchmarks.adapt_risk_check MODEL.onnx [MODEL.onnx ...] --photons 1``

For each model, on frames of the independent evaluation generator, prints the estimate
of the mean squared error that ``adapt`` uses to choose what it hands back
(:mod:`exporter.adapt._risk`, PG-URE: the noisy frames and the camera only) next to the
true MSE against the clean frames. The estimate is unbiased under the Poisson-Gaussian
camera but carries the sampling noise of a few hundred pixels per frame; models scored on
the same frames move the same pixels, so what matters is whether it *ranks* them as the
truth does. ``--estimated-camera`` uses the camera estimated from the movie, as ``adapt``
does when none is given.
An exploratory measurement, not a suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from exporter.adapt import Recording, estimate_camera, estimated_mse
    from exporter.evaluation import make_movie
    from stream.camera import CameraModel
    from stream.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--photons", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=3, help="test movie seed")
    parser.add_argument(
        "--estimated-camera", action="store_true",
        help="estimate the camera from the movie, as adapt does (default: the true one)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    test = make_movie(args.photons, shape=(256, 256), frames=40, seed=args.seed)
    camera = CameraModel(gain=test.gain, offset=test.offset, read_noise=test.read_noise)
    if args.estimated_camera:
        camera = estimate_camera(Recording(test.noisy, np.ones(len(test.noisy), bool), "movie"))
    print(f"camera: {camera}")
    frames, clean = test.noisy[::5], test.clean[::5]
    print(f"independent generator, {args.photons:g} photons, {len(frames)} frames 256x256")
    for path in args.models:
        with Engine(path, provider="cpu", warmup_shape=None) as engine:
            estimate = estimated_mse(engine, frames, camera)
            truth = np.mean(
                [
                    np.mean((engine.denoise(y.astype(np.float32), camera=camera) - c) ** 2)
                    for y, c in zip(frames, clean, strict=True)
                ]
            )
        print(f"{path.name:40s} estimate {estimate:10.3f}   true MSE {float(truth):10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
