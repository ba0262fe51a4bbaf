"""Regions of a frame that no camera read: a field of view masked with a number.

A two-photon field behind a GRIN lens masked with 0 outside its circle, a
motion-corrected frame whose shifted border was filled with 0, frames padded to a size:
all hold one value over many pixels, which the camera does not read -- far below its
offset, or, where its read noise rules out 16 equal readouts, at any level but the
saturation level (frames less their offset masked with 0). To a noise-adaptive model
such a region is an edge
hundreds of noise sigmas high, which it smooths into the field, and a place with no
noise, which the blend's risk would count as noise: the engine treats its pixels as it
treats NaN pixels (left out of the blend's risk, the field mirrored into them for the
model) and gives them back as they came.

Why (one-off probe, `na-lite`, 10-frame 128 x 128 calcium movies, offset 100 ADU,
read noise 3 e-, the camera estimated live; PSNR of the whole frame at 1 / 10 / 1000
photons): a border of 6-10 px filled with 0 came out at 13.5 / 30.7 / 47.8 dB for 6.0 /
24.3 / 48.6 in (the 3 px beside the border 4.3 / 22.9 / 37.6 for 5.3 / 24.0 / 49.3 in),
now 24.4 / 34.2 / 51.6 (beside it 24.3 / 32.9 / 50.4); a circle masked with 0 came out
at 9.8 / 28.4 / 50.4 for 7.4 / 25.7 / 49.8 in, now 25.9 / 35.8 / 52.9.
"""

from __future__ import annotations

import math

import numpy as np

from ._floor import readout_step
from ._model import CameraModel
from ._samples import BLOCK, block_extremes, either

#: A mask's value lies below the camera's offset by more than this many times the noise
#: of a dark pixel (read noise and one photo-electron together): no readout of 16 pixels
#: in a row reaches it. A dark pixel of a photon counter reads the offset itself, which
#: is not a mask (nor is an unsigned camera's clipping floor).
MASK_SIGMAS = 5.0
#: A camera whose read noise spans at least this many of its readout steps never reads
#: one value in all 16 pixels of a block (about 0.2 of its readouts share the likeliest
#: value): there a block of one value is a mask at any level but the saturation level
#: (the frame's maximum) -- frames less their offset, masked with 0, included.
MASK_READ_STEPS = 2.0
#: A value the camera reads itself is held by the field's pixels near that level more
#: often than the steps beside it: a photon counter's dark pixels read its offset (and a
#: live estimate of such a camera can report read noise that spans steps: 2-26 ADU for
#: a true 0, where its frames hold a bright part). A region's value counts as a mask only
#: while the pixels outside it within a step of it hold it at most this often (a
#: camera with read noise of 2 steps: about 0.4), and while it encloses no single pixel
#: of another value (a counter's dark part holds the few that caught a photon).
MASK_SHARE = 0.6


def masked_pixels(frame: np.ndarray, camera: CameraModel) -> np.ndarray | None:
    """The frame's pixels in a region set to one value that ``camera`` does not read:
    a 4 x 4 block all at a value below its offset (:data:`MASK_SIGMAS`), or at any value
    but the frame's maximum when its read noise rules out 16 equal readouts
    (:data:`MASK_READ_STEPS`); then the pixels of that value joined to the block (the
    region's edge need not fall on the blocks). Never the camera's clipping floor. None
    when there is none, or when the whole frame is one such region."""
    if frame.ndim != 2 or frame.dtype.kind not in "uif" or frame.size == 0:
        return None
    finite = None
    if frame.dtype.kind == "f" and not np.isfinite(frame.sum(dtype=np.float64)):
        finite = np.isfinite(frame)
        if not finite.any():
            return None
    values = frame if finite is None else frame[finite]
    lowest, top = float(values.min()), float(values.max())
    step = readout_step(frame)
    if camera.read_noise >= MASK_READ_STEPS * step and camera.read_noise > 0:
        threshold = top  # any one-valued block below the saturation level
    else:
        threshold = camera.offset - MASK_SIGMAS * math.hypot(camera.read_noise, camera.gain)
    if not lowest < threshold:
        return None
    seeds = either(
        _flat_blocks_below(frame, threshold, camera.floor),
        _edge_runs_below(frame, threshold, camera.floor),
    )
    if seeds is None:
        return None
    masked = np.zeros(frame.shape, dtype=bool)
    for value in np.unique(frame[seeds]):
        held = frame == value
        region = _grown(seeds & held, held)
        if not _read_by_the_camera(frame, value, region, step) and not _has_holes(frame, region):
            masked |= region
    return None if masked.all() or not masked.any() else masked


def _read_by_the_camera(frame: np.ndarray, value: float, region: np.ndarray, step: float) -> bool:
    """Whether the pixels outside ``region`` within a step of ``value`` hold it as often
    as a level the camera reads (:data:`MASK_SHARE`, and at least 16 of them)."""
    outside = ~region
    at_value = np.count_nonzero(outside & (frame == value))
    if at_value < 16:
        return False
    distance = np.abs(frame.astype(np.float64) - value)
    near = np.count_nonzero(outside & (distance <= 1.5 * step))
    return bool(at_value > MASK_SHARE * max(near, at_value))


def _has_holes(frame: np.ndarray, region: np.ndarray) -> bool:
    """Whether the region encloses single pixels of another (finite) value, the frame's
    edge counting as enclosing: a photon counter's dark part (a dark edge included) holds
    the few that caught a photon; a fill holds none."""
    around = np.pad(region, 1, constant_values=True)  # beyond the frame's edge: enclosing
    enclosed = ~region & around[:-2, 1:-1] & around[2:, 1:-1] & around[1:-1, :-2]
    enclosed &= around[1:-1, 2:]
    if frame.dtype.kind == "f":
        enclosed &= np.isfinite(frame)
    return bool(enclosed.any())


#: The latest region grown: (seeds, the pixels that hold its value, the region). A field
#: of view's mask is the same every frame; growing it takes ~6 ms at 512 x 512.
_latest: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _grown(seeds: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The pixels of ``held`` joined to ``seeds`` (kept for the latest seeds and pixels)."""
    global _latest
    latest = _latest  # one read: another thread may replace it
    if latest is not None and np.array_equal(latest[0], seeds) and np.array_equal(latest[1], held):
        return latest[2]
    from scipy import ndimage  # only where a mask is found: the online half loads it lazily

    region = ndimage.binary_propagation(seeds, mask=held)
    _latest = (seeds, held, region)
    return region


#: A mask along the frame's edge may be thinner than a block (a motion-corrected frame's
#: border shifted by 1-3 px): a run of at least ``EDGE_RUN`` pixels of one value along
#: one of the frame's ``EDGE_LINES`` outermost rows or columns on each side seeds it too
#: (as unlikely from a camera as a block: 16 readouts of one value). Why (one-off probe,
#: `na-lite`, 10-frame 128 x 128 calcium movies, borders of 1-3 px filled with 0, offset
#: 100): the whole frame came out worse than it went in at every light, 2.8 / 22.1 /
#: 43.4 dB for 5.4 / 23.7 / 48.1 at 1 / 10 / 1000 photons.
EDGE_RUN = 16
EDGE_LINES = 3


def _edge_runs_below(frame: np.ndarray, threshold: float, floor: float | None) -> np.ndarray | None:
    """Per pixel, whether it lies in a run of :data:`EDGE_RUN` or more pixels of one
    finite value below ``threshold`` (and not ``floor``) along one of the frame's
    outermost rows or columns; None when there is none."""
    height, width = frame.shape
    seeds = np.zeros(frame.shape, dtype=bool)
    rows = {*range(min(EDGE_LINES, height)), *range(max(height - EDGE_LINES, 0), height)}
    columns = {*range(min(EDGE_LINES, width)), *range(max(width - EDGE_LINES, 0), width)}
    for row in rows:
        _mark_runs(frame[row], seeds[row], threshold, floor)
    for column in columns:
        _mark_runs(frame[:, column], seeds[:, column], threshold, floor)
    return seeds if seeds.any() else None


def _mark_runs(line: np.ndarray, marks: np.ndarray, threshold: float, floor: float | None) -> None:
    """Set ``marks`` over the runs of :data:`EDGE_RUN` or more equal values along
    ``line`` below ``threshold`` (finite, and not ``floor``)."""
    if line.size < EDGE_RUN:
        return
    changes = np.flatnonzero(line[1:] != line[:-1]) + 1
    starts = np.concatenate(([0], changes))
    ends = np.concatenate((changes, [line.size]))
    for start, end in zip(
        starts[ends - starts >= EDGE_RUN], ends[ends - starts >= EDGE_RUN], strict=True
    ):
        value = float(line[start])
        if math.isfinite(value) and value < threshold and value != floor:
            marks[start:end] = True


def _flat_blocks_below(
    frame: np.ndarray, threshold: float, floor: float | None
) -> np.ndarray | None:
    """Per pixel, whether its 4 x 4 block holds one value below ``threshold`` (and not
    ``floor``); None when no block does."""
    extremes = block_extremes(frame)
    if extremes is None:
        return None
    low, high = extremes
    flat = (low == high) & (low < threshold) & np.isfinite(low)
    if floor is not None:
        flat &= low != floor
    if not flat.any():
        return None
    rows, columns = flat.shape
    seeds = np.zeros(frame.shape, dtype=bool)
    seeds[: rows * BLOCK, : columns * BLOCK] = np.repeat(np.repeat(flat, BLOCK, 0), BLOCK, 1)
    return seeds
