"""Text for the live view's status panel, from the service's ``status`` messages.

Pure functions of the decoded headers (PROTOCOL.md section 7.2), so the panel's content
is tested without Qt. Fields a service does not send are left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._stream import CLIENT_KEY_ENV, SERVER_KEY_ENV, ViewerCounters


def _number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def _counts(counts: Any) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return "none"
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))


#: Seconds without a status message after which the last one is shown as old: the
#: service sends one about every second, so it has stopped or become unreachable.
STALE_S = 5.0


def service_lines(
    status: Mapping[str, Any] | None, age_s: float | None = None, *, secured: bool = False
) -> list[str]:
    """The service's rate, latency, totals and drop counters, one fact per line;
    ``age_s``: seconds since that status arrived (an old one is said to be old);
    ``secured``: whether the viewer has CURVE keys (a service with ``[security]`` sends
    nothing to a viewer without allowed keys: the hint says what to check)."""
    if status is None:
        keys = (
            ["  and is this viewer's public key in its", "  security.clients folder?"]
            if secured
            else [
                "  (with [security] it needs keys: set",
                f"  {CLIENT_KEY_ENV} and",
                f"  {SERVER_KEY_ENV})",
            ]
        )
        return ["service: no status yet", "  is the service running at this endpoint?", *keys]
    stale = (
        [f"service: silent for {age_s:.0f} s (stopped, or unreachable); its last status:"]
        if age_s is not None and age_s > STALE_S
        else []
    )
    return stale + _status_lines(status)


def _status_lines(status: Mapping[str, Any]) -> list[str]:
    latency = status.get("latency_ms")
    latency = latency if isinstance(latency, Mapping) else {}
    state = "paused" if status.get("paused") else str(status.get("state", "running"))
    lines = [
        f"fps {_number(status.get('fps'))}  ·  {state}",
        f"latency p50 {_number(latency.get('p50'), 2)} ms  ·  "
        f"p99 {_number(latency.get('p99'), 2)} ms",
        f"frames in {status.get('frames_in', '?')}  ·  out {status.get('frames_out', '?')}",
        f"dropped: {_counts(status.get('dropped'))}",
    ]
    if status.get("rejected"):
        lines.append(f"rejected: {_counts(status.get('rejected'))}")
    if status.get("provider") or status.get("model"):
        lines.append(f"model {status.get('model', '?')} on {status.get('provider', '?')}")
    return lines


def viewer_line(counters: ViewerCounters) -> str:
    """What the viewer itself did with the frames it received."""
    line = (
        f"viewer: received {counters.received}  ·  shown {counters.shown}  ·  "
        f"skipped {counters.skipped} (a newer frame came first)"
    )
    if counters.bad:
        line += f"  ·  malformed {counters.bad}"
    return line
