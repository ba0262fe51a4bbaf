"""End to end: publisher stamp -> ``stream.Service`` denoises -> subscriber holds the pixels.

Sweeps frame size, model, provider, offered rate and Zarr on/off. Baseline, in the
same run: the *pure inference* time of the same model on the same frame shape and
provider (``Engine.denoise`` alone in this process, median), called at the same rate
as the frames arrive (back to back for flat-out rows): after an idle gap a call finds
cold caches and sleeping cores and costs several times a back-to-back call, which is
the model's cost, not the service's. Every frame's *service overhead* is its
end-to-end latency minus that median — the cost of sockets, queues, threads and the
store around the model, the two loopback hops included (the transport suite's relay
rows measure those alone). Target: p99 overhead < 1 ms at 100 fps (identity model,
Zarr off, frames up to 512x512).

Rates: a fixed rate runs with the live overflow policy (``drop_oldest``: a model
slower than the rate drops frames, counted); flat out ("max") runs lossless
(``block``), so its fps is what the service sustains and its latency is mostly
backlog. A model whose frame takes longer than ``heavy_ms`` here (a large model on a CPU)
runs flat out only, on a few frames, and its rows say so; one predicted to exceed
``max_inference_ms`` is skipped.
"""

from __future__ import annotations

import logging
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
from ._models import ModelFile, resolve_models
from ._service_run import run_service

log = logging.getLogger(__name__)

TARGET_OVERHEAD_MS = 1.0
TARGET_FPS = 100.0
TARGET_MAX_SIDE = 512
TARGET_ZARR_FPS = 300.0


@dataclass
class Settings:
    sizes: list[int]
    models: list[str]
    rates: list[float]  # 0: flat out
    zarr_models: list[str]  # models also run with Zarr on
    seconds: float  # per paced run
    min_frames: int
    flat_bytes: float  # per flat-out run, at most ...
    flat_seconds: float  # ... and at most this long at the model's pure inference rate
    max_frames: int
    heavy_ms: float  # slower per frame than this: flat out only, heavy_frames frames
    heavy_frames: int
    max_inference_ms: float  # slower than this: skipped
    inference_budget_s: float
    pool: int = 8
    zarr_target_side: int = 512  # the Zarr-on fps target's frame side
    #: Paced loss-window runs: several flush periods at the 2 s default (not in tiny).
    loss_window_s: float = 10.0

    @classmethod
    def for_level(cls, level: Level) -> Settings:
        common: dict[str, Any] = {"heavy_ms": 100.0}
        if level == "tiny":
            return cls(
                sizes=[64],
                models=["identity"],
                rates=[TARGET_FPS, 0.0],
                zarr_models=["identity"],
                seconds=0.2,
                min_frames=10,
                flat_bytes=1e6,
                flat_seconds=0.5,
                max_frames=40,
                heavy_frames=3,
                max_inference_ms=1000.0,
                inference_budget_s=0.2,
                pool=4,
                zarr_target_side=64,
                loss_window_s=0.3,
                **common,
            )
        models = ["identity", "na-lite"]
        if level == "quick":
            return cls(
                sizes=[256, 512],
                models=models,
                rates=[TARGET_FPS, 0.0],
                zarr_models=["identity"],
                seconds=1.0,
                min_frames=30,
                flat_bytes=40e6,
                flat_seconds=2.0,
                max_frames=400,
                heavy_frames=5,
                max_inference_ms=1000.0,
                inference_budget_s=1.5,
                **common,
            )
        return cls(
            sizes=[256, 512, 1024, 2048],
            models=models,
            rates=[30.0, TARGET_FPS, 0.0],
            zarr_models=models,
            seconds=10.0,
            min_frames=100,
            flat_bytes=600e6,
            flat_seconds=20.0,
            max_frames=3000,
            heavy_frames=20,
            max_inference_ms=3000.0,
            inference_budget_s=5.0,
            **common,
        )


def pure_inference_ms(
    model: Path, provider: str, pool: np.ndarray, budget_s: float, fps: float = 0.0
) -> np.ndarray:
    """Per-frame ``Engine.denoise`` times (ms) of this model on these frames, alone,
    one call per ``1 / fps`` seconds (0: back to back)."""
    from stream.engine import Engine
    from stream.sim import PhantomConfig

    shape = (int(pool.shape[1]), int(pool.shape[2]))
    with Engine(model, provider=provider, warmup_shape=shape) as engine:
        # a noise-adaptive model gets the pool's camera (the phantom's), as if configured
        adaptive = engine.metadata.normalization == "adaptive"
        camera = PhantomConfig.model_validate({}).noise if adaptive else None
        history = [pool[0]] * (engine.metadata.frames - 1)
        mean = pool[0].astype(np.float32) if engine.metadata.running_mean > 0 else None
        frames = iter(range(10**9))
        return time_calls(
            lambda: engine.denoise(
                pool[next(frames) % len(pool)], camera=camera, history=history, running_mean=mean
            ),
            min_reps=3,
            max_reps=200,
            budget_s=budget_s,
            warmup=0,
            period_s=1.0 / fps if fps > 0 else 0.0,
        )


def run(
    level: Level,
    out_dir: Path,
    work: Path,
    providers: list[str],
    overrides: dict[str, Path] | None = None,
    **_: Any,
) -> SuiteResult:
    s = Settings.for_level(level)
    result = SuiteResult("end_to_end", level, {**asdict(s), "providers": providers})
    result.columns = [
        ("model", "model"),
        ("provider", "prov"),
        ("shape", "frame"),
        ("offered_fps", "offered"),
        ("zarr", "zarr"),
        ("achieved_fps", "fps"),
        ("frames_dropped", "dropped"),
        ("keeps_up", "keeps up"),
        ("inference_ms.p50", "infer ms"),
        ("e2e_ms.p50", "p50"),
        ("e2e_ms.p90", "p90"),
        ("e2e_ms.p99", "p99"),
        ("e2e_ms.p99.9", "p99.9"),
        ("e2e_ms.max", "max"),
        ("overhead_ms.p50", "ovh p50"),
        ("overhead_ms.p99", "ovh p99"),
    ]
    models, missing = resolve_models(s.models, work, overrides)
    for name, reason in missing:
        result.skip(name, reason)
    for provider in providers:
        for model in models:
            _sweep(result, s, model, provider)
    _target(result)
    _zarr_target(result, s.zarr_target_side)
    _loss_window(result, s, models, providers[0])
    result.notes.append(
        "latency = subscriber receive time (pixels in hand) - simulator send stamp, one clock; "
        "the service runs in its own process; overhead = latency - median pure "
        "Engine.denoise time of the same model, shape and provider measured in this run at "
        "the same rate ('infer ms'; back to back for 'max' rows); 'max' rows are lossless "
        "(block) and their latency is backlog, their fps what the service sustains; "
        "fps_incl_flush adds the store flush"
    )
    _figure(result, out_dir)
    return result


def _sweep(result: SuiteResult, s: Settings, model: ModelFile, provider: str) -> None:
    last: tuple[int, float] | None = None  # (pixels, inference ms) of the previous size
    for size in s.sizes:
        shape = (size, size)
        what = f"{model.name} {shape_label(shape)} on {provider}"
        if last is not None and last[1] * size * size / last[0] > s.max_inference_ms:
            result.skip(what, f"predicted > {s.max_inference_ms:.0f} ms per frame")
            continue
        pool = phantom_frames(shape, s.pool)
        infer = pure_inference_ms(model.path, provider, pool, s.inference_budget_s)
        median = float(np.median(infer))
        last = (size * size, median)
        if median > s.max_inference_ms:
            result.skip(what, f"{median:.0f} ms per frame > {s.max_inference_ms:.0f} ms")
            continue
        heavy = median > s.heavy_ms
        rates = [0.0] if heavy else s.rates
        zarr_options = [False, True] if model.name in s.zarr_models and not heavy else [False]
        baselines = {  # per rate, shared by the Zarr on and off runs
            fps: pure_inference_ms(model.path, provider, pool, s.inference_budget_s, fps)
            if fps
            else infer
            for fps in rates
        }
        for zarr in zarr_options:
            for fps in rates:
                if fps:
                    frames = max(s.min_frames, int(fps * s.seconds))
                elif heavy:
                    frames = s.heavy_frames
                else:
                    by_bytes = s.flat_bytes / (size * size * 2)
                    by_time = s.flat_seconds * 1e3 / max(median, 1e-3)
                    frames = int(np.clip(min(by_bytes, by_time), s.min_frames, s.max_frames))
                svc = run_service(
                    model.path,
                    pool,
                    frames,
                    fps,
                    provider=provider,
                    zarr=zarr,
                    policy="drop_oldest" if fps else "block",
                    timeout_s=max(30.0, 5 * median / 1e3),
                )
                base = baselines[fps]
                row = svc.row()
                row.update(
                    model=model.name,
                    inference_ms=percentiles(base),
                    inference_back_to_back_ms=percentiles(infer),
                    overhead_ms=percentiles(svc.e2e_ms - float(np.median(base))),
                    keeps_up=bool(fps == 0 or median < 1e3 / fps),
                    heavy=heavy,
                )
                result.rows.append(row)
        if heavy:
            result.notes.append(
                f"{what}: {median:.0f} ms per frame, so flat out only, {s.heavy_frames} frames"
            )


def _target(result: SuiteResult) -> None:
    cands = [
        r
        for r in result.rows
        if r["model"] == "identity"
        and r["offered_fps"] == TARGET_FPS
        and not r["zarr"]
        and int(r["shape"].split("x")[0]) <= TARGET_MAX_SIDE
        and r["overhead_ms"].get("n")
    ]
    if not cands:
        result.targets.append(
            Target.below(
                "p99 service overhead at 100 fps",
                None,
                TARGET_OVERHEAD_MS,
                "ms",
                "no identity run at 100 fps with Zarr off",
            )
        )
        return
    worst = max(cands, key=lambda r: r["overhead_ms"]["p99"])
    per = ", ".join(f"{r['shape']} {r['provider']}: {r['overhead_ms']['p99']:.2f}" for r in cands)
    result.targets.append(
        Target.below(
            "p99 service overhead at 100 fps",
            worst["overhead_ms"]["p99"],
            TARGET_OVERHEAD_MS,
            "ms",
            f"identity model, Zarr off, worst of {per}",
        )
    )


def _zarr_target(result: SuiteResult, side: int) -> None:
    """Identity, ``side``² (512² but in tiny runs), Zarr on, flat out: frames per second
    until the store holds every frame (flush included), and 0 if any frame was dropped."""
    name = f"Zarr on, {side}x{side}: sustained fps, zero drops"
    rows = [
        r
        for r in result.rows
        if r["model"] == "identity"
        and r["zarr"]
        and r["offered_fps"] == "max"
        and r["shape"] == f"{side}x{side}"
    ]
    if not rows:
        result.targets.append(
            Target.at_least(name, None, TARGET_ZARR_FPS, " fps", "no identity run at this size")
        )
        return
    worst = min(rows, key=lambda r: r["fps_incl_flush"] if not r["frames_dropped"] else 0.0)
    dropped = worst["frames_dropped"]
    result.targets.append(
        Target.at_least(
            name,
            worst["fps_incl_flush"] if not dropped else 0.0,
            TARGET_ZARR_FPS,
            " fps",
            f"identity model, raw + clean, blosc lz4, flat out on {worst['provider']}: "
            f"{worst['frames_received']} frames, {dropped} dropped, "
            f"{worst['achieved_fps']} fps received, {worst['fps_incl_flush']} fps "
            "until the store held every frame (counted)",
        )
    )


def _loss_window(result: SuiteResult, s: Settings, models: list[ModelFile], provider: str) -> None:
    """What a shorter loss window costs, paced: Zarr on, the target frame size at the
    target rate for ``loss_window_s`` seconds, at flush intervals of 2 s and less.

    A process killed with -9 loses the frames it had not yet written: at most the last
    ``store.flush_interval_s`` of a slow stream (partial shards are written that often),
    plus what waits in the writer's queue. A paced run of several flush periods shows
    what the flushes cost where it matters: the latency tail and the frames kept.
    """
    identity = next((m for m in models if m.name == "identity"), None)
    if identity is None:
        return
    side = s.zarr_target_side
    pool = phantom_frames((side, side), s.pool)
    frames = int(TARGET_FPS * s.loss_window_s)
    for interval in (2.0, 0.5, 0.1):
        svc = run_service(
            identity.path, pool, frames, TARGET_FPS, provider=provider, zarr=True,
            store={"flush_interval_s": interval},
        )  # fmt: skip
        row = svc.row()
        e2e = row["e2e_ms"]
        result.notes.append(
            f"loss window: store.flush_interval_s {interval:g} s, {frames} frames "
            f"{side}x{side} paced at {TARGET_FPS:g} fps ({s.loss_window_s:g} s), identity -> "
            f"e2e p50 {e2e.get('p50')} ms, p99 {e2e.get('p99')} ms, max {e2e.get('max')} ms, "
            f"{row['frames_dropped']} dropped, {row['fps_incl_flush']} fps until all on disk"
        )


def _figure(result: SuiteResult, out_dir: Path) -> None:
    fig, (ax_e2e, ax_ovh) = new_figure(2)
    keys = sorted({(r["model"], r["provider"], r["zarr"]) for r in result.rows})
    for model, provider, zarr in keys:
        rows = [
            r
            for r in result.rows
            if (r["model"], r["provider"], r["zarr"]) == (model, provider, zarr)
            and r["offered_fps"] == TARGET_FPS
        ]
        if not rows:
            continue
        sides = [int(r["shape"].split("x")[0]) for r in rows]
        label = f"{model} {provider}{' +zarr' if zarr else ''}"
        ax_e2e.plot(sides, [r["e2e_ms"].get("p99") for r in rows], marker="o", label=label)
        ax_ovh.plot(sides, [r["overhead_ms"].get("p99") for r in rows], marker="o", label=label)
    ax_ovh.axhline(TARGET_OVERHEAD_MS, color="k", ls="--", lw=1, label="target")
    for ax, title in ((ax_e2e, "end-to-end p99"), (ax_ovh, "service overhead p99")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_xlabel("frame side (px, uint16)")
        ax.set_ylabel("ms")
        ax.set_title(f"{title} at {TARGET_FPS:g} fps")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, result, out_dir, "end_to_end")
