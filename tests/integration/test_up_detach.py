"""`devstack up -d`: a stack in the background that keeps every promise of a foreground
`up` (issue 17): the commands control it, `down` stops it, a second `up` is refused, a
SIGKILL of it leaves nothing, and a failing service makes `up -d` exit 1 with its lines."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.support import assert_no_processes_under, make_repo, run_cli, wait_until

PY = sys.executable
SLEEPER = f"{PY} -c 'import time; time.sleep(120)'"

STACK = f"""
services:
  api:
    cmd: echo api up; exec {SLEEPER}
    ready: {{log: "api up"}}
    watch: [src/]
  jobs:
    cmd: echo jobs up; exec {SLEEPER}
    depends_on: [api]
"""


def ps(repo: Path) -> dict[str, dict[str, Any]]:
    result = run_cli("ps", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["services"]}


def background_pid(repo: Path) -> int:
    pid = json.loads((repo / ".devstack" / "run.json").read_text())["pid"]
    assert isinstance(pid, int)
    return pid


def gone(proc: psutil.Process) -> bool:
    """Exited; maybe a zombie until whatever adopted it (init, a subreaper) reaps it."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_up_d_then_ps_logs_restart_down_leaves_nothing(repo: Path) -> None:
    make_repo(repo, STACK, {"src/app.py": "changed = False\n"})
    started = run_cli("up", "-d", cwd=repo)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        rows = ps(repo)
        # Returned only once every service settled: api passed its probe, jobs then started.
        assert (rows["api"]["state"], rows["jobs"]["state"]) == ("ready", "running")
        assert f"api: ready (pid {rows['api']['pid']})" in started.stdout
        daemon = psutil.Process(background_pid(repo))
        assert daemon.pid != os.getpid() and os.getsid(daemon.pid) == daemon.pid  # a session
        log = repo / ".devstack" / "up.log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert "api  ▸ ready" in log.read_text()

        again = run_cli("up", "-d", cwd=repo)
        assert again.returncode == 1
        assert f"devstack up is already running in {repo.resolve()} (pid {daemon.pid})" in (
            again.stderr
        )
        logs = run_cli("logs", "jobs", "-n", "1", cwd=repo)
        assert logs.stdout.splitlines() == ["jobs | jobs up"]
        restarted = run_cli("restart", "jobs", cwd=repo)
        assert restarted.returncode == 0, restarted.stderr
        assert ps(repo)["jobs"]["restarts"] == 1
        # Watch works in the background too, once it has started (it says so in up.log).
        wait_until(lambda: "watching for changes" in log.read_text(), what="the watcher")
        (repo / "src" / "app.py").write_text("changed = True\n")
        wait_until(lambda: ps(repo)["api"]["restarts"] == 1, what="api's restart on a change")
        assert ps(repo)["api"]["reason"] == "src/app.py changed"
    finally:
        down = run_cli("down", cwd=repo)
    assert down.returncode == 0, down.stderr
    assert gone(daemon)
    assert run_cli("ps", cwd=repo).returncode == 1


def test_sigkill_of_the_background_up_still_leaves_nothing(repo: Path) -> None:
    make_repo(repo, STACK)
    started = run_cli("up", "-d", cwd=repo)
    assert started.returncode == 0, started.stdout + started.stderr
    services = [psutil.Process(row["pid"]) for row in ps(repo).values()]
    os.kill(background_pid(repo), signal.SIGKILL)
    # The guardian ends the services at once; nothing of the run is left.
    _, alive = psutil.wait_procs(services, timeout=10)
    assert not alive, alive
    assert_no_processes_under(repo)
    wait_until(lambda: "devstack guardian" in (repo / ".devstack" / "up.log").read_text())


def test_a_failing_service_makes_up_d_exit_1_with_its_last_lines(repo: Path) -> None:
    make_repo(
        repo,
        f"""
        services:
          api: {{cmd: "echo api up; exec {SLEEPER}"}}
          broken: {{cmd: "echo loading config; echo 'no such table: users' >&2; exit 3"}}
          slow:
            cmd: echo "listening on 8080"; exec {SLEEPER}
            ready: {{log: "never printed", timeout: 1}}
        """,
    )
    started = run_cli("up", "-d", cwd=repo)
    try:
        assert started.returncode == 1, started.stdout + started.stderr
        out = started.stdout
        assert "2 services did not come up" in out
        assert "broken: crashed (exited 3)" in out
        assert "  no such table: users" in out and "  loading config" in out
        # A probe that gave up: the service runs, but it is not what was asked for.
        assert "slow: running (pid" in out and "not ready" in out
        assert "  listening on 8080" in out
        assert ps(repo)["api"]["state"] == "running"  # the others keep running, as in `up`
    finally:
        assert run_cli("down", cwd=repo).returncode == 0
