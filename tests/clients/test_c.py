"""The C client (clients/c) against its golden vectors and the live service.

The client is configured and built once per module into a pytest tmp dir (never into the
source tree) with warnings as errors; ctest then runs its own tests, and the live tests
run the three example programs (the command lines of tests/clients_harness.py) against
a real service on loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
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
    check_ipv6_control,
    check_publish_usage,
    check_publisher,
    check_set_rois_options,
    check_set_rois_source_refused,
    parse_lines,
    pattern_frame,
    require,
    run_checked,
)
from deepdenoise_client import Publisher
from service_harness import collect, listening

from stream import Service

pytestmark = pytest.mark.clients

C_CLIENT = CLIENTS / "c"
#: What the configure step prints when a dependency (not the code) is missing.
MISSING = ("A required package was not found", "None of the required", "Could NOT find PkgConfig")
INSTALL = "Debian: cmake gcc pkg-config libzmq3-dev libmsgpack-dev libjansson-dev libssl-dev"


@pytest.fixture(scope="module")
def c_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Configure and build the library, the examples and the tests, warnings as errors."""
    require(shutil.which("cmake") is not None, f"cmake is not installed ({INSTALL})")
    require(shutil.which("cc") is not None or shutil.which("gcc") is not None,
            f"no C compiler ({INSTALL})")  # fmt: skip
    require(shutil.which("pkg-config") is not None, f"pkg-config is not installed ({INSTALL})")
    build = tmp_path_factory.mktemp("c") / "build"
    configure = subprocess.run(
        [
            "cmake", "-S", str(C_CLIENT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            "-DDDN_WARNINGS_AS_ERRORS=ON",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = f"{configure.stdout}\n{configure.stderr}"
    if configure.returncode != 0 and any(phrase in output for phrase in MISSING):
        require(False, f"a C client dependency is missing ({INSTALL}):\n{output[-2000:]}")
    assert configure.returncode == 0, output
    run_checked(["cmake", "--build", str(build), "--parallel", "2"])
    return build


def program(build: Path, name: str) -> str:
    return str(build / f"ddn_{name}")


def test_ctest(c_build: Path) -> None:
    """ctest: every golden vector decoded, re-encoded byte for byte or rejected with its
    reason; and the sockets (zero-copy send and receive, REQ timeout and reopen)."""
    out = run_checked(["ctest", "--output-on-failure", "-V"], cwd=c_build)
    assert "100% tests passed" in out, out
    vectors = json.loads((VECTORS / "vectors.json").read_text())["vectors"]
    assert f"{len(vectors)} passed, 0 failed" in out, out  # every vector, none skipped
    assert "FAILED" not in out, out


CONSUMER_MAIN = """\
#include <deepdenoise/deepdenoise.h>
#include <stdio.h>
int main(void) {
    const uint16_t pixels[6] = {1, 2, 3, 4, 5, 6};
    ddn_frame f = {.series = "s1", .index = 7, .dtype = DDN_U2, .height = 2, .width = 3,
                   .pixels = pixels};
    msgpack_sbuffer header;
    msgpack_sbuffer_init(&header);
    if (ddn_encode_frame_header(&header, &f, NULL, NULL) != DDN_OK) return 1;
    ddn_part parts[3] = {{"frame", 5}, {header.data, header.size}, {pixels, sizeof pixels}};
    ddn_message *msg = ddn_message_new();
    if (ddn_message_decode(msg, parts, 3, 1, NULL, NULL) != DDN_OK) return 1;
    int64_t index;
    ddn_map_get_int(ddn_message_header(msg), "index", &index);
    printf("%lld %u\\n", (long long)index, ddn_load_u2(ddn_message_pixels(msg), 5));
    ddn_message_free(msg);
    msgpack_sbuffer_destroy(&header);
    return 0;
}
"""


def test_consumer_project(c_build: Path, tmp_path: Path) -> None:
    """A ten-line CMake project uses the client through add_subdirectory, beside the C++
    client (their targets are named apart)."""
    source = tmp_path / "consumer"
    source.mkdir()
    (source / "main.c").write_text(CONSUMER_MAIN)
    (source / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "project(consumer C CXX)\n"
        'set(DDN_BUILD_EXAMPLES OFF CACHE BOOL "")\n'
        'set(DDN_BUILD_TESTS OFF CACHE BOOL "")\n'
        f'add_subdirectory("{C_CLIENT}" "${{CMAKE_BINARY_DIR}}/deepdenoise")\n'
        f'add_subdirectory("{CLIENTS / "cpp"}" "${{CMAKE_BINARY_DIR}}/deepdenoise-cpp")\n'
        "add_executable(consumer main.c)\n"
        "target_link_libraries(consumer PRIVATE deepdenoise::c_client)\n"
    )
    build = tmp_path / "build"
    run_checked(["cmake", "-S", str(source), "-B", str(build)])
    run_checked(["cmake", "--build", str(build), "--parallel", "2"])
    assert run_checked([str(build / "consumer")]).split() == ["7", "6"]


def test_publisher(c_build: Path, live_service: Service, tmp_path: Path) -> None:
    """publish: 12 frames come back denoised and are on disk bit for bit, t_ns exact."""
    check_publisher(live_service, tmp_path / "data", [program(c_build, "publish")], "c-pub", 12)
    check_publish_usage(live_service, [program(c_build, "publish")])


def test_subscriber(c_build: Path, live_service: Service) -> None:
    """subscribe: the same denoised frames as a Python subscriber, plus traces and triggers."""
    svc, series, count = live_service, "c-sub", 12
    prog = Program([program(c_build, "subscribe"), svc.endpoints["output"], *[str(count)] * 3])
    try:
        prog.wait_for_line("ready")
        with listening(svc, topics=(b"denoised",)) as sub:
            with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
                for i in range(count):
                    pub.send_frame(pattern_frame(i), series, i, t_ns=T0_NS + i)
                pub.end(series)
            reference, _ = collect(sub, count, timeout=60)
        lines = prog.finish()
    except BaseException:
        prog.stop()
        raise
    got = parse_lines(lines)

    expected = sorted(
        (
            m.header["index"],
            m.header["shape"],
            m.header["dtype"],
            pytest.approx(float(np.asarray(m.array, dtype=np.float64).sum()), rel=1e-9),
        )
        for m in reference
    )
    mine = sorted(
        (r["header"]["index"], r["header"]["shape"], r["header"]["dtype"], r["sum"])
        for r in got["denoised"]
    )
    assert len(mine) == count
    assert mine == expected
    # t_ns above 2**53 survives the C decoder and JSON printer as an exact integer.
    assert sorted(r["header"]["t_ns"] for r in got["denoised"]) == [T0_NS + i for i in range(count)]
    assert len(got["traces"]) >= count
    for record in got["traces"]:
        header = record["header"]
        assert header["labels"] == list(LABELS)
        assert header["columns"] == ["raw", "denoised", "dff"]
        assert header["shape"] == [3, 3]
        assert len(record["values"]) == 9
    assert len(got["trigger"]) >= count
    assert {r["header"]["rule"] for r in got["trigger"]} == {"always"}


def control(build: Path, svc: Service, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``control``; its exit status and the one JSON line it printed."""
    done = subprocess.run(
        [program(build, "control"), svc.endpoints["control"], *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"control {args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    reply: dict[str, Any] = json.loads(lines[0])
    return done.returncode, reply


def test_control(c_build: Path, live_service: Service, tmp_path: Path, box_model: Path) -> None:
    """control: status, pause/resume, set_rois (good, bad, --fit and --source, removed),
    load_model, end_series."""
    svc, series, count = live_service, "c-ctl", 5
    with listening(svc, topics=(b"denoised",)) as sub:
        # no `end`: the series stays open, so a label image of another shape is refused
        with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
            for i in range(count):
                pub.send_frame(pattern_frame(i), series, i)
        denoised, _ = collect(sub, count, timeout=60)

    rc, status = control(c_build, svc, "status")
    assert rc == 0
    assert status["ok"] is True
    assert status["frames_in"] == count
    assert status["model"] == denoised[0].header["model"]
    assert status["paused"] is False
    assert status["traces"]["rois"] == len(LABELS)

    assert control(c_build, svc, "pause") == (0, {"ok": True, "paused": True})
    assert control(c_build, svc, "status")[1]["paused"] is True
    assert control(c_build, svc, "resume") == (0, {"ok": True, "paused": False})
    assert control(c_build, svc, "status")[1]["paused"] is False
    assert control(c_build, svc, "flush") == (0, {"ok": True})

    # The label image as raw bytes, C order, in the dtype named on the command line.
    two = np.zeros(SHAPE, dtype="<u2")
    two[0:4, 0:4] = 1
    two[10:12, 10:14] = 2
    (tmp_path / "two.bin").write_bytes(two.tobytes())
    rc, reply = control(c_build, svc, "set_rois", str(tmp_path / "two.bin"), "<u2",
                        str(SHAPE[0]), str(SHAPE[1]))  # fmt: skip
    assert (rc, reply["ok"], reply["rois"], reply["series"]) == (0, True, 2, None)
    assert control(c_build, svc, "status")[1]["traces"]["rois"] == 2

    # Wrong shape for the series still streaming: refused (exit 1), nothing changes.
    (tmp_path / "bad.bin").write_bytes(np.ones((10, 10), dtype="<u2").tobytes())
    rc, reply = control(c_build, svc, "set_rois", str(tmp_path / "bad.bin"), "<u2", "10", "10")
    assert (rc, reply["ok"]) == (1, False)
    assert reply["error"]
    assert control(c_build, svc, "status")[1]["traces"]["rois"] == 2

    # --fit takes an image smaller than the frames; --source names it in the status.
    check_set_rois_options(partial(control, c_build, svc), svc.endpoints["control"], tmp_path)

    # nil labels remove the ROIs.
    rc, reply = control(c_build, svc, "set_rois", "none")
    assert (rc, reply["ok"], reply["rois"]) == (0, True, 0)
    assert control(c_build, svc, "status")[1]["traces"]["rois"] == 0

    rc, reply = control(c_build, svc, "load_model", str(box_model))
    assert (rc, reply["ok"], reply["model"]) == (0, True, status["model"])

    # the series was never ended, as a crashed sender leaves it
    check_end_series(partial(control, c_build, svc), series, count - 1)

    # Any other command goes out as it is; the service refuses an unknown one (exit 1).
    rc, reply = control(c_build, svc, "no_such_command")
    assert (rc, reply["ok"]) == (1, False)
    assert reply["error"]


def test_control_exit_statuses(c_build: Path, tmp_path: Path) -> None:
    """control: 2 for a wrong command line or a source the client refuses (nothing sent),
    3 when no reply comes."""
    check_control_exit_statuses([program(c_build, "control")], tmp_path)
    check_set_rois_source_refused([program(c_build, "control")], tmp_path)


def test_curve(c_build: Path, secured_service: Secured, tmp_path: Path) -> None:
    """With DEEPDENOISE_CLIENT_KEY / DEEPDENOISE_SERVER_KEY the three programs talk CURVE
    to a service with [security]; a key it does not allow gets no reply (exit 3); a wrong
    key file or only one of the variables is bad usage (exit 2)."""
    programs = {name: [program(c_build, name)] for name in ("publish", "subscribe", "control")}
    check_curve(programs, secured_service, tmp_path / "data")


def test_control_over_ipv6(c_build: Path, tmp_path: Path, box_model: Path) -> None:
    """control reaches a service on tcp://[::1]:port (libzmq's IPV6 option set)."""
    check_ipv6_control([program(c_build, "control")], tmp_path, box_model)
