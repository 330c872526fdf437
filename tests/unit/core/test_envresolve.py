"""Env files, layer precedence, strict/loose filtering, interpolation, provenance."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.core.config import parse_project
from devstack.core.envfile import parse_env_text
from devstack.core.envmodel import ProjectEnv
from devstack.core.envresolve import resolve_project
from devstack.core.model import Project


def project(root: Path, config: str, files: dict[str, str] | None = None) -> Project:
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for service_dir in ("api", "jobs"):
        (root / "services" / service_dir).mkdir(parents=True, exist_ok=True)
    path = root / "devstack.yaml"
    path.write_text(textwrap.dedent(config))
    return parse_project(path.read_text(), path)


def resolve(
    root: Path,
    config: str,
    files: dict[str, str] | None = None,
    shell: dict[str, str] | None = None,
    cli: dict[str, str] | None = None,
) -> ProjectEnv:
    return resolve_project(project(root, config, files), shell or {}, cli or {})


TWO_SERVICES = """\
env: [SHARED]
services:
  api:
    cmd: python -m api
    cwd: services/api
    env: [DATABASE_URL, "PORT=8000"]
  jobs:
    cmd: python -m worker
    cwd: services/jobs
"""


# -- env files ---------------------------------------------------------------------


def test_env_file_line_numbers_count_from_the_binding_not_the_blank_lines() -> None:
    text = "\n\nA=1\n# note\n\n\nB=2\nbad line\n1X=3\n"
    env_file = parse_env_text(text, Path(".env"), ".env")
    assert [(e.name, e.location.line) for e in env_file.entries] == [("A", 3), ("B", 7)]
    assert [(p.location.line if p.location else None) for p in env_file.problems] == [8, 9]
    assert "not a valid variable name" in env_file.problems[1].message


def test_single_quoted_values_are_not_interpolated() -> None:
    env_file = parse_env_text("A='${B}'\nC=\"${B}\"\n", Path(".env"), ".env")
    assert [e.interpolate for e in env_file.entries] == [False, True]


# -- precedence --------------------------------------------------------------------


def test_layers_in_order_with_provenance(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        TWO_SERVICES,
        {
            ".env": "SHARED=root\nDATABASE_URL=root-db\n",
            ".env.local": "SHARED=root-local\n",
            "services/api/.env": "DATABASE_URL=api-db\nOWN=api\n",
        },
        shell={"SHARED": "shell"},
        cli={"OWN": "cli"},
    )
    api = env.services["api"]
    assert api.values["SHARED"] == "shell"
    assert [s.label for s in api.variables["SHARED"].shadowed] == [".env.local:1", ".env:1"]
    assert api.variables["DATABASE_URL"].source.label == "services/api/.env:1"
    assert api.variables["DATABASE_URL"].shadowed[0].label == ".env:2"
    assert api.values["PORT"] == "8000"
    assert api.variables["PORT"].source.label == "devstack.yaml:6"
    assert api.variables["OWN"].source.label == "--env"
    assert env.problems == []


def test_config_values_beat_shell_and_service_beats_global(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        env: {MODE: global, LEVEL: global}
        services:
          api: {cmd: run, env: {LEVEL: service}}
        """,
        shell={"MODE": "shell", "LEVEL": "shell"},
    )
    assert env.services["api"].values["MODE"] == "global"
    assert env.services["api"].values["LEVEL"] == "service"


def test_port_sets_PORT_and_can_be_interpolated(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        services:
          api: {cmd: run, port: 8400, env: ["API_URL=http://localhost:${PORT}"]}
        """,
    )
    assert env.services["api"].values["PORT"] == "8400"
    assert env.services["api"].values["API_URL"] == "http://localhost:8400"


# -- strict and loose ----------------------------------------------------------------


def test_strict_mode_filters_root_files_and_shell_but_not_own_files(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        TWO_SERVICES,
        {".env": "SHARED=1\nUNLISTED=root\n", "services/jobs/.env": "UNLISTED=jobs-own\n"},
        shell={"UNLISTED": "shell", "PATH": "/bin", "LANG": "C", "RANDOM_SHELL": "x"},
    )
    api, jobs = env.services["api"], env.services["jobs"]
    assert "UNLISTED" not in api.values
    assert api.dropped["UNLISTED"].reason.startswith("strict mode")
    # The worker's own file always contributes; the shell's copy stays filtered out.
    assert jobs.values["UNLISTED"] == "jobs-own"
    assert jobs.values["SHARED"] == "1"
    assert api.values["PATH"] == "/bin" and api.values["LANG"] == "C"
    assert "RANDOM_SHELL" not in api.values and "RANDOM_SHELL" not in api.dropped


def test_wildcards_and_negation(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        env: ["NEXT_PUBLIC_*", "!NEXT_PUBLIC_DEBUG"]
        services:
          web: {cmd: run}
        """,
        {".env": "NEXT_PUBLIC_A=1\nNEXT_PUBLIC_DEBUG=1\nOTHER=1\n"},
    )
    web = env.services["web"]
    assert web.values["NEXT_PUBLIC_A"] == "1"
    assert "NEXT_PUBLIC_DEBUG" not in web.values
    assert "!NEXT_PUBLIC_DEBUG" in web.dropped["NEXT_PUBLIC_DEBUG"].reason
    assert "OTHER" in web.dropped


def test_loose_mode_passes_everything_but_negations(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        env_mode: loose
        env: ["!HIDDEN"]
        services:
          web: {cmd: run}
        """,
        {".env": "FROM_FILE=1\nHIDDEN=1\n"},
        shell={"FROM_SHELL": "1"},
    )
    web = env.services["web"]
    assert web.values["FROM_FILE"] == "1" and web.values["FROM_SHELL"] == "1"
    assert "HIDDEN" not in web.values


# -- interpolation -----------------------------------------------------------------


def test_interpolation_sees_lower_layers_then_shell(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        env: [DB_URL, GREETING, PRICE]
        services:
          api: {cmd: run, env: ["FULL=${DB_URL}/app", "HOME_DIR=${HOME}"]}
        """,
        {".env": "DB_HOST=db\nDB_URL=postgres://${DB_HOST}:${DB_PORT:-5432}\nPRICE=$$5\n"},
        shell={"HOME": "/home/me"},
    )
    api = env.services["api"]
    assert api.values["DB_URL"] == "postgres://db:5432"
    assert api.values["FULL"] == "postgres://db:5432/app"
    assert api.values["HOME_DIR"] == "/home/me"
    assert api.values["PRICE"] == "$5"


def test_undefined_interpolation_is_an_error_with_location_and_suggestion(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        services:
          api: {cmd: run, env: ["KEY=${TRIGGER_API_KEY}"]}
        """,
        {".env": "TRIGGER_SECRET_KEY=x\n"},
    )
    [problem] = env.problems
    assert str(problem.location) == "devstack.yaml:2:25"
    assert "${TRIGGER_API_KEY}" in problem.message
    assert problem.hint and "TRIGGER_SECRET_KEY" in problem.hint


def test_secrecy_flows_through_interpolation(tmp_path: Path) -> None:
    """A value built from a secret is secret: by name, from the shell, through defaults,
    transitively, whether or not the secret itself is passed (strict mode)."""
    env = resolve(
        tmp_path,
        """\
        services:
          api:
            cmd: run
            env:
              OWNER: "ops ${API_TOKEN}"
              CHAIN: "x-${OWNER}"
              DEFAULTED: "${API_TOKEN:-none}"
              UNSET: "${NO_TOKEN:-none}"
              FROM_SHELL: "s ${MY_PASSWORD}"
              PLAIN: "${HOST}:1"
        """,
        {".env": "API_TOKEN=tok_Zq9live\nHOST=db\n"},
        shell={"MY_PASSWORD": "pw_Zq9shell"},
    )
    api = env.services["api"]
    assert "API_TOKEN" not in api.values  # not listed: strict mode keeps it out ...
    derived = {name: api.variables[name].source.derived for name in api.values}
    assert derived["OWNER"] == derived["CHAIN"] == derived["DEFAULTED"] == ("tok_Zq9live",)
    assert derived["FROM_SHELL"] == ("pw_Zq9shell",)
    assert derived["UNSET"] == derived["PLAIN"] == ()
    masking = api.masking({})  # ... yet what was built from it is masked
    assert masking.masked("OWNER", api.values["OWNER"]).startswith("ops •••• (")
    assert masking.masked("CHAIN", api.values["CHAIN"]).startswith("x-ops •••• (")
    assert masking.masked("DEFAULTED", api.values["DEFAULTED"]).startswith("•••• (")
    assert masking.masked("PLAIN", api.values["PLAIN"]) == "db:1"
    assert "Zq9" not in str([masking.masked(name, value) for name, value in api.values.items()])


def test_a_required_message_built_from_a_secret_is_masked(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        services:
          api: {cmd: run, env: ["NEED=${EMPTY:?ask ${OWNER}}"]}
        """,
        {".env": "API_TOKEN=tok_Zq9live\nOWNER=ops ${API_TOKEN}\nEMPTY=\n"},
    )
    [problem] = env.problems
    assert "ask ops ••••" in problem.message and "Zq9" not in problem.message


# -- devstack's own layer ------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"services/api/.env": "FORCE_COLOR=0\nPYTHONUNBUFFERED=\nDEVSTACK_RUN_ID=forged\n"},
        {"services/api/.env": "DEVSTACK_SERVICE=forged\nDEVSTACK_REPO=/elsewhere\n"},
    ],
)
def test_the_devstack_layer_says_what_spawn_env_gives(
    tmp_path: Path, files: dict[str, str]
) -> None:
    """`env` shows the values `up` really spawns with (which wins is spawn_env's to say),
    and every variable spawn_env adds is in the layer (a new one must be added there)."""
    from devstack.core.envresolve import OWN_VARIABLES, RUN_ID_SHOWN, as_spawned
    from devstack.runtime.firstwave import spawn_env

    config = "services:\n  api: {cmd: run, cwd: services/api}\n"
    proj = project(tmp_path, config, files)
    env = resolve_project(proj, {}, {}).services["api"]
    shown = {name: v.value for name, v in as_spawned(proj, env).items()}
    cwd = str(proj.services["api"].cwd)
    spawned = spawn_env(
        env.values, run_id="r1", name="api", colour=True, repo=str(proj.root), cwd=cwd
    )
    assert set(spawned) - set(env.values) <= {own.name for own in OWN_VARIABLES}
    assert {own.name for own in OWN_VARIABLES} <= set(spawned)
    assert shown == {**spawned, "DEVSTACK_RUN_ID": RUN_ID_SHOWN}
    # The layer is never in what run, export and --format get.
    assert all(variable.source.kind != "devstack" for variable in env.variables.values())


# -- bad input -----------------------------------------------------------------------


def test_missing_explicit_env_file_and_parse_errors_are_reported_once(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        """\
        env_files: [.env, .env.shared]
        services:
          a: {cmd: run}
          b: {cmd: run}
        """,
        {".env": "GOOD=1\nthis is bad\n"},
    )
    rendered = [problem.render() for problem in env.problems]
    assert len(rendered) == 2, rendered
    assert any(".env:2: error: cannot parse" in text for text in rendered)
    assert any("env file .env.shared does not exist" in text for text in rendered)


def test_default_env_files_may_be_absent(tmp_path: Path) -> None:
    env = resolve(tmp_path, "services:\n  a: {cmd: run}\n")
    assert env.problems == []
    assert tmp_path / ".env" in env.env_files


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_cli_wins_over_everything(tmp_path: Path, mode: str) -> None:
    env = resolve(
        tmp_path,
        f"env_mode: {mode}\nenv: ['!X']\nservices:\n  a: {{cmd: run, env: ['X=config']}}\n",
        cli={"X": "cli"},
    )
    assert env.services["a"].values["X"] == "cli"


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
plain_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\$'),
    max_size=20,
)


@given(st.lists(st.tuples(names, plain_values, st.integers(0, 3)), max_size=8))
def test_any_env_file_of_quoted_values_reads_back_with_true_line_numbers(
    entries: list[tuple[str, str, int]],
) -> None:
    lines: list[str] = []
    expected = []
    for name, value, blank_lines_before in entries:
        lines += [""] * blank_lines_before
        lines.append(f'{name}="{value}"')
        expected.append((name, value, len(lines)))
    env_file = parse_env_text("\n".join(lines) + "\n", Path(".env"), ".env")
    assert env_file.problems == ()
    assert [(e.name, e.value, e.location.line) for e in env_file.entries] == expected
