"""Score models against classical baselines over photon budgets and generators.

For each generator and photon budget (the resting signal of the cells, photons per
pixel) a test movie and a separate validation movie are drawn. Methods:

- ``noisy``: the input;
- ``gaussian``: spatial Gaussian whose sigma is tuned on the *test* movie's ground truth
  (an oracle, the bar the targets use) and ``gaussian-val``: tuned on the validation
  movie, what a user could actually do;
- ``temporal-mean``: causal running mean over K frames, K tuned on the truth;
- ``spatiotemporal``: causal spatial Gaussian + exponential running mean, both tuned on
  the truth;
- ``wiener``: spatial Wiener filter, window tuned on the truth;
- ``bm3d-vst``: BM3D after a generalised Anscombe transform with the *true* camera, on a
  subset of frames (slow), scored on those frames;
- each model, run exactly as the service runs it: frames in order through the real
  :class:`stream.engine.Engine` with a :class:`stream.engine.SeriesContext` that knows
  no camera and estimates it live from the stream.

Generators: ``independent`` (:mod:`._independent`, written apart from and never used
for training: the held-out data the targets are judged on), ``phantom`` (the project's
own calcium phantom, ``stream.sim``, for contrast) and ``textures`` (:mod:`._textures`,
also written apart and never trained on: still scenes of stars, membranes, fibres and
grain, whose photon budget is the peak rather than a resting signal). ``cameras`` adds
each generator's movies read out again by other cameras (:mod:`._cameras`).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from stream import ConfigError
from stream.camera import CameraModel
from stream.engine import BlendSetting, Engine, SeriesContext, check_passes
from stream.sim import CalciumPhantom, NoiseModel, PhantomConfig, frame_rng

from .._folders import removed_if_left_empty
from . import _baselines as bl
from ._cameras import EvalCamera, recamera
from ._fields import make_fields_movie
from ._independent import EvalMovie, make_movie
from ._metrics import MovieScorer
from ._results import BUDGET_SIGNAL, BudgetResult, EvaluationResult, MethodScore, ModelInfo
from ._textures import make_texture_movie

log = logging.getLogger(__name__)

GENERATORS = tuple(BUDGET_SIGNAL)
PHOTONS = (1.0, 3.0, 10.0, 30.0, 100.0)
GAUSSIAN_GRID = tuple((s,) for s in (0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0))
TEMPORAL_GRID = tuple((float(k),) for k in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16))
SPATIOTEMPORAL_GRID = tuple(
    (s, w) for s in (0.0, 0.6, 1.0, 1.5, 2.0, 3.0) for w in (1.0, 0.6, 0.4, 0.25, 0.15, 0.08)
)
WIENER_GRID = tuple((float(w),) for w in (3, 5, 7, 9))


def phantom_movie(
    photons: float, *, shape: tuple[int, int], frames: int, seed: int, fps: float = 20.0
) -> EvalMovie:
    """The project's own phantom with cells resting at ``photons``, gain 1, read 3 e-."""
    camera = NoiseModel(gain=1.0, offset=100.0, read_noise=3.0)
    config = PhantomConfig(
        shape=shape,
        fps=fps,
        brightness=photons,
        neuropil=0.2 * photons,
        background=0.1 * photons,
        seed=seed,
        noise=camera,
    )
    phantom = CalciumPhantom(config, frames)
    noisy = np.stack([phantom.noisy(t, frame_rng(seed, t), "uint16") for t in range(frames)])
    clean = np.stack([phantom.expected_camera(t) for t in range(frames)]).astype(np.float32)
    footprints = np.zeros((phantom.n_cells, *shape), bool)
    for k, fp in enumerate(phantom.footprints):
        footprints[k][fp.slices] = fp.patch >= 0.5
    return EvalMovie(
        noisy=noisy,
        clean=clean,
        footprints=footprints,
        traces=phantom.traces.copy(),
        spikes=[np.flatnonzero(row) for row in phantom.spikes],
        fps=fps,
        photons=photons,
        gain=1.0,
        offset=100.0,
        read_noise=3.0,
        generator="phantom",
    )


def movie(
    generator: str, photons: float, shape: tuple[int, int], frames: int, seed: int
) -> EvalMovie:
    if generator == "independent":
        return make_movie(photons, shape=shape, frames=frames, seed=seed)
    if generator == "phantom":
        return phantom_movie(photons, shape=shape, frames=frames, seed=seed)
    if generator == "textures":
        return make_texture_movie(photons, shape=shape, frames=frames, seed=seed)
    if generator == "fields":
        return make_fields_movie(photons, shape=shape, frames=frames, seed=seed)
    raise ValueError(f"expected a generator in {GENERATORS}, got {generator!r}")


def _model_names(models: list[Path]) -> list[str]:
    names: list[str] = []
    for path in models:
        name, k = path.stem, 2
        while name in names:
            name, k = f"{path.stem}-{k}", k + 1
        names.append(name)
    return names


def _load_models(
    models: list[Path], provider: str, ensemble: int = 1, blend: BlendSetting = "spatial"
) -> list[tuple[ModelInfo, Engine]]:
    """Each model's engine; with ``ensemble`` > 1, each also as ``<name>-x<ensemble>``
    (the same engine, that many self-ensemble passes per frame)."""
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
            frames=meta.frames,
            noise_map=meta.noise_map,
            normalization=meta.normalization,
            has_metadata=meta.from_model,
            blend=blend,
        )
        loaded.append((info, engine))
    if ensemble > 1:
        check_passes(ensemble)
        loaded += [
            (replace(info, name=f"{info.name}-x{ensemble}", passes=ensemble), engine)
            for info, engine in list(loaded)
        ]
    return loaded


def run_model(
    engine: Engine,
    noisy: np.ndarray,
    camera: CameraModel | None = None,
    passes: int = 1,
    blend: BlendSetting = "spatial",
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """The movie through the model as the service serves it: the live camera estimate,
    or ``camera`` as if configured (``deepdenoise calibrate``); ``passes`` of the
    self-ensemble per frame; the blend with smoothing (every due frame measured, as a
    service with time to spare does)."""
    context = SeriesContext(camera, blend)
    out = np.empty(noisy.shape, np.float32)
    t0 = time.perf_counter()
    for t, frame in enumerate(noisy):
        out[t] = context.denoise(engine, frame, t, passes)
    ms = (time.perf_counter() - t0) * 1000.0 / len(noisy)
    estimate = context.estimate
    return out, ms, estimate.as_dict() if estimate is not None else {}


def run_snapshots(
    engine: Engine, noisy: np.ndarray, passes: int = 1, blend: BlendSetting = "spatial"
) -> tuple[np.ndarray, float]:
    """Every frame as a series of its own, as single images (snapshots) are served: the
    camera estimated from that frame alone, no earlier frame, blended only on its own
    measurement (when the frame's noise variance is known within 25 %). The output
    stack and the mean milliseconds per frame."""
    runs = [run_model(engine, frame[None], passes=passes, blend=blend) for frame in noisy]
    return np.concatenate([out for out, _, _ in runs]), float(np.mean([ms for _, ms, _ in runs]))


def _timed(fn: Any, *args: Any) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000.0 / max(1, len(args[0]))


def adapted_models(
    info: ModelInfo, noisy: np.ndarray, minutes: float, workdir: Path, scratch: bool = True
) -> list[tuple[str, Path]]:
    """``info``'s model adapted to ``noisy`` (the user's recording) in ``minutes``, and
    (``scratch``) Noise2Void from scratch (same architecture, fresh weights) in the same
    budget; written to ``workdir`` (with their checkpoints, in ``*.onnx.adapt/``)."""
    from exporter.adapt import AdaptConfig, adapt  # torch: only when asked for

    recording = workdir / "recording.npy"
    np.save(recording, noisy)
    made = []
    runs: list[tuple[str, dict[str, Any]]] = [("+adapted", {})]
    if scratch:
        runs.append(("+n2v-scratch", {"from_scratch": True, "lr": 1e-3, "loss": "n2v"}))
    for suffix, extra in runs:
        out = workdir / f"{info.name}{suffix}.onnx"
        config = AdaptConfig(minutes=minutes, steps=1_000_000, **extra)  # the budget decides
        report = adapt(recording, out, start=Path(info.path), config=config)
        log.info("%s%s: %d steps in %.0f s", info.name, suffix, report.steps, report.seconds)
        made.append((info.name + suffix, out))
    recording.unlink()  # the movie is regenerated from its seed; the models stay
    return made


def evaluate_movie(
    test: EvalMovie,
    validation: EvalMovie,
    models: list[tuple[ModelInfo, Engine]],
    bm3d_frames: int,
    adapt_minutes: float = 0.0,
    provider: str = "cpu",
    adapt_workdir: Path | None = None,
    adapt_scratch: bool = True,
    snapshots: bool = False,
) -> BudgetResult:
    """Every method on one test movie (baselines tuned as the module doc says); with
    ``adapt_workdir``, also each model adapted to the movie for ``adapt_minutes`` (the
    adapted models and the recording they came from are kept there); with ``snapshots``,
    also each model on every frame sent as a series of its own (``<name>@snapshot``)."""
    scorer = MovieScorer(test.clean, test.footprints, test.spikes, test.fps)
    noisy = test.noisy.astype(np.float32)
    scores: dict[str, MethodScore] = {}
    outputs: dict[str, np.ndarray] = {}

    def record(name: str, kind: str, out: np.ndarray, ms: float, **params: Any) -> None:
        scores[name], _ = scorer.score(name, kind, out, ms, params=params)
        outputs[name] = out

    record("noisy", "input", noisy, 0.0)
    (sigma,), out = bl.best_on_truth(bl.gaussian_smooth, GAUSSIAN_GRID, noisy, test.clean)
    record("gaussian", "baseline", out, 0.0, sigma_px=sigma, tuned="truth")
    (val_sigma,), _ = bl.best_on_truth(
        bl.gaussian_smooth, GAUSSIAN_GRID, validation.noisy.astype(np.float32), validation.clean
    )
    record(
        "gaussian-val", "baseline", bl.gaussian_smooth(noisy, val_sigma), 0.0,
        sigma_px=val_sigma, tuned="validation",
    )  # fmt: skip
    (window,), out = bl.best_on_truth(
        lambda m, k: bl.boxcar_causal(m, int(k)), TEMPORAL_GRID, noisy, test.clean
    )
    record("temporal-mean", "baseline", out, 0.0, window_frames=int(window), causal=True)
    (s, w), out = bl.best_on_truth(bl.spatiotemporal, SPATIOTEMPORAL_GRID, noisy, test.clean)
    record("spatiotemporal", "baseline", out, 0.0, sigma_px=s, weight=w, causal=True)
    noise_var = float(np.mean((noisy - test.clean) ** 2))
    (win,), out = bl.best_on_truth(
        lambda m, k: bl.wiener_filter(m, int(k), noise_var), WIENER_GRID, noisy, test.clean
    )
    record("wiener", "baseline", out, 0.0, window_px=int(win))
    cameras: dict[str, dict[str, Any]] = {}
    for info, engine in models:
        blend = cast(BlendSetting, info.blend)
        out, ms, camera = run_model(engine, test.noisy, passes=info.passes, blend=blend)
        record(info.name, "model", out, ms, camera=camera)
        cameras[info.name] = camera
        if info.noise_map:  # the same model told the true camera: what the estimate costs
            # every test movie is unsigned 16-bit: its readouts are clipped at 0
            true = CameraModel(
                gain=test.gain, offset=test.offset, read_noise=test.read_noise, floor=0.0
            )
            out, ms, _ = run_model(engine, test.noisy, true, info.passes, blend)
            record(f"{info.name}@true-camera", "model", out, ms, camera="true")
        if snapshots:
            out, ms = run_snapshots(engine, test.noisy, info.passes, blend)
            record(f"{info.name}@snapshot", "model", out, ms, camera="each frame's own")
        if adapt_workdir is not None and info.passes == 1:  # the movie: the user's recording
            for name, path in adapted_models(
                info, test.noisy, adapt_minutes, adapt_workdir, adapt_scratch
            ):
                with Engine(path, provider=provider, warmup_shape=None) as adapted:
                    out, ms, _ = run_model(adapted, test.noisy)
                record(name, "model", out, ms, adapt_minutes=adapt_minutes)
    if bm3d_frames and bl.bm3d_import_error() is None:
        idx = np.unique(np.linspace(0, len(noisy) - 1, bm3d_frames + 2)[1:-1].round())
        idx = idx.astype(np.int64)
        out, ms = _timed(bl.bm3d_vst, noisy[idx], test.gain, test.offset, test.read_noise)
        scores["bm3d-vst"], _ = scorer.score(
            "bm3d-vst", "baseline", out, ms, frames=idx, params={"frames": idx.tolist()}
        )
        outputs["bm3d-vst"] = np.full_like(noisy, np.nan)
        outputs["bm3d-vst"][idx] = out
        for name in list(scores):  # the same frames, for a like-for-like comparison
            if name != "bm3d-vst":
                sub, _ = scorer.score(name, scores[name].kind, outputs[name][idx], 0.0, frames=idx)
                scores[f"{name}@bm3d-frames"] = sub
    window = max((info.frames for info, _ in models), default=1)
    if window > 1:  # a temporal model's window is not yet full: the engine fills it
        start = np.arange(min(window - 1, len(noisy)))
        for name in [n for n in scores if "@" not in n and n not in ("noisy", "bm3d-vst")]:
            sub, _ = scorer.score(name, scores[name].kind, outputs[name][start], 0.0, frames=start)
            scores[f"{name}@series-start"] = sub
    example = int(np.argmax([c.sum() for c in test.clean]))  # the brightest frame
    shown = {name: out[example] for name, out in outputs.items()} | {"clean": test.clean[example]}
    return BudgetResult(
        generator=test.generator,
        photons=test.photons,
        read_noise=test.read_noise,
        scores=scores,
        cameras=cameras,
        example=shown,
        example_frame=example,
    )


def evaluate(
    models: list[Path],
    out_dir: Path,
    *,
    photons: tuple[float, ...] = PHOTONS,
    generators: tuple[str, ...] = GENERATORS,
    frames: int = 48,
    shape: tuple[int, int] = (128, 128),
    seed: int = 0,
    bm3d_frames: int = 2,
    provider: str = "cpu",
    figures: bool = True,
    adapt_minutes: float = 0.0,
    adapt_scratch: bool = True,
    cameras: tuple[EvalCamera, ...] = (),
    ensemble: int = 1,
    blend: BlendSetting = "spatial",
    snapshots: bool = False,
) -> EvaluationResult:
    """Evaluate ``models`` on every generator x photon budget; write report and metrics.

    Test and validation movies use seeds ``seed`` and ``seed + 1``; every model sees
    the same movies. Each of ``cameras`` adds every generator's movies read out again by
    that camera (:func:`recamera`), as generators of their own. ``ensemble`` > 1 adds
    every model again with that many self-ensemble passes (``<name>-x<ensemble>``).
    ``blend``: the models' outputs blended with smoothing as served ("spatial", the
    default; "spatiotemporal"), or not ("off"). ``snapshots``: also every model on each
    frame sent as a series of its own (single images).
    """
    out_dir = Path(out_dir)
    unknown = [g for g in generators if g not in GENERATORS]
    if unknown:  # before the folder is made: a failed check leaves nothing behind
        raise ConfigError(
            f"expected generators among {', '.join(GENERATORS)}, got {', '.join(unknown)}"
        )
    loaded = _load_models(list(models), provider, ensemble, blend)
    short = [info for info, _ in loaded if adapt_minutes > 0 and info.frames > frames]
    if short:  # adapting trains on windows of K consecutive frames of the movie
        for _, engine in loaded:
            engine.close()
        raise ConfigError(
            f"expected movies of at least {short[0].frames} frames to adapt "
            f"{short[0].name} ({short[0].frames}-frame windows), got frames={frames}"
        )
    with removed_if_left_empty(out_dir):
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            for _, engine in loaded:
                engine.close()
            raise
        return _evaluate_into(
            out_dir, loaded, photons=photons, generators=generators, frames=frames,
            shape=shape, seed=seed, bm3d_frames=bm3d_frames, provider=provider,
            figures=figures, adapt_minutes=adapt_minutes, adapt_scratch=adapt_scratch,
            cameras=cameras, ensemble=ensemble, blend=blend, snapshots=snapshots,
        )  # fmt: skip


#: A test movie whose noisy frames hold more than this share of pixels at the top of
#: 16 bits (65535) is flagged: its scores are of clipped data, not of the camera model.
SATURATED_SHARE = 0.001


def saturated_share(noisy: np.ndarray) -> float:
    """The share of ``noisy``'s pixels at the top of its integer range (65535 for uint16)."""
    if noisy.dtype.kind not in "ui":
        return 0.0
    return float(np.count_nonzero(noisy >= np.iinfo(noisy.dtype).max)) / max(noisy.size, 1)


def _evaluate_into(
    out_dir: Path,
    loaded: list[tuple[ModelInfo, Engine]],
    *,
    photons: tuple[float, ...],
    generators: tuple[str, ...],
    frames: int,
    shape: tuple[int, int],
    seed: int,
    bm3d_frames: int,
    provider: str,
    figures: bool,
    adapt_minutes: float,
    adapt_scratch: bool,
    cameras: tuple[EvalCamera, ...],
    ensemble: int,
    blend: BlendSetting,
    snapshots: bool,
) -> EvaluationResult:
    """:func:`evaluate` once its checks pass and ``out_dir`` exists (it closes ``loaded``)."""
    saturated: list[dict[str, Any]] = []
    settings = {
        "photons": list(photons),
        "generators": list(generators),
        "frames": frames,
        "shape": list(shape),
        "seed": seed,
        "bm3d_frames": bm3d_frames,
        "adapt_minutes": adapt_minutes,
        "adapt_scratch": adapt_scratch,
        "provider": provider,
        "ensemble": ensemble,
        "blend": blend,
        "snapshots": snapshots,
        "machine": platform.platform(),
        "camera": "none configured: every model estimates it live, as the service does",
        "cameras": [camera.label for camera in cameras],
        # movies whose noisy frames clip at 65535 (too many photons for 16 bits)
        "saturated": saturated,
    }
    result = EvaluationResult(out_dir, settings, [info for info, _ in loaded], [])
    try:
        for generator, camera, budget in itertools.product(generators, (None, *cameras), photons):
            test = movie(generator, budget, shape, frames, seed)
            validation = movie(generator, budget, shape, frames, seed + 1)
            if camera is not None:
                test = recamera(test, camera, seed)
                validation = recamera(validation, camera, seed + 1)
            log.info("%s at %g photons per pixel", test.generator, budget)
            share = saturated_share(test.noisy)
            if share > SATURATED_SHARE:
                warning = (
                    f"{test.generator} at {budget:g} photons per pixel: {100 * share:.2g}% of "
                    "the noisy pixels are at 65535, the top of 16 bits; its scores are of "
                    "clipped frames, not of the camera the movie was made with (a lower "
                    "photon budget does not)"
                )
                log.warning("%s", warning)
                saturated.append(
                    {"generator": test.generator, "photons": budget, "share": share,
                     "warning": warning}
                )  # fmt: skip
            workdir = None
            if adapt_minutes > 0:
                folder = f"{generator}-{budget:g}"
                if camera is not None:
                    folder += f"-camera{cameras.index(camera) + 1}"
                workdir = out_dir / "adapted" / folder
                workdir.mkdir(parents=True, exist_ok=True)
            result.results.append(
                evaluate_movie(
                    test,
                    validation,
                    loaded,
                    bm3d_frames,
                    adapt_minutes,
                    provider,
                    workdir,
                    adapt_scratch,
                    snapshots,
                )
            )
    finally:
        for _, engine in loaded:
            engine.close()  # idempotent: an ensemble row shares its model's engine
    for stale in (out_dir / "gain.png", *out_dir.glob("example_*.png")):
        stale.unlink(missing_ok=True)  # an earlier run's figures: not beside this report
    result.metrics = out_dir / "metrics.json"
    result.metrics.write_text(json.dumps(metrics_dict(result), indent=1, default=_json))
    from ._report import write_report  # matplotlib is imported there, only when reporting

    result.report = write_report(result, figures=figures)
    return result


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_dict(result: EvaluationResult) -> dict[str, Any]:
    """Everything measured, JSON-ready (NaN/inf as null)."""
    return {
        "settings": result.settings,
        "models": [info.__dict__ for info in result.models],
        "results": [
            {
                "generator": r.generator,
                "photons": r.photons,
                "read_noise": r.read_noise,
                "cameras": r.cameras,
                "scores": {
                    name: {k: _finite(v) for k, v in score.__dict__.items()}
                    for name, score in r.scores.items()
                },
            }
            for r in result.results
        ],
    }
