"""The live view: a napari dock widget showing the service's denoised (and raw) stream.

One image layer per series and stream (``<series> denoised``, ``<series> raw``), whose
data is replaced in place by the newest frame at display rate (a ``QTimer``, 30 Hz by
default); the frames are received by :class:`LatestFrames` in a thread of its own (see
there why), so napari's event loop never waits on the network. The panel shows the
service's fps, latency p50/p99 and drop counters from its ``status`` messages, and the
viewer's own received/shown/skipped counts.

A service with ``[security]`` talks only to CURVE clients whose key it allows: the
widget's ``curve`` keys, or else, read at each connect, the files named by
``DEEPDENOISE_CLIENT_KEY`` (this client's ``NAME.key_secret``) and
``DEEPDENOISE_SERVER_KEY`` (the service's ``service.key``), as the CLI takes them; both
set, CURVE; neither, plain text; one alone is an error shown in the widget.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import zmq
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QCloseEvent, QFontDatabase
from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .._curve import CurveKeys
from .._protocol import TOPIC_DENOISED, TOPIC_RAW, TOPIC_STATUS, Message
from .._sockets import DEFAULT_OUTPUT
from ._status import service_lines, viewer_line
from ._stream import CLIENT_KEY_ENV, LatestFrames, keys_from_env

if TYPE_CHECKING:
    import napari.viewer

log = logging.getLogger(__name__)

#: Display refresh period: about 30 Hz, faster than a camera preview needs to look live.
INTERVAL_MS = 33


class LiveViewWidget(QWidget):
    """Subscribe to a deepdenoise service and show its output in ``napari_viewer``.

    Parameters
    ----------
    napari_viewer
        The viewer (napari passes it when the widget is opened from the Plugins menu).
    endpoint
        The service's output endpoint, editable in the widget.
    interval_ms
        Display refresh period.
    curve
        Keys for a service with ``[security]``; None (default): from the environment
        variables ``DEEPDENOISE_CLIENT_KEY`` and ``DEEPDENOISE_SERVER_KEY`` when set,
        read at each connect (plain text when neither is).
    """

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        endpoint: str = DEFAULT_OUTPUT,
        *,
        interval_ms: int = INTERVAL_MS,
        parent: QWidget | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.curve = curve
        self.stream: LatestFrames | None = None
        # The open stream, also in a list the widget's ``destroyed`` signal can reach
        # without the widget: napari deletes dock widgets with the viewer, never closing
        # them, and the receiving thread must not outlive its widget.
        self._streams: list[LatestFrames] = []
        self.destroyed.connect(functools.partial(_stop_all, self._streams))
        #: The newest header shown, by (topic, series): what each layer holds now.
        self.shown: dict[tuple[str, str], dict[str, Any]] = {}
        self.status: dict[str, Any] | None = None
        self._status_at = 0.0  # time.monotonic() when it came

        self.endpoint_edit = QLineEdit(endpoint)
        self.endpoint_edit.setToolTip("The service's output (PUB) endpoint, e.g. " + DEFAULT_OUTPUT)
        self.endpoint_edit.returnPressed.connect(self._on_return)
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self._on_button)
        self.raw_check = QCheckBox("Show raw frames (service run with --publish-raw)")
        self.raw_check.setChecked(True)
        self.raw_check.toggled.connect(self._on_raw_toggled)
        self.contrast_check = QCheckBox("Auto-contrast every frame")
        self.contrast_check.setToolTip(
            "Off: contrast limits are set from a layer's first frame, then left to you."
        )
        self.state_label = QLabel("disconnected")
        self.state_label.setWordWrap(True)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.status_label = QLabel()
        self.status_label.setFont(mono)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.viewer_label = QLabel()
        self.viewer_label.setFont(mono)
        self.viewer_label.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.endpoint_edit, 1)
        row.addWidget(self.connect_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.raw_check)
        layout.addWidget(self.contrast_check)
        layout.addWidget(self.state_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.viewer_label)
        layout.addStretch(1)

        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self._show_status()

    # -- connection --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.stream is not None

    def connect_to(self, endpoint: str | None = None) -> bool:
        """Subscribe to ``endpoint`` (default: the field's text); False if it is invalid.

        A SUB socket connects in the background and retries until the service is there,
        so a valid endpoint with no service behind it just shows no status yet.
        """
        self.disconnect_from()
        if endpoint is not None:
            self.endpoint_edit.setText(endpoint)
        target = self.endpoint_edit.text().strip()
        topics = (
            TOPIC_DENOISED,
            TOPIC_STATUS,
            *((TOPIC_RAW,) if self.raw_check.isChecked() else ()),
        )
        try:
            curve = self.curve if self.curve is not None else keys_from_env()
        except ValueError as exc:  # one variable alone, or a file that is not a key
            self.state_label.setText(f"cannot connect to {target!r}: {exc}")
            return False
        try:
            self.stream = LatestFrames(target, topics, curve=curve).start()
            self._streams.append(self.stream)
        except (zmq.ZMQError, ValueError) as exc:  # ValueError: a port libzmq would remap
            self.state_label.setText(f"cannot connect to {target!r}: {exc}")
            return False
        self.status = None
        keys = ""
        if curve is not None:
            keys = (
                " (CURVE keys)"
                if self.curve is not None
                else f" (CURVE keys from {CLIENT_KEY_ENV})"
            )
        self.state_label.setText(f"connected to {target}{keys}")
        self.connect_button.setText("Disconnect")
        self.endpoint_edit.setEnabled(False)
        self.timer.start()
        self._show_status()
        return True

    def disconnect_from(self) -> None:
        """Stop receiving; the layers keep the last frames shown."""
        self.timer.stop()
        stream, self.stream = self.stream, None
        if stream is not None:
            self._streams.remove(stream)
            stream.stop()
            self.state_label.setText(f"disconnected from {stream.endpoint}")
        self.connect_button.setText("Connect")
        self.endpoint_edit.setEnabled(True)

    def _on_button(self) -> None:
        if self.connected:
            self.disconnect_from()
        else:
            self.connect_to()

    def _on_return(self) -> None:
        if not self.connected:
            self.connect_to()

    def _on_raw_toggled(self, _checked: bool) -> None:
        if self.connected:  # the subscription changes: connect again
            self.connect_to()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # Qt calls it when the widget closes
        self.disconnect_from()
        super().closeEvent(event)

    # -- display -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the newest frame of each series and the newest status (one timer tick)."""
        stream = self.stream
        if stream is None:
            return
        latest = stream.take()
        for (topic, series), message in latest.frames.items():
            self._show_frame(topic, series, message)
        if latest.status is not None:
            self.status, self._status_at = latest.status, time.monotonic()
        if stream.error is not None:
            self.disconnect_from()
            self.state_label.setText(f"receiving failed: {stream.error}")
        self._show_status()

    def _show_frame(self, topic: str, series: str, message: Message) -> None:
        name = f"{series} {topic}"
        header = message.header
        info = {
            "series": series,
            "stream": topic,
            "index": header.get("index"),
            "t_ns": header.get("t_ns"),
            "model": header.get("model"),
        }
        layers = self.viewer.layers
        if name in layers:
            layer = layers[name]
            layer.data = message.array
            layer.metadata["deepdenoise"] = info
            if self.contrast_check.isChecked():
                layer.reset_contrast_limits()
        else:
            self.viewer.add_image(message.array, name=name, metadata={"deepdenoise": info})
        self.shown[(topic, series)] = header

    def _show_status(self) -> None:
        age = time.monotonic() - self._status_at if self.status is not None else None
        secured = self.stream.secured if self.stream is not None else self.curve is not None
        self.status_label.setText("\n".join(service_lines(self.status, age, secured=secured)))
        lines = [
            f"{series} {topic}: frame {h.get('index')}"
            for (topic, series), h in sorted(self.shown.items())
        ]
        if self.stream is not None:
            lines.append(viewer_line(self.stream.counters))
        self.viewer_label.setText("\n".join(lines))


def _stop_all(streams: list[LatestFrames], *_: object) -> None:
    for stream in streams:
        stream.stop()
    streams.clear()
