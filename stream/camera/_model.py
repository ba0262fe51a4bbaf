"""The Poisson-Gaussian camera: the three numbers that describe a camera's noise."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CameraModel(BaseModel):
    """``adu = gain * Poisson(photons) + offset + N(0, read_noise)``.

    ``photons`` are expected photo-electrons (quantum efficiency already applied). The
    ``[camera]`` table of the service config and the table ``deepdenoise calibrate``
    prints; the service estimates it live from the stream when none is configured.
    """

    # No upper bounds: float32 frames may come in any unit (photo-electrons x 1000, a
    # flat-fielded ratio), and a camera of theirs is as valid as one of 16-bit counts.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    gain: float = Field(2.0, gt=0, description="ADU per photo-electron")
    offset: float = Field(100.0, description="camera bias, ADU")
    read_noise: float = Field(1.5, ge=0, description="read noise, ADU rms")
    floor: float | None = Field(
        None,
        description="readouts are clipped at this level, ADU (an unsigned camera at offset 0 "
        "clips its read noise at 0): the denoised output is corrected for the clipping",
    )

    def variance(self, centred: float) -> float:
        """Noise variance (ADU^2) at ``centred`` ADU above the offset."""
        return self.gain * max(centred, 0.0) + self.read_noise**2
