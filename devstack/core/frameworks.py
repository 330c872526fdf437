"""Frameworks that load env files themselves, and how their reading differs from ours.

Next.js, Vite, bun, the trigger.dev CLI and dotenv users read `<cwd>/.env*` files on
their own and never override a variable already in the environment. devstack puts
every value it resolves into the environment, so it must resolve those files in the
framework's own order, or the app reads devstack's answer instead of its own (issue 12
item 4). Each loader names its files highest precedence first, and where the order
comes from.

Their loaders use the JS dotenv grammar, which reads some lines differently from
python-dotenv's (devstack's): `js_reading_differs` finds those lines so doctor can say
so with the file, the line and the fix.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.core.envmodel import EnvLoader
from devstack.core.turboenv import package_dependencies, package_json

# NODE_ENV is "development" for a dev server; `.env.local` is skipped in test mode by
# Next and bun, which a dev stack never runs in.
LOADERS = {
    "next": EnvLoader(
        "next",
        "Next.js",
        (".env.development.local", ".env.local", ".env.development", ".env"),
        "@next/env loadEnvConfig (nextjs.org/docs/app/guides/environment-variables)",
        expands_per_file=True,
    ),
    "vite": EnvLoader(
        "vite",
        "Vite",
        (".env.development.local", ".env.development", ".env.local", ".env"),
        "vite loadEnv (vite.dev/guide/env-and-mode: .env.[mode] beats .env.local)",
    ),
    "bun": EnvLoader(
        "bun",
        "bun",
        (".env.development.local", ".env.local", ".env.development", ".env"),
        "bun.com/docs/guides/runtime/set-env",
    ),
    "trigger": EnvLoader(
        "trigger",
        "the trigger.dev CLI",
        # dotenv.config with several paths: the first file that sets a name wins.
        (".env", ".env.development", ".env.local", ".env.development.local"),
        "triggerdotdev/trigger.dev packages/cli-v3/src/utilities/dotEnv.ts"
        " @ 03309515dd321e98bb9e8c51d958d6039f41f54e",
        expands=False,
    ),
    "dotenv": EnvLoader(
        "dotenv",
        "dotenv",
        (".env",),
        "dotenv's config(): <cwd>/.env, no override",
        expands=False,
    ),
}

_TOOLS = {
    "next": "next",
    "vite": "vite",
    "bun": "bun",
    "trigger": "trigger",
    "trigger.dev": "trigger",
}
_RUNNERS = ("npm", "pnpm", "yarn", "bun")
# Words after which the next word is the program that runs (`npx next dev`, `bun --bun vite`).
_LAUNCHERS = frozenset(
    {"npx", "pnpx", "bunx", "bun", "--bun", "exec", "dlx", "x", "run", "--", "node", "env"}
)


def detect_loader(cwd: Path, cmd: str | tuple[str, ...]) -> EnvLoader | None:
    """The env-file loader the service's command runs, from the command (one level of
    `npm run` / `pnpm` / `yarn` / `bun run` script expanded) and `<cwd>/package.json`."""
    words = _words(cmd)
    script = _script_of(cwd, words)
    if script is not None:
        words = [*words[:1], *_words(script)] if words[0] == "bun" else _words(script)
    if words and _tool(words[0]) == "bun":
        return LOADERS["bun"]  # bun loads .env files before anything it runs
    programs = [
        _tool(word)
        for i, word in enumerate(words)
        if i == 0 or (_tool(words[i - 1]) in _LAUNCHERS and not word.startswith("-"))
    ]
    tools = [_TOOLS[program] for program in programs if program in _TOOLS]
    if tools:
        return LOADERS[tools[0]]
    if "dotenv" in package_dependencies(cwd):
        return LOADERS["dotenv"]
    return None


def _tool(word: str) -> str:
    """`node_modules/.bin/next` -> next, `trigger.dev@latest` -> trigger.dev, bunx -> bun."""
    name = Path(word).name.split("@", 1)[0]
    return "bun" if name == "bunx" else name


def _words(cmd: str | tuple[str, ...]) -> list[str]:
    if isinstance(cmd, tuple):
        return list(cmd)
    try:
        words = shlex.split(cmd)
    except ValueError:
        return cmd.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)
    return words


def _script_of(cwd: Path, words: list[str]) -> str | None:
    """The package.json script `npm run dev`, `pnpm dev`, `bun run dev` ... runs."""
    if not words or Path(words[0]).name not in _RUNNERS:
        return None
    rest = [word for word in words[1:] if not word.startswith("-")]
    if rest[:1] in (["run"], ["run-script"]):
        rest = rest[1:]
    scripts = (package_json(cwd) or {}).get("scripts")
    if not rest or not isinstance(scripts, dict):
        return None
    script = scripts.get(rest[0])
    return script if isinstance(script, str) else None


# -- where the JS dotenv grammar reads a line differently --------------------------------


@dataclass(frozen=True)
class ReadingDiffers:
    """A line the framework's loader (JS dotenv + dotenv-expand) reads differently."""

    line: int
    name: str
    why: str
    fix: str


_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*)\Z")
_DOLLAR_NAME = re.compile(r"(?<![\\$])\$(?!\{)([A-Za-z_]\w*)")


def js_reading_differs(text: str, expands: bool = True) -> Iterator[ReadingDiffers]:
    """Lines of an env file whose value JS dotenv (Next, Vite, trigger.dev, dotenv-cli)
    reads differently from devstack, each with the fix that makes both agree; `expands`:
    the loader expands `$NAME` as dotenv-expand does. Multi-line quoted values are
    skipped (both grammars read them alike)."""
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        raw = lines[number]
        number += 1
        match = _ASSIGNMENT.match(raw)
        if match is None or raw.lstrip().startswith("#"):
            continue
        name, value = match.groups()
        quote = value[:1]
        if quote in ("'", '"', "`") and value.count(quote) - value.count("\\" + quote) < 2:
            while number < len(lines) and quote not in lines[number]:
                number += 1  # the rest of a multi-line value
            number += 1
            continue
        found = _differs(name, value, quote) if expands else _differs_unexpanded(name, value, quote)
        if found is not None:
            yield ReadingDiffers(number, name, *found)


def _inner(value: str, quote: str) -> str:
    if quote not in ("'", '"', "`"):
        return value
    closed = re.match(quote + r"((?:\\.|[^\\" + quote + "])*)" + quote, value)
    return closed.group(1) if closed else value[1:]


def _differs_unexpanded(name: str, value: str, quote: str) -> tuple[str, str] | None:
    """For loaders without expansion: devstack's `${NAME}` and `$$` are theirs as text."""
    inner = _inner(value, quote)
    if quote != "'" and re.search(r"\$[A-Za-z_{$]", inner):
        return (
            "the framework does not expand $NAME, ${...} or $$; devstack does",
            "write the value out in full, or single-quote it to keep the $ as text",
        )
    return _differs(name, value, quote, grammar_only=True)


def _differs(
    name: str, value: str, quote: str, grammar_only: bool = False
) -> tuple[str, str] | None:
    inner = _inner(value, quote)
    unquoted = quote not in ("'", '"', "`")
    # Values never appear in these messages: they may be secrets.
    if unquoted and re.search(r"\S#", value):
        return (
            f"the framework reads {name} only up to the '#' (an unquoted '#' starts a comment"
            " there); devstack reads the whole value",
            f'quote the value: {name}="..."',
        )
    if quote == "`":
        return (
            "the framework strips backquotes; devstack keeps them in the value",
            "use double quotes instead of backquotes",
        )
    if quote == '"' and '\\"' in inner:
        return (
            'the framework keeps the backslash of \\" in the value; devstack does not',
            "use single quotes around a value that holds double quotes",
        )
    if grammar_only:
        return None
    # devstack expands $NAME and ${...} as compose does, except in single quotes.
    dollar = _DOLLAR_NAME.search(inner)
    if quote == "'" and dollar is not None:
        var = dollar.group(1)
        return (
            f"the framework expands ${var} even in single quotes (dotenv-expand); devstack"
            " keeps it as text",
            f"drop the single quotes to expand ${var} in both",
        )
    if quote == "'" and "${" in inner:
        return (
            "the framework expands ${...} even in single quotes; devstack keeps it as text",
            "drop the single quotes to expand it in both",
        )
    if "\\$" in inner:
        return (
            "the framework reads \\$ as $; devstack keeps the backslash",
            "write the value without \\$ (a literal $ reads alike only where no name follows)",
        )
    if "$$" in inner and quote != "'":
        return (
            "devstack reads $$ as $; the framework keeps $$",
            "avoid $$ in a file the framework reads",
        )
    return None
