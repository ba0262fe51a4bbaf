"""A service loads the modules its frame path imports lazily when it starts, so that no
frame waits for an import mid-stream (scipy.special held the demo's third frame 300 ms)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_service_start_loads_the_frame_paths_lazy_modules(identity_model: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from stream import Service, ServiceConfig
        from stream.engine import FRAME_PATH_MODULES

        assert FRAME_PATH_MODULES
        before = [m for m in FRAME_PATH_MODULES if m in sys.modules]
        print("BEFORE", before)
        cfg = ServiceConfig(
            model={str(identity_model)!r}, input="tcp://127.0.0.1:0", input_mode="pull",
            input_bind=True, output="tcp://127.0.0.1:0", control="tcp://127.0.0.1:0",
            zarr=None, warmup_shape=(32, 32),
        )
        with Service(cfg):
            print("MISSING", [m for m in FRAME_PATH_MODULES if m not in sys.modules])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BEFORE []" in result.stdout  # importing the service loads none of them
    assert "MISSING []" in result.stdout
