"""Zarr store write throughput: ``SeriesStore`` against zarr-python writing the same shards.

Run: ``python -m benchmarks.store_bench [--shape 512x512] [--frames N] [--busy] [--json F]``.
Each run writes N phantom frames as ``uint16`` raw plus ``float32`` clean (clean lagging
raw by 8 frames, as after inference) from one writer thread fed by a queue, as in the
service, then closes the store. Reported: sustained fps, MB/s of uncompressed input,
CPU ms per frame (all threads) and the compression ratio on disk. The baseline is the
same store with its direct whole-chunk writes turned off, so every write goes through
zarr-python's codec pipeline; ``--busy`` keeps one core busy in another process, as
inference and the receiver would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

import stream._store_arrays as store_arrays
from stream._config import StoreConfig
from stream._phantom import CalciumPhantom, PhantomConfig, frame_rng
from stream._store import SeriesStore

LAG = 8


def make_frames(shape: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    phantom = CalciumPhantom(PhantomConfig(shape=shape), n)
    rng = np.random.default_rng(1)
    raw = np.stack([phantom.noisy(t, frame_rng(0, t)) for t in range(n)])
    clean = np.stack(
        [phantom.expected_camera(t) + rng.normal(0, 1, shape).astype("<f4") for t in range(n)]
    )
    return raw, clean  # clean: the truth plus a denoiser's residual error


@contextmanager
def variant(
    direct: bool, shuffle: Literal["shuffle", "bitshuffle"] | None, busy: bool
) -> Iterator[None]:
    saved_direct, saved_comp = store_arrays.DIRECT_WRITES, store_arrays.compressors
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    store_arrays.DIRECT_WRITES = direct
    if shuffle is not None:

        def compressors(config: StoreConfig, itemsize: int) -> Any:
            if config.codec == "none":
                return None
            cname: Literal["lz4", "zstd"] = config.codec
            return [
                zarr.codecs.BloscCodec(
                    cname=cname, clevel=config.clevel, shuffle=shuffle, typesize=itemsize
                )
            ]

        store_arrays.compressors = compressors
    try:
        yield
    finally:
        store_arrays.DIRECT_WRITES = saved_direct
        store_arrays.compressors = saved_comp
        if hog is not None:
            hog.kill()
            hog.wait()


def run_once(
    label: str,
    root: Path,
    frames: tuple[np.ndarray, np.ndarray],
    n: int,
    config: StoreConfig,
    *,
    direct: bool = True,
    shuffle: Literal["shuffle", "bitshuffle"] | None = None,
    busy: bool = False,
) -> dict[str, Any]:
    raw, clean = frames
    shutil.rmtree(root, ignore_errors=True)
    ops: queue.Queue[tuple[int, int] | None] = queue.Queue(2048)
    with variant(direct, shuffle, busy):
        store = SeriesStore(root, "bench", raw.shape[1:], raw.dtype, config=config)

        def writer() -> None:
            while (op := ops.get()) is not None:
                kind, i = op
                if kind == 0:
                    store.write_raw(i, raw[i % len(raw)], i)
                else:
                    store.write_clean(i, clean[i % len(clean)])
            store.close()

        thread = threading.Thread(target=writer)
        t0, c0 = time.perf_counter(), time.process_time()
        thread.start()
        for i in range(n + LAG):
            if i < n:
                ops.put((0, i))
            if i >= LAG:
                ops.put((1, i - LAG))
        ops.put(None)
        thread.join()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    stored = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    nbytes = n * (raw[0].nbytes + clean[0].nbytes)
    return {
        "label": label,
        "frames_per_shard": store.frames_per_shard,
        "fps": round(n / seconds, 1),
        "mb_per_s": round(nbytes / seconds / 1e6, 1),
        "cpu_ms_per_frame": round(cpu / n * 1e3, 3),
        "ratio": round(nbytes / stored, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="512x512")
    parser.add_argument("--frames", type=int, default=1536)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.lower().split("x"))
    assert len(shape) == 2
    frames = make_frames((shape[0], shape[1]), 64)
    default = StoreConfig.model_validate({})
    runs: list[tuple[str, StoreConfig, dict[str, Any]]] = [
        ("store, lz4 shuffle (default)", default, {}),
        ("store, lz4 bitshuffle", default, {"shuffle": "bitshuffle"}),
        ("store, zstd shuffle", StoreConfig(codec="zstd"), {}),
        ("store, no compression", StoreConfig(codec="none"), {}),
        ("zarr-python writes (baseline)", default, {"direct": False}),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for label, config, options in runs:
                root = Path(tmp) / "data"
                result = run_once(
                    label, root, frames, args.frames, config, busy=args.busy, **options
                )
                results.append(result)
    base = np.median([r["fps"] for r in results if "baseline" in r["label"]])
    print(f"{args.shape} uint16 raw + float32 clean, {args.frames} frames, {platform.node()}")
    header = ("run", "k", "fps", "MB/s", "cpu ms/f", "ratio", "x base")
    print("{:34s} {:>4s} {:>7s} {:>7s} {:>9s} {:>6s} {:>7s}".format(*header))
    for r in results:
        print(
            f"{r['label']:34s} {r['frames_per_shard']:4d} {r['fps']:7.0f} {r['mb_per_s']:7.0f} "
            f"{r['cpu_ms_per_frame']:9.2f} {r['ratio']:6.2f} {r['fps'] / base:7.2f}"
        )
    if args.json:
        import numcodecs

        payload = {
            "benchmark": "store_bench",
            "machine": platform.node(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {"zarr": zarr.__version__, "numcodecs": numcodecs.__version__},
            "shape": list(shape),
            "frames": args.frames,
            "busy_core": args.busy,
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
