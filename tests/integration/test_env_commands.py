"""The env-debugging commands through the real CLI: env, env NAME, env --diff, doctor,
config, run, schema, and the messages for bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.support import (
    Running,
    assert_no_processes_under,
    clean_env,
    free_port,
    held_port,
    make_repo,
    run_cli,
)

STACK = """\
env: [JOBS_SECRET_KEY, DATABASE_URL]
vars:
  JOBS_SECRET_KEY: {required: true, secret: true, same_across: all}
services:
  api:
    cmd: python3 -m http.server
    cwd: services/api
    port: 8400
    env: ["API_URL=http://localhost:${PORT}"]
  jobs:
    cmd: python3 -c "print('worker')"
    cwd: services/jobs
"""
FILES = {
    ".env": "JOBS_SECRET_KEY=tr_dev_shared_secret\nDATABASE_URL=postgres://app:hunter2@db/app\n"
    "TRIGGER_API_URL=http://trigger\n",
    "services/api/.env": "API_ONLY=1\n",
    "services/jobs/.env": "QUEUE=default\n",
}


def stack(repo: Path, **overrides: str) -> Path:
    return make_repo(repo, STACK, {**FILES, **overrides})


def test_env_table_masks_secrets_and_names_sources(repo: Path) -> None:
    stack(repo)
    result = run_cli("env", "api", cwd=repo)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "tr_dev_shared_secret" not in result.stdout and "hunter2" not in result.stdout
    assert lines["NAME"].split() == ["NAME", "SOURCE", "VALUE"]
    assert lines["JOBS_SECRET_KEY"].split()[1] == ".env:1"
    assert "20 chars" in lines["JOBS_SECRET_KEY"]
    assert lines["DATABASE_URL"].endswith("postgres://app:••••@db/app")
    assert lines["API_URL"].split()[1:] == ["devstack.yaml:9", "http://localhost:8400"]
    assert lines["API_ONLY"].split()[1] == "services/api/.env:1"
    assert "TRIGGER_API_URL" not in lines and "QUEUE" not in lines
    revealed = run_cli("env", "api", "--reveal", "--format", "dotenv", cwd=repo)
    assert 'JOBS_SECRET_KEY="tr_dev_shared_secret"' in revealed.stdout.splitlines()


def test_env_json_and_cli_overrides(repo: Path) -> None:
    stack(repo)
    result = run_cli("env", "jobs", "--json", "--env", "QUEUE=urgent", cwd=repo)
    data = json.loads(result.stdout)
    queue = next(v for v in data["variables"] if v["name"] == "QUEUE")
    assert queue["value"] == "urgent" and queue["source"] == "--env"
    assert queue["shadowed"] == [{"source": "services/jobs/.env:1", "value": "default"}]


def test_story_of_a_dropped_variable_and_of_a_typo(repo: Path) -> None:
    stack(repo)
    dropped = run_cli("env", "jobs", "TRIGGER_API_URL", cwd=repo)
    assert dropped.returncode == 1
    assert "defined at .env:3" in dropped.stdout
    assert "strict mode" in dropped.stdout
    assert "add TRIGGER_API_URL to `env` at devstack.yaml:1" in dropped.stdout
    typo = run_cli("env", "jobs", "JOBS_SECRET_KY", cwd=repo)
    assert "did you mean JOBS_SECRET_KEY?" in typo.stdout
    found = run_cli("env", "api", "DATABASE_URL", cwd=repo)
    assert found.returncode == 0 and "from    .env:2" in found.stdout


def test_diff_and_doctor_report_a_mismatched_secret_without_revealing_it(repo: Path) -> None:
    stack(repo, **{"services/jobs/.env": "JOBS_SECRET_KEY=tr_dev_other\n"})
    diff = run_cli("env", "--diff", "api", "jobs", cwd=repo)
    assert diff.returncode == 0
    [line] = [line for line in diff.stdout.splitlines() if "JOBS_SECRET_KEY" in line]
    assert "tr_dev" not in line and line.count("••••") == 2
    assert "only api: API_ONLY, API_URL, PORT" in diff.stdout
    doctor = run_cli("doctor", "--no-ports", cwd=repo)
    assert doctor.returncode == 1
    assert "JOBS_SECRET_KEY differs between api and jobs" in doctor.stdout
    assert "tr_dev" not in doctor.stdout
    assert doctor.stdout.rstrip().endswith("1 error, 1 warning")  # + the dropped TRIGGER_API_URL
    as_json = json.loads(run_cli("doctor", "--no-ports", "--json", cwd=repo).stdout)
    assert [p["code"] for p in as_json["problems"]] == ["same-across", "dropped"]


def test_doctor_on_a_healthy_stack(repo: Path) -> None:
    make_repo(repo, "services:\n  a: {cmd: python3 -V}\n")
    result = run_cli("doctor", cwd=repo)
    assert (result.returncode, result.stdout.strip()) == (0, "no problems found in 1 service")


def test_doctor_names_who_holds_a_service_port(repo: Path) -> None:
    with held_port() as port:
        make_repo(repo, f"services:\n  web: {{cmd: python3 -V, port: {port}}}\n")
        result = run_cli("doctor", cwd=repo)
        skipped = run_cli("doctor", "--no-ports", cwd=repo)
    assert result.returncode == 1
    assert f"web: port {port} is in use by pid {os.getpid()} " in result.stdout
    assert "devstack.yaml:2" in result.stdout
    assert skipped.returncode == 0


SERVE = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])));"
SERVE += " s.listen(); print('listening', flush=True); time.sleep(60)"


def test_doctor_beside_a_running_stack_counts_its_ports_as_its_own(repo: Path) -> None:
    with held_port() as taken:
        own = free_port()
        make_repo(
            repo,
            f"""
            services:
              web: {{cmd: [{sys.executable}, -c, "{SERVE}", "{own}"], port: {own}}}
              other: {{cmd: "true", port: {taken}, autostart: false}}
            """,
        )
        up = Running("up", cwd=repo)
        try:
            up.wait_for(r"^web +\| listening")
            result = run_cli("doctor", cwd=repo)
            up.interrupt()
            assert up.wait() == 130
        finally:
            up.close()
    assert f"port {own}" not in result.stdout, result.stdout
    assert f"other: port {taken} is in use by pid {os.getpid()} " in result.stdout
    assert_no_processes_under(repo)


def test_config_prints_the_resolved_plan(repo: Path) -> None:
    stack(repo)
    result = run_cli("config", "--json", cwd=repo)
    plan = json.loads(result.stdout)["services"]
    assert plan["api"]["argv"] == ["python3", "-m", "http.server"]
    assert plan["api"]["cwd"] == "services/api" and plan["api"]["port"] == 8400
    assert plan["api"]["env"]["JOBS_SECRET_KEY"].startswith("••••")
    assert "jobs:" in run_cli("config", cwd=repo).stdout


def test_run_uses_the_service_cwd_env_and_exit_status(repo: Path) -> None:
    stack(repo)
    script = "import os,sys; print(os.getcwd(), os.environ['QUEUE']); sys.exit(3)"
    result = run_cli("run", "jobs", "--", "python3", "-c", script, cwd=repo / "services")
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == [str((repo / "services/jobs").resolve()), "default"]


OWN = ("DEVSTACK_RUN_ID", "DEVSTACK_SERVICE", "DEVSTACK_REPO", "PYTHONUNBUFFERED")


def test_devstacks_own_variables_are_shown_with_why_and_left_out_of_reuse(
    repo: Path, tmp_path: Path
) -> None:
    """`env` answers "why does my service see FORCE_COLOR=1?"; run, export and --format,
    which are not `up`, never hand out devstack's own (a run's markers least of all)."""
    stack(repo, **{"services/jobs/.env": "QUEUE=default\nFORCE_COLOR=0\n"})
    table = run_cli("env", "jobs", cwd=repo).stdout
    rows = {line.split()[0]: line for line in table.splitlines()}
    for name in OWN:
        assert "set by devstack for every service" in rows[name], table
    assert rows["DEVSTACK_SERVICE"].endswith(" jobs")
    assert rows["FORCE_COLOR"].split()[1:] == ["services/jobs/.env:2", "0"]  # yours wins
    mine = run_cli("env", "jobs", "FORCE_COLOR", cwd=repo)
    assert mine.returncode == 0
    assert "shadows set by devstack for every service, when `up` prints in colour: 1" in (
        mine.stdout
    )
    assert "set only where no layer does: yours wins" in mine.stdout
    theirs = run_cli("env", "api", "FORCE_COLOR", cwd=repo)
    assert theirs.returncode == 0, theirs.stdout
    assert "from    set by devstack for every service, when `up` prints in colour" in (
        theirs.stdout
    )
    forged = run_cli("env", "jobs", "DEVSTACK_SERVICE", "--env", "DEVSTACK_SERVICE=x", cwd=repo)
    assert "value   jobs" in forged.stdout and "shadows --env: x" in forged.stdout
    assert "devstack's value beats every layer, yours too" in forged.stdout
    listed = json.loads(run_cli("env", "jobs", "--json", cwd=repo).stdout)["variables"]
    assert {v["name"] for v in listed if v["kind"] == "devstack"} >= set(OWN)
    for format in ("dotenv", "shell"):
        written = run_cli("env", "jobs", "--format", format, cwd=repo).stdout
        assert "FORCE_COLOR" in written and not any(name in written for name in OWN), written
    script = "import os; print(sorted(os.environ))"
    ran = run_cli("run", "jobs", "--", "python3", "-c", script, cwd=repo).stdout
    assert "FORCE_COLOR" in ran and not any(name in ran for name in OWN), ran
    exported = run_cli("export", "systemd", "-o", str(tmp_path / "out"), cwd=repo)
    assert exported.returncode == 0, exported.stderr
    files = "".join(path.read_text() for path in (tmp_path / "out").iterdir())
    assert "QUEUE" in files and not any(name in files for name in OWN)
    diff = run_cli("env", "--diff", "api", "jobs", cwd=repo).stdout
    assert "DEVSTACK" not in diff  # devstack's own differ by design, not by mistake


def test_schema_is_json(repo: Path) -> None:
    result = run_cli("schema", cwd=repo)
    assert json.loads(result.stdout)["title"] == "devstack.yaml"


def test_bad_input_gets_one_clear_message_and_no_traceback(repo: Path) -> None:
    stack(repo, **{"services/jobs/.env": "\n\nGOOD=1\nthis line is broken\n"})
    unknown = run_cli("env", "jbos", cwd=repo)
    assert unknown.returncode == 2
    assert "unknown service 'jbos'" in unknown.stderr and "did you mean 'jobs'?" in unknown.stderr
    broken = run_cli("env", "jobs", cwd=repo)
    assert broken.returncode == 2
    assert "services/jobs/.env:4: error: cannot parse this line" in broken.stderr
    assert "this line is broken" not in broken.stderr  # it may hold a secret (issue 11)
    bad_env = run_cli("env", "jobs", "--env", "NOEQUALS", cwd=repo)
    assert bad_env.returncode == 2 and "is not NAME=value" in bad_env.stderr
    for result in (unknown, broken, bad_env):
        assert "Traceback" not in result.stderr


def test_no_config_found(tmp_path: Path) -> None:
    result = run_cli("env", "api", cwd=tmp_path, env=clean_env(HOME=os.fspath(tmp_path)))
    assert result.returncode == 2 and "devstack.yaml" in result.stderr
    assert "Traceback" not in result.stderr
