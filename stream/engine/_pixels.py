"""Pixel checks and conversions shared by the receive and inference stages."""

from __future__ import annotations

import math

import numpy as np

from ..camera import CameraModel


def count_non_finite(frame: np.ndarray) -> int:
    """NaN/Inf pixels in a frame; integer frames have none.

    The common all-finite case costs one float64 sum and no allocation: a non-finite
    pixel makes the sum non-finite, and finite float32 pixels cannot overflow it.
    """
    if frame.dtype.kind != "f" or np.isfinite(frame.sum(dtype=np.float64)):
        return 0
    return int(frame.size - np.count_nonzero(np.isfinite(frame)))


#: The largest float pixel value denoised: the live camera estimate takes squares and
#: cubes of frame differences in float32 (3.4e38 at most), and from about 1e12 they
#: overflowed (a new user's probe, 2026-12-06: a movie in units of 1e-20 of a count,
#: values about 1e22, was blamed on the model for NaN output; at 1e19 it came out
#: barely denoised). No camera's counts come near it.
LARGEST_PIXEL = 1e12


def beyond_range(frame: np.ndarray) -> float | None:
    """A float frame's largest finite absolute value where over :data:`LARGEST_PIXEL`
    (None: within it, or integer pixels: 64-bit counts that large are an offset with
    little noise on it, which float32 rounds away -- ``deepdenoise denoise`` warns of
    that -- rather than noise whose squares overflow)."""
    if frame.dtype.kind != "f" or not frame.size:
        return None
    top = max(float(frame.max()), -float(frame.min()))  # plain passes: the common case
    if not math.isfinite(top):  # NaN or Inf somewhere: the finite pixels' extremes
        finite = np.isfinite(frame)
        top = max(float(np.max(frame, initial=-np.inf, where=finite)), 0.0)
        top = max(top, -float(np.min(frame, initial=np.inf, where=finite)))
    return top if top > LARGEST_PIXEL else None


def to_dtype(clean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer input dtype (float32 input passes through)."""
    if dtype.kind == "f":
        return clean.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.rint(clean), info.min, info.max).astype(dtype)


def finite_copy(frame: np.ndarray, camera: CameraModel | None = None) -> np.ndarray:
    """A float32 copy whose non-finite pixels are filled (:func:`fill_region`): without
    a camera with the mean of the finite ones, a flat fill, which the live estimate and
    the searches for noisy pixels and row noise leave out; with the camera, as the model
    is shown them."""
    copy = np.array(frame, dtype=np.float32)
    if count_non_finite(copy):
        bad = ~np.isfinite(copy)
        if bad.all():
            copy[:] = 0.0
        else:
            fill_region(copy, bad, camera)
    return copy


#: The field goes on into a region by its mirror image where its mean count stands at
#: least this many times its noise above the offset; below, the region holds the field's
#: mean. Why (one-off probe, `na-lite`, the independent generator masked outside a circle,
#: 16 frames of 128 x 128, read noise 3 e-; PSNR of the 3 px inside its edge at 1 / 3 /
#: 10 / 100 photons): the mean 19.05 / 21.71 / 25.65 / 32.05 dB, mirrored 15.56 / 22.02 /
#: 27.25 / 36.33. At 1 photon (0.13 times its noise) the mirror repeats the noise the
#: model averages, and the model reads the repeats as structure.
MIRROR_MIN_SNR = 0.25


def fill_region(
    plane: np.ndarray, bad: np.ndarray, camera: CameraModel | None, centred: bool = False
) -> None:
    """Fill ``plane``'s ``bad`` pixels (not all of them) in place for the model: with
    the field mirrored across the region's edge (:func:`mirror_fill`) where the field
    stands out of its noise (:data:`MIRROR_MIN_SNR`, by ``camera``; ``centred``: the
    plane is less its offset already), else, and without a camera, with the field's
    mean."""
    mean = float(plane[~bad].mean(dtype=np.float64))
    if camera is not None:
        counts = (mean - (0.0 if centred else camera.offset)) / camera.gain
        noise = math.sqrt(max(counts, 0.0) + (camera.read_noise / camera.gain) ** 2)
        if noise > 0 and counts >= MIRROR_MIN_SNR * noise:
            mirror_fill(plane, bad)
            return
    plane[bad] = mean


def mirror_fill(plane: np.ndarray, bad: np.ndarray) -> None:
    """Fill ``plane``'s ``bad`` pixels (not all of them) in place: each takes the value
    of the pixel mirrored across the nearest good pixel, as the engine reflects the
    frame beyond its edges, or of that nearest pixel where the mirror falls outside the
    frame or on another bad one.

    Why: a masked region (NaN, or a number: :func:`stream.camera.masked_pixels`) filled
    with the frame's mean is an edge to the model, which it smooths into the field:
    mirrored, the field goes on with its own level and noise (figures at
    :data:`MIRROR_MIN_SNR`). The sources are kept for the latest mask (a field of
    view's is the same every frame): finding them takes ~20 ms at 512 x 512.
    """
    targets, sources = _mirror_sources(bad)
    plane[targets] = plane[sources]  # plane may be a view (a tile buffer's interior)


_Pixels = tuple[np.ndarray, np.ndarray]
_latest: tuple[np.ndarray, _Pixels, _Pixels] | None = None  # mask, targets, sources


def _mirror_sources(bad: np.ndarray) -> tuple[_Pixels, _Pixels]:
    global _latest
    latest = _latest  # one read: another thread may replace it
    if latest is not None and np.array_equal(latest[0], bad):
        return latest[1], latest[2]
    height, width = bad.shape
    from scipy import ndimage  # only for frames with NaN or a mask: loaded lazily

    nearest = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    ys, xs = np.nonzero(bad)
    near_y, near_x = nearest[0][ys, xs], nearest[1][ys, xs]
    mirror_y, mirror_x = 2 * near_y - ys, 2 * near_x - xs
    usable = (mirror_y >= 0) & (mirror_y < height) & (mirror_x >= 0) & (mirror_x < width)
    mirror_y, mirror_x = np.where(usable, mirror_y, near_y), np.where(usable, mirror_x, near_x)
    usable = ~bad[mirror_y, mirror_x]
    mirror_y, mirror_x = np.where(usable, mirror_y, near_y), np.where(usable, mirror_x, near_x)
    targets, sources = (ys, xs), (mirror_y, mirror_x)
    _latest = (bad.copy(), targets, sources)
    return targets, sources
