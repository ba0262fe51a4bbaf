"""Python client for the deepdenoise streaming denoiser (wire protocol v1).

Publish frames to the service, subscribe to its denoised output, and control it;
the encoder and decoder are plain functions too. The protocol is specified in
``clients/PROTOCOL.md``; this package implements it from that text alone.
"""

from __future__ import annotations

from ._control import DEFAULT_CONTROL, Control
from ._curve import CurveKeys
from ._errors import ClientError, ClientTimeoutError, ControlError, ProtocolError
from ._protocol import (
    CANONICAL_KEYS,
    DEFAULT_LIMITS,
    DTYPES,
    LABEL_DTYPES,
    PROTOCOL_VERSION,
    TOPIC_DENOISED,
    TOPIC_EVENT,
    TOPIC_FRAME,
    TOPIC_RAW,
    TOPIC_STATUS,
    TOPIC_TRACES,
    TOPIC_TRIGGER,
    Limits,
    Message,
    canonical,
    check_series,
    decode_header,
    decode_message,
    encode_end,
    encode_frame,
    encode_header,
    encode_message,
    encode_request,
    encode_set_rois,
    encode_start,
)
from ._sockets import DEFAULT_INPUT, DEFAULT_OUTPUT, Publisher, Subscriber
from ._traces import Traces, TraceSubscriber, Trigger, parse_traces, parse_trigger
from ._version import __version__

__all__ = [
    "CANONICAL_KEYS",
    "DEFAULT_CONTROL",
    "DEFAULT_INPUT",
    "DEFAULT_LIMITS",
    "DEFAULT_OUTPUT",
    "DTYPES",
    "LABEL_DTYPES",
    "PROTOCOL_VERSION",
    "TOPIC_DENOISED",
    "TOPIC_EVENT",
    "TOPIC_FRAME",
    "TOPIC_RAW",
    "TOPIC_STATUS",
    "TOPIC_TRACES",
    "TOPIC_TRIGGER",
    "ClientError",
    "ClientTimeoutError",
    "Control",
    "ControlError",
    "CurveKeys",
    "Limits",
    "Message",
    "ProtocolError",
    "Publisher",
    "Subscriber",
    "TraceSubscriber",
    "Traces",
    "Trigger",
    "__version__",
    "canonical",
    "check_series",
    "decode_header",
    "decode_message",
    "encode_end",
    "encode_frame",
    "encode_header",
    "encode_message",
    "encode_request",
    "encode_set_rois",
    "encode_start",
    "parse_traces",
    "parse_trigger",
]
