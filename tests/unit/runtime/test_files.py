"""Files written whole or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devstack.runtime.files import write_atomically


def test_replaces_the_file_whole_with_the_mode_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old\n")
    write_atomically(target, "new\n", 0o600)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["run.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "devstack.yaml"
    target.write_text("kept\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(target, "bad \udcff surrogate")
    assert target.read_text() == "kept\n"
    assert [path.name for path in tmp_path.iterdir()] == ["devstack.yaml"]
