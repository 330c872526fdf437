"""Fuzzing in the suite (issue 11): hostile devstack.yaml documents and env files go
through the config loader, the env resolver and doctor in-process; anything raised
other than DevstackError fails. A fixed budget in CI (1,500 examples in all);
DEVSTACK_FUZZ_EXAMPLES=N runs N per test with fresh inputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given

from devstack.core.config import parse_project
from devstack.core.doctor import diagnose
from devstack.core.envfile import read_env_file
from devstack.core.envresolve import resolve_project
from devstack.core.errors import DevstackError
from tests.fuzzing import SCALE, env_file_bytes, fuzz_settings, yaml_documents

# A longer run (DEVSTACK_FUZZ_EXAMPLES) may take as long as it needs.
pytestmark = pytest.mark.timeout(0 if SCALE else 120)

SCRATCH = Path(tempfile.mkdtemp(prefix="devstack-fuzz-"))
CONFIG = SCRATCH / "devstack.yaml"
SHELL = {"PATH": "/usr/bin:/bin", "HOME": str(SCRATCH), "A": "from-shell"}


def load_and_check(text: str) -> None:
    """What `devstack doctor` does with a config text, without the CLI around it."""
    try:
        project = parse_project(text, CONFIG)
    except DevstackError as error:
        assert error.problems and error.render()
        return
    env = resolve_project(project, SHELL, {})
    for problem in diagnose(project, env, check_ports=False):
        problem.render()


@fuzz_settings(900)
@given(yaml_documents())
def test_any_yaml_document_loads_or_gives_devstack_errors(text: str) -> None:
    load_and_check(text)


ROOT_ENV = SCRATCH / "repo"
ROOT_ENV.mkdir()
(ROOT_ENV / "svc").mkdir()
ENV_CONFIG = ROOT_ENV / "devstack.yaml"
ENV_PROJECT_TEXT = (
    "env: [A, D, 'API_*']\n"
    "services:\n"
    "  api: {cmd: sh -c true, env: {X: '${A}'}, ready: {http: 'http://127.0.0.1:${PORT}/'}}\n"
    "  svc: {cmd: [sh, -c, 'true'], cwd: svc, port: 8123}\n"
)

ENV_PROJECT = parse_project(ENV_PROJECT_TEXT, ENV_CONFIG)


@fuzz_settings(450)
@given(env_file_bytes(), env_file_bytes())
def test_any_env_files_resolve_or_give_devstack_problems(root: bytes, own: bytes) -> None:
    (ROOT_ENV / ".env").write_bytes(root)
    (ROOT_ENV / "svc" / ".env").write_bytes(own)
    env_file = read_env_file(ROOT_ENV / ".env", ".env")
    for problem in env_file.problems:
        problem.render()
    env = resolve_project(ENV_PROJECT, SHELL, {})
    for problem in diagnose(ENV_PROJECT, env, check_ports=False):
        assert problem.location is None or problem.location.file
        problem.render()


@fuzz_settings(150)
@given(yaml_documents(), env_file_bytes())
def test_yaml_and_env_files_together(text: str, env_bytes: bytes) -> None:
    (SCRATCH / ".env").write_bytes(env_bytes)
    load_and_check(text)
