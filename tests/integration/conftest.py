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


# The modules the portable pass of `make test` runs again under DEVSTACK_PORTABLE=1,
# the code paths macOS takes (issue 15): everything about stopping, orphans, SIGKILL of
# devstack, `up -d`, watch and the control socket. `-m portable` selects them.
PORTABLE_MODULES = frozenset(
    {
        "test_control",
        "test_platform",
        "test_up_detach",
        "test_up_shutdown",
        "test_up_stale",
        "test_watch",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "portable: run again with DEVSTACK_PORTABLE=1 by `make test` (issue 15)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rpartition(".")[2] in PORTABLE_MODULES:
            item.add_marker(pytest.mark.portable)
