"""`.devstack` and the shell's directory in odd states: a clear message, or a stack
that keeps working (issue 11 §2, §4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import DEVSTACK, Running, clean_env, make_repo, run_cli

CHATTY = """
services:
  api: {cmd: sleep 300}
"""


def test_a_state_dir_that_is_a_file_is_refused_before_anything_starts(repo: Path) -> None:
    make_repo(repo, CHATTY)
    (repo / ".devstack").write_text("not a directory")
    result = run_cli("up", cwd=repo)
    assert result.returncode == 1
    assert ".devstack is a file, not a directory" in result.stderr
    assert "hint: remove or rename it" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_deleted_working_directory_gets_a_message_and_an_absolute_f_works(
    repo: Path,
) -> None:
    make_repo(repo, CHATTY)
    gone = repo / "gone"
    gone.mkdir()
    # A shell whose directory was removed under it.
    script = (
        f"import os, sys; os.makedirs({str(gone)!r}, exist_ok=True); os.chdir({str(gone)!r});"
        f" os.rmdir({str(gone)!r}); os.execv(sys.argv[1], sys.argv[1:])"
    )
    ps = subprocess.run(
        [sys.executable, "-c", script, DEVSTACK, "ps"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert ps.returncode == 2
    assert "the current directory no longer exists" in ps.stderr
    assert "Traceback" not in ps.stderr
    config = subprocess.run(
        [sys.executable, "-c", script, DEVSTACK, "-f", str(repo / "devstack.yaml"), "config"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert config.returncode == 0, config.stderr


def test_a_repo_renamed_while_up_runs_stays_under_control(repo: Path) -> None:
    make_repo(repo, CHATTY + "  other: {cmd: sleep 300}\n")
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(r"api +▸ started", r"other +▸ started")
        # The fast start shows lines before `up` has finished starting (issue 16): the
        # rename comes once it answers, as a repo is renamed under a running stack.
        assert run_cli("ps", cwd=repo).returncode == 0
        moved = repo.with_name("moved")
        os.rename(repo, moved)
        assert run_cli("ps", cwd=moved).returncode == 0
        assert not repo.exists()
        # Its services' directories moved too: a new instance cannot start, and says why.
        restarted = run_cli("restart", "api", cwd=moved)
        assert restarted.returncode == 1
        up.wait_for(r"api +▸ could not start .*does not exist \(moved or deleted since")
        log = (moved / ".devstack" / "logs" / "api.log").read_text()
        assert "could not start" not in log and log.count("----- started") == 1
        assert not repo.exists()  # its old path is never created again
        assert run_cli("down", cwd=moved).returncode == 0
        assert up.wait() == 1  # api crashed
    finally:
        up.close()


def test_a_fifo_given_as_the_config_is_refused_not_read_for_ever(repo: Path) -> None:
    fifo = repo / "some.fifo"
    os.mkfifo(fifo)
    result = run_cli("-f", str(fifo), "doctor", cwd=repo, timeout=30)
    assert result.returncode == 2
    assert "some.fifo is a FIFO" in result.stderr


def test_a_socket_that_cannot_be_made_stops_up_before_anything_starts(repo: Path) -> None:
    make_repo(repo, "services:\n  api: {cmd: echo api ran}\n")
    (repo / ".devstack" / "control.sock").mkdir(parents=True)  # in the socket's place
    result = run_cli("up", cwd=repo)
    assert result.returncode == 1
    assert "cannot make the control socket" in result.stderr
    assert "api ran" not in result.stdout
    assert "Traceback" not in result.stderr
