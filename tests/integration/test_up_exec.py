"""A string cmd without shell syntax is exec'd by devstack itself; one with it runs under sh."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support import Running, make_repo, run_cli

PY = sys.executable

REPORT = (
    "import os, sys; print(sys.argv[1], 'ppid', os.getppid(), 'cwd', os.getcwd(), flush=True)\n"
)


def test_a_plain_command_is_devstacks_own_child_and_a_shell_one_still_works(repo: Path) -> None:
    (repo / "sub").mkdir()
    make_repo(
        repo,
        f"""
        services:
          plain: {{cmd: {PY} report.py plain}}
          shell: {{cmd: cd sub && {PY} ../report.py shell}}
        """,
        {"report.py": REPORT},
    )
    plan = json.loads(run_cli("config", "--json", cwd=repo).stdout)["services"]
    assert plan["plain"]["argv"] == [PY, "report.py", "plain"]
    assert plan["shell"]["argv"] == ["/bin/sh", "-c", f"cd sub && {PY} ../report.py shell"]
    up = Running("up", cwd=repo)
    try:
        assert up.wait() == 0, up.output()
        lines = up.output().splitlines()
        # devstack itself started it (dash also execs a lone command, but only after
        # an exec of sh of its own: `devstack config` above shows there is none now).
        assert f"plain | plain ppid {up.pid} cwd {repo}" in lines
        assert any(line.startswith("shell | shell ppid ") for line in lines)
        assert any(line.endswith(f" cwd {repo / 'sub'}") for line in lines)
    finally:
        up.close()
