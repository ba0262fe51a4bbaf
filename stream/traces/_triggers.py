"""Trigger rules: what a stimulator listens to.

A rule watches one trace column (``dff`` by default) of an ROI or a group of ROIs
(reduced by ``mean`` or ``max``) and fires when the value is at or over ``threshold``
(``mode = "above"``) or only when it rises through it (``mode = "crossing"``: the
last finite value before was below; a series' first value, or the first after its
ROIs were edited, has none, so a value already over the threshold then is no rise).
A crossing rule with ``rearm`` below its threshold is a hysteresis: after a value at or
over the threshold it fires again only once a value has fallen below ``rearm`` (noise on
a transient's decay crossed the threshold again and again: 1.7 triggers an event at 10
photons per pixel in a closed-loop user's trial).

After firing, a rule stays quiet for ``refractory_s`` seconds of the series' own clock
(the frames' ``t_ns``; receive time where it is not given or 0). A clock that goes back
(reset by the acquisition) starts the quiet time again on the new clock: it would
otherwise keep a rule quiet until it caught up. ROIs whose value is NaN (a NaN pixel in
them) are left out of their group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from .._errors import RoiError

Column = Literal["raw", "denoised", "dff", "dff_denoised"]


class TriggerRule(BaseModel):
    """One trigger rule of the service config (``[[traces.triggers]]``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="published as `rule`")
    # strict: a quoted number or a boolean in the TOML is a mistake, not a value
    rois: list[StrictInt] = Field(
        default_factory=list, description="ROI labels watched together; empty: every ROI"
    )
    reduce: Literal["mean", "max"] = Field("mean", description="how a group becomes one value")
    column: Column = "dff"
    threshold: float = Field(allow_inf_nan=False, strict=True)
    mode: Literal["above", "crossing"] = "crossing"
    refractory_s: float = Field(
        0.0, ge=0, le=3600, strict=True, description="quiet time after firing"
    )
    rearm: float | None = Field(
        None,
        allow_inf_nan=False,
        strict=True,
        description="crossing: fire again only after the value fell below this (at most "
        "the threshold; None: the threshold)",
    )

    @model_validator(mode="after")
    def _rearm_below_threshold(self) -> TriggerRule:
        if self.rearm is not None and self.mode != "crossing":
            raise ValueError(f"rearm is for crossing rules, got mode {self.mode!r}")
        if self.rearm is not None and self.rearm > self.threshold:
            raise ValueError(
                f"expected rearm at most the threshold {self.threshold:g}, got {self.rearm:g}"
            )
        return self


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule fired on a frame."""

    rule: TriggerRule
    value: float


class TriggerBank:
    """The rules bound to one ROI set and one trace layout; keeps each rule's state."""

    def __init__(
        self, rules: list[TriggerRule], labels: np.ndarray, columns: tuple[str, ...]
    ) -> None:
        self.rules = rules
        self._rows: list[np.ndarray | None] = []
        self._columns: list[int] = []
        for rule in rules:
            if rule.column not in columns:
                raise RoiError(
                    f"trigger rule {rule.name!r} watches column {rule.column!r}, the traces "
                    f"have {list(columns)}"
                )
            self._columns.append(columns.index(rule.column))
            rows = _rows_of(rule, labels)
            self._rows.append(rows if rule.rois else None)
        # a crossing rule may fire: a finite value below its re-arm level came since the
        # last one at or over its threshold (a series' first value has none before it)
        self._armed = [False] * len(rules)
        # nanoseconds, as the frames' clock counts: a refractory of whole frame intervals
        # as float seconds of Unix time (~240 ns apart) fell short of them by rounding,
        # and the rule fired one frame late every few times (a closed-loop user's trial)
        self._quiet_until: list[int | None] = [None] * len(rules)
        self._latest_ns: int | None = None  # the clock's latest reading

    def carry(self, old: TriggerBank, kept: set[int], all_kept: bool) -> None:
        """After a ROI change: each rule keeps its refractory time (a stimulator is not
        fired again sooner because the ROIs were edited) and, where every ROI it watches
        is ``kept`` (same label, same pixels; ``all_kept`` for a rule on every ROI),
        its last value, so a ``crossing`` rule fires on a rise, not on the change."""
        before = {rule.name: i for i, rule in enumerate(old.rules)}
        for i, rule in enumerate(self.rules):
            j = before.get(rule.name)
            if j is None:
                continue
            self._quiet_until[i] = old._quiet_until[j]
            unchanged = kept.issuperset(rule.rois) if rule.rois else all_kept
            if unchanged:
                self._armed[i] = old._armed[j]

    def check(self, traces: np.ndarray, t_ns: int) -> list[Fired]:
        """The rules that fire on this frame's traces (``[rois, columns]``) at ``t_ns``."""
        fired: list[Fired] = []
        if self._latest_ns is not None and t_ns < self._latest_ns:
            # the clock went back: quiet for a refractory on it
            for i, rule in enumerate(self.rules):
                quiet = self._quiet_until[i]
                if quiet is not None:
                    self._quiet_until[i] = min(quiet, t_ns + _refractory_ns(rule))
        self._latest_ns = t_ns
        for i, rule in enumerate(self.rules):
            column = traces[:, self._columns[i]]
            rows = self._rows[i]
            group = column if rows is None else column[rows]
            value = _reduce(group, rule.reduce)
            if not np.isfinite(value):  # a NaN ROI (a NaN pixel) mutes only itself
                value = _reduce(group[np.isfinite(group)], rule.reduce)
            over = value >= rule.threshold  # False for NaN
            if rule.mode == "crossing":  # a rise seen: no finite value before, no rise
                armed = self._armed[i]
                if over:
                    self._armed[i] = False
                elif value < (rule.threshold if rule.rearm is None else rule.rearm):
                    self._armed[i] = True  # a NaN frame neither arms nor disarms
                over = over and armed
            quiet = self._quiet_until[i]
            if over and (quiet is None or t_ns >= quiet):
                self._quiet_until[i] = t_ns + _refractory_ns(rule)
                fired.append(Fired(rule, value))
        return fired


def _refractory_ns(rule: TriggerRule) -> int:
    return round(rule.refractory_s * 1e9)


def _reduce(group: np.ndarray, how: str) -> float:
    """A group's one value; NaN for an empty group (every ROI in it NaN)."""
    if not group.size:
        return float("nan")
    return float(np.mean(group) if how == "mean" else np.max(group))


_INT64 = np.iinfo(np.int64)


def _rows_of(rule: TriggerRule, labels: np.ndarray) -> np.ndarray:
    """The trace rows of the rule's ROIs; RoiError when the ascending ``labels`` lack one.

    A binary search, not a label -> row table: a series start builds this bank on the
    path a closed loop waits on, and a table of a thousand labels costs a tenth of a ms.
    """
    in_range = np.array([_INT64.min <= label <= _INT64.max for label in rule.rois], dtype=bool)
    wanted = np.array([label if ok else 0 for label, ok in zip(rule.rois, in_range, strict=True)])
    rows = np.searchsorted(labels, wanted.astype(np.int64)).astype(np.intp)
    found = in_range & (rows < labels.size)
    found[found] = labels[rows[found]] == wanted[found]
    if not found.all():
        missing = [label for label, ok in zip(rule.rois, found, strict=True) if not ok]
        raise RoiError(
            f"trigger rule {rule.name!r} watches ROI labels {missing[:10]} that the "
            f"ROIs lack ({len(labels)} ROIs, labels {_span(labels)})"
        )
    return rows


def _span(labels: np.ndarray) -> str:
    return f"{int(labels[0])}..{int(labels[-1])}" if labels.size else "none"
