"""The C++ client (clients/cpp) against its golden vectors and the live service.

The client is built once per module into a pytest tmp dir (never into the source tree),
with warnings as errors, and installed into a tmp prefix; consumer projects then prove
that both ``find_package`` and ``add_subdirectory`` work. The live tests run the three
test programs of tests/clients_harness.py against a real service on loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
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

CPP = CLIENTS / "cpp"
#: What a configure step prints when a dependency (not the code) is missing.
MISSING = (
    "Could not find a package configuration file",
    "msgpack-cxx not found",
    "ZeroMQ was NOT found",
    "Could NOT find",
)


@dataclass(frozen=True)
class CppBuild:
    build: Path
    prefix: Path

    def program(self, name: str) -> str:
        return str(self.build / name)


@pytest.fixture(scope="module")
def cpp(tmp_path_factory: pytest.TempPathFactory) -> CppBuild:
    """Configure, build (warnings are errors) and install the client once."""
    require(shutil.which("cmake") is not None, "cmake is not installed (Debian: cmake)")
    require(
        shutil.which("c++") is not None or shutil.which("g++") is not None,
        "no C++ compiler (Debian: g++)",
    )
    root = tmp_path_factory.mktemp("cpp")
    build, prefix = root / "build", root / "prefix"
    configure = subprocess.run(
        [
            "cmake", "-S", str(CPP), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            "-DDEEPDENOISE_CLIENT_WERROR=ON",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = f"{configure.stdout}\n{configure.stderr}"
    if configure.returncode != 0 and any(phrase in output for phrase in MISSING):
        require(
            False,
            "a C++ client dependency is missing (Debian: cppzmq-dev libzmq3-dev "
            "libmsgpack-cxx-dev; for the tests nlohmann-json3-dev libssl-dev):\n"
            f"{output[-2000:]}",
        )
    assert configure.returncode == 0, output
    run_checked(["cmake", "--build", str(build), "--parallel", "2"])
    run_checked(["cmake", "--install", str(build), "--prefix", str(prefix)])
    return CppBuild(build, prefix)


def test_ctest(cpp: CppBuild) -> None:
    """ctest: every golden vector decoded, re-encoded and rejected; the sockets over inproc."""
    out = run_checked(["ctest", "--output-on-failure", "-V"], cwd=cpp.build)
    assert " checks passed, 0 failed" in out, out
    assert "all socket checks passed" in out, out


CONSUMER_MAIN = """\
#include <deepdenoise/client.hpp>
#include <iostream>
int main() {
    const std::uint16_t pixels[6] = {1, 2, 3, 4, 5, 6};
    auto parts = deepdenoise::encode_frame(deepdenoise::frame_ref(pixels, {2, 3}), "s1", 7);
    auto message = deepdenoise::decode_message(std::move(parts), deepdenoise::Check::input);
    std::cout << message.header.at("index").as_uint64() << " "
              << message.pixels<std::uint16_t>()(1, 2) << "\\n";
}
"""


@pytest.mark.parametrize("usage", ["find_package", "add_subdirectory"])
def test_consumer_project(cpp: CppBuild, tmp_path: Path, usage: str) -> None:
    """A ten-line project links deepdenoise::client either way."""
    if usage == "find_package":
        use = "find_package(deepdenoise_client 1.0 CONFIG REQUIRED)"
        extra = [f"-DCMAKE_PREFIX_PATH={cpp.prefix}"]
    else:
        use = f'add_subdirectory("{CPP}" "${{CMAKE_BINARY_DIR}}/deepdenoise")'
        extra = []
    source = tmp_path / "consumer"
    source.mkdir()
    (source / "main.cpp").write_text(CONSUMER_MAIN)
    (source / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "project(consumer CXX)\n"
        f"{use}\n"
        "add_executable(consumer main.cpp)\n"
        "target_link_libraries(consumer PRIVATE deepdenoise::client)\n"
    )
    build = tmp_path / "build"
    run_checked(["cmake", "-S", str(source), "-B", str(build), *extra])
    run_checked(["cmake", "--build", str(build), "--parallel", "2"])
    assert run_checked([str(build / "consumer")]).split() == ["7", "6"]


def test_publisher(cpp: CppBuild, live_service: Service, tmp_path: Path) -> None:
    """publish: 12 frames come back denoised and are on disk bit for bit, t_ns exact."""
    check_publisher(live_service, tmp_path / "data", [cpp.program("publish")], "cpp-pub", 12)
    check_publish_usage(live_service, [cpp.program("publish")])


def test_subscriber(cpp: CppBuild, live_service: Service) -> None:
    """subscribe: the same denoised frames as a Python subscriber, plus traces and triggers."""
    svc, series, count = live_service, "cpp-sub", 12
    program = Program(
        [cpp.program("subscribe"), svc.endpoints["output"], str(count), str(count), str(count)]
    )
    try:
        program.wait_for_line("ready")
        with listening(svc, topics=(b"denoised",)) as sub:
            with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
                for i in range(count):
                    pub.send_frame(pattern_frame(i), series, i, t_ns=T0_NS + i)
                pub.end(series)
            reference, _ = collect(sub, count, timeout=60)
        lines = program.finish()
    except BaseException:
        program.stop()
        raise
    got = parse_lines(lines)

    def summary(index: int, shape: Any, dtype: str, total: float) -> tuple[Any, ...]:
        return index, list(shape), dtype, pytest.approx(total, rel=1e-9)

    expected = sorted(
        summary(
            m.header["index"],
            m.header["shape"],
            m.header["dtype"],
            float(np.asarray(m.array, dtype=np.float64).sum()),
        )
        for m in reference
    )
    mine = sorted(
        (r["header"]["index"], r["header"]["shape"], r["header"]["dtype"], r["sum"])
        for r in got["denoised"]
    )
    assert len(mine) == count
    assert mine == expected
    # t_ns survives as an exact integer (above 2**53) through the C++ decoder and printer.
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


def control(cpp: CppBuild, svc: Service, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``control``; its exit status and the one JSON line it printed."""
    done = subprocess.run(
        [cpp.program("control"), svc.endpoints["control"], *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"control {args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.returncode, json.loads(lines[0])


def test_control(cpp: CppBuild, live_service: Service, tmp_path: Path, box_model: Path) -> None:
    """control: status, pause/resume, set_rois (good, bad, --fit and --source, cleared),
    load_model, end_series."""
    svc, series, count = live_service, "cpp-ctl", 5
    with listening(svc, topics=(b"denoised",)) as sub:
        with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
            for i in range(count):
                pub.send_frame(pattern_frame(i), series, i)
        denoised, _ = collect(sub, count, timeout=60)

    rc, status = control(cpp, svc, "status")
    assert rc == 0
    assert status["ok"] is True
    assert status["frames_in"] == count
    assert status["model"] == denoised[0].header["model"]
    assert status["paused"] is False
    assert status["traces"]["rois"] == len(LABELS)

    assert control(cpp, svc, "pause") == (0, {"ok": True, "paused": True})
    assert control(cpp, svc, "status")[1]["paused"] is True
    assert control(cpp, svc, "resume") == (0, {"ok": True, "paused": False})
    assert control(cpp, svc, "status")[1]["paused"] is False

    # The label image as raw bytes, C order, in the dtype named on the command line.
    two = np.zeros(SHAPE, dtype="<u2")
    two[0:4, 0:4] = 1
    two[10:12, 10:14] = 2
    (tmp_path / "two.bin").write_bytes(two.tobytes())
    rc, reply = control(cpp, svc, "set_rois", str(tmp_path / "two.bin"), "<u2", *map(str, SHAPE))
    assert (rc, reply["ok"], reply["rois"], reply["series"]) == (0, True, 2, None)
    assert control(cpp, svc, "status")[1]["traces"]["rois"] == 2

    # Wrong shape for the series already streaming: refused (exit 1), nothing changes.
    (tmp_path / "bad.bin").write_bytes(np.ones((10, 10), dtype="<u2").tobytes())
    rc, reply = control(cpp, svc, "set_rois", str(tmp_path / "bad.bin"), "<u2", "10", "10")
    assert (rc, reply["ok"]) == (1, False)
    assert reply["error"]
    assert control(cpp, svc, "status")[1]["traces"]["rois"] == 2

    # --fit takes an image smaller than the frames; --source names it in the status.
    check_set_rois_options(partial(control, cpp, svc), svc.endpoints["control"], tmp_path)

    # nil labels remove the ROIs.
    rc, reply = control(cpp, svc, "set_rois", "none")
    assert (rc, reply["ok"], reply["rois"]) == (0, True, 0)
    assert control(cpp, svc, "status")[1]["traces"]["rois"] == 0

    rc, reply = control(cpp, svc, "load_model", str(box_model))
    assert (rc, reply["ok"], reply["model"]) == (0, True, status["model"])

    # the series was never ended, as a crashed sender leaves it
    check_end_series(partial(control, cpp, svc), series, count - 1)

    # Any other command goes out as it is; the service refuses an unknown one (exit 1).
    rc, reply = control(cpp, svc, "no_such_command")
    assert (rc, reply["ok"]) == (1, False)
    assert reply["error"]


def test_control_exit_statuses(cpp: CppBuild, tmp_path: Path) -> None:
    """control: 2 for a wrong command line or a source the client refuses (nothing sent),
    3 when no reply comes."""
    check_control_exit_statuses([cpp.program("control")], tmp_path)
    check_set_rois_source_refused([cpp.program("control")], tmp_path)


def test_curve(cpp: CppBuild, secured_service: Secured, tmp_path: Path) -> None:
    """With DEEPDENOISE_CLIENT_KEY / DEEPDENOISE_SERVER_KEY the three programs talk CURVE
    to a service with [security]; a key it does not allow gets no reply (exit 3); a wrong
    key file or only one of the variables is bad usage (exit 2)."""
    programs = {name: [cpp.program(name)] for name in ("publish", "subscribe", "control")}
    check_curve(programs, secured_service, tmp_path / "data")


def test_control_over_ipv6(cpp: CppBuild, tmp_path: Path, box_model: Path) -> None:
    """control reaches a service on tcp://[::1]:port (libzmq's IPV6 option set)."""
    check_ipv6_control([cpp.program("control")], tmp_path, box_model)
