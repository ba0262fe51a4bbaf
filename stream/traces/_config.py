"""The ``[traces]`` section of the service config."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from .._types import GivenPath
from ._baseline import BaselineConfig
from ._triggers import TriggerRule


class TraceConfig(BaseModel):
    """ROI traces, ΔF/F, trigger rules and the optional trace denoiser."""

    model_config = ConfigDict(extra="forbid")

    rois: GivenPath | None = Field(
        None,
        description="label image (.npy, .tif, Zarr array) or suite2p stat.npy; None: no "
        "traces until set_rois",
    )
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    triggers: list[TriggerRule] = Field(default_factory=list)
    denoise: StrictBool = Field(
        False, description="run the shipped causal trace denoiser: adds the dff_denoised column"
    )
    denoiser: GivenPath | None = Field(
        None, description="another causal 1-D trace model (ONNX) instead of the shipped one"
    )
    store: StrictBool = Field(True, description="write traces to the series store")

    @field_validator("rois", "denoiser")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @property
    def denoiser_path(self) -> Path | None:
        """The trace model to run: ``denoiser``, else the shipped one with ``denoise``."""
        if self.denoiser is not None:
            return self.denoiser
        if self.denoise:
            from ._denoiser import SHIPPED_TRACE_MODEL

            return SHIPPED_TRACE_MODEL
        return None

    @field_validator("triggers")
    @classmethod
    def _unique_names(cls, rules: list[TriggerRule]) -> list[TriggerRule]:
        names = [rule.name for rule in rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"trigger rule names must be unique, repeated: {repeated}")
        return rules

    @model_validator(mode="after")
    def _columns_exist(self) -> TraceConfig:
        # Checked here, not only when ROIs bind the rules: set_rois would refuse every
        # ROI set later, for a rule that could never run.
        if self.denoiser_path is None:
            lost = [rule.name for rule in self.triggers if rule.column == "dff_denoised"]
            if lost:
                raise ValueError(
                    f"trigger rule(s) {lost} watch column 'dff_denoised', which only the "
                    "trace denoiser adds: expected traces.denoise = true (or "
                    "traces.denoiser), got neither"
                )
        return self
