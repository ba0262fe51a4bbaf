"""The `deepdenoise` command line, run in-process with typer's runner."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
from service_harness import (
    ServeProcess,
    free_tcp_endpoint,
    interrupt_when,
    running_service,
    sigint_as_in_a_terminal,
    wait_until,
)
from typer.testing import CliRunner

from stream import SeriesStore, StoreError, __version__, default_model_path
from stream.cli import app
from stream.engine import shipped_model_path

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_version_and_help_for_every_command():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output
    for command in ("serve", "simulate", "status", "info", "demo"):
        result = invoke(command, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
    assert "--input-mode" in invoke("serve", "--help").output


def test_info_describes_models_with_and_without_metadata(identity_model: Path):
    shipped = invoke("info", str(default_model_path()))
    assert shipped.exit_code == 0
    assert "dncnn-na-lite" in shipped.output and "51 px" in shipped.output
    assert "series start" not in shipped.output and "1 + noise map" in shipped.output
    temporal = invoke("info", str(shipped_model_path("na-temporal")))
    assert temporal.exit_code == 0 and "series start" in temporal.output
    assert "na-lite" in temporal.output and "5 + noise map" in temporal.output
    assert "running mean" in temporal.output and "decay 0.0625" in temporal.output
    assert "adaptive" in temporal.output and "running mean" not in shipped.output
    plain = invoke("info", str(identity_model))
    assert plain.exit_code == 0 and "identity" in plain.output
    assert "fits (a 96x128 frame and a batch of 2 tiles" in " ".join(shipped.output.split())


def test_info_without_a_path_lists_the_shipped_models():
    """It said only that a path was missing; the models were in the README alone."""
    from stream.engine import CPU_DEFAULT, shipped_model_names

    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    names = shipped_model_names()
    assert {"na-lite", "na-temporal", "na-large"} <= set(names)
    assert all(name in text for name in names)
    assert "temporal: 5 frames" in text and "spatial: one frame" in text
    assert f"{CPU_DEFAULT} spatial: one frame, receptive field" in text
    assert "the default on CPU" in text


def test_info_says_when_serve_would_refuse_a_model(tmp_path: Path):
    """A model whose graph runs only on square frames: info shows its metadata and the
    refusal serve and load-model would give."""
    import onnx
    from onnx import TensorProto, helper

    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1, "H", "W"])
             for n in ("x", "y")]  # fmt: skip
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2]),
        helper.make_node("Add", ["x", "xt"], ["y"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "square", [value[0]], [value[1]]),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    onnx.save(model, tmp_path / "square.onnx")
    result = invoke("info", str(tmp_path / "square.onnx"))
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "contract refused: model square.onnx failed on a batch of 2 tiles of 48x80" in text


def test_info_describes_the_trace_denoiser():
    from stream.traces import SHIPPED_TRACE_MODEL

    result = invoke("info", str(SHIPPED_TRACE_MODEL))
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    assert "ROI trace denoiser" in text and "trace-mlp" in text and "32 dF/F samples" in text
    assert "([traces] denoiser = this file)" in text  # a value, not rich markup


def test_info_summarises_a_store(tmp_path: Path):
    import numpy as np

    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2")) as store:
        for i in (0, 1, 3):
            store.write_raw(i, np.full((8, 8), i, "<u2"), t_ns=i)
        store.flush()
        open_store = invoke("info", str(tmp_path / "s1.zarr"))  # while a service writes it
        assert (
            "time axis 2048 (allocated ahead while the store is open: being written, or left open "
            "by a service that was killed" in " ".join(open_store.output.replace("│", " ").split())
        ), open_store.output
    result = invoke("info", str(tmp_path / "s1.zarr"))
    assert result.exit_code == 0, result.output
    assert "s1" in result.output and "missing" in result.output
    assert "allocated ahead" not in result.output  # closed: the axis ends at its last frame
    text = " ".join(result.output.replace("│", " ").split())
    assert "time axis 4 slots (frames on disk: valid; holes: missing)" in text
    assert "valid 3" in text


def test_info_says_a_store_whose_metadata_cannot_be_read_is_damaged(tmp_path: Path):
    """Its zarr.json corrupt, a store was "expected an .onnx model, a <series>.zarr
    store ..." (denoise said what was wrong)."""
    import numpy as np
    import zarr

    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2")) as store:
        store.write_raw(0, np.zeros((8, 8), "<u2"), t_ns=0)
    (tmp_path / "s1.zarr" / "zarr.json").write_text("{corrupt")
    result = runner.invoke(app, ["info", str(tmp_path / "s1.zarr")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "cannot read" in text and "zarr.json" in text, text
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(2, 8, 8), dtype="<u2")
    plain = runner.invoke(app, ["info", str(tmp_path / "plain.zarr")])  # readable: not damaged
    assert plain.exit_code == 2 and "expected an .onnx model" in plain.output, plain.output
    text = " ".join(plain.output.split())  # what it is, and what to do with it
    assert "got a plain Zarr array (2x8x8 uint16)" in text and "deepdenoise denoise" in text


def test_info_reports_valid_frames_whose_pixels_are_gone(tmp_path: Path):
    """A store whose raw shard was deleted showed "valid 20, missing 0" as if intact,
    while every reader refuses it."""
    import numpy as np

    from stream.store import StoreConfig

    config = StoreConfig.model_validate({"frames_per_shard": 2})
    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2"), config=config) as store:
        for i in range(6):
            store.write_raw(i, np.full((8, 8), i, "<u2"), t_ns=i)
    intact = invoke("info", str(tmp_path / "s1.zarr"))
    assert intact.exit_code == 0, intact.output
    assert "damaged no" in one_line(intact.output.replace("│", " "))
    shutil.rmtree(tmp_path / "s1.zarr" / "0" / "0" / "c" / "1")  # frames 2 and 3
    result = invoke("info", str(tmp_path / "s1.zarr"))
    text = one_line(result.output.replace("│", " "))
    assert result.exit_code == 2, result.output
    assert "valid 6" in text  # the flags, as they are, beside what they no longer hold
    says = (
        "2 frame(s) flagged valid have no pixels on disk (indices 2, 3; missing or "
        "unreadable: 0/0/c/1/0/0)"
    )
    assert f"damaged {says}" in text
    assert f"error: {tmp_path / 's1.zarr'}: the store is damaged: {says}" in text


@pytest.mark.parametrize("damage", ["denoised-shard", "denoised-array", "valid-flags"])
def test_info_reports_denoised_pixels_or_raw_flags_that_are_gone(tmp_path: Path, damage: str):
    """A denoised shard deleted, or a chunk of the valid flags: `info` said "damaged
    no" (a user's trial; napari showed NaN, or nothing, without a word)."""
    import numpy as np

    from stream.store import ARRAY_PATHS, StoreConfig

    config = StoreConfig.model_validate({"frames_per_shard": 2})
    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2"), config=config) as store:
        for i in range(6):
            store.write_raw(i, np.full((8, 8), i, "<u2"), t_ns=i)
            store.write_clean(i, np.full((8, 8), i, "<f4"))
    path = tmp_path / "s1.zarr"
    if damage == "denoised-shard":
        shutil.rmtree(path / ARRAY_PATHS["clean"] / "c" / "1")  # frames 2 and 3
        says = "denoised damaged 2 frame(s) flagged valid have no pixels on disk (indices 2, 3"
        error = "the store is damaged: its denoised frames: 2 frame(s)"
    elif damage == "denoised-array":  # deleted to save space: it failed with KeyError
        shutil.rmtree(path / ARRAY_PATHS["clean"])
        says = "denoised damaged no denoised image array"
        error = "the store is damaged: its denoised frames: no denoised image array"
    else:
        chunks = [p for p in (path / "valid" / "c").rglob("*") if p.is_file()]
        assert chunks
        for chunk in chunks:
            chunk.unlink()
        says = "its valid flags count 0 raw frame(s), its close recorded 6"
        error = f"the store is damaged: {says}"
    result = invoke("info", str(path))
    text = one_line(result.output.replace("│", " "))
    assert result.exit_code == 2, result.output
    assert says in text and error in text, text
    if damage == "valid-flags":  # denoise refuses it too (it said "holds no frame")
        from stream.store import open_recording

        with pytest.raises(StoreError, match=re.escape(f"the store is damaged: {says}")):
            open_recording(path)


def test_info_names_a_metadata_file_that_is_no_json(tmp_path: Path):
    """A corrupt 0/0/zarr.json: info said only zarr's JSON error, not where (a user's
    trial)."""
    import numpy as np

    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2")) as store:
        store.write_raw(0, np.zeros((8, 8), "<u2"), t_ns=0)
    (tmp_path / "s1.zarr" / "0" / "0" / "zarr.json").write_text("{bad")
    result = invoke("info", str(tmp_path / "s1.zarr"))
    text = one_line(result.output)
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 's1.zarr' / '0' / '0' / 'zarr.json'} is no JSON" in text, text


@pytest.mark.parametrize("damage", ["empty", "cut-short", "overwritten"])
def test_info_reports_a_shard_that_is_there_but_unreadable(tmp_path: Path, damage: str):
    """A raw shard emptied or cut short (a power cut before its data reached the disk)
    or overwritten: `info` said "damaged no" while `denoise` refused the store (a fault
    trial, 2026-12-07)."""
    import numpy as np

    from stream.store import StoreConfig, open_recording

    config = StoreConfig.model_validate({"frames_per_shard": 2})
    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2"), config=config) as store:
        for i in range(6):
            store.write_raw(i, np.random.default_rng(i).integers(0, 999, (8, 8), "<u2"), t_ns=i)
    shard = tmp_path / "s1.zarr" / "0" / "0" / "c" / "1" / "0" / "0"  # frames 2 and 3
    data = shard.read_bytes()
    written = {"empty": b"", "cut-short": data[: len(data) // 2]}
    shard.write_bytes(written.get(damage, np.random.default_rng(9).bytes(len(data))))
    result = invoke("info", str(tmp_path / "s1.zarr"))
    text = one_line(result.output.replace("│", " "))
    assert result.exit_code == 2, result.output
    assert "2 frame(s) flagged valid have no pixels on disk (indices 2, 3" in text
    assert "0/0/c/1/0/0 (" in text  # and why it cannot be read
    with pytest.raises(StoreError, match="the store is damaged"):
        open_recording(tmp_path / "s1.zarr")


def test_info_points_from_a_store_to_its_rejected_frames(tmp_path: Path):
    import numpy as np

    from stream.store import RejectedStore

    with SeriesStore(tmp_path, "s1", (8, 8), np.dtype("<u2")) as store:
        store.write_raw(0, np.zeros((8, 8), "<u2"), t_ns=0)
    kept = RejectedStore(tmp_path, "s1")
    kept.add("duplicate", 0, np.ones((8, 8), "<u2"), None, 1)
    kept.add("series_mismatch", 1, np.ones((4, 4), "<f4"), None, 2)
    kept.add("series_mismatch", 2, np.ones((4, 4), "<f4"), None, 3, {"binning": 2})
    kept.flush()
    series = one_line(invoke("info", str(tmp_path / "s1.zarr")).output.replace("│", " "))
    assert "rejected frames 3 kept in rejected/s1.zarr beside it" in series
    result = invoke("info", str(tmp_path / "rejected" / "s1.zarr"))
    assert result.exit_code == 0, result.output
    text = one_line(result.output.replace("│", " "))
    assert "duplicate/uint16_8x8 1 frame " in text
    assert "series_mismatch/float32_4x4 2 frames, 1 with meta" in text


def test_info_takes_a_shipped_models_name():
    shipped = invoke("info", "na-lite")
    assert shipped.exit_code == 0 and "dncnn-na-lite" in shipped.output
    assert "pass-through" in shipped.output and "71 to 224.4" in one_line(shipped.output)
    unknown = runner.invoke(app, ["info", "na-nothing"])
    assert unknown.exit_code == 2 and "no shipped model named" in one_line(unknown.output)


def test_info_rejects_other_paths(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hi")
    result = runner.invoke(app, ["info", str(tmp_path / "notes.txt")])
    assert result.exit_code == 2 and "expected an .onnx model" in result.output
    result = runner.invoke(app, ["info", str(tmp_path / "absent.onnx")])
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "fake.onnx").write_bytes(b"junk")  # as serve says it, not ORT's dump
    result = runner.invoke(app, ["info", str(tmp_path / "fake.onnx")])
    assert result.exit_code == 2 and "is not an ONNX model" in result.output, result.output
    assert "INVALID_PROTOBUF" not in result.output


def test_status_and_simulate_against_a_running_service(tmp_path: Path, identity_model: Path):
    with running_service(tmp_path, identity_model) as svc:
        result = invoke(
            "simulate", "--endpoint", svc.endpoints["input"], "--mode", "push", "--connect",
            "--shape", "32x48", "--fps", "0", "--frames", "6", "--series", "cli",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "sent 6 frames" in result.output
        wait_until(lambda: svc.status()["frames_out"] == 6)
        table = invoke("status", "--control", svc.endpoints["control"])
        assert (
            table.exit_code == 0 and "frames in / out" in table.output and "6 / 6" in table.output
        )
        assert "1; frames by passes: 1: 6" in table.output  # the harness serves one pass
        raw = invoke("status", "--control", svc.endpoints["control"], "--json")
        reply = json.loads(raw.output)
        assert reply["ok"] is True and reply["series"]["cli"]["frames_in"] == 6


def test_simulate_stopped_with_ctrl_c_ends_its_series_and_reports(
    tmp_path: Path, identity_model: Path
):
    """Ctrl-C (the way to end `--frames 0`) exited 130 with no summary and no `end`: the
    service held the series open until its idle end."""
    import subprocess
    import sys

    from stream.store import closed_totals

    with running_service(tmp_path, identity_model) as svc:
        cmd = [
            sys.executable, "-m", "stream", "simulate", "--endpoint", svc.endpoints["input"],
            "--mode", "push", "--connect", "--shape", "16x16", "--fps", "50", "--frames", "0",
            "--series", "endless",
        ]  # fmt: skip
        sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = interrupt_when(sim, lambda: svc.status()["frames_in"] >= 3)
        assert sim.returncode == 0, err
        out = " ".join(out.split())  # rich wraps at the terminal's width
        assert "stopped early (the series' end was sent)" in out, out
        sent = int(out.split("sent ", 1)[1].split()[0])
        store = tmp_path / "data" / "endless.zarr"
        wait_until(lambda: closed_totals(store) is not None, timeout=60)  # its end came
    totals = closed_totals(store)
    assert totals is not None and (totals["frames"], totals["missing"]) == (sent, 0)


def test_the_status_table_names_each_series_camera():
    """README, "The camera behind the noise map": `deepdenoise status` shows the camera
    each series is served with, and the live estimate's standard errors."""
    from rich.console import Console

    from stream.cli._remote import status_table

    camera = {"gain": 1.0213, "gain_stderr": 0.041, "offset": 100.27, "offset_stderr": 0.38,
              "read_noise": 2.104, "source": "temporal"}  # fmt: skip
    reply = {"series": {"s1": {"frames_in": 3, "camera": camera}, "s2": {"camera": {}}}}
    console = Console(width=400, record=True)
    console.print(status_table(reply))
    text = console.export_text()
    assert "camera (live, frame pairs) gain 1.02 ± 0.041 ADU/e-, offset 100 ± 0.38" in text
    assert "read noise 2.1 ADU" in text and text.count("camera (") == 1
    assert "fixed pattern" not in text
    reply["series"]["s1"]["camera"] = {**camera, "read_noise": 0.94, "pattern": 0.58}
    console.print(status_table(reply))
    assert "read noise 0.94 ADU (a fixed pattern of 0.58 in it)" in console.export_text()


def test_the_status_table_says_which_frames_the_latency_is_of():
    from rich.console import Console

    from stream.cli._remote import status_table

    def text(latency: dict) -> str:
        console = Console(width=400, record=True)
        console.print(status_table({"latency_ms": latency}))
        return console.export_text()

    idle = {"p50": 117.0, "p99": 177.6, "frames": 300, "since_last_s": 95.04}
    assert "117.00 / 177.60 ms (the last 300 frames; the latest 95.0 s ago)" in text(idle)
    none = text({"p50": 0, "p99": 0, "frames": 0, "since_last_s": None})
    assert "0.00 / 0.00 ms " in none and "ago" not in none


def test_the_status_table_shows_trace_errors():
    """A series whose frames the ROIs do not fit gets no traces: the table said nothing
    of it (only status --json's traces.errors did; a user's trial)."""
    from rich.console import Console

    from stream.cli._remote import status_table

    def text(traces: dict) -> str:
        console = Console(width=400, record=True)
        console.print(status_table({"traces": traces}))
        return console.export_text()

    errors = {"rois_shape": 1}
    every = {"rois": 5, "source": "rois.npy", "frames": 0, "triggers": {}, "errors": errors}
    assert "5 ROIs (rois.npy), 0 frames, triggers none, errors rois_shape: 1" in text(every)
    per_series = {"rois": 0, "series": {"run2": 5}, "frames": 0, "errors": errors}
    assert "ROIs per series run2: 5, 0 frames, triggers none, errors rois_shape: 1" in text(
        per_series
    )
    assert "no ROIs, errors rois_shape: 1" in text({"rois": 0, "series": {}, "errors": errors})


def test_the_status_table_says_when_the_store_fails():
    from rich.console import Console

    from stream.cli._remote import status_table

    def text(store: dict) -> str:
        console = Console(width=400, record=True)
        console.print(status_table({"store": store}))
        return console.export_text()

    failing = {
        "health": "failing",
        "errors": {"store_write": 3},
        "open_stores": 1,
        "last_error": "frame 7: No space left on device",
        "last_error_age_s": 1.2,
    }
    shown = text(failing)
    assert "failing, errors store_write: 3; last (1 s ago): frame 7: No space left" in shown
    assert "│ store" not in text({"health": "ok", "errors": {}, "open_stores": 1})


def test_an_error_is_one_line_when_stderr_is_a_pipe(tmp_path: Path):
    """README: errors are one line (scripts grep them), not wrapped at 80 columns."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "notes.txt"
    deep.parent.mkdir()
    deep.write_text("hi")
    result = runner.invoke(app, ["info", str(deep)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and str(deep) in lines[0], result.output


def test_json_replies_are_strict_json(capsys: pytest.CaptureFixture[str]):
    """A non-finite number (an estimate's infinite uncertainty) prints as null: JSON has
    no Infinity, and strict parsers (JavaScript's, jq's) refuse it."""
    from stream.cli import print_json

    print_json({"gain_stderr": float("inf"), "rows": [float("nan"), 1.5], "n": 3})

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    out = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert out == {"gain_stderr": None, "rows": [None, 1.5], "n": 3}


def test_status_without_a_service_times_out_clearly():
    result = runner.invoke(app, ["status", "--control", "tcp://127.0.0.1:9", "--timeout", "0.2"])
    assert result.exit_code == 2 and "no service at tcp://127.0.0.1:9" in result.output


def test_with_json_no_reply_is_said_as_json_too():
    cmd = ["pause", "--json", "--control", "tcp://127.0.0.1:9", "--timeout", "0.2"]
    result = runner.invoke(app, cmd)
    said = json.loads(result.stdout)
    assert result.exit_code == 2 and said["ok"] is False, result.output
    assert "no service at tcp://127.0.0.1:9" in said["error"]


def test_a_command_with_a_long_timeout_says_soon_that_no_service_is_there():
    """load-model waits up to 2 minutes for its reply (a model's warm-up); with no service
    at the endpoint it waited them all out (a new user's trial). A connection nothing
    takes within CONNECT_WAIT_S is said to be no service."""
    endpoint = free_tcp_endpoint()
    result = runner.invoke(app, ["load-model", "na-lite", "--control", endpoint])
    text = one_line(result.output)
    assert result.exit_code == 2 and f"no service at {endpoint}: nothing took" in text, text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tile", "64", "--overlap", "64"], "overlap"),
        (["--input", "http://x"], "expected a ZeroMQ endpoint"),
        (["--output", "tcp://127.0.0.1:99999"], "with a port of 0-65535"),
        (["--model", "/nonexistent/model.onnx"], "does not exist"),
        (["--ensemble", "3"], "'--ensemble'"),
        (["--spikes", "fix"], "'--spikes'"),
    ],
)
def test_serve_reports_bad_settings_without_a_traceback(args: list[str], message: str):
    result = runner.invoke(app, ["serve", "--no-zarr", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def one_line(output: str) -> str:
    return " ".join(output.split())


def test_load_model_finds_a_bare_file_name_in_the_services_model_folders(
    tmp_path: Path, identity_model: Path, monkeypatch: pytest.MonkeyPatch
):
    """`load-model rig.onnx` from another folder was made /that/folder/rig.onnx and
    refused, though rig.onnx is in one of the service's model folders (an operator's
    trial)."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(identity_model, models / "rig.onnx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with running_service(tmp_path, identity_model, zarr=None, model_dirs=[models]) as svc:
        result = runner.invoke(
            app, ["load-model", "rig.onnx", "--control", svc.endpoints["control"]]
        )
        assert result.exit_code == 0, result.output
        assert svc.engine is not None and svc.engine.path == (models / "rig.onnx").resolve()
        missing = runner.invoke(
            app, ["load-model", "none.onnx", "--control", svc.endpoints["control"]]
        )
    assert missing.exit_code == 2 and "model folders" in one_line(missing.output)


def test_load_model_refuses_a_bare_file_name_two_model_folders_hold(
    tmp_path: Path, identity_model: Path
):
    """The first folder's rig.onnx was loaded, unsaid, where two held one (an operator's
    trial): which is meant, only a path can say."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        shutil.copy(identity_model, folder / "rig.onnx")
    with running_service(tmp_path, identity_model, zarr=None, model_dirs=folders) as svc:
        before = svc.engine.path if svc.engine is not None else None
        both = runner.invoke(app, ["load-model", "rig.onnx", "--control", svc.endpoints["control"]])
        assert svc.engine is not None and svc.engine.path == before
        by_path = runner.invoke(
            app, ["load-model", str(folders[1] / "rig.onnx"), "--control", svc.endpoints["control"]]
        )
        assert by_path.exit_code == 0, by_path.output
        assert svc.engine.path == (folders[1] / "rig.onnx").resolve()
    text = one_line(both.output)
    assert both.exit_code == 2, text
    assert "rig.onnx is in more than one model folder" in text
    assert str(folders[0]) in text and str(folders[1]) in text


def test_a_model_folder_that_is_not_there_is_warned_of(
    tmp_path: Path, identity_model: Path, caplog: pytest.LogCaptureFixture
):
    """model_dirs = ["nodir"] was taken without a word (an operator's trial)."""
    with running_service(tmp_path, identity_model, zarr=None, model_dirs=[tmp_path / "nodir"]):
        pass
    assert f"model_dirs: {tmp_path / 'nodir'} is no folder: load-model finds nothing" in (
        caplog.text
    )


def test_a_bad_option_beside_a_config_file_is_blamed_on_the_option(tmp_path: Path):
    """It said "invalid configuration in serve.toml: output: ..." for a bad --output (an
    operator's trial)."""
    config = tmp_path / "serve.toml"
    config.write_text('input_mode = "pull"\n')
    bad = "tcp:/127.0.0.1:25556"
    result = runner.invoke(app, ["serve", "--no-zarr", "--config", str(config), "--output", bad])
    text = one_line(result.output)
    assert result.exit_code == 2 and "serve.toml" not in text, text
    assert "invalid --output: expected a ZeroMQ endpoint like tcp://127.0.0.1:5555" in text
    assert "expected expected" not in text


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5557", "tcp://127.0.0.1:99999", "tcp://a b:5"])
@pytest.mark.parametrize("command", [["status"], ["load-model", "na-lite"]])
def test_a_control_endpoint_it_cannot_connect_to_is_one_line(endpoint: str, command: list[str]):
    """`status --control 127.0.0.1:5557` (no tcp://) ended in a ZMQError traceback (a
    client developer's trial)."""
    result = runner.invoke(app, [*command, "--control", endpoint])
    text = one_line(result.output)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), text
    assert f"cannot connect to {endpoint}: " in text and "Traceback" not in text


@pytest.mark.parametrize("where", ["option", "file"])
def test_an_empty_store_folder_is_refused(tmp_path: Path, where: str):
    """`--zarr ""` (a script's unset variable) wrote the stores into the working folder
    without a word (an operator's trial)."""
    config = tmp_path / "serve.toml"
    config.write_text('zarr = ""\n' if where == "file" else "")
    args = ["serve", "--config", str(config)] + (["--zarr", ""] if where == "option" else [])
    result = runner.invoke(app, args)
    text = one_line(result.output)
    assert result.exit_code == 2, text
    assert "zarr: expected a path, got ''" in text.replace("--zarr:", "zarr:")


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--model", ""],
        ["serve", "--model-dir", ""],
        ["serve", "--model-dir", "models", "--model-dir", ""],
        ["serve", "--rois", ""],
        ["serve", "--offset-map", ""],
        ["denoise", "--model", "", "in.zarr", "-o", "out.zarr"],
        ["load-model", ""],
        ["set-rois", ""],
    ],
    ids=lambda args: "-".join(a for a in args if a.startswith("-") or a.isalpha() or "-" in a),
)
def test_an_empty_path_option_is_refused_not_read_as_the_working_folder(args: list[str]):
    """`--model ""` loaded the working folder and `--model-dir ""` let load-model load
    from it: typer reads "" as Path(".")."""
    result = runner.invoke(app, args)
    text = one_line(result.output)
    named = {"load-model": "MODEL", "set-rois": "ROIS"}
    option = named.get(args[0]) or next(a for a in reversed(args) if a.startswith("--"))
    assert result.exit_code == 2, text
    assert f"invalid {option}: expected a path, got ''" in text


def test_a_port_in_use_is_one_line_naming_the_address_and_the_option(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        result = runner.invoke(app, ["serve", "--no-zarr", "--output", address])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    text = one_line(result.output)
    assert f"cannot bind the output socket to {address}" in text and "--output" in text


def test_serve_help_shows_every_default_and_no_bool_placeholder():
    wide = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "250"})  # no wrapping
    text = one_line(wide.output)
    for default in (
        "tcp://127.0.0.1:5555",
        "tcp://127.0.0.1:5556",
        "tcp://127.0.0.1:5557",
        "./deepdenoise-data",
        "1024 + overlap",
    ):
        assert f"[default: ({default})]" in text, default
    assert "<bool>" not in text


def test_a_bad_value_is_named_once(tmp_path: Path):
    result = runner.invoke(app, ["serve", "--no-zarr", "--input", "foo"])
    assert result.exit_code == 2
    assert one_line(result.output).count("'foo'") == 1


def test_a_directory_as_model_says_so(tmp_path: Path):
    result = runner.invoke(app, ["serve", "--no-zarr", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in one_line(result.output)
    assert "INVALID_PROTOBUF" not in result.output


def test_zarr_and_no_zarr_together_are_refused(tmp_path: Path):
    result = runner.invoke(app, ["serve", "--zarr", str(tmp_path), "--no-zarr"])
    assert result.exit_code == 2 and "contradict" in one_line(result.output)


def test_every_control_command_has_a_cli_command(
    tmp_path: Path, identity_model: Path, box_model: Path
):
    with running_service(tmp_path, identity_model) as svc:
        control = ["--control", svc.endpoints["control"]]
        assert "paused" in invoke("pause", *control).output and svc.paused
        assert "resumed" in invoke("resume", *control).output and not svc.paused
        assert "flushed" in invoke("flush", *control).output
        loaded = invoke("load-model", str(box_model), *control)
        assert loaded.exit_code == 0, loaded.output
        assert svc.engine is not None and svc.engine.path == box_model
        refused = runner.invoke(app, ["load-model", str(tmp_path / "none.onnx"), *control])
        assert refused.exit_code == 2 and "load_model refused" in one_line(refused.output)
        assert "stopping" in invoke("stop", *control).output
        assert svc.wait(30)


def test_load_model_takes_a_shipped_name_and_the_folders_serve_was_given(
    tmp_path: Path, identity_model: Path, box_model: Path
):
    """README, "Adapting a model": `serve --model-dir .` lets `load-model` swap in a model
    adapted in that folder; a shipped model loads by its name from any folder."""
    adapted = tmp_path / "adapted"
    adapted.mkdir()
    shutil.copy(box_model, adapted / "mine.onnx")
    serve = ServeProcess(tmp_path, identity_model, args=("--model-dir", str(adapted)))
    try:
        control = ["--control", serve.control]
        mine = runner.invoke(app, ["load-model", str(adapted / "mine.onnx"), *control])
        assert mine.exit_code == 0, mine.output
        named = runner.invoke(app, ["load-model", "na-lite", *control])
        assert named.exit_code == 0, named.output
        assert str(shipped_model_path("na-lite")) in one_line(named.output)
        unknown = runner.invoke(app, ["load-model", "na-nothing", *control])
        assert unknown.exit_code == 2 and "model folders" in one_line(unknown.output)
    finally:
        serve.terminate()


def test_relative_paths_in_a_config_file_are_relative_to_the_file(
    tmp_path: Path, identity_model: Path, monkeypatch: pytest.MonkeyPatch
):
    from stream import load_config

    folder = tmp_path / "rig"
    folder.mkdir()
    shutil.copy(identity_model, folder / "model.onnx")
    (folder / "serve.toml").write_text('model = "model.onnx"\nzarr = "data"\n')
    monkeypatch.chdir(tmp_path)  # elsewhere: the paths must not follow the working dir
    cfg = load_config(folder / "serve.toml")
    assert cfg.model == folder / "model.onnx" and cfg.zarr == folder / "data"
    assert load_config(None, zarr=Path("here")).zarr == tmp_path / "here"  # absolute


def test_demo_runs_end_to_end(tmp_path: Path):
    result = invoke(
        "demo", "--seconds", "1", "--fps", "20", "--shape", "64x64", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "20 / 20" in result.output and "PSNR" in result.output
    # the default model is noise-adaptive: the camera it ran with is shown (estimated live)
    assert "camera (estimated live" in result.output and "gain" in result.output
    assert "self-ensemble" in result.output and "auto;" in result.output  # the default
    assert len(list(tmp_path.glob("demo-*.zarr"))) == 1
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_stopped_with_ctrl_c_stops_its_simulator_and_closes_the_store(tmp_path: Path):
    """Ctrl-C printed "Exception in thread demo-simulator" (a send into a closed socket)
    and no summary, and sometimes left the store open."""
    import subprocess
    import sys

    from stream.store import closed_totals

    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "stream", "demo", "--seconds", "600", "--fps", "30",
           "--shape", "32x32", "--out", str(out)]  # fmt: skip
    demo = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )  # fmt: skip
    stdout, stderr = interrupt_when(demo, lambda: any(out.glob("demo-*.zarr/valid")))  # flowing
    assert demo.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr
    text = one_line(stdout)
    assert "interrupted:" in text and "frames sent" in text and "deepdenoise demo" in text
    (store,) = out.glob("demo-*.zarr")
    totals = closed_totals(store)
    assert totals is not None and totals["frames"] > 0 and totals["missing"] == 0


def test_demo_values_out_of_range_are_one_line_and_leave_no_folder(tmp_path: Path):
    for option, value, says in (
        ("--seconds", "0", "--seconds: expected greater than 0, got 0.0"),
        ("--fps", "nan", "--fps: expected a finite number, got nan"),
    ):
        result = invoke("demo", option, value, "--out", str(tmp_path / "d"))
        assert result.exit_code == 2, result.output
        assert result.output.strip() == f"error: {says}", result.output
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"junk")
    result = invoke("demo", "--model", str(broken), "--out", str(tmp_path / "d"))
    assert result.exit_code == 2 and "is not an ONNX model" in result.output, result.output
    assert not (tmp_path / "d").exists()


def test_a_series_status_line_says_what_of_its_camera_is_corrected():
    from stream.cli._remote import _camera_faults_text

    assert _camera_faults_text({"noisy_pixels": 0, "row_noise": {"rms": 0.1}}) == ""
    both = {"noisy_pixels": 12, "row_noise": {"rms": 0.7512, "corrected": True}}
    assert _camera_faults_text(both) == "; 12 noisy or warm pixels filled; rows levelled (0.75 rms)"
    columns = {
        "line_patterns": {
            "columns": {"rms": 0.3512, "corrected": True},
            "rows": {"rms": 0.02, "corrected": False},
        }
    }
    assert _camera_faults_text(columns) == "; fixed columns pattern taken out (0.35 rms)"


def test_a_series_status_line_says_how_much_of_it_is_averaged_over_time():
    from stream.cli._remote import _still_means_text

    assert _still_means_text({"share": 0.0, "frames": 0.0, "model_error": None}) == ""
    assert _still_means_text(None) == ""
    still = {"share": 0.6234, "frames": 5.83, "model_error": 0.4}
    assert _still_means_text(still) == "; still pixels averaged 62 % (5.8 frames)"


def test_a_series_blend_reads_as_its_noise_map_blur_and_mix():
    from exporter.demo import _blend_row
    from stream.cli._remote import _blend_text

    blend = {
        "noise_map_scale": 0.8, "post_sigma": 1.0, "fuse_sigma": 2.0, "fuse_weight": 0.2,
        "fuse_source": "frame", "measured": 8, "frames_measured": 9,
    }  # fmt: skip
    mix = "noise map x 0.8 + blur 1.0 px + 0.2 x 2.0 px Gaussian of the input"
    assert _blend_text(blend) == f"; blend {mix} (8 measured)"
    assert _blend_row(blend) == f"9; {mix}"
    binned = {**blend, "fuse_source": "binned", "fuse_sigma": 0.0, "fuse_weight": 0.5}
    assert _blend_text(binned).endswith("+ 0.5 x the model on the frame binned 2 x 2 (8 measured)")
    assert _blend_row(binned).endswith("0.5 x the model on the frame binned 2 x 2")
    mean = {**blend, "fuse_source": "mean"}
    assert _blend_row(mean).endswith("0.2 x 2.0 px Gaussian of the running mean")
    raw = {**blend, "fuse_source": "input", "fuse_sigma": 0.0, "fuse_weight": 0.5}
    assert _blend_row(raw).endswith("blur 1.0 px + 0.5 x the input itself")
    # a live series' first measurement in part: a choice made, no frame measured whole
    # (the demo read "0; noise map x 0.8 + blur 1.0 px", a choice from nothing)
    part = {**blend, "measured": 0, "frames_measured": 0}
    assert _blend_row(part) == f"0 (the first in part); {mix}"
    assert _blend_text(part) == f"; blend {mix} (the first measurement in part)"
    none = {"noise_map_scale": 1.0, "measured": 0, "frames_measured": 0}
    assert _blend_row(none) == "0; the output as it is"
    assert _blend_text(none) == "; blend the output as it is (0 measured)"
    plain = {"noise_map_scale": 1.0, "post_sigma": 0.0, "fuse_weight": 0.0, "measured": 2}
    assert _blend_text(plain) == "; blend the output as it is (2 measured)"
    assert _blend_text({**plain, "young_window": "band"}) == _blend_text(plain)
    voted = _blend_text({**plain, "young_window": "temporal"})
    assert voted == "; blend the output as it is (2 measured); young windows to the temporal branch"
    assert _blend_row(plain) == "0; the output as it is"


def test_keys_tell_the_service_and_a_client_each_what_to_do_with_them(tmp_path: Path):
    service = invoke("keys", "service", "--dir", str(tmp_path))
    assert service.exit_code == 0 and "[security]" in service.output
    assert (tmp_path / "service.key").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "service.key_secret").stat().st_mode & 0o777 == 0o600
    client = invoke("keys", "rig-1", "--dir", str(tmp_path))
    text = " ".join(client.output.split())
    assert client.exit_code == 0 and "[security]\nsecret_key" not in client.output
    assert "For the client 'rig-1': copy rig-1.key (public) into the folder" in text
    assert "the service's public key (service.key) as the server key" in text
    bad = runner.invoke(app, ["keys", "../x", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and "expected a plain name" in bad.output
    file = runner.invoke(app, ["keys", "x", "--dir", str(tmp_path / "service.key")])
    assert file.exit_code == 2 and "expected --dir to be a folder" in " ".join(file.output.split())


def test_keys_never_replace_a_pair_unless_told_to(tmp_path: Path):
    assert invoke("keys", "service", "--dir", str(tmp_path)).exit_code == 0
    before = (tmp_path / "service.key_secret").read_bytes()
    again = runner.invoke(app, ["keys", "service", "--dir", str(tmp_path)])
    text = " ".join(again.output.split())
    assert again.exit_code == 2 and "already there" in text and "--force" in text
    assert (tmp_path / "service.key_secret").read_bytes() == before
    assert invoke("keys", "service", "--dir", str(tmp_path), "--force").exit_code == 0
    assert (tmp_path / "service.key_secret").read_bytes() != before


def test_the_denoise_summary_says_how_many_frames_were_measured_against_the_frame_before():
    from stream.cli._denoise import _paired

    assert _paired(0) == ""
    assert _paired(5) == ", 5 of them against the frame before"


def test_the_demo_says_whether_the_service_kept_up_with_its_frames():
    """Judged on the last tenth of the frames, after a series' start: a service that
    fell behind has them wait more than two frame intervals; too few frames, or a
    start's backlog still draining, tell nothing."""
    import inspect

    import numpy as np

    from exporter.cli._demo import demo
    from exporter.demo import DEMO_FPS, KEPT_UP_MIN_FRAMES, DemoConfig, kept_up, late_wait_ms

    assert DemoConfig().fps == DEMO_FPS == inspect.signature(demo).parameters["fps"].default
    drained = np.concatenate([np.full(90, 400.0), np.full(10, 80.0)])  # the start's backlog
    assert late_wait_ms(drained) == 80.0 and late_wait_ms(drained, tenth=2) == 400.0
    assert kept_up(drained, 20.0) is True  # 80 ms < 2 x 50 ms
    assert kept_up(drained, 30.0) is None  # 80 ms > 2 x 33 ms, but still draining
    growing = np.linspace(40.0, 900.0, 150)
    assert kept_up(growing, 20.0) is False and late_wait_ms(growing) > 800.0
    assert kept_up(np.full(150, 400.0), 20.0) is False  # behind, and not draining
    short = np.full(KEPT_UP_MIN_FRAMES - 1, 30.0)
    assert kept_up(short, 20.0) is None and kept_up(np.array([]), 20.0) is None
    assert late_wait_ms(np.array([5.0])) == 5.0 and late_wait_ms(np.array([])) == 0.0
