"""Room set aside in each series store for the totals a close cannot record.

A stop on a full disk cannot write a store's attributes (a new ``zarr.json`` takes new
blocks), so the totals it knew were lost with it: the next start closed the store from
its flags alone, not knowing the frames lost after its last frame on disk (a fault
trial). So each store keeps ``close_reserve.bin``, ``RESERVE_BYTES`` of zeros written
when the store is opened. A close that cannot record its totals writes them over those
zeros, in place: no new block is needed where the file system overwrites in place
(ext4, XFS, tmpfs; not a copy-on-write one, btrfs or ZFS). The store's next open takes
them from there, and its next close that records them zeroes the file again.

The record is a msgpack map ``{"lost": {"raw": int, "clean": int}, "last_index": int or
nil, "frame_meta_lost": int}``: the store's totals over its life, as its attributes
would have had them, and the highest index written to it. Zarr readers pass over the
file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import msgpack

log = logging.getLogger(__name__)

RESERVE_FILE = "close_reserve.bin"
RESERVE_BYTES = 4096
_KINDS = ("raw", "clean")


class CloseReserve:
    """The reserve file of one store (used by its writer thread only)."""

    def __init__(self, store: Path, fsync: bool) -> None:
        self.path = store / RESERVE_FILE
        self._fsync = fsync
        self.written_over = False  # as last read: not zeros (a record, or what is left of one)

    def make(self) -> None:
        """Write the zeros, unless the file is there whole (it may hold a record); a
        failure is logged (the store goes on without the reserve)."""
        try:
            if self.path.is_file() and self.path.stat().st_size == RESERVE_BYTES:
                return
            with open(self.path, "wb") as file:
                file.write(bytes(RESERVE_BYTES))  # blocks allocated: not a sparse file
                if self._fsync:
                    file.flush()
                    os.fsync(file.fileno())
        except OSError as exc:
            log.warning(
                "%s: no room set aside for totals a close cannot record: %s", self.path, exc
            )

    def read(self) -> dict[str, Any] | None:
        """The totals a close wrote here, or None (none, or no record that reads whole)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s cannot be read: %s", self.path, exc)
            return None
        self.written_over = any(data)
        if not data or data[0] == 0:  # zeros: nothing recorded
            return None
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        try:
            record = next(unpacker)  # the zeros after it are not read
        except (ValueError, StopIteration, msgpack.UnpackException) as exc:
            log.warning("%s holds no whole record (a write cut short?): %s", self.path, exc)
            return None
        if not _is_record(record):
            log.warning("%s holds no record of totals: ignored", self.path)
            return None
        return dict(record)

    def write(self, totals: dict[str, Any]) -> bool:
        """Write ``totals`` over the zeros, in place (never a new file or block)."""
        packed = msgpack.packb(totals, use_bin_type=True)
        try:
            fd = os.open(self.path, os.O_WRONLY)  # no O_CREAT: a new file needs room
        except OSError as exc:
            log.error("%s: the totals could not be set aside either: %s", self.path, exc)
            return False
        try:
            if os.fstat(fd).st_size < len(packed):
                log.error("%s is too short for the totals: not written", self.path)
                return False
            written = os.pwrite(fd, packed, 0)
            os.fsync(fd)  # a close's last act: on disk before the process ends
        except OSError as exc:
            log.error("%s: the totals could not be set aside either: %s", self.path, exc)
            return False
        finally:
            os.close(fd)
        if written != len(packed):
            log.error("%s: the totals were written in part only", self.path)
            return False
        return True

    def clear(self) -> None:
        """Zero the record a close wrote, once the store's attributes hold its totals."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("%s could not be cleared: %s", self.path, exc)
            return
        try:
            os.pwrite(fd, bytes(RESERVE_BYTES), 0)
            if self._fsync:
                os.fsync(fd)
            self.written_over = False
        except OSError as exc:
            log.warning("%s could not be cleared: %s", self.path, exc)
        finally:
            os.close(fd)


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict) or set(record) != {"lost", "last_index", "frame_meta_lost"}:
        return False
    lost, last = record["lost"], record["last_index"]
    return (
        isinstance(lost, dict)
        and set(lost) == set(_KINDS)
        and all(type(lost[kind]) is int and lost[kind] >= 0 for kind in _KINDS)
        and (last is None or (type(last) is int and last >= 0))
        and type(record["frame_meta_lost"]) is int
        and record["frame_meta_lost"] >= 0
    )
