"""Every committed recipe loads as a training config, and its model agrees with its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.model import PRESETS, build_model, receptive_field
from exporter.train_config import load_train_config

RECIPES = sorted((Path(__file__).parents[2] / "exporter" / "recipes").glob("*.toml"))


def test_the_recipes_are_found():
    assert {"na-lite", "na-temporal", "na-large"} <= {path.stem for path in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_each_recipe_loads_with_its_output_folder_beside_the_project(recipe: Path):
    config = load_train_config(recipe)
    assert config.preset in PRESETS
    assert config.out_dir is not None and "runs" in Path(config.out_dir).parts


def test_the_gpu_recipe_is_the_larger_noise_adaptive_spatial_model():
    config = load_train_config(RECIPES[[p.stem for p in RECIPES].index("na-large")])
    spec = config.model_spec()
    assert config.device == "cuda" and spec.frames == 1 and spec.noise_map
    assert (spec.depth, spec.width) == (17, 64)
    lite = PRESETS["na-lite"]
    assert spec.depth * spec.width**2 > 5 * lite.depth * lite.width**2
    model = build_model(config.model_spec())
    assert receptive_field(model) == 71
