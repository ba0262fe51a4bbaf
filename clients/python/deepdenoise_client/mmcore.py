"""A pymmcore-plus MDA output handler that streams every frame to deepdenoise.

::

    from deepdenoise_client.mmcore import DenoiseHandler

    core.mda.run(sequence, output=DenoiseHandler("tcp://127.0.0.1:5555"))

The service binds its input (``deepdenoise serve --input-bind --input-mode pull``) and
the handler connects with PUSH (lossless: a slow service slows the acquisition rather
than drop frames). ``mode="pub", bind=True`` publishes instead, to a default
``deepdenoise serve`` (its SUB input connects, so the handler must bind); the handler
waits for the service's subscription before the first frame.

**Series.** Every run (one ``mda.run``) gets a name of its own: ``series`` (default
``mda``) + ``-`` + the time it started (local, to the millisecond:
``mda-20250610-142233.123``), kept in :attr:`DenoiseHandler.run_name`. Running the same
sequence, or the same ``series``, again therefore never appends to (or collides with) an
earlier run's series: the service would reject a repeated index as a duplicate. A
sequence with one position, one grid tile, one channel and no z plan is one series, the
run's name. Otherwise there is one series per position x channel (x grid tile, when
there is a grid plan; x z plane, when there is a z plan: a temporal model must see the
same field of view and plane's past; the positions' sub-sequences count too), named
``<run>-p<position>[-g<tile>]-c<channel>[-z<z>]`` with the position index and the
channel's config name (characters outside ``[A-Za-z0-9._-]`` become ``_``). A name longer
than the protocol's 64 characters is cut to 55 and given ``-`` + 8 hex digits of the
whole name's hash, so two tiles, planes or channels never share a series. ``index``
counts that series' frames from 0; ``t_ns`` is the time the frame reached the handler
(Unix ns); ``meta`` carries the sequence's uid (``sequence``), the MDA event's indices
(``mda``), the channel, the stage position and the exposure.

**What is counted.** :attr:`DenoiseHandler.frames_sent` counts frames sent, not frames
the service accepted: PUB and PUSH bring no reply. The service still rejects, for
instance, a frame whose shape or dtype differs from its series' first ones
(``series_mismatch``, after a camera ROI or binning change mid-run); its status counts
those (``rejected``).

**When the service is not there.** A frame that cannot be sent within ``timeout``
(PUSH: no service connected, or one more than a thousand frames behind) stops the
streaming: the error is logged and kept in :attr:`DenoiseHandler.error`, the rest of the
sequence's frames are counted in :attr:`DenoiseHandler.frames_unsent` and not sent, so
the acquisition itself goes on at its own pace. pymmcore-plus does not pass a handler's
error on to ``mda.run``: check ``handler.error`` after the run.

Needs the ``mmcore`` extra: ``pip install -e "clients/python[mmcore]"`` from the
repository's root.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Collection
from typing import Any, Literal

import numpy as np

from ._errors import ClientTimeoutError
from ._sockets import DEFAULT_INPUT, Publisher

__all__ = ["DenoiseHandler", "series_for", "split_axes"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The protocol's longest series name.
MAX_SERIES = 64
#: The MDA axes whose values are acquired as separate series when there are several.
SPLIT_AXES = ("p", "g", "c", "z")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)


def _fit(name: str) -> str:
    """``name``, or if too long, cut with the whole name's hash kept: tiles, planes and
    channels never merge into one series."""
    if len(name) <= MAX_SERIES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_SERIES - 9]}-{digest}"


def _axis_sizes(sequence: Any) -> dict[str, int]:
    """Each axis' size in ``sequence``, the largest of it and its positions' sub-sequences
    (a sub-sequence's grid, channels or z plan split that position's frames too)."""
    sizes = {str(axis): int(n) for axis, n in dict(getattr(sequence, "sizes", {}) or {}).items()}
    for position in getattr(sequence, "stage_positions", ()) or ():
        for axis, n in _axis_sizes(getattr(position, "sequence", None)).items():
            sizes[axis] = max(sizes.get(axis, 0), n)
    return sizes


def split_axes(sequence: Any) -> frozenset[str]:
    """The axes (of :data:`SPLIT_AXES`) with more than one value in ``sequence``."""
    sizes = _axis_sizes(sequence)
    return frozenset(axis for axis in SPLIT_AXES if sizes.get(axis, 0) > 1)


def series_for(run_name: str, event: Any, split: Collection[str]) -> str:
    """The series of one MDA event, ``split`` the sequence's :func:`split_axes` (see the
    module docstring for the mapping)."""
    if not split:
        return _fit(run_name)
    index = dict(event.index)
    channel = event.channel.config if event.channel is not None else str(index.get("c", 0))
    name = f"{run_name}-p{index.get('p', 0)}"
    if "g" in split:
        name += f"-g{index.get('g', 0)}"
    name += f"-c{_safe(channel)}"
    if "z" in split:
        name += f"-z{index.get('z', 0)}"
    return _fit(name)


_last_stamp_ms = 0
_stamp_lock = threading.Lock()


def _run_stamp() -> str:
    """Now, local time to the millisecond (``20250610-142233.123``), and later than any
    stamp returned before in this process: two runs started within a millisecond (two
    cores, or a clock set back) still get names of their own."""
    global _last_stamp_ms
    with _stamp_lock:
        _last_stamp_ms = max(time.time_ns() // 1_000_000, _last_stamp_ms + 1)
        seconds, ms = divmod(_last_stamp_ms, 1000)
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(seconds))}.{ms:03d}"


class DenoiseHandler:
    """Streams an MDA's frames to the service (``sequenceStarted``, ``frameReady``,
    ``sequenceFinished``, as pymmcore-plus calls them).

    Parameters
    ----------
    endpoint
        The service's input endpoint.
    mode
        ``push`` (default, lossless) or ``pub``.
    series
        The start of every run's name (default ``mda``); each run adds its start time,
        so a second run never lands in the first one's series.
    bind
        Bind ``endpoint`` instead of connecting to it; ``mode="pub"`` against a default
        ``deepdenoise serve`` (whose SUB input connects) needs ``bind=True``.
    subscriber_timeout
        ``pub`` mode: seconds to wait for the service's subscription before the first
        frame.
    linger
        Seconds to wait, when the sequence finishes, for queued frames to go out.
    timeout
        ``push`` mode: seconds a frame may wait to be queued (no service connected, or
        one far behind) before the streaming stops with :attr:`error`; None: no limit.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_INPUT,
        *,
        mode: Literal["push", "pub"] = "push",
        series: str | None = None,
        bind: bool = False,
        subscriber_timeout: float = 10.0,
        linger: float = 30.0,
        timeout: float | None = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.mode = mode
        self.series = series
        self.bind = bind
        self.subscriber_timeout = subscriber_timeout
        self.linger = linger
        self.timeout = timeout
        #: The current (or last) run's name: ``series`` + its start time ("" before).
        self.run_name = ""
        #: The error that stopped the streaming (None: every frame was sent).
        self.error: BaseException | None = None
        #: Frames of this sequence not sent after that error.
        self.frames_unsent = 0
        self._publisher: Publisher | None = None
        self._counts: dict[str, int] = {}
        self._split: frozenset[str] = frozenset()

    # -- pymmcore-plus's handler protocol ----------------------------------------------

    def sequenceStarted(self, sequence: Any, meta: Any = None) -> None:
        self.run_name = f"{self.series or 'mda'}-{_run_stamp()}"
        self._split = split_axes(sequence)
        self._counts = {}
        self.error, self.frames_unsent = None, 0
        try:
            self._publisher = Publisher(
                self.endpoint,
                mode=self.mode,
                bind=self.bind,
                linger=self.linger,
                timeout=self.timeout,
            )
            if self.mode == "pub":
                self._wait_for_service(self._publisher)
        except Exception as exc:  # no socket, or no service: the acquisition goes on
            self._fail(exc)

    def frameReady(self, image: np.ndarray, event: Any, meta: Any = None) -> None:
        if self._publisher is None and self.error is None:  # no sequenceStarted: start one
            self.sequenceStarted(None)
        if self._publisher is None:  # stopped by an error
            self.frames_unsent += 1
            return
        series = series_for(self.run_name, event, self._split)
        index = self._counts.get(series)
        try:
            if index is None:
                self._publisher.start(series)
                index = 0
            # copy: the camera's buffer may be reused once this returns
            self._publisher.send_frame(
                image, series, index, t_ns=time.time_ns(), meta=_frame_meta(event, meta), copy=True
            )
        except Exception as exc:
            self.frames_unsent += 1
            self._fail(exc)
            return
        self._counts[series] = index + 1

    def sequenceFinished(self, sequence: Any) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is None:
            return
        try:
            for series in self._counts:
                publisher.end(series)
        except Exception as exc:
            self._fail(exc)
        finally:
            publisher.close(linger=self.linger if self.error is None else 0)

    def _wait_for_service(self, publisher: Publisher) -> None:
        """Wait for the service's subscription; the error says which side must bind."""
        try:
            publisher.wait_for_subscriber(self.subscriber_timeout)
        except ClientTimeoutError as exc:
            if self.bind:
                raise
            raise ClientTimeoutError(
                f"no subscription from the service on {self.endpoint} within "
                f"{self.subscriber_timeout} s: this handler connects (bind=False), so the "
                "service's input must bind (--input-bind); a default `deepdenoise serve` "
                "connects its SUB input too: pass bind=True"
            ) from exc

    def _fail(self, exc: Exception) -> None:
        """Stop streaming: keep the error, log it once, close the socket at once."""
        if self.error is None:
            self.error = exc
            log.error(
                "deepdenoise: streaming to %s stopped, the acquisition goes on without it: %s",
                self.endpoint,
                exc,
            )
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close(linger=0)

    @property
    def frames_sent(self) -> dict[str, int]:
        """Frames sent so far in this run, by series: sent, not accepted (PUB and PUSH
        bring no reply; the service's status counts the frames it rejected)."""
        return dict(self._counts)


def _frame_meta(event: Any, meta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sequence = getattr(event, "sequence", None)
    if sequence is not None:
        out["sequence"] = str(sequence.uid)
    out["mda"] = {str(k): int(v) for k, v in dict(event.index).items()}
    if event.channel is not None:
        out["channel"] = str(event.channel.config)
    position = {k: getattr(event, f"{k}_pos", None) for k in ("x", "y", "z")}
    position = {k: float(v) for k, v in position.items() if v is not None}
    if position:
        out["position"] = position
    if isinstance(meta, dict) and "exposure_ms" in meta:
        out["exposure_ms"] = float(meta["exposure_ms"])
    return out
