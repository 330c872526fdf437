"""One `up` per repo: the lock, run.json, and a dead run's leftovers (real processes)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from devstack.core.errors import DevstackError
from devstack.core.model import Project
from devstack.runtime import reaper, runstate


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "repo"
    root.mkdir()
    yield Project(root=root, config_path=root / "devstack.yaml", services={})
    left = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE
    ]
    reaper.send(left, signal.SIGKILL)
    assert not left, f"processes left behind: {reaper.describe(left)}"


def test_run_json_while_running_and_gone_after(project: Project) -> None:
    with runstate.acquire(project) as run:
        state = json.loads((project.state_dir / "run.json").read_text())
        assert state["pid"] == os.getpid() == run.pid
        assert state["run_id"] == run.run_id
        assert "socket" not in state  # its path is recorded apart, where it really is
        assert stat.S_IMODE(project.state_dir.stat().st_mode) == 0o700
    assert not (project.state_dir / "run.json").exists()
    # No temp files; the .gitignore keeps .devstack out of `git status` (issue 11 §5).
    assert sorted(p.name for p in project.state_dir.iterdir()) == [".gitignore", "up.lock"]
    assert (project.state_dir / ".gitignore").read_text() == "*\n"


def test_a_second_up_is_refused_naming_the_first(project: Project) -> None:
    with runstate.acquire(project):
        with pytest.raises(DevstackError) as refused, runstate.acquire(project):
            pytest.fail("a second run got the repo")
        assert refused.value.exit_status == 1
        text = refused.value.render()
        assert f"devstack up is already running in {project.root} (pid {os.getpid()})" in text
        assert "hint:" in text
        assert (project.state_dir / "run.json").exists()  # the refusal touched nothing
    with runstate.acquire(project) as again:  # free once the first one ended
        assert again.pid == os.getpid()


def marked_sleeper(**marks: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], env=dict(os.environ, **marks), start_new_session=True)


def test_a_dead_runs_leftovers_are_stopped_and_reported(project: Project) -> None:
    project.state_dir.mkdir()
    dead = {"run_id": "0123456789abcdef", "pid": 999999999, "started_at": 0}
    (project.state_dir / "run.json").write_text(json.dumps(dead))
    by_run = marked_sleeper(DEVSTACK_RUN_ID=dead["run_id"], DEVSTACK_SERVICE="api")
    by_repo = marked_sleeper(DEVSTACK_RUN_ID="another", DEVSTACK_REPO=str(project.root))
    unrelated = marked_sleeper(DEVSTACK_RUN_ID="another", DEVSTACK_REPO="/elsewhere")
    said: list[str] = []
    try:
        with runstate.acquire(project, say=said.append) as run:
            assert run.run_id != dead["run_id"]
            assert by_run.wait(timeout=10) == -signal.SIGTERM
            assert by_repo.wait(timeout=10) == -signal.SIGTERM
            assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()
    [message] = said
    assert f"pid {by_run.pid} (sleep 300)" in message
    assert f"pid {by_repo.pid} (sleep 300)" in message
    assert message.endswith("left running by a previous devstack up (pid 999999999)")


def test_an_unreadable_run_json_is_replaced(project: Project) -> None:
    project.state_dir.mkdir()
    (project.state_dir / "run.json").write_text("{not json")
    with runstate.acquire(project, say=pytest.fail) as run:
        assert runstate.read_run(project.state_dir) == run.as_json()


# -- .devstack itself (issue 11 §2, §4) ----------------------------------------------------


def test_an_existing_state_dir_is_made_private(project: Project) -> None:
    project.state_dir.mkdir(mode=0o755)
    project.state_dir.chmod(0o755)
    assert runstate.prepare_state_dir(project.root) == project.state_dir
    assert stat.S_IMODE(project.state_dir.stat().st_mode) == 0o700


def test_a_symlinked_state_dir_is_followed_and_its_target_made_private(
    project: Project, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    project.state_dir.symlink_to(target)
    with runstate.acquire(project):
        assert (target / "run.json").exists()
        assert stat.S_IMODE((target / "run.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (lambda path: path.write_text("oops"), "is a file, not a directory"),
        (lambda path: path.symlink_to(path.with_name("nowhere")), "a symlink to"),
        (lambda path: (path.mkdir(), os.chown(path, 65534, 65534)), "belongs to uid 65534"),
    ],
)
def test_an_unusable_state_dir_is_refused_with_the_fix(
    project: Project, make: Callable[[Path], object], complaint: str
) -> None:
    if "uid" in complaint and os.getuid() != 0:
        # Only root can give a directory away; for another user, one it may not write
        # is refused the same way.
        project.state_dir.mkdir(mode=0o500)
        complaint = "cannot be written"
    else:
        make(project.state_dir)
    with pytest.raises(DevstackError, match=complaint) as refused:
        runstate.prepare_state_dir(project.root)
    assert refused.value.exit_status == 1
    assert refused.value.problems[0].hint
