"""How many self-ensemble passes each frame gets (:mod:`stream.engine._ensemble`).

A pass is one more inference on a mirrored copy of the frame: better output (``na-lite``,
4 passes: +0.1 to +0.3 dB), proportionally more compute and latency. With ``ensemble =
"auto"`` (the default) a frame gets more passes only when the time is there: no frame
waits behind it, and the passes fit in ``ensemble_budget`` of the series' frame interval
as measured (4 passes if they fit, else 2, else 1). A series' first frames, a burst, a
backlog or a slow model therefore get one pass, as without an ensemble; a slow stream
on a fast engine gets four. A fixed count (1, 2 or 4) is used for every frame; 1 is the
least latency (a closed loop).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from ..engine import ENSEMBLE_PASSES

#: Weight of the newest sample in the running frame-interval and pass-time averages.
SMOOTHING = 0.2

#: Frames arriving this many times as fast as they are denoised are a stream that will
#: not be caught up. Not 1: a live stream's first frames take longer than later ones
#: (warm-up, the camera estimate's refits), and the demo's 30 fps at 256 x 256, which
#: this 2-vCPU VM keeps up with, took 40 ms a frame at first against 34 ms between
#: frames; 16 frames of 128 x 128 pushed as fast as the Python client sends came 0.3-0.9
#: ms apart against 9-12 ms a frame (one-off probe, 2026-12-03).
OUTPACED = 2.0
#: ... judged on a model's and frame size's fastest recent frame, once this many of its
#: frames were timed: a series' first frame carries one-off work (the single-frame
#: camera estimate, the first blend measurement's set-up), and the demo at 20-30 fps,
#: 256 x 256 on a 2-vCPU VM, its first frame at 120 ms, was taken for outpaced, its
#: next three frames measured at once, and its latency stayed 0.6-2 s to the end
#: (one-off probe, 2026-12-06).
OUTPACED_TIMED = 2

EnsembleSetting = Literal["auto", 1, 2, 4]


class EnsemblePolicy:
    """Chooses a frame's passes and counts the frames by passes (for ``status``)."""

    def __init__(self, setting: EnsembleSetting = "auto", budget: float = 0.5) -> None:
        self.setting = setting
        self.budget = budget
        self.frames: Counter[int] = Counter()
        self._last_recv_ns: dict[str, int] = {}
        self._interval_s: dict[str, float] = {}
        self._pass_s: dict[tuple[str, tuple[int, int]], float] = {}
        self._fastest_s: dict[tuple[str, tuple[int, int]], float] = {}  # a pass, recently
        self._timed: Counter[tuple[str, tuple[int, int]]] = Counter()
        self._outpaced: set[str] = set()  # series found outpaced, not caught up since
        self._outpaced_frames: Counter[str] = Counter()

    def passes(
        self, series: str, t_recv_ns: int, waiting: int, model: str, shape: tuple[int, int]
    ) -> int:
        """The passes for this frame of ``series``, received at ``t_recv_ns`` with
        ``waiting`` frames queued behind it; also takes the frame into the series'
        interval."""
        last = self._last_recv_ns.get(series)
        self._last_recv_ns[series] = t_recv_ns
        if last is not None and t_recv_ns > last:
            self._interval_s[series] = _smooth(
                self._interval_s.get(series), (t_recv_ns - last) / 1e9
            )
        if self.setting != "auto":
            return self.setting
        for passes in sorted(ENSEMBLE_PASSES, reverse=True):
            if self.fits(series, waiting, model, shape, passes):
                return passes
        return 1

    def fits(
        self, series: str, waiting: int, model: str, shape: tuple[int, int], passes: float
    ) -> bool:
        """Whether ``passes`` runs of ``model`` on a frame of ``shape`` fit in the budget of
        the series' measured frame interval, with no frame waiting (unknown: no); a
        fraction counts work of part of a pass (the blend's binned pass)."""
        interval = self._interval_s.get(series)
        pass_s = self._pass_s.get((model, shape))
        if waiting or interval is None or pass_s is None:
            return False
        return passes * pass_s <= self.budget * interval

    def outpaced(self, series: str, waiting: int, model: str, shape: tuple[int, int]) -> bool:
        """Whether the series' frames, ``waiting`` behind this one, arrive at least
        ``OUTPACED`` times as fast as one pass of ``model`` denoises a frame of
        ``shape``: it will not be caught up, and no spare time will come (a recording
        replayed as fast as it goes). Once so, it stays so until no frame waits: the
        intervals of frames held back by a full queue are the service's own pace. A
        stream only held up (by a measurement, a slow first frame) drains its backlog."""
        if not waiting:
            self._outpaced.discard(series)
            return False
        if series not in self._outpaced:
            interval = self._interval_s.get(series)
            pass_s = self._fastest_s.get((model, shape))
            if (
                interval is None
                or pass_s is None
                or self._timed[(model, shape)] < OUTPACED_TIMED
                or OUTPACED * interval >= pass_s
            ):
                return False
            self._outpaced.add(series)
        self._outpaced_frames[series] += 1
        return True

    def frames_outpaced(self, series: str) -> int:
        """The series' frames found outpaced (:meth:`outpaced`)."""
        return self._outpaced_frames.get(series, 0)

    def took(self, model: str, shape: tuple[int, int], passes: int, seconds: float) -> None:
        """A frame of ``shape`` took ``seconds`` for ``passes`` passes of ``model``."""
        self.frames[passes] += 1
        key = (model, shape)
        per_pass = seconds / passes
        self._pass_s[key] = _smooth(self._pass_s.get(key), per_pass)
        fastest = self._fastest_s.get(key)  # a minimum that drifts up to slower frames
        self._fastest_s[key] = (
            per_pass if fastest is None else min(per_pass, _smooth(fastest, per_pass))
        )
        self._timed[key] += 1

    def interval(self, series: str) -> float | None:
        """The series' measured frame interval (s); None before its second frame."""
        return self._interval_s.get(series)

    def end_series(self, series: str) -> None:
        self._last_recv_ns.pop(series, None)
        self._interval_s.pop(series, None)
        self._outpaced.discard(series)
        self._outpaced_frames.pop(series, None)

    def status(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "budget": self.budget,
            "frames_by_passes": {str(p): self.frames[p] for p in ENSEMBLE_PASSES},
        }


def _smooth(average: float | None, sample: float) -> float:
    return sample if average is None else average + SMOOTHING * (sample - average)
