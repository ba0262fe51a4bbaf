"""Everything that travels between the service's stages, in one place.

Frames flow receive -> inference -> publish, and receive/inference -> writer. Control
items (a series' end, a flush, a model switch) travel in the same queues as the frames,
behind them, so each is seen after everything it concerns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..protocol import Frame


@dataclass(frozen=True, slots=True)
class RawMeans:
    """A frame's raw ROI means and the bound ROIs (identity-checked) they came from."""

    rois: Any  # stream.traces.BoundRois: kept opaque here, messages stay dependency-free
    means: np.ndarray


@dataclass(frozen=True, slots=True)
class Job:
    """A validated frame on its way to the engine."""

    frame: Frame
    t_recv_ns: int
    non_finite: int = 0
    #: The raw ROI means, computed where the frame is still in cache (receive thread),
    #: with the ROIs they belong to; None: computed after inference instead.
    raw_means: RawMeans | None = None


@dataclass(frozen=True, slots=True)
class SeriesEnd:
    """End of a series; travels behind the series' frames and is never dropped."""

    series: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the PUB socket. ``series`` is set for denoised frames only."""

    topic: bytes
    header: bytes
    payload: np.ndarray | None = None
    series: str | None = None
    t_recv_ns: int = 0


# -- writer operations ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawOp:
    """A received frame, exactly as it came, for ``<series>.zarr/raw``."""

    series: str
    index: int
    pixels: np.ndarray
    t_ns: int | None
    meta: dict[str, Any] | None = None  # the frame's own, kept beside its pixels


@dataclass(frozen=True, slots=True)
class RejectedOp:
    """A frame rejected for its series (``series_mismatch``, ``duplicate``) but readable:
    its pixels go to ``rejected/<series>.zarr``, apart from the series' store."""

    series: str
    reason: str
    index: int
    pixels: np.ndarray
    t_ns: int | None
    t_recv_ns: int
    meta: dict[str, Any] | None = None  # the frame's own, kept beside its pixels


@dataclass(frozen=True, slots=True)
class CleanOp:
    """A denoised frame for ``<series>.zarr/clean``."""

    series: str
    index: int
    pixels: np.ndarray


@dataclass(frozen=True, slots=True)
class TracesOp:
    """One frame's ROI traces ``[rois, columns]`` for the store's trace array."""

    series: str
    index: int
    values: np.ndarray
    attrs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawEndOp:
    """The series' last raw frame before its ``end`` is queued (from the receiver).

    Raw frames of the series that follow belong to its next run (a ``start`` right after
    the ``end``): the writer keeps them back until :class:`EndOp` has closed this run's
    store, which would otherwise close with them in it and refuse their clean frames."""

    series: str


@dataclass(frozen=True, slots=True)
class EndOp:
    """Close the series' store (after its last clean frame)."""

    series: str


@dataclass(frozen=True, slots=True)
class FlushOp:
    """Write everything buffered; ``done`` is set once it is on disk."""

    done: threading.Event


@dataclass(frozen=True, slots=True)
class ModelOp:
    """The service switched models: stores record every model that wrote to them."""

    model_id: str


WriterOp = RawOp | RejectedOp | CleanOp | TracesOp | RawEndOp | EndOp | FlushOp | ModelOp
