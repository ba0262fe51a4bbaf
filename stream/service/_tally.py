"""Counts told in the log at most once per period and key, with the count since the
last line: a flood of one kind of failure becomes a line every few seconds, and what
waited is told when due, not only when the next one comes."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Tally(Generic[K]):
    """Counts per key; :meth:`due` hands out those whose line is due, and starts their
    counts again.

    Thread-safe: counted on one thread, told from another."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._lock = threading.Lock()
        self._counts: dict[K, int] = {}
        self._last: dict[K, str] = {}  # the latest detail counted, per key
        self._told_at: dict[K, float] = {}

    def count(self, key: K, detail: str = "") -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            self._last[key] = detail

    def due(self) -> list[tuple[K, int, str]]:
        """``(key, count, latest detail)`` for each key with a count whose last line
        was at least :attr:`every_s` ago (or never)."""
        now = time.monotonic()
        told = []
        with self._lock:
            for key, count in self._counts.items():
                told_at = self._told_at.get(key)
                if count and (told_at is None or now - told_at >= self.every_s):
                    told.append((key, count, self._last[key]))
                    self._counts[key] = 0
                    self._told_at[key] = now
        return told
