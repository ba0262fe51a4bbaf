"""Each frame's ``meta`` kept beside a series store's arrays (``frame_meta.msgpack``):
round trips of any msgpack map, resends, a torn last record, a write the disk refuses."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from stream.store import (
    ARRAY_PATHS,
    FRAME_META_FILE,
    SeriesStore,
    StoreConfig,
    read_frame_meta,
    store_path,
    summarize_store,
)
from stream.store import _frame_meta as frame_meta
from stream.store._frame_meta import FrameMetaLog

K4 = StoreConfig(frames_per_shard=4)


def _frame(i: int) -> np.ndarray:
    return np.full((5, 6), i, dtype="<u2")


def test_each_frames_meta_is_read_back_as_it_came(tmp_path: Path) -> None:
    metas = {
        0: {"exposure_ms": 10.5, "stage": [1.25, -3.0, 40.0]},
        2: {"camera": {"binning": 2, "roi": [0, 0, 512, 512]}, "tag": b"\x00\xff", 7: None},
        3: {"note": "Zoë\u2028", "big": 2**63 - 1, "small": -(2**63)},
    }
    with SeriesStore(tmp_path, "m", (5, 6), "<u2", config=K4) as store:
        for i in range(6):
            store.write_raw(i, _frame(i), 1000 + i, metas.get(i))
        store.write_raw(3, _frame(3), 1003, {"note": "sent again"})  # a resend: last counts
    assert read_frame_meta(store_path(tmp_path, "m")) == {
        0: metas[0], 2: metas[2], 3: {"note": "sent again"}
    }  # fmt: skip
    group = zarr.open_group(str(store_path(tmp_path, "m")), mode="r")  # Zarr passes it over
    assert group[ARRAY_PATHS["valid"]][:].all()
    assert "frame_meta_lost" not in group.attrs["deepdenoise"]
    summary = summarize_store(store_path(tmp_path, "m"))  # what `deepdenoise info` shows
    assert summary["frame_meta"] == f"3 frame(s) in {FRAME_META_FILE}"


def test_a_store_with_no_meta_has_no_meta_file(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "plain", (5, 6), "<u2", config=K4) as store:
        store.write_raw(0, _frame(0), None)
    assert not (store_path(tmp_path, "plain") / FRAME_META_FILE).exists()
    assert read_frame_meta(store_path(tmp_path, "plain")) == {}
    assert summarize_store(store_path(tmp_path, "plain"))["frame_meta"].startswith("0 frame(s)")


def test_a_torn_last_record_is_cut_when_the_store_resumes(tmp_path: Path) -> None:
    """A process killed while appending leaves part of a record; the records a resumed
    store appends after it must still read."""
    with SeriesStore(tmp_path, "t", (5, 6), "<u2", config=K4) as store:
        store.write_raw(0, _frame(0), 1, {"a": 1})
    path = store_path(tmp_path, "t") / FRAME_META_FILE
    whole = path.read_bytes()
    with open(path, "ab") as file:
        file.write(whole[: len(whole) // 2])  # half a record
    assert read_frame_meta(store_path(tmp_path, "t")) == {0: {"a": 1}}  # the reader skips it
    with SeriesStore(tmp_path, "t", (5, 6), "<u2", config=K4) as store:
        assert path.stat().st_size == len(whole)  # cut at the last whole record
        store.write_raw(1, _frame(1), 2, {"b": 2})
    assert read_frame_meta(store_path(tmp_path, "t")) == {0: {"a": 1}, 1: {"b": 2}}


def test_a_write_the_disk_refuses_is_cut_off_and_counted(tmp_path: Path) -> None:
    """A file-size limit stands in for a full disk (in a process of its own): the write
    that fails is cut back off the file, its records count as lost, and the records
    written after it read."""
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from stream.store._frame_meta import FrameMetaLog, read_frame_meta

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        folder = Path({str(tmp_path)!r})
        log = FrameMetaLog(folder, fsync=False)
        log.append(0, 10, {{"small": 1}})
        log.flush()
        size = log.path.stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, resource.RLIM_INFINITY))
        log.append(1, 11, {{"big": "x" * 1000}})  # past the limit: part of it written
        log.append(2, 12, {{"big": "y" * 1000}})
        log.flush()
        assert (log.lost, log.written) == (2, 1), (log.lost, log.written)
        assert log.path.stat().st_size == size, "the torn record was not cut"
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        log.append(3, 13, {{"after": True}})
        log.flush()
        assert read_frame_meta(folder) == {{0: {{"small": 1}}, 3: {{"after": True}}}}
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "the meta of 2 frame(s) is not on disk" in done.stderr


def test_meta_the_store_could_not_write_is_counted_in_its_attributes(tmp_path: Path) -> None:
    """A file that cannot be appended to (here a folder in its place) loses the meta of
    the frames it held, counted; their pixels are stored all the same."""
    with SeriesStore(tmp_path, "lossy", (5, 6), "<u2", config=K4) as store:
        (store_path(tmp_path, "lossy") / FRAME_META_FILE).mkdir()
        for i in range(3):
            store.write_raw(i, _frame(i), i, {"i": i})
    group = zarr.open_group(str(store_path(tmp_path, "lossy")), mode="r")
    assert group.attrs["deepdenoise"]["frame_meta_lost"] == 3
    assert group[ARRAY_PATHS["valid"]][:].all()
    assert "3 frame(s)' meta lost" in summarize_store(store_path(tmp_path, "lossy"))["frame_meta"]


def test_a_zero_filled_tail_is_no_record_and_is_cut(tmp_path: Path) -> None:
    """Zeros after the last record (a power cut with fsync off) read as msgpack integers:
    not records, so the reader stops there and a resumed store cuts them."""
    with SeriesStore(tmp_path, "z", (5, 6), "<u2", config=K4) as store:
        store.write_raw(0, _frame(0), 1, {"a": 1})
    path = store_path(tmp_path, "z") / FRAME_META_FILE
    size = path.stat().st_size
    with open(path, "ab") as file:
        file.write(bytes(16))
    assert read_frame_meta(store_path(tmp_path, "z")) == {0: {"a": 1}}
    with SeriesStore(tmp_path, "z", (5, 6), "<u2", config=K4) as store:
        assert path.stat().st_size == size
        store.write_raw(1, _frame(1), 2, {"b": 2})
    assert read_frame_meta(store_path(tmp_path, "z")) == {0: {"a": 1}, 1: {"b": 2}}


def test_a_torn_record_whose_cut_failed_is_cut_before_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write whose cut failed too (the disk still full) leaves a torn record:
    the next append cuts it first, so the records after it still read."""
    log = FrameMetaLog(tmp_path, fsync=False)
    log.append(0, 10, {"a": 1})
    log.flush()
    size = log.path.stat().st_size

    class TornFile(io.FileIO):
        def write(self, data: Any) -> int:  # part of the record, then a full disk
            os.write(self.fileno(), bytes(data[:5]))
            raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(frame_meta, "open", lambda path, mode, buffering: TornFile(path, "a"),
                        raising=False)  # fmt: skip
        patched.setattr(frame_meta, "_cut", lambda file, size: False)
        log.append(1, 11, {"b": 2})
        log.flush()
    assert (log.lost, log.path.stat().st_size) == (1, size + 5)  # torn, not cut yet
    log.append(2, 12, {"c": 3})
    log.flush()
    assert log.path.stat().st_size > size
    assert read_frame_meta(tmp_path) == {0: {"a": 1}, 2: {"c": 3}}


def test_a_meta_file_that_cannot_be_read_keeps_no_frame_from_its_store(tmp_path: Path) -> None:
    """A resumed store whose meta file cannot be read (a folder in its place) opens and
    stores its frames; their meta is counted lost."""
    with SeriesStore(tmp_path, "odd", (5, 6), "<u2", config=K4) as store:
        store.write_raw(0, _frame(0), 1)
    (store_path(tmp_path, "odd") / FRAME_META_FILE).mkdir()
    with SeriesStore(tmp_path, "odd", (5, 6), "<u2", config=K4) as store:
        store.write_raw(1, _frame(1), 2, {"b": 2})
    group = zarr.open_group(str(store_path(tmp_path, "odd")), mode="r")
    assert group[ARRAY_PATHS["valid"]][:].tolist() == [True, True]
    assert group.attrs["deepdenoise"]["frame_meta_lost"] == 1


def test_a_frame_flagged_valid_has_its_meta_on_disk(tmp_path: Path) -> None:
    """As a store that is killed sees it, between flushes: every frame flagged valid has
    its record (the records were appended only at the 2 s flush, while full shards were
    flagged within 0.2 s: a trial's kill -9 left 36 frames without their meta)."""
    store = SeriesStore(tmp_path, "k", (5, 6), "<u2", config=K4)
    try:
        valid = np.zeros(0, bool)
        for i in range(2000):  # until some frames are flagged (a liveness bound)
            store.write_raw(i, _frame(i), i, {"i": i})
            group = zarr.open_group(str(store_path(tmp_path, "k")), mode="r")
            valid = group[ARRAY_PATHS["valid"]][:]
            if valid.any():
                break
            time.sleep(0.005)
        flagged = set(np.flatnonzero(valid).tolist())
        assert flagged and flagged <= set(read_frame_meta(store_path(tmp_path, "k")))
    finally:
        store.close()


def test_bytes_that_decode_to_no_record_keep_the_store_opening(tmp_path: Path) -> None:
    """A map keyed by an array (unhashable in Python) after the last record: readers and
    a resumed store stop there, and the store opens (it raised TypeError, which stopped
    the service's writer)."""
    with SeriesStore(tmp_path, "bad", (5, 6), "<u2", config=K4) as store:
        store.write_raw(0, _frame(0), 1, {"a": 1})
    path = store_path(tmp_path, "bad") / FRAME_META_FILE
    with open(path, "ab") as file:
        file.write(bytes([0x81, 0x90, 0x00]))  # {[]: 0}
    assert read_frame_meta(store_path(tmp_path, "bad")) == {0: {"a": 1}}
    with SeriesStore(tmp_path, "bad", (5, 6), "<u2", config=K4) as store:
        store.write_raw(1, _frame(1), 2, {"b": 2})
    assert read_frame_meta(store_path(tmp_path, "bad")) == {0: {"a": 1}, 1: {"b": 2}}


def test_a_cut_left_for_a_file_made_anew_pads_nothing(tmp_path: Path) -> None:
    """A cut still due when the file is gone (its store removed and made again): the new
    file is not padded to the old size with zeros, which hid the records after them."""
    log = FrameMetaLog(tmp_path, fsync=False)
    log.append(0, 10, {"a": 1})
    log.flush()
    log._cut_to = log.path.stat().st_size  # as a failed cut leaves it
    log.path.unlink()
    log.append(1, 11, {"b": 2})
    log.flush()
    assert read_frame_meta(tmp_path) == {1: {"b": 2}}
