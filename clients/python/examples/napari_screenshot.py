"""Screenshot of the napari live view: simulator frames through the real service.

Runs the service (the shipped default model, raw publishing on, no disk), streams the
simulated calcium-imaging microscope (``stream.sim``) into it, docks the live view in a
napari viewer through its plugin manifest, and saves the whole window once frames have
arrived. Needs the service (the repository root installed) and the ``napari`` extra.
napari draws with OpenGL: on a machine without a display run it under a virtual one::

    xvfb-run -a python clients/python/examples/napari_screenshot.py [OUT.png]
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import napari
from qtpy.QtCore import QEventLoop
from qtpy.QtWidgets import QApplication

from stream import Service, ServiceConfig
from stream.sim import Simulator, SimulatorConfig

OUT = Path(__file__).resolve().parents[1] / "docs" / "napari-live-view.png"
SHAPE = (256, 256)


def main(out: Path = OUT) -> None:
    config = ServiceConfig(
        input="tcp://127.0.0.1:0",
        input_mode="pull",
        input_bind=True,
        output="tcp://127.0.0.1:0",
        control="tcp://127.0.0.1:0",
        zarr=None,
        publish_raw=True,
        status_interval_s=0.5,
        warmup_shape=SHAPE,
    )
    with Service(config) as service:
        viewer = napari.Viewer(title="deepdenoise live view", show=True)
        viewer.window.resize(1400, 760)
        _, widget = viewer.window.add_plugin_dock_widget("deepdenoise-client", "Live view")
        widget.connect_to(service.endpoints["output"])
        sim = SimulatorConfig(
            endpoint=service.endpoints["input"],
            mode="push",
            bind=False,
            shape=SHAPE,
            fps=10,  # a rate this (software-rendered, 2-core) machine keeps up with
            frames=0,
            series="mouse1",
        )
        stop = threading.Event()
        with Simulator(sim) as simulator:
            sender = threading.Thread(target=simulator.run, kwargs={"stop": stop}, daemon=True)
            sender.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _ready(widget, "mouse1"):
                _spin(0.05)
            viewer.grid.enabled = True  # raw and denoised side by side
            for name in ("mouse1 raw", "mouse1 denoised"):
                viewer.layers[name].reset_contrast_limits()
            _spin(6)  # a few seconds of live updates and status messages
            out.parent.mkdir(parents=True, exist_ok=True)
            viewer.screenshot(str(out), canvas_only=False)
            stop.set()
            sender.join(10)
        widget.disconnect_from()
        viewer.close()
    print(f"wrote {out}")


def _spin(seconds: float) -> None:
    """Run Qt's event loop (the widget's timer among it) for ``seconds``."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, round(left * 1000))
        time.sleep(0.005)


def _ready(widget: object, series: str) -> bool:
    shown = getattr(widget, "shown", {})
    status = getattr(widget, "status", None)
    return ("raw", series) in shown and ("denoised", series) in shown and status is not None


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
