"""An npe2 reader: a deepdenoise series store opens as two layers, ``raw`` and ``clean``.

A series store (``<series>.zarr``, README "Zarr layout") is a Zarr v3 group whose
``deepdenoise`` attribute names its images (``images: {"raw": "0/0", "clean": "1/0"}``).
This reader relies on that attribute alone, not on the service's code, so the client
package stays independent of it; other Zarr folders are left to other readers. The
arrays are handed to napari as zarr arrays: frames are read when they are shown, so a
long recording opens at once. Works without napari-ome-zarr (which, where installed,
also reads both images through the OME-Zarr metadata).
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The images of a store, in the order they become layers (raw below clean).
IMAGES = ("raw", "clean")

LayerData = tuple[Any, dict[str, Any], str]
PathLike = str | Path


def deepdenoise_attrs(path: PathLike) -> dict[str, Any] | None:
    """The ``deepdenoise`` attribute of the Zarr group at ``path`` (None: none there)."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    info = meta.get("attributes", {}).get("deepdenoise") if isinstance(meta, dict) else None
    return info if isinstance(info, dict) else None


def _store_info(path: PathLike) -> dict[str, Any] | None:
    """The store's ``deepdenoise`` attribute if ``path`` is a series store, else None."""
    info = deepdenoise_attrs(path)
    if info is None:
        return None
    images = info.get("images")
    if not isinstance(images, dict) or not all(isinstance(images.get(n), str) for n in IMAGES):
        return None
    return info


def is_series_store(path: PathLike) -> bool:
    """True if ``path`` is a series store written by the deepdenoise service."""
    return _store_info(path) is not None


def napari_get_reader(path: PathLike | Sequence[PathLike]) -> Callable[..., Any] | None:
    """npe2 reader entry: :func:`read_series_store` for one series store, the rejected
    frames' reader for a store of them (``rejected/<series>.zarr``), else None."""
    from ._rejected import read_rejected_store, rejected_series  # it imports this module

    if not isinstance(path, str | Path):
        if len(path) != 1:
            return None
        path = path[0]
    if is_series_store(path):
        return read_series_store
    return read_rejected_store if rejected_series(path) is not None else None


def read_series_store(path: PathLike | Sequence[PathLike]) -> list[LayerData]:
    """Two image layers, ``<series> raw`` and ``<series> clean``, axes (t, y, x).

    The time axis is the frame index, as on disk: a frame never received is a hole
    (zeros in ``raw``, NaN in ``clean``). It ends at the last frame on disk: a store
    still being written has its time axis allocated ahead, which would show as an
    empty slider. Contrast limits come from the newest frame whose raw and clean pixels
    are both on disk, so the first view needs no scan. A damaged store (raw or denoised
    frames flagged as stored whose shard files are gone, which zarr reads as zeros or
    NaN) is warned of, and the count kept in the layer's metadata.
    """
    import zarr

    if not isinstance(path, str | Path):
        path = path[0]
    info = _store_info(path)
    if info is None:
        raise ValueError(f"expected a deepdenoise series store (<series>.zarr), got {path}")
    group = zarr.open_group(str(path), mode="r")
    series = str(info.get("series") or Path(path).stem)
    valid = _valid_frames(group, Path(path))
    recorded = info.get("frames") if info.get("closed") else None
    raw_flagged = 0 if valid is None else int(valid.size)
    if isinstance(recorded, int) and recorded > raw_flagged:  # a flags chunk deleted
        warnings.warn(
            f"{path} is damaged: its valid flags count {raw_flagged} raw frame(s), its close "
            f"recorded {recorded}: frames on disk show as holes; `deepdenoise info {path}`",
            stacklevel=2,
        )
    frame = _newest_complete_frame(group, Path(path), valid)
    last = int(valid[-1]) if valid is not None and valid.size else -1
    layers: list[LayerData] = []
    for name in IMAGES:
        where = info["images"][name]
        try:
            array = group[where]
        except (KeyError, ValueError, TypeError, OSError) as exc:  # zarr's, unexplained
            raise ValueError(
                f"{path} is damaged: its {name} image ({where}) cannot be opened, its "
                f"zarr.json gone or not Zarr metadata ({type(exc).__name__}: {exc}); "
                f"`deepdenoise info {path}`"
            ) from exc
        if not isinstance(array, zarr.Array):
            raise ValueError(f"{path}: image {name!r} at {where!r} is no array")
        meta: dict[str, Any] = {"series": series, "image": name, "store": str(path)}
        flagged = valid if name == "raw" else _flagged_frames(group, "clean_valid", Path(path))
        if flagged is not None:
            lost = _frames_without_pixels(array, Path(path) / where, flagged)
            if lost:  # zarr reads a missing shard as its fill: said, not shown as data
                meta["frames_without_pixels"] = lost
                kind, fill = ("raw", "zeros") if name == "raw" else ("denoised", "NaN")
                warnings.warn(
                    f"{path} is damaged: {lost} {kind} frame(s) flagged as stored have no "
                    f"pixels on disk (their shard files are gone) and show as {fill}; "
                    f"`deepdenoise info {path}` lists them",
                    stacklevel=2,
                )
        meta = {"deepdenoise": meta}
        kwargs: dict[str, Any] = {
            "name": f"{series} {name}",
            "metadata": meta,
            "axis_labels": ("t", "y", "x"),
        }
        if frame is not None:
            limits = _limits(np.asarray(array[frame]))
            if limits is not None:
                kwargs["contrast_limits"] = limits
        layers.append((_first_frames(array, last + 1), kwargs, "image"))
    return layers


def _first_frames(array: Any, count: int) -> Any:
    """The first ``count`` frames of a zarr array, still read lazily (a dask view; napari
    depends on dask), or the whole array when it has no more."""
    if not 0 < count < array.shape[0]:
        return array
    import dask.array as da

    return da.from_zarr(array)[:count]


def _valid_frames(group: Any, path: Path) -> np.ndarray | None:
    """The indices whose raw frame is flagged as stored (None: no readable flags)."""
    return _flagged_frames(group, "valid", path)


def _flagged_frames(group: Any, flags: str, path: Path) -> np.ndarray | None:
    """The indices flagged in the array ``flags`` (None: no readable flags)."""
    try:
        return _flagged(group, flags, path)
    except (KeyError, ValueError, RuntimeError, OSError):  # no flags, or damaged ones
        return None


def _newest_complete_frame(group: Any, path: Path, valid: np.ndarray | None) -> int | None:
    """The last index with both its raw and its clean frame on disk, if any."""
    if valid is None:
        return None
    try:
        both = np.intersect1d(valid, _flagged(group, "clean_valid", path))
    except (KeyError, ValueError, RuntimeError, OSError):  # no flags, or damaged ones
        return None
    return int(both[-1]) if both.size else None


def _frames_without_pixels(array: Any, folder: Path, valid: np.ndarray) -> int:
    """How many of the ``valid`` frames have a shard file of ``array`` (stored in
    ``folder``) gone: one ``stat`` per shard file, no pixel read."""
    grid = array.metadata.chunk_grid.chunk_shape  # a shard's shape: the stored files
    across = [range(-(-int(n) // int(g))) for n, g in zip(array.shape[1:], grid[1:], strict=True)]
    shards, counts = np.unique(valid // int(grid[0]), return_counts=True)
    return sum(
        int(n)
        for t, n in zip(shards, counts, strict=True)
        if not all(
            (folder / array.metadata.encode_chunk_key((int(t), *rest))).is_file()
            for rest in itertools.product(*across)
        )
    )


def _flagged(group: Any, name: str, path: Path) -> np.ndarray:
    """The indices a flags array marks, read from its stored chunks only: a series whose
    index jumped far (to 2**40 - 1, say) has a time axis too long to read whole."""
    flags = group[name]
    chunk = int(flags.metadata.chunk_grid.chunk_shape[0])
    folder = path / name / "c"
    stored = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    hits = [
        np.flatnonzero(np.asarray(flags[i * chunk : (i + 1) * chunk], dtype=bool)) + i * chunk
        for i in stored
    ]
    return np.concatenate(hits) if hits else np.empty(0, np.int64)


def _limits(pixels: np.ndarray) -> list[float] | None:
    finite = pixels[np.isfinite(pixels)] if pixels.dtype.kind == "f" else pixels
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    return [lo, hi] if hi > lo else [lo, lo + 1.0]
