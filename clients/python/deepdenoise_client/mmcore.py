"""A pymmcore-plus MDA output handler that streams every frame to deepdenoise.

::

    from deepdenoise_client.mmcore import DenoiseHandler

    core.mda.run(sequence, output=DenoiseHandler("tcp://127.0.0.1:5555"))

The service binds its input (``deepdenoise serve --input-bind --input-mode pull``) and
the handler connects with PUSH (lossless: a slow service slows the acquisition rather
than drop frames); ``mode="pub"`` publishes instead (the service subscribes; the handler
waits for it before the first frame), and ``bind=True`` makes the handler bind.

**Series.** The series name is ``series`` if given, else ``mda-`` + the sequence's uid.
A sequence with one position, one channel and no z plan is one series. Otherwise there
is one series per position x channel (x z plane, when there is a z plan: a temporal
model must see the same plane's past), named ``<name>-p<position>-c<channel>[-z<z>]``
with the position index and the channel's config name (characters outside
``[A-Za-z0-9._-]`` become ``_``). A name longer than the protocol's 64 characters is
cut to 55 and given ``-`` + 8 hex digits of the whole name's hash, so two planes or
channels never share a series. ``index`` counts that series' frames from 0; ``t_ns``
is the time the frame reached the handler (Unix ns); ``meta`` carries the MDA event's
indices (``mda``), the channel, the stage position and the exposure.

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
import time
from typing import Any, ClassVar, Literal

import numpy as np

from ._sockets import DEFAULT_INPUT, Publisher

__all__ = ["DenoiseHandler", "series_for"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The protocol's longest series name.
MAX_SERIES = 64


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)


def series_for(base: str, event: Any, split: bool, z_split: bool) -> str:
    """The series of one MDA event (see the module docstring for the mapping)."""
    if not split:
        return base
    index = dict(event.index)
    position = index.get("p", 0)
    channel = event.channel.config if event.channel is not None else str(index.get("c", 0))
    name = f"{base}-p{position}-c{_safe(channel)}"
    if z_split:
        name += f"-z{index.get('z', 0)}"
    if len(name) <= MAX_SERIES:
        return name
    # cut, the whole name's hash kept: planes and channels never merge into one series
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_SERIES - 9]}-{digest}"


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
        The series name (default: ``mda-<sequence uid>``).
    bind
        Bind ``endpoint`` instead of connecting to it.
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
        #: The error that stopped the streaming (None: every frame was sent).
        self.error: BaseException | None = None
        #: Frames of this sequence not sent after that error.
        self.frames_unsent = 0
        self._publisher: Publisher | None = None
        self._counts: dict[str, int] = {}
        self._base = series or "mda"
        self._split = False
        self._z_split = False

    # -- pymmcore-plus's handler protocol ----------------------------------------------

    def sequenceStarted(self, sequence: Any, meta: Any = None) -> None:
        self._base = self.series or f"mda-{sequence.uid}"
        sizes = dict(getattr(sequence, "sizes", {}) or {})
        self._z_split = sizes.get("z", 0) > 1
        self._split = sizes.get("p", 0) > 1 or sizes.get("c", 0) > 1 or self._z_split
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
                self._publisher.wait_for_subscriber(self.subscriber_timeout)
        except Exception as exc:  # no socket, or no service: the acquisition goes on
            self._fail(exc)

    def frameReady(self, image: np.ndarray, event: Any, meta: Any = None) -> None:
        if self._publisher is None and self.error is None:  # no sequenceStarted: start one
            self.sequenceStarted(_Unnamed())
        if self._publisher is None:  # stopped by an error
            self.frames_unsent += 1
            return
        series = series_for(self._base, event, self._split, self._z_split)
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
        """Frames sent so far in this sequence, by series."""
        return dict(self._counts)


class _Unnamed:
    """Stands in for a sequence when frames come without ``sequenceStarted``."""

    uid = "unnamed"
    sizes: ClassVar[dict[str, int]] = {}


def _frame_meta(event: Any, meta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mda": {str(k): int(v) for k, v in dict(event.index).items()}}
    if event.channel is not None:
        out["channel"] = str(event.channel.config)
    position = {k: getattr(event, f"{k}_pos", None) for k in ("x", "y", "z")}
    position = {k: float(v) for k, v in position.items() if v is not None}
    if position:
        out["position"] = position
    if isinstance(meta, dict) and "exposure_ms" in meta:
        out["exposure_ms"] = float(meta["exposure_ms"])
    return out
