"""One writer per store folder: an advisory ``flock`` on the folder itself.

The OS releases the lock when its descriptor closes or the process dies, so a killed
writer leaves no stale lock behind. Readers take no lock and are never stopped.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .._errors import StoreError, StoreHeldError

log = logging.getLogger(__name__)


def lock_store(path: Path) -> int | None:
    """Lock the store folder ``path`` for writing until :func:`unlock_store`.

    Returns the lock's file descriptor (None where a file system or the OS has no
    ``flock``: then nothing stops a second writer); StoreHeldError if another process (or
    another open store in this one) holds it.

    The folder itself is locked, not a file in it: a file that is no Zarr node makes
    zarr-python warn whenever it lists the group.
    """
    if sys.platform == "win32":  # no flock: nothing stops a second writer there
        return None
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreHeldError(
            f"{path} is being written by another process (or another store opened on it): "
            "two writers would overwrite each other's frames"
        ) from None
    except OSError as exc:  # a file system without flock (some network ones): unlocked
        log.warning("%s cannot be locked (%s): nothing stops a second writer", path, exc)
        os.close(fd)
        return None
    return fd


def unlock_store(fd: int | None) -> None:
    """Release a lock taken by :func:`lock_store` (None: nothing to release)."""
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the lock


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
