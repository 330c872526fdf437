"""Scripts as the package manager runs them: wrappers dropped, env files and ports found."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from devstack.core.scripts import command_ports, parse_script

T3_WITH_ENV = {"with-env": "dotenv -e ../../.env --"}
DOCUMENSO_WITH_ENV = {"with:env": "dotenv -e ../../.env -e ../../.env.local --"}


@pytest.mark.parametrize(
    ("script", "scripts", "command", "env_files"),
    [
        # create-t3-turbo apps/nextjs: a script that calls the wrapper script
        ("pnpm with-env next dev", T3_WITH_ENV, "next dev", ("../../.env",)),
        ("pnpm run with-env vite dev", T3_WITH_ENV, "vite dev", ("../../.env",)),
        # documenso apps/remix: npm's `--` ends npm's options; dotenv-cli's first file wins,
        # devstack's last one does, so the order turns around
        (
            "npm run with:env -- react-router dev",
            DOCUMENSO_WITH_ENV,
            "react-router dev",
            ("../../.env.local", "../../.env"),
        ),
        ("dotenv -e .env.dev -- tsx watch src", {}, "tsx watch src", (".env.dev",)),
        ("dotenv -- tsx watch src", {}, "tsx watch src", (".env",)),
        ("env-cmd -f .env.dev node server.js", {}, "node server.js", (".env.dev",)),
        ("env-cmd node server.js", {}, "node server.js", (".env",)),
        ("node --env-file=.env --watch main.js", {}, "node --watch main.js", (".env",)),
        ("node --env-file .env.local main.js", {}, "node main.js", (".env.local",)),
        ("bun --env-file=../../.env run src/index.ts", {}, "bun run src/index.ts", ("../../.env",)),
        ("bun run dev", {}, "bun run dev", ()),
        # assignments before the wrapper stay
        ("FOO=1 dotenv -e a.env -- next dev", {}, "FOO=1 next dev", ("a.env",)),
        # not wrappers: left exactly as written
        ("next dev -p 3000", {}, "next dev -p 3000", ()),
        ("pnpm build && next dev", {"build": "tsc"}, "pnpm build && next dev", ()),
        ("node main.js", {}, "node main.js", ()),
        ("pnpm with-env", {"with-env": "echo hi"}, "pnpm with-env", ()),
        # a cycle of scripts calling scripts ends
        ("pnpm a", {"a": "pnpm b", "b": "pnpm a"}, "pnpm a", ()),
    ],
)
def test_a_dotenv_wrapper_becomes_env_files(
    script: str, scripts: dict[str, str], command: str, env_files: tuple[str, ...]
) -> None:
    parsed = parse_script(script, scripts)
    assert (parsed.command, parsed.env_files) == (command, env_files)
    assert bool(parsed.notes) == bool(env_files)


def test_a_wrapper_in_the_middle_of_a_command_is_listed() -> None:
    parsed = parse_script("pnpm build && pnpm with-env next dev", {**T3_WITH_ENV, "build": "tsc"})
    assert parsed.command == "pnpm build && pnpm with-env next dev"
    assert parsed.untranslated == (
        "`pnpm with-env` wraps only part of `pnpm build && pnpm with-env next dev`: its env"
        " files are left to it",
    )
    assert parse_script("tsc && dotenv -e .env -- node x").untranslated


def test_a_dotenv_option_it_cannot_translate_is_listed() -> None:
    parsed = parse_script("dotenv -e .env -v FOO=bar -- next dev")
    assert parsed.command == "next dev"
    assert parsed.untranslated == ("dotenv option -v (in `dotenv -e .env -v FOO=bar -- next dev`)",)


@pytest.mark.parametrize(
    ("command", "ports"),
    [
        ("next dev -p 3000", (3000,)),  # midday apps/app
        ("email dev -p 3003", (3003,)),  # midday packages/email
        ("email dev --port 3456", (3456,)),  # formbricks packages/email
        ("next dev -p 3000 --turbopack", (3000,)),
        ("vite dev --port=5173", (5173,)),
        ("PORT=3003 bun run src/index.ts", (3003,)),  # the clash
        ("blume dev --port ${PORT:-4321} --host x", (4321,)),  # unkey apps/design
        ("next dev -p $PORT", ()),
        ("tsc -p tsconfig.json", ()),
        ("vite build --watch", ()),
        ("next dev -p 99999", ()),
        ("a -p 1 && b --port 2", (1, 2)),
    ],
)
def test_ports_a_command_listens_on(command: str, ports: tuple[int, ...]) -> None:
    assert command_ports(command) == ports


WORDS = st.sampled_from(
    ["dotenv", "-e", "--", "env-cmd", "-f", "node", "--env-file", "--env-file=.env", "pnpm",
     "run", "with-env", "npm", "-p", "--port", "3000", "PORT=1", "'a b'", '"x', "&&", "next"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS | st.text(max_size=6), max_size=10))
@example(["-p", "²"])  # a digit int() does not read (found by this test)
def test_any_script_parses_without_error(words: list[str]) -> None:
    parsed = parse_script(" ".join(words), {"with-env": "dotenv -e ../../.env --"})
    assert all(0 < port < 65536 for port in parsed.ports)
    assert len(parsed.command) <= len(" ".join(words)) + len("dotenv -e ../../.env --")
