"""`up`'s exit status after an internal error is non-zero (issue 11 §4: it was 0)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from devstack.core.config import parse_project
from devstack.core.envresolve import resolve_project
from devstack.runtime.output import Output
from devstack.runtime.supervisor import Supervisor


def test_a_bug_at_spawn_stops_the_stack_with_a_failing_status(tmp_path: Path) -> None:
    config = tmp_path / "devstack.yaml"
    config.write_text("services:\n  api: {cmd: echo hi}\n")
    project = parse_project(config.read_text(), config)
    env = resolve_project(project, {}, {})

    async def buggy_spawn(**_: Any) -> Any:
        raise RuntimeError("a bug in devstack")

    async def scenario() -> int:
        output = Output(["api"], stream=io.BytesIO(), color=False, timestamps=False, log_dir=None)
        supervisor = Supervisor(
            project, env, ["api"], output=output, run_id="test", spawn=buggy_spawn
        )
        async with asyncio.timeout(30):
            return await supervisor.run()

    assert asyncio.run(scenario()) == 1
