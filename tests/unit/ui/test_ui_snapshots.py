"""Snapshots of `devstack ui`'s main screens at 80x24 (pytest-textual-snapshot).

The app is fed fixed statuses and lines by a stand-in for the stack, with a fixed
clock and fixed CPU/memory, so every pid, uptime and figure is the same on every
run. The SVGs were looked at once and committed; `pytest --snapshot-update`
rewrites them after an intended change (look at them again then).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.ui import envpane
from devstack.ui.app import DevstackApp
from devstack.ui.envpane import EnvScreen
from devstack.ui.stack import LogBatch, ServiceRow
from devstack.ui.usage import Usage
from tests.support import TIMEOUT, make_repo

NOW = 1_800_000_000.0
ROWS = [
    ServiceRow("db", "ready", pid=4101, started_at=NOW - 3720, port=5432),
    ServiceRow(
        "api",
        "running",
        pid=4133,
        started_at=NOW - 75,
        restarts=2,
        port=3000,
        reason="src/routes.ts changed",
    ),
    ServiceRow(
        "worker", "crashed", last_exit=1, restarts=5, reason="exited 1 (restart: on-failure)"
    ),
    ServiceRow("web", "starting", detail="waiting for api (ready)"),
]
LINES = {
    "db": ["database system is ready to accept connections"],
    "api": [
        "----- started 2027-01-15 08:00:00 pid 4120 -----",
        "listening on :3000",
        "GET /health 200 1ms",
        "----- started 2027-01-15 08:01:45 pid 4133 -----",
        "listening on :3000",
        "GET /users 200 12ms",
        "GET /users/7 404 3ms",
    ],
    "worker": ["Error: connect ECONNREFUSED 127.0.0.1:6379"],
}
CONFIG = """\
services:
  api:
    cmd: node server.js
    port: 3000
    env:
      DATABASE_URL: postgres://app:s3cret@localhost:5432/app
      STRIPE_SECRET_KEY: sk_test_123456789
      LOG_LEVEL: debug
"""


class FixedStack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.on_silence = None

    async def statuses(self) -> AsyncGenerator[list[ServiceRow], None]:
        yield ROWS
        await asyncio.Event().wait()  # the stack runs on

    async def output(self, tail: int) -> AsyncIterator[LogBatch]:
        for name, lines in LINES.items():
            yield LogBatch(name, lines, from_file=True)
        await asyncio.Event().wait()

    async def restart(self, name: str) -> None: ...
    async def stop(self, name: str) -> None: ...
    async def start(self, name: str) -> None: ...
    async def type_into(self, name: str, text: str) -> None: ...
    async def wait_for_up(self) -> None: ...


def fixed_usage(pids: list[int]) -> dict[int, Usage]:
    return {4101: Usage(0.4, 48 * 1024 * 1024), 4133: Usage(3.0, 182 * 1024 * 1024)}


def env_report_at_a_fixed_path(
    repo: Path,
) -> Callable[[str, Path | None], tuple[list[tuple[str, str, str]], dict[str, str]]]:
    """The real env report, with the repo's path (tmp_path's, new on every run: it is
    DEVSTACK_REPO's value) shown as /home/dev/repo."""

    real = envpane.env_report  # the module's own, before the fixture replaces it

    def report(
        service: str, config_file: Path | None
    ) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
        rows, stories = real(service, config_file)
        at = str(repo)
        fixed = [(name, value.replace(at, FIXED_REPO), src) for name, value, src in rows]
        return fixed, {name: story.replace(at, FIXED_REPO) for name, story in stories.items()}

    return report


FIXED_REPO = "/home/dev/repo"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DevstackApp:
    repo = make_repo(tmp_path / "repo", CONFIG).resolve()
    monkeypatch.setattr(envpane, "env_report", env_report_at_a_fixed_path(repo))
    for name in list(os.environ):
        if not name.startswith(("TEXTUAL", "PYTEST", "TERM", "COLUMNS", "LINES")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("HOME", "/home/dev")
    return DevstackApp(
        FixedStack(repo),  # type: ignore[arg-type]
        config_file=repo / "devstack.yaml",
        clock=lambda: NOW,
        sample_usage=fixed_usage,
    )


async def until(pilot: Any, ready: Callable[[], bool], what: str) -> None:
    """Let the app run until `ready()` holds: an event to wait on, not a fixed pause."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause()


async def settle(pilot: Any) -> None:
    app = pilot.app
    await until(
        pilot,
        lambda: (
            len(app.rows) == len(ROWS)
            and all(app.book.lines(name) for name in LINES)
            and app.log_pane.line_count > 0
            and not app._unwritten
        ),
        "the statuses and lines to be drawn",
    )
    await app.refresh_usage()
    await pilot.pause()


async def open_env(pilot: Any) -> None:
    """The env screen of api, once what it read is on it (EnvScreen.loaded)."""
    await settle(pilot)
    await pilot.press("j", "e")
    await until(pilot, lambda: isinstance(pilot.app.screen, EnvScreen), "the env screen")
    await asyncio.wait_for(pilot.app.screen.loaded.wait(), TIMEOUT)
    await pilot.pause()


Compare = Callable[..., bool]


def test_services_and_the_chosen_log(app: DevstackApp, snap_compare: Compare) -> None:
    assert snap_compare(app, press=["j"], run_before=settle)


def test_all_services_with_a_search(app: DevstackApp, snap_compare: Compare) -> None:
    assert snap_compare(app, press=["a", "slash", *"GET", "enter"], run_before=settle)


def test_keys(app: DevstackApp, snap_compare: Compare) -> None:
    assert snap_compare(app, press=["question_mark"], run_before=settle)


def test_env_pane_masks_secrets(app: DevstackApp, snap_compare: Compare) -> None:
    assert snap_compare(app, run_before=open_env)
