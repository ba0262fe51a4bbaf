"""Modules the frame path loads lazily -- so that the command line starts without them
-- loaded when a service starts instead: the first frame that needs one would
otherwise wait for it mid-stream. Why (one-off probe, 2026-12-06, the demo's series,
256 x 256, 2 vCPUs): ``scipy.special``, first needed by the warm-pixel search on the
series' third frame, held that frame 300 ms; a live stream at 20-30 fps took that
backlog to its end.
"""

from __future__ import annotations

import importlib

#: What the frame path imports inside functions: the warm-pixel search's chi-square
#: quantile (``stream.camera._warm``), the scene-shift search's float32 transforms and
#: the temporal window's and masked frames' filters (``stream.engine._motion``,
#: ``stream.engine._pixels``).
FRAME_PATH_MODULES = ("scipy.special", "scipy.fft", "scipy.ndimage")


def preload_frame_path() -> None:
    """Import :data:`FRAME_PATH_MODULES` now (a service's start)."""
    for name in FRAME_PATH_MODULES:
        importlib.import_module(name)
