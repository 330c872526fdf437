"""The same fixture under `turbo run dev` and under `devstack up`: every service must
receive the same variables with the same values (issue 12). turbo, pnpm and dotenv-cli
are the real ones from the npm registry (the Makefile installs them into .venv/node)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.jsfixtures import copy_fixture, node_tool, received, shell_path
from tests.support import TIMEOUT, Running, run_cli, wait_until

# Set by whoever runs the script, not by the config: not compared, each for its reason.
NOT_COMPARED = {
    "PATH": "each package manager prepends its own dirs and node_modules/.bin (compared below)",
    "PWD": "set by the shell that runs the script",
    "SHLVL": "counts the shells between turbo and the tool: pnpm adds one",
    "INIT_CWD": "pnpm's own: the folder `pnpm run` was called from",
    "NODE": "pnpm's own: the node that runs pnpm",
    "PNPM_SCRIPT_SRC_DIR": "pnpm's own",
    "TURBO_HASH": "turbo's own: the task's cache key",
    "TURBO_INVOCATION_DIR": "turbo's own",
    "DEVSTACK_RUN_ID": "devstack's own: finds the run's processes again (README)",
    "DEVSTACK_SERVICE": "devstack's own",
    "PYTHONUNBUFFERED": "devstack's own: services' lines arrive as printed (README)",
}
NOT_COMPARED_PREFIXES = ("npm_", "pnpm_")  # the package manager's lifecycle variables

# Documented differences, each with its reason (README "Coming from Turborepo").
EXPECTED_DIFFERENCES = {
    # devstack reads the root .env for the names a service lists; turbo reads no env
    # file at all and leaves that to the apps' `dotenv` wrappers (the ones that have one)
    ("packages/api:tsc", "POSTGRES_URL"): ("from-dotenv", None),
    ("packages/db:tsc", "POSTGRES_URL"): ("from-dotenv", None),
    ("packages/validators:tsc", "POSTGRES_URL"): ("from-dotenv", None),
}

ROOT_ENV = """\
POSTGRES_URL=from-dotenv
AUTH_SECRET=from-dotenv
DOTENV_ONLY=unlisted-but-loaded-by-the-wrapper
"""
SHELL = {
    "AUTH_SECRET": "from-shell",  # globalEnv, and in .env: the shell wins under both
    "NODE_ENV": "development",  # globalPassThroughEnv
    "VERCEL_URL": "example.vercel.app",  # globalPassThroughEnv
    "SHELL_ONLY_UNLISTED": "dropped-by-strict-mode",
}
STARTED = ("apps/nextjs:next", "apps/tanstack-start:vite", "packages/api:tsc", "packages/db:tsc")


def test_create_t3_turbo_services_get_what_turbo_gives_them(tmp_path: Path) -> None:
    turbo = node_tool("turbo")
    copy = copy_fixture("create-t3-turbo", tmp_path / "t3")
    (copy / ".env").write_text(ROOT_ENV)
    env = {"PATH": shell_path(copy), "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8", **SHELL}

    # turbo refuses the interactive expo task without its TUI; devstack runs the same set
    under_turbo = _run_turbo(turbo, copy, env)
    assert run_cli("init", cwd=copy, env=env).returncode == 0
    under_devstack = _run_devstack(copy, env)

    assert sorted(under_turbo) == sorted(under_devstack)
    nextjs = under_turbo["apps/nextjs:next"]  # the cases the comparison covers
    assert nextjs["DOTENV_ONLY"] == "unlisted-but-loaded-by-the-wrapper"
    assert nextjs["AUTH_SECRET"] == "from-shell" and nextjs["NODE_ENV"] == "development"
    assert "SHELL_ONLY_UNLISTED" not in nextjs and "DOTENV_ONLY" not in under_turbo[STARTED[2]]
    differences = {}
    for key, turbo_env in under_turbo.items():
        devstack_env = under_devstack[key]
        for name in sorted(set(turbo_env) | set(devstack_env)):
            if name in NOT_COMPARED or name.startswith(NOT_COMPARED_PREFIXES):
                continue
            if turbo_env.get(name) != devstack_env.get(name):
                differences[(key, name)] = (devstack_env.get(name), turbo_env.get(name))
    assert differences == EXPECTED_DIFFERENCES
    for key, turbo_env in under_turbo.items():
        # what PATH holds besides the package manager's additions is the same
        bin_dir = str(copy / "node_modules" / ".bin")
        assert bin_dir in turbo_env["PATH"].split(os.pathsep), key
        assert under_devstack[key]["PWD"] == turbo_env["PWD"], key


def _run_turbo(turbo: Path, copy: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    command = [str(turbo), "run", "dev", "--ui=stream", "--filter=!@acme/expo"]
    proc = subprocess.Popen(
        command, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _all_started(copy), timeout=TIMEOUT * 2, what="turbo's tasks")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=TIMEOUT)
    got = received(copy)
    assert _all_started(copy), output.decode(errors="replace")
    for path in copy.rglob("received-*.json"):
        path.unlink()
    return got


def _run_devstack(copy: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    up = Running("up", "--except", "expo", cwd=copy, env=env)
    try:
        up.wait_for_each(r"nextjs +\| next stand-in ready", r"tanstack-start +\| vite stand-in")
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()
    return received(copy)


def _all_started(copy: Path) -> bool:
    return all(key in received(copy) for key in STARTED)
