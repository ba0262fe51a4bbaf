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
earlier run's series: the service would reject a repeated index as a duplicate.
``series`` must be a valid start of a series name (letters, digits, ``.``, ``_``, ``-``,
not starting with ``.``): another one is refused when the handler is made (ValueError),
not found out when the first frame is sent. A sequence with one position, one grid
tile, one channel and no z plan, from one camera, is one series, the run's name.
Otherwise there is one series per position x channel (x grid tile, when there is a grid
plan; x z plane, when there is a z plan; x camera, when a multi-camera device gives
several images per event: a temporal model must see the same field of view and plane's
past; the positions' sub-sequences count too), named
``<run>-p<position>[-g<tile>]-c<channel>[-z<z>][-cam<camera>]`` with the position index,
the channel's config name (with ``.`` and the channel's index, every channel's, where
the sequence lists a name twice: two exposures of ``DAPI``) and the camera's index
(pymmcore-plus's ``index["cam"]``). A
channel name with characters outside ``[A-Za-z0-9._-]`` has them replaced by ``_`` and
gets ``_`` + 6 hex digits of the name's hash, so ``GFP 488`` and ``GFP_488`` stay two
series. A name longer than the protocol's 64 characters is cut to 55 and given ``-`` + 8
hex digits of the whole name's hash, so two tiles, planes, channels or cameras never
share a series. ``index`` counts that series' frames from 0; ``t_ns`` is the time the
frame reached the handler (Unix ns); ``meta`` carries the sequence's uid
(``sequence``), the MDA event's indices (``mda``), the channel, the camera device, the
stage position and the exposure.

**Pixel types.** The protocol carries ``uint8``, ``uint16``, ``int16`` and ``float32``
2-D frames. A camera giving another pixel type (``uint32``, ``int32``: 32-bit
cameras) or colour images (RGB, ``(height, width, 3 or 4)``) is refused at its first
frame, before anything of that series is sent: the streaming stops with a
``ProtocolError`` in :attr:`DenoiseHandler.error` naming the supported types (set the
camera to 8, 12, 14 or 16 bits, or to monochrome).

**What is counted.** :attr:`DenoiseHandler.frames_sent` counts frames sent, not frames
the service accepted: PUB and PUSH bring no reply. The service still rejects, for
instance, a frame whose shape or dtype differs from its series' first ones
(``series_mismatch``, after a camera ROI or binning change mid-run); its status counts
those (``rejected``).

**When the service is not there.** A frame that cannot be sent within ``timeout``
(PUSH: no service connected, or one so far behind that the socket's 8 frames are
queued) stops the
streaming: the error is logged and kept in :attr:`DenoiseHandler.error`, the rest of the
sequence's frames are counted in :attr:`DenoiseHandler.frames_unsent` and not sent, so
the acquisition itself goes on at its own pace. The frames already queued in ZeroMQ when
the error came (8, and what the system's socket buffers hold; counted in
:attr:`frames_sent`) are not thrown away: the socket stays open to the end of the
sequence; then the handler queues each started series' ``end`` behind them, waiting at
most ``linger`` seconds in all for room (``mda.run``, which waits for its handlers, may
return that much later when the service is gone), and closes the socket with ``linger``:
ZeroMQ goes on delivering what is queued for that long, in the background. A service
that was only stalled thus receives every frame counted sent, then the ends; one gone
for good, or stalled past that, loses them unsaid (PUSH brings no reply: ``frames_sent``
counts frames handed to ZeroMQ, as it always does). A script that exits right after
``mda.run`` waits (at most ``linger``) until what is queued is out, after an error or
not; with ``linger=None`` its exit does not wait. pymmcore-plus does not pass a
handler's error on to ``mda.run``: check ``handler.error`` after the run.

**A run pymmcore-plus does not finish.** pymmcore-plus calls handlers from a relay
thread that, rarely, ends without passing on ``sequenceFinished``. The handler then
finishes the run itself once that thread has ended (each series' ``end``, then the
socket closed), with a warning in the log; a next ``sequenceStarted`` on the same
handler also finishes a run left unfinished before it starts its own. ``mda.run`` may
then return a moment before the ends are sent, so an error sending them reaches
:attr:`DenoiseHandler.error` that moment later.

**Security.** ``curve=CurveKeys.from_files("rig.key_secret", "service.key")`` streams to
a service with ``[security]`` (CURVE): connecting, the handler is a client of the
service's public key, and its own public key must be in the service's
``security.clients``; binding (``bind=True``), it is a CURVE server whose public key
the service needs as ``security.input_server_key``. A refused key gets no reply: the
first frame times out, and the error says which key to check.

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
import zmq

from ._curve import CurveKeys
from ._errors import ClientTimeoutError, ProtocolError
from ._protocol import DEFAULT_LIMITS, DTYPES, check_endpoint
from ._sockets import DEFAULT_INPUT, Publisher, _ms

__all__ = ["DenoiseHandler", "check_image", "series_for", "split_axes"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The protocol's longest series name.
MAX_SERIES = 64
#: The MDA axes whose values are acquired as separate series when there are several
#: (a multi-camera's ``cam`` index, which no sequence declares, splits too: see
#: :func:`series_for`).
SPLIT_AXES = ("p", "g", "c", "z")
#: The camera pixel types the protocol carries, as numpy names.
PIXEL_TYPES = ("uint8", "uint16", "int16", "float32")


def _digest(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def _safe(text: str) -> str:
    """``text`` if every character may be in a series name; else with each other
    character replaced by ``_`` and ``_`` + 6 hex digits of ``text``'s hash added, so two
    names differing only there (``GFP 488``, ``GFP_488``) stay apart."""
    if not _UNSAFE.search(text):
        return text
    return f"{_UNSAFE.sub('_', text)}_{_digest(text, 6)}"


def _fit(name: str) -> str:
    """``name``, or if too long, cut with the whole name's hash kept: tiles, planes,
    channels and cameras never merge into one series."""
    if len(name) <= MAX_SERIES:
        return name
    return f"{name[: MAX_SERIES - 9]}-{_digest(name, 8)}"


def _check_prefix(series: str | None) -> str | None:
    """``series`` (a run name's start) if valid, else ValueError when the handler is made:
    caught there, not as a ProtocolError that stops the streaming at the first frame."""
    if series and (_UNSAFE.search(series) or series.startswith(".")):
        suggestion = _UNSAFE.sub("_", series).lstrip(".") or "mda"
        raise ValueError(
            f"series={series!r}: expected letters, digits, '.', '_' and '-' only, not "
            f"starting with '.' (the characters of a series name on the wire); for "
            f"instance series={suggestion!r}"
        )
    if series and len(series) > MAX_PREFIX:  # the run's time was cut off its name
        raise ValueError(
            f"series={series!r}: expected at most {MAX_PREFIX} characters, got "
            f"{len(series)} (a run's name adds '-' and its start time, "
            f"{RUN_STAMP_CHARS} characters, within the protocol's 64)"
        )
    return series


#: A run's start time in its name: ``20250610-142233.123``.
RUN_STAMP_CHARS = 19

#: The longest ``series`` prefix: with ``-`` and the run's start time, 64 characters.
MAX_PREFIX = 64 - 1 - RUN_STAMP_CHARS


def check_image(image: np.ndarray) -> None:
    """Raise :class:`~deepdenoise_client.ProtocolError` (a ValueError) unless ``image``
    is a frame the protocol carries: 2-D, of one of :data:`PIXEL_TYPES`."""
    supported = f"supported: {', '.join(PIXEL_TYPES)} 2-D frames (monochrome cameras)"
    if image.ndim != 2:
        colour = " (a colour camera: RGB)" if image.ndim == 3 and image.shape[-1] in (3, 4) else ""
        raise ProtocolError(
            "shape",
            f"the camera's images have shape {image.shape}{colour}; {supported}",
        )
    if image.dtype.str not in DTYPES:
        raise ProtocolError(
            "dtype",
            f"the camera's pixel type {image.dtype} is not streamed; {supported} "
            "(set the camera to 8 to 16 bits)",
        )
    side = DEFAULT_LIMITS.max_side
    if not all(1 <= n <= side for n in image.shape):
        raise ProtocolError(
            "shape", f"the camera's images are {image.shape}: expected 1..{side} a side"
        )


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


def channels_repeat(sequence: Any) -> bool:
    """Whether ``sequence`` (or a position's sub-sequence) lists a channel config name
    more than once: two exposures of ``DAPI``, or ``DAPI`` of two config groups."""
    configs = [str(getattr(c, "config", c)) for c in getattr(sequence, "channels", ()) or ()]
    return len(set(configs)) < len(configs) or any(
        channels_repeat(getattr(position, "sequence", None))
        for position in getattr(sequence, "stage_positions", ()) or ()
    )


def series_for(
    run_name: str, event: Any, split: Collection[str], channel_index: bool = False
) -> str:
    """The series of one MDA event, ``split`` the sequence's :func:`split_axes` (see the
    module docstring for the mapping). An event with a ``cam`` index (pymmcore-plus adds
    it to each image of a multi-camera device) gets ``-cam<index>`` whatever ``split``:
    the sequence does not know the cameras, and two cameras are two fields of view.
    Where the sequence lists a channel config name twice (``channel_index``, from
    :func:`channels_repeat`), every channel is named with its index too
    (``-cDAPI.1``): two exposures of DAPI were merged into one series (a user's trial),
    and only the index keeps every name apart (``DAPI`` twice beside ``DAPI.1``)."""
    index = dict(event.index)
    if not split and "cam" not in index:
        return _fit(run_name)
    channel = event.channel.config if event.channel is not None else str(index.get("c", 0))
    if channel_index:
        channel = f"{channel}.{index.get('c', 0)}"
    name = f"{run_name}-p{index.get('p', 0)}"
    if "g" in split:
        name += f"-g{index.get('g', 0)}"
    name += f"-c{_safe(channel)}"
    if "z" in split:
        name += f"-z{index.get('z', 0)}"
    if "cam" in index:
        name += f"-cam{index['cam']}"
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
        so a second run never lands in the first one's series. Letters, digits, ``.``,
        ``_`` and ``-`` only, not starting with ``.``: another raises ValueError here.
    bind
        Bind ``endpoint`` instead of connecting to it; ``mode="pub"`` against a default
        ``deepdenoise serve`` (whose SUB input connects) needs ``bind=True``.
    subscriber_timeout
        ``pub`` mode: seconds to wait for the service's subscription before the first
        frame.
    linger
        Seconds to wait, when the sequence finishes, for queued frames to go out (also
        after an error: see the module docstring); None: no limit for the close, as in
        ZeroMQ (the series' ends after an error are then queued only if there is room).
    timeout
        ``push`` mode: seconds a frame may wait to be queued (no service connected, or
        one far behind) before the streaming stops with :attr:`error`; None: no limit.
    curve
        Keys for a service with ``[security]`` (:class:`~deepdenoise_client.CurveKeys`),
        given to the :class:`~deepdenoise_client.Publisher`: connecting, this client's
        key pair and the service's public key; binding, this end's key pair (the service
        has its public key as ``security.input_server_key``).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_INPUT,
        *,
        mode: Literal["push", "pub"] = "push",
        series: str | None = None,
        bind: bool = False,
        subscriber_timeout: float = 10.0,
        linger: float | None = 30.0,
        timeout: float | None = 30.0,
        curve: CurveKeys | None = None,
    ) -> None:
        # checked here, not found out once the acquisition runs unstreamed
        self.endpoint = check_endpoint(endpoint)
        port = self.endpoint.rpartition(":")[2]  # checked: "*" or digits, if tcp
        if self.endpoint.startswith("tcp://") and (port == "*" or int(port) == 0):
            # connecting, libzmq refuses it at the run's start; binding, each run would
            # take another port that the service is not told
            raise ValueError(
                f"expected a fixed port, got {endpoint!r}: the service's `--input` names "
                "the same endpoint"
            )
        self.mode = mode
        self.series = _check_prefix(series)
        self.bind = bind
        self.subscriber_timeout = subscriber_timeout
        self.linger = linger
        self.timeout = timeout
        self.curve = curve
        #: The current (or last) run's name: ``series`` + its start time ("" before).
        self.run_name = ""
        #: The error that stopped the streaming (None: every frame was sent).
        self.error: BaseException | None = None
        #: Frames of this sequence not sent after that error.
        self.frames_unsent = 0
        self._publisher: Publisher | None = None
        # after an error: the socket, its queue still going out, until the sequence ends
        self._stopped: Publisher | None = None
        self._counts: dict[str, int] = {}
        self._split: frozenset[str] = frozenset()
        self._channel_index = False  # the run's channels named with their index too
        self._run: object | None = None  # the run not finished yet, if any
        # pymmcore-plus calls from its relay thread, the watcher from its own
        self._lock = threading.RLock()

    # -- pymmcore-plus's handler protocol ----------------------------------------------

    def sequenceStarted(self, sequence: Any, meta: Any = None) -> None:
        with self._lock:
            self._finish()  # a run whose sequenceFinished never came: its ends, then close
            self._run = run = object()
            self.run_name = f"{self.series or 'mda'}-{_run_stamp()}"
            self._split = split_axes(sequence)
            self._channel_index = channels_repeat(sequence)
            self._counts = {}
            self.error, self.frames_unsent = None, 0
            try:
                self._publisher = Publisher(
                    self.endpoint,
                    mode=self.mode,
                    bind=self.bind,
                    linger=self.linger,
                    timeout=self.timeout,
                    curve=self.curve,
                )
                if self.mode == "pub":
                    self._wait_for_service(self._publisher)
            except Exception as exc:  # no socket, or no service: the acquisition goes on
                self._fail(exc)
            self._finish_if_the_relay_drops_it(run)

    def frameReady(self, image: np.ndarray, event: Any, meta: Any = None) -> None:
        with self._lock:
            self._send(image, event, meta)

    def sequenceFinished(self, sequence: Any) -> None:
        with self._lock:
            self._finish()

    # -- internals -------------------------------------------------------------------

    def _send(self, image: np.ndarray, event: Any, meta: Any) -> None:
        if self._publisher is None and self.error is None:  # no sequenceStarted: start one
            self.sequenceStarted(None)
        if self._publisher is None:  # stopped by an error
            self.frames_unsent += 1
            return
        series = series_for(self.run_name, event, self._split, self._channel_index)
        index = self._counts.get(series)
        try:
            if index is None:
                check_image(image)  # before the series' start: nothing sent of it
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

    def _finish(self) -> None:
        """End the run: each started series' ``end``, then close the socket (once)."""
        self._run = None
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            try:
                for series in self._counts:
                    publisher.end(series)
            except Exception as exc:
                self._fail(exc)
            finally:
                self._close(publisher)
            return
        stopped, self._stopped = self._stopped, None
        if stopped is not None:  # stopped by an error: the queued frames still go out
            self._end_behind_queue(stopped)
            self._close(stopped)

    def _finish_if_the_relay_drops_it(self, run: object) -> None:
        """pymmcore-plus (to 0.18 at least) calls handlers from a relay thread that can
        end without passing on ``sequenceFinished``: it may see its stop flag after the
        flag is set and before that event is queued (about 1 run in 1,000 when threads
        switch often). The run would then never end and its socket would stay open, so
        a watcher finishes it once that thread has ended, unless it finished already."""
        relay = _relay_thread()
        if relay is None:
            return

        def finish_after_the_relay() -> None:
            relay.join()
            with self._lock:
                if self._run is run:
                    log.warning(
                        "deepdenoise: pymmcore-plus ended run %s without sequenceFinished; "
                        "its series are ended now",
                        self.run_name,
                    )
                    self._finish()

        # daemon as the relay is (the thread starting it): a script that ends right after
        # its last run still waits for the ends, as it waits for a non-daemon relay
        threading.Thread(target=finish_after_the_relay, name="deepdenoise-finish").start()

    def _end_behind_queue(self, publisher: Publisher) -> None:
        """After an error: each started series' ``end``, behind the frames still queued,
        within ``linger`` seconds in all (the first one not queued in time ends it)."""
        if not self._counts or publisher.closed:
            return
        # linger None (no limit for the close): the ends are queued only if there is room
        # now, as an MDA run that waits for a service gone for good would never end
        deadline = time.monotonic() + (self.linger or 0.0)
        try:
            for series in self._counts:
                remaining = max(0.0, deadline - time.monotonic())
                publisher.socket.setsockopt(zmq.SNDTIMEO, round(remaining * 1000))
                publisher.end(series)
        except Exception as exc:
            log.warning(
                "deepdenoise: the ends of the series after the error were not sent to %s: %s",
                self.endpoint,
                exc,
            )

    def _close(self, publisher: Publisher | None) -> None:
        """Close ``publisher`` with ``linger`` in a thread of its own: the acquisition
        does not wait while its queued frames go out, and a script's exit does (at most
        ``linger``: Python waits for the thread). A script that ended right after
        ``mda.run`` lost them: they went out from the process-wide context, which
        nothing ended. With no limit (``None``) the exit does not wait for a service
        that may never read them."""
        if publisher is not None:
            # the socket at once (a next run may bind its port), the wait in the thread;
            # this thread's to end, not the exit hook's, which may run before it starts
            publisher.socket.close(linger=_ms(self.linger))
            publisher._forget_at_exit()
            threading.Thread(
                target=publisher.close, name="deepdenoise-close", daemon=self.linger is None
            ).start()

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
                "service's input must bind (--input-bind) and subscribe (--input-mode sub: "
                "to a PULL input, use mode='push'); a default `deepdenoise serve` connects "
                "its SUB input: pass bind=True"
            ) from exc

    def _fail(self, exc: Exception) -> None:
        """Stop streaming: keep the error and log it once. The socket stays open, its
        queued frames going out, until the sequence finishes (then the ends follow)."""
        if self.error is None:
            self.error = exc
            log.error(
                "deepdenoise: streaming to %s stopped, the acquisition goes on without it: %s",
                self.endpoint,
                exc,
            )
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            self._stopped = publisher

    @property
    def frames_sent(self) -> dict[str, int]:
        """Frames sent so far in this run, by series: handed to ZeroMQ, not accepted
        (PUB and PUSH bring no reply; the service's status counts the frames it
        rejected)."""
        return dict(self._counts)


def _relay_thread() -> threading.Thread | None:
    """pymmcore-plus's relay thread, when it is the one calling the handler."""
    try:
        from pymmcore_plus.mda._thread_relay import MDARelayThread
    except ImportError:  # another caller, or a pymmcore-plus without the relay
        return None
    thread = threading.current_thread()
    return thread if isinstance(thread, MDARelayThread) else None


def _frame_meta(event: Any, meta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sequence = getattr(event, "sequence", None)
    if sequence is not None:
        out["sequence"] = str(sequence.uid)
    out["mda"] = {str(k): int(v) for k, v in dict(event.index).items()}
    if event.channel is not None:
        out["channel"] = str(event.channel.config)
    if isinstance(meta, dict) and isinstance(meta.get("camera_device"), str):
        out["camera"] = meta["camera_device"]
    position = {k: getattr(event, f"{k}_pos", None) for k in ("x", "y", "z")}
    position = {k: float(v) for k, v in position.items() if v is not None}
    if position:
        out["position"] = position
    if isinstance(meta, dict) and "exposure_ms" in meta:
        out["exposure_ms"] = float(meta["exposure_ms"])
    return out
