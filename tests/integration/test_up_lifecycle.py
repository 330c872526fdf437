"""`devstack up`: restart policies and backoff, crashes, exit statuses, --abort-on-exit."""

from __future__ import annotations

from pathlib import Path

from tests.support import Running, assert_no_processes_under, make_repo, run_cli

# Exits 1 the first $1 times it runs, then 0: a count kept in a file per service.
FLAKY = """
n=$(cat "$DEVSTACK_SERVICE.count" 2>/dev/null || echo 0)
echo $((n + 1)) > "$DEVSTACK_SERVICE.count"
echo "run $((n + 1))"
[ "$n" -ge "$1" ]
"""


def said(output: str, name: str) -> list[str]:
    """devstack's messages about `name`, in order, without the service's own lines."""
    prefix = f"{name} "
    messages = []
    for line in output.splitlines():
        if line.startswith(prefix) and "▸" in line:
            messages.append(line.split("▸", 1)[1].strip())
    return messages


def test_each_restart_policy_and_backoff(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          never:      {cmd: sh flaky.sh 5, restart: "no"}
          onfailure:  {cmd: sh flaky.sh 2, restart: on-failure}
          giveup:     {cmd: sh flaky.sh 9, restart: on-failure, max_restarts: 1}
          always:     {cmd: sh flaky.sh 0, restart: always, max_restarts: 2}
        """,
        {"flaky.sh": FLAKY},
    )
    result = run_cli("up", cwd=repo)
    assert result.returncode == 1  # `never` and `giveup` crashed
    out = result.stdout
    relevant = lambda name: [m for m in said(out, name) if "exited" in m]  # noqa: E731
    assert relevant("never") == ["exited 1"]
    assert relevant("onfailure") == [
        "exited 1, restarting in 1s",
        "exited 1, restarting in 2s",
        "exited 0",
    ]
    assert relevant("giveup") == [
        "exited 1, restarting in 1s",
        "exited 1, giving up after 1 restarts",
    ]
    assert relevant("always") == [
        "exited 0, restarting in 1s",
        "exited 0, restarting in 2s",
        "exited 0, giving up after 2 restarts",
    ]
    assert (repo / "onfailure.count").read_text().strip() == "3"


def test_a_crashing_service_leaves_the_others_running(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          steady: {cmd: echo steady up; exec sleep 30, ready: {log: steady up}}
          crasher: {cmd: echo boom; exit 3, depends_on: [steady]}
        """,
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for(r"^steady +\| steady up")
        up.wait_for(r"^crasher +▸ exited 3")
        # Still running after the crash: it answers to a stop as a live service does.
        up.interrupt()
        up.wait_for(r"^steady +▸ stopped")
        assert up.wait() == 130
    finally:
        up.close()


def test_all_exited_zero_gives_status_zero(repo: Path) -> None:
    make_repo(repo, "services:\n  a: {cmd: 'true'}\n  b: {cmd: echo b}\n")
    result = run_cli("up", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_abort_on_exit_stops_everything(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          sleeper: {cmd: exec sleep 30}
          oneshot: {cmd: 'echo done; exit 4'}
        """,
    )
    result = run_cli("up", "--abort-on-exit", cwd=repo)
    assert result.returncode == 1
    assert "oneshot ended, stopping everything (--abort-on-exit)" in result.stdout
    assert "sleeper ▸ stopped" in result.stdout
    assert "restarting" not in result.stdout


def test_restart_dependents_restarts_them_once_it_is_ready_again(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          db: {cmd: echo db up; exec sleep 30, ready: {log: db up}, restart_dependents: true}
          app: {cmd: echo app up; exec sleep 30, depends_on: [db]}
          cache: {cmd: echo cache up; exec sleep 30, ready: {log: cache up}}
          worker: {cmd: echo worker up; exec sleep 30, depends_on: [cache]}
        """,
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(r"^app +\| app up", r"^worker +\| worker up")
        assert run_cli("restart", "cache", cwd=repo).returncode == 0
        assert run_cli("restart", "db", cwd=repo).returncode == 0
        up.wait_for(r"^db +\| db up")
        up.wait_for(r"^app +▸ restarting: db restarted")
        up.wait_for(r"^app +\| app up")
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()
    assert said(up.output(), "worker").count("restarting: cache restarted") == 0
    assert up.output().count("worker up") == 1  # cache has no restart_dependents
    assert_no_processes_under(repo)
