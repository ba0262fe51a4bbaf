"""The receiver's end_series requests, on a receiver whose thread is not running (so
that when a request is taken is the test's choice): a request not taken in time is
withdrawn and changes nothing when the receiver gets to it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deepdenoise_client import encode_frame

from stream import DeepDenoiseError
from stream.protocol import Limits
from stream.service._events import EventEmitter
from stream.service._queues import StageQueue
from stream.service._receive import Receiver
from stream.service._stats import ServiceStats


def _receiver(writer: Any = None) -> tuple[Receiver, StageQueue[Any]]:
    inference: StageQueue[Any] = StageQueue(16)
    sent: list[dict[str, Any]] = []
    receiver = Receiver(
        Limits(), ServiceStats(), EventEmitter(sent.append), inference, writer,
        threading.Event(), threading.Event(),
    )  # fmt: skip
    return receiver, inference


class _HungWriter:
    """A writer whose queue is full behind a hung disk: ``put`` waits for ``opened``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened = threading.Event()

    def put(self, op: Any) -> None:
        self.opened.wait(20)


def test_a_request_the_receiver_did_not_take_in_time_changes_nothing() -> None:
    receiver, inference = _receiver()
    receiver.handle(encode_frame(np.zeros((4, 4), np.uint16), "s", 0), 0)
    with pytest.raises(TimeoutError, match=r"did not take the request within 0.2 s"):
        receiver.end_series("s", timeout=0.2)
    receiver._take_end_requests()  # the receiver gets to it late: withdrawn, not run
    queued = [inference.get(timeout=1) for _ in range(len(inference))]
    assert [type(item).__name__ for item in queued] == ["Job"]  # no SeriesEnd
    # asked again while the receiver takes its requests: ended
    asker = threading.Thread(target=lambda: result.append(receiver.end_series("s", 10)))
    result: list[int] = []
    asker.start()
    while asker.is_alive():
        receiver._take_end_requests()
        asker.join(0.01)
    assert result == [0]
    assert type(inference.get(timeout=1)).__name__ == "SeriesEnd"


def test_an_end_whose_marks_wait_behind_a_hung_disk_is_answered_at_once(tmp_path: Path) -> None:
    """The end's marks go to the writer's queue, full behind a hung disk: the asker is
    answered once the receiver has ended the series, not when the disk comes back (it
    waited past its timeout, and with it every control command queued behind)."""
    writer = _HungWriter(tmp_path)
    writer.opened.set()
    receiver, _ = _receiver(writer)
    receiver.handle(encode_frame(np.zeros((4, 4), np.uint16), "s", 0), 0)
    writer.opened.clear()  # the disk hangs from here
    taker = threading.Thread(target=receiver._take_end_requests)
    asked: list[int] = []
    asker = threading.Thread(target=lambda: asked.append(receiver.end_series("s", 10)))
    asker.start()
    while receiver._end_requests.empty():  # queued before the receiver looks
        asker.join(0.01)
    taker.start()
    asker.join(15)
    answered, hung = not asker.is_alive(), taker.is_alive()  # the end's marks still wait
    writer.opened.set()
    taker.join(30)
    assert answered and hung and asked == [0]


def test_a_stopping_receiver_refuses_at_once() -> None:
    receiver, inference = _receiver()
    receiver.handle(encode_frame(np.zeros((4, 4), np.uint16), "s", 0), 0)
    receiver._halt.set()  # the stop's drain: requests are no longer taken
    with pytest.raises(DeepDenoiseError, match=r"the service is stopping: 's' was not ended"):
        receiver.end_series("s", timeout=30)
    assert [type(inference.get(timeout=1)).__name__] == ["Job"] and len(inference) == 0
