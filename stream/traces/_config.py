"""The ``[traces]`` section of the service config."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._baseline import BaselineConfig
from ._triggers import TriggerRule


class TraceConfig(BaseModel):
    """ROI traces, ΔF/F, trigger rules and the optional trace denoiser."""

    model_config = ConfigDict(extra="forbid")

    rois: Path | None = Field(
        None,
        description="label image (.npy, .tif, Zarr array) or suite2p stat.npy; None: no "
        "traces until set_rois",
    )
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    triggers: list[TriggerRule] = Field(default_factory=list)
    denoiser: Path | None = Field(
        None, description="causal 1-D trace model (ONNX) adding the dff_denoised column"
    )
    store: bool = Field(True, description="write traces to the series store")

    @field_validator("rois", "denoiser")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @field_validator("triggers")
    @classmethod
    def _unique_names(cls, rules: list[TriggerRule]) -> list[TriggerRule]:
        names = [rule.name for rule in rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"trigger rule names must be unique, repeated: {repeated}")
        return rules
