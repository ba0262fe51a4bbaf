"""Recordings on disk, read and written frame by frame (``deepdenoise denoise``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from stream import ConfigError, SeriesStore
from stream.store import RecordingWriter, open_recording

STACK = np.arange(3 * 5 * 4, dtype=np.uint16).reshape(3, 5, 4)


def _frames(recording) -> np.ndarray:
    return np.stack([recording.frame(i) for i in range(len(recording))])


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".zarr"])
def test_a_stack_reads_back_frame_by_frame_with_consecutive_indices(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"rec{suffix}"
    if suffix == ".npy":
        np.save(path, STACK)
    elif suffix == ".tif":
        tifffile.imwrite(path, STACK)
    else:
        zarr.create_array(str(path), data=STACK)
    recording = open_recording(path)
    assert len(recording) == 3 and recording.frame_shape == (5, 4)
    assert recording.dtype == np.uint16
    np.testing.assert_array_equal(recording.indices, [0, 1, 2])
    np.testing.assert_array_equal(_frames(recording), STACK)


def test_one_image_is_a_recording_of_one_frame(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", STACK[0])
    recording = open_recording(tmp_path / "one.npy")
    assert len(recording) == 1
    np.testing.assert_array_equal(recording.frame(0), STACK[0])


def test_a_group_with_one_array_is_read_and_one_with_two_is_refused(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "one.zarr"), mode="w")
    group.create_array("frames", data=STACK)
    np.testing.assert_array_equal(_frames(open_recording(tmp_path / "one.zarr")), STACK)
    group = zarr.open_group(str(tmp_path / "two.zarr"), mode="w")
    group.create_array("a", data=STACK)
    group.create_array("b", data=STACK)
    with pytest.raises(ConfigError, match=r"group with one array, got a group with arrays"):
        open_recording(tmp_path / "two.zarr")


def test_a_series_store_gives_its_valid_raw_frames_and_their_indices(tmp_path: Path) -> None:
    """A stream that dropped frame 2: the hole is not read as a frame, and the indices
    say where it was (a temporal model's ring restarts there)."""
    with SeriesStore(tmp_path, "s", (5, 4), np.dtype("<u2")) as store:
        for i in (0, 1, 3):
            store.write_raw(i, STACK[i % 3] + i, t_ns=i)
    recording = open_recording(tmp_path / "s.zarr")
    np.testing.assert_array_equal(recording.indices, [0, 1, 3])
    np.testing.assert_array_equal(recording.frame(2), STACK[0] + 3)
    assert recording.timeline and recording.rows == 4 and recording.missing().tolist() == [2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rec.png", None, r"expected a recording as \.npy, \.tif, \.tiff, \.zarr, got 'rec\.png'"),
        ("missing.npy", None, r"does not exist"),
        (
            "cube.npy",
            np.zeros((2, 2, 2, 2), np.uint16),
            r"expected frames \(T, H, W\).*save the channel or z-plane to denoise",
        ),
        ("text.npy", np.array([["a"]]), r"expected integer or float pixels, got <U1"),
        ("empty.npy", np.zeros((0, 4, 4), np.uint16), r"holds no frame"),
    ],
)
def test_bad_recordings_say_what_was_expected(
    tmp_path: Path, name: str, content: np.ndarray | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        np.save(path, content)
    elif name.endswith(".png"):
        path.write_bytes(b"\x89PNG")
    with pytest.raises(ConfigError, match=message):
        open_recording(path)


@pytest.mark.parametrize("suffix", [".npy", ".tiff", ".zarr"])
def test_a_writer_writes_frame_by_frame_what_a_reader_reads(tmp_path: Path, suffix: str) -> None:
    frames = STACK.astype(np.float32) / 7
    path = tmp_path / f"out{suffix}"
    with RecordingWriter(path, len(frames), (5, 4), np.dtype(np.float32)) as writer:
        for frame in frames:
            writer.write(frame)
    back = open_recording(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(_frames(back), frames)


def test_a_writer_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected an output as \.npy"):
        RecordingWriter(tmp_path / "out.png", 1, (2, 2), np.dtype(np.float32))


def test_a_compressed_tiff_and_a_two_dimensional_zarr_array_are_read(tmp_path: Path) -> None:
    """A compressed TIFF cannot be memory-mapped (it is read whole); one Zarr image is a
    recording of one frame."""
    tifffile.imwrite(tmp_path / "zip.tif", STACK, compression="zlib")
    np.testing.assert_array_equal(_frames(open_recording(tmp_path / "zip.tif")), STACK)
    zarr.create_array(str(tmp_path / "one.zarr"), data=STACK[1])
    np.testing.assert_array_equal(_frames(open_recording(tmp_path / "one.zarr")), STACK[1:2])


def test_singleton_axes_are_dropped(tmp_path: Path) -> None:
    """A (T, C, Z, Y, X) stack of one channel and one plane is a stack of frames."""
    np.save(tmp_path / "tczyx.npy", STACK[:, None, None])
    np.testing.assert_array_equal(_frames(open_recording(tmp_path / "tczyx.npy")), STACK)
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 5, 4), np.uint16))
    with pytest.raises(ConfigError, match=r"expected frames \(T, H, W\)"):
        open_recording(tmp_path / "rgb.npy")


def test_pages_written_one_at_a_time_are_the_frames(tmp_path: Path) -> None:
    """A TIFF written page by page (no stack description) reads as one series a page in
    tifffile: every page is a frame, not only the first."""
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for frame in STACK:
            tif.write(frame)
    np.testing.assert_array_equal(_frames(open_recording(tmp_path / "pages.tif")), STACK)
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tif:
        tif.write(STACK[0])
        tif.write(STACK[0][:2])
    with pytest.raises(ConfigError, match="series of different shapes"):
        open_recording(tmp_path / "mixed.tif")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello", r"expected a \.npy array, got a file that is not one"),
        (b"", r"expected a \.npy array, got a file that is not one"),
        (
            b"\x93NUMPY\x01\x00v\x00{'descr': '<u2', 'fortran_order': False, 'shape': (9, 9), }",
            r"cannot read .* as a \.npy array",
        ),
    ],
)
def test_a_file_that_is_no_npy_array_says_so(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "x.npy").write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        open_recording(tmp_path / "x.npy")
    np.savez(tmp_path / "two.npz", a=STACK, b=STACK)
    (tmp_path / "two.npz").rename(tmp_path / "two.npy")
    with pytest.raises(ConfigError, match=r"a \.npz archive"):
        open_recording(tmp_path / "two.npy")
    (tmp_path / "x.tif").write_bytes(content + b"not a tiff")
    with pytest.raises(ConfigError, match="as a TIFF stack"):
        open_recording(tmp_path / "x.tif")


def test_a_trailing_channel_of_one_is_dropped_and_a_colour_image_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "thw1.npy", STACK[..., None])
    np.testing.assert_array_equal(_frames(open_recording(tmp_path / "thw1.npy")), STACK)
    np.save(tmp_path / "hw1.npy", STACK[0][..., None])  # grey as imaging libraries save it
    one = open_recording(tmp_path / "hw1.npy")
    assert one.single and len(one) == 1
    np.testing.assert_array_equal(one.frame(0), STACK[0])
    np.save(tmp_path / "rgb.npy", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"looks like one colour image \(H, W, 3\)"):
        open_recording(tmp_path / "rgb.npy")
    np.save(tmp_path / "rgbs.npy", np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"colour frames \(T, H, W, C\).*stack\[\.\.\., 0\]"):
        open_recording(tmp_path / "rgbs.npy")


@pytest.mark.parametrize("suffix", [".npy", ".tiff", ".zarr"])
def test_one_image_in_is_one_image_out(tmp_path: Path, suffix: str) -> None:
    """An (H, W) image denoised comes back (H, W) in every format, not a stack of one."""
    np.save(tmp_path / "one.npy", STACK[0])
    recording = open_recording(tmp_path / "one.npy")
    np.save(tmp_path / "stack.npy", STACK)
    assert recording.single and not open_recording(tmp_path / "stack.npy").single
    out = tmp_path / f"out{suffix}"
    with RecordingWriter(out, 1, recording.frame_shape, STACK.dtype, single=True) as writer:
        writer.write(recording.frame(0))
    back = _read_back(out)
    assert back.shape == STACK[0].shape
    np.testing.assert_array_equal(back, STACK[0])


def _read_back(out: Path) -> np.ndarray:
    if out.suffix == ".npy":
        return np.load(out)
    if out.suffix == ".tiff":
        return tifffile.imread(out)
    return np.asarray(zarr.open_array(str(out))[...])


@pytest.mark.parametrize("suffix", [".npy", ".tiff", ".zarr"])
def test_a_stack_of_one_frame_stays_a_stack(tmp_path: Path, suffix: str) -> None:
    """A (1, H, W) stack came back (H, W) as a TIFF: tifffile reads a lone page as one
    image, unless told its axes."""
    out = tmp_path / f"out{suffix}"
    with RecordingWriter(out, 1, STACK.shape[1:], STACK.dtype) as writer:
        writer.write(STACK[0])
    back = _read_back(out)
    assert back.shape == (1, *STACK.shape[1:])
    np.testing.assert_array_equal(back[0], STACK[0])


def test_a_folder_with_no_zarr_in_it_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ConfigError, match="as a Zarr array or group"):
        open_recording(tmp_path / "empty.zarr")
