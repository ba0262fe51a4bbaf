"""napari integration: a live view of the service's output and a reader for its stores.

- :class:`LiveViewWidget` (``Plugins > deepdenoise-client > Live view``): subscribes to
  the service's output endpoint and shows the denoised stream, and the raw stream when
  the service publishes it (``deepdenoise serve --publish-raw``), one layer per series,
  updated in place at display rate, with fps, latency and drop counters.
- :func:`read_series_store`: opening a ``<series>.zarr`` store written by the service
  gives two layers, ``raw`` and ``clean`` (lazily read with zarr-python).

Declared to napari by the npe2 manifest ``napari.yaml`` beside this file. Needs the
``napari`` extra: ``pip install "deepdenoise-client[napari]"``. Importing this package
imports neither napari nor Qt; the widget's module does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._reader import is_series_store, napari_get_reader, read_series_store

if TYPE_CHECKING:
    from ._widget import LiveViewWidget

__all__ = ["LiveViewWidget", "is_series_store", "napari_get_reader", "read_series_store"]


def __getattr__(name: str) -> Any:
    if name == "LiveViewWidget":  # imports Qt: only when asked for
        from ._widget import LiveViewWidget

        return LiveViewWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
