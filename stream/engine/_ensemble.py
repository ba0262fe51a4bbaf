"""Geometric self-ensemble: a frame denoised in several mirrored orientations, averaged.

A convolutional denoiser's error is partly tied to the orientation it sees (its filters
are not mirror-symmetric), so the average of its outputs on the frame and on mirrored
copies of it (each mirrored back) is closer to the truth than any one of them — the
"self-ensemble" of Lim et al. (EDSR, 2017). Mirrors keep the frame's shape, so the same
tile plan and buffers serve every pass; the transposes that complete the eight-fold set
add little more (`na-lite`, independent generator, 16 frames at 1 / 3 / 10 / 30 / 100
photons: 4 passes +0.32 / +0.12 / +0.13 / +0.29 / +0.14 dB over one, 8 passes +0.34 /
+0.13 / +0.14 / +0.32 / +0.15) and would need a plan per transposed shape.

A pass costs one inference, so ``passes`` frames cost ``passes`` times the time of one:
the service spends them only where the frame rate leaves the time (``ensemble`` in the
service's config).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: The pass counts the engine takes: the frame, then mirrored left-right, then upside
#: down as well, then upside down only.
PASSES = (1, 2, 4)
#: The axis each further pass mirrors the (already mirrored) input about.
_NEXT_MIRROR = (1, 0, 1)


def check_passes(passes: int) -> int:
    """``passes`` if the engine takes it; ValueError saying what it takes otherwise."""
    if isinstance(passes, bool) or passes not in PASSES:
        raise ValueError(f"expected ensemble passes in {PASSES}, got {passes!r}")
    return passes


def mirrors(passes: int) -> Iterator[tuple[int, tuple[int, ...]]]:
    """For each pass after the first: the axis to mirror the input about now, and the
    axes the output is mirrored about (to bring it back to the frame's orientation)."""
    flipped = [False, False]
    for axis in _NEXT_MIRROR[: check_passes(passes) - 1]:
        flipped[axis] = not flipped[axis]
        yield axis, tuple(i for i in (0, 1) if flipped[i])


def mirror_in_place(planes: list[np.ndarray], axis: int) -> None:
    """Mirror each 2-D plane about ``axis``, in place (numpy copies the overlapping source
    first)."""
    for plane in planes:
        plane[...] = np.flip(plane, axis)
