"""The slower CLI fuzz (issue 11), run before each release, not in `make test`:

    .venv/bin/python -m pytest -m slow_fuzz tests/integration/test_fuzz_cli.py

A few hundred runs of the real `devstack doctor`, `config` and `env` against generated
devstack.yaml and env files: each exits 0, 1 or 2 and never prints a traceback.
DEVSTACK_FUZZ_EXAMPLES=N runs N per command instead of 100."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import env_file_bytes, fuzz_settings, yaml_documents
from tests.support import run_cli

pytestmark = [pytest.mark.slow_fuzz, pytest.mark.timeout(0)]

REPO = Path(tempfile.mkdtemp(prefix="devstack-cli-fuzz-"))
COMMANDS = [("doctor", "--no-ports"), ("config",), ("env", "api"), ("env", "--diff", "api", "db")]


@fuzz_settings(100)
@given(yaml_documents(), env_file_bytes(), st.sampled_from(COMMANDS))
def test_cli_never_prints_a_traceback(text: str, env_bytes: bytes, command: tuple[str]) -> None:
    (REPO / "devstack.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    (REPO / ".env").write_bytes(env_bytes)
    result = run_cli(*command, cwd=REPO, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1, 2), (result.returncode, result.stderr)


@fuzz_settings(100)
@given(yaml_documents())
def test_cli_reads_a_config_given_with_f(text: str) -> None:
    (REPO / "other.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    result = run_cli("-f", str(REPO / "other.yaml"), "doctor", "--no-ports", cwd=REPO, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1, 2)
