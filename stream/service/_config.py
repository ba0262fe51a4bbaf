"""Service configuration: one pydantic model, loadable from TOML, overridable from the CLI."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from .._errors import ModelError
from .._settings import load_settings
from .._types import DEFAULT_CONTROL, DEFAULT_INPUT, DEFAULT_OUTPUT, Endpoint, GivenPath
from ..camera import CameraModel, SpikePolicy
from ..engine import BlendSetting, GpuConfig, model_file
from ..protocol import Limits
from ..store import StoreConfig
from ..traces import TraceConfig
from ._ensemble import EnsembleSetting
from ._security import SecurityConfig

log = logging.getLogger(__name__)

Provider = Literal["auto", "cpu", "cuda", "tensorrt"]
InputMode = Literal["sub", "pull"]
OverflowPolicy = Literal["drop_oldest", "block"]
OutputDtype = Literal["float32", "input"]
#: The memory budget is split in four: the input and PUB sockets' buffers (libzmq's
#: own, bounded in messages of the warm-up frame size), the stage queues, the stores.
SHARE = 0.25
#: Settings holding paths: relative ones in a config file are relative to its folder.
PATH_FIELDS = (
    "model",
    "model_dirs",
    "zarr",
    "security.secret_key",
    "security.clients",
    "security.input_server_key",
    "gpu.cache_dir",
    "traces.rois",
    "traces.denoiser",
    "offset_map",
)


class QueueConfig(BaseModel):
    """Bounded queues between stages and what each does when full."""

    model_config = ConfigDict(extra="forbid")

    inference_depth: int = Field(
        4,
        ge=1,
        description="frames waiting for the engine; when it blocks (PULL input), frames "
        "beyond it wait too, read and stored raw, up to the memory budget, and on stop "
        "those beyond it that the drain has not denoised are counted (dropped.shutdown)",
    )
    inference_overflow: OverflowPolicy | None = Field(
        None,
        description="drop_oldest keeps live latency low (counted); block back-pressures the "
        "input; None: block for PULL input (lossless), drop_oldest for SUB (newest frame)",
    )
    publish_depth: int = Field(32, ge=1, description="denoised frames waiting to be sent")
    writer_depth: int = Field(
        2048, ge=16, description="frames waiting for disk; the writer never drops, it blocks"
    )
    receive_hwm: int | None = Field(
        None,
        ge=1,
        description="ZMQ receive high-water mark (messages); None: a quarter of the memory "
        "budget in warm-up-sized frames of 4 bytes a pixel, 4..100000",
    )
    send_hwm: int | None = Field(
        None,
        ge=1,
        description="ZMQ send high-water mark of the PUB socket (messages per subscriber); "
        "None: a quarter of the memory budget in warm-up-sized float32 frames, 4..1000",
    )


class ServiceConfig(BaseModel):
    """Everything ``deepdenoise serve`` needs. Defaults bind to 127.0.0.1 only."""

    model_config = ConfigDict(extra="forbid")

    model: GivenPath | None = Field(
        None,
        description="ONNX model, or a shipped model's name (na-lite, na-temporal, na-large); "
        "None uses the shipped default",
    )
    input: Endpoint = DEFAULT_INPUT
    input_mode: InputMode = "sub"
    input_bind: StrictBool = False
    subscribe: str = Field("frame", description="topic prefix subscribed to in SUB mode")
    output: Endpoint = DEFAULT_OUTPUT
    control: Endpoint = DEFAULT_CONTROL
    zarr: Path | None = Field(Path("deepdenoise-data"), description="store folder; None: off")
    output_dtype: OutputDtype = "float32"
    publish_raw: StrictBool = Field(
        False,
        description="also publish every received frame, as it came, on topic raw (for live "
        "viewers); it shares the publish queue with the denoised frames",
    )
    tile: int | None = Field(None, ge=16, le=16384)
    overlap: int | None = Field(None, ge=0, le=8192)
    provider: Provider = "auto"
    ensemble: EnsembleSetting = Field(
        "auto",
        description="self-ensemble passes per frame (1, 2, 4: the model also runs on "
        "mirrored copies, averaged; each pass one more inference); auto: more than 1 only "
        "when no frame waits and they fit in ensemble_budget of the frame interval",
    )
    ensemble_budget: float = Field(
        0.5, gt=0, le=1, description="auto: the share of the frame interval passes may take"
    )
    blend: BlendSetting = Field(
        "spatial",
        description="spatial: a noise-adaptive model told a noise map 0.8, 1 or 1.2 "
        "times the camera's, its output blurred and mixed with a Gaussian of the input or "
        "with its output on the frame binned 2 x 2, as Stein's unbiased risk estimate of "
        "the series' own frames says helps (measured on a few frames with five more "
        "passes each and two on the binned frame, in the series' spare time, but its "
        "first frame before it is served when its noise variance is known within 25 %); "
        "spatiotemporal: also with the series' running mean (a temporal "
        "model: more PSNR on still scenes, less of each frame's own change); off: the "
        "model's output as it is",
    )
    spikes: SpikePolicy = Field(
        "correct",
        description="one-pixel spikes far above their neighbours and the scene (hot "
        "pixels, cosmic rays) and holes far below the offset (noisy or dead pixels), "
        "before a noise-adaptive model: replaced by their neighbours' median for "
        "inference; the output holds the model's estimate there (correct) or the pixel as "
        "it came (pass); off: not looked for",
    )
    follow: Literal["balanced", "events"] = Field(
        "balanced",
        description="a temporal model's output moved toward its frame where the frame "
        "shows it lagging a change: balanced (the best PSNR) or events (fast events at low "
        "light nearer their height and onset: transient onsets 21 ms off the truth for 89 "
        "at 1 photon per pixel, 0.4-0.8 dB less PSNR; README, Models); a spatial model "
        "is not touched",
    )
    gpu: GpuConfig = Field(default_factory=GpuConfig)
    security: SecurityConfig | None = Field(
        None, description="CURVE keys and allowed clients (deepdenoise keys); None: off"
    )
    model_dirs: list[GivenPath] = Field(
        default_factory=list,
        description="folders load_model may load from (besides the shipped models and the "
        "configured model's folder)",
    )
    camera: CameraModel | None = Field(
        None,
        description="the camera's gain, offset and read noise (the table `deepdenoise "
        "calibrate` prints) for noise-adaptive models; None: estimated live per series",
    )
    offset_map: GivenPath | None = Field(
        None,
        description="a dark-frame average, one value a pixel (.npy; `deepdenoise calibrate "
        "--offset-map` writes it): its pattern about its mean is subtracted from every "
        "frame of its shape before the model; None: none",
    )
    warmup_shape: tuple[int, int] | None = (512, 512)
    status_interval_s: float = Field(1.0, gt=0, le=3600)
    memory_budget_mb: float = Field(
        2048.0,
        gt=0,
        description="bytes the service may hold in frames: its queues, the stores' buffers, "
        "series history and the PUB send buffers; beyond it PULL input waits and SUB input "
        "drops frames (counted as memory_budget)",
    )
    # 30 s, not the 0.5 s it was: a stop after an MDA left 277 of its 300 frames not
    # denoised (a user's trial); a second Ctrl-C, SIGTERM or stop cuts it short
    drain_s: float = Field(
        30.0,
        ge=0,
        le=60,
        description="on stop, frames received are still denoised for at most this long; "
        "the rest is then read at once, stored raw, and counted where inference has no "
        "room (dropped.shutdown)",
    )
    # apart from drain_s: a live camera is never quiet, and a stop took all of drain_s
    # taking its new frames (a review)
    drain_input_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="on stop, input still coming is taken (stored, and denoised within "
        "drain_s) until it is quiet, for at most this long",
    )
    series_idle_end_s: float = Field(
        600.0,
        ge=0,
        description="an open series that takes no frame for this long is ended as if it "
        "sent `end` (store closed, history freed; a later frame resumes it); 0: never",
    )
    traces: TraceConfig = Field(default_factory=TraceConfig)
    limits: Limits = Field(default_factory=Limits)
    queues: QueueConfig = Field(default_factory=QueueConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("model_dirs")
    @classmethod
    def _absolute_dirs(cls, value: list[Path]) -> list[Path]:
        return [v.expanduser().absolute() for v in value]

    @field_validator("camera", mode="before")
    @classmethod
    def _whole_camera(cls, value: Any) -> Any:
        # a [camera] without its offset or read noise would take the phantom's defaults
        # (100 ADU, 1.5 ADU) without a word: all three, as `calibrate` prints them
        if isinstance(value, dict):
            missing = [k for k in ("gain", "offset", "read_noise") if k not in value]
            if missing:
                raise ValueError(
                    f"expected gain, offset and read_noise (the [camera] `deepdenoise "
                    f"calibrate` prints), got no {' and no '.join(missing)}"
                )
        return value

    @field_validator("zarr", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # Path("") is the working folder: `--zarr ""` (a script's unset variable) wrote
        # the stores there without a word
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"expected a path, got {value!r} (no stores: --no-zarr; the default: "
                "leave the setting out)"
            )
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _shipped_by_name(cls, value: Any) -> Any:
        # A name with no file behind it (``na-temporal``; in a config file, made relative
        # to the file's folder): the shipped model of that name, else an error naming
        # them; a path with a suffix is left for the engine, which says what is wrong.
        if isinstance(value, str | Path) and value:
            try:
                found = model_file(value)
            except ModelError as exc:  # no file, and no shipped model of that name
                raise ValueError(f"{value}: no such file, and {exc}") from None
            return str(found) if isinstance(value, str) else found  # JSON input takes str
        return value

    @field_validator("model", "zarr", "offset_map")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Recorded in every store: an absolute path still says where it was afterwards;
        # a ``..`` step resolved (tensorstore refuses a store path with one)
        if value is None:
            return None
        path = value.expanduser().absolute()
        return path.resolve() if ".." in path.parts else path

    @model_validator(mode="after")
    def _tile_overlap(self) -> ServiceConfig:
        if self.tile is not None and self.overlap is not None and self.overlap >= self.tile:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than tile ({self.tile})")
        return self

    def _frames_in_share(self, limit: int) -> int:
        """Warm-up-sized float32 frames in a quarter of the budget (4..limit)."""
        h, w = self.warmup_shape or (512, 512)
        frames = SHARE * self.memory_budget_mb * 2**20 / (h * w * 4)
        return int(min(limit, max(4, frames)))

    @property
    def pub_hwm(self) -> int:
        """The PUB socket's high-water mark: configured, or from the memory budget."""
        if self.queues.send_hwm is not None:
            return self.queues.send_hwm
        return self._frames_in_share(1000)

    @property
    def receive_hwm(self) -> int:
        """The input socket's high-water mark: configured, or from the memory budget."""
        if self.queues.receive_hwm is not None:
            return self.queues.receive_hwm
        return self._frames_in_share(100_000)

    @property
    def queue_budget_bytes(self) -> int:
        """What the stage queues may hold: a quarter of the budget."""
        return int(SHARE * self.memory_budget_mb * 2**20)

    @property
    def store_budget_bytes(self) -> int:
        """What the stores' block buffers may hold before partial blocks are written."""
        return int(SHARE * self.memory_budget_mb * 2**20)

    @property
    def inference_overflow(self) -> OverflowPolicy:
        """The inference queue's policy: as configured, else by input mode."""
        if self.queues.inference_overflow is not None:
            return self.queues.inference_overflow
        return "block" if self.input_mode == "pull" else "drop_oldest"

    def warn_missing_model_dirs(self) -> None:
        """Log a warning for every ``model_dirs`` folder that is not there: `load-model`
        finds nothing in it (an operator's trial: taken without a word)."""
        for folder in self.model_dirs:
            if not folder.is_dir():
                log.warning("model_dirs: %s is no folder: load-model finds nothing there", folder)

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


def load_config(
    path: Path | None = None, options: Mapping[str, str] | None = None, **overrides: Any
) -> ServiceConfig:
    """A config from an optional TOML file plus overrides (None values are ignored).

    Relative ``model`` and ``zarr`` paths in the file are relative to the file's folder.
    ``options``: the command-line option each override came from, which an invalid
    value there is blamed on (not the file).
    """
    return load_settings(
        ServiceConfig, path, overrides=overrides, path_fields=PATH_FIELDS, options=options
    )
