"""One series' camera side: what a noise-adaptive model is told of each frame and of
the camera. A configured camera, or one estimated live from the series' own frames
(:class:`stream.camera.CameraEstimator`); and, learned from its first still pairs, the
camera's fixed patterns of columns and rows, its row noise and its noisy pixels, a
masked region and a bidirectional scan's phase (:mod:`stream.camera`), each taken out
of the frame before the model sees it. :class:`stream.engine.SeriesContext` keeps one
per series (and hands over one warmed on frames looked at ahead).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..camera import (
    CameraEstimate,
    CameraEstimator,
    CameraModel,
    LinePattern,
    NoisyPixels,
    RowNoise,
    ScanPhase,
    aligned,
    fill_spikes,
    masked_pixels,
    remove_row_offsets,
    scene_moved,
    unaligned_pixels,
)
from ._pixels import count_non_finite, finite_copy

#: Frames over which the live camera estimate is updated every frame; after that,
#: every ``ESTIMATE_EVERY`` frames, after the two frames just before it (kept by
#: ``CameraEstimator.remember``): its differences are still of consecutive frames.
ESTIMATE_WARMUP = 32
ESTIMATE_EVERY = 8


class SeriesCamera:
    """The camera side of one series (see the module's docstring); ``camera``: the
    configured camera, None to estimate it live."""

    def __init__(self, camera: CameraModel | None = None) -> None:
        self.configured = camera
        self._estimator = CameraEstimator() if camera is None else None
        self._estimator_has_previous = False  # the frame before went to the estimator
        self._seen = 0
        self._noisy = NoisyPixels()  # the camera's noisy pixels (stream.camera._noisy)
        #: And its warm ones filled too, but where the engine keeps spikes.
        self.fill_warm = True
        self._noisy_previous: np.ndarray | None = None  # the frame before, while it looks
        self._noisy_unread: np.ndarray | None = None  # its pixels not read (NaN, a mask)
        self._rows = RowNoise()  # the camera's row noise (stream.camera._rows)
        self._scan = ScanPhase()  # a bidirectional scan's phase (stream.camera._scan_phase)
        self._rows_previous: np.ndarray | None = None  # the raw frame before, while it looks
        # the camera's fixed patterns of columns and of rows (stream.camera._line_pattern)
        self._lines = (LinePattern(axis=1), LinePattern(axis=0))
        self._lines_previous: np.ndarray | None = None  # the raw frame before, while they look
        #: whether each is taken out of the latest frame
        self._lines_taken: tuple[bool, ...] = (False, False)
        self._lines_ever_taken = False  # the live estimate restarts the first time
        #: The live estimate before that restart, while the searches may yet undo it.
        self._estimator_before_lines: CameraEstimator | None = None

    @property
    def live(self) -> bool:
        """Whether the camera is estimated from the frames (none configured)."""
        return self._estimator is not None

    def forget_previous(self) -> None:
        """A gap in the series: the frames the searches and the estimate would pair the
        next one with are no longer the one just before it."""
        self._noisy_previous = self._rows_previous = self._lines_previous = None
        self._estimator_has_previous = False

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

    def gain_stderr(self) -> float:
        """The camera gain's standard error: 0 for a configured camera."""
        estimate = self.estimate
        return estimate.gain_stderr if estimate is not None else 0.0

    @property
    def noisy_pixels(self) -> int:
        """The camera's noisy and warm pixels found in this series and filled before the
        model (warm ones only where the engine fills spikes: ``spikes = "correct"``)."""
        pixels = self._noisy.filled(self.fill_warm)
        return 0 if pixels is None else len(pixels[0])

    @property
    def scan_lag(self) -> int:
        """Px the odd lines of this series' frames lie behind the even ones (a
        bidirectional scan's phase, :mod:`stream.camera._scan_phase`; 0: none found)."""
        return self._scan.lag

    @property
    def row_noise(self) -> float:
        """The rms of the rows' offsets found in this series (counts; 0: none found)."""
        return self._rows.rms

    @property
    def row_noise_corrected(self) -> bool:
        """Whether the series' frames get their row offsets taken out."""
        return self._rows.correcting

    @property
    def line_patterns(self) -> dict[str, dict[str, object]]:
        """The fixed patterns of columns and of rows found: rms (counts) and whether
        taken out."""
        return {
            name: {"rms": round(lines.rms, 4), "corrected": taken}
            for name, lines, taken in zip(
                ("columns", "rows"), self._lines, self._lines_taken, strict=True
            )
        }

    def noise_shared(self) -> bool:
        """Whether the live estimate finds noise that neighbours share both ways (frames
        registered by sub-pixel shifts before they came): the blend's risk assumes white
        noise, and on such frames (the independent generator, one-off probe) its choices
        cost up to 2.9 dB, so the output is served as it is. Noise shared along rows
        only (an amplifier's low-pass) keeps the blend: there it helped (0.2-0.8 dB)."""
        estimate = self.estimate
        return estimate is not None and estimate.noise_shared

    def prepare(
        self,
        frame: np.ndarray,
        given: np.ndarray,
        learn: bool = True,
        new_geometry: Callable[[], None] | None = None,
    ) -> tuple[np.ndarray, CameraModel, np.ndarray | None, int]:
        """What a noise-adaptive model is given of ``frame`` (``given`` as it came): the
        frame with its rows levelled, its masked region NaN, its lines aligned and its
        noisy pixels filled; the camera; the mask; the scan's lag. Each search learns
        from the frame on the way (``learn``: a frame looked at ahead teaches nothing
        again). ``new_geometry``: called where a scan's phase is first found (the
        series' frames kept from before are of another geometry)."""
        width = frame.shape[-1]
        frame = self._without_line_patterns(frame, learn)
        frame = self._without_row_noise(frame, learn)
        camera = self._camera_for(frame, learn)
        masked = masked_pixels(given, camera) if given.ndim == 2 else None
        if masked is not None:  # from here on, as NaN pixels are
            frame = np.array(frame, dtype=np.float32)
            frame[masked] = np.nan
        # after the masks: their edges are no lines'
        lag = self._scan_lag(frame, learn, new_geometry)
        if lag:  # the model (and the search for noisy pixels) sees the scene's lines
            frame = aligned(frame, lag)
        if learn:
            self._look_for_noisy_pixels(frame, camera, lag, width)
        return self._without_noisy_pixels(frame), camera, masked, lag

    def _without_line_patterns(self, frame: np.ndarray, learn: bool = True) -> np.ndarray:
        """Give the searches for fixed patterns of columns and rows this raw frame and
        the one before it, if the scene held still between them (a series' first 32 such
        pairs), then ``frame``, or a copy with the patterns found worth it taken out
        (:mod:`stream.camera._line_pattern`); the caller's frame (stored raw) is left as
        it came. When one is first taken out, the live estimate starts again (and
        comes back as it was, should none be taken out while they still learn)."""
        if frame.ndim != 2:
            return frame
        previous = None
        if learn and any(lines.shape not in (None, frame.shape) for lines in self._lines):
            # another region of the sensor: its searches start again, and so may the
            # estimate (the one from before a restart is no longer this region's)
            self._estimator_before_lines = None
            self._lines_ever_taken = False
        if learn and any(not lines.done or lines.shape != frame.shape for lines in self._lines):
            clean = finite_copy(frame)
            previous = self._lines_previous
            if previous is None or previous.shape != frame.shape or scene_moved(clean, previous):
                previous = None
            else:
                for lines in self._lines:
                    lines.add(clean, previous)
            self._lines_previous = None if all(lines.done for lines in self._lines) else clean
        camera = self._gain_and_read_noise()
        self._lines_taken = tuple(
            camera is not None and lines.shape == frame.shape and lines.correcting(*camera)
            for lines in self._lines
        )
        first = any(self._lines_taken) and not self._lines_ever_taken
        self._lines_ever_taken |= first
        if first and previous is not None and self._estimator is not None:
            self._estimator_before_lines = self._estimator
            self._restart_estimate(self._without_taken_patterns(previous))
        elif not any(self._lines_taken) and self._estimator_before_lines is not None:
            # what the restart rested on was no pattern after all (a scene's columns of
            # light told on one pair only): the estimate from before it comes back
            self._estimator = self._estimator_before_lines
            self._estimator_has_previous = False
            self._estimator_before_lines = None
        if all(lines.done for lines in self._lines):
            self._estimator_before_lines = None  # what they found stands
        return self._without_taken_patterns(frame)

    def _without_taken_patterns(self, frame: np.ndarray) -> np.ndarray:
        for lines, taken in zip(self._lines, self._lines_taken, strict=True):
            if taken:
                frame = lines.subtracted(frame)
        return frame

    def _restart_estimate(self, previous: np.ndarray) -> None:
        """Start the live estimate again from the frame before (``previous``, with the
        patterns now taken out), as a series' first: the levels it fitted were made noisy
        by them, which pulled its gain down (0.19 for 0.5 on the phantom at 3 photons
        per pixel with columns of 1.5 e-, from a series' first two frames), and its
        pooled samples would keep them for hundreds of frames."""
        self._estimator = CameraEstimator()
        self._seen = 0
        self._estimator_has_previous = False
        self._camera_for(previous)

    def _without_row_noise(self, frame: np.ndarray, learn: bool = True) -> np.ndarray:
        """Give the search for row noise this raw frame and the one before it, if the scene
        held still between them (a series' first 64 such pairs; one frame of memory while
        it looks), then ``frame``, or a copy with its rows' offsets taken out when the
        search found them worth it (:mod:`stream.camera._rows`): everything after sees the
        copy; the caller's frame (stored raw) is left as it came."""
        if frame.ndim != 2:
            return frame
        if learn and (not self._rows.done or self._rows.shape != frame.shape):
            clean = finite_copy(frame)
            self._rows.add_if_still(clean, self._rows_previous)
            self._rows_previous = None if self._rows.done else clean
        if not self._rows.correcting or self._rows.shape != frame.shape:
            return frame
        return remove_row_offsets(frame)

    def _camera_for(self, frame: np.ndarray, learn: bool = True) -> CameraModel:
        if self.configured is not None:
            return self.configured
        assert self._estimator is not None
        if not learn and self._estimator.estimate is not None:
            return self._estimator.estimate.camera
        self._seen += 1
        due = self._seen <= ESTIMATE_WARMUP or self._seen % ESTIMATE_EVERY == 0
        soon_due = (-self._seen) % ESTIMATE_EVERY in (1, 2)
        fed = due or soon_due
        # NaN/Inf pixels (a field of view masked with NaN, dead pixels): the estimate
        # leaves them out, with the blocks around them
        if fed and due:
            self._estimator.update(frame, follows=self._estimator_has_previous)
        elif fed:
            self._estimator.remember(frame, follows=self._estimator_has_previous)
        self._estimator_has_previous = fed
        estimate = self._estimator.estimate
        assert estimate is not None  # a series' first frame is always due
        return estimate.camera

    def _scan_lag(
        self,
        frame: np.ndarray,
        learn: bool = True,
        new_geometry: Callable[[], None] | None = None,
    ) -> int:
        """Give the search for a scan phase this frame (a series' first frames), and the
        lag to serve it with. When one is found, ``new_geometry`` is called: the frames
        its owner kept from before (of the other geometry) are to be dropped, as at a gap."""
        if frame.ndim != 2:
            return 0
        if learn and (not self._scan.done or self._scan.shape != frame.shape):
            self._scan.add(finite_copy(frame))
            if self._scan.lag and new_geometry is not None:
                new_geometry()
        return self._scan.lag if self._scan.shape == frame.shape else 0

    def _look_for_noisy_pixels(
        self, frame: np.ndarray, camera: CameraModel, lag: int = 0, width: int = 0
    ) -> None:
        """Give the search for noisy pixels this frame and the one before it, if the scene
        held still between them (a series' first 64 such pairs; one frame of memory while
        it looks, :data:`stream.camera._noisy.SEARCH_AT`), with the camera in use (the
        noise each pixel's own level has), and the live estimate what it found (from the
        next frame on)."""
        if self._noisy.done and self._noisy.shape == frame.shape:
            return
        unread = None
        if count_non_finite(frame):
            unread = ~np.isfinite(frame)  # NaN or a mask: left out of the search
            frame = finite_copy(frame)  # NaN would poison the sums
        previous = self._noisy_previous
        if previous is None or previous.shape != frame.shape:
            self._noisy_previous = frame.astype(np.float32)
        else:
            if not scene_moved(frame, previous):
                either = self._noisy_unread
                if unread is not None:
                    either = unread if either is None else either | unread
                self._noisy.add(frame, previous, camera, unread=either)
            np.copyto(previous, frame, casting="unsafe")  # the next pair's: no allocation
        self._noisy_unread = unread
        if self._noisy.done:
            self._noisy_previous = None
        if self._estimator is not None:
            pixels, shape = self._noisy.pixels, self._noisy.shape
            if lag and pixels is not None and shape == frame.shape:
                # found in the lines moved back: where they lie in the raw frame
                pixels, shape = unaligned_pixels(pixels, lag, width), (frame.shape[0], width)
            self._estimator.leave_out(pixels, shape or frame.shape)

    def _without_noisy_pixels(self, frame: np.ndarray) -> np.ndarray:
        """``frame``, or a copy with the camera's noisy pixels filled from their neighbours
        (:mod:`stream.camera._noisy`), and its warm ones where the engine fills spikes:
        the model, the blend, the ring and the running mean all see the copy; the
        caller's frame (stored raw) is left as it came."""
        pixels = self._noisy.filled(self.fill_warm)
        if pixels is None or self._noisy.shape != frame.shape:
            return frame
        filled = np.array(frame, dtype=np.float32 if frame.dtype.kind != "f" else frame.dtype)
        fill_spikes(filled, pixels)
        return filled

    def _gain_and_read_noise(self) -> tuple[float, float] | None:
        """The camera's gain and read noise as known now (None before a frame): a live
        estimate's gain at the top of its error bar (2 standard errors). A pattern of
        columns makes the levels the estimate fits noisy and pulls its gain down (0.02
        +- 0.05 for 1 on a flat scene with columns of 3 counts), and by such a gain any
        light would read as all of what the frames share."""
        camera = self.camera
        if camera is None:
            return None
        return camera.gain + 2.0 * self.gain_stderr(), camera.read_noise
