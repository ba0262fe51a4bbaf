"""Service events (topic ``event``) with per-kind rate limiting.

A sender that streams garbage must not turn the event topic into a second firehose:
counters stay exact, but at most ``burst`` events per kind and reason go out each second
(the status message carries the totals).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)


class EventEmitter:
    """Builds event headers and hands them to ``send`` (the publisher's queue)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], burst: int = 20) -> None:
        self._send = send
        self._burst = burst
        self._lock = threading.Lock()
        self._window: dict[str, tuple[int, int]] = {}  # key -> (second, count)
        self.suppressed = 0

    def emit(self, event: str, *, limit_key: str | None = None, **fields: Any) -> bool:
        """Publish ``event``; False if rate limiting suppressed it.

        ``limit_key`` groups events that share one rate limit (None: never limited).
        """
        if limit_key is not None and not self._allow(f"{event}:{limit_key}"):
            return False
        header = {"v": PROTOCOL_VERSION, "event": event, "t_ns": time.time_ns(), **fields}
        self._send(header)
        return True

    def report_suppressed(self) -> None:
        """Log the events suppressed in seconds now over: a flood's end is told too, not
        only when its next event comes (an operator's trial: 1,980 never, one 29 s late).
        Called with each status message."""
        second = int(time.monotonic())
        with self._lock:
            for key, (window_second, count) in self._window.items():
                if window_second != second and count > self._burst:
                    self._log_suppressed(key, count)
                    self._window[key] = (window_second, self._burst)

    def _log_suppressed(self, key: str, count: int) -> None:
        log.warning(
            "%d more %s event(s) suppressed in a second (status counts every one)",
            count - self._burst,
            key,
        )

    def _allow(self, key: str) -> bool:
        second = int(time.monotonic())
        with self._lock:
            window_second, count = self._window.get(key, (second, 0))
            if window_second != second:
                if count > self._burst:  # the log is a long run's record: the flood told
                    self._log_suppressed(key, count)
                window_second, count = second, 0
            self._window[key] = (window_second, count + 1)
            if count >= self._burst:
                self.suppressed += 1
                return False
            return True
