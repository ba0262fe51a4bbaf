"""The GPU check in one command: ``python -m benchmarks.gpu_check [--dry-run]``.

Sized for under 8 minutes on a GPU machine, it runs, in order:

1. the ``gpu`` tests (``pytest -m gpu``);
2. the TensorRT engine build time for the GPU default model, with an empty engine cache
   and again with the cache it left (what a second start costs);
3. end-to-end latency (simulator -> service process -> subscriber) of the models a GPU
   would serve (:func:`gpu_models`: the defaults and ``na-large``) at 512x512 and
   2048x2048, at 100 fps and flat out, with CUDA and TensorRT; target: the GPU default
   at 512x512, 100 fps, p99 < 3 ms;
4. the inference suite (quick): ONNX Runtime against torch eager on the same GPU
   (target: ORT >= torch) and the roofline fraction against the measured dense-matmul
   rate (target >= 40 %).

Results go to ``benchmarks/results/<gpu tag>/`` (``gpu_check.json`` and ``.md`` beside the
suites' own files). Without a usable CUDA provider it says why and exits 2 (``--dry-run``
checks that everything it needs is here and exits 0: what a CPU machine can check).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import SuiteResult, Target, machine_tag, phantom_frames, print_result, write_result

OUT = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
SIZES = (512, 2048)
RATES = (100.0, 0.0)  # 0: flat out
FRAMES = {100.0: 300, 0.0: 200}
E2E_P99_TARGET_MS = 3.0


#: Trained for GPUs and shipped opt-in: measured beside the defaults, since which model
#: a GPU serves by default is decided by this check (README, "On a GPU").
GPU_CANDIDATE = "na-large"


def gpu_models() -> tuple[str, ...]:
    """The shipped models this check measures, each once."""
    from stream.engine import CPU_DEFAULT, GPU_DEFAULT

    return tuple(dict.fromkeys((GPU_DEFAULT, GPU_CANDIDATE, CPU_DEFAULT)))


def plan() -> list[str]:
    return [
        "pytest -m gpu",
        "TensorRT engine build: empty cache, then warm cache (GPU default model)",
        f"end to end: {', '.join(gpu_models())} x {SIZES} px x {RATES} fps (0 = flat out) x "
        "cuda, tensorrt",
        "inference suite (quick): ORT vs torch eager, roofline",
    ]


def ready() -> list[str]:
    """What is missing for the check (empty: ready)."""
    problems = []
    from stream.engine import shipped_model_path

    for name in gpu_models():
        try:
            shipped_model_path(name)
        except Exception as exc:
            problems.append(f"shipped model {name}: {exc}")
    for module in ("torch", "pytest"):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"{module} is not installed (pip install -e '.[test]' and torch)")
    return problems


def run_gpu_tests() -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = proc.stdout.strip().splitlines()[-15:]
    return {"exit_code": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "summary": tail}  # fmt: skip


def trt_build_times(model: Path) -> dict[str, Any]:
    from stream.engine import Engine, GpuConfig

    times: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="deepdenoise-trt-") as tmp:
        gpu = GpuConfig(cache_dir=Path(tmp))
        for label in ("empty_cache_s", "warm_cache_s"):
            t0 = time.perf_counter()
            with Engine(model, provider="tensorrt", warmup_shape=(512, 512), gpu=gpu) as engine:
                times[label] = round(time.perf_counter() - t0, 2)
                times["provider"] = engine.provider
    return times


def end_to_end(providers: list[str]) -> SuiteResult:
    from stream.engine import GPU_DEFAULT, shipped_model_path

    from ._service_run import run_service

    result = SuiteResult("gpu_end_to_end", "quick", {"sizes": SIZES, "rates": RATES})
    result.columns = [
        ("provider", "provider"),
        ("model", "model"),
        ("shape", "frame"),
        ("offered_fps", "offered"),
        ("achieved_fps", "fps"),
        ("frames_dropped", "dropped"),
        ("e2e_ms.p50", "p50 ms"),
        ("e2e_ms.p99", "p99 ms"),
        ("inside_ms.p99", "in-service p99"),
    ]
    for provider in providers:
        for name in gpu_models():
            model = shipped_model_path(name)
            for size in SIZES:
                pool = phantom_frames((size, size), 4)
                for fps in RATES:
                    try:
                        run = run_service(model, pool, FRAMES[fps], fps, provider=provider,
                                          mode="push", policy="block", timeout_s=60)  # fmt: skip
                    except Exception as exc:  # one failed cell must not end the check
                        result.skip(f"{provider} {name} {size} {fps}", repr(exc))
                        continue
                    result.rows.append({**run.row(), "model": name})
    for row in result.rows:
        if row["model"] == GPU_DEFAULT and row["shape"] == "512x512" and row["offered_fps"] == 100:
            result.targets.append(
                Target.below(
                    f"{GPU_DEFAULT} 512x512 e2e p99 at 100 fps ({row['provider']})",
                    row["e2e_ms"]["p99"],
                    E2E_P99_TARGET_MS,
                    "ms",
                    "",
                )
            )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--dry-run", action="store_true", help="check readiness, run nothing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from stream.engine import GPU_DEFAULT, probe_providers, shipped_model_path

    problems = ready()
    print("gpu check plan:\n  " + "\n  ".join(plan()))
    if problems:
        print("not ready:\n  " + "\n  ".join(problems))
        return 1
    gpu = [p for p in ("cuda", "tensorrt") if probe_providers()[p] is None]
    if args.dry_run:
        print(f"ready; usable GPU providers here: {gpu or 'none'} {probe_providers()}")
        return 0
    if "cuda" not in gpu:
        print(f"no usable CUDA provider: {probe_providers()['cuda']}; nothing measured")
        return 2
    out_dir = args.out / machine_tag()
    report: dict[str, Any] = {"machine_tag": machine_tag(), "providers": gpu}
    t0 = time.perf_counter()
    report["gpu_tests"] = run_gpu_tests()
    print(f"gpu tests: exit {report['gpu_tests']['exit_code']}", *report["gpu_tests"]["summary"],
          sep="\n  ")  # fmt: skip
    if "tensorrt" in gpu:
        try:
            report["tensorrt_build"] = trt_build_times(shipped_model_path(GPU_DEFAULT))
        except Exception as exc:
            report["tensorrt_build"] = {"error": repr(exc)}
        print(f"TensorRT build: {report['tensorrt_build']}")
    e2e = end_to_end(gpu)
    print_result(e2e)
    write_result(e2e, out_dir)
    from .inference import run as inference

    with tempfile.TemporaryDirectory() as tmp:
        inf = inference(level="quick", out_dir=out_dir, work=Path(tmp), providers=gpu)
    print_result(inf)
    write_result(inf, out_dir)
    report["targets"] = [t.__dict__ for t in e2e.targets + inf.targets]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"# GPU check on `{machine_tag()}`", "", f"{report['seconds']} s", ""]
    lines += [f"- {t['name']}: {t['measured']} (wanted {t['target']})" for t in report["targets"]]
    (out_dir / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print(f"results in {out_dir}")
    return 0 if report["gpu_tests"]["exit_code"] in (0, 5) else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
