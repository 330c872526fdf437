"""runtime/checker.py: the checks of `up` and of a reload, made in a real child process
and handed back as data."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from devstack import cli
from devstack.core.config import load_project
from devstack.core.graph import ReloadSelection
from devstack.core.routing import WatchRules
from devstack.runtime.checker import (
    Checked,
    NotChecked,
    Rejected,
    Reloaded,
    ReloadRequest,
    UpCheck,
    compile_rules,
    helper_pids,
    recheck,
)
from tests.support import make_repo

CONFIG = """
services:
  api: {cmd: /bin/sh app.sh, env_files: [api.env], depends_on: [db]}
  db: {cmd: /bin/sh db.sh}
  broken: {cmd: /nonexistent/program, autostart: false}
"""
FILES = {"api.env": "URL=http://localhost/\n", "app.sh": "", "db.sh": ""}


class NoMapping:
    """What a shell's variables never are."""


def request(root: Path, **changes: object) -> ReloadRequest:
    fields: dict[str, object] = {
        "config_path": root / "devstack.yaml",
        "project": None,
        "shell": {"PATH": os.environ["PATH"]},
        "cli_env": {},
        "selection": ReloadSelection(frozenset({"api", "db"}), frozenset({"api", "db"}), True),
    }
    return ReloadRequest(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_good_reload_comes_back_resolved(tmp_path: Path) -> None:
    make_repo(tmp_path, CONFIG, FILES)
    outcome = asyncio.run(recheck(request(tmp_path, cli_env={"DEBUG": "1"})))
    assert isinstance(outcome, Reloaded), outcome
    assert list(outcome.project.services) == ["api", "db", "broken"]
    assert outcome.env.services["api"].values["URL"] == "http://localhost/"
    assert outcome.env.services["api"].variables["DEBUG"].source.kind == "cli"


def test_a_reload_is_checked_for_the_runs_services_only(tmp_path: Path) -> None:
    # `broken` is not in the run (autostart: false): it does not block the reload...
    make_repo(tmp_path, CONFIG, FILES)
    assert isinstance(asyncio.run(recheck(request(tmp_path))), Reloaded)
    # ...but it does once the run has it
    taken = ReloadSelection(frozenset({"api", "db", "broken"}), frozenset(), True)
    outcome = asyncio.run(recheck(request(tmp_path, selection=taken)))
    assert isinstance(outcome, Rejected)
    assert any("/nonexistent/program" in problem for problem in outcome.problems)


def test_a_broken_config_is_rejected_with_its_line(tmp_path: Path) -> None:
    make_repo(tmp_path, CONFIG.replace("db: {cmd", "db: {cmdd"), FILES)
    outcome = asyncio.run(recheck(request(tmp_path)))
    assert isinstance(outcome, Rejected)
    assert any("devstack.yaml:4" in problem and "cmdd" in problem for problem in outcome.problems)


def test_a_child_that_fails_is_an_internal_error_not_a_crash(tmp_path: Path) -> None:
    make_repo(tmp_path, CONFIG, FILES)
    # A bug in the child, played by a shell that is no mapping: it dies with a traceback.
    outcome = asyncio.run(recheck(request(tmp_path, shell=NoMapping())))
    assert isinstance(outcome, Rejected)
    [said] = outcome.problems
    assert said.startswith("internal error checking the new config (status 1)")
    assert "Traceback" in said and "'NoMapping' object has no attribute" in said


# Forked (a first `up`) and a fresh interpreter (after the fast start) alike.
HOW = pytest.mark.parametrize("fork", [True, False], ids=["forked", "fresh"])


def up_check(argv: list[str], fork: bool) -> UpCheck:
    """The child checking `devstack ARGV`, as `devstack up` starts it."""
    return UpCheck(*cli.fork_checks(argv)) if fork else UpCheck.spawned(argv)


@HOW
@pytest.mark.parametrize(
    ("argv", "status"), [(["up", "--help"], 0), (["up", "--no-such-option"], 2)]
)
def test_what_the_parser_ends_ends_up(
    tmp_path: Path, argv: list[str], status: int, fork: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    make_repo(tmp_path, CONFIG, FILES)
    check = up_check(["-f", str(tmp_path / "devstack.yaml"), *argv], fork)
    assert check.outcome() == NotChecked(status)
    out, err = capfd.readouterr()
    assert ("--no-deps" in out) if status == 0 else ("--no-such-option" in err)


@HOW
def test_a_checked_run_holds_what_up_starts(tmp_path: Path, fork: bool) -> None:
    make_repo(tmp_path, CONFIG, FILES)
    check = up_check(["-f", str(tmp_path / "devstack.yaml"), "up", "api", "--timestamps"], fork)
    outcome = check.outcome()
    check.wait()
    assert isinstance(outcome, Checked)
    assert outcome.names == ("db", "api")
    assert outcome.options.names == ("api",) and outcome.options.timestamps
    assert outcome.env.services["api"].values["URL"] == "http://localhost/"


@HOW
def test_a_failed_check_says_so_for_up_to_add_what_it_stopped(
    tmp_path: Path, fork: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    make_repo(tmp_path, CONFIG, FILES)
    check = up_check(["-f", str(tmp_path / "devstack.yaml"), "up", "broken"], fork)
    assert check.outcome() == NotChecked(1, checks_failed=True)
    assert "/nonexistent/program" in capfd.readouterr().err


def test_a_big_config_comes_back_whole(tmp_path: Path) -> None:
    """Far more than one pipe's read: the answer is read to its end."""
    services = "".join(f"  s{i}: {{cmd: /bin/sh db.sh, env: [S{i}=x]}}\n" for i in range(400))
    make_repo(tmp_path, "services:\n" + services, FILES)
    everything = ReloadSelection(frozenset(), frozenset(), True)
    outcome = asyncio.run(recheck(request(tmp_path, selection=everything)))
    assert isinstance(outcome, Reloaded), outcome
    assert len(outcome.project.services) == 400


WATCHED = """
services:
  api: {cmd: /bin/sh app.sh, watch: ["src/**/*.py", "!src/generated.py"]}
  db: {cmd: /bin/sh db.sh}
"""


def test_a_reload_comes_back_with_its_watch_globs_compiled(tmp_path: Path) -> None:
    make_repo(tmp_path, WATCHED, FILES)
    outcome = asyncio.run(recheck(request(tmp_path)))
    assert isinstance(outcome, Reloaded), outcome
    [api] = outcome.watches
    assert (api.name, api.cwd) == ("api", tmp_path)
    assert api.matches(str(tmp_path / "src/app/main.py"))
    assert not api.matches(str(tmp_path / "src/generated.py"))


def test_the_watch_rules_are_compiled_by_a_child(tmp_path: Path) -> None:
    make_repo(tmp_path, WATCHED, {**FILES, ".gitignore": "*.log\n", "src/.gitignore": "tmp/\n"})
    (tmp_path / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / "node_modules" / "x" / ".gitignore").write_text("*\n")  # never walked
    rules = asyncio.run(compile_rules(load_project(tmp_path / "devstack.yaml")))
    assert isinstance(rules, WatchRules), rules
    assert sorted(rules.gitignores) == [tmp_path, tmp_path / "src"]
    assert rules.gitignores[tmp_path].check("deep/a.log") is True
    assert rules.gitignores[tmp_path / "src"].check("tmp/x.py") is True
    assert [watch.name for watch in rules.watches] == ["api"]


def test_watch_rules_that_cannot_be_compiled_are_said_not_raised() -> None:
    # A bug in the child, played by a project that is none: it dies with a traceback.
    said = asyncio.run(compile_rules(NoMapping()))  # type: ignore[arg-type]
    assert isinstance(said, str), said
    assert said.startswith("internal error compiling the watch rules (status 1)")
    assert "'NoMapping' object has no attribute" in said


def test_a_child_whose_waiter_is_cancelled_ends_with_it(tmp_path: Path) -> None:
    """The stack stops while the rules are compiled: the child is ended, not left."""
    make_repo(tmp_path, WATCHED, FILES)
    project = load_project(tmp_path / "devstack.yaml")

    async def cancelled_midway() -> int:
        task = asyncio.create_task(compile_rules(project))
        while not helper_pids():  # spawned: the sweeps know it as devstack's own
            await asyncio.sleep(0.001)
        [pid] = helper_pids()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    pid = asyncio.run(cancelled_midway())
    assert helper_pids() == set()
    assert not Path(f"/proc/{pid}").exists()  # ended and reaped
