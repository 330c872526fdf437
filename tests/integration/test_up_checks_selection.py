"""`up jobs --no-deps` checks only what it starts (issue 11 §5): another service's broken
env file, missing command or differing secret neither stops it nor floods its output."""

from __future__ import annotations

from pathlib import Path

from tests.support import Running, make_repo

CONFIG = """\
services:
  api:
    cmd: no-such-command-anywhere
    cwd: api
    depends_on: [jobs]
  jobs:
    cmd: python3 -c "print('jobs up', flush=True); import time; time.sleep(60)"
    cwd: jobs
"""


def test_up_of_one_service_is_not_stopped_or_warned_by_another(repo: Path) -> None:
    make_repo(
        repo,
        CONFIG,
        {"api/.env": "API_TOKEN=a\nthis line is broken\n", "jobs/.env": "API_TOKEN=b\n"},
    )
    up = Running("up", "jobs", "--no-deps", cwd=repo)
    try:
        up.wait_for(r"^jobs +\| jobs up")
        up.interrupt()
        up.wait()
        output = up.output()
        assert "api" not in output.replace("jobs", ""), output
    finally:
        up.close()
