"""`deepdenoise calibrate`: the camera model from recordings, as TOML for `serve` and `train`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream import ConfigError
from stream.cli import app


def _recordings(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    gain, offset, read = 2.0, 100.0, 1.5
    levels = np.repeat(np.linspace(5, 400, 16), 4)  # a flat-field series, 4 frames a step
    flat = [
        gain * rng.poisson(lv, (48, 48)) + offset + rng.normal(0, read, (48, 48)) for lv in levels
    ]
    dark = [offset + rng.normal(0, read, (48, 48)) for _ in range(16)]
    np.save(tmp_path / "flat.npy", np.rint(np.stack(flat)).astype(np.uint16))
    np.save(tmp_path / "dark.npy", np.rint(np.stack(dark)).astype(np.uint16))
    return tmp_path / "flat.npy", tmp_path / "dark.npy"


def test_a_gain_stack_whose_scene_changes_is_warned_of(tmp_path: Path):
    """A recording of firing cells given as STACK: the gain came out 2.21 +- 0.0065 for
    2 without a word (a user's trial). A flat-field series that steps its light (every
    region at once) is still; cells that light up now and then are not."""
    from exporter.noise import scene_changes

    flat, dark = _recordings(tmp_path)
    assert scene_changes(np.load(flat)) is None
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:48, :48]
    cells = [np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0) for y, x in rng.uniform(4, 44, (8, 2))]
    frames = []
    for _ in range(24):
        light = 20.0 + sum(c * 60.0 * (rng.random() < 0.3) for c in cells)
        frames.append(2.0 * rng.poisson(light) + 100.0 + rng.normal(0, 1.5, light.shape))
    np.save(tmp_path / "firing.npy", np.rint(np.stack(frames)).astype(np.uint16))
    result = CliRunner().invoke(
        app, ["calibrate", str(tmp_path / "firing.npy"), "--dark", str(dark)]
    )
    # said before the fit, which may refuse such frames
    text = " ".join(result.output.split())
    assert "of its 16x16 regions changed level between frames" in text, text
    assert "Expected a still flat field" in text
    steady = CliRunner().invoke(app, ["calibrate", str(flat), "--dark", str(dark)])
    assert "changed level" not in steady.output


def test_calibrate_recovers_the_camera_and_prints_it_for_serve_and_train(tmp_path: Path):
    """The printed TOML pastes into each place the README sends it: a ``serve`` config's
    ``[camera]``, a synth training config's ``[synth]``, the phantom source's table."""
    from exporter.train_config import load_train_config
    from stream import load_config

    flat, dark = _recordings(tmp_path)
    result = CliRunner().invoke(app, ["calibrate", str(flat), "--dark", str(dark)])
    assert result.exit_code == 0, result.output
    tables = tomllib.loads(result.output[result.output.index("# deepdenoise serve") :])
    camera = tables["camera"]
    assert abs(camera["gain"] - 2.0) < 0.1
    assert abs(camera["offset"] - 100.0) < 0.5
    assert abs(camera["read_noise"] - 1.5) < 0.2
    assert tables["data"]["noise"]["camera"] == camera
    assert tables["synth"]["gain"] == [camera["gain"], camera["gain"]]

    serve_toml = tmp_path / "serve.toml"
    serve_toml.write_text(f"[camera]\ngain = {camera['gain']}\noffset = {camera['offset']}\n")
    with pytest.raises(ConfigError, match="got no read_noise"):  # all three, or none
        load_config(serve_toml)
    pasted = result.output[
        result.output.index("[camera]") : result.output.index("# deepdenoise train")
    ]
    serve_toml.write_text(pasted)
    assert load_config(serve_toml).camera is not None
    train_toml = tmp_path / "train.toml"
    train_toml.write_text(
        'preset = "na-lite"\ndata_source = "synth"\n[synth]\nnoise_map = true\n'
        f"gain = {tables['synth']['gain']}\n"
    )
    assert load_train_config(train_toml).synth.gain == (camera["gain"], camera["gain"])


def test_calibrate_stdout_is_toml_and_for_serve_a_config_of_its_own(tmp_path: Path):
    # `calibrate ... > cam.toml` held the fit's table too, and all three tables: no config
    # read it (a new user's trial, 2026-12-07); the fit now goes to stderr
    from stream import load_config

    flat, dark = _recordings(tmp_path)
    result = CliRunner().invoke(app, ["calibrate", str(flat), "--dark", str(dark)])
    assert result.exit_code == 0, result.output
    tables = tomllib.loads(result.stdout)  # the whole of stdout
    assert set(tables) == {"camera", "synth", "data"}
    assert "camera noise fit" in result.stderr and "photon-transfer" in result.stderr
    for target, keys in (("serve", {"camera"}), ("synth", {"synth"}), ("phantom", {"data"})):
        only = CliRunner().invoke(
            app, ["calibrate", str(flat), "--dark", str(dark), "--for", target]
        )
        assert only.exit_code == 0, only.output
        assert set(tomllib.loads(only.stdout)) == keys
    serve_toml = tmp_path / "camera.toml"
    serve_toml.write_text(
        CliRunner()
        .invoke(app, ["calibrate", str(flat), "--dark", str(dark), "--for", "serve"])
        .stdout
    )
    camera = load_config(serve_toml).camera
    assert camera is not None and camera.gain == tables["camera"]["gain"]


def test_calibrate_refuses_a_gain_from_dark_frames_only(tmp_path: Path):
    _, dark = _recordings(tmp_path)
    result = CliRunner().invoke(app, ["calibrate", str(dark), "--dark", str(dark)])
    assert result.exit_code == 2
    assert "gain" in result.output


def test_calibrate_writes_the_dark_frames_average_as_an_offset_map(tmp_path: Path):
    """A sensor whose offset differs pixel by pixel (a fixed pattern of 3 ADU rms): the
    map holds it, to the dark frames' read noise over their count."""
    rng = np.random.default_rng(1)
    pattern = rng.normal(0.0, 3.0, (48, 48))
    dark = np.rint(100 + pattern + rng.normal(0, 1.5, (32, 48, 48))).astype(np.uint16)
    flat, _ = _recordings(tmp_path)
    np.save(tmp_path / "patterned.npy", dark)
    out = tmp_path / "maps" / "offset.npy"
    args = [
        "calibrate",
        str(flat),
        "--dark",
        str(tmp_path / "patterned.npy"),
        "--offset-map",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    average = np.load(out)
    assert average.shape == (48, 48) and average.dtype == np.float32
    assert np.std(average - 100 - pattern) < 0.5  # 1.5 / sqrt(32) and the rounding
    assert "serve --offset-map" in result.output
    no_dark = CliRunner().invoke(app, ["calibrate", str(flat), "--offset-map", str(out)])
    assert no_dark.exit_code == 2 and "needs dark frames" in no_dark.output


def test_without_an_offset_map_the_dark_frames_pattern_is_counted_as_noise(tmp_path: Path):
    """Frame differences leave a fixed pattern out of the read noise; served without a map
    that takes it out, it is noise to the model, and the tables say so (told 1.5 ADU for
    a pattern of 3, the blend with smoothing keeps it: see tests/camera/test_fixed_pattern.py)."""
    rng = np.random.default_rng(1)
    pattern = rng.normal(0.0, 3.0, (48, 48))
    np.save(
        tmp_path / "patterned.npy",
        np.rint(100 + pattern + rng.normal(0, 1.5, (32, 48, 48))).astype(np.uint16),
    )
    flat, plain = _recordings(tmp_path)

    def read_noise(*args: str) -> tuple[float, str]:
        result = CliRunner().invoke(app, ["calibrate", str(flat), *args])
        assert result.exit_code == 0, result.output
        tables = tomllib.loads(result.output[result.output.index("# deepdenoise serve") :])
        return tables["camera"]["read_noise"], result.output

    counted, output = read_noise("--dark", str(tmp_path / "patterned.npy"))
    assert counted == pytest.approx(np.hypot(1.5, np.std(pattern)), rel=0.05)
    assert "counts the fixed pattern" in output and "--offset-map" in output
    mapped, _ = read_noise(
        "--dark", str(tmp_path / "patterned.npy"), "--offset-map", str(tmp_path / "o.npy")
    )
    assert mapped == pytest.approx(1.5, rel=0.1)  # the map takes the pattern out
    plain_read, output = read_noise("--dark", str(plain))  # no pattern: as measured
    assert plain_read == pytest.approx(1.5, rel=0.1) and "counts the fixed pattern" not in output
    # hot pixels and smooth shading are no pattern from pixel to pixel (a reviewer's
    # probe: 3 hot pixels read as a pattern of 10.8 ADU by the frames' plain spread)
    shaded = np.load(plain).astype(np.float64)
    shaded += 0.1 * np.arange(48)[None, None, :]  # a gradient of 0.1 ADU a pixel
    shaded[:, [5, 20, 40], [7, 30, 11]] += 300.0  # three hot pixels
    np.save(tmp_path / "shaded.npy", np.rint(shaded).astype(np.uint16))
    shaded_read, output = read_noise("--dark", str(tmp_path / "shaded.npy"))
    assert shaded_read == pytest.approx(1.5, rel=0.1) and "counts the fixed pattern" not in output
    # a pattern of whole columns (column amplifiers) is one too, seen at 3/4 of its variance
    columns = np.load(plain).astype(np.float64) + rng.normal(0.0, 3.0, 48)[None, None, :]
    np.save(tmp_path / "columns.npy", np.rint(columns).astype(np.uint16))
    column_read, output = read_noise("--dark", str(tmp_path / "columns.npy"))
    assert column_read > 2.5 and "counts the fixed pattern" in output


def test_calibrate_refuses_a_gain_that_is_not_positive(tmp_path: Path):
    _, dark = _recordings(tmp_path)
    for gain in ("0", "-1", "nan", "inf"):
        result = CliRunner().invoke(app, ["calibrate", str(dark), "--gain", gain])
        assert result.exit_code == 2 and "expected --gain > 0" in result.output


def test_calibrate_refuses_an_offset_that_is_not_finite(tmp_path: Path):
    """``--offset nan`` printed ``offset = nan``, a camera that serve then refused."""
    flat, _ = _recordings(tmp_path)
    for offset in ("nan", "inf", "-inf"):
        result = CliRunner().invoke(app, ["calibrate", str(flat), "--offset", offset])
        assert result.exit_code == 2 and "expected a finite --offset" in result.output


def test_the_offset_map_never_overwrites_a_recording_and_replaces_a_file_only_with_force(
    tmp_path: Path,
):
    """``--offset-map`` naming STACK or the dark frames replaced the recording with a map;
    a file already there was replaced unasked."""
    flat, dark = _recordings(tmp_path)
    before = {path: path.read_bytes() for path in (flat, dark)}
    for target in (flat, dark):
        for force in ([], ["--force"]):
            args = ["calibrate", str(flat), "--dark", str(dark), "--offset-map", str(target)]
            result = CliRunner().invoke(app, [*args, *force])
            text = " ".join(result.output.split())
            assert result.exit_code == 2 and "which calibrate reads" in text, text
    assert {path: path.read_bytes() for path in (flat, dark)} == before
    there = tmp_path / "offset.npy"
    np.save(there, np.zeros(3))
    args = ["calibrate", str(flat), "--dark", str(dark), "--offset-map", str(there)]
    kept = CliRunner().invoke(app, args)
    assert kept.exit_code == 2 and "give --force" in " ".join(kept.output.split())
    assert np.load(there).shape == (3,)
    replaced = CliRunner().invoke(app, [*args, "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert np.load(there).shape == (48, 48)


def test_calibrate_says_which_file_holds_too_few_dark_frames(tmp_path: Path):
    flat, dark = _recordings(tmp_path)
    one = tmp_path / "one_dark.npy"
    np.save(one, np.load(dark)[:1])
    result = CliRunner().invoke(app, ["calibrate", str(flat), "--dark", str(one)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and f"at least 2 dark frames in {one}" in text, text


def test_with_a_known_gain_a_flat_series_is_not_taken_for_dark_frames(tmp_path: Path):
    flat, dark = _recordings(tmp_path)
    refused = CliRunner().invoke(app, ["calibrate", str(flat), "--gain", "2"])
    assert refused.exit_code == 2 and "a flat-field series?" in " ".join(refused.output.split())
    taken = CliRunner().invoke(app, ["calibrate", str(dark), "--gain", "2"])
    assert taken.exit_code == 0, taken.output


def test_a_lit_scene_given_as_dark_frames_is_warned_of(tmp_path: Path):
    """A still scene's frames keep their mean from frame to frame, so the flat-series
    check lets them through; their noise grows with the level as light's does. Taken for
    dark frames, they gave the scene's offset and read noise without a word (a new
    user's trial, 2026-12-07: offset 102.9, read noise 2.39 for 100 and 1.8)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:48, 0:48]  # the frame shape of _recordings'
    scene = 2 + 18 * np.exp(-((y - 24) ** 2 + (x - 16) ** 2) / 150.0)  # 2-20 photons
    frames = 100 + 0.8 * rng.poisson(scene, (24, 48, 48)) + rng.normal(0, 1.8, (24, 48, 48))
    np.save(tmp_path / "scene.npy", np.rint(frames).astype(np.uint16))
    _recordings(tmp_path)  # flat.npy and dark.npy
    for args, lit in (
        (["scene.npy", "--gain", "0.8"], "scene.npy"),
        (["flat.npy", "--dark", "scene.npy"], "scene.npy"),
        (["flat.npy", "--dark", "dark.npy"], None),
        (["dark.npy", "--gain", "2"], None),
    ):
        result = CliRunner().invoke(
            app, ["calibrate", *[str(tmp_path / a) if a.endswith(".npy") else a for a in args]]
        )
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        if lit is None:
            assert "warning" not in said, said
        else:
            assert f"warning: {tmp_path / lit}: their noise grows with their level" in said
            assert "are they lit (shutter open)?" in said


def test_hot_pixels_in_dark_frames_are_no_light():
    """Dark current's shot noise makes a hot pixel's noise grow with its level as light's
    does: 60 hot pixels of 20 e- in 512² dark frames were warned of as lit (a reviewer's
    probe). They stand alone, and are left out of the test; a lit scene is still found."""
    from exporter.noise import light_in

    rng = np.random.default_rng(0)
    for share, electrons in ((0.0002, 20), (0.01, 200), (0.003, 1000)):
        dark = np.zeros((256, 256))
        dark[rng.random((256, 256)) < share] = electrons
        frames = 100 + 2 * rng.poisson(np.broadcast_to(dark, (20, 256, 256)))
        frames = np.rint(frames + rng.normal(0, 2, frames.shape)).astype(np.uint16)
        assert light_in(frames) is None, (share, electrons)
    y, x = np.mgrid[0:256, 0:256]
    scene = 2 + 18 * np.exp(-((y - 128) ** 2 + (x - 90) ** 2) / 3000.0)
    lit = 100 + 2 * rng.poisson(np.broadcast_to(scene, (20, 256, 256)))
    assert light_in(np.rint(lit + rng.normal(0, 2, lit.shape)).astype(np.uint16)) is not None


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.full((6, 32, 32), 65535, np.uint16), "read 65535, the top of a 16-bit camera"),
        (np.full((6, 32, 32), 4095, np.uint16), "read 4095, the top of a 12-bit camera"),
        (np.full((6, 32, 32), 100, np.uint16), "do not vary from frame to frame"),
        (np.zeros((6, 32, 32), np.uint16), "do not vary from frame to frame"),
    ],
)
def test_calibrate_refuses_dark_frames_that_cannot_give_a_read_noise(
    tmp_path: Path, frames: np.ndarray, message: str
):
    """Saturated or constant frames gave offset 65535 / read noise 0 as a camera."""
    rng = np.random.default_rng(1)
    if frames.max() == 4095:  # mostly saturated, with some noise below the top
        frames = np.minimum(frames - rng.integers(0, 2, frames.shape), 4095).astype(np.uint16)
    np.save(tmp_path / "bad.npy", frames)
    for args in (["--gain", "0.5"], ["--dark", str(tmp_path / "bad.npy")]):
        stack = str(tmp_path / "bad.npy")
        if args[0] == "--dark":  # a flat series of the dark frames' shape
            crop = np.load(_recordings(tmp_path)[0])[:, : frames.shape[1], : frames.shape[2]]
            np.save(tmp_path / "flat_crop.npy", crop)
            stack = str(tmp_path / "flat_crop.npy")
        result = CliRunner().invoke(app, ["calibrate", stack, *args])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())


def test_calibrate_refuses_an_offset_map_name_without_npy(tmp_path: Path):
    """``--offset-map adir`` reported writing ``adir`` while np.save wrote ``adir.npy``."""
    flat, dark = _recordings(tmp_path)
    for name in ("adir", "map.txt"):
        result = CliRunner().invoke(
            app, ["calibrate", str(flat), "--dark", str(dark), "--offset-map", str(tmp_path / name)]
        )
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and "expected --offset-map to name a .npy file" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dark.npy", "flat.npy"]


def test_calibrate_refuses_dark_frames_of_another_shape(tmp_path: Path):
    flat, _ = _recordings(tmp_path)
    small = tmp_path / "small.npy"
    np.save(small, np.full((8, 32, 32), 100, np.uint16))
    result = CliRunner().invoke(app, ["calibrate", str(flat), "--dark", str(small)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "expected dark frames of STACK's frame shape 48x48, got 32x32" in text
