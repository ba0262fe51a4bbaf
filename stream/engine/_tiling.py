"""Tile plans: split a frame into equal, overlapping tiles and blend them back.

The canonical output for a frame is *the model applied to the frame reflect-padded by
a border* ``b`` (and at the end up to the model's alignment), cropped by it. The border
is the model's receptive-field radius ``m``, capped near :data:`MAX_BORDER`: beyond it the
network's own zero padding stands in for the scene, as it did for every training patch,
and each reflected pixel costs a model pixel (a 25-px border made a 256 x 256 frame 43 %
more pixels to compute; see the constant for what the narrower one costs). Every path
reproduces the canonical output:

- a padded frame that fits one tile runs whole (no overlap cost, no blending);
- otherwise equal tiles are cut from the padded frame and batched into one run. A tile
  keeps the pixels that saw exactly the context they would have seen in the whole
  padded frame: ``m`` short of each of its edges inside the padded frame, and up to an
  edge that is the padded frame's own (the whole frame's zero padding is the tile's
  there). So tiled == whole up to floating-point reassociation inside the model. The
  kept regions overlap by at least ``overlap - 2m`` and are blended there with a smooth
  ramp; the weights are a partition of unity.

Weights are quantised to multiples of 2**-12 per axis, so the 2-D weights (products)
are exact in float32 and sum to exactly 1. Blending uses the running weighted mean
``acc += alpha * (tile - acc)`` with precomputed ``alpha = w_k / sum_{j<=k} w_j``: it
equals ``sum_k w_k * tile_k`` but is bit-exact where the tiles agree, so an identity
model reproduces its input exactly, tiled or not. Where no earlier tile covers a pixel
(most of each tile) ``alpha`` is 1 and the tile is simply copied; only the overlap
strips pay for the blend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError

F32 = NDArray[np.float32]

#: Pixels of core (non-overlap) per tile step in the default plan; see default_tile_overlap.
DEFAULT_TILE_CORE = 1024
#: Blend width beyond the discarded margin in the default plan.
DEFAULT_BLEND = 16
#: Widest reflected border around a frame (the model's receptive-field radius if less,
#: give or take the alignment: see :func:`border_for`). ``na-lite`` and ``na-temporal``
#: through the evaluation as served (16-frame 128 x 128 movies, 1-1000 photons): a 9-px
#: border gave the 25-px one's margins over the baselines within 0.01 dB in 23 of 24
#: cases on the independent and textures generators, but on the project's phantom, whose
#: cells the frame's edge cuts, ``na-lite`` lost 0.05-0.13 dB at 1-30 photons; 13 px
#: gave the 25-px margins there within 0.02 dB. An 8- or 16-px border, which moves the
#: frame by one pixel on the unshuffled body's 2 x 2 grid, moved margins by -0.14 to
#: +0.22 dB. With 13 px a 256 x 256 frame computes 282 x 282 pixels instead of 306 x 306
#: (15 % fewer), a 512 x 512 one 538 x 538 instead of 562 x 562.
MAX_BORDER = 12
#: Smallest raw ramp weight inside a kept region, so every kept pixel counts.
_EPS = 1e-3
#: Per-axis weights are multiples of 1/_QUANT (products stay exact in float32).
_QUANT = 4096


def border_for(margin: int, alignment: int = 1) -> int:
    """The reflected border of a model of receptive-field radius ``margin``: the margin,
    or if wider at most ``MAX_BORDER + alignment - 1`` px, as many fewer than the margin
    as keeps the frame where the margin put it on the model's alignment grid (the
    figures measured with the whole margin stand; see :data:`MAX_BORDER`)."""
    if margin <= MAX_BORDER:
        return margin
    return margin - (margin - MAX_BORDER) // alignment * alignment


def axis_padding(size: int, border: int, alignment: int = 1) -> tuple[int, int]:
    """Reflected pixels ``(before, after)`` one axis of ``size`` gets: ``border`` each side,
    and at the end as many more as make the padded size a multiple of ``alignment``."""
    return border, border + (-(size + 2 * border)) % alignment


def pad_canonical(planes: np.ndarray, margin: int, alignment: int = 1) -> np.ndarray:
    """``planes`` (..., H, W) reflect-padded as the engine pads a frame (the canonical
    output is the model on this, cropped by :func:`axis_padding`'s ``before``)."""
    b = border_for(margin, alignment)
    pads = [axis_padding(n, b, alignment) for n in planes.shape[-2:]]
    return np.pad(planes, [(0, 0)] * (planes.ndim - 2) + pads, mode="reflect")


@dataclass(frozen=True, eq=False)
class TilePlan:
    """How one frame shape is cut into tiles. Immutable and shared (cached).

    Attributes
    ----------
    shape
        Frame shape ``(H, W)``.
    padded_shape
        ``(H + 2b, W + 2b)``, plus up to ``alignment - 1`` at the end of each axis.
    margin
        ``m``, the model's receptive-field radius: what a tile discards at an edge inside
        the padded frame.
    border
        ``b``, the reflected border: the frame's origin in padded coordinates.
    tile_shape
        ``(th, tw)``, the same for every tile so they batch into one run.
    starts_y, starts_x
        Tile origins per axis in padded coordinates; tile ``k`` is
        ``(starts_y[k // nx], starts_x[k % nx])`` (row-major).
    kept_y, kept_x
        Per tile row / column: the kept range ``(k0, k1)`` in tile coordinates.
    weights
        ``(n_tiles, th, tw)`` float32 blend weights in tile coordinates, zero outside
        the kept range; summed over tiles they are exactly 1 on the frame.
    alpha
        ``(n_tiles, th, tw)`` float32 running-mean coefficients, used over the kept
        range by :func:`blend_tiles` (zero outside it).
    core_y, core_x
        Per tile row / column: offset into the kept range where the previous tile row
        / column stops covering. Kept pixels at or beyond both offsets are covered by no
        earlier tile (``alpha == 1``) and are copied instead of blended.
    """

    shape: tuple[int, int]
    padded_shape: tuple[int, int]
    margin: int
    border: int
    tile_shape: tuple[int, int]
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]
    kept_y: tuple[tuple[int, int], ...]
    kept_x: tuple[tuple[int, int], ...]
    weights: F32
    alpha: F32
    core_y: tuple[int, ...]
    core_x: tuple[int, ...]

    @property
    def n_tiles(self) -> int:
        return len(self.starts_y) * len(self.starts_x)

    @property
    def is_whole(self) -> bool:
        """True when the padded frame is the single tile (no gather, no blending)."""
        return self.tile_shape == self.padded_shape

    @property
    def pixels_computed(self) -> int:
        return self.n_tiles * self.tile_shape[0] * self.tile_shape[1]

    @property
    def overhead(self) -> float:
        """Pixels the model computes per output pixel (>= 1: padding plus overlap)."""
        return self.pixels_computed / (self.shape[0] * self.shape[1])

    def batch_shape(self, channels: int) -> tuple[int, int, int, int]:
        """The model input of one frame: ``(n_tiles, channels, th, tw)``."""
        return (self.n_tiles, channels, *self.tile_shape)

    def origins(self) -> list[tuple[int, int]]:
        """Tile origins ``(y, x)`` in padded coordinates, in batch (row-major) order."""
        return [(y, x) for y in self.starts_y for x in self.starts_x]


def default_tile_overlap(margin: int) -> tuple[int, int]:
    """Default ``(tile, overlap)`` for a model of receptive-field radius ``margin``.

    ``overlap = 2m + 16``: each tile discards ``m`` pixels per side and blends over the
    16 pixels beyond. ``tile = 1024 + overlap`` makes the tile *step* exactly 1024, so:
    frames up to ``tile - 2b`` run whole (1064 px for a radius of 25: no overlap cost),
    a 2048 x 2048 frame runs as
    2 x 2 tiles (about 11 % overhead) and 4096 x 4096 as 4 x 4. (``tile = 1024 + 2m``
    would leave a 2048-wide frame 16 pixels short of two tiles and cost a third.)
    Tiles of about a megapixel keep a GPU busy while bounding activation memory.
    """
    overlap = 2 * margin + DEFAULT_BLEND
    return DEFAULT_TILE_CORE + overlap, overlap


def check_tiling(tile: int, overlap: int, margin: int) -> None:
    """Raise ConfigError unless ``tile > overlap >= 2 * margin >= 0``."""
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    if overlap < 2 * margin:
        raise ConfigError(
            f"overlap must be at least twice the model's receptive-field radius "
            f"(2 x {margin} = {2 * margin}) so each tile can discard its unreliable border; "
            f"got overlap={overlap}"
        )
    if tile <= overlap:
        raise ConfigError(f"tile must be larger than overlap ({overlap}), got tile={tile}")


def _axis_starts(
    padded: int, tile: int, overlap: int, align: int = 1
) -> tuple[int, tuple[int, ...]]:
    """Tile size and evenly spread origins along one axis of a padded frame.

    With ``align`` > 1 the tile size and every origin are multiples of ``align`` (a
    model with a pixel-unshuffled body sees the same sampling grid in every tile); the
    padded frame must then be a multiple of ``align`` too (the plan pads it so).
    """
    t = min(tile - tile % align, padded)
    if t == padded:
        return t, (0,)
    step = (t - overlap) // align * align  # the largest aligned step that keeps the overlap
    if step < align:
        raise ConfigError(
            f"tile ({tile}) leaves no aligned step beyond the overlap ({overlap}) for a model "
            f"with alignment {align}; use a larger tile"
        )
    n = math.ceil((padded - t) / step) + 1
    span = (padded - t) // align
    # Integer round-half-up of i * span / (n - 1), in units of align: consecutive origins
    # differ by at most ceil(span / (n - 1)) units <= step, so kept regions always meet.
    starts = tuple(align * ((i * span * 2 + (n - 1)) // (2 * (n - 1))) for i in range(n))
    return t, starts


def _kept_ranges(
    padded: int, t: int, starts: tuple[int, ...], margin: int, pad: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """Per tile: the kept range ``(k0, k1)`` in tile coordinates (see the module doc).

    An edge inside the padded frame gives up ``margin``; an edge that is the padded
    frame's gives up only its padding (``pad``, before and after), where the whole frame
    has the same zero padding beyond it. Nothing outside the frame is kept.
    """
    before, after = pad
    end = padded - after  # the frame's end in padded coordinates
    ranges = []
    for s in starts:
        k0 = before if s == 0 else margin
        k1 = min(t - min(margin, after) if s + t == padded else t - margin, end - s)
        ranges.append((k0, max(k0, k1)))
    return tuple(ranges)


def _core_offsets(starts: tuple[int, ...], kept: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """Per tile: where, in kept coordinates, the previous tile's kept region ends."""
    later = (
        max(0, min(k1 - k0, s0 + e0 - (s1 + k0)))
        for (s0, (_, e0)), (s1, (k0, k1)) in pairwise(zip(starts, kept, strict=True))
    )
    return (0, *later)


def _axis_weights(
    padded: int, t: int, starts: tuple[int, ...], kept: tuple[tuple[int, int], ...], ramp: int
) -> list[np.ndarray]:
    """Per-tile 1-D weights (float64, multiples of 1/_QUANT) summing to 1 where kept."""
    x = np.arange(t, dtype=np.float64)
    glob = np.zeros((len(starts), padded))
    for i, (s, (k0, k1)) in enumerate(zip(starts, kept, strict=True)):
        raw = np.clip(np.minimum(x - k0 + 0.5, k1 - x - 0.5) / ramp, _EPS, 1.0)
        raw[:k0] = 0.0
        raw[k1:] = 0.0
        glob[i, s : s + t] = raw
    total = glob.sum(axis=0)
    inside = total > 0
    glob[:, inside] /= total[inside]
    # At least one quantum wherever a tile keeps pixels: the earliest tile covering a
    # pixel then has alpha exactly 1 there, which blend_tiles relies on.
    q = np.where(glob > 0, np.maximum(np.rint(glob * _QUANT), 1.0), 0.0)
    # Give each position's rounding residual to its heaviest tile: exact integer sums.
    resid = np.where(inside, _QUANT - q.sum(axis=0), 0.0)
    q[np.argmax(glob, axis=0), np.arange(padded)] += resid
    return [q[i, s : s + t] / _QUANT for i, s in enumerate(starts)]


@lru_cache(maxsize=32)
def plan_tiles(
    shape: tuple[int, int],
    tile: int,
    overlap: int,
    margin: int,
    alignment: int = 1,
    border: int | None = None,
) -> TilePlan:
    """Tile plan for a frame of ``shape`` (cached: computed once per configuration).

    ``border`` (default :func:`border_for` the margin, at most the margin) is reflected
    around the frame; with ``alignment`` > 1 the padded frame gets up to ``alignment -
    1`` more reflected rows and columns at its end, and tiles are cut on the aligned grid.

    Raises
    ------
    ConfigError
        If ``overlap < 2 * margin`` or ``tile <= overlap``, the border is not within
        ``[0, margin]``, or the shape is empty.
    """
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise ConfigError(f"frame shape must be at least 1 x 1, got {shape}")
    check_tiling(tile, overlap, margin)
    m, a = margin, alignment
    b = border_for(m, a) if border is None else border
    if not 0 <= b <= m:
        raise ConfigError(f"border must be within [0, margin = {m}], got {b}")
    pad_y, pad_x = axis_padding(h, b, a), axis_padding(w, b, a)
    ph, pw = h + sum(pad_y), w + sum(pad_x)
    ramp = max(1, overlap - 2 * m)
    th, starts_y = _axis_starts(ph, tile, overlap, a)
    tw, starts_x = _axis_starts(pw, tile, overlap, a)
    kept_y = _kept_ranges(ph, th, starts_y, m, pad_y)
    kept_x = _kept_ranges(pw, tw, starts_x, m, pad_x)
    wy = _axis_weights(ph, th, starts_y, kept_y, ramp)
    wx = _axis_weights(pw, tw, starts_x, kept_x, ramp)

    n = len(starts_y) * len(starts_x)
    weights = np.empty((n, th, tw), dtype=np.float32)
    alpha = np.zeros((n, th, tw), dtype=np.float32)
    cumulative = np.zeros((ph, pw))
    k = 0
    for iy, sy in enumerate(starts_y):
        for ix, sx in enumerate(starts_x):
            w2 = np.outer(wy[iy], wx[ix])  # exact: products of 12-bit fractions
            weights[k] = w2
            region = cumulative[sy : sy + th, sx : sx + tw]
            region += w2
            np.divide(w2, region, out=alpha[k], where=region > 0)
            k += 1
    weights.flags.writeable = False
    alpha.flags.writeable = False
    return TilePlan(
        shape=(h, w),
        padded_shape=(ph, pw),
        margin=m,
        border=b,
        tile_shape=(th, tw),
        starts_y=starts_y,
        starts_x=starts_x,
        kept_y=kept_y,
        kept_x=kept_x,
        weights=weights,
        alpha=alpha,
        core_y=_core_offsets(starts_y, kept_y),
        core_x=_core_offsets(starts_x, kept_x),
    )


def reflect_fill_border(padded: F32, margin: int, shape: tuple[int, int] | None = None) -> None:
    """Fill the border of ``padded`` around its interior by reflection, in place.

    The interior is ``shape`` (default: ``margin`` short of every edge) at offset
    ``(margin, margin)``; the end borders may be wider than ``margin`` (an aligned plan).
    Same result as ``np.pad(interior, ..., mode="reflect")``. Uses slice copies (no
    allocation) unless the interior is not larger than a border, which only happens for
    tiny frames: those fall back to ``np.pad``.
    """
    m = margin
    ph, pw = padded.shape
    h, w = shape if shape is not None else (ph - 2 * m, pw - 2 * m)
    eh, ew = ph - h - m, pw - w - m  # end borders
    if m == 0 and eh == 0 and ew == 0:
        return
    if h <= max(m, eh) or w <= max(m, ew):
        interior = padded[m : m + h, m : m + w].copy()
        padded[...] = np.pad(interior, ((m, eh), (m, ew)), mode="reflect")
        return
    # Rows first (interior columns), then columns over all rows: corners follow.
    if m:
        padded[:m, m : m + w] = padded[2 * m : m : -1, m : m + w]
    if eh:
        padded[m + h :, m : m + w] = padded[m + h - 2 : m + h - 2 - eh : -1, m : m + w]
    if m:
        padded[:, :m] = padded[:, 2 * m : m : -1]
    if ew:
        padded[:, m + w :] = padded[:, m + w - 2 : m + w - 2 - ew : -1]


def reflect_pad_into(src: np.ndarray, dst: F32, margin: int) -> None:
    """Copy ``src`` (H, W) into the interior of ``dst`` and reflect-pad its border."""
    m = margin
    h, w = src.shape
    np.copyto(dst[m : m + h, m : m + w], src, casting="unsafe")
    reflect_fill_border(dst, m, (h, w))


def gather_tiles(padded: F32, plan: TilePlan, batch: F32) -> None:
    """Copy every tile of ``padded`` (C, PH, PW) into the preallocated ``batch`` [n, C, th, tw]."""
    th, tw = plan.tile_shape
    for k, (sy, sx) in enumerate(plan.origins()):
        np.copyto(batch[k], padded[:, sy : sy + th, sx : sx + tw])


def blend_tiles(batch_out: F32, plan: TilePlan, out: F32, scratch: F32 | None = None) -> None:
    """Blend model outputs [n, 1, th, tw] into ``out`` (H, W), keeping each tile's kept range.

    Every pixel of ``out`` is written (its prior contents do not matter). ``scratch`` is
    a float32 buffer of at least the tile size; pass one to avoid allocating
    (TileWorkspace does).
    """
    b = plan.border
    if scratch is None:
        scratch = np.empty(plan.tile_shape, dtype=np.float32)
    k = 0
    for sy, (y0, y1), r0 in zip(plan.starts_y, plan.kept_y, plan.core_y, strict=True):
        for sx, (x0, x1), c0 in zip(plan.starts_x, plan.kept_x, plan.core_x, strict=True):
            # The kept range [s + k0, s + k1) in padded coordinates is [s + k0 - b,
            # s + k1 - b) in out: plans keep nothing outside the frame.
            oy, ox = sy + y0 - b, sx + x0 - b
            rh, rw = y1 - y0, x1 - x0
            acc = out[oy : oy + rh, ox : ox + rw]
            tile = batch_out[k, 0, y0 : y0 + rh, x0 : x0 + rw]
            alpha = plan.alpha[k, y0 : y0 + rh, x0 : x0 + rw]
            # Core: no earlier tile covers it (alpha == 1), so copy. The earliest tile
            # covering any pixel has it in its core, so the strips below always blend
            # into written values.
            np.copyto(acc[r0:, c0:], tile[r0:, c0:])
            for strip in ((slice(0, r0), slice(0, rw)), (slice(r0, rh), slice(0, c0))):
                a = acc[strip]
                s = scratch[: a.shape[0], : a.shape[1]]
                np.subtract(tile[strip], a, out=s)  # acc += alpha * (tile - acc)
                np.multiply(s, alpha[strip], out=s)
                np.add(a, s, out=a)
            k += 1


class TileWorkspace:
    """Every buffer one frame shape needs, allocated once and reused for each frame.

    ``channels`` input planes (frames, noise map) share the plan. For a whole-frame plan
    the padded buffer *is* the single batch entry, so nothing is gathered and the output
    is a crop. Not thread-safe: one frame at a time.
    """

    def __init__(self, plan: TilePlan, channels: int = 1) -> None:
        self.plan = plan
        n, (th, tw) = plan.n_tiles, plan.tile_shape
        b, (h, w) = plan.border, plan.shape
        self.batch_in: F32 = np.zeros((n, channels, th, tw), dtype=np.float32)
        self.batch_out: F32 = np.zeros((n, 1, th, tw), dtype=np.float32)
        if plan.is_whole:
            self.padded: F32 = self.batch_in[0]
            self._scratch: F32 | None = None
        else:
            self.padded = np.zeros((channels, *plan.padded_shape), dtype=np.float32)
            self._scratch = np.empty((th, tw), dtype=np.float32)
        #: Where each (normalised) input plane goes; then call :meth:`prepare`.
        self.interiors: list[F32] = [self.padded[c, b : b + h, b : b + w] for c in range(channels)]
        #: The first plane's interior (one-channel models).
        self.interior: F32 = self.interiors[0]
        self._crop = (0, 0, slice(b, b + h), slice(b, b + w))

    def prepare(self) -> None:
        """Reflect-pad the filled interiors and gather tiles into ``batch_in``."""
        for plane in self.padded:
            reflect_fill_border(plane, self.plan.border, self.plan.shape)
        if not self.plan.is_whole:
            gather_tiles(self.padded, self.plan, self.batch_in)

    def blend(self, out: F32) -> None:
        """Write the frame from ``batch_out`` into ``out`` (H, W) float32."""
        if self.plan.is_whole:
            np.copyto(out, self.batch_out[self._crop])
        else:
            blend_tiles(self.batch_out, self.plan, out, self._scratch)
