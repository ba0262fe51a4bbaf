"""The receiver's end_series requests, on a receiver whose thread is not running (so
that when a request is taken is the test's choice): a request not taken in time is
withdrawn and changes nothing when the receiver gets to it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from deepdenoise_client import encode_frame

from stream.protocol import Limits
from stream.service._events import EventEmitter
from stream.service._queues import StageQueue
from stream.service._receive import Receiver
from stream.service._stats import ServiceStats


def _receiver() -> tuple[Receiver, StageQueue[Any]]:
    inference: StageQueue[Any] = StageQueue(16)
    sent: list[dict[str, Any]] = []
    receiver = Receiver(
        Limits(), ServiceStats(), EventEmitter(sent.append), inference, None,
        threading.Event(), threading.Event(),
    )  # fmt: skip
    return receiver, inference


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
