"""Model candidates in the real engine, and how fast training pairs are generated.

``python -m benchmarks.model_candidates [--rounds N] [--candidates 8x16,...]`` times DnCNN
candidates of each depth x width on 256 x 256 frames through :class:`stream.engine.Engine`
on the CPU (how the shipped CPU model was chosen); ``--pairs`` measures training-pair
generation instead (patches per second, one process). Needs the train extra.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from exporter.data import DataConfig, NoiseConfig, PairDataset
from exporter.model import DnCNN, ModelSpec, parameter_count, receptive_field


def _busy_jiffies() -> int | None:
    """CPU time used by all processes so far (Linux ``/proc/stat``), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def time_candidates(candidates: list[ModelSpec], rounds: int, threads: int | None) -> None:
    """Export each candidate to ONNX and time it in the real engine on 256x256 frames.

    Candidates are timed in interleaved rounds of 10 frames, so a burst of load on a
    shared machine hits all of them alike. A round counts as *quiet* when the CPU time
    other processes used during it (``/proc/stat`` minus this process) stays under 10 %
    of one core; the table gives the median over all frames, over quiet rounds' frames,
    and the p90 of all frames.
    """
    import os
    import statistics
    import tempfile
    import time
    from pathlib import Path

    import numpy as np
    import onnx

    from stream.engine import Engine, ModelMetadata

    hz = os.sysconf("SC_CLK_TCK")
    frame = np.random.default_rng(0).normal(100.0, 5.0, (256, 256)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        engines = []
        for spec in candidates:
            model = DnCNN(spec).eval()
            last = model.body[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.normal_(last.weight, std=0.1)  # a zero last layer could be folded away
            path = Path(tmp) / f"d{spec.depth}w{spec.width}.onnx"
            _export_plain(model, path)
            proto = onnx.load(str(path))
            meta = ModelMetadata(architecture="dncnn", receptive_field=receptive_field(model))
            for key, value in meta.to_props().items():
                proto.metadata_props.add(key=key, value=value)
            onnx.save(proto, str(path))
            engine = Engine(path, provider="cpu", warmup_shape=(256, 256), intra_op_threads=threads)
            engines.append((spec, parameter_count(model), receptive_field(model), engine))
        runs: dict[ModelSpec, list[tuple[bool, list[float]]]] = {s: [] for s in candidates}
        for _ in range(rounds):
            for spec, _, _, engine in engines:
                engine.denoise(frame)
                run = []
                busy0, own0, t_start = _busy_jiffies(), os.times(), time.perf_counter()
                for _ in range(10):
                    t0 = time.perf_counter()
                    engine.denoise(frame)
                    run.append((time.perf_counter() - t0) * 1e3)
                busy1, own1 = _busy_jiffies(), os.times()
                quiet = True
                if busy0 is not None and busy1 is not None:
                    own = (own1.user + own1.system - own0.user - own0.system) * hz
                    quiet = (busy1 - busy0 - own) / hz < 0.1 * (time.perf_counter() - t_start)
                runs[spec].append((quiet, run))
        print(f"{'depth':>5} {'width':>5} {'params':>8} {'RF':>4}   all  quiet (rounds)   p90")
        for spec, params, field, engine in engines:
            flat = sorted(t for _, run in runs[spec] for t in run)
            calm = [t for q, run in runs[spec] for t in run if q]
            n_quiet = sum(q for q, _ in runs[spec])
            quiet_ms = f"{statistics.median(calm):6.1f}" if calm else "     -"
            print(
                f"{spec.depth:>5} {spec.width:>5} {params:>8} {field:>4} "
                f"{statistics.median(flat):6.1f} {quiet_ms} ({n_quiet:>2}/{len(runs[spec])}) "
                f"{flat[int(0.9 * (len(flat) - 1))]:6.1f}"
            )
            engine.close()


def _export_plain(model: nn.Module, path: object, opset: int = 17) -> None:
    """Bare ONNX export for timing (dynamic N, H, W); :mod:`exporter.export` is the real one."""
    import warnings

    axes = {0: "N", 2: "H", 3: "W"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is intended
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 1, 64, 64),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": axes},
            opset_version=opset,
            dynamo=False,
        )


def pair_rate(cfg: DataConfig, seconds: float) -> float:
    """Patches per second from one PairDataset iterator (this process, one thread)."""
    it = iter(PairDataset(cfg, seed=0))
    next(it)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        count += 1
    return count / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads")
    parser.add_argument(
        "--candidates",
        default="5x16,6x16,7x16,8x16,10x16,6x24,8x24,6x32,8x32",
        help="comma-separated DEPTHxWIDTH",
    )
    parser.add_argument("--pairs", action="store_true", help="time training-pair generation")
    parser.add_argument("--seconds", type=float, default=10.0, help="--pairs: how long")
    parser.add_argument("--recorded", type=Path, default=None, help="--pairs: a noise stack")
    args = parser.parse_args(argv)
    if args.pairs:
        noise = (
            NoiseConfig(source="recorded", recorded=args.recorded)
            if args.recorded
            else NoiseConfig()
        )
        rate = pair_rate(DataConfig(noise=noise), args.seconds)
        print(f"{rate:.0f} patches/s ({noise.source} noise)")
        return
    specs = []
    for text in args.candidates.split(","):
        depth, width = (int(v) for v in text.split("x"))
        specs.append(ModelSpec(depth, width))
    time_candidates(specs, args.rounds, args.threads)


if __name__ == "__main__":
    main()
