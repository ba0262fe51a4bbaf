"""The output folder a failed command made and left empty is removed; nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter._folders import removed_if_left_empty


class _Failed(Exception):
    pass


def _make_then_fail(out: Path, error: BaseException) -> None:
    with removed_if_left_empty(out):
        out.mkdir()
        raise error


def test_a_failed_block_removes_the_empty_folder_it_made(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(_Failed):
        _make_then_fail(out, _Failed())
    assert not out.exists()


def test_an_interrupted_block_removes_it_too(tmp_path: Path) -> None:
    """Ctrl-C is not an Exception; the folder still goes."""
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _make_then_fail(out, KeyboardInterrupt())
    assert not out.exists()


@pytest.mark.parametrize("case", ["existed before", "written to", "succeeded"])
def test_a_folder_that_was_there_holds_files_or_succeeded_is_kept(
    tmp_path: Path, case: str
) -> None:
    out = tmp_path / "out"
    if case == "existed before":
        out.mkdir()
    fails = case != "succeeded"
    try:
        with removed_if_left_empty(out):
            out.mkdir(exist_ok=True)
            if case == "written to":
                (out / "metrics.json").write_text("{}")
            if fails:
                raise _Failed
    except _Failed:
        assert fails
    assert out.is_dir()
