"""The user's recording: raw frames and which of them are real.

A deepdenoise series store gives its ``raw`` frames with their ``valid`` flags (a frame
never received, or lost on the way to disk, is a hole, not a black frame); ``.npy``,
TIFF and bare Zarr arrays are taken as complete recordings. The frames stay in their
stored dtype: a minute of 512 x 512 uint16 at 30 fps is 0.9 GB, not 1.9 as float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream import ConfigError
from stream.camera import RowNoise, remove_row_offsets
from stream.engine import finite_copy, update_running_mean

from ..noise import load_noise_stack

#: A running mean leaves out the frames whose exponential weight in it would be below
#: this (the difference to the engine's mean is of that order).
MEAN_NEGLIGIBLE_WEIGHT = 1e-4
#: Row noise too weak for the service to level is still counted by the risk estimate
#: where its variance stands this many standard errors above none ...
ROWS_FOUND = 3.0
#: ... over at least this many still pairs.
MIN_ROW_PAIRS = 2


@dataclass(frozen=True)
class Recording:
    frames: np.ndarray  # (T, H, W) raw camera values, as stored
    valid: np.ndarray  # (T,) bool: the frame was received and stored
    source: str  # the path, for the model's metadata

    def windows(self, k: int) -> np.ndarray:
        """Indices t whose frames t-k+1 .. t are all valid (a temporal model's inputs)."""
        ok = self.valid.astype(np.int64)
        run = np.convolve(ok, np.ones(k, np.int64), mode="full")[: len(ok)]
        return np.flatnonzero(run == k)

    def random_patch(
        self,
        windows: np.ndarray,
        k: int,
        patch: int,
        rng: np.random.Generator,
        running_mean: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """A random ``patch`` x ``patch`` crop of the ``k`` frames ending at a random index
        of ``windows``, float32 (K, P, P), oldest first; with ``running_mean`` (a decay
        above 0), also the crop of the running mean of the frames before the last (P, P)."""
        _, h, w = self.frames.shape
        if h < patch or w < patch:
            raise ValueError(f"expected frames of at least {patch}x{patch} px, got {h}x{w}")
        t = int(rng.choice(windows))
        y, x = (int(v) for v in rng.integers(0, (h - patch + 1, w - patch + 1)))
        region = (slice(y, y + patch), slice(x, x + patch))
        frames = self.frames[t - k + 1 : t + 1, region[0], region[1]].astype(np.float32)
        mean = self.running_mean(t, running_mean, region) if running_mean > 0 else None
        return frames, mean

    def running_mean(
        self, t: int, decay: float, region: tuple[slice, slice] = (slice(None), slice(None))
    ) -> np.ndarray:
        """The engine's running mean (the model contract) of the valid frames just
        before frame ``t``, float32; frame ``t`` itself where none is (a series start).

        Frames more than ``log(MEAN_NEGLIGIBLE_WEIGHT) / log(1 - decay)`` before ``t``
        are left out (69 for decay 1/8): what they would add weighs a few 1e-4.
        """
        horizon = math.ceil(math.log(MEAN_NEGLIGIBLE_WEIGHT) / math.log1p(-decay))
        start = t
        while start > 0 and self.valid[start - 1] and t - start < horizon:
            start -= 1
        mean = self.frames[start][region].astype(np.float32)
        for i in range(start + 1, t):
            update_running_mean(mean, self.frames[i][region], decay, i - start + 1)
        return mean


def level_rows(recording: Recording) -> tuple[Recording, float, float]:
    """The recording with its rows' offsets taken out of every frame, where the service
    would take them out (:class:`stream.camera.RowNoise` on its consecutive still
    pairs, :func:`stream.camera.remove_row_offsets`); the rms taken out (counts; 0:
    none, the recording returned as it is); and the variance of row offsets left in
    the frames (counts²: found, but not levelled, as the service would not level them:
    too weak, or frames clipped at a floor or of coarse counts; 0 where none was found).

    The model is then adapted to, and judged on, what the service will give it, and the
    risk estimate counts the row noise left (:func:`._risk.estimated_mse`). Judged as
    if its pixels' noise were independent, a new user's recording with rows of 0.5 ADU
    rms had weights 1.3 dB worse than the start rated 16 % better (2026-12-07)."""
    rows = RowNoise()
    previous = None
    for frame, valid in zip(recording.frames, recording.valid, strict=True):
        if rows.done:
            break
        frame = finite_copy(frame) if valid else None
        if frame is not None:
            rows.add_if_still(frame, previous)
        previous = frame
    if not rows.correcting:
        found = rows.pairs >= MIN_ROW_PAIRS and rows.variance > ROWS_FOUND * rows.standard_error
        return recording, 0.0, rows.variance if found else 0.0
    frames = np.empty(recording.frames.shape, np.float32)
    for t in range(len(frames)):
        frames[t] = remove_row_offsets(recording.frames[t]) if recording.valid[t] else 0.0
    return Recording(frames, recording.valid, recording.source), rows.rms, 0.0


def load_recording(path: Path, max_frames: int | None = None) -> Recording:
    """A series store, ``.npy``, TIFF or Zarr array as a :class:`Recording`."""
    path = Path(path)
    from stream.store import is_series_store

    if path.suffix.lower() == ".zarr" and path.exists() and is_series_store(path):
        frames, flags = _series_frames(path, max_frames)
    else:
        frames = load_noise_stack(path, max_frames)
        flags = np.ones(len(frames), bool)
    if frames.ndim != 3 or not flags.any():
        raise ConfigError(f"{path}: expected a recording with valid frames, got none")
    return Recording(frames, flags, str(path))


def _series_frames(path: Path, max_frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A series store's rows (up to ``max_frames``) and their valid flags, read by the
    reader ``deepdenoise denoise`` uses: a damaged store (a valid frame's shard gone, a
    corrupt chunk) is a one-line StoreError, never frames of zeros to train on."""
    from stream.store import open_recording

    stored = open_recording(path)
    rows = stored.rows if max_frames is None else min(stored.rows, max_frames)
    frames = np.zeros((rows, *stored.frame_shape), stored.dtype)  # holes: flagged invalid
    valid = np.zeros(rows, bool)
    for position, index in enumerate(stored.indices.tolist()):
        if index >= rows:
            break
        frames[index] = stored.frame(position)
        valid[index] = True
        # refused as in a .npy (exporter.noise): one NaN pixel makes every loss NaN
        if frames.dtype.kind == "f" and not np.isfinite(frames[index]).all():
            raise ConfigError(f"{path}: the stack contains NaN or infinite pixels (frame {index})")
    return frames, valid
