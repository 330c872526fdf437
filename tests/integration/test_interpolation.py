"""Interpolation through the real CLI: `env`, `run`, `config` and `doctor` read the same
values, a failing `${NAME:?message}` stops them with the user's message, and an edit to a
variable that others only refer to restarts exactly the services whose value changed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import Running, make_repo, run_cli

STACK = """\
services:
  api:
    cmd: python3 runner.py
    port: 8400
    env: [DATABASE_URL, "API_URL=http://localhost:${PORT}"]
  jobs:
    cmd: python3 runner.py
    env: [QUEUE, "JOB_NAME=${QUEUE:+queue-}${QUEUE-none}"]
  web:
    cmd: python3 runner.py
    env: ["SITE=${SITE_NAME:-devstack}"]
"""
ENV = """\
DB_HOST=db-one
DB_PASSWORD=hunter2
DATABASE_URL=postgres://${DB_USER:-app}:${DB_PASSWORD}@$DB_HOST/${DB_NAME-app}
QUEUE=default
"""
# Each instance says which service and run it is, and the values it was given.
RUNNER = """
import os, pathlib, time
name = os.environ["DEVSTACK_SERVICE"]
count = pathlib.Path(name + ".runs")
runs = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(runs))
shown = {"api": "DATABASE_URL", "jobs": "JOB_NAME", "web": "SITE"}[name]
print(name, "run", runs, os.environ[shown].rpartition("@")[2], flush=True)
time.sleep(600)
"""


def stack(repo: Path, env: str = ENV) -> Path:
    return make_repo(repo, STACK, {".env": env, "runner.py": RUNNER, ".gitignore": ".env\n"})


def test_env_run_and_config_agree_and_env_shows_what_a_value_refers_to(repo: Path) -> None:
    stack(repo)
    story = run_cli("env", "api", "API_URL", cwd=repo)
    assert story.returncode == 0, story.stderr
    assert "  written API_URL = http://localhost:${PORT}" in story.stdout.splitlines()
    assert "  uses    PORT = 8400  (from devstack.yaml:2 (port: 8400))" in story.stdout
    database = run_cli("env", "api", "DATABASE_URL", cwd=repo).stdout
    assert "DB_PASSWORD = •••• (7 chars" in database and "(from .env:2)" in database
    assert "DB_USER: not defined" in database and "hunter2" not in database

    script = "import os; print(os.environ['DATABASE_URL'], os.environ['API_URL'])"
    ran = run_cli("run", "api", "--", "python3", "-c", script, cwd=repo)
    assert ran.stdout.split() == ["postgres://app:hunter2@db-one/app", "http://localhost:8400"]
    plan = json.loads(run_cli("config", "--json", cwd=repo).stdout)["services"]
    assert plan["jobs"]["env"]["JOB_NAME"] == "queue-default"
    assert plan["web"]["env"]["SITE"] == "devstack"


def test_a_failing_required_variable_stops_every_command_with_the_users_message(
    repo: Path,
) -> None:
    stack(repo, ENV + 'STRIPE_KEY="${STRIPE_TEST_KEY:?ask #payments for a test key}"\n')
    expected = (
        ".env:5: error: STRIPE_KEY: required variable STRIPE_TEST_KEY is missing a value: "
        "ask #payments for a test key"
    )
    doctor = run_cli("doctor", cwd=repo)
    assert doctor.returncode == 1 and expected in doctor.stdout, doctor.stdout
    for command in (("run", "api", "--", "true"), ("config",), ("env", "web")):
        result = run_cli(*command, cwd=repo)
        assert result.returncode == 2 and expected in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr


def restarts(up: Running, name: str) -> list[str]:
    return [
        line
        for line in up.output().splitlines()
        if line.startswith(f"{name} ") and "▸ restarting:" in line
    ]


def test_an_edit_to_a_referenced_variable_restarts_the_services_whose_value_changed(
    repo: Path,
) -> None:
    stack(repo)
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(
            r"watching for changes:",
            r"^api +\| api run 1 db-one/app$",
            r"^jobs +\| jobs run 1 queue-default$",
            r"^web +\| web run 1 devstack$",
        )
        # api gets only DATABASE_URL, which refers to DB_HOST: its value changes.
        (repo / ".env").write_text(ENV.replace("DB_HOST=db-one", "DB_HOST=db-two"))
        up.wait_for(r"\.env changed \(DATABASE_URL\)$")
        up.wait_for(r"^api +▸ restarting: env changed \(DATABASE_URL\)$")
        up.wait_for(r"^api +\| api run 2 db-two/app$")
        # QUEUE, now unset, feeds jobs' JOB_NAME through ${QUEUE-none}: by jobs' restart,
        # the DB_HOST edit was handled, and it restarted nothing else.
        (repo / ".env").write_text(
            ENV.replace("DB_HOST=db-one", "DB_HOST=db-two").replace("QUEUE=default\n", "")
        )
        up.wait_for(r"^jobs +▸ restarting: env changed \(JOB_NAME, QUEUE\)$")
        up.wait_for(r"^jobs +\| jobs run 2 none$")
        assert len(restarts(up, "api")) == 1 and len(restarts(up, "jobs")) == 1
        assert restarts(up, "web") == []
    finally:
        up.interrupt()
        assert up.wait() == 130
        up.close()
