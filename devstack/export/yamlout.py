"""YAML for other tools' parsers: every string that could be read as anything else is quoted.

PyYAML already quotes what *it* would misread, but compose (go-yaml) and kubectl read
YAML 1.1 and 1.2 differently: `y`, `n`, `on`, `off`, `0755`, `1e3`, `1_000` and `12:30`
change type in one or the other (the "Norway problem"). So a string is written plain
only when it is a plain word that no YAML version turns into a bool, number or null;
every other string, key or value, is double-quoted. No anchors, keys in the order built.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*\Z")
_SPECIAL_WORDS = frozenset(
    ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
)  # case-insensitive in YAML 1.1


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    plain = bool(_PLAIN.match(value)) and value.lower() not in _SPECIAL_WORDS
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if plain else '"')


_Dumper.add_representer(str, _represent_str)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)


def dump_all(documents: list[Any]) -> str:
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000
    )
