"""The totals a close on a full disk cannot record are set aside in the store's reserve
file, and taken from there when the store is next opened."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stream.service._writer import _left_open_totals
from stream.store import SeriesStore, StoreConfig, closed_totals, left_open, store_path
from stream.store._close_reserve import RESERVE_BYTES, RESERVE_FILE, CloseReserve


def _full_disk_close(folder: Path) -> subprocess.CompletedProcess[str]:
    """A store whose disk fills (a file-size limit, in a process of its own) after its
    first 4 frames: frames 4..11 are lost, and its close cannot write its attributes."""
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        import numpy as np
        from stream import StoreError
        from stream.store import SeriesStore, StoreConfig

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        rng = np.random.default_rng(0)
        store = SeriesStore(Path({str(folder)!r}), "full", (64, 64), "<u2",
                            config=StoreConfig(frames_per_shard=4))
        for i in range(4):
            store.write_raw(i, rng.integers(0, 60000, (64, 64)).astype("<u2"), i + 1)
        store.flush()
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, resource.RLIM_INFINITY))
        for i in range(4, 12):
            try:  # a write that failed meanwhile is told by a later one (counted)
                store.write_raw(i, rng.integers(0, 60000, (64, 64)).astype("<u2"), i + 1)
            except StoreError:
                pass
        try:
            store.close()
        except StoreError as exc:
            print("close failed:", exc)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )


def test_totals_a_full_disk_kept_from_the_attributes_are_taken_at_the_next_open(
    tmp_path: Path,
) -> None:
    done = _full_disk_close(tmp_path)
    assert done.returncode == 0 and "close failed" in done.stdout, done.stderr
    path = store_path(tmp_path, "full")
    assert left_open(path)  # the attributes still say open
    reserve = CloseReserve(path, fsync=False)
    assert reserve.read() == {
        "lost": {"raw": 8, "clean": 0},
        "last_index": 11,
        "frame_meta_lost": 0,
    }

    store = SeriesStore(tmp_path, "full", (64, 64), "<u2", locked_only=True)
    store.close()  # as a restart closes a store left open
    assert _left_open_totals(store) == (
        "full (4 frames, 8 missing, 4 not denoised, lost to write errors: 8 raw)"
    )
    totals = closed_totals(path)
    # it said 0 missing and nothing lost: frames 4..11 were past its last frame on disk
    assert totals == {"frames": 4, "missing": 8, "lost": {"raw": 8, "clean": 0}, "closed": True}
    assert reserve.read() is None and (path / RESERVE_FILE).stat().st_size == RESERVE_BYTES


def test_lost_frames_add_up_over_the_sessions_of_a_store(tmp_path: Path) -> None:
    """The store's ``lost`` counts over its life: a resumed session adds its own."""
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        store.lost["raw"] += 2  # as a session that lost two frames counts them
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        store.lost["clean"] += 1
    totals = closed_totals(store_path(tmp_path, "s"))
    assert totals is not None and totals["lost"] == {"raw": 2, "clean": 1}


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * RESERVE_BYTES, b"\x81\xa1x\x01" + bytes(RESERVE_BYTES - 4), b"\xc1" * 8],
    ids=["empty", "zeros", "other map", "no msgpack"],
)
def test_a_reserve_with_no_record_is_none(tmp_path: Path, content: bytes) -> None:
    (tmp_path / RESERVE_FILE).write_bytes(content)
    assert CloseReserve(tmp_path, fsync=False).read() is None


def test_what_no_record_left_in_a_reserve_is_cleared_by_the_next_close(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        store.write_raw(0, np.ones((4, 4), "<u2"), 1)
    reserve = store_path(tmp_path, "s") / RESERVE_FILE
    reserve.write_bytes(b"\x85torn" + bytes(RESERVE_BYTES - 5))  # a record cut short
    with SeriesStore(tmp_path, "s", (4, 4), "<u2"):
        pass
    assert reserve.read_bytes() == bytes(RESERVE_BYTES)


def test_a_store_opens_where_its_reserve_cannot_be_made(tmp_path: Path) -> None:
    """A reserve that cannot be made (here a folder in its place) keeps no store from
    opening or closing."""
    with SeriesStore(tmp_path, "odd", (4, 4), "<u2") as store:
        store.write_raw(0, np.ones((4, 4), "<u2"), 1)
    (store_path(tmp_path, "odd") / RESERVE_FILE).unlink()
    (store_path(tmp_path, "odd") / RESERVE_FILE).mkdir()
    with SeriesStore(tmp_path, "odd", (4, 4), "<u2", config=StoreConfig()) as store:
        store.write_raw(1, np.ones((4, 4), "<u2"), 2)
    totals = closed_totals(store_path(tmp_path, "odd"))
    assert totals is not None and totals["frames"] == 2


def test_a_record_older_than_the_stores_recorded_totals_is_not_taken(tmp_path: Path) -> None:
    """A close that recorded its totals, killed before it zeroed the reserve, left an
    older record there: taken at the next open, it replaced the newer totals (a review:
    raw 5 became raw 2)."""
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        store.lost["raw"] += 5
    path = store_path(tmp_path, "s")
    older = {"lost": {"raw": 2, "clean": 0}, "last_index": 9, "frame_meta_lost": 0}
    assert CloseReserve(path, fsync=False).write(older)
    SeriesStore(tmp_path, "s", (4, 4), "<u2").release()  # opened, then killed: a session
    # that left its attributes open again; the next open took the record (a re-review)
    with SeriesStore(tmp_path, "s", (4, 4), "<u2"):
        pass
    totals = closed_totals(path)
    assert totals is not None and totals["lost"] == {"raw": 5, "clean": 0}
    assert totals["missing"] == 0  # nor its last index taken
    assert CloseReserve(path, fsync=False).read() is None  # zeroed by this close
