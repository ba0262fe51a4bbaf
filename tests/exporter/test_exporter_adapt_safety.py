"""``deepdenoise adapt`` refuses, in one line and before any work, what it cannot adapt
on or would destroy: a damaged store, NaN pixels, recordings without noise, an output
that is the recording or the starting model, a training checkpoint as the model, bad
options; a loss that turns NaN stops the run; a resumed run reports the same losses."""

# ruff: noqa: E402  (imports after the importorskip guard)
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adapt_harness import CAMERA, blob_movie
from typer.testing import CliRunner

from exporter.adapt import AdaptConfig, adapt
from stream import StoreError
from stream.cli import app
from stream.store import ARRAY_PATHS, SeriesStore

CAMERA_OPTIONS = ["--gain", "2", "--offset", "100", "--read-noise", "3"]
TINY = ["--steps", "2", "--batch", "2", "--patch", "32", "--quiet"]


def _store(folder: Path, frames: np.ndarray) -> Path:
    """The frames written by the service's own store writer: a series store."""
    with SeriesStore(folder, "s1", frames.shape[1:], frames.dtype) as store:
        for i, frame in enumerate(frames):
            store.write_raw(i, frame, t_ns=i)
    return folder / "s1.zarr"


def _adapt_cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["adapt", *map(str, args)])
    return result.exit_code, result.output


def _one_line_error(code: int, output: str) -> str:
    """The CLI's refusal: exit status 2, one line, no traceback; its text."""
    assert code == 2, output
    assert output.strip().count("\n") == 0 and "Traceback" not in output, output
    return output


def test_a_damaged_store_is_refused_as_denoise_refuses_it(tmp_path: Path, conv_model: Path):
    """Shard files deleted: not frames of zeros to train on, a camera made up from them."""
    store = _store(tmp_path, blob_movie(6))
    shutil.rmtree(store / ARRAY_PATHS["raw"] / "c")
    out = tmp_path / "a.onnx"
    with pytest.raises(StoreError, match="flagged valid have no pixels on disk"):
        adapt(store, out, start=conv_model, config=AdaptConfig(steps=2, batch=2, patch=32))
    assert not out.exists()


@pytest.mark.parametrize("camera", [CAMERA_OPTIONS, []], ids=["given", "estimated"])
def test_nan_pixels_in_a_stored_series_are_refused_as_in_a_npy(
    tmp_path: Path, conv_model: Path, camera: list[str]
):
    frames = blob_movie(6).astype(np.float32)
    frames[3, 10:20, 10:20] = np.nan
    store = _store(tmp_path, frames)
    out = tmp_path / "a.onnx"
    code, output = _adapt_cli(store, "-o", out, "--from", conv_model, *TINY, *camera)
    assert "NaN or infinite pixels" in _one_line_error(code, output)
    assert not out.exists()


def test_a_loss_that_turns_non_finite_stops_the_run(tmp_path: Path, conv_model: Path):
    """A learning rate that blows the weights up: a clear error, not a verdict on NaN."""
    np.save(tmp_path / "rec.npy", blob_movie(4))
    out = tmp_path / "a.onnx"
    code, output = _adapt_cli(
        tmp_path / "rec.npy", "-o", out, "--from", conv_model, "--steps", "20", "--batch", "2",
        "--patch", "32", "--lr", "1e30", "--quiet", *CAMERA_OPTIONS,
    )  # fmt: skip
    assert "expected a finite loss" in _one_line_error(code, output)
    assert not out.exists()


def _layout(tmp_path: Path, conv_model: Path) -> dict[str, Path]:
    folder = tmp_path / "ow"
    folder.mkdir()
    np.save(folder / "rec.npy", blob_movie(4))
    start = folder / "start.onnx"
    shutil.copy(conv_model, start)
    store = _store(folder, blob_movie(4))
    return {"folder": folder, "npy": folder / "rec.npy", "start": start, "store": store}


@pytest.mark.parametrize(
    ("recording", "out", "said"),
    [
        ("npy", "npy", "is the recording"),
        ("npy", "folder", "holds it"),
        ("store", "store", "is the recording"),
        ("store", "store/a.onnx", "inside the recording"),
        ("npy", "start", "is the starting model"),
        ("npy", "store", "is a folder"),
    ],
)
def test_an_output_that_would_destroy_data_is_refused_before_any_work(
    tmp_path: Path, conv_model: Path, recording: str, out: str, said: str
):
    paths = _layout(tmp_path, conv_model)
    target = paths[out] if out in paths else paths["store"] / Path(out).name
    before = {p: p.read_bytes() for p in paths["folder"].rglob("*") if p.is_file()}
    code, output = _adapt_cli(
        paths[recording], "-o", target, "--from", paths["start"], *TINY, *CAMERA_OPTIONS
    )
    assert said in " ".join(_one_line_error(code, output).split())
    after = {p: p.read_bytes() for p in paths["folder"].rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing replaced, no checkpoint folder
    assert not list(tmp_path.rglob("*.adapt"))


def test_an_existing_onnx_output_is_replaced(tmp_path: Path, conv_model: Path):
    """What a rerun (or --resume) writes into: kept as it was."""
    np.save(tmp_path / "rec.npy", blob_movie(4))
    out = tmp_path / "a.onnx"
    out.write_bytes(b"an older result")
    code, output = _adapt_cli(
        tmp_path / "rec.npy", "-o", out, "--from", conv_model, *TINY, *CAMERA_OPTIONS
    )
    assert code in (0, 3), output
    assert out.read_bytes() != b"an older result"


def test_a_training_checkpoint_as_the_start_says_to_export_it(tmp_path: Path):
    np.save(tmp_path / "rec.npy", blob_movie(4))
    (tmp_path / "run1").mkdir()
    torch.save({"model": {"w": torch.zeros(2)}, "step": 3}, tmp_path / "run1" / "last.pt")
    shutil.copy(tmp_path / "run1" / "last.pt", tmp_path / "renamed.onnx")
    for start in (tmp_path / "run1" / "last.pt", tmp_path / "renamed.onnx"):
        code, output = _adapt_cli(
            tmp_path / "rec.npy", "-o", tmp_path / "a.onnx", "--from", start, *TINY,
            *CAMERA_OPTIONS,
        )  # fmt: skip
        text = " ".join(_one_line_error(code, output).split())
        assert "expected an .onnx model; export a checkpoint first with deepdenoise export" in text


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--minutes", "0"], "--minutes: expected greater than 0, got 0.0"),
        (["--lr", "-1"], "--lr: expected greater than 0, got -1.0"),
        (["--max-frames", "0"], "--max-frames: expected greater than or equal to 1, got 0"),
        (["--patch", "2000"], "--patch: expected less than or equal to 1024, got 2000"),
        (["--loss", "l1"], "--loss: expected 'sure' or 'n2v', got 'l1'"),
        (["--gain", "-1", "--offset", "100", "--read-noise", "2"], "--gain: expected greater"),
    ],
)
def test_bad_options_get_one_line_naming_the_option(
    tmp_path: Path, conv_model: Path, options: list[str], said: str
):
    np.save(tmp_path / "rec.npy", blob_movie(4))
    code, output = _adapt_cli(
        tmp_path / "rec.npy", "-o", tmp_path / "a.onnx", "--from", conv_model, "--quiet", *options
    )
    text = " ".join(_one_line_error(code, output).split())
    assert said in text and "pydantic" not in text


def test_a_resumed_run_reports_the_losses_the_first_run_did(tmp_path: Path, conv_model: Path):
    np.save(tmp_path / "rec.npy", blob_movie(4))
    out, config = tmp_path / "a.onnx", AdaptConfig(steps=4, batch=2, patch=32, lr=1e-3)
    first = adapt(tmp_path / "rec.npy", out, start=conv_model, config=config, camera=CAMERA)
    again = adapt(
        tmp_path / "rec.npy", out, start=conv_model, config=config, camera=CAMERA, resume=True
    )
    assert again.steps == first.steps == 4
    assert (again.loss_first, again.loss_last) == (first.loss_first, first.loss_last)
    assert again.history == first.history


@pytest.mark.parametrize(
    ("frames", "camera", "said"),
    [
        (np.full((4, 48, 56), 500, np.uint16), CAMERA_OPTIONS, "carry no noise to learn from"),
        (np.full((4, 48, 56), 65535, np.uint16), [], "carry no noise to learn from"),
        (blob_movie(4, (8, 8)), CAMERA_OPTIONS, "expected frames of at least 16x16 px"),
        # one pair of 24 x 24 frames: 36 samples, too few for a slope (eight such frames
        # were refused before 2026-12-05, when a small frame's first temporal fit waited
        # for 384 samples; they now give gain 1.73 +- 0.30 for a true 2)
        (blob_movie(2, (24, 24)), [], "noise cannot be estimated"),
    ],
    ids=["constant", "saturated", "8x8", "too-small-to-estimate"],
)
def test_a_recording_without_usable_noise_is_refused(
    tmp_path: Path, conv_model: Path, frames: np.ndarray, camera: list[str], said: str
):
    np.save(tmp_path / "rec.npy", frames)
    out = tmp_path / "a.onnx"
    code, output = _adapt_cli(tmp_path / "rec.npy", "-o", out, "--from", conv_model, *TINY, *camera)
    assert said in " ".join(_one_line_error(code, output).split())
    assert not out.exists() and not (tmp_path / "a.onnx.adapt").exists()
