"""Simulator → service → subscriber over loopback, in SUB and in PULL mode."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from service_harness import collect, events, listening, running_service

from stream import Simulator, SimulatorConfig
from stream.store import ARRAY_PATHS


@pytest.mark.parametrize(("sim_mode", "input_mode"), [("pub", "sub"), ("push", "pull")])
def test_simulated_acquisition_round_trip(tmp_path: Path, identity_model, sim_mode, input_mode):
    n = 40
    sim_cfg = SimulatorConfig(
        endpoint="tcp://127.0.0.1:0",
        mode=sim_mode,
        shape=(96, 128),
        fps=400,
        frames=n,
        pool=8,
        series="sim-e2e",
        wait_subscriber_s=20,
    )
    with Simulator(sim_cfg) as sim:
        with (
            running_service(
                tmp_path,
                identity_model,
                input=sim.endpoint,
                input_mode=input_mode,
                input_bind=False,
            ) as svc,
            listening(svc) as sub,
        ):
            sender = threading.Thread(target=sim.run)
            sender.start()
            got, others = collect(sub, n)
            sender.join(30)
            while not events(others, "series_end"):
                others.append(sub.recv(timeout=10))
            assert svc.flush()
            status = svc.status()

        sent = [np.array(sim.frame(i)) for i in range(n)]

    assert [m.header["index"] for m in got] == list(range(n))  # once each, in order
    for frame, message in zip(sent, got, strict=True):
        np.testing.assert_array_equal(message.array, frame.astype(np.float32))
        assert message.header["meta"]["sim"] is True
    assert status["frames_in"] == n and status["frames_out"] == n and not status["dropped"]
    assert events(others, "series_end")[0]["frames"] == n

    group = zarr.open_group(tmp_path / "data" / "sim-e2e.zarr", mode="r")
    assert group[ARRAY_PATHS["raw"]].shape == (n, 96, 128)
    np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][:], np.stack(sent))
    np.testing.assert_array_equal(group[ARRAY_PATHS["clean"]][:], np.stack([m.array for m in got]))
    assert group["valid"][:].all()
    assert group.attrs["deepdenoise"]["closed"] is True
