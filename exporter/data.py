"""Generated training pairs: calcium-imaging ground truth plus camera noise, on the fly.

Every pair is synthesised from :mod:`stream.sim`, so the clean target is known
exactly (the expected camera image) and the data never run out. Per draw a small field
(``field`` x ``field`` px) of a short movie is synthesised with phantom parameters
randomised within the ranges of :class:`DataConfig`, a few frames at random times are
taken from it, and several patches are cut from each; every patch gets its own noise.

Noise level
-----------
``level`` L multiplies the relative noise (noise std / signal) of the reference
acquisition, the clean image staying at the reference brightness: shot noise is drawn
at a photon flux of ``1 / L**2`` and scaled back up by ``L**2`` (so its relative std
grows by L), and read noise, or the recorded noise crop, is multiplied by L. Level 1 is
the reference camera exactly, which is what a live stream of that camera delivers.

Throughput, measured with ``python -m benchmarks.model_candidates --pairs`` (one process,
one thread, Xeon Sapphire Rapids vCPU, defaults: 64 x 64 patches, 16 per 128 x 128 field): about
1000-1300 patches/s with either the camera model or recorded noise. A batch of 32 thus
takes ~30 ms to generate against ~1.3 s for one training step of the lite model on the
same 2-core machine (torch CPU), so generation costs a few per cent of CPU training.
About half the time is synthesising phantoms, half the exact Poisson draws.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from stream import ConfigError
from stream.sim import CalciumPhantom, NoiseModel, PhantomConfig, expected_camera, frame_rng

from .noise import RecordedNoise, light_in, load_noise_stack

log = logging.getLogger(__name__)

Range = tuple[float, float]
_TRAIN, _VALIDATION = 0, 1  # seed-stream tags: validation never overlaps training
_NORM_SHAPE = (256, 256)  # reference field for the normalisation statistics
_NORM_FRAMES = 16


def _range(name: str, value: Range, lo: float, hi: float) -> Range:
    a, b = value
    if not lo <= a <= b <= hi:
        raise ValueError(
            f"expected {name} as (min, max) with {lo} <= min <= max <= {hi}, got {value}"
        )
    return value


class NoiseConfig(BaseModel):
    """Which noise the training pairs carry, and how much.

    ``source="model"``: Poisson-Gaussian ``camera``. ``source="recorded"``: crops of the
    noise stack at ``recorded`` replace the read noise; ``camera.gain`` still sets the
    shot noise (``shot_noise``: dark frames carry none) and ``camera.offset`` the
    normalisation, so fit ``camera`` to the same camera (:func:`estimate_camera_noise`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["model", "recorded"] = "model"
    camera: NoiseModel = NoiseModel.model_validate({})
    recorded: Path | None = Field(None, description=".npy / .tif / .zarr noise-only frames")
    level: float | tuple[float, float] = Field(
        1.0, description="relative noise multiplier; (min, max) draws uniformly per patch"
    )
    shot_noise: bool = Field(True, description="recorded source: add Poisson shot noise")
    recorded_std: float | None = Field(
        None, gt=0, description="rescale recorded noise to this rms (ADU) at level 1"
    )
    remove_pixel_mean: bool = Field(True, description="recorded: drop fixed-pattern offsets")

    @field_validator("level")
    @classmethod
    def _level(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        lo, hi = (value, value) if isinstance(value, int | float) else value
        if not 0 < lo <= hi <= 100:
            raise ValueError(f"expected level > 0 (or a range 0 < min <= max <= 100), got {value}")
        return value

    @model_validator(mode="after")
    def _recorded(self) -> NoiseConfig:
        if self.source == "recorded" and self.recorded is None:
            raise ValueError("source='recorded' needs recorded=<path to a noise stack>")
        return self

    @property
    def level_range(self) -> tuple[float, float]:
        lv = self.level
        return (float(lv), float(lv)) if isinstance(lv, int | float) else (lv[0], lv[1])


class DataConfig(BaseModel):
    """Training data: patch geometry, the reference phantom, its randomisation, noise.

    ``phantom`` is the reference acquisition: its ``shape`` and ``seed`` are replaced
    per draw, and its ``noise`` is ignored (``noise.camera`` is the camera). Each draw
    samples, independently: ``density`` uniformly (cells per 100 x 100 px),
    ``nucleus_fraction`` and ``drift_amplitude`` uniformly, and the multipliers
    ``radius_scale``, ``brightness_scale``, ``neuropil_scale`` and ``background_scale``
    log-uniformly (brighter and dimmer samples are equally likely); bleaching is on with
    probability ``bleach_probability``, with a log-uniform ``bleach_tau_s``. Spike
    rates, amplitudes and kinetics vary per cell within the phantom's own ranges.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    patch: int = Field(64, ge=8, le=1024, description="training patch side, px")
    field: int = Field(128, ge=8, le=4096, description="phantom field side per draw, px")
    frames_per_field: int = Field(4, ge=1, le=256, description="frames taken per draw")
    patches_per_field: int = Field(16, ge=1, le=4096, description="patches cut per draw")
    movie_s: float = Field(20.0, gt=0, le=3600, description="movie length frames come from, s")
    phantom: PhantomConfig = PhantomConfig.model_validate({})
    density: Range = (0.5, 8.0)
    radius_scale: Range = (0.6, 1.5)
    brightness_scale: Range = (0.25, 4.0)
    neuropil_scale: Range = (0.25, 4.0)
    background_scale: Range = (0.25, 4.0)
    nucleus_fraction: Range = (0.0, 0.5)
    drift_amplitude: Range = (0.0, 0.1)
    bleach_probability: float = Field(0.5, ge=0, le=1)
    bleach_tau_s: Range = (10.0, 600.0)
    noise: NoiseConfig = NoiseConfig.model_validate({})

    @field_validator("density")
    @classmethod
    def _density(cls, v: Range) -> Range:
        return _range("density", v, 0, 100)

    @field_validator("radius_scale", "brightness_scale", "neuropil_scale", "background_scale")
    @classmethod
    def _scale(cls, v: Range) -> Range:
        return _range("scale", v, 1e-3, 1e3)

    @field_validator("nucleus_fraction")
    @classmethod
    def _nucleus(cls, v: Range) -> Range:
        return _range("nucleus_fraction", v, 0, 0.9)

    @field_validator("drift_amplitude")
    @classmethod
    def _drift(cls, v: Range) -> Range:
        return _range("drift_amplitude", v, 0, 0.9)

    @field_validator("bleach_tau_s")
    @classmethod
    def _bleach(cls, v: Range) -> Range:
        return _range("bleach_tau_s", v, 1e-3, 1e9)

    @model_validator(mode="after")
    def _patch_fits(self) -> DataConfig:
        if self.patch > self.field:
            raise ValueError(f"expected patch <= field, got patch {self.patch} > {self.field}")
        return self


# -- normalisation and noise -----------------------------------------------------------


def normalization(cfg: DataConfig) -> tuple[float, float]:
    """``(input_offset, input_scale)``: ``model = (adu - offset) / scale``.

    The offset is the camera's; the scale is the 99th percentile of the reference
    phantom's expected signal above offset (256 x 256, 16 frames over ``movie_s``),
    so typical clean images map to about [0, 1]. A fixed function of the config, never
    of a patch: the exporter stores it in the model and the engine applies it to
    every live frame.
    """
    cam = cfg.noise.camera
    return _normalization(cfg.phantom.model_dump_json(), cam.gain, cam.offset, cfg.movie_s)


@functools.lru_cache(maxsize=16)
def _normalization(
    phantom_json: str, gain: float, offset: float, movie_s: float
) -> tuple[float, float]:
    ref = PhantomConfig.model_validate_json(phantom_json)
    ref = PhantomConfig.model_validate({**ref.model_dump(), "shape": _NORM_SHAPE})
    n = max(1, round(movie_s * ref.fps))
    phantom = CalciumPhantom(ref, n)
    frames = np.unique(np.linspace(0, n - 1, _NORM_FRAMES).astype(int))
    signal = np.stack([phantom.clean(int(t)) for t in frames]) * gain
    scale = float(np.percentile(signal, 99))
    return float(offset), max(scale, 1e-3)


def add_noise(
    photons: np.ndarray,
    noise: NoiseConfig,
    level: float,
    rng: np.random.Generator,
    recorded: RecordedNoise | None = None,
) -> np.ndarray:
    """One noisy readout (float32 ADU) of ``photons`` at ``level`` (see the module doc)."""
    cam = noise.camera
    l2 = level * level
    if noise.source == "model" or noise.shot_noise:
        adu = rng.poisson(np.maximum(photons, 0.0) / l2).astype(np.float32)
        adu *= np.float32(cam.gain * l2)
    else:
        adu = np.multiply(photons, np.float32(cam.gain), dtype=np.float32)
    adu += np.float32(cam.offset)
    if noise.source == "model":
        if cam.read_noise > 0:
            read = rng.standard_normal(adu.shape, dtype=np.float32)
            read *= np.float32(cam.read_noise * level)
            adu += read
        return adu
    if recorded is None:
        raise ValueError("source='recorded' needs the RecordedNoise to sample from")
    factor = 1.0 if noise.recorded_std is None else noise.recorded_std / max(recorded.std, 1e-12)
    adu += recorded.sample(adu.shape, rng, scale=level * factor)
    return adu


def recorded_noise(noise: NoiseConfig) -> RecordedNoise | None:
    """The recorded noise of ``noise`` loaded once, or None for the camera model."""
    if noise.source != "recorded":
        return None
    assert noise.recorded is not None  # the validator guarantees it
    stack = load_noise_stack(noise.recorded)
    if lit := light_in(stack):  # trained on a scene's light as if it were noise
        log.warning("[data.noise] recorded = %s: %s", noise.recorded, lit)
    if noise.remove_pixel_mean and len(stack) < 2:
        raise ConfigError(
            f"{noise.recorded}: expected at least 2 frames of noise, to tell it from each "
            f"pixel's fixed offset, got {len(stack)}: record more dark frames, or set "
            "[data.noise] remove_pixel_mean = false to take the offsets as noise too"
        )
    return RecordedNoise(stack, remove_pixel_mean=noise.remove_pixel_mean)


# -- generation ------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _log_uniform(rng: np.random.Generator, r: Range) -> float:
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))


def random_phantom(cfg: DataConfig, rng: np.random.Generator) -> CalciumPhantom:
    """A ``field`` x ``field`` phantom movie with parameters drawn within ``cfg``'s ranges."""
    ref = cfg.phantom
    s = _log_uniform(rng, cfg.radius_scale)
    bleach = _log_uniform(rng, cfg.bleach_tau_s) if rng.random() < cfg.bleach_probability else None
    params = {
        **ref.model_dump(),
        "shape": (cfg.field, cfg.field),
        "n_cells": None,
        "density": _uniform(rng, cfg.density),
        "radius_px": tuple(
            min(max(r * s, 0.5), 100.0) for r in ref.radius_px
        ),  # validator's bounds
        "brightness": ref.brightness * _log_uniform(rng, cfg.brightness_scale),
        "neuropil": ref.neuropil * _log_uniform(rng, cfg.neuropil_scale),
        "background": ref.background * _log_uniform(rng, cfg.background_scale),
        "nucleus_fraction": _uniform(rng, cfg.nucleus_fraction),
        "drift_amplitude": _uniform(rng, cfg.drift_amplitude),
        "bleach_tau_s": bleach,
        "seed": int(rng.integers(2**31)),
    }
    return CalciumPhantom(
        PhantomConfig.model_validate(params), max(1, round(cfg.movie_s * ref.fps))
    )


class _Generator:
    """Pairs in model units from one seed stream; shared by the dataset and validation."""

    def __init__(self, cfg: DataConfig, recorded: RecordedNoise | None) -> None:
        self.cfg = cfg
        self.recorded = recorded
        self.offset, self.scale = normalization(cfg)
        if recorded is not None and min(recorded.shape) < cfg.patch:
            raise ConfigError(
                f"recorded noise frames are {recorded.shape[0]}x{recorded.shape[1]} px, smaller "
                f"than the {cfg.patch} px training patch; use a smaller patch"
            )

    def field_pairs(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cfg, p = self.cfg, self.cfg.patch
        phantom = random_phantom(cfg, rng)
        n = phantom.n_frames
        times = rng.choice(n, cfg.frames_per_field, replace=cfg.frames_per_field > n)
        lo, hi = cfg.noise.level_range
        inv = np.float32(1.0 / self.scale)
        frames = [phantom.clean(int(t)) for t in times]
        for k in range(cfg.patches_per_field):
            frame = frames[k % len(frames)]
            y, x = rng.integers(cfg.field - p + 1, size=2)
            photons = frame[y : y + p, x : x + p]
            rot, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            photons = np.rot90(photons[:, ::-1] if flip else photons, rot)
            level = float(rng.uniform(lo, hi))
            noisy = add_noise(photons, cfg.noise, level, rng, self.recorded)
            clean = expected_camera(photons, cfg.noise.camera)
            noisy -= np.float32(self.offset)
            noisy *= inv
            clean -= np.float32(self.offset)
            clean *= inv
            yield noisy, clean

    def stream(self, key: tuple[int, ...]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for draw in itertools.count():
            yield from self.field_pairs(np.random.default_rng([*key, draw]))


class PairDataset(IterableDataset[tuple[Tensor, Tensor]]):
    """An endless, reproducible stream of ``(noisy, clean)`` patches, ``[1, P, P]`` float32.

    Draw ``k`` of DataLoader worker ``w`` is generated from the seed ``(seed, w, k)``
    alone, so a stream is reproducible for a given seed and number of workers, workers
    never repeat each other, and iterating again restarts the same stream.
    """

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__()
        if seed < 0:
            raise ValueError(f"expected seed >= 0, got {seed}")
        self.cfg = cfg
        self.seed = int(seed)
        self._gen = _Generator(cfg, recorded_noise(cfg.noise))  # load (and fail) early

    @property
    def normalization(self) -> tuple[float, float]:
        return self._gen.offset, self._gen.scale

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        for noisy, clean in self._gen.stream((self.seed, _TRAIN, worker)):
            yield torch.from_numpy(noisy[None]), torch.from_numpy(clean[None])


def validation_set(cfg: DataConfig, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` fixed pairs ``(noisy, clean)``, each ``[n, 1, P, P]``, fixed by ``seed``.

    Drawn from a seed stream tagged apart from training, so even the training seed
    gives patches the training stream never produces.
    """
    if n < 1:
        raise ValueError(f"expected n >= 1 validation patches, got {n}")
    gen = _Generator(cfg, recorded_noise(cfg.noise))
    pairs = list(itertools.islice(gen.stream((int(seed), _VALIDATION, 0)), n))
    noisy = torch.from_numpy(np.stack([a for a, _ in pairs])[:, None])
    clean = torch.from_numpy(np.stack([b for _, b in pairs])[:, None])
    return noisy, clean


# -- evaluation movie --------------------------------------------------------------------


@dataclass
class TestMovie:
    """A noisy movie with everything known about its ground truth (ADU unless noted)."""

    __test__ = False  # not a pytest test class

    noisy: np.ndarray  # (T, H, W) float32
    clean: np.ndarray  # (T, H, W) float32 expected camera image
    traces: np.ndarray  # (n_cells, T) dF/F of each cell (before drift and bleaching)
    spikes: list[np.ndarray]  # per cell, frame indices of spikes (transient onsets)
    footprints: np.ndarray  # (n_cells, H, W) bool, footprint >= half its peak
    fps: float
    level: float = 1.0


def make_test_movie(
    cfg: DataConfig, level: float, n_frames: int, shape: tuple[int, int], seed: int
) -> TestMovie:
    """The reference phantom (``cfg.phantom``, not randomised; ``shape``, ``seed``) with
    ``cfg.noise`` at ``level``; frame ``t``'s noise comes from ``frame_rng(seed, t)``, so
    movies of different lengths share their first frames.
    """
    ref = PhantomConfig.model_validate({**cfg.phantom.model_dump(), "shape": shape, "seed": seed})
    phantom = CalciumPhantom(ref, n_frames)
    recorded = recorded_noise(cfg.noise)
    noisy = np.empty((n_frames, *ref.shape), np.float32)
    clean = np.empty_like(noisy)
    for t in range(n_frames):
        photons = phantom.clean(t)
        clean[t] = expected_camera(photons, cfg.noise.camera)
        noisy[t] = add_noise(photons, cfg.noise, level, frame_rng(seed, t), recorded)
    footprints = np.zeros((phantom.n_cells, *ref.shape), bool)
    for k, fp in enumerate(phantom.footprints):
        footprints[k][fp.slices] = fp.patch >= 0.5
    return TestMovie(
        noisy=noisy,
        clean=clean,
        traces=phantom.traces.copy(),
        spikes=[np.flatnonzero(row) for row in phantom.spikes],
        footprints=footprints,
        fps=ref.fps,
        level=float(level),
    )
