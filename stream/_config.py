"""Service configuration: one pydantic model, loadable from TOML, overridable from the CLI."""

from __future__ import annotations

import ipaddress
import logging
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import ConfigError

log = logging.getLogger("deepdenoise")

Provider = Literal["auto", "cpu", "cuda", "tensorrt"]
InputMode = Literal["sub", "pull"]
OverflowPolicy = Literal["drop_oldest", "block"]
OutputDtype = Literal["float32", "input"]

DEFAULT_INPUT = "tcp://127.0.0.1:5555"
DEFAULT_OUTPUT = "tcp://127.0.0.1:5556"
DEFAULT_CONTROL = "tcp://127.0.0.1:5557"


class Limits(BaseModel):
    """What the receiver accepts; anything beyond is rejected with a reason code."""

    model_config = ConfigDict(extra="forbid")

    max_header_bytes: int = Field(64 * 1024, ge=256, description="msgpack header size limit")
    max_meta_bytes: int = Field(8 * 1024, ge=0, description="encoded size limit of `meta`")
    max_side: int = Field(16384, ge=1, le=16384, description="largest height or width")
    max_payload_bytes: int = Field(
        256 * 1024 * 1024, ge=1, description="largest pixel payload; also sets ZMQ_MAXMSGSIZE"
    )


class QueueConfig(BaseModel):
    """Bounded queues between stages and what each does when full."""

    model_config = ConfigDict(extra="forbid")

    inference_depth: int = Field(4, ge=1, description="frames waiting for the engine")
    inference_overflow: OverflowPolicy = Field(
        "drop_oldest",
        description="drop_oldest keeps live latency low (counted); block back-pressures input",
    )
    publish_depth: int = Field(32, ge=1, description="denoised frames waiting to be sent")
    writer_depth: int = Field(
        2048, ge=16, description="frames waiting for disk; the writer never drops, it blocks"
    )
    receive_hwm: int = Field(100_000, ge=1, description="ZMQ receive high-water mark (messages)")
    send_hwm: int = Field(1000, ge=1, description="ZMQ send high-water mark on the PUB socket")


class StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frames_per_shard: int = Field(
        0, ge=0, description="frames buffered per shard write; 0 picks ~16 MiB worth"
    )
    codec: Literal["zstd", "lz4", "none"] = "lz4"
    clevel: int = Field(1, ge=0, le=9)
    flush_interval_s: float = Field(
        2.0, gt=0, description="partial shards older than this are written (crash safety)"
    )


class ServiceConfig(BaseModel):
    """Everything ``deepdenoise serve`` needs. Defaults bind to 127.0.0.1 only."""

    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(None, description="ONNX model; None uses the shipped default")
    input: str = DEFAULT_INPUT
    input_mode: InputMode = "sub"
    input_bind: bool = False
    subscribe: str = Field("frame", description="topic prefix subscribed to in SUB mode")
    output: str = DEFAULT_OUTPUT
    control: str = DEFAULT_CONTROL
    zarr: Path | None = Field(Path("deepdenoise-data"), description="store folder; None: off")
    output_dtype: OutputDtype = "float32"
    tile: int | None = Field(None, ge=16, le=16384)
    overlap: int | None = Field(None, ge=0, le=8192)
    provider: Provider = "auto"
    warmup_shape: tuple[int, int] | None = (512, 512)
    status_interval_s: float = Field(1.0, gt=0, le=3600)
    limits: Limits = Field(default_factory=Limits)
    queues: QueueConfig = Field(default_factory=QueueConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("input", "output", "control")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in {"tcp", "ipc", "inproc"}:
            raise ValueError(
                "expected a ZeroMQ endpoint like tcp://127.0.0.1:5555 or ipc:///tmp/x, "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _tile_overlap(self) -> ServiceConfig:
        if self.tile is not None and self.overlap is not None and self.overlap >= self.tile:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than tile ({self.tile})")
        return self

    def warn_public_binds(self) -> None:
        """Log a warning for every socket bound beyond loopback."""
        bound = [("output", self.output), ("control", self.control)]
        if self.input_bind:
            bound.append(("input", self.input))
        for name, endpoint in bound:
            if not is_loopback(endpoint):
                log.warning("%s socket %s is reachable beyond this machine", name, endpoint)


def is_loopback(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp endpoints on a loopback address."""
    if not endpoint.startswith("tcp://"):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path | None = None, **overrides: Any) -> ServiceConfig:
    """Build a config from an optional TOML file plus overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServiceConfig(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source=str(path or "options"))) from exc


def describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
