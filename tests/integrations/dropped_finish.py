"""A pymmcore-plus relay thread that ends without passing on ``sequenceFinished``, as
its race leaves it (the stop flag seen before that event is queued). Run as a script
(``python dropped_finish.py ENDPOINT``) it streams one such run and exits at once."""

from __future__ import annotations

import sys

import numpy as np
import useq
from deepdenoise_client.mmcore import DenoiseHandler
from pymmcore_plus.mda._thread_relay import MDARelayThread
from pymmcore_plus.mda.events import MDASignaler


def run_dropping_the_finish(handler: DenoiseHandler, frames: int, shape: tuple[int, int]) -> None:
    """``frames`` frames through a real relay to ``handler``, then the relay stopped and
    joined (as ``mda.run`` waits for it) with no ``sequenceFinished`` queued."""
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": frames})
    # psygnal's signals, as pymmcore-plus picks where no Qt application exists: once a
    # test has made one (napari's), it picks Qt's, whose calls from the relay thread wait
    # for an event loop that no test runs (the handler then never saw the frames)
    relay = MDARelayThread(signal_class=MDASignaler)
    for name in ("sequenceStarted", "frameReady", "sequenceFinished"):
        getattr(relay.signals, name).connect(getattr(handler, name))
    relay.start()
    relay.sequenceStarted(sequence, {})
    for event in sequence:
        relay.frameReady(np.full(shape, 7, np.uint16), event, {})
    relay.stop()
    relay.join(30)


if __name__ == "__main__":
    run_dropping_the_finish(
        DenoiseHandler(sys.argv[1], series="last", linger=5, timeout=5), 2, (16, 16)
    )
