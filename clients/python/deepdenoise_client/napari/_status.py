"""Text for the live view's status panel, from the service's ``status`` messages.

Pure functions of the decoded headers (PROTOCOL.md section 7.2), so the panel's content
is tested without Qt. Fields a service does not send are left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._stream import ViewerCounters


def _number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def _counts(counts: Any) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return "none"
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))


def service_lines(status: Mapping[str, Any] | None) -> list[str]:
    """The service's rate, latency, totals and drop counters, one fact per line."""
    if status is None:
        return ["service: no status yet (is the service running at this endpoint?)"]
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
