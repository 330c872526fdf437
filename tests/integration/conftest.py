"""Every integration test gets a fresh repo folder and proves nothing is left running in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import assert_no_processes_under


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "repo"
    root.mkdir()
    yield root
    assert_no_processes_under(tmp_path)
