"""ROI traces in the series store: aligned with frame indices, a new array per layout,
continued on resume, described by their attributes, readable with plain zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from stream import StoreError
from stream.store import SeriesStore, summarize_store

LAYOUT = {"labels": [1, 2, 3], "columns": ["raw", "denoised", "dff"], "baseline": {"q": 0.08}}
OTHER = {"labels": [5, 6], "columns": ["raw", "denoised", "dff"]}


def _write(store: SeriesStore, indices: range, layout: dict, skip: int | None = None) -> None:
    rois = len(layout["labels"])
    for i in indices:
        store.write_raw(i, np.full((4, 4), i, np.uint16), None)
        if i != skip:
            store.write_traces(i, np.full((rois, 3), i, np.float32), layout)


def test_traces_line_up_with_frames_and_holes_are_nan(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        _write(store, range(300), LAYOUT, skip=120)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    traces = group["traces"]
    assert traces.shape == (300, 3, 3) and traces.dtype == np.float32
    values = traces[:]
    assert np.isnan(values[120]).all()
    np.testing.assert_array_equal(values[[0, 119, 299], 0, 0], [0, 119, 299])
    assert traces.attrs["labels"] == [1, 2, 3] and traces.attrs["first_index"] == 0
    assert traces.attrs["baseline"] == {"q": 0.08}
    assert summarize_store(tmp_path / "s.zarr")["traces"]["traces"]["shape"] == [300, 3, 3]


def test_a_new_roi_layout_starts_a_new_array(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        _write(store, range(10), LAYOUT)
        _write(store, range(10, 20), OTHER)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert group.attrs["deepdenoise"]["traces"] == ["traces", "traces_1"]
    assert group["traces"].shape == (10, 3, 3)
    second = group["traces_1"]
    assert second.shape == (20, 2, 3) and second.attrs["first_index"] == 10
    assert np.isnan(second[:10]).all() and second[15, 0, 0] == 15


def test_resume_continues_the_same_layout(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        _write(store, range(5), LAYOUT)
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        assert store.resumed
        _write(store, range(5, 9), LAYOUT)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert group.attrs["deepdenoise"]["traces"] == ["traces"]
    np.testing.assert_array_equal(group["traces"][:, 0, 0], np.arange(9))


def test_traces_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        _write(store, range(2), LAYOUT)
        with pytest.raises(StoreError, match="do not fit traces"):
            store.write_traces(2, np.zeros((2, 3), np.float32), LAYOUT)
        with pytest.raises(StoreError, match="expected traces of shape"):
            store.write_traces(2, np.zeros(3, np.float32), LAYOUT)


def test_trace_rows_not_on_disk_are_counted_as_unwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a stop on a hung disk counts lost: rows buffered, and a row being added while
    the previous chunk's rows are written (they were left out: a known gap)."""
    import threading

    from stream.store._traces import TraceArray

    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        _write(store, range(3), LAYOUT)
        assert store.unwritten()["traces"] == 3  # buffered
        store.flush()
        assert store.unwritten()["traces"] == 0
        chunk = store._traces.chunk if store._traces is not None else 0
        _write(store, range(3, chunk), LAYOUT)  # the rest of the first chunk, buffered
        gate, entered = threading.Event(), threading.Event()
        flush = TraceArray.flush

        def hangs(self: TraceArray) -> None:
            entered.set()
            gate.wait(60)
            flush(self)

        monkeypatch.setattr(TraceArray, "flush", hangs)
        rois = len(LAYOUT["labels"])
        row = np.full((rois, 3), chunk, np.float32)
        adding = threading.Thread(target=store.write_traces, args=(chunk, row, LAYOUT))
        adding.start()  # the next chunk's first row: the buffered ones are written first
        try:
            assert entered.wait(30)
            assert store.unwritten()["traces"] == chunk - 3 + 1  # buffered, and this row
        finally:
            gate.set()
            adding.join(30)
        assert store.unwritten()["traces"] == 1  # the new chunk's row, buffered


def test_trace_rows_a_failed_write_gives_up_are_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review (2026-12-07): the row completing a chunk whose write failed was counted
    lost by the writer and still counted as buffered (then written by a later flush)."""
    from stream._errors import StoreWriteError
    from stream.store._traces import TraceArray

    rois = len(LAYOUT["labels"])
    grow = TraceArray._grow

    def full_disk(self: TraceArray, needed: int) -> None:
        raise OSError(28, "No space left on device")

    with SeriesStore(tmp_path, "s", (4, 4), "<u2") as store:
        _write(store, range(1), LAYOUT)
        chunk = store._traces.chunk if store._traces is not None else 0
        _write(store, range(1, chunk - 1), LAYOUT)
        monkeypatch.setattr(TraceArray, "_grow", full_disk)
        with pytest.raises(StoreWriteError) as failed:  # the row that completes the chunk
            store.write_traces(chunk - 1, np.zeros((rois, 3), np.float32), LAYOUT)
        assert failed.value.lost == {"traces": chunk}  # every row of the chunk, this one too
        assert store.unwritten()["traces"] == 0  # given up: not counted again
        store.write_traces(chunk, np.zeros((rois, 3), np.float32), LAYOUT)
        store.write_traces(chunk + 1, np.zeros((rois, 3), np.float32), LAYOUT)
        with pytest.raises(StoreWriteError) as failed:  # a new chunk: the last one's rows
            store.write_traces(2 * chunk, np.zeros((rois, 3), np.float32), LAYOUT)
        assert failed.value.lost == {"traces": 2}  # not this one: it is buffered
        assert store.unwritten()["traces"] == 1
        monkeypatch.setattr(TraceArray, "_grow", grow)
