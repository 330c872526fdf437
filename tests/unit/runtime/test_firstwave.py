"""The fast start's plan (issue 16): trusted only while every input of its key holds."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.runtime import firstwave

VERSION = "1.2.3"
SERVICE = {
    "name": "web",
    "argv": ["node", "server.js"],
    "cwd": "/repo/web",
    "env": {"A": "1"},
    "shell": ["PATH"],
    "spans": {},
}


def write(repo: Path, environ: dict[str, str], *, tty: bool = False) -> Path:
    state = repo / ".devstack"
    env_files = [str(repo / ".env"), str(repo / "web" / ".env.local")]  # the second absent
    key = firstwave.plan_key(
        str(repo / "devstack.yaml"), env_files, environ, tty=tty, version=VERSION
    )
    firstwave.write_plan(
        str(state), key, names=["web"], colour=False, fd_limit=1024, services=[SERVICE]
    )
    return state


def read(state: Path, environ: dict[str, str], *, tty: bool = False, version: str = VERSION):  # type: ignore[no-untyped-def]
    return firstwave.read_plan(str(state), environ, tty=tty, version=version)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "web").mkdir()
    (tmp_path / "devstack.yaml").write_text("services:\n  web: {cmd: node server.js}\n")
    (tmp_path / ".env").write_text("A=1\n")
    return tmp_path


ENV = {"PATH": "/usr/bin", "HOME": "/root"}

# Each change to an input of the key, made after the plan was written.
CHANGES: dict[str, Callable[[Path, dict[str, str]], None]] = {
    "devstack.yaml edited": lambda repo, env: (repo / "devstack.yaml").write_text("services: {}\n"),
    "an env file edited": lambda repo, env: (repo / ".env").write_text("A=2\n"),
    "an env file removed": lambda repo, env: (repo / ".env").unlink(),
    "an absent env file added": lambda repo, env: (repo / "web" / ".env.local").write_text(""),
    "a shell variable changed": lambda repo, env: env.update(PATH="/opt/bin:/usr/bin"),
    "a shell variable added": lambda repo, env: env.update(NODE_ENV="production"),
    "a shell variable removed": lambda repo, env: env.pop("HOME"),
}


def test_an_unchanged_plan_is_read_back(repo: Path) -> None:
    state = write(repo, dict(ENV))
    plan = read(state, dict(ENV))
    assert plan is not None
    assert plan.config_path == str(repo / "devstack.yaml") and plan.names == ["web"]
    [service] = plan.services
    assert (service.name, service.argv, service.cwd) == ("web", ["node", "server.js"], "/repo/web")
    assert service.environment(ENV) == {"A": "1", "PATH": "/usr/bin"}
    assert service.environment({}) is None


@pytest.mark.parametrize("change", CHANGES)
def test_every_input_change_invalidates_the_plan(repo: Path, change: str) -> None:
    environ = dict(ENV)
    state = write(repo, environ)
    CHANGES[change](repo, environ)
    assert read(state, environ) is None


def test_another_version_or_terminal_invalidates_the_plan(repo: Path) -> None:
    state = write(repo, dict(ENV))
    assert read(state, dict(ENV), version="1.2.4") is None
    assert read(state, dict(ENV), tty=True) is None


@pytest.mark.parametrize(
    "content", [b"", b"not marshal", b"\xe9\x00\x00\x00", b"\xfb\x00"], ids=repr
)
def test_a_damaged_plan_is_ignored(repo: Path, content: bytes) -> None:
    state = write(repo, dict(ENV))
    (state / firstwave.PLAN_FILE).write_bytes(content)
    assert read(state, dict(ENV)) is None


def test_a_plan_of_another_shape_is_ignored(repo: Path) -> None:
    import marshal

    state = write(repo, dict(ENV))
    good = marshal.loads((state / firstwave.PLAN_FILE).read_bytes())
    for broken in (
        {**good, "services": [{**SERVICE, "argv": "node server.js"}]},
        {**good, "services": [{**SERVICE, "env": {"A": 1}}]},
        {**good, "services": [{**SERVICE, "shell": "PATH"}]},
        {**good, "colour": "yes"},
        {**good, "names": []},
        {**good, "fd_limit": "1024"},
        [good],
    ):
        (state / firstwave.PLAN_FILE).write_bytes(marshal.dumps(broken))
        assert read(state, dict(ENV)) is None


def test_the_plan_is_private_and_holds_no_shell_variable(repo: Path) -> None:
    secret = "s3cr3t-value-from-the-shell"
    state = write(repo, {**ENV, "AWS_SECRET_ACCESS_KEY": secret})
    path = state / firstwave.PLAN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert secret.encode() not in path.read_bytes()
    assert [p.name for p in state.iterdir()] == [firstwave.PLAN_FILE]  # no temporary left


def test_a_symlinked_plan_is_not_followed(repo: Path) -> None:
    state = write(repo, dict(ENV))
    path = state / firstwave.PLAN_FILE
    os.replace(path, state / "elsewhere")
    path.symlink_to(state / "elsewhere")
    assert read(state, dict(ENV)) is None


def test_the_runs_markers_win_over_the_services_env() -> None:
    values = {"PATH": "/bin", "FORCE_COLOR": "0", "DEVSTACK_RUN_ID": "forged"}
    env = firstwave.spawn_env(values, run_id="r1", name="web", colour=True)
    assert env["DEVSTACK_RUN_ID"] == "r1" and env["DEVSTACK_SERVICE"] == "web"
    assert env["FORCE_COLOR"] == "0" and env["PYTHONUNBUFFERED"] == "1"


def write_with_span(repo: Path, span: list[object]) -> Path:
    """A plan whose service takes TOKEN from the place `span` in an env file."""
    state = repo / ".devstack"
    env_files = [str(repo / ".env")]
    key = firstwave.plan_key(
        str(repo / "devstack.yaml"), env_files, ENV, tty=False, version=VERSION
    )
    service = {**SERVICE, "spans": {"TOKEN": span}}
    firstwave.write_plan(
        str(state), key, names=["web"], colour=False, fd_limit=1024, services=[service]
    )
    return state


def test_a_secret_is_read_back_from_its_place_in_the_env_file(repo: Path) -> None:
    """Secrets never enter the plan (issue 11 §4): it keeps where their bytes stand in a
    file whose digest its key holds, and reads them from there (issue 16)."""
    (repo / ".env").write_text("A=1\nTOKEN='tok-9f3'\n")
    offset = (repo / ".env").read_bytes().index(b"tok-9f3")
    state = write_with_span(repo, [str(repo / ".env"), offset, 7])
    assert b"tok-9f3" not in (state / firstwave.PLAN_FILE).read_bytes()
    plan = read(state, dict(ENV))
    assert plan is not None
    assert plan.services[0].environment(ENV) == {"A": "1", "PATH": "/usr/bin", "TOKEN": "tok-9f3"}


@pytest.mark.parametrize(
    "span",
    [
        ["/elsewhere/.env", 0, 3],  # a file the key does not hold: never read
        ["{env}", 0, 999],  # past the file's end
        ["{env}", -1, 3],
        ["{env}", 0, True],
        ["{env}", 0],
    ],
    ids=["foreign file", "past the end", "negative", "bool", "short"],
)
def test_a_span_that_cannot_be_read_back_voids_the_plan(repo: Path, span: list[object]) -> None:
    span = [str(repo / ".env") if part == "{env}" else part for part in span]
    assert read(write_with_span(repo, span), dict(ENV)) is None
