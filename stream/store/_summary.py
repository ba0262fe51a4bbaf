"""Metadata of a series store: recognising one, its OME-Zarr attributes, its summary.

Kept apart from the writer so ``deepdenoise info`` and other readers need only the
JSON and the 1-D arrays, never the pixel data.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import StoreError
from ._frame_meta import FRAME_META_FILE, read_frame_meta
from ._layout import IMAGES

#: Keys of the ``deepdenoise`` attribute that only the store itself sets.
RESERVED_KEYS = frozenset(
    {
        "store_version",
        "series",
        "frame_shape",
        "raw_dtype",
        "images",
        "frames_per_shard",
        "created",
        "opened",
        "sessions",
        "closed",
        "closed_at",
        "frames",
        "clean_frames",
        "first_index",
        "last_index",
        "missing",
        "lost",
        "frame_meta_lost",
        "traces",
    }
)
MISSING_SHOWN = 10


def read_group_attrs(path: Path) -> dict[str, Any]:
    """The ``attributes`` of the group at ``path`` (read from ``zarr.json`` directly)."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}/zarr.json: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        raise StoreError(f"{path} is not a Zarr v3 group")
    attrs = meta.get("attributes", {})
    return attrs if isinstance(attrs, dict) else {}


def closed_totals(path: Path) -> dict[str, Any] | None:
    """The totals a closed series store recorded: ``frames``, ``missing``, ``lost`` (None:
    no store there, unreadable, or not closed)."""
    try:
        info = read_group_attrs(path).get("deepdenoise", {}) if path.exists() else {}
    except StoreError:
        return None
    if not isinstance(info, dict) or not info.get("closed"):
        return None
    lost = info.get("lost")
    return {
        "frames": int(info.get("frames", 0)),
        "missing": int(info.get("missing", 0)),
        "lost": dict(lost) if isinstance(lost, dict) else {},
        "closed": True,
    }


def written_by_us(path: Path, version_key: str) -> bool:
    """True if ``path`` is a Zarr v3 group whose ``deepdenoise`` attributes carry an
    integer ``version_key`` (``store_version``: a series store; ``rejected_version``)."""
    try:
        info = read_group_attrs(path).get("deepdenoise")
    except StoreError:
        return False
    return isinstance(info, dict) and isinstance(info.get(version_key), int)


def is_series_store(path: Path) -> bool:
    """True if ``path`` is a Zarr v3 group written by :class:`SeriesStore`."""
    return written_by_us(path, "store_version")


def left_open(path: Path) -> bool:
    """True if ``path`` is a series store that was never closed (its session killed
    while writing it), from one read of its attributes."""
    try:  # a store that cannot be read is its own series' to find (not this check's)
        info = read_group_attrs(path).get("deepdenoise") if path.exists() else None
    except (StoreError, OSError):
        return False
    return (
        isinstance(info, dict)
        and isinstance(info.get("store_version"), int)
        and not info.get("closed")
    )


@dataclass
class FlagScan:
    """Totals of the ``valid`` and ``clean_valid`` flags of a store.

    ``missing`` counts the slots in ``[0, last]`` without a raw frame, where ``last``
    is the highest slot holding a raw or a clean frame.
    """

    valid: int = 0
    clean: int = 0
    first: int | None = None
    last: int | None = None
    missing: int = 0
    missing_first: list[int] = field(default_factory=list)
    #: ``[start, stop)`` runs of indices whose raw frame is on disk.
    valid_runs: list[tuple[int, int]] = field(default_factory=list)
    #: ``[start, stop)`` runs of indices whose denoised frame is on disk.
    clean_runs: list[tuple[int, int]] = field(default_factory=list)


def scan_flags(store: Path, extent: int | None = None) -> FlagScan:
    """Count the flags chunk by chunk, reading only chunks that exist on disk.

    The time axis may be sparse (a stream that jumped far ahead); memory and time
    follow the chunks written, not the length of the axis. The two arrays may differ
    in length in a store whose writer was killed while resizing them. ``extent``: the
    series' length as known (a closed store's axis: its highest index + 1), so frames
    lost after the last stored one count as missing too; default: up to the last flag.
    """
    try:
        return _scan_flags(store, extent)
    except StoreError:
        raise
    except Exception as exc:  # zarr and its codecs raise many kinds for a damaged store
        raise StoreError(
            f"{store}: cannot read its valid/clean_valid flags, the store is damaged "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _scan_flags(store: Path, extent: int | None) -> FlagScan:
    import zarr

    group = zarr.open_group(str(store), mode="r", zarr_format=3)
    valid, clean_valid = group["valid"], group["clean_valid"]
    if not (isinstance(valid, zarr.Array) and isinstance(clean_valid, zarr.Array)):
        raise StoreError(f"{store}: valid and clean_valid must be arrays")
    length = max(int(valid.shape[0]), int(clean_valid.shape[0]))
    n = int(valid.chunks[0])
    stored = _stored_chunks(store / "valid", valid) | _stored_chunks(
        store / "clean_valid", clean_valid
    )
    scan = FlagScan()
    pieces = []
    for c in sorted(i for i in stored if i * n < length):
        c0, c1 = c * n, min((c + 1) * n, length)
        v, cv = (_flags(a, c0, c1) for a in (valid, clean_valid))
        written = np.flatnonzero(v | cv)
        if written.size:
            scan.last = c0 + int(written[-1])
        if scan.first is None and v.any():
            scan.first = c0 + int(np.argmax(v))
        scan.valid += int(v.sum())
        scan.clean += int(cv.sum())
        pieces.append((c0, v))
        _add_runs(scan.valid_runs, c0, v)
        _add_runs(scan.clean_runs, c0, cv)
    if extent is not None and extent > 0:
        scan.last = max(scan.last if scan.last is not None else -1, extent - 1)
    if scan.last is None:
        return scan
    scan.missing = scan.last + 1 - scan.valid
    pos = 0  # first few holes, in order, up to `last`
    for c0, v in [*pieces, (scan.last + 1, np.zeros(0, bool))]:
        gap = range(pos, min(c0, scan.last + 1))
        scan.missing_first += list(gap[: MISSING_SHOWN - len(scan.missing_first)])
        holes = c0 + np.flatnonzero(~v[: max(0, scan.last + 1 - c0)])
        scan.missing_first += [int(i) for i in holes[: MISSING_SHOWN - len(scan.missing_first)]]
        pos = c0 + v.size
        if len(scan.missing_first) >= MISSING_SHOWN:
            break
    return scan


def _add_runs(runs: list[tuple[int, int]], offset: int, flags: np.ndarray) -> None:
    """Append the runs of True in ``flags`` (at ``offset``), merging with the last run."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.view(np.int8), [0]))))
    for a, b in zip(edges[::2] + offset, edges[1::2] + offset, strict=True):
        if runs and runs[-1][1] == a:
            runs[-1] = (runs[-1][0], int(b))
        else:
            runs.append((int(a), int(b)))


def stored_series(path: Path) -> tuple[tuple[int, int], str, list[tuple[int, int]]]:
    """An existing store's frame shape, raw dtype and runs of stored indices.

    What a service resuming the series must respect: frames of another shape or dtype
    cannot go into this store, and stored indices are not overwritten unasked.
    """
    shape, dtype = recorded_frames(path)
    return shape, dtype, scan_flags(path).valid_runs


def recorded_frames(path: Path) -> tuple[tuple[int, int], str]:
    """An existing store's frame shape and raw dtype, from its attributes alone."""
    info = read_group_attrs(path).get("deepdenoise", {})
    try:
        shape = (int(info["frame_shape"][0]), int(info["frame_shape"][1]))
        dtype = str(info["raw_dtype"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StoreError(f"{path} does not record its frame shape and dtype: {exc}") from exc
    return shape, dtype


def _flags(array: Any, start: int, stop: int) -> np.ndarray:
    out = np.zeros(stop - start, dtype=bool)
    end = min(stop, int(array.shape[0]))
    if end > start:
        out[: end - start] = array[start:end]
    return out


def _stored_chunks(folder: Path, array: Any) -> set[int]:
    """Indices of the chunks of a 1-D array present on disk (default key encoding)."""
    encoding = array.metadata.to_dict().get("chunk_key_encoding", {})
    if encoding != {"name": "default", "configuration": {"separator": "/"}}:
        return set(range(-(-int(array.shape[0]) // int(array.chunks[0]))))  # all of them
    try:
        return {int(e.name) for e in (folder / "c").iterdir() if e.name.isdigit()}
    except FileNotFoundError:
        return set()


def summarize_store(path: Path) -> dict[str, Any]:
    """What ``deepdenoise info PATH`` shows; reads metadata, the 1-D arrays and the raw
    shards' indexes only.

    ``frames`` is the length of the time axis; ``valid`` counts raw frames on disk;
    ``missing`` counts the slots in ``[0, last_index]`` without a raw frame (the first
    few are listed); ``damaged``: None, or which raw frames flagged valid have no pixels
    on disk (their shard file is gone or unreadable: the store is damaged), or fewer
    flagged than a closed store recorded; ``damaged_clean``: the same of denoised
    frames (a reader of raw frames may go on); ``clean_frames`` counts
    frames whose denoised image is on disk (every other clean slot is NaN).
    """
    import zarr

    path = Path(path)
    if not is_series_store(path):
        raise StoreError(f"{path} is not a deepdenoise series store")
    try:
        group = zarr.open_group(str(path), mode="r", zarr_format=3)
        raw = group[IMAGES["raw"]]
        if not isinstance(raw, zarr.Array):
            raise StoreError(f"{path}/{IMAGES['raw']} is not an array")
        info = read_group_attrs(path)["deepdenoise"]
        # a closed store's axis ends at its highest index: holes up to there are missing
        scan = scan_flags(path, int(raw.shape[0]) if info.get("closed") else None)
    except (KeyError, OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}{unreadable_metadata(path)}") from exc
    assert isinstance(raw, zarr.Array)
    try:
        damage = frames_without_pixels(path, raw, IMAGES["raw"], scan.valid_runs)
        clean = group.get(IMAGES["clean"])
        clean_damage = (
            frames_without_pixels(path, clean, IMAGES["clean"], scan.clean_runs)
            if isinstance(clean, zarr.Array)
            else f"no denoised image array ({IMAGES['clean']}: deleted?)"
        )
    except (KeyError, OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    lost_flags = flags_lost(info, scan.valid)
    if lost_flags:
        damage = f"{damage}; {lost_flags}" if damage else lost_flags
    return {
        "series": info.get("series"),
        "images": {name: str(path / rel) for name, rel in IMAGES.items()},
        "shape": list(raw.shape),
        "dtype": np.dtype(raw.dtype).str,
        "frames": int(raw.shape[0]),
        "valid": scan.valid,
        # valid frames whose pixels are gone (a deleted shard): readers refuse the store
        "damaged": damage,
        # denoised frames flagged stored whose pixels are gone (read as NaN): said
        "damaged_clean": clean_damage,
        "clean_frames": scan.clean,
        "first_index": scan.first,
        "last_index": scan.last,
        "missing": scan.missing,
        "missing_indices": scan.missing_first,
        "chunks": list(raw.chunks),
        "shards": list(raw.shards) if raw.shards else None,
        "codec": _codec_text(raw),
        "closed": bool(info.get("closed", False)),
        "traces": _trace_arrays(group),
        # frames whose own meta is kept (frame_meta.msgpack), and the disk refused
        "frame_meta": _frame_meta_text(path, info.get("frame_meta_lost", 0)),
        "attrs": info,
    }


def _frame_meta_text(path: Path, lost: int) -> str:
    try:
        kept = f"{len(read_frame_meta(path))} frame(s) in {FRAME_META_FILE}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        kept = f"{FRAME_META_FILE} unreadable: {exc}"
    return f"{kept}; {lost} frame(s)' meta lost to write errors" if lost else kept


def flags_lost(info: dict[str, Any], valid: int) -> str | None:
    """Why a closed store's ``valid`` flags are fewer than the raw frames its close
    recorded (``info``: its ``deepdenoise`` attribute), in words; None when they are not:
    a flags chunk deleted leaves those frames' pixels on disk as holes, unsaid."""
    recorded = info.get("frames") if info.get("closed") else None
    if not isinstance(recorded, int) or recorded <= valid:
        return None
    return (
        f"its valid flags count {valid} raw frame(s), its close recorded {recorded}: "
        "flags of frames on disk are gone"
    )


def unreadable_metadata(path: Path) -> str:
    """``"; FILE is no JSON (why)"`` for the first of a store's ``zarr.json`` files (its
    groups' and arrays', two levels down) that does not parse, else "": zarr's error
    says what, not where (a user's trial)."""
    for pattern in ("zarr.json", "*/zarr.json", "*/*/zarr.json"):
        for file in sorted(path.glob(pattern)):
            try:
                json.loads(file.read_bytes())
            except (OSError, ValueError) as exc:
                return f"; {file} is no JSON ({exc})"
    return ""


def missing_shards(path: Path, array: Any, rel: str, shards: Any) -> dict[int, str]:
    """Of ``shards`` (indices along t), those with a file gone or unreadable under
    ``path/rel``: shard -> the file's key (and why it cannot be read). zarr reads a
    missing shard as its fill value, so flags alone would call such a store intact; a
    truncated or overwritten one fails only when its pixels are read. One ``stat`` and
    one read of the shard's index per file, no pixel read."""
    grid = array.metadata.chunk_grid.chunk_shape  # a shard's shape (the stored files)
    across = [range(-(-int(n) // int(g))) for n, g in zip(array.shape[1:], grid[1:], strict=True)]
    inner = getattr(array.metadata.codecs[0], "chunk_shape", grid)  # chunks in a shard
    chunks = int(np.prod([int(g) // int(c) for g, c in zip(grid, inner, strict=True)]))
    gone: dict[int, str] = {}
    for t in shards:
        for rest in itertools.product(*across):
            key = f"{rel}/{array.metadata.encode_chunk_key((t, *rest))}"
            if not (path / key).is_file():
                gone[t] = key
                break
            why = shard_unreadable(path / key, chunks)
            if why is not None:
                gone[t] = f"{key} ({why})"
                break
    return gone


def shard_unreadable(file: Path, chunks: int) -> str | None:
    """Why a shard file of ``chunks`` inner chunks cannot be read, from its index at its
    end (the store's layout: ``index_location`` end, crc32c), or None: a file cut short
    (a power cut before its data reached the disk) or overwritten fails here."""
    import google_crc32c  # zarr's own dependency for the same checksum

    size = 16 * chunks + 4  # (offset, nbytes) as uint64 per chunk, then the checksum
    try:
        with file.open("rb") as fh:  # the size of the file opened: a writer replaces a
            length = os.fstat(fh.fileno()).st_size  # shard by renaming a new one over it
            if length < size:
                return f"{length} bytes, shorter than its index"
            fh.seek(length - size)
            tail = fh.read(size)
    except OSError as exc:
        return f"cannot be read: {exc}"
    index, checksum = tail[:-4], int.from_bytes(tail[-4:], "little")
    if google_crc32c.value(index) != checksum:
        return "its index fails its checksum"
    entries = np.frombuffer(index, dtype="<u8").reshape(-1, 2)
    written = entries[:, 0] != np.iinfo(np.uint64).max  # the rest: chunks never written
    ends = entries[written, 0] + entries[written, 1]
    if ends.size and int(ends.max()) > length - size:
        return "its chunks run past its end"
    return None


def lost_pixels_text(count: int, first: list[int], gone: dict[int, str]) -> str:
    """``count`` frames flagged valid without pixels (``first`` of them listed), in words."""
    shown = ", ".join(str(i) for i in first[:MISSING_SHOWN]) + (", …" if count > len(first) else "")
    files = ", ".join(list(gone.values())[:3]) + (", …" if len(gone) > 3 else "")
    return (
        f"{count} frame(s) flagged valid have no pixels on disk (indices {shown}; missing or "
        f"unreadable: {files})"
    )


def frames_without_pixels(
    path: Path, array: Any, rel: str, runs: list[tuple[int, int]]
) -> str | None:
    """What is lost of the frames in ``runs`` (``[start, stop)``, flagged valid) whose
    shard file under ``path/rel`` is gone (:func:`missing_shards`), in words; None when
    every one is on disk. The runs are never spelled out frame by frame."""
    k = int(array.metadata.chunk_grid.chunk_shape[0])
    shards = sorted({t for start, stop in runs for t in range(start // k, (stop - 1) // k + 1)})
    gone = missing_shards(path, array, rel, shards)
    if not gone:
        return None
    lost_shards = sorted(gone)
    first: list[int] = []
    count = 0
    for start, stop in runs:
        low = bisect.bisect_left(lost_shards, start // k)
        high = bisect.bisect_right(lost_shards, (stop - 1) // k)
        for t in lost_shards[low:high]:
            a, b = max(start, t * k), min(stop, (t + 1) * k)
            count += b - a
            first += list(range(a, min(b, a + MISSING_SHOWN - len(first))))
    return lost_pixels_text(count, first, gone)


def _trace_arrays(group: Any) -> dict[str, dict[str, Any]]:
    """Each trace array: its shape, its ROI count and columns, its first frame index."""
    import zarr

    out: dict[str, dict[str, Any]] = {}
    for name in group.attrs.get("deepdenoise", {}).get("traces", []):
        array = group.get(name)
        if isinstance(array, zarr.Array):
            attrs = dict(array.attrs)
            out[name] = {
                "shape": list(array.shape),
                "columns": attrs.get("columns"),
                "first_index": attrs.get("first_index"),
            }
    return out


def _codec_text(array: Any) -> str:
    parts = []
    for codec in array.compressors:
        cname = getattr(codec, "cname", None)
        if cname is not None:
            parts.append(
                f"blosc {cname.value} clevel {codec.clevel} {codec.shuffle.value}"  # BloscCodec
            )
        else:
            parts.append(json.dumps(codec.to_dict()))
    return ", ".join(parts) or "none"
