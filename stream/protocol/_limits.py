"""What the receiver accepts; anything beyond is rejected with a reason code."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .._types import MAX_SIDE

#: The service's output may exceed its input limits by these factors, and clients
#: accept that much (PROTOCOL.md, section 7): a traces header lists every ROI's label,
#: and a float32 output of the largest ``|u1`` frame is 4 times its size.
OUTPUT_HEADER_FACTOR = 16
OUTPUT_PAYLOAD_FACTOR = 4


class Limits(BaseModel):
    """Size limits of input messages (the ``[limits]`` table of the service config)."""

    model_config = ConfigDict(extra="forbid")

    max_header_bytes: int = Field(64 * 1024, ge=256, description="msgpack header size limit")
    max_meta_bytes: int = Field(8 * 1024, ge=0, description="encoded size limit of `meta`")
    max_side: int = Field(MAX_SIDE, ge=1, le=MAX_SIDE, description="largest height or width")
    max_payload_bytes: int = Field(
        256 * 1024 * 1024, ge=1, description="largest pixel payload; also sets ZMQ_MAXMSGSIZE"
    )

    @property
    def max_output_header_bytes(self) -> int:
        """The largest header the service may send, and its clients accept."""
        return OUTPUT_HEADER_FACTOR * self.max_header_bytes
