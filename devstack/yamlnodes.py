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

from devstack.errors import Location, Problem, did_you_mean

_constructor = SafeConstructor()

_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:null": "nothing (null)",
}


def describe(node: yaml.Node) -> str:
    """What a node is, in words a user recognises: "a list", "a string"."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _TYPE_NAMES.get(node.tag, "a value")


@dataclass
class NodeReader:
    """Reads nodes of one file; collects problems rather than raising."""

    display_file: str
    problems: list[Problem] = field(default_factory=list)

    def where(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.display_file, mark.line + 1, mark.column + 1)

    def error(
        self, node: yaml.Node, message: str, hint: str | None = None, code: str = "invalid"
    ) -> None:
        self.problems.append(Problem(message, self.where(node), hint, code=code))

    def wrong_type(
        self, node: yaml.Node, what: str, expected: str, example: str | None = None
    ) -> None:
        hint = f"for example: {example}" if example else None
        self.error(
            node, f"{what} must be {expected}, not {describe(node)}", hint, code="wrong-type"
        )

    def value(self, node: yaml.Node) -> object:
        return _constructor.construct_object(node, deep=True)

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"

    def items(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; duplicate keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.wrong_type(node, what, "a mapping")
            return []
        seen: dict[str, yaml.Node] = {}
        result = []
        for key_node, value_node in node.value:
            key = self.value(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.error(key_node, f"keys of {what} must be strings")
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
        return result

    def check_keys(
        self, items: Iterable[tuple[str, yaml.Node, yaml.Node]], allowed: Iterable[str], what: str
    ) -> None:
        allowed = list(allowed)
        for key, key_node, _ in items:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"valid keys: {', '.join(allowed)}"
                self.error(key_node, f"unknown key '{key}' in {what}", hint, code="unknown-key")

    def string(self, node: yaml.Node, what: str, example: str | None = None) -> str | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, str) and value != "":
            return value
        expected = "a non-empty string" if value == "" else "a string"
        self.wrong_type(node, what, expected, example)
        return None

    def strings(self, node: yaml.Node, what: str, example: str | None = None) -> list[str]:
        """A list of strings; a single string is taken as a list of one."""
        if isinstance(node, yaml.ScalarNode) and isinstance(self.value(node), str):
            return [self.value(node)]  # type: ignore[list-item]
        if not isinstance(node, yaml.SequenceNode):
            self.wrong_type(node, what, "a list of strings", example)
            return []
        found = [self.string(item, f"each item of {what}", example) for item in node.value]
        return [item for item in found if item is not None]

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool):
            return value
        self.wrong_type(node, what, "true or false")
        return None

    def number(
        self, node: yaml.Node, what: str, *, integer: bool = False, minimum: float = 0
    ) -> float | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or (integer and not isinstance(value, int)):
            self.wrong_type(node, what, "a whole number" if integer else "a number")
            return None
        if value < minimum:  # type: ignore[operator]
            self.error(node, f"{what} must be at least {minimum:g}, not {value}")
            return None
        return value  # type: ignore[return-value]
