"""Annotated types shared by the config, the protocol, the simulator and the store.

Each rule lives here once: a ZeroMQ endpoint, a frame shape and a series name are
validated the same way wherever they enter (a TOML file, a CLI option, a wire header,
a store path), with messages that say what was expected and what came.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeGuard

from pydantic import AfterValidator, BeforeValidator

#: Largest frame side the protocol accepts (also the store's and simulator's limit).
MAX_SIDE = 16384
#: Frame indices are 0 <= index < MAX_INDEX: 2**40 frames is 35 years at 1000 fps, and
#: keeps the store's time axis (and its byte offsets) well inside int64.
MAX_INDEX = 2**40
#: Timestamps are 0 <= t_ns < MAX_T_NS: stored as int64 (year 2262).
MAX_T_NS = 2**63
#: A series name: 1-64 of ``[A-Za-z0-9._-]``, not starting with a dot (it is also a
#: folder name, and ``.``, ``..`` or ``.hidden`` would escape or hide it).
SERIES_PATTERN = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,64}")
#: A control character (C0, DEL, C1): refused in free text such as ``set_rois``' source.
#: A rule every client can check without a Unicode database, as ``str.isprintable`` is
#: not (its unassigned code points change with the Unicode version).
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
SERIES_RULE = "1-64 chars [A-Za-z0-9._-], not starting with '.'"
ENDPOINT_SCHEMES = ("tcp", "ipc", "inproc")


def check_endpoint(value: str) -> str:
    """A ZeroMQ endpoint ``tcp://host:port``, ``ipc://path`` or ``inproc://name``."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ENDPOINT_SCHEMES or not rest:
        raise ValueError(
            f"expected a ZeroMQ endpoint like tcp://127.0.0.1:5555 or ipc:///tmp/x, got {value!r}"
        )
    if scheme == "tcp" and not has_tcp_port(rest):
        # libzmq takes tcp://127.0.0.1:99999 and serves on port 34463 (99999 mod 65536)
        raise ValueError(
            f"expected a TCP endpoint tcp://host:port with a port of 0-65535 (or *), got {value!r}"
        )
    return value


def has_tcp_port(address: str) -> bool:
    """Whether ``host:port`` (a tcp endpoint without its scheme) ends in a port libzmq
    takes as written: 0-65535, or ``*`` (any free one)."""
    host, colon, port = address.rpartition(":")
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    return bool(colon and host) and (port == "*" or (digits and int(port) <= 65535))


def is_ipv6_endpoint(endpoint: str) -> bool:
    """Whether a tcp endpoint names an IPv6 address, in brackets (``tcp://[::1]:5555``;
    ``tcp://[::]:5555``: every address, v4 and v6). A ZeroMQ socket takes one only with
    its IPV6 option set; without it, libzmq says "No such device"."""
    scheme, _, rest = endpoint.partition("://")
    return scheme == "tcp" and "[" in rest


def check_frame_shape(value: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)``, each 1..MAX_SIDE."""
    if len(value) != 2 or not all(1 <= int(s) <= MAX_SIDE for s in value):
        raise ValueError(f"expected (height, width), each 1..{MAX_SIDE}, got {value}")
    return (int(value[0]), int(value[1]))


def is_series_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and SERIES_PATTERN.fullmatch(value) is not None


def check_series_name(value: str) -> str:
    if not is_series_name(value):
        raise ValueError(f"expected a series name of {SERIES_RULE}, got {value!r}")
    return value


def check_given_path(value: Any) -> Any:
    """Refuse an empty path: ``Path("")`` is the working folder, and ``--model ""`` (a
    script's unset variable) loaded from there, or looked for models there, unsaid."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(
            f"expected a path, got {value!r} (an empty one would be the working folder)"
        )
    return value


Endpoint = Annotated[str, AfterValidator(check_endpoint)]
#: A path that was given: not empty (the working folder is ``.``).
GivenPath = Annotated[Path, BeforeValidator(check_given_path)]
FrameShape = Annotated[tuple[int, int], AfterValidator(check_frame_shape)]
SeriesName = Annotated[str, AfterValidator(check_series_name)]

#: Default endpoints, shared by the service, the simulator and the CLI: loopback only.
DEFAULT_INPUT = "tcp://127.0.0.1:5555"
DEFAULT_OUTPUT = "tcp://127.0.0.1:5556"
DEFAULT_CONTROL = "tcp://127.0.0.1:5557"
