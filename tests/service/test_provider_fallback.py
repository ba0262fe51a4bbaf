"""Provider fallback in the running service: a GPU provider that does not start, and one
that fails at run time, hand over to the next provider without losing a frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deepdenoise_client import Publisher
from service_harness import collect, events, listening, running_service

from stream.engine import _providers


@pytest.fixture
def cuda_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver 'reports' a CUDA device this onnxruntime build cannot use."""
    claimed = {"tensorrt": "no TensorRT here", "cuda": None, "cpu": None}
    monkeypatch.setattr(_providers, "probe_providers", lambda: claimed)
    monkeypatch.setattr(_providers, "_preload_cuda_libraries", lambda: None)


def test_a_gpu_provider_that_fails_at_load_is_reported(tmp_path: Path, conv_model, cuda_claimed):
    with running_service(tmp_path, conv_model, provider="auto", zarr=None) as svc:
        status = svc.status()
    assert status["provider"] == "cpu"
    (fallback,) = status["provider_fallbacks"]
    assert fallback["from"] == "cuda" and fallback["to"] == "cpu" and fallback["when"] == "load"


class _FaultySession:
    """An ONNX Runtime session whose GPU 'faults' on every run (what this CPU-only
    machine cannot produce for real); everything else is the real session's."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def run_with_iobinding(self, *_: Any) -> None:
        raise RuntimeError("CUDA failure 700: an illegal memory access was encountered")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_a_gpu_failure_at_run_time_moves_to_the_next_provider_losing_no_frame(
    tmp_path: Path, conv_model
):
    frames = [np.full((32, 32), 100 + i, np.uint16) for i in range(6)]
    with (
        running_service(tmp_path, conv_model, zarr=None) as svc,
        listening(svc) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        first = svc.engine
        assert first is not None
        pub.send_frame(frames[0], "s", 0)
        collect(sub, 1)
        first.provider = "cuda"  # the engine now 'runs on a GPU' ...
        first._chain = ["cuda", "cpu"]
        first._session = _FaultySession(first._session)  # ... which faults
        for i, frame in enumerate(frames[1:], start=1):
            pub.send_frame(frame, "s", i)
        got, others = collect(sub, len(frames) - 1)
        status = svc.status()
    assert [m.header["index"] for m in got] == [1, 2, 3, 4, 5]  # the faulting frame too
    assert svc.engine is not first and status["provider"] == "cpu"
    assert "inference_error" not in status["dropped"]
    (fallback,) = status["provider_fallbacks"]
    assert fallback["from"] == "cuda" and fallback["when"] == "run"
    assert "illegal memory access" in fallback["reason"]
    assert events(others, "provider_fallback")[0]["to"] == "cpu"
