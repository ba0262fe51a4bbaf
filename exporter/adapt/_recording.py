"""The user's recording: raw frames and which of them are real.

A deepdenoise series store gives its ``raw`` frames with their ``valid`` flags (a frame
never received, or lost on the way to disk, is a hole, not a black frame); ``.npy``,
TIFF and bare Zarr arrays are taken as complete recordings. The frames stay in their
stored dtype: a minute of 512 x 512 uint16 at 30 fps is 0.9 GB, not 1.9 as float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream import ConfigError

from ..noise import load_noise_stack


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
        self, windows: np.ndarray, k: int, patch: int, rng: np.random.Generator
    ) -> np.ndarray:
        """A random ``patch`` x ``patch`` crop of the ``k`` frames ending at a random index
        of ``windows``, float32 (K, P, P), oldest first."""
        _, h, w = self.frames.shape
        if h < patch or w < patch:
            raise ValueError(f"expected frames of at least {patch}x{patch} px, got {h}x{w}")
        t = int(rng.choice(windows))
        y, x = (int(v) for v in rng.integers(0, (h - patch + 1, w - patch + 1)))
        return self.frames[t - k + 1 : t + 1, y : y + patch, x : x + patch].astype(np.float32)


def load_recording(path: Path, max_frames: int | None = None) -> Recording:
    """A series store, ``.npy``, TIFF or Zarr array as a :class:`Recording`."""
    path = Path(path)
    from stream.store import ARRAY_PATHS, is_series_store

    if path.suffix.lower() == ".zarr" and path.exists() and is_series_store(path):
        import zarr

        group = zarr.open_group(str(path), mode="r")
        raw, valid = group[ARRAY_PATHS["raw"]], group["valid"]
        if not (isinstance(raw, zarr.Array) and isinstance(valid, zarr.Array)):
            raise ConfigError(f"{path}: expected arrays raw and valid in the series store")
        n = min(raw.shape[0], valid.shape[0], max_frames or raw.shape[0])
        frames = np.asarray(raw[:n])
        flags = np.asarray(valid[:n], dtype=bool)
    else:
        frames = load_noise_stack(path, max_frames)
        flags = np.ones(len(frames), bool)
    if frames.ndim != 3 or not flags.any():
        raise ConfigError(f"{path}: expected a recording with valid frames, got none")
    return Recording(frames, flags, str(path))
