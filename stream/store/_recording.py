"""Recordings on disk, read frame by frame and written frame by frame.

``deepdenoise denoise`` reads a recording -- a ``.npy`` stack, a TIFF stack, a Zarr
array, a Zarr group holding one array, or a deepdenoise series store (its ``raw``
frames flagged ``valid``: the holes of a dropped stream are not read as frames) -- and
writes the denoised frames as ``.npy``, TIFF or a Zarr array. Both go one frame at a
time (a memory map, Zarr chunks of one frame, TIFF pages), so a recording larger than
memory is denoised in the memory of a few frames -- except a compressed TIFF, which is
read whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError
from ._layout import PATHS
from ._summary import is_series_store

#: What a recording may be read from and written to.
SUFFIXES = (".npy", ".tif", ".tiff", ".zarr")


@dataclass(frozen=True)
class Recording:
    """A stack of frames ``(T, H, W)`` and each frame's index in its series.

    ``frames`` is array-like (a memory map, a Zarr array, an array); index it one frame
    at a time. ``indices``: ``0 .. T-1``, or a stored series' own indices, whose gaps
    tell a temporal model's ring where frames are missing.
    """

    frames: Any
    indices: np.ndarray
    source: str
    #: One image (H, W) was given, not a stack: its output is one image too.
    single: bool = False
    #: A series store's frames: ``indices`` are the rows of the series' time axis, and
    #: an output keeps that axis (a dropped frame stays a hole, never a shift).
    timeline: bool = False

    @property
    def rows(self) -> int:
        """Rows of the output: the series' time axis up to its last frame, else one per frame."""
        return int(self.indices[-1]) + 1 if self.timeline else len(self.indices)

    def missing(self) -> np.ndarray:
        """Indices on the time axis with no frame (a series store's dropped frames)."""
        if not self.timeline:
            return np.empty(0, dtype=np.int64)
        return np.setdiff1d(np.arange(self.rows, dtype=np.int64), self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.frames.shape[-2]), int(self.frames.shape[-1])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.frames.dtype)

    def frame(self, position: int) -> np.ndarray:
        """The ``position``-th frame of the stack (not of the series), as an array."""
        return np.asarray(self.frames[position])


def open_recording(path: Path) -> Recording:
    """The recording at ``path``; a ConfigError saying what was expected otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"expected a recording as {', '.join(SUFFIXES)}, got {path.name!r}")
    if not path.exists():
        raise ConfigError(f"recording {path} does not exist")
    indices = None  # set for a series store: its frames' own indices
    if suffix == ".npy":
        frames: Any = _npy_frames(path)
    elif suffix in (".tif", ".tiff"):
        frames = _tiff_frames(path)
    else:
        frames, indices = _zarr_frames(path)
    if frames.ndim in (3, 4) and frames.shape[-1] == 1:
        # (T, H, W, 1) or one image (H, W, 1), as imaging libraries save grey: one channel
        frames = frames[..., 0]  # a view of a memory map; a Zarr array reads it
    elif frames.ndim == 3 and frames.shape[-1] in (3, 4) and min(frames.shape[:2]) > 8:
        raise ConfigError(
            f"{path}: expected frames (T, H, W) or one image (H, W), got shape "
            f"{tuple(frames.shape)}, which looks like one colour image (H, W, "
            f"{frames.shape[-1]}); give one channel of it, or a stack of frames"
        )
    if frames.ndim > 3 and sum(n != 1 for n in frames.shape[:-2]) <= 1:
        # singleton axes, as in a TIFF (T, 1, H, W) or an OME (T, C, Z, Y, X) of one channel
        flat = (-1, *frames.shape[-2:])
        frames = (
            frames.reshape(flat)
            if isinstance(frames, np.ndarray)
            else np.asarray(frames[...]).reshape(flat)
        )
    single = frames.ndim == 2
    if single:
        frames = np.asarray(frames[...])[None]
    if frames.ndim != 3 or min(frames.shape[1:]) < 1:
        more = (
            ": save the channel or z-plane to denoise as its own (T, H, W) stack, e.g. "
            "stack[:, 0] of a (T, C, H, W) one"
            if frames.ndim > 3
            else ""
        )
        raise ConfigError(
            f"{path}: expected frames (T, H, W) or one image (H, W), got shape "
            f"{tuple(frames.shape)}{more}"
        )
    if np.dtype(frames.dtype).kind not in "uif":
        raise ConfigError(f"{path}: expected integer or float pixels, got {frames.dtype}")
    timeline = indices is not None
    if indices is None:
        indices = np.arange(frames.shape[0], dtype=np.int64)
    if len(indices) == 0:
        raise ConfigError(f"{path}: holds no frame")
    return Recording(frames, indices, str(path), single, timeline)


def _npy_frames(path: Path) -> Any:
    """A ``.npy`` array, memory-mapped; a ConfigError for a file that is not one."""
    with path.open("rb") as file:
        magic = file.read(6)
    if magic[:2] != b"PK" and magic != b"\x93NUMPY":  # else numpy guesses a pickle
        raise ConfigError(f"{path}: expected a .npy array, got a file that is not one ({magic!r})")
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # truncated, objects
        why = str(exc) or type(exc).__name__
        raise ConfigError(f"cannot read {path} as a .npy array: {why}") from None
    if not isinstance(frames, np.ndarray):  # an .npz archive under a .npy name
        raise ConfigError(f"{path}: expected one .npy array, got a .npz archive of several")
    return frames


def _tiff_frames(path: Path) -> Any:
    """A TIFF stack, memory-mapped where its pages are uncompressed and contiguous (as
    most acquisition software writes them), else read whole. Pages written one at a time
    without a stack's description read as one series each: they are the frames."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series
            if len(series) > 1:
                kinds = {(tuple(s.shape), np.dtype(s.dtype).str) for s in series}
                if len(kinds) > 1:
                    raise ConfigError(
                        f"{path}: expected one stack of frames, got {len(series)} series of "
                        f"different shapes or types: {sorted(kinds)[:4]}"
                    )
                return np.stack([s.asarray() for s in series])
        try:
            return tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or scattered pages
            return tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read {path} as a TIFF stack: {exc}") from exc


def _zarr_frames(path: Path) -> tuple[Any, np.ndarray | None]:
    """A Zarr array's frames, or a series store's valid raw frames and their indices."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises its own types for a folder that holds no Zarr
        raise ConfigError(f"cannot read {path} as a Zarr array or group: {exc}") from exc
    if isinstance(node, zarr.Array):
        return node, None
    if is_series_store(path):
        raw = _member_array(node, PATHS["raw"], path)
        valid = np.asarray(_member_array(node, "valid", path)[...], dtype=bool)
        indices = np.flatnonzero(valid[: raw.shape[0]]).astype(np.int64)
        return _Rows(raw, indices), indices
    arrays = [name for name, _ in node.arrays()]
    if len(arrays) != 1:
        raise ConfigError(
            f"{path}: expected a Zarr array, a deepdenoise series store or a group with one "
            f"array, got a group with arrays {arrays}"
        )
    return _member_array(node, arrays[0], path), None


def _member_array(group: Any, name: str, path: Path) -> Any:
    import zarr

    member = group[name]
    if not isinstance(member, zarr.Array):
        raise ConfigError(f"{path}: expected {name!r} to be a Zarr array, got a group")
    return member


class _Rows:
    """Some rows of an array-like, read one at a time: a stored series' valid frames."""

    def __init__(self, array: Any, rows: np.ndarray) -> None:
        self._array, self._rows = array, rows
        self.shape = (len(rows), *array.shape[1:])
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, position: int) -> np.ndarray:
        return np.asarray(self._array[int(self._rows[position])])


class RecordingWriter:
    """Writes ``count`` frames of ``frame_shape`` and ``dtype`` to ``path`` (``.npy``,
    TIFF or a Zarr array, chunked a frame at a time), one frame after another; the file
    is complete once :meth:`close` returns (a context manager closes it). ``single``:
    one image (H, W), as it was given, not a stack of one."""

    def __init__(
        self,
        path: Path,
        count: int,
        frame_shape: tuple[int, int],
        dtype: np.dtype[Any],
        single: bool = False,
    ) -> None:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            raise ConfigError(f"expected an output as {', '.join(SUFFIXES)}, got {path.name!r}")
        self.path, self._written = path, 0
        self._single = single and count == 1
        shape = frame_shape if self._single else (count, *frame_shape)
        self._tiff: Any = None
        self._array: Any = None
        if suffix == ".npy":
            self._array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            size = count * np.dtype(dtype).itemsize * frame_shape[0] * frame_shape[1]
            self._tiff = tifffile.TiffWriter(path, bigtiff=size > 2**32 - 2**25)  # headroom
        else:
            import zarr

            chunks = frame_shape if self._single else (1, *frame_shape)
            self._array = zarr.create_array(
                str(path), shape=shape, chunks=chunks, dtype=dtype, overwrite=True
            )

    def write(self, frame: np.ndarray) -> None:
        if self._tiff is not None:
            self._tiff.write(frame, contiguous=True)
        elif self._single:
            self._array[...] = frame
        else:
            self._array[self._written] = frame
        self._written += 1

    def close(self) -> None:
        if self._tiff is not None:
            self._tiff.close()
            self._tiff = None
        elif isinstance(self._array, np.memmap):
            self._array.flush()
        self._array = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
