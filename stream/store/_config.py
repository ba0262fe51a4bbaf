"""How a new series store is laid out and how often buffered frames reach the disk."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

#: The most frames one shard holds (a shard is buffered whole before it is written).
MAX_FRAMES_PER_SHARD = 256


class StoreConfig(BaseModel):
    """The ``[store]`` table: layout of new stores, durability and IO threads."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    frames_per_shard: int = Field(
        0,
        ge=0,
        le=MAX_FRAMES_PER_SHARD,
        description="frames buffered per shard write; 0 picks ~16 MiB worth",
    )
    codec: Literal["zstd", "lz4", "none"] = "lz4"
    clevel: int = Field(1, ge=0, le=9)
    flush_interval_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="partial shards older than this are written (crash safety: a kill -9 "
        "loses up to this much of a slow stream; at most an hour)",
    )
    fsync: StrictBool = Field(
        False,
        description="fsync every file written: survives a power cut, not only a killed "
        "process, at some cost in throughput",
    )
    io_threads: int = Field(
        2, ge=1, le=64, description="threads that compress and write (tensorstore's pools)"
    )
