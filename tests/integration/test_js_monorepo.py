"""A small JS monorepo through the real CLI (issue 12 items 2-5, 7): stand-in `next` and
`vite` binaries in node_modules/.bin print the environment they received, so what a
service reads is checked on a real process, not on devstack's report of it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.support import clean_env, make_repo, run_cli

# Prints the variables the test asks about (SHOW), as one JSON line tagged with argv[0].
STAND_IN = """\
#!/bin/sh
exec python3 -c 'import json, os, sys
names = os.environ.get("SHOW", "").split(",")
print("GOT " + json.dumps({"bin": sys.argv[1], **{n: os.environ.get(n) for n in names}}))' "$0"
"""

CONFIG = """\
env: [DATABASE_URL]
services:
  web:
    cmd: next dev
    cwd: apps/web
    env: ["SHOW=CI,HOSTNAME,NEXT_PUBLIC_API,VITE_API,DATABASE_URL,FROM_FILE"]
  admin:
    cmd: vite
    cwd: apps/admin
    env: ["SHOW=CI,HOSTNAME,NEXT_PUBLIC_API,VITE_API,DATABASE_URL,FROM_FILE"]
"""

FILES = {
    "package.json": json.dumps({"name": "acme", "workspaces": ["apps/*"]}),
    ".env": "DATABASE_URL=postgres://localhost/acme\nROOT_ONLY=1\n",
    "apps/web/package.json": json.dumps({"name": "@acme/web", "dependencies": {"next": "14"}}),
    "apps/admin/package.json": json.dumps(
        {"name": "@acme/admin", "devDependencies": {"vite": "5"}}
    ),
}


def monorepo(repo: Path, files: dict[str, str] | None = None) -> Path:
    make_repo(repo, CONFIG, {**FILES, **(files or {})})
    # next in the package's own node_modules/.bin, vite hoisted to the root (as pnpm/bun do)
    for path in ("apps/web/node_modules/.bin/next", "node_modules/.bin/vite"):
        binary = repo / path
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text(STAND_IN)
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return repo


def received(stdout: str) -> dict[str, dict[str, str | None]]:
    found = {}
    for line in stdout.splitlines():
        if "GOT " in line:
            data = json.loads(line.split("GOT ", 1)[1])
            found[Path(data.pop("bin")).name] = data
    return found


SHELL = {"CI": "1", "HOSTNAME": "box", "NEXT_PUBLIC_API": "http://n", "VITE_API": "http://v"}


def test_tools_in_node_modules_bin_run_with_turbos_strict_env(repo: Path) -> None:
    monorepo(repo)
    doctor = run_cli("doctor", cwd=repo, env=clean_env(**SHELL))
    assert "not found" not in doctor.stdout + doctor.stderr
    result = run_cli("up", cwd=repo, env=clean_env(**SHELL))
    assert result.returncode == 0, result.stdout + result.stderr
    got = received(result.stdout)
    assert got["next"]["CI"] == "1" and got["vite"]["CI"] == "1"  # turbo passes CI
    assert got["next"]["HOSTNAME"] is None  # turbo strips it
    assert got["next"]["NEXT_PUBLIC_API"] == "http://n"  # NEXT_* (and framework next)
    assert got["vite"]["VITE_API"] == "http://v" and got["next"]["VITE_API"] is None
    assert got["next"]["DATABASE_URL"] == "postgres://localhost/acme"


def test_env_tells_why_a_name_passed_and_where_path_came_from(repo: Path) -> None:
    monorepo(repo)
    story = run_cli("env", "admin", "VITE_API", cwd=repo, env=clean_env(**SHELL))
    assert "passed  framework vite: VITE_*" in story.stdout, story.stdout + story.stderr
    story = run_cli("env", "@acme/web", "CI", cwd=repo, env=clean_env(**SHELL))
    assert "passed  turbo passes CI in strict mode" in story.stdout, story.stdout + story.stderr
    data = json.loads(run_cli("env", "web", "--json", cwd=repo, env=clean_env(**SHELL)).stdout)
    passed = {v["name"]: v["passed"] for v in data["variables"]}
    assert passed["CI"] == "turbo passes CI in strict mode"
    assert passed["DATABASE_URL"].startswith("listed as DATABASE_URL in `env` at devstack.yaml:1")
    assert passed["SHOW"] is None  # set in devstack.yaml: not a filtered layer
    table = run_cli("env", "web", cwd=repo, env=clean_env(**SHELL))
    path_line = next(line for line in table.stdout.splitlines() if line.startswith("PATH "))
    assert "apps/web/node_modules/.bin, node_modules/.bin (as npm/pnpm/bun run" in path_line


def test_package_names_and_filters_select_services(repo: Path) -> None:
    monorepo(repo)
    for args, started in (
        (["@acme/admin"], {"vite"}),
        (["--filter", "@acme/web"], {"next"}),
        (["--filter", "!@acme/web"], {"vite"}),
        (["--filter", "@acme/*", "--except", "web"], {"vite"}),
    ):
        result = run_cli("up", *args, cwd=repo, env=clean_env(**SHELL))
        assert result.returncode == 0, result.stdout + result.stderr
        assert set(received(result.stdout)) == started, args
    typo = run_cli("logs", "@acme/wbe", cwd=repo)
    assert typo.returncode == 2 and "did you mean '@acme/web'" in typo.stderr


def test_example_files_in_doctor_and_env(repo: Path) -> None:
    monorepo(repo, {"apps/web/.env.example": "# for the web app\nNEXT_PUBLIC_API=\nSTRIPE_KEY=\n"})
    doctor = run_cli("doctor", "--no-ports", cwd=repo)
    assert doctor.returncode != 0
    assert "apps/web/.env does not exist, but apps/web/.env.example does" in doctor.stdout
    assert "cp apps/web/.env.example apps/web/.env" in doctor.stdout
    story = run_cli("env", "web", "STRIPE_KEY", cwd=repo)
    assert "listed in apps/web/.env.example:3, not set" in story.stdout, story.stdout
    up = run_cli("up", "web", cwd=repo)
    assert up.returncode != 0 and "nothing started" in up.stderr
    (repo / "apps/web/.env.local").write_text("STRIPE_KEY=\nNEXT_PUBLIC_API=http://x\n")
    doctor = run_cli("doctor", "--no-ports", cwd=repo)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "apps/web/.env.local:1: warning: STRIPE_KEY is empty for web" in doctor.stdout


def test_framework_files_in_next_order_reach_the_process(repo: Path) -> None:
    monorepo(
        repo,
        {
            "apps/web/.env": "FROM_FILE=env\nDATABASE_URL=from-web-env\n",
            "apps/web/.env.development": "FROM_FILE=development\n",
            "apps/web/.env.local": "URL=http://x/#frag\n",
        },
    )
    result = run_cli("up", "web", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    got = received(result.stdout)["next"]
    assert got["FROM_FILE"] == "development"  # .env.development beats .env, as in Next
    assert got["DATABASE_URL"] == "from-web-env"
    assert "apps/web/.env.local:1: warning: URL: Next.js reads URL only up to the '#'" in (
        result.stderr
    )
    story = run_cli("env", "web", "FROM_FILE", cwd=repo)
    assert "from    apps/web/.env.development:1" in story.stdout
    assert "Next.js reads apps/web/.env.development.local, apps/web/.env.local," in story.stdout
