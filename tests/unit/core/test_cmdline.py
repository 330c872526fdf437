"""A string cmd is exec'd as its words only when the shell would run exactly those words."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.core.cmdline import command_argv, plain_words

DIRECT = [
    ("node server.js", ("node", "server.js")),
    ("  python  -m   api ", ("python", "-m", "api")),
    ("bun\trun dev", ("bun", "run", "dev")),
    ("npx next dev -p 3001", ("npx", "next", "dev", "-p", "3001")),
    ("uvicorn app.main:app --reload", ("uvicorn", "app.main:app", "--reload")),
    ("/usr/bin/env python3 worker.py", ("/usr/bin/env", "python3", "worker.py")),
    ("pnpm --filter @acme/web dev", ("pnpm", "--filter", "@acme/web", "dev")),
]

SHELL = [
    "cd web && npm run dev",
    "npm run dev | tee log",
    "a; b",
    "sleep 1 &",
    "cat < in",
    "echo hi > out",
    "(cd x; y)",
    "echo $HOME",
    "node ${ENTRY}",
    "echo `date`",
    "run \\ arg",
    'node "my file.js"',
    "node 'my file.js'",
    "ls *.py",
    "ls file?.py",
    "ls [ab].py",
    "node server.js # comment",
    "cat ~/notes",
    "PORT=3000 node server.js",
    "node server.js --port=3000",
    "fg %1",
    "! false",
    "{ node server.js; }",
    "node a\nnode b",
    "node server.js\r",
    "node\xa0server.js",
    "exec node server.js",
    "cd web",
    "export A",
    "echo hello",
    "test -f x",
    "[ -f x ]",
    "true",
    ". ./env.sh",
    "source env.sh",
    "./bin/run --port 3000",  # may have no #! line: sh runs it, exec would not
    "scripts/dev.sh",
    "if",
    "",
    "   ",
]


@pytest.mark.parametrize(("cmd", "argv"), DIRECT)
def test_plain_commands_are_execed_as_their_words(cmd: str, argv: tuple[str, ...]) -> None:
    assert command_argv(cmd) == argv


@pytest.mark.parametrize("cmd", SHELL)
def test_shell_syntax_builtins_and_reserved_words_keep_the_shell(cmd: str) -> None:
    assert command_argv(cmd) == ("/bin/sh", "-c", cmd)


def test_a_list_is_execed_as_it_is() -> None:
    assert command_argv(("node", "a b.js")) == ("node", "a b.js")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(" \tab-./:@,+=$'\"\\*#~;|&\n\r\xa0"), max_size=16))
def test_the_words_are_what_shlex_splits_when_there_is_no_shell_syntax(cmd: str) -> None:
    words = plain_words(cmd)
    if words is not None:
        assert list(words) == shlex.split(cmd)


@pytest.mark.parametrize(("cmd", "argv"), DIRECT)
def test_the_words_are_what_sh_passes_to_the_program(cmd: str, argv: tuple[str, ...]) -> None:
    # Checked against what nobody here wrote: the real shell's word splitting.
    printed = subprocess.run(
        ["/bin/sh", "-c", f"set -- {cmd}; printf '%s\\n' \"$@\""],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tuple(printed.stdout.splitlines()) == argv
