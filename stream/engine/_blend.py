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
``fuse`` px Gaussian of the input at ``weight``, or in bright frames with the input itself
-- gets its risk from the same two passes.
A noise-adaptive network has one more dial, the noise map it is told (FFDNet's trade-off
between noise removed and detail kept): the same candidates on its output with a map
0.8 and 1.2 times the camera's get their risks from two passes more each. At the lowest
light the output may also be mixed with the model's output on the frame binned 2 x 2
(:mod:`stream.engine._binned`), its divergence by Monte Carlo from two more passes at a
quarter of the pixels.
For a model with a running-mean channel (a temporal one) the mix may also take a
Gaussian of the series' running mean, the current frame taken into it (it depends on the
frame only through that frame's share, which is its divergence): a spatio-temporal
smoothing beside the network, as the evaluation's causal spatio-temporal baseline is.
The series is served the candidate with the least risk, summed over its measured frames
(older ones fading), where it is less than the output's even at a confidence bound from
the spread between frames (on a series' first measured frame: between the frame's
blocks): the frame is run with its noise map, the choice's blend applied.
The Gaussian approximation of Poisson noise holds where a pixel sees more than a photon
or two or the read noise is more than an e-; pixels the noise model does not describe --
fewer counts than that, spikes, non-finite pixels, readouts near a clipping floor -- are
left out of the sums, and a frame mostly of them is not measured.

Measured (``deepdenoise evaluate``, 16-frame 128x128 movies, no camera configured;
"Blend by risk" in ``stream/engine/models/README.md``), "spatial" against the same
models' outputs as they are:
``na-lite`` +0.22 / +0.40 / +0.08 / +0.40 / +0.10 dB at 1 / 3 / 10 / 30 / 100 photons on
the held-out ``independent`` generator, +0.86 / +0.26 / +0.76 / +0.36 / 0.00 on
``textures``; ``na-temporal`` +1.79 / +0.21 / +0.10 / +0.15 / +0.37 and +2.51 / +0.22 /
+0.45 / +0.35 / +0.35. "spatiotemporal" gains more PSNR for a temporal model on still
scenes but lowers its trace correlation at 10-30 photons: an option, not the default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ..camera import CameraModel, Spikes
from ._gaussian import kernel_centre, smooth

#: "spatial": the output blurred and mixed with a Gaussian of the input; "spatiotemporal":
#: also with a Gaussian of the series' running mean (a model with that channel), more
#: PSNR on still scenes for less of each frame's own change; "off": the output as it is.
BlendSetting = Literal["spatial", "spatiotemporal", "off"]
BLEND_SETTINGS: tuple[BlendSetting, ...] = ("spatial", "spatiotemporal", "off")

#: Blurs of the model's output tried (px, Gaussian sigma; 0: none). Why up to 5.6 px (a
#: held-out probe, 2026-12-05, scenes of its own, camera configured): features 5 % over
#: a background of 100-500 photons per pixel, under a pixel's noise, want a 6-8 px
#: Gaussian; with 2.8 px the most on offer the output stayed 1.9-4.2 dB under it, and
#: with 4 and 5.6 px 0.16-1.7. The evaluation: 0.00 to +0.02 dB for ``na-lite``, -0.05
#: to +0.33 for ``na-temporal`` (1-3 photons). Those from ``WIDE_POST`` up are offered
#: only where the wide mixes are (:data:`FRAME_WEIGHTS`), and neither is on a frame
#: whose spikes were filled: 0.1 % hot pixels at 1 photon per pixel cost ``textures``
#: 0.21 dB otherwise.
POST_SIGMAS = (0.0, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6)
WIDE_POST = 4.0
#: The lightest Gaussian of the input mixed in (px): fine texture at moderate light (a
#: grain, fibres, cells' edges a pixel wide), which the network smooths away, wants
#: about this much. Its risk rests on the noise variance more than the others' (it keeps
#: the most noise), so it is offered only where that variance is the data's own and
#: known (``stream.engine._series_blend.fine_offered``, which says why) and where the
#: wider mixes are. Measured (one-off probe, 2026-12-06, ``na-lite``, no camera
#: configured, 8-frame 128 x 128 movies of each of the ``textures`` generator's four
#: kinds alone, gain 1, read noise 3 e-, three seeds): grain at 40 / 160 photons peak
#: from 0.24 under a truth-tuned Gaussian to 0.02 over / from 0.46 to 0.55 over, fibres
#: at 40 +0.03 dB, star fields and membranes within 0.04. ``deepdenoise evaluate`` (16
#: frames, 1-1000 photons): ``na-lite`` on ``textures`` at 30 photons +0.09 dB,
#: ``fields`` at 30 -0.03, the rest unchanged; ``na-temporal`` within 0.01; the camera
#: sweep -0.01 to +0.18 (19 of 192 cases moved); ``fields`` and the phantom on four dark
#: cameras +0.03 to +0.06 (3 of 80), at 64 x 64 unchanged; 24 held-out probe movies at
#: 0.5-3 photons, 4 better by 0.07-0.11, none worse.
FINE_FUSE = 0.7
#: Gaussians of the input mixed in (px), and their weights.
FUSE_SIGMAS = (FINE_FUSE, 1.0, 1.5, 2.0)
FUSE_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: A Gaussian of the input may also take most or all of the output's place: where the
#: network keeps fine structure less well than such a Gaussian, the risk can reach it.
#: Why (held-out probes, 2026-12-05, scenes of their own, no camera configured): single
#: images of filaments a pixel or two wide at 20 photons came out 0.37-0.55 dB under a
#: truth-tuned Gaussian, the risk's choice at the grid's edge (half of a 1 px one); now
#: 0.00 under it (fibres at 10 photons 0.24-0.31 under, now 0.00-0.12); at 40 photons
#: a 0.7 px one is the better (:data:`FINE_FUSE`, offered where the variance is known). Not
#: offered where the series' noise is more than the camera model (noisy pixels or the
#: frame's spikes filled, CMOS rows levelled): what is left of it makes the risk favour
#: smoothing. The
#: evaluation: unchanged to 0.01 dB but for rows of 1.5 e- at 1 photon (-0.15 / -0.23
#: dB, ``na-lite`` / ``na-temporal``: measured before the rows were found).
FRAME_WEIGHTS = (*FUSE_WEIGHTS, 0.75, 1.0)
#: Gaussians of the running mean mixed in (px; a model with a running-mean channel): the
#: mean is less noisy than a frame, so lighter ones than of the input.
MEAN_SIGMAS = (0.7, 1.0, 1.5, 2.0)
#: The probe's size in noise sigmas: small, for the derivative; not so small that
#: float32 rounding in the network decides it.
PROBE_STEP = 0.05
#: The noise variance is read from the frame smoothed this much (px), not the pixel
#: itself, whose own noise would make the map noisy.
VARIANCE_SIGMA = 1.5
#: Each measured frame's risks count this much more than those measured before it: the
#: choice follows a series whose light or scene drifts over ~this many measurements.
FADE = 1.0 / 16.0
#: A candidate is chosen over the output as it is only if its risk is less even at the
#: one-sided 95 % bound, in standard errors of the frames' risk differences. Why (one-off
#: probe, ``na-lite``, 16-frame movies): by the least risk alone, 1 photon on ``fields``
#: and 3 photons with four passes on ``phantom`` got a blend 0.1-0.25 dB worse than none;
#: with a bound of 1 or 2 standard errors, 0.0-0.15 dB, and the blend kept its gains
#: elsewhere but at 1 photon on ``textures`` and ``phantom`` (0.3-0.45 dB given up).
CONFIDENCE = 1.64
#: The least noise variance of a pixel's count, in (gain units)^2, for the risk: a Poisson
#: mean of 2 photo-electrons, or read noise of 1.4 e-. Below it the noise is far from
#: Gaussian -- a pixel reads 0 or 1 e- -- and Stein's estimate, exact only for Gaussian
#: noise, misjudges the network: on the evaluation's camera sweep at 1 photon (read noise
#: 0.2-0.5 e-) the blend chose worse than none by 0.2-0.67 dB on an EMCCD and a
#: photomultiplier-like camera (each photo-electron multiplied, F^2 2 and 1.3). A
#: spatial model's frame mostly of such pixels is measured against the frame before
#: instead (``candidate_risks``' ``target``; ``SeriesBlend._pair``).
MIN_COUNT_VARIANCE = 2.0
#: A frame whose pixels the noise model describes (:func:`described_pixels`) are fewer
#: than this share is not measured: its risks would speak for a part of it only.
MIN_DESCRIBED = 0.5
#: The risks are summed over this many blocks a side: on a series' first measured frame
#: the spread between its blocks is what bounds the choice (there is no other frame to
#: compare with). Why (one-off probe, ``na-lite``, single images of five kinds of still
#: scene, two cameras, 10-160 photons peak, truth-scored): with the first frame's
#: blend, 12 of 30 gained 0.07-1.57 dB (nuclei at 10 photons the most), none lost.
RISK_BLOCKS = 4
#: A frame is judged alone only if its noise looks white: the standardised residual's
#: row and column means vary less than this many times as much as white noise's would.
#: Stein's estimate holds for white noise; banding that row levelling has not yet seen
#: (a series' first frame comes before any pair) makes it favour smoothing. Measured
#: (one-off probe, ``na-lite`` told the true camera, first frames of the evaluation's
#: movies): white noise 0.3-2.2 (coarse counts at gain 0.1 the most), rows offset by
#: 0.5 e- 12 / 7.9 / 4.9 at 1 / 3 / 10 photons, by 1.5 e- 87 down to 3.6 at 100.
WHITE_RATIO = 3.0


#: The noise map the model is told, as a multiple of the camera's noise sigma (FFDNet's
#: trade-off between noise removed and detail kept, Zhang, Zuo and Zhang 2018): each
#: scale costs two more passes per measured frame. Why (one-off probe, ``na-lite`` told
#: the true camera, 8-frame movies, truth-scored): 0.8 raised the held-out
#: ``independent`` generator 0.13-0.24 dB at 3-100 photons and ``textures`` 0.1-0.56 dB
#: at 3-30; 1.2 raised the project's ``phantom`` 0.5 dB at 10 photons; each lost up to
#: 1.5 dB where the other one won -- a choice for the risk to make per series.
NOISE_MAP_SCALES = (1.0, 0.8, 1.2)


#: Shares of the model's output on the frame binned 2 x 2 (:mod:`stream.engine._binned`)
#: mixed in: its own blur is the binning's.
BINNED_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
#: Shares of the input frame itself (no smoothing) mixed in, offered only in bright
#: frames (:data:`INPUT_MIN_COUNTS`): where the network erases what it takes for noise
#: and is not (a two-photon scan's bidirectional phase comb was 0.1-3.4 dB under the
#: input at 100 photons, before the engine took such a lag apart: stream.camera.
#: _scan_phase), the input is the better estimate, and no output should be worse than
#: its input.
INPUT_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
#: The median count (photo-electrons, by the camera model) of a frame's described pixels
#: from which the input is offered. Below it the risk, exact only for Gaussian noise,
#: misjudges the network against the input: offered at every light, the input cost
#: `na-lite` 0.46 dB and `na-temporal` 0.73 dB on the phantom at 3 photons (one-off A/B),
#: where the network is 15 dB above its input anyway. From 8 (A/B, ``deepdenoise
#: evaluate``, 16 frames, 1-1000 photons): the independent, textures and phantom
#: generators unchanged to 0.01 dB for both models; a 2 px scan-phase comb, 10 frames,
#: +0.36 / +0.97 / +1.44 dB at 30 / 100 / 300 photons (20: +0.00 / +0.00 / +0.99, the
#: live estimate's offset taking in a dark-less scene's background, so its counts read
#: low).
INPUT_MIN_COUNTS = 8.0


FuseSource = Literal["frame", "mean", "binned", "input"]


@dataclass(frozen=True)
class BlendChoice:
    """One candidate: the model told a noise map ``map_scale`` times the camera's; its
    output blurred by ``post`` px, then mixed with a ``fuse`` px Gaussian of the input
    frame (``source`` "frame") or of the series' running mean ("mean"), or with the
    model's output on the frame binned 2 x 2 ("binned", ``fuse`` 0), or with the input
    frame itself ("input", ``fuse`` 0), at ``weight``."""

    post: float = 0.0
    fuse: float = 0.0
    weight: float = 0.0
    source: FuseSource = "frame"
    map_scale: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.post == 0.0 and self.weight == 0.0 and self.map_scale == 1.0

    @property
    def blends(self) -> bool:
        """Whether the output is changed after the model (a blur or a mix)."""
        return self.post != 0.0 or self.weight != 0.0

    def as_dict(self) -> dict[str, float | str]:
        return {
            "post_sigma": self.post,
            "fuse_sigma": self.fuse,
            "fuse_weight": self.weight,
            "fuse_source": self.source,
            "noise_map_scale": self.map_scale,
        }


IDENTITY = BlendChoice()


def _wide(choice: BlendChoice) -> bool:
    """Whether a candidate mixes in more of the input's Gaussian than half of the output
    (:data:`FRAME_WEIGHTS`), or blurs the output :data:`WIDE_POST` px or more."""
    return (choice.source == "frame" and choice.weight > max(FUSE_WEIGHTS)) or (
        choice.post >= WIDE_POST
    )


def _fine(choice: BlendChoice) -> bool:
    """Whether a candidate mixes in the lightest Gaussian of the input (:data:`FINE_FUSE`)."""
    return choice.source == "frame" and choice.weight > 0.0 and choice.fuse == FINE_FUSE


#: The blends tried on one output (the noise map as the camera says).
BLENDS: tuple[BlendChoice, ...] = (
    tuple(BlendChoice(p) for p in POST_SIGMAS)
    + tuple(
        BlendChoice(p, s, w)
        for p in POST_SIGMAS
        for s in FUSE_SIGMAS
        for w in FRAME_WEIGHTS
        if w < 1.0 or p == 0.0  # all of it: the output's blur does not count
    )
    + tuple(
        BlendChoice(p, s, w, "mean") for p in POST_SIGMAS for s in MEAN_SIGMAS for w in FUSE_WEIGHTS
    )
    + tuple(
        BlendChoice(p, 0.0, w, "binned")
        for p in POST_SIGMAS
        for w in BINNED_WEIGHTS
        if w < 1.0 or p == 0.0  # all of it: the output's blur does not count
    )
    + tuple(
        BlendChoice(p, 0.0, w, "input")
        for p in POST_SIGMAS
        for w in INPUT_WEIGHTS
        if w < 1.0 or p == 0.0
    )
)
#: Every candidate: each blend on the output of each noise-map scale, scale 1 first (so
#: ``CANDIDATES[0]`` is the output as it is).
CANDIDATES: tuple[BlendChoice, ...] = tuple(
    replace(b, map_scale=m) for m in NOISE_MAP_SCALES for b in BLENDS
)
CANDIDATE_SCALES = np.array([c.map_scale for c in CANDIDATES])
CANDIDATE_BINNED = np.array([c.source == "binned" and c.weight > 0 for c in CANDIDATES])


def apply_blend(
    out: np.ndarray,
    scene: np.ndarray,
    choice: BlendChoice,
    mean: np.ndarray | None = None,
    binned: np.ndarray | None = None,
) -> np.ndarray:
    """``out`` (float32, raw units; the model's output with the choice's noise map)
    blended as ``choice`` says with ``scene``, the input frame as float32 with its spikes
    filled and no non-finite pixel, ``mean``, the series' running mean with the frame
    taken in (:func:`mean_with`), or ``binned``, the model's output on the frame binned
    (:func:`stream.engine._binned.binned_output`)."""
    if not choice.blends:
        return out
    blended = smooth(out, choice.post)
    if choice.weight > 0.0:
        sources = {"frame": scene, "mean": mean, "binned": binned, "input": scene}
        source = sources[choice.source]
        if source is None:
            raise ValueError(f"a blend with the {choice.source} source needs it, got none")
        fused = smooth(source, choice.fuse)
        blended = (1.0 - choice.weight) * blended + choice.weight * fused
    return np.asarray(blended, dtype=np.float32)


def mean_with(mean: np.ndarray, scene: np.ndarray, share: float) -> np.ndarray:
    """The running mean with the current frame taken in at ``share`` (its divergence)."""
    return (1.0 - np.float32(share)) * mean + np.float32(share) * scene


def noise_variance(scene: np.ndarray, camera: CameraModel) -> np.ndarray:
    """The per-pixel noise variance (ADU^2) the camera gives a frame like ``scene``."""
    level = smooth(scene, VARIANCE_SIGMA) - np.float32(camera.offset)
    np.maximum(level, 0.0, out=level)
    level *= np.float32(camera.gain)
    level += np.float32(camera.read_noise**2)
    return level


def described_pixels(
    scene: np.ndarray,
    camera: CameraModel,
    spikes: Spikes | None,
    bad: np.ndarray | None,
    variance: np.ndarray,
) -> np.ndarray:
    """Where the risk's Gaussian noise model holds: not a spike, not a non-finite pixel,
    not near a clipping floor, and a count noisy enough (``variance``,
    :func:`noise_variance`) to be near Gaussian (:data:`MIN_COUNT_VARIANCE`)."""
    keep = variance >= np.float32(MIN_COUNT_VARIANCE * camera.gain**2)
    if spikes is not None:
        keep[spikes] = False
    if bad is not None:
        keep &= ~bad
    if camera.floor is not None:
        keep &= smooth(scene, VARIANCE_SIGMA) > camera.floor + 3.0 * camera.read_noise
    return keep


def bright(variance: np.ndarray, keep: np.ndarray, camera: CameraModel) -> bool:
    """Whether the median count of the described pixels (``keep``), read from the noise
    ``variance`` (:func:`noise_variance`), is at least :data:`INPUT_MIN_COUNTS`."""
    if not keep.any():
        return False
    counts = (np.median(variance[keep]) - camera.read_noise**2) / camera.gain**2
    return bool(counts >= INPUT_MIN_COUNTS)


def noise_looks_white(
    scene: np.ndarray, out: np.ndarray, variance: np.ndarray, keep: np.ndarray
) -> bool:
    """Whether ``scene`` less the model's ``out``, in noise sigmas (``variance``) over
    ``keep``, has row and column means no more spread than white noise's allows
    (:data:`WHITE_RATIO`)."""
    with np.errstate(divide="ignore", invalid="ignore"):  # no variance: not kept
        z = (scene - out) / np.sqrt(variance)
    z[~keep] = 0.0
    for axis in (1, 0):  # rows, then columns
        counts = keep.sum(axis=axis)
        used = counts > 0
        if not used.any():
            return False
        means = z.sum(axis=axis)[used] / counts[used]
        # a mean of n white noise samples in sigmas has variance 1 / n
        if float(np.mean(means * means * counts[used])) >= WHITE_RATIO:
            return False
    return True


def risk_blocks(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The first row and column of each of a frame's risk blocks (:data:`RISK_BLOCKS` a
    side, fewer for a frame narrower than that)."""
    rows, columns = (
        np.unique(np.linspace(0, n, RISK_BLOCKS, endpoint=False).astype(np.intp)) for n in shape[:2]
    )
    return rows, columns


def block_sums(values: np.ndarray, blocks: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``values`` summed over each of the ``blocks`` (:func:`risk_blocks`), in float64,
    flat."""
    rows = np.add.reduceat(values, blocks[0], axis=0, dtype=np.float64)
    return np.add.reduceat(rows, blocks[1], axis=1).ravel()


def candidate_risks(
    scene: np.ndarray,
    out: np.ndarray,
    probed: np.ndarray | None,
    probe: np.ndarray | None,
    variance: np.ndarray,
    keep: np.ndarray,
    mean: np.ndarray | None = None,
    share: float = 0.0,
    fuse: bool = True,
    binned: tuple[np.ndarray, np.ndarray | None] | None = None,
    by_block: bool = False,
    offer_input: bool = False,
    offer_wide: bool = True,
    target: np.ndarray | None = None,
    offer_fine: bool = True,
) -> np.ndarray:
    """Each of :data:`BLENDS`' risk for one frame and one output, up to a constant they
    share (``- sum sigma^2``, the same for every output of the frame), in ADU^2 summed
    over ``keep``: shape (1, blends), or with ``by_block`` (blocks, blends), the sums
    over each of the frame's :func:`risk_blocks` (a quarter more time: one BLAS dot
    product over the frame is cheaper than the products summed by block).

    ``out``: the model's output for ``scene``; ``probed``: its output for ``scene +
    PROBE_STEP * probe`` where ``probe`` is standard normal noise times the noise sigma.
    ``mean``: the running mean with the frame in it at ``share`` (:func:`mean_with`);
    ``binned``: the model's output on the binned frame, and on the binned ``scene +
    PROBE_STEP * probe``. A source that is None: the candidates that mix it in get an
    infinite risk, as every mix does with ``fuse`` False (readouts clipped at a floor: a
    Gaussian of them keeps the clipping's bias, which the engine takes out of the model's
    output). ``offer_input``: the candidates that mix in the frame itself get a risk
    (with ``fuse``; :data:`INPUT_MIN_COUNTS`), else an infinite one; ``offer_wide``: so
    do those beyond the first grid of the input's Gaussians (:data:`FRAME_WEIGHTS`) and
    the widest blurs of the output (:data:`WIDE_POST`); ``offer_fine`` (with
    ``offer_wide``): so do the mixes of the lightest Gaussian of the input
    (:data:`FINE_FUSE`).

    ``target``: another frame of the same still scene, whose noise is independent of
    ``scene``'s (``SeriesBlend._pair``): each candidate's risk is then its squared distance
    to it, no divergence and no noise variance needed (``probed``, ``probe`` and the
    binned probed output unused, ``variance`` only for the block count's shape).
    """
    held_out = target is not None
    everywhere = bool(keep.all())  # the usual case: no product with the mask needed
    weight = keep.astype(np.float32)
    blocks = risk_blocks(scene.shape) if by_block else None

    def kept(values: np.ndarray) -> np.ndarray:
        return values if everywhere else values * weight

    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if blocks is None:
            return np.array([np.vdot(a, b)], dtype=np.float64)
        return block_sums(a * b, blocks)

    def divergence(near: np.ndarray | None, at: np.ndarray) -> np.ndarray:
        # Monte Carlo (Ramani, Blu and Unser 2008): the probe's projection of the change
        if near is None or probe is None:
            raise ValueError("a risk on the frame itself needs its probed outputs, got none")
        return dot(kept(probe), near - at) / float(PROBE_STEP)

    if held_out:  # the target's noise is not the frame's: no divergence to take out
        kept_variance = np.zeros(1 if blocks is None else blocks[0].size * blocks[1].size)
    elif blocks is None:
        total = variance.sum() if everywhere else np.vdot(variance, weight)
        kept_variance = np.array([total], dtype=np.float64)
    else:
        kept_variance = block_sums(kept(variance), blocks)
    # each source: its smoothed versions and their divergences (a Gaussian's exact: its
    # kernel's centre times the frame's share of the source; the binned pass's by Monte
    # Carlo, as the output's)
    fused: dict[tuple[FuseSource, float], tuple[np.ndarray, np.ndarray]] = {}
    if fuse:
        for s in FUSE_SIGMAS:
            fused["frame", s] = smooth(scene, s), kernel_centre(s) * kept_variance
        if mean is not None:
            for s in MEAN_SIGMAS:
                fused["mean", s] = smooth(mean, s), kernel_centre(s) * kept_variance * share
        if binned is not None:
            at, near = binned
            fused["binned", 0.0] = at, kept_variance if held_out else divergence(near, at)
        if offer_input:  # each pixel's own: divergence 1
            fused["input", 0.0] = scene, kept_variance
    posts = {}
    reference = scene if target is None else target
    for p in POST_SIGMAS:
        h = smooth(out, p)
        div = (
            kept_variance
            if held_out
            else divergence(None if probed is None else smooth(probed, p), h)
        )
        a = kept(h - reference)
        posts[p] = (h, div, a, dot(a, a))
    mixes: dict[tuple[float, FuseSource, float], tuple[np.ndarray, np.ndarray]] = {}
    risks = np.full((kept_variance.size, len(BLENDS)), np.inf)
    for i, c in enumerate(BLENDS):
        if (_wide(c) and not offer_wide) or (_fine(c) and not (offer_wide and offer_fine)):
            continue  # not offered: never chosen
        h, div, a, aa = posts[c.post]
        if c.weight == 0.0:
            risks[:, i] = aa + 2.0 * div
            continue
        if (c.source, c.fuse) not in fused:
            continue  # a source not offered: never chosen
        source, fused_div = fused[c.source, c.fuse]
        key = (c.post, c.source, c.fuse)
        if key not in mixes:
            d = kept(source - h)
            mixes[key] = dot(a, d), dot(d, d)
        ad, dd = mixes[key]
        w = c.weight
        risks[:, i] = aa + 2.0 * w * ad + w * w * dd + 2.0 * ((1 - w) * div + w * fused_div)
    return risks


#: Frames measured for a regime's risks at its start, then one in ``MEASURE_EVERY``.
MEASURE_WARMUP = 8
MEASURE_EVERY = 16

#: What the risks are kept apart by: the model, and how many previous frames it used
#: (a temporal model's young window errs unlike its full one).
RegimeKey = tuple[str, int]


@dataclass
class _Regime:
    #: Each candidate's risk less the output's as it is, faded over the measured frames,
    #: and the same of its square (for the spread between frames).
    gains: np.ndarray
    squares: np.ndarray
    #: Per candidate: the measured frames it was offered on, the latest in a row (one
    #: not offered starts again: the input is offered in bright frames only), and the
    #: sum of their squared fade weights (1 / effective frames).
    counts: np.ndarray
    weights: np.ndarray
    #: The first measured frame's gains' variance from the spread between its blocks.
    first_variance: np.ndarray | None = None
    measured: int = 0
    tried: int = 0  # measured, or found not to be measurable
    since: int = 0  # frames since the last one tried


class RiskBlend:
    """One series' candidate risks per regime, faded over its measured frames, and the
    choice they make."""

    def __init__(self) -> None:
        self._regimes: dict[RegimeKey, _Regime] = {}
        #: A regime's first measurement so far, while it is taken a step at a time
        #: (:meth:`add_provisional`).
        self._provisional: dict[RegimeKey, _Regime] = {}

    def _regime(self, key: RegimeKey) -> _Regime:
        regime = self._regimes.get(key)
        if regime is None:  # another model's risks are no guide to this one's
            for other in [k for k in self._regimes if k[0] != key[0]]:
                del self._regimes[other]
            for other in [k for k in self._provisional if k[0] != key[0]]:
                del self._provisional[other]
            regime = self._regimes[key] = _new_regime()
        return regime

    def measured(self, key: RegimeKey) -> int:
        regime = self._regimes.get(key)
        return 0 if regime is None else regime.measured

    def tried(self, key: RegimeKey) -> int:
        """Frames of this regime measured, or tried and found mostly undescribed."""
        regime = self._regimes.get(key)
        return 0 if regime is None else regime.tried

    def started(self, model_id: str) -> bool:
        """Whether a frame of ``model_id`` has been measured, or tried, in any regime."""
        return any(k[0] == model_id and r.tried for k, r in self._regimes.items())

    def due(self, key: RegimeKey) -> bool:
        """Whether a frame in this regime is one to measure; counts it."""
        regime = self._regime(key)
        regime.since += 1
        return regime.tried < MEASURE_WARMUP or regime.since >= MEASURE_EVERY

    def skip(self, key: RegimeKey) -> None:
        """A frame due a measurement that could not be measured (:data:`MIN_DESCRIBED`)."""
        regime = self._regime(key)
        regime.tried += 1
        regime.since = 0

    def add(self, key: RegimeKey, block_risks: np.ndarray, alone: bool = True) -> None:
        """A measured frame's candidate risks in each of its blocks, shape (blocks,
        candidates) (:func:`candidate_risks`; one dimension: the frame as one block).
        ``alone``: whether a choice may rest on this frame alone, if it is the first."""
        self._provisional.pop(key, None)
        _take_in(self._regime(key), block_risks, alone)

    def add_provisional(self, key: RegimeKey, block_risks: np.ndarray, alone: bool = True) -> None:
        """A regime's first measurement so far, as :meth:`add` takes a whole one: the
        risks of the candidates whose passes are taken (the rest not finite: not
        chosen). The regime's choice rests on it until the measurement is added whole
        (or :meth:`forget_provisional`); not counted as measured. Why: a live series'
        first measurement is finished in spare time, over the frames that come
        meanwhile, and those went without a blend until it was whole (the evaluation's
        16-frame 128 x 128 movies through a real service at 20 fps, 2 vCPUs: frames
        0-4, up to 1.8 dB each), though the noise map as the camera says -- the map
        the series' frames are run with until a measurement says otherwise -- has its
        candidates' risks after its first pass."""
        if self.measured(key) == 0:
            self._provisional[key] = regime = _new_regime()
            _take_in(regime, block_risks, alone)

    def forget_provisional(self) -> None:
        """A measurement under way is dropped: no choice rests on its part (on any of its
        regimes: a young window's is measured with the temporal branch's too)."""
        self._provisional.clear()

    def choice(
        self, key: RegimeKey, map_scale: float | None = None, binned: bool = True
    ) -> BlendChoice:
        """The candidate whose risk, less the output's as it is, is least even when
        ``CONFIDENCE`` standard errors (from its spread between the measured frames; on
        one measured frame, between its blocks) are added: a change is made only where
        the frames show it with confidence. None measured: the output as it is.
        ``map_scale``: among the candidates with that noise map only (the frame was run
        with it); ``binned`` False: none that takes the model's output on the binned
        frame (a pass more on a quarter of the pixels)."""
        as_it_is = IDENTITY if map_scale is None else BlendChoice(map_scale=map_scale)
        regime = self._regimes.get(key)
        if regime is None or regime.measured == 0:
            regime = self._provisional.get(key)
            if regime is None:
                return as_it_is
        n = regime.counts
        variance = np.full(n.shape, np.inf)
        several = n > 1
        spread = np.maximum(regime.squares - regime.gains**2, 0.0)[several]
        variance[several] = spread * n[several] / (n[several] - 1) * regime.weights[several]
        if regime.measured == 1 and regime.first_variance is not None:
            # one frame: the spread between its blocks (None: too small for blocks, or
            # not to be trusted alone)
            variance[n == 1] = regime.first_variance[n == 1]
        bound = regime.gains + CONFIDENCE * np.sqrt(variance)
        bound[n == 0] = np.inf
        if not binned:
            bound[CANDIDATE_BINNED] = np.inf
        if map_scale is not None:
            bound[map_scale != CANDIDATE_SCALES] = np.inf
        if not np.isfinite(bound).any():
            return as_it_is
        return CANDIDATES[int(np.argmin(bound))]


def _new_regime() -> _Regime:
    size = len(CANDIDATES)
    return _Regime(np.zeros(size), np.zeros(size), np.zeros(size, np.int64), np.zeros(size))


def _take_in(regime: _Regime, block_risks: np.ndarray, alone: bool) -> None:
    """A measured frame's candidate risks by block taken into ``regime`` (:meth:`RiskBlend.add`)."""
    block_risks = np.atleast_2d(block_risks)
    risks = block_risks.sum(axis=0)
    known = np.isfinite(risks)  # not offered (or not for this model): not chosen
    if regime.measured == 0 and alone and len(block_risks) > 1:
        block_gains = block_risks[:, known] - block_risks[:, :1]
        regime.first_variance = np.full(risks.shape, np.inf)
        regime.first_variance[known] = len(block_risks) * block_gains.var(axis=0, ddof=1)
    fade = np.maximum(FADE, 1.0 / (regime.counts[known] + 1))
    gains = risks[known] - risks[0]
    regime.gains[known] += fade * (gains - regime.gains[known])
    regime.squares[known] += fade * (gains * gains - regime.squares[known])
    regime.weights[known] = (1.0 - fade) ** 2 * regime.weights[known] + fade * fade
    regime.counts[known] += 1
    for values in (regime.gains, regime.squares, regime.weights, regime.counts):
        values[~known] = 0  # starts again when next offered
    regime.measured += 1
    regime.tried += 1
    regime.since = 0
