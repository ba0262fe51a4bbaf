"""What a model needs from a series beyond the current frame: its past and its camera.

A temporal model takes the K - 1 previous frames of the same series, a noise-adaptive
one the camera's offset, gain and read noise. :class:`SeriesContext` keeps both for one
series: a ring of the last frames and the camera, configured or estimated live from the
stream (:class:`stream.camera.CameraEstimator`). The service keeps one per open series;
the evaluation uses the same class, so a model is scored exactly as it is served.

The ring is causal: it holds frames already received, never waits for one. At a series
start, and after a gap in the indices (the frames before it are no longer the ones just
before), the missing previous frames are stood in for by the oldest frame there is
(the engine repeats it), so the first frames are denoised at once, as a spatial model
would. For a model with a running-mean channel it also keeps the running mean of the
series' frames so far (one frame of memory; :class:`ModelMetadata` defines it), emptied
at a gap like the ring. A scene that moved since the previous frame (the stage, the
focus, a new field: :func:`stream.camera.scene_moved`) empties both too, as a gap does:
the previous frames are of another scene, and a temporal model would mix it into this
one (``na-temporal`` on a new scene every frame at 100 photons: 2 dB below its input).

For a noise-adaptive model it also blends the output with smoothing as the series' own
frames say helps (:mod:`stream.engine._blend`): the first frames of each regime (the
model, and the previous frames it used) and one in 16 after are measured (one more model
pass on the frame plus a small probe), unless the caller says there is no time for it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..camera import CameraEstimate, CameraEstimator, CameraModel, Spikes, fill_spikes, scene_moved
from ._blend import (
    IDENTITY,
    MIN_DESCRIBED,
    PROBE_STEP,
    BlendChoice,
    BlendSetting,
    RiskBlend,
    apply_blend,
    candidate_risks,
    described_pixels,
    mean_with,
    noise_variance,
)
from ._engine import Engine
from ._inputs import update_running_mean
from ._pixels import count_non_finite

#: Frames over which the live camera estimate is updated every frame; after that,
#: every ``ESTIMATE_EVERY`` frames, after the two frames just before it (kept by
#: ``CameraEstimator.remember``): its differences are still of consecutive frames.
ESTIMATE_WARMUP = 32
ESTIMATE_EVERY = 8


@dataclass(frozen=True)
class _Measurement:
    """What a blend measurement of one frame needs: the model's inputs as they were."""

    key: tuple[str, int]
    camera: CameraModel
    passes: int
    scene: np.ndarray
    out: np.ndarray
    spikes: Spikes | None
    bad: np.ndarray | None
    history: tuple[np.ndarray, ...]
    mean: np.ndarray | None
    mean_now: np.ndarray | None  # the running mean with the frame in it, for the blend
    share: float  # the frame's share of it
    spike_values: np.ndarray | None  # the spikes as they came (the probe keeps them)


class SeriesContext:
    """The history and the camera of one series, for any engine denoising it.

    Parameters
    ----------
    camera
        The configured camera; None estimates it live from the frames.
    blend
        ``"sure"``: a noise-adaptive model's output blended with smoothing as the
        series' measured risks say (:mod:`stream.engine._blend`); ``"off"``: as it comes.
    """

    def __init__(self, camera: CameraModel | None = None, blend: BlendSetting = "sure") -> None:
        self.configured = camera
        self.blend = blend
        self._risks = RiskBlend()
        self._probes = np.random.default_rng(20_261_202)  # reproducible outputs
        #: The blend the latest frame got.
        self.blend_choice: BlendChoice = IDENTITY
        self._blend_key: tuple[str, int] | None = None
        #: Whether the latest frame was measured for the blend (one more pass), and
        #: how many frames of the series were.
        self.measured_latest = False
        self.blend_frames_measured = 0
        self._pending: _Measurement | None = None
        self._estimator = CameraEstimator() if camera is None else None
        self._history: deque[np.ndarray] = deque()
        self._mean: np.ndarray | None = None
        self._mean_count = 0  # frames taken into the running mean
        self._last: np.ndarray | None = None  # the previous frame, for a temporal model
        self.scene_changes = 0  # frames whose scene had moved: the ring was emptied
        self.spikes = 0  # one-pixel spikes the engine filled in the latest frame
        self.frames_with_spikes = 0
        self._last_index: int | None = None
        self._seen = 0
        self._estimator_has_previous = False  # the frame before went to the estimator

    @property
    def camera(self) -> CameraModel | None:
        """The camera in use: configured, or the latest estimate (None before a frame)."""
        if self.configured is not None:
            return self.configured
        estimate = self.estimate
        return estimate.camera if estimate is not None else None

    @property
    def estimate(self) -> CameraEstimate | None:
        """The live estimate (None when the camera is configured, or before a frame)."""
        return self._estimator.estimate if self._estimator is not None else None

    @property
    def history_bytes(self) -> int:
        """Memory held by the ring of previous frames, the running mean and a deferred
        blend measurement."""
        arrays = [*self._history, self._mean, self._last]
        if self._pending is not None:
            pending = self._pending
            arrays += [pending.scene, pending.out, pending.mean, pending.mean_now]
        held = {id(a): a.nbytes for a in arrays if a is not None}
        return sum(held.values())

    @property
    def blend_measured(self) -> int:
        """Frames whose risks the latest frame's blend choice rests on."""
        return self._risks.measured(self._blend_key) if self._blend_key else 0

    def denoise(
        self,
        engine: Engine,
        frame: np.ndarray,
        index: int | None = None,
        passes: int = 1,
        measure: bool | None = None,
    ) -> np.ndarray:
        """Denoise the series' next frame with ``engine`` and remember it.

        ``index``: the frame's index in the series; a jump (or a step back) empties the
        ring first. None: frames are taken as consecutive. ``passes``: the self-ensemble
        (:meth:`Engine.denoise`). ``measure``: a frame due a blend measurement is
        measured at once (None, True: one more model pass before it returns), or the
        measurement is kept for :meth:`measure_pending` (False: the service takes it
        after the frame is out, when there is time).
        """
        if index is not None and self._last_index is not None and index != self._last_index + 1:
            self._history.clear()
            self._mean = self._last = None
            self._estimator_has_previous = False
        self._last_index = index
        camera = None
        if engine.needs_camera:
            camera = self._camera_for(frame)
        keep = engine.metadata.frames - 1
        while len(self._history) > keep:  # a model switch may have shortened the window
            self._history.popleft()
        decay = engine.metadata.running_mean
        if decay <= 0 or (self._mean is not None and self._mean.shape != frame.shape):
            self._mean = None  # no such channel, or another frame size: a new series
        if (keep or decay > 0) and self._last is not None and scene_moved(frame, self._last):
            self._history.clear()
            self._mean = None
            self.scene_changes += 1
        out = engine.denoise(
            frame, camera=camera, history=self._history, running_mean=self._mean, passes=passes
        )
        self.spikes = engine.last_spikes
        self.frames_with_spikes += self.spikes > 0
        if camera is not None and self.blend == "sure":
            out = self._blended(engine, frame, out, camera, passes, measure is not False)
        else:
            self._pending = None
        stored = self._stored(frame) if keep or decay > 0 else None
        self._last = stored
        if decay > 0:
            assert stored is not None
            self._remember_in_mean(stored, decay)
        if keep:
            assert stored is not None
            self._history.append(stored)
            if len(self._history) > keep:
                self._history.popleft()
        return out

    @property
    def measurement_pending(self) -> bool:
        """Whether the latest frame is due a blend measurement not yet taken."""
        return self._pending is not None

    def measure_pending(self, engine: Engine) -> bool:
        """Take the latest frame's deferred blend measurement (``denoise(...,
        measure=False)``) with ``engine``: one more model pass; the next frames' blend
        rests on it. False when there is none, or it was for another model."""
        pending, self._pending = self._pending, None
        if pending is None or pending.key[0] != engine.model_id:
            return False
        self._measure(engine, pending)
        return True

    def _blended(
        self,
        engine: Engine,
        frame: np.ndarray,
        out: np.ndarray,
        camera: CameraModel,
        passes: int,
        measure: bool,
    ) -> np.ndarray:
        """``out`` blended as the series' risks say; a frame due a measurement is
        measured first (``measure``) or kept for :meth:`measure_pending`."""
        spikes = engine.last_spike_places
        self.measured_latest = False
        self._pending = None
        window, full = engine.last_history, engine.metadata.frames - 1
        regime = 0 if window == 0 else 2 if window >= full else 1  # none, young, full
        key = self._blend_key = (engine.model_id, regime)
        due = self._risks.due(key)
        if not due and self._risks.choice(key).is_identity:
            self.blend_choice = IDENTITY
            return out
        scene, bad = self._scene(frame, spikes)
        model_out = out if bad is None and spikes is None else out.copy()
        if bad is not None:
            model_out[bad] = scene[bad]
        if spikes is not None:  # kept as they are, not smeared by a blur
            model_out[spikes] = scene[spikes]
        mean_now, share = self._mean_now(engine, scene, spikes)
        if due:
            mean = None if self._mean is None else self._mean if measure else self._mean.copy()
            pending = _Measurement(
                key,
                camera,
                passes,
                scene,
                model_out if measure else model_out.copy(),
                spikes,
                bad,
                tuple(self._history),
                mean,
                mean_now,
                share,
                None if spikes is None else np.asarray(frame[spikes], np.float32),
            )
            if measure:
                self._measure(engine, pending)
            else:  # the running mean and the ring move on before it is taken: copies
                self._pending = pending
        self.blend_choice = self._risks.choice(key)
        if self.blend_choice.is_identity:
            return out
        blended = apply_blend(model_out, scene, self.blend_choice, mean_now)
        if spikes is not None:
            blended[spikes] = out[spikes]
        if bad is not None:
            blended[bad] = np.nan
        return blended

    def _measure(self, engine: Engine, m: _Measurement) -> None:
        """The candidates' risks on one frame: the model once more, on the frame plus a
        small probe of its own noise."""
        keep = described_pixels(m.scene, m.camera, m.spikes, m.bad)
        if keep.mean() < MIN_DESCRIBED:  # mostly clipped, masked or spikes
            self._risks.skip(m.key)
            return
        variance = noise_variance(m.scene, m.camera)
        probe = self._probes.standard_normal(m.scene.shape, dtype=np.float32)
        probe *= np.sqrt(variance)
        probed_frame = m.scene + np.float32(PROBE_STEP) * probe
        if m.spikes is not None and m.spike_values is not None:
            # the spikes as they came: the engine finds and fills them again, in the
            # earlier frames and the running mean too, as it did for the frame itself
            probed_frame[m.spikes] = m.spike_values
        latest = engine.last_spikes, engine.last_spike_places, engine.last_history
        probed = engine.denoise(
            probed_frame,
            camera=m.camera,
            history=m.history,
            running_mean=m.mean,
            passes=m.passes,
        )
        # the engine's report is of the series' frame, not of the probe
        engine.last_spikes, engine.last_spike_places, engine.last_history = latest
        for where in (m.spikes, m.bad):  # as in the output blended (see _blended)
            if where is not None:
                probed[where] = m.scene[where]
        fuse = m.camera.floor is None
        risks = candidate_risks(
            m.scene, m.out, probed, probe, variance, keep, m.mean_now, m.share, fuse
        )
        self._risks.add(m.key, risks)
        self.measured_latest = True
        self.blend_frames_measured += 1

    def _mean_now(
        self, engine: Engine, scene: np.ndarray, spikes: Spikes | None
    ) -> tuple[np.ndarray | None, float]:
        """For a model with a running-mean channel: the series' running mean with this
        frame taken in as the next update will, and the frame's share of it (None, 0:
        no such channel)."""
        decay = engine.metadata.running_mean
        if decay <= 0:
            return None, 0.0
        if self._mean is None or self._mean.shape != scene.shape:
            return scene, 1.0  # a series start: the frame is all of it
        share = max(decay, 1.0 / (self._mean_count + 1))
        now = mean_with(self._mean, scene, share)
        if spikes is not None:  # a hot pixel in the earlier frames too
            fill_spikes(now, spikes)
        return now, share

    def _scene(
        self, frame: np.ndarray, spikes: Spikes | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame as float32 with its non-finite pixels (also returned) and spikes
        filled in, as the model saw it."""
        bad = None
        if count_non_finite(frame):
            bad = ~np.isfinite(frame)
        scene = self._stored(frame)
        if spikes is not None:
            fill_spikes(scene, spikes)
        return scene, bad

    def _remember_in_mean(self, stored: np.ndarray, decay: float) -> None:
        """Take the frame just denoised (``stored``, a copy) into the running mean."""
        if self._mean is None:
            self._mean, self._mean_count = stored.copy(), 1
        else:
            self._mean_count += 1
            update_running_mean(self._mean, stored, decay, self._mean_count)

    def _camera_for(self, frame: np.ndarray) -> CameraModel:
        if self.configured is not None:
            return self.configured
        assert self._estimator is not None
        self._seen += 1
        due = self._seen <= ESTIMATE_WARMUP or self._seen % ESTIMATE_EVERY == 0
        soon_due = (-self._seen) % ESTIMATE_EVERY in (1, 2)
        fed = due or soon_due
        if fed and count_non_finite(frame):
            # NaN/Inf would poison the estimate: a constant in their place is a flat fill,
            # which it leaves out (a field of view masked with NaN, dead pixels)
            frame = self._stored(frame)
        if fed and due:
            self._estimator.update(frame, follows=self._estimator_has_previous)
        elif fed:
            self._estimator.remember(frame, follows=self._estimator_has_previous)
        self._estimator_has_previous = fed
        estimate = self._estimator.estimate
        assert estimate is not None  # a series' first frame is always due
        return estimate.camera

    @staticmethod
    def _stored(frame: np.ndarray) -> np.ndarray:
        """A float32 copy whose non-finite pixels hold the mean of the finite ones."""
        stored = np.array(frame, dtype=np.float32)
        if count_non_finite(stored):
            bad = ~np.isfinite(stored)
            stored[bad] = stored[~bad].mean() if not bad.all() else 0.0
        return stored
