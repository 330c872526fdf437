"""Reading `.env` files: the one module that touches python-dotenv.

A file becomes `EnvEntry` records that know their file and line, plus a `Problem` for
every line that does not parse or names an invalid variable. python-dotenv's parser
does the parsing (quotes, escapes, `export`, multi-line values); this module only
corrects its line numbers (they count the blank lines before a binding) and checks
what it does not: variable names. python-dotenv (with logging and tempfile) is imported
only once there is a file to parse: most services have no env file, and `up` should
not pay for it before its first service starts.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.core.envmodel import EnvEntry, EnvFile
from devstack.core.errors import DevstackError, Location, Problem
from devstack.core.textfile import read_text

if TYPE_CHECKING:
    from dotenv.parser import Binding

VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SINGLE_QUOTED = re.compile(r"\s*(?:export\s+)?[^=]*?=\s*'")
_LEADING_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def read_env_file(path: Path, display: str) -> EnvFile:
    """The entries and problems of the env file at `path` (absent: no entries)."""
    try:
        text = read_text(path, display)
    except DevstackError as error:
        return EnvFile(path, display, exists=True, problems=tuple(error.problems))
    if text is None:
        return EnvFile(path, display, exists=False)
    return parse_env_text(text, path, display)


def parse_env_text(text: str, path: Path, display: str) -> EnvFile:
    from dotenv.parser import parse_stream

    entries: list[EnvEntry] = []
    problems: list[Problem] = []
    for binding in parse_stream(io.StringIO(text)):
        line = _first_line(binding)
        where = Location(display, line)
        source = binding.original.string.strip()
        if binding.error:
            problems.append(_unparsable(source, where))
        elif binding.key is None:
            continue  # a comment or blank line
        elif not VALID_NAME.match(binding.key):
            problems.append(_invalid_name(binding.key, where))
        elif binding.value is None:
            problems.append(
                Problem(
                    f"'{binding.key}' has no value",
                    where,
                    f"write {binding.key}= for an empty value, or delete the line",
                    severity="warning",
                    code="env-parse",
                )
            )
        else:
            quoted = bool(_SINGLE_QUOTED.match(source))
            entries.append(EnvEntry(binding.key, binding.value, where, interpolate=not quoted))
    return EnvFile(path, display, True, tuple(entries), tuple(problems))


def _first_line(binding: Binding) -> int:
    """The line the binding itself is on: dotenv's number counts the blank lines before it."""
    original = binding.original.string
    leading = original[: len(original) - len(original.lstrip())]
    return binding.original.line + leading.count("\n")


def _unparsable(source: str, where: Location) -> Problem:
    """Never the line itself: it may hold a secret (issue 11 §4); its name at most."""
    name = _LEADING_NAME.match(source)
    shown = f"the line for {name[1]}" if name else "this line"
    hint = "write NAME=value; quote values with spaces or '#', e.g. NAME=\"a value\""
    if any(source.count(quote) % 2 for quote in "'\""):
        hint = "a quote is opened but not closed on this line (or the lines after it)"
    return Problem(f"cannot parse {shown} (value not shown)", where, hint, code="env-parse")


def _invalid_name(name: str, where: Location) -> Problem:
    fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not re.match(r"[A-Za-z_]", fixed):
        fixed = "_" + fixed
    return Problem(
        f"'{name}' is not a valid variable name",
        where,
        f"names are letters, digits and _, not starting with a digit (e.g. {fixed})",
        code="env-parse",
    )
