"""``deepdenoise denoise`` never destroys data, never writes a broken output, and says in
one line what is wrong with a damaged store or a model that breaks the contract."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from onnx import TensorProto, helper
from typer.testing import CliRunner

from stream import ConfigError, SeriesStore, StoreError
from stream.cli import app
from stream.store import StoreConfig, open_recording

runner = CliRunner()
MOVIE = (100 + np.arange(6 * 16 * 16) % 50).astype(np.uint16).reshape(6, 16, 16)


def denoise(*args: str | Path, model: Path) -> tuple[int, str]:
    """Exit status and output (one line of words); a traceback fails the test."""
    argv = ["denoise", *map(str, args), "--model", str(model), "--provider", "cpu"]
    result = runner.invoke(app, [*argv, "--blend", "off"], catch_exceptions=False)
    return result.exit_code, " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split())


def write_store(root: Path, series: str, frames_per_shard: int = 0) -> Path:
    config = StoreConfig.model_validate({"frames_per_shard": frames_per_shard})
    with SeriesStore(root, series, MOVIE.shape[1:], np.dtype("<u2"), config=config) as store:
        for i, frame in enumerate(MOVIE):
            store.write_raw(i, frame, t_ns=i)
    return root / f"{series}.zarr"


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- 1. an output never replaces the recording or anything unasked ----------------------


@pytest.mark.parametrize(
    ("output", "message"),
    [("exp.zarr", "holds the recording"), ("exp.zarr/s1.zarr/out.npy", "inside the recording")],
)
def test_an_output_holding_or_inside_the_recording_is_refused_even_with_force(
    tmp_path: Path, identity_model: Path, output: str, message: str
) -> None:
    """``-o exp.zarr`` deleted the folder holding the series read (and its others)."""
    s1, s2 = write_store(tmp_path / "exp.zarr", "s1"), write_store(tmp_path / "exp.zarr", "s2")
    before = files(tmp_path / "exp.zarr")
    status, text = denoise(s1, "-o", tmp_path / output, "--force", model=identity_model)
    assert status == 2 and message in text and "--force does not change this" in text, text
    assert files(tmp_path / "exp.zarr") == before and s2.is_dir()


def test_an_existing_output_is_refused_unless_forced_and_a_store_never_replaced(
    tmp_path: Path, identity_model: Path
) -> None:
    s1, s2 = write_store(tmp_path / "data", "s1"), write_store(tmp_path / "data", "s2")
    before = files(s2)
    status, text = denoise(s1, "-o", s2, model=identity_model)
    assert status == 2 and "already exists: expected a new path, or --force" in text, text
    status, text = denoise(s1, "-o", s2, "--force", model=identity_model)
    assert status == 2 and "is a folder that is not a Zarr array" in text, text
    assert files(s2) == before
    for name in ("out.npy", "out.zarr"):
        out = tmp_path / name
        status, _ = denoise(s1, "-o", out, model=identity_model)
        assert status == 0
        status, text = denoise(s1, "-o", out, "--output-dtype", "input", model=identity_model)
        assert status == 2 and "already exists" in text
        status, text = denoise(s1, "-o", out, "--force", "--output-dtype", "input",
                               model=identity_model)  # fmt: skip
        assert status == 0, text
        replaced = np.load(out) if name == "out.npy" else zarr.open_array(str(out), mode="r")[...]
        assert replaced.dtype == np.uint16
        np.testing.assert_array_equal(replaced, MOVIE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.npy", "out.zarr"]


# -- 2. a failed run leaves nothing, and an earlier output untouched --------------------


def test_a_failed_run_leaves_no_output_and_an_earlier_one_as_it_was(
    tmp_path: Path, identity_model: Path
) -> None:
    """Values beyond float32 are an error after the output was opened: it stayed, zeros."""
    np.save(tmp_path / "huge.npy", np.full((2, 16, 16), 1e300))
    status, text = denoise(tmp_path / "huge.npy", "-o", tmp_path / "new.npy", model=identity_model)
    assert status == 2 and "over 1e+12" in text
    earlier = np.full((2, 16, 16), 7.0, np.float32)
    np.save(tmp_path / "old.npy", earlier)
    status, _ = denoise(tmp_path / "huge.npy", "-o", tmp_path / "old.npy", "--force",
                        model=identity_model)  # fmt: skip
    assert status == 2
    np.testing.assert_array_equal(np.load(tmp_path / "old.npy"), earlier)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.npy", "old.npy"]  # no partial


# -- 3, 4. a damaged store: one line naming it, at the reader ---------------------------


def _remove(what: str) -> Callable[[Path], None]:
    return lambda store: shutil.rmtree(store / what)


def _garbage_flags(store: Path) -> None:
    (store / "valid" / "c" / "0").write_bytes(b"garbage")


def _truncated_shard(store: Path) -> None:
    shard = store / "0" / "0" / "c" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])


def _broken_metadata(store: Path) -> None:
    (store / "0" / "0" / "zarr.json").write_text("{broken")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_remove("valid"), "its 'valid' array is missing, the store is damaged"),
        (_remove("0"), "its '0/0' array is missing, the store is damaged"),
        (_garbage_flags, "cannot read its arrays, the store is damaged (RuntimeError"),
        # found at open, from the shard's index (before: at its first frame's read)
        (_truncated_shard, "the store is damaged: 6 frame(s) flagged valid have no pixels"),
        (_broken_metadata, "cannot read its arrays, the store is damaged (JSONDecodeError"),
    ],
    ids=["no-valid", "no-raw", "garbage-flags", "truncated-shard", "broken-json"],
)
def test_a_damaged_store_is_one_line_naming_it(
    tmp_path: Path, identity_model: Path, damage: Callable[[Path], None], message: str
) -> None:
    store = write_store(tmp_path, "s")
    damage(store)
    status, text = denoise(store, "-o", tmp_path / "out.npy", model=identity_model)
    assert status == 2 and text.startswith(f"error: {store}: ") and message in text, text
    assert not (tmp_path / "out.npy").exists()
    with pytest.raises(StoreError, match=re.escape(message)):  # every reader gets it
        open_recording(store).frame(0)


def test_valid_frames_whose_shard_is_gone_are_an_error_not_zeros(
    tmp_path: Path, identity_model: Path
) -> None:
    """zarr reads a missing shard as its fill value: frames 2 and 3 came out as zeros."""
    store = write_store(tmp_path, "s", frames_per_shard=2)
    (store / "0" / "0" / "c" / "1" / "0" / "0").unlink()
    status, text = denoise(store, "-o", tmp_path / "out.npy", model=identity_model)
    assert status == 2, text
    assert f"{store}: the store is damaged: 2 frame(s) flagged valid have no pixels on " \
           "disk (indices 2, 3; missing or unreadable: 0/0/c/1/0/0)" in text  # fmt: skip
    assert not (tmp_path / "out.npy").exists()


# -- 5. a model that breaks the contract, or fails on the recording's frames ------------


def _half_size_model(path: Path) -> Path:
    """Passes the signature checks; its output is half the input's height and width."""
    dims = ["N", 1, "H", "W"]
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("kind", ["all-nan", "half-size"])
def test_a_model_breaking_the_contract_is_refused_before_any_output(
    tmp_path: Path, kind: str
) -> None:
    from exporter.simple_models import make_nan_above

    if kind == "all-nan":
        model = make_nan_above(tmp_path / "nan.onnx", -1.0)  # NaN at every positive pixel
        expected = "non-finite pixels (NaN/Inf) on a finite 16x16 warm-up frame"
    else:
        model = _half_size_model(tmp_path / "half.onnx")
        expected = "the model contract"  # its output is not the input's size
    np.save(tmp_path / "rec.npy", MOVIE)
    status, text = denoise(tmp_path / "rec.npy", "-o", tmp_path / "out.npy", model=model)
    assert status == 2 and expected in text, text
    assert not (tmp_path / "out.npy").exists()


def test_frames_the_model_makes_non_finite_are_counted_and_all_of_them_is_an_error(
    tmp_path: Path, nan_model: Path
) -> None:
    """The model is NaN above 30000 (it passes the warm-up): frames 1 and 4 are bright
    somewhere; frame 0's own NaN pixel, passed through, is not the model's failure."""
    movie = MOVIE.astype(np.float32)
    movie[0, 0, 0] = np.nan
    movie[[1, 4], :4, :4] = 40000.0
    np.save(tmp_path / "rec.npy", movie)
    status, text = denoise(tmp_path / "rec.npy", "-o", tmp_path / "out.npy", model=nan_model)
    assert status == 0, text
    assert "non-finite 2 frames (indices 1, 4) came out with NaN/Inf pixels where the " \
           "recording's were finite" in text  # fmt: skip
    np.save(tmp_path / "bright.npy", np.full((3, 16, 16), 40000.0, np.float32))
    status, text = denoise(tmp_path / "bright.npy", "-o", tmp_path / "nan.npy", model=nan_model)
    assert status == 2 and "gave NaN/Inf pixels in every frame (3)" in text, text
    assert not (tmp_path / "nan.npy").exists()


# -- 6. shapes and the output's format --------------------------------------------------


def test_a_tiff_sample_axis_of_one_is_a_channel(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "grey.tif", MOVIE[0][..., None])  # (H, W, 1): one sample
    grey = open_recording(tmp_path / "grey.tif")
    assert grey.single and grey.frame_shape == (16, 16)


def test_an_unknown_output_format_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    np.save(tmp_path / "rec.npy", MOVIE)
    status, text = denoise(tmp_path / "rec.npy", "-o", tmp_path / "out.png",
                           model=tmp_path / "no-such-model.onnx")  # fmt: skip
    assert status == 2 and "expected an output as .npy" in text, text


def test_a_series_whose_index_jumped_far_is_read_and_refused_for_output(
    tmp_path: Path, identity_model: Path
) -> None:
    """Frames at 0, 1 and 2**40 - 1: its flags are read chunk by chunk (whole, they are
    1 TiB), and denoise refuses a time axis of a trillion holes in one line instead of
    writing them row by row."""
    last = 2**40 - 1
    with SeriesStore(tmp_path, "far", (16, 16), np.dtype("<u2")) as store:
        for i in (0, 1, last):
            store.write_raw(i, MOVIE[i % 6], t_ns=i)
    recording = open_recording(tmp_path / "far.zarr")
    assert recording.indices.tolist() == [0, 1, last]
    np.testing.assert_array_equal(recording.frame(2), MOVIE[last % 6])
    status, text = denoise(tmp_path / "far.zarr", "-o", tmp_path / "out.zarr", model=identity_model)
    assert status == 2 and "too sparse to write" in text, text
    assert not (tmp_path / "out.zarr").exists()


# -- a run stopped by a signal leaves no partial output ----------------------------------


def test_sigterm_discards_the_partial_output_as_ctrl_c_does(tmp_path: Path) -> None:
    import os
    import signal

    from stream.cli._denoise import _terminate_as_interrupt
    from stream.store import RecordingWriter

    def run_killed() -> None:
        with (
            _terminate_as_interrupt(),
            RecordingWriter(tmp_path / "out.npy", 3, (8, 8), np.dtype(np.float32)) as writer,
        ):
            writer.write(np.zeros((8, 8), np.float32))
            os.kill(os.getpid(), signal.SIGTERM)  # `kill`, a scheduler's time limit

    with pytest.raises(KeyboardInterrupt):
        run_killed()
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_a_killed_runs_partial_output_is_cleared_and_a_moved_aside_one_put_back(
    tmp_path: Path,
) -> None:
    """SIGKILL cannot be caught: the hidden folder (as large as the output) stayed for
    good. The next writer of that output clears it, once its process is gone."""
    import subprocess
    import sys

    from stream.store import RecordingWriter

    out = tmp_path / "out.npy"
    killed = (
        "import os, signal, numpy as np\n"
        "from stream.store import RecordingWriter\n"
        f"w = RecordingWriter({str(out)!r}, 4, (8, 8), np.dtype(np.float32))\n"
        "w.write(np.ones((8, 8), np.float32))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed], timeout=120, check=False)
    (partial,) = tmp_path.glob(".out.npy.*")
    # as if it had died between moving the earlier output aside and renaming the new one
    earlier = np.full((2, 2), 5.0)
    np.save(partial / "replaced.npy", earlier)
    (partial / "replaced.npy").rename(partial / "replaced")
    kept = tmp_path / ".out.npy.other"  # no owner mark: not ours, left alone
    kept.mkdir()

    assert not out.exists()
    with RecordingWriter(out, 1, (8, 8), np.dtype(np.float32), replace=True) as writer:
        assert np.array_equal(np.load(out), earlier)  # put back before anything else
        writer.write(np.zeros((8, 8), np.float32))
    assert not partial.exists() and kept.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.npy.other", "out.npy"]


@pytest.mark.parametrize("command", ["denoise", "calibrate", "adapt"])
def test_a_corrupt_tiff_is_one_line_not_a_traceback(
    tmp_path: Path, identity_model: Path, command: str
) -> None:
    """A TIFF header followed by garbage: tifffile finds no page, and the readers raised
    IndexError (exit 1, a traceback)."""
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage")
    argv = {
        "denoise": ["denoise", str(corrupt), "-o", str(tmp_path / "out.npy"),
                    "--model", str(identity_model), "--provider", "cpu"],
        "calibrate": ["calibrate", str(corrupt)],
        "adapt": ["adapt", str(corrupt), "-o", str(tmp_path / "out.onnx"), "--quiet"],
    }[command]  # fmt: skip
    result = runner.invoke(app, argv, catch_exceptions=False)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"error: cannot read {corrupt} as a TIFF stack: expected image pages" in text
    assert "Traceback" not in text and not (tmp_path / "out.npy").exists()
    with pytest.raises(ConfigError, match="as a TIFF stack"):
        open_recording(corrupt)
