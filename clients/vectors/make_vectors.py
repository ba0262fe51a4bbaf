#!/usr/bin/env python3
"""Generate the golden vectors of wire protocol v1 (see ``clients/PROTOCOL.md``).

Deterministic: the same msgpack and numpy produce the same bytes, byte for byte.
This script uses msgpack and numpy directly, on purpose: it is a third, independent
encoder beside the service's (``stream._protocol``) and the Python client's
(``deepdenoise_client``), and all three are tested against its output.

Usage::

    python clients/vectors/make_vectors.py           # (re)write the vectors here
    python clients/vectors/make_vectors.py --check   # exit 1 if the files are stale
    python clients/vectors/make_vectors.py --out DIR # write somewhere else

Files written: ``<name>.bin`` per message (each part as a 4-byte little-endian
unsigned length followed by the part's bytes) and ``vectors.json`` describing them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import struct
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

HERE = Path(__file__).resolve().parent

#: Canonical key order (PROTOCOL.md, "Canonical encoding"); other keys follow in
#: the order they were given.
CANONICAL_ORDER = (
    "v", "kind", "series", "index", "dtype", "shape", "t_ns", "meta", "resend",
    "model", "t_recv_ns", "t_done_ns",
)  # fmt: skip
#: In `vectors.json`, a control request's bin `labels` is this string; its bytes are the
#: entry's `pixels` in `dtype` and `shape`, C order.
BIN_LABELS = "<bin: pixels>"

#: Defaults of the reference service (``stream._config.Limits``) the vectors assume.
LIMITS = {
    "max_header_bytes": 64 * 1024,
    "max_meta_bytes": 8 * 1024,
    "max_side": 16384,
    "max_payload_bytes": 256 * 1024 * 1024,
}

#: Frames with at most this many pixels list them in vectors.json.
MAX_LISTED_PIXELS = 64

T_NS = 1_700_000_000_123_456_789  # needs 64-bit integers (not exact as a double)
MODEL = "5d41402abc4b"

_SCALAR_LIST = re.compile(r"\[[^\[\]{}]*\]")
_SCALAR_MAP = re.compile(r"\{[^\[\]{}]*\}")


def canonical(header: dict[str, Any]) -> dict[str, Any]:
    ordered = {k: header[k] for k in CANONICAL_ORDER if k in header}
    ordered.update((k, v) for k, v in header.items() if k not in ordered)
    return ordered


def pack(header: Any, *, order: bool = True) -> bytes:
    obj = canonical(header) if order and isinstance(header, dict) else header
    return msgpack.packb(obj, use_bin_type=True)


def frame_header(series: str, index: int, arr: np.ndarray, **extra: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "v": 1,
        "kind": "frame",
        "series": series,
        "index": index,
        "dtype": arr.dtype.str,
        "shape": [int(s) for s in arr.shape],
    }
    header.update(extra)
    return header


def json_pixel(x: Any) -> Any:
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
    return x


class Vectors:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}

    def add(
        self,
        name: str,
        description: str,
        parts: list[bytes],
        *,
        header: Any = None,
        array: np.ndarray | None = None,
        dtype: str | None = None,
        shape: list[int] | None = None,
        valid: bool = True,
        direction: str = "input",
        canonical: bool = True,
        reject_reason: str | None = None,
        limits: dict[str, int] | None = None,
    ) -> None:
        assert name not in self.files, name
        assert valid == (reject_reason is None), name
        blob = b"".join(struct.pack("<I", len(p)) + p for p in parts)
        file = f"{name}.bin"
        self.files[file] = blob
        payload = parts[2] if len(parts) == 3 else None
        if array is not None:
            dtype = array.dtype.str
            shape = [int(s) for s in array.shape]
        entry: dict[str, Any] = {
            "name": name,
            "file": file,
            "description": description,
            "valid": valid,
            "direction": direction,
            "canonical": canonical if valid else False,
            "parts": len(parts),
            "topic": parts[0].decode("ascii") if parts and direction != "control" else None,
            "header": header,
            "dtype": dtype,
            "shape": shape,
            "payload_bytes": None if payload is None else len(payload),
            "payload_sha256": None if payload is None else hashlib.sha256(payload).hexdigest(),
            "pixels": None,
            "reject_reason": reject_reason,
        }
        if array is not None and (array.size <= MAX_LISTED_PIXELS or direction == "control"):
            entry["pixels"] = [json_pixel(x) for x in array.ravel().tolist()]
        if limits is not None:
            entry["limits"] = limits
        self.entries.append(entry)

    def message(
        self,
        name: str,
        description: str,
        topic: bytes,
        header: dict[str, Any],
        array: np.ndarray | None = None,
        **kw: Any,
    ) -> None:
        """A valid (or header-valid) message encoded canonically."""
        parts = [topic, pack(header)]
        if array is not None:
            parts.append(np.ascontiguousarray(array).tobytes())
        self.add(name, description, parts, header=canonical(header), array=array, **kw)


def valid_vectors(vs: Vectors) -> None:
    u1_1x1 = np.array([[7]], dtype="|u1")
    vs.message(
        "frame_u1_1x1",
        "Smallest frame: 1x1 |u1, minimal header (no t_ns, no meta).",
        b"frame",
        frame_header("s1", 0, u1_1x1),
        u1_1x1,
    )
    u1 = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 127, 128, 254, 255]], dtype="|u1")
    vs.message(
        "frame_u1_3x5",
        "3x5 |u1 frame (odd shape, full value range), index 200 (uint8 encoding 0xcc).",
        b"frame",
        frame_header("cell-01", 200, u1),
        u1,
    )
    u2 = np.array(
        [[0, 1, 258, 4095, 65535], [100, 200, 300, 400, 500], [1000, 2000, 3000, 4000, 5000]],
        dtype="<u2",
    )
    vs.message(
        "frame_u2_3x5",
        "3x5 <u2 frame; pixel 258 = 0x0102 is written 02 01 (little-endian); index 300 "
        "(uint16 encoding 0xcd).",
        b"frame",
        frame_header("cell-01", 300, u2),
        u2,
    )
    i2 = np.array(
        [[-32768, -1, 0], [1, 32767, -300], [7, -7, 256], [-256, 12345, -12345], [2, 3, 5]],
        dtype="<i2",
    )
    vs.message(
        "frame_i2_5x3",
        "5x3 <i2 frame with negative values; index 70000 (uint32 encoding 0xce).",
        b"frame",
        frame_header("cell-01", 70000, i2),
        i2,
    )
    f4 = np.array([[0.5, -1.25, 3.0], [1024.0, -0.0, 0.015625]], dtype="<f4")
    vs.message(
        "frame_f4_2x3",
        "2x3 <f4 frame (exact binary fractions, a negative zero).",
        b"frame",
        frame_header("cell-01", 0, f4),
        f4,
    )
    nf = np.array([[np.nan, np.inf, -np.inf, 1.0]], dtype="<f4")
    vs.message(
        "frame_f4_nonfinite",
        "1x4 <f4 frame holding NaN, +inf and -inf: a valid input (the service counts them, "
        "see `non_finite`). In `pixels` they are the strings NaN, Infinity, -Infinity.",
        b"frame",
        frame_header("cell-01", 1, nf),
        nf,
    )
    meta = {
        "exposure_ms": 12.5,
        "objective": "60x/1.4 oil",
        "stage_um": [101.25, -3.5, 7.0625],
        "channel": {"name": "GFP", "wavelength_nm": 488, "power": 0.75, "on": True},
        "roi": [0, 0, 4, 2],
        "offset": -1000,
        "binning": -1,
        "note": None,
    }
    u2b = (np.arange(8, dtype="<u2") * 1000 + 7).reshape(2, 4)
    vs.message(
        "frame_u2_t_ns_meta",
        "2x4 <u2 frame with t_ns (uint64) and a nested meta map (float64, str, list, map, "
        "bool, nil, negative ints).",
        b"frame",
        frame_header("exp_2024-05-01.a", 4294967296, u2b, t_ns=T_NS, meta=meta),
        u2b,
    )
    vs.message(
        "frame_resend",
        "A frame marked as a resend: it overwrites an index already received (without "
        "`resend`, a second frame of an index is rejected as `duplicate`).",
        b"frame",
        {**frame_header("s1", 5, u1_1x1), "resend": True},
        u1_1x1,
    )
    vs.message(
        "frame_kind_absent",
        "A frame without `kind` (it defaults to frame). Canonical: re-encoding the "
        "decoded header gives these bytes.",
        b"frame",
        {k: v for k, v in frame_header("s1", 5, u1_1x1).items() if k != "kind"},
        u1_1x1,
    )
    reordered = frame_header("s1", 6, u1_1x1, t_ns=T_NS)
    reordered = dict(reversed(list(reordered.items())))
    vs.add(
        "frame_key_order",
        "Keys in reverse canonical order: decoders must accept any order. Not canonical, "
        "so re-encoding gives different bytes (the header listed here is in wire order).",
        [b"frame", pack(reordered, order=False), u1_1x1.tobytes()],
        header=reordered,
        array=u1_1x1,
        canonical=False,
    )
    vs.message(
        "frame_t_ns_nil",
        "A frame with `t_ns` nil: the same as no `t_ns` (an acquisition without a clock "
        "may write nil). Not canonical: an encoder leaves `t_ns` out instead.",
        b"frame",
        {**frame_header("s1", 8, u1_1x1), "t_ns": None},
        u1_1x1,
        canonical=False,
    )
    vs.message(
        "frame_unknown_keys",
        "Unknown keys are ignored by decoders (and kept, after the known keys, by the "
        "canonical order).",
        b"frame",
        frame_header("s1", 7, u1_1x1, x_exposure_ms=10.25, x_operator="ada"),
        u1_1x1,
    )
    vs.message(
        "frame_topic_suffix",
        "Topic `frame/cam2`: any topic that starts with the subscribed prefix (default "
        "`frame`) is input.",
        b"frame/cam2",
        frame_header("s1", 8, u1_1x1),
        u1_1x1,
    )
    long_series = "A" * 30 + "z" * 30 + "0.-_"
    assert len(long_series) == 64
    vs.message(
        "frame_series_64",
        "Series id of the maximum length (64 chars, all allowed character classes).",
        b"frame",
        frame_header(long_series, 9, u1_1x1),
        u1_1x1,
    )
    wide = (np.arange(16384) % 251).astype("|u1").reshape(1, 16384)
    vs.message(
        "frame_u1_1x16384",
        "1x16384 |u1: the largest side allowed (16 KiB payload).",
        b"frame",
        frame_header("s1", 10, wide),
        wide,
    )
    meta_max = {"text": ""}
    fixed = len(pack(meta_max))
    meta_max["text"] = "m" * (LIMITS["max_meta_bytes"] - fixed - 2)  # str16: +2 header bytes
    assert len(pack(meta_max)) == LIMITS["max_meta_bytes"]
    vs.message(
        "frame_meta_8192",
        "meta of exactly 8192 bytes encoded (the limit, inclusive); its str uses str16.",
        b"frame",
        frame_header("s1", 11, u1_1x1, meta=meta_max),
        u1_1x1,
    )
    vs.message(
        "start_series",
        "Start of a series: header only, no payload part.",
        b"frame",
        {"v": 1, "kind": "start", "series": "cell-01", "t_ns": T_NS},
    )
    vs.message(
        "end_series",
        "End of a series: header only, no payload part.",
        b"frame",
        {"v": 1, "kind": "end", "series": "cell-01", "t_ns": T_NS + 5_000_000_000},
    )

    # --- output messages -------------------------------------------------------------
    out = (u2.astype("<f4") * np.float32(0.5)).astype("<f4")
    vs.message(
        "denoised_f4",
        "Output `denoised` for input frame_u2_3x5: the input header with dtype <f4, plus "
        "model, t_recv_ns and t_done_ns.",
        b"denoised",
        {
            **frame_header("cell-01", 300, out),
            "model": MODEL,
            "t_recv_ns": T_NS + 1_000,
            "t_done_ns": T_NS + 2_501_000,
        },
        out,
        direction="output",
    )
    out_u2 = np.array([[0, 1, 258, 4095, 65535], [99, 201, 300, 401, 500]], dtype="<u2")
    vs.message(
        "denoised_u2",
        "Output `denoised` in the input dtype (rounded and clipped), with the input's "
        "t_ns and meta passed through.",
        b"denoised",
        {
            **frame_header("cell-02", 12, out_u2, t_ns=T_NS, meta={"exposure_ms": 12.5}),
            "model": MODEL,
            "t_recv_ns": T_NS + 1_000,
            "t_done_ns": T_NS + 2_501_000,
        },
        out_u2,
        direction="output",
    )
    out_nf = np.array([[np.nan, np.nan, np.nan, 0.75]], dtype="<f4")
    vs.message(
        "denoised_non_finite",
        "Output for input frame_f4_nonfinite: `non_finite` counts the non-finite input "
        "pixels, which are NaN in the output.",
        b"denoised",
        {
            **frame_header("cell-01", 1, out_nf),
            "model": MODEL,
            "t_recv_ns": T_NS + 1_000,
            "t_done_ns": T_NS + 2_501_000,
            "non_finite": 3,
        },
        out_nf,
        direction="output",
    )
    vs.message(
        "raw_u2",
        "Output `raw` (service option publish_raw) for input frame_u2_3x5 sent with t_ns "
        "and meta: the input header as received, plus t_recv_ns; the payload unchanged.",
        b"raw",
        {
            **frame_header("cell-01", 300, u2, t_ns=T_NS, meta={"exposure_ms": 12.5}),
            "t_recv_ns": T_NS + 1_000,
        },
        u2,
        direction="output",
    )
    vs.message(
        "status",
        "A `status` heartbeat (header only). Canonical order puts `series` and `model` "
        "right after `v`. `state`, `sanitized`, `zarr` and `events_suppressed` are "
        "extra fields the reference service sends (decoders ignore what they don't know).",
        b"status",
        {
            "v": 1,
            "uptime_s": 12.5,
            "frames_in": 1200,
            "frames_out": 1180,
            "dropped": {"paused": 15, "inference_queue_full": 3},
            "rejected": {"dtype": 2},
            "queues": {"inference": 1, "publish": 0, "writer": 17},
            "fps": 99.75,
            "latency_ms": {"p50": 2.25, "p99": 7.5},
            "provider": "cuda",
            "model": MODEL,
            "series": {
                "cell-01": {
                    "frames_in": 1200,
                    "frames_out": 1180,
                    "last_index": 1201,
                    "gaps": 1,
                    "missing": 2,
                    "out_of_order": 0,
                }
            },
            "paused": False,
            "state": "running",
            "sanitized": {"non_finite": 1},
            "zarr": "deepdenoise-data",
            "events_suppressed": 0,
        },
        direction="output",
    )
    events: list[tuple[str, dict[str, Any]]] = [
        ("series_start", {"series": "cell-01", "resumed": False, "implicit": False}),
        ("series_end", {"series": "cell-01", "frames": 1200, "missing": 2}),
        ("gap", {"series": "cell-01", "first_missing": 17, "count": 2}),
        (
            "rejected",
            {
                "reason": "dtype",
                "message": "expected dtype one of |u1, <u2, <i2, <f4, got '>u2'",
                "series": "cell-01",
                "index": 18,
            },
        ),
        ("error", {"message": "CUDA out of memory; falling back to cpu"}),
        ("model_loaded", {"model": MODEL, "provider": "cpu"}),
        (
            "provider_fallback",
            {
                "from": "cuda",
                "to": "cpu",
                "reason": "RuntimeError: CUDA failure 700: an illegal memory access",
                "when": "run",
            },
        ),
    ]
    for event, fields in events:
        vs.message(
            f"event_{event}",
            f"An `event` message, event {event} (header only).",
            b"event",
            {"v": 1, "event": event, "t_ns": T_NS, **fields},
            direction="output",
        )


def closed_loop_vectors(vs: Vectors) -> None:
    """`traces` and `trigger` outputs, and the control requests (one part each)."""
    values = np.array(
        [[1012.5, 1003.25, 0.125], [250.75, 248.5, -0.0625], [np.nan, np.nan, np.nan]],
        dtype="<f4",
    )
    traces = {
        "v": 1,
        "series": "cell-01",
        "index": 300,
        "dtype": "<f4",
        "shape": [3, 3],
        "t_ns": T_NS,
        "model": MODEL,
        "t_recv_ns": T_NS + 1_000,
        "t_done_ns": T_NS + 2_501_000,
        "t_traces_ns": T_NS + 2_583_000,
        "rois": 3,
        "columns": ["raw", "denoised", "dff"],
        "labels": [3, 7, 40],
    }
    vs.message(
        "traces",
        "A `traces` output: 3 ROIs (labels 3, 7, 40; rows in that order) x the columns "
        "raw, denoised, dff; ROI 40 had a NaN pixel.",
        b"traces",
        traces,
        values,
        direction="output",
    )
    with_denoiser = np.array([[0.5, 0.5, 0.25, 0.1875]], dtype="<f4")
    vs.message(
        "traces_dff_denoised",
        "A `traces` output with the trace denoiser on: the extra column dff_denoised.",
        b"traces",
        {**traces, "shape": [1, 4], "rois": 1,
         "columns": ["raw", "denoised", "dff", "dff_denoised"], "labels": [1]},
        with_denoiser,
        direction="output",
    )  # fmt: skip
    vs.message(
        "trigger",
        "A `trigger` output (header only): rule `cell7` fired on frame 300, ROI 7's dff "
        "0.75 rose through 0.5.",
        b"trigger",
        {
            "v": 1,
            "series": "cell-01",
            "index": 300,
            "t_ns": T_NS,
            "t_recv_ns": T_NS + 1_000,
            "t_done_ns": T_NS + 2_501_000,
            "rule": "cell7",
            "column": "dff",
            "value": 0.75,
            "threshold": 0.5,
            "rois": [7],
        },
        direction="output",
    )
    labels = np.array([[0, 0, 7, 7, 0], [3, 0, 7, 7, 0], [3, 0, 0, 0, 40], [0, 0, 0, 0, 40]],
                      dtype="<u2")  # fmt: skip
    request = {"cmd": "set_rois", "series": "cell-01", "dtype": "<u2", "shape": [4, 5]}
    vs.add(
        "control_set_rois",
        "A `set_rois` control request (one part): a 4x5 <u2 label image for series cell-01; "
        "`labels` is bin holding `pixels`.",
        [msgpack.packb({**request, "labels": labels.tobytes()}, use_bin_type=True)],
        header={**request, "labels": BIN_LABELS},
        array=labels,
        direction="control",
    )
    options = {"fit": True, "source": "rois/cells.npy"}
    vs.add(
        "control_set_rois_fit_source",
        "`set_rois` with its optional arguments, after `labels`: `fit` true (the image is the "
        "ROIs' extent from the frame's top-left corner) and `source` (where the labels came "
        "from).",
        [msgpack.packb({**request, "labels": labels.tobytes(), **options}, use_bin_type=True)],
        header={**request, "labels": BIN_LABELS, **options},
        array=labels,
        direction="control",
    )
    for name, description, message in (
        ("control_set_rois_clear", "`set_rois` removing every series' ROIs.",
         {"cmd": "set_rois", "labels": None}),
        ("control_status", "The `status` request.", {"cmd": "status"}),
        ("control_load_model", "A `load_model` request.",
         {"cmd": "load_model", "path": "/models/dncnn.onnx"}),
        ("control_end_series", "An `end_series` request for series cell-01.",
         {"cmd": "end_series", "series": "cell-01"}),
    ):  # fmt: skip
        vs.add(name, description, [msgpack.packb(message, use_bin_type=True)], header=message,
               direction="control")  # fmt: skip


def invalid_vectors(vs: Vectors) -> None:
    arr = np.arange(15, dtype="<u2").reshape(3, 5)
    good = frame_header("s1", 0, arr)
    payload = arr.tobytes()

    def bad(
        name: str,
        reason: str,
        description: str,
        parts: list[bytes],
        header: Any = None,
        **kw: Any,
    ) -> None:
        vs.add(
            f"invalid_{name}",
            description,
            parts,
            header=header,
            valid=False,
            reject_reason=reason,
            **kw,
        )

    def bad_header(name: str, reason: str, description: str, header: dict[str, Any],
                   body: bytes | None = payload, **kw: Any) -> None:  # fmt: skip
        parts = [b"frame", pack(header)] + ([] if body is None else [body])
        bad(name, reason, description, parts, header=canonical(header), **kw)

    # parts
    bad("parts_1", "parts", "A single part (topic only).", [b"frame"])
    bad(
        "parts_4",
        "parts",
        "Four parts: a valid frame followed by an extra part.",
        [b"frame", pack(good), payload, b"extra"],
        header=canonical(good),
    )
    bad_header(
        "parts_frame_without_payload",
        "parts",
        "A valid frame header but no payload part (2 parts).",
        good,
        body=None,
    )
    # header_size
    big = dict(good)
    big["x_pad"] = ""
    big["x_pad"] = "p" * (LIMITS["max_header_bytes"] + 1 - len(pack(big)) - 2)  # str16: +2
    assert len(pack(big)) == LIMITS["max_header_bytes"] + 1
    bad(
        "header_size",
        "header_size",
        "Header of 65537 bytes, one over the 64 KiB limit (otherwise valid: the padding "
        "is an unknown key). This file is about 64 KiB; `header` is not listed.",
        [b"frame", pack(big), payload],
    )
    # header_decode
    bad(
        "header_garbage",
        "header_decode",
        "Header bytes that are not msgpack (0xc1 is never used).",
        [b"frame", b"\xc1 not msgpack", payload],
    )
    bad(
        "header_truncated",
        "header_decode",
        "A valid header with its last byte cut off.",
        [b"frame", pack(good)[:-1], payload],
    )
    bad(
        "header_extra_bytes",
        "header_decode",
        "A valid header followed by one more byte (0xc0, nil): the header part must "
        "hold exactly one msgpack object.",
        [b"frame", pack(good) + b"\xc0", payload],
    )
    bad(
        "header_not_map",
        "header_decode",
        "Header is a msgpack array, not a map.",
        [b"frame", pack([1, "frame", "s1", 0]), payload],
    )
    int_key = dict(good)
    int_key[7] = "x"  # type: ignore[index]
    bad(
        "header_int_key",
        "header_decode",
        "A map key that is an integer, not a str (keys must be str at every depth).",
        [b"frame", pack(int_key), payload],
    )
    bin_key = dict(good)
    bin_key[b"x_note"] = 1  # type: ignore[index]
    bad(
        "header_bin_key",
        "header_decode",
        "An (unknown) map key written as msgpack bin (c4 06 'x_note') instead of str: "
        "keys must be str at every depth. `header` is not listed.",
        [b"frame", pack(bin_key), payload],
    )
    bad_utf8 = dict(good, x_note="@@")
    raw = pack(bad_utf8)
    assert raw.count(b"\xa2@@") == 1
    bad(
        "header_invalid_utf8",
        "header_decode",
        "A str value (of an unknown key) holding invalid UTF-8 (ff fe): every str "
        "must be valid UTF-8.",
        [b"frame", raw.replace(b"\xa2@@", b"\xa2\xff\xfe"), payload],
    )
    # version
    bad_header("version_2", "version", "v = 2.", {**good, "v": 2})
    bad_header(
        "version_missing", "version", "No `v` key.", {k: v for k, v in good.items() if k != "v"}
    )
    bad_header("version_str", "version", 'v = "1" (a str, not an int).', {**good, "v": "1"})
    bad_header("version_bool", "version", "v = true (a bool, not an int).", {**good, "v": True})
    bad_header(
        "version_float",
        "version",
        "v = 1.0 as float64 (0xcb): a float, not an int.",
        {**good, "v": 1.0},
    )
    # kind
    bad_header("kind_unknown", "kind", 'kind = "stop".', {**good, "kind": "stop"})
    bad(
        "kind_bin",
        "kind",
        "kind written as msgpack bin (c4 05 'frame') instead of str. `header` is not "
        "listed (JSON cannot tell bin from str).",
        [b"frame", pack({**good, "kind": b"frame"}), payload],
    )
    # series
    bad_header("series_slash", "series", 'series "cell/01" (slash not allowed).',
               {**good, "series": "cell/01"})  # fmt: skip
    bad_header("series_empty", "series", "Empty series id.", {**good, "series": ""})
    bad_header("series_65", "series", "Series id of 65 chars.", {**good, "series": "a" * 65})
    bad_header(
        "series_missing", "series", "No `series` key.",
        {k: v for k, v in good.items() if k != "series"},
    )  # fmt: skip
    bad_header("series_non_ascii", "series", 'series "zelle-\u00e4" (non-ASCII letter).',
               {**good, "series": "zelle-\u00e4"})  # fmt: skip
    bad_header("series_dot", "series", 'series ".." (starts with a dot: a hidden folder).',
               {**good, "series": ".."})  # fmt: skip
    bad(
        "series_bin",
        "series",
        "series written as msgpack bin instead of str. `header` is not listed.",
        [b"frame", pack({**good, "series": b"s1"}), payload],
    )
    # index
    bad_header("index_negative", "index", "index = -1.", {**good, "index": -1})
    bad_header(
        "index_missing", "index", "A frame without `index`.",
        {k: v for k, v in good.items() if k != "index"},
    )  # fmt: skip
    bad_header("index_float", "index", "index = 3.0 (float64, not an int).",
               {**good, "index": 3.0})  # fmt: skip
    bad_header("index_2_40", "index", "index = 2**40 (one past the largest, 2**40 - 1).",
               {**good, "index": 2**40})  # fmt: skip
    # dtype
    bad_header("dtype_big_endian", "dtype", 'dtype ">u2" (big-endian).', {**good, "dtype": ">u2"})
    bad_header(
        "dtype_no_byte_order",
        "dtype",
        'dtype "u2" (no byte-order character).',
        {**good, "dtype": "u2"},
    )
    f8 = np.zeros((3, 5), dtype="<f8")
    bad_header("dtype_f8", "dtype", 'dtype "<f8" (float64 is not accepted).',
               frame_header("s1", 0, f8), body=f8.tobytes())  # fmt: skip
    # shape
    bad_header("shape_zero", "shape", "shape [0, 5] (payload of 0 bytes).",
               {**good, "shape": [0, 5]}, body=b"")  # fmt: skip
    bad_header("shape_3d", "shape", "shape [2, 3, 4]: three dimensions (payload 48 bytes).",
               {**good, "shape": [2, 3, 4]}, body=bytes(48))  # fmt: skip
    bad_header("shape_1d", "shape", "shape [15]: one dimension (payload 30 bytes).",
               {**good, "shape": [15]}, body=payload)  # fmt: skip
    bad_header(
        "shape_16385",
        "shape",
        "shape [16385, 1] |u1: a side over 16384 (payload 16385 bytes, matching the shape).",
        {**good, "dtype": "|u1", "shape": [16385, 1]},
        body=bytes(16385),
    )
    # payload_size
    bad_header(
        "payload_size",
        "payload_size",
        "shape [16384, 16384] <f4 needs 1 GiB, over the default payload limit of 256 MiB "
        "(`limits`); decided from the header before the payload length is compared, so the "
        "payload here is only 16 bytes.",
        {**good, "dtype": "<f4", "shape": [16384, 16384]},
        body=bytes(16),
        limits={"max_payload_bytes": LIMITS["max_payload_bytes"]},
    )
    # payload_length
    bad_header("payload_short", "payload_length", "3x5 <u2 needs 30 bytes; the payload has 29.",
               good, body=payload[:-1])  # fmt: skip
    bad_header("payload_long", "payload_length", "3x5 <u2 needs 30 bytes; the payload has 31.",
               good, body=payload + b"\x00")  # fmt: skip
    # payload_unexpected
    bad_header(
        "start_with_payload",
        "payload_unexpected",
        "A start message with a payload part.",
        {"v": 1, "kind": "start", "series": "s1"},
        body=b"\x00\x01",
    )
    # t_ns
    bad_header("t_ns_negative", "t_ns", "t_ns = -1.", {**good, "t_ns": -1})
    bad_header("t_ns_str", "t_ns", "t_ns as a str.", {**good, "t_ns": str(T_NS)})
    bad_header("t_ns_float", "t_ns", "t_ns as float64.", {**good, "t_ns": 1.7e18})
    bad_header("t_ns_2_63", "t_ns", "t_ns = 2**63 (one past the largest, an int64 on disk).",
               {**good, "t_ns": 2**63})  # fmt: skip
    # resend
    bad_header("resend_int", "resend", "resend = 1 (an int, not true/false).",
               {**good, "resend": 1})  # fmt: skip
    # meta
    meta = {"text": ""}
    meta["text"] = "m" * (LIMITS["max_meta_bytes"] + 1 - len(pack(meta)) - 2)
    assert len(pack(meta)) == LIMITS["max_meta_bytes"] + 1
    bad(
        "meta_8193",
        "meta",
        "meta of 8193 bytes encoded, one over the 8 KiB limit; `header` is not listed.",
        [b"frame", pack({**good, "meta": meta}), payload],
    )
    bad_header("meta_not_map", "meta", "meta is an array, not a map.",
               {**good, "meta": [1, 2, 3]})  # fmt: skip


def build() -> Vectors:
    vs = Vectors()
    valid_vectors(vs)
    closed_loop_vectors(vs)
    invalid_vectors(vs)
    return vs


def render(vs: Vectors) -> dict[str, bytes]:
    doc = {
        "protocol_version": 1,
        "generator": "clients/vectors/make_vectors.py",
        "file_format": "each part: uint32 little-endian length, then that many bytes",
        "limits": LIMITS,
        "vectors": vs.entries,
    }
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    # Lists and maps of scalars (shape, pixels, small maps) on one line keep it short.
    for pattern in (_SCALAR_LIST, _SCALAR_MAP):
        text = pattern.sub(lambda m: " ".join(m.group(0).split()), text)
    text += "\n"
    assert json.loads(text) == doc, "compacting changed the JSON"
    return {**vs.files, "vectors.json": text.encode()}


def write(files: dict[str, bytes], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.bin"):
        if stale.name not in files:
            stale.unlink()
    for name, data in files.items():
        (out / name).write_bytes(data)


def stale_files(files: dict[str, bytes], out: Path) -> Iterable[str]:
    present = {p.name for p in out.glob("*.bin")} | {"vectors.json"}
    for name in sorted(present | set(files)):
        path = out / name
        if name not in files or not path.exists() or path.read_bytes() != files[name]:
            yield name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files = render(build())
    if args.check:
        stale = list(stale_files(files, args.out))
        if stale:
            print(f"stale or missing vector files in {args.out}: {', '.join(stale)}")
            print("regenerate with: python clients/vectors/make_vectors.py")
            return 1
        print(f"{len(files) - 1} vectors in {args.out} are up to date")
        return 0
    write(files, args.out)
    total = sum(len(b) for b in files.values())
    print(f"wrote {len(files) - 1} vectors + vectors.json to {args.out} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
