"""Regions of interest: which pixels each ROI averages, from a label image or suite2p.

A label image is an integer (H, W) array: 0 is background, every other value one ROI;
ROIs are ordered by ascending label, and that order is the row order of every trace.
suite2p's ``stat.npy`` lists each ROI's pixels (``ypix``, ``xpix``); ROI ``i`` gets label
``i + 1`` and, as suite2p does by default, pixels claimed by more than one ROI count
for none of them. An ``iscell.npy`` beside it keeps only the ROIs classified as cells,
and an ``ops.npy`` beside it gives the frame shape (``Ly``, ``Lx``).

The means touch only the ROI pixels, not the whole frame. Binding to a frame shape
(where the ROIs are loaded or checked, not on the first frame a closed loop waits for)
groups their flat indices by ROI and builds a sparse averaging matrix. A float32 frame
(the denoised one, on the closed loop's path) then costs one sparse product, summed in
float32: half the time of a gather and a segmented sum. An integer frame (the raw one,
off that path) takes the gather and sum, exact in int64.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import RoiError
from .._types import MAX_SIDE, check_frame_shape

#: Label values are stored and published as int64 (msgpack ints).
LABEL_DTYPE = np.int64


@dataclass(frozen=True, slots=True, eq=False)
class RoiSet:
    """ROIs as grouped pixel lists.

    Attributes
    ----------
    labels
        The ROI labels, ascending: the rows of every trace.
    ys, xs
        Pixel coordinates, ROI after ROI in label order.
    starts, counts
        Where each ROI's pixels begin in ``ys``/``xs``, and how many there are.
    shape
        The frame shape the ROIs were drawn on; None when only their extent is known
        (suite2p without ``ops.npy``): they then fit any frame that holds them.
    source
        Where they came from, for status and store attributes.
    """

    labels: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    shape: tuple[int, int] | None
    source: str
    _bound: dict[tuple[int, int], BoundRois] = field(default_factory=dict, repr=False)
    #: Which pixels make which ROI, as a short hash: a store tells two ROI sets with
    #: the same labels apart by it (set_rois mid-series starts another trace array).
    digest: str = field(default="", init=False)

    def __post_init__(self) -> None:
        h = hashlib.blake2b(digest_size=8)  # when the ROIs are loaded, not per frame
        for part in (self.labels, self.counts, self.ys, self.xs):
            h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        object.__setattr__(self, "digest", h.hexdigest())
        import scipy.sparse  # noqa: F401  (loaded with the ROIs, not on a first frame's path)

    @property
    def count(self) -> int:
        return int(self.labels.size)

    def unchanged_rows(self, old: RoiSet) -> tuple[np.ndarray, np.ndarray]:
        """The ROIs with the same label and the same pixels here and in ``old``: their
        rows here, and in ``old``."""
        _, rows, old_rows = np.intersect1d(self.labels, old.labels, return_indices=True)
        same = [
            i
            for i, (row, old_row) in enumerate(zip(rows, old_rows, strict=True))
            if self.counts[row] == old.counts[old_row]
            and np.array_equal(self._pixels(row), old._pixels(old_row))
        ]
        return rows[same].astype(np.int64), old_rows[same].astype(np.int64)

    def _pixels(self, row: int) -> np.ndarray:
        start, count = int(self.starts[row]), int(self.counts[row])
        return np.stack([self.ys[start : start + count], self.xs[start : start + count]])

    @property
    def extent(self) -> tuple[int, int]:
        """The smallest frame (H, W) holding every ROI pixel."""
        return int(self.ys.max()) + 1, int(self.xs.max()) + 1

    def describe(self) -> dict[str, Any]:
        return {"rois": self.count, "source": self.source, "shape": self.shape}

    def to_labels(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """The label image (uint16 when the labels fit, else int32/int64): what set_rois sends.

        ``shape`` defaults to the ROIs' own frame shape, else their extent.
        """
        h, w = shape or self.shape or self.extent
        top = int(self.labels.max())
        dtype = np.uint16 if top < 2**16 else np.int32 if top < 2**31 else np.int64
        image = np.zeros((h, w), dtype=dtype)
        image[self.ys, self.xs] = np.repeat(self.labels, self.counts).astype(dtype)
        return image

    def bound(self, shape: tuple[int, int]) -> BoundRois | None:
        """The ROIs on frames of ``shape`` if already bound (never binds: any thread)."""
        return self._bound.get((int(shape[0]), int(shape[1])))

    def bind(self, shape: tuple[int, int]) -> BoundRois:
        """The ROIs on frames of ``shape`` (built once per shape); RoiError if they were
        drawn for another shape."""
        h, w = int(shape[0]), int(shape[1])
        bound = self._bound.get((h, w))
        if bound is not None:
            return bound
        if self.shape is not None and self.shape != (h, w):
            raise RoiError(
                f"the ROIs ({self.source}) are {self.shape[0]}x{self.shape[1]}, "
                f"the frames are {h}x{w}"
            )
        need_h, need_w = self.extent
        if need_h > h or need_w > w:
            raise RoiError(
                f"the ROIs ({self.source}) reach pixel ({need_h - 1}, {need_w - 1}), "
                f"outside the {h}x{w} frames"
            )
        flat = (self.ys.astype(np.intp) * w + self.xs.astype(np.intp)).astype(np.intp)
        bound = self._bound[(h, w)] = BoundRois(self, (h, w), flat)
        return bound


class BoundRois:
    """ROIs bound to a frame shape: computes the per-ROI means of a frame."""

    __slots__ = ("_average", "_flat", "_inverse_counts", "_starts", "rois", "shape")

    def __init__(self, rois: RoiSet, shape: tuple[int, int], flat: np.ndarray) -> None:
        self.rois = rois
        self.shape = shape
        self._flat = flat
        self._starts = rois.starts.astype(np.intp)
        self._inverse_counts = 1.0 / rois.counts.astype(np.float64)
        import scipy.sparse  # not at import: a service without ROIs never needs it

        # row r holds 1/count at ROI r's pixels: means = average @ frame.ravel()
        weights = np.repeat(self._inverse_counts.astype(np.float32), rois.counts)
        row_of_pixel = np.repeat(np.arange(rois.count), rois.counts)
        self._average = scipy.sparse.csr_array(
            (weights, (row_of_pixel, flat)), shape=(rois.count, shape[0] * shape[1])
        )

    def means(self, frame: np.ndarray) -> np.ndarray:
        """Mean of each ROI's pixels (float64, label order); a non-finite pixel (NaN,
        ±inf) makes a NaN mean, as the protocol says (an infinite pixel made an
        infinite mean: a user's trial).

        A float32 frame's means are summed in float32 (relative error about 1e-6)."""
        if frame.shape != self.shape:
            raise RoiError(f"expected a {self.shape} frame, got {frame.shape}")
        if frame.dtype == np.float32:
            averaged: np.ndarray = self._average @ frame.reshape(-1)
            return _nan_where_infinite(averaged.astype(np.float64))
        values = np.take(frame.reshape(-1), self._flat)
        if frame.dtype.kind in "iu":  # integer sums are exact, and finite
            sums = np.add.reduceat(values, self._starts, dtype=np.int64)
            result: np.ndarray = sums * self._inverse_counts
            return result
        sums = np.add.reduceat(values, self._starts, dtype=np.float64)
        return _nan_where_infinite(sums * self._inverse_counts)


def _nan_where_infinite(means: np.ndarray) -> np.ndarray:
    means[np.isinf(means)] = np.nan
    return means


def rois_from_labels(image: Any, source: str = "labels", extent_only: bool = False) -> RoiSet:
    """ROIs from an integer label image (0 = background); RoiError says what is wrong.

    ``extent_only``: the image covers only the ROIs' extent from the frame's top-left
    corner (ROIs known by their pixels), so they fit any frame that holds it."""
    arr = np.asarray(image)
    arr = _squeeze_to_2d(arr, source)
    if arr.dtype.kind not in "iu":
        raise RoiError(
            f"expected an integer label image (0 = background), got dtype {arr.dtype} from {source}"
        )
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise RoiError(f"expected labels >= 0, {source} has {int(arr.min())}")
    if arr.dtype.itemsize == 8 and arr.dtype.kind == "u" and arr.size:
        top = int(arr.max())
        if top > np.iinfo(LABEL_DTYPE).max:  # labels are published as int64
            raise RoiError(f"expected labels below 2**63, {source} has {top}")
    flat = arr.reshape(-1)
    inside = np.flatnonzero(flat)
    if inside.size == 0:
        raise RoiError(f"{source} has no ROI: every pixel is 0 (background)")
    values = flat[inside].astype(LABEL_DTYPE)
    order = np.argsort(values, kind="stable")
    inside, values = inside[order], values[order]
    labels, starts, counts = np.unique(values, return_index=True, return_counts=True)
    h, w = arr.shape
    ys, xs = np.divmod(inside, w)
    return RoiSet(
        labels.astype(LABEL_DTYPE),
        ys.astype(np.int32),
        xs.astype(np.int32),
        starts.astype(np.intp),
        counts.astype(np.int64),
        None if extent_only else (int(h), int(w)),
        source,
    )


def rois_from_suite2p(
    stat: Any,
    shape: tuple[int, int] | None = None,
    iscell: Any = None,
    source: str = "stat.npy",
) -> RoiSet:
    """ROIs from suite2p's ``stat`` (a sequence of dicts with ``ypix`` and ``xpix``):
    whole pixel coordinates, 0 to ``MAX_SIDE`` - 1 (within ``shape`` when given)."""
    try:
        entries = list(stat)
        pixel_lists = [(_coordinates(s["ypix"]), _coordinates(s["xpix"])) for s in entries]
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise RoiError(
            f"expected suite2p stat: a list of dicts with 'ypix' and 'xpix', {source} is not "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for i, (ys, xs) in enumerate(pixel_lists):
        if ys.shape != xs.shape:
            raise RoiError(
                f"ROI {i} of {source} has {ys.size} 'ypix' and {xs.size} 'xpix'; expected "
                "one of each per pixel"
            )
    keep = np.ones(len(pixel_lists), dtype=bool)
    if iscell is not None:
        cells = np.asarray(iscell)
        if cells.ndim not in (1, 2) or cells.dtype.kind not in "biuf":
            raise RoiError(
                f"expected iscell as suite2p writes it (rows of [is cell, probability]), "
                f"got a {cells.ndim}-D {cells.dtype} array beside {source}"
            )
        flags = cells[:, 0] if cells.ndim == 2 else cells
        if flags.shape[0] != len(pixel_lists):
            raise RoiError(
                f"iscell has {flags.shape[0]} rows, stat has {len(pixel_lists)} ROIs ({source})"
            )
        keep = flags > 0.5
    chosen = [(i, ys, xs) for i, (ys, xs) in enumerate(pixel_lists) if keep[i] and ys.size]
    if not chosen:
        among = " among the cells of iscell" if iscell is not None else ""
        raise RoiError(f"{source} has no ROI with pixels{among}")
    if any(ys.min() < 0 or xs.min() < 0 for _, ys, xs in chosen):
        raise RoiError(f"{source} has negative pixel coordinates")
    h, w = shape if shape is not None else (MAX_SIDE, MAX_SIDE)
    for i, ys, xs in chosen:
        if ys.max() >= h or xs.max() >= w:
            frames = f"the {h}x{w} frames of ops.npy" if shape is not None else "any frame"
            raise RoiError(
                f"ROI {i} of {source} reaches pixel ({int(ys.max())}, {int(xs.max())}), "
                f"outside {frames} (at most {MAX_SIDE} a side)"
            )
    # overlapping pixels: suite2p leaves them out of F, found among every ROI it detected,
    # cells or not (an overlap with a non-cell counted too: a user's trial)
    detected = [
        (ys, xs)
        for ys, xs in pixel_lists
        if ys.size and min(ys.min(), xs.min()) >= 0 and ys.max() < h and xs.max() < w
    ]
    width = max(int(xs.max()) for _, xs in detected) + 1
    keys = [ys * width + xs for _, ys, xs in chosen]
    unique, times = np.unique(
        np.concatenate([ys * width + xs for ys, xs in detected]), return_counts=True
    )
    shared = unique[times > 1]
    labels, ys_all, xs_all, starts, counts = [], [], [], [], []
    at = 0
    for (i, _, _), key in zip(chosen, keys, strict=True):
        own = np.unique(key[~np.isin(key, shared)])
        if own.size == 0:
            continue
        y, x = np.divmod(own, width)
        labels.append(i + 1)
        ys_all.append(y)
        xs_all.append(x)
        starts.append(at)
        counts.append(own.size)
        at += own.size
    if not labels:
        raise RoiError(f"every pixel of every ROI in {source} overlaps another ROI")
    return RoiSet(
        np.asarray(labels, dtype=LABEL_DTYPE),
        np.concatenate(ys_all).astype(np.int32),
        np.concatenate(xs_all).astype(np.int32),
        np.asarray(starts, dtype=np.intp),
        np.asarray(counts, dtype=np.int64),
        None if shape is None else (int(shape[0]), int(shape[1])),
        source,
    )


def _coordinates(values: Any) -> np.ndarray:
    """One ROI's pixel coordinates, 1-D whole numbers (suite2p writes int32), int64."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise ValueError(f"expected a 1-D list of pixel coordinates, got {arr.ndim}-D {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValueError("expected whole pixel coordinates, got fractions or non-finite ones")
    if arr.size and (arr.min() < -(2**62) or arr.max() > 2**62):
        raise ValueError("pixel coordinates out of any frame's range")
    return arr.astype(np.int64)


def load_rois(path: str | Path) -> RoiSet:
    """ROIs from a file: a label image (``.npy``, ``.tif``/``.tiff``, a Zarr array) or
    suite2p's ``stat.npy``. Raises RoiError with what was expected and what was found."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RoiError(f"ROI file {path} does not exist")
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return _load_npy(path)
        if name.endswith((".tif", ".tiff")):
            import tifffile

            return rois_from_labels(tifffile.imread(path), str(path))
        if path.is_dir() and (path / "stat.npy").is_file() and not _is_zarr(path):
            raise RoiError(
                f"{path} is a folder holding stat.npy (suite2p's plane folder?): give "
                f"{path / 'stat.npy'}"
            )
        if path.is_dir():
            return _load_zarr(path)
    except RoiError:
        raise
    except (OSError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise RoiError(f"cannot read ROIs from {path}: {exc}") from exc
    raise RoiError(
        f"expected ROIs as .npy (label image or suite2p stat.npy), .tif/.tiff or a Zarr "
        f"array folder, got {path}"
    )


def _is_zarr(path: Path) -> bool:
    return any((path / meta).is_file() for meta in ("zarr.json", ".zarray", ".zgroup"))


def _load_npy(path: Path) -> RoiSet:
    with path.open("rb") as head:
        if head.read(6) != b"\x93NUMPY":  # else numpy takes it for a pickle, and says so
            raise RoiError(f"{path} is not a NumPy .npy file (no NumPy header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: suite2p's stat.npy
        if "allow_pickle" not in str(exc):
            raise
        return _load_suite2p(path)
    return rois_from_labels(arr, str(path))


def _load_suite2p(path: Path) -> RoiSet:
    # stat.npy is a pickle: only load files you trust (as suite2p itself does).
    stat = _unpickle(path)
    iscell_path, ops_path = path.with_name("iscell.npy"), path.with_name("ops.npy")
    iscell = _unpickle(iscell_path) if iscell_path.exists() else None
    shape = None
    if ops_path.exists():
        ops = _unpickle(ops_path)
        ops = ops.item() if isinstance(ops, np.ndarray) and ops.size == 1 else ops
        if isinstance(ops, dict) and "Ly" in ops and "Lx" in ops:
            try:
                sides = [float(ops[k]) for k in ("Ly", "Lx")]
                if not all(side.is_integer() for side in sides):
                    raise ValueError(f"expected whole numbers, got {sides}")
                shape = check_frame_shape((int(sides[0]), int(sides[1])))
            except (TypeError, ValueError, OverflowError) as exc:
                raise RoiError(f"{ops_path}: 'Ly' and 'Lx' are not a frame shape: {exc}") from None
    return rois_from_suite2p(stat, shape, iscell, str(path))


def _unpickle(path: Path) -> Any:
    """A suite2p ``.npy`` (pickles allowed); RoiError naming the file when it will not load."""
    try:
        return np.load(path, allow_pickle=True)
    except Exception as exc:  # unpickling raises whatever the pickled classes raise
        raise RoiError(f"cannot read ROIs from {path}: {type(exc).__name__}: {exc}") from None


def _load_zarr(path: Path) -> RoiSet:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a folder that is no store
        raise RoiError(f"{path} is not a Zarr array: {exc}") from exc
    if not isinstance(node, zarr.Array):
        raise RoiError(
            f"{path} is a Zarr group; give the path of the label array inside it "
            "(for OME-Zarr labels, e.g. .../labels/cells/0)"
        )
    return rois_from_labels(node[...], str(path))


def _squeeze_to_2d(arr: np.ndarray, source: str) -> np.ndarray:
    """OME-Zarr labels are 5-D with singleton t, c, z: drop leading axes of size 1."""
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise RoiError(f"expected a 2-D label image (H, W), {source} has shape {arr.shape}")
    return arr
