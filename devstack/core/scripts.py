"""A package.json script read as its package manager would run it: the command, the
env files a dotenv wrapper loads (the wrapper itself dropped), and the ports it listens on.

Pure: text in, a `Script` out. `devstack init` uses it to import a JS monorepo (issue 12
item 1); doctor and up use `command_ports` to know the ports a command binds (item 6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# A shell word with its quotes, so the text after a wrapper is kept byte for byte.
_WORD = re.compile(r"""(?:[^\s'"]+|'[^']*'|"(?:\\.|[^"\\])*")+""")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)
_PORT_FLAG = re.compile(r"(?:-p|--port)(?:=(.+))?\Z")
_PORT_DEFAULT = re.compile(r"\$\{PORT:?-([0-9]+)\}")
_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&"})
# `pnpm X`, `pnpm run X`, `npm run X`, `yarn X`, `bun run X`: another script of the package.
_RUNNERS = {"pnpm": ("run",), "npm": ("run", "run-script"), "yarn": ("run",), "bun": ("run",)}
_MAX_DEPTH = 5  # scripts calling scripts: enough for real repos, bounded for a cycle


@dataclass(frozen=True)
class Script:
    """What a script runs once its dotenv wrapper is taken off.

    env_files: relative to the package folder, in devstack's order (a later file wins).
    """

    command: str
    env_files: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()  # what was translated, for the generated comment
    untranslated: tuple[str, ...] = ()  # what could not be, for the end of the file


@dataclass
class _Reading:
    env_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)


def parse_script(text: str, scripts: Mapping[str, str] | None = None) -> Script:
    """`text`, a script of a package whose scripts are `scripts`, as devstack will run it."""
    reading = _Reading()
    command = _unwrap(text.strip(), scripts or {}, reading, 0)
    if left := _wrapper_left(command, scripts or {}):
        reading.untranslated.append(
            f"`{left}` wraps only part of `{command}`: its env files are left to it"
        )
    return Script(
        command=command,
        env_files=tuple(reading.env_files),
        ports=command_ports(command),
        notes=tuple(reading.notes),
        untranslated=tuple(reading.untranslated),
    )


def command_ports(command: str) -> tuple[int, ...]:
    """The TCP ports a command says it listens on: `-p N`, `--port N`, `--port=N`,
    `PORT=N cmd`, `${PORT:-N}`. Numbers only: `tsc -p tsconfig.json` is no port."""
    words = [word.strip("'\"") for word in _WORD.findall(command)]
    found: list[int] = []
    for index, word in enumerate(words):
        value: str | None = None
        if match := _PORT_FLAG.match(word):
            value = match.group(1) or (words[index + 1] if index + 1 < len(words) else None)
        elif (match := _ASSIGNMENT.match(word)) and match.group(1) == "PORT":
            value = match.group(2)
        if value is None:
            continue
        if default := _PORT_DEFAULT.search(value):
            value = default.group(1)
        if (
            value.isascii()
            and value.isdigit()
            and 0 < int(value) < 65536
            and int(value) not in found
        ):
            found.append(int(value))
    return tuple(found)


def service_ports(port: int | None, cmd: str | tuple[str, ...]) -> tuple[int, ...]:
    """Every port a service binds, as far as its config says: `port:` and its command's."""
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    found = command_ports(text)
    return found if port is None or port in found else (port, *found)


def _unwrap(text: str, scripts: Mapping[str, str], reading: _Reading, depth: int) -> str:
    words = list(_WORD.finditer(text))
    start = 0
    while start < len(words) and _ASSIGNMENT.match(words[start].group()):
        start += 1  # `PORT=3003 bun run ...`: assignments stay, the program follows them
    if start >= len(words):
        return text
    program = words[start].group()
    if depth < _MAX_DEPTH and (inner := _script_reference(words, start, scripts)):
        name, after = inner
        wrapper = scripts[name].strip()
        rest = text[words[after].start() :] if after < len(words) else ""
        if _is_bare_wrapper(wrapper):
            called = text[words[start].start() : words[after - 1].end()]
            reading.notes.append(f"`{called}` runs `{wrapper}`")
            combined = f"{wrapper} {_drop_double_dash(rest)}".strip()
            return _prefix(text, words, start) + _unwrap(combined, scripts, reading, depth + 1)
        return text
    handler = _WRAPPERS.get(program.rsplit("/", 1)[-1])
    if handler is None:
        return text
    unwrapped = handler(words, start + 1, text, reading)
    if unwrapped is None:
        return text
    return _prefix(text, words, start) + _unwrap(unwrapped, scripts, reading, depth + 1)


def _wrapper_left(command: str, scripts: Mapping[str, str]) -> str | None:
    """A wrapper still in the command (`pnpm build && pnpm with-env next dev`)."""
    words = _WORD.findall(command)
    for index, word in enumerate(words):
        program = word.rsplit("/", 1)[-1]
        if program in ("dotenv", "env-cmd") or word.startswith("--env-file"):
            return word
        if program in _RUNNERS:
            after = words[index + 1 : index + 3]
            if after and after[0] in _RUNNERS[program]:
                after = after[1:]  # `pnpm run with-env`
            if after and after[0] in scripts and _is_bare_wrapper(scripts[after[0]]):
                return f"{word} {after[0]}"
    return None


def _prefix(text: str, words: list[re.Match[str]], start: int) -> str:
    return text[: words[start].start()] if start else ""


def _script_reference(
    words: list[re.Match[str]], start: int, scripts: Mapping[str, str]
) -> tuple[str, int] | None:
    """(script name, index of the first word after it) for `pnpm with-env ...` and kin."""
    program = words[start].group()
    if program not in _RUNNERS or start + 1 >= len(words):
        return None
    index = start + 1
    if words[index].group() in _RUNNERS[program]:
        index += 1
    if index < len(words) and words[index].group() in scripts:
        return words[index].group(), index + 1
    return None


def _drop_double_dash(rest: str) -> str:
    """`npm run with:env -- react-router dev`: npm's `--` ends npm's options, not the wrapper's."""
    stripped = rest.lstrip()
    return stripped[2:].lstrip() if stripped.startswith("-- ") or stripped == "--" else rest


def _is_bare_wrapper(script: str) -> bool:
    """A script that is only a wrapper waiting for a command: `dotenv -e ../../.env --`."""
    words = _WORD.findall(script)
    if not words or words[0].rsplit("/", 1)[-1] not in _WRAPPERS:
        return False
    return words[-1] == "--" or (words[0] == "env-cmd" and len(words) <= 3)


def _dotenv_cli(words: list[re.Match[str]], index: int, text: str, reading: _Reading) -> str | None:
    """dotenv-cli: `dotenv [-e FILE]... [-c [ENV]] [-v K=V] [-o] -- command`.
    Its first file wins (dotenv never overrides a set variable); devstack's last one does."""
    files: list[str] = []
    start = index
    while index < len(words):
        word = words[index].group()
        if word == "--":
            index += 1
            break
        if word == "-e" and index + 1 < len(words):
            files.append(words[index + 1].group().strip("'\""))
            index += 2
        elif word.startswith("-e="):
            files.append(word[3:].strip("'\""))
            index += 1
        elif word.startswith("-"):
            reading.untranslated.append(f"dotenv option {word} (in `{text}`)")
            index += 2 if word in ("-v", "-p") else 1
        else:
            break
    if index >= len(words):
        return None
    files = files or [".env"]  # dotenv-cli's default
    reading.env_files += [f for f in reversed(files) if f not in reading.env_files]
    wrapper = text[words[start - 1].start() : words[index - 1].end()]
    order = " (dotenv-cli's first file wins, devstack's last: reversed)" if len(files) > 1 else ""
    reading.notes.append(f"`{wrapper}` dropped: its files are this service's env_files{order}")
    return text[words[index].start() :]


def _env_cmd(words: list[re.Match[str]], index: int, text: str, reading: _Reading) -> str | None:
    """env-cmd: `env-cmd [-f FILE] [--no-override] command` (default file: .env)."""
    start = index
    files: list[str] = []
    while index < len(words) and words[index].group().startswith("-"):
        word = words[index].group()
        if word in ("-f", "--file") and index + 1 < len(words):
            files.append(words[index + 1].group().strip("'\""))
            index += 2
        elif word == "--":
            index += 1
            break
        else:
            if word not in ("--no-override", "--silent"):
                reading.untranslated.append(f"env-cmd option {word} (in `{text}`)")
            index += 1
    if index >= len(words):
        return None
    files = files or [".env"]
    reading.env_files += [f for f in files if f not in reading.env_files]
    wrapper = text[words[start - 1].start() : words[index - 1].end()]
    reading.notes.append(f"`{wrapper}` dropped: its file is this service's env_files")
    return text[words[index].start() :]


def _node(words: list[re.Match[str]], index: int, text: str, reading: _Reading) -> str | None:
    """`node --env-file=F script.js` (or bun's): the flag goes, the program stays (a later
    file wins, as in node)."""
    kept: list[str] = []
    found: list[str] = []
    position = index
    while position < len(words) and words[position].group().startswith("-"):
        word = words[position].group()
        name, _, value = word.partition("=")
        if name in ("--env-file", "--env-file-if-exists"):
            if not value and position + 1 < len(words):
                position += 1
                value = words[position].group()
            found.append(value.strip("'\""))
        else:
            kept.append(word)
        position += 1
    if not found:
        return None
    reading.env_files += [f for f in found if f not in reading.env_files]
    program = words[index - 1].group()
    reading.notes.append(f"`--env-file` dropped from {program}: {', '.join(found)} env_files")
    rest = text[words[position].start() :] if position < len(words) else ""
    return " ".join([words[index - 1].group(), *kept, rest]).strip()


# bun takes node's flag: `bun --env-file=../../.env run src/index.ts`
_WRAPPERS = {"dotenv": _dotenv_cli, "env-cmd": _env_cmd, "node": _node, "bun": _node}
