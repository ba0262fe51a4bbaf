"""Whether a frame and the one before are two looks at one still scene, each with noise
of its own: what a blend risk measured against the frame before rests on
(:meth:`stream.engine._series_blend.SeriesBlend._pair`). The tests: the tiles where the
scene held still (:func:`still_pixels`), a change beyond the noise over the pair
(:func:`changed_beyond_noise`), noise the two frames share (:func:`shared_noise`).
"""

from __future__ import annotations

import numpy as np

from ..camera import CameraModel, Spikes
from ._blend import block_sums

#: A dark frame is measured against the frame before (``SeriesBlend._pair``) only
#: if their difference's energy is at most this many times what the camera's noise alone
#: gives them, plus three of the gain's relative standard errors: a scene that moved or
#: changed between them biases the risk towards whatever is nearer the frame before --
#: towards a blur. Why (one-off probe, 2026-12-06, 128 x 128 scenes of their own at
#: 0.5-1 photon per pixel, read noise 0.05 e-, ``na-lite``): still pairs gave 0.94-1.07;
#: beads turning 1 degree a frame 2.4-3.0 (not seen by the other two tests; measured
#: anyway, the movie went from 1.8 dB over a tuned Gaussian to 0.4 under it), beads
#: jittering 0.7 px 1.3-4.8, a star field jittering 1 px 1.0-1.8; calcium cells firing
#: 0.99-1.04 at 1 photon. Below 1.5, the scenes with a drift of 0.3 px a frame (1.1-1.4)
#: or beads jittering 0.5 px at 0.5 photons (1.0-2.0) still gained from their pairs
#: (+0.14 and +2.2 dB).
PAIR_ENERGY = 1.5
#: ... and summed over blocks of these many pixels a side, against the pixels' own
#: differences, to the same bar. Why (a reviewer's probe, 2026-12-06: the evaluation's
#: ``fields``, a new scene every frame, at 0.5-1 photon per pixel on a photon counter):
#: pixel by pixel another scene's pair gave 1.05-1.12 -- under a photon per pixel a
#: scene's change is less than the shot noise --, and measured on it the risk chose the
#: heaviest blur, 1.7-3.0 dB under the code before. Summed, ``fields`` on a photon
#: counter, an EMCCD and a 0.5 e- camera at 0.5-1 photon gave 1.35-2.25 over 4 x 4 and
#: 1.98-5.33 over 8 x 8 pixels; still scenes (independent, textures, phantom) 0.87-1.08
#: and 0.75-1.24 (16 x 16: 0.61-1.40, too few blocks). Against the pixels' own
#: differences rather than the camera: a live estimate of a series whose every pair
#: moved knows its gain too little for that bar.
PAIR_BINS = (4, 8)
#: A pair whose pixel-scale power and whose noise the model took out are both over this
#: many times the noise in their difference is taken to share noise (:func:`shared_noise`)
#: and is not used. Why (one-off probe, 2026-12-06, 128 x 128 at a photon per pixel, read
#: noise 0.05 e-): still scenes of cells, calcium, nuclei, gravel and a retina gave the
#: pixel-scale ratio 0.97-1.05, a star field 1.14, beads 1.3; offsets fixed per pixel at
#: 0.3 / 0.5 e- rms 1.10 / 1.26 and 1 % of the pixels 5 e- warm 1.24. Measured on their
#: pairs anyway, the 0.5 e- pattern and the warm pixels came out 2.1 and 0.8 dB under the
#: code before (0.3 e-: 1.0 dB over it).
SHARED_LIMIT = 1.1
#: A pair is measured on its tiles of this many pixels a side where the scene held still
#: (:func:`still_pixels`) ...
STILL_TILE = 8
#: ... their difference's sum squared at most this many times their pixels' own squared
#: differences (chi-square with one degree of freedom for a still tile: 10.83 is its 0.999
#: quantile), ...
STILL_TILE_BAR = 10.83
#: ... if they are at least this share of its pixels read ...
STILL_SHARE = 0.5
#: ... and the mean of their ratios is at most this (about 1 for noise: what the bar lets
#: through of a change that is everywhere -- another scene under a photon per pixel --
#: raises it). Why (one-off probe, 2026-12-06, 128 x 128, ``na-lite``, no camera
#: configured): a two-photon calcium movie of its own (a PMT's pulse heights exponential,
#: cells firing with a probability of 0.15 a frame, 1-5 photons per pixel) had every
#: pair refused by the energy tests, so at 2-3 photons -- too dark for Stein's estimate
#: -- no frame was measured; the still tiles kept 85-96 % of the pixels, their mean ratio
#: 0.96-1.21, and the movie went from 0.50 / -0.01 dB over a truth-tuned Gaussian to 0.65
#: / 0.37 (a second scene: -0.04 / -0.02). The evaluation's ``fields`` on dark cameras
#: at 0.5-1 photon kept 54-98 % of their tiles at a mean ratio of 1.35-2.33; passed on
#: to the energy tests, the EMCCD's at 0.5 photons lost 0.38 dB.
STILL_MEAN = 1.3
#: A frame of fewer tiles than this (a 128 x 128 frame's) is measured whole: the mean of
#: few tiles' ratios spreads too far for that bar, and a risk on a few blocks of few
#: pixels each too. Why (a reviewer's count, 2026-12-06, still pairs of Poisson frames
#: at 0.5-2 photons): 16 x 16 px frames were refused 25-28 % of the time, 32 x 32
#: 16-18 %, 64 x 64 4.5-5.6 %, 128 x 128 none; with the bar widened by the tiles' count,
#: the evaluation's ``fields`` and phantom at 64 x 64 on the dark cameras came out
#: -0.30 to +0.39 dB against the frame-wide tests, -0.17 dB summed over 12 cases.
STILL_MIN_TILES = 256


def still_pixels(scene: np.ndarray, before: np.ndarray, read: np.ndarray) -> np.ndarray | None:
    """The pair's ``read`` pixels in the tiles where its scene held still (``read``
    itself where every tile did), or None where too few did (:data:`STILL_SHARE`) or the
    tiles kept do not look still (:data:`STILL_MEAN`); a frame of fewer than
    :data:`STILL_MIN_TILES` tiles is all kept. A tile (:data:`STILL_TILE` px a side)
    changed where its difference's sum, squared, is over :data:`STILL_TILE_BAR` times its
    pixels' own squared differences -- for a still tile and noise of each pixel's own,
    that ratio is chi-square with one degree of freedom, whatever the camera --; the
    tiles beside a changed one are left out too, since a change's edge spills into them
    under the bar."""
    side = STILL_TILE
    h, w = scene.shape
    rows, columns = -(-h // side), -(-w // side)  # a partial tile at an edge counts too
    if rows * columns < STILL_MIN_TILES:
        return read  # measured whole, as the frame-wide tests say
    difference = np.zeros((rows * side, columns * side))
    difference[:h, :w] = np.where(read, np.subtract(scene, before, dtype=np.float64), 0.0)
    sums = _block_sums(difference, side)
    own = _block_sums(np.square(difference, out=difference), side)
    ratio = np.divide(sums * sums, own, out=np.zeros_like(own), where=own > 0)
    changed = np.pad(ratio > STILL_TILE_BAR, 1)
    changed = (
        changed[1:-1, 1:-1] | changed[:-2, 1:-1] | changed[2:, 1:-1] | changed[1:-1, :-2]
    ) | changed[1:-1, 2:]
    kept = ~changed & (own > 0)
    if kept.any() and float(np.mean(ratio[kept])) > STILL_MEAN:
        return None
    if not changed.any():
        return read
    still = read & np.repeat(np.repeat(~changed, side, axis=0), side, axis=1)[:h, :w]
    if np.count_nonzero(still) < STILL_SHARE * np.count_nonzero(read):
        return None
    return still


def as_if_all_read(
    risks: np.ndarray,
    read: np.ndarray,
    still: np.ndarray,
    blocks: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Risks by block summed over the ``still`` pixels, scaled to all the ``read`` ones:
    each block's by its read pixels over its still ones, and the blocks mostly left out
    (under a quarter of their pixels still) dropped, the rest scaled to the frame's
    count of blocks -- so a frame whose cells fired weighs in the series' risks as a
    still one does. Unchanged where every read pixel is still."""
    if still is read:
        return risks
    whole = block_sums(read.astype(np.float32), blocks)
    part = block_sums(still.astype(np.float32), blocks)
    used = part >= 0.25 * whole  # a block with no pixel read keeps its row of zeros
    scale = np.divide(whole, part, out=np.ones_like(whole), where=part > 0)[used]
    return risks[used] * (scale * (used.size / np.count_nonzero(used)))[:, None]


def changed_beyond_noise(
    scene: np.ndarray,
    before: np.ndarray,
    read: np.ndarray,
    camera: CameraModel,
    gain_stderr: float,
) -> bool:
    """Whether two frames differ by more than noise accounts for (:data:`PAIR_ENERGY`):
    pixel by pixel over their ``read`` pixels, against the camera's noise -- for a still
    scene the expected squared difference of a pixel is its noise variance in both
    frames, ``gain * (y + y' - 2 offset) + 2 read^2`` --, or summed over blocks read
    whole (:data:`PAIR_BINS` px a side), against the pixels' own difference: for a
    still scene and noise of each pixel's own, the squared difference of a sum of ``n``
    pixels is ``n`` times a pixel's, whatever the camera. The sums lift a change of the
    scene over a few pixels -- another scene under a photon per pixel -- out of the shot
    noise, which grows as the sum while the change grows as its square."""
    if camera.gain <= 0 or not read.any():
        return True
    pixels = np.square(scene - before, dtype=np.float64)  # each pixel's squared difference
    both = np.add(scene, before, dtype=np.float64)[read] - 2.0 * camera.offset
    signal = float(np.sum(np.maximum(both, 0.0)))
    noise = camera.gain * signal + 2.0 * camera.read_noise**2 * both.size
    if float(np.sum(pixels[read])) > (PAIR_ENERGY + 3.0 * gain_stderr / camera.gain) * noise:
        return True
    for side in PAIR_BINS:
        whole = _block_sums(read.astype(np.float64), side) == side * side
        if not whole.any():
            continue
        sums = np.square(_block_sums(scene, side) - _block_sums(before, side))[whole]
        own = _block_sums(pixels, side)[whole]  # the blocks' pixels' squared differences
        if float(np.sum(sums)) > PAIR_ENERGY * float(np.sum(own)):
            return True
    return False


def _block_sums(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` summed over ``side`` x ``side`` blocks (float64; a partial edge left out)."""
    h, w = (n // side * side for n in image.shape)
    return (
        image[:h, :w].reshape(h // side, side, w // side, side).sum(axis=(1, 3), dtype=np.float64)
    )


def shared_noise(scene: np.ndarray, before: np.ndarray, out: np.ndarray, read: np.ndarray) -> bool:
    """Whether the pair seems to share noise at the scale of a pixel (:data:`SHARED_LIMIT`):
    the frames' pixel-scale power (each pixel less its four neighbours' mean) and what
    the model took out of the frame are both well over the noise the pair's difference
    shows. A fixed pattern -- offsets that differ from pixel to pixel, warm pixels too
    faint to stand out -- is in both frames and not in their difference, and the model
    takes it out as noise; the pair's risk would take it for the scene. Fine structure of
    the scene the model keeps (beads, stars) passes."""
    inner = read[1:-1, 1:-1]
    if not inner.any():
        return True
    difference = float(np.mean(np.square(scene - before, dtype=np.float64)[read])) / 2.0
    if difference <= 0:
        return True

    def pixel_scale(image: np.ndarray) -> float:
        neighbours = image[:-2, 1:-1] + image[2:, 1:-1] + image[1:-1, :-2] + image[1:-1, 2:]
        residual = image[1:-1, 1:-1] - np.float32(0.25) * neighbours
        return float(np.mean(np.square(residual, dtype=np.float64)[inner])) / 1.25

    fine = (pixel_scale(scene) + pixel_scale(before)) / 2.0
    taken = float(np.mean(np.square(scene - out, dtype=np.float64)[read]))
    return min(fine, taken) > SHARED_LIMIT * difference


def read_pixels(
    shape: tuple[int, ...], bad: np.ndarray | None, spikes: Spikes | None
) -> np.ndarray:
    """Where a frame was read as it came: not a non-finite pixel, not a spike."""
    read = np.ones(shape, bool) if bad is None else ~bad
    if spikes is not None:
        read[spikes] = False
    return read
