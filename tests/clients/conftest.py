"""Fixtures of the client tests; their helpers are in ``clients_harness`` (tests/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clients_harness import label_image
from service_harness import running_service

from stream import Service


@pytest.fixture
def live_service(tmp_path: Path, box_model: Path) -> Iterator[Service]:
    """The real service on loopback ports, with ROIs and a rule that fires on every frame."""
    np.save(tmp_path / "rois.npy", label_image())
    traces = {
        "rois": tmp_path / "rois.npy",
        "triggers": [{"name": "always", "threshold": -1e9, "mode": "above"}],
    }
    with running_service(tmp_path, box_model, traces=traces) as svc:
        yield svc
