"""The model's output blended with smoothing, chosen by Stein's unbiased risk estimate.

A small network run on scenes unlike its training data errs in two known ways: at the
lowest light it leaves noise in (a light blur of its output helps), and at moderate light
it erases faint structure that a Gaussian of the input keeps (a share of that Gaussian
helps). Which one, and how much, depends on the scene and the light, and no ground truth
is there to tell. Stein's unbiased risk estimate (SURE; Stein 1981, used to weigh
denoisers by Blu and Luisier's SURE-LET, 2007) tells it from the noisy frame alone: for
noise of known per-pixel variance sigma^2, the mean squared error of an estimate h(y) of
the clean frame is, in expectation,

    ||h(y) - y||^2 - sum sigma^2 + 2 sum sigma_i^2 dh_i/dy_i.

The variance comes from the camera (configured or estimated live); the divergence of a
Gaussian is its kernel's centre; the network's is estimated by Monte Carlo (Ramani, Blu
and Unser 2008): one more pass on the frame plus a small random probe, ``b^T (f(y + e b)
- f(y)) / e``. Each candidate -- the output blurred by ``post`` px, then mixed with a
``fuse`` px Gaussian of the input at ``weight`` -- gets its risk from the same two passes;
the series is served the candidate with the least risk, summed over its measured frames
(older ones fading). The Gaussian approximation of Poisson noise holds where a pixel
sees more than a photon or two or the read noise is a few e-; pixels the noise model does
not describe -- spikes, non-finite pixels, readouts near a clipping floor -- are left out
of the sums.

Measured (one-off probe, ``na-lite``, 16-frame 128x128 movies, live camera estimate, the
candidates' risk from all 16 frames): the risk picked the best candidate of the grid
at 12 of the 15 generator x budget cases of ``independent``, ``textures`` and the
project's ``phantom`` at 1-100 photons, and a better one than the model alone at all
but one (equal there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from ..camera import CameraModel, Spikes

BlendSetting = Literal["sure", "off"]
BLEND_SETTINGS: tuple[BlendSetting, ...] = ("sure", "off")

#: Blurs of the model's output tried (px, Gaussian sigma; 0: none).
POST_SIGMAS = (0.0, 0.5, 0.7, 1.0, 1.4)
#: Gaussians of the input mixed in (px), and their weights.
FUSE_SIGMAS = (1.0, 1.5, 2.0)
FUSE_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: The probe's size in noise sigmas: small, for the derivative; not so small that
#: float32 rounding in the network decides it.
PROBE_STEP = 0.05
#: The noise variance is read from the frame smoothed this much (px), not the pixel
#: itself, whose own noise would make the map noisy.
VARIANCE_SIGMA = 1.5
#: Each measured frame's risks count this much more than those measured before it: the
#: choice follows a series whose light or scene drifts over ~this many measurements.
FADE = 1.0 / 16.0
#: Gaussians' kernels reach this many sigmas (scipy's default is 4).
TRUNCATE = 3.0


@dataclass(frozen=True)
class BlendChoice:
    """One candidate: blur the output by ``post`` px, then mix in a ``fuse`` px Gaussian
    of the input at ``weight``."""

    post: float = 0.0
    fuse: float = 0.0
    weight: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.post == 0.0 and self.weight == 0.0

    def as_dict(self) -> dict[str, float]:
        return {"post_sigma": self.post, "fuse_sigma": self.fuse, "fuse_weight": self.weight}


IDENTITY = BlendChoice()
CANDIDATES: tuple[BlendChoice, ...] = tuple(BlendChoice(p) for p in POST_SIGMAS) + tuple(
    BlendChoice(p, s, w) for p in POST_SIGMAS for s in FUSE_SIGMAS for w in FUSE_WEIGHTS
)


@cache
def gaussian_taps(sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian kernel, ``TRUNCATE`` sigmas each side (float32)."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian of a 2-D float32 image, borders mirrored (the edge pixel repeated); the
    image itself at 0. In numpy, separable, the kernel's symmetry halving the products:
    the online half does without scipy."""
    if sigma <= 0.0:
        return image
    taps = gaussian_taps(sigma)
    radius = len(taps) // 2
    h, w = image.shape
    padded = np.pad(image, radius, mode="symmetric")
    across = _taps_along(padded, taps, axis=1, length=w)  # (h + 2r, w)
    return _taps_along(across, taps, axis=0, length=h)


def _taps_along(padded: np.ndarray, taps: np.ndarray, axis: int, length: int) -> np.ndarray:
    radius = len(taps) // 2

    def shifted(k: int) -> np.ndarray:
        return padded[:, k : k + length] if axis == 1 else padded[k : k + length]

    out = shifted(radius) * taps[radius]
    pair = np.empty_like(out)
    for k in range(radius):
        np.add(shifted(k), shifted(2 * radius - k), out=pair)
        pair *= taps[k]
        out += pair
    return out


@cache
def kernel_centre(sigma: float) -> float:
    """The centre weight of :func:`smooth`'s 2-D kernel: its divergence per unit variance."""
    return float(gaussian_taps(sigma)[len(gaussian_taps(sigma)) // 2]) ** 2


def apply_blend(
    out: np.ndarray, scene: np.ndarray, choice: BlendChoice, *, post: np.ndarray | None = None
) -> np.ndarray:
    """``out`` (float32, raw units) blended as ``choice`` says with ``scene``, the input
    frame as float32 with its spikes filled and no non-finite pixel; ``post``: the
    output's blur if already computed."""
    if choice.is_identity:
        return out
    blended = smooth(out, choice.post) if post is None else post
    if choice.weight > 0.0:
        fused = smooth(scene, choice.fuse)
        blended = (1.0 - choice.weight) * blended + choice.weight * fused
    return np.asarray(blended, dtype=np.float32)


def noise_variance(scene: np.ndarray, camera: CameraModel) -> np.ndarray:
    """The per-pixel noise variance (ADU^2) the camera gives a frame like ``scene``."""
    level = smooth(scene, VARIANCE_SIGMA) - np.float32(camera.offset)
    np.maximum(level, 0.0, out=level)
    level *= np.float32(camera.gain)
    level += np.float32(camera.read_noise**2)
    return level


def described_pixels(
    scene: np.ndarray, camera: CameraModel, spikes: Spikes | None, bad: np.ndarray | None
) -> np.ndarray:
    """Where the Poisson-Gaussian noise model holds: not a spike, not a non-finite pixel,
    not near a clipping floor."""
    keep = np.ones(scene.shape, bool)
    if spikes is not None:
        keep[spikes] = False
    if bad is not None:
        keep &= ~bad
    if camera.floor is not None:
        keep &= smooth(scene, VARIANCE_SIGMA) > camera.floor + 3.0 * camera.read_noise
    return keep


def candidate_risks(
    scene: np.ndarray,
    out: np.ndarray,
    probed: np.ndarray,
    probe: np.ndarray,
    variance: np.ndarray,
    keep: np.ndarray,
) -> np.ndarray:
    """Every candidate's risk for one frame, up to a constant they share (``- sum
    sigma^2``), in ADU^2 summed over ``keep``.

    ``out``: the model's output for ``scene``; ``probed``: its output for ``scene +
    PROBE_STEP * probe`` where ``probe`` is standard normal noise times the noise sigma.
    """
    everywhere = bool(keep.all())  # the usual case: no product with the mask needed
    weight = keep.astype(np.float32)

    def kept(values: np.ndarray) -> np.ndarray:
        return values if everywhere else values * weight

    step = float(PROBE_STEP)
    kept_variance = float(variance.sum() if everywhere else np.vdot(variance, weight))
    fused = {s: smooth(scene, s) for s in FUSE_SIGMAS}
    fused_div = {s: kept_variance * kernel_centre(s) for s in FUSE_SIGMAS}
    risks = np.empty(len(CANDIDATES))
    i = 0
    posts = {}
    for p in POST_SIGMAS:
        h = smooth(out, p)
        div = float(np.vdot(kept(probe), smooth(probed, p) - h)) / step
        a = kept(h - scene)
        posts[p] = (h, div, a, float(np.vdot(a, a)))
    for p in POST_SIGMAS:  # the order of CANDIDATES: blurs alone, then mixes
        _, div, _, aa = posts[p]
        risks[i] = aa + 2.0 * div
        i += 1
    for p in POST_SIGMAS:
        h, div, a, aa = posts[p]
        for s in FUSE_SIGMAS:
            c = kept(fused[s] - h)
            ac, cc = float(np.vdot(a, c)), float(np.vdot(c, c))
            for w in FUSE_WEIGHTS:
                risks[i] = (
                    aa + 2.0 * w * ac + w * w * cc + 2.0 * ((1.0 - w) * div + w * fused_div[s])
                )
                i += 1
    return risks


#: Frames measured for a regime's risks at its start, then one in ``MEASURE_EVERY``.
MEASURE_WARMUP = 8
MEASURE_EVERY = 16

#: What the risks are kept apart by: the model, and how many previous frames it used
#: (a temporal model's young window errs unlike its full one).
RegimeKey = tuple[str, int]


@dataclass
class _Regime:
    risks: np.ndarray
    measured: int = 0
    since: int = 0  # frames since the last measured one


class RiskBlend:
    """One series' candidate risks per regime, faded over its measured frames, and the
    choice they make."""

    def __init__(self) -> None:
        self._regimes: dict[RegimeKey, _Regime] = {}

    def _regime(self, key: RegimeKey) -> _Regime:
        regime = self._regimes.get(key)
        if regime is None:  # another model's risks are no guide to this one's
            for other in [k for k in self._regimes if k[0] != key[0]]:
                del self._regimes[other]
            regime = self._regimes[key] = _Regime(np.zeros(len(CANDIDATES)))
        return regime

    def measured(self, key: RegimeKey) -> int:
        regime = self._regimes.get(key)
        return 0 if regime is None else regime.measured

    def due(self, key: RegimeKey) -> bool:
        """Whether a frame in this regime is one to measure; counts it."""
        regime = self._regime(key)
        regime.since += 1
        return regime.measured < MEASURE_WARMUP or regime.since >= MEASURE_EVERY

    def add(self, key: RegimeKey, risks: np.ndarray) -> None:
        """A measured frame's candidate risks (:func:`candidate_risks`)."""
        regime = self._regime(key)
        fade = max(FADE, 1.0 / (regime.measured + 1))
        regime.risks += fade * (risks - regime.risks)
        regime.measured += 1
        regime.since = 0

    def choice(self, key: RegimeKey) -> BlendChoice:
        """The candidate of least risk (none measured: the output as it is)."""
        regime = self._regimes.get(key)
        if regime is None or regime.measured == 0:
            return IDENTITY
        return CANDIDATES[int(np.argmin(regime.risks))]
