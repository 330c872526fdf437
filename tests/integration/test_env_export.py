"""`env --format dotenv|shell` (issue 11 §4): without --reveal only non-secret values are
written and stderr says which were left out; what is written reads back exactly, in
python-dotenv, in sh, and in devstack's own env-file reader."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from devstack.core.envfile import parse_env_text
from tests.support import make_repo, run_cli

TRICKY = {
    "QUOTES": 'it\'s "quoted"',
    "BACKSLASH": "C:\\path\\n not a newline",
    "NEWLINE": "line one\nline two",
    "DOLLAR": "cost $5 and ${HOME} stays literal",
    "SPACES": "  padded  ",
    "UNICODE": "café ✓",
    "HASH": "a # not a comment",
    "EMPTY": "",
}
SECRETS = {"API_TOKEN": "Zq9plantedtoken", "DATABASE_URL": "postgres://u:Zq9plantedpw@db/x"}


@pytest.fixture
def exported_repo(repo: Path) -> Path:
    env = {**TRICKY, **SECRETS}
    yaml_env = "".join(f"      {name}: {_yaml(value)}\n" for name, value in env.items())
    return make_repo(repo, f"services:\n  api:\n    cmd: x\n    env:\n{yaml_env}")


def _yaml(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("$", "$$") + '"'


def test_without_reveal_secrets_are_left_out_and_named(exported_repo: Path) -> None:
    for fmt in ("dotenv", "shell"):
        result = run_cli("env", "api", "--format", fmt, cwd=exported_repo)
        assert result.returncode == 0, result.stderr
        assert "Zq9planted" not in result.stdout + result.stderr
        assert "••••" not in result.stdout
        assert "API_TOKEN" not in result.stdout and "DATABASE_URL" not in result.stdout
        assert "left out 2 secret values (API_TOKEN, DATABASE_URL)" in result.stderr
        assert "--reveal" in result.stderr


def _exported(repo: Path, fmt: str) -> str:
    result = run_cli("env", "api", "--format", fmt, "--reveal", cwd=repo)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_dotenv_reads_back_in_python_dotenv_and_devstack(exported_repo: Path) -> None:
    text = _exported(exported_repo, "dotenv")
    expected = {**TRICKY, **SECRETS}
    read = dotenv_values(stream=io.StringIO(text), interpolate=False)
    assert {name: read[name] for name in expected} == expected
    parsed = parse_env_text(text, Path(".env"), ".env")
    assert not parsed.problems
    assert {e.name: e.value for e in parsed.entries if e.name in expected} == expected
    assert all(not e.interpolate for e in parsed.entries if "$" in e.value)


def test_shell_reads_back_in_sh(exported_repo: Path, tmp_path: Path) -> None:
    script = tmp_path / "env.sh"
    script.write_text(_exported(exported_repo, "shell"))
    expected = {**TRICKY, **SECRETS}
    dump = subprocess.run(
        ["sh", "-c", f'. "{script}" && env -0'],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.decode()
    read = dict(item.split("=", 1) for item in dump.split("\0") if "=" in item)
    assert {name: read[name] for name in expected} == expected
