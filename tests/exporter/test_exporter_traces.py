"""The trace denoiser's offline half: generated windows, causal candidates, the ONNX
contract the service runs, the causal baselines and the detection metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from exporter.evaluation._independent_traces import TraceSet, make_traces
from exporter.traces import (
    ARCHITECTURES,
    build,
    evaluate_traces,
    export_trace_model,
    fit_wiener,
    trace_batch,
    train_trace_model,
)
from exporter.traces._evaluate import causal_windows, correlation, detection
from stream import ModelError
from stream.traces import TraceDenoiser


def test_generated_windows_have_truth_and_noise() -> None:
    batch = trace_batch(np.random.default_rng(0), 64, 32)
    assert batch.noisy.shape == batch.clean.shape == (64, 1, 32)
    assert batch.noisy.dtype == np.float32
    assert 0 < np.std(batch.noisy - batch.clean) < 1


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_candidates_map_windows_to_their_last_sample(architecture: str) -> None:
    model = build(architecture, 16).eval()
    with torch.no_grad():
        out = model(torch.randn(5, 1, 16))
    assert out.shape == (5, 1, 1)


def test_cnn_is_causal_inside_its_window() -> None:
    model = build("cnn", 16).eval()
    x = torch.randn(1, 1, 16)
    with torch.no_grad():
        full = model.net(x)  # every position
        changed = x.clone()
        changed[..., 10:] += 5.0  # the future of position 9
        assert torch.allclose(model.net(changed)[..., :10], full[..., :10])


def test_exported_model_runs_in_the_service_runner(tmp_path: Path) -> None:
    model, budget = train_trace_model("mlp", 16, steps=20, batch=32)
    assert budget["steps"] == 20
    path = export_trace_model(model, 16, tmp_path / "t.onnx", {"deepdenoise.architecture": "x"})
    runner = TraceDenoiser(path)
    assert runner.window == 16
    windows = np.random.default_rng(0).normal(0, 0.1, (7, 1, 16)).astype(np.float32)
    out = runner.run(windows)
    assert out.shape == (7,) and np.isfinite(out).all()
    with torch.no_grad():  # the runner's scaling around the graph is the training's
        from exporter.traces._train import scaled

        (x,) = scaled(windows)
        scale = windows / x.numpy()
        expected = model(x).numpy()[:, 0, -1] * scale[:, 0, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)


def test_runner_refuses_image_models(identity_model: Path) -> None:
    with pytest.raises(ModelError, match="not a trace model"):
        TraceDenoiser(identity_model)


def test_wiener_fir_beats_the_noisy_input() -> None:
    taps = fit_wiener(16, samples=4000)
    data = make_traces(20, 600, 0.2, seed=3)
    from scipy import signal

    filtered = signal.lfilter(taps[::-1], 1.0, data.noisy, axis=1)
    assert correlation(filtered, data.clean) > correlation(data.noisy, data.clean)


def test_causal_windows_end_at_each_sample() -> None:
    traces = np.arange(10, dtype=np.float32).reshape(2, 5)
    windows = causal_windows(traces, 3)
    assert windows.shape == (10, 1, 3)
    assert windows[0, 0].tolist() == [0, 0, 0] and windows[4, 0].tolist() == [2, 3, 4]
    assert windows[5, 0].tolist() == [5, 5, 5]


def test_detection_counts_hits_latency_and_false_positives() -> None:
    clean = np.zeros((1, 300))
    data = TraceSet(clean, clean, [np.array([100, 200])], fps=30.0, sigma=0.1)
    output = np.zeros((1, 300))
    output[0, 103:110] = 1.0  # caught 3 frames late
    output[0, 50:55] = 1.0  # nothing happened there
    output += np.random.default_rng(0).normal(0, 0.01, output.shape)
    data = TraceSet(output, clean, data.onsets, 30.0, 0.1)
    hit, latency_ms, false_per_min = detection(output, data)
    assert hit == 0.5 and latency_ms == pytest.approx(100.0)
    assert false_per_min == pytest.approx(1 / (300 / 30 / 60))


def test_evaluation_scores_every_method(tmp_path: Path) -> None:
    model, _ = train_trace_model("mlp", 16, steps=5, batch=16)
    path = export_trace_model(model, 16, tmp_path / "m.onnx", {})
    result = evaluate_traces({"mlp": path}, 16, sigmas=(0.1,), traces=4, frames=300)
    methods = {s.method for s in result.scores}
    assert methods == {"noisy", "boxcar", "exponential", "wiener", "mlp"}
    assert result.runtime_ms["mlp"] > 0


def test_train_traces_cli_refuses_unknown_architectures_then_trains_and_describes_one(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app

    runner = CliRunner()
    for bad in ("foo,mlp", ""):  # refused before any candidate trains
        result = runner.invoke(
            app, ["train-traces", "--architectures", bad, "--out", str(tmp_path)]
        )
        assert result.exit_code == 2 and "expected one or more of mlp, cnn, gru" in " ".join(
            result.output.replace("│", " ").split()
        )
    assert not any(tmp_path.iterdir())
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        # a budget any machine meets: which candidate is fast enough is not under test
        ["train-traces", "--steps", "2", "--architectures", "mlp", "--budget-ms", "1000",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    described = runner.invoke(app, ["info", str(out / "trace-denoiser.onnx")])
    assert described.exit_code == 0 and "trace-mlp" in described.output
    assert TraceDenoiser(out / "trace-denoiser.onnx").window == 32


def test_train_traces_keeps_its_report_when_no_candidate_meets_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished run was discarded (no report, no metrics) when every candidate was
    slower than --budget-ms."""
    import json

    from typer.testing import CliRunner

    import exporter.traces
    from stream.cli import app

    real = exporter.traces.evaluate_traces

    def slow(models: dict[str, Path], window: int, **kwargs: object) -> object:
        result = real(models, window, sigmas=(0.1,), traces=4, frames=300)
        result.runtime_ms = {name: 50.0 for name in models}  # over any budget given below
        return result

    monkeypatch.setattr(exporter.traces, "evaluate_traces", slow)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["train-traces", "--steps", "2", "--architectures", "mlp", "--budget-ms", "1",
         "--out", str(out)],
    )  # fmt: skip
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 3, result.output
    assert "error: no candidate runs 1000 ROIs within 1.0 ms" in text
    assert "No model met the budget" in (out / "report.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chosen"] is None and metrics["runtime_ms"] == {"mlp": 50.0}
    assert (out / "trace-mlp.onnx").is_file() and not (out / "trace-denoiser.onnx").exists()
