"""Wire protocol v1: the message format every client and the service agree on.

``[topic, header]`` or ``[topic, header, payload]``: a shallow msgpack header map and
raw C-order pixels. Decoding validates every field and raises :class:`ProtocolError`
with a stable reason code (:class:`Reject`); encoding writes keys in canonical order so
messages are byte-for-byte reproducible. Specification: ``clients/PROTOCOL.md``.
"""

from ._limits import OUTPUT_HEADER_FACTOR, OUTPUT_PAYLOAD_FACTOR, Limits
from ._wire import (
    ACCEPTED_DTYPES,
    INPUT_KEYS,
    OUTPUT_EXTRA_KEYS,
    PROTOCOL_VERSION,
    TOPIC_DENOISED,
    TOPIC_EVENT,
    TOPIC_RAW,
    TOPIC_STATUS,
    TOPIC_TRACES,
    TOPIC_TRIGGER,
    Frame,
    Reject,
    SeriesMark,
    canonical,
    decode_input,
    denoised_header,
    frame_header,
    largest_traces_header_bytes,
    pack_header,
    raw_header,
    series_header,
    traces_header,
    trigger_header,
)

__all__ = [
    "ACCEPTED_DTYPES",
    "INPUT_KEYS",
    "OUTPUT_EXTRA_KEYS",
    "OUTPUT_HEADER_FACTOR",
    "OUTPUT_PAYLOAD_FACTOR",
    "PROTOCOL_VERSION",
    "TOPIC_DENOISED",
    "TOPIC_EVENT",
    "TOPIC_RAW",
    "TOPIC_STATUS",
    "TOPIC_TRACES",
    "TOPIC_TRIGGER",
    "Frame",
    "Limits",
    "Reject",
    "SeriesMark",
    "canonical",
    "decode_input",
    "denoised_header",
    "frame_header",
    "largest_traces_header_bytes",
    "pack_header",
    "raw_header",
    "series_header",
    "traces_header",
    "trigger_header",
]
