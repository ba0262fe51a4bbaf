"""The house rules: one-way dependencies between the halves and the rooms.

`stream` installs small on an acquisition PC: importing and serving never loads torch,
matplotlib or the offline half, and the rooms talk through their public faces. The
import contracts live in pyproject.toml ([tool.importlinter]) and run here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    from importlinter.cli import lint_imports

    # 0: every contract kept (the report, printed on failure, names each broken import)
    assert lint_imports(str(REPO / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_without_torch_the_help_says_how_to_get_the_offline_commands() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # as if the train extra were not installed
        import importlib.util
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda n, *a: None if n == "torch" else real(n, *a)
        from typer.testing import CliRunner
        from stream.cli import app
        out = CliRunner().invoke(app, ["--help"]).output
        print(out)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    words = " ".join(result.stdout.split())
    assert "train, export, calibrate, evaluate" in words and "deepdenoise[train]" in words
    assert " train " not in words.split("Commands", 1)[-1].split("More commands")[0]


def test_the_offline_commands_register_whichever_half_is_imported_first() -> None:
    """A plug-in imports the CLI helpers; imported before the app, it was found
    half-initialised when the app loaded it, and its commands were left out."""
    script = textwrap.dedent(
        """
        import exporter.cli  # the plug-in first, as a script or notebook might
        from stream.cli import app
        print(sorted(c.name or c.callback.__name__ for c in app.registered_commands))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "not loaded" not in result.stderr, result.stderr
    for command in ("train", "export", "evaluate", "adapt", "serve", "denoise"):
        assert f"'{command}'" in result.stdout, result.stdout


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
    """`pip install ".[demo]"` has no torch: the demo must not import it, nor the online
    half's libraries that only some uses load (scipy for ROI means, tifffile)."""
    script = (
        "import sys\n"
        "for name in ('torch', 'scipy', 'tifffile', 'onnx', 'bm3d'):\n"
        "    sys.modules[name] = None  # any import of these now raises ImportError\n"
        "import exporter.demo\n"
        "from stream.cli import app\n"
        "print('OK')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr
