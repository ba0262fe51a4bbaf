"""Spare time per series: what the frame interval left after each frame's inference,
for work no frame waits for (the blend's measurement, :mod:`stream.engine._blend`).

Each frame adds its series' measured frame interval minus the time its inference took
(a frame that took longer than the interval takes time away); the balance is kept
between 0 and ``CAP_S``. Deferred work runs when no frame waits and the balance covers
what such work last took, and is paid from it. So the stream's average load stays within
what the machine can do -- the work never builds a backlog -- while a frame that arrives
during it may wait up to that long (a closed loop turns it off: ``serve --blend off``).
"""

from __future__ import annotations

#: The most spare time a series saves up (s): a slow stretch does not buy a burst of work.
CAP_S = 1.0
#: Before such work has run: its cost guessed as this many times the frame's own time
#: (a blend measurement: five passes of the model, two binned ones and the candidates'
#: risks, 6.8-7.6 x a frame in ``benchmarks.blend_check``).
FIRST_GUESS = 7.0
#: Work refused this many times in a row for a series is reported, once a run
#: (:meth:`SpareTime.count_refused`): its frames come as fast as they are denoised, and a
#: recording replayed so gets little or none of the blend.
REFUSED_TO_REPORT = 16


class SpareTime:
    """The spare-time balance of each series, and what deferred work costs per kind."""

    def __init__(self) -> None:
        self._balance: dict[str, float] = {}
        self._cost: dict[object, float] = {}
        self._refused: dict[str, int] = {}  # work refused in a row, per series

    def frame_done(self, series: str, interval_s: float | None, took_s: float) -> None:
        """A frame of ``series`` took ``took_s`` of its ``interval_s`` (None: unknown yet)."""
        if interval_s is None:
            return
        balance = self._balance.get(series, 0.0) + interval_s - took_s
        self._balance[series] = min(max(balance, 0.0), CAP_S)

    def allows(self, series: str, kind: object, waiting: int, took_s: float) -> bool:
        """Whether work of ``kind`` fits in the series' balance now, no frame waiting."""
        cost = self._cost.get(kind, FIRST_GUESS * took_s)
        return not waiting and self._balance.get(series, 0.0) >= cost

    def count_refused(self, series: str) -> int | None:
        """Count one refusal of ``allows`` for ``series``; the count of refusals in a row
        when it reaches ``REFUSED_TO_REPORT`` (to report, once a run), else None."""
        count = self._refused.get(series, 0) + 1
        self._refused[series] = count
        return count if count == REFUSED_TO_REPORT else None

    def spent(self, series: str, kind: object, seconds: float) -> None:
        self._cost[kind] = seconds
        self._balance[series] = max(self._balance.get(series, 0.0) - seconds, 0.0)
        self._refused[series] = 0

    def end_series(self, series: str) -> None:
        self._balance.pop(series, None)
        self._refused.pop(series, None)
