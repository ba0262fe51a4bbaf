"""The raw pixels of frames the service rejected but could read, kept apart.

A frame whose pixels contradict its series cannot go into the series' store: another
shape or dtype (``series_mismatch``: a binning or region of interest changed under the
same name) or an index already taken (``duplicate``: a second source, or a restarted
one counting from 0). It is still data someone may need, so its pixels go to a store
of their own, ``<zarr dir>/rejected/<series>.zarr`` (Zarr v3, written with
zarr-python; rejected frames are rare, so each block is small and simple)::

    <series>.zarr/                  attrs deepdenoise: {rejected_version, series}
      <reason>/<type>_<H>x<W>/      attrs frames: the rows written whole
        frames     (N, H, W) the frame's dtype, one chunk per frame
        index      (N,) int64  the index the frame was sent with
        t_ns       (N,) int64  its acquisition timestamp (0: none)
        t_recv_ns  (N,) int64  when the service received it (ns since the epoch)
        frame_meta.msgpack     the rows' ``meta``: records as a series store's, by row

Rows are in arrival order. A block's rows (and their meta) are written before the
``frames`` attribute counts them, so rows past it (a process killed mid-write) are
ignored, and overwritten by the next rows when the store is opened again: once a block
has a meta file, every row gets a record (an empty map for a frame that carried none),
so a later row's record replaces a lost row's. Like a series store, the folder is
locked while a writer has it open: a second writer would write over its rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import StoreError, StoreWriteError
from ._frame_meta import FrameMetaLog, read_frame_meta
from ._layout import store_folder
from ._lock import lock_store, unlock_store
from ._summary import written_by_us

log = logging.getLogger(__name__)

REJECTED_VERSION = 1
#: Per-row arrays beside ``frames``, all int64.
ROW_FIELDS = ("index", "t_ns", "t_recv_ns")
_ROW_CHUNK = 4096


def rejected_path(root: Path, series: str) -> Path:
    """Where the rejected frames of ``series`` are kept under the store folder ``root``."""
    return store_folder(root) / "rejected" / f"{series}.zarr"


def layout_name(dtype: np.dtype[Any], shape: tuple[int, int]) -> str:
    """The group of one frame layout, e.g. ``uint16_512x512``."""
    return f"{np.dtype(dtype).name}_{shape[0]}x{shape[1]}"


@dataclass
class _Block:
    """Rejected frames of one reason and layout waiting to be written."""

    frames: list[np.ndarray] = field(default_factory=list)
    rows: list[tuple[int, int, int]] = field(default_factory=list)
    metas: list[Mapping[str, Any] | None] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(frame.nbytes for frame in self.frames)


class RejectedStore:
    """Appends one series' rejected frames, buffered, to its side store.

    Nothing touches the disk until :meth:`flush`; a block that cannot be written
    raises :class:`StoreWriteError` with ``lost={"rejected": rows}`` and is given up,
    so later blocks are tried afresh (writing resumes when space comes back, or when
    another writer holding the store's lock lets it go). :meth:`close` releases the lock.
    """

    def __init__(self, root: Path, series: str) -> None:
        self.path = rejected_path(root, series)
        self.series = series
        self.written = 0  # rows written whole by this object
        self._blocks: dict[tuple[str, str], _Block] = {}
        self._meta_logs: dict[tuple[str, str], FrameMetaLog] = {}
        self._writing = 0  # rows taken from the blocks by a flush, not written or lost yet
        self._group: Any = None
        self._lock: int | None = None

    @property
    def buffered_bytes(self) -> int:
        return sum(block.nbytes for block in self._blocks.values())

    @property
    def buffered_rows(self) -> int:
        """Rejected frames added and not written yet (those being written included)."""
        return sum(len(block.rows) for block in list(self._blocks.values())) + self._writing

    def add(
        self,
        reason: str,
        index: int,
        pixels: np.ndarray,
        t_ns: int | None,
        t_recv_ns: int,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        shape = (int(pixels.shape[0]), int(pixels.shape[1]))
        block = self._blocks.setdefault((reason, layout_name(pixels.dtype, shape)), _Block())
        block.frames.append(pixels)
        block.rows.append((index, t_ns or 0, t_recv_ns))
        block.metas.append(meta)

    def take_frame_meta_lost(self) -> tuple[int, str | None]:
        """Rows whose ``meta`` could not be written since last asked, and why."""
        lost, why = 0, None
        for meta_log in self._meta_logs.values():
            count, error = meta_log.take_lost()
            lost, why = lost + count, error if count else why
        return lost, why

    def flush(self) -> None:
        """Write every buffered block; the first failure is raised after all were tried.
        A store removed since it was opened is made again, its rows counted lost."""
        removed = self._forget_if_removed()
        blocks, self._blocks = self._blocks, {}
        lost, errors = removed, []
        if removed:
            errors.append(
                f"{self.path} was removed or moved while it was written: the {removed} "
                "rejected frame(s) kept there are not there; it is made again"
            )
        self._writing = sum(len(block.rows) for block in blocks.values())
        for (reason, layout), block in blocks.items():
            try:
                self._append(reason, layout, block)
            except (OSError, ValueError, TypeError, LookupError, StoreError) as exc:
                lost += len(block.rows)
                errors.append(f"{reason}/{layout}: {exc}")
            else:
                self.written += len(block.rows)
            finally:
                self._writing -= len(block.rows)
        if errors:
            raise StoreWriteError(
                f"{lost} rejected frame(s) of {self.series!r} not written to {self.path}: "
                + "; ".join(errors),
                lost={"rejected": lost},
                kind="store_removed" if removed else "store_rejected",
            )

    def _forget_if_removed(self) -> int:
        """The rows written that are gone with the store (0 when it is there): the next
        write makes it again, with its attributes (they were written at its first open,
        so a folder made again by tensorstore alone had none, and no reader took it)."""
        if self._group is None or (self.path / "zarr.json").is_file():
            return 0
        gone, self.written = self.written, 0
        self._group = None
        self._meta_logs.clear()  # their files are gone with it
        unlock_store(self._lock)  # the lock of the folder that is gone
        self._lock = None
        return gone

    def _append(self, reason: str, layout: str, block: _Block) -> None:
        group = self._open().require_group(reason).require_group(layout)
        stack = np.stack(block.frames)
        rows = np.asarray(block.rows, dtype=np.int64)
        start = _rows(group)
        stop = start + len(stack)
        arrays = {"frames": stack, **{name: rows[:, i] for i, name in enumerate(ROW_FIELDS)}}
        for name, values in arrays.items():
            array = self._array(group, name, values)
            array.resize((stop, *values.shape[1:]))  # rows past the count: a crash's rest
            array[start:stop] = values
        self._append_meta(reason, layout, start, block)
        group.attrs["frames"] = stop  # last: the rows are whole on disk

    def _append_meta(self, reason: str, layout: str, start: int, block: _Block) -> None:
        """The rows' meta, in the block's meta file (made by the first that has one)."""
        meta_log = self._meta_logs.get((reason, layout))
        if meta_log is None:
            meta_log = FrameMetaLog(self.path / reason / layout, fsync=False)
            self._meta_logs[reason, layout] = meta_log
        every_row = meta_log.path.exists()  # a record of a row past the count may be there
        for row, ((_, t_ns, _), meta) in enumerate(
            zip(block.rows, block.metas, strict=True), start
        ):
            if meta is not None or every_row:  # an empty record's loss is no meta lost,
                # though a crash's record of that row may then stand for it (rare: a kill
                # and a failed append at one row)
                meta_log.append(row, t_ns or None, meta or {}, counted=meta is not None)
        meta_log.flush()

    @staticmethod
    def _array(group: Any, name: str, values: np.ndarray) -> Any:
        if name in group:
            return group[name]
        chunks = (1, *values.shape[1:]) if values.ndim == 3 else (_ROW_CHUNK,)
        return group.create_array(
            name,
            shape=(0, *values.shape[1:]),
            chunks=chunks,
            dtype=values.dtype,
            fill_value=0,
            dimension_names=("t", "y", "x") if values.ndim == 3 else ("t",),
        )

    def close(self) -> None:
        """Release the store's lock (buffered blocks not flushed are dropped)."""
        self._blocks.clear()
        self._meta_logs.clear()
        self._group = None
        unlock_store(self._lock)
        self._lock = None

    def _open(self) -> Any:
        if self._group is None:
            import zarr

            if self._lock is None:
                self.path.mkdir(parents=True, exist_ok=True)
                self._lock = lock_store(self.path)  # before anything is read or written
            group = zarr.open_group(self.path, mode="a", zarr_format=3)
            if "deepdenoise" not in group.attrs:
                group.attrs["deepdenoise"] = {
                    "rejected_version": REJECTED_VERSION,
                    "series": self.series,
                }
            self._group = group
        return self._group


def is_rejected_store(path: Path) -> bool:
    """True if ``path`` is a store of rejected frames written by :class:`RejectedStore`."""
    return written_by_us(path, "rejected_version")


def _rows(group: Any) -> int:
    """The rows of a block written whole (its ``frames`` attribute)."""
    count = group.attrs.get("frames", 0)
    return count if isinstance(count, int) else 0


@dataclass(frozen=True)
class RejectedFrames:
    """The rejected frames of one reason and layout, as stored."""

    reason: str
    frames: np.ndarray  # (N, H, W)
    index: np.ndarray
    t_ns: np.ndarray
    t_recv_ns: np.ndarray
    meta: list[dict[str, Any]]  # each row's, an empty map where its frame carried none


def read_rejected(path: str | Path) -> list[RejectedFrames]:
    """Every block of a rejected-frames store (rows written whole only), by reason."""
    out = []
    for reason, layout, block in _blocks(path):
        n = _rows(block)
        rows = {name: np.asarray(block[name][:n]) for name in ("frames", *ROW_FIELDS)}
        metas = _read_meta(Path(path) / reason / layout)
        out.append(RejectedFrames(reason, **rows, meta=[metas.get(row, {}) for row in range(n)]))
    return out


def _read_meta(block: Path) -> dict[int, dict[str, Any]]:
    """A block's meta by row; none from a meta file that cannot be read (its pixels
    are read all the same)."""
    try:
        return read_frame_meta(block)
    except OSError as exc:
        log.warning("%s: the rows' meta cannot be read: %s", block, exc)
        return {}


def summarize_rejected(path: str | Path) -> dict[str, int]:
    """Rows written whole by ``reason/layout`` (metadata only)."""
    return {f"{reason}/{layout}": _rows(block) for reason, layout, block in _blocks(path)}


def rejected_with_meta(path: str | Path) -> dict[str, int]:
    """Rows written whole whose frame carried ``meta``, by ``reason/layout``."""
    counts = {}
    for reason, layout, block in _blocks(path):
        rows = _rows(block)
        metas = _read_meta(Path(path) / reason / layout)
        counts[f"{reason}/{layout}"] = sum(1 for row, meta in metas.items() if row < rows and meta)
    return counts


def _blocks(path: str | Path) -> list[tuple[str, str, Any]]:
    """(reason, layout, group) of every block in the store, sorted."""
    import zarr

    try:
        group: Any = zarr.open_group(path, mode="r", zarr_format=3)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read rejected frames at {path}: {exc}") from exc
    blocks = [
        (reason, layout, block)
        for reason, by_reason in group.groups()
        for layout, block in by_reason.groups()
    ]
    return sorted(blocks, key=lambda item: item[:2])
