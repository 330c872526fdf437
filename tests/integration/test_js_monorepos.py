"""`devstack init` on real monorepos' config files, then doctor and up, as a new user would
(issue 12). The fixtures are in tests/fixtures/, with their source and commit."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.jsfixtures import copy_fixture, shell_path
from tests.support import Running, run_cli

# What doctor still reports on each imported repo: the repo's real problems, nothing else.
REAL_PROBLEMS = {
    # each app's README step `cp .env.example .env` (issue 12 item 5)
    "midday-v1": [
        f"apps/{app}/.env does not exist, but apps/{app}/.env.example does"
        for app in ("api", "app", "web")
    ],
    # the apps' `with-env` wrapper reads ../../.env, which the README says to copy from
    # .env.example first
    "create-t3-turbo": ["env file .env does not exist", "env file .env does not exist"],
    "documenso-turbo1": ["env file .env.local does not exist", "env file .env does not exist"],
    "formbricks": [".env does not exist, but .env.example does"],
}
SERVICES = {
    "midday-v1": 4,
    "create-t3-turbo": 6,
    "documenso-turbo1": 4,
    "formbricks": 15,
}


def env_for(copy: Path, **extra: str) -> dict[str, str]:
    return {"PATH": shell_path(copy), "HOME": str(copy.parent / "home"), "LANG": "C.UTF-8", **extra}


@pytest.mark.parametrize("fixture", sorted(REAL_PROBLEMS))
def test_init_imports_the_monorepo_and_doctor_reports_only_its_real_problems(
    repo: Path, fixture: str
) -> None:
    copy = copy_fixture(fixture, repo / fixture)
    env = env_for(copy)
    init = run_cli("init", cwd=copy, env=env)
    assert init.returncode == 0, init.stderr
    assert f"wrote devstack.yaml: {SERVICES[fixture]} services from the" in init.stdout
    # documenso's root `dev` script filters turbo to one package: said on the terminal
    untranslated = 1 if fixture == "documenso-turbo1" else 0
    assert init.stderr.count("warning: not translated: ") == untranslated, init.stderr
    doctor = run_cli("doctor", "--no-ports", "--json", cwd=copy, env=env)
    errors = [
        p["message"] for p in json.loads(doctor.stdout)["problems"] if p["severity"] == "error"
    ]
    assert errors == REAL_PROBLEMS[fixture], doctor.stdout
    again = run_cli("init", cwd=copy, env=env)
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_in_a_subfolder_writes_at_the_repo_root(repo: Path) -> None:
    """Issue 11 §5: init in apps/web wrote apps/web/devstack.yaml, which `up` never read."""
    copy = copy_fixture("midday-v1", repo / "midday")
    result = run_cli("init", cwd=copy / "apps" / "web", env=env_for(copy))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "wrote ../../devstack.yaml (the repo root, where devstack looks for it): 4 services"
    )
    assert (copy / "devstack.yaml").is_file()
    assert not (copy / "apps" / "web" / "devstack.yaml").exists()
    refused = run_cli("init", cwd=copy / "apps" / "web", env=env_for(copy))
    assert refused.returncode == 2
    assert "../../devstack.yaml already exists" in refused.stderr
    # a package with its own turbo.json and package.json is not the root either
    t3 = copy_fixture("create-t3-turbo", repo / "t3")
    shutil.rmtree(t3 / ".git")  # without git, pnpm-workspace.yaml marks the root
    result = run_cli("init", cwd=t3 / "apps" / "nextjs", env=env_for(t3))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote ../../devstack.yaml (the repo root")


def test_up_runs_the_build_chain_turbo_runs_before_the_dev_server(repo: Path) -> None:
    """formbricks: `@formbricks/web#dev` depends on six packages' one-shot builds, each
    with its own chain; `devstack up web` runs them to completion first, as turbo does."""
    copy = copy_fixture("formbricks", repo / "formbricks")
    # the one source file the database package's `generate` script runs with node
    script = copy / "packages/database/src/scripts/clean-generated-prisma.mjs"
    script.parent.mkdir(parents=True)
    script.write_text("")
    (copy / ".env").write_text("")  # the README's `cp .env.example .env`; no value needed here
    env = env_for(copy)
    assert run_cli("init", cwd=copy, env=env).returncode == 0
    up = Running("up", "web", cwd=copy, env=env)
    try:
        up.wait_for(r"web +\| next stand-in ready", timeout=60)
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()
    output = up.output()

    def at(pattern: str) -> int:
        match = re.search(pattern, output)
        assert match, f"{pattern!r} not in:\n{output}"
        return match.start()

    for build in ("logger-build", "ai-build", "database-generate", "database-build"):
        at(rf"{build} +▸ exited 0")
    assert at(r"database-generate +▸ exited 0") < at(r"database-build +▸ started")
    assert at(r"database-build +▸ exited 0") < at(r"web +▸ started")


def test_init_with_a_task_no_package_has_says_so(repo: Path) -> None:
    copy = copy_fixture("midday-v1", repo / "midday")
    result = run_cli("init", "--task", "serve", cwd=copy, env=env_for(copy))
    assert result.returncode == 2
    assert "error: no workspace package has a `serve` script" in result.stderr
    assert "--task NAME" in result.stderr and not (copy / "devstack.yaml").exists()
    jobs = run_cli("init", "--task", "jobs", cwd=copy, env=env_for(copy))
    assert jobs.returncode == 0 and "1 service from the bun workspace" in jobs.stdout


def test_an_interactive_turbo_task_runs_on_a_terminal(repo: Path) -> None:
    """create-t3-turbo's apps/expo/turbo.json says `interactive: true`: tty: true."""
    copy = copy_fixture("create-t3-turbo", repo / "t3")
    (copy / ".env").write_text("POSTGRES_URL=postgres://localhost/t3\n")  # cp .env.example
    env = env_for(copy)
    assert run_cli("init", cwd=copy, env=env).returncode == 0
    up = Running("up", "expo", "nextjs", cwd=copy, env=env)
    try:
        up.wait_for_each(
            r"expo +\| expo stand-in ready: \d+ variables on a terminal",
            r"nextjs +\| next stand-in ready: \d+ variables$",
        )
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()
