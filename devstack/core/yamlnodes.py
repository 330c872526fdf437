"""Typed reading of a composed YAML node tree, keeping file:line for every value.

PyYAML's `compose` gives nodes with marks; `NodeReader` turns them into Python
values and records a `Problem` (with line and column) for every wrong type,
duplicate key or unknown key instead of stopping at the first one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor

from devstack.core.errors import DevstackError, Location, Problem, did_you_mean

# Bounds on what a config file may expand to: deeper nesting overflows PyYAML's
# recursive composer (RecursionError), and aliases of aliases ("billion laughs")
# expand exponentially (issue 11). No real devstack.yaml comes near either.
MAX_DEPTH = 100
MAX_VALUES = 100_000

YAML_TAG = "tag:yaml.org,2002:"
MERGE_TAG = YAML_TAG + "merge"
INVALID = object()  # the value of a scalar YAML could not read (already reported)

_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:null": "nothing (null)",
    "tag:yaml.org,2002:timestamp": "a date",
}


_CONTROL_NAMES = {0: "NUL", 7: "BEL", 8: "BS", 0x1B: "ESC", 0x7F: "DEL"}


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses more than MAX_DEPTH levels of nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"values nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str, display: str) -> yaml.Node | None:
    """The node tree of a YAML document, or one DevstackError naming file:line and the fix."""
    too_deep = _flow_depth_exceeded(text)
    if too_deep is not None:
        raise DevstackError(
            [
                Problem(
                    f"invalid YAML: values nested more than {MAX_DEPTH} levels deep",
                    Location(display, *too_deep),
                    "flatten the structure: devstack.yaml never needs this depth",
                    code="yaml-syntax",
                )
            ]
        )
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader checks for control characters here
        return loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        problem = syntax_problem(error, display, text)
    except yaml.reader.ReaderError as error:
        problem = _reader_problem(error, display, text)
    except RecursionError:  # a backstop: MAX_DEPTH stops nesting well before this
        problem = Problem(f"{display} nests values too deeply", Location(display))
    finally:
        if loader is not None:
            loader.dispose()
    raise DevstackError([problem])


def _flow_depth_exceeded(text: str) -> tuple[int, int] | None:
    """(line, column) where `[`/`{` nesting passes MAX_DEPTH, or None; quoted text and
    comments skipped. PyYAML's scanner is quadratic in flow nesting (5,000 brackets
    took seconds before the composer's bound was reached), so deep flow nesting is
    refused before it is scanned. A rough count: the composer's bound is the exact one."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth, quote, previous = 0, "", "\n"
    line, line_start = 1, 0
    for index, char in enumerate(text):
        if char == "\n":
            line, line_start = line + 1, index + 1
        if quote:
            if char == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif char in "'\"" and previous in " \t\n[{,:":
            quote = char
        elif char == "#" and previous in " \t\n":
            quote = "\n"  # a comment runs to the end of the line
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, index - line_start + 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        if quote == "\n" and char == "\n":
            quote = ""
        previous = char if not (previous == "\\" and char == "\\") else ""
    return None


def syntax_problem(error: yaml.MarkedYAMLError, display: str, text: str) -> Problem:
    mark = error.problem_mark or error.context_mark
    location = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
    message = f"invalid YAML: {error.problem or error.context}"
    hint = "check indentation and quoting on this line or the one before"
    if error.context and error.problem:
        message += f" ({error.context})"
    if mark is not None and "\t" in _line(text, mark.line):
        hint = "this line has a tab: YAML indents with spaces only; replace the tab with spaces"
    elif "duplicate anchor" in message:
        hint = "give each anchor (&name) its own name"
    elif "undefined alias" in message:
        hint = "define the anchor (&name) before the alias (*name) that uses it"
    elif "nested more than" in message:
        hint = "flatten the structure: devstack.yaml never needs this depth"
    return Problem(message, location, hint, code="yaml-syntax")


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def _reader_problem(error: yaml.reader.ReaderError, display: str, text: str) -> Problem:
    """PyYAML's ReaderError (a control character, say) has a position, not a line."""
    before = text[: error.position]
    line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
    character = error.character
    code = character if isinstance(character, int) else ord(str(character)[:1] or "\0")
    import unicodedata

    name = _CONTROL_NAMES.get(code) or unicodedata.name(chr(code), "a control character")
    return Problem(
        f"character U+{code:04X} ({name}) is not allowed in YAML",
        Location(display, line, column),
        f'delete it (a pasted terminal escape?), or write it as "\\u{code:04X}" inside'
        " double quotes if you need it",
        code="yaml-syntax",
    )


def describe(node: yaml.Node) -> str:
    """What a node is, in words a user recognises: "a list", "a string"."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _TYPE_NAMES.get(node.tag, "a value")


@dataclass
class NodeReader:
    """Reads nodes of one file; collects problems rather than raising.

    `check` walks the tree once first: it reads every scalar (so a bad `!!int` or
    an unknown `!tag` is one problem, not a crash), finds recursive aliases and
    bounds what aliases expand to. After it, reading a value never raises.
    """

    display_file: str
    problems: list[Problem] = field(default_factory=list)
    _values: dict[int, object] = field(default_factory=dict, repr=False)
    _reported: set[int] = field(default_factory=set, repr=False)

    def check(self, root: yaml.Node) -> bool:
        """Read and vet the whole tree; False when it cannot be walked safely."""
        sizes: dict[int, int] = {}
        in_progress: set[int] = set()
        constructor = SafeConstructor()

        def visit(node: yaml.Node) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in in_progress:
                self.error(
                    node,
                    "this value contains itself (a recursive alias)",
                    "an alias (*name) cannot refer to the value it is inside",
                )
                raise _Unwalkable
            in_progress.add(key)
            size = 1
            if isinstance(node, yaml.ScalarNode):
                self._read_scalar(node, constructor)
            else:
                self._check_collection_tag(node)
                children = (
                    [item for pair in node.value for item in pair]
                    if isinstance(node, yaml.MappingNode)
                    else node.value
                )
                for child in children:
                    size += visit(child)
                    if size > MAX_VALUES:
                        self.error(
                            node,
                            f"aliases here expand to more than {MAX_VALUES:,} values",
                            "an alias bomb? use each anchor once or twice",
                        )
                        raise _Unwalkable
            in_progress.discard(key)
            sizes[key] = size
            return size

        try:
            visit(root)
        except _Unwalkable:
            return False
        return True

    def _read_scalar(self, node: yaml.ScalarNode, constructor: SafeConstructor) -> None:
        tag = node.tag
        if tag == MERGE_TAG:
            return  # `<<`: only meaningful as a key, handled by `items`
        if not tag.startswith(YAML_TAG):
            self._values[id(node)] = INVALID
            self.error(node, *_unknown_tag(tag, node.value), code="yaml-tag")
            return
        try:
            self._values[id(node)] = constructor.construct_object(node, deep=True)
        except Exception:  # PyYAML raises ValueError, TypeError, ConstructorError ...
            self._values[id(node)] = INVALID
            kind = tag.removeprefix(YAML_TAG)
            explicit = node.style is None and not _is_implicit(node)
            self.error(
                node,
                f"YAML cannot read this value as !!{kind}",
                f"remove the !!{kind} tag, or fix the value"
                if explicit
                else "quote it to keep it as text",
                code="yaml-tag",
            )

    def _check_collection_tag(self, node: yaml.Node) -> None:
        expected = "seq" if isinstance(node, yaml.SequenceNode) else "map"
        if node.tag != YAML_TAG + expected:
            what = "a list" if expected == "seq" else "a mapping"
            tag = node.tag.removeprefix(YAML_TAG)
            self.error(
                node, f"the tag '{tag}' does not fit {what}", "remove the tag", code="yaml-tag"
            )

    def where(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.display_file, mark.line + 1, mark.column + 1)

    def error(
        self, node: yaml.Node, message: str, hint: str | None = None, code: str = "invalid"
    ) -> None:
        if id(node) in self._reported:
            return  # one problem per value: a bad tag is not also a wrong type
        if code.startswith("yaml"):
            self._reported.add(id(node))
        self.problems.append(Problem(message, self.where(node), hint, code=code))

    def wrong_type(
        self, node: yaml.Node, what: str, expected: str, example: str | None = None
    ) -> None:
        hint = f"for example: {example}" if example else None
        self.error(
            node, f"{what} must be {expected}, not {describe(node)}", hint, code="wrong-type"
        )

    def value(self, node: yaml.Node) -> object:
        """A scalar's value (INVALID if YAML could not read it); None for a list or mapping.

        Collections are never built: an alias bomb would be, and its repr never ends."""
        return self._values.get(id(node)) if isinstance(node, yaml.ScalarNode) else None

    def text(self, node: yaml.Node) -> str | None:
        """A scalar as the user wrote it: YAML 1.1 reads `yes`, `1.10`, `01234` and
        `12:30` as true, 1.1, 668 and 750; a variable's value must be the written text."""
        value = self.value(node)
        if isinstance(value, str):
            return value
        if value is None or value is INVALID or not isinstance(node, yaml.ScalarNode):
            return None
        return str(node.value)

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"

    def items(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping, merge keys (`<<: *base`) applied as
        in compose: keys written here win over merged ones. Duplicate keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.wrong_type(node, what, "a mapping")
            return []
        seen: dict[str, yaml.Node] = {}
        result = []
        for key_node, value_node in self._own_pairs(node, what):
            key = self._key(key_node, what)
            if key is None:
                continue
            if key in seen:
                first = self.where(seen[key])
                self.error(
                    key_node,
                    f"'{key}' appears twice in {what} (first at line {first.line})",
                    "YAML keeps only the last one; merge them",
                    code="duplicate-key",
                )
            seen[key] = key_node
            result.append((key, key_node, value_node))
        for key_node, value_node in self._merged_pairs(node, what):
            key = self._key(key_node, what)
            if key is not None and key not in seen:
                seen[key] = key_node
                result.append((key, key_node, value_node))
        return result

    def _own_pairs(self, node: yaml.MappingNode, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
        return [(k, v) for k, v in node.value if k.tag != MERGE_TAG]

    def _merged_pairs(self, node: yaml.MappingNode, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs `<<` brings in, earlier sources first (they win, as in YAML's spec)."""
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.error(
                        source,
                        f"'<<' in {what} must merge a mapping, not {describe(source)}",
                        "for example: <<: *base, with base: &base {cwd: services/api}",
                    )
                    continue
                pairs += self._own_pairs(source, what) + self._merged_pairs(source, what)
        return pairs

    def _key(self, key_node: yaml.Node, what: str) -> str | None:
        key = self.value(key_node)
        if isinstance(key, str):
            return key
        if key is INVALID:
            return None
        if isinstance(key_node, yaml.ScalarNode):
            written = key_node.value
            self.error(
                key_node,
                f"the key {written} in {what} is read by YAML as {describe(key_node)}, not text",
                f'quote it: "{written}"',
                code="key-type",
            )
        else:
            self.error(key_node, f"keys of {what} must be text, not {describe(key_node)}")
        return None

    def check_keys(
        self, items: Iterable[tuple[str, yaml.Node, yaml.Node]], allowed: Iterable[str], what: str
    ) -> None:
        allowed = list(allowed)
        for key, key_node, _ in items:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"valid keys: {', '.join(allowed)}"
                self.error(key_node, f"unknown key '{key}' in {what}", hint, code="unknown-key")

    def string(self, node: yaml.Node, what: str, example: str | None = None) -> str | None:
        value = self.value(node)
        if isinstance(value, str) and value != "":
            return value
        expected = "a non-empty string" if value == "" else "a string"
        self.wrong_type(node, what, expected, example)
        return None

    def strings(self, node: yaml.Node, what: str, example: str | None = None) -> list[str]:
        """A list of strings; a single string is taken as a list of one."""
        single = self.value(node)
        if isinstance(single, str):
            return [single]
        if not isinstance(node, yaml.SequenceNode):
            self.wrong_type(node, what, "a list of strings", example)
            return []
        found = [self.string(item, f"each item of {what}", example) for item in node.value]
        return [item for item in found if item is not None]

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        value = self.value(node)
        if isinstance(value, bool):
            return value
        self.wrong_type(node, what, "true or false")
        return None

    def number(
        self, node: yaml.Node, what: str, *, integer: bool = False, minimum: float = 0
    ) -> float | None:
        value = self.value(node)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or (integer and not isinstance(value, int)):
            self.wrong_type(node, what, "a whole number" if integer else "a number")
            return None
        if value < minimum:  # type: ignore[operator]
            self.error(node, f"{what} must be at least {minimum:g}, not {value}")
            return None
        return value  # type: ignore[return-value]


class _Unwalkable(Exception):
    """The tree is cyclic or too big to walk; the problem is already recorded."""


def _is_implicit(node: yaml.ScalarNode) -> bool:
    """Whether YAML would give this plain scalar its tag without one written."""
    resolved = yaml.SafeLoader.resolve(yaml.SafeLoader, yaml.ScalarNode, node.value, (True, False))  # type: ignore[arg-type]
    return bool(resolved == node.tag)


def _unknown_tag(tag: str, written: str) -> tuple[str, str]:
    """(message, hint) for `!env x` or an unquoted `!NAME`, which YAML reads as a tag."""
    if written == "" and tag.startswith("!") and tag[1:].replace("_", "").isalnum():
        return (
            f"{tag} is a YAML tag here, not text (YAML reads a leading ! as a tag)",
            f'quote it: "{tag}"',
        )
    text = f"{tag} {written}".strip()
    return (
        f"YAML tag '{tag}' is not supported in devstack.yaml",
        f'remove the tag, or quote the whole value to keep it as text: "{text}"',
    )
