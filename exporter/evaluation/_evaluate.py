"""Score ONNX denoisers against classical baselines on movies with a known ground truth.

For each noise level the evaluation draws a *test* movie and a *validation* movie (a
different seed) from the phantom, tunes the baselines on the validation movie only, then
runs every method on the test movie and scores it: PSNR, SSIM, the correlation of
extracted cell traces with the ground truth's, transient-onset timing, and runtime.

Models run through the real streaming :class:`stream.engine.Engine` (tiling,
normalisation and all), so the numbers describe what the service would publish. The test
movie has the same cells, spikes and noise seed at every level (only the noise level
differs) and every model runs at every level, so two models trained at different noise
levels can be compared on lower and higher noise than they saw.

The results go to ``out_dir``: ``report.md`` (see :mod:`exporter.evaluation._report`), its figures,
and ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from stream.engine import Engine

from ..data import DataConfig, TestMovie, make_test_movie, normalization
from . import _baselines as bl
from ._metrics import MovieScorer, OnsetDetector
from ._results import EvaluationResult, LevelResult, MethodScore, ModelInfo

log = logging.getLogger(__name__)

BASELINE_NAMES = ("noisy", "gaussian", "boxcar", "wiener", "bm3d")
#: Offset between the test seed and the validation seed when none is given.
VALIDATION_SEED_OFFSET = 1_000_003


def _timed(fn: Any, *args: Any) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000.0


def _model_names(models: list[Path]) -> list[str]:
    names: list[str] = []
    for path in models:
        name, k = path.stem, 2
        while name in names or name in BASELINE_NAMES or name == "clean":
            name, k = f"{path.stem}-{k}", k + 1
        names.append(name)
    return names


def _example_frame(movie: TestMovie) -> int:
    """The frame with the most transient activity (the most informative to look at)."""
    if len(movie.traces) == 0:
        return len(movie.clean) // 2
    return int(np.argmax(np.asarray(movie.traces, np.float64).sum(axis=0)))


def _zoom_box(movie: TestMovie, t: int) -> tuple[slice, slice]:
    """A square around the most active cell at frame ``t`` (a quarter of the frame)."""
    h, w = movie.clean.shape[1:]
    side = min(h, w, max(16, min(h, w) // 4))
    cy, cx = h // 2, w // 2
    if len(movie.footprints):
        k = int(np.argmax(np.asarray(movie.traces)[:, t])) if len(movie.traces) else 0
        ys, xs = np.nonzero(movie.footprints[k])
        if len(ys):
            cy, cx = int(ys.mean()), int(xs.mean())
    y0 = min(max(0, cy - side // 2), h - side)
    x0 = min(max(0, cx - side // 2), w - side)
    return slice(y0, y0 + side), slice(x0, x0 + side)


def _trace_cell(movie: TestMovie, detector: OnsetDetector) -> int | None:
    """The cell with the most scoreable (isolated) spikes, for the trace figure."""
    if len(movie.spikes) == 0:
        return None
    n = len(movie.clean)
    counts = [(len(detector.isolated(s, n)), len(s)) for s in movie.spikes]
    return int(max(range(len(counts)), key=lambda k: counts[k]))


def _bm3d_frames(n_frames: int, n: int, must: int) -> np.ndarray:
    """``n`` evenly spread frame indices that include ``must`` (the example frame)."""
    n = max(1, min(n, n_frames))
    idx = np.round(np.linspace(0, n_frames - 1, n)).astype(np.int64)
    idx[np.argmin(np.abs(idx - must))] = must
    return np.unique(idx)


def _load_models(models: list[Path], provider: str) -> list[tuple[ModelInfo, Engine]]:
    loaded = []
    for name, path in zip(_model_names(models), models, strict=True):
        engine = Engine(path, provider=provider, warmup_shape=None)
        meta = engine.metadata
        info = ModelInfo(
            name=name,
            path=str(path),
            architecture=meta.architecture,
            model_id=engine.model_id,
            receptive_field=meta.receptive_field,
            training_noise=dict(meta.training_noise),
            input_offset=meta.input_offset,
            input_scale=meta.input_scale,
            has_metadata=meta.from_model,
        )
        loaded.append((info, engine))
    return loaded


def _run_model(engine: Engine, noisy: np.ndarray) -> tuple[np.ndarray, float]:
    """Denoise every frame through the engine; ms per frame after one untimed warm-up."""
    engine.denoise(noisy[0])  # first call plans memory: not what a live frame costs
    out = np.empty(noisy.shape, np.float32)
    t0 = time.perf_counter()
    for t, frame in enumerate(noisy):
        out[t] = engine.denoise(frame)
    return out, (time.perf_counter() - t0) * 1000.0 / len(noisy)


def _evaluate_level(
    level: float,
    cfg: DataConfig,
    loaded: list[tuple[ModelInfo, Engine]],
    *,
    frames: int,
    shape: tuple[int, int],
    seed: int,
    validation_frames: int,
    validation_seed: int,
    bm3d_frames: int,
) -> LevelResult:
    log.info(
        "level %g: drawing test (%d frames) and validation (%d frames) movies",
        level,
        frames,
        validation_frames,
    )
    test = make_test_movie(cfg, level, frames, shape, seed)
    val = make_test_movie(cfg, level, validation_frames, shape, validation_seed)
    error = bl.bm3d_import_error() if bm3d_frames > 0 else "disabled (bm3d_frames = 0)"
    norm = normalization(cfg) if error is None else None
    tuned = bl.tune_baselines(val.noisy, val.clean, norm, bm3d_frames=min(2, bm3d_frames))
    del val
    scorer = MovieScorer(test.clean, test.footprints, test.spikes, test.fps)
    t_ex = _example_frame(test)
    scores: dict[str, MethodScore] = {}
    example: dict[str, np.ndarray] = {"clean": test.clean[t_ex].copy()}
    traces: dict[str, np.ndarray] = {"clean": scorer.reference}
    n = len(test.noisy)

    def record(name: str, kind: str, out: np.ndarray, ms: float, **params: Any) -> None:
        score, tr = scorer.score(name, kind, out, ms, params=params)
        scores[name] = score
        example[name] = out[t_ex].copy()
        if tr is not None:
            traces[name] = tr

    record("noisy", "input", test.noisy, 0.0)
    out, ms = _timed(bl.gaussian_smooth, test.noisy, tuned.gaussian.value)
    record("gaussian", "baseline", out, ms / n, sigma_px=tuned.gaussian.value)
    out, ms = _timed(bl.boxcar_causal, test.noisy, int(tuned.boxcar.value))
    record("boxcar", "baseline", out, ms / n, window_frames=int(tuned.boxcar.value), causal=True)
    var = tuned.noise_std_adu**2
    out, ms = _timed(bl.wiener_filter, test.noisy, int(tuned.wiener.value), var)
    record("wiener", "baseline", out, ms / n, window_px=int(tuned.wiener.value), noise_var=var)
    del out

    bm3d_info: dict[str, Any] = {"available": False, "frames": [], "note": f"BM3D skipped: {error}"}
    if norm is not None and tuned.bm3d is not None:
        idx = _bm3d_frames(n, bm3d_frames, t_ex)
        sigma_adu = tuned.noise_std_adu * tuned.bm3d.value
        sub, ms = _timed(bl.bm3d_denoise, test.noisy[idx], sigma_adu, *norm)
        sigma_psd = sigma_adu / norm[1]
        params = {"sigma_psd": sigma_psd, "sigma_factor": tuned.bm3d.value, "frames": idx.tolist()}
        scores["bm3d"] = scorer.score("bm3d", "baseline", sub, ms / len(idx), idx, params)[0]
        example["bm3d"] = sub[int(np.flatnonzero(idx == t_ex)[0])]
        noisy_sub = scorer.score("noisy@bm3d", "input", test.noisy[idx], 0.0, frames=idx)[0]
        bm3d_info = {
            "available": True,
            "frames": idx.tolist(),
            "sigma_psd": sigma_psd,
            "normalization": {"offset": norm[0], "scale": norm[1]},
            "noisy_psnr_on_subset": noisy_sub.psnr,
            "noisy_ssim_on_subset": noisy_sub.ssim,
            "note": f"BM3D ran on {len(idx)} of {n} test frames (about 1 s per frame on CPU; "
            "its sigma factor was tuned on validation frames); its PSNR/SSIM are over those "
            "frames only and it has no trace metrics.",
        }
    else:
        log.warning("%s", bm3d_info["note"])

    for info, engine in loaded:
        out, ms = _run_model(engine, test.noisy)
        record(info.name, "model", out, ms, model_id=info.model_id)
        del out

    return LevelResult(
        level=float(level),
        noise_std_adu=math.sqrt(float(np.mean((test.noisy - test.clean) ** 2, dtype=np.float64))),
        data_range=scorer.range,
        baselines=tuned,
        bm3d=bm3d_info,
        scores=scores,
        fps=float(test.fps),
        example_frame=t_ex,
        example=example,
        zoom=_zoom_box(test, t_ex),
        trace_cell=_trace_cell(test, scorer.detector),
        traces=traces,
        spikes=[np.asarray(s) for s in test.spikes],
    )


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_dict(result: EvaluationResult) -> dict[str, Any]:
    """The machine-readable form of ``result`` (what ``metrics.json`` holds)."""
    levels = []
    for lv in result.levels:
        levels.append(
            {
                "level": lv.level,
                "noise_std_adu": lv.noise_std_adu,
                "data_range_adu": lv.data_range,
                "fps": lv.fps,
                "baselines_tuned_on_validation": lv.baselines.to_dict(),
                "bm3d": lv.bm3d,
                "methods": {name: asdict(s) for name, s in lv.scores.items()},
            }
        )
    trade_off: dict[str, dict[str, Any]] = {}
    for info in result.models:
        trade_off[info.name] = {}
        for lv in result.levels:
            s, noisy = lv.scores[info.name], lv.scores["noisy"]
            trade_off[info.name][f"{lv.level:g}"] = {
                "psnr": s.psnr,
                "psnr_gain_db": s.psnr - noisy.psnr,
                "ssim": s.ssim,
                "trace_r": s.trace_r,
                "onset_mae_ms": s.onset_mae_ms,
            }
    return _finite(
        {
            "settings": result.settings,
            "models": [asdict(m) for m in result.models],
            "levels": levels,
            "model_by_level": trade_off,
        }
    )


def evaluate(
    models: list[Path],
    levels: list[float],
    out_dir: Path,
    *,
    frames: int = 200,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    data: DataConfig | None = None,
    validation_frames: int = 64,
    validation_seed: int | None = None,
    bm3d_frames: int = 8,
    provider: str = "cpu",
    figures: bool = True,
) -> EvaluationResult:
    """Evaluate ``models`` at each noise ``level``; write report, figures and metrics.

    Parameters
    ----------
    models
        ONNX models (the model contract); each runs through the streaming engine.
    levels
        Noise levels (multipliers of the reference relative noise; 1 = reference).
    out_dir
        Created if needed; receives ``report.md``, ``*.png`` and ``metrics.json``.
    frames, shape, seed
        The test movie at every level (same phantom seed, so the same cells and spikes).
    data
        Phantom and noise description (default: ``DataConfig()``, the reference).
    validation_frames, validation_seed
        The movie the baselines are tuned on (default seed: ``seed + 1000003``).
    bm3d_frames
        Frames per level BM3D runs on (0 disables it); it is slow.
    provider
        ONNX Runtime provider for the models (``cpu`` keeps runtimes comparable with
        the CPU baselines).
    figures
        Draw the PNG figures (matplotlib); the report refers to them.
    """
    if not levels:
        raise ValueError("expected at least one noise level")
    if any(not (lv > 0 and math.isfinite(lv)) for lv in levels):
        raise ValueError(f"expected positive noise levels, got {levels}")
    if frames < 2 or validation_frames < 2:
        raise ValueError(
            f"expected >= 2 test and validation frames, got {frames}, {validation_frames}"
        )
    cfg = data if data is not None else DataConfig()
    vseed = seed + VALIDATION_SEED_OFFSET if validation_seed is None else validation_seed
    if vseed == seed:
        raise ValueError("the validation seed must differ from the test seed")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    import onnxruntime
    import scipy

    settings: dict[str, Any] = {
        "frames": frames,
        "shape": list(shape),
        "seed": seed,
        "validation_frames": validation_frames,
        "validation_seed": vseed,
        "levels": [float(lv) for lv in levels],
        "bm3d_frames": bm3d_frames,
        "provider": provider,
        "data": cfg.model_dump(mode="json"),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "machine": f"{platform.machine()} {platform.system()} {platform.processor()}".strip(),
    }
    loaded = _load_models([Path(m) for m in models], provider)
    settings["provider_active"] = sorted({engine.provider for _, engine in loaded})
    result = EvaluationResult(out_dir, settings, [info for info, _ in loaded], [])
    try:
        for level in levels:
            result.levels.append(
                _evaluate_level(
                    float(level),
                    cfg,
                    loaded,
                    frames=frames,
                    shape=shape,
                    seed=seed,
                    validation_frames=validation_frames,
                    validation_seed=vseed,
                    bm3d_frames=bm3d_frames,
                )
            )
    finally:
        for _, engine in loaded:
            engine.close()

    from ._report import write_report  # matplotlib is imported there, only when reporting

    result.metrics = out_dir / "metrics.json"
    result.metrics.write_text(
        json.dumps(metrics_dict(result), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    write_report(result, figures=figures)
    return result
