"""The model metadata contract shared by the exporter and the engine.

An exported model carries, in ONNX ``metadata_props``, everything the engine needs to
run it correctly: the receptive field (how much context a tile must discard) and the
normalisation between raw camera counts and model units. Keys are flat strings under
the ``deepdenoise.`` prefix so any ONNX tool (and any language) can read them.

A plain ONNX model without these keys still runs, with the defaults below.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .._errors import ModelError

PREFIX = "deepdenoise."
FORMAT_VERSION = 1

log = logging.getLogger(__name__)

#: Receptive field assumed for a model without metadata: that of a 20-layer 3x3 CNN
#: (DnCNN-20), the deepest model this project ships, so tiles are never too small.
DEFAULT_RECEPTIVE_FIELD = 41

_JSON_FIELDS = (
    "training_noise",
    "training_data",
    "adaptation",
    "spatial_start",
    "pass_through_snr",
)
#: Keys of ``spatial_start`` holding a composed model's bands of light, by window.
BAND_KEYS = {"young": "young_temporal_snr", "full": "temporal_snr"}


class ModelMetadata(BaseModel):
    """What the engine knows about a model.

    Input channels: the ``frames`` most recent frames of a series, oldest first, then a
    noise map when ``noise_map``, then the series' running mean when ``running_mean``
    is above 0; at a series start or after a gap the missing previous frames are the
    oldest one there is, repeated (a temporal model should have seen such inputs in
    training). The running mean is of the series' frames before the current one:
    ``m <- m + max(running_mean, 1 / n) * (x - m)`` for the n-th of them, so the plain
    mean of the first ``1 / running_mean`` frames, exponential after; restarted at a
    series start or after a gap, where the current frame stands in for it (as for
    missing previous frames); in model units like the frames. It holds no current
    pixel, so a blind-spot or SURE objective that perturbs the current frame sees it as
    context.
    ``normalization`` says how raw frames become model units: ``fixed``:
    ``(raw - input_offset) / input_scale`` on the way in and
    ``model * input_scale + input_offset`` on the way out; ``adaptive``: the camera's
    offset and a per-frame scale (:func:`stream.engine.model_input`). ``alignment``:
    tiles start at multiples of it (2 for a model with a pixel-unshuffled body).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = Field(FORMAT_VERSION, ge=1, le=FORMAT_VERSION)
    architecture: str = "unknown"
    receptive_field: int = Field(DEFAULT_RECEPTIVE_FIELD, ge=1, le=1025)
    input_offset: float = 0.0
    input_scale: float = Field(1.0, gt=0)
    normalization: Literal["fixed", "adaptive"] = "fixed"
    frames: int = Field(1, ge=1, le=64)
    noise_map: bool = False
    running_mean: float = Field(0.0, ge=0.0, le=1.0)
    alignment: int = Field(1, ge=1, le=64)
    training_noise: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    #: Set by ``deepdenoise adapt``: the recording, steps and starting model it was tuned on.
    adaptation: dict[str, Any] = Field(default_factory=dict)
    #: Set by ``exporter.compose``: the spatial model that answers when a temporal model
    #: has no previous frame (its graph holds both behind an ``If``); optionally, under
    #: ``young_temporal_snr`` and ``temporal_snr``, the bands of light where a young
    #: series' partial window and a full window help (:meth:`temporal_band`).
    spatial_start: dict[str, Any] = Field(default_factory=dict)
    #: Peak SNRs ``[low, high]`` (:func:`stream.engine.peak_snr`) over which the output
    #: is blended toward the input, all the way above ``high``: beyond the light a model
    #: was trained for, its own error is above the input's noise
    #: (``deepdenoise pass-through`` measures it). None: the model's output as it is.
    pass_through_snr: list[float] | None = None
    content_hash: str | None = None
    #: The exporter checked that the model in fp16 stays within tolerance of fp32:
    #: TensorRT may then build it in fp16 (``gpu.fp16 = "auto"``).
    fp16: bool = False
    #: True when the model carried deepdenoise metadata, False when defaults apply.
    from_model: bool = False

    @field_validator("receptive_field")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"receptive_field must be odd (a centred window), got {value}")
        return value

    @model_validator(mode="after")
    def _context_is_adaptive(self) -> ModelMetadata:
        # Previous frames, the noise map and the running mean are filled in camera units
        # (offset subtracted, a per-frame scale): only the adaptive path builds them.
        needs = [
            what
            for what, wanted in (
                (f"{self.frames} frames", self.frames > 1),
                ("a noise-map channel", self.noise_map),
                ("a running-mean channel", self.running_mean > 0),
            )
            if wanted
        ]
        if needs and self.normalization != "adaptive":
            raise ValueError(
                f"a model with {' and '.join(needs)} needs normalization 'adaptive' (the "
                f"engine fills those channels from the camera model, scaled per frame like "
                f"the current one), got {self.normalization!r}"
            )
        return self

    @model_validator(mode="after")
    def _bands(self) -> ModelMetadata:
        for key in BAND_KEYS.values():
            band = self.spatial_start.get(key)
            if band is None:
                continue
            ok = isinstance(band, list) and len(band) == 2
            ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in band)
            if not ok or not 0 <= band[0] <= band[1]:  # low == high: (almost) never
                raise ValueError(
                    f"spatial_start.{key} must be [low, high] with 0 <= low <= high, got {band!r}"
                )
        return self

    @model_validator(mode="after")
    def _pass_through(self) -> ModelMetadata:
        band = self.pass_through_snr
        if band is not None and not (len(band) == 2 and 0 < band[0] < band[1]):
            raise ValueError(
                f"pass_through_snr must be [low, high] with 0 < low < high, got {band!r}"
            )
        if band is not None and self.normalization != "adaptive":
            raise ValueError(
                "pass_through_snr needs normalization 'adaptive' (the peak SNR comes from "
                f"the camera), got {self.normalization!r}"
            )
        return self

    def pass_through(self, snr: float) -> float:
        """How far the output is blended toward the input at peak SNR ``snr``: 0 below
        ``pass_through_snr[0]``, 1 above ``[1]``, linear in log SNR between."""
        if self.pass_through_snr is None or not snr > self.pass_through_snr[0]:
            return 0.0
        low, high = self.pass_through_snr
        return min(1.0, math.log(snr / low) / math.log(high / low))

    def least_read_noise_e(self) -> float:
        """The least read noise (e-) a noise-adaptive model was trained with
        (``training_noise.read_noise_e``), 0 when not recorded: the engine tells it no
        less (a photon counter's read noise is near 0, and the noise map, taken from the
        noisy pixel, then says a pixel that read 0 has no noise at all)."""
        span = self.training_noise.get("read_noise_e")
        if not self.noise_map or not isinstance(span, list | tuple) or not span:
            return 0.0
        try:
            least = float(span[0])
        except (TypeError, ValueError):
            return 0.0
        return least if math.isfinite(least) and least > 0 else 0.0

    def told_read_noise(self, gain: float, read_noise: float) -> float:
        """The read noise (ADU) the model is told for a camera of ``gain`` and
        ``read_noise``: its own, or the least it was trained with, whichever is more."""
        return max(read_noise, self.least_read_noise_e() * gain)

    @property
    def in_channels(self) -> int:
        """Input channels the model takes: its frames, the noise map, the running mean."""
        return self.frames + int(self.noise_map) + int(self.running_mean > 0)

    def temporal_band(self, window: str) -> tuple[float, float] | None:
        """Where a composed model's temporal branch helps, by peak SNR
        (:func:`stream.engine.peak_snr`), for a ``"young"`` window (some previous frames,
        fewer than it holds) or a ``"full"`` one; the engine gives frames outside the
        band no history, so the spatial start answers. None: always the temporal branch."""
        band = self.spatial_start.get(BAND_KEYS[window])
        return None if band is None else (float(band[0]), float(band[1]))

    @property
    def radius(self) -> int:
        """Pixels of context each side of an output pixel that the model reads."""
        return (self.receptive_field - 1) // 2

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ModelMetadata:
        """Parse ONNX ``metadata_props``; keys without the prefix are ignored."""
        kind = props.get(PREFIX + "kind")
        if kind is not None:  # the ROI trace denoiser's metadata (stream.traces)
            raise ModelError(
                f"expected a frame model, got a model of {PREFIX}kind {kind!r}"
                + (": a ROI trace denoiser, for [traces] denoiser" if kind == "trace" else "")
            )
        values: dict[str, Any] = {}
        for key, raw in props.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :]
            if name not in cls.model_fields or name == "from_model":
                _warn_unknown(key)  # tolerated (a newer exporter's), but a typo is told
                continue
            if name in _JSON_FIELDS:
                try:
                    values[name] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ModelError(f"metadata {key!r} must be JSON, got {raw!r}: {exc}") from exc
            else:
                values[name] = raw
        try:
            return cls(**values, from_model=bool(values))
        except ValidationError as exc:
            problems = "; ".join(
                f"{PREFIX}{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise ModelError(f"invalid model metadata: {problems}") from exc

    def to_props(self) -> dict[str, str]:
        """Serialise to ONNX ``metadata_props`` (all values are strings)."""
        props: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"from_model"}).items():
            if value is None or (name in ("adaptation", "spatial_start") and not value):
                continue  # only adapted or composed models say so
            text = json.dumps(value, sort_keys=True) if name in _JSON_FIELDS else str(value)
            props[PREFIX + name] = text
        return props


def _warn_unknown(key: str) -> None:
    known = [PREFIX + name for name in ModelMetadata.model_fields if name != "from_model"]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    log.warning("model metadata: %s is not in this version's contract, ignored%s", key, hint)
