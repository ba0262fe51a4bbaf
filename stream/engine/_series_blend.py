"""One series' blend by risk (:mod:`stream.engine._blend`): which frames are measured,
the measurements, and the blend each frame is served.

Its regimes are kept apart -- the model, and whether a temporal model had no, a partial
or a full window -- since their errors differ. A measurement is taken at once, or kept
for later (:meth:`SeriesBlend.measure_pending`, the service's spare time) with the
model's inputs as they were: the ring and the running mean move on before it is taken.

A composed temporal model (``exporter.compose``) answers a young window -- a series'
first few previous frames -- with its temporal branch only in a band of light measured
on the training generator; outside it, its spatial start answers. How much the blend
makes of the temporal branch there depends on the scene, so a young frame the spatial
start answered is, when measured, measured with the temporal branch too, and once the
risks say with confidence that it, blended, is the better answer, the series' young
windows go to it in any light (:meth:`SeriesBlend.young_window`). Why (one-off probe,
2026-12-04, ``na-temporal``, 16-frame 128 x 128 movies, live estimate, every due frame
measured): on the held-out ``independent`` generator at 3 photons (peak SNR 1.4, below
the band) the young frames 1-3 scored 21.7 / 22.0 / 22.2 dB with the spatial start and
22.6 / 23.6 / 24.0 with the temporal branch, blended (``textures`` at 10 photons: 24.2
/ 24.3 / 24.5 against 25.3 / 26.2 / 26.4); on the project's phantom at 1 photon it was
behind by up to 4 dB, and its risks said so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from ..camera import GAIN_KNOWN, CameraModel, Spikes, fill_spikes, scene_moved
from ._binned import binned_output
from ._blend import (
    BLENDS,
    CANDIDATES,
    CONFIDENCE,
    IDENTITY,
    MIN_DESCRIBED,
    NOISE_MAP_SCALES,
    PROBE_STEP,
    BlendChoice,
    BlendSetting,
    RegimeKey,
    RiskBlend,
    apply_blend,
    bright,
    candidate_risks,
    described_pixels,
    mean_with,
    noise_looks_white,
    noise_variance,
    risk_blocks,
)
from ._engine import Engine, FrameReport
from ._motion import scene_shift
from ._pixels import count_non_finite, finite_copy
from ._still_pair import (
    as_if_all_read,
    changed_beyond_noise,
    read_pixels,
    shared_noise,
    still_pixels,
)

_T = TypeVar("_T")

#: Seed of the probes: a series' outputs are reproducible.
PROBE_SEED = 20_261_202
#: A frame is blended on its own measurement alone (a series' first; a snapshot's
#: only) when the frame's mean noise variance is known within this relative standard
#: error (:func:`variance_error`): Stein's estimate takes the noise variance as exact.
#: Why (one-off probe, ``na-lite``, the simulator's phantom as single frames, live
#: estimate): with the gain known to 19-20 % (30 photons) the blend took 7-13 % off the
#: squared error; to 40-300 % (1-10 photons) it added up to 98 % where it blended at
#: all. Told the true camera, it never added. The bound was first on the gain's own
#: error; on the variance it measures what the risk rests on: read noise dominates a dim
#: frame's variance, so a gain known to 50 % may still give the variance within 15 %
#: (one-off probe, 2026-12-03, ``na-lite``, 16 single frames of 128 x 128, live
#: estimate, 1-100 photons: independent generator +0.34 dB at 3 photons, read 8 e-
#: +0.47 at 10, gain 0.25 at offset 100 +0.35 at 10, ``textures`` +0.57 at 10; the
#: phantom -0.07 at 3, no loss larger).
FIRST_VARIANCE_ERROR = 0.25
#: While a series' frames come faster than they are denoised (``outpaced``: a recording
#: replayed as fast as it goes, a camera faster than the machine), each regime's first
#: this many due measurements are taken at once, as the series' first is: such a
#: stream is never caught up and has no spare time to take them in, and one
#: measurement gives a noisy choice (a temporal model's young and full windows: none).
#: A stream only held up by a measurement (frames waiting, but coming no faster than
#: they are denoised) catches up and is measured in its spare time. Why (one-off
#: probe, 2026-12-03, 16-frame 128 x 128 movies, live estimate, only the frames named
#: measured, 1-100 photons): ``na-lite`` measured on frames 0-2 against frame 0 alone,
#: independent generator +0.01 / -0.08 / +0.11 / +0.30 / +0.07 dB, phantom +1.18 /
#: +1.27 / -0.17 / +0.04 / -0.05, ``textures`` up to +0.56 (and up to 0.34 behind every
#: due frame measured); ``na-temporal`` (three regimes: no, a young and a full window)
#: measured on frames 0-2 and 4-6 against frame 0 alone, independent +2.11 / +0.09 /
#: +0.24 / +0.20 / +0.43, phantom +3.56 / +1.36 / +2.13 / +1.10 / +0.24.
OUTPACED_AT_ONCE = 3


def variance_error(frame: np.ndarray, camera: CameraModel, gain_stderr: float) -> float:
    """The relative standard error of ``frame``'s mean noise variance that the camera
    gain's standard error gives (0 for a configured camera): the variance is
    ``gain * (level - offset) + read^2``; read noise, well known from one frame, is
    taken as exact. The signal is the mean of the pixels above the offset, each clipped
    at 0 (the noise's upper half counted: cautious in the dark), on every fourth pixel
    of every fourth row."""
    if gain_stderr <= 0:
        return 0.0
    sample = frame[::4, ::4].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0 or camera.gain <= 0:
        return math.inf
    signal = float(np.mean(np.maximum(sample - camera.offset, 0.0)))
    variance = camera.gain * signal + camera.read_noise**2
    return gain_stderr * signal / variance if variance > 0 else math.inf


def fine_offered(
    camera: CameraModel,
    gain_stderr: float,
    scene: np.ndarray,
    out: np.ndarray,
    variance: np.ndarray,
    keep: np.ndarray,
) -> bool:
    """Whether the lightest Gaussian of the input (:data:`stream.engine._blend.FINE_FUSE`)
    is offered on a frame (the caller also waits for a regime's second measurement, whose
    camera no longer rests on one frame): its risk rests on the noise variance more than
    the others', so only where that variance is the data's own -- a live estimate
    (``gain_stderr`` > 0; a configured camera has none) whose gain is known
    (:data:`stream.camera.GAIN_KNOWN`), its intercept fitted to the frames -- and the noise
    left by the model (``scene - out``) looks white (:func:`noise_looks_white`: CMOS rows
    not yet levelled share their noise along a row, and a Gaussian's risk then reads too
    low). Why (reviewers' probes, ``na-lite``, 8-12-frame 128 x 128 movies): offered
    everywhere (2026-12-05), sparse stars at 1-5 photons lost up to 5.9 dB on a series'
    first frame, whose gain one frame cannot tell; offered for any known gain
    (2026-12-06), a configured camera whose read noise was told 10-30 % low chose it at
    75-100 % and lost 0.8-3.9 dB, fibres at 5 photons with rows of 2.5 e- not yet
    levelled 2.9 dB on a frame; offered on a first measurement, frames registered by a
    cubic-spline sub-pixel shift (noise shared by neighbours) lost 2.7-2.8 dB on their
    first frame and 1 e- of fixed-pattern noise (which frame differences do not see)
    0.26-0.47 dB over 12 frames."""
    if not 0.0 < gain_stderr < camera.gain / GAIN_KNOWN:
        return False
    return noise_looks_white(scene, out, variance, keep)


#: A measurement in steps (:meth:`SeriesBlend.measure_step`): each ``yield`` follows a
#: model pass or the candidates' risks and gives the arrays the measurement holds until
#: its next step (counted as the series' memory); the generator returns its result.
_Steps = Generator[tuple[np.ndarray, ...], None, _T]


def _exhaust(steps: _Steps[_T]) -> _T:
    """Take every step of a measurement at once; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@dataclass(frozen=True)
class _Measurement:
    """What a blend measurement of one frame needs: the model's inputs as they were."""

    key: RegimeKey
    camera: CameraModel
    passes: int
    map_scale: float  # the noise map's scale the frame was run with
    scene: np.ndarray  # the frame as the model saw it: spikes and non-finite pixels filled
    #: the model's output, the scene's values at those pixels (None: to be computed)
    out: np.ndarray | None
    spikes: Spikes | None
    spike_values: np.ndarray | None  # the spikes as they came (the probe keeps them)
    bad: np.ndarray | None
    history: tuple[np.ndarray, ...]
    bands: bool  # whether a composed model's bands of light applied (Engine.denoise)
    #: a young window's frames, for the temporal branch's answer to be measured too
    young_ring: tuple[np.ndarray, ...] | None
    mean: np.ndarray | None  # the running mean the model was given
    mean_now: np.ndarray | None  # the running mean with the frame in it, for the blend
    share: float  # the frame's share of it
    alone: bool  # the camera is known well enough for a choice on this frame alone
    plain: bool  # the series' noise is the camera model's: the wider mixes are offered
    gain_stderr: float = 0.0  # the camera gain's standard error (0: configured)
    paired_first: bool = False  # measured against ``partner`` where it can be
    #: the frame before, as the model would have seen it, and where it was read (finite,
    #: not a spike): a spatial model's other look at a still scene (SeriesBlend._pair)
    partner: tuple[np.ndarray, np.ndarray | None] | None = None


class SeriesBlend:
    """The blend of one series' frames (``setting``: :data:`BlendSetting`; "off": none,
    nothing measured)."""

    def __init__(self, setting: BlendSetting = "spatial") -> None:
        self.setting = setting
        self._risks = RiskBlend()
        self._probes = np.random.default_rng(PROBE_SEED)
        self._key: RegimeKey | None = None
        self._pending: _Measurement | None = None
        #: The pending measurement's steps, once begun (:meth:`measure_step`), and the
        #: engine they were begun with.
        self._steps: _Steps[None] | None = None
        self._steps_engine: Engine | None = None
        self._steps_held: tuple[np.ndarray, ...] = ()  # what the steps hold till the next
        #: The blend the latest frame got.
        self.choice: BlendChoice = IDENTITY
        #: Whether the latest frame was measured (more passes), and how many were.
        self.measured_latest = False
        self.frames_measured = 0
        #: Of those, the frames measured against the frame before (:meth:`_pair`).
        self.frames_paired = 0
        #: Seconds the latest frame's measurement took before it was served (0: none),
        #: and its dearest step where it was taken a step at a time (frame_waits).
        self.measured_latest_s = 0.0
        self.dearest_step_s = 0.0
        #: Seconds the latest frame's blend spent on the model's pass on the binned frame
        #: (0: none): work of the blend's choice, not of the model's pass.
        self.served_binned_s = 0.0
        self._young_votes = _YoungVotes()
        #: The frame before, as the model would have seen it, and its read pixels (None:
        #: all): kept for a spatial model while the series is dark (:meth:`_pair`).
        self._partner: tuple[np.ndarray, np.ndarray | None] | None = None
        #: Whether the series' latest measured frame was mostly pixels the risk's
        #: Gaussian noise model does not describe (a series starts so, until measured).
        self._dark = True

    def young_window(self, engine: Engine) -> bool:
        """Whether the series' young windows go to the model's temporal branch in any
        light: the young frames its spatial start answered (outside the band of light
        measured on the training generator), measured with the temporal branch too,
        say with confidence that it, blended, has the less risk. Only this way: noise
        the camera model does not describe (noisy pixels not yet found) makes the risk
        favour the answer that stays nearer the frame, the spatial start (one-off probe:
        a camera with 1 % noisy pixels at 10 photons, in the band, voted away from the
        temporal branch at 4.4 dB's cost on a frame)."""
        return self._young_votes.temporal(engine.model_id)

    @property
    def young_answer(self) -> str:
        """Who answers the series' young windows for the latest model: ``"temporal"``,
        as its risks say, or ``"band"``: its band of light (nothing measured with
        confidence yet, or a model without a band)."""
        key = self._key
        return "temporal" if key is not None and self._young_votes.temporal(key[0]) else "band"

    @property
    def measured(self) -> int:
        """Frames whose risks the latest frame's blend rests on."""
        return self._risks.measured(self._key) if self._key is not None else 0

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def held_arrays(self) -> list[np.ndarray]:
        """The frames the blend holds -- a deferred measurement's (and, once begun, what
        its steps hold till the next: outputs taken, the probe, the noise variance), and
        the frame kept for the next one's pair -- for memory accounting."""
        arrays: list[np.ndarray | None] = [*(self._partner or ())]
        m = self._pending
        if m is not None:
            arrays += [m.scene, m.out, m.mean, m.mean_now, *m.history, *(m.young_ring or ())]
            arrays += [*(m.partner or ()), *self._steps_held]
        unique = {id(a): a for a in arrays if a is not None}  # a step may hold the frame's own
        return list(unique.values())

    def forget_partner(self) -> None:
        """The next frame does not follow the latest (a gap, a scene change): no pair."""
        self._partner = None

    def new_frame(self) -> None:
        """A frame comes: nothing measured or binned for it yet."""
        self.measured_latest = False
        self.measured_latest_s = self.dearest_step_s = 0.0
        self.served_binned_s = 0.0

    def drop_pending(self) -> None:
        if self._pending is not None:  # a part taken is no choice (RiskBlend.add_provisional)
            self._risks.forget_provisional()
        self._pending, self._steps, self._steps_engine = None, None, None
        self._steps_held = ()

    def serve_as_is(self) -> None:
        """The frame gets no blend (its noise is not what the risk assumes): the choice
        reported is the output as it is, and no measurement is pending."""
        self.choice = IDENTITY
        self.drop_pending()
        self.forget_partner()

    def map_scale_for(self, engine: Engine) -> float:
        """The noise map's scale to run the series' next frame with: the latest regime's
        choice (its frames rarely change regime), 1 for another model or none yet."""
        if self.setting == "off" or not engine.metadata.noise_map:
            return 1.0
        key = self._key
        if key is None or key[0] != engine.model_id:
            return 1.0
        return self._risks.choice(key).map_scale

    def blended(
        self,
        engine: Engine,
        frame: np.ndarray,
        out: np.ndarray,
        report: FrameReport,
        camera: CameraModel,
        passes: int,
        measure: bool,
        history: Sequence[np.ndarray],
        running_mean: np.ndarray | None,
        mean_count: int,
        map_scale: float = 1.0,
        gain_stderr: float = 0.0,
        lean: bool = False,
        outpaced: bool = False,
        bands: bool = True,
        young_ring: Sequence[np.ndarray] | None = None,
        plain: bool = True,
        paired_first: bool = False,
        frame_waits: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """``out``, the engine's output for ``frame`` (and its ``report``), blended as
        the risks say; a frame due a measurement is measured first
        (``measure``) or kept for :meth:`measure_pending` -- but the series' first
        measurement is taken at once, on the first frame whose mean noise variance is
        known within :data:`FIRST_VARIANCE_ERROR` (:func:`variance_error`, from
        ``gain_stderr``, the camera gain's standard error; usually its first): the
        frame is then blended on the spread between its own blocks
        (:meth:`RiskBlend.choice`), so that a series of one frame (a snapshot) is
        blended too (even while frames wait behind it).
        ``history``, ``running_mean``, ``mean_count``, ``map_scale``
        (:meth:`map_scale_for`) and ``bands``: the series' as the engine was given them.
        ``young_ring``: the frame's young window, for a composed model that may answer it
        either way (:meth:`young_window`): where the spatial start answered, a
        measurement takes the temporal branch too. ``plain``: the series' noise is all
        the camera model's (no noisy pixels filled, no rows levelled): the mixes beyond
        the first grid of the input's Gaussians are offered (:data:`FRAME_WEIGHTS`).
        ``paired_first``: the frame is measured against the frame before (a spatial
        model's, :meth:`_pair`) wherever that pair may be used, not only where Stein's
        estimate does not hold: the series' noise is more than the camera model
        (the camera's noisy pixels filled: ``SeriesContext``). ``lean``:
        frames are waiting, or the frame interval leaves no room for more -- no blend that
        needs the binned pass (the best one without it). ``outpaced``: frames also come faster
        than they are denoised -- a regime's first :data:`OUTPACED_AT_ONCE` measurements
        are taken at once (no spare time will come). ``frame_waits``: whether a frame
        of the series now waits behind this one (a live stream, not a snapshot). Given,
        the series' first measurement holds its frame only until one does, a step at a
        time, and is finished in spare time as the deferred ones are; where one waits
        already, it is deferred (a flood is measured at once from its third frame,
        ``outpaced``). A service whose input queue drops frames gives one that always
        says so: a frame held there costs the frames behind it."""
        spikes = report.spikes
        if self._steps is not None and self._steps_engine is not engine:
            self.drop_pending()  # begun with a model swapped out: its passes would not match
        if self._steps is None:  # one begun is finished first: its passes are paid for
            self._pending = None
        window, full = report.history, engine.metadata.frames - 1
        regime = 0 if window == 0 else 2 if window >= full else 1  # none, young, full
        key = self._key = (engine.model_id, regime)
        due = self._risks.due(key)
        alone = due and variance_error(frame, camera, gain_stderr) <= FIRST_VARIANCE_ERROR
        first = due and alone and not self._risks.started(engine.model_id)
        stepwise = False
        if first and frame_waits is not None:
            # held until the series' next frame comes, once: a live stream's first frame
            # held for the whole measurement waited 12-13 x a frame (the demo, PULL
            # input, 20 fps at 256 x 256 on 2 vCPUs: 270-350 ms, its p99)
            first = stepwise = self._steps is None and not frame_waits()
        if first:
            # the series' first measurement: this frame waits for it, even with frames
            # waiting behind (a recording replayed as fast as it goes is never caught up,
            # and would otherwise never be blended); once per series and model
            measure = True
        elif due and outpaced and self._risks.tried(key) < OUTPACED_AT_ONCE:
            # outpaced, a regime's first few: the service's spare time never comes
            measure = True
        # a spatial model's output on this frame owes nothing to the frame before: in a
        # dark series, where Stein's estimate does not hold, that frame is the risk's
        # other look at the scene (_pair)
        spatial = engine.metadata.frames == 1 and engine.metadata.running_mean <= 0
        partner, self._partner = self._partner, None
        if not spatial or (partner is not None and partner[0].shape != frame.shape):
            partner = None
        keep_partner = spatial and (self._dark or paired_first)
        if not due:
            self.choice = self._risks.choice(key, map_scale, binned=not lean)
            if not self.choice.blends and not keep_partner:
                return out
        bad = ~np.isfinite(frame) if count_non_finite(frame) else None
        scene = finite_copy(frame, camera)
        if spikes is not None:
            fill_spikes(scene, spikes)
        if keep_partner:
            read = None if bad is None and spikes is None else read_pixels(scene.shape, bad, spikes)
            self._partner = (scene, read)
        model_out = out if bad is None and spikes is None else out.copy()
        for where in (bad, spikes):  # kept as they came out, not smeared by a blur
            if where is not None:
                model_out[where] = scene[where]
        mean_now, share = None, 0.0
        if self.setting == "spatiotemporal":
            mean_now, share = _mean_now(engine, scene, spikes, running_mean, mean_count)
        if due and (measure or self._steps is None):
            pending = _Measurement(
                key=key,
                camera=camera,
                passes=passes,
                map_scale=map_scale,
                scene=scene,
                out=model_out if measure and not stepwise else model_out.copy(),
                spikes=spikes,
                spike_values=None if spikes is None else np.asarray(frame[spikes], np.float32),
                bad=bad,
                history=tuple(history),
                bands=bands,
                young_ring=None if young_ring is None else tuple(young_ring),
                mean=running_mean
                if (measure and not stepwise) or running_mean is None
                else running_mean.copy(),
                mean_now=mean_now,
                share=share,
                alone=alone,
                plain=plain,
                gain_stderr=gain_stderr,
                partner=partner,
                paired_first=paired_first,
            )
            if frame_waits is not None and stepwise:
                t0 = time.perf_counter()
                self._pending = pending  # what is left when a frame comes: spare time's
                step_t0 = t0
                while self.measure_step(engine):
                    now = time.perf_counter()
                    self.dearest_step_s = max(self.dearest_step_s, now - step_t0)
                    step_t0 = now
                    if self._steps is None or frame_waits():
                        break
                self.measured_latest_s = time.perf_counter() - t0
            elif measure:
                t0 = time.perf_counter()
                try:
                    _exhaust(self._measure_both(engine, pending))
                except BaseException:
                    self._risks.forget_provisional()  # a part taken is no choice
                    raise
                self.measured_latest_s = time.perf_counter() - t0
            else:
                self._pending = pending
        if due:
            self.choice = self._risks.choice(key, map_scale, binned=not lean)
        if not self.choice.blends:
            return out
        binned = None
        if self.choice.source == "binned":
            t0 = time.perf_counter()
            binned = binned_output(engine, scene, camera, history, running_mean, bands)
            self.served_binned_s = time.perf_counter() - t0
        blended = apply_blend(model_out, scene, self.choice, mean_now, binned)
        if spikes is not None:
            blended[spikes] = out[spikes]
        if bad is not None:
            blended[bad] = np.nan
        return blended

    def measure_pending(self, engine: Engine) -> bool:
        """Take the deferred measurement (what is left of it) with ``engine``; the next
        frames' blend rests on it. False when there is none, or it was for another
        model or begun with another engine."""
        if not self.measure_step(engine):
            return False
        while self._steps is not None:
            self.measure_step(engine)
        return True

    def measure_step(self, engine: Engine) -> bool:
        """One step of the deferred measurement with ``engine``: one model pass, or the
        candidates' risks from passes taken. A frame that comes meanwhile waits for one
        step, not for the whole measurement (five passes, two binned ones and three
        risks: about 8 x a frame's time, ``benchmarks.blend_check``). False when there is
        none to take: none pending, or it was for another model or begun with another
        engine (dropped). Why steps (the
        demo at 20 fps, 256 x 256 on 2 vCPUs, the measurement whole: a frame that came
        during one waited up to 250 ms, and each left a backlog that drained only just
        before the next, p50 latency 175 ms; see ``stream.service._spare``)."""
        if self._steps is None:
            pending = self._pending
            if pending is None:
                return False
            if pending.key[0] != engine.model_id:
                self.drop_pending()
                return False
            self._steps, self._steps_engine = self._measure_both(engine, pending), engine
        elif engine is not self._steps_engine:  # swapped: its passes would not match
            self.drop_pending()
            return False
        try:
            self._steps_held = next(self._steps)
        except StopIteration:
            self.drop_pending()
        except BaseException:
            self.drop_pending()  # a failure costs the measurement, not the next ones
            raise
        return True

    def _measure_both(self, engine: Engine, m: _Measurement) -> _Steps[None]:
        """Measure the frame; for a young window the spatial start answered, the temporal
        branch too (:meth:`young_window`), and count which one's blend had the less
        risk on it."""
        variance = noise_variance(m.scene, m.camera)
        keep = described_pixels(m.scene, m.camera, m.spikes, m.bad, variance)
        self._dark = bool(keep.mean() < MIN_DESCRIBED)
        if self._dark:  # mostly dark, clipped, masked or spikes
            if not (yield from self._pair(engine, m, variance, keep)):
                self._risks.skip(m.key)
            return
        if m.paired_first and (yield from self._pair(engine, m, variance, keep)):
            return
        probe = self._probes.standard_normal(m.scene.shape, dtype=np.float32)
        probe *= np.sqrt(variance)
        ring = m.young_ring if m.key[1] == 0 else None  # the spatial start answered it
        risks = yield from self._measure(engine, m, variance, keep, probe, ring is not None)
        self.measured_latest = True
        self.frames_measured += 1
        if ring is None or m.out is None:
            return
        if not noise_looks_white(m.scene, m.out, variance, keep):
            return  # banding not yet levelled: the risk misjudges (WHITE_RATIO)
        temporal = replace(
            m, key=(m.key[0], 1), history=ring, bands=False, out=None, young_ring=None
        )
        # the same probe: its share of either divergence's error is then shared too
        temporal_risks = yield from self._measure(engine, temporal, variance, keep, probe, True)
        spatial = risks[:, CANDIDATES.index(self._risks.choice(m.key))]
        chosen = CANDIDATES.index(self._risks.choice(temporal.key))
        self._young_votes.add(m.key[0], temporal_risks[:, chosen] - spatial)

    def _measure(
        self,
        engine: Engine,
        m: _Measurement,
        variance: np.ndarray,
        keep: np.ndarray,
        probe: np.ndarray,
        by_blocks: bool = False,
    ) -> _Steps[np.ndarray]:
        """The candidates' risks on one frame: the model once more on the frame plus
        ``probe`` (a small one of its own noise), on both with each other noise-map
        scale, and on both binned 2 x 2 (:mod:`stream.engine._binned`). The frame's risk
        per candidate in each of its blocks (by block only where a choice may rest on
        the frame alone, or ``by_blocks``; else one row)."""
        as_came = as_given(m.scene, m.spikes, m.spike_values, m.bad)
        held = [variance, keep, probe, as_came]  # what a pause between steps keeps
        # the temporal branch's answer to a young window comes without its output
        served = m.out
        if served is None:
            served = self._output(engine, m, as_came, m.map_scale)
            held.append(served)
            yield tuple(held)
        probed_frame = as_came + np.float32(PROBE_STEP) * probe
        if m.spikes is not None and m.spike_values is not None:
            probed_frame[m.spikes] = m.spike_values
        held.append(probed_frame)
        scales = NOISE_MAP_SCALES if engine.metadata.noise_map else (1.0,)
        fuse = m.camera.floor is None
        offer_input = fuse and bright(variance, keep, m.camera)
        binned = None
        if fuse:  # the model on the binned frame, and on it probed
            binned = (
                binned_output(engine, m.scene, m.camera, m.history, m.mean, m.bands),
                binned_output(
                    engine,
                    m.scene + np.float32(PROBE_STEP) * probe,
                    m.camera,
                    m.history,
                    m.mean,
                    m.bands,
                ),
            )
            held += binned
            yield tuple(held)  # two passes on a quarter of the pixels each
        # by block only where a choice may rest on this frame alone: the regime's first,
        # with a well-known gain, its noise white
        alone = (
            m.alone
            and self._risks.measured(m.key) == 0
            and noise_looks_white(m.scene, served, variance, keep)
        )
        by_block = alone or by_blocks
        # not on a regime's first measurement: its camera may rest on the frame alone
        fine = self._risks.measured(m.key) > 0 and fine_offered(
            m.camera, m.gain_stderr, m.scene, served, variance, keep
        )
        rows, columns = risk_blocks(m.scene.shape)
        risks = np.full((len(rows) * len(columns) if by_block else 1, len(CANDIDATES)), np.inf)
        for i, scale in enumerate(NOISE_MAP_SCALES):
            if scale not in scales:
                continue
            out = served
            if scale != m.map_scale:
                out = self._output(engine, m, as_came, scale)
                yield (*held, out)
            probed = self._output(engine, m, probed_frame, scale)
            yield (*held, out, probed)
            risks[:, i * len(BLENDS) : (i + 1) * len(BLENDS)] = candidate_risks(
                m.scene,
                out,
                probed,
                probe,
                variance,
                keep,
                m.mean_now,
                m.share,
                fuse,
                binned,
                by_block,
                offer_input,
                m.plain,
                offer_fine=fine,
            )
            self._risks.add_provisional(m.key, risks, alone=alone)  # a regime's first only
            yield tuple(held)
        self._risks.add(m.key, risks, alone=alone)
        return risks

    def _pair(
        self, engine: Engine, m: _Measurement, variance: np.ndarray, keep: np.ndarray
    ) -> _Steps[bool]:
        """The candidates' risks on a frame Stein's estimate cannot judge (or should not:
        ``paired_first``), from the frame before (a spatial model's, kept while the series
        is dark or paired first): where the scene held still, that frame is another look
        at the same clean scene with noise of its own, so a candidate's squared distance
        to it is, in expectation, the candidate's own squared error plus that frame's
        noise, the same for every candidate (the idea of Noise2Noise, Lehtinen et al.
        2018, as a risk). No noise model is assumed -- not Gaussian, not the camera's --,
        so it holds at a photon or less per pixel and for an EMCCD's skewed counts, where
        Stein's estimate does not. Measured only where the scene held still
        (:func:`still_pixels`: cells that fired are left out), and not at all where the
        pair may not be such a look: too little of it still, a change beyond the noise
        (:func:`changed_beyond_noise`), a move (``scene_moved``, ``scene_shift``), noise
        the two frames share (:func:`shared_noise`). Whether the frame was measured so."""
        if m.partner is None:
            return False
        before, read_before = m.partner
        read = read_pixels(m.scene.shape, m.bad, m.spikes)
        if read_before is not None:
            read &= read_before
        still = still_pixels(m.scene, before, read)
        if (
            still is None
            or changed_beyond_noise(m.scene, before, still, m.camera, m.gain_stderr)
            or scene_moved(m.scene, before)
            or scene_shift(m.scene, before) is not None
        ):
            return False
        as_came = as_given(m.scene, m.spikes, m.spike_values, m.bad)
        held = [variance, keep, read, still, as_came]  # what a pause between steps keeps
        served = m.out
        if served is None:
            served = self._output(engine, m, as_came, m.map_scale)
            held.append(served)
            yield tuple(held)
        if shared_noise(m.scene, before, served, still):
            return False
        scales = NOISE_MAP_SCALES if engine.metadata.noise_map else (1.0,)
        fuse = m.camera.floor is None
        binned = None
        if fuse:
            at = binned_output(engine, m.scene, m.camera, m.history, m.mean, m.bands)
            binned = (at, None)
            held.append(at)
            yield tuple(held)
        rows, columns = risk_blocks(m.scene.shape)
        risks = np.full((len(rows) * len(columns), len(CANDIDATES)), np.inf)
        by_read: np.ndarray | None = None  # the latest scale's: the risks as they end
        for i, scale in enumerate(NOISE_MAP_SCALES):
            if scale not in scales:
                continue
            out = served
            if scale != m.map_scale:
                out = self._output(engine, m, as_came, scale)
                yield (*held, out)
            risks[:, i * len(BLENDS) : (i + 1) * len(BLENDS)] = candidate_risks(
                m.scene,
                out,
                None,
                None,
                variance,
                still,
                fuse=fuse,
                binned=binned,
                by_block=True,
                # as on the frame itself: a fixed pattern the pair shares favours the input
                offer_input=fuse and bright(variance, keep, m.camera),
                offer_wide=m.plain,  # as on the frame itself: no test says they hold here
                target=before,
                offer_fine=True,  # a risk against another look needs no noise variance
            )
            by_read = as_if_all_read(risks, read, still, (rows, columns))
            self._risks.add_provisional(m.key, by_read, alone=True)  # a regime's first only
            yield tuple(held)
        # the spread between the frame's blocks bounds a choice on this one frame
        if by_read is None:
            by_read = as_if_all_read(risks, read, still, (rows, columns))
        self._risks.add(m.key, by_read, alone=True)
        self.measured_latest = True
        self.frames_measured += 1
        self.frames_paired += 1
        return True

    @staticmethod
    def _output(engine: Engine, m: _Measurement, frame: np.ndarray, scale: float) -> np.ndarray:
        """The model's output for ``frame`` with the measured frame's inputs and a noise
        map ``scale`` times the camera's, its spikes and non-finite pixels as in the
        output blended."""
        out = engine.denoise(
            frame,
            camera=m.camera,
            history=m.history,
            running_mean=m.mean,
            passes=m.passes,
            noise_map_scale=scale,
            bands=m.bands,
        )
        for where in (m.spikes, m.bad):
            if where is not None:
                out[where] = m.scene[where]
        return out


def as_given(
    scene: np.ndarray,
    spikes: Spikes | None,
    spike_values: np.ndarray | None,
    bad: np.ndarray | None,
) -> np.ndarray:
    """A measured frame as the engine was given it, from ``scene`` (its spikes and
    non-finite pixels filled): the spikes as they came, and the non-finite pixels
    non-finite again. The engine finds and fills them again -- in the earlier frames and
    the running mean too -- and leaves them out of a temporal window's lag step
    (:mod:`stream.engine._lag`), as it did for the frame served: what is measured is
    what was served (filled, they would count as pixels in the step's boxes)."""
    frame = scene.copy()
    if spikes is not None and spike_values is not None:
        frame[spikes] = spike_values
    if bad is not None:
        frame[bad] = np.nan
    return frame


class _YoungVotes:
    """The young frames' blended risk with a composed model's temporal branch less that
    with its spatial start (each blend as its regime chose it), summed over the frames
    measured both ways, block by block for the spread between them."""

    def __init__(self) -> None:
        self._model = ""
        self._sum = 0.0
        self._variance = 0.0  # of the sum, from the spread between each frame's blocks

    def add(self, model: str, by_block: np.ndarray) -> None:
        if model != self._model:  # another model's risks are no guide to this one's
            self._model, self._sum, self._variance = model, 0.0, 0.0
        self._sum += float(by_block.sum())
        if by_block.size > 1:
            self._variance += by_block.size * float(by_block.var(ddof=1))

    def temporal(self, model: str) -> bool:
        """Whether the temporal branch's risk is the less even at the
        :data:`CONFIDENCE` bound."""
        if model != self._model or self._variance <= 0:
            return False
        return self._sum + CONFIDENCE * math.sqrt(self._variance) < 0


def _mean_now(
    engine: Engine,
    scene: np.ndarray,
    spikes: Spikes | None,
    running_mean: np.ndarray | None,
    mean_count: int,
) -> tuple[np.ndarray | None, float]:
    """For a model with a running-mean channel: the series' running mean with this frame
    taken in as the next update will, and the frame's share of it (None, 0: no such
    channel)."""
    decay = engine.metadata.running_mean
    if decay <= 0:
        return None, 0.0
    if running_mean is None or running_mean.shape != scene.shape:
        return scene, 1.0  # a series start: the frame is all of it
    share = max(decay, 1.0 / (mean_count + 1))
    now = mean_with(running_mean, scene, share)
    if spikes is not None:  # a hot pixel in the earlier frames too
        fill_spikes(now, spikes)
    return now, share
