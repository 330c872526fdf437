"""Compose-spec variable interpolation: text with `$NAME`s in, a value and what it used out.

`parse` scans text once into literal pieces and `Reference`s (a syntax error is an
`InvalidTemplate` saying where and what to write instead); `expand` fills the
references in from a lookup and reports, rather than raises, what went wrong, so the
caller can name the file and line of each problem. No I/O, nothing global.

The grammar is compose-spec's, as compose-go's `template` package reads it:

    $$               a literal $
    $NAME, ${NAME}   NAME's value
    ${NAME:-word}    word if NAME is unset or empty, else NAME's value
    ${NAME-word}     word if NAME is unset, else NAME's value
    ${NAME:+word}    word if NAME is set and not empty, else empty
    ${NAME+word}     word if NAME is set, else empty
    ${NAME:?word}    NAME's value; an error saying word if NAME is unset or empty
    ${NAME?word}     NAME's value; an error saying word if NAME is unset

A NAME is letters, digits and `_`, not starting with a digit. A word is text that may
hold interpolations of its own and balanced `{ }` pairs (`${JSON:-{"a":1}}`); it is
expanded only when used, so `${A:+${A},}` does not care whether A is defined. A `$`
before anything else is itself; `${` before anything but NAME and `}` or an operator is
an error. compose reads an undefined `$NAME` as the empty string; `expand` gives that
too and lists the reference in `Expansion.undefined`, for a caller that is stricter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

Operator = Literal[":-", "-", ":+", "+", ":?", "?"]
OPERATORS: tuple[Operator, ...] = (":-", ":+", ":?", "-", "+", "?")  # two-character ones first
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR = re.compile(r"\$")
_SPECIAL_IN_WORD = re.compile(r"[${}]")
UNCLOSED = "the `${` is never closed by `}`"
MAX_NESTING = 32  # words within words: far beyond any real value, well within the stack


@dataclass(frozen=True)
class Reference:
    """`$NAME`, `${NAME}` or `${NAME<operator><word>}`, starting at `offset` in the text."""

    name: str
    operator: Operator | None = None
    word: Template = ()
    braced: bool = True
    offset: int = 0

    def __str__(self) -> str:
        """As written, for messages: `$NAME`, `${NAME}`, `${NAME:-...}`."""
        if not self.braced:
            return f"${self.name}"
        return f"${{{self.name}{self.operator or ''}{'...' if self.word else ''}}}"


Piece: TypeAlias = "str | Reference"
Template: TypeAlias = "tuple[Piece, ...]"
Lookup = Callable[[str], "str | None"]


class InvalidTemplate(ValueError):
    """Text that is not a valid interpolation: what is wrong, where, and the bad part."""

    def __init__(self, reason: str, offset: int, snippet: str) -> None:
        super().__init__(f"`{snippet}`: {reason}")
        self.reason = reason
        self.offset = offset  # of the `$` that starts the bad interpolation
        self.snippet = snippet


@dataclass(frozen=True)
class Missing:
    """A `${NAME:?message}` or `${NAME?message}` whose NAME is unset (or empty, for `:?`)."""

    reference: Reference
    message: str  # the user's own words, expanded

    def __str__(self) -> str:
        """compose's own wording, which users of compose will recognise."""
        text = f"required variable {self.reference.name} is missing a value"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class Expansion:
    """The value, and every name it looked up with what it found (None: unset)."""

    value: str
    used: dict[str, str | None] = field(default_factory=dict)
    undefined: list[Reference] = field(default_factory=list)  # `$NAME`/`${NAME}` unset
    missing: list[Missing] = field(default_factory=list)  # `${NAME:?message}` failing


def escape(text: str) -> str:
    """`text` written so that interpolation gives it back unchanged."""
    return text.replace("$", "$$")


def interpolate(text: str, lookup: Lookup) -> Expansion:
    """`text` expanded with `lookup`; raises `InvalidTemplate` if it does not parse."""
    return expand(parse(text), lookup)


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> Template:
    """`text` as literal pieces and references (immutable, so a cached parse is shared)."""
    if "$" not in text:
        return (text,) if text else ()
    scanner = _Scanner(text)
    return scanner.pieces(in_word=False)


def expand(template: Template, lookup: Lookup) -> Expansion:
    """The value `template` gives with `lookup`; words are expanded only when used."""
    expansion = Expansion("")
    expansion.value = _Expander(lookup, expansion).fill(template)
    return expansion


class _Scanner:
    """A recursive-descent scanner: one pass, a word's nested `${...}` by recursion."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.nesting = 0

    def pieces(self, in_word: bool) -> Template:
        """Pieces up to the end of the text, or (in a word) up to its closing `}`."""
        text = self.text
        pieces: list[Piece] = []
        literal: list[str] = []
        depth = 0  # `{` opened inside a word: their `}` is text, not the end of the word
        while self.pos < len(text):
            found = (_SPECIAL_IN_WORD if in_word else _DOLLAR).search(text, self.pos)
            stop = found.start() if found else len(text)
            literal.append(text[self.pos : stop])
            self.pos = stop
            if stop == len(text):
                break
            char = text[stop]
            if char == "$":
                piece = self.dollar()
                if isinstance(piece, str):
                    literal.append(piece)
                    continue
                pieces += ["".join(literal), piece]
                literal = []
                continue
            if char == "}" and depth == 0:
                break  # the word's end: the caller consumes the `}`
            depth += 1 if char == "{" else -1
            literal.append(char)
            self.pos += 1
        pieces.append("".join(literal))
        return tuple(piece for piece in pieces if piece != "")

    def dollar(self) -> Piece:
        """What the `$` at `pos` starts; `pos` moves past it."""
        text, start = self.text, self.pos
        after = text[start + 1 : start + 2]
        if after == "$":
            self.pos += 2
            return "$"
        if after == "{":
            return self.braced()
        name = _NAME.match(text, start + 1)
        if name is None:
            self.pos += 1
            return "$"  # `$` before anything else is itself: `a $ b`, `^x$`, `$}`, `$1`
        self.pos = name.end()
        return Reference(name.group(), braced=False, offset=start)

    def braced(self) -> Reference:
        text, start = self.text, self.pos
        name = _NAME.match(text, start + 2)
        if name is None:
            raise self.invalid("a name must follow `${`", start)
        self.pos = name.end()
        if text.startswith("}", self.pos):
            self.pos += 1
            return Reference(name.group(), offset=start)
        operator = next((op for op in OPERATORS if text.startswith(op, self.pos)), None)
        if self.pos == len(text):
            raise self.invalid(UNCLOSED, start)
        if operator is None:
            expected = "`}` or one of " + " ".join(OPERATORS)
            raise self.invalid(f"after ${{{name.group()} comes {expected}", start)
        self.pos += len(operator)
        if self.nesting == MAX_NESTING:
            raise self.invalid(f"interpolations nest more than {MAX_NESTING} deep", start)
        self.nesting += 1
        word = self.pieces(in_word=True)
        self.nesting -= 1
        if self.pos >= len(text):
            raise self.invalid(UNCLOSED, start)
        self.pos += 1
        return Reference(name.group(), operator, word, offset=start)

    def invalid(self, reason: str, start: int) -> InvalidTemplate:
        """The error for the interpolation at `start`, shown as written, cut short."""
        end = self.text.find("}", start)
        snippet = self.text[start : end + 1] if 0 <= end < start + 40 else self.text[start:]
        if len(snippet) > 40:
            snippet = snippet[:37] + "..."
        return InvalidTemplate(reason, start, snippet)


class _Expander:
    def __init__(self, lookup: Lookup, expansion: Expansion) -> None:
        self.lookup = lookup
        self.expansion = expansion

    def fill(self, template: Template) -> str:
        return "".join(p if isinstance(p, str) else self.reference(p) for p in template)

    def reference(self, reference: Reference) -> str:
        name, operator = reference.name, reference.operator
        value = self.lookup(name)
        self.expansion.used.setdefault(name, value)
        if operator is None:
            if value is None:
                self.expansion.undefined.append(reference)
            return value or ""
        # `:` makes an empty value count as unset.
        present = value is not None and (value != "" or not operator.startswith(":"))
        if operator.endswith("-"):
            return value if present and value is not None else self.fill(reference.word)
        if operator.endswith("+"):
            return self.fill(reference.word) if present else ""
        if not present or value is None:
            self.expansion.missing.append(Missing(reference, self.fill(reference.word)))
            return ""
        return value
