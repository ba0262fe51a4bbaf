"""``deepdenoise denoise``: a recording on disk through the service's engine and series
context, every frame due a blend measurement measured."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream import SeriesStore
from stream.cli import app
from stream.engine import Engine, SeriesContext, shipped_model_path

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def words(output: str) -> str:
    """The output's text as one line, without a table's box lines (cells wrap)."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", output).split())


def _denoised(recording: Path, output: Path) -> str:
    """``denoise`` on CPU with the blend off (it must succeed): its output, as words."""
    result = invoke(
        "denoise", str(recording), "-o", str(output), "--provider", "cpu", "--blend", "off"
    )
    assert result.exit_code == 0, result.output
    return words(result.output)


def photons() -> np.ndarray:
    yy, xx = np.mgrid[:48, :48]
    return 5.0 + 20.0 * np.exp(-((yy - 20.0) ** 2 + (xx - 28.0) ** 2) / 60.0)


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    """Six frames of a still scene, Poisson-Gaussian (gain 1, offset 100, read 2 e-)."""
    rng = np.random.default_rng(3)
    frames = 100 + rng.poisson(photons(), (6, 48, 48)) + rng.normal(0.0, 2.0, (6, 48, 48))
    return np.round(frames).astype(np.uint16)


def served_offline(frames: np.ndarray, blend: str, look_ahead: int = 0) -> np.ndarray:
    engine = Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None)
    context = SeriesContext(None, blend)
    if look_ahead:
        assert context.look_ahead(enumerate(frames[:look_ahead])) == min(look_ahead, len(frames))
    return np.stack([context.denoise(engine, frame, i) for i, frame in enumerate(frames)])


@pytest.mark.parametrize(
    ("blend", "look_ahead"), [("spatial", None), ("off", None), ("spatial", 0)]
)
def test_a_recording_comes_out_as_the_series_context_denoises_it(
    tmp_path: Path, movie: np.ndarray, blend: str, look_ahead: int | None
) -> None:
    """By default the camera estimate first looks at the recording's first 32 frames
    (all six here); ``--look-ahead 0`` gives the frames as the service serves them."""
    np.save(tmp_path / "rec.npy", movie)
    ahead = [] if look_ahead is None else ["--look-ahead", str(look_ahead)]
    result = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "out.npy"),
        "--model", "na-lite", "--provider", "cpu", "--blend", blend, *ahead,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32 and out.shape == movie.shape
    expected = served_offline(movie, blend, 32 if look_ahead is None else look_ahead)
    np.testing.assert_array_equal(out, expected)
    assert ("looked ahead: warmed on the first 6 frames" in words(result.output)) == (
        look_ahead is None
    )
    text = words(result.output)
    assert "camera estimated live: gain" in text
    measured = 6 if blend == "spatial" else 0  # every due frame, as the evaluation does
    assert f"{measured} frames measured" in text
    assert "found nothing but the camera's noise" in text


def test_the_summary_names_a_fixed_pattern_in_the_read_noise(tmp_path: Path) -> None:
    """Offsets differing pixel to pixel by 1.5 ADU rms (stream/camera/_fixed_pattern.py):
    counted in the live read noise, and the summary says so; without them, not."""
    rng = np.random.default_rng(5)
    pattern = rng.normal(0.0, 1.5, (128, 128))
    light = np.full((128, 128), 2.0)
    for name, fixed in (("patterned", pattern), ("plain", 0.0)):
        frames = 100 + fixed + rng.poisson(light, (8, 128, 128)) + rng.normal(0, 1, (8, 128, 128))
        np.save(tmp_path / f"{name}.npy", frames.astype(np.float32))
        result = invoke(
            "denoise", str(tmp_path / f"{name}.npy"), "-o", str(tmp_path / f"{name}-out.npy"),
            "--model", "na-lite", "--provider", "cpu", "--blend", "off",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        found = re.search(r"a fixed pattern of ([0-9.]+) in it", words(result.output))
        if name == "plain":
            assert found is None
        else:
            assert found is not None and float(found.group(1)) == pytest.approx(1.5, rel=0.2)


def test_the_summary_says_what_the_frames_held(tmp_path: Path, movie: np.ndarray) -> None:
    """A field of view masked with 0 outside its circle: the summary says the masked
    region was found, in every frame, as ``status.series`` does live."""
    masked = movie.copy()
    yy, xx = np.mgrid[:48, :48]
    masked[:, (yy - 24.0) ** 2 + (xx - 24.0) ** 2 > 20.0**2] = 0
    np.save(tmp_path / "rec.npy", masked)
    result = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "out.npy"),
        "--model", "na-lite", "--provider", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "a masked region (kept as it came) in 6 frames" in words(result.output)


def test_output_in_the_recordings_dtype_and_as_tiff(tmp_path: Path, movie: np.ndarray) -> None:
    np.save(tmp_path / "rec.npy", movie)
    result = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "out.tif"),
        "--model", "na-lite", "--provider", "cpu", "--blend", "off", "--output-dtype", "input",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import tifffile

    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.uint16 and out.shape == movie.shape
    expected = np.clip(np.rint(served_offline(movie, "off", 32)), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(out, expected)


def test_a_stored_series_is_denoised_with_its_gaps(tmp_path: Path, movie: np.ndarray) -> None:
    """The service's own store (a dropped frame 2): its valid raw frames, the ring
    restarted at the gap as the service would; the output keeps the series' time axis
    (row i is frame i: the dropped frame stays a hole, never a shift)."""
    kept = [0, 1, 3, 4, 5]
    with SeriesStore(tmp_path, "s", movie.shape[1:], np.dtype("<u2")) as store:
        for i in kept:
            store.write_raw(i, movie[i], t_ns=i)
    result = invoke(
        "denoise", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "out.zarr"),
        "--model", "na-temporal", "--provider", "cpu", "--blend", "off",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import zarr

    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    engine = Engine(shipped_model_path("na-temporal"), provider="cpu", warmup_shape=None)
    context = SeriesContext(None, "off")
    assert context.look_ahead((i, movie[i]) for i in kept) == len(kept)  # the hole kept
    expected = np.stack([context.denoise(engine, movie[i], i) for i in kept])
    assert out.shape == movie.shape and np.isnan(out[2]).all()
    np.testing.assert_array_equal(out[kept], expected)
    text = words(result.output)
    assert "1 frame not in the store (indices 2): their rows are NaN" in text, text
    assert "is not closed" not in text
    result = invoke(
        "denoise", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "out.npy"),
        "--model", "na-temporal", "--provider", "cpu", "--blend", "off", "--output-dtype",
        "input",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    as_input = np.load(tmp_path / "out.npy")
    assert as_input.shape == movie.shape and not as_input[2].any()  # 0: no NaN in uint16
    assert "their rows are 0" in words(result.output)


@pytest.mark.parametrize(("axes", "said"), [("CYX", "channels"), ("ZYX", "z-planes"), ("TYX", "")])
def test_a_tiff_of_channels_or_planes_is_said_to_be_taken_as_frames(
    tmp_path: Path, movie: np.ndarray, axes: str, said: str
) -> None:
    """ImageJ's CYX or ZYX were denoised as a series in time without a word (a user's
    trial): the camera estimate and the blend take the planes as consecutive frames."""
    import tifffile

    tifffile.imwrite(tmp_path / "rec.tif", movie[:3], imagej=True, metadata={"axes": axes})
    text = _denoised(tmp_path / "rec.tif", tmp_path / "out.npy")
    if said:
        assert f"stacks {said}, not frames in time" in text, text
    else:
        assert "not frames in time" not in text, text


def test_a_store_not_closed_is_denoised_as_a_snapshot_and_said_so(
    tmp_path: Path, movie: np.ndarray
) -> None:
    """A store still being written (or left by a killed service) gave its frames so far
    with no word that there may be more (a user's trial)."""
    store = SeriesStore(tmp_path, "live", movie.shape[1:], np.dtype("<u2"))
    for i in range(3):
        store.write_raw(i, movie[i], t_ns=i)
    store.flush()
    store.release()  # as a killed service leaves it: open
    text = _denoised(tmp_path / "live.zarr", tmp_path / "out.npy")
    assert "is not closed (still being written, or left so by a service" in text, text
    assert "denoising its 3 frames so far" in text, text


@pytest.mark.parametrize(
    ("recording", "output", "message"),
    [
        ("missing.npy", "out.npy", "does not exist"),
        ("rec.npy", "out.png", "expected an output as .npy"),
        ("rec.npy", "rec.npy", "would overwrite the recording"),
    ],
)
def test_bad_arguments_fail_with_a_message_and_status_2(
    tmp_path: Path, movie: np.ndarray, recording: str, output: str, message: str
) -> None:
    np.save(tmp_path / "rec.npy", movie[:1])
    result = invoke(
        "denoise", str(tmp_path / recording), "-o", str(tmp_path / output), "--provider", "cpu"
    )
    assert result.exit_code == 2
    assert "error:" in result.output and message in words(result.output)
    np.testing.assert_array_equal(np.load(tmp_path / "rec.npy"), movie[:1])  # untouched


def test_a_serve_config_gives_its_camera(tmp_path: Path, movie: np.ndarray) -> None:
    """The camera table of a ``serve`` config is the camera: nothing estimated."""
    from stream.camera import CameraModel

    np.save(tmp_path / "rec.npy", movie[:2])
    (tmp_path / "serve.toml").write_text(
        'model = "na-lite"\nblend = "off"\n[camera]\ngain = 1.0\noffset = 100.0\nread_noise = 2.0\n'
    )
    result = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "out.npy"),
        "--config", str(tmp_path / "serve.toml"), "--provider", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "camera configured" in words(result.output)
    engine = Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None)
    camera = CameraModel(gain=1.0, offset=100.0, read_noise=2.0)
    expected = [engine.denoise(frame, camera=camera) for frame in movie[:2]]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.stack(expected))


def test_an_offset_map_of_another_shape_is_refused_and_output_folders_are_made(
    tmp_path: Path, movie: np.ndarray
) -> None:
    """Offline, every frame has the recording's shape: a map of another (a smaller
    region of the sensor) would be left unused without a word, so it is an error."""
    np.save(tmp_path / "rec.npy", movie[:2])
    np.save(tmp_path / "map.npy", np.zeros((8, 8), np.float32))
    (tmp_path / "serve.toml").write_text('model = "na-lite"\noffset_map = "map.npy"\n')
    args = ["denoise", str(tmp_path / "rec.npy"), "--provider", "cpu"]
    refused = invoke(
        *args, "-o", str(tmp_path / "out.npy"), "--config", str(tmp_path / "serve.toml")
    )
    assert refused.exit_code == 2 and "expected a map of the frames' shape" in words(refused.output)
    made = invoke(*args, "-o", str(tmp_path / "new" / "folder" / "out.npy"))
    assert made.exit_code == 0, made.output
    assert np.load(tmp_path / "new" / "folder" / "out.npy").shape == movie[:2].shape


@pytest.mark.parametrize(("dtype", "value"), [(np.float64, 1e300), (np.float32, 1e20)])
def test_float_values_beyond_float32_arithmetic_are_refused_in_words(
    tmp_path: Path, dtype: type, value: float
) -> None:
    """The model and the camera estimate compute in float32: 1e300 would be inf (it was
    a traceback), and 1e20, a float32 itself, overflowed the estimate's cubes (the
    model was blamed for NaN output)."""
    np.save(tmp_path / "huge.npy", np.full((2, 16, 16), value, dtype))
    result = runner.invoke(app, ["denoise", str(tmp_path / "huge.npy"), "-o",
                                 str(tmp_path / "out.npy"), "--provider", "cpu"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"frame 0 holds values up to {value:.3g}, over 1e+12" in words(result.output)


def test_a_recording_in_a_tiny_unit_is_denoised_as_in_counts(tmp_path: Path) -> None:
    """The same movie in units of 1e-12 of a count: the frame scale's floor was an
    absolute 1e-6, which took over, and the output was garbage (-3 dB; a new user's
    probe, 2026-12-06)."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:48, :48]
    clean = 100.0 + 30.0 * (1 + np.sin(xx / 4.0) * np.sin(yy / 5.0))
    counts = (rng.poisson(np.broadcast_to(clean - 100.0, (6, 48, 48))) + 100.0
              + rng.normal(0.0, 2.0, (6, 48, 48)))  # fmt: skip
    for name, scale in (("counts", 1.0), ("tiny", 1e-12)):
        np.save(tmp_path / f"{name}.npy", (counts * scale).astype(np.float32))
        args = [str(tmp_path / f"{name}.npy"), "-o", str(tmp_path / f"{name}-out.npy")]
        result = runner.invoke(app, ["denoise", *args, "--provider", "cpu"])
        assert result.exit_code == 0, result.output
    as_counts = np.load(tmp_path / "counts-out.npy")
    np.testing.assert_allclose(np.load(tmp_path / "tiny-out.npy") / 1e-12, as_counts, atol=0.5)
    assert np.mean((as_counts - clean) ** 2) < 0.5 * np.mean((counts - clean) ** 2)


@pytest.mark.parametrize("blank", [np.nan, 0.0])
def test_the_frames_after_a_blank_first_frame_are_denoised(
    tmp_path: Path, movie: np.ndarray, blank: float
) -> None:
    """A closed shutter or a dropped readout first: the next three frames were served as
    noise-free (passed through) from the blank frame's camera estimate."""
    recording = movie.astype(np.float32)
    recording[0] = blank
    np.save(tmp_path / "rec.npy", recording)
    result = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "out.npy"),
        "--model", "na-lite", "--provider", "cpu", "--blend", "off",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out, truth = np.load(tmp_path / "out.npy"), 100.0 + photons()
    for k in range(1, len(movie)):
        noisy = np.sqrt(np.mean((recording[k] - truth) ** 2))
        denoised = np.sqrt(np.mean((out[k] - truth) ** 2))
        assert denoised < 0.6 * noisy, (k, denoised, noisy)


def test_the_summary_tells_nan_pixels_and_blank_recordings(
    tmp_path: Path, movie: np.ndarray
) -> None:
    """NaN pixels went unmentioned ("found: nothing but the camera's noise"), and a
    recording of zeros was told a camera of "gain 0.001 +- inf"."""
    recording = movie.astype(np.float32)
    recording[:, 10:12, :] = np.nan
    np.save(tmp_path / "nan.npy", recording)
    text = _denoised(tmp_path / "nan.npy", tmp_path / "out.npy")
    pixels = 2 * recording.shape[2] * len(recording)
    assert f"found {pixels} NaN/Inf pixels in {len(recording)} frames (NaN in the output" in text
    assert np.isnan(np.load(tmp_path / "out.npy")[:, 10:12]).all()
    np.save(tmp_path / "zeros.npy", np.zeros((3, 32, 32), np.uint16))
    text = _denoised(tmp_path / "zeros.npy", tmp_path / "zeros_out.npy")
    assert "camera none: every frame is blank" in text and "± inf" not in text
    assert "found blank frames only" in text
    assert not np.load(tmp_path / "zeros_out.npy").any()


def test_a_temporal_model_says_how_it_follows_fast_events(
    tmp_path: Path, movie: np.ndarray
) -> None:
    """na-temporal lowered fast transients at low light (onsets 0.35-0.69 of their
    height at 1 photon per pixel in a user's trial) and the summary said nothing."""
    np.save(tmp_path / "rec.npy", movie.astype(np.float32))
    runs = {}
    for follow in ("balanced", "events"):
        result = invoke(
            "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / f"{follow}.npy"),
            "--model", "na-temporal", "--provider", "cpu", "--follow", follow,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[follow] = words(result.output)
    assert "fast events come out lower and later (--follow events keeps" in runs["balanced"]
    assert "follows fast events closely (--follow events: less PSNR)" in runs["events"]
    spatial = _denoised(tmp_path / "rec.npy", tmp_path / "lite.npy")
    assert "fast events" not in spatial and "--follow" not in spatial
    ignored = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "lite2.npy"),
        "--provider", "cpu", "--follow", "events",
    )  # fmt: skip
    assert "--follow events does nothing here (a spatial model)" in words(ignored.output)


def test_integers_beyond_float32s_exact_range_are_warned_of(tmp_path: Path) -> None:
    """Noise on a large offset (a 64-bit count): float32 rounds it away; say so."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "u64.npy", (2**40 + rng.poisson(20, (2, 16, 16))).astype(np.uint64))
    result = invoke("denoise", str(tmp_path / "u64.npy"), "-o", str(tmp_path / "out.npy"),
                    "--provider", "cpu", "--blend", "off")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = words(result.output)
    assert "warning: frame 0 holds integers up to 1099511627" in text
    assert "subtract the offset first" in text and text.count("warning:") == 1


def test_a_stack_whose_last_axis_looks_like_time_is_warned_of(tmp_path: Path) -> None:
    """(H, W, N), as some software saves a movie, reads as H frames of W x N: say so."""
    np.save(tmp_path / "hwn.npy", np.full((64, 64, 8), 100, np.uint16))
    result = invoke("denoise", str(tmp_path / "hwn.npy"), "-o", str(tmp_path / "out.npy"),
                    "--provider", "cpu", "--blend", "off")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: 64 frames of 64x8: if the recording's last axis is time" in words(
        result.output
    )


def test_the_look_aheads_pairs_are_not_counted_twice(tmp_path: Path) -> None:
    """The frames looked at ahead feed the estimate again as they are denoised; the
    summary counts each pair once."""
    from camera_harness import star_frames

    frames, _ = star_frames(drift=1, frames=6)
    np.save(tmp_path / "rec.npy", np.stack(frames))
    text = _denoised(tmp_path / "rec.npy", tmp_path / "out.npy")
    assert "looked ahead: warmed on the first 6 frames" in text, text
    assert "5 of the 5 frame pairs compared moved" in text, text


def test_the_summary_says_when_a_temporal_models_history_followed_the_scene(
    tmp_path: Path,
) -> None:
    """Beads jittering by 2-3 px: ``na-temporal``'s previous frames were moved with them
    (stream.engine._motion), and the summary says in how many frames."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:160, :160]
    field = np.zeros((160, 160))
    for cy, cx in rng.uniform(0, 160, (32, 2)):
        field += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    path = [(0, 0), (3, -2), (0, 2), (-3, 0), (2, 3), (-2, -3)]
    frames = [field[16 - dy : 144 - dy, 16 - dx : 144 - dx] for dy, dx in path]
    counts = rng.poisson(60.0 * np.stack(frames)) + rng.normal(100.0, 2.0, (6, 128, 128))
    np.save(tmp_path / "rec.npy", np.round(counts).astype(np.uint16))
    result = invoke(
        "denoise", str(tmp_path / "rec.npy"), "-o", str(tmp_path / "out.npy"),
        "--model", "na-temporal", "--provider", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the scene shifted in 5 frames: history moved with it" in words(result.output)
