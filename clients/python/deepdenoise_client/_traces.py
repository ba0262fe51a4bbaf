"""Closed-loop output: ROI traces and trigger events, as plain Python objects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from ._curve import CurveKeys
from ._errors import ProtocolError
from ._protocol import TOPIC_TRACES, TOPIC_TRIGGER, Message
from ._sockets import DEFAULT_OUTPUT, Subscriber


@dataclass(frozen=True)
class Traces:
    """One frame's ROI traces: ``values[roi, column]``, rows in ``labels`` order."""

    series: str
    index: int
    t_ns: int | None
    t_recv_ns: int
    t_done_ns: int
    labels: np.ndarray
    columns: tuple[str, ...]
    values: np.ndarray
    header: dict[str, Any]

    def column(self, name: str) -> np.ndarray:
        """One column for every ROI, e.g. ``traces.column("dff")``."""
        try:
            return self.values[:, self.columns.index(name)]
        except ValueError:
            raise KeyError(f"no column {name!r}; the traces have {list(self.columns)}") from None

    def roi(self, label: int) -> dict[str, float]:
        """Every column of the ROI with ``label``."""
        rows = np.flatnonzero(self.labels == label)
        if rows.size == 0:
            raise KeyError(f"no ROI labelled {label}")
        return {name: float(v) for name, v in zip(self.columns, self.values[rows[0]], strict=True)}


@dataclass(frozen=True)
class Trigger:
    """A trigger rule fired on a frame."""

    series: str
    index: int
    rule: str
    column: str
    value: float
    threshold: float
    rois: list[int]
    t_ns: int | None
    t_recv_ns: int
    t_done_ns: int
    header: dict[str, Any]


def parse_traces(message: Message) -> Traces:
    """A ``traces`` message as :class:`Traces` (ProtocolError if it is not one)."""
    h = message.header
    try:
        columns = tuple(h["columns"])
        labels = np.asarray(h["labels"], dtype=np.int64)
        values = message.array
        if values is None or values.shape != (len(labels), len(columns)):
            raise ValueError(f"payload {None if values is None else values.shape} does not "
                             f"match {len(labels)} labels x {len(columns)} columns")  # fmt: skip
        return Traces(h["series"], h["index"], h.get("t_ns"), h["t_recv_ns"], h["t_done_ns"],
                      labels, columns, values, h)  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("traces", f"not a valid traces message: {exc}") from None


def parse_trigger(message: Message) -> Trigger:
    """A ``trigger`` message as :class:`Trigger` (ProtocolError if it is not one)."""
    h = message.header
    try:
        return Trigger(h["series"], h["index"], h["rule"], h["column"], float(h["value"]),
                       float(h["threshold"]), list(h["rois"]), h.get("t_ns"), h["t_recv_ns"],
                       h["t_done_ns"], h)  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("trigger", f"not a valid trigger message: {exc}") from None


class TraceSubscriber:
    """Receive ROI traces (and trigger events) from the service's PUB socket.

    ``recv()`` returns a :class:`Traces` or a :class:`Trigger`; iterating yields them
    until ``timeout`` passes without one. Subscribe to triggers only
    (``traces=False``) for a stimulator that needs nothing else.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_OUTPUT,
        *,
        traces: bool = True,
        triggers: bool = True,
        timeout: float | None = None,
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        topics = tuple(t for t, on in ((TOPIC_TRACES, traces), (TOPIC_TRIGGER, triggers)) if on)
        if not topics:
            raise ValueError("subscribe to traces, triggers or both")
        self._sub = Subscriber(
            endpoint, topics=topics, timeout=timeout, context=context, curve=curve
        )

    def recv(self, timeout: float | None = None) -> Traces | Trigger:
        message = self._sub.recv(timeout)
        if message.topic == TOPIC_TRIGGER:
            return parse_trigger(message)
        return parse_traces(message)

    def __iter__(self) -> Iterator[Traces | Trigger]:
        while True:
            try:
                yield self.recv()
            except TimeoutError:
                return

    def close(self) -> None:
        self._sub.close()

    def __enter__(self) -> TraceSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
