"""The MATLAB/Octave client (``clients/matlab``), run in GNU Octave with its zeromq package.

The client is plain ``.m`` code: "building" it is copying it into a temporary folder, so
nothing is written into the source tree, and checking that Octave can load the zeromq
package. Octave starts in about a second, so each test runs few Octave processes.
MATLAB (through JeroMQ) is not available here and is not tested.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clients_harness import (
    CLIENTS,
    LABELS,
    SHAPE,
    T0_NS,
    VECTORS,
    Program,
    Secured,
    check_control_exit_statuses,
    check_curve,
    check_end_series,
    check_publish_usage,
    check_set_rois_options,
    check_set_rois_source_refused,
    label_image,
    parse_lines,
    pattern_frame,
    require,
    run_checked,
    stored_raw,
    stored_t_ns,
)
from deepdenoise_client import Control, Publisher
from service_harness import (
    collect,
    free_tcp_endpoint,
    listening,
    running_service,
    series_ended,
)

from stream import Service

pytestmark = pytest.mark.clients


@dataclass(frozen=True)
class OctaveClient:
    """The client copied into a temporary folder, and how to run its programs."""

    octave: str
    root: Path

    def script(self, path: Path, *args: str) -> list[str]:
        """``octave-cli --quiet --norc SCRIPT ARGS...``: how every Octave program here runs."""
        return [self.octave, "--quiet", "--norc", str(path), *args]

    def command(self, program: str, *args: str) -> list[str]:
        """One of the test programs, ``<root>/bin/<program>.m`` (see the README)."""
        return self.script(self.root / "bin" / f"{program}.m", *args)

    def run(
        self, program: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(program, *args),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def control(self, endpoint: str, *args: str) -> tuple[int, dict[str, Any]]:
        """One ``control`` request: (exit code, reply); exit 0 = ok true, 1 = ok false."""
        done = self.run("control", endpoint, *args)
        assert done.returncode in (0, 1), (
            f"control {args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"control {args} printed {done.stdout!r}"
        reply: dict[str, Any] = json.loads(lines[0])
        return done.returncode, reply


@pytest.fixture(scope="module")
def octave_client(tmp_path_factory: pytest.TempPathFactory) -> OctaveClient:
    octave = shutil.which("octave-cli")
    require(octave is not None, "octave-cli not found (Debian: apt install octave octave-zeromq)")
    assert octave is not None
    root = tmp_path_factory.mktemp("octave") / "matlab"
    shutil.copytree(CLIENTS / "matlab", root)
    probe = subprocess.run(
        [octave, "--quiet", "--norc", "--eval", "pkg load zeromq; disp(zmq_version())"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    require(
        probe.returncode == 0,
        f"Octave's zeromq package is missing (Debian: apt install octave-zeromq): {probe.stderr}",
    )
    return OctaveClient(octave, root)


def test_vectors(octave_client: OctaveClient) -> None:
    """The client's own runner: every golden vector (decoded, re-encoded byte for byte, or
    rejected with its reason), then the API checks the vectors do not reach."""
    runner = octave_client.root / "tests" / "run_tests.m"
    out = run_checked(octave_client.script(runner, str(VECTORS)), cwd=octave_client.root)
    assert "vectors, " in out and "api: " in out, out
    assert "FAIL" not in out, out


def test_publisher(octave_client: OctaveClient, live_service: Service, tmp_path: Path) -> None:
    """The Octave publisher's frames come back denoised and are on disk bit for bit."""
    svc = live_service
    series = "octave-pub"
    frames = 12
    with listening(svc) as sub:
        done = octave_client.run(
            "publish", svc.endpoints["input"], series, str(frames), str(SHAPE[0]), str(SHAPE[1])
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        denoised, others = collect(sub, frames, timeout=60)
        ended = series_ended(sub, series, others)  # the client's end mark closed the store
    assert sorted(m.header["index"] for m in denoised) == list(range(frames))
    for m in denoised:
        assert m.header["series"] == series
        assert m.header["t_ns"] == T0_NS + m.header["index"]
        assert m.array is not None and m.array.shape == SHAPE
    assert (ended["stored"], ended["missing"]) == (frames, 0)
    raw = stored_raw(tmp_path / "data", series)
    assert raw.shape == (frames, *SHAPE)
    for i in range(frames):
        np.testing.assert_array_equal(raw[i], pattern_frame(i))
    np.testing.assert_array_equal(
        stored_t_ns(tmp_path / "data", series), T0_NS + np.arange(frames, dtype=np.int64)
    )
    check_publish_usage(svc, octave_client.command("publish"), cwd=octave_client.root)


def test_publisher_xpub(octave_client: OctaveClient, box_model: Path, tmp_path: Path) -> None:
    """XPUB mode: the service's SUB connects to the Octave publisher, which waits for its
    subscription before the first frame, so no frame is lost to the slow joiner."""
    endpoint = free_tcp_endpoint()
    series = "octave-xpub"
    frames = 5
    overrides: dict[str, Any] = {"input": endpoint, "input_mode": "sub", "input_bind": False}
    with running_service(tmp_path, box_model, **overrides) as svc, listening(svc) as sub:
        done = octave_client.run(
            "publish", endpoint, series, str(frames), str(SHAPE[0]), str(SHAPE[1]), "pub"
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        denoised, others = collect(sub, frames, timeout=60)
        assert sorted(m.header["index"] for m in denoised) == list(range(frames))
        series_ended(sub, series, others)  # the client's end mark closed the store
    raw = stored_raw(tmp_path / "data", series)
    for i in range(frames):
        np.testing.assert_array_equal(raw[i], pattern_frame(i))


def test_subscriber(octave_client: OctaveClient, live_service: Service) -> None:
    """The Octave subscriber sees what a Python subscriber sees: frames, traces, triggers."""
    svc = live_service
    series = "octave-sub"
    frames = 12
    counts = [str(frames)] * 3
    program = Program(
        octave_client.command("subscribe", svc.endpoints["output"], *counts), cwd=octave_client.root
    )
    try:
        program.wait_for_line("ready", timeout=90)
        with listening(svc, topics=(b"denoised", b"traces", b"trigger")) as sub:
            with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
                for i in range(frames):
                    pub.send_frame(pattern_frame(i), series, i, t_ns=T0_NS + i)
                pub.end(series)
            denoised, others = collect(sub, frames, timeout=60)
        lines = program.finish(timeout=90)
    finally:
        program.stop()
    got = parse_lines(lines)

    python = {m.header["index"]: m for m in denoised}
    assert sorted(r["index"] for r in got["denoised"]) == sorted(python)
    for record in got["denoised"]:
        reference = python[record["index"]]
        assert reference.array is not None
        assert record["series"] == series
        assert record["dtype"] == reference.header["dtype"] == "<f4"
        assert record["shape"] == list(reference.array.shape) == list(SHAPE)
        assert record["sum"] == pytest.approx(float(reference.array.sum(dtype=np.float64)))

    python_traces = {m.header["index"]: m for m in others if m.topic == b"traces"}
    assert sorted(r["index"] for r in got["traces"]) == list(range(frames))
    for record in got["traces"]:
        assert record["labels"] == list(LABELS)
        assert record["columns"] == ["raw", "denoised", "dff"]
        assert record["shape"] == [3, 3]
        # Traces go out before their frame's denoised message, so Python has them all.
        reference = python_traces[record["index"]]
        assert reference.array is not None
        for mine, theirs in zip(record["values"], reference.array.ravel(), strict=True):
            assert (math.isnan(mine) and math.isnan(theirs)) or mine == float(theirs)

    assert len(got["trigger"]) == frames
    assert {r["rule"] for r in got["trigger"]} == {"always"}
    assert sorted(r["index"] for r in got["trigger"]) == list(range(frames))


def test_control(octave_client: OctaveClient, live_service: Service, tmp_path: Path) -> None:
    """status, pause/resume, set_rois (good, bad, --fit and --source), load_model,
    end_series and clearing the ROIs."""
    svc = live_service
    endpoint = svc.endpoints["control"]
    series = "octave-ctl"
    with listening(svc) as sub:
        with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
            for i in range(4):
                pub.send_frame(pattern_frame(i), series, i, t_ns=T0_NS + i)
        denoised, _ = collect(sub, 4, timeout=60)
    model = denoised[0].header["model"]

    code, status = octave_client.control(endpoint, "status")
    assert code == 0 and status["ok"] is True
    assert status["frames_in"] == 4
    assert status["model"] == model
    assert status["paused"] is False

    code, reply = octave_client.control(endpoint, "pause")
    assert code == 0 and reply == {"ok": True, "paused": True}
    with Control(endpoint) as ctl:
        assert ctl.status()["paused"] is True
    code, reply = octave_client.control(endpoint, "resume")
    assert code == 0 and reply == {"ok": True, "paused": False}
    with Control(endpoint) as ctl:
        assert ctl.status()["paused"] is False

    # Four ROIs instead of the configured three; the file is the raw C-order image.
    labels = label_image()
    labels[0:2, 0:2] = 9
    labels_file = tmp_path / "labels.u2"
    labels_file.write_bytes(labels.astype("<u2").tobytes())
    args = [str(labels_file), "<u2", str(SHAPE[0]), str(SHAPE[1])]
    code, reply = octave_client.control(endpoint, "set_rois", *args)
    assert code == 0 and reply["ok"] is True and reply["rois"] == 4, reply
    rois_before = _roi_count(endpoint)
    assert rois_before == 4

    wrong = np.ones((SHAPE[0] + 1, SHAPE[1]), dtype="<u2")
    wrong_file = tmp_path / "wrong.u2"
    wrong_file.write_bytes(wrong.tobytes())
    code, reply = octave_client.control(
        endpoint, "set_rois", str(wrong_file), "<u2", str(SHAPE[0] + 1), str(SHAPE[1])
    )
    assert code == 1 and reply["ok"] is False and reply["error"], reply
    assert _roi_count(endpoint) == rois_before

    # --fit takes an image smaller than the frames; --source names it in the status.
    check_set_rois_options(partial(octave_client.control, endpoint), endpoint, tmp_path)

    code, reply = octave_client.control(endpoint, "load_model", str(svc.config.model))
    assert code == 0 and reply["ok"] is True and reply["model"] == model, reply
    check_end_series(partial(octave_client.control, endpoint), series, 3)  # never ended

    # labels nil removes the ROIs (the trigger rule watches every ROI, so none is missing).
    code, reply = octave_client.control(endpoint, "set_rois", "none")
    assert code == 0 and reply == {"ok": True, "rois": 0, "series": None, "checked": []}, reply
    assert _roi_count(endpoint) == 0

    # Any other command goes out as it is; the service refuses an unknown one (exit 1).
    code, reply = octave_client.control(endpoint, "no_such_command")
    assert code == 1 and reply["ok"] is False and reply["error"], reply


def test_control_exit_statuses(octave_client: OctaveClient, tmp_path: Path) -> None:
    """control: 2 for a wrong command line or a source the client refuses (nothing sent),
    3 when no reply comes."""
    control = octave_client.command("control")
    check_control_exit_statuses(control, tmp_path, cwd=octave_client.root)
    check_set_rois_source_refused(control, tmp_path, cwd=octave_client.root)


def test_a_command_given_up_on_never_reaches_a_service_started_later(
    octave_client: OctaveClient, box_model: Path, tmp_path: Path
) -> None:
    """Octave cannot drop a request its closed socket holds (no ZMQ_LINGER): a `pause`
    that timed out with no service there went out when a service started on the
    endpoint later, and paused it (a new user's trial, 2026-12-07; the same with `stop`).
    DDControl asks for `status` first, and sends the command only once that is answered."""
    endpoint = free_tcp_endpoint()
    script = tmp_path / "give_up.m"
    script.write_text(
        f"addpath('{octave_client.root}');\n"
        f"ctl = DDControl('{endpoint}', 'timeout', 1);\n"
        "try, ctl.pause(); catch e, disp(e.message); end\n"
        "disp('gave up'); fflush(stdout); pause(60);\n",  # its I/O thread lives on
        encoding="utf-8",
    )
    program = Program(octave_client.script(script), cwd=octave_client.root)
    try:
        program.wait_for_line("gave up", timeout=90)
        assert "which was not sent" in " ".join(program.lines), program.lines
        with (
            running_service(tmp_path, box_model, control=endpoint),
            Control(endpoint, timeout=10) as control,
        ):
            # the REQ socket retries its connection every 0.1 s: a queued request would
            # arrive within a few tries of the bind
            for _ in range(20):
                assert control.status()["paused"] is False
                time.sleep(0.1)
    finally:
        program.stop()


def test_curve(octave_client: OctaveClient, secured_service: Secured, tmp_path: Path) -> None:
    """The three programs with the keys in DEEPDENOISE_CLIENT_KEY/_SERVER_KEY (CURVE)."""
    programs = {name: octave_client.command(name) for name in ("publish", "subscribe", "control")}
    check_curve(programs, secured_service, tmp_path / "data", cwd=octave_client.root)


def _roi_count(endpoint: str) -> int:
    with Control(endpoint) as ctl:
        traces = ctl.status()["traces"]
    return int(traces["rois"])


def test_ipv6_endpoint_is_refused_with_its_reason(octave_client: OctaveClient) -> None:
    """octave-zeromq cannot set ZMQ_IPV6: an IPv6 endpoint gets an error that says so at
    once, not a wait for a reply that cannot come."""
    done = octave_client.run("control", "tcp://[::1]:5555", "status", timeout=60)
    assert done.returncode == 3, f"{done.stdout}\n{done.stderr}"
    assert "cannot set ZMQ_IPV6" in done.stderr and "tcp://[::1]:5555" in done.stderr
