"""Process-level lifecycle: SIGTERM flushes, a restart resumes the series."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from deepdenoise_client import Control, Publisher, Subscriber
from service_harness import free_tcp_endpoint, wait_until

from stream.store import ARRAY_PATHS

pytestmark = pytest.mark.slow

SHAPE = (64, 80)


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 4000, SHAPE, dtype="<u2") for _ in range(n)]


class ServeProcess:
    """`python -m stream serve` on free loopback ports, stopped by the test."""

    def __init__(self, tmp_path: Path, model: Path) -> None:
        self.input, self.output, self.control = (free_tcp_endpoint() for _ in range(3))
        self.log = tmp_path / f"serve-{time.monotonic_ns()}.log"
        config = tmp_path / "lossless.toml"  # block instead of dropping: every frame denoised
        config.write_text('[queues]\ninference_overflow = "block"\n')
        self._log_file = self.log.open("wb")
        cmd = [
            sys.executable, "-m", "stream", "serve",
            "--model", str(model), "--zarr", str(tmp_path / "data"),
            "--input", self.input, "--input-mode", "pull", "--input-bind",
            "--output", self.output, "--control", self.control, "--config", str(config),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT)
        with Control(self.control, timeout=2) as ctl:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ctl.status()
                    break
                except TimeoutError as exc:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.terminate()
                        log = self.log.read_text()
                        raise RuntimeError(f"service did not start:\n{log}") from exc

    def status(self) -> dict:
        with Control(self.control, timeout=5) as ctl:
            return ctl.status()

    def terminate(self) -> int:
        """SIGTERM, wait for the orderly exit (killing it if it hangs); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log_file.close()


def test_sigterm_mid_stream_flushes_then_restart_resumes(tmp_path: Path, identity_model):
    frames = _frames(60)
    first = ServeProcess(tmp_path, identity_model)
    stop_sending = threading.Event()
    try:
        with Publisher(first.input, mode="push", bind=False, timeout=1.0) as pub:
            for i in range(30):
                pub.send_frame(frames[i], "long", i)
            wait_until(lambda: first.status()["frames_in"] == 30, timeout=30)

            def keep_sending() -> None:  # still streaming when SIGTERM lands
                for i in range(30, 40):
                    if stop_sending.is_set():
                        return
                    try:
                        pub.send_frame(frames[i], "long", i)
                    except TimeoutError:
                        return
                    time.sleep(0.01)

            sender = threading.Thread(target=keep_sending)
            sender.start()
            time.sleep(0.03)
            code = first.terminate()
            stop_sending.set()
            sender.join()
    finally:
        first.terminate()
    assert code == 0, first.log.read_text()

    group = zarr.open_group(tmp_path / "data" / "long.zarr", mode="r")
    valid = group["valid"][:]
    assert valid[:30].all()
    assert (
        group[ARRAY_PATHS["raw"]].shape[0] == int(np.flatnonzero(valid)[-1]) + 1
    )  # trimmed on close
    for i in np.flatnonzero(valid):
        np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][i], frames[i])
    clean = group[ARRAY_PATHS["clean"]][:30]
    np.testing.assert_array_equal(clean, np.stack(frames[:30]).astype(np.float32))

    second = ServeProcess(tmp_path, identity_model)
    try:
        with Subscriber(second.output, topics=(b"event", b"status")) as sub:
            while sub.recv(timeout=5).topic != b"status":
                pass
            with Publisher(second.input, mode="push", bind=False) as pub:
                pub.start("long")
                for i in range(40, 60):
                    pub.send_frame(frames[i], "long", i)
                pub.end("long")
            start = None
            while start is None:
                message = sub.recv(timeout=10)
                if message.header.get("event") == "series_start":
                    start = message.header
            wait_until(lambda: second.status()["frames_out"] == 20, timeout=30)
    finally:
        assert second.terminate() == 0, second.log.read_text()
    assert start["resumed"] is True
    group = zarr.open_group(tmp_path / "data" / "long.zarr", mode="r")
    valid = group["valid"][:]
    assert group[ARRAY_PATHS["raw"]].shape[0] == 60
    assert valid[:30].all() and valid[40:60].all()
    for i in range(40, 60):
        np.testing.assert_array_equal(group[ARRAY_PATHS["raw"]][i], frames[i])
