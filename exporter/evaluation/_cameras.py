"""Test movies read out by other cameras: the same scene, another gain, offset and read noise.

Each generator reads its movies out with one camera (the independent generator: gain 1,
offset 100; the phantom: gain 1, read noise 3; the textures: a camera drawn per movie),
but a user's camera may count 4 ADU per photoelectron or a quarter of one, sit at an
offset of 0 or 1000, and add 1 or 8 e- of read noise -- and the models estimate all of
it live. ``recamera`` takes a test movie's expected photons (its clean image, back
through its own camera) and reads them out again, Poisson then Gaussian, rounded to
16-bit counts: the scene and the photon budget stay, only the camera changes. An
electron-multiplying camera (an EMCCD, or a photomultiplier's pulse heights) multiplies
each photo-electron by a random gain of mean 1 before the read noise: its excess noise
factor F^2 (2 for an EMCCD's register) scales the shot noise's variance, and a
Poisson-Gaussian fit sees the gain F^2 x gain. A camera may have hot pixels: a
``hot`` fraction of its pixels, at places fixed for the camera, collect a dark signal of
``HOT_ELECTRONS`` on average per frame (Poisson, as dark current is) on top of the
scene; the clean movie does not have them (they are the camera's, not the scene's). An
sCMOS camera may have noisy pixels: a ``noisy`` fraction of its pixels, at places fixed
for the camera, read out with a read noise drawn once per pixel from ``NOISY_ELECTRONS``
instead of the camera's (its random-telegraph tail). A CMOS camera may have row noise:
each row of each frame offset by its own draw of ``rows`` e- rms (banding, where the
sensor's row references are not corrected on board). And a fixed pattern of columns:
each column offset by its own draw of ``columns`` e- rms, the same in every frame and
every movie of the camera (its column amplifiers' offsets, where the camera does not
take them out on board).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._independent import EvalMovie
from ._results import with_camera

#: Seed-sequence tag of the re-read noise (apart from every generator's own draws).
_NOISE_TAG = 7_041
#: Seed-sequence tag of the hot pixels' places (the same for every movie of a camera).
_HOT_TAG = 7_043
#: Seed-sequence tag of the noisy pixels' places and read noise.
_NOISY_TAG = 7_047
#: Seed-sequence tag of the rows' offsets.
_ROWS_TAG = 7_049
#: Seed-sequence tag of the columns' fixed offsets (the same for every movie of a camera).
_COLUMNS_TAG = 7_051
#: A noisy pixel's read noise, e- rms: drawn uniformly from this range (an sCMOS's tail;
#: its median pixel reads 1-2 e-).
NOISY_ELECTRONS = (5.0, 20.0)
#: A hot pixel's mean dark signal per frame, in electrons (an sCMOS hot pixel at a
#: long exposure, or a cosmic ray's deposit, is hundreds to thousands).
HOT_ELECTRONS = 1000.0


@dataclass(frozen=True)
class EvalCamera:
    """A Poisson-Gaussian camera: ``adu = gain * Poisson(photons) + offset + N(0, read)``;
    with ``excess`` F^2 > 1, each photo-electron counts a Gamma-distributed number of
    times (mean 1, variance F^2 - 1)."""

    gain: float  # ADU per photoelectron
    offset: float  # ADU
    read_noise: float  # e-
    excess: float = 1.0  # excess noise factor F^2 (1: none)
    hot: float = 0.0  # fraction of hot pixels
    noisy: float = 0.0  # fraction of noisy pixels
    rows: float = 0.0  # e- rms of each row's offset, drawn anew every frame
    columns: float = 0.0  # e- rms of each column's offset, fixed for the camera

    def __post_init__(self) -> None:
        if not (
            self.gain > 0
            and self.offset >= 0
            and self.read_noise >= 0
            and self.excess >= 1
            and 0 <= self.hot < 1
            and 0 <= self.noisy < 1
            and self.rows >= 0
            and self.columns >= 0
        ):
            raise ValueError(
                "expected a camera with gain > 0, offset >= 0, read noise >= 0, excess "
                "noise factor >= 1, hot- and noisy-pixel fractions in [0, 1) and row and "
                f"column offsets >= 0, got gain {self.gain:g}, offset {self.offset:g}, read noise "
                f"{self.read_noise:g}, excess {self.excess:g}, hot {self.hot:g}, noisy "
                f"{self.noisy:g}, rows {self.rows:g}, columns {self.columns:g}"
            )

    @property
    def label(self) -> str:
        label = f"gain {self.gain:g}, offset {self.offset:g}, read {self.read_noise:g} e-"
        label += f", F2 {self.excess:g}" if self.excess > 1 else ""
        label += f", {self.hot:.2%} hot pixels" if self.hot > 0 else ""
        label += f", {self.noisy:.2%} noisy pixels" if self.noisy > 0 else ""
        label += f", rows {self.rows:g} e-" if self.rows > 0 else ""
        return label + (f", columns {self.columns:g} e-" if self.columns > 0 else "")


def parse_cameras(text: str) -> tuple[EvalCamera, ...]:
    """``"GAIN:OFFSET:READ[:F2[:HOT[:NOISY[:ROWS[:COLUMNS]]]]],..."`` (read noise in
    electrons, F2 the excess noise factor of an electron-multiplying camera, 1 for none;
    HOT the fraction of hot pixels, NOISY of noisy ones; ROWS the rows' offsets drawn
    every frame, COLUMNS the columns' fixed ones, e- rms) as cameras; "" gives none."""
    cameras = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        fields = item.split(":")
        try:
            if not 3 <= len(fields) <= 8:
                raise ValueError
            numbers = [float(f) for f in fields]
        except ValueError:
            raise ValueError(
                f"expected a camera as GAIN:OFFSET:READ[:F2[:HOT[:NOISY[:ROWS[:COLUMNS]]]]] "
                f"(numbers, read noise in e-, F2 an EMCCD's excess noise factor, HOT and "
                f"NOISY fractions of hot and noisy pixels, ROWS the rows' offsets drawn "
                f"every frame and COLUMNS the columns' fixed ones, in e- rms) such as "
                f"4:1000:2, 20:500:0.5:2, 1:100:3:1:0.001, 0.5:100:1.5:1:0:0.01, "
                f"0.5:100:1.5:1:0:0:1.5 or 0.5:100:1.5:1:0:0:0:0.7, got {item!r}"
            ) from None
        cameras.append(EvalCamera(*numbers))
    return tuple(cameras)


def recamera(movie: EvalMovie, camera: EvalCamera, seed: int) -> EvalMovie:
    """``movie``'s scene read out by ``camera``; its generator name says which camera."""
    photons = np.maximum((movie.clean.astype(np.float64) - movie.offset) / movie.gain, 0.0)
    rng = np.random.default_rng([seed, _NOISE_TAG])
    electrons = rng.poisson(photons) * 1.0
    if camera.excess > 1:  # a sum of n Gamma(k, 1/k) multiplications is Gamma(n k, 1/k)
        shape = 1.0 / (camera.excess - 1.0)
        electrons = rng.gamma(electrons * shape, 1.0 / shape)
    if camera.hot > 0:  # the same places in every movie of this camera
        places = np.random.default_rng(_HOT_TAG).random(photons.shape[1:]) < camera.hot
        electrons += places * rng.poisson(HOT_ELECTRONS, photons.shape)
    read = np.full(photons.shape[1:], camera.read_noise)
    if camera.noisy > 0:  # the same places and read noise in every movie of this camera
        fixed = np.random.default_rng(_NOISY_TAG)
        places = fixed.random(read.shape) < camera.noisy
        read[places] = fixed.uniform(*NOISY_ELECTRONS, int(places.sum()))
    electrons += rng.normal(0.0, 1.0, photons.shape) * read
    if camera.rows > 0:  # apart from the other draws: the same movie less its banding
        rows = np.random.default_rng([seed, _ROWS_TAG]).normal(0.0, camera.rows, photons.shape[:2])
        electrons += rows[..., None]
    if camera.columns > 0:  # the same offsets in every frame and movie of this camera
        columns = np.random.default_rng(_COLUMNS_TAG).normal(0.0, camera.columns, photons.shape[2])
        electrons += columns
    adu = np.rint(camera.gain * electrons + camera.offset)
    return dataclasses.replace(
        movie,
        noisy=np.clip(adu, 0, 65535).astype(np.uint16),
        clean=(camera.gain * photons + camera.offset).astype(np.float32),
        gain=camera.gain * camera.excess,  # what a Poisson-Gaussian fit (and the VST) sees
        offset=camera.offset,
        read_noise=camera.gain * camera.read_noise,
        generator=with_camera(movie.generator, camera.label),
    )
