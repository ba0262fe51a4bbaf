"""Small building blocks: stage queues, statistics, events and configuration."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stream import ConfigError, load_config
from stream.service import ServiceConfig, is_loopback
from stream.service._events import EventEmitter
from stream.service._queues import Closed, StageQueue
from stream.service._stats import ServiceStats, latency_summary


def test_drop_oldest_evicts_oldest_droppable_and_keeps_control_items():
    dropped: list[int] = []
    q: StageQueue[int] = StageQueue(2, "drop_oldest", on_drop=dropped.append)
    q.put(1)
    q.put(-1, droppable=False)
    q.put(2)
    q.put(3)  # full: evicts 1, not the control item
    q.put(4)  # evicts 2
    assert dropped == [1, 2]
    assert [q.get(0), q.get(0), q.get(0)] == [-1, 3, 4]
    assert q.get(0.01) is None


def test_block_policy_waits_for_room_and_gives_up_on_stop():
    q: StageQueue[int] = StageQueue(1, "block")
    q.put(1)
    stop = threading.Event()
    result: list[bool] = []
    putter = threading.Thread(target=lambda: result.append(q.put(2, stop=stop)))
    putter.start()
    time.sleep(0.1)
    assert putter.is_alive()  # blocked: the queue is full
    assert q.get(0) == 1
    putter.join(2)
    assert result == [True] and q.get(0) == 2
    q.put(3)
    stop.set()
    assert q.put(4, stop=stop) is False
    assert q.put(5, deadline=time.monotonic()) is False  # the drain is over
    assert q.get(0) == 3 and q.get(0) is None


def test_closed_queue_drains_then_raises():
    q: StageQueue[int] = StageQueue(4)
    q.put(1)
    q.close()
    assert q.get(0) == 1
    with pytest.raises(Closed):
        q.get(1)


def test_queue_rejects_unknown_policy():
    with pytest.raises(ValueError, match="drop_oldest"):
        StageQueue(1, "lifo")


def test_latency_percentiles_on_known_samples():
    samples = np.arange(1, 101, dtype=float)
    assert latency_summary(samples) == {"p50": 50.5, "p99": 99.01}
    assert latency_summary(np.array([])) == {"p50": 0.0, "p99": 0.0}


def test_stats_snapshot_counts_and_fps():
    stats = ServiceStats()
    for _ in range(10):
        stats.count_in("a")
        stats.count_out("a", 2.0)
        time.sleep(0.005)
    stats.count_rejected("dtype")
    stats.count_dropped("paused", 3)
    snap = stats.snapshot()
    assert snap["frames_in"] == 10 and snap["frames_out"] == 10
    assert snap["rejected"] == {"dtype": 1} and snap["dropped"] == {"paused": 3}
    latency = snap["latency_ms"]
    assert latency["p50"] == latency["p99"] == 2.0 and latency["frames"] == 10
    assert 0 <= latency["since_last_s"] < snap["uptime_s"]
    assert ServiceStats().snapshot()["latency_ms"]["since_last_s"] is None  # none out yet
    assert snap["series"]["a"]["frames_out"] == 10
    assert 20 < snap["fps"] < 400  # ten frames ~5 ms apart


def test_event_rate_limit_keeps_counting():
    sent: list[dict] = []
    emitter = EventEmitter(sent.append, burst=3)
    for _ in range(10):
        emitter.emit("rejected", limit_key="dtype", reason="dtype")
    emitter.emit("rejected", limit_key="shape", reason="shape")
    emitter.emit("series_start", series="x")
    assert [e["reason"] for e in sent if e["event"] == "rejected"] == ["dtype"] * 3 + ["shape"]
    assert emitter.suppressed == 7
    assert sent[-1]["event"] == "series_start" and sent[-1]["v"] == 1


def test_a_suppressed_flood_is_told_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """2,000 malformed messages gave 40 warnings, then silence: the log, a long run's
    record, looked quiet while garbage came for hours (an operator's trial)."""
    import stream.service._events as events_module

    now = [100.5]
    monkeypatch.setattr(events_module.time, "monotonic", lambda: now[0])
    emitter = EventEmitter(lambda _: None, burst=3)
    for _ in range(10):
        emitter.emit("rejected", limit_key="dtype", reason="dtype")
    assert "suppressed" not in caplog.text  # not yet: the second is not over
    now[0] = 101.2
    emitter.emit("rejected", limit_key="dtype", reason="dtype")
    told = [r for r in caplog.records if "suppressed in a second" in r.getMessage()]
    assert len(told) == 1 and told[0].levelname == "WARNING"
    assert told[0].getMessage().startswith("7 more rejected:dtype event(s) suppressed")
    # a flood that ends is told with the next status, not only with its next event
    for _ in range(6):
        emitter.emit("rejected", limit_key="parts", reason="parts")
    now[0] = 102.5
    emitter.report_suppressed()
    emitter.report_suppressed()  # told once
    ends = [r.getMessage() for r in caplog.records if "rejected:parts" in r.getMessage()]
    assert ends == [
        "3 more rejected:parts event(s) suppressed in a second (status counts every one)"
    ]


def test_config_defaults_bind_loopback_only():
    cfg = ServiceConfig()
    assert all(is_loopback(e) for e in (cfg.input, cfg.output, cfg.control))
    assert not is_loopback("tcp://0.0.0.0:5556") and not is_loopback("tcp://10.0.0.2:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("tcp://localhost:1")


def test_config_from_toml_with_overrides(tmp_path: Path):
    path = tmp_path / "dd.toml"
    path.write_text(
        'input = "tcp://127.0.0.1:7000"\ntile = 256\n[queues]\ninference_depth = 8\n'
        "[limits]\nmax_side = 4096\n"
    )
    cfg = load_config(path, tile=512, overlap=None)
    assert cfg.input == "tcp://127.0.0.1:7000" and cfg.tile == 512
    assert cfg.queues.inference_depth == 8 and cfg.limits.max_side == 4096


def test_model_dirs_in_a_config_file_are_relative_to_its_folder(tmp_path: Path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "serve.toml"
    path.write_text('model_dirs = ["models", "/abs/models"]\n')
    assert load_config(path).model_dirs == [tmp_path / "cfg" / "models", Path("/abs/models")]


def test_a_config_file_writes_numbers_paths_and_pairs_as_toml_does(tmp_path: Path):
    path = tmp_path / "ok.toml"
    path.write_text(
        'drain_s = 5\ntile = 256.0\nwarmup_shape = [64, 96]\nzarr = "data"\n'
        "[gpu]\ncuda_graph = false\n"
    )
    cfg = load_config(path)
    assert cfg.drain_s == 5.0 and cfg.tile == 256 and cfg.warmup_shape == (64, 96)
    assert cfg.zarr == tmp_path / "data" and cfg.gpu.cuda_graph is False
    # overrides from Python: NumPy numbers and settings models, as before
    from stream.camera import CameraModel

    camera = CameraModel(gain=2.0, offset=100.0, read_noise=1.5)
    cfg = load_config(path, tile=np.int64(128), camera=camera)
    assert cfg.tile == 128 and cfg.camera == camera


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("input = 'http://x'", "expected a ZeroMQ endpoint"),
        # libzmq served tcp://127.0.0.1:99999 on port 34463 (99999 mod 65536), unsaid
        ("output = 'tcp://127.0.0.1:99999'", r"port of 0-65535 \(or \*\), got 'tcp://127"),
        ("control = 'tcp://127.0.0.1'", "expected a TCP endpoint tcp://host:port"),
        ("tile = 64\noverlap = 64", "overlap .64. must be smaller than tile"),
        ("provider = 'tpu'", "provider"),
        ("[queues]\ninference_depth = 0", "inference_depth"),
        ("bogus = 1", "bogus"),
        ("gain = 1", r"gain: Extra inputs are not permitted; it is a setting of \[camera\]"),
        ("model = 'nosuch'", r"no shipped model named 'nosuch'; [^(]*\(looked[^(]*$"),
        ("input = ", "not valid TOML"),
        # both were taken without a word: a shard capped at 256, a flush never due
        ("[store]\nframes_per_shard = 100000000", r"frames_per_shard.*less than or equal to 256"),
        ("[store]\nflush_interval_s = inf", "flush_interval_s.*finite"),
        # an operator's trial: coerced, or taken, without a word
        ("[store]\nflush_interval_s = 1e12", r"flush_interval_s.*less than or equal to 3600"),
        ("[store]\nfsync = 'yes'", r"store.fsync: Input should be a valid boolean \(got 'yes'\)"),
        ("publish_raw = 'yes'", r"publish_raw: Input should be a valid boolean"),
        ("[traces]\nstore = 1", r"traces.store: Input should be a valid boolean"),
        # a string "false" was taken as False, "5" as 5 (an operator's trial)
        ("[gpu]\ncuda_graph = 'false'", r"gpu.cuda_graph: Input should be a valid boolean"),
        ("drain_s = '5'", r"drain_s: Input should be a valid number \(got '5'\)"),
        ("[queues]\ninference_depth = '8'", r"inference_depth: Input should be a valid integer"),
        ("tile = 256.5", r"tile: Input should be a valid integer"),
        # a TOML date is no setting's value (said, naming it, not a TypeError)
        ("subscribe = 2024-01-01", r"subscribe: expected a string, number, .* got date"),
        # an empty path named the config's folder, unsaid
        ('model_dirs = [""]', r"model_dirs: expected a path, got ''"),
        ('[security]\nsecret_key = ""', r"security.secret_key: expected a path, got ''"),
    ],
)
def test_config_errors_say_what_was_expected_and_given(tmp_path: Path, text: str, match: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_a_shipped_model_is_named_and_a_file_is_left_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from stream.engine import shipped_model_path

    monkeypatch.chdir(tmp_path)
    assert ServiceConfig(model="na-temporal").model == shipped_model_path("na-temporal")
    assert ServiceConfig(model=Path("na-lite")).model == shipped_model_path("na-lite")
    with pytest.raises(ValidationError, match="expected one of na-large, na-lite, na-temporal"):
        ServiceConfig(model="no-such-model")  # no file, no shipped model: both said
    assert ServiceConfig(model="gone.onnx").model == tmp_path / "gone.onnx"  # the engine's
    # JSON (how the benchmarks hand a service process its config) takes names and files
    named = ServiceConfig.model_validate_json('{"model": "na-lite"}')
    assert named.model == shipped_model_path("na-lite")
    assert ServiceConfig.model_validate_json(named.model_dump_json()).model == named.model
    (tmp_path / "serve.toml").write_text('model = "na-temporal"\n')  # in a config file too
    assert load_config(tmp_path / "serve.toml").model == shipped_model_path("na-temporal")
    (tmp_path / "na-temporal").write_bytes(b"")  # a file of that name here wins
    assert ServiceConfig(model="na-temporal").model == tmp_path / "na-temporal"
    assert load_config(tmp_path / "serve.toml").model == tmp_path / "na-temporal"


def test_status_keeps_the_counters_of_the_most_recently_ended_series_only(monkeypatch):
    from stream.service import _stats

    monkeypatch.setattr(_stats, "ENDED_KEPT", 2)
    stats = ServiceStats()
    for name in ("trial1", "trial2", "trial3", "live"):
        stats.count_in(name)
    for name in ("trial1", "trial2"):
        stats.series_ended(name)
    stats.count_in("trial1")  # resumed: open again, no longer among the ended
    stats.series_ended("trial3")
    stats.series_ended("trial4")  # a series that never took a frame ends too
    series = stats.snapshot()["series"]
    assert sorted(series) == ["live", "trial1", "trial3"]  # trial2 ended longest ago
    assert series["trial1"]["frames_in"] == 2 and stats.snapshot()["frames_in"] == 5


def test_the_published_status_stays_within_what_clients_decode():
    """A rig that never ends its series (one per trial): at 170 series of about 0.5 KiB
    the status (101 KiB) was refused by every subscriber but Python's."""
    import msgpack
    from deepdenoise_client._protocol import DEFAULT_LIMITS

    from stream.service._publish import STATUS_MAX_BYTES, packed_status

    entry = {"frames_in": 1, "frames_out": 1, "camera": {"gain": 1.0, "note": "x" * 400}}
    series = {f"trial-{i:04d}-{'y' * 40}": dict(entry) for i in range(300)}
    status = {"v": 1, "state": "running", "series": series}
    packed = packed_status(status)
    assert len(packed) <= STATUS_MAX_BYTES < DEFAULT_LIMITS.max_header_bytes
    sent = msgpack.unpackb(packed)
    kept = list(sent["series"])
    assert sent["series_omitted"] == 300 - len(kept) > 0
    assert kept == list(series)[-len(kept) :]  # the latest seen stay
    small = {"v": 1, "series": {"a": entry}}
    assert msgpack.unpackb(packed_status(small)) == small  # nothing omitted, no key added
