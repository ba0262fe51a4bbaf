"""The Zarr series store: layout, round trips, holes, resume, OME metadata, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from stream import StoreError
from stream.store import (
    ARRAY_PATHS,
    SeriesStore,
    StoreConfig,
    is_series_store,
    left_open,
    summarize_store,
)
from stream.store import _series as store_series
from stream.store._arrays import StoreArrays

REPO = Path(__file__).resolve().parents[2]
K4 = StoreConfig(frames_per_shard=4)  # small shards: blocks complete after 4 frames
SHAPES = [(1, 1), (7, 13), (37, 53), (64, 3)]
DTYPES = ["|u1", "<u2", "<i2", "<f4"]


def frame(i: int, shape: tuple[int, int] = (7, 13), dtype: str = "<u2") -> np.ndarray:
    """A frame whose pixels encode its index, spanning the dtype's whole range."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(i)
    if dt.kind == "f":
        out = rng.standard_normal(shape).astype(dt) * np.float32(1e4)
        out.flat[0] = np.finfo(dt).max
        out.flat[-1] = np.finfo(dt).tiny
        return out
    info = np.iinfo(dt)
    out = rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    out.flat[0] = i % (info.max + 1)
    return out


def clean(i: int, shape: tuple[int, int] = (7, 13)) -> np.ndarray:
    return (np.random.default_rng(10_000 + i).standard_normal(shape) * 100).astype("<f4")


def open_plain(path: Path) -> dict[str, np.ndarray]:
    """Every array of a store, read with plain zarr-python."""
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(group[where][:]) for name, where in ARRAY_PATHS.items()}


def plain_array(path: Path, name: str, mode: str = "r") -> Any:
    return zarr.open_array(str(path), path=ARRAY_PATHS[name], mode=mode)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_is_bit_exact(tmp_path: Path, dtype: str, shape: tuple[int, int]) -> None:
    n = 11  # two whole blocks of 4 and a partial one
    with SeriesStore(tmp_path, "rt", shape, dtype, config=K4) as store:
        for i in range(n):
            store.write_raw(i, frame(i, shape, dtype), t_ns=1_000 + i)
            store.write_clean(i, clean(i, shape))
    data = open_plain(tmp_path / "rt.zarr")
    raw = np.stack([frame(i, shape, dtype) for i in range(n)])
    assert data["raw"].dtype == np.dtype(dtype)
    assert data["raw"].shape == (n, *shape)
    assert data["raw"].view(np.uint8).tobytes() == raw.view(np.uint8).tobytes()
    np.testing.assert_array_equal(data["clean"], np.stack([clean(i, shape) for i in range(n)]))
    np.testing.assert_array_equal(data["t_ns"], 1_000 + np.arange(n))
    assert data["valid"].all() and data["clean_valid"].all()


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_codecs_round_trip(tmp_path: Path, codec: str) -> None:
    with SeriesStore(tmp_path, "c", (9, 8), "<u2", config=StoreConfig(codec=codec)) as store:
        for i in range(5):
            store.write_raw(i, frame(i, (9, 8)), None)
    data = open_plain(tmp_path / "c.zarr")
    np.testing.assert_array_equal(data["raw"], np.stack([frame(i, (9, 8)) for i in range(5)]))
    assert (data["t_ns"] == 0).all()  # no timestamp: 0 means unknown


def test_clean_is_float32_and_exact_including_cast_input(tmp_path: Path) -> None:
    special = np.array([[np.inf, -np.inf, -0.0, 1e-45, 3.4e38, np.pi]], "<f8")
    with SeriesStore(tmp_path, "f", (1, 6), "<u2", config=K4) as store:
        store.write_clean(0, special)  # float64 in: stored as float32
        store.write_clean(1, special.astype("<f4")[:, ::-1])  # a non-contiguous view
    array = plain_array(tmp_path / "f.zarr", "clean")
    assert array.dtype == np.float32
    got = np.asarray(array[:])
    assert got[0].tobytes() == special.astype("<f4").tobytes()
    assert got[1].tobytes() == special.astype("<f4")[:, ::-1].tobytes()


def test_gaps_are_visible_holes_and_never_shift(tmp_path: Path) -> None:
    present = [0, 1, 3, 4, 5, 9, 10, 17]
    with SeriesStore(tmp_path, "g", (7, 13), "<u2", config=K4) as store:
        for i in present:
            store.write_raw(i, frame(i), i)
            if i % 2:
                store.write_clean(i, clean(i))
    data = open_plain(tmp_path / "g.zarr")
    assert data["raw"].shape[0] == 18
    for i in range(18):
        if i in present:
            np.testing.assert_array_equal(data["raw"][i], frame(i))
            assert data["valid"][i] and data["t_ns"][i] == i
        else:
            assert not data["valid"][i] and (data["raw"][i] == 0).all() and data["t_ns"][i] == 0
        if i in present and i % 2:
            np.testing.assert_array_equal(data["clean"][i], clean(i))
        else:
            assert np.isnan(data["clean"][i]).all() and not data["clean_valid"][i]
    summary = summarize_store(tmp_path / "g.zarr")
    assert summary["missing"] == 10
    assert summary["missing_indices"] == [2, 6, 7, 8, 11, 12, 13, 14, 15, 16]


def test_out_of_order_and_duplicate_indices(tmp_path: Path) -> None:
    order = [3, 1, 0, 2, 2, 7, 5, 4, 6, 1, 9, 8]  # duplicates: last write wins
    with SeriesStore(tmp_path, "o", (7, 13), "<u2", config=K4) as store:
        for n, i in enumerate(order):
            store.write_raw(i, frame(100 * n + i), n)
        assert store.max_index == 9
    data = open_plain(tmp_path / "o.zarr")
    last = {i: n for n, i in enumerate(order)}
    for i, n in last.items():
        np.testing.assert_array_equal(data["raw"][i], frame(100 * n + i))
        assert data["t_ns"][i] == n
    assert data["valid"].all()


def test_block_is_written_once_the_stream_is_two_blocks_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_series, "IN_FLIGHT", 0)  # each write done before the next frame
    store = SeriesStore(tmp_path, "a", (7, 13), "<u2", config=K4)
    for i in (0, 1, 5):  # block 0 partial, block 1 partial: nothing on disk yet
        store.write_raw(i, frame(i), i)
    assert store.frames_written == 0
    store.write_raw(8, frame(8), 8)  # block 2 arrives: block 0 goes to disk
    assert store.frames_written == 2
    valid = plain_array(tmp_path / "a.zarr", "valid")[:]
    assert list(np.flatnonzero(valid)) == [0, 1]
    store.close()
    assert store.frames_written == 4


def test_partial_flush_then_more_frames_for_the_same_block(tmp_path: Path) -> None:
    cfg = StoreConfig(frames_per_shard=8)
    with SeriesStore(tmp_path, "p", (7, 13), "<u2", config=cfg) as store:
        for i in (0, 2):
            store.write_raw(i, frame(i), i)
        store.write_clean(2, clean(2))
        store.flush()  # partial block on disk
        assert store.frames_written == 2
        store.write_raw(3, frame(3), 3)  # one run: read-modify-write
        store.flush()
        for i in (1, 5, 7, 0):  # several runs, and a rewrite of 0
            store.write_raw(i, frame(1000 + i), i)
        store.write_clean(6, clean(6))
        store.flush()
        assert store.frames_written == 6
    data = open_plain(tmp_path / "p.zarr")
    expected = {0: frame(1000), 1: frame(1001), 2: frame(2), 3: frame(3), 5: frame(1005)}
    expected[7] = frame(1007)
    for i in range(8):
        if i in expected:
            np.testing.assert_array_equal(data["raw"][i], expected[i])
        else:
            assert not data["valid"][i] and (data["raw"][i] == 0).all()
    assert list(np.flatnonzero(data["clean_valid"])) == [2, 6]
    np.testing.assert_array_equal(data["clean"][[2, 6]], np.stack([clean(2), clean(6)]))


@pytest.mark.parametrize(("dtype", "codec"), [("<u2", "lz4"), ("|u1", "zstd"), ("<f4", "none")])
def test_zarr_reads_the_layout_tensorstore_wrote(tmp_path: Path, dtype: str, codec: str) -> None:
    cfg = StoreConfig(frames_per_shard=4, codec=codec)
    with SeriesStore(tmp_path, "b", (37, 53), dtype, config=cfg) as store:
        for i in range(8):
            store.write_raw(i, frame(i, (37, 53), dtype), 5 + i)
    raw = plain_array(store.path, "raw")
    assert raw.chunks == (1, 37, 53) and raw.shards == (4, 37, 53)
    assert raw.metadata.dimension_names == ("t", "y", "x")
    compressors = [c.to_dict() for c in raw.compressors]
    if codec == "none":
        assert compressors == []
    else:
        (blosc,) = compressors
        shuffle = "bitshuffle" if np.dtype(dtype).itemsize == 1 else "shuffle"
        assert blosc["configuration"]["cname"] == codec
        assert blosc["configuration"]["shuffle"] == shuffle
        assert blosc["configuration"]["typesize"] == np.dtype(dtype).itemsize


def test_resume_appends_and_overwrites(tmp_path: Path) -> None:
    attrs = {"models": ["m1"], "model": "m1", "config": {"tile": None}}
    with SeriesStore(tmp_path, "r", (7, 13), "<u2", config=K4, attrs=attrs) as first:
        assert not first.resumed
        for i in range(6):
            first.write_raw(i, frame(i), i)
    again = SeriesStore(tmp_path, "r", (7, 13), np.uint16, attrs={"models": ["m2"]})
    assert again.resumed and again.frames_per_shard == 4  # the store's own layout wins
    assert again.max_index == 5 and again.frames_written == 6
    assert zarr.open_group(str(again.path), mode="r").attrs["deepdenoise"]["closed"] is False
    again.write_raw(2, frame(200), 22)  # overwrite
    again.write_raw(9, frame(9), 9)  # append past a hole
    again.close()
    data = open_plain(tmp_path / "r.zarr")
    np.testing.assert_array_equal(data["raw"][2], frame(200))
    np.testing.assert_array_equal(data["raw"][9], frame(9))
    assert data["t_ns"][2] == 22 and data["raw"].shape[0] == 10
    assert list(np.flatnonzero(~data["valid"])) == [6, 7, 8]
    info = summarize_store(tmp_path / "r.zarr")["attrs"]
    assert info["sessions"] == 2 and info["models"] == ["m1", "m2"] and info["frames"] == 7


@pytest.mark.parametrize(
    ("shape", "dtype", "words"),
    [((7, 14), "<u2", ["7x13 <u2", "7x14 <u2"]), ((7, 13), "|u1", ["7x13 <u2", "7x13 |u1"])],
)
def test_resume_with_other_shape_or_dtype_fails(
    tmp_path: Path, shape: tuple[int, int], dtype: str, words: list[str]
) -> None:
    with SeriesStore(tmp_path, "m", (7, 13), "<u2") as store:
        store.write_raw(0, frame(0), 0)
    with pytest.raises(StoreError) as err:
        SeriesStore(tmp_path, "m", shape, dtype)
    for word in words:
        assert word in str(err.value)


def test_a_foreign_folder_is_not_resumed(tmp_path: Path) -> None:
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "data.txt").write_text("mine")
    assert not is_series_store(tmp_path / "x.zarr")
    assert not is_series_store(tmp_path / "missing.zarr")
    assert not left_open(tmp_path / "x.zarr") and not left_open(tmp_path / "missing.zarr")
    with pytest.raises(StoreError, match="not a deepdenoise series store"):
        SeriesStore(tmp_path, "x", (4, 4), "<u2")
    assert (tmp_path / "x.zarr" / "data.txt").read_text() == "mine"


def test_time_axis_grows_in_steps_and_is_trimmed_on_close(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path, "t", (7, 13), "<u2", config=K4)
    for i in range(5):
        store.write_raw(i, frame(i), i)
    store.flush()
    raw = plain_array(store.path, "raw")
    assert raw.shape[0] == 32  # 8 shards of 4
    store.write_raw(40, frame(40), 40)
    store.close()
    store.close()  # idempotent
    for name in ARRAY_PATHS:
        assert plain_array(store.path, name).shape[0] == 41
    with pytest.raises(StoreError, match="closed"):
        store.write_raw(41, frame(41), 41)


def test_a_far_jump_makes_a_sparse_axis_without_a_memory_blowup(tmp_path: Path) -> None:
    far = 10**11  # 2.5e10 shards: anything enumerating them would not finish
    with SeriesStore(tmp_path, "j", (7, 13), "<u2", config=K4) as store:
        store.write_raw(0, frame(0), 0)
        store.write_raw(far, frame(far), 1)
    summary = summarize_store(store.path)
    assert summary["shape"] == [far + 1, 7, 13] and summary["valid"] == 2
    assert summary["missing"] == far - 1 and summary["missing_indices"] == list(range(1, 11))
    np.testing.assert_array_equal(plain_array(store.path, "raw")[far], frame(far))


def test_empty_store_closes_to_zero_length(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "e", (5, 5), "<f4") as store:
        pass
    summary = summarize_store(store.path)
    assert summary["shape"] == [0, 5, 5] and summary["valid"] == 0 and summary["closed"]
    assert summary["last_index"] is None and summary["missing"] == 0


def test_raw_and_clean_are_each_an_ome_zarr_0_5_image(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw
    from ome_zarr_models.v05.image import Image

    with SeriesStore(tmp_path, "ome", (7, 13), "<u2") as store:
        for i in range(3):
            store.write_raw(i, frame(i), i)
            store.write_clean(i, clean(i))
    group = zarr.open_group(str(store.path), mode="r")
    container = BioFormats2Raw.from_zarr(group)  # validates the container and each image
    assert sorted(container.image_paths) == ["0", "1"]
    for name, expected in (("raw", np.stack([frame(i) for i in range(3)])),
                           ("clean", np.stack([clean(i) for i in range(3)]))):  # fmt: skip
        image_path = ARRAY_PATHS[name].split("/")[0]
        image = Image.from_zarr(group[image_path])
        (multiscale,) = image.ome_attributes.multiscales
        assert multiscale.name == name
        assert [a.name for a in multiscale.axes] == ["t", "y", "x"]
        (node,) = list(Reader(parse_url(str(store.path / image_path)))())
        (level,) = node.data
        np.testing.assert_array_equal(np.asarray(level), expected)
    xml = (store.path / "OME" / "METADATA.ome.xml").read_text()
    assert 'ID="Image:0" Name="raw"' in xml and 'ID="Image:1" Name="clean"' in xml
    # closed: the time axis's length, for Bio-Formats (it said 1 whatever the length)
    assert xml.count('SizeT="3"') == 2
    assert not list((store.path / "OME").glob(".*.tmp"))


def test_attributes_record_provenance_and_totals(tmp_path: Path) -> None:
    attrs = {"model": "dncnn-abc", "models": ["dncnn-abc"], "config": {"a": 1}}
    store = SeriesStore(tmp_path, "at", (7, 13), "<i2", config=K4, attrs=attrs)
    store.write_raw(0, frame(0, dtype="<i2"), 1)
    store.write_raw(2, frame(2, dtype="<i2"), 2)
    store.write_clean(0, clean(0))
    store.update_attrs(model="dncnn-def", models=["dncnn-abc", "dncnn-def"])
    with pytest.raises(StoreError, match="managed by the store"):
        store.update_attrs(frames=3)
    with pytest.raises(StoreError, match="JSON"):
        store.update_attrs(note=object())
    store.close()
    info = zarr.open_group(str(store.path), mode="r").attrs["deepdenoise"]
    assert info["protocol_version"] == 1 and info["store_version"] == 2
    assert info["series"] == "at" and info["frame_shape"] == [7, 13]
    assert info["raw_dtype"] == "<i2" and info["frames_per_shard"] == 4
    assert info["model"] == "dncnn-def" and info["config"] == {"a": 1}
    assert info["closed"] is True and info["created"] <= info["closed_at"]
    assert (info["frames"], info["clean_frames"], info["missing"]) == (2, 1, 1)
    assert (info["first_index"], info["last_index"]) == (0, 2)


def test_summarize_store(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "s", (7, 13), "<u2", config=K4) as store:
        for i in [*range(3), *range(4, 30)]:
            store.write_raw(i, frame(i), i)
        for i in range(10):
            store.write_clean(i, clean(i))
    summary = summarize_store(store.path)
    assert summary["series"] == "s" and summary["shape"] == [30, 7, 13]
    assert summary["dtype"] == "<u2" and summary["frames"] == 30
    assert summary["valid"] == 29 and summary["clean_frames"] == 10  # a clean-only slot too
    assert summary["missing"] == 1 and summary["missing_indices"] == [3]
    assert summary["chunks"] == [1, 7, 13] and summary["shards"] == [4, 7, 13]
    assert summary["codec"] == "blosc lz4 clevel 1 shuffle"
    assert summary["closed"] is True and summary["attrs"]["series"] == "s"
    json.dumps(summary)  # printable by `deepdenoise info`
    with pytest.raises(StoreError):
        summarize_store(tmp_path)


@pytest.mark.parametrize(("dtype", "fill"), [("|u1", 0), ("<u2", 0), ("<f4", np.nan)])
def test_frames_of_the_fill_value_are_on_disk_not_a_damaged_store(
    tmp_path: Path, dtype: str, fill: float
) -> None:
    """A shard of all-zero frames (a dark period, a closed shutter; all-NaN floats) was
    not written at all -- tensorstore skips data equal to the fill value -- and the store
    read as damaged: frames flagged valid with no pixels on disk (a new user's trial)."""
    with SeriesStore(tmp_path, "dark", (8, 8), dtype, config=K4) as store:
        for i in range(6):
            store.write_raw(i, np.full((8, 8), fill, dtype), i)
            store.write_clean(i, np.full((8, 8), fill, np.float32))
    summary = summarize_store(store.path)
    assert summary["damaged"] is None and summary["valid"] == 6, summary["damaged"]
    group = zarr.open_group(store.path, mode="r")
    np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][:], np.full((6, 8, 8), fill, dtype))


def test_frames_per_shard_targets_16_mib(tmp_path: Path) -> None:
    cases = [((512, 512), "<u2", 32), ((4096, 4096), "<u2", 1), ((8, 8), "|u1", 256)]
    for n, (shape, dtype, k) in enumerate(cases):
        with SeriesStore(tmp_path, f"k{n}", shape, dtype) as store:
            assert store.frames_per_shard == k


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.write_raw(0, np.zeros((7, 12), "<u2"), 0), "shape"),
        (lambda s: s.write_raw(0, np.zeros((7, 13), "<f4"), 0), "cannot be stored"),
        (lambda s: s.write_raw(-1, np.zeros((7, 13), "<u2"), 0), "index"),
        (lambda s: s.write_raw(1.5, np.zeros((7, 13), "<u2"), 0), "integer"),
        (lambda s: s.write_raw(0, np.zeros((7, 13), "<u2"), 2**64), "int64"),
        (lambda s: s.write_clean(0, np.zeros((7, 13), "<c8")), "cannot be stored"),
    ],
)
def test_bad_frames_are_refused_without_side_effects(tmp_path: Path, call: Any, match: str) -> None:
    with SeriesStore(tmp_path, "bad", (7, 13), "<u2") as store:
        with pytest.raises(StoreError, match=match):
            call(store)
        assert store.max_index is None
    assert summarize_store(store.path)["shape"] == [0, 7, 13]


def test_bad_store_arguments(tmp_path: Path) -> None:
    for series in ["", "a/b", "x" * 65, "a b"]:
        with pytest.raises(StoreError, match="series"):
            SeriesStore(tmp_path, series, (4, 4), "<u2")
    with pytest.raises(StoreError, match="shape"):
        SeriesStore(tmp_path, "s", (0, 4), "<u2")
    with pytest.raises(StoreError, match="dtype"):
        SeriesStore(tmp_path, "s", (4, 4), "<c8")
    with pytest.raises(StoreError, match="JSON"):
        SeriesStore(tmp_path, "s", (4, 4), "<u2", attrs={"x": {1, 2}})
    assert not (tmp_path / "s.zarr").exists()


def test_failed_pixel_write_never_sets_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SeriesStore(tmp_path, "w", (7, 13), "<u2", config=K4)
    for i in range(4):
        store.write_raw(i, frame(i), i)  # block 0 written
    original = StoreArrays.write_block

    def full_disk(self: StoreArrays, name: str, blk: Any, fill: float) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StoreArrays, "write_block", full_disk)
    for i in range(4, 7):
        store.write_raw(i, frame(i), i)
    with pytest.raises(StoreError, match=r"3 raw frames \(4\.\.6\).*No space left"):
        store.flush()
    monkeypatch.setattr(StoreArrays, "write_block", original)
    store.write_raw(8, frame(8), 8)
    store.close()
    data = open_plain(store.path)
    assert list(np.flatnonzero(data["valid"])) == [0, 1, 2, 3, 8]
    assert (data["t_ns"][4:7] == 0).all()


def test_resume_repairs_axes_left_unequal_by_a_kill_during_resize(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "u", (7, 13), "<u2", config=K4) as store:
        for i in range(6):
            store.write_raw(i, frame(i), i)
    plain_array(store.path, "valid", "r+").resize((32,))
    plain_array(store.path, "raw", "r+").resize((32, 7, 13))
    with SeriesStore(tmp_path, "u", (7, 13), "<u2") as again:
        assert again.max_index == 5 and again.frames_written == 6
        again.write_raw(7, frame(7), 7)
    assert {plain_array(store.path, name).shape[0] for name in ARRAY_PATHS} == {8}
    np.testing.assert_array_equal(plain_array(store.path, "raw")[7], frame(7))


def test_pixels_past_the_last_flag_are_deleted_by_the_trim(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "d", (7, 13), "<u2", config=K4) as store:
        for i in range(12):
            store.write_raw(i, frame(i), i)
    # As if killed after block 2's pixels but before its flags:
    plain_array(store.path, "valid", "r+")[8:12] = False
    with SeriesStore(tmp_path, "d", (7, 13), "<u2") as again:
        assert again.max_index == 7
    assert not (store.path / ARRAY_PATHS["raw"] / "c" / "2" / "0" / "0").exists()  # the shard file
    with SeriesStore(tmp_path, "d", (7, 13), "<u2") as again:
        again.write_raw(9, frame(9), 9)
    raw = plain_array(store.path, "raw")
    assert (raw[8] == 0).all() and (raw[10:12] == 0).all()  # no stale frames resurface
    np.testing.assert_array_equal(raw[9], frame(9))


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    with SeriesStore(tmp_path, "l", (7, 13), "<u2", config=K4) as store:
        store.write_raw(0, frame(0), 0)
    leftover = store.path / ARRAY_PATHS["raw"] / "c" / "0" / "0" / "0.__lock"
    leftover.write_bytes(b"half a shard")
    SeriesStore(tmp_path, "l", (7, 13), "<u2").close()
    assert not leftover.exists()


_KILLED_WRITER = """
import sys
import numpy as np
from pathlib import Path
from stream.store import StoreConfig
from stream.store import SeriesStore

store = SeriesStore(Path(sys.argv[1]), "k", (48, 40), "<u2", config=StoreConfig(frames_per_shard=4))
base = np.arange(48 * 40, dtype=np.int64).reshape(48, 40)
i = 0
while True:
    px = ((base * 3 + i * 7919) % 65536).astype("<u2")
    store.write_raw(i, px, 10**12 + i)
    if i >= 2:
        store.write_clean(i - 2, ((base + i - 2) * 0.5).astype("<f4"))
    if i % 10 == 9:
        store.flush()
        print(i, flush=True)
    i += 1
"""


def _start_writer(script: str, folder: Path) -> subprocess.Popen[str]:
    """A writer process running ``script`` on ``folder``; its stdout is read line by line."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, env=env, text=True
    )


def test_store_of_a_killed_writer_is_readable_and_resumable(tmp_path: Path) -> None:
    proc = _start_writer(_KILLED_WRITER, tmp_path)
    try:
        assert proc.stdout is not None
        flushed = [int(proc.stdout.readline()) for _ in range(5)]
        time.sleep(0.05)  # let it get into the middle of more writes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert flushed[-1] >= 49
    path = tmp_path / "k.zarr"
    group = zarr.open_group(str(path), mode="r")
    valid = np.asarray(group["valid"][:])
    clean_valid = np.asarray(group["clean_valid"][:])
    assert valid[: flushed[-1] + 1].all()  # everything flushed before the kill
    base = np.arange(48 * 40, dtype=np.int64).reshape(48, 40)
    raw, cleaned = group[ARRAY_PATHS["raw"]], group[ARRAY_PATHS["clean"]]
    t_ns = np.asarray(group["t_ns"][:])
    for i in np.flatnonzero(valid):
        np.testing.assert_array_equal(raw[i], ((base * 3 + i * 7919) % 65536).astype("<u2"))
        assert t_ns[i] == 10**12 + i
    for i in np.flatnonzero(clean_valid):
        np.testing.assert_array_equal(cleaned[i], ((base + i) * 0.5).astype("<f4"))
    assert group.attrs["deepdenoise"]["closed"] is False and left_open(path)
    with SeriesStore(tmp_path, "k", (48, 40), "<u2") as resumed:
        assert resumed.resumed and resumed.frames_written == int(valid.sum())
        last = resumed.max_index
        assert last is not None and last >= flushed[-1]
    summary = summarize_store(path)
    assert summary["closed"] and summary["frames"] == last + 1 and not left_open(path)
    assert not list(path.rglob("*.__lock"))


def test_a_store_removed_while_written_is_made_again_and_its_frames_counted_lost(
    tmp_path: Path,
) -> None:
    """Someone cleans the data folder mid-recording: the frames the store held are
    counted lost, and the frames that follow land in a store that can be read (they used
    to land in bare folders without metadata, while the series reported them stored)."""
    import shutil

    from stream._errors import StoreWriteError

    store = SeriesStore(tmp_path, "rm", (7, 13), "<u2", config=K4, attrs={"model": "m"})
    for i in range(10):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    store.flush()
    shutil.rmtree(tmp_path / "rm.zarr")
    for i in range(10, 14):  # written after the removal, before it is seen
        store.write_raw(i, frame(i), i)
    with pytest.raises(StoreWriteError, match="was removed or moved while it was written") as err:
        store.flush()
    assert err.value.kind == "store_removed"
    assert err.value.lost == {"raw": 14, "clean": 10}
    for i in range(14, 20):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    store.close()
    assert store.lost == {"raw": 14, "clean": 10}
    summary = summarize_store(tmp_path / "rm.zarr")
    assert summary["valid"] == 6 and summary["clean_frames"] == 6 and summary["missing"] == 14
    assert summary["attrs"]["model"] == "m" and summary["closed"]
    data = open_plain(tmp_path / "rm.zarr")
    for i in range(14, 20):
        np.testing.assert_array_equal(data["raw"][i], frame(i))
        np.testing.assert_array_equal(data["clean"][i], clean(i))


def _read_only(*args: Any, **kwargs: Any) -> Any:
    raise OSError(30, "Read-only file system")


def test_close_reports_frames_lost_even_when_the_trim_fails_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk turns read-only before the last flush: close() must still raise the lost
    frames (a StoreWriteError the writer counts), not only the failed trim after it."""
    from stream._errors import StoreWriteError

    store = SeriesStore(tmp_path, "ro", (7, 13), "<u2", config=K4)
    for i in range(4):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    store.flush()
    monkeypatch.setattr(StoreArrays, "write_block", _read_only)
    monkeypatch.setattr(StoreArrays, "resize", _read_only)
    for i in range(4, 7):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    with pytest.raises(StoreWriteError, match=r"3 raw frames \(4\.\.6\).*cannot trim") as err:
        store.close()
    assert err.value.lost == {"raw": 3, "clean": 3} and err.value.kind == "store_write"
    assert store.lost == {"raw": 3, "clean": 3}
    monkeypatch.undo()
    with SeriesStore(tmp_path, "ro", (7, 13), "<u2") as again:  # closed: lock let go
        assert again.frames_written == 4


def test_a_store_being_written_is_refused_to_a_second_writer_not_to_readers(
    tmp_path: Path,
) -> None:
    first = SeriesStore(tmp_path, "two", (7, 13), "<u2", config=K4)
    for i in range(5):
        first.write_raw(i, frame(i), i)
    first.flush()
    with pytest.raises(StoreError, match=r"two\.zarr is being written by another process"):
        SeriesStore(tmp_path, "two", (7, 13), "<u2")
    # readers take no lock, and the lock leaves no file in the store
    assert summarize_store(first.path)["valid"] == 5
    assert open_plain(first.path)["valid"].sum() == 5
    assert sorted(p.name for p in first.path.iterdir()) == [
        "0",
        "1",
        "OME",
        "clean_valid",
        "close_reserve.bin",  # room for the totals a close on a full disk cannot record
        "t_ns",
        "valid",
        "zarr.json",
    ]
    first.write_raw(5, frame(5), 5)  # the refused open changed nothing of the first
    first.close()
    with SeriesStore(tmp_path, "two", (7, 13), "<u2") as second:
        assert second.resumed and second.frames_written == 6


_HOLDING_WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from stream.store import SeriesStore

store = SeriesStore(Path(sys.argv[1]), "held", (7, 13), "<u2")
store.write_raw(0, np.ones((7, 13), "<u2"), 0)
store.flush()
print("open", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no flock: the store is not locked")
def test_a_store_held_by_another_process_is_refused_until_it_is_killed(tmp_path: Path) -> None:
    proc = _start_writer(_HOLDING_WRITER, tmp_path)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match=r"held\.zarr is being written by another process"):
            SeriesStore(tmp_path, "held", (7, 13), "<u2")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    with SeriesStore(tmp_path, "held", (7, 13), "<u2") as store:  # kill -9: no stale lock
        assert store.resumed and store.frames_written == 1


def test_locked_only_leaves_a_store_alone_where_no_lock_can_be_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no flock (Windows, some network file systems), a store left open
    is not closed by the service that finds it: another one may be writing it."""
    from stream import StoreUnlockableError
    from stream.store import left_open

    proc = _start_writer(_HOLDING_WRITER, tmp_path)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    path = tmp_path / "held.zarr"
    written = (path / "zarr.json").read_bytes()
    monkeypatch.setattr(store_series, "lock_store", lambda path: None)
    with pytest.raises(StoreUnlockableError, match=r"held\.zarr cannot be locked here"):
        SeriesStore(tmp_path, "held", (7, 13), "<u2", locked_only=True)
    assert left_open(path) and (path / "zarr.json").read_bytes() == written
    with SeriesStore(tmp_path, "held", (7, 13), "<u2") as store:  # unlocked, as asked
        assert store.resumed and store.frames_written == 1


def test_a_failed_flag_write_is_not_written_later_and_counts_only_its_frames(
    tmp_path: Path,
) -> None:
    """A flag chunk that cannot be written once: its frames are counted lost (only the
    denoised ones, whose flags failed), and the next write of the chunk does not mark
    them valid after all (the disk said 8 denoised while 4 were counted lost)."""
    import shutil

    from stream._errors import StoreWriteError

    store = SeriesStore(tmp_path, "fl", (7, 13), "<u2", config=K4)
    blocker = store.path / "clean_valid" / "c" / "0"
    (blocker / "x").mkdir(parents=True)  # a folder where the chunk file goes: rename fails
    for i in range(4):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    with pytest.raises(StoreWriteError, match=r"4 clean flags \(0\.\.3\)") as err:
        store.flush()
    assert err.value.lost == {"raw": 0, "clean": 4} and err.value.kind == "store_flags"
    shutil.rmtree(blocker)  # the fault goes away
    for i in range(4, 8):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    store.close()
    assert store.lost == {"raw": 0, "clean": 4}
    data = open_plain(store.path)
    assert list(np.flatnonzero(data["clean_valid"])) == [4, 5, 6, 7]
    assert data["valid"].all() and data["valid"].size == 8
    summary = summarize_store(store.path)
    assert summary["clean_frames"] == 4 and summary["attrs"]["clean_frames"] == 4


def test_a_resumed_store_removed_counts_only_this_sessions_frames_lost(tmp_path: Path) -> None:
    import shutil

    from stream._errors import StoreWriteError

    with SeriesStore(tmp_path, "rs", (7, 13), "<u2", config=K4) as first:
        for i in range(10):
            first.write_raw(i, frame(i), i)
            first.write_clean(i, clean(i))
    store = SeriesStore(tmp_path, "rs", (7, 13), "<u2")
    assert store.resumed and store.frames_written == 10
    for i in range(10, 13):
        store.write_raw(i, frame(i), i)
        store.write_clean(i, clean(i))
    store.flush()
    shutil.move(tmp_path / "rs.zarr", tmp_path / "archive.zarr")  # archived mid-session
    store.write_raw(13, frame(13), 13)
    with pytest.raises(StoreWriteError, match="the 4 raw and 3 denoised frames") as err:
        store.flush()
    assert err.value.lost == {"raw": 4, "clean": 3}  # not the 10 of the first session
    store.write_raw(14, frame(14), 14)
    store.close()
    assert store.lost == {"raw": 4, "clean": 3}
    assert summarize_store(tmp_path / "rs.zarr")["valid"] == 1
    with SeriesStore(tmp_path, "rs", (7, 13), "<u2"):  # the remade store was locked, then let go
        pass


_FD_STARVED_BUILDER = """
import json
import os
import resource
import sys
from pathlib import Path

import numpy as np
from stream import StoreError
from stream.store import SeriesStore

root, mode = Path(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
SeriesStore(root, "warm", (8, 8), "<u2").close()  # tensorstore's threads started
left = []
for free in range(16):  # few descriptors left: the build fails part-way, its removal too
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    for _ in range(free):
        os.close(held.pop())
    try:
        SeriesStore(root, "s", (8, 8), "<u2").close()
    except StoreError:
        pass
    for fd in held:
        os.close(fd)
    left = sorted(p.name for p in root.iterdir() if p.name.startswith(".s.zarr."))
    if left:
        break
print(json.dumps(left), flush=True)
if mode == "again":  # this process makes the store again, descriptors back
    SeriesStore(root, "s", (8, 8), "<u2").close()
    print(json.dumps(sorted(p.name for p in root.iterdir() if p.name.startswith("."))))
elif mode == "wait":
    sys.stdin.readline()
"""


def _starved_builder(folder: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", _FD_STARVED_BUILDER, str(folder), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )


def test_a_store_left_half_built_without_descriptors_is_cleared_when_made_again(
    tmp_path: Path,
) -> None:
    """A build that fails for want of file descriptors cannot remove its half-built
    folder either; the next build of that store (descriptors back) removes it."""
    proc = _starved_builder(tmp_path, "again")
    out, _ = proc.communicate(timeout=120)
    left, after = (json.loads(line) for line in out.splitlines())
    assert left, "no half-built store was left: the fault was not reproduced"
    assert after == []
    assert is_series_store(tmp_path / "s.zarr")


def test_half_built_stores_of_a_process_gone_are_cleared_and_a_live_ones_kept(
    tmp_path: Path,
) -> None:
    gone, live = tmp_path / "gone", tmp_path / "live"
    gone.mkdir(), live.mkdir()
    proc = _starved_builder(gone, "exit")
    out, _ = proc.communicate(timeout=120)
    assert json.loads(out), "no half-built store was left: the fault was not reproduced"
    waiting = _starved_builder(live, "wait")
    try:
        assert waiting.stdout is not None
        left_live = json.loads(waiting.stdout.readline())
        assert left_live
        store_series.clear_left_overs(live)  # its builder lives: kept
        SeriesStore(live, "s", (8, 8), "<u2").close()
        assert sorted(p.name for p in live.iterdir() if p.name.startswith(".")) == left_live
    finally:
        waiting.communicate("\n", timeout=30)
    store_series.clear_left_overs(gone)  # what a service does as it starts
    assert [p.name for p in gone.iterdir() if p.name.startswith(".")] == []
    store_series.clear_left_overs(live)  # its builder is gone now
    assert [p.name for p in live.iterdir() if p.name.startswith(".")] == []
