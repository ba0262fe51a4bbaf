"""What ``deepdenoise ship`` writes on a model card about the run's budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from exporter.ship import run_summary


def test_a_resumed_runs_summary_takes_the_wall_time_of_all_sessions(tmp_path: Path):
    last_session = {"steps": 36000, "start_step": 32000, "seconds": 926.9, "steps_per_s": 4.33}
    last_session["best_step"] = 35000
    (tmp_path / "summary.json").write_text(json.dumps(last_session))
    assert run_summary(tmp_path) == last_session
    summary = run_summary(tmp_path, wall_hours=9.5)
    assert summary["seconds"] == pytest.approx(9.5 * 3600) and summary["steps_per_s"] is None
    assert summary["steps"] == 36000 and summary["best_step"] == 35000
    assert summary["start_step"] == 0  # the time is no longer that of the steps after a resume
