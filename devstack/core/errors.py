"""Problems a person must fix: where they are, what is wrong, how to fix it.

Every bad input becomes a `Problem` (file, line, message, hint). Code that finds
problems collects all of them and raises one `DevstackError`, so a user sees every
mistake in a file at once; the CLI turns it into text and an exit status, never a
traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad command line or bad configuration, as argparse does

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Location:
    """A place in a file, as shown to people: `services/jobs/.env:7`.

    Ordered by file, then line, then column; a missing line or column sorts first
    (a whole-file problem before its lines), never compared with a number (issue 11).
    """

    file: str
    line: int | None = None
    column: int | None = None

    def sort_key(self) -> tuple[str, int, int]:
        return (self.file, -1 if self.line is None else self.line, self.column or -1)

    def __lt__(self, other: Location) -> bool:
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with enough context to fix it without reading code."""

    message: str
    location: Location | None = None
    hint: str | None = None
    severity: Severity = "error"
    code: str = "invalid"

    def render(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        text = f"{prefix}{self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.location.file if self.location else None,
            "line": self.location.line if self.location else None,
            "hint": self.hint,
        }


@dataclass
class DevstackError(Exception):
    """Raised with every problem found; the CLI prints them and exits."""

    problems: Sequence[Problem]
    exit_status: int = EXIT_USAGE
    notes: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(self.render())

    @classmethod
    def single(
        cls,
        message: str,
        location: Location | None = None,
        hint: str | None = None,
        exit_status: int = EXIT_USAGE,
        code: str = "invalid",
    ) -> DevstackError:
        return cls([Problem(message, location, hint, code=code)], exit_status)

    def render(self) -> str:
        return "\n".join(problem.render() for problem in self.problems)


def closest_names(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Names a typo was probably meant to be, best first (case-insensitive)."""
    import difflib  # only a mistake needs it; every command imports this module

    by_folded = {candidate.casefold(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.casefold(), list(by_folded), n=limit, cutoff=0.6)
    return [by_folded[match] for match in matches]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint like "did you mean 'cmd'?", or None when nothing is close."""
    matches = closest_names(name, candidates, limit=1)
    return f"did you mean '{matches[0]}'?" if matches else None


def unknown_name_error(
    kind: str, name: str, known: Iterable[str], location: Location | None = None
) -> Problem:
    """The one wording for "no such service/variable/key", with the closest names."""
    known = list(known)
    hint = did_you_mean(name, known)
    if hint is None and known:
        hint = f"known {kind}s: {', '.join(sorted(known))}"
    return Problem(f"unknown {kind} '{name}'", location, hint, code=f"unknown-{kind}")
