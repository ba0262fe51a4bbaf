"""Raw ROI means taken in the receive thread (from a series' first frame on): used when
the ROIs are still the same at the traces step, recomputed when a set_rois came in
between (never stale)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

from stream.protocol import Frame
from stream.service._events import EventEmitter
from stream.service._messages import RawMeans
from stream.service._queues import StageQueue
from stream.service._traces import TraceStep
from stream.traces import TraceConfig, rois_from_labels

SHAPE = (16, 20)


def _frame(index: int, pixels: np.ndarray) -> Frame:
    return Frame(b"frame", {}, "s", index, pixels, None)


def _traces(queue: StageQueue) -> list[tuple[dict, np.ndarray]]:
    out = []
    while (item := queue.get(timeout=0)) is not None:
        out.append((msgpack.unpackb(item.header), item.payload))
    return out


def test_raw_means_from_receive_are_used_only_with_the_same_rois(tmp_path: Path) -> None:
    labels = np.zeros(SHAPE, np.uint16)
    labels[2:6, 2:8] = 1
    labels[9:14, 10:18] = 2
    np.save(tmp_path / "rois.npy", labels)
    published: StageQueue = StageQueue(100)
    step = TraceStep(TraceConfig(rois=tmp_path / "rois.npy"), published, EventEmitter(print))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 1000, SHAPE).astype(np.uint16) for _ in range(3)]
    clean = np.zeros(SHAPE, np.float32)

    # A series' first frame: its ROIs are bound already (the file gave the shape).
    first = step.raw_means(_frame(0, frames[0]))
    assert first is not None
    np.testing.assert_allclose(first.means, [frames[0][labels == v].mean() for v in (1, 2)])
    assert step.raw_means(_frame(0, frames[0][:, :10])) is None  # not bound to that shape
    step.on_frame(_frame(0, frames[0]), clean, "m", 1, 2, 0.0, first)
    early = step.raw_means(_frame(1, frames[1]))
    assert early is not None
    np.testing.assert_allclose(early.means, [frames[1][labels == v].mean() for v in (1, 2)])
    # A deliberately wrong value shows whether the step used the receive-side means.
    marked = RawMeans(early.rois, np.array([-1.0, -2.0]))
    step.on_frame(_frame(1, frames[1]), clean, "m", 1, 2, 0.0, marked)
    # New ROIs arrive before frame 2 is denoised: its receive-side means are stale.
    other = labels.copy()
    other[other == 2] = 0
    with pytest.raises(TimeoutError):  # queued; the next frame applies it
        step.set_rois(rois_from_labels(other), None, 0)
    step.on_frame(_frame(2, frames[2]), clean, "m", 1, 2, 0.0, marked)

    _, (_, second), (_, third) = _traces(published)
    np.testing.assert_array_equal(second[:, 0], [-1.0, -2.0])  # used: same ROIs
    assert third.shape[0] == 1  # the new ROIs: one row
    np.testing.assert_allclose(third[0, 0], frames[2][other == 1].mean())  # recomputed


def test_a_completed_blocks_quantile_is_taken_after_its_frames_traces_are_out(
    tmp_path: Path,
) -> None:
    labels = np.zeros(SHAPE, np.uint16)
    labels[2:6, 2:8] = 1
    np.save(tmp_path / "rois.npy", labels)
    published: StageQueue = StageQueue(100)
    config = TraceConfig(
        rois=tmp_path / "rois.npy", baseline={"block_frames": 2, "window_frames": 8}
    )
    step = TraceStep(config, published, EventEmitter(print))
    frame = np.full(SHAPE, 500, np.uint16)
    for index in range(4):  # blocks complete at frames 1 and 3
        step.on_frame(_frame(index, frame), frame.astype(np.float32), "m", 0, 0, 100.0)
        # not left for the next frame's update, on the path its traces wait on
        assert not step._state["s"]._baseline._unsettled
    assert len(_traces(published)) == 4
