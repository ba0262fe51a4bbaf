"""Tile plans: odd-shape tables plus property tests of the tiled == whole contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import ConfigError
from stream.engine import (
    TilePlan,
    TileWorkspace,
    default_tile_overlap,
    plan_tiles,
    reflect_pad_into,
)

PROPERTY = settings(max_examples=100, deadline=None)


@st.composite
def configs(draw: st.DrawFn) -> tuple[tuple[int, int], int, int, int]:
    """(shape, tile, overlap, margin), from 1 x 1 frames to several tiles per axis."""
    margin = draw(st.integers(0, 6))
    overlap = 2 * margin + draw(st.integers(0, 12))
    tile = overlap + draw(st.integers(1, 48))
    shape = (draw(st.integers(1, 120)), draw(st.integers(1, 120)))
    return shape, tile, overlap, margin


def run_tiled(frame: np.ndarray, plan: TilePlan, model) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The engine's path with a numpy stand-in for ORT."""
    ws = TileWorkspace(plan)
    np.copyto(ws.interior, frame)
    ws.prepare()
    ws.batch_out[...] = model(ws.batch_in)
    out = np.full(plan.shape, np.nan, dtype=np.float32)  # blend must overwrite everything
    ws.blend(out)
    return out


def run_canonical(frame: np.ndarray, margin: int, model) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Definition of the right answer: model on the reflect-padded frame, cropped."""
    padded = np.pad(frame, margin, mode="reflect")
    out = model(padded[None, None])[0, 0]
    h, w = frame.shape
    return out[margin : margin + h, margin : margin + w]


def zero_padded_conv(kernel: np.ndarray):  # type: ignore[no-untyped-def]
    """A numpy 'model': same-size convolution, zero padding per image (like ONNX Conv)."""
    r = kernel.shape[0] // 2

    def model(batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[-2:]
        padded = np.pad(batch.astype(np.float64), ((0, 0), (0, 0), (r, r), (r, r)))
        out = np.zeros(batch.shape, dtype=np.float64)
        for dy in range(2 * r + 1):
            for dx in range(2 * r + 1):
                out += kernel[dy, dx] * padded[..., dy : dy + h, dx : dx + w]
        return out.astype(np.float32)

    return model


# -- tables ---------------------------------------------------------------------------

# shape, tile, overlap, margin -> tiles per axis (ny, nx), whole?
ODD_SHAPES = [
    ((1, 1), 64, 16, 4, (1, 1), True),
    ((1, 1), 8, 0, 0, (1, 1), True),
    ((3, 200), 64, 16, 4, (1, 4), False),  # padded 11 x 208: one row of tiles
    ((56, 56), 64, 16, 4, (1, 1), True),  # padded 64 x 64 fits exactly
    ((57, 56), 64, 16, 4, (2, 1), False),  # one pixel too tall
    ((100, 37), 64, 16, 4, (2, 1), False),
    ((200, 200), 64, 16, 4, (4, 4), False),
    ((57, 1000), 64, 8, 4, (2, 18), False),  # overlap == 2m: no blend band
    ((5, 7), 4, 2, 1, (3, 4), False),  # tiles smaller than the frame on both axes
    ((1040, 1040), *default_tile_overlap(20), 20, (1, 1), True),
    ((1041, 1040), *default_tile_overlap(20), 20, (2, 1), False),
    ((2048, 2048), *default_tile_overlap(20), 20, (2, 2), False),
    ((2304, 2304), *default_tile_overlap(1), 1, (3, 3), False),
    ((4096, 4096), *default_tile_overlap(20), 20, (4, 4), False),
]


@pytest.mark.parametrize(("shape", "tile", "overlap", "margin", "counts", "whole"), ODD_SHAPES)
def test_tile_counts(
    shape: tuple[int, int],
    tile: int,
    overlap: int,
    margin: int,
    counts: tuple[int, int],
    whole: bool,
) -> None:
    plan = plan_tiles(shape, tile, overlap, margin)
    assert (len(plan.starts_y), len(plan.starts_x)) == counts
    assert plan.n_tiles == counts[0] * counts[1]
    assert plan.is_whole is whole
    assert plan.padded_shape == (shape[0] + 2 * margin, shape[1] + 2 * margin)
    assert plan.weights.shape == (plan.n_tiles, *plan.tile_shape)
    for starts, size, t in zip(
        (plan.starts_y, plan.starts_x), plan.padded_shape, plan.tile_shape, strict=True
    ):
        assert t == min(tile, size)
        assert starts[0] == 0
        assert starts[-1] == size - t
        assert all(b - a <= t - overlap for a, b in itertools.pairwise(starts))
    assert plan.overhead == plan.pixels_computed / (shape[0] * shape[1])


def test_default_overhead_for_2048() -> None:
    plan = plan_tiles((2048, 2048), *default_tile_overlap(20), 20)
    assert plan.overhead < 1.15


def test_plans_are_cached_and_read_only() -> None:
    a = plan_tiles((300, 301), 64, 16, 4)
    assert plan_tiles((300, 301), 64, 16, 4) is a
    with pytest.raises(ValueError, match="read-only"):
        a.weights[0, 0, 0] = 1


@pytest.mark.parametrize(
    ("tile", "overlap", "margin", "match"),
    [
        (64, 7, 4, r"at least twice .* \(2 x 4 = 8\).*got overlap=7"),
        (16, 16, 4, r"tile must be larger than overlap \(16\), got tile=16"),
        (64, 16, -1, "margin must be >= 0"),
    ],
)
def test_invalid_tiling(tile: int, overlap: int, margin: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        plan_tiles((100, 100), tile, overlap, margin)


def test_empty_shape_rejected() -> None:
    with pytest.raises(ConfigError, match="at least 1 x 1"):
        plan_tiles((0, 5), 64, 16, 4)


def test_whole_plan_uses_padded_buffer_as_batch() -> None:
    ws = TileWorkspace(plan_tiles((30, 40), 64, 16, 4))
    assert ws.plan.is_whole
    assert np.shares_memory(ws.padded, ws.batch_in)


@pytest.mark.parametrize(
    ("shape", "margin"), [((1, 1), 3), ((3, 200), 4), ((4, 4), 4), ((5, 7), 4), ((9, 12), 3)]
)
def test_reflect_pad_matches_numpy(shape: tuple[int, int], margin: int) -> None:
    src = np.random.default_rng(0).random(shape, dtype=np.float32)
    dst = np.empty((shape[0] + 2 * margin, shape[1] + 2 * margin), dtype=np.float32)
    reflect_pad_into(src, dst, margin)
    np.testing.assert_array_equal(dst, np.pad(src, margin, mode="reflect"))


# -- properties -----------------------------------------------------------------------


@PROPERTY
@given(configs())
def test_weights_are_a_partition_of_unity(config: tuple[tuple[int, int], int, int, int]) -> None:
    plan = plan_tiles(*config)
    th, tw = plan.tile_shape
    total = np.zeros(plan.padded_shape, dtype=np.float32)
    for k, (sy, sx) in enumerate(plan.origins()):
        total[sy : sy + th, sx : sx + tw] += plan.weights[k]
    m, (h, w) = plan.margin, plan.shape
    assert (total[m : m + h, m : m + w] == 1).all()  # exactly: dyadic weights
    total[m : m + h, m : m + w] = 0
    assert (total == 0).all()  # nothing from the discarded margins


@PROPERTY
@given(configs())
def test_core_regions_are_first_cover(config: tuple[tuple[int, int], int, int, int]) -> None:
    """blend_tiles copies the core: valid only if alpha is exactly 1 there."""
    plan = plan_tiles(*config)
    k = 0
    for r0 in plan.core_y:
        for c0 in plan.core_x:
            assert (plan.alpha[k][r0:, c0:] == 1).all()
            assert (plan.alpha[k] > 0).all()  # every kept pixel contributes
            k += 1


@PROPERTY
@given(configs(), st.integers(0, 2**32 - 1))
def test_identity_reproduces_input_exactly(
    config: tuple[tuple[int, int], int, int, int], seed: int
) -> None:
    plan = plan_tiles(*config)
    rng = np.random.default_rng(seed)
    frame = (rng.standard_normal(plan.shape) * 10.0 ** rng.integers(-3, 6)).astype(np.float32)
    np.testing.assert_array_equal(run_tiled(frame, plan, lambda b: b), frame)


@PROPERTY
@given(configs(), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_conv_tiled_equals_whole(
    config: tuple[tuple[int, int], int, int, int], radius: int, seed: int
) -> None:
    shape, tile, overlap, margin = config
    radius = min(radius, margin)
    plan = plan_tiles(shape, tile, overlap, margin)
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((2 * radius + 1, 2 * radius + 1))
    frame = rng.uniform(0, 1000, shape).astype(np.float32)
    model = zero_padded_conv(kernel)
    np.testing.assert_allclose(
        run_tiled(frame, plan, model),
        run_canonical(frame, margin, model),
        rtol=1e-5,
        atol=1e-5 * 1000,
    )


def test_conv_with_too_small_margin_differs() -> None:
    """The test above can fail: a kernel wider than the margin breaks tiled == whole."""
    plan = plan_tiles((60, 60), 24, 8, 1)
    assert plan.n_tiles > 1
    frame = np.random.default_rng(1).uniform(0, 1000, plan.shape).astype(np.float32)
    model = zero_padded_conv(np.ones((5, 5)) / 25)  # radius 2 > margin 1
    assert not np.allclose(run_tiled(frame, plan, model), run_canonical(frame, 1, model), rtol=1e-5)
