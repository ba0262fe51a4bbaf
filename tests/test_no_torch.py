"""`stream` installs small on an acquisition PC: importing and serving never loads torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_serving_a_frame_never_imports_torch_or_matplotlib(tmp_path: Path, identity_model):
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import stream
        from stream import Service, ServiceConfig
        from deepdenoise_client import Publisher, Subscriber

        cfg = ServiceConfig(
            model={str(identity_model)!r}, input="tcp://127.0.0.1:0", input_mode="pull",
            input_bind=True, output="tcp://127.0.0.1:0", control="tcp://127.0.0.1:0",
            zarr={str(tmp_path / "data")!r}, status_interval_s=0.1, warmup_shape=(32, 32),
        )
        with Service(cfg) as svc:
            with Subscriber(svc.endpoints["output"], topics=(b"denoised", b"status")) as sub:
                while sub.recv(timeout=10).topic != b"status":
                    pass
                with Publisher(svc.endpoints["input"], mode="push", bind=False) as pub:
                    pub.send_frame(np.ones((32, 32), np.uint16), "t", 0)
                while sub.recv(timeout=10).topic != b"denoised":
                    pass
        banned = ("torch", "matplotlib", "exporter")
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in banned)
        print("HEAVY", heavy)
        assert not heavy, heavy
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY []" in result.stdout


def test_demo_needs_only_the_demo_extra():
    """`pip install ".[demo]"` has no torch or scipy: the demo must not import them."""
    script = (
        "import sys\n"
        "for name in ('torch', 'scipy', 'tifffile', 'onnx', 'bm3d'):\n"
        "    sys.modules[name] = None  # any import of these now raises ImportError\n"
        "import exporter.demo\n"
        "from stream._cli import app\n"
        "print('OK')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr
