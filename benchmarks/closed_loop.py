"""Closed loop: acquisition stamp -> the subscriber holds the denoised pixels, as a rig would.

A closed-loop rig publishes frames (PUB, as acquisition software does), the service
runs with its live defaults (``drop_oldest``: it never falls behind, it drops and
counts), and the rig's subscriber acts on each denoised frame. Measured at 30, 100
and 500 fps for the identity model (the floor: everything but the model) and
``dncnn-lite`` (the CPU default) on the best usable provider; the baseline in the
same run is the identity model's distribution. Output: percentiles and a latency
histogram per model with the three rates overlaid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    Level,
    SuiteResult,
    new_figure,
    phantom_frames,
    plain_log_axis,
    save_figure,
    shape_label,
)
from ._models import resolve_models
from ._service_run import run_service

RATES = (30.0, 100.0, 500.0)


@dataclass
class Settings:
    sizes: list[int]
    models: list[str]
    rates: list[float]
    seconds: float
    min_frames: int
    pool: int = 8

    @classmethod
    def for_level(cls, level: Level) -> Settings:
        models = ["identity", "dncnn-lite"]
        if level == "tiny":
            return cls([64], ["identity"], [100.0, 500.0], 0.1, 10, pool=4)
        if level == "quick":
            return cls([256], models, list(RATES), 1.0, 30)
        return cls([256, 512], models, list(RATES), 10.0, 300)


def run(
    level: Level,
    out_dir: Path,
    work: Path,
    providers: list[str],
    overrides: dict[str, Path] | None = None,
    **_: Any,
) -> SuiteResult:
    s = Settings.for_level(level)
    provider = providers[0]
    result = SuiteResult("closed_loop", level, {**asdict(s), "provider": provider})
    result.columns = [
        ("model", "model"),
        ("shape", "frame"),
        ("offered_fps", "offered"),
        ("achieved_fps", "fps"),
        ("frames_sent", "sent"),
        ("frames_dropped", "dropped"),
        ("e2e_ms.p50", "p50 ms"),
        ("e2e_ms.p90", "p90"),
        ("e2e_ms.p99", "p99"),
        ("e2e_ms.p99.9", "p99.9"),
        ("e2e_ms.max", "max"),
        ("x_identity_p99", "p99 x identity"),
    ]
    models, missing = resolve_models(s.models, work, overrides)
    for name, reason in missing:
        result.skip(name, reason)
    samples: dict[tuple[str, str, float], np.ndarray] = {}
    for size in s.sizes:
        pool = phantom_frames((size, size), s.pool)
        for model in models:
            for fps in s.rates:
                frames = max(s.min_frames, int(fps * s.seconds))
                svc = run_service(
                    model.path,
                    pool,
                    frames,
                    fps,
                    provider=provider,
                    mode="pub",
                    policy="drop_oldest",
                )
                row = {**svc.row(), "model": model.name}
                base = samples.get(("identity", shape_label((size, size)), fps))
                if base is not None and base.size and svc.e2e_ms.size:
                    row["x_identity_p99"] = round(
                        float(np.percentile(svc.e2e_ms, 99) / np.percentile(base, 99)), 2
                    )
                samples[(model.name, row["shape"], fps)] = svc.e2e_ms
                result.rows.append(row)
    _figure(result, out_dir, samples)
    return result


def _figure(
    result: SuiteResult, out_dir: Path, samples: dict[tuple[str, str, float], np.ndarray]
) -> None:
    panels = sorted({(m, shape) for m, shape, _ in samples})
    if not panels:
        return
    fig, axes = new_figure(len(panels), width=5.0)
    for ax, (model, shape) in zip(axes, panels, strict=True):
        data = {fps: v for (m, sh, fps), v in samples.items() if (m, sh) == (model, shape)}
        finite = np.concatenate([v for v in data.values() if v.size] or [np.ones(1)])
        lo, hi = max(finite.min(), 1e-2), max(finite.max(), 1e-1)
        bins = np.geomspace(lo, hi * 1.01, 40)
        for fps, values in sorted(data.items()):
            if values.size:
                ax.hist(
                    values,
                    bins=bins,
                    histtype="step",
                    lw=1.5,
                    label=f"{fps:g} fps (n={values.size})",
                )
        plain_log_axis(ax)
        ax.set_xlabel("stamp -> pixels in hand (ms)")
        ax.set_ylabel("frames")
        ax.set_title(f"{model}, {shape}")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, result, out_dir, "closed_loop")
