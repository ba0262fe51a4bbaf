"""ΔF/F's running baseline on known inputs, and trigger rules on scripted traces."""

from __future__ import annotations

import numpy as np
import pytest

from stream import RoiError
from stream.traces import BaselineConfig, RunningBaseline, TriggerBank, TriggerRule, delta_f_over_f


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _run(values: list[float], **config: float) -> list[float]:
    baseline = RunningBaseline(1, BaselineConfig(**config))
    return [float(baseline.update(np.array([v]))[0]) for v in values]


def test_constant_trace_has_its_value_as_baseline_and_zero_dff() -> None:
    f0 = _run([500.0] * 50, window_frames=20, block_frames=5)
    assert f0 == [500.0] * 50
    dff = delta_f_over_f(np.array([500.0]), np.array(f0[-1:]), 100.0, 1.0)
    assert dff.tolist() == [0.0]


def test_first_block_uses_the_mean_so_far_then_a_quantile_of_block_means() -> None:
    values = [10.0, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130]
    f0 = _run(values, window_frames=8, block_frames=4, quantile=0.5)
    assert f0[:4] == [10.0, 15.0, 20.0, 25.0]  # the mean so far, causal
    # then the blocks completed before the frame: block 1 (mean 25) from frame 4 on,
    # the median of 25 and 65 from frame 8 on
    assert f0[4:8] == [25.0] * 4
    assert f0[8:12] == [45.0] * 4
    assert f0[12] == 85.0  # the window holds two blocks: 65 and 105


def test_settling_early_changes_nothing_but_when_the_work_is_done() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(100, 10, (50, 3))
    config = BaselineConfig(window_frames=12, block_frames=3, quantile=0.2)
    lazy, eager = RunningBaseline(3, config), RunningBaseline(3, config)
    for row in values:
        f0_lazy = lazy.update(row).copy()
        f0_eager = eager.update(row).copy()
        eager.settle()  # as the service does once a frame's traces are out
        np.testing.assert_array_equal(f0_lazy, f0_eager)


def test_a_transient_does_not_lift_a_low_quantile_baseline() -> None:
    rng = np.random.default_rng(1)
    trace = 1000 + rng.normal(0, 5, 3000)
    trace[1500:1530] += 800  # a calcium transient
    f0 = _run(list(trace), window_frames=600, block_frames=10, quantile=0.08)
    assert abs(f0[1530] - 1000) < 10 and abs(f0[2999] - 1000) < 10


def test_frames_without_a_finite_mean_are_left_out() -> None:
    f0 = _run([10.0, np.nan, 30.0, np.nan], window_frames=4, block_frames=4)
    assert f0[0] == 10.0 and f0[2] == 20.0 and f0[3] == 20.0


def test_dark_rois_divide_by_the_floor() -> None:
    dff = delta_f_over_f(np.array([105.0]), np.array([100.5]), 100.0, 1.0)
    assert dff.tolist() == [4.5]


def test_block_longer_than_window_is_refused() -> None:
    with pytest.raises(ValueError, match="block_frames"):
        BaselineConfig(window_frames=10, block_frames=20)


def test_baseline_numbers_must_be_finite() -> None:
    """``offset = nan`` made every ΔF/F NaN (muting every dff trigger); ``floor = inf``
    made it 0."""
    from pydantic import ValidationError

    for bad in ({"offset": float("nan")}, {"offset": float("inf")}, {"floor": float("inf")}):
        with pytest.raises(ValidationError, match="finite number"):
            BaselineConfig(**bad)  # type: ignore[arg-type]


COLUMNS = ("raw", "denoised", "dff")


def _bank(**rule: object) -> TriggerBank:
    return TriggerBank([TriggerRule(name="r", threshold=1.0, **rule)], np.array([1, 5, 9]), COLUMNS)


def _fire(bank: TriggerBank, dff_rows: list[list[float]], dt: float = 0.1) -> list[int]:
    fired = []
    for i, row in enumerate(dff_rows):
        traces = np.zeros((3, 3), np.float32)
        traces[:, 2] = row
        if bank.check(traces, ns(i * dt)):
            fired.append(i)
    return fired


def test_crossing_fires_once_per_rise_and_above_every_frame() -> None:
    rows = [[0, 2, 0], [0, 2, 0], [0, 0, 0], [0, 3, 0], [0, np.nan, 0], [0, 2, 0]]
    # a NaN frame between two frames over the threshold is no new rise: no stimulus;
    # nor is a series' first value over it (no value below seen: it fired at every start)
    assert _fire(_bank(rois=[5], mode="crossing"), rows) == [3]
    assert _fire(_bank(rois=[5], mode="above"), rows) == [0, 1, 3, 5]


def test_a_rearm_level_keeps_a_transients_decay_from_firing_again() -> None:
    """Noise on a decaying transient crossed the threshold again and again (1.7 triggers
    an event at 10 photons per pixel in a closed-loop user's trial): with ``rearm`` the
    rule fires again only after the value fell below it."""
    decay = [0.0, 1.5, 0.9, 1.1, 0.8, 1.05, 0.6, 0.3, 0.2, 1.4]
    rows = [[0, v, 0] for v in decay]
    assert _fire(_bank(rois=[5]), rows) == [1, 3, 5, 9]  # the threshold re-arms it
    assert _fire(_bank(rois=[5], rearm=0.5), rows) == [1, 9]  # below 0.5 first
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="expected rearm at most the threshold 1"):
        TriggerRule(name="r", threshold=1.0, rearm=1.5)
    with pytest.raises(ValidationError, match="rearm is for crossing rules"):
        TriggerRule(name="r", threshold=1.0, rearm=0.5, mode="above")


def test_a_nan_roi_leaves_its_group_and_an_all_nan_group_is_silent() -> None:
    rows = [[np.nan, 2.4, 0.3], [np.nan, np.nan, np.nan]]
    assert _fire(_bank(reduce="max", mode="above"), rows) == [0]  # 2.4, not NaN
    assert _fire(_bank(rois=[1, 5], reduce="mean", mode="above"), rows) == [0]  # 2.4
    assert _fire(_bank(rois=[1], mode="above"), rows) == []


def test_a_threshold_must_be_finite() -> None:
    from pydantic import ValidationError

    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="finite number"):
            TriggerRule(name="r", threshold=bad)


def test_refractory_period_uses_the_frames_clock() -> None:
    rows = [[0, 2, 0]] * 10
    assert _fire(_bank(rois=[5], mode="above", refractory_s=0.35), rows) == [0, 4, 8]


def test_a_clock_that_goes_back_restarts_the_quiet_time_on_it() -> None:
    """A reset acquisition clock (or frames stamped 0, "unknown", after stamped ones)
    kept a rule quiet until the new clock caught up: a closed loop stopped stimulating."""
    bank = _bank(rois=[5], mode="above", refractory_s=0.35)
    above = np.zeros((3, 3), np.float32)
    above[:, 2] = 2.0
    fired = [t for t in (100.0, 100.1, 0.0, 0.2, 0.4, 0.5, 0.8) if bank.check(above, ns(t))]
    assert fired == [100.0, 0.4, 0.8]  # quiet for 0.35 s from the reset, then as before


def test_groups_reduce_by_mean_or_max() -> None:
    rows = [[0.0, 0.0, 0.0], [0.0, 2.4, 0.3]]  # crossings: from below, then up
    assert _fire(_bank(rois=[5, 9], reduce="mean"), rows) == [1]  # 1.35
    assert _fire(_bank(reduce="mean"), rows) == []  # every ROI: 0.9
    assert _fire(_bank(reduce="max"), rows) == [1]  # 2.4
    assert _fire(_bank(rois=[1, 9], reduce="max"), rows) == []  # 0.3


def test_rules_must_name_rois_and_columns_that_exist() -> None:
    with pytest.raises(RoiError, match=r"labels \[4\] that the ROIs lack"):
        _bank(rois=[4])
    with pytest.raises(RoiError, match=r"labels \[0, 10, -1, 18446744073709551616\] that"):
        _bank(rois=[0, 1, 10, -1, 9, 2**64])  # below, between, past and beyond int64
    with pytest.raises(RoiError, match="watches column 'dff_denoised'"):
        _bank(column="dff_denoised")


def test_a_rule_on_dff_denoised_needs_the_trace_denoiser_in_the_config() -> None:
    from pydantic import ValidationError

    from stream.traces import TraceConfig

    rule = {"name": "x", "column": "dff_denoised", "threshold": 0.5}
    with pytest.raises(ValidationError, match="only the trace denoiser adds"):
        TraceConfig(triggers=[rule])  # no ROIs yet: set_rois would refuse every set later
    assert TraceConfig(triggers=[rule], denoise=True).triggers[0].column == "dff_denoised"


@pytest.mark.parametrize(
    ("field", "value"),
    [("threshold", "0.5"), ("threshold", True), ("rois", ["3"]), ("rois", [True]),
     ("refractory_s", "1")],
)  # fmt: skip
def test_a_quoted_number_or_a_boolean_in_a_rule_is_refused(field: str, value: object) -> None:
    from pydantic import ValidationError

    rule = {"name": "x", "threshold": 0.5, field: value}
    with pytest.raises(ValidationError, match=field):
        TriggerRule(**rule)
    assert TriggerRule(name="x", threshold=1, rois=[3], refractory_s=2).threshold == 1.0


def test_a_carried_baseline_goes_on_as_if_nothing_changed() -> None:
    config = BaselineConfig(window_frames=12, block_frames=3, quantile=0.2)
    rng = np.random.default_rng(5)
    before = RunningBaseline(2, config)
    reference = RunningBaseline(2, config)  # the same ROIs, never changed
    for _ in range(20):  # mid-block, the ring full
        values = rng.normal(100, 10, 2)
        before.update(values)
        reference.update(values)
    after = RunningBaseline(3, config)  # ROI rows 0 and 2 are the old 0 and 1; 1 is new
    after.carry(before, np.array([0, 2]), np.array([0, 1]))
    new_values: list[float] = []
    for _ in range(40):
        values = rng.normal(100, 10, 3)
        new_values.append(values[1])
        f0_ref = reference.update(values[[0, 2]])
        f0 = after.update(values)
        np.testing.assert_array_equal(f0[[0, 2]], f0_ref)  # their ΔF/F goes on, unchanged
        reference.settle()
        after.settle()
    assert after._blocks_of is None  # every ROI has a full ring: back on the fast path
    # the new ROI's F0: the quantile of its own last 4 block means (the old phase: the
    # carried baseline was 2 frames into a block, so its blocks end 1, 4, 7, ... frames in)
    blocks = [np.mean(new_values[i : i + 3]) for i in range(1, 40 - 2, 3)][-4:]
    assert after.f0[1] == pytest.approx(np.quantile(blocks, 0.2))


def test_a_new_roi_in_a_carried_baseline_starts_from_its_own_frames() -> None:
    config = BaselineConfig(window_frames=6, block_frames=2, quantile=0.0)
    before = RunningBaseline(1, config)
    for _ in range(7):  # three blocks of 50, one frame into the fourth
        before.update(np.array([50.0]))
    after = RunningBaseline(2, config)
    after.carry(before, np.array([0]), np.array([0]))
    f0 = after.update(np.array([50.0, 200.0]))  # closes the block: ROI 1 has 1 frame
    assert f0[0] == 50.0 and f0[1] == 200.0  # the new ROI's mean so far, not the old's
    after.settle()
    after.update(np.array([50.0, 100.0]))
    f0 = after.update(np.array([50.0, 100.0]))  # a second block: min of its blocks
    after.settle()
    assert after.f0[0] == 50.0 and after.f0[1] == 100.0


def _bank_of(labels: list[int], **rule: object) -> TriggerBank:
    rules = [TriggerRule(name="r", threshold=0.5, **rule)]  # type: ignore[arg-type]
    return TriggerBank(rules, np.array(labels, dtype=np.int64), ("raw", "denoised", "dff"))


def _traces(dff: list[float]) -> np.ndarray:
    out = np.zeros((len(dff), 3), dtype=np.float32)
    out[:, 2] = dff
    return out


def test_a_crossing_rule_on_unchanged_rois_does_not_fire_on_a_roi_change() -> None:
    """ROI 7 above the threshold before and after a ROI change is no rise: no trigger
    (a fresh bank, what a change gave before, fired). A rise that spans the change fires
    where ROI 7 is unchanged; an edited ROI 7 starts afresh, with no value below seen."""
    before = _bank_of([3, 7], rois=[7], mode="crossing")
    assert before.check(_traces([0.0, 0.9]), ns(0.0)) == []  # a first value: no rise
    assert before.check(_traces([0.0, 0.1]), ns(0.1)) == []
    assert [f.value for f in before.check(_traces([0.0, 0.9]), ns(0.2))] == [pytest.approx(0.9)]
    kept = _bank_of([3, 7, 9], rois=[7], mode="crossing")
    kept.carry(before, kept={3, 7}, all_kept=False)
    assert kept.check(_traces([0.0, 0.9, 0.0]), ns(0.3)) == []  # still above: no rise

    below = _bank_of([3, 7], rois=[7], mode="crossing")
    assert below.check(_traces([0.0, 0.1]), ns(0.0)) == []
    rising = _bank_of([3, 7, 9], rois=[7], mode="crossing")
    rising.carry(below, kept={3, 7}, all_kept=False)
    assert rising.check(_traces([0.0, 0.9, 0.0]), ns(0.1))  # the rise spans the change
    redrawn = _bank_of([3, 7, 9], rois=[7], mode="crossing")
    redrawn.carry(below, kept={3}, all_kept=False)  # ROI 7 on other pixels: afresh
    assert redrawn.check(_traces([0.0, 0.9, 0.0]), ns(0.1)) == []
    assert redrawn.check(_traces([0.0, 0.2, 0.0]), ns(0.2)) == []
    assert redrawn.check(_traces([0.0, 0.9, 0.0]), ns(0.3))

    every_before = _bank_of([3, 7], mode="crossing")  # a rule on every ROI (their mean)
    assert every_before.check(_traces([0.1, 0.1]), ns(0.0)) == []
    assert every_before.check(_traces([0.8, 0.8]), ns(0.1))
    same = _bank_of([3, 7], mode="crossing")
    same.carry(every_before, kept={3, 7}, all_kept=True)
    assert same.check(_traces([0.8, 0.8]), ns(0.2)) == []
    grown = _bank_of([3, 7, 9], mode="crossing")  # another ROI joins the mean: afresh
    grown.carry(every_before, kept={3, 7}, all_kept=False)
    assert grown.check(_traces([0.8, 0.8, 0.8]), ns(0.2)) == []
    assert grown.check(_traces([0.1, 0.1, 0.1]), ns(0.3)) == []
    assert grown.check(_traces([0.8, 0.8, 0.8]), ns(0.4))


def test_the_refractory_time_outlasts_a_roi_change() -> None:
    before = _bank_of([7], rois=[7], mode="above", refractory_s=1.0)
    assert before.check(_traces([0.9]), ns(0.0))
    after = _bank_of([7, 8], rois=[7], mode="above", refractory_s=1.0)
    after.carry(before, kept=set(), all_kept=False)  # even with ROI 7 redrawn
    assert after.check(_traces([0.9, 0.0]), ns(0.5)) == []  # quiet until t = 1 s
    assert after.check(_traces([0.9, 0.0]), ns(1.0))


def test_a_carried_trace_history_denoises_as_if_nothing_changed() -> None:
    from stream.traces import SHIPPED_TRACE_MODEL, TraceDenoiser

    model = TraceDenoiser(SHIPPED_TRACE_MODEL)
    rng = np.random.default_rng(3)
    reference, fresh_reference = model.bind(1), model.bind(1)
    before = model.bind(2)
    for _ in range(40):
        dff = rng.normal(0.0, 0.2, 2).astype(np.float32)
        before.update(dff)
        reference.update(dff[1:])  # ROI row 1, which the change keeps
    after = model.bind(2)  # row 0 new, row 1 the old row 1
    after.carry(before, np.array([1]), np.array([1]))
    for _ in range(5):
        dff = rng.normal(0.0, 0.2, 2).astype(np.float32)
        out = after.update(dff)
        np.testing.assert_allclose(out[1:], reference.update(dff[1:]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[:1], fresh_reference.update(dff[:1]), rtol=1e-5, atol=1e-6)


def test_a_refractory_of_whole_frame_intervals_holds_on_unix_time() -> None:
    """Frames 50 ms apart on a Unix-time clock and a 0.2 s refractory fire every 4th
    frame: as float seconds (~240 ns resolution there) some intervals came out
    0.19999981 s and the rule fired a frame late (a closed-loop user's trial)."""
    rule = TriggerRule(name="r", threshold=0.5, mode="above", refractory_s=0.2)
    bank = TriggerBank([rule], np.array([1]), ("raw", "denoised", "dff"))
    above = np.full((1, 3), 1.0, np.float32)
    t0 = 1_700_000_000_000_000_000
    fired = [i for i in range(60, 100) if bank.check(above, t0 + i * 50_000_000)]
    assert fired == list(range(60, 100, 4))
