"""Bounded queues with an explicit overflow policy.

``queue.Queue`` can only block or fail when full. The live path needs a third
policy — drop the *oldest* frame, so the newest frame (the one a closed-loop rig
cares about) always gets through — while control items (series end, shutdown)
must never be dropped at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """Raised by :meth:`StageQueue.get` once the queue is closed and empty."""


class StageQueue(Generic[T]):
    """A bounded FIFO between two pipeline stages.

    Parameters
    ----------
    maxsize
        Capacity counted in droppable items (frames); control items do not count,
        they are rare and must always be accepted.
    policy
        ``"drop_oldest"``: a put on a full queue evicts the oldest droppable item and
        hands it to ``on_drop`` (for counting). ``"block"``: the put waits for room.
    sizeof
        Bytes an item holds (pixels), summed in :attr:`nbytes` for the memory budget.
    """

    def __init__(
        self,
        maxsize: int,
        policy: str = "drop_oldest",
        on_drop: Callable[[T], None] | None = None,
        sizeof: Callable[[T], int] | None = None,
    ) -> None:
        if policy not in ("drop_oldest", "block"):
            raise ValueError(f"policy must be 'drop_oldest' or 'block', got {policy!r}")
        self._items: deque[tuple[T, bool]] = deque()
        self._urgent = 0  # urgent items at the front of the deque
        self._droppable = 0
        self._maxsize = maxsize
        self._policy = policy
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._closed = False
        self._sizeof = sizeof
        self.nbytes = 0  # bytes held by the queued items (with ``sizeof``)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def droppable(self) -> int:
        """Droppable items queued (frames; not the control items among them)."""
        return self._droppable

    def _size(self, item: T) -> int:
        return self._sizeof(item) if self._sizeof is not None else 0

    def put(
        self,
        item: T,
        droppable: bool = True,
        stop: threading.Event | None = None,
        urgent: bool = False,
        deadline: float | None = None,
    ) -> bool:
        """Queue ``item``; returns False only if a blocking put gave up because ``stop`` was
        set or the ``deadline`` (``time.monotonic()``) passed.

        ``urgent`` items go ahead of every non-urgent one (in order among themselves),
        and are evicted only when no other droppable item is left: small messages a
        closed loop waits for must not queue behind whole frames.
        """
        dropped: T | None = None
        with self._cond:
            if droppable and self._droppable >= self._maxsize:
                if self._policy == "block":
                    while self._droppable >= self._maxsize and not self._closed:
                        if stop is not None and stop.is_set():
                            return False
                        if deadline is not None and time.monotonic() >= deadline:
                            return False
                        self._cond.wait(0.05)
                else:
                    dropped = self._evict_oldest_droppable()
            if urgent:
                self._items.insert(self._urgent, (item, droppable))
                self._urgent += 1
            else:
                self._items.append((item, droppable))
            self._droppable += droppable
            self.nbytes += self._size(item)
            self._cond.notify_all()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)
        return True

    def _evict_oldest_droppable(self) -> T:
        n = len(self._items)
        for position in [*range(self._urgent, n), *range(self._urgent)]:  # urgent ones last
            candidate, droppable = self._items[position]
            if droppable:
                del self._items[position]
                self._urgent -= position < self._urgent
                self._droppable -= 1
                self.nbytes -= self._size(candidate)
                return candidate
        raise RuntimeError("no droppable item despite a full count")  # invariant violated

    def get(self, timeout: float | None = None) -> T | None:
        """Next item, or None after ``timeout``; raises :class:`Closed` when closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise Closed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item, droppable = self._items.popleft()
            self._urgent = max(0, self._urgent - 1)
            self._droppable -= droppable
            self.nbytes -= self._size(item)
            self._cond.notify_all()
            return item

    def holds(self, wanted: Callable[[T], bool]) -> bool:
        """Whether an item now queued is ``wanted``."""
        with self._cond:
            return any(wanted(item) for item, _ in self._items)

    def take_where(self, wanted: Callable[[T], bool], keep: int = 0) -> list[T]:
        """Remove and return the queued items that are ``wanted``, but for the first
        ``keep`` of them; the rest keep their order."""
        with self._cond:
            kept: deque[tuple[T, bool]] = deque()
            taken: list[T] = []
            urgent = 0
            for position, (item, droppable) in enumerate(self._items):
                want = wanted(item)
                if want and keep == 0:
                    taken.append(item)
                    self._droppable -= droppable
                    self.nbytes -= self._size(item)
                else:
                    keep -= want  # one of the first ``keep`` wanted
                    kept.append((item, droppable))
                    urgent += position < self._urgent
            self._items, self._urgent = kept, urgent
            self._cond.notify_all()
            return taken

    def close(self) -> None:
        """No more puts are expected; consumers drain what is left, then get ``Closed``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
