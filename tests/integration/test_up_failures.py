"""`devstack up` when a start fails: that service fails with its reason, its dependents
name the real cause, and `up` says nothing started when a port is taken (issue 11)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support import held_port, make_repo, run_cli


def test_a_service_that_cannot_start_fails_alone_and_its_dependent_names_why(
    repo: Path,
) -> None:
    # The directory is there when doctor looks and gone when db starts: a failure
    # doctor cannot foresee, at the spawn itself.
    (repo / "gone").mkdir()
    make_repo(
        repo,
        """
        services:
          prep:  {cmd: rmdir gone}
          db:    {cmd: echo db ran, cwd: gone, depends_on: {prep: {condition: completed}}}
          web:   {cmd: echo web ran, depends_on: {db: {condition: started}}}
          other: {cmd: echo other ran}
        """,
    )
    result = run_cli("up", cwd=repo)
    assert "other | other ran" in result.stdout
    assert re.search(r"db +▸ could not start \S+: its cwd \S+/gone does not exist", result.stdout)
    assert re.search(r"web +▸ not started: db could not start: its cwd", result.stdout)
    assert "crashed" not in result.stdout
    assert "internal error" not in result.stdout + result.stderr
    assert result.returncode == 1


def test_a_taken_port_stops_up_before_anything_starts_as_doctor_says(repo: Path) -> None:
    with held_port() as port:
        make_repo(
            repo,
            f"""
            services:
              api: {{cmd: 'echo "api on $PORT"', port: {port}}}
              web: {{cmd: echo web ran, depends_on: [api]}}
              other: {{cmd: echo other ran}}
            """,
        )
        result = run_cli("up", cwd=repo)
        doctor = run_cli("doctor", cwd=repo)
    assert result.returncode == 1
    message = f"api: port {port} is in use by pid {os.getpid()}"
    assert message in result.stderr and message in doctor.stdout + doctor.stderr
    assert "nothing started" in result.stderr
    assert "ran" not in result.stdout and "crashed" not in result.stdout
