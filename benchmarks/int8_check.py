"""Static int8 of a model, measured: ``python -m benchmarks.int8_check [--model PATH]``.

Quantizes the model (default: the CPU default) with ONNX Runtime's static QDQ
quantization (uint8 activations, per-channel int8 weights), calibrated on frames of the
project's phantom at 1 to 1000 photons per pixel, then measures in the same run: the
median 256x256 frame time of the fp32 and int8 models through the engine (alternating,
twice each) and their PSNR with
``deepdenoise evaluate`` on both generators. Writes ``int8_check.md`` beside the suites'
results. Ship the int8 model only where it keeps the quality targets and is faster.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import check_parser, machine_info, machine_tag

#: Calibration: phantom frames at these photon budgets, 8 each, read out by this camera
#: (a noise-adaptive model sees every budget; its activations differ between them).
CALIBRATION_PHOTONS = (1.0, 10.0, 100.0, 1000.0)
CAMERA = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}


def quantize(source: Path, out: Path, photons: tuple[float, ...] = CALIBRATION_PHOTONS) -> Path:
    """``source`` as a static int8 (QDQ) model at ``out``, with ``source``'s metadata."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from stream.engine import Engine, model_input
    from stream.sim import CalciumPhantom, NoiseModel, PhantomConfig, frame_rng

    with Engine(source, provider="cpu", warmup_shape=None) as engine:
        meta = engine.metadata
    camera = NoiseModel(**CAMERA)
    frames = []
    for level in photons:
        config = PhantomConfig(shape=(128, 128), brightness=level, seed=3, noise=camera)
        phantom = CalciumPhantom(config, 8)
        frames += [phantom.noisy(t, frame_rng(3, t), "uint16") for t in range(8)]

    def units(frame: np.ndarray) -> np.ndarray:
        if meta.normalization == "adaptive" or meta.noise_map:
            stack = np.repeat(frame[None].astype(np.float32), meta.frames, axis=0)
            out_ = np.empty((meta.in_channels, *frame.shape), np.float32)
            model_input(stack, camera, meta.noise_map, out=out_)
            return out_[None]
        scaled = (frame.astype(np.float32) - meta.input_offset) / meta.input_scale
        return scaled[None, None]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{"x": units(f)} for f in frames])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    quantize_static(
        str(source), str(out), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
    )  # fmt: skip
    model = onnx.load(str(out))
    del model.metadata_props[:]
    for prop in onnx.load(str(source)).metadata_props:
        if prop.key != "deepdenoise.content_hash":  # another computation: another id
            model.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(model, str(out))
    return out


def frame_ms(path: Path, repeats: int = 60) -> float:
    """Median engine time of one 256x256 uint16 frame."""
    from stream.camera import CameraModel
    from stream.engine import Engine

    frame = (100 + np.random.default_rng(0).poisson(60, (256, 256)) * 2).astype(np.uint16)
    with Engine(path, provider="cpu", warmup_shape=(256, 256)) as engine:
        camera = CameraModel(**CAMERA) if engine.needs_camera else None
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            engine.denoise(frame, camera=camera)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def int8_instructions() -> list[str]:
    """The CPU's int8 dot-product extensions (VNNI, AMX), which decide whether int8 pays:
    without them ONNX Runtime's int8 kernels are no faster than its fp32 ones."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    return sorted(f for f in set(flags) if "vnni" in f or f.startswith("amx"))


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(__doc__)
    parser.add_argument("--model", type=Path, help="ONNX model (default: the CPU default)")
    args = parser.parse_args(argv)
    from exporter.evaluation import evaluate
    from stream.engine import default_model_path

    source = args.model or default_model_path("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantize(source, Path(tmp) / f"{source.stem}-int8.onnx")
        ms: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(2):  # alternating: a burst of load hits both
            ms["fp32"].append(frame_ms(source))
            ms["int8"].append(frame_ms(int8))
        result = evaluate([source, int8], Path(tmp) / "eval", frames=16, bm3d_frames=0,
                          figures=False)  # fmt: skip
    rows: list[dict[str, Any]] = []
    for r in result.results:
        fp32, q = r.scores[source.stem].psnr, r.scores[int8.stem].psnr
        rows.append({"generator": r.generator, "photons": r.photons, "fp32_db": round(fp32, 2),
                     "int8_db": round(q, 2), "delta_db": round(q - fp32, 2)})  # fmt: skip
    speed = {k: round(float(np.median(v)), 2) for k, v in ms.items()}
    cpu = {"model": machine_info()["cpu_model"], "int8_instructions": int8_instructions()}
    lines = [
        f"# int8 check: {source.name} (calibrated at "
        f"{', '.join(f'{p:g}' for p in CALIBRATION_PHOTONS)} photons)", "",
        f"256x256 frame, engine, CPU: fp32 {speed['fp32']} ms, int8 {speed['int8']} ms "
        f"({speed['fp32'] / speed['int8']:.2f}x); {cpu['model']}, int8 dot-product "
        f"instructions: {', '.join(cpu['int8_instructions']) or 'none (no VNNI/AMX)'}",
        "",
        "| generator | photons | fp32 PSNR | int8 PSNR | int8 - fp32 |", "|---|---|---|---|---|",
        *(f"| {r['generator']} | {r['photons']:g} | {r['fp32_db']} | {r['int8_db']} | "
          f"{r['delta_db']} |" for r in rows),
    ]  # fmt: skip
    folder = args.out / machine_tag()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "int8_check.md").write_text("\n".join(lines) + "\n")
    record = {"ms": ms, "rows": rows, "cpu": cpu}
    (folder / "int8_check.json").write_text(json.dumps(record, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
