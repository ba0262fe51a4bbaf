"""A temporal model's previous frames moved with the scene, when it drifts or jitters.

A temporal model mixes its previous frames into the current one pixel by pixel: a scene
that moved by a pixel or two between frames (an awake animal's brain, a stage that
drifts) is blurred by them, and under too little light the pair tests of
:func:`stream.camera.scene_moved` do not see such a move. Held-out probes (2026-12-05,
scenes of their own at 1-3 photons per pixel, 128 x 128) measured ``na-temporal``
1-4.8 dB under a tuned Gaussian on the frames of beads jittering 1-2 px, and 2-4.4 dB
under it over a texture drifting 1.4-2 px a frame, where the spatial ``na-lite`` was
above it.

:func:`scene_shift` finds the shift between a frame and a reference (the series' running
mean, or the frame before) by matching both after a Gaussian blur (:data:`SMOOTHING`:
at a photon per pixel the shot noise hides the scene pixel by pixel, not a few pixels
wide), and keeps it only when the frames say so beyond doubt (:data:`SURE`): a ring
moved on noise would blur a still scene, the temporal model's best case.
:func:`lined_up` moves a frame by whole pixels. The caller
(:class:`stream.engine.SeriesContext`) keeps each previous frame as it came, with where
the scene stood in it, and gives the model each one moved to where the scene stands
now: the whole-pixel rounding is then of the total shift, not summed frame by frame.
"""

from __future__ import annotations

import functools

import numpy as np

#: Gaussian blur (px) before correlating. At 1 photon per pixel (one-off probe, 128 x 128,
#: 16-frame movies of cells, beads, gravel and grass, 3 seeds) the correlation's peak
#: was the true shift in 13 of 15 pairs of a drifting texture at 3 photons with 2 px, in
#: 9 of 15 with 1 px.
SMOOTHING = 2.0
#: The largest shift (px, along each axis) looked for between two frames: larger moves
#: are a new scene's, which :func:`stream.camera.scene_moved` empties the ring for.
MAX_SHIFT = 8
#: Central window (px) correlated: a fixed cost at any frame size.
WINDOW = 256
#: Blocks (px) over which the per-pixel gain of the shift is averaged for its t statistic:
#: wider than the blur, so that they are nearly independent.
T_BLOCK = 8
#: The shift is kept when the blocks say so by at least this many standard errors in one
#: of two tests of the squared difference it removes, block by block: its mean (a t
#: statistic), or the share of blocks where it removes any (a sign test, which a few
#: edges that carry most of a texture's difference do not sway). Why (the same
#: probe, some 400 still pairs from 7 scenes at 0.3-3 photons per pixel): the best
#: non-zero shift of a still pair, the shot noise alone, reached 2.5 in either test
#: (600 more of the `cell` texture at 1 photon: 3.8; one of 1,200 at 3 photons passed
#: 4); jittering beads gave 3.4-5.4 and more at 1-3 photons, cells 2.4-6.1 at 1-3
#: photons (most of them over 4), a texture drifting 2 px a frame at 30 photons 3.7-6.9
#: by the sign and 2.5-3.5 by the mean. Against a running mean, whose noise is a
#: fraction of a frame's, still scenes gave no shift at all (128-frame movies at 0.3-1
#: photons).
SURE = 4.0
#: ... and the other test at least this. Why: the sign test alone passed 4 on a still
#: scene (the project's phantom at 1 photon per pixel against a running mean of 4
#: frames: signs 4.14, mean 1.34; the evaluation's movie 0.46 dB worse for it), where
#: the shifts of the probe's moving scenes pass both (beads 3.7-7.9 by either, a
#: texture drifting at 30 photons 2.5-3.5 by the mean, 3.7-6.9 by the sign).
ALSO_SURE = 2.0
#: Fewest blocks for a t statistic; a smaller frame is not searched.
MIN_BLOCKS = 16


def scene_shift(frame: np.ndarray, previous: np.ndarray) -> tuple[float, float] | None:
    """The shift ``(dy, dx)`` (px, sub-pixel) by which ``previous`` (a frame before, or a
    mean of them) moved lines it up with ``frame`` (its pixel ``(y, x)`` then shows at
    ``(y + dy, x + dx)``); None when the scene held still, when the frames do not show a
    shift beyond doubt (:data:`SURE`), and for frames too small or of another shape.
    Non-finite pixels take the window's median."""
    if frame.shape != previous.shape or frame.ndim != 2:
        return None
    window = _central(frame.shape)
    rows, columns = ((n - 2 * MAX_SHIFT) // T_BLOCK for n in frame[window].shape)
    if rows <= 0 or columns <= 0 or rows * columns < MIN_BLOCKS:
        return None
    a, b = _smoothed(frame[window]), _smoothed(previous[window])
    match = _match(a, b)
    offsets = np.r_[0 : MAX_SHIFT + 1, -MAX_SHIFT:0]
    near = match[np.ix_(offsets, offsets)]  # negative offsets wrap around
    row, column = np.unravel_index(int(np.argmax(near)), near.shape)
    dy, dx = int(offsets[row]), int(offsets[column])
    if (dy, dx) == (0, 0) or not _sure(*_surety(a, b, dy, dx)):
        return None
    return dy + _vertex(match, dy, dx, 0), dx + _vertex(match, dy, dx, 1)


def lined_up(image: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """``image`` moved by whole pixels ``shift = (dy, dx)`` (its pixel ``(y, x)`` to
    ``(y + dy, x + dx)``); where it does not reach, its nearest edge pixels repeated;
    itself when the shift is none."""
    dy, dx = shift
    if (dy, dx) == (0, 0):
        return image
    height, width = image.shape
    dy, dx = max(-height + 1, min(dy, height - 1)), max(-width + 1, min(dx, width - 1))
    kept = image[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
    return np.pad(kept, ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))), mode="edge")


def _central(shape: tuple[int, ...]) -> tuple[slice, ...]:
    starts = [max(0, (n - WINDOW) // 2) for n in shape]
    return tuple(slice(start, start + WINDOW) for start in starts)


def _smoothed(pixels: np.ndarray) -> np.ndarray:
    """A float32 copy less each row's mean, blurred (to 3 sigmas); non-finite pixels at
    the finite ones' median. Single precision: the blur and the transforms in half the
    time (a few ms a frame at 256 x 256 in all).

    Why the rows' means out: a CMOS camera's row offsets, new every frame, are the same
    along a row, so every block of a band of rows shares them, and the blocks' tests
    (:func:`_surety`) counted them as independent evidence (a reviewer's probe, still
    pairs of a texture at 3-10 photons per pixel with 3 counts rms of row offsets: 24-29
    of 100 read as shifted by 3-8 px, before the service levels the rows). A scene's
    structure along each row, which shows a shift either way, stays."""
    from scipy import ndimage  # only for a temporal model: the online half loads it lazily

    out = np.array(pixels, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = np.median(out[~bad]) if not bad.all() else 0.0
    out -= out.mean(axis=1, keepdims=True)  # each row's own offset out: CMOS banding
    out = ndimage.gaussian_filter(out, SMOOTHING, truncate=3.0)
    out -= out.mean(dtype=np.float64)
    return out


def _match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each shift ``d`` (circular index), minus the sum of squared differences of
    ``a`` and ``b`` moved by ``d`` over ``a``'s pixels at least :data:`MAX_SHIFT` from
    its edges (:func:`_inner_mask`) -- up to a constant --:
    ``2 sum a(y) b(y - d) - sum b(y - d)^2``. Over the inner pixels only, no shift up
    to :data:`MAX_SHIFT` wraps around the window (a plain circular correlation's wrapped
    edges pulled the peak a pixel off on a scene with a smooth background), and the
    second term keeps a bright patch from drawing the peak to itself."""
    from scipy import fft  # float32 transforms (numpy's are float64 only)

    kept, kept_spectrum = _inner_mask(a.shape)
    spectrum_b, spectrum_b2 = fft.rfft2(b), fft.rfft2(np.square(b))
    cross = fft.irfft2(fft.rfft2(a * kept) * np.conj(spectrum_b), s=a.shape)
    energy = fft.irfft2(kept_spectrum * np.conj(spectrum_b2), s=a.shape)
    return 2.0 * cross - energy


@functools.lru_cache(maxsize=8)
def _inner_mask(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The window's pixels at least :data:`MAX_SHIFT` from its edges (1, else 0), and
    the mask's spectrum: the same for every frame of a size, so made once per size."""
    from scipy import fft

    kept = np.zeros(shape, np.float32)
    kept[tuple(slice(MAX_SHIFT, n - MAX_SHIFT) for n in shape)] = 1.0
    kept.flags.writeable = False
    spectrum = fft.rfft2(kept)
    spectrum.flags.writeable = False
    return kept, spectrum


def _surety(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> tuple[float, float]:
    """How surely ``b`` moved by ``(dy, dx)`` matches ``a`` better than ``b`` as it is, in
    standard errors: the squared difference the shift removes, averaged over
    :data:`T_BLOCK` blocks of the window less :data:`MAX_SHIFT` at each side; its mean's
    t statistic and the sign test of its share of positive blocks."""
    height, width = a.shape
    rows, columns = slice(MAX_SHIFT, height - MAX_SHIFT), slice(MAX_SHIFT, width - MAX_SHIFT)
    moved = b[MAX_SHIFT - dy : height - MAX_SHIFT - dy, MAX_SHIFT - dx : width - MAX_SHIFT - dx]
    gain = np.square(a[rows, columns] - b[rows, columns]) - np.square(a[rows, columns] - moved)
    h, w = gain.shape[0] // T_BLOCK * T_BLOCK, gain.shape[1] // T_BLOCK * T_BLOCK
    blocks = gain[:h, :w].reshape(h // T_BLOCK, T_BLOCK, w // T_BLOCK, T_BLOCK).mean(axis=(1, 3))
    root_n = np.sqrt(blocks.size)
    signs = (np.count_nonzero(blocks > 0) / blocks.size - 0.5) * 2.0 * root_n
    spread = float(np.std(blocks, ddof=1))
    mean = float(np.mean(blocks)) / (spread / root_n) if spread > 0 else 0.0
    return mean, float(signs)


def _sure(mean: float, signs: float) -> bool:
    """Whether the two tests of :func:`_surety` say so beyond doubt: one at least
    :data:`SURE`, the other at least :data:`ALSO_SURE`."""
    return max(mean, signs) >= SURE and min(mean, signs) >= ALSO_SURE


def _vertex(match: np.ndarray, dy: int, dx: int, axis: int) -> float:
    """The sub-pixel offset of the match's peak along ``axis`` (:func:`_match`): the
    vertex of the parabola through the peak and its two neighbours (within half a
    pixel)."""
    height, width = match.shape
    step_y, step_x = (1, 0) if axis == 0 else (0, 1)
    peak = match[dy % height, dx % width]
    before = match[(dy - step_y) % height, (dx - step_x) % width]
    after = match[(dy + step_y) % height, (dx + step_x) % width]
    curvature = before - 2.0 * peak + after
    if curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))
