"""The same fixture under `turbo run dev` and under `devstack up`: every service must
receive the same variables with the same values (issue 12). turbo (2.x and 1.x), pnpm and
dotenv-cli are the real ones from the npm registry (the Makefile installs them into
.venv/node); npm is the machine's."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.jsfixtures import NODE_BIN, copy_fixture, node_tool, received, shell_path
from tests.support import TIMEOUT, Running, run_cli, wait_until

# Set by whoever runs the script, not by the config: not compared, each for its reason.
NOT_COMPARED = {
    "PATH": "each package manager prepends its own dirs and node_modules/.bin (checked below)",
    "PWD": "set by the shell that runs the script (checked below)",
    "SHLVL": "counts the shells between turbo and the tool: the package manager adds one",
    "INIT_CWD": "the package manager's own: the folder `run` was called from",
    "NODE": "the package manager's own: the node that runs it",
    "PNPM_SCRIPT_SRC_DIR": "pnpm's own",
    "COLOR": "npm's own: whether npm itself prints in colour",
    "EDITOR": "npm's own default for `npm edit`",
    "LC_CTYPE": "bun's own: bun run sets it for the script's shell",
    "_": "the last command of the shell that ran the script (bun's)",
    "TURBO_HASH": "turbo's own: the task's cache key",
    "TURBO_INVOCATION_DIR": "turbo's own",
    "DEVSTACK_RUN_ID": "devstack's own: finds the run's processes again (README)",
    "DEVSTACK_SERVICE": "devstack's own",
    "DEVSTACK_REPO": "devstack's own: the next up of the repo finds a lost run's processes",
    "PYTHONUNBUFFERED": "devstack's own: services' lines arrive as printed (README)",
}
NOT_COMPARED_PREFIXES = ("npm_", "pnpm_")  # the package manager's lifecycle variables

# devstack reads the root .env for the names a service may get (all of them in loose
# mode); turbo reads no env file and leaves that to `dotenv` wrappers (README "Coming
# from Turborepo"). Each case lists the values this gives, devstack's then turbo's.
ROOT_DOTENV = "devstack reads the root .env; turbo reads no env file"


@dataclass
class Case:
    fixture: str
    turbo: str  # a path under .venv/node
    turbo_args: tuple[str, ...]
    up_args: tuple[str, ...]
    started: tuple[str, ...]  # "folder:tool" of every stand-in that must have started
    ready: tuple[str, ...]  # devstack output lines that say the servers are up
    root_env: str
    shell: dict[str, str]
    expected: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)
    # values turbo delivered that the comparison rests on (None: not passed)
    turbo_gave: dict[tuple[str, str], str | None] = field(default_factory=dict)


CASES = {
    # bun workspaces, turbo 2, strict mode with no env list for `dev`: the seed's shape.
    # Nothing listed, so nothing from the shell or the root .env reaches a service.
    "midday-v1": Case(
        fixture="midday-v1",
        turbo="node_modules/.bin/turbo",
        turbo_args=("run", "dev", "--ui=stream"),
        up_args=(),
        started=("apps/api:supabase", "apps/app:next", "apps/web:next", "packages/email:email"),
        ready=(r"app +\| next stand-in", r"email +\| email stand-in"),
        root_env="RESEND_API_KEY=from-dotenv\n",
        shell={"SUPABASE_SERVICE_KEY": "listed-for-build-only", "UNLISTED": "dropped"},
        turbo_gave={
            ("apps/app:next", "SUPABASE_SERVICE_KEY"): None,
            ("apps/app:next", "RESEND_API_KEY"): None,
            ("apps/app:next", "LANG"): "C.UTF-8",
        },
    ),
    # pnpm, turbo 2, strict mode, globalEnv/globalPassThroughEnv, `pnpm with-env` wrappers,
    # one-shot `tsc` dev tasks under `^dev`. turbo refuses the interactive expo task
    # without its TUI, so both leave it out.
    "create-t3-turbo": Case(
        fixture="create-t3-turbo",
        turbo="node_modules/.bin/turbo",
        turbo_args=("run", "dev", "--ui=stream", "--filter=!@acme/expo"),
        up_args=("--except", "expo"),
        started=("apps/nextjs:next", "apps/tanstack-start:vite", "packages/api:tsc"),
        ready=(r"nextjs +\| next stand-in ready", r"tanstack-start +\| vite stand-in"),
        root_env="POSTGRES_URL=from-dotenv\nAUTH_SECRET=from-dotenv\nDOTENV_ONLY=wrapper\n",
        shell={
            "AUTH_SECRET": "from-shell",  # globalEnv, and in .env: the shell wins under both
            "NODE_ENV": "development",  # globalPassThroughEnv
            "VERCEL_URL": "example.vercel.app",  # globalPassThroughEnv
            "SHELL_ONLY_UNLISTED": "dropped-by-strict-mode",
        },
        expected={
            (f"packages/{name}:tsc", "POSTGRES_URL"): ("from-dotenv", None)
            for name in ("api", "db", "validators")
        },
        turbo_gave={
            ("apps/nextjs:next", "DOTENV_ONLY"): "wrapper",
            ("apps/nextjs:next", "AUTH_SECRET"): "from-shell",
            ("apps/nextjs:next", "VERCEL_URL"): "example.vercel.app",
            ("apps/nextjs:next", "SHELL_ONLY_UNLISTED"): None,
            ("packages/api:tsc", "DOTENV_ONLY"): None,
        },
    ),
    # npm workspaces, turbo 1.13 `pipeline`, loose mode, `npm run with:env --` wrapper
    # with two files (dotenv-cli: the first one wins)
    "documenso-turbo1": Case(
        fixture="documenso-turbo1",
        turbo="turbo1/node_modules/.bin/turbo",
        turbo_args=("run", "dev"),
        up_args=(),
        started=(
            "apps/docs:next",
            "apps/openpage-api:next",
            "apps/remix:react-router",
            "packages/email:react-router",
        ),
        ready=(r"docs +\| next stand-in", r"remix +\| react-router stand-in"),
        root_env="NEXTAUTH_SECRET=from-dotenv\nDOTENV_ONLY=wrapper\nBOTH=from-env\n",
        shell={"NEXTAUTH_SECRET": "from-shell", "SHELL_ONLY": "passed-by-loose-mode"},
        expected={
            (key, name): (value, None)
            for key in ("apps/docs:next", "apps/openpage-api:next", "packages/email:react-router")
            for name, value in (("DOTENV_ONLY", "wrapper"), ("BOTH", "from-env-local"))
        },
        turbo_gave={
            ("apps/remix:react-router", "BOTH"): "from-env",  # dotenv-cli: first file wins
            ("apps/remix:react-router", "NEXTAUTH_SECRET"): "from-shell",
            ("apps/docs:next", "SHELL_ONLY"): "passed-by-loose-mode",
        },
    ),
}
FILES = {
    "documenso-turbo1": {".env.local": "BOTH=from-env-local\n"},
    # the apps' .env that midday's README says to copy from .env.example (else doctor, and
    # so up, stops: issue 12 item 5); empty, so Next's own files add nothing on either side
    "midday-v1": {f"apps/{app}/.env": "" for app in ("api", "app", "web")},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_services_get_what_turbo_gives_them(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    turbo = NODE_BIN.parent.parent / case.turbo
    node_tool("turbo")  # fails (never skips) when `make test` did not install the tools
    assert turbo.exists(), f"{turbo} is missing: run `make test`"
    copy = copy_fixture(case.fixture, tmp_path / name)
    (copy / ".env").write_text(case.root_env)
    for file, text in FILES.get(name, {}).items():
        (copy / file).write_text(text)
    env = {"PATH": shell_path(copy), "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}
    env.update(case.shell)

    under_turbo = _run_turbo(case, turbo, copy, env)
    assert run_cli("init", cwd=copy, env=env).returncode == 0
    under_devstack = _run_devstack(case, copy, env)

    assert sorted(under_turbo) == sorted(under_devstack)
    for (key, variable), value in case.turbo_gave.items():
        assert under_turbo[key].get(variable) == value, (key, variable)
    assert _differences(under_turbo, under_devstack) == case.expected
    for key, turbo_env in under_turbo.items():
        assert str(copy / "node_modules" / ".bin") in turbo_env["PATH"].split(os.pathsep)
        assert under_devstack[key]["PWD"] == turbo_env["PWD"], key


def _differences(
    under_turbo: dict[str, dict[str, str]], under_devstack: dict[str, dict[str, str]]
) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    found = {}
    for key, turbo_env in under_turbo.items():
        devstack_env = under_devstack[key]
        for name in sorted(set(turbo_env) | set(devstack_env)):
            if name in NOT_COMPARED or name.startswith(NOT_COMPARED_PREFIXES):
                continue
            if turbo_env.get(name) != devstack_env.get(name):
                found[(key, name)] = (devstack_env.get(name), turbo_env.get(name))
    return found


def _run_turbo(
    case: Case, turbo: Path, copy: Path, env: dict[str, str]
) -> dict[str, dict[str, str]]:
    proc = subprocess.Popen(
        [str(turbo), *case.turbo_args], cwd=copy, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _all_started(case, copy), timeout=TIMEOUT * 2, what="turbo's tasks")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=TIMEOUT)
    got = received(copy)
    assert _all_started(case, copy), output.decode(errors="replace")
    for path in copy.rglob("received-*.json"):
        path.unlink()
    return got


def _run_devstack(case: Case, copy: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    up = Running("up", *case.up_args, cwd=copy, env=env)
    try:
        up.wait_for_each(*case.ready)
        wait_until(lambda: _all_started(case, copy), what="devstack's services")
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()
    return received(copy)


def _all_started(case: Case, copy: Path) -> bool:
    return all(key in received(copy) for key in case.started)
