"""Every integration test gets a fresh repo folder and proves nothing is left running in it."""

from __future__ import annotations

import sys
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


# The modules whose tests run a second time under DEVSTACK_PORTABLE=1, the code paths
# macOS takes (issue 15): everything about stopping, orphans, SIGKILL of devstack,
# `up -d`, watch and the control socket (a module can also mark itself `portable`).
# `-m portable` selects them.
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
PORTABLE_VAR = "DEVSTACK_PORTABLE"  # devstack/runtime/platform.py's switch
# On Linux each such test runs in both implementations within the one pytest run
# (ids [linux] and [portable]), so xdist spreads them over its workers; they used to
# be a second pytest run of `make test` (38 s). Elsewhere the portable one is native.
PLATFORMS = ("linux", "portable") if sys.platform.startswith("linux") else ()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "portable: run on Linux again with DEVSTACK_PORTABLE=1 (issue 15)"
    )


def _is_portable(node: pytest.Item | pytest.Function) -> bool:
    module = getattr(node, "module", None)
    in_module = module is not None and module.__name__.rpartition(".")[2] in PORTABLE_MODULES
    return in_module or node.get_closest_marker("portable") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if PLATFORMS and _is_portable(metafunc.definition):
        metafunc.parametrize("devstack_platform", PLATFORMS, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_portable(item):
            item.add_marker(pytest.mark.portable)


@pytest.fixture(autouse=True)
def devstack_platform(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The implementation the CLI this test runs picks: set through the environment the
    test's `devstack` processes inherit (tests.support.clean_env reads it at each call).
    Autouse, so it is in place before any other fixture of the test starts a process."""
    platform: str | None = getattr(request, "param", None)
    if platform == "portable":
        monkeypatch.setenv(PORTABLE_VAR, "1")
    elif platform == "linux":
        monkeypatch.delenv(PORTABLE_VAR, raising=False)
    return platform or ("linux" if sys.platform.startswith("linux") else "portable")
