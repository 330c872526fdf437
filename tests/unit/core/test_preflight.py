"""The one check a config and env pass before a run uses them, by `up` and by the
watcher's reload alike (`preflight.check_run`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devstack.core.config import load_project
from devstack.core.envresolve import resolve_project
from devstack.core.preflight import check_run
from devstack.runtime.watcher import ProjectWatcher
from tests.fakes import FakeStack
from tests.support import make_repo

CONFIG = """
services:
  api: {cmd: /bin/sh app.sh, env_files: [api.env]}
  broken: {cmd: /nonexistent/program}
"""


def test_env_errors_and_doctor_errors_are_told_apart(tmp_path: Path) -> None:
    make_repo(tmp_path, CONFIG, {"api.env": "URL=http://${HOST}/\n"})
    project = load_project(tmp_path / "devstack.yaml")
    verdict = check_run(project, resolve_project(project, {}, {}), ["api"])
    assert not verdict.usable
    assert [problem.code for problem in verdict.env_errors] == ["undefined-variable"]
    make_repo(tmp_path, CONFIG, {"api.env": "URL=http://${HOST:-localhost}/\n"})
    project = load_project(tmp_path / "devstack.yaml")
    env = resolve_project(project, {}, {})
    assert check_run(project, env, ["api"]).usable  # `broken` is not part of this run
    assert not check_run(project, env, ["api", "broken"]).usable


def test_a_reload_refuses_what_up_would_refuse(tmp_path: Path) -> None:
    make_repo(tmp_path, CONFIG, {"api.env": "URL=http://localhost/\n"})

    async def scenario() -> tuple[object, list[str]]:
        stack = FakeStack.of_repo(tmp_path)
        stack.states.pop("broken")  # this run started api alone
        watcher = ProjectWatcher(stack, shell={}, cli_env={})
        (tmp_path / "api.env").write_text("URL=http://${HOST}/\n")
        loaded = await watcher._load(False, stack.project, "api.env")
        return loaded, stack.messages

    loaded, said = asyncio.run(scenario())
    assert loaded is None
    assert said[0] == "api.env changed but cannot be used, keeping the last good config:"
    assert any("HOST" in line for line in said[1:])
