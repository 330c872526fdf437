"""Lines of .gitignore syntax, compiled by pathspec, matched without it (issue 16).

pathspec parses each line (`*.log`, `build/`, `!keep.log`, `/src/**/*.ts`) into a
regular expression and a verdict: include it (a .gitignore ignores what it matches) or
take it back (`!`). Importing pathspec brings every matching backend it can use (~0.45
MiB of modules), which the long-lived `up` would keep for hours to run a few regexes.
So a child compiles (runtime/checker.py, `rules`) and `up` holds the outcome as data:
`Globs`, each pattern's compiled regex and verdict.

`Globs.check` decides as pathspec's GitIgnoreSpec does (pathspec 1.1's
`_backends/simple/gitignore.py`): of the patterns that match, the last one that
matched the path itself decides; if none did, the last one that matched only through a
directory above it (pathspec's "dir mark" group). Git allows a file to be taken back
from an ignored directory, which is why the two kinds differ.
tests/unit/core/test_globs.py holds `check` to pathspec's own `check_file` over
generated patterns and paths, so a pathspec release that decides otherwise fails CI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from devstack.core.imports import import_without


@dataclass(frozen=True)
class Globs:
    """Compiled lines of .gitignore syntax (`compile_globs`), in the lines' order."""

    rules: tuple[tuple[re.Pattern[str], bool], ...]  # (regex, include); no-op lines dropped
    dir_mark: str = "ps_d"  # the group pathspec names a match through a directory by

    def check(self, path: str) -> bool | None:
        """True: a line includes `path` (relative, `/`-separated; a trailing `/` for a
        directory); False: a `!` line takes it back; None: no line matches it."""
        path = _normalized(path)
        through_directory: bool | None = None
        for regex, include in reversed(self.rules):
            match = regex.search(path)  # pathspec's RegexPattern.match_file searches
            if match is None:
                continue
            if not match.groupdict().get(self.dir_mark):
                return include
            if through_directory is None:
                through_directory = include
        return through_directory

    def matches(self, path: str) -> bool:
        """Whether `path` is included (GitIgnoreSpec.match_file)."""
        return bool(self.check(path))

    def __add__(self, later: Globs) -> Globs:
        """These lines, then `later`'s (as if read from one file)."""
        return Globs(self.rules + later.rules, self.dir_mark)


def compile_globs(lines: Iterable[str], unreadable: list[str] | None = None) -> Globs:
    """pathspec's compiled form of `lines`: for the child that compiles, and for the
    commands that are not the long-lived `up`. A line pathspec cannot read (`!` alone, a
    trailing backslash) matches nothing, as git skips it; it is added to `unreadable`."""
    # pathspec requires nothing; from typing_extensions, an optional extra, it takes only
    # typing stubs it also defines itself.
    import_without("pathspec", "typing_extensions")
    from pathspec.patterns.gitignore.spec import _DIR_MARK, GitIgnoreSpecPattern

    rules = []
    for line in lines:
        try:
            # GitIgnoreSpec.from_lines makes the same pattern of each line.
            pattern = GitIgnoreSpecPattern(line)
        except ValueError:  # pathspec's GitIgnorePatternError
            if unreadable is not None:
                unreadable.append(line)
            continue
        if pattern.include is not None and pattern.regex is not None:
            rules.append((pattern.regex, pattern.include))
    return Globs(tuple(rules), _DIR_MARK)


def _normalized(path: str) -> str:
    """pathspec's normalize_file: `/` separators, no leading `/` or `./`."""
    if os.sep != "/":
        path = path.replace(os.sep, "/")
    if path.startswith("/"):
        return path[1:]
    if path.startswith("./"):
        return path[2:]
    return path
