"""The Zarr writers the storage suite compares, behind one small interface.

Each takes frames one at a time (``raw`` then, a few frames later, ``clean``) and
writes them as its library is meant to be used; the layout is the same for all:
``(1, H, W)`` chunks in ``(k, H, W)`` shards, blosc lz4 clevel 1 with byte shuffle,
uint16 raw and float32 clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Writer(Protocol):
    path: Path

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None: ...
    def clean(self, index: int, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------ writers
class OurWriter:
    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        from stream._config import StoreConfig
        from stream._store import SeriesStore

        self._store = SeriesStore(
            root,
            "bench",
            shape,
            np.uint16,
            config=StoreConfig(frames_per_shard=k, codec="lz4", clevel=1),
        )
        self.path = self._store.path

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None:
        self._store.write_raw(index, frame, t_ns)

    def clean(self, index: int, frame: np.ndarray) -> None:
        self._store.write_clean(index, frame)

    def close(self) -> None:
        self._store.close()


class TensorstoreWriter:
    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        import tensorstore as ts

        self.path = root / "ts.zarr"
        self._k, self._n, self._shape = k, n, shape
        self._arrays = {
            name: ts.open(self._spec(name, dtype), create=True, delete_existing=True).result()
            for name, dtype in (("raw", "uint16"), ("clean", "float32"))
        }
        self._blocks: dict[str, tuple[int, np.ndarray, int]] = {}
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
            start = b * self._k
            self._pending.append(self._arrays[name][start : start + count].write(data[:count]))

    def raw(self, index: int, frame: np.ndarray, t_ns: int) -> None:
        self._put("raw", index, frame)

    def clean(self, index: int, frame: np.ndarray) -> None:
        self._put("clean", index, frame)

    def close(self) -> None:
        for name in list(self._blocks):
            self._flush(name)
        for future in self._pending:
            future.result()


class AcquireZarrWriter:
    def __init__(self, root: Path, shape: tuple[int, int], k: int, n: int) -> None:
        import acquire_zarr as az

        self.path = root / "az.zarr"

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


@contextmanager
def _zarr_python_writes() -> Iterator[None]:
    """``SeriesStore`` with its direct whole-shard writes off: zarr-python does them."""
    import stream._store_arrays as store_arrays

    saved = store_arrays.DIRECT_WRITES
    store_arrays.DIRECT_WRITES = False
    try:
        yield
    finally:
        store_arrays.DIRECT_WRITES = saved


FACTORIES: dict[str, Callable[[Path, tuple[int, int], int, int], Writer]] = {
    "deepdenoise": OurWriter,
    "zarr-python": OurWriter,
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


def writer_context(name: str) -> AbstractContextManager[None]:
    """Set-up a writer needs around its whole run (zarr-python: direct writes off)."""
    return _zarr_python_writes() if name == "zarr-python" else nullcontext()
