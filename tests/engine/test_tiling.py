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
    border_for,
    default_tile_overlap,
    pad_canonical,
    plan_tiles,
    reflect_pad_into,
)

PROPERTY = settings(max_examples=100, deadline=None)


Config = tuple[tuple[int, int], int, int, int, int, int]


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """(shape, tile, overlap, margin, alignment, border), from 1 x 1 frames to several
    tiles per axis, with a reflected border from none to the whole margin."""
    margin = draw(st.integers(0, 6))
    alignment = draw(st.sampled_from([1, 1, 2, 4]))
    overlap = 2 * margin + draw(st.integers(0, 12))
    tile = overlap + 2 * alignment + draw(st.integers(0, 48))  # an aligned step fits
    shape = (draw(st.integers(1, 120)), draw(st.integers(1, 120)))
    return shape, tile, overlap, margin, alignment, draw(st.integers(0, margin))


def run_tiled(frame: np.ndarray, plan: TilePlan, model) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The engine's path with a numpy stand-in for ORT."""
    ws = TileWorkspace(plan)
    np.copyto(ws.interior, frame)
    ws.prepare()
    ws.batch_out[...] = model(ws.batch_in)
    out = np.full(plan.shape, np.nan, dtype=np.float32)  # blend must overwrite everything
    ws.blend(out)
    return out


def run_canonical(frame: np.ndarray, border: int, model, alignment: int = 1) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Definition of the right answer: the model on the frame reflect-padded by the
    border (and at the end up to the alignment), cropped."""
    h, w = frame.shape
    pads = [(border, border + (-(n + 2 * border)) % alignment) for n in (h, w)]
    padded = np.pad(frame, pads, mode="reflect")
    out = model(padded[None, None])[0, 0]
    return out[border : border + h, border : border + w]


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
    ((1056, 1056), *default_tile_overlap(20), 20, (1, 1), True),  # + 2 x 12 border = 1080
    ((1057, 1056), *default_tile_overlap(20), 20, (2, 1), False),
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
    b = border_for(margin)
    assert plan.border == b == min(margin, 12)
    assert plan.padded_shape == (shape[0] + 2 * b, shape[1] + 2 * b)
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
def test_weights_are_a_partition_of_unity(config: Config) -> None:
    plan = plan_tiles(*config)
    th, tw = plan.tile_shape
    total = np.zeros(plan.padded_shape, dtype=np.float32)
    for k, (sy, sx) in enumerate(plan.origins()):
        total[sy : sy + th, sx : sx + tw] += plan.weights[k]
    b, (h, w) = plan.border, plan.shape
    assert (total[b : b + h, b : b + w] == 1).all()  # exactly: dyadic weights
    total[b : b + h, b : b + w] = 0
    assert (total == 0).all()  # nothing from the reflected border or the discarded margins
    assert plan.padded_shape[0] % config[4] == 0 and plan.padded_shape[1] % config[4] == 0


@PROPERTY
@given(configs())
def test_core_regions_are_first_cover(config: Config) -> None:
    """blend_tiles copies the core: valid only if alpha is exactly 1 there."""
    plan = plan_tiles(*config)
    k = 0
    for (y0, y1), r0 in zip(plan.kept_y, plan.core_y, strict=True):
        for (x0, x1), c0 in zip(plan.kept_x, plan.core_x, strict=True):
            kept = plan.alpha[k, y0:y1, x0:x1]
            assert (kept[r0:, c0:] == 1).all()
            assert (kept > 0).all()  # every kept pixel contributes
            k += 1


@PROPERTY
@given(configs(), st.integers(0, 2**32 - 1))
def test_identity_reproduces_input_exactly(config: Config, seed: int) -> None:
    plan = plan_tiles(*config)
    rng = np.random.default_rng(seed)
    frame = (rng.standard_normal(plan.shape) * 10.0 ** rng.integers(-3, 6)).astype(np.float32)
    np.testing.assert_array_equal(run_tiled(frame, plan, lambda b: b), frame)


@PROPERTY
@given(configs(), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_conv_tiled_equals_whole(config: Config, radius: int, seed: int) -> None:
    shape, tile, overlap, margin, alignment, border = config
    radius = min(radius, margin)
    plan = plan_tiles(shape, tile, overlap, margin, alignment, border)
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((2 * radius + 1, 2 * radius + 1))
    frame = rng.uniform(0, 1000, shape).astype(np.float32)
    model = zero_padded_conv(kernel)
    np.testing.assert_allclose(
        run_tiled(frame, plan, model),
        run_canonical(frame, border, model, alignment),
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


def test_border_narrower_than_margin_keeps_the_frame_edge() -> None:
    """With a border under the margin, an edge tile keeps pixels inside the margin (the
    padded frame's own edge is its edge), and what it gives there is the whole frame's
    answer: a kernel as wide as the margin, whose output at the frame's edge depends on
    the zero padding beyond the border."""
    plan = plan_tiles((70, 61), 30, 12, 4, 2, 1)
    assert plan.n_tiles > 1 and plan.kept_y[0] == (1, 26) and plan.kept_x[0] == (1, 26)
    frame = np.random.default_rng(2).uniform(0, 1000, plan.shape).astype(np.float32)
    model = zero_padded_conv(np.random.default_rng(3).standard_normal((9, 9)))
    want = run_canonical(frame, 1, model, 2)
    np.testing.assert_allclose(run_tiled(frame, plan, model), want, rtol=1e-5, atol=1e-2)
    assert not np.allclose(want, run_canonical(frame, 4, model), rtol=1e-3)  # border matters


@pytest.mark.parametrize(
    ("margin", "border"), [(0, 0), (3, 3), (12, 12), (13, 13), (24, 12), (25, 13)]
)
def test_canonical_padding(margin: int, border: int) -> None:
    """pad_canonical is the padding the engine's plans use (the export's reference)."""
    planes = np.random.default_rng(4).random((2, 37, 52), dtype=np.float32)
    padded = pad_canonical(planes, margin, 2)
    plan = plan_tiles(planes.shape[1:], 4096, 2 * margin, margin, 2)
    assert plan.border == border and padded.shape[1:] == plan.padded_shape
    b = border
    np.testing.assert_array_equal(padded[:, b : b + 37, b : b + 52], planes)
