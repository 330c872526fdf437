"""Issue 11 §4: secrets planted in every source never show in any output or file.

Known values go into the root .env, a service's .env, the shell, devstack.yaml, a URL
password (one containing `@`) and `--token`/`--password` flags of a command, and into
values built from them by interpolation whose own names look harmless (`OWNER=ops
${UNLISTED_SECRET}`, a secret that strict mode does not even pass). Then every
command's output (doctor, config, env in every form, ps, logs), devstack's own messages
(a port held by a process with a secret in its argv, a process that will not stop, the
guardian after devstack is SIGKILLed) and every file under .devstack/ are searched.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Running, clean_env, free_port, make_repo, run_cli

PLANT = "Zq9Pl"  # every planted value contains this; nothing devstack prints may
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(120)\n"
LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen()\n"
    "print('listening', flush=True); time.sleep(120)\n"
)
SECRET_ARGS = f"--token={PLANT}antFlag --password {PLANT}antFlag2 postgres://u:{PLANT}antCmd@db/x"


@pytest.fixture
def port_holder(tmp_path: Path) -> Iterator[int]:
    """A process outside the stack holding a port, with a secret in its command line."""
    port = free_port()
    script = tmp_path / "listener.py"
    script.write_text(LISTENER)
    # Short, so the token comes before the 80 columns a shown command line is cut to.
    holder = subprocess.Popen(
        ["python3", "listener.py", f"--token={PLANT}antPort", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"listening\n"
        yield port
    finally:
        holder.kill()
        holder.wait()


def planted_repo(repo: Path, port: int) -> Path:
    config = f"""\
    env: [ROOT_TOKEN, DATABASE_URL, SHELL_PASSWORD]
    services:
      api:
        cwd: services/api
        # $OWNER expanded by the shell: the command line devstack names holds the secret.
        cmd: ["sh", "-c", "setsid python3 stubborn.py $OWNER {SECRET_ARGS} & echo api up; wait"]
        env:
          PAYMENT: sk_live_{PLANT}antYaml
          DB: "redis://:{PLANT}@ntPw@cache:6379"
          OWNER: "ops ${{UNLISTED_SECRET}}"
          CHAIN: "x-${{OWNER}}-y"
          FALLBACK: "${{ROOT_TOKEN:-none}}"
          FROM_SHELL: "sh ${{SHELL_ONLY_PASSWORD}}"
        stop_timeout: 1
      web:
        cwd: services/web
        cmd: python3 -c "print('web up')"
        port: {port}
        ready: {{http: "http://127.0.0.1:${{PORT}}/?k=${{ROOT_TOKEN}}"}}
      checker:  # never started; doctor says its probe is not a host:port, masked
        cmd: python3 -c "pass"
        autostart: false
        ready: {{tcp: "${{ROOT_TOKEN}}"}}
    """
    return make_repo(
        repo,
        config,
        {
            ".env": f"ROOT_TOKEN={PLANT}antRoot\n"
            f"DATABASE_URL=postgres://app:{PLANT}@ntUrl@db:5432/app\n"
            f"UNLISTED_SECRET={PLANT}antDropped\n",
            "services/api/.env": f"API_SECRET={PLANT}antSvc\nAUTH_HEADER=Bearer {PLANT}antBearer\n",
            "services/api/stubborn.py": STUBBORN,
            "services/web/.env": f"API_SECRET={PLANT}antSvcWeb\n",
        },
    )


COMMANDS = [
    ("doctor",),
    ("doctor", "--json"),
    ("config",),
    ("config", "--json"),
    ("env", "api"),
    ("env", "api", "--json"),
    ("env", "api", "--format", "dotenv"),
    ("env", "api", "--format", "shell"),
    ("env", "--diff", "api", "web"),
    ("env", "--diff", "api", "web", "--json"),
    ("env", "api", "API_SECRET"),
    ("env", "api", "DATABASE_URL"),
    ("env", "api", "UNLISTED_SECRET"),
    ("env", "api", "SHELL_PASSWORD"),
    ("env", "api", "OWNER"),
    ("env", "api", "CHAIN"),
    ("env", "api", "FALLBACK", "--json"),
    ("config", "web"),
    ("env", "api", "--live"),
    ("ps",),
    ("logs", "-n", "200"),
]


def assert_no_plant(what: str, text: str) -> None:
    assert PLANT not in text, f"{what} shows a planted secret:\n{text}"


def assert_files_clean(state_dir: Path) -> None:
    files = [path for path in state_dir.rglob("*") if path.is_file()]
    assert files, "nothing under .devstack/ to check"
    for path in files:
        assert_no_plant(str(path), path.read_bytes().decode("utf-8", "replace"))


def test_secrets_stay_out_of_every_output_and_file(repo: Path, port_holder: int) -> None:
    planted_repo(repo, port_holder)
    shell = clean_env(SHELL_PASSWORD=f"{PLANT}antShell", SHELL_ONLY_PASSWORD=f"{PLANT}antSh2")
    # `up` refuses a taken port before starting anything, naming the holder (masked).
    refused = run_cli("up", cwd=repo, env=shell)
    assert refused.returncode != 0
    holder = rf"port {port_holder} is in use by pid \d+ \(python3 listener.py --token=••••"
    assert re.search(holder, refused.stdout + refused.stderr), refused.stderr
    assert_no_plant("up refusing a taken port", refused.stdout + refused.stderr)
    up = Running("up", "api", cwd=repo, env=shell)
    try:
        up.wait_for(r"^api +\| api up")
        for command in COMMANDS:
            result = run_cli(*command, cwd=repo, env=shell)
            assert "Traceback" not in result.stderr, (command, result.stderr)
            assert_no_plant(" ".join(command), result.stdout + result.stderr)
        revealed = run_cli("env", "api", "--reveal", cwd=repo, env=shell).stdout
        assert f"{PLANT}antSvc" in revealed  # the values were there to leak
        assert f"ops {PLANT}antDropped" in revealed and f"sh {PLANT}antSh2" in revealed
        shown = run_cli("env", "api", cwd=repo, env=shell).stdout
        assert re.search(r"OWNER +devstack.yaml:\d+ +ops •••• \(", shown), shown  # the rest shows
        story = run_cli("env", "api", "CHAIN", cwd=repo, env=shell).stdout
        assert "value   x-ops ••••-y (" in story and "uses    OWNER = ops •••• (" in story
        up.interrupt()
        up.wait_for(r"did not stop within 1s, sending SIGKILL")
        up.wait()
        assert "stubborn.py ops •••• --token=••••" in up.output()  # named, masked
        assert_no_plant("devstack up", up.output())
        assert_files_clean(repo / ".devstack")
    finally:
        up.close()


def test_the_guardian_masks_what_it_stopped(repo: Path) -> None:
    make_repo(
        repo,
        f'services:\n  api: {{cmd: ["python3", "stubborn.py", "--token={PLANT}antGuard"]}}\n',
        {"stubborn.py": STUBBORN.replace("time.sleep", "print('api up', flush=True); time.sleep")},
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for(r"^api +\| api up")
        up.send(signal.SIGKILL)
        up.wait()  # the guardian shares its output, and has exited too
        assert "devstack guardian: devstack is gone; stopped pid" in up.output()
        assert "--token=••••" in up.output()
        assert_no_plant("the guardian's message", up.output())
        assert_files_clean(repo / ".devstack")
        assert (repo / ".devstack" / "guardian.log").exists()
    finally:
        up.close()


def test_an_unparsable_env_line_is_never_echoed(repo: Path) -> None:
    make_repo(repo, "services:\n  api: {cmd: x}\n", {".env": f'API_TOKEN="{PLANT}antBroken\n'})
    for command in (("doctor",), ("env", "api"), ("config",), ("up",)):
        result = run_cli(*command, cwd=repo)
        assert result.returncode == 2 or command == ("doctor",)
        assert ".env:1" in result.stderr + result.stdout
        assert_no_plant(" ".join(command), result.stdout + result.stderr)


def test_a_value_built_from_a_secret_stays_out_of_the_kept_plan(repo: Path) -> None:
    """The fast start keeps a plan of values on disk, never one that holds a secret: also
    not `OWNER=ops ${API_TOKEN}`, whose name looks harmless and whose secret is not passed."""
    make_repo(
        repo,
        'services:\n  api: {cmd: [python3, svc.py], env: {OWNER: "ops ${API_TOKEN}"}}\n',
        {
            ".env": f"API_TOKEN={PLANT}antPlan\nHARMLESS=1\n",
            "svc.py": "import time\nprint('api up', flush=True)\ntime.sleep(120)\n",
        },
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for(r"^api +\| api up")
        up.interrupt()
        up.wait()
        assert_no_plant("devstack up", up.output())
        assert (repo / ".devstack" / "plan").exists()
        assert_files_clean(repo / ".devstack")
    finally:
        up.close()
