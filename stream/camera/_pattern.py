"""The camera's offset pattern: each pixel's own offset, from an average of dark frames.

A CMOS sensor reads every pixel (sCMOS) or column (others) through its own amplifier,
and their offsets differ by a fixed pattern (dark-signal non-uniformity) that cameras
which do not subtract it on board send with every frame. It cancels in frame
differences, so the live estimate does not see it as noise, but it is no scene either:
the model keeps it as fine structure, and at a photon per pixel it is as large as the
signal. Measured (one-off probe): ``na-lite`` on the independent generator read out at
0.5 ADU per e-, 1.5 e-, with a pattern of 0.6 ADU rms, 3.07 dB below the truth-tuned
Gaussian at 1 photon per pixel (+0.37 without it), and worse still told the true
camera (3.44 dB below). No series shows the pattern apart from its scene; dark frames
do: ``deepdenoise calibrate --dark DARK --offset-map MAP.npy`` writes their average,
and ``serve --offset-map MAP.npy`` subtracts its pattern about its mean from every frame
of its shape before anything else sees it (the stored raw frames keep it; the camera's
offset stays the average one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._errors import ConfigError


class OffsetPattern:
    """A dark-frame average's pattern about its mean, subtracted from frames of its shape.

    Counts the frames it was taken from and those of another shape (another region of
    the sensor, binning), which it leaves as they are.
    """

    def __init__(self, average: np.ndarray, source: str = "offset map") -> None:
        average = np.asarray(average)
        if average.ndim != 2 or average.dtype.kind not in "uif" or min(average.shape) < 1:
            raise ConfigError(
                f"{source}: expected a 2-D numeric array (a dark-frame average, one value "
                f"a pixel), got shape {average.shape} of {average.dtype}"
            )
        if not np.isfinite(average).all():
            bad = int(np.count_nonzero(~np.isfinite(average)))
            raise ConfigError(f"{source}: expected finite values, got {bad} that are not")
        self.source = source
        self.pattern = (average - average.mean(dtype=np.float64)).astype(np.float32)
        self.frames = 0  # frames it was subtracted from
        self.other_shape = 0  # frames of another shape, left as they are

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pattern.shape[0]), int(self.pattern.shape[1]))

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.pattern, dtype=np.float64))))

    def subtracted(self, frame: np.ndarray) -> np.ndarray:
        """A float32 copy of ``frame`` less the pattern, or ``frame`` itself when its shape
        is not the pattern's."""
        if frame.shape != self.pattern.shape:
            self.other_shape += 1
            return frame
        self.frames += 1
        return np.subtract(frame, self.pattern, dtype=np.float32)

    def status(self) -> dict[str, object]:
        return {
            "source": self.source,
            "shape": list(self.shape),
            "rms": round(self.rms, 4),
            "frames": self.frames,
            "other_shape": self.other_shape,
        }


def load_offset_pattern(path: str | Path) -> OffsetPattern:
    """The pattern of a dark-frame average saved as ``.npy`` (``deepdenoise calibrate
    --offset-map``); a clear ConfigError for a file that is missing or not one."""
    path = Path(path)
    try:
        average = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"offset map {path}: expected a .npy file of a dark-frame average (deepdenoise "
            f"calibrate --offset-map writes one), could not read it: {exc}"
        ) from exc
    return OffsetPattern(average, source=str(path))
