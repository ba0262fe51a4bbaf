"""Shared helpers for the C, C++, JavaScript and Octave client tests (marker ``clients``).

A module with its own name (not ``conftest``) so test files can import it whatever other
conftest modules the same run loads; the ``live_service`` fixture is in tests/clients.

Every language ships three small programs with the same command line, so one set of live
tests covers them all (see each client's README, "Test programs"):

    publish   ENDPOINT SERIES FRAMES HEIGHT WIDTH
        PUSH-connects, sends ``start``, FRAMES ``<u2`` frames of the pattern
        :func:`pattern_frame` with ``t_ns = T0_NS + index``, then ``end``; exits 0.
    subscribe ENDPOINT DENOISED TRACES TRIGGERS
        SUB-connects to denoised, traces, trigger and status; prints ``ready`` after the
        first status message, then one JSON line per denoised/traces/trigger message
        (see :func:`parse_lines`); exits 0 once it has seen the given counts, 1 after 60 s.
    control   ENDPOINT status|pause|resume|flush|stop
    control   ENDPOINT load_model PATH
    control   ENDPOINT end_series SERIES
    control   ENDPOINT set_rois [--fit] [--source TEXT] FILE DTYPE HEIGHT WIDTH [SERIES]
    control   ENDPOINT set_rois none [SERIES]
        REQ-connects and sends one request: FILE holds the label image as raw bytes, C
        order, in DTYPE (``|u1 <u2 <i2 <u4 <i4 <i8``); ``--fit`` and ``--source`` send
        set_rois' ``fit`` and ``source`` (C, C++ and Octave; see
        :func:`check_set_rois_options`); ``none`` sends nil labels (remove
        the ROIs); any other CMD, without arguments, goes out as ``{"cmd": CMD}`` (the
        service answers an unknown one with ok false). The reply, ok true or false, is
        printed as one JSON line (bin values as "<bin N bytes>"). Exit status: 0 when
        the reply has ok true; 1 when it has ok false; 2 for bad usage (a wrong command
        line, a FILE that cannot be read or does not hold HEIGHT x WIDTH labels of
        DTYPE, a request the encoder refuses), with nothing sent or printed on stdout;
        3 when no reply came within 10 s or another transport error (a message on
        stderr, nothing on stdout). See :func:`check_control_exit_statuses`.

A toolchain that is missing skips its tests with the reason on a user's machine; with the
environment variable ``CI`` set, the same condition fails them instead.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from deepdenoise_client import Control, CurveKeys, Publisher

from stream.store import ARRAY_PATHS

REPO = Path(__file__).resolve().parents[1]
CLIENTS = REPO / "clients"
VECTORS = CLIENTS / "vectors"
SHAPE = (24, 32)
T0_NS = 1_700_000_000_000_000_000  # above 2**53: the clients must keep t_ns an integer
LABELS = (3, 7, 40)


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``CI`` is set, then fail: CI must not hide a client."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and a client toolchain is missing: {reason}")
    pytest.skip(reason)


def run_checked(
    cmd: list[str], cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> str:
    """Run a build or test step; on failure the step's whole output is the assertion."""
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def pattern_frame(index: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """What every client's ``publish`` sends as frame ``index``."""
    h, w = shape
    r, c = np.mgrid[0:h, 0:w]
    return ((1000 * index + w * r + c) % 65536).astype(np.uint16)


def label_image(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Three ROIs with the labels of :data:`LABELS`."""
    labels = np.zeros(shape, dtype=np.uint16)
    labels[2:6, 3:9] = 7
    labels[10:14, 10:20] = 3
    labels[18:23, 25:30] = 40
    return labels


def stored_raw(root: Path, series: str) -> np.ndarray:
    """The raw frames of a stored series (every one marked valid)."""
    group = zarr.open_group(root / f"{series}.zarr", mode="r")
    assert group["valid"][:].all()
    return np.asarray(group[ARRAY_PATHS["raw"]][:])


def stored_t_ns(root: Path, series: str) -> np.ndarray:
    group = zarr.open_group(root / f"{series}.zarr", mode="r")
    return np.asarray(group[ARRAY_PATHS["t_ns"]][:])


class Program:
    """A client program running in the background, its stdout read line by line."""

    def __init__(
        self, cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []

    def wait_for_line(self, wanted: str, timeout: float = 60) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(line.rstrip("\n"))
                if line.strip() == wanted:
                    return
        self.stop()
        raise AssertionError(f"{self.cmd} never printed {wanted!r}: {self.lines}")

    def finish(self, timeout: float = 90) -> list[str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        assert self.proc.returncode == 0, f"{self.cmd} exited {self.proc.returncode}: {err}"
        self.lines.extend(out.splitlines())
        return self.lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A loopback endpoint that never answers, held by a plain TCP socket that accepts no
    ZMTP greeting: a port merely found free could be bound by another process (a test
    run beside this one) while a check waits, and answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        yield f"tcp://127.0.0.1:{silent.getsockname()[1]}"


def check_ipv6_control(prefix: list[str], tmp_path: Path, model: Path) -> None:
    """``control ENDPOINT status`` against a service on the IPv6 loopback
    (``tcp://[::1]:port``), which a socket without libzmq's IPV6 option cannot reach."""
    from service_harness import has_ipv6_loopback, running_service

    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")

    v6 = "tcp://[::1]:0"
    with running_service(tmp_path, model, zarr=None, control=v6, output=v6) as svc:
        done = subprocess.run(
            [*prefix, svc.endpoints["control"], "status"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert json.loads(done.stdout.strip().splitlines()[-1])["ok"] is True


def check_control_exit_statuses(prefix: list[str], tmp_path: Path, cwd: Path | None = None) -> None:
    """``control``'s exits 2 (bad usage) and 3 (no reply) against an endpoint that never
    answers (:func:`silent_endpoint`, held for the whole check).

    ``prefix`` is the command line up to ENDPOINT. Every wrong command line (a malformed
    ENDPOINT too) exits 2 at once, printing nothing on stdout; a good one waits out the
    10 s timeout, then exits 3.
    """
    with silent_endpoint() as endpoint:
        _check_control_exits(prefix, endpoint, tmp_path, cwd)


def _check_control_exits(
    prefix: list[str], endpoint: str, tmp_path: Path, cwd: Path | None
) -> None:
    labels = tmp_path / "labels.u2"
    labels.write_bytes(label_image().astype("<u2").tobytes())
    h, w = str(SHAPE[0]), str(SHAPE[1])
    wrong = [
        ["status", "extra"],
        ["load_model"],
        ["set_rois", "none", "s1", "extra"],
        ["set_rois", str(labels), "<u2", h],
        ["set_rois", str(labels), "<u2", h, "wide"],
        ["set_rois", str(labels), "<u2", h, str(SHAPE[1] - 1)],  # not the file's size
        ["set_rois", str(labels), "<f8", h, w],  # not a label dtype
        ["set_rois", str(tmp_path / "missing.u2"), "<u2", h, w],
        ["set_rois", "none", "no/series"],  # not a series id
        ["set_rois", "--fitted", str(labels), "<u2", h, w],  # not an option
        ["set_rois", "--source"],  # no TEXT
        ["set_rois", "--fit", "none"],  # nothing to fit
        ["end_series"],  # no SERIES
        ["end_series", "no/series"],  # not a series id
        ["end_series", "s1", "extra"],
    ]
    for args in wrong:
        done = subprocess.run(
            [*prefix, endpoint, *args],
            cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (2, ""), (args, done)
    # a malformed ENDPOINT is a wrong command line too: it exited 3, as a service that
    # is down does (a client developer's trial)
    for malformed in ("127.0.0.1:5557", "tcp://127.0.0.1:99999", "tcp://a b:5", "foo://x"):
        done = subprocess.run(
            [*prefix, malformed, "status"],
            cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (2, ""), (malformed, done)
        assert "expected" in done.stderr and malformed in done.stderr, done

    start = time.monotonic()
    done = subprocess.run(
        [*prefix, endpoint, "status"],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (3, ""), done
    assert "no reply" in done.stderr, done
    assert time.monotonic() - start > 9  # waited for the 10 s timeout


def check_set_rois_source_refused(
    prefix: list[str], tmp_path: Path, cwd: Path | None = None
) -> None:
    """``control ... set_rois --source TEXT FILE ...`` with TEXT empty, of 1025 characters
    or holding a control character exits 2 before anything is sent (the endpoint never
    answers), nothing on stdout, its message saying what a source may be ("1 to 1024")."""
    labels = tmp_path / "labels.u2"
    labels.write_bytes(label_image().astype("<u2").tobytes())
    image = [str(labels), "<u2", str(SHAPE[0]), str(SHAPE[1])]
    with silent_endpoint() as endpoint:
        for source in ("", "a" * 1025, "rois\tcells"):
            done = subprocess.run(
                [*prefix, endpoint, "set_rois", "--source", source, *image],
                cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert (done.returncode, done.stdout.strip()) == (2, ""), (source, done)
            assert "1 to 1024" in done.stderr, (source, done.stderr)


def check_set_rois_options(
    control: Callable[..., tuple[int, dict[str, Any]]], endpoint: str, tmp_path: Path
) -> None:
    """``control ENDPOINT set_rois --fit --source TEXT FILE ...`` against the live service
    at ``endpoint`` (its control socket) while a series of SHAPE streams: a label image
    smaller than the frames is refused without ``--fit`` and taken with it, and the
    service's ``status.traces.source`` then names TEXT.

    ``control(*args)`` runs the client's ``control`` with ARGS after ENDPOINT and gives
    its exit status and the reply it printed.
    """
    small = np.zeros((SHAPE[0] // 2, SHAPE[1] // 2), dtype="<u2")
    small[1:4, 1:4] = 5
    small[6:9, 8:12] = 6
    (tmp_path / "small.u2").write_bytes(small.tobytes())
    image = [str(tmp_path / "small.u2"), "<u2", str(small.shape[0]), str(small.shape[1])]
    rc, reply = control("set_rois", *image)
    assert (rc, reply["ok"]) == (1, False), reply  # not the frames' shape

    # characters, not bytes; a no-break space and a line separator are not control
    # characters: the clients and the service both take them (Python's isprintable would not)
    source = "rois/Zoë\u00a0cells\u2028.npy"
    rc, reply = control("set_rois", "--fit", "--source", source, *image)
    assert (rc, reply["ok"], reply["rois"]) == (0, True, 2), reply
    with Control(endpoint) as ctl:
        traces = ctl.status()["traces"]
    assert (traces["rois"], traces["source"]) == (2, f"set_rois ({source})"), traces


def check_end_series(
    control: Callable[..., tuple[int, dict[str, Any]]], series: str, last_index: int
) -> None:
    """``control ENDPOINT end_series SERIES`` for a series left open (no ``end``, as a
    crashed sender leaves it): ended, with its last index; asked again, refused (exit 1)
    as a series not open. ``control`` as for :func:`check_set_rois_options`."""
    rc, reply = control("end_series", series)
    assert (rc, reply) == (0, {"ok": True, "series": series, "last_index": last_index}), reply
    rc, reply = control("end_series", series)
    assert (rc, reply["ok"]) == (1, False), reply
    assert f"series {series!r} is not open" in reply["error"], reply


def parse_lines(lines: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The JSON lines of ``subscribe``, grouped by topic (``ready`` and blanks left out)."""
    by_topic: dict[str, list[dict[str, Any]]] = {"denoised": [], "traces": [], "trigger": []}
    for line in lines:
        if not line.strip() or line.strip() == "ready":
            continue
        record = json.loads(line)
        by_topic[record["topic"]].append(record)
    return by_topic


def check_publisher(svc: Any, data: Path, command: list[str], series: str, count: int) -> None:
    """Run a client's ``publish`` command (its arguments after the program: endpoint,
    series, count and SHAPE are added here) and check: ``count`` frames come back
    denoised to a Python subscriber, and are on disk bit for bit with exact ``t_ns``."""
    from service_harness import collect, listening, series_ended

    with listening(svc, topics=(b"denoised", b"event")) as sub:
        run_checked(
            [*command, svc.endpoints["input"], series, str(count), str(SHAPE[0]), str(SHAPE[1])],
            timeout=120,
        )
        denoised, others = collect(sub, count, timeout=60)
        ended = series_ended(sub, series, others)  # the client's end mark closed the store
    assert sorted(m.header["index"] for m in denoised) == list(range(count))
    assert all(m.header["series"] == series for m in denoised)
    assert all(m.array is not None and m.array.shape == SHAPE for m in denoised)
    assert (ended["frames"], ended["stored"], ended["missing"]) == (count, count, 0)
    raw = stored_raw(data, series)
    assert raw.shape == (count, *SHAPE)
    for i in range(count):
        np.testing.assert_array_equal(raw[i], pattern_frame(i))
    np.testing.assert_array_equal(stored_t_ns(data, series), T0_NS + np.arange(count))


def check_publish_usage(svc: Any, command: list[str], cwd: Path | None = None) -> None:
    """A frame count or side that is no whole number is bad usage: exit 2, nothing sent.
    The C++ and Node programs read "x" as 0 frames (Node: NaN), sent a series' start and
    end and exited 0 (a new user's trial, 2026-12-07)."""
    from deepdenoise_client import Control

    for numbers in (["x", "8", "8"], ["3", "0", "8"], ["3", "8", "8x"], ["1.5", "8", "8"]):
        done = subprocess.run(
            [*command, svc.endpoints["input"], "usage-check", *numbers],
            capture_output=True, text=True, timeout=120, cwd=cwd, check=False,
        )  # fmt: skip
        assert done.returncode == 2, f"{numbers}: exit {done.returncode}\n{done.stderr}"
        assert "usage" in done.stderr and not done.stdout.strip(), (done.stdout, done.stderr)
    with Control(svc.endpoints["control"], timeout=10) as control:
        assert "usage-check" not in control.status()["series"]


# -- CURVE ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Secured:
    """A service with ``[security]``; ``keys`` holds ``service.key`` (its public key),
    ``clients/rig.key_secret`` (an allowed client) and ``stranger.key_secret`` (a key pair
    the service does not allow)."""

    service: Any
    keys: Path

    def secret(self, name: str) -> Path:
        return (
            self.keys / "clients" / f"{name}.key_secret"
            if name == "rig"
            else (self.keys / f"{name}.key_secret")
        )

    def env(self, name: str) -> dict[str, str]:
        """The environment of a client program that connects as ``name``: the client
        key pair and the service's public key, the variables the CLI reads too."""
        return {
            **os.environ,
            "DEEPDENOISE_CLIENT_KEY": str(self.secret(name)),
            "DEEPDENOISE_SERVER_KEY": str(self.keys / "service.key"),
        }

    def curve(self, name: str) -> CurveKeys:
        return CurveKeys.from_files(self.secret(name), self.keys / "service.key")


def make_keys(keys: Path) -> None:
    """The key files of :class:`Secured` (pyzmq's certificate files, as ``deepdenoise keys``)."""
    from zmq.auth import create_certificates

    (keys / "clients").mkdir(parents=True)
    create_certificates(keys, "service")
    create_certificates(keys / "clients", "rig")
    create_certificates(keys, "stranger")
    for secret in keys.glob("**/*.key_secret"):
        secret.chmod(0o600)  # pyzmq writes 0644: the clients would warn of it


def check_curve(
    programs: dict[str, list[str]], secured: Secured, data: Path, cwd: Path | None = None
) -> None:
    """A client's three programs against a service with ``[security]``, keys given as the
    CLI takes them (``DEEPDENOISE_CLIENT_KEY``: this client's ``NAME.key_secret``;
    ``DEEPDENOISE_SERVER_KEY``: ``service.key``). ``programs`` maps publish, subscribe and
    control to their command prefix (up to ENDPOINT).

    With the allowed keys, control gets its reply, publish's frames are stored bit for bit
    and subscribe receives the denoised frames. With a key pair the service does not
    allow, no reply comes (ZeroMQ drops the handshake: exit 3). A key file that is not
    one, or only one of the two variables, is bad usage (exit 2, nothing sent), its
    message naming the file or the variable.
    """
    from service_harness import collect, listening, series_ended

    svc, rig = secured.service, secured.env("rig")
    control = [*programs["control"], svc.endpoints["control"], "status"]

    done = subprocess.run(control, cwd=cwd, env=rig, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done
    assert json.loads(done.stdout.strip().splitlines()[-1])["ok"] is True

    series, count = "curve-pub", 6
    with listening(svc, topics=(b"denoised", b"event"), curve=secured.curve("rig")) as sub:
        publish = [*programs["publish"], svc.endpoints["input"], series, str(count),
                   str(SHAPE[0]), str(SHAPE[1])]  # fmt: skip
        run_checked(publish, cwd=cwd, env=rig, timeout=120)
        denoised, others = collect(sub, count, timeout=60)
        series_ended(sub, series, others)  # the store is closed: it reads whole
    assert sorted(m.header["index"] for m in denoised) == list(range(count))
    raw = stored_raw(data, series)
    for i in range(count):
        np.testing.assert_array_equal(raw[i], pattern_frame(i))

    subscribe = [*programs["subscribe"], svc.endpoints["output"], str(count), "0", "0"]
    prog = Program(subscribe, cwd=cwd, env=rig)
    try:
        prog.wait_for_line("ready")
        with Publisher(svc.endpoints["input"], mode="push", bind=False,
                       curve=secured.curve("rig")) as pub:  # fmt: skip
            for i in range(count):
                pub.send_frame(pattern_frame(i), "curve-sub", i, t_ns=T0_NS + i)
        lines = prog.finish()
    except BaseException:
        prog.stop()
        raise
    got = parse_lines(lines)["denoised"]
    # C and C++ print the whole header, JavaScript and Octave its fields
    indices = [r["header"]["index"] if "header" in r else r["index"] for r in got]
    assert sorted(indices) == list(range(count))

    stranger = subprocess.run(control, cwd=cwd, env=secured.env("stranger"),
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (stranger.returncode, stranger.stdout.strip()) == (3, ""), stranger
    assert "no reply" in stranger.stderr, stranger

    public_only = {**rig, "DEEPDENOISE_CLIENT_KEY": str(secured.keys / "clients" / "rig.key")}
    missing = {**rig, "DEEPDENOISE_CLIENT_KEY": str(secured.keys / "missing.key_secret")}
    half = {k: v for k, v in rig.items() if k != "DEEPDENOISE_SERVER_KEY"}
    for env, named in ((public_only, "rig.key"), (missing, "missing.key_secret"),
                       (half, "DEEPDENOISE_SERVER_KEY")):  # fmt: skip
        done = subprocess.run(control, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (2, ""), (named, done)
        assert named in done.stderr, (named, done.stderr)
