"""Which frame indices of a series have arrived: sorted, disjoint ``[start, stop)`` runs.

A stream in order is one run, however long; a hole splits it. Adding at the end, the
common case, is constant time.
"""

from __future__ import annotations

from bisect import bisect_right


class IndexRuns:
    """A set of non-negative integers stored as runs."""

    def __init__(self, runs: list[tuple[int, int]] | None = None) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []
        for start, stop in sorted(runs or []):  # merged where they touch or overlap
            if stop <= start:
                continue
            if self._stops and start <= self._stops[-1]:
                self._stops[-1] = max(self._stops[-1], stop)
            else:
                self._starts.append(start)
                self._stops.append(stop)

    def __contains__(self, index: int) -> bool:
        k = bisect_right(self._starts, index) - 1
        return k >= 0 and index < self._stops[k]

    def __len__(self) -> int:
        """How many indices (not runs)."""
        return sum(b - a for a, b in zip(self._starts, self._stops, strict=True))

    @property
    def runs(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._stops, strict=True))

    @property
    def last(self) -> int:
        """The highest index, -1 when empty."""
        return self._stops[-1] - 1 if self._stops else -1

    def add(self, index: int) -> bool:
        """Add ``index``; False if it was there already."""
        if self._stops and index == self._stops[-1]:  # in order: extend the last run
            self._stops[-1] += 1
            return True
        k = bisect_right(self._starts, index) - 1
        if k >= 0 and index < self._stops[k]:
            return False
        joins_left = k >= 0 and self._stops[k] == index
        joins_right = k + 1 < len(self._starts) and self._starts[k + 1] == index + 1
        if joins_left and joins_right:
            self._stops[k] = self._stops[k + 1]
            del self._starts[k + 1], self._stops[k + 1]
        elif joins_left:
            self._stops[k] += 1
        elif joins_right:
            self._starts[k + 1] -= 1
        else:
            self._starts.insert(k + 1, index)
            self._stops.insert(k + 1, index + 1)
        return True

    def holes(self) -> list[tuple[int, int]]:
        """The ``[start, stop)`` runs missing below the highest index."""
        gaps, previous = [], 0
        for start, stop in self.runs:
            if start > previous:
                gaps.append((previous, start))
            previous = stop
        return gaps
