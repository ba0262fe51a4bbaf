"""The benchmark suites run (tiny settings) and write well-formed results.

No timing is asserted anywhere: numbers depend on the machine. What is checked is
what must hold on any machine — the statistics are right on known samples, every
suite produces its documented files and keys, lossless runs lose nothing, stores
read back, and the torch twin of an ONNX model computes what the model computes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import _common, _models
from benchmarks.__main__ import SUITES, main

VERSION_KEYS = {"python", "numpy", "onnxruntime", "pyzmq", "zarr", "torch"}
PERCENTILE_KEYS = {"n", "p50", "p90", "p99", "p99.9", "max", "mean"}


def test_percentiles_of_a_known_sample():
    got = _common.percentiles(np.arange(1, 101, dtype=float))  # 1..100
    assert got == {
        "n": 100,
        "p50": 50.5,
        "p90": 90.1,
        "p99": 99.01,
        "p99.9": 99.901,
        "max": 100.0,
        "mean": 50.5,
    }


def test_percentiles_ignore_nan_and_handle_tiny_samples():
    assert _common.percentiles([]) == {"n": 0}
    assert _common.percentiles([np.nan, 3.0, np.nan]) == {
        "n": 1,
        "p50": 3.0,
        "p90": 3.0,
        "p99": 3.0,
        "p99.9": 3.0,
        "max": 3.0,
        "mean": 3.0,
    }
    two = _common.percentiles([0.0, 10.0])
    assert two["p50"] == 5.0 and two["p90"] == 9.0 and two["max"] == 10.0


def test_time_calls_counts_reps_not_time():
    calls = []
    times = _common.time_calls(lambda: calls.append(1), min_reps=3, budget_s=0.0, warmup=2)
    assert len(times) == 3 and len(calls) == 5
    times = _common.time_calls(lambda: calls.append(1), min_reps=1, max_reps=7, budget_s=60.0)
    assert len(times) == 7 and (times >= 0).all()


class FakeClock:
    """A clock that moves only when slept on, or by ``call_s`` per timed call."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_time_calls_paces_calls_on_the_period(monkeypatch: pytest.MonkeyPatch):
    clock = FakeClock()
    monkeypatch.setattr(_common, "time", clock)  # no real clock: the schedule itself
    starts: list[float] = []

    def call() -> None:
        starts.append(clock.now)
        clock.now += 0.005  # each call takes 5 ms of the 20 ms period

    times = _common.time_calls(call, min_reps=5, max_reps=5, warmup=0, period_s=0.02)
    assert np.allclose(np.asarray(starts) - starts[0], np.arange(5) * 0.02)  # i periods in
    assert np.allclose(times, 5.0)


def test_targets_say_met_missed_or_not_measured():
    assert _common.Target.at_least("r", 0.6, 0.5, "x", "").met is True
    assert _common.Target.at_least("r", 0.4, 0.5, "x", "").met is False
    assert _common.Target.below("o", 0.9, 1.0, "ms", "").met is True
    assert _common.Target.below("o", 1.0, 1.0, "ms", "").met is False
    assert _common.Target.below("o", None, 1.0, "ms", "").met is None
    assert _common.verdict(None) == "not measured"


def test_tables_reach_into_percentile_dicts():
    rows = [{"name": "a", "lat": {"p99": 1.5, "p99.9": 2.25}}, {"name": "bb", "lat": {}}]
    cols = [("name", "name"), ("lat.p99", "p99"), ("lat.p99.9", "p99.9")]
    lines = _common.table_lines(rows, cols)
    assert lines[1].split() == ["a", "1.50", "2.25"]
    assert lines[2].split() == ["bb", "-", "-"]
    md = _common.markdown_table(rows, cols).splitlines()
    assert md[0] == "| name | p99 | p99.9 |" and md[2] == "| a | 1.50 | 2.25 |"


def test_machine_info_and_tag():
    info = _common.machine_info()
    assert info["cpu_count"] >= 1 and info["cpu_model"]
    assert info["providers"]["cpu"] is None  # the CPU provider is always usable
    assert info["versions"].keys() >= VERSION_KEYS
    tag = _common.machine_tag(info)
    if info["gpus"]:
        assert tag.startswith("gpu-")
    else:
        assert tag.startswith(f"cpu-{info['cpu_count']}c-")
    assert tag == tag.lower() and " " not in tag


def test_phantom_frames_are_cached_read_only_uint16():
    frames = _common.phantom_frames((24, 40), 3)
    assert frames.shape == (3, 24, 40) and frames.dtype == np.uint16
    assert not frames.flags.writeable
    assert _common.phantom_frames((24, 40), 3) is frames
    assert not np.array_equal(frames[0], frames[1])  # distinct noise per frame


def _export_dncnn(path: Path, depth: int = 4, width: int = 6) -> Any:
    """A small DnCNN with BatchNorm statistics that matter, exported as the exporter does."""
    import torch

    from exporter.model import DnCNN, ModelSpec

    torch.manual_seed(0)
    model = DnCNN(ModelSpec(depth=depth, width=width))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        torch.nn.init.normal_(model.body[-1].weight, std=0.1)
    model.eval()
    axes = {0: "N", 2: "H", 3: "W"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 16, 16),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": axes},
            opset_version=17,
            dynamo=False,
        )
    return model


def test_torch_twin_computes_what_the_onnx_model_computes(tmp_path: Path):
    import onnxruntime as ort
    import torch

    path = tmp_path / "dncnn.onnx"
    original = _export_dncnn(path)
    stack = _models.read_conv_stack(path)
    assert stack.residual and len(stack.layers) == 4
    assert [layer.relu for layer in stack.layers] == [True, True, True, False]
    assert stack.flops_per_pixel() == 2 * 9 * (1 * 6 + 6 * 6 + 6 * 6 + 6 * 1)
    twin = _models.torch_from_onnx(path)
    x = np.random.default_rng(3).normal(0, 1, (2, 1, 21, 34)).astype(np.float32)
    with torch.inference_mode():
        want = original(torch.from_numpy(x)).numpy()
        got = twin(torch.from_numpy(x)).numpy()
    onnx_out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    assert np.abs(want - x).max() > 1e-2  # the model does something
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(got, onnx_out, atol=1e-4)


def test_torch_twin_refuses_graphs_it_cannot_copy(tmp_path: Path, identity_model: Path):
    from onnx import TensorProto, helper, save

    assert _models.read_conv_stack(identity_model).layers == ()
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, "H", "W"])],
    )
    save(helper.make_model(graph), str(tmp_path / "add.onnx"))
    with pytest.raises(ValueError, match="cannot read node Add"):
        _models.read_conv_stack(tmp_path / "add.onnx")


def test_a_bad_out_or_model_name_is_refused_before_any_suite_runs(tmp_path: Path):
    """An --out that is a file failed after the whole sweep (26 min), keeping nothing;
    a misspelled --model name was ignored and the default model measured."""
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match="cannot write results in"):
        main(["--tiny", "--suite", "transport", "--out", str(tmp_path / "file")])
    with pytest.raises(SystemExit, match="no suite measures a model named 'identty'"):
        main(
            ["--tiny", "--suite", "inference", "--model", "identty=x.onnx", "--out", str(tmp_path)]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing ran


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every suite once, tiny settings, CPU only, through the command line."""
    out = tmp_path_factory.mktemp("bench")
    assert main(["--tiny", "--provider", "cpu", "--out", str(out)]) == 0
    (folder,) = out.iterdir()
    return folder


def _load(folder: Path, suite: str) -> dict:
    return json.loads((folder / f"{suite}.json").read_text())


def test_every_suite_writes_json_markdown_and_figures(tiny_run: Path):
    assert tiny_run.name == _common.machine_tag()
    for suite in SUITES:
        data = _load(tiny_run, suite)
        assert data["suite"] == suite and data["schema"] == _common.SCHEMA_VERSION
        assert data["level"] == "tiny" and data["machine_tag"] == tiny_run.name
        machine = data["machine"]
        assert {"cpu_model", "cpu_count", "gpus", "providers", "versions"} <= machine.keys()
        assert machine["versions"].keys() >= VERSION_KEYS
        assert data["settings"] and data["rows"], suite
        for target in data["targets"]:
            assert {"name", "measured", "target", "unit", "met", "detail"} <= target.keys()
        for figure in data["figures"]:
            assert (tiny_run / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert data["figures"], suite
        md = (tiny_run / f"{suite}.md").read_text()
        assert md.startswith(f"# {suite}") and "## Results" in md
    summary = (tiny_run / "summary.md").read_text()
    assert "## Headline" in summary and "| target | measured | wanted | verdict |" in summary
    for suite in SUITES:
        assert f"[{suite}]({suite}.md)" in summary


def test_transport_is_lossless_and_rates_the_service(tiny_run: Path):
    data = _load(tiny_run, "transport")
    paths = {r["path"] for r in data["rows"]}
    for raw in ("raw push/pull tcp", "raw push/pull ipc", "raw pub/sub tcp", "raw pub/sub ipc"):
        assert raw in paths
    relay = [r for r in data["rows"] if r.get("pattern") == "relay"]
    assert {r["offered_fps"] for r in relay} == {"max", 100.0}
    for row in data["rows"]:
        assert row["frames_received"] == row["frames_sent"] > 0, row["path"]
        assert row["e2e_ms"].keys() >= PERCENTILE_KEYS
        assert row["e2e_ms"]["n"] == row["frames_received"]
    (target,) = data["targets"]
    service = [r for r in data["rows"] if "x_raw" in r]
    assert len(service) == 1 and target["measured"] == service[0]["x_raw"] > 0
    relay_fps = next(r["achieved_fps"] for r in relay if r["offered_fps"] == "max")
    assert service[0]["x_relay"] == pytest.approx(service[0]["achieved_fps"] / relay_fps, abs=1e-3)


def test_end_to_end_reports_overhead_against_inference(tiny_run: Path):
    data = _load(tiny_run, "end_to_end")
    assert {(r["offered_fps"], r["zarr"]) for r in data["rows"]} == {
        (100.0, False),
        ("max", False),
        (100.0, True),
        ("max", True),
    }
    for row in data["rows"]:
        assert row["model"] == "identity" and row["provider"] == "cpu"
        if row["offered_fps"] == "max":  # lossless queues: every frame arrives
            assert row["frames_received"] == row["frames_sent"]
        e2e, ovh = row["e2e_ms"], row["overhead_ms"]
        assert ovh["n"] == e2e["n"] == row["frames_received"]
        median_inference = row["inference_ms"]["p50"]
        assert ovh["max"] == pytest.approx(e2e["max"] - median_inference, abs=2e-3)
    overhead, zarr = data["targets"]
    assert overhead["name"] == "p99 service overhead at 100 fps"
    assert overhead["measured"] is not None
    (zarr_row,) = [r for r in data["rows"] if r["zarr"] and r["offered_fps"] == "max"]
    assert zarr["name"].startswith("Zarr on, 64x64") and zarr_row["frames_dropped"] == 0
    assert zarr["measured"] == zarr_row["fps_incl_flush"] > 0
    assert zarr["met"] == (zarr["measured"] >= 300)


def test_inference_torch_matches_ort_and_reports_tiling(tiny_run: Path):
    data = _load(tiny_run, "inference")
    rows = {r["precision"]: r for r in data["rows"]}
    assert rows.keys() == {"fp32", "fp16"}
    for row in rows.values():
        assert row["max_abs_diff"] == 0.0  # identity: torch and ORT return the input
        assert row["plan_whole"] and row["plan_overhead"] == 1.0
        assert row["tiled_tiles"] == 4 and row["tiled_overhead"] > 1.0
    assert {t["name"] for t in data["targets"]} == {
        "ORT CPU / torch eager CPU, dncnn-lite",
        "ORT CPU / torch eager CPU, dncnn20",
    }


def test_storage_writes_verified_stores_or_says_why_not(tiny_run: Path):
    data = _load(tiny_run, "storage")
    writers = {r["writer"]: r for r in data["rows"]}
    skipped = {s["what"].split()[0] for s in data["skipped"]}
    assert {"deepdenoise", "zarr-python"} <= writers.keys()
    for peer in ("tensorstore", "acquire-zarr"):
        assert (peer in writers) != (peer in skipped), peer
    for row in writers.values():
        assert row["verified"] is True, row["writer"]
        assert row["frames"] >= 1 and row["mb_per_s"] > 0
    assert writers["deepdenoise"]["x_ours"] == 1.0


def test_closed_loop_covers_each_rate_with_its_baselines(tiny_run: Path):
    data = _load(tiny_run, "closed_loop")
    rates = data["settings"]["rates"]
    paths = [r["path"] for r in data["rows"]]
    assert [r["offered_fps"] for r in data["rows"]] == [rate for rate in rates for _ in range(3)]
    assert paths[:3] == ["raw pub/sub tcp", "bare relay (no work)", "service identity + 20 ROIs"]
    for row in data["rows"]:
        assert 0 < row["frames_received"] <= row["frames_sent"]
        assert row["e2e_ms"]["n"] == row["frames_received"]
        if row["path"].startswith("service"):
            assert row["mode"] == "pub" and row["policy"] == "drop_oldest"
            # every denoised frame had its traces and (a rule that always fires) a trigger;
            # traces jump the publish queue, so on a busy machine a frame's pixels may be
            # dropped from it after its traces went out: every message is received or counted
            dropped = row["dropped_by_reason"]
            denoised = row["frames_received"] + dropped.get("publish_queue_full", 0)
            small = row["traces"] + row["triggers"] + dropped.get("traces_queue_full", 0)
            assert small == 2 * denoised
            assert row["traces_stage_ms"]["n"] == row["traces"]
            assert row["x_relay_p50"] > 0 and row["x_raw_p50"] > 0
    (target,) = data["targets"]
    assert target["name"].startswith("traces stage p99") and target["measured"] > 0
    assert data["figures"] == ["closed_loop.png"]


def test_gpu_check_is_ready_and_says_why_it_measures_nothing_without_a_gpu(capsys):
    from benchmarks import gpu_check
    from stream.engine import probe_providers

    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ready" in out
    # the defaults and the GPU model, each measured once (the defaults may be one model)
    models = gpu_check.gpu_models()
    assert "na-large" in models and len(set(models)) == len(models)
    assert f"end to end: {', '.join(models)} x" in out
    if probe_providers()["cuda"] is not None:
        assert gpu_check.main([]) == 2
        assert "no usable CUDA provider" in capsys.readouterr().out


def test_ensemble_check_measures_every_pass_count() -> None:
    from benchmarks.ensemble_check import measure

    row = measure("na-lite", 32)
    assert set(row["ms"]) == {"1", "2", "4"} and row["over_one_pass"]["1"] == 1.0
    assert all(ms > 0 for ms in row["ms"].values())
    assert row["auto_up_to_fps"]["2"] == pytest.approx(2 * row["auto_up_to_fps"]["4"], rel=0.02)


def test_masks_check_streams_hold_what_they_say() -> None:
    """Each stream the check times is found to hold what it is named for (a masked
    region in every frame of the circle's, in every moved border's, a lag of 2 px in the
    comb's, moved pairs in the jittered one's), the plain one nothing: the ratios compare
    what they claim to."""
    from benchmarks.masks_check import LAG, SEARCH_FRAMES, measure

    row = measure(256, SEARCH_FRAMES + 4)  # smaller phantom frames show no lag
    found = row["found"]
    assert found["plain"] == {"frames_masked": 0, "scan_lag": 0, "pairs_moved": 0}
    assert found["circle"] == {"frames_masked": SEARCH_FRAMES + 4, "scan_lag": 0, "pairs_moved": 0}
    assert found["moving border"]["frames_masked"] >= SEARCH_FRAMES
    assert found["comb"] == {"frames_masked": 0, "scan_lag": LAG, "pairs_moved": 0}
    assert found["jittered"]["frames_masked"] == 0
    assert found["jittered"]["pairs_moved"] > (SEARCH_FRAMES + 3) // 2  # most of its pairs
    assert set(row["vs_plain"]) == set(found) and row["vs_plain"]["plain"] == 1.0


def test_still_means_check_mixes_bright_frames_and_not_dim_ones() -> None:
    from benchmarks.still_means_check import measure

    row = measure(32, frames=5)
    assert set(row["ms"]) == {"engine", "bright (1000 photons)", "dim (10 photons)"}
    assert all(ms > 0 for ms in row["ms"].values())
    assert row["mixed_share"]["bright (1000 photons)"] > 0.5
    assert row["mixed_share"]["dim (10 photons)"] == 0.0


def test_lag_check_runs_both_engines_and_the_step_moves_pixels() -> None:
    from benchmarks.lag_check import measure

    row = measure(48, frames=4)
    assert row["side"] == 48
    assert row["engine_ms"] > 0 and row["with_step_ms"] > 0
    assert 0.0 < row["moved_share"] < 1.0  # cells fire: some pixels followed, not all


def test_motion_check_times_each_step_and_follows_the_jitter() -> None:
    from benchmarks.motion_check import STEPS, measure

    row = measure(128, frames=4)
    assert set(row["ms"]) == set(STEPS) and all(ms > 0 for ms in row["ms"].values())
    assert row["over_engine"]["engine"] == 1.0
    found, frames = (int(n) for n in row["shifts_found"].split(" / "))
    assert frames == 4 and found >= 3  # at 10 photons per pixel, most moves are followed


def test_blend_check_times_a_measurement_and_a_dark_frames_against_its_pair() -> None:
    from benchmarks.blend_check import FIRST, LONGEST, PAIRED, measure

    row = measure(64)
    assert {"engine", "measurement", PAIRED, FIRST, LONGEST} <= set(row["ms"])
    assert all(ms > 0 for ms in row["ms"].values())
    assert row["ms"][LONGEST] < row["ms"]["measurement"]  # one step of several


def test_live_latency_check_runs_the_demos_pipeline_with_the_blend_on_and_off(
    tmp_path: Path,
) -> None:
    import json

    from benchmarks.live_latency_check import main

    args = ["--out", str(tmp_path), "--fps", "20", "--seconds", "0.5", "--side", "64"]
    assert main([*args, "--rounds", "1"]) == 0
    (record,) = tmp_path.glob("*/live_latency_check.json")
    rows = {row["blend"]: row for row in json.loads(record.read_text())["rows"]}
    assert set(rows) == {"off", "spatial"}
    assert rows["off"]["measured"] == 0 and rows["spatial"]["measured"] >= 1
    assert rows["off"]["over_off"]["p50"] == 1.0
    assert all(row["p50"] > 0 and len(row["rounds"]) == 1 for row in rows.values())


def test_camera_estimate_check_times_the_line_searches_over_their_pairs() -> None:
    from benchmarks.camera_estimate_check import _frames, _line_search_ms

    times = _line_search_ms(_frames(64, 8))
    assert len(times) == 32 and all(ms > 0 for ms in times)
