"""Counters and recent-latency statistics shared by the service's threads."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Latency percentiles are computed over this many most recent frames.
LATENCY_WINDOW = 2048
#: Frames per second are averaged over this many seconds.
FPS_WINDOW_S = 5.0
#: Ended series whose counters stay in ``status`` (the most recently ended): a service
#: that sees a new series every trial for days keeps its status message small.
ENDED_KEPT = 256


@dataclass
class SeriesCounters:
    frames_in: int = 0
    frames_out: int = 0
    last_index: int = -1
    gaps: int = 0
    missing: int = 0
    out_of_order: int = 0
    resent: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ServiceStats:
    """Everything the status message reports; all mutation goes through the lock."""

    started_ns: int = field(default_factory=time.monotonic_ns)
    frames_in: int = 0
    frames_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    sanitized: Counter[str] = field(default_factory=Counter)
    series: dict[str, SeriesCounters] = field(default_factory=dict)
    #: Series ended and not begun again, oldest first (a dict as an ordered set).
    _ended: dict[str, None] = field(default_factory=dict)
    _latency_ms: np.ndarray = field(default_factory=lambda: np.full(LATENCY_WINDOW, np.nan))
    _latency_pos: int = 0
    _done_times: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # numpy initialises its percentile machinery on first use (~15 ms here); pay
        # that now, not on the publisher thread in the middle of the first series.
        latency_summary(np.ones(2))

    def series_counters(self, name: str) -> SeriesCounters:
        with self._lock:
            return self.series.setdefault(name, SeriesCounters())

    def count_in(self, series: str) -> None:
        with self._lock:
            self.frames_in += 1
            self.series.setdefault(series, SeriesCounters()).frames_in += 1
            self._ended.pop(series, None)  # open again

    def series_ended(self, series: str) -> None:
        """The series' end was reported; beyond ``ENDED_KEPT`` ended series, the counters
        of the one ended longest ago leave ``status`` (its ``series_end`` gave them)."""
        with self._lock:
            self._ended.pop(series, None)
            self._ended[series] = None
            while len(self._ended) > ENDED_KEPT:
                oldest = next(iter(self._ended))
                del self._ended[oldest]
                self.series.pop(oldest, None)

    def count_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def count_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n

    def count_sanitized(self, reason: str) -> None:
        with self._lock:
            self.sanitized[reason] += 1

    def count_out(self, series: str, latency_ms: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            self.series.setdefault(series, SeriesCounters()).frames_out += 1
            self._latency_ms[self._latency_pos % LATENCY_WINDOW] = latency_ms
            self._latency_pos += 1
            self._done_times.append(now)
            while self._done_times and now - self._done_times[0] > FPS_WINDOW_S:
                self._done_times.popleft()

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy, safe to msgpack (no numpy scalars)."""
        with self._lock:
            recent = self._latency_ms[~np.isnan(self._latency_ms)]
            now = time.monotonic()
            done = [t for t in self._done_times if now - t <= FPS_WINDOW_S]
            span = (done[-1] - done[0]) if len(done) > 1 else 0.0
            return {
                "uptime_s": round((time.monotonic_ns() - self.started_ns) / 1e9, 3),
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "dropped": dict(self.dropped),
                "rejected": dict(self.rejected),
                "sanitized": dict(self.sanitized),
                "fps": round((len(done) - 1) / span, 2) if span > 0 else 0.0,
                # the window is frames, not time: after a pause its figures are old ones
                "latency_ms": {
                    **latency_summary(recent),
                    "frames": int(recent.size),
                    # the trim in count_out keeps the latest frame out, however old
                    "since_last_s": round(now - self._done_times[-1], 3)
                    if self._done_times
                    else None,
                },
                "series": {name: c.as_dict() for name, c in self.series.items()},
            }


def latency_summary(samples_ms: np.ndarray) -> dict[str, float]:
    """p50/p99 of recent latencies in ms (NaN-free input); zeros when there are none."""
    if samples_ms.size == 0:
        return {"p50": 0.0, "p99": 0.0}
    p50, p99 = np.percentile(samples_ms, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}
