"""The offline commands never lose a run: a fresh `train` refuses a folder holding one, a
resumed run continues in its checkpoint's folder, an interruption names the newest
checkpoint, config errors leave no folder behind, and `export` refuses to write over its
checkpoint or into a folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from exporter.export import export_onnx  # noqa: E402
from exporter.traces import train_trace_model  # noqa: E402
from exporter.traces._train import check_output_folder, export_trace_model  # noqa: E402
from exporter.train import newest_checkpoint, read_checkpoint  # noqa: E402
from stream import ConfigError  # noqa: E402

#: A depth-3 lite model, two steps: best.pt at each step, last.pt at step 2.
TINY_TOML = """\
preset = "lite"
depth = 3
width = 8
steps = 2
batch = 2
val_size = 2
val_every = 1
ckpt_every = 2
bn_batches = 1
threads = 1
device = "cpu"
[data]
field = 64
patch = 32
"""


def invoke(*args: str | Path) -> tuple[int, str]:
    """Run the offline CLI; (exit code, output with all whitespace removed: rich may
    wrap a long path anywhere)."""
    from stream.cli import app  # with the offline commands, as a user runs them

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, "".join(result.output.split())


def squeezed(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished_run(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step run's folder; tests copy it before changing anything."""
    run = tmp_path_factory.mktemp("finished") / "run"
    code, output = invoke("train", "--config", config, "--out", run, "--quiet")
    assert code == 0, output
    return run


def copy_run(finished_run: Path, to: Path) -> Path:
    return Path(shutil.copytree(finished_run, to))


def interrupt_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the training loop stop as Ctrl-C does, after the run's set-up."""

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("exporter.train._Run.loop", interrupted)


def test_a_fresh_run_refuses_a_folder_holding_a_run_unless_forced(
    config: Path, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run = copy_run(finished_run, tmp_path / "run")
    before = (run / "last.pt").read_bytes()
    code, output = invoke("train", "--config", config, "--out", run, "--seed", "9", "--quiet")
    assert code == 2
    assert squeezed(f"--resume {run / 'last.pt'}") in output and "--force" in output
    assert (run / "last.pt").read_bytes() == before  # untouched

    # --force replaces the old run at once: an interruption before the new run's first
    # checkpoint finds none, rather than pointing --resume at the old run's file
    interrupt_training(monkeypatch)
    code, output = invoke("train", "--config", config, "--out", run, "--force", "--quiet")
    assert code == 130 and "nocheckpointyet" in output
    assert not any(run.glob("*.pt"))


def test_a_forced_run_replaces_the_old_checkpoints(
    config: Path, finished_run: Path, tmp_path: Path
):
    run = copy_run(finished_run, tmp_path / "run")
    code, output = invoke(
        "train", "--config", config, "--out", run, "--seed", "9", "--force", "--quiet"
    )
    assert code == 0, output
    assert read_checkpoint(run / "last.pt")["config"]["seed"] == 9
    assert read_checkpoint(run / "best.pt")["config"]["seed"] == 9


#: A run on a dark recording named relative: the checkpoint kept --noise-stack as typed,
#: and a resume from elsewhere did not find it (a new user's trial, 2026-12-07); a config
#: file's paths were already stored absolute.
RECORDED = ("--noise-source", "recorded", "--noise-stack", "dark.npy")


@pytest.mark.parametrize("noise", [(), RECORDED], ids=["phantom", "relative-recording"])
def test_a_resumed_run_continues_in_its_checkpoints_folder_wherever_run_from(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, noise: tuple[str, ...]
):
    import numpy as np

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "dark.npy", (100 + rng.normal(0, 2, (4, 64, 64))).astype(np.uint16))
    code, output = invoke("train", "--config", config, "--out", "relrun", *noise, "--quiet")
    assert code == 0, output
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    code, output = invoke("train", "--resume", "../relrun/last.pt", "--steps", "4", "--quiet")
    assert code == 0, output
    assert read_checkpoint(tmp_path / "relrun" / "last.pt")["step"] == 4
    assert not (tmp_path / "sub" / "relrun").exists()


def test_an_interruption_names_the_newest_checkpoint_even_when_it_is_best(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # as after Ctrl-C at step 600 with the defaults: best.pt from step 500, no last.pt
    run = copy_run(finished_run, tmp_path / "run")
    (run / "last.pt").unlink()
    interrupt_training(monkeypatch)
    code, output = invoke("train", "--resume", run / "best.pt", "--steps", "4", "--quiet")
    assert code == 130
    assert squeezed(f"deepdenoise train --resume {run / 'best.pt'}") in output


def test_newest_checkpoint_is_the_one_written_last(tmp_path: Path):
    assert newest_checkpoint(tmp_path) is None
    for name, mtime in (("last.pt", 1_000), ("best.pt", 2_000)):
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (mtime, mtime))
    assert newest_checkpoint(tmp_path) == tmp_path / "best.pt"
    os.utime(tmp_path / "last.pt", (2_000, 2_000))  # written in the same instant
    assert newest_checkpoint(tmp_path) == tmp_path / "last.pt"


def test_config_errors_leave_no_run_folder_and_keep_an_old_run(
    config: Path, finished_run: Path, tmp_path: Path
):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_TOML.replace("[data]", 'init = "missing.pt"\n[data]'), encoding="utf-8")
    code, output = invoke("train", "--config", bad, "--out", tmp_path / "r3", "--quiet")
    assert code == 2 and "missing.pt" in output
    assert not (tmp_path / "r3").exists()
    # a resume that cannot continue (already at step 2)
    last = finished_run / "last.pt"
    code, output = invoke("train", "--resume", last, "--out", tmp_path / "r4", "--quiet")
    assert code == 2 and "alreadyatstep2" in output
    assert not (tmp_path / "r4").exists()
    # --force replaces an old run only once the new one is set up
    run = copy_run(finished_run, tmp_path / "run")
    code, output = invoke("train", "--config", bad, "--out", run, "--force", "--quiet")
    assert code == 2 and (run / "last.pt").is_file() and (run / "best.pt").is_file()


def test_export_refuses_to_write_over_its_checkpoint_or_into_a_folder(
    finished_run: Path, tmp_path: Path
):
    run = copy_run(finished_run, tmp_path / "run")
    checkpoint = run / "last.pt"
    before = checkpoint.read_bytes()
    for out in (checkpoint, run / ".." / "run" / "last.pt"):
        code, output = invoke("export", checkpoint, "-o", out)
        assert code == 2 and "isthecheckpointbeingexported" in output, output
    assert checkpoint.read_bytes() == before
    code, output = invoke("export", checkpoint, "-o", run)
    assert code == 2 and squeezed(f"got the folder {run}") in output
    assert "Errno" not in output
    with pytest.raises(ConfigError, match="folder"):
        export_onnx(checkpoint, run)


def test_export_refuses_an_output_that_is_no_onnx_file(finished_run: Path, tmp_path: Path):
    """``export -o m.txt`` wrote a model that ``info`` and ``serve`` then refused."""
    for name in ("m.txt", "m"):
        code, output = invoke("export", finished_run / "last.pt", "-o", tmp_path / name)
        assert code == 2 and squeezed("expected an output ending in .onnx") in output, output
        assert not (tmp_path / name).exists()


def test_train_traces_output_that_is_a_file_is_refused(tmp_path: Path):
    report = tmp_path / "tr1" / "report.md"
    report.parent.mkdir()
    report.write_text("an earlier report", encoding="utf-8")
    for out in (report, report / "deeper"):
        with pytest.raises(ConfigError, match="expected a folder"):
            check_output_folder(out)
    check_output_folder(tmp_path / "tr2" / "new")  # a folder still to be made is fine
    model, _ = train_trace_model("mlp", 8, steps=1, batch=2)
    with pytest.raises(ConfigError, match="expected a folder"):
        export_trace_model(model, 8, report / "trace-mlp.onnx", {})
    assert report.read_text(encoding="utf-8") == "an earlier report"
    status, text = invoke("train-traces", "--out", report)  # refused before any training
    assert status == 2 and "expectedafolderforthemodels" in text, text


def test_a_bad_option_is_named_not_blamed_on_the_config_file(config: Path, tmp_path: Path):
    """``train --config tiny.toml --steps 0`` said "invalid configuration in tiny.toml"."""
    code, output = invoke("train", "--config", config, "--steps", "0", "--out", tmp_path / "r")
    assert code == 2 and squeezed("error: invalid --steps: expected greater than or equal to 1 "
                                  "(got 0)") in output, output  # fmt: skip
    assert config.name not in output and not (tmp_path / "r").exists()
    code, output = invoke("train", "--config", config, "--workers", "-1", "--out", tmp_path / "r")
    assert code == 2 and squeezed("invalid --workers:") in output, output
    (tmp_path / "bad.toml").write_text(config.read_text().replace("steps = ", "steps = -"))
    code, output = invoke("train", "--config", tmp_path / "bad.toml", "--out", tmp_path / "r")
    assert code == 2 and squeezed("invalid configuration in") in output, output  # the file's
