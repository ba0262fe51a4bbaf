"""Spare time per series: what the frame interval left after each frame's inference,
for work no frame waits for (the blend's measurement, :mod:`stream.engine._blend`).

Each frame adds its series' measured frame interval minus the time its inference took
(a frame that took longer than the interval takes time away); the balance is kept
between 0 and ``CAP_S``. Deferred work runs in steps (one model pass, or the blend's
risks) when no frame waits and the balance covers the dearest step of its kind, and
each step is paid from it. So the stream's average load stays within what the machine
can do -- the work never builds a backlog -- while a frame that arrives during a step
waits for that step only (a closed loop turns the work off: ``serve --blend off``).
"""

from __future__ import annotations

#: The most spare time a series saves up (s): a slow stretch does not buy a burst of work.
CAP_S = 1.0
#: Before a step of such work has run: its cost guessed as this many times the frame's
#: own time (a step of a blend measurement: one pass of the model, two binned ones, or
#: the candidates' risks, 1.06-1.12 x a frame; a whole measurement is 7.9-9.2 x a frame
#: in ``benchmarks.blend_check``).
FIRST_GUESS = 2.0
#: A step's cost is the dearest one seen of its kind, fading by this factor at each
#: step: steps differ (a pass, the risks), and one that ran slow (the machine busy)
#: does not hold the work back for good.
COST_FADE = 0.9
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
        """Whether a step of work of ``kind`` fits in the series' balance now, no frame
        waiting."""
        # never more than the balance can hold: a step dearer than that (a slow one, or a
        # big frame's) runs when the balance is full, and its cost can fade after
        cost = min(self._cost.get(kind, FIRST_GUESS * took_s), CAP_S)
        return not waiting and self._balance.get(series, 0.0) >= cost

    def count_refused(self, series: str) -> int | None:
        """Count one refusal of ``allows`` for ``series``; the count of refusals in a row
        when it reaches ``REFUSED_TO_REPORT`` (to report, once a run), else None."""
        count = self._refused.get(series, 0) + 1
        self._refused[series] = count
        return count if count == REFUSED_TO_REPORT else None

    def seen(self, kind: object, seconds: float) -> None:
        """A step of ``kind`` took ``seconds`` (paid from no balance: a frame held for
        it), so the next is not guessed at ``FIRST_GUESS``."""
        self._cost[kind] = max(seconds, COST_FADE * self._cost.get(kind, 0.0))

    def spent(self, series: str, kind: object, seconds: float) -> None:
        """A step of ``kind`` took ``seconds`` of the series' balance."""
        self.seen(kind, seconds)
        self._balance[series] = max(self._balance.get(series, 0.0) - seconds, 0.0)
        self._refused[series] = 0

    def end_series(self, series: str) -> None:
        self._balance.pop(series, None)
        self._refused.pop(series, None)
