"""Doctor checks: declared vars, differing secrets, dropped vars, commands, cwds, ports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devstack.config import SERVICE_KEYS, TOP_KEYS, VAR_KEYS, parse_project
from devstack.doctor import diagnose
from devstack.envresolve import resolve_project
from devstack.errors import Problem
from devstack.schema import devstack_schema


def check(
    root: Path,
    config: str,
    files: dict[str, str] | None = None,
    shell: dict[str, str] | None = None,
    holder: str | None = None,
) -> list[Problem]:
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    path = root / "devstack.yaml"
    path.write_text(textwrap.dedent(config))
    project = parse_project(path.read_text(), path)
    env = resolve_project(project, {"PATH": "/usr/bin:/bin", **(shell or {})}, {})
    return diagnose(project, env, port_holder=lambda port: holder)


STACK = """\
env: [JOBS_SECRET_KEY]
vars:
  JOBS_SECRET_KEY: {required: true, secret: true, same_across: all, pattern: "^dev_"}
services:
  api: {cmd: sh -c true, cwd: api}
  jobs: {cmd: sh -c true, cwd: jobs}
"""


def codes(problems: list[Problem]) -> list[str]:
    return [problem.code for problem in problems]


def test_a_clean_stack_has_no_problems(tmp_path: Path) -> None:
    problems = check(
        tmp_path, STACK, {".env": "JOBS_SECRET_KEY=dev_1\n", "api/x": "", "jobs/x": ""}
    )
    assert problems == []


def test_secret_differing_across_services_is_an_error_without_revealing_it(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        STACK,
        {
            ".env": "JOBS_SECRET_KEY=dev_right_value\n",
            "jobs/.env": "JOBS_SECRET_KEY=dev_wrong_value\n",
            "api/x": "",
        },
    )
    assert codes(problems) == ["same-across"]
    text = problems[0].render()
    assert "dev_right_value" not in text and "dev_wrong_value" not in text
    assert "jobs/.env:1" in text and ".env:1" in text
    assert "devstack env --diff api jobs" in text


def test_required_missing_and_pattern_mismatch(tmp_path: Path) -> None:
    missing = check(tmp_path / "a", STACK, {"api/x": "", "jobs/x": ""})
    assert codes(missing) == ["required-var"]
    assert "api and jobs do not get it" in missing[0].message
    wrong = check(
        tmp_path / "b", STACK, {".env": "JOBS_SECRET_KEY=prod\n", "api/x": "", "jobs/x": ""}
    )
    assert codes(wrong) == ["pattern", "pattern"]
    assert "prod" not in wrong[0].render()


def test_dropped_variable_says_which_line_lets_it_through(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        "env: [A]\nservices:\n  api: {cmd: sh -c true}\n",
        {".env": "A=1\nTRIGGER_API_URL=http://x\n"},
    )
    [dropped] = problems
    assert dropped.severity == "warning" and dropped.code == "dropped"
    assert str(dropped.location) == ".env:2"
    assert dropped.hint and "devstack.yaml:1" in dropped.hint


def test_undeclared_secret_that_differs_is_a_warning(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        "services:\n  api: {cmd: sh -c true, cwd: api}\n  jobs: {cmd: sh -c true, cwd: jobs}\n",
        {"api/.env": "API_TOKEN=a\n", "jobs/.env": "API_TOKEN=b\n"},
    )
    assert [(p.code, p.severity) for p in problems] == [("secret-differs", "warning")]


def test_shell_overriding_an_env_file_is_a_warning(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        "env: [DATABASE_URL]\nservices:\n  api: {cmd: sh -c true}\n",
        {".env": "DATABASE_URL=from-file\n"},
        shell={"DATABASE_URL": "from-shell"},
    )
    assert codes(problems) == ["shell-override"]
    assert ".env:1" in problems[0].message


def test_missing_command_missing_cwd_and_ports(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        """\
        services:
          a: {cmd: no-such-program --flag, port: 8400}
          b: {cmd: "FOO=1 exec no-such-either", port: 8400}
          c: {cmd: "cd sub && make", cwd: missing}
          d: {cmd: [./run.sh]}
          e: {cmd: "echo $HOME"}
        """,
        holder="pid 42 (python -m http.server)",
    )
    by_code = {(p.code, p.message.split(":")[0]) for p in problems}
    assert ("command-not-found", "a") in by_code
    assert ("command-not-found", "b") in by_code
    assert ("missing-cwd", "c") in by_code
    assert ("command-not-found", "d") in by_code
    assert ("port-duplicate", "port 8400 is given to a and b") in by_code
    assert any("pid 42 (python -m http.server)" in p.message for p in problems)
    assert not any(p.message.startswith("e:") for p in problems)


def test_schema_names_the_same_keys_as_the_parser() -> None:
    schema = devstack_schema()
    assert set(schema["properties"]) == set(TOP_KEYS)
    service = schema["properties"]["services"]["additionalProperties"]
    assert set(service["properties"]) == set(SERVICE_KEYS)
    var = schema["properties"]["vars"]["additionalProperties"]
    assert set(var["properties"]) == set(VAR_KEYS)


# -- the open-file limit (issue 11 §2: 50 of 200 services failed at `ulimit -n 512`) -------


@pytest.mark.parametrize(
    ("services", "hard_limit", "warned"),
    [(200, 512, True), (200, 4096, False), (3, 256, False), (40, 256, True)],
)
def test_an_fd_limit_too_low_for_the_services_is_a_warning(
    services: int, hard_limit: int, warned: bool
) -> None:
    from devstack.doctor import fd_limit_problems

    problems = fd_limit_problems(services, hard_limit)
    assert bool(problems) is warned
    for problem in problems:
        assert problem.severity == "warning"
        assert f"open-file limit is {hard_limit}" in problem.message
        assert problem.hint and "ulimit -n" in problem.hint


def test_up_raises_its_soft_fd_limit_up_to_the_hard_one() -> None:
    import resource
    import subprocess
    import sys

    script = (
        "import resource; from devstack.commands.up import raise_fd_limit;"
        "print(*raise_fd_limit()); print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))

    result = subprocess.run(
        [sys.executable, "-c", script],
        preexec_fn=limited,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["2048", "2048", "2048", "2048"]


def test_ports_in_commands_clash_and_are_checked(tmp_path: Path) -> None:
    """Issue 12 item 6: the seed's real clash, only found once both ports were in `port:`."""
    problems = check(
        tmp_path,
        """\
        services:
          api: {cmd: "PORT=3003 true run src/index.ts"}
          email: {cmd: "true dev -p 3003"}
          web: {cmd: "true dev --port=3100"}
        """,
        holder="pid 7 (node)",
    )
    messages = {(p.code, p.message) for p in problems}
    assert ("port-duplicate", "port 3003 is given to api and email") in messages
    assert ("port-in-use", "web: port 3100 is in use by pid 7 (node)") in messages
