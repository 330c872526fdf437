"""A run killed with its guardian leaves services behind: the next `up` stops them and says so."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from tests.support import Running, cmdline_of, make_repo, wait_until

STACK = """
services:
  db: {cmd: echo db up; exec sleep 60}
  web: {cmd: echo web up; exec sleep 60}
"""


def test_the_next_up_stops_what_a_killed_run_left(repo: Path) -> None:
    make_repo(repo, STACK)
    first = Running("up", cwd=repo)
    try:
        first.wait_for_each(r"^db +\| db up", r"^web +\| web up")
        left = [child for child in psutil.Process(first.pid).children() if _is_service(child)]
        assert len(left) == 2
        # The guardian goes first, so nothing cleans up after devstack's own SIGKILL.
        for guardian in psutil.Process(first.pid).children():
            if "guardian" in " ".join(cmdline_of(guardian)):  # not the checks' child, gone by now
                guardian.kill()
                guardian.wait(10)
        first.send(signal.SIGKILL)
        first.wait()
    finally:
        first.close()
    assert all(proc.is_running() for proc in left)  # the leftovers a crash would leave

    second = Running("up", cwd=repo)
    try:
        second.wait_for(r"stopped .*sleep 60.*left running by a previous devstack up")
        second.wait_for(r"^web +\| web up")
        wait_until(lambda: not any(proc.is_running() for proc in left), what="leftovers gone")
        second.interrupt()
        assert second.wait() == 130
    finally:
        second.close()


def _is_service(proc: psutil.Process) -> bool:
    try:
        return proc.environ().get("DEVSTACK_SERVICE") is not None
    except psutil.Error:
        return False
