"""Fixtures of the client tests; their helpers are in ``clients_harness`` (tests/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clients_harness import Secured, label_image, make_keys
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


@pytest.fixture
def secured_service(tmp_path: Path, box_model: Path) -> Iterator[Secured]:
    """The real service with ``[security]``: only the ``rig`` client's key is allowed."""
    keys = tmp_path / "keys"
    make_keys(keys)
    security = {"secret_key": keys / "service.key_secret", "clients": keys / "clients"}
    with running_service(tmp_path, box_model, security=security) as svc:
        yield Secured(svc, keys)
