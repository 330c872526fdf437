"""`devstack init`: a Procfile user gets a devstack.yaml that runs the same processes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import make_repo, run_cli

PROCFILE = """\
web: python3 -m http.server $PORT
greeter: echo "hello $GREETING"
counter: echo one; echo two
"""


def test_a_procfile_becomes_a_stack_that_runs_like_honcho(repo: Path) -> None:
    (repo / "Procfile").write_text(PROCFILE)
    (repo / ".env").write_text("GREETING=from-dotenv\n")
    result = run_cli("init", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "wrote devstack.yaml: 3 services from Procfile (web, greeter, counter)"
    )
    plan = json.loads(run_cli("config", "--json", cwd=repo).stdout)["services"]
    assert plan["web"]["port"] == 5000 and plan["web"]["env"]["PORT"] == "5000"
    # Everything but the server (port 5000 may be taken here): .env reaches them, as in honcho.
    up = run_cli("up", "greeter", "counter", cwd=repo)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "greeter | hello from-dotenv" in up.stdout
    assert "counter | one" in up.stdout and "counter | two" in up.stdout


def test_init_keeps_an_existing_file_and_starts_one_without_a_procfile(repo: Path) -> None:
    make_repo(repo, "services:\n  mine: {cmd: 'true'}\n")
    refused = run_cli("init", cwd=repo)
    assert refused.returncode == 2
    assert "devstack.yaml already exists" in refused.stderr and "--force" in refused.stderr
    assert "mine" in (repo / "devstack.yaml").read_text()
    replaced = run_cli("init", "--force", cwd=repo)
    assert replaced.returncode == 0 and "starter" in replaced.stdout
    assert run_cli("doctor", "--no-ports", cwd=repo).returncode == 0  # the starter is valid
    missing = run_cli("init", "--force", "--procfile", "nope/Procfile", cwd=repo)
    assert missing.returncode == 2 and "no Procfile at nope/Procfile" in missing.stderr
