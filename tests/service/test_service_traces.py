"""Closed-loop traces through the real service: ROI means, ΔF/F, triggers, set_rois, store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zarr
from deepdenoise_client import Control, ControlError, Publisher, Subscriber
from service_harness import collect, events, listening, running_service, wait_until

from stream import ConfigError, DeepDenoiseError

TOPICS = (b"denoised", b"traces", b"trigger", b"event")
SHAPE = (24, 32)


def _labels() -> np.ndarray:
    """Three ROIs with labels 3, 7 and 40 (non-contiguous, to test the label order)."""
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[2:6, 3:9] = 7
    labels[10:14, 10:20] = 3
    labels[18:23, 25:30] = 40
    labels[0, 31] = 40  # a second, separate patch of the same ROI
    return labels


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(90, 4000, SHAPE, dtype=np.uint16) for _ in range(n)]


@contextmanager
def _traced(
    tmp_path: Path, model: Path, traces_config: dict
) -> Iterator[tuple[Subscriber, Publisher, Control]]:
    """On a service (no store) with ``traces_config``: a subscriber of TOPICS, a
    publisher and a control client."""
    with (
        running_service(tmp_path, model, zarr=None, traces=traces_config) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=10) as ctl,
    ):
        yield sub, pub, ctl


def _roi_means(frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array(
        [frame[labels == v].astype(np.float64).mean() for v in np.unique(labels[labels > 0])]
    )


def test_traces_are_the_roi_means_of_the_published_frames(tmp_path: Path, box_model):
    labels = _labels()
    np.save(tmp_path / "rois.npy", labels)
    frames = _frames(20)
    cfg = {"traces": {"rois": tmp_path / "rois.npy", "baseline": {"block_frames": 4}}}
    cfg["camera"] = {"gain": 2.0, "offset": 50.0, "read_noise": 1.5}
    with (
        running_service(tmp_path, box_model, **cfg) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "s", i, t_ns=10_000 + i)
        pub.end("s")
        denoised, others = collect(sub, len(frames))
        traces = [m for m in others if m.topic == b"traces"]
        while len(traces) < len(frames):
            message = sub.recv(timeout=10)
            if message.topic == b"traces":
                traces.append(message)
        while not events(others, "series_end"):
            others.append(sub.recv(timeout=10))
        assert svc.flush()
        status = svc.status()

    assert [m.header["index"] for m in traces] == list(range(len(frames)))
    for frame, out, trace in zip(frames, denoised, traces, strict=True):
        h = trace.header
        assert h["series"] == "s" and h["t_ns"] == out.header["t_ns"]
        assert h["labels"] == [3, 7, 40] and h["rois"] == 3
        assert h["columns"] == ["raw", "denoised", "dff"]
        assert h["dtype"] == "<f4" and h["shape"] == [3, 3]
        assert h["t_done_ns"] == out.header["t_done_ns"] and h["model"] == out.header["model"]
        np.testing.assert_allclose(trace.array[:, 0], _roi_means(frame, labels), rtol=1e-6)
        np.testing.assert_allclose(trace.array[:, 1], _roi_means(out.array, labels), rtol=1e-6)
    # dff uses the configured camera offset (50) and the running baseline of the means
    means = np.stack([t.array[:, 1].astype(np.float64) for t in traces])
    f0 = means[:4].mean(axis=0)  # the first block: F0 is the mean so far ...
    np.testing.assert_allclose(traces[3].array[:, 2], (means[3] - f0) / (f0 - 50), rtol=1e-5)
    assert status["traces"]["frames"] == len(frames) and status["traces"]["rois"] == 3

    group = zarr.open_group(tmp_path / "data" / "s.zarr", mode="r")
    stored = group["traces"]
    assert stored.shape == (len(frames), 3, 3)
    np.testing.assert_array_equal(stored[:], np.stack([t.array for t in traces]))
    assert stored.attrs["labels"] == [3, 7, 40]
    assert stored.attrs["columns"] == ["raw", "denoised", "dff"]
    assert stored.attrs["baseline"]["block_frames"] == 4
    assert stored.attrs["dff_offset"] == {"value": 50.0, "from": "[camera]"}


def test_traces_are_published_before_their_frame(tmp_path: Path, identity_model):
    np.save(tmp_path / "rois.npy", _labels())
    with (
        running_service(tmp_path, identity_model, traces={"rois": tmp_path / "rois.npy"}) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(_frames(10)):
            pub.send_frame(frame, "s", i)
        order = []
        while len([t for t in order if t[0] == b"denoised"]) < 10:
            message = sub.recv(timeout=10)
            if message.topic in (b"traces", b"denoised"):
                order.append((message.topic, message.header["index"]))
    for i in range(10):  # each frame's traces come before that frame
        assert order.index((b"traces", i)) < order.index((b"denoised", i))


def test_set_rois_mid_stream_loses_no_frame(tmp_path: Path, identity_model):
    first = _labels()
    second = np.zeros(SHAPE, dtype=np.int32)
    second[0:4, 0:4] = 1
    second[20:24, 28:32] = 2
    np.save(tmp_path / "rois.npy", first)
    frames = _frames(30, seed=3)
    with (
        running_service(tmp_path, identity_model, traces={"rois": tmp_path / "rois.npy"}) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=10) as ctl,
    ):
        traces: list = []
        denoised: list = []
        others: list = []

        def receive_until(done) -> None:
            while not done():
                message = sub.recv(timeout=10)
                by_topic = {b"traces": traces, b"denoised": denoised}
                by_topic.get(message.topic, others).append(message)

        for i, frame in enumerate(frames[:15]):
            pub.send_frame(frame, "s", i)
        receive_until(lambda: len(traces) == 15)
        assert ctl.status()["traces"]["series"] == {"s": 3}
        reply = ctl.set_rois(second)
        assert reply == {"ok": True, "rois": 2, "series": None, "checked": ["s"]}
        # before its next frame too (it was left out of status till then)
        assert ctl.status()["traces"]["series"] == {"s": 2}
        # ROIs of a series that has not streamed yet are counted (a user's trial: they
        # showed nowhere until it did)
        ctl.set_rois(second, series="later")
        assert ctl.status()["traces"]["series"] == {"s": 2, "later": 2}
        for i, frame in enumerate(frames[15:], start=15):
            pub.send_frame(frame, "s", i)
        pub.end("s")
        receive_until(
            lambda: len(traces) == 30 and len(denoised) == 30 and events(others, "series_end")
        )
        assert svc.flush()
        status = svc.status()
    assert sorted(m.header["index"] for m in denoised) == list(range(30))
    assert [m.header["index"] for m in traces] == list(range(30))
    assert all(t.header["labels"] == [3, 7, 40] for t in traces[:15])
    assert all(t.header["labels"] == [1, 2] for t in traces[15:])
    for frame, trace in zip(frames[15:], traces[15:], strict=True):
        np.testing.assert_allclose(trace.array[:, 0], _roi_means(frame, second), rtol=1e-6)
    assert status["dropped"] == {} and status["frames_out"] == 30
    group = zarr.open_group(tmp_path / "data" / "s.zarr", mode="r")
    assert group["traces"].shape == (15, 3, 3) and group["traces_1"].shape == (30, 2, 3)
    assert group["traces_1"].attrs["first_index"] == 15
    assert np.isnan(group["traces_1"][:15]).all()
    assert group.attrs["deepdenoise"]["traces"] == ["traces", "traces_1"]


def test_rois_left_unchanged_by_set_rois_keep_their_baseline(tmp_path: Path, identity_model):
    # A rig adds one ROI mid-experiment: the others' ΔF/F goes on (a transient right
    # after the change reads as one), only the new ROI starts its baseline afresh.
    labels = _labels()
    more = labels.copy()
    more[16:18, 0:6] = 9  # a new ROI; 3, 7 and 40 unchanged
    np.save(tmp_path / "rois.npy", labels)
    rng = np.random.default_rng(8)
    frames = [rng.normal(100, 3, SHAPE).round().astype(np.uint16) for _ in range(30)]
    for frame in frames[20:]:
        frame[labels == 3] += 200  # a transient on ROI 3 from frame 20, after the change
    baseline = {"offset": 0.0, "window_frames": 20, "block_frames": 5}  # F0: ~ the minimum
    traces_config = {"rois": tmp_path / "rois.npy", "baseline": baseline}
    with _traced(tmp_path, identity_model, traces_config) as (sub, pub, ctl):
        for i, frame in enumerate(frames[:20]):
            pub.send_frame(frame, "s", i)
        collect(sub, 20, topic=b"traces")
        ctl.set_rois(more)
        for i, frame in enumerate(frames[20:], start=20):
            pub.send_frame(frame, "s", i)
        later, _ = collect(sub, 10, topic=b"traces")
    assert later[0].header["labels"] == [3, 7, 9, 40]
    dff = np.stack([t.array[:, 2] for t in later])  # columns raw, denoised, dff
    assert (dff[:, 0] > 1.5).all()  # ROI 3: (300 - 100) / 100, its baseline kept
    assert np.abs(dff[:, [1, 3]]).max() < 0.2  # 7 and 40: flat, as before
    assert dff[0, 2] == 0.0  # the new ROI: its first frame is its own baseline


def test_trigger_rules_keep_their_state_through_a_roi_change(tmp_path: Path, identity_model):
    # ROI 3 rises on frame 15 and stays up; a ROI is added at frame 20. The crossing rule
    # fired on the rise and must not fire again on the edit, nor may the above rule
    # inside its refractory time (both fired again on frame 20 before).
    labels = _labels()
    more = labels.copy()
    more[16:18, 0:6] = 9
    np.save(tmp_path / "rois.npy", labels)
    frames = [np.full(SHAPE, 100, dtype=np.uint16) for _ in range(30)]
    for frame in frames[15:]:
        frame[labels == 3] = 300
    rules = [
        {"name": "rise", "rois": [3], "threshold": 1.0, "mode": "crossing"},
        {"name": "held", "rois": [3], "threshold": 1.0, "mode": "above", "refractory_s": 3600},
    ]
    baseline = {"offset": 0.0, "window_frames": 20, "block_frames": 5}
    traces_config = {"rois": tmp_path / "rois.npy", "baseline": baseline, "triggers": rules}
    with _traced(tmp_path, identity_model, traces_config) as (sub, pub, ctl):
        seen: list = []
        for i, frame in enumerate(frames[:20]):
            pub.send_frame(frame, "s", i)
        while sum(m.topic == b"traces" for m in seen) < 20:
            seen.append(sub.recv(timeout=10))
        ctl.set_rois(more)
        for i, frame in enumerate(frames[20:], start=20):
            pub.send_frame(frame, "s", i)
        pub.end("s")
        while not events(seen, "series_end"):
            seen.append(sub.recv(timeout=10))
    traces = [m for m in seen if m.topic == b"traces"]
    fired = [(m.header["rule"], m.header["index"]) for m in seen if m.topic == b"trigger"]
    assert traces[-1].header["labels"] == [3, 7, 9, 40] and traces[-1].array[0, 2] > 1.0
    assert sorted(fired) == [("held", 15), ("rise", 15)]


def test_rois_redrawn_with_the_same_labels_start_another_trace_array(
    tmp_path: Path, conv_model_adaptive
):
    first = _labels()
    redrawn = np.roll(first, 2, axis=1)  # labels 3, 7 and 40 again, on other pixels
    np.save(tmp_path / "rois.npy", first)
    with (
        running_service(
            tmp_path, conv_model_adaptive, traces={"rois": tmp_path / "rois.npy"}
        ) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=10) as ctl,
    ):
        seen: list = []
        for step, (rois, frames) in enumerate(((first, range(0, 4)), (redrawn, range(4, 8)))):
            if step:
                ctl.set_rois(rois)
            ctl.set_rois(rois)  # the same ROIs twice: no new array for that
            for i in frames:
                pub.send_frame(_frames(1, seed=i)[0], "s", i)
            while sum(m.topic == b"traces" for m in seen) < frames.stop:
                seen.append(sub.recv(timeout=10))
        pub.end("s")
        while not events(seen, "series_end"):
            seen.append(sub.recv(timeout=10))
    group = zarr.open_group(tmp_path / "data" / "s.zarr", mode="r")
    assert group.attrs["deepdenoise"]["traces"] == ["traces", "traces_1"]
    assert group["traces_1"].attrs["first_index"] == 4
    assert group["traces_1"].attrs["labels"] == group["traces"].attrs["labels"] == [3, 7, 40]
    assert group["traces_1"].attrs["rois_digest"] != group["traces"].attrs["rois_digest"]
    # ΔF/F's offset came from the live camera estimate (the model estimates the camera)
    for name in ("traces", "traces_1"):
        offset = group[name].attrs["dff_offset"]
        assert offset["from"] == "live estimate" and np.isfinite(offset["value"]), offset


def test_set_rois_refuses_bad_labels_and_changes_nothing(tmp_path: Path, identity_model):
    np.save(tmp_path / "rois.npy", _labels())
    rules = [{"name": "r", "rois": [7], "threshold": 0.5}]
    cfg = {"traces": {"rois": tmp_path / "rois.npy", "triggers": rules}}
    with (
        running_service(tmp_path, identity_model, **cfg) as svc,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=10) as ctl,
    ):
        pub.send_frame(_frames(1)[0], "s", 0)
        wait_until(lambda: svc.status()["frames_out"] == 1)

        def refusal(**request) -> str:
            with pytest.raises(ControlError) as refused:
                ctl.request("set_rois", **request)
            return str(refused.value)

        wrong_shape = np.full((8, 8), 7, dtype=np.uint16).tobytes()
        lacks_rule_roi = np.where(_labels() == 7, 0, _labels()).tobytes()
        cases = {
            "are 8x8, the frames are 24x32": refusal(labels=wrong_shape, dtype="<u2", shape=[8, 8]),
            "every pixel is 0": refusal(labels=bytes(1536), dtype="<u2", shape=[24, 32]),
            "watches ROI labels [7]": refusal(labels=lacks_rule_roi, dtype="<u2", shape=[24, 32]),
            "expected 'dtype' one of": refusal(labels=bytes(3072), dtype="<f4", shape=[24, 32]),
            "needs 1536 bytes": refusal(labels=b"12", dtype="<u2", shape=[24, 32]),
            "expected 'shape'": refusal(labels=b"12", dtype="<u2", shape=[24]),
            "needs 'labels'": refusal(),
            "expected 'series'": refusal(labels=None, series="../x"),
            "expected 'fit' true or false": refusal(
                labels=wrong_shape, dtype="<u2", shape=[8, 8], fit="yes"
            ),
            "none a control character (U+0000-U+001F": refusal(
                labels=wrong_shape, dtype="<u2", shape=[8, 8], source="a\nb"
            ),
            "reach pixel (39, 7), outside the 24x32": refusal(
                labels=np.full((40, 8), 7, np.uint16).tobytes(),
                dtype="<u2",
                shape=[40, 8],
                fit=True,
            ),
        }
        status = ctl.status()
    for expected, error in cases.items():
        assert expected in error, (expected, error)
    assert status["traces"]["rois"] == 3  # unchanged
    assert status["traces"]["series"] == {"s": 3}


def test_set_rois_of_the_wrong_shape_is_refused_for_its_shape_first(tmp_path: Path, identity_model):
    """A label image of the wrong shape that also lacks a rule's ROIs: the reply names
    the shape, the first thing wrong (it named the missing ROIs: a user's trial)."""
    np.save(tmp_path / "rois.npy", _labels())
    rules = [{"name": "pair", "rois": [3, 7], "threshold": 1.0}]
    traces_config = {"rois": tmp_path / "rois.npy", "triggers": rules}
    with _traced(tmp_path, identity_model, traces_config) as (sub, pub, ctl):
        pub.send_frame(_frames(1)[0], "s", 0)
        collect(sub, 1)
        with pytest.raises(ControlError, match=r"series 's': .*are 8x8, the frames are 24x32"):
            ctl.set_rois(np.full((8, 8), 12, dtype=np.uint16))
        assert ctl.status()["traces"]["rois"] == 3  # nothing changed


def test_rois_set_while_no_series_streams_are_checked_when_one_starts(
    tmp_path: Path, identity_model
):
    """Nothing to check an 8x8 image against yet: the reply says so (checked: none), the
    CLI tells the user when the check comes, and the series that starts reports it."""
    from typer.testing import CliRunner

    from stream.cli import app

    np.save(tmp_path / "small.npy", np.full((8, 8), 7, dtype=np.uint16))
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=10) as ctl,
    ):
        labels = np.full((8, 8), 7, dtype=np.uint16)
        assert ctl.set_rois(labels) == {"ok": True, "rois": 1, "series": None, "checked": []}
        result = CliRunner().invoke(
            app, ["set-rois", str(tmp_path / "small.npy"), "--control", svc.endpoints["control"]]
        )
        pub.send_frame(_frames(1)[0], "s", 0)
        collect(sub, 1)
        wait_until(lambda: svc.status()["traces"]["errors"].get("rois_shape") == 1)
        with pytest.raises(ControlError, match=r"series 's': .*are 8x8, the frames are 24x32"):
            ctl.set_rois(labels)  # now a series streams: refused at once
        source = ctl.status()["traces"]["source"]
    assert source == f"set_rois ({tmp_path / 'small.npy'})"  # the CLI names its file
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # as one line: the console wraps it
    assert "1 ROIs set on every series; no series is streaming" in said
    assert "checked against a series' frames when it starts" in said


def test_rois_known_by_their_extent_fit_any_frame_that_holds_them(tmp_path: Path, identity_model):
    # suite2p's stat.npy without ops.npy: the CLI sends the ROIs' extent with fit
    from typer.testing import CliRunner

    from stream.cli import app

    stat = np.array(
        [{"ypix": np.arange(5, 15).repeat(10), "xpix": np.tile(np.arange(5, 15), 10),
          "lam": np.ones(100), "med": [10, 10]}],
        dtype=object,
    )  # fmt: skip
    (tmp_path / "s2p").mkdir()
    np.save(tmp_path / "s2p" / "stat.npy", stat, allow_pickle=True)
    frame = _frames(1)[0]
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        pub.send_frame(frame, "s", 0)
        collect(sub, 1)
        result = CliRunner().invoke(
            app,
            ["set-rois", str(tmp_path / "s2p" / "stat.npy"), "--series", "s",
             "--control", svc.endpoints["control"]],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        pub.send_frame(frame, "s", 1)
        traces, _ = collect(sub, 1, topic=b"traces")
        assert svc.flush()
    assert traces[0].header["labels"] == [1]
    stored = zarr.open_group(tmp_path / "data" / "s.zarr", mode="r")["traces"]
    assert stored.attrs["rois_source"] == f"set_rois ({tmp_path / 's2p' / 'stat.npy'})"
    np.testing.assert_allclose(traces[0].array[0, 0], frame[5:15, 5:15].mean(), rtol=1e-6)


def test_trigger_rules_fire_on_scripted_traces(tmp_path: Path, identity_model):
    labels = _labels()
    np.save(tmp_path / "rois.npy", labels)
    # ROI 7 brightens on frames 10-12 and 20; refractory 0.5 s at 10 frames/s (t_ns)
    frames = [np.full(SHAPE, 200, dtype=np.uint16) for _ in range(30)]
    for i in (10, 11, 12, 20):
        frames[i] = np.where(labels == 7, 400, 200).astype(np.uint16)
    rules = [
        {"name": "cell7", "rois": [7], "threshold": 0.5, "mode": "crossing"},
        {"name": "cell7_above", "rois": [7], "threshold": 0.5, "mode": "above"},
        {"name": "refractory", "rois": [7], "threshold": 0.5, "mode": "above", "refractory_s": 1},
        {"name": "all_mean", "threshold": 0.5},  # the mean over all ROIs stays low
    ]
    cfg = {
        "traces": {"rois": tmp_path / "rois.npy", "triggers": rules, "baseline": {"offset": 0}},
        # 30 frames sent at once give ~100 messages out: room for all on a busy machine
        "queues": {"publish_depth": 256},
    }
    with (
        running_service(tmp_path, identity_model, **cfg) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "s", i, t_ns=i * 100_000_000)
        _, others = collect(sub, len(frames))
        fired: dict[str, list[int]] = {}
        for m in others:
            if m.topic == b"trigger":
                fired.setdefault(m.header["rule"], []).append(m.header["index"])
                assert m.header["column"] == "dff" and m.header["threshold"] == 0.5
        status = svc.status()
    assert fired["cell7"] == [10, 20]
    assert fired["cell7_above"] == [10, 11, 12, 20]
    assert fired["refractory"] == [10, 20]
    assert "all_mean" not in fired
    assert status["traces"]["triggers"] == {"cell7": 2, "cell7_above": 4, "refractory": 2}


def test_bad_roi_files_stop_the_start_with_a_clear_error(tmp_path: Path, identity_model):
    np.save(tmp_path / "float.npy", np.ones(SHAPE, dtype=np.float32))
    for name, message in (("float.npy", "integer label image"), ("none.npy", "does not exist")):
        with (
            pytest.raises(ConfigError, match=message),
            running_service(tmp_path, identity_model, traces={"rois": tmp_path / name}),
        ):
            pass


def test_rois_that_do_not_fit_a_series_cost_its_traces_only(tmp_path: Path, identity_model):
    np.save(tmp_path / "rois.npy", _labels())
    with (
        running_service(tmp_path, identity_model, traces={"rois": tmp_path / "rois.npy"}) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i in range(3):
            pub.send_frame(np.zeros((10, 10), np.uint16), "small", i)
        _, others = collect(sub, 3)
        while not events(others, "error"):
            others.append(sub.recv(timeout=10))
        # a frame is counted out once sent: the subscriber may hold it a moment earlier
        wait_until(lambda: svc.status()["frames_out"] == 3)
        status = svc.status()
    error = events(others, "error")[0]
    assert error["kind"] == "rois_shape" and "24x32" in error["message"]
    assert status["traces"]["errors"] == {"rois_shape": 1} and status["frames_out"] == 3


def test_trace_denoiser_adds_a_causal_dff_denoised_column(
    tmp_path: Path, identity_model, trace_model
):
    from stream.traces import TraceDenoiser

    np.save(tmp_path / "rois.npy", _labels())
    cfg = {"traces": {"rois": tmp_path / "rois.npy", "denoiser": trace_model}}
    frames = _frames(12, seed=5)
    with (
        running_service(tmp_path, identity_model, **cfg) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "s", i)
        traces, _ = collect(sub, len(frames), topic=b"traces")
    assert traces[0].header["columns"] == ["raw", "denoised", "dff", "dff_denoised"]
    history = TraceDenoiser(trace_model).bind(3)  # the same model on the published dff
    for trace in traces:
        expected = history.update(trace.array[:, 2].copy())
        np.testing.assert_allclose(trace.array[:, 3], expected, rtol=1e-5, atol=1e-6)


def test_the_shipped_trace_denoiser_runs_with_denoise_on(tmp_path: Path, identity_model):
    from stream.traces import SHIPPED_TRACE_MODEL, TraceDenoiser

    assert TraceDenoiser(SHIPPED_TRACE_MODEL).window == 32
    np.save(tmp_path / "rois.npy", _labels())
    cfg = {"traces": {"rois": tmp_path / "rois.npy", "denoise": True}}
    with (
        running_service(tmp_path, identity_model, **cfg) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(_frames(5)):
            pub.send_frame(frame, "s", i)
        traces, _ = collect(sub, 5, topic=b"traces")
    assert traces[-1].header["columns"][-1] == "dff_denoised"
    assert np.isfinite(traces[-1].array).all()


def test_forty_thousand_rois_reach_a_subscriber_and_too_many_are_refused(
    tmp_path: Path, identity_model
):
    """A traces message has a row and a header label per ROI: 40,000 one-pixel ROIs make
    a 120 KB header, over the input header limit and within the output bound (16 x),
    which the client applies to what it receives. A set over the bound is refused."""
    side = 200
    labels = np.arange(1, side * side + 1, dtype=np.int32).reshape(side, side)
    frame = np.random.default_rng(1).integers(90, 4000, (side, side), dtype=np.uint16)
    with (
        running_service(tmp_path, identity_model, zarr=None) as svc,
        listening(svc, (b"traces",)) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=30) as ctl,
    ):
        assert ctl.set_rois(labels)["rois"] == side * side
        pub.send_frame(frame, "s", 0)
        message = sub.recv(timeout=30)
        while message.topic != b"traces":
            message = sub.recv(timeout=30)
    assert len(msgpack.packb(message.header)) > 64 * 1024
    assert message.header["labels"] == labels.ravel().tolist()
    assert message.array is not None
    np.testing.assert_array_equal(message.array[:, 0], frame.ravel().astype(np.float32))

    small = {"max_header_bytes": 4096}  # output bound 64 KiB: about 21,000 labels
    with (
        running_service(tmp_path, identity_model, zarr=None, limits=small) as svc,
        Control(svc.endpoints["control"], timeout=30) as ctl,
        pytest.raises(ControlError, match="40000 ROIs make a traces header of up to"),
    ):
        ctl.set_rois(labels)
    np.save(tmp_path / "many.npy", labels)
    with (
        pytest.raises(ConfigError, match="over the 65536 bytes clients accept"),
        running_service(
            tmp_path, identity_model, limits=small, traces={"rois": tmp_path / "many.npy"}
        ),
    ):
        pass


def test_a_series_a_crashed_sender_left_open_is_ended_by_end_series(tmp_path: Path, identity_model):
    """A sender that crashed mid-series never sends `end`: its series stayed open until
    series_idle_end_s (600 s), its store with it, and a global set_rois of the next
    experiment's frame shape was refused all that time. `end_series` ends it at once."""
    from typer.testing import CliRunner

    from stream.cli import app

    small = np.full((8, 8), 7, dtype=np.uint16)
    with (
        running_service(tmp_path, identity_model) as svc,
        listening(svc, TOPICS) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        Control(svc.endpoints["control"], timeout=10) as ctl,
    ):
        for i, frame in enumerate(_frames(3)):
            pub.send_frame(frame, "crashed", i)
        pub.start("empty")  # a series begun with no frame yet
        _, seen = collect(sub, 3)
        with pytest.raises(ControlError, match=r"series 'crashed': .*are 8x8"):
            ctl.set_rois(small)  # its frames do not fit the new ROIs
        assert ctl.end_series("crashed") == {"ok": True, "series": "crashed", "last_index": 2}
        while not events(seen, "series_end"):
            seen.append(sub.recv(timeout=10))
        (end,) = events(seen, "series_end")
        assert end["series"] == "crashed" and end["stored"] == 3 and end["missing"] == 0
        assert svc.status()["store"]["open_stores"] == 0  # "empty" has no frame, no store
        assert ctl.set_rois(small)["checked"] == []  # no series of that shape streams now
        with pytest.raises(ControlError, match=r"'crashed' is not open \(open: 'empty'\)"):
            ctl.end_series("crashed")  # ended already: said, nothing changes
        with pytest.raises(ControlError, match=r"expected 'series' of 1-64 chars.*got nil"):
            ctl.request("end_series")
        result = CliRunner().invoke(
            app, ["end-series", "empty", "--control", svc.endpoints["control"]]
        )
        unknown = CliRunner().invoke(
            app, ["end-series", "nosuch", "--control", svc.endpoints["control"]]
        )
        unknown_json = CliRunner().invoke(
            app, ["end-series", "nosuch", "--json", "--control", svc.endpoints["control"]]
        )
        while len(events(seen, "series_end")) < 2:
            seen.append(sub.recv(timeout=10))
        pub.send_frame(_frames(1, seed=1)[0], "crashed", 3)  # a later frame resumes it
        later, _ = collect(sub, 1)
        assert later[0].header["series"] == "crashed" and later[0].header["index"] == 3
        assert svc.flush()
        assert svc.status()["store"]["open_stores"] == 1
    assert result.exit_code == 0, result.output
    assert "series 'empty' ended (it took no frame)" in result.output
    assert unknown.exit_code == 2
    assert "end_series refused by" in unknown.output and "'nosuch' is not open" in unknown.output
    # --json: the refusal as JSON on stdout too (it was plain text only: a trial)
    refusal = json.loads(unknown_json.stdout)
    assert unknown_json.exit_code == 2 and refusal["ok"] is False, unknown_json.output
    assert "'nosuch' is not open" in refusal["error"]
    group = zarr.open_group(tmp_path / "data" / "crashed.zarr", mode="r")
    assert group["valid"][:4].all() and group["clean_valid"][:4].all()  # one store, no hole


def test_end_series_on_a_stopped_service_is_refused(tmp_path: Path, identity_model):
    with running_service(tmp_path, identity_model) as svc:
        pass
    with pytest.raises(DeepDenoiseError, match=r"the service is stopping: 'any' was not ended"):
        svc.end_series("any")
