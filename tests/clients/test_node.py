"""The JavaScript client (``clients/node``): its golden-vector tests under ``node --test``,
then its three programs against the real service (see ``clients/node/README.md``).

Needs Node.js >= 20 and the package's dependencies, installed once with
``npm ci --prefix clients/node``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deepdenoise_client import Control, Publisher
from service_harness import collect, listening, series_ended, wait_until

from stream import Service

pytestmark = pytest.mark.clients


from clients_harness import (  # noqa: E402
    CLIENTS,
    SHAPE,
    T0_NS,
    Program,
    Secured,
    check_control_exit_statuses,
    check_curve,
    check_end_series,
    check_ipv6_control,
    check_publish_usage,
    check_set_rois_options,
    check_set_rois_source_refused,
    parse_lines,
    pattern_frame,
    require,
    run_checked,
    stored_raw,
    stored_t_ns,
)

NODE_DIR = CLIENTS / "node"
INSTALL_HINT = "run `npm ci --prefix clients/node`"


@dataclass(frozen=True)
class NodeClient:
    node: str
    package: Path  # the package as installed from its `npm pack` tarball

    def cmd(self, program: str, *args: object) -> list[str]:
        return [self.node, str(self.package / "examples" / f"{program}.js"), *map(str, args)]


def _node_major(node: str) -> int:
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    match = re.fullmatch(r"v(\d+)\..*", version)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> NodeClient:
    """Type-check the package, then install it from its own tarball into a tmp dir.

    There is nothing to compile; packing checks that the published file list is
    complete, since the live tests run the programs from that copy.
    """
    node = shutil.which("node")
    require(node is not None, "node (Node.js >= 20) is not on PATH")
    assert node is not None
    require(_node_major(node) >= 20, f"Node.js >= 20 is needed, {node} is older")
    npm = shutil.which("npm")
    require(npm is not None, "npm is not on PATH")
    assert npm is not None
    modules = NODE_DIR / "node_modules"
    installed = all((modules / name).is_dir() for name in ("zeromq", "@msgpack/msgpack"))
    require(installed, f"clients/node/node_modules is not installed: {INSTALL_HINT}")
    require((modules / "typescript").is_dir(), f"typescript is not installed: {INSTALL_HINT}")

    tsc = modules / "typescript" / "bin" / "tsc"
    run_checked([node, str(tsc), "--noEmit", "-p", str(NODE_DIR / "tsconfig.json")])

    root = tmp_path_factory.mktemp("node-client")
    out = run_checked([npm, "pack", "--json", "--pack-destination", str(root)], cwd=NODE_DIR)
    tarball = root / json.loads(out)[0]["filename"]
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="data")
    package = root / "package"
    # The dependencies are the ones `npm ci` installed; nothing is fetched here.
    (package / "node_modules").symlink_to(modules, target_is_directory=True)
    return NodeClient(node, package)


def test_golden_vectors_under_node_test(node_client: NodeClient) -> None:
    # Files named explicitly: how Node reads a directory argument differs across versions.
    tests = sorted(str(p.relative_to(NODE_DIR)) for p in (NODE_DIR / "test").glob("*.test.js"))
    out = run_checked([node_client.node, "--test", *tests], cwd=NODE_DIR, timeout=120)
    passed = re.search(r"^# pass (\d+)$", out, re.MULTILINE)
    assert passed and int(passed.group(1)) > 100, out
    assert re.search(r"^# fail 0$", out, re.MULTILINE), out
    assert re.search(r"^# skipped 0$", out, re.MULTILINE), out


def test_publish_reaches_the_service_bit_exact(
    node_client: NodeClient, live_service: Service, tmp_path: Path
) -> None:
    series, count = "node-pub", 12
    with listening(live_service, (b"denoised", b"event")) as sub:
        cmd = node_client.cmd("publish", live_service.endpoints["input"], series, count, *SHAPE)
        run_checked(cmd, timeout=120)
        denoised, others = collect(sub, count, timeout=60)
        ended = series_ended(sub, series, others)  # the client's end mark closed the store
    assert sorted(m.header["index"] for m in denoised) == list(range(count))
    for message in denoised:
        assert message.header["series"] == series
        assert message.header["t_ns"] == T0_NS + message.header["index"]  # exact beyond 2**53
        assert message.array is not None and message.array.shape == SHAPE

    assert (ended["stored"], ended["missing"]) == (count, 0)
    raw = stored_raw(tmp_path / "data", series)
    assert raw.shape == (count, *SHAPE) and raw.dtype == np.uint16
    for i in range(count):
        np.testing.assert_array_equal(raw[i], pattern_frame(i))
    check_publish_usage(live_service, node_client.cmd("publish"))
    assert stored_t_ns(tmp_path / "data", series).tolist() == [T0_NS + i for i in range(count)]


def test_subscribe_sees_what_a_python_subscriber_sees(
    node_client: NodeClient, live_service: Service
) -> None:
    series, count = "node-sub", 6
    with listening(live_service, (b"denoised", b"traces", b"trigger")) as sub:
        program = Program(
            node_client.cmd("subscribe", live_service.endpoints["output"], count, count, count)
        )
        try:
            program.wait_for_line("ready")
            with Publisher(live_service.endpoints["input"], mode="push", bind=False) as pub:
                for i in range(count):
                    pub.send_frame(pattern_frame(i), series, i, t_ns=T0_NS + i)
                pub.end(series)
            reference, _ = collect(sub, count, timeout=60)
            lines = program.finish()
        finally:
            program.stop()

    got = parse_lines(lines)
    expected = {
        m.header["index"]: (
            m.header["dtype"],
            list(m.array.shape),
            float(m.array.sum(dtype=np.float64)),
        )
        for m in reference
        if m.array is not None
    }
    assert sorted(r["index"] for r in got["denoised"]) == sorted(expected)
    for record in got["denoised"]:
        dtype, shape, total = expected[record["index"]]
        assert record["series"] == series
        assert (record["dtype"], record["shape"]) == (dtype, shape)
        assert record["sum"] == pytest.approx(total, rel=1e-9)
    assert sorted(r["index"] for r in got["traces"]) == list(range(count))
    for record in got["traces"]:
        assert record["labels"] == [3, 7, 40] and record["shape"] == [3, 3]
        assert record["columns"] == ["raw", "denoised", "dff"]
    assert len(got["trigger"]) == count
    assert all(r["rule"] == "always" for r in got["trigger"])


def _label_file(path: Path, labels: np.ndarray) -> Path:
    """A label image as ``control set_rois`` reads it: raw bytes, C order."""
    path.write_bytes(np.ascontiguousarray(labels).tobytes())
    return path


def test_control_commands(
    node_client: NodeClient, live_service: Service, tmp_path: Path, box_model: Path
) -> None:
    endpoint = live_service.endpoints["control"]

    def control(*args: object, exit_status: int = 0) -> dict[str, Any]:
        """The reply of one ``control`` run that exits ``exit_status`` (1: ok false)."""
        done = subprocess.run(
            node_client.cmd("control", endpoint, *args),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        lines = done.stdout.strip().splitlines()
        assert done.returncode == exit_status and len(lines) == 1, (args, done)
        reply: dict[str, Any] = json.loads(lines[0])
        return reply

    def roi_count() -> int:
        count: int = control("status")["traces"]["rois"]
        return count

    with Publisher(live_service.endpoints["input"], mode="push", bind=False) as pub:
        for i in range(4):
            pub.send_frame(pattern_frame(i), "node-ctl", i)
    wait_until(lambda: live_service.status()["frames_out"] == 4, timeout=30)

    status = control("status")
    assert status["ok"] is True and status["frames_in"] == 4
    assert status["model"] == live_service.status()["model"]
    assert re.fullmatch(r"[0-9a-f]{12}", status["model"])

    assert control("pause") == {"ok": True, "paused": True}
    assert control("status")["paused"] is True
    assert control("resume") == {"ok": True, "paused": False}
    assert control("status")["paused"] is False

    assert roi_count() == 3
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[0:4, 0:4] = 1
    labels[20:24, 28:32] = 2
    reply = control("set_rois", _label_file(tmp_path / "two.u2", labels), "<u2", *SHAPE)
    assert reply == {"ok": True, "rois": 2, "series": None, "checked": ["node-ctl"]}
    assert roi_count() == 2

    wrong = _label_file(tmp_path / "wrong.u2", np.full((8, 8), 7, dtype=np.uint16))
    refused = control("set_rois", wrong, "<u2", 8, 8, exit_status=1)
    assert refused["ok"] is False and "8x8" in refused["error"]
    assert roi_count() == 2  # unchanged

    int32 = _label_file(tmp_path / "three.i4", (labels * 3).astype(np.int32))
    reply = control("set_rois", int32, "<i4", *SHAPE, "node-ctl")
    assert reply == {"ok": True, "rois": 2, "series": "node-ctl", "checked": ["node-ctl"]}

    def control_status(*args: object) -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            node_client.cmd("control", endpoint, *args),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])

    # --fit takes an image smaller than the frames; --source names it in the status.
    check_set_rois_options(control_status, endpoint, tmp_path)

    cleared = control("set_rois", "none")
    assert cleared["ok"] is True and cleared["rois"] == 0
    assert roi_count() == 0

    loaded = control("load_model", box_model)
    assert loaded["ok"] is True and loaded["model"] == status["model"]
    check_end_series(control_status, "node-ctl", 3)  # never ended, as a crashed sender's
    assert control("flush") == {"ok": True}
    assert control("no_such_command", exit_status=1)["ok"] is False

    with Control(endpoint, timeout=10) as ctl:
        assert ctl.status()["frames_in"] == 4  # the service is still there
    assert control("stop") == {"ok": True, "stopping": True}


def test_control_exit_statuses(node_client: NodeClient, tmp_path: Path) -> None:
    """control: 2 for a wrong command line (nothing sent), 3 when no reply comes."""
    check_control_exit_statuses(node_client.cmd("control"), tmp_path)
    check_set_rois_source_refused(node_client.cmd("control"), tmp_path)


def test_curve(node_client: NodeClient, secured_service: Secured, tmp_path: Path) -> None:
    """The three programs with the keys in DEEPDENOISE_CLIENT_KEY/_SERVER_KEY (CURVE)."""
    programs = {name: node_client.cmd(name) for name in ("publish", "subscribe", "control")}
    check_curve(programs, secured_service, tmp_path / "data")


def test_control_over_ipv6(node_client: NodeClient, tmp_path: Path, box_model: Path) -> None:
    """control reaches a service on tcp://[::1]:port (the socket's ipv6 option set)."""
    check_ipv6_control(node_client.cmd("control"), tmp_path, box_model)
