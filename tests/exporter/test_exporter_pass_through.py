"""``deepdenoise pass-through``: the band of very bright frames, measured and written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stream.cli import app
from stream.engine import Engine


@pytest.fixture(scope="module")
def spatial_adaptive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.simple_models import make_conv_stack

    path = tmp_path_factory.mktemp("pass_through") / "spatial.onnx"
    return make_conv_stack(
        path, layers=2, channels=8, seed=3, architecture="adaptive", frames=1,
        noise_map=True, normalization="adaptive", alignment=2,
    )  # fmt: skip


def test_the_blend_follows_the_band() -> None:
    from exporter.pass_through import blend

    np.testing.assert_allclose(
        blend(np.array([10.0, 50.0, 100.0, 400.0]), 50.0, 200.0), [0, 0, 0.5, 1]
    )


def test_measure_fits_a_band_and_tabulates_the_scenes(spatial_adaptive: Path) -> None:
    from exporter.pass_through import EDGES, describe, measure

    found = measure(spatial_adaptive, samples=60, patch=32)
    assert found.scenes == 60 and found.low in {round(e, 1) for e in EDGES}
    assert 0 < found.low < found.high
    assert len(found.table) == 10 and all(lo <= hi for lo, hi, _, _ in found.table)
    text = describe(found)
    assert f"from a peak SNR of {found.low:g}" in text and text.count("\n|") == 12


def test_a_temporal_model_is_not_measured(conv_model_adaptive: Path) -> None:
    from exporter.pass_through import measure
    from stream import ModelError

    with pytest.raises(ModelError, match=r"expected a spatial noise-adaptive model.*2 frame"):
        measure(conv_model_adaptive, samples=50)


def test_the_command_writes_a_given_band_and_refuses_a_bad_one(
    spatial_adaptive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "banded.onnx"
    result = CliRunner().invoke(
        app, ["pass-through", str(spatial_adaptive), "-o", str(out), "--band", "40:160"]
    )
    assert result.exit_code == 0, result.output
    with Engine(out, provider="cpu", warmup_shape=None) as engine:
        assert engine.metadata.pass_through_snr == [40.0, 160.0]
    for bad, says in (("160:40", "0 < LOW < HIGH"), ("forty", "LOW:HIGH")):
        result = CliRunner().invoke(
            app, ["pass-through", str(spatial_adaptive), "-o", str(out), "--band", bad]
        )
        assert result.exit_code != 0 and says in result.output, result.output


def test_a_band_for_a_fixed_normalisation_model_is_refused_in_words(tmp_path: Path) -> None:
    from exporter.simple_models import make_conv_stack

    fixed = make_conv_stack(
        tmp_path / "fixed.onnx", layers=2, channels=8, seed=3, frames=1, normalization="fixed"
    )
    out = tmp_path / "banded.onnx"
    result = CliRunner().invoke(app, ["pass-through", str(fixed), "-o", str(out), "--band", "9:20"])
    text = " ".join(result.output.split())
    assert result.exit_code != 0 and "expected a model with adaptive normalisation" in text
    assert "pydantic" not in text and not out.exists()


def _one_line(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_the_output_may_not_be_the_input_model(spatial_adaptive: Path, tmp_path: Path) -> None:
    """``pass-through M -o M`` rewrote its input in place (a shipped model too)."""
    import os
    import shutil

    model = tmp_path / "m.onnx"
    shutil.copyfile(spatial_adaptive, model)
    os.symlink(model, tmp_path / "link.onnx")
    before = model.read_bytes()
    for out in (model, tmp_path / "." / "m.onnx", tmp_path / "link.onnx"):
        result = CliRunner().invoke(
            app, ["pass-through", str(model), "-o", str(out), "--band", "40:160"]
        )
        text = _one_line(result.output)
        assert result.exit_code == 2 and "is the input model" in text, text
        assert "Traceback" not in text
    assert model.read_bytes() == before


def test_a_folder_as_output_is_one_line_saying_what_was_expected(
    spatial_adaptive: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["pass-through", str(spatial_adaptive), "-o", str(tmp_path), "--band", "40:160"]
    )
    text = _one_line(result.output)
    assert result.exit_code == 2 and "expected the ONNX file to write, got the folder" in text
    assert "Errno" not in text


def test_a_shipped_model_is_taken_by_name(tmp_path: Path) -> None:
    from stream.engine import shipped_model_path

    shipped = shipped_model_path("na-lite")
    before = shipped.stat().st_mtime_ns
    out = tmp_path / "banded.onnx"
    result = CliRunner().invoke(
        app, ["pass-through", "na-lite", "-o", str(out), "--band", "71:224"]
    )
    assert result.exit_code == 0, result.output
    with Engine(out, provider="cpu", warmup_shape=None) as engine:
        assert engine.metadata.pass_through_snr == [71.0, 224.0]
    assert shipped.stat().st_mtime_ns == before
