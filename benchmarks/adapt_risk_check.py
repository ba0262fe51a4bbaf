"""Can ``adapt`` tell, without clean data, whether adaptation helped?

``python -m benchmarks.adapt_risk_check MODEL.onnx [MODEL.onnx ...] --photons 1``

For each model, on frames of the independent evaluation generator, prints a Monte-Carlo
SURE estimate of the mean squared error (Ramani et al. 2008, with the camera's per-pixel
variance ``gain * (y - offset) + read**2`` as a heteroscedastic Gaussian: the noisy
frames and the camera only) next to the true MSE against the clean frames. The estimate
carries a bias from the Gaussian approximation of shot noise, the same for every model on
the same frames, so what matters is whether it *ranks* the models as the truth does:
the check ``adapt`` needs before it hands back a model worse than the one it started from.
An exploratory measurement, not a suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def sure_mse(engine: object, frames: np.ndarray, camera: object, seed: int = 0) -> float:
    """Mean over ``frames`` of the MC-SURE estimate of the per-pixel MSE (ADU²)."""
    from stream.camera import CameraModel
    from stream.engine import Engine

    assert isinstance(engine, Engine) and isinstance(camera, CameraModel)
    rng = np.random.default_rng(seed)
    total = 0.0
    for raw in frames:
        y = raw.astype(np.float32)
        var = camera.gain * np.maximum(y - camera.offset, 0.0) + camera.read_noise**2
        f = engine.denoise(y, camera=camera)
        eps = 0.05 * float(np.sqrt(np.median(var)))  # a ReLU network is piecewise linear
        probe = rng.standard_normal(y.shape).astype(np.float32)
        divergence = np.sum(var * probe * (engine.denoise(y + eps * probe, camera=camera) - f))
        total += float(np.sum((f - y) ** 2) - np.sum(var) + 2.0 * divergence / eps) / y.size
    return total / len(frames)


def main(argv: list[str] | None = None) -> int:
    from exporter.evaluation import make_movie
    from stream.camera import CameraModel
    from stream.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--photons", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=3, help="test movie seed")
    args = parser.parse_args(argv)
    test = make_movie(args.photons, shape=(256, 256), frames=40, seed=args.seed)
    camera = CameraModel(gain=test.gain, offset=test.offset, read_noise=test.read_noise)
    frames, clean = test.noisy[::5], test.clean[::5]
    print(f"independent generator, {args.photons:g} photons, {len(frames)} frames 256x256")
    for path in args.models:
        with Engine(path, provider="cpu", warmup_shape=None) as engine:
            estimate = sure_mse(engine, frames, camera)
            truth = np.mean(
                [
                    np.mean((engine.denoise(y.astype(np.float32), camera=camera) - c) ** 2)
                    for y, c in zip(frames, clean, strict=True)
                ]
            )
        print(f"{path.name:40s} SURE {estimate:10.3f}   true MSE {float(truth):10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
