"""The napari reader's second kind of store: a series' rejected frames.

``<zarr dir>/rejected/<series>.zarr`` keeps the frames the service refused for their
series (``duplicate``, ``series_mismatch``), one group per reason and frame layout,
rows in arrival order (README "Rejected frames, kept apart"). napari's own reader found
"no arrays" there and the plugin refused the folder unsaid (a user's trial): each block
now opens as an image layer, its indices and timestamps in the layer's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._reader import LayerData, _first_frames, deepdenoise_attrs

#: The per-row arrays of a block beside its frames.
ROW_FIELDS = ("index", "t_ns", "t_recv_ns")


def rejected_series(path: str | Path) -> str | None:
    """The series whose rejected frames ``path`` holds, or None when it is no such store
    (its ``deepdenoise`` attribute carries ``rejected_version``)."""
    info = deepdenoise_attrs(path)
    if info is None or not isinstance(info.get("rejected_version"), int):
        return None
    return str(info.get("series") or Path(path).name.removesuffix(".zarr"))


def read_rejected_store(path: str | Path) -> list[LayerData]:
    """One image layer per reason and frame layout, ``<series> rejected <reason>
    <layout>``, axes (row, y, x), of the rows written whole; ValueError when there are
    none yet."""
    import zarr

    series = rejected_series(path)
    if series is None:
        raise ValueError(
            f"expected a store of rejected frames (rejected/<series>.zarr), got {path}"
        )
    group: Any = zarr.open_group(str(path), mode="r", zarr_format=3)
    try:
        layers = _layers(group, series, path)
    except (KeyError, ValueError, TypeError, OSError) as exc:  # zarr's, unexplained
        raise ValueError(f"{path} is damaged: {type(exc).__name__}: {exc}") from exc
    if not layers:
        raise ValueError(f"{path} holds no rejected frames written whole yet")
    return layers


def _layers(group: Any, series: str, path: str | Path) -> list[LayerData]:
    layers: list[LayerData] = []
    for reason, by_reason in sorted(group.groups()):
        for layout, block in sorted(by_reason.groups()):
            rows = block.attrs.get("frames", 0)
            rows = rows if isinstance(rows, int) else 0
            if rows <= 0:
                continue
            meta = {
                "series": series,
                "reason": reason,
                "layout": layout,
                "store": str(path),
                **{name: np.asarray(block[name][:rows]).tolist() for name in ROW_FIELDS},
            }
            kwargs = {
                "name": f"{series} rejected {reason} {layout}",
                "metadata": {"deepdenoise": meta},
                "axis_labels": ("row", "y", "x"),
            }
            layers.append((_first_frames(block["frames"], rows), kwargs, "image"))
    return layers
