"""Inference: ONNX Runtime against torch eager on the same weights, device and input.

Per provider, model, frame size and precision (fp32, and the fp16 file the exporter
would write):

- ``ort``: the bare ONNX Runtime session on one ``[1, 1, H, W]`` normalised frame,
  through an IO binding (on a GPU the tensors stay on the device, as torch's do);
- ``torch``: the same weights rebuilt as a torch module from the ONNX graph
  (:func:`benchmarks._models.torch_from_onnx`), eager, ``inference_mode``, the same
  input on the same device, the same thread count; outputs are compared (max abs
  difference, model units);
- ``engine``: the production path, ``Engine.denoise`` (normalise, reflect-pad,
  whole or tiled, blend) with the default tile plan, and with a forced 2 x 2 tiling,
  with each plan's overhead (pixels computed / pixels output).

On a GPU the achieved FLOP/s are compared with the device's measured dense-matmul
rate at the same precision (the roofline fraction). Target: ORT >= 1.2x torch eager
on the CPU for ``dncnn-lite`` and ``dncnn20`` (fp32, every frame size run).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    Level,
    SuiteResult,
    Target,
    new_figure,
    percentiles,
    phantom_frames,
    save_figure,
    shape_label,
    time_calls,
)
from ._models import ModelFile, fp16_variant, read_conv_stack, resolve_models, torch_from_onnx

log = logging.getLogger(__name__)

TARGET_SPEEDUP = 1.2
TARGET_MODELS = ("dncnn-lite", "dncnn20")


@dataclass
class Settings:
    sizes: list[int]
    models: list[str]
    min_reps: int
    max_reps: int
    budget_s: float  # timed calls per measurement, at most (min_reps always run)
    max_frame_ms: float  # skip a size predicted slower than this (slowest variant)
    torch_fp16_on_cpu: bool
    tiled: bool
    matmul_n: int = 4096

    @classmethod
    def for_level(cls, level: Level) -> Settings:
        if level == "tiny":
            return cls(
                sizes=[64],
                models=["identity"],
                min_reps=2,
                max_reps=3,
                budget_s=0.2,
                max_frame_ms=1000.0,
                torch_fp16_on_cpu=True,
                tiled=True,
                matmul_n=512,
            )
        models = ["identity", "dncnn-lite", "dncnn20"]
        if level == "quick":
            return cls(
                sizes=[256, 512],
                models=models,
                min_reps=2,
                max_reps=20,
                budget_s=1.0,
                max_frame_ms=1500.0,
                torch_fp16_on_cpu=False,
                tiled=True,
            )
        return cls(
            sizes=[256, 512, 1024, 2048],
            models=models,
            min_reps=5,
            max_reps=100,
            budget_s=5.0,
            max_frame_ms=15000.0,
            torch_fp16_on_cpu=True,
            tiled=True,
        )


def threads() -> int:
    """Threads given to both ONNX Runtime and torch: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------------ measurements
def _ort_session(path: Path, provider: str) -> Any:
    import onnxruntime as ort

    from stream.engine import select_providers

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads()
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(path), sess_options=options, providers=list(select_providers(provider).providers)
    )


def ort_bare(
    path: Path, provider: str, x: np.ndarray, s: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """(ms per call, output) of the bare session on ``x`` via an IO binding."""
    import onnxruntime as ort

    session = _ort_session(path, provider)
    device = "cpu" if provider == "cpu" else "cuda"
    binding = session.io_binding()
    x_value = ort.OrtValue.ortvalue_from_numpy(x, device, 0)
    y_value = ort.OrtValue.ortvalue_from_shape_and_type(x.shape, np.float32, device, 0)
    binding.bind_ortvalue_input(session.get_inputs()[0].name, x_value)
    binding.bind_ortvalue_output(session.get_outputs()[0].name, y_value)
    times = time_calls(
        lambda: session.run_with_iobinding(binding),
        min_reps=s.min_reps,
        max_reps=s.max_reps,
        budget_s=s.budget_s,
    )
    return times, y_value.numpy()


def torch_eager(
    path: Path, device: str, half: bool, x: np.ndarray, s: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """(ms per call, output as float32) of the torch twin on ``x``."""
    import torch

    torch.set_num_threads(threads())
    dtype = torch.float16 if half else torch.float32
    model = torch_from_onnx(path).to(device=device, dtype=dtype)
    xt = torch.from_numpy(x).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out: list[Any] = []

    def call() -> None:
        with torch.inference_mode():
            out[:] = [model(xt)]
        sync()

    times = time_calls(call, min_reps=s.min_reps, max_reps=s.max_reps, budget_s=s.budget_s)
    return times, out[0].float().cpu().numpy()


def engine_times(
    path: Path,
    provider: str,
    frame: np.ndarray,
    tile: int | None,
    overlap: int | None,
    s: Settings,
) -> tuple[np.ndarray, Any]:
    """(ms per ``Engine.denoise``, the tile plan used) for one frame shape."""
    from stream.engine import Engine

    shape = (int(frame.shape[0]), int(frame.shape[1]))
    with Engine(
        path,
        provider=provider,
        tile=tile,
        overlap=overlap,
        warmup_shape=shape,
        intra_op_threads=threads(),
    ) as engine:
        plan = engine.plan_for(shape)
        times = time_calls(
            lambda: engine.denoise(frame),
            min_reps=s.min_reps,
            max_reps=s.max_reps,
            budget_s=s.budget_s,
            warmup=0,
        )
    return times, plan


def matmul_tflops(provider: str, n: int, half: bool) -> float:
    """Dense matmul rate (TFLOP/s) of this GPU through ONNX Runtime's CUDA provider."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from stream.engine import select_providers

    elem = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(v, elem, [n, n]) for v in "ab"],
        [helper.make_tensor_value_info("c", elem, [n, n])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto)
    session = ort.InferenceSession(
        proto.SerializeToString(), providers=list(select_providers("cuda").providers)
    )
    dtype = np.float16 if half else np.float32
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    for name in "ab":
        value = ort.OrtValue.ortvalue_from_numpy(
            rng.random((n, n), dtype=np.float32).astype(dtype), "cuda", 0
        )
        binding.bind_ortvalue_input(name, value)
    binding.bind_output("c", "cuda")
    times = time_calls(
        lambda: session.run_with_iobinding(binding),
        min_reps=10,
        max_reps=50,
        budget_s=2.0,
        warmup=3,
    )
    return 2 * n**3 / (float(np.median(times)) / 1e3) / 1e12


# ------------------------------------------------------------------ the suite
def run(
    level: Level,
    out_dir: Path,
    work: Path,
    providers: list[str],
    overrides: dict[str, Path] | None = None,
    **_: Any,
) -> SuiteResult:
    s = Settings.for_level(level)
    result = SuiteResult(
        "inference", level, {**asdict(s), "providers": providers, "threads": threads()}
    )
    result.columns = [
        ("model", "model"),
        ("provider", "prov"),
        ("precision", "prec"),
        ("shape", "frame"),
        ("ort_ms.p50", "ort ms"),
        ("torch_ms.p50", "torch ms"),
        ("speedup", "ort x torch"),
        ("max_abs_diff", "|ort-torch|"),
        ("engine_ms.p50", "engine ms"),
        ("plan_overhead", "ovh"),
        ("tiled_ms.p50", "2x2 tiled ms"),
        ("tiled_overhead", "tiled ovh"),
        ("roofline", "roofline"),
    ]
    torch: Any = None
    try:
        import torch
    except ImportError as exc:
        result.skip("torch eager baseline", f"torch is not installed ({exc})")
    models, missing = resolve_models(s.models, work, overrides)
    for name, reason in missing:
        result.skip(name, reason)
    for provider in providers:
        gpu = provider != "cpu"
        device = "cuda" if gpu else "cpu"
        torch_ok = torch is not None and (not gpu or torch.cuda.is_available())
        if torch is not None and not torch_ok:
            result.skip(f"torch on {provider}", "torch has no CUDA device here")
        peak: dict[bool, float | None] = {}
        if gpu:
            for half in (False, True):
                try:
                    peak[half] = matmul_tflops(provider, s.matmul_n, half)
                except Exception as exc:
                    peak[half] = None
                    result.skip(f"matmul roofline {'fp16' if half else 'fp32'}", repr(exc))
            result.settings[f"matmul_tflops_{provider}"] = {
                "fp32": peak.get(False),
                "fp16": peak.get(True),
            }
        for model in models:
            _model_rows(result, s, model, provider, device, torch_ok, peak, work)
    _targets(result)
    _figure(result, out_dir)
    return result


def _model_rows(
    result: SuiteResult,
    s: Settings,
    model: ModelFile,
    provider: str,
    device: str,
    torch_ok: bool,
    peak: dict[bool, float | None],
    work: Path,
) -> None:
    from stream.engine import ModelMetadata

    stack = read_conv_stack(model.path)
    meta = ModelMetadata.from_props(_session_props(model.path))
    variants = [("fp32", model), ("fp16", fp16_variant(model, work))]
    slowest: tuple[int, float] | None = None  # (pixels, ms) of the previous size
    for size in s.sizes:
        shape = (size, size)
        if slowest is not None and slowest[1] * size * size / slowest[0] > s.max_frame_ms:
            result.skip(
                f"{model.name} {shape_label(shape)} on {provider}",
                f"predicted > {s.max_frame_ms:.0f} ms per frame",
            )
            continue
        frame = phantom_frames(shape, 1)[0]
        x = ((frame.astype(np.float32) - meta.input_offset) / meta.input_scale)[None, None]
        x = np.ascontiguousarray(x, dtype=np.float32)
        worst = 0.0
        for precision, variant in variants:
            row: dict[str, Any] = {
                "model": model.name,
                "provider": provider,
                "precision": precision,
                "shape": shape_label(shape),
            }
            ort_ms, ort_out = ort_bare(variant.path, provider, x, s)
            row["ort_ms"] = percentiles(ort_ms)
            worst = max(worst, float(np.median(ort_ms)))
            if torch_ok and (device == "cuda" or precision == "fp32" or s.torch_fp16_on_cpu):
                torch_ms, torch_out = torch_eager(model.path, device, precision == "fp16", x, s)
                row["torch_ms"] = percentiles(torch_ms)
                row["speedup"] = round(float(np.median(torch_ms) / np.median(ort_ms)), 3)
                row["max_abs_diff"] = float(np.max(np.abs(torch_out - ort_out)))
                worst = max(worst, float(np.median(torch_ms)))
            engine_ms, plan = engine_times(variant.path, provider, frame, None, None, s)
            row.update(
                engine_ms=percentiles(engine_ms),
                plan_tiles=plan.n_tiles,
                plan_whole=plan.is_whole,
                plan_overhead=round(plan.overhead, 3),
            )
            if s.tiled:
                from stream.engine import default_tile_overlap

                _, overlap = default_tile_overlap(meta.radius)
                tiled_ms, tplan = engine_times(
                    variant.path, provider, frame, size // 2 + overlap, overlap, s
                )
                row.update(
                    tiled_ms=percentiles(tiled_ms),
                    tiled_tiles=tplan.n_tiles,
                    tiled_overhead=round(tplan.overhead, 3),
                )
            flops = stack.flops_per_pixel() * size * size
            row["gflop_per_frame"] = round(flops / 1e9, 4)
            row["achieved_tflops"] = round(flops / (float(np.median(ort_ms)) / 1e3) / 1e12, 4)
            rate = peak.get(precision == "fp16")
            if rate:
                row["matmul_tflops"] = round(rate, 2)
                row["roofline"] = round(row["achieved_tflops"] / rate, 4)
            result.rows.append(row)
        slowest = (size * size, worst)


def _session_props(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _targets(result: SuiteResult) -> None:
    for name in TARGET_MODELS:
        rows = [
            r
            for r in result.rows
            if r["model"] == name
            and r["provider"] == "cpu"
            and r["precision"] == "fp32"
            and "speedup" in r
        ]
        if rows:
            worst = min(rows, key=lambda r: r["speedup"])
            per = ", ".join(f"{r['shape']}: {r['speedup']:.2f}" for r in rows)
            detail = f"fp32, bare session vs eager module, worst of {per}"
            measured: float | None = worst["speedup"]
        else:
            detail, measured = "not run here (model or torch missing)", None
        result.targets.append(
            Target.at_least(
                f"ORT CPU / torch eager CPU, {name}", measured, TARGET_SPEEDUP, "x", detail
            )
        )


def _figure(result: SuiteResult, out_dir: Path) -> None:
    rows = [r for r in result.rows if r["precision"] == "fp32"]
    if not rows:
        return
    fig, (ax,) = new_figure(1, width=8.0)
    labels = [f"{r['model']}\n{r['shape']} {r['provider']}" for r in rows]
    series = [
        ("ort_ms", "ORT"),
        ("torch_ms", "torch eager"),
        ("engine_ms", "Engine"),
        ("tiled_ms", "Engine 2x2 tiled"),
    ]
    width = 0.8 / len(series)
    for j, (key, label) in enumerate(series):
        values = [r.get(key, {}).get("p50", 0) or 0 for r in rows]
        ax.bar(np.arange(len(rows)) + j * width, values, width, label=label)
    ax.set_xticks(np.arange(len(rows)) + width * (len(series) - 1) / 2, labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("ms per frame (median, fp32)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    save_figure(fig, result, out_dir, "inference")
