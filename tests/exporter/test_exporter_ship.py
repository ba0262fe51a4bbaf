"""What ``deepdenoise ship`` writes on a model card about the run's budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from exporter.ship import run_summary


def test_a_resumed_runs_summary_takes_the_wall_time_of_all_sessions(tmp_path: Path):
    last_session = {"steps": 36000, "start_step": 32000, "seconds": 926.9, "steps_per_s": 4.33}
    last_session["best_step"] = 35000
    (tmp_path / "summary.json").write_text(json.dumps(last_session))
    assert run_summary(tmp_path) == last_session
    summary = run_summary(tmp_path, wall_hours=9.5)
    assert summary["seconds"] == pytest.approx(9.5 * 3600) and summary["steps_per_s"] is None
    assert summary["steps"] == 36000 and summary["best_step"] == 35000
    assert summary["start_step"] == 0  # the time is no longer that of the steps after a resume


def test_the_card_puts_bm3d_next_to_the_model_on_the_same_frames(tmp_path: Path):
    from exporter.ship import metrics_section

    def score(psnr: float, frames: int = 16) -> dict[str, object]:
        return {"psnr": psnr, "ssim": 0.5, "trace_r": None, "onset_mae_ms": None,
                "frames_scored": frames}  # fmt: skip

    scores = {"gaussian": score(20.0), "spatiotemporal": score(22.0), "m": score(21.0)}
    scores |= {"bm3d-vst": score(23.0, 2), "m@bm3d-frames": score(24.0, 2)}
    metrics = {"settings": {"shape": [8, 8], "frames": 16, "seed": 0}}
    metrics["results"] = [{"generator": "g", "photons": 3.0, "scores": scores}]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    rows = [line for line in metrics_section("m", path) if line.startswith("| g |")]
    assert [r.split(" | ")[2:4] for r in rows] == [
        ["gaussian", "20.00"],
        ["spatiotemporal", "22.00"],
        ["**m**", "21.00"],
        ["bm3d-vst (2 frames)", "23.00"],
        ["**m** (the same 2 frames)", "24.00"],
    ]


def test_the_card_of_a_continued_run_names_the_run_it_started_from(tmp_path: Path):
    import torch

    from exporter.ship import _continuation

    recipe = tmp_path / "recipes" / "r.toml"
    recipe.parent.mkdir()
    recipe.write_text('preset = "na-lite"\n')
    assert _continuation(recipe) == []
    recipe.write_text('preset = "na-lite"\ninit = "../first/last.pt"\n')
    assert "`../first/last.pt` (its last step)" in " ".join(_continuation(recipe))
    (tmp_path / "first").mkdir()
    torch.save({"step": 36000}, tmp_path / "first" / "last.pt")
    assert "`../first/last.pt` (step 36000)" in " ".join(_continuation(recipe))
    # an exported model as the start (a shipped file's copy): read as such, not unpickled
    (tmp_path / "first" / "shipped.onnx").write_bytes(b"not a checkpoint")
    recipe.write_text('preset = "na-lite"\ninit = "../first/shipped.onnx"\n')
    assert "the exported model `../first/shipped.onnx`" in " ".join(_continuation(recipe))


def test_a_failed_ship_leaves_the_package_as_it_was(tmp_path: Path):
    """Everything is made and read before the model is written: a missing recipe (read
    for the card) used to leave a new model beside a stale card."""
    from model_harness import tiny_temporal_config

    from exporter.ship import ship
    from exporter.train import train
    from stream import ConfigError

    run = tmp_path / "run"
    train(tiny_temporal_config(run, steps=2, val_every=2, ckpt_every=2), progress=False)
    models = tmp_path / "models"
    models.mkdir()
    (models / "x.onnx").write_bytes(b"the shipped model")
    (models / "x.md").write_text("its card")
    with pytest.raises(FileNotFoundError, match=r"no-recipe\.toml"):
        ship(run, "x", tmp_path / "no-recipe.toml", None, out_dir=models)
    assert (models / "x.onnx").read_bytes() == b"the shipped model"
    assert (models / "x.md").read_text() == "its card"
    with pytest.raises(ConfigError, match="expected --name of lowercase letters"):
        ship(run, "../escape", tmp_path / "no-recipe.toml", None, out_dir=models)
    assert sorted(p.name for p in models.iterdir()) == ["x.md", "x.onnx"]
