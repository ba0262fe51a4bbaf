"""The Zarr writers the storage suite compares, behind one small interface.

Each takes frames one at a time (``raw`` then, a few frames later, ``clean``) and
writes them as its library is meant to be used; the layout is the same for all:
``(1, H, W)`` chunks in ``(k, H, W)`` shards, blosc lz4 clevel 1 with byte shuffle,
uint16 raw and float32 clean.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Writer(Protocol):
    path: Path
    #: Where ``raw`` and ``clean`` are inside ``path``.
    arrays: dict[str, str]

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None: ...
    def clean(self, index: int, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------ writers
class OurWriter:
    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        from stream.store import ARRAY_PATHS, SeriesStore, StoreConfig

        self._store = SeriesStore(
            root,
            "bench",
            shape,
            np.uint16,
            config=StoreConfig(frames_per_shard=k, codec="lz4", clevel=1),
        )
        self.path = self._store.path
        self.arrays = {name: ARRAY_PATHS[name] for name in ("raw", "clean")}

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None:
        self._store.write_raw(index, frame, t_ns)

    def clean(self, index: int, frame: np.ndarray) -> None:
        self._store.write_clean(index, frame)

    def close(self) -> None:
        self._store.close()


class _BlockWriter:
    """Collects frames into whole shards; subclasses write a shard their library's way."""

    def __init__(self, shape: tuple[int, int], k: int) -> None:
        self._k, self._shape = k, shape
        self._blocks: dict[str, tuple[int, np.ndarray, int]] = {}

    def _put(self, name: str, index: int, frame: np.ndarray) -> None:
        b, slot = divmod(index, self._k)
        block = self._blocks.get(name)
        if block is None or block[0] != b:
            if block is not None:
                self._flush(name)
            dtype = np.uint16 if name == "raw" else np.float32
            block = (b, np.empty((self._k, *self._shape), dtype), 0)
        block[1][slot] = frame
        self._blocks[name] = block = (block[0], block[1], block[2] + 1)
        if block[2] == self._k:
            self._flush(name)

    def _flush(self, name: str) -> None:
        block = self._blocks.pop(name, None)
        if block is not None:
            b, data, count = block
            self._write(name, b * self._k, data[:count])

    def _write(self, name: str, start: int, data: np.ndarray) -> None:
        raise NotImplementedError

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None:
        self._put("raw", index, frame)

    def clean(self, index: int, frame: np.ndarray) -> None:
        self._put("clean", index, frame)

    def close(self) -> None:
        for name in list(self._blocks):
            self._flush(name)


class ZarrPythonWriter(_BlockWriter):
    """zarr-python 3 writing whole shards (its codec pipeline, asyncio underneath)."""

    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        import zarr
        from zarr.codecs import BloscCodec

        super().__init__(shape, k)
        self.path = root / "zp.zarr"
        self.arrays = {"raw": "raw", "clean": "clean"}
        group = zarr.create_group(str(self.path), zarr_format=3)
        length = -(-n // k) * k
        self._arrays = {
            name: group.create_array(
                name,
                shape=(length, *shape),
                chunks=(1, *shape),
                shards=(k, *shape),
                dtype=dtype,
                compressors=[
                    BloscCodec(
                        cname="lz4", clevel=1, shuffle="shuffle", typesize=np.dtype(dtype).itemsize
                    )
                ],
                dimension_names=("t", "y", "x"),
            )
            for name, dtype in (("raw", "uint16"), ("clean", "float32"))
        }

    def _write(self, name: str, start: int, data: np.ndarray) -> None:
        self._arrays[name][start : start + len(data)] = data


class TensorstoreWriter(_BlockWriter):
    """tensorstore alone: whole shards written asynchronously as they fill.

    Same spec, codecs and context (IO threads, fsync) as the service's store, so the
    difference between the two is what the store adds: buffering, flags, attributes.
    """

    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        import tensorstore as ts

        from stream.store import StoreConfig

        super().__init__(shape, k)
        self.path = root / "ts.zarr"
        self.arrays = {"raw": "raw", "clean": "clean"}
        self._n = n
        cfg = StoreConfig()
        context = ts.Context(
            {
                "data_copy_concurrency": {"limit": cfg.io_threads},
                "file_io_concurrency": {"limit": cfg.io_threads},
                "file_io_sync": cfg.fsync,
            }
        )
        self._arrays = {
            name: ts.open(
                self._spec(name, dtype), create=True, delete_existing=True, context=context
            ).result()
            for name, dtype in (("raw", "uint16"), ("clean", "float32"))
        }
        self._pending: list[Any] = []

    def _spec(self, name: str, dtype: str) -> dict[str, Any]:
        h, w = self._shape
        length = -(-self._n // self._k) * self._k
        blosc = {
            "cname": "lz4",
            "clevel": 1,
            "shuffle": "shuffle",
            "blocksize": 0,
            "typesize": np.dtype(dtype).itemsize,
        }
        sharding = {
            "chunk_shape": [1, h, w],
            "codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "blosc", "configuration": blosc},
            ],
            "index_codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "crc32c"},
            ],
            "index_location": "end",
        }
        return {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": str(self.path / name)},
            "metadata": {
                "shape": [length, h, w],
                "data_type": dtype,
                "chunk_grid": {
                    "name": "regular",
                    "configuration": {"chunk_shape": [self._k, h, w]},
                },
                "codecs": [{"name": "sharding_indexed", "configuration": sharding}],
                "fill_value": 0,
            },
        }

    def _write(self, name: str, start: int, data: np.ndarray) -> None:
        self._pending.append(self._arrays[name][start : start + len(data)].write(data))

    def close(self) -> None:
        super().close()
        for future in self._pending:
            future.result()


class AcquireZarrWriter:
    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        import acquire_zarr as az

        self.path = root / "az.zarr"
        self.arrays = {"raw": "raw", "clean": "clean"}

        def array(key: str, dtype: Any) -> Any:
            dims = [
                az.Dimension(
                    name="t",
                    kind=az.DimensionType.TIME,
                    array_size_px=0,
                    chunk_size_px=1,
                    shard_size_chunks=k,
                ),
                az.Dimension(
                    name="y",
                    kind=az.DimensionType.SPACE,
                    array_size_px=shape[0],
                    chunk_size_px=shape[0],
                    shard_size_chunks=1,
                ),
                az.Dimension(
                    name="x",
                    kind=az.DimensionType.SPACE,
                    array_size_px=shape[1],
                    chunk_size_px=shape[1],
                    shard_size_chunks=1,
                ),
            ]
            compression = az.CompressionSettings(
                compressor=az.Compressor.BLOSC1,
                codec=az.CompressionCodec.BLOSC_LZ4,
                level=1,
                shuffle=1,
            )
            return az.ArraySettings(
                output_key=key, data_type=dtype, compression=compression, dimensions=dims
            )

        settings = az.StreamSettings(
            store_path=str(self.path),
            overwrite=True,
            arrays=[array("raw", az.DataType.UINT16), array("clean", az.DataType.FLOAT32)],
        )
        self._stream = az.ZarrStream(settings)

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None:
        self._stream.append(frame, key="raw")

    def clean(self, index: int, frame: np.ndarray) -> None:
        self._stream.append(frame, key="clean")

    def close(self) -> None:
        self._stream.close()


FACTORIES: dict[str, Callable[[Path, tuple[int, int], int, int], Writer]] = {
    "deepdenoise": OurWriter,
    "zarr-python": ZarrPythonWriter,
    "tensorstore": TensorstoreWriter,
    "acquire-zarr": AcquireZarrWriter,
}


def peer_problem(name: str) -> str | None:
    """None when the peer writer can run here, else why not."""
    module = {"tensorstore": "tensorstore", "acquire-zarr": "acquire_zarr"}.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except Exception as exc:  # ImportError, or a broken binary wheel
        return f"cannot import {module}: {exc} (pip install 'deepdenoise[bench]')"
    return None
