"""`devstack up`: what services print reaches stdout and the log files whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import make_repo, run_cli

PY = sys.executable

BIG_AND_BROKEN = """\
import sys
out = sys.stdout.buffer
out.write(b"x" * 1_000_000)
out.flush()
out.write(b"\\nbad \\xff\\xfe bytes \\xc3\\x28 end\\n")
out.flush()
"""

SHOW_MARKERS = """\
import os
env = os.environ
print(env["DEVSTACK_SERVICE"], env["PYTHONUNBUFFERED"], len(env["DEVSTACK_RUN_ID"]) > 0,
      env.get("FORCE_COLOR"))
"""


def up_with_script(repo: Path, name: str, script: str) -> subprocess.CompletedProcess[str]:
    """`devstack up` on one service `name` that runs the Python `script`, to the end."""
    make_repo(repo, f"services:\n  {name}: {{cmd: [{PY}, {name}.py]}}\n", {f"{name}.py": script})
    return run_cli("up", cwd=repo)


def test_a_1mb_line_without_newline_and_invalid_utf8(repo: Path) -> None:
    result = up_with_script(repo, "big", BIG_AND_BROKEN)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    payload = "".join(line.split("| ", 1)[1] for line in lines if line.startswith("big | x"))
    assert payload == "x" * 1_000_000  # nothing lost, however Output chose to cut it
    [broken] = [line for line in lines if "bad" in line]
    assert broken.startswith("big | bad ") and broken.endswith(" end")
    log = (repo / ".devstack" / "logs" / "big.log").read_bytes()
    assert log.count(b"x") >= 1_000_000
    assert b" end" in log


def test_env_markers_and_unbuffered_python(repo: Path) -> None:
    result = up_with_script(repo, "show", SHOW_MARKERS)
    assert "show | show 1 True None" in result.stdout, result.stdout + result.stderr
