"""The Zarr v3 store of one acquisition series: ``<root>/<series>.zarr``.

Layout (a Zarr v3 group; OME-Zarr 0.5 metadata under the ``ome`` attribute, the
store's own under ``deepdenoise``)::

    raw          (T, H, W) input dtype, fill 0    chunks (1, H, W) in shards (k, H, W)
    clean        (T, H, W) float32, fill NaN      chunks (1, H, W) in shards (k, H, W)
    t_ns         (T,) int64, fill 0               acquisition timestamps (0: unknown)
    valid        (T,) bool                        True once the raw frame is on disk
    clean_valid  (T,) bool                        True once the clean frame is on disk

The time position is the frame's ``index``: a resent frame lands in the same slot
(idempotent) and a dropped frame is a visible hole (``valid`` False, ``clean`` NaN),
never a shift. ``clean_valid`` lets ``info`` count denoised frames without reading
every clean pixel.

Why the buffering: one-frame chunks keep single-frame reads cheap, but changing one
frame of a shard rewrites the whole shard. Frames are therefore collected per shard
("block") and a block is written whole once it is complete, once the stream is two
blocks past it, or on :meth:`SeriesStore.flush`; a block of which part is already on
disk is merged into it (read-modify-write). The time axis grows 8 shards at a time
and is trimmed to ``max_index + 1`` on close.

Durability: every file is replaced atomically (written to a temporary file, then
renamed, as zarr's ``LocalStore`` does), and a block's pixels are written before its
``t_ns``, before its ``valid``/``clean_valid`` flags. A process killed at any moment
leaves a readable store in which every flagged frame has its pixels; the frames it
still buffered are lost (the service flushes every ``flush_interval_s``). Nothing is
fsynced: this survives the death of the process, not a power cut.
"""

from __future__ import annotations

import json
import logging
import operator
import shutil
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from ._config import StoreConfig
from ._errors import StoreError
from ._protocol import SERIES_PATTERN
from ._store_arrays import F4, Block, StoreArrays, create_arrays
from ._store_meta import (
    RESERVED_KEYS,
    STORE_VERSION,
    FlagScan,
    is_series_store,
    ome_attrs,
    read_group_attrs,
    summarize_store,
)

__all__ = ["SeriesStore", "is_series_store", "summarize_store"]

log = logging.getLogger("deepdenoise")

TARGET_SHARD_BYTES = 16 * 1024 * 1024
MAX_FRAMES_PER_SHARD = 256
MAX_INDEX = 2**40  # far beyond any acquisition; keeps the time axis within int64 bytes
SPARE_BUFFERS = 2  # block buffers kept for reuse per kind (fresh ones cost page faults)


class SeriesStore:
    """Writes one series' raw and clean frames to ``<root>/<series>.zarr``.

    Not thread-safe: one thread (the service's writer) owns a store and makes every
    call on it; nothing stops a second process from opening the same store, so don't.
    Opening an existing store of the same series resumes it (``resumed`` is True)
    when frame shape and raw dtype match; its shard size wins over ``config``.

    Memory: about three block buffers per kind (raw, clean) are held at a time,
    each ``k`` frames: ~16 MiB raw + 32 MiB clean for 512x512 uint16.

    Parameters
    ----------
    root
        Folder holding the stores; created if missing.
    series
        Series name, 1-64 characters of ``[A-Za-z0-9._-]`` (as on the wire).
    frame_shape, raw_dtype
        Shape ``(H, W)`` and dtype of the raw frames (stored little-endian).
    config
        Shard size and codec of a new store; :class:`StoreConfig` defaults if None.
    attrs
        Provenance (``model``, ``models``, ``config``, ...) merged into the group's
        ``deepdenoise`` attribute; must be JSON-serialisable. On resume, ``models``
        is merged with the stored list, other keys replace stored ones.
    """

    def __init__(
        self,
        root: Path,
        series: str,
        frame_shape: tuple[int, int],
        raw_dtype: np.dtype[Any] | str | type,
        *,
        config: StoreConfig | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(series, str) or not SERIES_PATTERN.fullmatch(series):
            raise StoreError(f"expected a series name of 1-64 chars [A-Za-z0-9._-], got {series!r}")
        try:
            shape = tuple(int(s) for s in frame_shape)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) != 2 or min(shape) < 1:
            raise StoreError(f"expected a frame shape (H, W) of positive sizes, got {frame_shape}")
        self._shape: tuple[int, int] = (shape[0], shape[1])
        self._dtype = _normalize_dtype(raw_dtype)
        self._config = config or StoreConfig.model_validate({})
        self.series = series
        self.path = Path(root) / f"{series}.zarr"
        self._closed = False
        self._raw: dict[int, Block] = {}
        self._clean: dict[int, Block] = {}
        self._spare: dict[str, list[np.ndarray]] = {"raw": [], "clean": []}
        self._max_index: int | None = None
        self._frames = 0  # raw frames on disk (valid True)
        extra = _json_ready(dict(attrs or {}), "attrs")
        if self.path.exists():
            info = self._resume_info(extra)
            self.resumed = True
        else:
            info = self._create(extra)
            self.resumed = False
        try:
            self._group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._io = StoreArrays(self.path, self._group)
        except (KeyError, OSError, ValueError) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        raw = self._io.arrays["raw"]
        if tuple(raw.shape[1:]) != self._shape or raw.dtype != self._dtype:
            self._io.close()
            raise StoreError(
                f"cannot resume {self.path}: its raw array is {raw.shape[1:]} {raw.dtype}, "
                f"expected {self._shape} {self._dtype.str}"
            )
        self.frames_per_shard = self._io.frames_per_shard
        wanted = self._config.frames_per_shard
        if self.resumed and wanted and wanted != self.frames_per_shard:
            log.info("%s keeps its %d frames per shard", self.path, self.frames_per_shard)
        self._info = info
        if self.resumed:
            scan = self._guard("read the flags of", self._io.scan)
            self._frames, self._max_index = scan.valid, scan.last
            self._put_attrs()  # closed=False and the new session, before any frame lands

    # ------------------------------------------------------------------ opening
    def _create(self, extra: dict[str, Any]) -> dict[str, Any]:
        h, w = self._shape
        k = self._config.frames_per_shard or round(
            TARGET_SHARD_BYTES / (h * w * self._dtype.itemsize)
        )
        k = max(1, min(MAX_FRAMES_PER_SHARD, k))
        now = _now()
        info = {
            **{key: v for key, v in extra.items() if key not in RESERVED_KEYS},
            "protocol_version": extra.get("protocol_version", 1),
            "store_version": STORE_VERSION,
            "series": self.series,
            "frame_shape": list(self._shape),
            "raw_dtype": self._dtype.str,
            "frames_per_shard": k,
            "created": now,
            "opened": now,
            "sessions": 1,
            "closed": False,
        }
        # Built under a temporary name and renamed: the store path either does not exist
        # or holds a complete store, even if this process dies half-way.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            group = zarr.create_group(
                str(tmp), zarr_format=3, attributes={"ome": ome_attrs(), "deepdenoise": info}
            )
            create_arrays(group, self._shape, self._dtype, k, self._config)
            tmp.rename(self.path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"cannot create {self.path}: {exc}") from exc
        return info

    def _resume_info(self, extra: dict[str, Any]) -> dict[str, Any]:
        if not is_series_store(self.path):
            raise StoreError(
                f"{self.path} exists but is not a deepdenoise series store; "
                "move it away or use another series name"
            )
        info = dict(read_group_attrs(self.path)["deepdenoise"])
        had = f"{_shape_text(info.get('frame_shape'))} {info.get('raw_dtype')}"
        came = f"{_shape_text(self._shape)} {self._dtype.str}"
        if had != came:
            raise StoreError(
                f"cannot resume {self.path}: it holds {had} frames but series "
                f"{self.series!r} now sends {came}; use a new series name or move the store"
            )
        for leftover in self.path.rglob("*.partial"):  # temporary files of a killed writer
            leftover.unlink(missing_ok=True)
        models = list(info.get("models", []))
        models += [m for m in extra.get("models", []) if m not in models]
        info.update({k: v for k, v in extra.items() if k not in RESERVED_KEYS})
        if models:
            info["models"] = models
        info.update(opened=_now(), sessions=int(info.get("sessions", 1)) + 1, closed=False)
        return info

    # ------------------------------------------------------------------ writing
    @property
    def max_index(self) -> int | None:
        """Highest index given to :meth:`write_raw`/:meth:`write_clean` (resumed included)."""
        return self._max_index

    @property
    def frames_written(self) -> int:
        """Raw frames on disk (``valid`` True), resumed ones included; buffered excluded."""
        return self._frames

    def write_raw(self, index: int, frame: np.ndarray, t_ns: int | None) -> None:
        """Copy a raw frame into its block buffer; ``t_ns`` None is stored as 0 (unknown).

        The frame may be a view of a receive buffer: it is copied before returning.
        Its dtype must convert to the raw dtype without loss (``safe`` casting).
        """
        i = self._check_index(index)
        frame = self._check_frame(frame, self._dtype, "safe", "raw")
        stamp = 0 if t_ns is None else operator.index(t_ns)
        if not -(2**63) <= stamp < 2**63:
            raise StoreError(f"expected t_ns to fit int64, got {stamp}")
        blk, slot = self._slot(self._raw, "raw", i)
        blk.data[slot] = frame
        blk.t_ns[slot] = stamp
        self._fill(blk, slot, self._raw, self._write_raw)

    def write_clean(self, index: int, frame: np.ndarray) -> None:
        """Copy a denoised (H, W) frame into its block buffer; stored as float32."""
        i = self._check_index(index)
        frame = self._check_frame(frame, F4, "same_kind", "clean")
        blk, slot = self._slot(self._clean, "clean", i)
        blk.data[slot] = frame
        self._fill(blk, slot, self._clean, self._write_clean)

    def flush(self) -> None:
        """Write every buffered frame (partial blocks included) and its flags."""
        self._check_open()
        raw = [self._raw.pop(b) for b in sorted(self._raw)]
        clean = [self._clean.pop(b) for b in sorted(self._clean)]
        errors = []
        for blocks, write in ((raw, self._write_raw), (clean, self._write_clean)):
            try:
                write(blocks)
            except StoreError as exc:
                errors.append(str(exc))
        if errors:
            raise StoreError("; ".join(errors))

    def update_attrs(self, **values: Any) -> None:
        """Merge ``values`` into the ``deepdenoise`` group attribute, written at once."""
        self._check_open()
        bad = sorted(RESERVED_KEYS & values.keys())
        if bad:
            raise StoreError(f"attributes {bad} are managed by the store and cannot be set")
        self._info.update(_json_ready(values, "update_attrs"))
        self._put_attrs()

    def close(self) -> None:
        """Flush, trim the time axis to ``max_index + 1`` and record the totals; idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            try:
                length = 0 if self._max_index is None else self._max_index + 1
                self._guard("trim", lambda: self._io.resize(length))
                scan: FlagScan = self._guard("read the flags of", self._io.scan)
                self._info.update(
                    closed=True,
                    closed_at=_now(),
                    frames=scan.valid,
                    clean_frames=scan.clean,
                    first_index=scan.first,
                    last_index=scan.last,
                    missing=scan.missing,
                )
                self._put_attrs()
            finally:
                self._spare.clear()
                self._io.close()

    def __enter__(self) -> SeriesStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SeriesStore({str(self.path)!r}, {state}, frames_written={self._frames})"

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    def _check_index(self, index: int) -> int:
        self._check_open()
        try:
            i = operator.index(index)
        except TypeError:
            raise StoreError(f"expected an integer frame index, got {index!r}") from None
        if not 0 <= i < MAX_INDEX:
            raise StoreError(f"expected a frame index in [0, 2**40), got {i}")
        return i

    def _check_frame(self, frame: Any, dtype: np.dtype[Any], casting: Any, kind: str) -> Any:
        frame = np.asarray(frame)
        if frame.shape != self._shape:
            raise StoreError(
                f"{kind} frame has shape {frame.shape}, store {self.path.name} holds {self._shape}"
            )
        if not np.can_cast(frame.dtype, dtype, casting=casting):
            raise StoreError(f"{kind} frame dtype {frame.dtype} cannot be stored as {dtype}")
        return frame

    def _slot(self, blocks: dict[int, Block], kind: str, index: int) -> tuple[Block, int]:
        b, slot = divmod(index, self.frames_per_shard)
        blk = blocks.get(b)
        if blk is None:
            spare = self._spare[kind]
            if spare:
                data = spare.pop()
            else:
                dtype = self._dtype if kind == "raw" else F4
                data = np.empty((self.frames_per_shard, *self._shape), dtype=dtype)
            blk = blocks[b] = Block(b, data)
        if self._max_index is None or index > self._max_index:
            self._max_index = index
        return blk, slot

    def _fill(
        self,
        blk: Block,
        slot: int,
        blocks: dict[int, Block],
        write: Callable[[list[Block]], None],
    ) -> None:
        """Mark a slot filled; write the block once complete, and any block left behind."""
        if not blk.filled[slot]:
            blk.filled[slot] = True
            blk.count += 1
        due = [b for b in blocks if b <= blk.block - 2]  # the stream moved on
        if blk.count == self.frames_per_shard:
            due.append(blk.block)
        if due:
            write([blocks.pop(b) for b in sorted(due)])

    def _write_raw(self, blocks: list[Block]) -> None:
        """Pixels first, then ``t_ns``, then ``valid``: a flag never precedes its pixels."""
        done, errors = self._write_pixels("raw", blocks, 0)
        if done:
            self._guard("write t_ns of", lambda: self._io.write_flags("t_ns", done))
            newly = self._io.newly_valid(done)
            self._guard("write valid of", lambda: self._io.write_flags("valid", done))
            self._frames += newly
        self._release("raw", blocks)
        if errors:
            raise StoreError("; ".join(errors))

    def _write_clean(self, blocks: list[Block]) -> None:
        done, errors = self._write_pixels("clean", blocks, np.nan)
        if done:
            self._guard("write clean_valid of", lambda: self._io.write_flags("clean_valid", done))
        self._release("clean", blocks)
        if errors:
            raise StoreError("; ".join(errors))

    def _write_pixels(
        self, name: str, blocks: list[Block], fill: float
    ) -> tuple[list[Block], list[str]]:
        done, errors = [], []
        for blk in blocks:
            if not blk.count:
                continue
            try:
                self._io.write_block(name, blk, fill)
                done.append(blk)
            except OSError as exc:  # these frames are lost: say which
                lost = blk.indices()
                errors.append(
                    f"{len(lost)} {name} frames ({lost[0]}..{lost[-1]}) of {self.path.name} "
                    f"could not be written: {exc}"
                )
        return done, errors

    def _release(self, kind: str, blocks: list[Block]) -> None:
        spare = self._spare.get(kind)
        if spare is not None:
            spare.extend(blk.data for blk in blocks[: SPARE_BUFFERS - len(spare)])

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except OSError as exc:
            raise StoreError(f"cannot {what} {self.path}: {exc}") from exc

    def _put_attrs(self) -> None:
        self._guard(
            "write the attributes of",
            lambda: self._group.update_attributes({"deepdenoise": self._info}),
        )


def _normalize_dtype(dtype: Any) -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise StoreError(f"expected a numeric raw dtype, got {dtype!r}") from None
    if dt.kind not in "uif":
        raise StoreError(f"expected an integer or float raw dtype, got {dt}")
    return dt.newbyteorder("<") if dt.itemsize > 1 else dt


def _json_ready(values: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(json.dumps(values, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be JSON-serialisable: {exc}") from exc
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _shape_text(shape: Any) -> str:
    try:
        return "x".join(str(int(s)) for s in shape)
    except (TypeError, ValueError):
        return repr(shape)
