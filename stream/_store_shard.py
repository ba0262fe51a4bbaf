"""Whole-chunk writes for the store's hot path, byte-identical to zarr's own encoding.

Why this exists: zarr-python 3.1 routes every write through its asyncio codec
pipeline. For a shard of one-frame chunks that copies every chunk twice and
schedules a task per chunk, costing more CPU than the compression itself, and any
write, however small, costs about 2 ms of event-loop round trips. With one shard of
raw, one of clean and three small 1-D chunks per block, that capped a 2-core machine
well below 300 frames/s. A *whole* chunk file needs none of it: frames are
compressed once (in parallel, the codec releases the GIL), written with plain file
writes to a temporary file, and the file is renamed over the chunk, as zarr's
``LocalStore`` does. The codec configuration is read from the array's own metadata,
so the bytes are those zarr would write (a test compares them); reads, partial
(read-modify-write) updates, resizes and metadata still go through zarr.

Only the layouts this module knows take the fast path: ``bytes`` + optional
``blosc``, optionally inside ``sharding_indexed`` of one-frame chunks with a
``bytes`` + ``crc32c`` index at the end, on a little-endian host. Anything else is
written by zarr.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

try:
    import google_crc32c
except ImportError:  # pragma: no cover - zarr >= 3.1 depends on it
    google_crc32c = None  # type: ignore[assignment]

_KNOWN_INDEX = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
Encoder = Callable[[np.ndarray], Any]


class DirectWriter:
    """Writes whole chunk files of one Zarr array stored on a local disk.

    Parameters
    ----------
    array
        The opened ``zarr.Array``; its metadata decides the encoding.
    root
        Folder of the array (``<store>/<array name>``).
    pool
        Threads that compress the frames of one shard in parallel.
    """

    def __init__(self, array: Any, root: Path, pool: ThreadPoolExecutor) -> None:
        found = _encoder(array)
        if found is None:
            raise ValueError(f"no direct write path for the codecs of {root}")
        self.sharded, self._encode = found
        self._array = array
        self._root = root
        self._pool = pool

    @classmethod
    def maybe(cls, array: Any, root: Path, pool: ThreadPoolExecutor) -> DirectWriter | None:
        """A writer, or None when this array's layout must be written by zarr."""
        try:
            return cls(array, root, pool)
        except ValueError:
            return None

    def write_shard(self, shard: int, frames: np.ndarray) -> None:
        """Write ``frames`` (k, H, W), C-contiguous, as shard number ``shard``.

        Compressed frames are written as they come out of the pool, so the disk write
        overlaps the compression of the frames after them.
        """
        assert self.sharded
        index = np.empty((len(frames), 2), dtype="<u8")

        def parts() -> Iterable[Any]:
            offset = 0
            for i, chunk in enumerate(self._pool.map(self._encode, frames)):
                size = memoryview(chunk).nbytes
                index[i] = offset, size
                offset += size
                yield chunk
            index_bytes = index.tobytes()
            yield index_bytes
            yield google_crc32c.value(index_bytes).to_bytes(4, "little")

        self._put((shard, 0, 0), parts())

    def write_chunk(self, chunk: int, data: np.ndarray) -> None:
        """Write ``data`` (the whole chunk, C-contiguous) as chunk ``chunk`` of a 1-D array."""
        assert not self.sharded
        self._put((chunk,), [self._encode(data)])

    def _put(self, coords: tuple[int, ...], parts: Iterable[Any]) -> None:
        key = self._array.metadata.encode_chunk_key(coords)
        path = self._root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(tmp, "wb") as f:
                for part in parts:
                    f.write(part)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _encoder(array: Any) -> tuple[bool, Encoder] | None:
    """(sharded, per-chunk encoder) as zarr would encode ``array``'s chunks, or None."""
    if google_crc32c is None or sys.byteorder != "little":
        return None
    codecs = [_plain(c) for c in array.metadata.to_dict().get("codecs", ())]
    sharded = bool(codecs) and codecs[0]["name"] == "sharding_indexed"
    if sharded:
        conf = codecs[0].get("configuration", {})
        if (
            len(codecs) != 1
            or list(conf.get("chunk_shape", ())) != [1, *array.shape[1:]]
            or conf.get("index_location", "end") != "end"
            or [_plain(c) for c in conf.get("index_codecs", ())] != _KNOWN_INDEX
        ):
            return None
        codecs = [_plain(c) for c in conf.get("codecs", ())]
    if not codecs or codecs[0]["name"] != "bytes":
        return None
    if codecs[0].get("configuration", {}).get("endian", "little") != "little":
        return None
    if len(codecs) == 1:
        return sharded, _as_bytes
    if len(codecs) == 2 and codecs[1]["name"] == "blosc":
        encode = _blosc_encoder(codecs[1].get("configuration", {}))
        return None if encode is None else (sharded, encode)
    return None


def _blosc_encoder(conf: dict[str, Any]) -> Encoder | None:
    from numcodecs import Blosc

    shuffles = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
    if conf.get("shuffle") not in shuffles:
        return None
    config = {
        "cname": conf.get("cname"),
        "clevel": conf.get("clevel"),
        "shuffle": shuffles[conf["shuffle"]],
        "blocksize": conf.get("blocksize", 0),
        "typesize": conf.get("typesize"),
    }
    try:
        codec = Blosc.from_config(config)
    except (TypeError, ValueError):  # numcodecs < 0.16 has no typesize: let zarr write
        return None

    def encode(data: np.ndarray) -> Any:
        # zarr hands blosc the chunk as bytes, with typesize from the codec config.
        return codec.encode(data.reshape(-1).view(np.uint8))

    return encode


def _as_bytes(data: np.ndarray) -> Any:
    return data.reshape(-1).view(np.uint8).data


def _plain(codec: Any) -> dict[str, Any]:
    """A codec's JSON as plain dicts (zarr returns tuples and frozen mappings in places)."""
    out = dict(codec)
    if "configuration" in out:
        out["configuration"] = dict(out["configuration"])
    return out
