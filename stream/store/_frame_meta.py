"""Each frame's ``meta`` (what the acquisition sends with it: exposure, stage position)
beside the store's arrays, in ``<series>.zarr/frame_meta.msgpack``.

Zarr v3 as tensorstore writes it has no type for a map of any shape, so the maps go to a
file of their own in the store folder, which Zarr readers pass over: a stream of msgpack
maps ``{"index": int, "t_ns": int or nil, "meta": map}``, one per frame that carried
``meta``, in the order the frames came. A frame sent again (``resend``) adds its record
again; the last one of an index counts. Pair the records with the store's ``valid``
flags: a record may be on disk for a frame whose pixels a fault kept off it.

Records are kept in memory and appended at the store's flushes (a killed process loses
those of its last flush interval, as it loses the frames it still buffered). A write
that fails (a full disk) is cut back off the file, so a torn record never sits before
later ones; its records are counted lost. A resumed store cuts a torn record at the
file's end (a process killed while appending) before it appends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
        self._records = 0  # in _pending
        self.written = 0  # records this session put on disk
        self.lost = 0  # records this session could not write
        if self.path.exists():
            _cut_torn_tail(self.path)

    def append(self, index: int, t_ns: int | None, meta: Mapping[str, Any]) -> None:
        record = {"index": index, "t_ns": t_ns, "meta": meta}
        self._pending += msgpack.packb(record, use_bin_type=True)
        self._records += 1
        if len(self._pending) > BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append the records held; a failure is logged and counted, never raised (the
        frames' own writes go on)."""
        if not self._pending:
            return
        records, self._records = self._records, 0
        pending, self._pending = bytes(self._pending), bytearray()
        try:
            with open(self.path, "ab", buffering=0) as file:  # unbuffered: cut at once
                good = file.tell()
                try:
                    view = memoryview(pending)
                    while view:  # a raw write may take only part
                        view = view[file.write(view) :]
                    if self._fsync:
                        os.fsync(file.fileno())
                except OSError:
                    _cut(file, good)
                    raise
        except OSError as exc:
            self.lost += records
            log.error(
                "%s: the meta of %d frame(s) is not on disk (%s); %d lost so far",
                self.path,
                records,
                exc,
                self.lost,
            )
            return
        self.written += records


def _cut(file: Any, size: int) -> None:
    """Cut what a failed write left past ``size`` (a torn record)."""
    try:
        file.truncate(size)
    except OSError as exc:  # the next resume cuts it instead
        log.error("%s: a torn record could not be cut off: %s", file.name, exc)


def _cut_torn_tail(path: Path) -> None:
    """Cut the bytes after the last whole record (a process killed while appending)."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        unpacker = msgpack.Unpacker(file, raw=False, strict_map_key=False)
        good = 0
        try:
            for _ in unpacker:
                good = unpacker.tell()
        except (ValueError, msgpack.UnpackException) as exc:  # not a record: cut from there
            log.warning("%s: unreadable after byte %d (%s)", path, good, exc)
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
        unpacker = msgpack.Unpacker(file, raw=False, strict_map_key=False)
        try:
            for record in unpacker:
                metas[int(record["index"])] = record["meta"]
        except (ValueError, msgpack.UnpackException):
            pass  # a torn last record
    return metas
