"""Doctor checks: declared vars, differing secrets, dropped vars, commands, cwds, ports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devstack.core.config import SERVICE_KEYS, TOP_KEYS, VAR_KEYS, parse_project
from devstack.core.doctor import diagnose
from devstack.core.envresolve import resolve_project
from devstack.core.errors import Problem
from devstack.core.schema import devstack_schema


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


def test_commands_resolve_against_the_services_own_path_and_cwd(tmp_path: Path) -> None:
    """Issue 12 item 2: tools in node_modules/.bin are found, as the package manager
    would find them; a relative PATH entry from `env:` is relative to the service cwd."""
    config = """\
    services:
      web: {cmd: next dev, cwd: apps/web}
      docs: {cmd: astro dev, cwd: apps/docs}
      tool: {cmd: mytool, cwd: apps/tool, env: ["PATH=bin:/usr/bin"]}
      missing: {cmd: vite, cwd: apps/docs}
    """
    files = {"apps/web/x": "", "apps/tool/bin/mytool": "", "apps/docs/x": ""}
    for name in ("node_modules/.bin/astro", "apps/web/node_modules/.bin/next"):
        files[name] = ""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    problems = check(tmp_path, config)
    assert [(p.code, p.message) for p in problems] == [
        ("command-not-found", "missing: command 'vite' not found")
    ]


EXAMPLES = """\
env: [DATABASE_URL]
services:
  web: {cmd: sh -c true, cwd: apps/web}
  api: {cmd: sh -c true, cwd: apps/api}
"""


def test_example_files_missing_env_file_and_unset_names(tmp_path: Path) -> None:
    """Issue 12 item 5: a missing env file whose example exists is an error with the cp
    to run; names the example lists that nothing sets are reported with their line."""
    problems = check(
        tmp_path,
        EXAMPLES,
        {
            "apps/web/.env.example": "# web\nSTRIPE_KEY=\nWEB_URL=http://x\nDATABASE_URL=\n",
            "apps/web/.env.production.example": "ONLY_IN_PROD=\n",  # not read in dev
            "apps/api/.env-example": "API_TOKEN=\nPORT=\nDATABASE_URL=\n",
            "apps/api/.env.local": "PORT=1\n",
            "apps/api/.env.sample": "PORT=\n",
            ".env": "DATABASE_URL=postgres://db\n",
        },
    )
    found = {(p.code, str(p.location)): p for p in problems}
    web = found[("missing-env-file", "apps/web/.env.example")]
    assert web.severity == "error" and web.message.startswith("apps/web/.env does not exist")
    assert web.hint == "cp apps/web/.env.example apps/web/.env, then fill in its values"
    # apps/api/.env is absent but .env.local is there: the example is satisfied as a file,
    # and only API_TOKEN is set nowhere (DATABASE_URL comes from the root .env)
    api = found[("example-not-set", "apps/api/.env-example:1")]
    assert api.message.startswith("apps/api/.env-example lists API_TOKEN (line 1), set in")
    assert "ONLY_IN_PROD" not in str(problems) and "apps/api/.env.sample" not in str(problems)


def test_empty_secrets_are_reported_public_prefixes_are_not_secret(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        "vars:\n  PLAIN: {secret: true}\nservices:\n  web: {cmd: sh -c true, cwd: web}\n",
        {"web/.env": "STRIPE_SECRET_KEY=\nPLAIN=\nNEXT_PUBLIC_STRIPE_KEY=\nOTHER=\n"},
    )
    empty = sorted(str(p.location) for p in problems if p.code == "empty-secret")
    assert empty == ["web/.env:1", "web/.env:2"]


def test_a_wrapper_file_that_is_missing_names_its_example_once(tmp_path: Path) -> None:
    """`env_files: [../../.env]` (a dotenv wrapper, imported by init) and a root
    .env.example: one error for the root .env, with the cp to run, paths normalized."""
    problems = check(
        tmp_path,
        "services:\n  web: {cmd: sh -c true, cwd: apps/web, env_files: [../../.env]}\n",
        {".env.example": "AUTH_SECRET=\n", "apps/web/x": ""},
    )
    assert [(p.code, p.message, p.hint) for p in problems] == [
        (
            "missing-env-file",
            "env file .env does not exist",
            "cp .env.example .env, then fill in its values",
        )
    ]


# -- the open-file limit (issue 11 §2: 50 of 200 services failed at `ulimit -n 512`) -------


@pytest.mark.parametrize(
    ("services", "hard_limit", "warned"),
    [(200, 512, True), (200, 4096, False), (3, 256, False), (40, 256, True)],
)
def test_an_fd_limit_too_low_for_the_services_is_a_warning(
    services: int, hard_limit: int, warned: bool
) -> None:
    from devstack.core.doctor import fd_limit_problems

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
        "import resource; from devstack.runtime.stackrun import raise_fd_limit;"
        "from devstack.core.doctor import FD_LIMIT;"
        "print(*raise_fd_limit(FD_LIMIT)); print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
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


@pytest.mark.parametrize(
    ("files", "hint"),
    [
        (
            {"pnpm-lock.yaml": "", "package.json": '{"workspaces": ["apps/*"]}'},
            "the JS dependencies are not installed (no node_modules up to the repo root):"
            " run `pnpm install` at the repo root",
        ),
        (
            {"package.json": "{}", "node_modules/.keep": ""},
            "install it, or fix `cmd` (PATH is the service's own PATH)",
        ),
    ],
)
def test_a_js_tool_not_found_before_install_says_to_install(
    tmp_path: Path, files: dict[str, str], hint: str
) -> None:
    """A fresh clone of a JS monorepo has no node_modules: `next` is not a typo."""
    files = {**files, "apps/web/package.json": '{"name": "web"}'}
    problems = check(tmp_path, "services:\n  web: {cmd: next dev, cwd: apps/web}\n", files)
    [problem] = [p for p in problems if p.code == "command-not-found"]
    assert problem.message == "web: command 'next' not found"
    assert problem.hint == hint


def test_doctor_masks_values_built_from_a_secret(tmp_path: Path) -> None:
    """`OWNER=ops ${API_TOKEN}`: its name looks harmless, its value holds a secret."""
    config = """\
    vars:
      OWNER: {pattern: "^team ", same_across: all}
    services:
      api: {cmd: sh -c true, cwd: api, env: {OWNER: "ops ${API_TOKEN}"}}
      jobs: {cmd: sh -c true, cwd: jobs, env: {OWNER: "ops ${API_TOKEN}x"}}
    """
    files = {".env": "API_TOKEN=tok_Zq9doctor\n", "api/x": "", "jobs/x": ""}
    problems = check(tmp_path, config, files)
    assert codes(problems) == ["pattern", "pattern", "same-across", "dropped"]
    text = "\n".join(problem.render() for problem in problems)
    assert "api: OWNER = ops •••• (" in text and "ops ••••x (" in text
    assert "Zq9" not in text
