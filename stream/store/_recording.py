"""Recordings on disk, read frame by frame and written frame by frame.

``deepdenoise denoise`` reads a recording -- a ``.npy`` stack, a TIFF stack, a Zarr
array, a Zarr group holding one array, or a deepdenoise series store (its ``raw``
frames flagged ``valid``: the holes of a dropped stream are not read as frames) -- and
writes the denoised frames as ``.npy``, TIFF or a Zarr array. Both go one frame at a
time (a memory map, Zarr chunks of one frame, TIFF pages), so a recording larger than
memory is denoised in the memory of a few frames -- except a compressed TIFF, which is
read whole.

A damaged store (a missing array, corrupt metadata or chunks, a valid frame's shard
gone) is a StoreError naming it, never a traceback or a frame of zeros. The writer
writes beside its output and moves the result into place only once complete, so a
failed run leaves nothing, and whatever was at the path stays as it was.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, DeepDenoiseError, StoreError
from ._layout import PATHS
from ._lock import process_alive
from ._summary import (
    MISSING_SHOWN,
    closed_totals,
    flags_lost,
    is_series_store,
    lost_pixels_text,
    missing_shards,
)

log = logging.getLogger(__name__)

#: What a recording may be read from and written to.
SUFFIXES = (".npy", ".tif", ".tiff", ".zarr")
#: What zarr and its codecs raise for a damaged store: a missing member (KeyError),
#: corrupt JSON or a checksum (ValueError), a chunk blosc cannot decode (RuntimeError),
#: an unreadable file (OSError).
_DAMAGE = (KeyError, ValueError, RuntimeError, OSError)


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
    #: A series store not closed: still being written, or left so by a killed service
    #: (its frames so far, a snapshot).
    unclosed: bool = False
    #: What a TIFF names the axis stacked as frames where it is not time ("channels",
    #: "z-planes"): denoised as one series in time all the same.
    planes: str = ""

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
        with _reading(self.source, f"frame {int(self.indices[position])}"):
            return np.asarray(self.frames[position])


@contextmanager
def _reading(source: str | Path, what: str) -> Iterator[None]:
    """A damaged store's zarr, codec and JSON errors as one StoreError naming it."""
    try:
        yield
    except DeepDenoiseError:
        raise
    except _DAMAGE as exc:
        why = " ".join(str(exc).split()) or "no detail"  # one line
        raise StoreError(
            f"{source}: cannot read {what}, the store is damaged ({type(exc).__name__}: {why})"
        ) from exc


def open_recording(path: Path) -> Recording:
    """The recording at ``path``; a ConfigError saying what was expected otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"expected a recording as {', '.join(SUFFIXES)}, got {path.name!r}")
    if not path.exists():
        raise ConfigError(f"recording {path} does not exist")
    indices = None  # set for a series store: its frames' own indices
    channel_last = False  # a TIFF whose last axis is samples, not x
    planes = ""  # what a TIFF names its stacked axis, where not time
    if suffix == ".npy":
        frames: Any = _npy_frames(path)
    elif suffix in (".tif", ".tiff"):
        frames, axes = _tiff_frames(path)
        channel_last = not axes.endswith("X")
        planes = {"C": "channels", "Z": "z-planes", "S": "samples"}.get(axes[:1], "")
    else:
        with _reading(path, "its arrays"):
            frames, indices = _zarr_frames(path)
    named_x_last = suffix in (".tif", ".tiff") and not channel_last
    if frames.ndim in (3, 4) and frames.shape[-1] == 1 and not (frames.ndim == 3 and named_x_last):
        # (T, H, W, 1) or one image (H, W, 1), as imaging libraries save grey: one channel
        # (frames one pixel wide could not be denoised anyway); only a TIFF whose axes
        # name the last one x is (T, H, 1)
        with _reading(path, "its frames"):
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
        with _reading(path, "its frames"):
            frames = (
                frames.reshape(flat)
                if isinstance(frames, np.ndarray)
                else np.asarray(frames[...]).reshape(flat)
            )
    single = frames.ndim == 2
    if single:
        with _reading(path, "its frame"):
            frames = np.asarray(frames[...])[None]
    if frames.ndim != 3 or min(frames.shape[1:]) < 1:
        more = ""
        if frames.ndim == 4 and frames.shape[-1] in (3, 4):  # colour last: (T, H, W, 3)
            more = (
                ": it looks like colour frames (T, H, W, C); save the channel to denoise "
                "as its own (T, H, W) stack, e.g. stack[..., 0]"
            )
        elif frames.ndim > 3:
            more = (
                ": save the channel or z-plane to denoise as its own (T, H, W) stack, e.g. "
                "stack[:, 0] of a (T, C, H, W) one"
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
    unclosed = timeline and closed_totals(path) is None
    return Recording(frames, indices, str(path), single, timeline, unclosed, planes)


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


def _tiff_frames(path: Path) -> tuple[Any, str]:
    """A TIFF stack, memory-mapped where its pages are uncompressed and contiguous (as
    most acquisition software writes them), else read whole. Pages written one at a time
    without a stack's description read as one series each: they are the frames.

    Also the axes tifffile names (its first series'): where the last is not the
    image's x axis (samples, or a singleton it names ``Q``), a last axis of 1 is a
    channel, not frames 1 pixel wide.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series
            if not series:  # a TIFF header and nothing readable after it
                raise ConfigError(
                    f"cannot read {path} as a TIFF stack: expected image pages, got none "
                    "that can be read (a damaged or truncated file?)"
                )
            axes = str(series[0].axes)
            if len(series) > 1:
                kinds = {(tuple(s.shape), np.dtype(s.dtype).str) for s in series}
                if len(kinds) > 1:
                    raise ConfigError(
                        f"{path}: expected one stack of frames, got {len(series)} series of "
                        f"different shapes or types: {sorted(kinds)[:4]}"
                    )
                return np.stack([s.asarray() for s in series]), "Q" + axes
        try:
            return tifffile.memmap(path, mode="r"), axes
        except ValueError:  # compressed or scattered pages
            return tifffile.imread(path), axes
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
        if isinstance(exc, ConfigError):
            raise
        why = " ".join(str(exc).split()) or type(exc).__name__  # tifffile: one line
        raise ConfigError(f"cannot read {path} as a TIFF stack: {why}") from exc


def _zarr_frames(path: Path) -> tuple[Any, np.ndarray | None]:
    """A Zarr array's frames, or a series store's valid raw frames and their indices."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except _DAMAGE as exc:  # zarr's own types for a folder that holds no Zarr
        raise ConfigError(f"cannot read {path} as a Zarr array or group: {exc}") from exc
    if isinstance(node, zarr.Array):
        return node, None
    if is_series_store(path):
        raw = _member_array(node, PATHS["raw"], path)
        indices = _valid_indices(_member_array(node, "valid", path), path, raw.shape[0])
        _check_shards_on_disk(path, raw, indices)
        info = node.attrs.get("deepdenoise")
        lost = flags_lost(info, int(indices.size)) if isinstance(info, dict) else None
        if lost:
            raise StoreError(f"{path}: the store is damaged: {lost}")
        return _Rows(raw, indices), indices
    arrays = [name for name, _ in node.arrays()]
    if len(arrays) != 1:
        raise ConfigError(
            f"{path}: expected a Zarr array, a deepdenoise series store or a group with one "
            f"array, got a group with arrays {arrays}"
        )
    return _member_array(node, arrays[0], path), None


def _valid_indices(valid: Any, path: Path, length: int) -> np.ndarray:
    """The indices flagged valid, read from the flags' stored chunks only: a series whose
    index jumped (to 2**40 - 1, say) has a time axis too long to read whole (1 TiB)."""
    chunk = int(valid.metadata.chunk_grid.chunk_shape[0])
    folder = path / "valid" / "c"
    stored = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    hits = [
        np.flatnonzero(np.asarray(valid[i * chunk : (i + 1) * chunk], dtype=bool)) + i * chunk
        for i in stored
    ]
    indices = np.concatenate(hits) if hits else np.empty(0, np.int64)
    return indices[indices < length].astype(np.int64)


def _member_array(group: Any, name: str, path: Path) -> Any:
    import zarr

    try:
        member = group[name]
    except KeyError:
        raise StoreError(f"{path}: its {name!r} array is missing, the store is damaged") from None
    if not isinstance(member, zarr.Array):
        raise ConfigError(f"{path}: expected {name!r} to be a Zarr array, got a group")
    return member


def _check_shards_on_disk(path: Path, raw: Any, indices: np.ndarray) -> None:
    """Refuse valid frames whose shard file is gone (:func:`missing_shards`): zarr would
    read them as the fill value (zeros), silently."""
    k = int(raw.metadata.chunk_grid.chunk_shape[0])
    gone = missing_shards(path, raw, PATHS["raw"], np.unique(indices // k).tolist())
    if gone:
        lost = indices[np.isin(indices // k, list(gone))]
        text = lost_pixels_text(int(lost.size), lost[:MISSING_SHOWN].tolist(), gone)
        raise StoreError(f"{path}: the store is damaged: {text}")


class _Rows:
    """Some rows of an array-like, read one at a time: a stored series' valid frames."""

    def __init__(self, array: Any, rows: np.ndarray) -> None:
        self._array, self._rows = array, rows
        self.shape = (len(rows), *array.shape[1:])
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, position: int) -> np.ndarray:
        return np.asarray(self._array[int(self._rows[position])])


def _check_output_format(path: Path) -> None:
    """A ConfigError unless ``path`` names a format :class:`RecordingWriter` writes."""
    if Path(path).suffix.lower() not in SUFFIXES:
        raise ConfigError(f"expected an output as {', '.join(SUFFIXES)}, got {Path(path).name!r}")


def _check_replaceable(path: Path, replace: bool) -> None:
    """A ConfigError if writing ``path`` would destroy something unasked: anything there
    without ``replace``, and, even with it, a folder that is not a Zarr array (a series
    store, a folder of them: more than one output's worth of data)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not replace:
        raise ConfigError(
            f"the output {path} already exists: expected a new path, or --force to replace it"
        )
    if path.is_dir() and not _is_zarr_array(path):
        raise ConfigError(
            f"the output {path} is a folder that is not a Zarr array (a store or a folder of "
            "them): not replaced, even with --force; expected a new path"
        )


def _is_zarr_array(path: Path) -> bool:
    import json

    try:
        meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("node_type") == "array"


#: In a partial output's folder: the host and process writing it.
_OWNER = "owner"


def _claim_partial_folder(path: Path) -> Path:
    """A new hidden folder beside ``path`` for the frames, marked with this process.

    A run killed outright (SIGKILL, a power cut) cannot discard its partial output, which
    may be as large as the recording: such folders for ``path``, left by a process of this
    host that is gone, are cleared first. An earlier output moved aside there to be
    replaced (the run died between the two renames) is put back, never deleted.
    """
    host = socket.gethostname()
    for folder in path.parent.glob(f".{glob.escape(path.name)}.*"):
        owner = (folder / _OWNER).read_text().split() if (folder / _OWNER).is_file() else []
        if len(owner) != 2 or owner[0] != host or process_alive(int(owner[1])):
            continue  # another host's, a live run's, or not ours at all
        replaced = folder / "replaced"
        if (replaced.exists() or replaced.is_symlink()) and not (
            path.exists() or path.is_symlink()
        ):
            os.replace(replaced, path)
            log.warning("put back %s, moved aside by a run that was killed", path)
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed %s, the partial output of a run that was killed", folder)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    (folder / _OWNER).write_text(f"{host} {os.getpid()}\n")
    return folder


class RecordingWriter:
    """Writes ``count`` frames of ``frame_shape`` and ``dtype`` to ``path`` (``.npy``,
    TIFF or a Zarr array, chunked a frame at a time), one frame after another. ``single``:
    one image (H, W), as it was given, not a stack of one.

    The frames go to a hidden folder beside ``path`` and are moved to ``path`` by
    :meth:`close` (a context manager closes it when its block ends without an error):
    a failed or interrupted run leaves no half-written output, and what was at ``path``
    stays until the new output replaces it. ``replace``: what is at ``path`` may be
    replaced (see :meth:`check_path`); otherwise an existing ``path`` is refused.
    """

    def __init__(
        self,
        path: Path,
        count: int,
        frame_shape: tuple[int, int],
        dtype: np.dtype[Any],
        single: bool = False,
        replace: bool = False,
    ) -> None:
        path = Path(path)
        self.check_path(path, replace)
        self.path, self._replace, self._written = path, replace, 0
        self._single = single and count == 1
        # a stack of one frame: written so, as tifffile reads a lone page as one image
        self._stack_of_one = count == 1 and not self._single
        shape = frame_shape if self._single else (count, *frame_shape)
        self._folder = _claim_partial_folder(path)
        self._tiff: Any = None
        self._array: Any = None
        try:
            self._open(self._folder / path.name, shape, dtype)
        except BaseException:
            self.discard()
            raise

    @staticmethod
    def check_path(path: Path, replace: bool = False) -> None:
        """A ConfigError if ``path`` is no output format, or writing it would destroy
        data unasked: anything there without ``replace``; even with it, a folder that is
        not a Zarr array. Cheap: call it before the work that produces the frames."""
        _check_output_format(path)
        _check_replaceable(path, replace)

    def _open(self, partial: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        suffix = partial.suffix.lower()
        if suffix == ".npy":
            self._array = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self._tiff = tifffile.TiffWriter(partial, bigtiff=size > 2**32 - 2**25)  # headroom
        else:
            import zarr

            chunks = shape if self._single else (1, *shape[1:])
            self._array = zarr.create_array(str(partial), shape=shape, chunks=chunks, dtype=dtype)

    def write(self, frame: np.ndarray) -> None:
        if self._tiff is not None and self._stack_of_one:
            self._tiff.write(frame[np.newaxis], metadata={"axes": "TYX"})
        elif self._tiff is not None:
            self._tiff.write(frame, contiguous=True)
        elif self._single:
            self._array[...] = frame
        else:
            self._array[self._written] = frame
        self._written += 1

    def close(self) -> None:
        """Complete the output and move it to :attr:`path` (replacing what was there)."""
        if not self._folder.exists():
            return  # closed or discarded already
        try:
            self._finish_file()
            self._move_into_place()
        except BaseException:
            self.discard()
            raise
        shutil.rmtree(self._folder, ignore_errors=True)

    def discard(self) -> None:
        """Drop the frames written; :attr:`path` is left as it was."""
        with suppress(OSError, ValueError):  # its file is removed next either way
            self._finish_file()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _finish_file(self) -> None:
        tiff, array = self._tiff, self._array
        self._tiff = self._array = None  # the memory map closes with its last reference
        if tiff is not None:
            tiff.close()
        elif isinstance(array, np.memmap):
            array.flush()

    def _move_into_place(self) -> None:
        """Rename the new output over :attr:`path`; an old one is moved aside first (a
        folder cannot be renamed over) and put back if the new one cannot go in."""
        _check_replaceable(self.path, self._replace)  # made while we wrote?
        old = self._folder / "replaced"
        if self.path.exists() or self.path.is_symlink():
            os.replace(self.path, old)
        try:
            os.replace(self._folder / self.path.name, self.path)
        except OSError:
            if old.exists() or old.is_symlink():
                os.replace(old, self.path)
            raise

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
