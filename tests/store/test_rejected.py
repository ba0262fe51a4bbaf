"""The side store of rejected frames: what goes in comes back, whole rows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from stream import StoreError
from stream._errors import StoreWriteError
from stream.store import (
    FRAME_META_FILE,
    RejectedStore,
    read_rejected,
    rejected_path,
    summarize_rejected,
)


def pixels(seed: int, shape: tuple[int, int] = (6, 9), dtype: str = "<u2") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(dtype)


def test_rejected_frames_come_back_by_reason_and_layout(tmp_path: Path) -> None:
    store = RejectedStore(tmp_path, "cam")
    dup = [pixels(i) for i in range(3)]
    other = pixels(9, shape=(4, 4), dtype="<f4")
    for i, frame in enumerate(dup):
        store.add("duplicate", 10 + i, frame, t_ns=100 + i, t_recv_ns=1000 + i)
    store.add("series_mismatch", 2, other, t_ns=None, t_recv_ns=2000)
    assert not rejected_path(tmp_path, "cam").exists()  # nothing written before the flush
    assert store.buffered_bytes == 3 * dup[0].nbytes + other.nbytes
    store.flush()
    assert store.written == 4 and store.buffered_bytes == 0

    path = tmp_path / "rejected" / "cam.zarr"
    assert summarize_rejected(path) == {
        "duplicate/uint16_6x9": 3,
        "series_mismatch/float32_4x4": 1,
    }
    duplicate, mismatch = read_rejected(path)
    assert duplicate.reason == "duplicate" and mismatch.reason == "series_mismatch"
    np.testing.assert_array_equal(duplicate.frames, np.stack(dup))
    assert duplicate.frames.dtype == np.dtype("<u2")
    assert duplicate.index.tolist() == [10, 11, 12]
    assert duplicate.t_ns.tolist() == [100, 101, 102]
    assert duplicate.t_recv_ns.tolist() == [1000, 1001, 1002]
    np.testing.assert_array_equal(mismatch.frames[0], other)
    assert mismatch.t_ns.tolist() == [0]  # no timestamp sent
    attrs = zarr.open_group(path, mode="r").attrs["deepdenoise"]
    assert attrs == {"rejected_version": 1, "series": "cam"}


def test_a_reopened_store_appends_over_rows_a_crash_left_uncounted(tmp_path: Path) -> None:
    first = RejectedStore(tmp_path, "cam")
    first.add("duplicate", 0, pixels(0), 1, 1)
    first.flush()
    first.close()
    block = zarr.open_group(rejected_path(tmp_path, "cam"), mode="a")["duplicate/uint16_6x9"]
    block["frames"].resize((3, 6, 9))  # a killed process wrote rows, never counted them
    block["frames"][1:] = 7
    assert read_rejected(rejected_path(tmp_path, "cam"))[0].index.tolist() == [0]

    again = RejectedStore(tmp_path, "cam")
    again.add("duplicate", 5, pixels(5), 2, 2)
    again.flush()
    (got,) = read_rejected(rejected_path(tmp_path, "cam"))
    assert got.index.tolist() == [0, 5]
    np.testing.assert_array_equal(got.frames, np.stack([pixels(0), pixels(5)]))


def test_a_block_that_cannot_be_written_is_counted_and_later_blocks_go_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "rejected").write_text("not a folder")  # the store cannot be created
    store = RejectedStore(tmp_path, "cam")
    store.add("duplicate", 0, pixels(0), 1, 1)
    store.add("duplicate", 1, pixels(1), 1, 1)
    with pytest.raises(StoreWriteError, match="2 rejected frame") as caught:
        store.flush()
    assert caught.value.lost == {"rejected": 2} and caught.value.kind == "store_rejected"
    assert store.written == 0 and store.buffered_bytes == 0  # given up, not retried

    (tmp_path / "rejected").unlink()  # space again
    store.add("duplicate", 2, pixels(2), 1, 1)
    store.flush()
    (got,) = read_rejected(rejected_path(tmp_path, "cam"))
    assert got.index.tolist() == [2] and store.written == 1


def test_a_second_writer_is_refused_and_counted_until_the_first_closes(
    tmp_path: Path,
) -> None:
    first = RejectedStore(tmp_path, "cam")
    first.add("duplicate", 0, pixels(0), 1, 1)
    first.flush()  # opened: holds the lock
    second = RejectedStore(tmp_path, "cam")
    second.add("duplicate", 7, pixels(7), 1, 1)
    second.add("duplicate", 8, pixels(8), 1, 1)
    with pytest.raises(StoreWriteError, match="being written by another") as caught:
        second.flush()
    assert caught.value.lost == {"rejected": 2} and second.written == 0
    first.add("duplicate", 1, pixels(1), 1, 1)
    first.flush()  # its rows were not written over
    first.close()

    second.add("duplicate", 9, pixels(9), 1, 1)
    second.flush()  # the lock is free: it goes on after the first writer's rows
    second.close()
    (got,) = read_rejected(rejected_path(tmp_path, "cam"))
    assert got.index.tolist() == [0, 1, 9]
    np.testing.assert_array_equal(got.frames, np.stack([pixels(0), pixels(1), pixels(9)]))


def test_reading_a_missing_store_says_where(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot read rejected frames at"):
        read_rejected(tmp_path / "rejected" / "none.zarr")


def test_rows_being_written_still_count_as_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop on a hung disk counts the buffered rows lost: those of a block whose write
    had begun were left out (a known gap), as the flush takes them from the buffer."""
    import threading

    store = RejectedStore(tmp_path, "cam")
    for i in range(3):
        store.add("duplicate", i, pixels(i), t_ns=None, t_recv_ns=i)
    store.add("series_mismatch", 9, pixels(9, shape=(4, 4)), t_ns=None, t_recv_ns=9)
    gate, entered = threading.Event(), threading.Event()
    append = RejectedStore._append

    def hangs(self: RejectedStore, reason: str, layout: str, block: object) -> None:
        entered.set()
        gate.wait(60)
        append(self, reason, layout, block)  # type: ignore[arg-type]

    monkeypatch.setattr(RejectedStore, "_append", hangs)
    flushing = threading.Thread(target=store.flush)
    flushing.start()
    try:
        assert entered.wait(30)
        assert store.buffered_rows == 4
    finally:
        gate.set()
        flushing.join(30)
    assert store.buffered_rows == 0 and store.written == 4
    store.close()


def test_each_rejected_frames_meta_comes_back_with_its_row(tmp_path: Path) -> None:
    store = RejectedStore(tmp_path, "cam")
    store.add("duplicate", 0, pixels(0), 1, 1)  # no meta: no meta file yet
    store.flush()
    block = rejected_path(tmp_path, "cam") / "duplicate" / "uint16_6x9"
    assert not (block / FRAME_META_FILE).exists()
    store.add("duplicate", 0, pixels(1), 2, 2, {"stage": [1.5, 2.0], "raw": b"\x00\x01"})
    store.add("duplicate", 1, pixels(2), 3, 3)
    store.add("series_mismatch", 4, pixels(3, (4, 4)), 4, 4, {"binning": 2})
    store.flush()
    store.close()
    duplicate, mismatch = read_rejected(rejected_path(tmp_path, "cam"))
    assert duplicate.index.tolist() == [0, 0, 1]
    assert duplicate.meta == [{}, {"stage": [1.5, 2.0], "raw": b"\x00\x01"}, {}]
    assert mismatch.meta == [{"binning": 2}]


def test_a_crash_s_uncounted_rows_leave_no_meta_to_the_rows_after(tmp_path: Path) -> None:
    """Rows a killed process wrote but never counted are written over by the next rows:
    their meta records are too, also by rows that carried no meta."""
    first = RejectedStore(tmp_path, "cam")
    first.add("duplicate", 0, pixels(0), 1, 1, {"kept": True})
    first.add("duplicate", 1, pixels(1), 1, 1, {"uncounted": True})
    first.flush()
    first.close()
    block = zarr.open_group(rejected_path(tmp_path, "cam"), mode="a")["duplicate/uint16_6x9"]
    block.attrs["frames"] = 1  # as if killed before the count took row 1
    assert read_rejected(rejected_path(tmp_path, "cam"))[0].meta == [{"kept": True}]

    again = RejectedStore(tmp_path, "cam")
    again.add("duplicate", 5, pixels(5), 2, 2)  # row 1 again, with no meta
    again.flush()
    (got,) = read_rejected(rejected_path(tmp_path, "cam"))
    assert got.index.tolist() == [0, 5] and got.meta == [{"kept": True}, {}]


def test_a_row_with_no_meta_whose_record_is_lost_is_no_meta_lost(tmp_path: Path) -> None:
    """Once a block has a meta file, a row with no meta gets an empty record too; its
    loss is no frame's meta lost (a review: counted 1)."""
    store = RejectedStore(tmp_path, "cam")
    store.add("duplicate", 0, pixels(0), 1, 1, {"a": 1})
    store.flush()
    block = rejected_path(tmp_path, "cam") / "duplicate" / "uint16_6x9"
    store.close()
    (block / FRAME_META_FILE).unlink()
    (block / FRAME_META_FILE).mkdir()  # no record can be appended now
    again = RejectedStore(tmp_path, "cam")
    again.add("duplicate", 1, pixels(1), 2, 2)
    again.add("duplicate", 2, pixels(2), 3, 3, {"b": 2})
    again.flush()
    assert again.take_frame_meta_lost()[0] == 1  # the row that carried meta only
