"""A process that leaves its session and clears its environment (`setsid env -i`) is
still found and stopped: at Ctrl+C, by the guardian after SIGKILL of devstack, and by
the next `up` when the guardian died too (issue 11 §3). With the run's cgroup (where
the system delegates one, as here) and without it (DEVSTACK_CGROUP=0: ancestry and
the recorded members alone)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest

from tests.support import Running, clean_env, cmdline_of, make_repo, run_cli, wait_until

ESCAPING = """
services:
  api: {cmd: 'setsid env -i sleep 1001 & echo "escaped $!"; exec sleep 300'}
"""
# Its parent (a subshell) exits at once: orphaned before anyone saw which service it
# came from, it is found by ancestry (below devstack) or in the cgroup at the end.
ORPHANED = """
services:
  api: {cmd: '(setsid env -i sleep 1001 & echo "escaped $!"); exec sleep 300'}
"""


def start(repo: Path, cgroup: str, config: str = ESCAPING) -> tuple[Running, psutil.Process]:
    make_repo(repo, config)
    up = Running("up", cwd=repo, env=clean_env(DEVSTACK_CGROUP=cgroup))
    escaped = psutil.Process(int(up.wait_for(r"api +\| escaped (\d+)")[1]))
    wait_until(lambda: escaped.cmdline() == ["sleep", "1001"], what="setsid and env to exec")
    assert "DEVSTACK_RUN_ID" not in " ".join(escaped.environ())  # no marker to find it by
    # The census records it (and the service it came from) within CENSUS_INTERVAL.
    record = repo / ".devstack" / "members.json"

    def recorded() -> dict[int, str | None]:
        # Written once the supervisor runs: a fast start's services print before (issue 16).
        if not record.exists():
            return {}
        return {item[0]: item[2] for item in json.loads(record.read_text())["processes"]}

    # ESCAPING's is seen below api; ORPHANED's may be adopted before the first look.
    wait_until(
        lambda: escaped.pid in recorded() and (config != ESCAPING or recorded()[escaped.pid]),
        what="the escaped process in the record",
    )
    return up, escaped


def gone(proc: psutil.Process) -> bool:
    """Ended (a zombie waits only for its new parent to reap it)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(params=["1", "0"], ids=["cgroup", "no-cgroup"])
def cgroup(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_ctrl_c_stops_what_left_the_session(repo: Path, cgroup: str) -> None:
    up, escaped = start(repo, cgroup, ORPHANED)
    try:
        up.interrupt()
        assert up.wait() == 130
        assert gone(escaped)
        # Stopped with api if the census saw it below api, else by the sweep, which says so.
        swept = f"stopped pid {escaped.pid} (sleep 1001), left running by the services"
        assert swept in up.output() or "sleep 1001" not in up.output()
    finally:
        up.close()


def test_the_guardian_stops_it_after_sigkill_of_devstack(repo: Path, cgroup: str) -> None:
    up, escaped = start(repo, cgroup)
    try:
        up.send(signal.SIGKILL)
        up.wait()
        escaped.wait(30)  # raises TimeoutExpired if the guardian missed it
        log = (repo / ".devstack" / "guardian.log").read_text()
        assert f"pid {escaped.pid} (sleep 1001)" in log
        assert (repo / ".devstack" / "guardian.log").stat().st_mode & 0o777 == 0o600
    finally:
        up.close()


def test_the_next_up_stops_it_when_the_guardian_died_too(repo: Path, cgroup: str) -> None:
    up, escaped = start(repo, cgroup)
    try:
        guardian = next(
            child
            for child in psutil.Process(up.pid).children()
            if "devstack-guardian" in " ".join(cmdline_of(child))
        )
        guardian.kill()
        guardian.wait(30)
        up.send(signal.SIGKILL)
        up.wait()
        assert not gone(escaped)
    finally:
        up.close()
    make_repo(repo, "services:\n  api: {cmd: 'true'}\n")
    again = run_cli("up", cwd=repo, env=clean_env(DEVSTACK_CGROUP=cgroup))
    assert f"pid {escaped.pid} (sleep 1001)" in again.stderr
    assert "left running by a previous devstack up" in again.stderr
    assert gone(escaped)


def test_a_restart_of_its_service_stops_it_too(repo: Path, cgroup: str) -> None:
    up, escaped = start(repo, cgroup)
    try:
        restarted = run_cli("restart", "api", cwd=repo)
        assert restarted.returncode == 0, restarted.stderr
        assert gone(escaped)
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()
