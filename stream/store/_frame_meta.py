"""Each frame's ``meta`` (what the acquisition sends with it: exposure, stage position)
beside the store's arrays, in ``<series>.zarr/frame_meta.msgpack``.

Zarr v3 as tensorstore writes it has no type for a map of any shape, so the maps go to a
file of their own in the store folder, which Zarr readers pass over: a stream of msgpack
maps ``{"index": int, "t_ns": int or nil, "meta": map}``, one per frame that carried
``meta``, in the order the frames came. A frame sent again (``resend``) adds its record
again, with an empty map if it carried none (the frame it replaces keeps no meta); the
last one of an index counts. Pair the records with the store's ``valid``
flags: a record may be on disk for a frame whose pixels a fault kept off it.

Records are kept in memory and appended before the ``valid`` flags of the frames
written since (as their ``t_ns`` is), so a frame flagged valid has its record on disk;
a killed process loses the records of the frames it still buffered. A write that fails
(a full disk) is cut back off the file, at the next append if not at once, so a torn
record never sits before later ones; its records are counted lost. A resumed store cuts
a torn record at the file's end (a process killed while appending) before it appends; a
file it cannot read or cut takes no more records (they are counted lost), and the
frames go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgpack

log = logging.getLogger(__name__)

FRAME_META_FILE = "frame_meta.msgpack"
#: Records held in memory beyond this many bytes are written before the next flush.
BUFFER_BYTES = 4 * 1024 * 1024


class FrameMetaLog:
    """Appends the records of one store (owned by its writer thread, as the store is)."""

    def __init__(self, store: Path, fsync: bool) -> None:
        self.path = store / FRAME_META_FILE
        self._fsync = fsync
        self._pending = bytearray()
        self._records = 0  # in _pending, counted lost should they be
        self.written = 0  # records this session put on disk
        self.lost = 0  # records this session could not write
        self.last_error: str | None = None  # why the latest of them were lost
        self._lost_taken = 0  # of lost, told by take_lost
        self._cut_to: int | None = None  # a failed write's torn bytes start here
        self._unusable: str | None = None  # why no record can be appended
        if self.path.exists():
            try:
                _cut_torn_tail(self.path)
            except Exception as exc:  # a side file never keeps the store from opening
                self._unusable = f"it could not be read and cut: {exc}"
                log.error("%s: no frame meta is appended: %s", self.path, self._unusable)

    def take_lost(self) -> tuple[int, str | None]:
        """Records lost since last asked, and why the latest of them were."""
        lost, self._lost_taken = self.lost - self._lost_taken, self.lost
        return lost, self.last_error

    def append(
        self, index: int, t_ns: int | None, meta: Mapping[str, Any], counted: bool = True
    ) -> None:
        """``counted``: False for a record that stands for no meta (a rejected frame
        that carried none), whose loss is no frame's meta lost."""
        record = {"index": index, "t_ns": t_ns, "meta": meta}
        self._pending += msgpack.packb(record, use_bin_type=True)
        self._records += counted
        if len(self._pending) > BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append the records held; a failure is logged and counted, never raised (the
        frames' own writes go on)."""
        if not self._pending:
            return
        records, self._records = self._records, 0
        pending, self._pending = bytes(self._pending), bytearray()
        if self._unusable is not None:
            self.lost += records
            self.last_error = f"{self.path} takes no records: {self._unusable}"
            return
        try:
            with open(self.path, "ab", buffering=0) as file:  # unbuffered: cut at once
                if self._cut_to is not None:  # a torn record a failed cut left
                    if os.fstat(file.fileno()).st_size > self._cut_to:  # not a new file
                        file.truncate(self._cut_to)
                    self._cut_to = None
                good = os.fstat(file.fileno()).st_size
                try:
                    view = memoryview(pending)
                    while view:  # a raw write may take only part
                        view = view[file.write(view) :]
                    if self._fsync:
                        os.fsync(file.fileno())
                except OSError:
                    if not _cut(file, good):
                        self._cut_to = good
                    raise
        except OSError as exc:
            self.lost += records
            self.last_error = f"{self.path}: {exc}"
            log.error(
                "%s: the meta of %d frame(s) is not on disk (%s); %d lost so far",
                self.path,
                records,
                exc,
                self.lost,
            )
            return
        self.written += records


def _cut(file: Any, size: int) -> bool:
    """Cut what a failed write left past ``size`` (a torn record); False if that fails
    too (then cut before the next append, or by the next resume)."""
    try:
        file.truncate(size)
    except OSError as exc:
        log.error("%s: a torn record could not be cut off yet: %s", file.name, exc)
        return False
    return True


def _records(file: Any) -> Iterator[tuple[int, dict[str, Any], int]]:
    """Each whole record of an open file as ``(index, meta, offset after it)``, up to
    the first that is torn or is not a record (a zero-filled tail after a power cut
    reads as integers). A record torn inside its meta and followed by zeros may still
    read as one, with wrong values: msgpack has no checksum."""
    unpacker = msgpack.Unpacker(file, raw=False, strict_map_key=False)
    end = 0
    try:
        for record in unpacker:
            if not _is_record(record):
                log.warning("%s: no record after byte %d", file.name, end)
                return
            end = unpacker.tell()
            yield record["index"], record["meta"], end
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # not records from there
        log.warning("%s: unreadable after byte %d: %s", file.name, end, exc)


def _is_record(record: Any) -> bool:
    """A record as :meth:`FrameMetaLog.append` writes it, keys in its order."""
    return (
        isinstance(record, dict)
        and list(record) == ["index", "t_ns", "meta"]
        and type(record["index"]) is int
        and (record["t_ns"] is None or type(record["t_ns"]) is int)
        and isinstance(record["meta"], dict)
    )


def _cut_torn_tail(path: Path) -> None:
    """Cut the bytes after the last whole record (a process killed while appending)."""
    size = path.stat().st_size
    good = 0
    with open(path, "rb") as file:
        for *_, end in _records(file):
            good = end
    if good < size:
        log.warning("%s: the %d byte(s) after its last whole record are cut", path, size - good)
        with open(path, "r+b") as file:
            _cut(file, good)


def read_frame_meta(store: Path | str) -> dict[int, dict[str, Any]]:
    """The ``meta`` of each frame of a series store that has one, by index (the last
    record of an index: a resent frame's). A torn record at the end (a process killed
    while appending) is left out. Empty when no frame carried ``meta``."""
    path = Path(store) / FRAME_META_FILE
    metas: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return metas
    with open(path, "rb") as file:
        for index, meta, _ in _records(file):
            metas[index] = meta
    return metas
