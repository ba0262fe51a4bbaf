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
A scene that only shifted by a few pixels (a drift, an animal's motion) keeps them: the
model is shown each moved by whole pixels to where the scene now stands
(:mod:`stream.engine._motion`).

For a noise-adaptive model its camera side (:mod:`stream.engine._series_camera`: the
camera, its patterns, row noise and noisy pixels, learned from the series' first still
pairs) prepares each frame before anything else sees it; the context then chooses the
noise map the model is told and blends the output with smoothing as the series' own
frames say helps (:mod:`stream.engine._blend`): the first frames of each regime (the
model, and the previous frames it used) and one in 16 after are measured (five more
model passes: the frame plus a small probe, at each noise-map scale; and both binned 2 x
2), unless the caller says there is no time for it; a composed temporal model's young
window that its spatial start answers (outside the band of light where the temporal
branch helps) is measured with the temporal branch too, and goes to it where those
measurements say so (:meth:`SeriesBlend.young_window`).
For a temporal noise-adaptive model with the blend on, it then mixes the still, brightly
lit pixels with their raw readouts' mean over the frames they held still
(:mod:`stream.engine._still_means`), restarted with the ring.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

from ..camera import CameraEstimate, CameraModel, OffsetPattern, scene_moved, unaligned
from ._blend import BlendChoice, BlendSetting
from ._engine import Engine
from ._inputs import update_running_mean
from ._motion import lined_up, scene_shift
from ._pixels import finite_copy
from ._series_blend import SeriesBlend
from ._series_camera import SeriesCamera
from ._still_means import StillMeans


class SeriesContext:
    """The history and the camera of one series, for any engine denoising it.

    Parameters
    ----------
    camera
        The configured camera; None estimates it live from the frames.
    blend
        ``"spatial"``: a noise-adaptive model's output blended with spatial smoothing as
        the series' measured risks say (:mod:`stream.engine._blend`); ``"spatiotemporal"``:
        also with the series' running mean; ``"off"``: as it comes.
    offset_pattern
        A dark-frame average's pattern, subtracted from every frame of its shape before
        anything else sees it (:mod:`stream.camera._pattern`); None: none.
    """

    def __init__(
        self,
        camera: CameraModel | None = None,
        blend: BlendSetting = "spatial",
        offset_pattern: OffsetPattern | None = None,
    ) -> None:
        self._camera_side = SeriesCamera(camera)  # what the model is told of the camera
        self._offset_pattern = offset_pattern  # subtracted first (stream.camera._pattern)
        self._blend = SeriesBlend(blend)
        self._still = StillMeans()  # a temporal model's still, bright pixels' raw means
        self._history: deque[np.ndarray] = deque()
        self._mean: np.ndarray | None = None
        self._mean_count = 0  # frames taken into the running mean
        self._last: np.ndarray | None = None  # the previous frame, for a temporal model
        self.scene_changes = 0  # frames whose scene had moved: the ring was emptied
        # where the scene stood in each ring frame, in the latest frame and in the running
        # mean (px; stream.engine._motion): the model sees them moved to the current one
        self._history_at: deque[tuple[float, float]] = deque()
        self._at = (0.0, 0.0)
        self._mean_at = (0, 0)
        self.scene_shifts = 0  # frames whose scene had shifted: the ring was moved with it
        self.spikes = 0  # one-pixel spikes the engine filled in the latest frame
        self.frames_with_spikes = 0
        #: Frames whose dim part was denoised again at its own scale (FrameReport.two_scales).
        self.frames_two_scales = 0
        #: Pixels of the latest frame in a masked region (stream.camera.masked_pixels).
        self.masked = 0
        self.frames_masked = 0
        self._last_index: int | None = None
        self._ahead_last: int | None = None  # the last frame look_ahead learned from

    # the camera side (stream.engine._series_camera), as the service reports it
    @property
    def configured(self) -> CameraModel | None:
        """The configured camera (None: estimated live)."""
        return self._camera_side.configured

    @property
    def camera(self) -> CameraModel | None:
        """The camera in use: configured, or the latest estimate (None before a frame)."""
        return self._camera_side.camera

    @property
    def estimate(self) -> CameraEstimate | None:
        """The live estimate (None when the camera is configured, or before a frame)."""
        return self._camera_side.estimate

    @property
    def camera_side(self) -> SeriesCamera:
        """What the series' frames taught of the camera: its noisy pixels, row noise,
        fixed patterns and a scan's phase (:class:`SeriesCamera`)."""
        return self._camera_side

    @property
    def history_bytes(self) -> int:
        """Memory held by the ring of previous frames, the running mean, a deferred
        blend measurement and the frame the blend keeps for a pair (not the live
        estimate's samples, nor, for a series' first 64 still pairs, the searches for
        noisy pixels and row noise: 36 bytes a pixel)."""
        arrays = [*self._history, self._mean, self._last, *self._blend.held_arrays()]
        arrays += self._still.arrays()
        held = {id(a): a.nbytes for a in arrays if a is not None}
        return sum(held.values())

    # the blend (stream.engine._series_blend), as the service reports it
    @property
    def blend(self) -> BlendSetting:
        return self._blend.setting

    @property
    def blend_choice(self) -> BlendChoice:
        """The blend the latest frame got."""
        return self._blend.choice

    @property
    def young_window(self) -> str:
        """Who answers a composed temporal model's young windows: ``"temporal"`` (as the
        series' risks say) or ``"band"`` (its band of light)."""
        return self._blend.young_answer

    @property
    def blend_measured(self) -> int:
        """Frames whose risks the latest frame's blend rests on."""
        return self._blend.measured

    @property
    def blend_frames_measured(self) -> int:
        return self._blend.frames_measured

    @property
    def blend_frames_paired(self) -> int:
        """Of the frames measured, those measured against the frame before (a dark
        series of a spatial model: :meth:`SeriesBlend._pair`)."""
        return self._blend.frames_paired

    @property
    def measured_latest(self) -> bool:
        """Whether the latest frame was measured for the blend (more passes)."""
        return self._blend.measured_latest

    @property
    def served_binned_s(self) -> float:
        """Seconds the latest frame's blend spent on the model's pass on the binned frame
        (its choice's, not the model's own pass)."""
        return self._blend.served_binned_s

    @property
    def measured_latest_s(self) -> float:
        """Seconds the latest frame's blend measurement added before it was served."""
        return self._blend.measured_latest_s

    @property
    def dearest_step_s(self) -> float:
        """Of the latest frame's measurement taken a step at a time before it was
        served, the dearest step's seconds (0: none)."""
        return self._blend.dearest_step_s

    @property
    def measurement_pending(self) -> bool:
        """Whether the latest frame is due a blend measurement not yet taken."""
        return self._blend.pending

    def measure_pending(self, engine: Engine) -> bool:
        """Take the latest frame's deferred blend measurement (``denoise(...,
        measure=False)``) with ``engine``; False when there is none, or it was for
        another model."""
        return self._blend.measure_pending(engine)

    def measure_step(self, engine: Engine) -> bool:
        """One step of the deferred blend measurement (a model pass, or the risks):
        :meth:`SeriesBlend.measure_step`."""
        return self._blend.measure_step(engine)

    def denoise(
        self,
        engine: Engine,
        frame: np.ndarray,
        index: int | None = None,
        passes: int = 1,
        measure: bool | None = None,
        lean: bool = False,
        outpaced: bool = False,
        frame_waits: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Denoise the series' next frame with ``engine`` and remember it.

        ``index``: the frame's index in the series; a jump (or a step back) empties the
        ring first. None: frames are taken as consecutive. ``passes``: the self-ensemble
        (:meth:`Engine.denoise`). ``measure``: a frame due a blend measurement is
        measured at once (None, True: more model passes before it returns), or the
        measurement is kept for :meth:`measure_pending` (False: the service takes it
        after the frame is out, when there is time) -- except the series' first, taken at
        once when the frame's noise variance is well known (:meth:`SeriesBlend.blended`).
        ``lean``: frames are waiting, or the frame interval leaves no room for more (the
        service's ensemble budget): no blend that needs a model pass on the binned
        frame. ``outpaced``: frames also come faster than they are
        denoised, so no spare time will come: a regime's first few measurements are
        taken at once (:data:`OUTPACED_AT_ONCE`). ``frame_waits``: whether a frame of
        the series now waits; given, the series' first measurement holds the frame only
        until one does (the rest is taken as the deferred ones are; one that always
        says so holds none: :meth:`SeriesBlend.blended`).
        """
        # frames looked at ahead were learned from then: their camera side is served as
        # the look ahead left it (look_ahead)
        if self._ahead_last is not None and index is None:
            raise ValueError(
                "a series looked at ahead needs each frame's index (look_ahead): got None"
            )
        learn = self._ahead_last is None or index is None or index > self._ahead_last
        given = frame  # a masked region's pixels go back as they came
        self._blend.new_frame()  # a frame served without the blend reports none of it
        frame = self._arrive(frame, index, learn)
        camera, masked, width, lag = None, None, frame.shape[-1], 0
        if engine.needs_camera:
            self._camera_side.fill_warm = engine.spikes == "correct"
            frame, camera, masked, lag = self._camera_side.prepare(
                frame, given, learn, self._drop_previous_frames
            )
        self.masked = 0 if masked is None else int(np.count_nonzero(masked))
        self.frames_masked += masked is not None
        keep = engine.metadata.frames - 1
        while len(self._history) > keep:  # a model switch may have shortened the window
            self._history.popleft()
            self._history_at.popleft()
        decay = engine.metadata.running_mean
        if decay <= 0 or (self._mean is not None and self._mean.shape != frame.shape):
            self._mean = None  # no such channel, or another frame size: a new series
        stored = finite_copy(frame, camera) if keep or decay > 0 else None  # as the ring keeps it
        if stored is not None and self._last is not None:
            previous_at = self._at
            followed = self._follow_the_scene(frame)
            if scene_moved(frame, self._lined_up(self._last, previous_at)):
                self._drop_previous_frames()
                self.scene_changes += 1
            elif followed:
                self.scene_shifts += 1
        shared = camera is not None and self._camera_side.noise_shared()
        map_scale = self._blend.map_scale_for(engine) if camera is not None and not shared else 1.0
        ring = zip(self._history, self._history_at, strict=True)
        history = tuple(self._lined_up(previous, at) for previous, at in ring)
        bands, young_ring = True, None
        blending = camera is not None and not shared and self._blend.setting != "off"
        if blending and _young_either_way(engine, len(history)):
            young_ring = history  # the risks may choose the temporal branch in any light
            bands = not self._blend.young_window(engine)
        out, report = engine.denoise_with_report(
            frame,
            camera=camera,
            history=history,
            running_mean=self._mean,
            passes=passes,
            noise_map_scale=map_scale,
            bands=bands,
        )
        self.spikes = report.spike_count
        self.frames_with_spikes += self.spikes > 0
        self.frames_two_scales += report.two_scales
        if shared:
            self._blend.serve_as_is()
        elif camera is not None and self._blend.setting != "off":
            side = self._camera_side
            out = self._blend.blended(
                engine,
                frame,
                out,
                report,
                camera,
                passes,
                measure is not False,
                history,
                self._mean,
                self._mean_count,
                map_scale,
                side.gain_stderr(),
                lean,
                outpaced,
                bands,
                young_ring,
                # the frame's noise is the camera model's: no rows levelled, no noisy
                # pixels or spikes filled (what is left of them favours smoothing)
                plain=not side.row_noise_corrected and side.noisy_pixels == 0 and not self.spikes,
                # noisy pixels found and filled from their neighbours: measured against the
                # frame before wherever that pair may be used, not by Stein's estimate, whose
                # noise variance those fills do not have. Why (deepdenoise evaluate na-lite,
                # 16-frame movies, no camera configured; 1 % of the camera's pixels read at
                # 5-20 e-, the rest at 1.5): margin over a truth-tuned Gaussian at 1 / 3 / 10
                # / 30 photons, independent -1.19 / -0.02 / +0.32 / +1.14 -> -0.68 / +0.47 /
                # +0.66 / +1.21, textures -2.38 / -0.18 / +0.67 / +0.30 -> -1.80 / +0.00 /
                # +0.79 / +0.59. The same for rows levelled moved series -0.03 to +0.13 dB,
                # for spikes filled (0.1 % hot pixels) -0.15 to +0.23: not taken.
                paired_first=side.noisy_pixels > 0,
                frame_waits=frame_waits,
            )
        else:
            self._blend.drop_pending()
            self._blend.forget_partner()
        if camera is not None and (keep or decay > 0) and not shared and self.blend != "off":
            estimate = self.estimate  # a configured camera's gain is known exactly
            gain_stderr = estimate.gain_stderr if estimate is not None else 0.0
            out = self._still.mixed(frame, out, camera, gain_stderr)
        else:
            self._still.reset()
        self._last = stored
        if decay > 0:
            assert stored is not None
            self._remember_in_mean(stored, decay)
        if keep:
            assert stored is not None
            self._history.append(stored)
            self._history_at.append(self._at)
            if len(self._history) > keep:
                self._history.popleft()
                self._history_at.popleft()
        if lag:
            out = unaligned(out, lag, width)
        if masked is not None:
            out[masked] = given[masked]
        return out

    def _arrive(self, frame: np.ndarray, index: int | None, learn: bool = True) -> np.ndarray:
        """Take the series' next frame's ``index`` -- a jump (or a step back) empties the
        ring and, if the frame is to be learned from, the frames the searches and the
        estimate would pair it with -- and give the frame without the offset map's
        pattern (:mod:`stream.camera._pattern`)."""
        if index is not None and self._last_index is not None and index != self._last_index + 1:
            self._drop_previous_frames()
            if learn:
                self._camera_side.forget_previous()
        self._last_index = index
        return frame if self._offset_pattern is None else self._offset_pattern.subtracted(frame)

    def look_ahead(self, frames: Iterable[tuple[int, np.ndarray]]) -> int:
        """Warm the live camera estimate on frames to come, ``(index, frame)`` in order,
        before the series' first is denoised; the number taken (0 with a configured
        camera). An offline caller has them (``deepdenoise denoise``); the service, which
        never waits for a frame, does not.

        Why: one frame cannot tell the noise from the scene's structure at the scale of a
        pixel, and the first frame's estimate is what a live series' first frame gets. A
        held-out probe (2026-12-05, a star field from ``skimage.data`` at 100 photons per
        pixel, 128 x 128, no camera configured) read its stars and their compression
        texture as noise (read noise 4.9 ADU for 0.15) and its first frame came out 5.6 dB
        under its input, taking 8- and 16-frame recordings below their input; the
        frames' differences told the camera from the second frame on.

        The frames go through the same camera-side steps as :meth:`denoise` (the camera
        estimate, and the searches for row noise, noisy pixels and a scan's phase) in a
        context of their own, with no model pass, and what those learned becomes this
        one's: the frames looked at are then served with it, learning nothing again (a
        pair counted twice would narrow the gain's error bar on no new evidence), and
        from the next frame on the series goes on exactly as a live one would from
        there. :meth:`denoise` must then be given each frame's ``index``."""
        if not self._camera_side.live:
            return 0
        scout = SeriesContext(None, "off", self._offset_pattern)
        taken = 0
        for index, frame in frames:  # as denoise takes them, the model aside
            scout._camera_side.prepare(scout._arrive(frame, index), frame)
            taken += 1
        fill_warm = self._camera_side.fill_warm  # the engine's spikes setting, not learned
        self._camera_side = scout._camera_side
        self._camera_side.fill_warm = fill_warm
        self._ahead_last = scout._last_index
        return taken

    def _drop_previous_frames(self) -> None:
        """Empty the ring, the running mean and the still pixels' means: the frames
        before are no longer this scene's (a gap, a moved scene, another scan geometry)."""
        self._history.clear()
        self._history_at.clear()
        self._blend.forget_partner()
        self._mean = self._last = None
        self._at, self._mean_at = (0.0, 0.0), (0, 0)
        self._still.reset()

    def _follow_the_scene(self, frame: np.ndarray) -> bool:
        """Where the scene stands in ``frame`` (:func:`stream.engine._motion.scene_shift`),
        against the running mean where the model has one, else against the previous
        frame; whether it shifted. The running mean is moved with it by whole pixels,
        and the still pixels' means start again.

        Why against the mean: it is where the scene stood, averaged over many frames --
        its noise no hindrance -- and a drift slower than half a pixel a frame, which no
        pair of frames shows, adds up against it (one-off probe: nuclei drifting 0.7 px a
        frame along each axis at 3 photons per pixel were 0.4 dB worse followed frame to
        frame than not followed at all)."""
        assert self._last is not None
        reference, at = self._last, self._at
        if self._mean is not None:
            reference, at = self._mean, (float(self._mean_at[0]), float(self._mean_at[1]))
        shift = scene_shift(frame, reference)
        self._at = at if shift is None else (at[0] + shift[0], at[1] + shift[1])
        if shift is None:
            return False
        self._still.reset()
        if self._mean is not None:
            step = _whole_pixels(self._at, self._mean_at)
            if step != (0, 0):
                self._mean = lined_up(self._mean, step)
                self._mean_at = (self._mean_at[0] + step[0], self._mean_at[1] + step[1])
        return True

    def _lined_up(self, previous: np.ndarray, at: tuple[float, float]) -> np.ndarray:
        """A previous frame of the ring (the scene ``at`` there) moved to where the scene
        stands now, by whole pixels (as it is when that is none); where it does not
        reach, its edge repeated (:func:`stream.engine._motion.lined_up`).

        Why not the current frame's pixels there: the model then saw its frames agree at
        the border and passed the noise through (a reviewer's probe, a texture jittering
        up to 4 px at 10 photons per pixel: the outer 2 px 30.2 dB, 2.3 dB under the ring
        not followed at all; with the edge repeated 33.4, above it at every distance
        from the border). Nor the frame's own pixels, left where they were: 32.4 there,
        and 0.3-1.7 dB less over drifting probe movies than the edge repeated."""
        step = _whole_pixels(self._at, at)
        return lined_up(previous, step)

    @property
    def still_means(self) -> StillMeans:
        """A temporal model's still, bright pixels averaged over time
        (:mod:`stream.engine._still_means`): the share of the latest frame's pixels mixed,
        their frames, the network's error estimate."""
        return self._still

    def _remember_in_mean(self, stored: np.ndarray, decay: float) -> None:
        """Take the frame just denoised (``stored``, a copy) into the running mean; a new
        mean stands where the scene stands in it."""
        if self._mean is None:
            self._mean, self._mean_count = stored.copy(), 1
            self._mean_at = _whole_pixels(self._at, (0.0, 0.0))
        else:
            self._mean_count += 1
            update_running_mean(self._mean, stored, decay, self._mean_count)


def _young_either_way(engine: Engine, previous: int) -> bool:
    """Whether a frame with ``previous`` frames in the ring is a young window that the
    model may answer with its temporal branch or its spatial start: a composed model
    with a band of light for young windows (:meth:`ModelMetadata.temporal_band`)."""
    meta = engine.metadata
    return 0 < previous < meta.frames - 1 and meta.temporal_band("young") is not None


def _whole_pixels(now: tuple[float, float], then: tuple[float, float]) -> tuple[int, int]:
    """The whole-pixel shift from where the scene stood ``then`` to where it stands ``now``."""
    return round(now[0] - then[0]), round(now[1] - then[1])
