"""The Zarr v3 store of one acquisition series: ``<root>/<series>.zarr``.

Layout: see :mod:`stream.store._layout` (an OME-Zarr 0.5 container with the images
``raw`` and ``clean``, plus ``t_ns``, ``valid`` and ``clean_valid``). Arrays are
written with tensorstore and read with plain zarr-python.

The time position is the frame's ``index``: a resent frame lands in the same slot
(idempotent) and a dropped frame is a visible hole (``valid`` False, ``clean`` NaN),
never a shift. ``clean_valid`` lets ``info`` count denoised frames without reading
every clean pixel.

Why the buffering: one-frame chunks keep single-frame reads cheap, but changing one
frame of a shard rewrites the whole shard. Frames are therefore collected per shard
("block") and a block is written whole once it is complete, once the stream is two
blocks past it, or on :meth:`SeriesStore.flush`; a block of which part is already on
disk is merged into it (read-modify-write). Block writes run in tensorstore's threads
while the next frames arrive; at most ``IN_FLIGHT`` batches are outstanding. The time
axis grows in steps of whole shards and is trimmed to ``max_index + 1`` on close.

Durability: every file is replaced atomically (written to a temporary file, then
renamed), and a block's pixels are on disk before its ``t_ns``, before its
``valid``/``clean_valid`` flags are written. A process killed at any moment leaves a
readable store in which every flagged frame has its pixels; the frames it still
buffered are lost (the service flushes every ``flush_interval_s``). Files are fsynced
only with ``StoreConfig.fsync``: by default this survives the death of the process,
not a power cut.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from .._errors import StoreError, StoreUnlockableError, StoreWriteError
from .._types import SERIES_RULE, is_series_name
from ._arrays import Block, FlagWrite, StoreArrays, create_arrays
from ._close_reserve import CloseReserve
from ._config import MAX_FRAMES_PER_SHARD, StoreConfig
from ._frame_meta import FrameMetaLog
from ._layout import (
    F4,
    IMAGES,
    STORE_VERSION,
    image_attrs,
    ome_xml,
    root_ome_attrs,
    series_group_attrs,
    store_folder,
)
from ._lock import lock_store, process_alive, unlock_store
from ._summary import RESERVED_KEYS, FlagScan, is_series_store, read_group_attrs
from ._traces import TraceArray, existing_trace_arrays, layout_key, trace_array_name

log = logging.getLogger(__name__)

TARGET_SHARD_BYTES = 16 * 1024 * 1024
#: Highest frame index + 1: far beyond any acquisition (the protocol rejects more).
MAX_INDEX = 2**40
#: Batches of block writes in flight before the oldest is waited for.
IN_FLIGHT = 4
#: Longest wait between writing a block's pixels and its flags (flush and close: none).
FLAGS_INTERVAL_S = 0.2
#: Block buffers kept for reuse per kind (fresh ones cost page faults).
SPARE_BUFFERS = 2
#: Errors tensorstore and the file system raise for a failed write.
IO_ERRORS = (OSError, ValueError, RuntimeError)
#: The OME-XML beside the images (the bioformats2raw layout), inside a store.
OME_XML = Path("OME") / "METADATA.ome.xml"


def check_store_folder(root: Path) -> Path:
    """``root``, made if missing, once a file could be written there; StoreError says why
    not -- at start, not at a recording's first frame."""
    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise StoreError(
            f"expected a store folder this service can write, got {root}: {exc}"
        ) from exc
    return root


def store_path(root: Path, series: str) -> Path:
    """Where the store of ``series`` lives under ``root``."""
    return store_folder(root) / f"{series}.zarr"


#: Stores this process is building under a temporary name (not left-overs to clear).
_building: set[Path] = set()
_building_lock = threading.Lock()


def _temporary_store(path: Path) -> Path:
    """A hidden name beside ``path`` to build its store under, naming this host and
    process so that a left-over can be told from a store being built."""
    owner = f"{socket.gethostname()}-{os.getpid()}"
    tmp = path.with_name(f".{path.name}.{owner}.{uuid.uuid4().hex[:8]}.tmp")
    with _building_lock:
        _building.add(tmp)
    return tmp


def clear_left_overs(folder: Path, store_name: str | None = None) -> None:
    """Remove the half-built stores in ``folder`` (of ``store_name`` only, if given) left
    by a process of this host that is gone (killed while building one), or by this one
    where a failed build could not be removed at the time (no file descriptor left, say).
    Other hosts' (a shared folder) and live processes' are left alone."""
    ours = re.compile(rf"\.(.+)\.{re.escape(socket.gethostname())}-(\d+)\.[0-9a-f]{{8}}\.tmp")
    try:
        candidates = [(p, ours.fullmatch(p.name)) for p in folder.iterdir()]
    except OSError:
        return  # cleared another time
    for path, match in candidates:
        if match is None or store_name not in (None, match[1]):
            continue  # not a half-built store of this host's (or not of this store)
        pid = int(match[2])
        with _building_lock:
            if path in _building:
                continue  # being built now
        if pid != os.getpid() and process_alive(pid):
            continue  # a live process is building it
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            log.info("removed %s, a store left half-built", path)


class _Batch:
    """Block writes in flight: their flags follow once the pixels are on disk."""

    __slots__ = ("blocks", "future", "kind")

    def __init__(self, kind: str, blocks: list[Block], future: Any) -> None:
        self.kind = kind
        self.blocks = blocks
        self.future = future

    def done(self) -> bool:
        return bool(self.future.done())


class SeriesStore:
    """Writes one series' raw and clean frames to ``<root>/<series>.zarr``.

    Not thread-safe: one thread (the service's writer) owns a store and makes every
    call on it. While open, the store folder is locked (``flock``; not on Windows): a
    second process (or a second SeriesStore) opening it is refused with a StoreError.
    Readers take no lock and are not stopped.
    Opening an existing store of the same series resumes it (``resumed`` is True)
    when frame shape and raw dtype match; its shard size wins over ``config``.

    Memory: up to about four block buffers per kind (raw, clean) at a time, each
    ``k`` frames: ~16 MiB raw + 32 MiB clean each for 512x512 uint16.

    Parameters
    ----------
    root
        Folder holding the stores; created if missing.
    series
        Series name, as on the wire (also the folder name).
    frame_shape, raw_dtype
        Shape ``(H, W)`` and dtype of the raw frames (stored little-endian).
    config
        Shard size and codec of a new store; :class:`StoreConfig` defaults if None.
    attrs
        Provenance (``model``, ``models``, ``config``, ...) merged into the group's
        ``deepdenoise`` attribute; must be JSON-serialisable. On resume, ``models``
        is merged with the stored list, other keys replace stored ones.
    locked_only
        Open an existing store only if it can be locked: StoreUnlockableError, before
        anything is read or written, where no lock can tell whether another process
        writes it (no ``flock``: Windows, some network file systems).
    """

    def __init__(
        self,
        root: Path,
        series: str,
        frame_shape: tuple[int, int],
        raw_dtype: np.dtype[Any] | str | type,
        *,
        config: StoreConfig | None = None,
        attrs: Mapping[str, Any] | None = None,
        locked_only: bool = False,
    ) -> None:
        if not is_series_name(series):
            raise StoreError(f"expected a series name of {SERIES_RULE}, got {series!r}")
        try:
            shape = tuple(int(s) for s in frame_shape)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) != 2 or min(shape) < 1:
            raise StoreError(f"expected a frame shape (H, W) of positive sizes, got {frame_shape}")
        self._shape: tuple[int, int] = (shape[0], shape[1])
        self._dtype = _normalize_dtype(raw_dtype)
        self._config = config or StoreConfig.model_validate({})
        self.series = series
        self.path = store_path(root, series)
        self._closed = False
        self._raw: dict[int, Block] = {}
        self._clean: dict[int, Block] = {}
        self._spare: dict[str, list[np.ndarray]] = {"raw": [], "clean": []}
        self._in_flight: list[_Batch] = []
        self._unflagged: dict[str, list[Block]] = {"raw": [], "clean": []}
        self._flagging: dict[str, list[Block]] = {}  # blocks whose flags are being written
        self._starting: tuple[str, list[Block]] = ("raw", [])  # blocks whose writes start
        self._flags_due = 0.0
        self._errors: list[str] = []
        self._lost_since: dict[str, int] = {"raw": 0, "clean": 0}
        self._failed_kind = "store_write"
        #: Frames that never reached the disk, by kind, over this store's life.
        self.lost: dict[str, int] = {"raw": 0, "clean": 0}
        self._max_index: int | None = None
        self._frames = 0  # raw frames on disk (valid True)
        self._clean_frames = 0  # denoised frames on disk (clean_valid True)
        # of those, the ones this session flagged (a resumed store's are not its frames)
        self._session_frames = self._session_clean = 0
        self._lock: int | None = None  # the store folder, locked while it is written
        self._traces: TraceArray | None = None  # the trace array being written
        self._opening_traces = 0  # 1 while a row waits for its trace array to open
        self._trace_key: str | None = None
        extra = _json_ready(dict(attrs or {}), "attrs")
        try:
            self._open(extra, locked_only)
        except BaseException:
            self._unlock()
            raise

    def _open(self, extra: dict[str, Any], locked_only: bool) -> None:
        if self.path.exists():
            if not is_series_store(self.path):
                raise StoreError(
                    f"{self.path} exists but is not a deepdenoise series store; "
                    "move it away or use another series name"
                )
            self._lock = lock_store(self.path)  # before anything is read or written
            if self._lock is None and locked_only:
                raise StoreUnlockableError(
                    f"{self.path} cannot be locked here: nothing tells whether another "
                    "process writes it"
                )
            info, was_closed = self._resume_info(extra)
            self.resumed = True
        else:
            info = self._create(extra)
            self._lock = lock_store(self.path)
            self.resumed = False
            was_closed = False
        try:
            self._group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._io = StoreArrays(self.path, self._config)
        except (KeyError, *IO_ERRORS) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        if self._io.frame_shape != self._shape or self._io.raw_dtype != self._dtype:
            self._io.close()
            raise StoreError(
                f"cannot resume {self.path}: its raw array holds {self._io.frame_shape} "
                f"{self._io.raw_dtype}, expected {self._shape} {self._dtype.str}"
            )
        self.frames_per_shard = self._io.frames_per_shard
        wanted = self._config.frames_per_shard
        if self.resumed and wanted and wanted != self.frames_per_shard:
            log.info("%s keeps its %d frames per shard", self.path, self.frames_per_shard)
        self._info = info
        self._trace_arrays = existing_trace_arrays(self.path) if self.resumed else {}
        self._meta = FrameMetaLog(self.path, self._config.fsync)
        self._reserve = CloseReserve(self.path, self._config.fsync)
        # a record is the last close's only where that close recorded nothing: one a
        # closed store's reserve still holds (a kill before it was zeroed) is older
        unrecorded = self._reserve.read() if self.resumed else None
        if was_closed and unrecorded is not None:
            log.info("%s: a record older than the store's recorded totals: ignored", self.path)
            unrecorded = None
        if was_closed and self._reserve.written_over:  # zeroed before the attributes say
            self._reserve.clear()  # open again: a kill then would have it taken (a review)
        self._reserve.make()
        if self.resumed:
            scan = self._guard("read the flags of", self._scan)
            self._frames, self._max_index = scan.valid, scan.last
            self._clean_frames = scan.clean
            if unrecorded is not None:
                self._take_unrecorded(unrecorded)
            self._put_attrs()  # closed=False and the new session, before any frame lands

    def _take_unrecorded(self, totals: dict[str, Any]) -> None:
        """The totals a close on a full disk set aside (its attributes could not be
        written): the frames lost over the store's life, and its last index, so that
        the frames lost after its last frame on disk count as missing."""
        self._info["lost"] = dict(totals["lost"])
        if totals["frame_meta_lost"]:
            self._info["frame_meta_lost"] = totals["frame_meta_lost"]
        last = totals["last_index"]
        if last is not None and (self._max_index is None or last > self._max_index):
            self._max_index = last
        log.warning(
            "%s: its last close could not record its totals (a full disk?); taken from %s: "
            "lost %s, last index %s",
            self.path,
            self._reserve.path.name,
            totals["lost"],
            last,
        )

    # ------------------------------------------------------------------ opening
    def _create(self, extra: dict[str, Any], frames_per_shard: int | None = None) -> dict[str, Any]:
        h, w = self._shape
        k = (
            frames_per_shard
            or self._config.frames_per_shard
            or round(TARGET_SHARD_BYTES / (h * w * self._dtype.itemsize))
        )
        k = max(1, min(MAX_FRAMES_PER_SHARD, k))
        now = _now()
        info = {
            **{key: v for key, v in extra.items() if key not in RESERVED_KEYS},
            "protocol_version": extra.get("protocol_version", 1),
            "store_version": STORE_VERSION,
            "series": self.series,
            "frame_shape": list(self._shape),
            "raw_dtype": self._dtype.str,
            "images": dict(IMAGES),
            "frames_per_shard": k,
            "created": now,
            "opened": now,
            "sessions": 1,
            "closed": False,
        }
        # Built under a temporary name and renamed: the store path either does not exist
        # or holds a complete store, even if this process dies half-way.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clear_left_overs(self.path.parent, self.path.name)
        tmp = _temporary_store(self.path)
        dtypes = {"raw": self._dtype, "clean": F4}
        try:
            root = zarr.create_group(
                str(tmp), zarr_format=3, attributes={"ome": root_ome_attrs(), "deepdenoise": info}
            )
            root.create_group("OME", attributes=series_group_attrs())
            (tmp / OME_XML).write_text(ome_xml(self._shape, dtypes))
            for name, path in IMAGES.items():
                root.create_group(path.split("/")[0], attributes=image_attrs(name, self._dtype))
            create_arrays(tmp, self._shape, dtypes, k, self._config)
            tmp.rename(self.path)
        except IO_ERRORS as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if tmp.exists():
                log.warning("%s left half-built: it is removed when its store is next made", tmp)
            raise StoreError(f"cannot create {self.path}: {exc}") from exc
        finally:
            with _building_lock:
                _building.discard(tmp)
        return info

    def _resume_info(self, extra: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The attribute for this session, and whether the last one closed the store."""
        info = dict(read_group_attrs(self.path)["deepdenoise"])
        was_closed = bool(info.get("closed"))
        if info.get("store_version") != STORE_VERSION:
            raise StoreError(
                f"cannot resume {self.path}: it has store layout version "
                f"{info.get('store_version')}, this deepdenoise writes version {STORE_VERSION}; "
                "use a new series name or move the store"
            )
        had = f"{_shape_text(info.get('frame_shape'))} {info.get('raw_dtype')}"
        came = f"{_shape_text(self._shape)} {self._dtype.str}"
        if had != came:
            raise StoreError(
                f"cannot resume {self.path}: it holds {had} frames but series "
                f"{self.series!r} now sends {came}; use a new series name or move the store"
            )
        models = list(info.get("models", []))
        models += [m for m in extra.get("models", []) if m not in models]
        info.update({k: v for k, v in extra.items() if k not in RESERVED_KEYS})
        if models:
            info["models"] = models
        info.update(opened=_now(), sessions=int(info.get("sessions", 1)) + 1, closed=False)
        return info, was_closed

    # ------------------------------------------------------------------ writing
    @property
    def max_index(self) -> int | None:
        """Highest index given to :meth:`write_raw`/:meth:`write_clean` (resumed included)."""
        return self._max_index

    @property
    def buffered_bytes(self) -> int:
        """Memory held: buffered blocks, blocks in flight to disk, spare buffers."""
        # read from other threads (the memory budget): copies, never live iteration
        blocks = list(self._raw.values()) + list(self._clean.values())
        blocks += [blk for batch in list(self._in_flight) for blk in batch.blocks]
        held = sum(blk.data.nbytes for blk in blocks if blk.data is not None)
        spares = [buf for spare in list(self._spare.values()) for buf in list(spare)]
        return held + sum(buf.nbytes for buf in spares)

    def unwritten(self) -> Counter[str]:
        """Frames by kind (``raw``, ``clean``, ``traces``) not on disk and flagged, nor
        reported lost: buffered, starting, in flight, written and not flagged, or failed
        since the last report (traces: buffered, being written or being added). Read
        from another thread when the writer hangs (copies, never live iteration)."""
        held: Counter[str] = Counter()
        for kind, blocks in (("raw", self._raw), ("clean", self._clean)):
            held[kind] += sum(blk.count for blk in list(blocks.values()))
        for batch in list(self._in_flight):
            held[batch.kind] += sum(blk.count for blk in batch.blocks)
        for kind, unflagged in [*self._unflagged.items(), *self._flagging.items()]:
            held[kind] += sum(blk.count for blk in list(unflagged))
        kind, starting = self._starting
        held[kind] += sum(blk.count for blk in list(starting))
        for kind, frames in dict(self._lost_since).items():  # failed, not reported yet
            held[kind] += frames
        traces = self._traces
        held["traces"] += self._opening_traces + (traces.buffered_rows if traces else 0)
        return held

    def free_spares(self) -> None:
        """Let go of the reusable block buffers (memory over reuse)."""
        for spare in self._spare.values():
            spare.clear()

    @property
    def info(self) -> dict[str, Any]:
        """The store's ``deepdenoise`` attribute as last written (totals after close)."""
        return dict(self._info)

    @property
    def frames_written(self) -> int:
        """Raw frames on disk (``valid`` True), resumed ones included; buffered excluded."""
        return self._frames

    @property
    def clean_written(self) -> int:
        """Denoised frames on disk (``clean_valid`` True), as :attr:`frames_written`."""
        return self._clean_frames

    def take_frame_meta_lost(self) -> tuple[int, str | None]:
        """Frames whose ``meta`` could not be written since last asked, and why."""
        return self._meta.take_lost()

    def write_raw(
        self,
        index: int,
        frame: np.ndarray,
        t_ns: int | None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Copy a raw frame into its block buffer; ``t_ns`` None is stored as 0 (unknown).
        ``meta``: the frame's own metadata, kept in ``frame_meta.msgpack`` (see
        :mod:`stream.store._frame_meta`).

        The frame may be a view of a receive buffer: it is copied before returning.
        Its dtype must convert to the raw dtype without loss (``safe`` casting).
        Raises StoreError for a bad frame, or when an earlier write failed.
        """
        i = self._check_index(index)
        frame = self._check_frame(frame, self._dtype, "safe", "raw")
        stamp = 0 if t_ns is None else operator.index(t_ns)
        if not -(2**63) <= stamp < 2**63:
            raise StoreError(f"expected t_ns to fit int64, got {stamp}")
        blk, slot = self._slot(self._raw, "raw", i)
        assert blk.data is not None  # buffered blocks hold their pixels
        blk.data[slot] = frame
        blk.t_ns[slot] = stamp
        if meta is not None:
            self._meta.append(i, t_ns, meta)
        self._fill(blk, slot, self._raw, "raw")

    def write_clean(self, index: int, frame: np.ndarray) -> None:
        """Copy a denoised (H, W) frame into its block buffer; stored as float32."""
        i = self._check_index(index)
        frame = self._check_frame(frame, F4, "same_kind", "clean")
        blk, slot = self._slot(self._clean, "clean", i)
        assert blk.data is not None
        blk.data[slot] = frame
        self._fill(blk, slot, self._clean, "clean")

    def write_traces(self, index: int, values: np.ndarray, attrs: Mapping[str, Any]) -> None:
        """Buffer the ROI traces ``[rois, columns]`` of frame ``index``.

        ``attrs`` describe the layout (``labels``, ``columns``, ...): a layout other than
        the current array's starts a new trace array (see :mod:`stream.store._traces`).
        """
        i = self._check_index(index)
        values = np.asarray(values, dtype=F4)
        if values.ndim != 2:
            raise StoreError(f"expected traces of shape (rois, columns), got {values.shape}")
        key = layout_key(dict(attrs))
        if self._traces is None or key != self._trace_key:
            self._opening_traces = 1  # this row, counted by unwritten() until it is added
            try:
                self._open_traces(i, values.shape, dict(attrs), key)
            except StoreWriteError as exc:  # the old array's last rows; and this one
                exc.lost["traces"] = exc.lost.get("traces", 0) + 1
                raise
            finally:
                self._opening_traces = 0
        traces = self._traces
        assert traces is not None
        self._guard("write the traces of", lambda: traces.write(i, values))
        if self._max_index is None or i > self._max_index:
            self._max_index = i

    def _open_traces(
        self, index: int, shape: tuple[int, ...], attrs: dict[str, Any], key: str
    ) -> None:
        if self._traces is not None:
            self._guard("write the traces of", self._traces.finish)
        names = list(self._trace_arrays)
        last = names[-1] if names else None
        same = last is not None and layout_key(self._trace_arrays[last]) == key
        if last is not None and same and self._traces is None:
            name, create = last, None  # a resumed store goes on with the same layout
        else:
            name = trace_array_name(len(names))
            create = _json_ready({**attrs, "first_index": index}, "trace attributes")
        self._traces = self._guard(
            f"open {name} in",
            lambda: TraceArray(self.path, name, shape[0], shape[1], create, self._config),
        )
        self._trace_key = key
        if create is not None:
            self._trace_arrays[name] = create
            self._info["traces"] = list(self._trace_arrays)
            self._put_attrs()

    def flush(self) -> None:
        """Write every buffered frame (partial blocks included) and its flags; wait for it."""
        self._check_open()
        for kind, blocks in (("raw", self._raw), ("clean", self._clean)):
            if blocks:
                self._start(kind, [blocks.pop(b) for b in sorted(blocks)])
        self._settle(0)
        try:
            if self._traces is not None:
                self._guard("write the traces of", self._traces.flush)
        finally:
            self._remake_if_removed()
            self._meta.flush()  # records _write_flags did not append (no raw block flagged)
            self._raise_errors()

    def _remake_if_removed(self) -> None:
        """A store removed or moved while it is written (a data folder cleaned up during
        a recording): the frames it held are not there -- counted lost -- and the store is
        made again, so the frames that follow can be read (tensorstore would write their
        shards into bare folders, with no metadata to read them by)."""
        if (self.path / "zarr.json").is_file():
            return
        # this session's frames only: a resumed store's earlier frames were not sent now
        gone = {"raw": self._session_frames, "clean": self._session_clean}
        for kind, frames in gone.items():
            self.lost[kind] += frames
            self._lost_since[kind] += frames
        self._frames = self._clean_frames = 0
        self._session_frames = self._session_clean = 0
        self._failed_kind = "store_removed"
        what = (
            f"{self.path} was removed or moved while it was written: the {gone['raw']} raw "
            f"and {gone['clean']} denoised frames this session wrote to it are not there"
        )
        lock = None
        try:
            # what is there now is only the shards written since, over flags that still
            # call the removed frames valid: no store to keep, and counted lost above
            shutil.rmtree(self.path, ignore_errors=True)
            # its provenance and shard size (the block buffers have it); totals start again
            info = self._create(self._info, self.frames_per_shard)
            lock = lock_store(self.path)
            group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            arrays = StoreArrays(self.path, self._config)
        except (StoreError, KeyError, *IO_ERRORS) as exc:
            unlock_store(lock)
            self._errors.append(f"{what}; it could not be made again: {exc}")
            return
        self._io.close()
        self._unlock()  # a moved store is free again: its lock went with it
        self._lock = lock
        self._group, self._io, self._info = group, arrays, info
        self.frames_per_shard = self._io.frames_per_shard
        self._traces, self._trace_key, self._trace_arrays = None, None, {}
        self._errors.append(f"{what}; it is made again for the frames that follow")
        self._reserve.make()

    def update_attrs(self, **values: Any) -> None:
        """Merge ``values`` into the ``deepdenoise`` group attribute, written at once."""
        self._check_open()
        bad = sorted(RESERVED_KEYS & values.keys())
        if bad:
            raise StoreError(f"attributes {bad} are managed by the store and cannot be set")
        self._info.update(_json_ready(values, "update_attrs"))
        self._put_attrs()

    def close(self) -> None:
        """Flush, trim the time axis to ``max_index + 1`` and record the totals; idempotent.

        Frames lost by the flush are raised as StoreWriteError (their counts) even when
        trimming or recording fails after it: that failure is added to its message.
        """
        if self._closed:
            return
        lost: StoreWriteError | None = None
        try:
            self.flush()
        except StoreWriteError as exc:
            lost = exc  # the caller counts these: raised whatever the trim does
        finally:
            self._closed = True
            try:
                self._finish()
            except Exception as exc:
                if lost is None:
                    raise
                message = f"{lost}; then: {exc}"
                raise StoreWriteError(message, lost.lost, lost.kind) from exc
        if lost is not None:
            raise lost

    def _finish(self) -> None:
        """Trim the time axis, record the totals, let go of the arrays and the lock;
        totals that cannot be recorded (a full disk) are set aside in the reserve."""
        lost = _summed(self._info.get("lost"), self.lost)  # over the store's life
        meta_lost = int(self._info.get("frame_meta_lost", 0)) + self._meta.lost
        recorded = False
        try:
            length = 0 if self._max_index is None else self._max_index + 1
            self._guard("trim", lambda: self._io.resize(length))
            traces = self._traces
            if traces is not None:
                self._guard("trim the traces of", lambda: traces.resize(length))
            scan = self._guard("read the flags of", lambda: self._scan(length))
            self._info.update(
                closed=True,
                closed_at=_now(),
                frames=scan.valid,
                clean_frames=scan.clean,
                first_index=scan.first,
                last_index=scan.last,
                missing=scan.missing,
                lost=lost,
            )
            if meta_lost:  # the frames' own meta, where the disk refused it
                self._info["frame_meta_lost"] = meta_lost
            self._put_attrs()
            recorded = True
            if self._reserve.written_over:  # the attributes hold its totals now
                self._reserve.clear()
            xml = ome_xml(self._shape, {"raw": self._dtype, "clean": F4}, size_t=length)
            self._guard("write the OME-XML of", lambda: _replace_text(self._ome_xml, xml))
        finally:
            if not recorded:
                totals = {"lost": lost, "last_index": self._max_index, "frame_meta_lost": meta_lost}
                if self._reserve.write(totals):
                    log.warning("%s: totals set aside in %s", self.path, self._reserve.path.name)
            self._spare.clear()
            self._io.close()
            self._unlock()

    def release(self) -> None:
        """Let go of the arrays and the lock without writing anything more (a writer
        given up on: what is buffered was counted lost); the store is left as the disk
        has it, open, and readable up to its last completed write."""
        if self._closed:
            return
        self._closed = True
        self._spare.clear()
        try:
            self._io.close()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        unlock_store(self._lock)
        self._lock = None

    def __enter__(self) -> SeriesStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SeriesStore({str(self.path)!r}, {state}, frames_written={self._frames})"

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    def _check_index(self, index: int) -> int:
        self._check_open()
        try:
            i = operator.index(index)
        except TypeError:
            raise StoreError(f"expected an integer frame index, got {index!r}") from None
        if not 0 <= i < MAX_INDEX:
            raise StoreError(f"expected a frame index in [0, 2**40), got {i}")
        return i

    def _check_frame(self, frame: Any, dtype: np.dtype[Any], casting: Any, kind: str) -> Any:
        frame = np.asarray(frame)
        if frame.shape != self._shape:
            raise StoreError(
                f"{kind} frame has shape {frame.shape}, store {self.path.name} holds {self._shape}"
            )
        if not np.can_cast(frame.dtype, dtype, casting=casting):
            raise StoreError(f"{kind} frame dtype {frame.dtype} cannot be stored as {dtype}")
        return frame

    def _slot(self, blocks: dict[int, Block], kind: str, index: int) -> tuple[Block, int]:
        b, slot = divmod(index, self.frames_per_shard)
        blk = blocks.get(b)
        if blk is None:
            spare = self._spare[kind]
            if spare:
                data = spare.pop()
            else:
                dtype = self._dtype if kind == "raw" else F4
                data = np.empty((self.frames_per_shard, *self._shape), dtype=dtype)
            blk = blocks[b] = Block(b, data)
        if self._max_index is None or index > self._max_index:
            self._max_index = index
        return blk, slot

    def _fill(self, blk: Block, slot: int, blocks: dict[int, Block], kind: str) -> None:
        """Mark a slot filled; write the block once complete, and any block left behind."""
        if not blk.filled[slot]:
            blk.filled[slot] = True
            blk.count += 1
        due = [b for b in blocks if b <= blk.block - 2]  # the stream moved on
        if blk.count == self.frames_per_shard:
            due.append(blk.block)
        if due:
            self._start(kind, [blocks.pop(b) for b in sorted(due)])
            self._settle(IN_FLIGHT)
            self._raise_errors()

    def _start(self, kind: str, blocks: list[Block]) -> None:
        """Start the pixel writes of ``blocks``; their flags follow in :meth:`_settle`."""
        fill = 0 if kind == "raw" else np.nan
        self._starting = (kind, list(blocks))  # out of the buffers, not in flight yet
        for blk in blocks:
            if not blk.count:
                continue
            if any(b.kind == kind and b.blocks[0].block == blk.block for b in self._in_flight):
                self._settle(0)  # a second write of one shard must read the first's result
            try:
                future = self._io.write_block(kind, blk, fill)
            except IO_ERRORS as exc:
                self._lost(kind, [blk], exc)
                continue
            finally:
                self._starting[1].remove(blk)
            self._in_flight.append(_Batch(kind, [blk], future))
        self._starting = ("raw", [])

    def _settle(self, keep: int) -> None:
        """Wait for all but ``keep`` pixel writes; flag the finished ones when due.

        Flags are written at most every ``FLAGS_INTERVAL_S`` (and on flush and close):
        each flag write rewrites a chunk, so one per block would cost more than the
        pixels of a small frame.
        """
        while self._in_flight and (len(self._in_flight) > keep or self._in_flight[0].done()):
            batch = self._in_flight[0]  # in flight until done: a hung disk counts it
            try:
                batch.future.result()
            except IO_ERRORS as exc:
                self._in_flight.pop(0)
                self._lost(batch.kind, batch.blocks, exc)
                continue
            self._in_flight.pop(0)
            self._release(batch.kind, batch.blocks)
            self._unflagged[batch.kind] += batch.blocks
        if keep == 0 or time.monotonic() >= self._flags_due:
            self._write_flags()

    def _write_flags(self) -> None:
        """Flag every block whose pixels are on disk: ``t_ns`` before ``valid``."""
        raw, clean = self._unflagged["raw"], self._unflagged["clean"]
        self._unflagged = {"raw": [], "clean": []}
        self._flags_due = time.monotonic() + FLAGS_INTERVAL_S
        first = {name: blocks for name, blocks in (("t_ns", raw), ("clean_valid", clean)) if blocks}
        if not first:
            return
        if raw:  # the frames' own meta before their valid flags, as their t_ns
            self._meta.flush()
        self._flagging = {"raw": raw, "clean": clean}  # until flagged: a hung disk counts them
        try:
            self._flag_written(first, raw)
        finally:
            self._flagging = {}

    def _flag_written(self, first: dict[str, list[Block]], raw: list[Block]) -> None:
        """``t_ns`` and ``clean_valid`` (``first``), then ``valid`` for the ``raw`` blocks
        whose ``t_ns`` is written."""
        done = self._flag(first)
        self._flagging = {"raw": raw}  # the denoised frames' flags are written
        self._clean_frames += done.newly.get("clean_valid", 0)
        self._session_clean += done.newly.get("clean_valid", 0)
        failed = {id(blk) for name, blocks, _ in done.failed if name == "t_ns" for blk in blocks}
        raw = [blk for blk in raw if id(blk) not in failed]  # no valid without its t_ns
        if raw:
            done = self._flag({"valid": raw})
            self._frames += done.newly.get("valid", 0)
            self._session_frames += done.newly.get("valid", 0)

    def _flag(self, updates: dict[str, list[Block]]) -> FlagWrite:
        """Write flags; the blocks of each chunk that failed are counted lost (only those)."""
        try:
            done = self._io.write_flags(updates)
        except IO_ERRORS as exc:  # a flag chunk could not be read: nothing was written
            done = FlagWrite(failed=[(name, blocks, exc) for name, blocks in updates.items()])
        for name, blocks, error in done.failed:
            self._lost("clean" if name == "clean_valid" else "raw", blocks, error, flags=True)
        return done

    def _lost(
        self, kind: str, blocks: list[Block], exc: BaseException, flags: bool = False
    ) -> None:
        lost = np.concatenate([blk.indices() for blk in blocks])
        self.lost[kind] += len(lost)
        self._lost_since[kind] += len(lost)
        self._failed_kind = "store_flags" if flags else "store_write"
        what = "flags" if flags else "frames"
        self._errors.append(
            f"{len(lost)} {kind} {what} ({lost[0]}..{lost[-1]}) of {self.path.name} "
            f"could not be written: {exc}"
        )

    def _raise_errors(self) -> None:
        """Report writes that failed since the last report (one exception for all)."""
        if self._errors:
            message = "; ".join(self._errors)
            lost, kind = dict(self._lost_since), self._failed_kind
            self._errors.clear()
            self._lost_since = {"raw": 0, "clean": 0}
            raise StoreWriteError(message, lost, kind)

    def _release(self, kind: str, blocks: list[Block]) -> None:
        """The blocks' pixels are on disk: their buffers may serve later blocks."""
        spare = self._spare.get(kind)
        for blk in blocks:
            if spare is not None and blk.data is not None and len(spare) < SPARE_BUFFERS:
                spare.append(blk.data)
            blk.data = None

    def _scan(self, extent: int | None = None) -> FlagScan:
        from ._summary import scan_flags

        return scan_flags(self.path, extent)

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except StoreWriteError:
            raise  # it counts what it lost
        except IO_ERRORS as exc:
            raise StoreError(f"cannot {what} {self.path}: {exc}") from exc

    @property
    def _ome_xml(self) -> Path:
        return self.path / OME_XML

    def _put_attrs(self) -> None:
        self._guard(
            "write the attributes of",
            lambda: self._group.update_attributes({"deepdenoise": self._info}),
        )


def _summed(recorded: Any, session: Mapping[str, int]) -> dict[str, int]:
    """Frames lost by kind: those an earlier close recorded and this session's."""
    before = recorded if isinstance(recorded, dict) else {}
    return {kind: int(before.get(kind, 0)) + frames for kind, frames in session.items()}


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a whole: a temporary file beside it, renamed."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _normalize_dtype(dtype: Any) -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise StoreError(f"expected a numeric raw dtype, got {dtype!r}") from None
    if dt.kind not in "uif":
        raise StoreError(f"expected an integer or float raw dtype, got {dt}")
    return dt.newbyteorder("<") if dt.itemsize > 1 else dt


def _json_ready(values: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(json.dumps(values, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be JSON-serialisable: {exc}") from exc
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _shape_text(shape: Any) -> str:
    try:
        return "x".join(str(int(s)) for s in shape)
    except (TypeError, ValueError):
        return repr(shape)
