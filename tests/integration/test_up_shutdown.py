"""`devstack up` ends: Ctrl+C, SIGTERM, SIGHUP, escalation, escaped grandchildren, SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.support import (
    Running,
    assert_no_processes_under,
    make_repo,
    processes_under,
    run_cli,
    wait_until,
)

CHAIN = """
services:
  db: {cmd: echo db up; exec sleep 30}
  api: {cmd: echo api up; exec sleep 30, depends_on: {db: {condition: started}}}
  web: {cmd: echo web up; exec sleep 30, depends_on: {api: {condition: started}}}
"""

IGNORES_TERM = "trap '' TERM; echo ignoring TERM; exec sleep 60"


def start(repo: Path, config: str, *wait_for: str) -> Running:
    """`devstack up` on `config`, once lines matching all of `wait_for` (any order) came."""
    make_repo(repo, config)
    up = Running("up", cwd=repo)
    if wait_for:
        up.wait_for_each(*wait_for)
    return up


def test_ctrl_c_stops_in_reverse_dependency_order(repo: Path) -> None:
    up = start(repo, CHAIN, r"^web +\| web up")
    try:
        up.interrupt()
        up.wait_for(r"Ctrl\+C: stopping all services")
        up.wait_for(r"^web +▸ stopped")
        up.wait_for(r"^api +▸ stopped")
        up.wait_for(r"^db +▸ stopped")
        assert up.wait() == 130
    finally:
        up.close()


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_everything(repo: Path, sig: signal.Signals, status: int) -> None:
    up = start(repo, CHAIN, r"^web +\| web up")
    try:
        up.send(sig)
        up.wait_for(rf"{sig.name}: stopping all services")
        assert up.wait() == status
        assert up.output().count("▸ stopped") == 3
    finally:
        up.close()


def test_a_service_ignoring_sigterm_is_killed_after_stop_timeout(repo: Path) -> None:
    config = f"""
    services:
      stubborn: {{cmd: "{IGNORES_TERM}", stop_timeout: 0.5}}
    """
    up = start(repo, config, r"^stubborn +\| ignoring TERM")
    try:
        up.interrupt()
        up.wait_for(r"^stubborn +▸ .*SIGKILL")
        up.wait_for(r"^stubborn +▸ stopped")
        assert up.wait() == 130
    finally:
        up.close()


def test_second_ctrl_c_kills_everything_at_once(repo: Path) -> None:
    config = f"""
    services:
      stubborn: {{cmd: "{IGNORES_TERM}", stop_timeout: 60}}
      other: {{cmd: "{IGNORES_TERM}", stop_timeout: 60}}
    """
    up = start(repo, config, r"^stubborn +\| ignoring TERM", r"^other +\| ignoring TERM")
    try:
        up.interrupt()
        up.wait_for(r"Ctrl\+C again to kill them now")
        up.interrupt()
        up.wait_for(r"killing all services now")
        assert up.wait(timeout=15) == 130  # far less than the 60 s stop_timeout
    finally:
        up.close()


def escaped_sleepers(repo: Path) -> list[psutil.Process]:
    """The `sleep 300` a service left in a session of its own."""
    return [p for p in processes_under(repo) if p.cmdline() == ["sleep", "300"]]


def the_forker(repo: Path) -> list[psutil.Process]:
    """The service's own `sleep 30`, once its shell has exec'd it."""
    return [p for p in processes_under(repo) if p.cmdline() == ["sleep", "30"]]


DOUBLE_FORK = """
services:
  forker:
    cmd: (setsid sleep 300 &); echo forked; exec sleep 30
"""


def test_a_double_forked_grandchild_is_stopped_too(repo: Path) -> None:
    up = start(repo, DOUBLE_FORK, r"^forker +\| forked")
    try:
        # `forked` is printed before either sleep is exec'd (the detached subshell's
        # and the service's own): until then their command lines are sh's.
        wait_until(lambda: escaped_sleepers(repo) and the_forker(repo), what="both sleeps")
        [sleeper] = escaped_sleepers(repo)
        [forker] = the_forker(repo)
        assert os.getsid(sleeper.pid) != os.getsid(forker.pid)  # it left the service's session
        up.interrupt()
        assert up.wait() == 130
        assert not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE
    finally:
        up.close()


def test_sigkill_of_devstack_leaves_no_service_alive(repo: Path) -> None:
    up = start(repo, DOUBLE_FORK, r"^forker +\| forked")
    try:
        wait_until(lambda: escaped_sleepers(repo), what="the escaped sleep")  # see above
        up.send(signal.SIGKILL)
        up.wait()
        assert_no_processes_under(repo, timeout=5)
    finally:
        up.close()


def test_sigkill_of_devstack_ends_a_service_ignoring_sigterm_too(repo: Path) -> None:
    """The guardian sends SIGTERM, then SIGKILL after its grace, and says so."""
    config = f"""
    services:
      stubborn: {{cmd: "{IGNORES_TERM}"}}
    """
    up = start(repo, config, r"^stubborn +\| ignoring TERM")
    try:
        up.send(signal.SIGKILL)
        up.wait()  # and its output to the end: the guardian, which shares it, has exited
        assert_no_processes_under(repo, timeout=5)
        assert "devstack guardian: devstack is gone; stopped pid" in up.output()
        assert "could not stop" not in up.output()
    finally:
        up.close()


def test_a_second_up_is_refused_while_one_runs(repo: Path) -> None:
    up = start(repo, CHAIN, r"^web +\| web up")
    try:
        second = run_cli("up", cwd=repo)
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert str(up.pid) in second.stderr
        assert "web up" not in second.stdout
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()


def test_orphans_are_adopted_and_reaped_while_running(repo: Path) -> None:
    """A daemonising child re-parents to devstack (a subreaper), which reaps it on exit."""
    up = start(
        repo,
        "services:\n  forker: {cmd: \"sh -c 'sleep 3 & echo orphan $!'; exec sleep 30\"}\n",
    )
    try:
        orphan = int(up.wait_for(r"^forker +\| orphan (\d+)").group(1))
        wait_until(lambda: not psutil.pid_exists(orphan) or _parent(orphan) == up.pid)
        assert not psutil.pid_exists(orphan) or _parent(orphan) == up.pid  # adopted
        wait_until(lambda: not psutil.pid_exists(orphan), what="the orphan to be reaped")
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()
    assert_no_processes_under(repo)


def _parent(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.NoSuchProcess:
        return None


def test_a_stack_that_ends_at_once_ends_devstacks_own_children_unblamed(repo: Path) -> None:
    """Its only service exits first thing: `up` ends while the watcher's child may still
    be compiling the watch rules. That child is devstack's own: ended with the watcher,
    never reported as left running by the services (the repo fixture: nothing is left)."""
    (repo / "src").mkdir()
    (repo / ".gitignore").write_text("*.log\n")
    make_repo(repo, "services:\n  once: {cmd: echo once ran, watch: [src/]}\n")
    for _ in range(5):  # the child's window is ~0.1 s: most runs end inside it
        result = run_cli("up", cwd=repo)
        said = result.stdout + result.stderr
        assert result.returncode == 0, said
        assert "left running by the services" not in said
        assert "internal error" not in said
