"""Items that travel between the service's stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._protocol import Frame


@dataclass(frozen=True, slots=True)
class Job:
    """A validated frame on its way to the engine."""

    frame: Frame
    t_recv_ns: int
    non_finite: int = 0


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


#: Tells the inference stage that no more input will come.
STOP = SeriesEnd("")
