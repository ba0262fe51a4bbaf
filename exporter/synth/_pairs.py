"""Training pairs: a clean movie, a random camera and photon budget, the model's input.

For each sample: a clean movie (``_scenes``) is scaled to a photon budget (its bright
structure, the 99.5th percentile, at 0.5 to 3000 photons per pixel, log-uniform), and
read out by a random camera: ``adu = gain * Poisson(photons) + offset + N(0, read)``,
rounded like an integer camera most of the time (``clip``: and, as its unsigned counts
are, clipped at zero). A share of cameras (``excess``) multiply each photo-electron by a
random gain, as an EMCCD's register or a photomultiplier does: the shot noise's
variance grows by the excess noise factor F^2 (1.1-2: a PMT to an EMCCD) and its
distribution gets a longer tail; the model is told the effective gain, F^2 x gain, as
the live estimate measures it. A share of temporal samples (``fill``)
can start a series, or follow a gap, inside the window: its missing previous frames are
the oldest frame there is, repeated, as the engine stands in for them. For a model with
a running-mean channel, a sample's series began ``0..history`` frames before its window
(drawn uniformly; 0 is a series start) and the mean runs over all of its frames before
the current one (at a series start, the current frame stands in), as the engine's does
(:func:`stream.engine.update_running_mean`). The model input is then built exactly as
the engine builds it (:func:`stream.engine.model_input`), from
a camera *estimate* that is off by a few per cent, as the service's live estimate is; the
target is the noise-free current frame in the same units.

Recorded noise (a dark-frame stack of the user's camera) replaces the Gaussian read
noise when configured; its rms is then the read noise the model is told.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from stream import ConfigError
from stream.camera import darkest_level
from stream.engine import CameraModel, model_input, update_running_mean

from ..noise import RecordedNoise, light_in, load_noise_stack
from ._scenes import FIRST_KINDS, GENERIC, scene_movie

log = logging.getLogger(__name__)

F32 = np.float32
Range = tuple[float, float]
_TRAIN, _VALIDATION = 0, 1  # seed-stream tags: validation never overlaps training


class SynthConfig(BaseModel):
    """What the generated training data covers. Ranges are drawn log-uniformly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patch: int = Field(64, ge=16, le=1024, description="training patch side, px")
    frames: int = Field(1, ge=1, le=16, description="frames per sample (the model's K)")
    noise_map: bool = Field(True, description="add the noise-map channel")
    calcium: float = Field(0.4, ge=0, le=1, description="share of calcium-imaging scenes")
    kinds: tuple[str, ...] = Field(
        FIRST_KINDS,
        min_length=1,
        description=f"generic structure the other scenes mix from: some of {tuple(GENERIC)}",
    )
    photons: Range = Field((0.5, 3000.0), description="bright structure, photons per pixel")
    gain: Range = Field((0.3, 8.0), description="camera gain, ADU per photo-electron")
    read_noise_e: Range = Field((0.3, 12.0), description="read noise, electrons rms")
    offset: Range = Field((0.0, 800.0), description="camera offset, ADU (uniform)")
    zero_offset: float = Field(0.2, ge=0, le=1, description="share of offset 0 (float cameras)")
    integer: float = Field(0.8, ge=0, le=1, description="share of integer (rounded) readouts")
    clip: bool = Field(
        False,
        description="integer readouts clipped at zero, as an unsigned camera's counts are: "
        "at an offset near 0 the read noise's lower tail piles up there (False: as trained "
        "before, negative counts kept)",
    )
    excess: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of electron-multiplying cameras (EMCCD, photomultiplier): each "
        "photo-electron counts Gamma(k, 1/k) times, excess noise factor F^2 = 1 + 1/k "
        "log-uniform in excess_factor (0: Poisson only, as trained before)",
    )
    excess_factor: Range = Field((1.1, 2.0), description="range of F^2 for those cameras")
    gain_error: float = Field(0.08, ge=0, le=1, description="log-normal sigma of the estimate")
    read_error: float = Field(0.25, ge=0, le=2, description="log-normal sigma of the estimate")
    offset_error: float = Field(0.3, ge=0, le=5, description="offset error, in read-noise rms")
    skew_offset: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of samples whose offset estimate comes from the shot noise's "
        "skew, as the live estimate's does from a series' third frame on: the true offset "
        "within offset_error, capped by the darkest blocks; the rest (0: all) get the "
        "darkest blocks' reading, which takes part of the background as offset",
    )
    recorded: Path | None = Field(None, description="dark frames replacing the read noise")
    samples_per_movie: int = Field(4, ge=1, le=64, description="patches cut per clean movie")
    fill: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of temporal samples at a series start or just after a gap: the "
        "missing previous frames stood in for by the oldest one there is, as the engine does "
        "(0: none; a second stage of na-temporal with 0.25 gained there and lost elsewhere)",
    )

    running_mean: float = Field(
        0.0, ge=0, lt=1, description="decay of the running-mean channel (0: no such channel)"
    )
    history: int = Field(
        0, ge=0, le=256, description="most frames a series ran before the window, for the mean"
    )

    @model_validator(mode="after")
    def _ranges(self) -> SynthConfig:
        for name in ("photons", "gain", "read_noise_e"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"expected {name} as (min, max) with 0 < min <= max, got {lo, hi}")
        lo, hi = self.excess_factor
        if not 1 < lo <= hi:
            raise ValueError(
                f"expected excess_factor as (min, max) with 1 < min <= max, got {lo, hi}"
            )
        unknown = [k for k in self.kinds if k not in GENERIC]
        if unknown:
            raise ValueError(f"expected kinds among {tuple(GENERIC)}, got {unknown}")
        return self

    @property
    def channels(self) -> int:
        return self.frames + int(self.noise_map) + int(self.running_mean > 0)

    @property
    def movie_frames(self) -> int:
        """Frames per clean movie: the window, and before it the mean's history."""
        return self.frames + (self.history if self.running_mean > 0 else 0)


def _log_uniform(rng: np.random.Generator, r: Range) -> float:
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))


class PairGenerator:
    """Draws ``(input [C, P, P], target [1, P, P])`` float32 pairs from a seed stream."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        self.recorded: RecordedNoise | None = None
        if cfg.recorded is not None:
            stack = load_noise_stack(cfg.recorded)
            if lit := light_in(stack):  # trained on a scene's light as if it were noise
                log.warning("[synth] recorded = %s: %s", cfg.recorded, lit)
            try:
                self.recorded = RecordedNoise(stack)
            except ConfigError as exc:
                raise ConfigError(f"[synth] recorded = {cfg.recorded}: {exc}") from exc

    def movie_pairs(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cfg = self.cfg
        size = cfg.patch * 2 if cfg.samples_per_movie > 1 else cfg.patch
        clean = scene_movie(rng, size, cfg.movie_frames, cfg.calcium, cfg.kinds)
        for _ in range(cfg.samples_per_movie):
            y, x = rng.integers(0, size - cfg.patch + 1, 2)
            crop = clean[:, y : y + cfg.patch, x : x + cfg.patch]
            rot, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            crop = np.rot90(crop[:, :, ::-1] if flip else crop, rot, axes=(1, 2))
            yield self.pair(np.ascontiguousarray(crop), rng)

    def pair(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Read a clean movie out with a random camera; the model's input and target.

        ``clean``: the movie's last ``frames`` frames are the window; frames before it
        are the series' earlier frames, which only the running mean reads.
        """
        cfg = self.cfg
        if cfg.running_mean > 0:
            before = int(rng.integers(0, clean.shape[0] - cfg.frames + 1))
            clean = clean[clean.shape[0] - cfg.frames - before :]
        photons = clean * F32(_log_uniform(rng, cfg.photons))
        gain = _log_uniform(rng, cfg.gain)
        offset = 0.0 if rng.random() < cfg.zero_offset else float(rng.uniform(*cfg.offset))
        electrons = rng.poisson(photons).astype(F32)
        told_gain = gain
        if cfg.excess > 0 and rng.random() < cfg.excess:
            factor = _log_uniform(rng, cfg.excess_factor)  # F^2 = 1 + 1/k
            k = 1.0 / (factor - 1.0)
            electrons = rng.gamma(electrons * F32(k), 1.0 / k).astype(F32)
            told_gain = gain * factor
        adu = electrons * F32(gain) + F32(offset)
        if self.recorded is not None:
            read = self.recorded.std
            for frame in adu:  # a dark frame of its own for each frame of the series
                frame += self.recorded.sample(frame.shape, rng)
        else:
            read = _log_uniform(rng, cfg.read_noise_e) * gain
            adu += rng.standard_normal(adu.shape, dtype=F32) * F32(read)
        if rng.random() < cfg.integer:
            np.rint(adu, out=adu)
            if cfg.clip:
                np.maximum(adu, 0.0, out=adu)
        adu, running_mean = self._window_and_mean(adu, rng)
        photons = photons[photons.shape[0] - cfg.frames :]
        estimate = CameraModel(
            gain=told_gain * math.exp(rng.normal(0, cfg.gain_error)),
            offset=offset + self._offset_error(photons[-1], gain, read, rng),
            read_noise=read * math.exp(rng.normal(0, cfg.read_error)),
        )
        inputs = np.empty((cfg.channels, *adu.shape[1:]), F32)
        scale = model_input(adu, estimate, cfg.noise_map, out=inputs, running_mean=running_mean)
        target = (photons[-1] * F32(gain) + F32(offset - estimate.offset)) / F32(scale)
        return inputs, target[None].astype(F32)

    def _offset_error(
        self, photons: np.ndarray, gain: float, read: float, rng: np.random.Generator
    ) -> float:
        """How far the live estimate's offset is from the camera's, in ADU."""
        # The darkest 4 x 4 block means bound the offset from above, and read part of the
        # background as offset: alone, the live estimate takes them (a series' first two
        # frames); from the third, the skew of the shot noise moves it to the true offset.
        darkest = darkest_level(photons)
        if self.cfg.skew_offset > 0 and rng.random() < self.cfg.skew_offset:
            return min(rng.normal(0, self.cfg.offset_error) * read, gain * darkest)
        return gain * darkest * rng.uniform(0.0, 1.0) + rng.normal(0, self.cfg.offset_error) * read

    def _window_and_mean(
        self, adu: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The window's frames of a read-out series (``fill``: a series start inside it)
        and, for a running-mean model, the mean of the series' frames before the
        current one, as the engine keeps it."""
        cfg = self.cfg
        series = adu
        if cfg.frames > 1 and cfg.fill and rng.random() < cfg.fill:
            # Without these the model reads a repeated frame's noise as signal and hardly
            # denoises the first frames of a series (measured: 10 dB at 1 photon, not 20).
            missing = int(rng.integers(1, cfg.frames))
            adu = adu[adu.shape[0] - cfg.frames :]  # the series starts in the window
            adu[:missing] = adu[missing]
            series = adu[missing:]
        running_mean = None
        if cfg.running_mean > 0:  # at a series start the current frame stands in
            running_mean = series[0].copy()
            for count, frame in enumerate(series[1:-1], start=2):
                update_running_mean(running_mean, frame, cfg.running_mean, count)
        return adu[adu.shape[0] - cfg.frames :], running_mean

    def stream(self, key: tuple[int, ...]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for draw in itertools.count():
            yield from self.movie_pairs(np.random.default_rng([*key, draw]))


class SynthDataset(IterableDataset[tuple[Tensor, Tensor]]):
    """An endless, reproducible stream of pairs; worker ``w`` draws from ``(seed, w)``."""

    def __init__(self, cfg: SynthConfig, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = int(seed)
        self._gen = PairGenerator(cfg)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        for inputs, target in self._gen.stream((self.seed, _TRAIN, worker)):
            yield torch.from_numpy(inputs), torch.from_numpy(target)


def synth_validation_set(cfg: SynthConfig, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` fixed pairs from a seed stream tagged apart from training."""
    gen = PairGenerator(cfg)
    pairs = list(itertools.islice(gen.stream((int(seed), _VALIDATION, 0)), n))
    inputs = torch.from_numpy(np.stack([a for a, _ in pairs]))
    targets = torch.from_numpy(np.stack([b for _, b in pairs]))
    return inputs, targets


def describe(cfg: SynthConfig) -> dict[str, Any]:
    """The training-data description stored in a model's metadata."""
    return {"generator": "exporter.synth", **cfg.model_dump(mode="json")}
