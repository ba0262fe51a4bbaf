"""Ground-truth calcium-imaging movies (the camera noise itself is in ``_camera``).

The simulator streams these frames and the exporter trains on them, so both see the same
physics: a clean movie in expected photo-electrons per pixel (cells, neuropil,
background), then Poisson shot noise, camera gain, offset and Gaussian read noise.
Knowing the clean movie exactly is the point: a denoiser's output can be scored against
``expected_camera`` (the noise-free image in camera units) instead of against a guess.

Everything here is plain numpy and deterministic given ``seed``. Footprints, spike
trains and the neuropil draw from independent seed streams, so a longer movie of the
same config starts with the same cells and spikes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._errors import ConfigError
from .._types import FrameShape
from ._camera import (
    CameraDtype,
    NoiseModel,
    apply_camera_noise,
    expected_camera,
    frame_rng,
    noise_std,
)

# The camera names are re-exported: the phantom and its noise are used together.
__all__ = [
    "CalciumPhantom",
    "CameraDtype",
    "FramePool",
    "NoiseModel",
    "PhantomConfig",
    "apply_camera_noise",
    "calcium_kernel",
    "expected_camera",
    "frame_rng",
    "noise_std",
]

log = logging.getLogger(__name__)

_SPIKE_BLOCK = 64  # spikes drawn per block, so spike trains do not depend on n_frames


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float, unit: str) -> None:
    a, b = value
    if not lo <= a <= b <= hi:
        raise ValueError(
            f"expected {name} as (min, max) with {lo} <= min <= max <= {hi} {unit}, got ({a}, {b})"
        )


class PhantomConfig(BaseModel):
    """A GCaMP-like calcium imaging field of view. Brightness in photons/pixel/frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: FrameShape = Field((512, 512), description="(height, width) in pixels")
    fps: float = Field(30.0, gt=0, le=100_000, description="frame rate of the movie, Hz")
    n_cells: int | None = Field(None, ge=0, le=1_000_000, description="None: use density")
    density: float = Field(3.0, ge=0, le=100, description="cells per 100x100 px")
    radius_px: tuple[float, float] = Field((3.0, 9.0), description="cell radius range, px")
    aspect_max: float = Field(1.5, ge=1, le=5, description="largest long/short axis ratio")
    edge_px: float = Field(1.0, gt=0, le=10, description="soft edge width, px")
    min_separation: float = Field(
        0.8, ge=0, le=3, description="min centre distance as a multiple of r_i + r_j"
    )
    brightness: float = Field(
        30.0, ge=0, le=1e6, description="resting cell fluorescence at the centre, photons"
    )
    brightness_jitter: float = Field(0.3, ge=0, le=2, description="log-normal sigma per cell")
    texture: float = Field(0.1, ge=0, le=1, description="within-cell brightness variation")
    nucleus_fraction: float = Field(
        0.0, ge=0, lt=1, description="nucleus radius / cell radius; 0 = no nucleus"
    )
    nucleus_level: float = Field(0.3, ge=0, le=1, description="nucleus brightness / cytosol")
    spike_rate_hz: tuple[float, float] = Field((0.05, 1.0), description="per-cell rate, Hz")
    amplitude_dff: tuple[float, float] = Field((0.3, 1.0), description="dF/F per spike")
    amplitude_jitter: float = Field(0.2, ge=0, le=2, description="log-normal sigma per spike")
    rise_tau_s: float = Field(0.05, ge=0.001, le=1, description="transient rise tau, s")
    decay_tau_s: float = Field(0.6, ge=0.01, le=20, description="transient decay tau, s")
    tau_jitter: float = Field(0.15, ge=0, le=1, description="log-normal sigma of taus per cell")
    neuropil: float = Field(8.0, ge=0, le=1e6, description="mean neuropil, photons")
    neuropil_contrast: float = Field(0.3, ge=0, le=1, description="spatial std / mean")
    neuropil_scale_px: float = Field(24.0, gt=0, le=10_000, description="spatial sigma, px")
    neuropil_coupling: float = Field(
        1.0, ge=0, le=100, description="neuropil dF/F per unit population mean dF/F"
    )
    neuropil_tau_s: float = Field(2.0, gt=0, le=3600, description="neuropil time scale, s")
    neuropil_fluctuation: float = Field(0.05, ge=0, le=1, description="independent slow std")
    background: float = Field(2.0, ge=0, le=1e6, description="uniform offset, photons")
    vignetting: float = Field(0.2, ge=0, lt=1, description="excitation loss at the corners")
    drift_amplitude: float = Field(0.02, ge=0, lt=1, description="relative excitation drift")
    drift_period_s: float = Field(120.0, gt=0, le=1e6, description="drift period, s")
    bleach_tau_s: float | None = Field(None, gt=0, description="bleaching tau, s; None = off")
    noise: NoiseModel = NoiseModel.model_validate({})  # frozen: one shared default is safe
    seed: int = Field(0, ge=0, description="seeds footprints, spikes and neuropil")

    @field_validator("radius_px")
    @classmethod
    def _radius(cls, value: tuple[float, float]) -> tuple[float, float]:
        _check_range("radius_px", value, 0.5, 100, "px")
        return value

    @field_validator("spike_rate_hz")
    @classmethod
    def _rate(cls, value: tuple[float, float]) -> tuple[float, float]:
        _check_range("spike_rate_hz", value, 0, 100, "Hz")
        return value

    @field_validator("amplitude_dff")
    @classmethod
    def _amplitude(cls, value: tuple[float, float]) -> tuple[float, float]:
        _check_range("amplitude_dff", value, 0, 20, "dF/F")
        return value

    @model_validator(mode="after")
    def _kinetics(self) -> PhantomConfig:
        if self.decay_tau_s <= self.rise_tau_s:
            raise ValueError(
                f"expected decay_tau_s > rise_tau_s, got decay {self.decay_tau_s} s "
                f"<= rise {self.rise_tau_s} s"
            )
        return self

    @property
    def cell_count(self) -> int:
        """``n_cells`` if given, else ``density`` scaled to the frame area."""
        if self.n_cells is not None:
            return self.n_cells
        return round(self.density * self.shape[0] * self.shape[1] / 1e4)


@dataclass(frozen=True, slots=True)
class Footprint:
    """A cell's spatial profile, stored sparsely: a patch placed at ``(y0, x0)``."""

    y0: int
    x0: int
    patch: np.ndarray  # float32, peak 1

    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.patch.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def dense(self, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, np.float32)
        out[self.slices] = self.patch
        return out


@dataclass(frozen=True)
class Cells:
    """Per-cell ground-truth parameters, one row per cell."""

    center_yx: np.ndarray  # (n, 2) px
    radius_px: np.ndarray  # equivalent radius sqrt(a * b)
    semi_axes_px: np.ndarray  # (n, 2)
    angle_rad: np.ndarray
    brightness: np.ndarray  # resting photons at the footprint peak, before vignetting
    rate_hz: np.ndarray
    amplitude_dff: np.ndarray  # per-cell mean dF/F per spike
    rise_tau_s: np.ndarray
    decay_tau_s: np.ndarray

    def __len__(self) -> int:
        return len(self.radius_px)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _causal_exp_filter(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``z[c, j] = sum_{i <= j} x[c, i] * r[c] ** (j - i)`` by FFT convolution."""
    n_rows, n = x.shape
    z = np.zeros_like(x, dtype=np.float64)
    if n == 0 or n_rows == 0:
        return z
    r = np.clip(r, 0.0, 1.0 - 1e-12)
    lengths = np.minimum(n, 1 + np.ceil(np.log(1e-12) / np.log(np.maximum(r, 1e-300))))
    length = int(max(1, lengths.max()))
    nfft = 1 << math.ceil(math.log2(n + length - 1))
    powers = np.arange(length, dtype=np.float64)
    chunk = max(1, (1 << 22) // nfft)
    for c0 in range(0, n_rows, chunk):
        rows = slice(c0, c0 + chunk)
        kernel = r[rows, None] ** powers[None, :]
        spec = np.fft.rfft(x[rows], nfft) * np.fft.rfft(kernel, nfft)
        z[rows] = np.fft.irfft(spec, nfft)[:, :n]
    return z


def _spike_response(
    cell: np.ndarray,
    frame: np.ndarray,
    frac: np.ndarray,
    amp: np.ndarray,
    n_cells: int,
    n_frames: int,
    fps: float,
    rise: np.ndarray,
    decay: np.ndarray,
) -> np.ndarray:
    """dF/F traces, (n_cells, n_frames): each spike adds ``amp * h(t - s)``, averaged over
    each frame's exposure, where ``h = (exp(-t/decay) - exp(-t/rise)) / peak`` peaks at 1.

    A spike at ``frac`` into frame ``j`` contributes to frame ``j`` the exposure-average
    of its partial transient and, through a per-frame geometric decay, to all later
    frames; the result is exact for each exponential (no sub-frame sampling).
    """
    dt = 1.0 / fps
    out = np.zeros((n_cells, n_frames))
    for sign, tau in ((1.0, decay), (-1.0, rise)):
        t_left = (1.0 - frac) * dt / tau[cell]  # rest of the spike's frame, in taus
        same = np.zeros((n_cells, n_frames))
        carry = np.zeros((n_cells, n_frames))
        np.add.at(same, (cell, frame), amp * (tau[cell] / dt) * -np.expm1(-t_left))
        np.add.at(carry, (cell, frame), amp * np.exp(-t_left))
        r = np.exp(-dt / tau)
        z = _causal_exp_filter(carry, r)
        comp = same
        comp[:, 1:] += ((tau / dt) * -np.expm1(-dt / tau))[:, None] * z[:, :-1]
        out += sign * comp
    t_peak = decay * rise / (decay - rise) * np.log(decay / rise)
    out /= (np.exp(-t_peak / decay) - np.exp(-t_peak / rise))[:, None]
    out[out < 1e-9] = 0.0  # exact zeros before the first spike keep frame synthesis sparse
    return out


def calcium_kernel(
    rise_tau_s: float, decay_tau_s: float, fps: float, n_frames: int, offset: float = 0.0
) -> np.ndarray:
    """dF/F per frame of one unit spike at ``offset`` (0..1) into frame 0, peak 1."""
    one = np.zeros(1, np.int64)
    return _spike_response(
        one,
        one,
        np.array([offset]),
        np.ones(1),
        1,
        n_frames,
        fps,
        np.array([rise_tau_s]),
        np.array([decay_tau_s]),
    )[0]


class CalciumPhantom:
    """A ground-truth movie of ``n_frames``, synthesised frame by frame on demand.

    Parameters
    ----------
    config
        What the field of view looks like and how it behaves.
    n_frames
        Length of the precomputed traces; frames ``0 .. n_frames - 1`` exist.
    """

    def __init__(self, config: PhantomConfig, n_frames: int) -> None:
        if n_frames < 1:
            raise ConfigError(f"expected n_frames >= 1, got {n_frames}")
        self.config = config
        self.n_frames = int(n_frames)
        seeds = np.random.SeedSequence(config.seed).spawn(4)
        self._make_cells(np.random.default_rng(seeds[0]))
        self._make_traces(seeds[1])
        self._make_neuropil(np.random.default_rng(seeds[2]))
        self._make_excitation(np.random.default_rng(seeds[3]))
        self._static = np.zeros(config.shape, np.float32)
        for fp in self._weighted:
            self._static[fp.slices] += fp.patch

    # -- construction -----------------------------------------------------------------

    def _make_cells(self, rng: np.random.Generator) -> None:
        cfg = self.config
        h, w = cfg.shape
        n = cfg.cell_count
        radius = rng.uniform(*cfg.radius_px, n)
        centers = np.empty((n, 2))
        for k in range(n):  # rejection sampling; gives up (allows overlap) after 50 tries
            for _ in range(50):
                c = rng.uniform((0.0, 0.0), (h, w))
                d = np.hypot(*(centers[:k] - c).T)
                if np.all(d >= cfg.min_separation * (radius[:k] + radius[k])):
                    break
            centers[k] = c
        aspect = rng.uniform(1.0, cfg.aspect_max, n)
        axes = np.stack([radius * np.sqrt(aspect), radius / np.sqrt(aspect)], axis=1)
        angle = rng.uniform(0.0, np.pi, n)
        bright = cfg.brightness * rng.lognormal(0.0, cfg.brightness_jitter, n)
        yy, xx = np.ogrid[:h, :w]
        corner = max(((h - 1) ** 2 + (w - 1) ** 2) / 4, 1.0)
        rr = ((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / corner
        self.illumination = (1.0 - cfg.vignetting * rr).astype(np.float32)
        footprints, weighted = [], []
        for k in range(n):
            fp = self._footprint(centers[k], axes[k], angle[k], radius[k], rng)
            footprints.append(fp)
            gain = self.illumination[fp.slices] * np.float32(bright[k])
            weighted.append(Footprint(fp.y0, fp.x0, fp.patch * gain))
        self.footprints: tuple[Footprint, ...] = tuple(footprints)
        self._weighted = tuple(weighted)
        lo, hi = cfg.spike_rate_hz  # log-uniform: rates spread over decades, as in cortex
        if lo > 0:
            rate = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        else:
            rate = rng.uniform(lo, hi, n)
        rise = cfg.rise_tau_s * rng.lognormal(0.0, cfg.tau_jitter, n)
        decay = np.maximum(cfg.decay_tau_s * rng.lognormal(0.0, cfg.tau_jitter, n), 2 * rise)
        self.cells = Cells(
            centers,
            radius,
            axes,
            angle,
            bright,
            rate,
            rng.uniform(*cfg.amplitude_dff, n),
            rise,
            decay,
        )

    def _footprint(
        self,
        center: np.ndarray,
        axes: np.ndarray,
        angle: float,
        radius: float,
        rng: np.random.Generator,
    ) -> Footprint:
        cfg = self.config
        half = math.ceil(axes.max() + 4 * cfg.edge_px) + 1
        cy, cx = (math.floor(v) for v in center)
        y0, x0 = max(0, cy - half), max(0, cx - half)
        y1, x1 = min(cfg.shape[0], cy + half + 1), min(cfg.shape[1], cx + half + 1)
        dy = np.arange(y0, y1)[:, None] - center[0]
        dx = np.arange(x0, x1)[None, :] - center[1]
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        rho = np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2)
        patch = _sigmoid((1.0 - rho) * radius / cfg.edge_px)
        if cfg.nucleus_fraction > 0:
            inside = _sigmoid((cfg.nucleus_fraction - rho) * radius / cfg.edge_px)
            patch *= 1.0 - (1.0 - cfg.nucleus_level) * inside
        if cfg.texture > 0:
            white = np.pad(rng.standard_normal(patch.shape), 1, mode="reflect")
            ph, pw = patch.shape
            tex = np.zeros(patch.shape)
            for i in range(3):  # 3x3 box sum of unit normals / 3: smooth, std ~ 1
                for j in range(3):
                    tex += white[i : i + ph, j : j + pw]
            tex /= 3.0
            patch *= np.clip(1.0 + cfg.texture * tex, 0.0, None)
        patch /= max(patch.max(), 1e-12)
        patch[patch < 1e-3] = 0.0
        return Footprint(y0, x0, patch.astype(np.float32))

    def _make_traces(self, seed: np.random.SeedSequence) -> None:
        cfg, cells, n = self.config, self.cells, self.n_frames
        duration = n / cfg.fps
        cell_idx, times, amps = [], [], []
        for k, child in enumerate(seed.spawn(len(cells))):
            rng = np.random.default_rng(child)
            t_k, a_k, t_end = [], [], 0.0
            while cells.rate_hz[k] > 0 and t_end < duration:
                isi = rng.exponential(1.0 / cells.rate_hz[k], _SPIKE_BLOCK)
                jit = rng.lognormal(0.0, cfg.amplitude_jitter, _SPIKE_BLOCK)
                t = t_end + np.cumsum(isi)
                t_end = float(t[-1])
                keep = t < duration
                t_k.append(t[keep])
                a_k.append(cells.amplitude_dff[k] * jit[keep])
            t_arr = np.concatenate(t_k) if t_k else np.zeros(0)
            times.append(t_arr)
            amps.append(np.concatenate(a_k) if a_k else np.zeros(0))
            cell_idx.append(np.full(len(t_arr), k))
        self.spike_times: tuple[np.ndarray, ...] = tuple(times)
        self.spike_amplitudes: tuple[np.ndarray, ...] = tuple(amps)
        cell = np.concatenate(cell_idx).astype(np.int64) if cell_idx else np.zeros(0, np.int64)
        pos = np.concatenate(times) * cfg.fps if times else np.zeros(0)
        frame = np.minimum(np.floor(pos).astype(np.int64), n - 1)
        frac = np.clip(pos - frame, 0.0, 1.0)
        self.spikes = np.zeros((len(cells), n), np.uint16)
        np.add.at(self.spikes, (cell, frame), 1)
        dff = _spike_response(
            cell,
            frame,
            frac,
            np.concatenate(amps) if amps else np.zeros(0),
            len(cells),
            n,
            cfg.fps,
            cells.rise_tau_s,
            cells.decay_tau_s,
        )
        self.traces = dff.astype(np.float32)

    def _make_neuropil(self, rng: np.random.Generator) -> None:
        cfg, n = self.config, self.n_frames
        h, w = cfg.shape
        fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
        lowpass = np.exp(-2 * np.pi**2 * cfg.neuropil_scale_px**2 * (fy**2 + fx**2))
        field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((h, w))) * lowpass, (h, w))
        field = (field - field.mean()) / max(field.std(), 1e-12)
        field = np.clip(1.0 + cfg.neuropil_contrast * field, 0.05, None)
        self.neuropil_image = (cfg.neuropil * field * self.illumination).astype(np.float32)
        r = np.array([math.exp(-1.0 / (cfg.neuropil_tau_s * cfg.fps))])
        pop = self.traces.mean(axis=0, dtype=np.float64) if len(self.cells) else np.zeros(n)
        smooth = (1.0 - r[0]) * _causal_exp_filter(pop[None, :], r)[0]
        slow = math.sqrt(1.0 - r[0] ** 2) * _causal_exp_filter(rng.standard_normal((1, n)), r)[0]
        trace = 1.0 + cfg.neuropil_coupling * smooth + cfg.neuropil_fluctuation * slow
        self.neuropil_trace = np.clip(trace, 0.0, None).astype(np.float32)

    def _make_excitation(self, rng: np.random.Generator) -> None:
        cfg = self.config
        t = np.arange(self.n_frames) / cfg.fps
        phase = rng.uniform(0.0, 2 * np.pi)
        ex = 1.0 + cfg.drift_amplitude * np.sin(2 * np.pi * t / cfg.drift_period_s + phase)
        if cfg.bleach_tau_s is not None:
            ex *= np.exp(-t / cfg.bleach_tau_s)
        #: drift x bleaching: multiplies all fluorescence (cells and neuropil) per frame
        self.excitation = ex.astype(np.float32)

    # -- access -----------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        return self.config.shape

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def _check(self, t: int) -> int:
        if not 0 <= t < self.n_frames:
            raise IndexError(f"expected frame 0..{self.n_frames - 1}, got {t}")
        return int(t)

    def clean(self, t: int, out: np.ndarray | None = None) -> np.ndarray:
        """Expected photo-electrons per pixel of frame ``t``, float32 (H, W)."""
        t = self._check(t)
        g = self.excitation[t]
        out = np.multiply(self._static, g, out=out)
        out += self.neuropil_image * (g * self.neuropil_trace[t])
        out += np.float32(self.config.background)
        col = self.traces[:, t]
        for k in np.flatnonzero(col):
            fp = self._weighted[k]
            out[fp.slices] += fp.patch * (g * col[k])
        return out

    def clean_movie(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start .. stop - 1`` of :meth:`clean`, float32 (T, H, W)."""
        stop = self.n_frames if stop is None else stop
        movie = np.empty((max(0, stop - start), *self.shape), np.float32)
        for i, t in enumerate(range(start, stop)):
            self.clean(t, out=movie[i])
        return movie

    def expected_camera(self, t: int) -> np.ndarray:
        """Ground truth in camera units, ``gain * photons + offset``, float32."""
        return expected_camera(self.clean(t), self.config.noise)

    def noisy(
        self, t: int, rng: np.random.Generator | int | None = None, dtype: CameraDtype = "uint16"
    ) -> np.ndarray:
        """One camera readout of frame ``t`` under ``config.noise``."""
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return apply_camera_noise(self.clean(t), self.config.noise, gen, dtype)

    def labels(self, threshold: float = 0.5) -> np.ndarray:
        """Dense label image, int32: 0 background, ``k + 1`` where cell ``k`` dominates."""
        labels = np.zeros(self.shape, np.int32)
        best = np.full(self.shape, threshold, np.float32)
        for k, fp in enumerate(self.footprints):
            lab, top = labels[fp.slices], best[fp.slices]
            wins = (fp.patch >= top) & ((fp.patch > top) | (lab == 0))
            lab[wins] = k + 1
            top[wins] = fp.patch[wins]
        return labels

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        """Pixels inside any cell (footprint >= ``threshold``), bool (H, W)."""
        return self.labels(threshold) > 0


class FramePool:
    """Pre-generated noisy frames, cycled by a simulator running faster than noise
    generation allows (a 512x512 Poisson draw costs ~20 ms).

    Slot ``s`` holds frame ``s % phantom.n_frames`` drawn with :func:`frame_rng` of
    ``(seed, s)``, so the pool reproduces live generation for indices below its size.
    Frames are read-only: they can be sent zero-copy without being modified in flight.
    """

    def __init__(
        self, phantom: CalciumPhantom, size: int, *, seed: int = 0, dtype: CameraDtype = "uint16"
    ) -> None:
        if size < 1:
            raise ConfigError(f"expected a pool size >= 1, got {size}")
        self.phantom = phantom
        self.frames = np.empty((size, *phantom.shape), np.dtype(dtype))
        for s in range(size):
            self.frames[s] = phantom.noisy(self.truth_index(s), frame_rng(seed, s), dtype)
        self.frames.setflags(write=False)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames[index % len(self.frames)]

    def truth_index(self, index: int) -> int:
        """The phantom frame behind stream index ``index``."""
        return (index % len(self.frames)) % self.phantom.n_frames
