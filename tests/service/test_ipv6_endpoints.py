"""IPv6 endpoints (``tcp://[::1]:port``) on every socket: libzmq takes one only where
the socket's IPV6 option is set, and without it said "No such device"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deepdenoise_client import Control, Publisher
from service_harness import collect, has_ipv6_loopback, listening, running_service

from stream.cli._request import request

V6_LOOPBACK = "tcp://[::1]:0"


pytestmark = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")


def test_service_and_clients_work_on_ipv6_loopback(tmp_path: Path, identity_model):
    frames = [np.full((16, 24), i, np.uint16) for i in range(3)]
    with running_service(
        tmp_path, identity_model, input=V6_LOOPBACK, output=V6_LOOPBACK, control=V6_LOOPBACK
    ) as svc:
        assert all(svc.endpoints[role].startswith("tcp://[::1]:") for role in svc.endpoints)
        with (
            listening(svc) as sub,
            Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
        ):
            for i, frame in enumerate(frames):
                pub.send_frame(frame, "v6", i)
            got, _ = collect(sub, len(frames))
        assert [int(m.array[0, 0]) for m in got] == [0, 1, 2]
        with Control(svc.endpoints["control"], timeout=10) as control:
            assert control.status()["frames_in"] == 3
        assert request(svc.endpoints["control"], {"cmd": "status"}, timeout=10)["ok"]
