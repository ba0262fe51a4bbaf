"""The traces of one series: ROI means of raw and denoised frames, ΔF/F, triggers."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._baseline import BaselineConfig, RunningBaseline, delta_f_over_f
from ._denoiser import TraceDenoiser, TraceHistory
from ._rois import BoundRois, RoiSet
from ._triggers import Fired, TriggerBank, TriggerRule

#: Trace columns, in payload order; ``dff_denoised`` only with a trace denoiser.
COLUMNS = ("raw", "denoised", "dff")
COLUMNS_DENOISED = (*COLUMNS, "dff_denoised")


def trace_columns(denoiser: TraceDenoiser | None) -> tuple[str, ...]:
    return COLUMNS if denoiser is None else COLUMNS_DENOISED


class SeriesTraces:
    """Computes one frame's traces ``[rois, columns]`` (float32) and checks the rules.

    ``dff`` is ΔF/F of the *denoised* ROI means (the cleaner signal); F0 is the running
    baseline of those means (:mod:`stream.traces._baseline`).

    Raises RoiError at construction when the ROIs do not fit the series' frames or a
    trigger rule names an ROI they lack.
    """

    def __init__(
        self,
        rois: RoiSet,
        shape: tuple[int, int],
        baseline: BaselineConfig,
        rules: list[TriggerRule],
        denoiser: TraceDenoiser | None = None,
    ) -> None:
        self.rois = rois
        self.bound: BoundRois = rois.bind(shape)
        self.columns = trace_columns(denoiser)
        self.baseline_config = baseline
        self.triggers = TriggerBank(rules, rois.labels, self.columns)
        self._baseline = RunningBaseline(rois.count, baseline)
        self._history: TraceHistory | None = (
            denoiser.bind(rois.count) if denoiser is not None else None
        )
        #: Attributes of the store's trace array (labels, columns, baseline settings).
        self.store_attrs = self.attrs()

    def update(
        self,
        raw: np.ndarray,
        denoised: np.ndarray,
        offset: float,
        raw_means: np.ndarray | None = None,
    ) -> np.ndarray:
        """This frame's traces; a new array each call (it is published and stored).

        ``raw_means``: the raw ROI means if already computed with ``self.bound``.
        """
        out = np.empty((self.rois.count, len(self.columns)), dtype=np.float32)
        out[:, 0] = self.bound.means(raw) if raw_means is None else raw_means
        denoised_means = self.bound.means(denoised)
        out[:, 1] = denoised_means
        f0 = self._baseline.update(denoised_means)
        with np.errstate(invalid="ignore", divide="ignore"):
            dff = delta_f_over_f(denoised_means, f0, offset, self.baseline_config.floor)
        out[:, 2] = dff
        if self._history is not None:
            out[:, 3] = self._history.update(out[:, 2])
        return out

    def inherit(self, old: SeriesTraces) -> int:
        """After a ROI change: the ROIs that did not change (same label, same pixels)
        keep their baseline and trace-denoiser history, so their ΔF/F goes on, and the
        trigger rules keep their state (:meth:`TriggerBank.carry`); returns how many."""
        rows, old_rows = self.rois.unchanged_rows(old.rois)
        if rows.size:
            self._baseline.carry(old._baseline, rows, old_rows)
            if self._history is not None and old._history is not None:
                self._history.carry(old._history, rows, old_rows)
        kept = {int(label) for label in self.rois.labels[rows]}
        everything = rows.size == self.rois.count == old.rois.count
        self.triggers.carry(old.triggers, kept, everything)
        return int(rows.size)

    def settle(self) -> None:
        """Work this frame's traces did not need (a completed baseline block's quantile):
        call once they are sent."""
        self._baseline.settle()

    def check(self, traces: np.ndarray, t_ns: int) -> list[Fired]:
        return self.triggers.check(traces, t_ns)

    def attrs(self) -> dict[str, Any]:
        """What the store records beside the trace array."""
        return {
            "labels": self.rois.labels.tolist(),
            "columns": list(self.columns),
            "rois_source": self.rois.source,
            "rois_digest": self.rois.digest,
            "baseline": self.baseline_config.model_dump(),
            "dff_of": "denoised",
        }
