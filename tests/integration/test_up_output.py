"""`devstack up`: what services print reaches stdout and the log files whole."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import Running, clean_env, make_repo, run_cli

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


PROMPT_THEN_WAIT = """\
import sys, time
sys.stdout.write("Name? ")
sys.stdout.flush()
time.sleep(60)
"""


def test_a_prompt_without_newline_is_shown_while_the_service_waits(repo: Path) -> None:
    make_repo(repo, f"services:\n  ask: {{cmd: [{PY}, ask.py]}}\n", {"ask.py": PROMPT_THEN_WAIT})
    up = Running("up", cwd=repo)
    try:
        up.wait_for(r"^ask \| Name\? ?$")
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()


SHOW_TTY = "import os, sys; print('tty' if sys.stdout.isatty() else 'pipe', os.get_terminal_size())"


def test_timestamps_colour_and_tty(repo: Path) -> None:
    make_repo(
        repo,
        f"""
        services:
          term: {{cmd: [{PY}, -c, "{SHOW_TTY}"], tty: true}}
          piped: {{cmd: [{PY}, -c, "import os; print(os.environ.get('FORCE_COLOR'))"]}}
        """,
    )
    plain = run_cli("up", "--timestamps", cwd=repo)
    assert plain.returncode == 0, plain.stderr
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} term +\| tty os.terminal_size", plain.stdout, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} piped +\| None$", plain.stdout, re.M)
    assert "\x1b[" not in plain.stdout  # not a terminal: no colour
    coloured = run_cli("up", "piped", cwd=repo, env=clean_env(FORCE_COLOR="1"))
    # A coloured prefix, and the child is told it may colour too.
    assert re.search(r"^\x1b\[[0-9;]*mpiped \|\x1b\[0m 1$", coloured.stdout, re.M), coloured.stdout
    no_colour = run_cli("up", "piped", cwd=repo, env=clean_env(FORCE_COLOR="1", NO_COLOR="1"))
    assert "\x1b[" not in no_colour.stdout
